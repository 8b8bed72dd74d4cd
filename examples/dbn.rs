//! A deep belief net on MNIST digits: greedy layer-wise pretraining of 784-500-500 RBMs by CD-1,
//! samples from the generative model, then discriminative fine-tuning as a 784-500-500-10
//! sigmoid network (the RBMs' weights plus a softmax layer) by SGD with momentum and dropout.
//!
//! Writes `out/dbn_filters.png` (the first layer's first 100 filters), `out/dbn_samples.png`
//! (Gibbs chains in the top RBM started from ten test digits, one row per 200 steps, shown
//! through the down pass), `out/dbn_pretraining_curve.png` (each RBM's reconstruction error per
//! epoch) and `out/dbn_curve.png` (fine-tuning loss and test error per epoch), and prints
//! the test error. The schedule is fixed (chosen on a validation split of the training set);
//! the test error printed per epoch is a monitor only.
//!
//! `cargo run --release --example dbn -- [--data DIR] [--epochs N] [--seed S] [--out DIR]
//! [--hidden N] [--k N] [--pcd]` (`--epochs`: fine-tuning epochs; `--hidden`: units per layer)

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::CdConfig;
use gradus::models::dbn::{Dbn, FineTuneConfig, LayerSchedule, Progress};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::{self, Plot};
use ndarray::{Axis, s};

/// CD epochs per layer.
const PRETRAIN_EPOCHS: usize = 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(30)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let hidden = args.hidden.unwrap_or(500);
    let sizes = [784, hidden, hidden];
    let cd = common::cd_config(&args, CdConfig::default());
    let tune = FineTuneConfig {
        momentum: 0.9,
        weight_decay: 1e-5,
        keep_input: 0.8,
        keep_hidden: 0.5,
    };
    let (lr0, decay, batch) = (0.2f32, 0.05f32, 50);
    println!(
        "DBN {sizes:?}: {PRETRAIN_EPOCHS} epochs of {}{} per layer (lr {}, momentum {}, batch {}), \
         then {} epochs of fine-tuning (lr {lr0} / (1 + {decay} epoch), momentum {}, keep {} / {})",
        if cd.persistent { "PCD-" } else { "CD-" },
        cd.k,
        cd.lr,
        cd.momentum,
        cd.batch,
        args.epochs,
        tune.momentum,
        tune.keep_input,
        tune.keep_hidden
    );

    // ANCHOR: pretrain
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let dbn = Dbn::new(&g, &sizes, args.seed)?;
    let schedule = vec![
        LayerSchedule {
            epochs: PRETRAIN_EPOCHS,
            cd
        };
        dbn.depth()
    ];
    let start = Instant::now();
    let mut bar = None;
    let curves = dbn.pretrain(
        &mnist.train_images,
        &schedule,
        &stream,
        args.seed,
        |p: &Progress| {
            let b = bar.get_or_insert_with(|| {
                common::progress(
                    p.batches,
                    &format!("layer {} epoch {:2}", p.layer, p.epoch + 1),
                )
            });
            b.inc(1);
            if p.batch.is_multiple_of(50) {
                b.set_message(format!("reconstruction error {:.2}", p.error));
            }
            if p.batch == p.batches {
                b.finish_and_clear();
                bar = None;
                println!(
                    "layer {}  epoch {:3}  reconstruction error {:8.3}  ({:.1}s)",
                    p.layer,
                    p.epoch + 1,
                    p.error,
                    start.elapsed().as_secs_f64()
                );
            }
        },
    )?;
    // ANCHOR_END: pretrain
    let pretrain_s = start.elapsed().as_secs_f64();
    println!(
        "pretraining: reconstruction error per layer {:?} -> {:?} in {pretrain_s:.1}s",
        curves.iter().map(|c| c[0] as f32).collect::<Vec<_>>(),
        curves
            .iter()
            .map(|c| c[c.len() - 1] as f32)
            .collect::<Vec<_>>()
    );

    // The generative model: first-layer filters and chains in the top RBM.
    std::fs::create_dir_all(&args.out)?;
    let w = common::matrix(&dbn.rbms[0].w.get_value()?)?;
    let filters = w.t().slice(s![..100.min(hidden), ..]).to_owned();
    viz::tile(filters.view(), 28, 28, 10)?.save(args.out.join("dbn_filters.png"))?;

    let starts = common::first_of_each_digit(&mnist.test_labels);
    let digits = mnist.test_images.select(Axis(0), &starts);
    let up = dbn.encoder(dbn.depth() - 1)?;
    let generate = dbn.generator(200, &stream)?;
    let mut state = up.call(&[Tensor::from(digits.clone())])?.remove(0);
    let mut rows = vec![digits];
    for _ in 0..9 {
        let mut out = generate.call(&[state])?;
        rows.push(common::matrix(&out[1])?);
        state = out.remove(0);
    }
    common::save_rows(&rows, args.out.join("dbn_samples.png"))?;

    // ANCHOR: finetune
    let net = dbn.classifier(10, args.seed)?;
    let train = net.trainer(&tune, &stream)?;
    let predict = net.predictor()?;
    let test_x = Tensor::from(mnist.test_images.clone());
    let test_error = || -> gradus::Result<f64> {
        Ok(common::error_rate(
            &predict.call(std::slice::from_ref(&test_x))?[0],
            &mnist.test_labels,
        ))
    };
    println!(
        "before fine-tuning (random softmax layer): {:.2}% test error",
        100.0 * test_error()?
    );
    let tune_start = Instant::now();
    let (mut losses, mut errors) = (Vec::new(), Vec::new());
    for epoch in 1..=args.epochs {
        let rate = lr0 / (1.0 + decay * (epoch - 1) as f32);
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let bar = common::progress(batches.len(), &format!("fine-tune {epoch:2}"));
        let mut total = 0.0;
        for idx in &batches {
            let feed = [
                common::rows(&mnist.train_images, idx),
                common::labels(&mnist.train_labels, idx),
                rate.into(),
            ];
            total += train.call(&feed)?[0].item()?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        losses.push(total / batches.len() as f64);
        errors.push(100.0 * test_error()?);
        println!(
            "epoch {epoch:3}  lr {rate:.4}  loss {:.4}  test error {:.2}%  ({:.1}s)",
            losses[epoch - 1],
            errors[epoch - 1],
            tune_start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: finetune
    let mut pretraining = Plot::new(format!("DBN {sizes:?}: greedy pretraining by CD"))
        .with_x_label("epoch")
        .with_y_label("squared reconstruction error per example");
    for (layer, curve) in curves.iter().enumerate() {
        let name = format!("layer {layer}: RBM {}-{}", sizes[layer], sizes[layer + 1]);
        pretraining = pretraining.with_series(name, curve);
    }
    pretraining.save(args.out.join("dbn_pretraining_curve.png"))?;
    Plot::new(format!("DBN {sizes:?} + softmax: fine-tuning"))
        .with_x_label("epoch")
        .with_y_label("training loss (cross-entropy)")
        .with_series("training loss", &losses)
        .with_right_label("test error (%)")
        .with_right_series("test error", &errors)
        .save(args.out.join("dbn_curve.png"))?;
    println!(
        "wrote {0}/dbn_filters.png, {0}/dbn_samples.png, {0}/dbn_pretraining_curve.png, \
         {0}/dbn_curve.png",
        args.out.display()
    );
    println!(
        "final test error: {:.2}% on {} digits (pretraining {pretrain_s:.0}s, fine-tuning {:.0}s, \
         total {:.0}s)",
        100.0 * test_error()?,
        mnist.test_labels.len(),
        tune_start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
