//! Digits read as sequences: each digit is 28 rows of 28 pixels, read one row per step by a
//! GRU (or an LSTM) of 128 units through `Scan`; a softmax on the last state names the digit.
//! Adam, minibatches of 50, the learning rate decayed by 0.85 per epoch.
//!
//! Writes `out/sequence_curve.png` (training loss and test error per epoch).
//!
//! `cargo run --release --example sequence_digits -- [--cell gru|lstm] [--data DIR] [--epochs N] [--hidden N] [--seed S]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::recurrent::{Gru, Lstm};
use gradus::optim::{Optimizer, as_pairs};
use gradus::prelude::*;
use gradus::viz::Plot;
use ndarray::Array1;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `--cell` is this example's own option; the rest are every example's.
    let mut argv: Vec<String> = std::env::args().collect();
    let cell = match argv.iter().position(|a| a == "--cell") {
        Some(at) if at + 1 < argv.len() => {
            let c = argv.remove(at + 1);
            argv.remove(at);
            c
        }
        Some(_) => return Err("--cell needs gru or lstm".into()),
        None => "gru".to_string(),
    };
    let args = common::Args::parse_from(argv.into_iter().skip(1), 12)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let (hidden, batch) = (args.hidden.unwrap_or(128), 50);

    // ANCHOR: model
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let y = g.input("y", DType::I64, &[None]);
    // [N, 784] -> [28 rows, N, 28 pixels]: one row per step.
    let rows = x.reshape(&[-1, 28, 28]).permute(&[1, 0, 2]);
    let (last, params) = match cell.as_str() {
        "gru" => {
            let gru = Gru::new(&g, "gru", 28, hidden, DType::F32, args.seed)?;
            let last = gru.scan(&rows, &gru.zero_state(&rows))?.states[0].clone();
            (last, gru.params().into_iter().cloned().collect::<Vec<_>>())
        }
        "lstm" => {
            let lstm = Lstm::new(&g, "lstm", 28, hidden, DType::F32, args.seed)?;
            let zero = lstm.zero_state(&rows);
            let last = lstm.scan(&rows, &zero, &zero)?.states[0].clone();
            (last, lstm.params().into_iter().cloned().collect())
        }
        other => return Err(format!("--cell {other}: gru or lstm").into()),
    };
    let w = g.shared("W_out", common::glorot(hidden, 10, &mut rng));
    let b = g.shared("b_out", Array1::<f32>::zeros(10));
    let logits = last.matmul(&w) + &b;
    let loss = logits.softmax_cross_entropy(&y).mean();

    let mut all: Vec<&Expr> = params.iter().collect();
    all.extend([&w, &b]);
    let grads = grad(&loss, &all)?;
    let lr = g.shared("lr", 2e-3f32);
    let updates = Optimizer::adam(2e-3)
        .learning_rate(&lr)
        .updates(&all, &grads)?;
    let train = function(&[&x, &y], &[&loss])
        .updates(&as_pairs(&updates))
        .compile()?;
    let predict = function(&[&x], &[&logits.argmax(1)]).compile()?;
    // ANCHOR_END: model

    println!(
        "{} of {hidden} units over 28 rows of 28 pixels; train step: {} nodes",
        cell.to_uppercase(),
        train.len()
    );
    let test_x = Tensor::from(mnist.test_images.clone());
    let (mut losses, mut errors) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for epoch in 1..=args.epochs {
        lr.set_value(2e-3f32 * 0.85f32.powi(epoch as i32 - 1))?;
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let mean = common::epoch(&format!("epoch {epoch:3}"), "loss", &batches, |idx| {
            let feed = [
                common::rows(&mnist.train_images, idx),
                common::labels(&mnist.train_labels, idx),
            ];
            train.call(&feed)?[0].item()
        })?;
        let err = common::test_error(&predict, &test_x, &mnist.test_labels)?;
        losses.push(mean);
        errors.push(err);
        println!(
            "epoch {epoch:3}  loss {mean:.4}  test error {:.2}%  ({:.1}s)",
            100.0 * err,
            start.elapsed().as_secs_f64()
        );
    }
    common::print_final_test_error(&predict, &test_x, &mnist.test_labels)?;

    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join("sequence_curve.png");
    let percent: Vec<f64> = errors.iter().map(|e| 100.0 * e).collect();
    Plot::new(format!(
        "{} of {hidden} units reading digits row by row",
        cell.to_uppercase()
    ))
    .with_x_label("epoch")
    .with_y_label("training loss (cross-entropy)")
    .with_series("training loss", &losses)
    .with_right_label("test error (%)")
    .with_right_series("test error", &percent)
    .save(&path)?;
    println!("wrote {} (loss, test error per epoch)", path.display());
    Ok(())
}
