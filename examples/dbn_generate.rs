//! The generative DBN of Hinton, Osindero & Teh (2006) on MNIST digits: directed 784-500-500
//! layers under a top RBM of 2000 units over [the 500 penultimate units, 10 label units],
//! pretrained greedily by CD (the top by PCD, the label units one softmax group), then
//! fine-tuned by contrastive wake-sleep ("up-down") with the recognition and generative weights
//! untied. It draws digits of chosen classes: clamp the label, run Gibbs steps in the top RBM,
//! one down pass. The clamped label's input to the top units is scaled by `--label-weight`
//! (default 3; 1 samples the model's own conditional), as if the label units were duplicated.
//!
//! A classifier trained apart (a 784-500-10 ReLU network on the real training digits) then
//! labels 1,000 generated digits, 100 per class; the example prints how many it labels as the
//! class they were drawn for, before and after up-down (after it at label weight 1 and at
//! `--label-weight`), how varied the digits of a class are, and the test error of the
//! generative model's own classifier (the label of lowest free energy). Writes
//! `out/dbn_generated.png` (one class per row, ten digits each, at `--label-weight`) and
//! `out/dbn_up_down_curve.png` (the generative cross-entropy of the training digits per up-down
//! epoch).
//!
//! `cargo run --release --example dbn_generate -- [--data DIR] [--epochs N] [--seed S]
//! [--out DIR] [--hidden N] [--top N] [--gibbs N] [--label-weight W]` (`--epochs`: up-down
//! epochs; `--hidden`: units of the two directed layers; `--top`: the top RBM's hidden units;
//! `--gibbs`: Gibbs steps per generated digit; `--label-weight`: the scale of the clamped
//! label's input)

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::CdConfig;
use gradus::models::dbn::{GenerativeDbn, LayerSchedule, Progress, UpDownConfig};
use gradus::optim::{Optimizer, as_pairs};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::Plot;
use ndarray::{Array1, s};

/// CD epochs per layer of greedy pretraining.
const PRETRAIN_EPOCHS: usize = 10;
/// Generated digits per class for the classifier to label.
const PER_CLASS: usize = 100;

/// Remove `--name VALUE` from `argv` and parse it, or `default` without it.
fn own_option<T: std::str::FromStr>(
    argv: &mut Vec<String>,
    name: &str,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match argv.iter().position(|a| a == name) {
        Some(at) if at + 1 < argv.len() => {
            let v = argv.remove(at + 1);
            argv.remove(at);
            v.parse().map_err(|e| format!("{name}: {e}"))
        }
        Some(_) => Err(format!("{name} needs a value")),
        None => Ok(default),
    }
}

/// The classifier trained apart: 784-500-10, ReLU, dropout on the hidden layer, SGD with
/// momentum on the real training digits. Returns its predictor and test error.
fn classifier(
    mnist: &gradus::data::Mnist,
    seed: u64,
) -> Result<(Function, f64), Box<dyn std::error::Error>> {
    let mut rng = rand::SeedableRng::seed_from_u64(seed);
    let g = Graph::new();
    let stream = RandomStream::new(&g, seed);
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let y = g.input("y", DType::I64, &[None]);
    let lr = g.scalar("lr", DType::F32);
    let w1 = g.shared("W1", common::glorot(784, 500, &mut rng));
    let b1 = g.shared("b1", Array1::<f32>::zeros(500));
    let w2 = g.shared("W2", common::glorot(500, 10, &mut rng));
    let b2 = g.shared("b2", Array1::<f32>::zeros(10));
    let h = (x.matmul(&w1) + &b1).relu();
    let dropped = &(&h * &stream.uniform(&h).lt(0.5).cast(DType::F32)) * 2.0;
    let loss = (dropped.matmul(&w2) + &b2).softmax_cross_entropy(&y).mean();
    let params = [&w1, &b1, &w2, &b2];
    let updates = Optimizer::momentum(0.0, 0.9)
        .learning_rate(&lr)
        .updates(&params, &grad(&loss, &params)?)?;
    let train = function(&[&x, &y, &lr], &[&loss])
        .updates(&as_pairs(&updates))
        .compile()?;
    let predict = function(&[&x], &[&(h.matmul(&w2) + &b2).argmax(1)]).compile()?;
    for epoch in 1..=15 {
        let rate = 0.05 / (1.0 + 0.1 * (epoch - 1) as f32);
        let batches = common::minibatches(mnist.train_labels.len(), 50, &mut rng);
        common::epoch(&format!("classifier {epoch:2}"), "loss", &batches, |idx| {
            let feed = [
                common::rows(&mnist.train_images, idx),
                common::labels(&mnist.train_labels, idx),
                rate.into(),
            ];
            train.call(&feed)?[0].item()
        })?;
    }
    let test_x = Tensor::from(mnist.test_images.clone());
    let err = common::test_error(&predict, &test_x, &mnist.test_labels)?;
    Ok((predict, err))
}

/// What the classifier makes of `PER_CLASS` digits drawn for each class: the fraction labelled
/// as intended per class, and the digits, class by class.
fn judge(
    generate: &Function,
    predict: &Function,
    gibbs: usize,
    label_weight: f32,
) -> Result<(Vec<f64>, ndarray::Array2<f32>), Box<dyn std::error::Error>> {
    let wanted: Vec<usize> = (0..10 * PER_CLASS).map(|i| i / PER_CLASS).collect();
    let feed = [
        common::all_labels(&wanted),
        (gibbs as i64).into(),
        label_weight.into(),
    ];
    let images = generate.call(&feed)?;
    let seen = predict.call(&images)?[0].to_f64_vec();
    let rates = (0..10)
        .map(|c| {
            let hits = (c * PER_CLASS..(c + 1) * PER_CLASS)
                .filter(|&i| seen[i] as usize == c)
                .count();
            hits as f64 / PER_CLASS as f64
        })
        .collect();
    Ok((rates, common::matrix(&images[0])?))
}

/// The mean squared pixel distance between two digits of one class, averaged over the classes:
/// how varied the digits drawn for a class are (a generator that drew one prototype per class
/// would score 0).
fn spread(images: &ndarray::Array2<f32>, labels: &[usize]) -> f64 {
    let per_class = (0..10).map(|c| {
        let rows: Vec<_> = (0..labels.len())
            .filter(|&i| labels[i] == c)
            .take(PER_CLASS)
            .collect();
        let mut total = 0.0;
        for (a, &i) in rows.iter().enumerate() {
            for &j in &rows[a + 1..] {
                let d = &images.row(i) - &images.row(j);
                total += d.mapv(|v| f64::from(v * v)).sum();
            }
        }
        total / (rows.len() * (rows.len() - 1) / 2).max(1) as f64
    });
    per_class.sum::<f64>() / 10.0
}

fn report(when: &str, rates: &[f64]) {
    let overall = 100.0 * rates.iter().sum::<f64>() / rates.len() as f64;
    let per: Vec<String> = rates.iter().map(|r| format!("{:.0}", 100.0 * r)).collect();
    println!(
        "{when}: {overall:.1}% of {} generated digits labelled as intended (per class 0-9, %: {})",
        10 * PER_CLASS,
        per.join(" ")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let top_units = own_option(&mut argv, "--top", 2000)?;
    let gibbs = own_option(&mut argv, "--gibbs", 300)?;
    let label_weight = own_option(&mut argv, "--label-weight", 3.0f32)?;
    let args = common::Args::parse_from(argv.into_iter(), 10)?;
    let mnist = args.mnist()?;
    let hidden = args.hidden.unwrap_or(500);
    let sizes = [784, hidden, hidden, top_units];
    let start = Instant::now();

    let (predict, err) = classifier(&mnist, args.seed)?;
    println!(
        "classifier trained apart: {:.2}% test error ({:.1}s)",
        100.0 * err,
        start.elapsed().as_secs_f64()
    );

    // ANCHOR: pretrain
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let dbn = GenerativeDbn::new(&g, &sizes, 10, args.seed)?;
    let layer = CdConfig::default();
    let top = CdConfig {
        persistent: true,
        lr: 0.05,
        momentum: 0.0,
        batch: 100,
        ..CdConfig::default()
    };
    let mut schedule = vec![
        LayerSchedule {
            epochs: PRETRAIN_EPOCHS,
            cd: layer
        };
        2
    ];
    schedule.push(LayerSchedule {
        epochs: PRETRAIN_EPOCHS,
        cd: top,
    });
    let mut bar = None;
    dbn.pretrain(
        &mnist.train_images,
        &mnist.train_labels,
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

    let generate = dbn.generator(&stream)?;
    let own = dbn.predictor()?;
    let test_x = Tensor::from(mnist.test_images.clone());
    let own_error = || common::test_error(&own, &test_x, &mnist.test_labels);
    println!(
        "the generative DBN's own classifier: {:.2}% test error",
        100.0 * own_error()?
    );
    let (rates, _) = judge(&generate, &predict, gibbs, 1.0)?;
    report("after pretraining", &rates);
    println!("({:.1}s)", start.elapsed().as_secs_f64());

    // ANCHOR: up_down
    let cfg = UpDownConfig::default();
    let up_down = dbn.up_down(&cfg, &stream)?;
    let mut order = args.rng();
    let mut curve = Vec::new();
    for epoch in 1..=args.epochs {
        let bar = common::progress(0, &format!("up-down {epoch:2}"));
        let ce = up_down.epoch(
            &mnist.train_images,
            &mnist.train_labels,
            &mut order,
            |i, n, ce| {
                bar.set_length(n as u64);
                bar.set_position(i as u64);
                bar.set_message(format!("cross-entropy {ce:.2}"));
            },
        )?;
        bar.finish_and_clear();
        curve.push(ce);
        println!(
            "up-down epoch {epoch:3}  generative cross-entropy {ce:8.3}  ({:.1}s)",
            start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: up_down
    println!(
        "the generative DBN's own classifier: {:.2}% test error",
        100.0 * own_error()?
    );
    let (rates, images) = judge(&generate, &predict, gibbs, 1.0)?;
    report("after up-down, label weight 1", &rates);
    let drawn: Vec<usize> = (0..10 * PER_CLASS).map(|i| i / PER_CLASS).collect();
    let real = spread(&mnist.test_images, &mnist.test_labels);
    let mut spreads = vec![spread(&images, &drawn)];
    let mut images = images;
    if label_weight != 1.0 {
        let (rates, weighted) = judge(&generate, &predict, gibbs, label_weight)?;
        report(
            &format!("after up-down, label weight {label_weight}"),
            &rates,
        );
        spreads.push(spread(&weighted, &drawn));
        images = weighted;
    }
    println!(
        "spread within a class (mean squared distance of two digits): {} generated, {real:.1} \
         real test digits",
        spreads
            .iter()
            .map(|s| format!("{s:.1}"))
            .collect::<Vec<_>>()
            .join(" then ")
    );

    std::fs::create_dir_all(&args.out)?;
    let rows: Vec<_> = (0..10)
        .map(|c| {
            images
                .slice(s![c * PER_CLASS..c * PER_CLASS + 10, ..])
                .to_owned()
        })
        .collect();
    common::save_rows(&rows, args.out.join("dbn_generated.png"))?;
    if !curve.is_empty() {
        Plot::new(format!(
            "generative DBN {sizes:?} + 10 labels: up-down fine-tuning"
        ))
        .with_x_label("epoch")
        .with_y_label("cross-entropy of the digits, nats")
        .with_series("generative cross-entropy", &curve)
        .save(args.out.join("dbn_up_down_curve.png"))?;
    }
    println!(
        "wrote {0}/dbn_generated.png and {0}/dbn_up_down_curve.png ({1:.0}s in all)",
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
