//! A convolutional RBM (Lee et al. 2009) on MNIST digits: binary hidden maps over a bank of
//! shared filters, CD-1 through the library's trainer, with the sparsity regularizer on the
//! hidden biases. Writes the filters and the reconstruction-error curve, and reports how well
//! a linear classifier reads the digits from the max-pooled hidden maps.
//!
//! `cargo run --release --example conv_rbm -- [--data DIR] [--epochs N] [--hidden K]
//! [--seed S] [--out DIR]` (`--hidden` is the number of filters)

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::Pool2d;
use gradus::models::conv_rbm::ConvRbm;
use gradus::models::{Cd, CdConfig};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::{self, Plot};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(4)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let (filters, side, sparsity_target) = (args.hidden.unwrap_or(24), 9, 0.03);
    // The free energy sums over every position of every map, so the filters' gradient is
    // about 400 times a dense RBM's: a small learning rate.
    let cfg = common::cd_config(
        &args,
        CdConfig {
            lr: 2e-4,
            momentum: 0.9,
            weight_decay: 1e-3,
            batch: 20,
            ..CdConfig::default()
        },
    );
    println!(
        "convolutional RBM, {filters} filters of {side}x{side} over 28x28 digits, {}, sparsity \
         target {sparsity_target}",
        common::describe_cd(&cfg)
    );

    // ANCHOR: model
    let g = Graph::new();
    let crbm =
        ConvRbm::new(&g, 28, side, filters, args.seed)?.with_sparsity(sparsity_target, 0.05)?;
    let train = Cd::new(&crbm, &cfg, &RandomStream::new(&g, args.seed)).compile()?;
    // ANCHOR_END: model

    // The maps' mean activation on the test digits, after each epoch.
    let v = g.input("v", DType::F32, &[None, Some(784)]);
    let activation = function(&[&v], &[&crbm.map_activation(&v).mean()]).compile()?;
    let test_x = Tensor::from(mnist.test_images.clone());

    let start = Instant::now();
    let (mut curve, mut activity) = (Vec::new(), Vec::new());
    for epoch in 1..=args.epochs {
        let batches = common::minibatches(mnist.train_labels.len(), cfg.batch, &mut rng);
        let err = common::epoch(
            &format!("epoch {epoch:2}"),
            "reconstruction error",
            &batches,
            |idx| {
                train
                    .step()
                    .call(&[common::rows(&mnist.train_images, idx)])?[0]
                    .item()
            },
        )?;
        let mean_activity = activation.call(std::slice::from_ref(&test_x))?[0].item()?;
        curve.push(err);
        activity.push(mean_activity);
        println!(
            "epoch {epoch:3}  reconstruction error {err:8.3}  mean hidden activation \
             {mean_activity:.4}  ({:.1}s)",
            start.elapsed().as_secs_f64()
        );
    }

    std::fs::create_dir_all(&args.out)?;
    let w: ndarray::Array2<f32> = crbm
        .w
        .get_value()?
        .to_f64_array()
        .mapv(|v| v as f32)
        .into_shape_with_order((filters, side * side))?;
    viz::tile(w.view(), side, side, 12)?
        .upscaled(6)
        .save(args.out.join("conv_rbm_filters.png"))?;
    Plot::new(format!(
        "convolutional RBM, {filters} filters {side}x{side}, CD-1"
    ))
    .with_x_label("epoch")
    .with_y_label("squared reconstruction error per digit")
    .with_series("training digits", &curve)
    .with_right_label("mean hidden activation")
    .with_right_series("mean P(h = 1 | v), test digits", &activity)
    .save(args.out.join("conv_rbm_curve.png"))?;
    println!(
        "wrote {0}/conv_rbm_filters.png, {0}/conv_rbm_curve.png",
        args.out.display()
    );

    // The hidden maps, max-pooled 4x4 (20x20 -> 5x5 per filter), as features.
    let pooled = crbm
        .hidden_input(&v)
        .sigmoid()
        .max_pool2d(Pool2d::new(4))
        .reshape(&[-1, (filters * 25) as isize]);
    let features = function(&[&v], &[&pooled]).compile()?;
    let err = common::probe_features(
        &features,
        mnist.train_images.clone(),
        mnist.test_images.clone(),
        &mnist,
        &mut rng,
    )?;
    println!(
        "linear classifier on the {} max-pooled hidden units: {:.2}% test error",
        filters * 25,
        100.0 * err
    );
    Ok(())
}
