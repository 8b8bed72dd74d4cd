//! The deep autoencoder of Hinton & Salakhutdinov (Science, 2006) on MNIST digits: RBMs
//! 784-1000-500-250-30 pretrained greedily (the 30-unit top RBM with linear, Gaussian hidden
//! units), unrolled into a 784-1000-500-250-30-250-500-1000-784 encoder-decoder whose decoder
//! starts from the RBMs' transposed weights, then fine-tuned by backprop (SGD with momentum)
//! on the cross-entropy of the reconstruction.
//!
//! Prints the test squared error per digit (summed over pixels, the paper's measure) before
//! and after fine-tuning, and writes `out/deep_autoencoder.png`: rows of test digits, their
//! reconstructions before fine-tuning, and after; and `out/deep_autoencoder_curve.png` (test
//! squared error per fine-tuning epoch). For scale it also prints the error of PCA with 30
//! components, the paper's 13.87 baseline.
//!
//! The paper reports 3.00 after 50 RBM epochs per layer and 200 epochs of conjugate gradient
//! on 60,000 digits; the defaults here take about three minutes on two cores.
//!
//! `cargo run --release --example deep_autoencoder -- [--data DIR] [--epochs N] [--seed S]
//! [--out DIR]` (`--epochs`: fine-tuning epochs)

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::CdConfig;
use gradus::models::dbn::{Dbn, LayerSchedule, TopUnits};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::Plot;
use ndarray::{Array2, Axis};
use rand::Rng;
use rand::rngs::StdRng;

/// CD-1 epochs per layer.
const PRETRAIN_EPOCHS: usize = 10;

/// Test squared error per digit of the best rank-`k` linear code: PCA of the training images,
/// its top `k` directions found by orthogonal (subspace) iteration on the covariance.
fn pca_error(train: &Array2<f32>, test: &Array2<f32>, k: usize, rng: &mut StdRng) -> f32 {
    let mean = train.mean_axis(Axis(0)).expect("training digits");
    let centred = train - &mean;
    let cov = centred.t().dot(&centred) / train.nrows() as f32;
    let mut q = Array2::from_shape_fn((train.ncols(), k), |_| rng.random::<f32>() - 0.5);
    for _ in 0..100 {
        q = cov.dot(&q);
        // Gram-Schmidt on the columns.
        for j in 0..k {
            for i in 0..j {
                let proj = q.column(i).dot(&q.column(j));
                let qi = q.column(i).to_owned();
                q.column_mut(j).scaled_add(-proj, &qi);
            }
            let norm = q.column(j).dot(&q.column(j)).sqrt();
            q.column_mut(j).mapv_inplace(|v| v / norm);
        }
    }
    let t = test - &mean;
    let residual = &t - &t.dot(&q).dot(&q.t());
    residual.mapv(|v| v * v).sum() / test.nrows() as f32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(20)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let sizes = [784, 1000, 500, 250, 30];
    // Hinton's rbm.m settings (batch 100, lr 0.1, weight cost 2e-4); the linear top wants a
    // smaller rate: 0.001 in rbmhidlinear.m over 50 epochs, 0.03 for our 10.
    let cd = CdConfig {
        batch: 100,
        ..CdConfig::default()
    };
    let (lr0, decay, momentum, batch) = (0.01f32, 0.1f32, 0.9, 100);

    // ANCHOR: pretrain
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let dbn = Dbn::with_top(&g, &sizes, TopUnits::Linear, args.seed)?;
    let mut schedule = vec![
        LayerSchedule {
            epochs: PRETRAIN_EPOCHS,
            cd: cd.clone(),
        };
        dbn.depth()
    ];
    schedule[dbn.depth() - 1].cd.lr = 0.03;
    // ANCHOR_END: pretrain
    println!(
        "deep autoencoder {sizes:?} (linear code): {PRETRAIN_EPOCHS} epochs of CD-1 per layer \
         (batch {}, lr {} / {} for the top), then {} epochs of fine-tuning (lr {lr0} / (1 + \
         {decay} epoch), momentum {momentum}, batch {batch})",
        cd.batch,
        cd.lr,
        schedule[dbn.depth() - 1].cd.lr,
        args.epochs
    );
    let start = Instant::now();
    let mut bar = None;
    dbn.pretrain(&mnist.train_images, &schedule, &stream, args.seed, |p| {
        let b = bar.get_or_insert_with(|| {
            common::progress(
                p.batches,
                &format!("layer {} epoch {:2}", p.layer, p.epoch + 1),
            )
        });
        b.inc(1);
        if p.batch == p.batches {
            b.finish_and_clear();
            bar = None;
            if p.epoch + 1 == PRETRAIN_EPOCHS || p.epoch == 0 {
                println!(
                    "layer {}  epoch {:3}  reconstruction error {:8.3}  ({:.1}s)",
                    p.layer,
                    p.epoch + 1,
                    p.error,
                    start.elapsed().as_secs_f64()
                );
            }
        }
    })?;
    let pretrain_s = start.elapsed().as_secs_f64();

    // ANCHOR: finetune
    let ae = dbn.unroll_autoencoder()?;
    let train = ae.trainer(momentum, 0.0)?;
    let evaluate = ae.evaluator()?;
    let reconstruct = ae.reconstructor()?;
    let test_x = Tensor::from(mnist.test_images.clone());
    let squared_error =
        || -> gradus::Result<f64> { evaluate.call(std::slice::from_ref(&test_x))?[1].item() };

    let shown: Vec<usize> = (0..20)
        .map(|i| {
            let digit = i % 10;
            let nth = i / 10;
            let mut it = mnist
                .test_labels
                .iter()
                .enumerate()
                .filter(|&(_, &l)| l == digit);
            it.nth(nth).map_or(0, |(k, _)| k)
        })
        .collect();
    let originals = mnist.test_images.select(Axis(0), &shown);
    let before = common::matrix(&reconstruct.call(&[Tensor::from(originals.clone())])?[0])?;
    let pca = pca_error(&mnist.train_images, &mnist.test_images, 30, &mut rng);
    println!("test squared error per digit of PCA with 30 components: {pca:.2}");
    let first = squared_error()?;
    println!(
        "test squared error per digit after pretraining (unrolled, not fine-tuned): {first:.2}"
    );

    let tune_start = Instant::now();
    let mut curve = vec![first];
    for epoch in 1..=args.epochs {
        let rate = lr0 / (1.0 + decay * (epoch - 1) as f32);
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let bar = common::progress(batches.len(), &format!("fine-tune {epoch:2}"));
        let mut total = 0.0;
        for idx in &batches {
            total +=
                train.call(&[common::rows(&mnist.train_images, idx), rate.into()])?[0].item()?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        curve.push(squared_error()?);
        println!(
            "epoch {epoch:3}  lr {rate:.4}  cross-entropy {:8.3}  test squared error {:6.2}  ({:.1}s)",
            total / batches.len() as f64,
            curve[epoch],
            tune_start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: finetune
    let after = common::matrix(&reconstruct.call(&[Tensor::from(originals.clone())])?[0])?;

    std::fs::create_dir_all(&args.out)?;
    let mut rows = Vec::new();
    for half in 0..2 {
        let r = half * 10..half * 10 + 10;
        for m in [&originals, &before, &after] {
            rows.push(m.slice(ndarray::s![r.clone(), ..]).to_owned());
        }
    }
    common::save_rows(&rows, args.out.join("deep_autoencoder.png"))?;
    Plot::new("deep autoencoder 784-1000-500-250-30: fine-tuning")
        .with_x_label("epoch (0: pretrained, not fine-tuned)")
        .with_y_label("test squared error per digit")
        .with_points(
            "autoencoder",
            (0..).map(f64::from).zip(curve.iter().copied()),
        )
        .with_points(
            "PCA, 30 components",
            [(0.0, pca as f64), (args.epochs as f64, pca as f64)],
        )
        .save(args.out.join("deep_autoencoder_curve.png"))?;
    println!(
        "wrote {0}/deep_autoencoder.png (rows: digits, before, after fine-tuning) and \
         {0}/deep_autoencoder_curve.png",
        args.out.display()
    );
    println!(
        "test squared error per digit: {first:.2} before fine-tuning, {:.2} after (pretraining \
         {pretrain_s:.0}s, fine-tuning {:.0}s, total {:.0}s); PCA-30: {pca:.2}",
        curve[curve.len() - 1],
        tune_start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
