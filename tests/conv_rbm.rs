//! The convolutional RBM: it is the dense RBM whose weight matrix repeats each filter at every
//! position (free energy and both conditionals equal the dense formulas, in f64), its CD-1
//! training lowers the reconstruction error, its sparsity term pulls the maps' activation to
//! the target, and bad arguments are errors.

use gradus::models::conv_rbm::ConvRbm;
use gradus::models::{Cd, CdConfig, EnergyModel};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Array4};

/// A value in [-1, 1) that depends on `i` and `salt` only.
fn noise(i: usize, salt: usize) -> f64 {
    (((i * 7919 + salt * 104_729) % 1000) as f64) / 500.0 - 1.0
}

/// The dense weight matrix `[s², K m²]` of filters `w [K, 1, f, f]`: pixel `(i + r, j + c)`
/// meets hidden unit `(k, i, j)` through `w[k, 0, r, c]`.
fn dense_weights(w: &Array4<f64>, side: usize) -> Array2<f64> {
    let (k_n, f) = (w.shape()[0], w.shape()[2]);
    let m = side - f + 1;
    let mut dense = Array2::zeros((side * side, k_n * m * m));
    for k in 0..k_n {
        for i in 0..m {
            for j in 0..m {
                for r in 0..f {
                    for c in 0..f {
                        dense[[(i + r) * side + j + c, (k * m + i) * m + j]] = w[[k, 0, r, c]];
                    }
                }
            }
        }
    }
    dense
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn close(a: &Tensor, b: &Array2<f64>, what: &str) {
    let a = a.to_f64_array();
    assert_eq!(a.len(), b.len(), "{what}: sizes");
    for (x, y) in a.iter().zip(b.iter()) {
        assert!((x - y).abs() < 1e-10, "{what}: {x} vs {y}");
    }
}

#[test]
fn a_conv_rbm_is_the_dense_rbm_of_its_repeated_filters() {
    let (side, f, k_n) = (5, 3, 2);
    let m = side - f + 1;
    let g = Graph::new();
    let crbm = ConvRbm::new_with_dtype(&g, side, f, k_n, DType::F64, 1).unwrap();
    let w = Array4::from_shape_fn((k_n, 1, f, f), |(k, _, r, c)| noise(k * 9 + r * 3 + c, 1));
    let (vb, hb) = (0.3, Array1::from_vec(vec![-0.2, 0.4]));
    crbm.w.set_value(w.clone()).unwrap();
    crbm.vbias.set_value(Array1::from_vec(vec![vb])).unwrap();
    crbm.hbias.set_value(hb.clone()).unwrap();
    assert_eq!(crbm.units(), (side * side, k_n * m * m));

    let dense = dense_weights(&w, side);
    let hb_dense = Array1::from_shape_fn(k_n * m * m, |u| hb[u / (m * m)]);
    let n = 3;
    let v = Array2::from_shape_fn((n, side * side), |(i, j)| {
        (noise(i * 31 + j, 2) + 1.0) / 2.0
    });
    let h = Array2::from_shape_fn((n, k_n * m * m), |(i, j)| {
        (noise(i * 17 + j, 3) > 0.0) as u8 as f64
    });
    let pre = v.dot(&dense) + &hb_dense;

    let vx = g.input("v", DType::F64, &[None, Some(side * side)]);
    let hx = g.input("h", DType::F64, &[None, Some(k_n * m * m)]);
    let out = gradus::eval(
        &[
            &crbm.free_energy(&vx),
            &crbm.hidden_mean(&vx),
            &crbm.visible_mean(&hx),
        ],
        &[(&vx, v.clone().into()), (&hx, h.clone().into())],
    )
    .unwrap();
    let free = Array2::from_shape_fn((n, 1), |(i, _)| {
        -vb * v.row(i).sum() - pre.row(i).iter().map(|&x| softplus(x)).sum::<f64>()
    });
    close(&out[0], &free, "free energy");
    close(&out[1], &pre.mapv(sigmoid), "P(h | v)");
    close(&out[2], &(h.dot(&dense.t()) + vb).mapv(sigmoid), "P(v | h)");
}

#[test]
fn cd_training_lowers_the_reconstruction_error() {
    let (side, n) = (8, 40);
    let g = Graph::new();
    let crbm = ConvRbm::new(&g, side, 3, 4, 7).unwrap();
    let cfg = CdConfig {
        lr: 0.02,
        momentum: 0.5,
        batch: n,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&crbm, &cfg, &RandomStream::new(&g, 5))
        .compile()
        .unwrap();
    // Bars: each image one lit row or column.
    let x: Tensor = Array2::from_shape_fn((n, side * side), |(i, p)| {
        let (r, c, bar) = (p / side, p % side, i % (2 * side));
        f32::from(if bar < side {
            r == bar
        } else {
            c == bar - side
        })
    })
    .into();
    let errors: Vec<f64> = (0..60)
        .map(|_| trainer.step().call(std::slice::from_ref(&x)).unwrap()[0].to_f64_array()[[]])
        .collect();
    let (first, last) = (
        errors[..5].iter().sum::<f64>(),
        errors[55..].iter().sum::<f64>(),
    );
    assert!(
        last < 0.8 * first,
        "reconstruction error {first} -> {last} over 5 calls"
    );
}

/// With the regularizer, the CD step pulls the maps' mean activation down to the target: at
/// lr 0 only the sparsity term moves the hidden biases.
#[test]
fn the_sparsity_term_moves_the_hidden_biases_towards_the_target() {
    let g = Graph::new();
    let crbm = ConvRbm::new(&g, 6, 3, 2, 7)
        .unwrap()
        .with_sparsity(0.05, 0.5)
        .unwrap();
    let cfg = CdConfig {
        lr: 0.0,
        batch: 4,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&crbm, &cfg, &RandomStream::new(&g, 5))
        .compile()
        .unwrap();
    let x: Tensor = Array2::from_shape_fn((4, 36), |(i, p)| ((i + p) % 3 == 0) as u8 as f32).into();
    let v = g.input("v", DType::F32, &[None, Some(36)]);
    let activation = gradus::function(&[&v], &[&crbm.map_activation(&v)])
        .compile()
        .unwrap();
    let mean = |t: &[Tensor]| t[0].to_f64_array().mean().unwrap();
    let before = mean(&activation.call(std::slice::from_ref(&x)).unwrap());
    let b0 = crbm.hbias.get_value().unwrap().to_f64_array();
    trainer.step().call(std::slice::from_ref(&x)).unwrap();
    let b1 = crbm.hbias.get_value().unwrap().to_f64_array();
    // Every bias moved by 0.5 (0.05 - its map's mean activation), about -0.22 from 0.5.
    assert!((before - 0.5).abs() < 0.05, "{before}");
    for (a, b) in b1.iter().zip(&b0) {
        assert!((a - b + 0.225).abs() < 0.03, "{b0} -> {b1}");
    }
    for _ in 0..200 {
        trainer.step().call(std::slice::from_ref(&x)).unwrap();
    }
    let after = mean(&activation.call(std::slice::from_ref(&x)).unwrap());
    assert!(
        (after - 0.05).abs() < 0.01,
        "mean activation {before} -> {after}"
    );
}

#[test]
fn bad_arguments_are_errors() {
    let g = Graph::new();
    for (side, f, k) in [(5, 6, 2), (5, 0, 2), (5, 3, 0)] {
        let e = ConvRbm::new(&g, side, f, k, 1).unwrap_err().to_string();
        assert!(
            e.contains("convolutional RBM") && e.contains("conv_rbm.rs"),
            "{e}"
        );
    }
    let e = ConvRbm::new_with_dtype(&g, 5, 3, 2, DType::I64, 1).unwrap_err();
    assert!(e.to_string().contains("f32 or f64"), "{e}");
    for (t, r) in [
        (0.0, 0.1),
        (1.0, 0.1),
        (0.1, -1.0),
        (f64::NAN, 0.1),
        (0.1, f64::INFINITY),
    ] {
        let Err(e) = ConvRbm::new(&g, 5, 3, 2, 1).unwrap().with_sparsity(t, r) else {
            panic!("target {t}, rate {r} accepted")
        };
        let e = e.to_string();
        assert!(
            e.contains("sparsity target") && e.contains("conv_rbm.rs"),
            "{e}"
        );
    }
}
