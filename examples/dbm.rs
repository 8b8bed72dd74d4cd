//! A deep Boltzmann machine on MNIST digits (Salakhutdinov & Hinton 2009): greedy pretraining
//! of two RBMs with the doubled-input trick, joint training with a mean-field positive phase
//! and persistent chains, the AIS estimate of the test log-likelihood's variational lower
//! bound, samples, and discriminative fine-tuning with the input augmented by the mean-field
//! `q(h2 | v)`.
//!
//! The DBM learns and is measured on digits binarized at 0.5 (the convention of the RBM
//! log-likelihoods of `examples/rbm_likelihood.rs`); the classifier reads the grey levels.
//! Writes `out/dbm_samples.png` (Gibbs chains of the DBM started from ten test digits, one row
//! per 100 sweeps), `out/dbm_curve.png` (the test bound by quick AIS runs every other epoch of
//! joint training, and the mean-field reconstruction error per epoch) and
//! `out/dbm_finetune_curve.png` (fine-tuning loss and test error per epoch).
//!
//! `cargo run --release --example dbm -- [--data DIR] [--epochs N] [--seed S] [--out DIR]
//! [--hidden N] [--pretrain N] [--finetune N] [--betas N] [--quick N] [--compare]`
//! (`--epochs`: joint-training epochs, 10; `--hidden`: units per hidden layer, 500;
//! `--pretrain`: CD epochs per RBM, 10; `--finetune`: fine-tuning epochs, 40; `--betas`:
//! temperatures of the final AIS run, 5,000; `--quick`: of the quick ones, 1,000; `--compare`:
//! also pretrain a DBN of the same sizes and report its bound and its first RBM's AIS
//! log-likelihood on the same digits)

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::CdConfig;
use gradus::models::dbm::{Dbm, DbmConfig, DbmParams};
use gradus::models::dbn::{Dbn, FineTuneConfig, LayerSchedule, Progress};
use gradus::models::rbm_eval::{AisConfig, RbmParams, base_rate_visible_bias, binarize};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::Plot;
use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mean-field updates wherever a posterior is needed.
const MEAN_FIELD: usize = 10;

/// The example's own options, taken out of the arguments before the common ones are parsed.
struct Own {
    pretrain: usize,
    finetune: usize,
    betas: usize,
    quick: usize,
    compare: bool,
}

fn own_options() -> Result<(Own, Vec<String>), String> {
    let mut own = Own {
        pretrain: 10,
        finetune: 40,
        betas: 5_000,
        quick: 1000,
        compare: false,
    };
    let mut rest = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--compare" {
            own.compare = true;
            continue;
        }
        let slot = match flag.as_str() {
            "--pretrain" => &mut own.pretrain,
            "--finetune" => &mut own.finetune,
            "--betas" => &mut own.betas,
            "--quick" => &mut own.quick,
            _ => {
                rest.push(flag);
                continue;
            }
        };
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        *slot = value.parse().map_err(|e| format!("{flag}: {e}"))?;
    }
    Ok((own, rest))
}

/// The mean bound on the test digits with `log Z` from an AIS run of `cfg`.
fn test_bound(
    dbm: &Dbm,
    test: &Array2<f64>,
    base: &ndarray::Array1<f64>,
    cfg: AisConfig,
) -> gradus::Result<(f64, gradus::models::rbm_eval::AisEstimate)> {
    let p = DbmParams::of(dbm)?;
    let cfg = AisConfig {
        base_vbias: Some(base.clone()),
        ..cfg
    };
    let ais = p.ais_log_partition(&cfg)?;
    let bound = p.variational_bound(test, MEAN_FIELD, ais.log_z)?;
    Ok((bound.mean().unwrap_or(f64::NAN), ais))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `--compare`: a DBN of the same sizes pretrained as the DBM's RBMs are (CD-1, same epochs, no
/// doubling), on the same digits. Returns the AIS test log-likelihood of its first RBM (784-h1)
/// and the DBN's variational lower bound (Salakhutdinov & Murray 2008): with `q(h1 | v)` the
/// first RBM's posterior, `log p(v) >= E_q[log p(v | h1) + log p*(h1)] + H(q) - log Z`, where
/// `p*(h1)` and `Z` are the top RBM's; the expectation is estimated with 10 samples of `h1`
/// per digit, `H(q)` is exact.
fn compare(
    sizes: &[usize; 3],
    layer: &LayerSchedule,
    (train, test): (&Array2<f64>, &Array2<f64>),
    ais: &AisConfig,
    seed: u64,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let g = Graph::new();
    let dbn = Dbn::new(&g, sizes, seed)?;
    let stream = RandomStream::new(&g, seed);
    let train32 = train.mapv(|x| x as f32);
    dbn.pretrain(
        &train32,
        &[layer.clone(), layer.clone()],
        &stream,
        seed,
        |_| {},
    )?;
    let (bottom, top) = (RbmParams::of(&dbn.rbms[0])?, RbmParams::of(&dbn.rbms[1])?);
    let with_base = |data: &Array2<f64>| AisConfig {
        base_vbias: Some(base_rate_visible_bias(data)),
        ..ais.clone()
    };
    let log_z1 = bottom.ais_log_partition(&with_base(train))?.log_z;
    let rbm_ll = bottom.log_likelihood(test, log_z1)?;
    let up = |v: &Array2<f64>| (v.dot(&bottom.w) + &bottom.hbias).mapv(sigmoid);
    let log_z2 = top.ais_log_partition(&with_base(&up(train)))?.log_z;
    let mu = up(test);
    let entropy = mu.mapv(|m| {
        let m = m.clamp(1e-12, 1.0 - 1e-12);
        -(m * m.ln() + (1.0 - m) * (1.0 - m).ln())
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let samples = 10;
    let mut expected = 0.0;
    for _ in 0..samples {
        let h = mu.mapv(|m| if rng.random::<f64>() < m { 1.0 } else { 0.0 });
        let a = h.dot(&bottom.w.t()) + &bottom.vbias;
        let log_p_v = (test * &a - a.mapv(softplus)).sum_axis(Axis(1));
        let log_p_h = -top.free_energy(&h)?;
        expected += (log_p_v + log_p_h).mean().unwrap_or(f64::NAN) / samples as f64;
    }
    let dbn_bound = expected + entropy.sum_axis(Axis(1)).mean().unwrap_or(f64::NAN) - log_z2;
    Ok((rbm_ll, dbn_bound))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (own, rest) = own_options()?;
    let args = common::Args::parse_from(rest.into_iter(), 10)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let hidden = args.hidden.unwrap_or(500);
    let sizes = [784, hidden, hidden];
    let train_x = binarize(&mnist.train_images, 0.5);
    let test_x = binarize(&mnist.test_images, 0.5);
    let (train32, test32) = (train_x.mapv(|x| x as f32), test_x.mapv(|x| x as f32));
    let start = Instant::now();

    // ANCHOR: pretrain
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let dbm = Dbm::new(&g, &sizes, args.seed)?;
    // The doubled input doubles the free energy's gradient: lr 0.05 here is the 0.1 of the
    // DBN's RBMs.
    let cd = CdConfig {
        lr: 0.05,
        batch: 20,
        ..CdConfig::default()
    };
    let layer = LayerSchedule {
        epochs: own.pretrain,
        cd,
    };
    let compared = own.compare.then_some(layer.clone());
    println!(
        "DBM {sizes:?}: {} epochs per RBM of {} (doubled input), then {} epochs of joint \
         training",
        own.pretrain,
        common::describe_cd(&layer.cd),
        args.epochs
    );
    let mut bar = None;
    let pretraining = dbm.pretrain(
        &train32,
        &[layer.clone(), layer],
        &stream,
        args.seed,
        |p: &Progress| {
            let b = bar.get_or_insert_with(|| {
                common::progress(
                    p.batches,
                    &format!("RBM {} epoch {:2}", p.layer, p.epoch + 1),
                )
            });
            b.inc(1);
            b.set_message(format!("reconstruction error {:.2}", p.error));
            if p.batch == p.batches {
                b.finish_and_clear();
                bar = None;
            }
        },
    )?;
    // ANCHOR_END: pretrain
    println!(
        "pretraining: reconstruction error per RBM {:?} ({:.1}s)",
        pretraining
            .iter()
            .map(|c| (c[0] as f32, c[c.len() - 1] as f32))
            .collect::<Vec<_>>(),
        start.elapsed().as_secs_f64()
    );

    // The AIS start model: base rates of the training digits and of their q(h2); a quick AIS
    // run per epoch traces the bound, a long one at the end measures it.
    let quick = AisConfig::default()
        .with_betas(own.quick.max(2))
        .with_seed(args.seed);
    let base = DbmParams::of(&dbm)?.base_rate(&train_x, MEAN_FIELD)?;
    let (bound0, _) = test_bound(&dbm, &test_x, &base, quick.clone())?;
    println!(
        "after pretraining: test bound {bound0:.2} nats (quick AIS, {} betas)",
        own.quick
    );

    // ANCHOR: train
    let cfg = DbmConfig::default();
    let trainer = dbm.trainer(&cfg, &stream)?;
    // The fantasy particles start at h1 states of random training digits.
    let mf = dbm.mean_field_fn(MEAN_FIELD)?;
    let picks: Vec<usize> = (0..cfg.chains)
        .map(|_| rng.random_range(0..train32.nrows()))
        .collect();
    let mu1 = common::matrix(&mf.call(&[common::rows(&train32, &picks)])?[0])?;
    trainer.set_chains(&mu1.mapv(|p| if rng.random::<f32>() < p { 1.0f32 } else { 0.0 }))?;
    let (mut recon, mut bounds) = (Vec::new(), vec![(0, bound0)]);
    for epoch in 1..=args.epochs {
        // The step size falls as 1 / (1 + epoch / 5), as stochastic approximation asks.
        let lr = cfg.lr / (1.0 + (epoch - 1) as f64 / 5.0);
        trainer
            .learning_rate()
            .set_value(Tensor::scalar(lr, DType::F32))?;
        let bar = common::progress(
            train32.nrows().div_ceil(cfg.batch),
            &format!("DBM epoch {epoch:2}"),
        );
        recon.push(trainer.epoch(&train32, &mut rng, |_, _, err| {
            bar.inc(1);
            bar.set_message(format!("mean-field reconstruction error {err:.2}"));
        })?);
        bar.finish_and_clear();
        // The quick AIS runs trace the bound every other epoch.
        let traced = own.quick > 0 && (epoch % 2 == 0 || epoch == args.epochs);
        if traced {
            bounds.push((epoch, test_bound(&dbm, &test_x, &base, quick.clone())?.0));
        }
        println!(
            "epoch {epoch:3}  lr {lr:.4}  reconstruction error {:7.3}  {}({:.1}s)",
            recon[epoch - 1],
            if traced {
                format!(
                    "test bound {:8.2} (quick AIS)  ",
                    bounds[bounds.len() - 1].1
                )
            } else {
                String::new()
            },
            start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: train

    // ANCHOR: evaluate
    let ais_start = Instant::now();
    let long = AisConfig::default()
        .with_betas(own.betas)
        .with_seed(args.seed + 1);
    let (bound, ais) = test_bound(&dbm, &test_x, &base, long)?;
    let train_bound = DbmParams::of(&dbm)?
        .variational_bound(&train_x, MEAN_FIELD, ais.log_z)?
        .mean()
        .unwrap_or(f64::NAN);
    // ANCHOR_END: evaluate
    println!(
        "AIS log Z {:.2} [{:.2}, {:.2}] (100 runs, {} betas, {:.1}s)\n\
         variational lower bound on log p(v): test {bound:.2} nats, train {train_bound:.2}",
        ais.log_z,
        ais.log_z_lower,
        ais.log_z_upper,
        own.betas,
        ais_start.elapsed().as_secs_f64()
    );

    if let Some(layer) = compared {
        let compare_start = Instant::now();
        let ais = AisConfig::default()
            .with_betas(own.betas)
            .with_seed(args.seed + 1);
        let (rbm_ll, dbn_bound) = compare(&sizes, &layer, (&train_x, &test_x), &ais, args.seed)?;
        println!(
            "compare (same digits, same CD epochs, AIS with {} betas): RBM 784-{hidden} test \
             log-likelihood {rbm_ll:.2} nats, DBN {sizes:?} test bound {dbn_bound:.2} \
             ({:.1}s)",
            own.betas,
            compare_start.elapsed().as_secs_f64()
        );
    }

    // Samples: chains started at (sampled) mean-field h1 of one test digit per class.
    std::fs::create_dir_all(&args.out)?;
    let starts = common::first_of_each_digit(&mnist.test_labels);
    let digits = test32.select(Axis(0), &starts);
    let sampler = dbm.sampler(100, &stream)?;
    let mu1 = common::matrix(&mf.call(&[Tensor::from(digits.clone())])?[0])?;
    let mut state = Tensor::from(mu1.mapv(|p| if rng.random::<f32>() < p { 1.0f32 } else { 0.0 }));
    let mut rows = vec![digits];
    for _ in 0..9 {
        let mut out = sampler.call(&[state])?;
        rows.push(common::matrix(&out[1])?);
        state = out.remove(0);
    }
    common::save_rows(&rows, args.out.join("dbm_samples.png"))?;

    // ANCHOR: finetune
    let tune = FineTuneConfig::default();
    let (lr0, decay, batch) = (0.2f32, 0.05f32, 50);
    // The classifier reads the grey levels (better than the binarized digits by about half a
    // point of test error), each augmented with its mean-field q(h2).
    let train_aug = dbm.augment(&mnist.train_images, MEAN_FIELD)?;
    let test_aug = Tensor::from(dbm.augment(&mnist.test_images, MEAN_FIELD)?);
    let net = dbm.classifier(10, args.seed)?;
    let step = net.trainer(&tune, &stream)?;
    let predict = net.predictor()?;
    let (mut losses, mut errors) = (Vec::new(), Vec::new());
    let tune_start = Instant::now();
    for epoch in 1..=own.finetune {
        let rate = lr0 / (1.0 + decay * (epoch - 1) as f32);
        let batches = common::minibatches(train_aug.nrows(), batch, &mut rng);
        losses.push(common::epoch(
            &format!("fine-tune {epoch:2}"),
            "loss",
            &batches,
            |idx| {
                let feed = [
                    common::rows(&train_aug, idx),
                    common::labels(&mnist.train_labels, idx),
                    rate.into(),
                ];
                step.call(&feed)?[0].item()
            },
        )?);
        errors.push(100.0 * common::test_error(&predict, &test_aug, &mnist.test_labels)?);
        println!(
            "fine-tune {epoch:3}  lr {rate:.4}  loss {:.4}  test error {:.2}%  ({:.1}s)",
            losses[epoch - 1],
            errors[epoch - 1],
            tune_start.elapsed().as_secs_f64()
        );
    }
    // ANCHOR_END: finetune

    Plot::new(format!("DBM {sizes:?}: joint training"))
        .with_x_label("epoch of joint training (0: after pretraining)")
        .with_y_label("test log-likelihood bound (nats, quick AIS)")
        .with_points(
            "variational bound on test digits",
            bounds.iter().map(|&(e, b)| (e as f64, b)),
        )
        .with_right_label("squared reconstruction error per digit")
        .with_right_series("mean-field reconstruction error", &recon)
        .save(args.out.join("dbm_curve.png"))?;
    Plot::new(format!("DBM {sizes:?} + softmax: fine-tuning"))
        .with_x_label("epoch")
        .with_y_label("training loss (cross-entropy)")
        .with_series("training loss", &losses)
        .with_right_label("test error (%)")
        .with_right_series("test error", &errors)
        .save(args.out.join("dbm_finetune_curve.png"))?;
    println!(
        "wrote {0}/dbm_samples.png, {0}/dbm_curve.png, {0}/dbm_finetune_curve.png",
        args.out.display()
    );
    println!(
        "final: test bound {bound:.2} nats, test error {:.2}% on {} digits ({:.0}s)",
        errors.last().copied().unwrap_or(f64::NAN),
        mnist.test_labels.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
