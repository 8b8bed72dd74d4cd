//! A LeNet-5-like convolutional net on MNIST digits: conv 5x5x20, max-pool 2, conv 5x5x50,
//! max-pool 2, 500 ReLU units, softmax; minibatch SGD with momentum, the learning rate decayed
//! per epoch. Writes the first layer's filters, the training curve and prints the test error.
//!
//! `cargo run --release --example convnet -- [--data DIR] [--epochs N] [--seed S] [--out DIR]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::optim::{Optimizer, as_pairs};
use gradus::prelude::*;
use gradus::viz::{self, Plot};
use gradus::{Conv2d, Pool2d};
use ndarray::{Array1, Array2, Array4};
use rand::Rng;
use rand::rngs::StdRng;

/// Filters `[out, in, k, k]` uniform in ±sqrt(6 / (fan_in + fan_out)), the fan-out counted
/// after a 2x2 pool.
fn filters(out: usize, inp: usize, k: usize, rng: &mut StdRng) -> Array4<f32> {
    let (fan_in, fan_out) = (inp * k * k, out * k * k / 4);
    let s = (6.0 / (fan_in + fan_out) as f32).sqrt();
    Array4::from_shape_fn((out, inp, k, k), |_| rng.random_range(-s..s))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(8)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let (lr0, momentum, batch, hidden) = (0.05f32, 0.9, 50, 500);

    // ANCHOR: model
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let y = g.input("y", DType::I64, &[None]);
    let lr = g.scalar("lr", DType::F32);
    let w1 = g.shared("W1", filters(20, 1, 5, &mut rng));
    let b1 = g.shared("b1", Array1::<f32>::zeros(20));
    let w2 = g.shared("W2", filters(50, 20, 5, &mut rng));
    let b2 = g.shared("b2", Array1::<f32>::zeros(50));
    let w3 = g.shared("W3", common::glorot(50 * 4 * 4, hidden, &mut rng));
    let b3 = g.shared("b3", Array1::<f32>::zeros(hidden));
    let w4 = g.shared("W4", common::glorot(hidden, 10, &mut rng));
    let b4 = g.shared("b4", Array1::<f32>::zeros(10));

    let pool = Pool2d::new(2);
    let images = x.reshape(&[-1, 1, 28, 28]);
    let c1 = (images.conv2d(&w1, Conv2d::default()) + b1.reshape(&[1, 20, 1, 1])).relu();
    let p1 = c1.max_pool2d(pool); // [N, 20, 12, 12]
    let c2 = (p1.conv2d(&w2, Conv2d::default()) + b2.reshape(&[1, 50, 1, 1])).relu();
    let p2 = c2.max_pool2d(pool).reshape(&[-1, 50 * 4 * 4]); // [N, 800]
    let h = (p2.matmul(&w3) + &b3).relu();
    let logits = h.matmul(&w4) + &b4;
    let loss = logits.softmax_cross_entropy(&y).mean();

    // SGD with momentum (v <- mu v - lr g; p <- p + v), the rate fed at each call.
    let params = [&w1, &b1, &w2, &b2, &w3, &b3, &w4, &b4];
    let grads = grad(&loss, &params)?;
    let updates = Optimizer::momentum(f64::from(lr0), momentum)
        .learning_rate(&lr)
        .updates(&params, &grads)?;
    let train = function(&[&x, &y, &lr], &[&loss])
        .updates(&as_pairs(&updates))
        .compile()?;
    let predict = function(&[&x], &[&logits.argmax(1)]).compile()?;
    // ANCHOR_END: model

    let test_x = Tensor::from(mnist.test_images.clone());
    let start = Instant::now();
    let (mut losses, mut errors) = (Vec::new(), Vec::new());
    for epoch in 1..=args.epochs {
        let rate = lr0 / (1.0 + 0.2 * (epoch - 1) as f32);
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let loss = common::epoch(&format!("epoch {epoch:2}"), "loss", &batches, |idx| {
            let feed = [
                common::rows(&mnist.train_images, idx),
                common::labels(&mnist.train_labels, idx),
                rate.into(),
            ];
            train.call(&feed)?[0].item()
        })?;
        let err = common::test_error(&predict, &test_x, &mnist.test_labels)?;
        losses.push(loss);
        errors.push(100.0 * err);
        println!(
            "epoch {epoch:3}  lr {rate:.4}  loss {loss:.4}  test error {:.2}%  ({:.1}s)",
            100.0 * err,
            start.elapsed().as_secs_f64()
        );
    }

    std::fs::create_dir_all(&args.out)?;
    let w: Array2<f32> = w1
        .get_value()?
        .to_f64_array()
        .mapv(|v| v as f32)
        .into_shape_with_order((20, 25))?;
    viz::tile(w.view(), 5, 5, 10)?
        .upscaled(8)
        .save(args.out.join("convnet_filters.png"))?;
    Plot::new("LeNet-like convnet, SGD with momentum")
        .with_x_label("epoch")
        .with_y_label("training loss (cross-entropy)")
        .with_series("training loss", &losses)
        .with_right_label("test error (%)")
        .with_right_series("test error", &errors)
        .save(args.out.join("convnet_curve.png"))?;
    println!(
        "wrote {0}/convnet_filters.png, {0}/convnet_curve.png",
        args.out.display()
    );
    common::print_final_test_error(&predict, &test_x, &mnist.test_labels)?;
    Ok(())
}
