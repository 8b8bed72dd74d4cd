//! What the examples share: command-line options, data loading, minibatches, initialisation.
#![allow(dead_code)]

use std::path::PathBuf;

use gradus::Tensor;
use gradus::data::Mnist;
use gradus::models::CdConfig;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Options every example takes.
pub struct Args {
    /// Directory with the four MNIST IDX files (gzip or plain); the bundled subset if absent.
    pub data: Option<PathBuf>,
    pub epochs: usize,
    pub seed: u64,
    pub out: PathBuf,
    /// Gibbs steps for CD-k (RBM examples).
    pub k: usize,
    /// Persistent CD (RBM examples).
    pub pcd: bool,
    /// Hidden units, where the example has a choice.
    pub hidden: Option<usize>,
}

impl Args {
    /// Parse `--data DIR --epochs N --seed S --out DIR` with the example's default epoch count.
    pub fn parse(default_epochs: usize) -> Result<Args, String> {
        Args::parse_from(std::env::args().skip(1), default_epochs)
    }

    /// [`Args::parse`] of these arguments (an example that takes options of its own removes
    /// them first).
    pub fn parse_from(
        argv: impl Iterator<Item = String>,
        default_epochs: usize,
    ) -> Result<Args, String> {
        let mut args = Args {
            data: None,
            epochs: default_epochs,
            seed: 1,
            out: PathBuf::from("out"),
            k: 1,
            pcd: false,
            hidden: None,
        };
        let mut it = argv;
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--data" => args.data = Some(PathBuf::from(value()?)),
                "--epochs" => {
                    args.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?
                }
                "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
                "--out" => args.out = PathBuf::from(value()?),
                "--k" => args.k = value()?.parse().map_err(|e| format!("--k: {e}"))?,
                "--pcd" => args.pcd = true,
                "--hidden" => {
                    args.hidden = Some(value()?.parse().map_err(|e| format!("--hidden: {e}"))?)
                }
                "-h" | "--help" => {
                    return Err("options: --data DIR (full MNIST IDX files), --epochs N, --seed S, --out DIR, --k N, --pcd, --hidden N".into());
                }
                other => return Err(format!("unknown option {other}; try --help")),
            }
        }
        Ok(args)
    }

    /// The digits: the files in `--data`, or the subset bundled with gradus.
    pub fn mnist(&self) -> gradus::Result<Mnist> {
        let m = match &self.data {
            Some(dir) => Mnist::load(dir)?,
            None => Mnist::bundled()?,
        };
        println!(
            "data: {} training and {} test digits from {}",
            m.train_labels.len(),
            m.test_labels.len(),
            self.data
                .as_ref()
                .map_or("the bundled subset".into(), |d| d.display().to_string())
        );
        Ok(m)
    }

    pub fn rng(&self) -> StdRng {
        StdRng::seed_from_u64(self.seed)
    }
}

/// Rows `idx` of `x` as a tensor.
pub fn rows(x: &Array2<f32>, idx: &[usize]) -> Tensor {
    Tensor::from(x.select(Axis(0), idx))
}

/// Labels `idx` as an `i64` tensor.
pub fn labels(y: &[usize], idx: &[usize]) -> Tensor {
    Tensor::from(Array1::from_iter(idx.iter().map(|&i| y[i] as i64)))
}

/// All labels as an `i64` tensor.
pub fn all_labels(y: &[usize]) -> Tensor {
    Tensor::from(Array1::from_iter(y.iter().map(|&v| v as i64)))
}

/// Minibatches of a fresh permutation of `0..n`.
pub fn minibatches(n: usize, size: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order.chunks(size).map(|c| c.to_vec()).collect()
}

/// Glorot/Xavier uniform initialisation, `U(-s, s)` with `s = sqrt(6 / (fan_in + fan_out))`.
pub fn glorot(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f32> {
    let s = (6.0 / (rows + cols) as f32).sqrt();
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-s..s))
}

/// Fraction of predictions that differ from the labels.
pub fn error_rate(pred: &Tensor, labels: &[usize]) -> f64 {
    let p = pred.to_f64_vec();
    let wrong = p
        .iter()
        .zip(labels)
        .filter(|(p, l)| **p as usize != **l)
        .count();
    wrong as f64 / labels.len().max(1) as f64
}

/// The error rate of `predict` (inputs to class indices) on the test images `x`.
pub fn test_error(predict: &gradus::Function, x: &Tensor, labels: &[usize]) -> gradus::Result<f64> {
    Ok(error_rate(
        &predict.call(std::slice::from_ref(x))?[0],
        labels,
    ))
}

/// Print the final test error of `predict` on the test images `x`.
pub fn print_final_test_error(
    predict: &gradus::Function,
    x: &Tensor,
    labels: &[usize],
) -> gradus::Result<()> {
    let err = test_error(predict, x, labels)?;
    println!(
        "final test error: {:.2}% on {} digits",
        100.0 * err,
        labels.len()
    );
    Ok(())
}

/// A progress bar over `n` steps with a live message; silent when not on a terminal.
pub fn progress(n: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n as u64);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// One pass over `batches` with a progress bar showing the running mean of what `step` returns
/// (a loss or monitor); returns that mean.
pub fn epoch(
    label: &str,
    metric: &str,
    batches: &[Vec<usize>],
    mut step: impl FnMut(&[usize]) -> gradus::Result<f64>,
) -> gradus::Result<f64> {
    let bar = progress(batches.len(), label);
    let mut total = 0.0;
    for (i, idx) in batches.iter().enumerate() {
        total += step(idx)?;
        bar.inc(1);
        if i % 20 == 0 {
            bar.set_message(format!("{metric} {:.3}", total / (i + 1) as f64));
        }
    }
    bar.finish_and_clear();
    Ok(total / batches.len().max(1) as f64)
}

/// Test error of softmax regression trained by SGD on fixed features: how linearly useful a
/// representation is.
pub fn linear_probe(
    train: &Array2<f32>,
    train_labels: &[usize],
    test: &Array2<f32>,
    test_labels: &[usize],
    epochs: usize,
    rng: &mut StdRng,
) -> gradus::Result<f64> {
    use gradus::prelude::*;
    let d = train.ncols();
    let g = Graph::new();
    let x = g.input("features", DType::F32, &[None, Some(d)]);
    let y = g.input("y", DType::I64, &[None]);
    let lr = g.scalar("lr", DType::F32);
    let w = g.shared("W", Array2::<f32>::zeros((d, 10)));
    let b = g.shared("b", Array1::<f32>::zeros(10));
    let logits = x.matmul(&w) + &b;
    let loss = logits.softmax_cross_entropy(&y).mean() + w.square().sum() * 1e-5;
    let grads = grad(&loss, &[&w, &b])?;
    let updates = gradus::optim::Optimizer::momentum(0.0, 0.9)
        .learning_rate(&lr)
        .updates(&[&w, &b], &grads)?;
    let train_step = function(&[&x, &y, &lr], &[&loss])
        .updates(&gradus::optim::as_pairs(&updates))
        .compile()?;
    let predict = function(&[&x], &[&logits.argmax(1)]).compile()?;
    for epoch in 0..epochs {
        let rate = 0.1 / (1.0 + 0.2 * epoch as f32);
        for idx in minibatches(train_labels.len(), 50, rng) {
            train_step.call(&[rows(train, &idx), labels(train_labels, &idx), rate.into()])?;
        }
    }
    Ok(error_rate(
        &predict.call(&[Tensor::from(test.clone())])?[0],
        test_labels,
    ))
}

/// Test error of a linear classifier (see [`linear_probe`]) on features computed by a compiled
/// function of one `f32` input, `train` and `test` being its inputs for the two splits.
pub fn probe_features(
    features: &gradus::Function,
    train: Array2<f32>,
    test: Array2<f32>,
    mnist: &Mnist,
    rng: &mut StdRng,
) -> Result<f64, Box<dyn std::error::Error>> {
    let to_array = |x: Array2<f32>| -> Result<Array2<f32>, Box<dyn std::error::Error>> {
        let t = features.call(&[Tensor::from(x)])?.remove(0);
        Ok(t.as_f32()
            .ok_or("features are f32")?
            .clone()
            .into_dimensionality()?)
    };
    let (train_h, test_h) = (to_array(train)?, to_array(test)?);
    Ok(linear_probe(
        &train_h,
        &mnist.train_labels,
        &test_h,
        &mnist.test_labels,
        30,
        rng,
    )?)
}

/// `base` with the example's `--k` and `--pcd`.
pub fn cd_config(args: &Args, base: CdConfig) -> CdConfig {
    CdConfig {
        k: args.k,
        persistent: args.pcd,
        ..base
    }
}

/// "CD-1, lr 0.1, momentum 0.5, weight decay 0.0002, batch 20".
pub fn describe_cd(cfg: &CdConfig) -> String {
    format!(
        "{}{}, lr {}, momentum {}, weight decay {}, batch {}",
        if cfg.persistent { "PCD-" } else { "CD-" },
        cfg.k,
        cfg.lr,
        cfg.momentum,
        cfg.weight_decay,
        cfg.batch
    )
}

/// An `f32` matrix out of a tensor.
pub fn matrix(t: &Tensor) -> Result<Array2<f32>, Box<dyn std::error::Error>> {
    Ok(t.as_f32()
        .ok_or("expected f32")?
        .clone()
        .into_dimensionality()?)
}

/// The index of the first test digit of each class 0..9: where the pictures of Gibbs chains
/// start.
pub fn first_of_each_digit(labels: &[usize]) -> Vec<usize> {
    (0..10)
        .map(|c| labels.iter().position(|&l| l == c).unwrap_or(0))
        .collect()
}

/// Save rows of 28×28 images in [0, 1] (one row of the picture per matrix) as a PNG grid.
pub fn save_rows(rows: &[Array2<f32>], path: PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let grid = ndarray::concatenate(Axis(0), &views)?;
    gradus::viz::tile_unit(grid.view(), 28, 28, 10)?.save(path)?;
    Ok(())
}
