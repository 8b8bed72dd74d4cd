//! `grad` sends the gradients of naive `log(sigmoid x)` and `log(1 - sigmoid x)` through stable
//! forms, and `log_sigmoid` is finite everywhere: at |x| = 40 in f32 and 800 in f64, in every
//! mode.

use gradus::prelude::*;

const MODES: [Mode; 3] = [Mode::Fast, Mode::Debug, Mode::Reference];

/// The gradient of `cost(x)` summed, at `xs`, in `mode`.
fn gradient(dtype: DType, cost: impl Fn(&Expr) -> Expr, xs: &[f64], mode: Mode) -> Vec<f64> {
    let g = Graph::new();
    let x = g.vector("x", dtype);
    let c = cost(&x).sum();
    let gx = grad(&c, &[&x]).unwrap().remove(0);
    let f = function(&[&x], &[&gx]).mode(mode).compile().unwrap();
    let feed = Tensor::from(xs.to_vec()).cast(dtype);
    f.call(&[feed]).unwrap()[0].to_f64_vec()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[track_caller]
fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.is_finite() && (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}: {got:?} vs {want:?}"
        );
    }
}

#[test]
fn log_one_minus_sigmoid_has_a_finite_gradient() {
    // d/dx log(1 - sigmoid x) = -sigmoid(x); NaN at 20 and 40 in f32, 40 in f64 before.
    for (dtype, far, tol) in [(DType::F32, 40.0, 1e-5), (DType::F64, 800.0, 1e-12)] {
        let xs = [-far, -20.0, 0.0, 20.0, 40.0, far];
        let want: Vec<f64> = xs.iter().map(|&x| -sigmoid(x)).collect();
        for mode in MODES {
            let got = gradient(dtype, |x| (1.0 - &x.sigmoid()).log(), &xs, mode);
            assert_close(&got, &want, tol, &format!("{dtype} {mode:?}"));
        }
    }
}

#[test]
fn log_sigmoid_written_naively_has_a_finite_gradient_in_every_mode() {
    // d/dx log(sigmoid x) = sigmoid(-x); NaN at -800 in Reference mode before.
    for (dtype, far, tol) in [(DType::F32, 40.0, 1e-5), (DType::F64, 800.0, 1e-12)] {
        let xs = [-far, -20.0, 0.0, 20.0, far];
        let want: Vec<f64> = xs.iter().map(|&x| sigmoid(-x)).collect();
        for mode in MODES {
            let got = gradient(dtype, |x| x.sigmoid().log(), &xs, mode);
            assert_close(&got, &want, tol, &format!("{dtype} {mode:?}"));
        }
    }
}

#[test]
fn log_sigmoid_is_finite_with_its_gradient_in_every_mode() {
    for (dtype, far, tol) in [(DType::F32, 40.0, 1e-5), (DType::F64, 800.0, 1e-12)] {
        let xs = [-far, -1.0, 0.0, 1.0, far];
        let g = Graph::new();
        let x = g.vector("x", dtype);
        let y = x.log_sigmoid();
        let gx = grad(&y.sum(), &[&x]).unwrap().remove(0);
        for mode in MODES {
            let f = function(&[&x], &[&y, &gx]).mode(mode).compile().unwrap();
            let out = f.call(&[Tensor::from(xs.to_vec()).cast(dtype)]).unwrap();
            // log sigmoid(x) = -softplus(-x) = -(max(-x, 0) + log1p(exp(-|x|)))
            let want: Vec<f64> = xs
                .iter()
                .map(|&v: &f64| -((-v).max(0.0) + (-v.abs()).exp().ln_1p()))
                .collect();
            assert_close(
                &out[0].to_f64_vec(),
                &want,
                tol,
                &format!("value {dtype} {mode:?}"),
            );
            let dwant: Vec<f64> = xs.iter().map(|&v| sigmoid(-v)).collect();
            assert_close(
                &out[1].to_f64_vec(),
                &dwant,
                tol,
                &format!("gradient {dtype} {mode:?}"),
            );
        }
    }
}
