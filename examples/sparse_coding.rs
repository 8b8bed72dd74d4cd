//! Sparse coding of digit patches: a dictionary of unit-norm atoms learned so that each 12x12
//! patch of a digit is a sparse combination of a few of them, the codes found by FISTA written
//! as a loop of the graph.
//!
//! Patches are cut at random places from the training digits (those with almost no ink are
//! skipped); a fixed set of patches from the test digits measures the objective
//! `½|x - zD|² + λ|z|₁` before training and after every epoch. It writes
//! `out/sc_dictionary.png` (the atoms) and `out/sc_objective.png` (the objective per epoch),
//! and prints the reconstruction error and the mean number of non-zero codes.
//!
//! `cargo run --release --example sparse_coding -- [--data DIR] [--epochs N] [--seed S] [--out DIR] [--hidden ATOMS] [--patch P] [--lambda L]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::Tensor;
use gradus::models::sparse_coding::{ScConfig, ScStats, Solver, SparseCoding};
use gradus::prelude::*;
use gradus::viz::{self, Plot};
use ndarray::Array2;
use rand::Rng;
use rand::rngs::StdRng;

/// Patches cut from the training digits each epoch.
const TRAIN_PATCHES: usize = 20_000;
/// Patches of the test digits on which the objective is measured.
const TEST_PATCHES: usize = 2_000;
/// A patch with less ink than this (the sum of its grey levels) is skipped.
const MIN_INK: f32 = 3.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (patch, lambda, rest) = own_options()?;
    let args = common::Args::parse_from(rest.into_iter(), 15)?;
    let mnist = args.mnist()?;
    let n_atoms = args.hidden.unwrap_or(patch * patch);
    let dim = patch * patch;
    let cfg = ScConfig {
        lambda,
        steps: 50,
        ..ScConfig::default()
    };
    let (batch, lr) = (100, 0.2);
    println!(
        "sparse coding of {patch}x{patch} patches: {n_atoms} atoms, lambda {lambda}, {:?} with {} steps, batch {batch}, lr {lr} / (1 + epoch / 2), {} epochs",
        cfg.solver, cfg.steps, args.epochs
    );
    std::fs::create_dir_all(&args.out)?;
    let mut rng = args.rng();
    let test = patches(&mnist.test_images, patch, TEST_PATCHES, &mut rng);

    // ANCHOR: train
    let g = Graph::new();
    let sc = SparseCoding::new(&g, dim, n_atoms, args.seed)?;
    // Atoms started at random directions that no patch selects would never move: start them
    // at patches of the training digits instead.
    sc.set_atoms(&patches(&mnist.train_images, patch, n_atoms, &mut rng))?;
    let train = sc.trainer(&cfg)?;
    let measure = sc.measure(&cfg)?;
    let test = Tensor::from(test);

    let start = Instant::now();
    let mut curve = vec![measure.call(&test)?];
    let mut training = Vec::new();
    report(0, &curve[0], start);
    for epoch in 1..=args.epochs {
        let data = patches(&mnist.train_images, patch, TRAIN_PATCHES, &mut rng);
        let rate = lr / (1.0 + (epoch - 1) as f64 / 2.0);
        let batches = common::minibatches(TRAIN_PATCHES, batch, &mut rng);
        let during = common::epoch(&format!("epoch {epoch:2}"), "objective", &batches, |idx| {
            Ok(train.step(&common::rows(&data, idx), rate)?.objective)
        })?;
        training.push(during);
        curve.push(measure.call(&test)?);
        report(epoch, &curve[epoch], start);
    }
    // ANCHOR_END: train

    let objective: Vec<f64> = curve.iter().map(|s| s.objective).collect();
    let falls = objective.windows(2).all(|w| w[1] < w[0]);
    let last = curve[curve.len() - 1];
    let ink = mean_square_norm(&test);
    println!(
        "test patches: objective {:.4} -> {:.4} ({}), squared error {:.4} per patch ({:.1}% of the patches' {ink:.3}), {:.2} non-zero codes of {n_atoms} on average",
        objective[0],
        last.objective,
        if falls {
            "fell every epoch"
        } else {
            "did NOT fall every epoch"
        },
        last.squared_error,
        100.0 * last.squared_error / ink,
        last.nonzeros,
    );

    // How far the solver's steps are from the codes' optimum, with the learned dictionary.
    for (solver, steps) in [
        (Solver::Ista, cfg.steps),
        (Solver::Fista, cfg.steps),
        (Solver::Fista, 1000),
    ] {
        let other = ScConfig {
            solver,
            steps,
            ..cfg.clone()
        };
        let s = sc.measure(&other)?.call(&test)?;
        println!(
            "  {solver:?} with {steps:4} steps: objective {:.4}, {:.2} non-zeros",
            s.objective, s.nonzeros
        );
    }

    let atoms = sc.atoms()?;
    let cols = (n_atoms as f64).sqrt().ceil() as usize;
    viz::tile(atoms.view(), patch, patch, cols)?
        .upscaled(3)
        .save(args.out.join("sc_dictionary.png"))?;
    Plot::new(format!(
        "sparse coding, {patch}x{patch} patches, {n_atoms} atoms, lambda {lambda}"
    ))
    .with_x_label("epoch")
    .with_y_label("0.5|x - zD|^2 + lambda|z|_1 per patch")
    .with_points(
        "test patches, after the epoch",
        objective.iter().enumerate().map(|(e, &v)| (e as f64, v)),
    )
    .with_series("training patches, during the epoch", &training)
    .save(args.out.join("sc_objective.png"))?;
    println!(
        "wrote {0}/sc_dictionary.png, {0}/sc_objective.png",
        args.out.display()
    );
    if !falls {
        return Err("the objective did not fall every epoch".into());
    }
    Ok(())
}

fn report(epoch: usize, s: &ScStats, start: Instant) {
    println!(
        "  epoch {epoch:3}  objective {:.4}  squared error {:.4}  non-zeros {:5.2}  ({:.1}s)",
        s.objective,
        s.squared_error,
        s.nonzeros,
        start.elapsed().as_secs_f64()
    );
}

/// `n` patches of `p x p` pixels, each from a random digit of `images` at a random place, with
/// at least `MIN_INK` of ink.
fn patches(images: &Array2<f32>, p: usize, n: usize, rng: &mut StdRng) -> Array2<f32> {
    let side = 28;
    let mut out = Array2::zeros((n, p * p));
    let mut k = 0;
    while k < n {
        let img = images.row(rng.random_range(0..images.nrows()));
        let (r0, c0) = (
            rng.random_range(0..=side - p),
            rng.random_range(0..=side - p),
        );
        let mut row = out.row_mut(k);
        for r in 0..p {
            for c in 0..p {
                row[r * p + c] = img[(r0 + r) * side + c0 + c];
            }
        }
        if row.sum() >= MIN_INK {
            k += 1;
        }
    }
    out
}

/// The mean of `|x|²` over the rows.
fn mean_square_norm(x: &Tensor) -> f64 {
    let v = x.to_f64_vec();
    let rows = x.shape()[0].max(1);
    v.iter().map(|a| a * a).sum::<f64>() / rows as f64
}

/// `--patch P` and `--lambda L`, and the other arguments for [`common::Args`].
fn own_options() -> Result<(usize, f64, Vec<String>), String> {
    let (mut patch, mut lambda, mut rest) = (12, 0.5, Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--patch" => patch = value()?.parse().map_err(|e| format!("--patch: {e}"))?,
            "--lambda" => lambda = value()?.parse().map_err(|e| format!("--lambda: {e}"))?,
            "-h" | "--help" => {
                return Err("options: --patch P (side of a patch, 2..=28), --lambda L, and --data DIR, --epochs N, --seed S, --out DIR, --hidden ATOMS".into());
            }
            _ => rest.push(flag),
        }
    }
    if !(2..=28).contains(&patch) {
        return Err(format!("--patch must be 2..=28, got {patch}"));
    }
    Ok((patch, lambda, rest))
}
