//! The autoencoder family on MNIST digits: plain, denoising (masking noise), sparse (KL
//! penalty) and contractive (Jacobian penalty), each 784-500 with tied weights and sigmoid
//! units, trained by SGD with momentum on the cross-entropy of the reconstruction.
//!
//! For each variant it writes `out/ae_<variant>_filters.png` (the first 100 hidden units'
//! weights) and `out/ae_<variant>_reconstructions.png` (rows: test digits, their
//! reconstructions, the digits with 30% of pixels zeroed, the reconstructions of those), then
//! prints a table of test reconstruction errors, mean hidden activation and the contraction
//! `‖∂h/∂x‖²_F` of each. `out/ae_curves.png` has the training loss per epoch.
//!
//! The contractive variant trains with the closed-form penalty; the example also evaluates the
//! penalty built with `grad` inside the graph, checks that both agree and times the two.
//!
//! `cargo run --release --example autoencoders -- [--data DIR] [--epochs N] [--seed S] [--out DIR] [--hidden N]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::autoencoder::{AeConfig, Autoencoder, Corruption, Jacobian, Variant, Weights};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::{self, Plot};
use ndarray::{Array2, Axis, s};

/// What one trained variant measured.
struct Summary {
    name: &'static str,
    cross_entropy: f64,
    squared_error: f64,
    denoised_squared_error: f64,
    mean_activation: f64,
    contraction: f64,
    seconds: f64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(10)?;
    let mnist = args.mnist()?;
    let n_hidden = args.hidden.unwrap_or(500);
    let cfg = AeConfig {
        lr: 0.02,
        momentum: 0.9,
        ..AeConfig::default()
    };
    println!(
        "autoencoders 784-{n_hidden}, tied weights, lr {}, momentum {}, batch {}, {} epochs",
        cfg.lr, cfg.momentum, cfg.batch, args.epochs
    );
    std::fs::create_dir_all(&args.out)?;

    // The sparse variant takes UFLDL's β = 3 and weight decay λ = 3e-3.
    let variants = [
        (Variant::Plain, 0.0),
        (Variant::Denoising(Corruption::Masking(0.3)), 0.0),
        (
            Variant::Sparse {
                rho: 0.05,
                beta: 3.0,
            },
            3e-3,
        ),
        (
            Variant::Contractive {
                lambda: 0.1,
                jacobian: Jacobian::ClosedForm,
            },
            0.0,
        ),
    ];
    let mut summaries = Vec::new();
    let mut curves = Vec::new();
    for (variant, weight_decay) in variants {
        let cfg = AeConfig {
            weight_decay,
            ..cfg.clone()
        };
        let (summary, curve) = run(variant, n_hidden, &cfg, &args, &mnist)?;
        summaries.push(summary);
        curves.push(curve);
    }
    let mut plot = Plot::new(format!("autoencoders 784-{n_hidden}, tied weights"))
        .with_x_label("epoch")
        .with_y_label("training loss (cross-entropy + penalty)");
    for (s, curve) in summaries.iter().zip(&curves) {
        plot = plot.with_series(s.name, curve);
    }
    plot.save(args.out.join("ae_curves.png"))?;

    println!(
        "\ntest reconstruction of {} digits (per image; `masked`: 30% of pixels zeroed first)",
        mnist.test_labels.len()
    );
    println!(
        "{:<12} {:>13} {:>13} {:>13} {:>9} {:>10} {:>7}",
        "variant", "cross-entropy", "squared err", "masked sq err", "mean h", "|J|_F^2", "time"
    );
    for s in &summaries {
        println!(
            "{:<12} {:>13.2} {:>13.2} {:>13.2} {:>9.3} {:>10.2} {:>6.1}s",
            s.name,
            s.cross_entropy,
            s.squared_error,
            s.denoised_squared_error,
            s.mean_activation,
            s.contraction,
            s.seconds
        );
    }
    println!(
        "wrote {0}/ae_<variant>_filters.png, {0}/ae_<variant>_reconstructions.png, {0}/ae_curves.png",
        args.out.display()
    );
    Ok(())
}

/// Train one variant, write its pictures, and measure it on the test digits.
fn run(
    variant: Variant,
    n_hidden: usize,
    cfg: &AeConfig,
    args: &common::Args,
    mnist: &gradus::data::Mnist,
) -> Result<(Summary, Vec<f64>), Box<dyn std::error::Error>> {
    let name = variant.name();
    println!("\n{name}: {variant:?}, weight decay {}", cfg.weight_decay);
    let mut rng = args.rng();

    // ANCHOR: train
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let ae = Autoencoder::new(&g, 784, n_hidden, Weights::Tied, args.seed).with_variant(variant);
    let train = ae.trainer(cfg, &stream)?;

    let start = Instant::now();
    let mut curve = Vec::new();
    for epoch in 1..=args.epochs {
        let batches = common::minibatches(mnist.train_labels.len(), cfg.batch, &mut rng);
        let mean = common::epoch(
            &format!("{name} epoch {epoch:2}"),
            "loss",
            &batches,
            |idx| train.call(&[common::rows(&mnist.train_images, idx)])?[0].item(),
        )?;
        curve.push(mean);
        println!(
            "  epoch {epoch:3}  loss {:8.3}  ({:.1}s)",
            curve[epoch - 1],
            start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: train
    let seconds = start.elapsed().as_secs_f64();

    // Test reconstruction, sparsity and contraction, on clean and on masked digits.
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let masked = ae
        .clone()
        .with_variant(Variant::Denoising(Corruption::Masking(0.3)))
        .corrupt(&x, &stream);
    let measure = function(
        &[&x],
        &[
            &ae.cross_entropy(&x, &x),
            &ae.squared_error(&x),
            &(&x - &ae.reconstruct(&masked))
                .square()
                .sum_axes(&[1], false)
                .mean(),
            &ae.encode(&x).mean(),
            &ae.contractive_penalty_closed_form(&x),
        ],
    )
    .compile()?;
    let m: Vec<f64> = measure
        .call(&[Tensor::from(mnist.test_images.clone())])?
        .iter()
        .map(|t| t.item())
        .collect::<gradus::Result<_>>()?;

    if let Variant::Contractive { .. } = variant {
        compare_jacobians(&ae, &x, &mnist.test_images)?;
    }

    // Pictures: filters, and digits with their reconstructions.
    let filters = ae.filters()?;
    viz::tile(filters.slice(s![..100.min(n_hidden), ..]), 28, 28, 10)?
        .save(args.out.join(format!("ae_{name}_filters.png")))?;
    let picks = common::first_of_each_digit(&mnist.test_labels);
    let digits = mnist.test_images.select(Axis(0), &picks);
    let show = function(
        &[&x],
        &[&ae.reconstruct(&x), &masked, &ae.reconstruct(&masked)],
    )
    .compile()?;
    let out = show.call(&[Tensor::from(digits.clone())])?;
    let mut rows: Vec<Array2<f32>> = vec![digits];
    for t in &out {
        rows.push(common::matrix(t)?);
    }
    common::save_rows(
        &rows,
        args.out.join(format!("ae_{name}_reconstructions.png")),
    )?;

    Ok((
        Summary {
            name,
            cross_entropy: m[0],
            squared_error: m[1],
            denoised_squared_error: m[2],
            mean_activation: m[3],
            contraction: m[4],
            seconds,
        },
        curve,
    ))
}

/// The contractive penalty built with `grad` inside the graph against its closed form: value,
/// gradient with respect to `W`, and the time of each on a minibatch of 20 test digits.
fn compare_jacobians(
    ae: &Autoencoder,
    x: &Expr,
    images: &Array2<f32>,
) -> Result<(), Box<dyn std::error::Error>> {
    let batch = Tensor::from(images.slice(s![..20, ..]).to_owned());
    let mut results = Vec::new();
    for (label, penalty) in [
        ("grad-built", ae.contractive_penalty(x)?),
        ("closed form", ae.contractive_penalty_closed_form(x)),
    ] {
        let gw = grad(&penalty, &[&ae.w])?.remove(0);
        let f = function(&[x], &[&penalty, &gw]).compile()?;
        f.call(std::slice::from_ref(&batch))?;
        let start = Instant::now();
        let reps = 3;
        let mut out = Vec::new();
        for _ in 0..reps {
            out = f.call(std::slice::from_ref(&batch))?;
        }
        let ms = 1e3 * start.elapsed().as_secs_f64() / reps as f64;
        results.push((label, out[0].item()?, out[1].to_f64_vec(), ms));
    }
    let (a, b) = (&results[0], &results[1]);
    let max_diff =
        a.2.iter()
            .zip(&b.2)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max);
    let scale = b.2.iter().map(|v| v.abs()).fold(0.0, f64::max);
    println!(
        "  contractive penalty on 20 test digits: {} {:.4} ({:.1} ms with its gradient), {} {:.4} ({:.1} ms); max |dW difference| {:.2e} of {:.2e}",
        a.0, a.1, a.3, b.0, b.1, b.3, max_diff, scale
    );
    Ok(())
}
