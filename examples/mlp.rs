//! A 784-500-10 multilayer perceptron on MNIST digits: ReLU hidden layer with dropout, softmax
//! output, minibatch SGD with momentum, learning rate decayed per epoch.
//!
//! The dropout masks are fed as an input, drawn in Rust each step.
//!
//! `cargo run --release --example mlp -- [--data DIR] [--epochs N] [--seed S]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::prelude::*;
use ndarray::{Array1, Array2};
use rand::Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(50)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let (lr0, momentum, l2, batch, hidden, keep) = (0.05f32, 0.9, 0.0, 50, 500, 0.5f32);

    // ANCHOR: model
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let y = g.input("y", DType::I64, &[None]);
    let lr = g.scalar("lr", DType::F32);
    let mask = g.input("mask", DType::F32, &[None, Some(hidden)]);
    let w1 = g.shared("W1", common::glorot(784, hidden, &mut rng));
    let b1 = g.shared("b1", Array1::<f32>::zeros(hidden));
    let w2 = g.shared("W2", common::glorot(hidden, 10, &mut rng));
    let b2 = g.shared("b2", Array1::<f32>::zeros(10));

    let h = (x.matmul(&w1) + &b1).relu();
    let logits = h.matmul(&w2) + &b2;
    // Training sees a random half of the hidden units, scaled up (inverted dropout).
    let train_logits = (&h * &mask / f64::from(keep)).matmul(&w2) + &b2;
    let loss = train_logits.softmax_cross_entropy(&y).mean()
        + (w1.square().sum() + w2.square().sum()) * l2;

    // SGD with momentum: v <- mu v - lr g; p <- p + v (new values computed from the old ones).
    let params = [&w1, &b1, &w2, &b2];
    let grads = grad(&loss, &params)?;
    let mut updates = Vec::new();
    for (p, gp) in params.iter().zip(&grads) {
        let v = g.shared(
            &format!("v_{}", p.name()),
            p.get_value()?.to_f64_array().mapv(|_| 0.0f32),
        );
        let v_new = &v * momentum - gp * &lr;
        updates.push(((*p).clone(), *p + &v_new));
        updates.push((v, v_new));
    }
    let pairs: Vec<(&Expr, &Expr)> = updates.iter().map(|(a, b)| (a, b)).collect();
    let train = function(&[&x, &y, &lr, &mask], &[&loss])
        .updates(&pairs)
        .compile()?;
    let predict = function(&[&x], &[&logits.argmax(1)]).compile()?;
    // ANCHOR_END: model

    let test_x = Tensor::from(mnist.test_images.clone());
    let start = Instant::now();
    for epoch in 1..=args.epochs {
        let rate = lr0 / (1.0 + 0.1 * (epoch - 1) as f32);
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let loss = common::epoch(&format!("epoch {epoch:3}"), "loss", &batches, |idx| {
            let m = Array2::from_shape_fn((idx.len(), hidden), |_| {
                f32::from(rng.random::<f32>() < keep)
            });
            let feed = [
                common::rows(&mnist.train_images, idx),
                common::labels(&mnist.train_labels, idx),
                rate.into(),
                m.into(),
            ];
            train.call(&feed)?[0].item()
        })?;
        let err = common::test_error(&predict, &test_x, &mnist.test_labels)?;
        println!(
            "epoch {epoch:3}  lr {rate:.4}  loss {:.4}  test error {:.2}%  ({:.1}s)",
            loss,
            100.0 * err,
            start.elapsed().as_secs_f64()
        );
    }
    common::print_final_test_error(&predict, &test_x, &mnist.test_labels)?;
    Ok(())
}
