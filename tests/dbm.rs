//! Deep Boltzmann machines: the evaluation tools against exact enumeration on a 6-4-3 DBM
//! (8,192 joint states), and a CI-sized run of pretraining, joint training and fine-tuning on
//! the bundled digits.

use gradus::data::Mnist;
use gradus::models::CdConfig;
use gradus::models::dbm::{Dbm, DbmConfig, DbmParams};
use gradus::models::dbn::{FineTuneConfig, LayerSchedule};
use gradus::models::rbm_eval::AisConfig;
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A 6-4-3 DBM with uniform random parameters in `[-scale, scale)`.
fn random_dbm(scale: f64, seed: u64) -> DbmParams {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m =
        |r: usize, c: usize| Array2::from_shape_fn((r, c), |_| rng.random_range(-scale..scale));
    let (w1, w2) = (m(6, 4), m(4, 3));
    let (b, c1, c2) = (m(1, 6), m(1, 4), m(1, 3));
    let row = |a: Array2<f64>| a.row(0).to_owned();
    DbmParams::new(w1, w2, row(b), row(c1), row(c2)).unwrap()
}

/// All `2^n` binary rows.
fn states(n: usize) -> Array2<f64> {
    Array2::from_shape_fn((1 << n, n), |(k, j)| (k >> j & 1) as f64)
}

fn logsumexp(x: &[f64]) -> f64 {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// `-E(v, h1, h2)` straight from the definition.
fn neg_energy(p: &DbmParams, v: &Array1<f64>, h1: &Array1<f64>, h2: &Array1<f64>) -> f64 {
    v.dot(&p.vbias)
        + h1.dot(&p.h1bias)
        + h2.dot(&p.h2bias)
        + v.dot(&p.w1.dot(h1))
        + h1.dot(&p.w2.dot(h2))
}

/// `log Σ_{h1, h2} exp(-E(v, h1, h2))` for one `v`, state by state.
fn brute_log_p_star(p: &DbmParams, v: &Array1<f64>) -> f64 {
    let (s1, s2) = (states(4), states(3));
    let terms: Vec<f64> = s1
        .rows()
        .into_iter()
        .flat_map(|h1| {
            s2.rows()
                .into_iter()
                .map(move |h2| (h1.to_owned(), h2.to_owned()))
        })
        .map(|(h1, h2)| neg_energy(p, v, &h1, &h2))
        .collect();
    logsumexp(&terms)
}

/// `Σ_h q(h) (-E(v, h)) - Σ_h q(h) log q(h)` for the factorial `q` with means `mu1`, `mu2`,
/// summed over all 2^7 hidden states: the mean-field bound without its closed form.
fn enumerated_bound(p: &DbmParams, v: &Array1<f64>, mu1: &[f64], mu2: &[f64]) -> f64 {
    let q = |h: &Array1<f64>, mu: &[f64]| -> f64 {
        h.iter()
            .zip(mu)
            .map(|(&h, &m)| if h > 0.5 { m } else { 1.0 - m })
            .product()
    };
    let mut total = 0.0;
    for h1 in states(4).rows() {
        for h2 in states(3).rows() {
            let (h1, h2) = (h1.to_owned(), h2.to_owned());
            let w = q(&h1, mu1) * q(&h2, mu2);
            if w > 0.0 {
                total += w * (neg_energy(p, v, &h1, &h2) - w.ln());
            }
        }
    }
    total
}

#[test]
fn log_z_and_unnormalized_probabilities_match_enumeration() {
    let p = random_dbm(1.5, 7);
    let all_v = states(6);
    let log_p_star: Vec<f64> = all_v
        .rows()
        .into_iter()
        .map(|v| brute_log_p_star(&p, &v.to_owned()))
        .collect();
    let log_z = logsumexp(&log_p_star);
    let exact = p.exact_log_partition().unwrap();
    assert!((exact - log_z).abs() < 1e-10, "{exact} vs {log_z}");
    let got = p.log_unnormalized(&all_v).unwrap();
    for (g, w) in got.iter().zip(&log_p_star) {
        assert!((g - w).abs() < 1e-10, "{g} vs {w}");
    }
    // AIS over [v, h2] with h1 summed out, from the uniform model and from a base rate.
    for cfg in [
        AisConfig::default().with_betas(2000).with_seed(3),
        AisConfig {
            base_vbias: Some(p.base_rate(&all_v, 10).unwrap()),
            ..AisConfig::default().with_betas(1000).with_seed(4)
        },
    ] {
        let ais = p.ais_log_partition(&cfg).unwrap();
        assert!(
            (ais.log_z - log_z).abs() < 0.1,
            "AIS {} vs {log_z}",
            ais.log_z
        );
    }
}

#[test]
fn mean_field_is_a_stationary_point_of_the_bound_below_the_exact_likelihood() {
    let p = random_dbm(1.0, 11);
    let all_v = states(6);
    let log_z = p.exact_log_partition().unwrap();
    let exact = p.log_unnormalized(&all_v).unwrap() - log_z;
    let bound = p.variational_bound(&all_v, 200, log_z).unwrap();
    let (mu1, mu2) = p.mean_field(&all_v, 200).unwrap();
    for r in 0..all_v.nrows() {
        let v = all_v.row(r).to_owned();
        let (m1, m2) = (mu1.row(r).to_vec(), mu2.row(r).to_vec());
        // The closed form is the enumerated bound, and it lies below log p(v).
        let enumerated = enumerated_bound(&p, &v, &m1, &m2) - log_z;
        assert!(
            (bound[r] - enumerated).abs() < 1e-10,
            "{} vs {enumerated}",
            bound[r]
        );
        assert!(
            bound[r] <= exact[r] + 1e-12,
            "bound {} above log p {}",
            bound[r],
            exact[r]
        );
        // At the fixed point every partial derivative of the bound in the means is zero.
        for i in 0..7 {
            let at = |e: f64| {
                let (mut a, mut b) = (m1.clone(), m2.clone());
                if i < 4 {
                    a[i] += e
                } else {
                    b[i - 4] += e
                }
                enumerated_bound(&p, &v, &a, &b)
            };
            let slope = (at(1e-5) - at(-1e-5)) / 2e-5;
            assert!(slope.abs() < 1e-6, "row {r} mean {i}: slope {slope}");
        }
    }
    // Without W2 the posterior is factorial, so the bound is tight.
    let free = DbmParams {
        w2: Array2::zeros((4, 3)),
        ..p.clone()
    };
    let log_z = free.exact_log_partition().unwrap();
    let gap = free.log_unnormalized(&all_v).unwrap()
        - log_z
        - free.variational_bound(&all_v, 5, log_z).unwrap();
    assert!(gap.iter().all(|g| g.abs() < 1e-10), "{gap:?}");
}

#[test]
fn the_graph_mean_field_matches_the_f64_one() {
    let g = Graph::new();
    let dbm = Dbm::new(&g, &[6, 4, 3], 1).unwrap();
    let p = random_dbm(1.0, 5);
    dbm.w1.set_value(p.w1.mapv(|x| x as f32)).unwrap();
    dbm.w2.set_value(p.w2.mapv(|x| x as f32)).unwrap();
    dbm.vbias.set_value(p.vbias.mapv(|x| x as f32)).unwrap();
    dbm.h1bias.set_value(p.h1bias.mapv(|x| x as f32)).unwrap();
    dbm.h2bias.set_value(p.h2bias.mapv(|x| x as f32)).unwrap();
    let v = states(6);
    let out = dbm
        .mean_field_fn(7)
        .unwrap()
        .call(&[Tensor::from(v.mapv(|x| x as f32))])
        .unwrap();
    let (mu1, mu2) = DbmParams::of(&dbm).unwrap().mean_field(&v, 7).unwrap();
    for (t, want) in out.iter().zip([mu1, mu2]) {
        let got = t.to_f64_vec();
        let diff = got
            .iter()
            .zip(want.iter())
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff < 1e-5, "{diff}");
    }
}

fn digits(n_train: usize, n_test: usize) -> (Array2<f32>, Vec<usize>, Array2<f32>) {
    let m = Mnist::bundled().unwrap().truncate(n_train, n_test);
    let bin = |x: &Array2<f32>| x.mapv(|p| if p > 0.5 { 1.0f32 } else { 0.0 });
    (bin(&m.train_images), m.train_labels, bin(&m.test_images))
}

/// A 784-10-6 DBM (its log Z exact: 2^10 states of h1) on 600 binarized digits: pretraining
/// lowers each RBM's reconstruction error and lifts the exact test bound far above the
/// untrained model's; joint training lifts it further; fine-tuning lowers the training loss.
#[test]
fn short_run_pretrains_trains_and_fine_tunes() {
    let (train, labels, test) = digits(600, 200);
    let test64 = test.mapv(f64::from);
    let g = Graph::new();
    let rng = RandomStream::new(&g, 2);
    let dbm = Dbm::new(&g, &[784, 10, 6], 2).unwrap();
    let bound = |dbm: &Dbm| {
        let p = DbmParams::of(dbm).unwrap();
        let log_z = p.exact_log_partition().unwrap();
        p.variational_bound(&test64, 10, log_z)
            .unwrap()
            .mean()
            .unwrap()
    };
    let untrained = bound(&dbm);
    let cd = CdConfig {
        lr: 0.1,
        batch: 20,
        ..CdConfig::default()
    };
    let layer = LayerSchedule { epochs: 3, cd };
    let curves = dbm
        .pretrain(&train, &[layer.clone(), layer], &rng, 2, |_| {})
        .unwrap();
    for c in &curves {
        assert!(c[2] < c[0], "pretraining curve {c:?}");
    }
    let pretrained = bound(&dbm);
    assert!(
        pretrained > untrained + 100.0,
        "{untrained} -> {pretrained}"
    );

    let cfg = DbmConfig {
        batch: 20,
        chains: 20,
        lr: 0.02,
        ..DbmConfig::default()
    };
    let trainer = dbm.trainer(&cfg, &rng).unwrap();
    let mut order = StdRng::seed_from_u64(2);
    for _ in 0..4 {
        trainer
            .epoch(&train, &mut order, |_, _, e| assert!(e.is_finite()))
            .unwrap();
    }
    let trained = bound(&dbm);
    eprintln!(
        "exact test bound: untrained {untrained:.2}, pretrained {pretrained:.2}, trained {trained:.2}"
    );
    assert!(trained > pretrained, "{pretrained} -> {trained}");
    // The trainer's chains moved from zero to binary states.
    let chains = trainer.chains().get_value().unwrap().to_f64_vec();
    assert!(chains.iter().all(|&h| h == 0.0 || h == 1.0) && chains.contains(&1.0));

    let aug = dbm.augment(&train, 10).unwrap();
    assert_eq!(aug.dim(), (600, 790));
    let net = dbm.classifier(10, 2).unwrap();
    let plain = FineTuneConfig {
        keep_input: 1.0,
        keep_hidden: 1.0,
        ..FineTuneConfig::default()
    };
    let step = net.trainer(&plain, &rng).unwrap();
    let y = Tensor::from(Array1::from_iter(labels.iter().map(|&l| l as i64)));
    let loss = net.loss().unwrap();
    let before = loss.call(&[Tensor::from(aug.clone()), y.clone()]).unwrap()[0]
        .item()
        .unwrap();
    for _ in 0..5 {
        for idx in (0..600).collect::<Vec<_>>().chunks(50) {
            let x = Tensor::from(aug.select(Axis(0), idx));
            let yb = Tensor::from(Array1::from_iter(idx.iter().map(|&i| labels[i] as i64)));
            step.call(&[x, yb, 0.5f32.into()]).unwrap();
        }
    }
    let after = loss.call(&[Tensor::from(aug), y]).unwrap()[0]
        .item()
        .unwrap();
    eprintln!("fine-tuning loss {before:.3} -> {after:.3}");
    assert!(after < 0.7 * before, "fine-tuning loss {before} -> {after}");
}

#[test]
fn misuse_is_an_error() {
    let g = Graph::new();
    assert!(Dbm::new(&g, &[6, 4], 0).is_err());
    assert!(Dbm::new(&g, &[6, 0, 3], 0).is_err());
    let dbm = Dbm::new(&g, &[6, 4, 3], 0).unwrap();
    let rng = RandomStream::new(&g, 0);
    let no_chains = DbmConfig {
        chains: 0,
        ..DbmConfig::default()
    };
    assert!(dbm.trainer(&no_chains, &rng).is_err());
    let trainer = dbm.trainer(&DbmConfig::default(), &rng).unwrap();
    assert!(trainer.set_chains(&Array2::zeros((3, 4))).is_err());
    assert!(dbm.augment(&Array2::zeros((2, 5)), 3).is_err());
    let layer = LayerSchedule {
        epochs: 1,
        cd: CdConfig::default(),
    };
    assert!(
        dbm.pretrain(&Array2::zeros((2, 6)), &[layer], &rng, 0, |_| {})
            .is_err()
    );
    let p = DbmParams::of(&dbm).unwrap();
    assert!(p.variational_bound(&Array2::zeros((2, 5)), 3, 0.0).is_err());
    let err = DbmParams::new(
        Array2::zeros((6, 4)),
        Array2::zeros((3, 3)),
        Array1::zeros(6),
        Array1::zeros(4),
        Array1::zeros(3),
    );
    assert!(err.is_err());
    let wide = DbmParams::new(
        Array2::zeros((2, 2)),
        Array2::zeros((2, 30)),
        Array1::zeros(2),
        Array1::zeros(2),
        Array1::zeros(30),
    )
    .unwrap();
    assert!(wide.log_unnormalized(&Array2::zeros((1, 2))).is_err());
}
