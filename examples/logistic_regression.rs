//! Multinomial logistic regression on MNIST digits, trained by minibatch SGD.
//!
//! `cargo run --release --example logistic_regression -- [--data DIR] [--epochs N] [--seed S]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::prelude::*;
use ndarray::{Array1, Array2};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(40)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let (lr, l2, batch) = (0.1, 1e-4, 100);

    // ANCHOR: model
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let y = g.input("y", DType::I64, &[None]);
    let w = g.shared("W", Array2::<f32>::zeros((784, 10)));
    let b = g.shared("b", Array1::<f32>::zeros(10));

    let logits = x.matmul(&w) + &b;
    let loss = logits.softmax_cross_entropy(&y).mean() + w.square().sum() * l2;
    let grads = grad(&loss, &[&w, &b])?;
    let train = function(&[&x, &y], &[&loss])
        .updates(&[(&w, &(&w - &grads[0] * lr)), (&b, &(&b - &grads[1] * lr))])
        .compile()?;
    let predict = function(&[&x], &[&logits.argmax(1)]).compile()?;
    // ANCHOR_END: model

    let test_x = Tensor::from(mnist.test_images.clone());
    let start = Instant::now();
    for epoch in 1..=args.epochs {
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let loss = common::epoch(&format!("epoch {epoch:3}"), "loss", &batches, |idx| {
            let feed = [
                common::rows(&mnist.train_images, idx),
                common::labels(&mnist.train_labels, idx),
            ];
            train.call(&feed)?[0].item()
        })?;
        let err = common::test_error(&predict, &test_x, &mnist.test_labels)?;
        println!(
            "epoch {epoch:3}  loss {:.4}  test error {:.2}%  ({:.1}s)",
            loss,
            100.0 * err,
            start.elapsed().as_secs_f64()
        );
    }
    common::print_final_test_error(&predict, &test_x, &mnist.test_labels)?;
    Ok(())
}
