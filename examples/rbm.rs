//! A binary RBM trained by contrastive divergence on MNIST digits: the README's main job.
//!
//! Trains 784-500 (CD-1 by default; `--k N` for CD-k, `--pcd` for persistent CD), then shows
//! what it learned: `out/rbm_filters.png` (the first 100 hidden units' weights),
//! `out/rbm_samples.png` (Gibbs chains started from test digits, one row per 200 steps),
//! `out/rbm_curve.png` (reconstruction error per epoch), and the test error of a linear
//! classifier on the hidden probabilities.
//!
//! `cargo run --release --example rbm -- [--data DIR] [--epochs N] [--seed S] [--out DIR]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::{self, Plot};
use ndarray::{Array2, Axis, s};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(15)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let n_hidden = args.hidden.unwrap_or(500);
    let cfg = common::cd_config(&args, CdConfig::default());
    println!("RBM 784-{n_hidden}, {}", common::describe_cd(&cfg));

    // ANCHOR: train
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let rbm = Rbm::new(&g, 784, n_hidden, args.seed)?;
    rbm.init_visible_bias(&mnist.train_images)?;
    let train = rbm.trainer(&cfg, &stream)?;

    let start = Instant::now();
    let mut curve = Vec::new();
    for epoch in 1..=args.epochs {
        let batches = common::minibatches(mnist.train_labels.len(), cfg.batch, &mut rng);
        let mean = common::epoch(
            &format!("epoch {epoch:2}"),
            "reconstruction error",
            &batches,
            |idx| train.call(&[common::rows(&mnist.train_images, idx)])?[0].item(),
        )?;
        curve.push(mean);
        println!(
            "epoch {epoch:3}  reconstruction error {:8.3}  ({:.1}s)",
            curve[epoch - 1],
            start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: train

    // What it learned.
    std::fs::create_dir_all(&args.out)?;
    let w = common::matrix(&rbm.w.get_value()?)?;
    let filters = w.t().slice(s![..100.min(n_hidden), ..]).to_owned();
    viz::tile(filters.view(), 28, 28, 10)?.save(args.out.join("rbm_filters.png"))?;

    let sampler = rbm.sampler(200, &stream)?;
    let starts = common::first_of_each_digit(&mnist.test_labels);
    let mut state = Tensor::from(mnist.test_images.select(Axis(0), &starts));
    let mut rows: Vec<Array2<f32>> = vec![mnist.test_images.select(Axis(0), &starts)];
    for _ in 0..9 {
        state = sampler.call(&[state])?.remove(0);
        rows.push(common::matrix(&state)?);
    }
    common::save_rows(&rows, args.out.join("rbm_samples.png"))?;
    Plot::new(format!("RBM 784-{n_hidden}, {}", common::describe_cd(&cfg)))
        .with_x_label("epoch")
        .with_y_label("squared reconstruction error per digit")
        .with_series("training digits", &curve)
        .save(args.out.join("rbm_curve.png"))?;
    println!(
        "wrote {0}/rbm_filters.png, {0}/rbm_samples.png, {0}/rbm_curve.png",
        args.out.display()
    );

    // How useful are the hidden units? A linear classifier on P(h | v).
    let v = g.input("v", DType::F32, &[None, Some(784)]);
    let features = function(&[&v], &[&rbm.hidden_probs(&v)]).compile()?;
    let err = common::probe_features(
        &features,
        mnist.train_images.clone(),
        mnist.test_images.clone(),
        &mnist,
        &mut rng,
    )?;
    println!(
        "linear classifier on the {n_hidden} hidden probabilities: {:.2}% test error",
        100.0 * err
    );
    Ok(())
}
