//! RBMs with other units through the open CD trainer: NReLU hidden units (their samples'
//! mean against the integral it should be, the free energy's derivative against the stepped
//! sigmoid's mean, a short CD run on digits) and softmax visible groups (one unit on per group,
//! drawn as often as the softmax says, a short CD run).

mod common;

use gradus::eval;
use gradus::models::CdConfig;
use gradus::models::cd::{Cd, EnergyModel};
use gradus::models::units::{NreluRbm, SoftmaxRbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `E[max(0, Y)]` for `Y ~ N(mu, s²)`, by the trapezoid rule.
fn rectified_mean(mu: f64, s: f64) -> f64 {
    let (n, hi) = (20_000, mu.max(0.0) + 10.0 * s);
    let dy = hi / n as f64;
    (0..=n)
        .map(|i| {
            let y = i as f64 * dy;
            let w = if i == 0 || i == n { 0.5 } else { 1.0 };
            let z = (y - mu) / s;
            w * y * (-0.5 * z * z).exp() / (s * (2.0 * std::f64::consts::PI).sqrt())
        })
        .sum::<f64>()
        * dy
}

#[test]
fn nrelu_samples_are_rectified_noisy_inputs() {
    let g = Graph::new();
    let rbm = NreluRbm::new_with_dtype(&g, 3, 5, DType::F64, 1).unwrap();
    let c = [-2.0, -0.5, 0.0, 1.0, 3.0];
    rbm.hbias.set_value(Tensor::from(c.to_vec())).unwrap();
    rbm.w
        .set_value(Tensor::full(&[3, 5], 0.0, DType::F64))
        .unwrap();
    let v = g.input("v", DType::F64, &[None, Some(3)]);
    let rng = RandomStream::new(&g, 2);
    let f = function(&[&v], &[&rbm.sample_hidden(&v, &rng)])
        .compile()
        .unwrap();
    let rows = 40_000;
    let h = f
        .call(&[Tensor::full(&[rows, 3], 0.0, DType::F64)])
        .unwrap()[0]
        .to_f64_vec();
    let h = Array2::from_shape_vec((rows, 5), h).unwrap();
    assert!(h.iter().all(|&x| x >= 0.0));
    let mean = h.mean_axis(Axis(0)).unwrap();
    for (j, &x) in c.iter().enumerate() {
        let expected = rectified_mean(x, sigmoid(x).sqrt());
        assert!(
            (mean[j] - expected).abs() < 0.01 + 0.01 * expected,
            "unit {j}: mean {} vs {expected}",
            mean[j]
        );
    }
}

#[test]
fn the_nrelu_free_energy_is_the_stepped_sigmoids() {
    // -dF/dc summed over rows is the hidden mean Σ_i σ(x - i + 0.5), summed over rows.
    let g = Graph::new();
    let rbm = NreluRbm::new_with_dtype(&g, 4, 3, DType::F64, 3).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let w = Array2::from_shape_fn((4, 3), |_| rng.random_range(-2.0..2.0));
    rbm.w.set_value(Tensor::from(w)).unwrap();
    rbm.hbias
        .set_value(Tensor::from(vec![1.0, 4.0, -1.0]))
        .unwrap();
    let v = g.input("v", DType::F64, &[None, Some(4)]);
    let neg_f = -rbm.free_energy(&v).sum();
    let dc = grad(&neg_f, &[&rbm.hbias]).unwrap().remove(0);
    let mean = rbm.hidden_mean(&v).sum_axes(&[0], false);
    let x = Array2::from_shape_fn((5, 4), |(r, i)| ((r + i) % 2) as f64);
    let out = eval(&[&dc, &mean], &[(&v, x.into())]).unwrap();
    let (a, b) = (out[0].to_f64_vec(), out[1].to_f64_vec());
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-12, "{a:?} vs {b:?}");
    }
    // The stepped sigmoid's mean is close to softplus(x) for inputs well inside the copies.
    let xs = Array1::from(vec![-3.0, 0.0, 2.0, 7.5]);
    let stepped: Vec<f64> = xs
        .iter()
        .map(|&x| (1..=20).map(|i| sigmoid(x - i as f64 + 0.5)).sum())
        .collect();
    for (x, s) in xs.iter().zip(&stepped) {
        assert!((s - (1.0 + f64::exp(*x)).ln()).abs() < 0.05, "{x}: {s}");
    }
}

fn reconstruction_falls<M: EnergyModel>(
    model: &M,
    g: &Graph,
    data: &Array2<f32>,
    epochs: usize,
    lr: f64,
) {
    let cfg = CdConfig {
        lr,
        ..CdConfig::default()
    };
    let trainer = Cd::new(model, &cfg, &RandomStream::new(g, 1))
        .compile()
        .unwrap();
    let mut order = StdRng::seed_from_u64(1);
    let errors: Vec<f64> = (0..epochs)
        .map(|_| trainer.epoch(data, &mut order, |_, _, _| {}).unwrap())
        .collect();
    assert!(
        errors[epochs - 1] < 0.8 * errors[0],
        "reconstruction error per epoch: {errors:?}"
    );
}

#[test]
fn an_nrelu_rbm_trains_on_digits_by_the_library_cd() {
    let g = Graph::new();
    let rbm = NreluRbm::new(&g, 784, 32, 1).unwrap();
    reconstruction_falls(&rbm, &g, &common::digits(300), 4, 0.05);
}

#[test]
fn softmax_groups_have_one_unit_on_drawn_by_their_softmax() {
    let g = Graph::new();
    let rbm = SoftmaxRbm::new(&g, 2, 3, 1, 1).unwrap();
    rbm.vbias
        .set_value(Tensor::from(vec![0.0f32, 1.0, 2.0, -1.0, 0.0, 0.0]))
        .unwrap();
    let h = g.input("h", DType::F32, &[None, Some(1)]);
    let rng = RandomStream::new(&g, 3);
    let f = function(
        &[&h],
        &[&rbm.sample_visible(&h, &rng), &rbm.visible_mean(&h)],
    )
    .compile()
    .unwrap();
    let rows = 20_000;
    let out = f
        .call(&[Tensor::full(&[rows, 1], 0.0, DType::F32)])
        .unwrap();
    let v = Array2::from_shape_vec((rows, 6), out[0].to_f64_vec()).unwrap();
    let p = Array2::from_shape_vec((rows, 6), out[1].to_f64_vec()).unwrap();
    for row in v.rows() {
        assert_eq!(row.iter().take(3).sum::<f64>(), 1.0);
        assert_eq!(row.iter().skip(3).sum::<f64>(), 1.0);
    }
    let freq = v.mean_axis(Axis(0)).unwrap();
    for (f, q) in freq.iter().zip(p.row(0)) {
        assert!((f - q).abs() < 0.015, "{freq} vs {}", p.row(0));
    }
}

#[test]
fn a_softmax_rbm_trains_by_the_library_cd() {
    // Two groups of 4: the second copies the first's choice.
    let mut rng = StdRng::seed_from_u64(2);
    let data = Array2::from_shape_fn((400, 8), |_| 0.0f32);
    let mut data = data;
    for mut row in data.rows_mut() {
        let k = rng.random_range(0..4);
        row[k] = 1.0;
        row[4 + k] = 1.0;
    }
    let g = Graph::new();
    let rbm = SoftmaxRbm::new(&g, 2, 4, 6, 1).unwrap();
    reconstruction_falls(&rbm, &g, &data, 10, 0.5);
    assert!(SoftmaxRbm::new(&g, 0, 4, 6, 1).is_err());
    assert!(NreluRbm::new_with_dtype(&g, 3, 3, DType::I64, 1).is_err());
}
