//! Acceptance test of RBM training, measured by exact log-likelihood and checked against AIS.
//!
//! Digits are the bundled MNIST subset binarized at 0.5, the convention of the reference numbers
//! in `shared/research/rbm_anchors.md` §1.10: a 784-16 RBM trained by PCD-1 (lr 0.05, no
//! momentum, no weight decay, batch 100, 50 epochs) reached an exact test log-likelihood of
//! -151.2 nats there.
//!
//! The full run is `#[ignore]`d: `cargo test --release --test rbm_likelihood -- --ignored`.

use std::time::Instant;

use gradus::data::Mnist;
use gradus::models::rbm_eval::{self, AisConfig};
use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array2, Axis, s};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Binary training and test digits as `f32` (for the trainer).
fn digits(n_train: usize, n_test: usize) -> (Array2<f32>, Array2<f32>) {
    let mnist = Mnist::bundled().unwrap().truncate(n_train, n_test);
    let bin = |x: &Array2<f32>| x.mapv(|p| if p > 0.5 { 1.0f32 } else { 0.0 });
    (bin(&mnist.train_images), bin(&mnist.test_images))
}

/// Train `rbm` by plain SGD on shuffled minibatches through the public trainer. The learning
/// rate is `cfg.lr`, decaying linearly to zero over the last `decay_epochs` epochs (none if 0).
fn train(
    rbm: &Rbm,
    g: &Graph,
    data: &Array2<f32>,
    cfg: &CdConfig,
    (epochs, decay_epochs): (usize, usize),
    seed: u64,
) {
    let lr = g.shared("lr", cfg.lr);
    let step = rbm
        .trainer_with_learning_rate(cfg, &RandomStream::new(g, seed), &lr)
        .unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..data.nrows()).collect();
    let per_epoch = data.nrows().div_ceil(cfg.batch);
    let (total, decay) = (epochs * per_epoch, decay_epochs * per_epoch);
    let mut t = 0;
    for _ in 0..epochs {
        order.shuffle(&mut rng);
        for idx in order.chunks(cfg.batch) {
            let left = (total - t) as f64;
            lr.set_value(cfg.lr * (left / decay.max(1) as f64).min(1.0))
                .unwrap();
            step.call(&[Tensor::from(data.select(Axis(0), idx))])
                .unwrap();
            t += 1;
        }
    }
}

fn pcd1(batch: usize) -> CdConfig {
    CdConfig {
        k: 1,
        persistent: true,
        lr: 0.05,
        momentum: 0.0,
        weight_decay: 0.0,
        batch,
        chains: None,
    }
}

/// A CI-sized version: 784-8, PCD-1 with 20 chains and lr 0.1 (100 updates; at batch 100 and
/// lr 0.05 twenty updates barely move the exact LL), two epochs on 1,000 digits. Training must
/// raise the exact test log-likelihood, and a short AIS run (300 betas) from the base-rate model
/// must agree with the exact log Z within half a nat.
#[test]
fn short_pcd_run_improves_exact_likelihood_and_ais_agrees() {
    let (train_x, test_x) = digits(1000, 500);
    let test64 = test_x.mapv(f64::from);
    let g = Graph::new();
    let rbm = Rbm::new(&g, 784, 8, 1).unwrap();
    rbm.init_visible_bias(&train_x).unwrap();
    let before =
        rbm_eval::log_likelihood(&rbm, &test64, rbm_eval::exact_log_partition(&rbm).unwrap())
            .unwrap();

    let cfg = CdConfig {
        lr: 0.1,
        ..pcd1(20)
    };
    train(&rbm, &g, &train_x, &cfg, (2, 0), 1);
    let log_z = rbm_eval::exact_log_partition(&rbm).unwrap();
    let after = rbm_eval::log_likelihood(&rbm, &test64, log_z).unwrap();
    assert!(after > before + 3.0, "test LL {before:.2} -> {after:.2}");

    let cfg = AisConfig::default()
        .with_base_rate(&train_x.mapv(f64::from))
        .with_betas(300);
    let ais = rbm_eval::ais_log_partition(&rbm, &cfg).unwrap();
    println!(
        "784-8 PCD-1, 2 epochs: test LL {before:.2} -> {after:.2}; log Z {log_z:.3}, AIS {:.3}",
        ais.log_z
    );
    assert!(
        (ais.log_z - log_z).abs() < 0.5,
        "AIS {:.3} vs exact {log_z:.3}",
        ais.log_z
    );
}

/// The acceptance test: 784-16 by PCD-1 for 50 epochs reaches at least -152 nats of
/// exact test log-likelihood, and AIS with the standard schedule agrees with the exact log Z
/// within 0.5 nats.
///
/// The learning rate is the reference's 0.05 for 40 epochs, then decays linearly to zero over
/// the last 10. Kept constant, PCD-1's test LL swings by up to 8 nats from one epoch to the next
/// around -150 to -159 (PCD's oscillation; a hand-written ndarray PCD-1 does the same), so the
/// value after epoch 50 was -158.8, -152.7, -151.3, -153.4, -150.9, -153.5 for seeds 1 to 6, and
/// the reference's -151.2 was one such draw. With the decay, seeds 1 to 4 gave -148.65, -148.38,
/// -148.48, -146.83.
#[test]
#[ignore = "a minute in release: cargo test --release --test rbm_likelihood -- --ignored"]
fn pcd1_784_16_reaches_minus_152_nats() {
    let (train_x, test_x) = digits(usize::MAX, usize::MAX);
    let (train64, test64) = (train_x.mapv(f64::from), test_x.mapv(f64::from));
    let g = Graph::new();
    let rbm = Rbm::new(&g, 784, 16, 1).unwrap();
    rbm.init_visible_bias(&train_x).unwrap();

    let start = Instant::now();
    train(&rbm, &g, &train_x, &pcd1(100), (50, 10), 1);
    let train_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let log_z = rbm_eval::exact_log_partition(&rbm).unwrap();
    let exact_s = start.elapsed().as_secs_f64();
    let test_ll = rbm_eval::log_likelihood(&rbm, &test64, log_z).unwrap();
    let train_ll = rbm_eval::log_likelihood(&rbm, &train64, log_z).unwrap();

    let start = Instant::now();
    let ais =
        rbm_eval::ais_log_partition(&rbm, &AisConfig::default().with_base_rate(&train64)).unwrap();
    let ais_s = start.elapsed().as_secs_f64();
    let pl = rbm_eval::pseudo_log_likelihood(
        &rbm,
        &test64.slice(s![..500, ..]).to_owned(),
        rbm_eval::Binarize::No,
    )
    .unwrap();
    println!(
        "784-16 PCD-1, 50 epochs ({train_s:.1}s): log Z {log_z:.3} ({exact_s:.2}s), test LL \
         {test_ll:.2}, train LL {train_ll:.2}, AIS log Z {:.3} [{:.3}, {:.3}] ({ais_s:.1}s), \
         test log-PL {pl:.2}",
        ais.log_z, ais.log_z_lower, ais.log_z_upper
    );
    assert!(test_ll >= -152.0, "exact test LL {test_ll:.2} < -152");
    assert!(
        (ais.log_z - log_z).abs() < 0.5,
        "AIS {:.3} vs exact {log_z:.3}",
        ais.log_z
    );
}
