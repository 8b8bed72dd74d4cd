//! Centered RBMs (Melchior et al. 2016): one training step against the centered gradient and the
//! offsets' reparametrization computed by hand, the reparametrization leaving the modelled
//! distribution alone, and a short PCD-1 run on the bundled digits.

use gradus::models::cd::Cd;
use gradus::models::rbm_eval::{AisConfig, RbmParams};
use gradus::models::{CdConfig, CenteredRbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis, array};
use rand::SeedableRng;

mod common;
use common::{assert_built_at, digits};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn vector(x: &Expr) -> Array1<f64> {
    x.get_value()
        .unwrap()
        .to_f64_array()
        .into_dimensionality()
        .unwrap()
}

fn matrix(x: &Expr) -> Array2<f64> {
    x.get_value()
        .unwrap()
        .to_f64_array()
        .into_dimensionality()
        .unwrap()
}

#[track_caller]
fn assert_close<D: ndarray::Dimension>(
    what: &str,
    got: &ndarray::Array<f64, D>,
    want: &ndarray::Array<f64, D>,
) {
    let err = (got - want).mapv(f64::abs).fold(0.0, |m: f64, &e| m.max(e));
    assert!(
        err < 1e-10,
        "{what}: off by {err:e}\n got {got}\nwant {want}"
    );
}

/// A 4-3 `f64` model with the given visible biases and fixed weights, hidden biases and offsets.
fn tiny(g: &Graph, vbias: Array1<f64>) -> CenteredRbm {
    let rbm = CenteredRbm::new_with_dtype(g, 4, 3, DType::F64, 1)
        .unwrap()
        .with_sliding(0.3, 0.2)
        .unwrap();
    let w = array![
        [0.3, -0.5, 0.2],
        [-0.1, 0.4, 0.25],
        [0.45, 0.1, -0.35],
        [-0.2, -0.3, 0.15]
    ];
    rbm.w.set_value(w).unwrap();
    rbm.vbias.set_value(vbias).unwrap();
    rbm.hbias.set_value(array![0.2, -0.4, 0.1]).unwrap();
    rbm.visible_offset
        .set_value(array![0.3, 0.6, 0.5, 0.2])
        .unwrap();
    rbm.hidden_offset.set_value(array![0.4, 0.7, 0.55]).unwrap();
    rbm
}

/// One CD-1 step, computed by hand: the gradient of the centered energy,
/// `∇W = <(v - μ)(h - λ)ᵀ>_data - <(v - μ)(h - λ)ᵀ>_model`, `∇b = <v>_d - <v>_m`,
/// `∇c = <h>_d - <h>_m` (hidden probabilities), then the offsets slide to the data's means and the
/// biases move by `W'(λ' - λ)` and `W'ᵀ(μ' - μ)`. Visible biases of ±40 make the negative sample
/// certain (the coupling adds at most ±1.5), so the step is deterministic.
#[test]
fn a_step_follows_the_centered_gradient_and_reparametrizes_the_biases() {
    let g = Graph::new();
    let b = array![40.0, -40.0, 40.0, -40.0];
    let rbm = tiny(&g, b.clone());
    let (w, c) = (matrix(&rbm.w), vector(&rbm.hbias));
    let (mu, lambda) = (vector(&rbm.visible_offset), vector(&rbm.hidden_offset));
    let x = array![
        [1.0, 0.0, 1.0, 1.0],
        [0.0, 1.0, 1.0, 0.0],
        [1.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
        [1.0, 1.0, 1.0, 0.0]
    ];
    let neg = Array2::from_shape_fn((5, 4), |(_, i)| if b[i] > 0.0 { 1.0 } else { 0.0 });

    let (eta, [nu_v, nu_h]) = (0.1, rbm.sliding());
    let hidden = |v: &Array2<f64>| (&(v - &mu).dot(&w) + &c).mapv(sigmoid);
    let (h_data, h_neg) = (hidden(&x), hidden(&neg));
    let n = x.nrows() as f64;
    let outer = |v: &Array2<f64>, h: &Array2<f64>| (v - &mu).t().dot(&(h - &lambda)) / n;
    let mean = |a: &Array2<f64>| a.mean_axis(Axis(0)).unwrap();
    let w1 = &w + &((outer(&x, &h_data) - outer(&neg, &h_neg)) * eta);
    let b1 = &b + &((mean(&x) - mean(&neg)) * eta);
    let c1 = &c + &((mean(&h_data) - mean(&h_neg)) * eta);
    let mu1 = &mu * (1.0 - nu_v) + mean(&x) * nu_v;
    let lambda1 = &lambda * (1.0 - nu_h) + mean(&h_data) * nu_h;
    let b2 = &b1 + &w1.dot(&(&lambda1 - &lambda));
    let c2 = &c1 + &w1.t().dot(&(&mu1 - &mu));

    let cfg = CdConfig {
        lr: eta,
        momentum: 0.0,
        weight_decay: 0.0,
        batch: 5,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, 3))
        .compile()
        .unwrap();
    trainer.step().call(&[x.clone().into()]).unwrap();
    assert_close("W", &matrix(&rbm.w), &w1);
    assert_close("visible offsets", &vector(&rbm.visible_offset), &mu1);
    assert_close("hidden offsets", &vector(&rbm.hidden_offset), &lambda1);
    assert_close("visible biases", &vector(&rbm.vbias), &b2);
    assert_close("hidden biases", &vector(&rbm.hbias), &c2);
}

/// The model's free energy is the equivalent plain RBM's less the constant `μᵀWλ`, and moving
/// the offsets, by hand or by a training step that learns nothing (learning rate 0), changes
/// neither the plain parameters nor any free energy.
#[test]
fn moving_the_offsets_keeps_the_distribution() {
    let g = Graph::new();
    let rbm = tiny(&g, array![0.3, -0.2, 0.5, -0.1]);
    let all = Array2::from_shape_fn((16, 4), |(k, i)| (k >> i & 1) as f64);
    let v = g.input("v", DType::F64, &[None, Some(4)]);
    let free_energy = function(&[&v], &[&rbm.free_energy(&v)]).compile().unwrap();
    let centered = |rbm: &CenteredRbm| {
        let f = free_energy.call(&[all.clone().into()]).unwrap()[0].to_f64_vec();
        let (mu, lambda) = (vector(&rbm.visible_offset), vector(&rbm.hidden_offset));
        let shift = mu.dot(&matrix(&rbm.w).dot(&lambda));
        Array1::from_iter(f.into_iter().map(|f| f + shift))
    };
    let plain = |rbm: &CenteredRbm| rbm.plain_params().unwrap().free_energy(&all).unwrap();
    let before = plain(&rbm);
    assert_close("centered F + μᵀWλ vs plain F", &centered(&rbm), &before);

    rbm.set_offsets(&array![0.9, 0.1, 0.25, 0.6], &array![0.05, 0.5, 0.95])
        .unwrap();
    assert_close("plain F after set_offsets", &plain(&rbm), &before);
    assert_close("centered F after set_offsets", &centered(&rbm), &before);

    let cfg = CdConfig {
        lr: 0.0,
        momentum: 0.0,
        weight_decay: 0.0,
        persistent: true,
        batch: 16,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, 3))
        .compile()
        .unwrap();
    let mu = vector(&rbm.visible_offset);
    for _ in 0..3 {
        trainer.step().call(&[all.clone().into()]).unwrap();
    }
    let moved = (vector(&rbm.visible_offset) - mu).mapv(f64::abs).sum();
    assert!(moved > 0.1, "the offsets did not move: {moved}");
    assert_close("plain F after 3 steps", &plain(&rbm), &before);
    assert_close("centered F after 3 steps", &centered(&rbm), &before);
}

/// 784-8, PCD-1 with 20 chains, lr 0.1, two epochs on 1,000 digits (100 updates): the exact test
/// log-likelihood of the equivalent plain RBM rises, and a short AIS run agrees with the exact
/// log Z within half a nat.
#[test]
fn a_short_pcd_run_improves_the_exact_likelihood_and_ais_agrees() {
    let bin = |x: Array2<f32>| x.mapv(|p| if p > 0.5 { 1.0f32 } else { 0.0 });
    let data = bin(digits(1500));
    let (train, test) = (
        data.slice(ndarray::s![..1000, ..]).to_owned(),
        data.slice(ndarray::s![1000.., ..]).mapv(f64::from),
    );
    let g = Graph::new();
    let rbm = CenteredRbm::new(&g, 784, 8, 1).unwrap();
    rbm.init_from_data(&train).unwrap();
    let ll = |p: &RbmParams| p.log_likelihood(&test, p.exact_log_partition().unwrap());
    let before = ll(&rbm.plain_params().unwrap()).unwrap();

    let cfg = CdConfig {
        persistent: true,
        lr: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        batch: 20,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, 1))
        .compile()
        .unwrap();
    let mut order = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..2 {
        trainer.epoch(&train, &mut order, |_, _, _| {}).unwrap();
    }
    let plain = rbm.plain_params().unwrap();
    let log_z = plain.exact_log_partition().unwrap();
    let after = plain.log_likelihood(&test, log_z).unwrap();
    let ais = plain
        .ais_log_partition(
            &AisConfig::default()
                .with_base_rate(&train.mapv(f64::from))
                .with_betas(300),
        )
        .unwrap();
    println!(
        "centered 784-8 PCD-1, 2 epochs: test LL {before:.2} -> {after:.2}; log Z {log_z:.3}, \
         AIS {:.3}",
        ais.log_z
    );
    assert!(after > before + 3.0, "test LL {before:.2} -> {after:.2}");
    assert!(
        (ais.log_z - log_z).abs() < 0.5,
        "AIS {:.3} vs exact {log_z:.3}",
        ais.log_z
    );
}

#[test]
fn mistakes_are_errors() {
    let g = Graph::new();
    let rbm = CenteredRbm::new(&g, 4, 3, 1).unwrap();
    let line = line!() + 1;
    let err = rbm.clone().with_sliding(1.5, 0.01).unwrap_err();
    assert_built_at(&err, line);
    assert!(err.to_string().contains("[0, 1]"), "{err}");
    let line = line!() + 1;
    let err = rbm.init_from_data(&Array2::zeros((2, 5))).unwrap_err();
    assert_built_at(&err, line);
    let (mu, lambda) = (Array1::zeros(4), Array1::zeros(2));
    let line = line!() + 1;
    let err = rbm.set_offsets(&mu, &lambda).unwrap_err();
    assert_built_at(&err, line);
    assert!(CenteredRbm::new_with_dtype(&g, 4, 3, DType::I64, 1).is_err());
}
