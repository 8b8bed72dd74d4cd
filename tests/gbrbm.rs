//! The Gaussian-Bernoulli RBM against its oracles: the free energy and conditionals against
//! brute-force sums over the hidden states, the partition function against numerical
//! integration, the CD gradient against finite differences and the hand-written CD statistics,
//! and a short training run on the bundled digits.

use gradus::data::Mnist;
use gradus::io::{load_params, save_params};
use gradus::models::CdConfig;
use gradus::models::gbrbm::{GbRbm, Standardizer};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Random f64 parameters `(W, b, c)` of a `d`-visible, `h`-hidden model.
fn random_params(d: usize, h: usize, seed: u64) -> (Array2<f64>, Array1<f64>, Array1<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut u = |s: f64| rng.random_range(-s..s);
    (
        Array2::from_shape_fn((d, h), |_| u(0.8)),
        Array1::from_shape_fn(d, |_| u(1.0)),
        Array1::from_shape_fn(h, |_| u(1.0)),
    )
}

/// The model over shared f64 parameters.
fn model(g: &Graph, (w, b, c): &(Array2<f64>, Array1<f64>, Array1<f64>)) -> GbRbm {
    GbRbm::from_params(
        &g.shared("W", w.clone()),
        &g.shared("vbias", b.clone()),
        &g.shared("hbias", c.clone()),
    )
    .unwrap()
}

/// Every binary vector of length `h`.
fn hidden_states(h: usize) -> Vec<Array1<f64>> {
    (0..1usize << h)
        .map(|m| Array1::from_shape_fn(h, |j| ((m >> j) & 1) as f64))
        .collect()
}

/// `E(v, h) = ½‖v - b‖² - c·h - vᵀ W h`, written out.
fn energy(
    (w, b, c): &(Array2<f64>, Array1<f64>, Array1<f64>),
    v: &Array1<f64>,
    h: &Array1<f64>,
) -> f64 {
    0.5 * (v - b).mapv(|x| x * x).sum() - c.dot(h) - v.dot(&w.dot(h))
}

fn logsumexp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

fn call1(f: &Function, x: Array2<f64>) -> Vec<f64> {
    f.call(&[Tensor::from(x)]).unwrap()[0].to_f64_vec()
}

#[test]
fn free_energy_and_hidden_probs_match_sums_over_hidden_states() {
    let (d, h) = (3, 4);
    let p = random_params(d, h, 1);
    let g = Graph::new();
    let rbm = model(&g, &p);
    let v = g.matrix("v", DType::F64);
    let fe = function(&[&v], &[&rbm.free_energy(&v)]).compile().unwrap();
    let hp = function(&[&v], &[&rbm.hidden_probs(&v)]).compile().unwrap();

    let mut rng = StdRng::seed_from_u64(2);
    let vs = Array2::from_shape_fn((5, d), |_| rng.random_range(-2.0..2.0));
    let got_f = call1(&fe, vs.clone());
    let got_p = call1(&hp, vs.clone());
    let states = hidden_states(h);
    for (r, row) in vs.outer_iter().enumerate() {
        let row = row.to_owned();
        let neg_e: Vec<f64> = states.iter().map(|s| -energy(&p, &row, s)).collect();
        let want_f = -logsumexp(&neg_e);
        assert!(
            (got_f[r] - want_f).abs() < 1e-12,
            "F: {} vs {want_f}",
            got_f[r]
        );
        for j in 0..h {
            let on: Vec<f64> = (0..states.len())
                .filter(|&k| states[k][j] == 1.0)
                .map(|k| neg_e[k])
                .collect();
            let want = (logsumexp(&on) + want_f).exp();
            assert!((got_p[r * h + j] - want).abs() < 1e-12, "P(h{j}=1|v)");
        }
    }
}

#[test]
fn partition_function_matches_numerical_integration() {
    // D = 1, H = 3: log Z by enumerating h in closed form,
    // log Z = ½ log 2π + logsumexp_h [c·h + ½(b + W h)² - ½ b²],
    // against ∫ exp(-F(v)) dv by the trapezoid rule, F from the gradus graph.
    let p = random_params(1, 3, 3);
    let (w, b, c) = &p;
    let closed = 0.5 * std::f64::consts::TAU.ln()
        + logsumexp(
            &hidden_states(3)
                .iter()
                .map(|s| c.dot(s) + 0.5 * (b[0] + w.row(0).dot(s)).powi(2) - 0.5 * b[0] * b[0])
                .collect::<Vec<_>>(),
        );

    let g = Graph::new();
    let rbm = model(&g, &p);
    let v = g.matrix("v", DType::F64);
    let fe = function(&[&v], &[&rbm.free_energy(&v)]).compile().unwrap();
    let (lo, hi, n) = (-20.0, 20.0, 40_001);
    let step = (hi - lo) / (n - 1) as f64;
    let grid = Array2::from_shape_fn((n, 1), |(i, _)| lo + step * i as f64);
    let f = call1(&fe, grid);
    let integral: f64 = f
        .windows(2)
        .map(|ab| 0.5 * step * ((-ab[0]).exp() + (-ab[1]).exp()))
        .sum();
    assert!(
        (integral.ln() - closed).abs() < 1e-9,
        "quadrature {} vs closed form {closed}",
        integral.ln()
    );
}

/// The model over symbolic inputs, and the CD cost for fed `v0`, `vk`.
struct Symbolic {
    w: Expr,
    b: Expr,
    c: Expr,
    v0: Expr,
    vk: Expr,
    rbm: GbRbm,
}

fn symbolic(d: usize, h: usize) -> Symbolic {
    let g = Graph::new();
    let w = g.input("W", DType::F64, &[Some(d), Some(h)]);
    let b = g.input("b", DType::F64, &[Some(d)]);
    let c = g.input("c", DType::F64, &[Some(h)]);
    let rbm = GbRbm::from_params(&w, &b, &c).unwrap();
    let v0 = g.input("v0", DType::F64, &[None, Some(d)]);
    let vk = g.input("vk", DType::F64, &[None, Some(d)]);
    Symbolic {
        w,
        b,
        c,
        v0,
        vk,
        rbm,
    }
}

fn batches(n: usize, d: usize) -> (Array2<f64>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(5);
    let mut u = || rng.random_range(-2.0..2.0);
    (
        Array2::from_shape_fn((n, d), |_| u()),
        Array2::from_shape_fn((n, d), |_| u()),
    )
}

#[test]
fn cd_gradient_matches_finite_differences_of_the_free_energy_difference() {
    let (d, h) = (4, 3);
    let s = symbolic(d, h);
    let cost = s.rbm.cd_cost(&s.v0, &s.vk);
    let (w, b, c) = random_params(d, h, 4);
    let (v0, vk) = batches(6, d);
    let report = GradCheck::new(&cost, &[&s.w, &s.b, &s.c])
        .at(&[w.into(), b.into(), c.into()])
        .feed(&[(&s.v0, v0.into()), (&s.vk, vk.into())])
        .elementwise()
        .run()
        .unwrap();
    assert_eq!(report.comparisons, d * h + d + h);
}

#[test]
fn cd_gradient_is_the_hand_written_cd_statistics() {
    // dW = -(<v0 p0ᵀ> - <vk pkᵀ>), db = -(<v0> - <vk>), dc = -(<p0> - <pk>), p = sigmoid(c + vW).
    let (d, h) = (4, 3);
    let s = symbolic(d, h);
    let cost = s.rbm.cd_cost(&s.v0, &s.vk);
    let grads = grad(&cost, &[&s.w, &s.b, &s.c]).unwrap();
    let f = function(
        &[&s.w, &s.b, &s.c, &s.v0, &s.vk],
        &[&grads[0], &grads[1], &grads[2]],
    )
    .compile()
    .unwrap();
    let (w, b, c) = random_params(d, h, 6);
    let (v0, vk) = batches(6, d);
    let out = f
        .call(&[
            w.clone().into(),
            b.into(),
            c.clone().into(),
            v0.clone().into(),
            vk.clone().into(),
        ])
        .unwrap();
    let probs = |v: &Array2<f64>| (v.dot(&w) + &c).mapv(|x| 1.0 / (1.0 + (-x).exp()));
    let (p0, pk) = (probs(&v0), probs(&vk));
    let n = v0.nrows() as f64;
    let dw = -(v0.t().dot(&p0) - vk.t().dot(&pk)) / n;
    let db = -(v0.mean_axis(Axis(0)).unwrap() - vk.mean_axis(Axis(0)).unwrap());
    let dc = -(p0.mean_axis(Axis(0)).unwrap() - pk.mean_axis(Axis(0)).unwrap());
    let close = |got: &Tensor, want: Vec<f64>| {
        let got = got.to_f64_vec();
        assert_eq!(got.len(), want.len());
        for (a, e) in got.iter().zip(&want) {
            assert!((a - e).abs() < 1e-12, "{a} vs {e}");
        }
    };
    close(&out[0], dw.iter().copied().collect());
    close(&out[1], db.to_vec());
    close(&out[2], dc.to_vec());
}

#[test]
fn no_gradient_flows_through_the_negative_sample() {
    // With a deterministic chain vk = mean of p(v | P(h | v0)), the CD gradient must equal the
    // gradient with vk fed as a constant of the same value; without stop_gradient it differs.
    let (d, h) = (4, 3);
    let s = symbolic(d, h);
    let chain = s.rbm.visible_mean(&s.rbm.hidden_probs(&s.v0));
    let params = [&s.w, &s.b, &s.c];
    let through = grad(&s.rbm.cd_cost(&s.v0, &chain), &params).unwrap();
    let fixed = grad(&s.rbm.cd_cost(&s.v0, &s.vk), &params).unwrap();
    let leaky = grad(
        &(s.rbm.free_energy(&s.v0).mean() - s.rbm.free_energy(&chain).mean()),
        &params,
    )
    .unwrap();
    let inputs = [&s.w, &s.b, &s.c, &s.v0];
    let f_through = function(&inputs, &through.iter().collect::<Vec<_>>())
        .compile()
        .unwrap();
    let f_leaky = function(&inputs, &leaky.iter().collect::<Vec<_>>())
        .compile()
        .unwrap();
    let chain_f = function(&inputs, &[&chain]).compile().unwrap();
    let f_fixed = function(
        &[&s.w, &s.b, &s.c, &s.v0, &s.vk],
        &fixed.iter().collect::<Vec<_>>(),
    )
    .compile()
    .unwrap();

    let (w, b, c) = random_params(d, h, 8);
    let (v0, _) = batches(5, d);
    let at: Vec<Tensor> = vec![w.into(), b.into(), c.into(), v0.into()];
    let vk = chain_f.call(&at).unwrap().remove(0);
    let mut with_vk = at.clone();
    with_vk.push(vk);
    let a = f_through.call(&at).unwrap();
    let e = f_fixed.call(&with_vk).unwrap();
    let l = f_leaky.call(&at).unwrap();
    let diff = |x: &[Tensor], y: &[Tensor]| {
        x.iter()
            .zip(y)
            .flat_map(|(p, q)| p.to_f64_vec().into_iter().zip(q.to_f64_vec()))
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f64::max)
    };
    assert!(diff(&a, &e) < 1e-12, "stop_gradient: {}", diff(&a, &e));
    assert!(
        diff(&l, &e) > 1e-3,
        "the chain's own gradient is not negligible here"
    );
}

#[test]
fn from_params_rejects_mismatched_parameters() {
    let g = Graph::new();
    let w = g.shared("W", Array2::<f32>::zeros((3, 2)));
    let b3 = g.shared("b", Array1::<f32>::zeros(3));
    let c2 = g.shared("c", Array1::<f32>::zeros(2));
    assert!(GbRbm::from_params(&w, &b3, &c2).is_ok());
    let b2 = g.shared("b2", Array1::<f32>::zeros(2));
    assert!(matches!(
        GbRbm::from_params(&w, &b2, &c2),
        Err(Error::Usage { .. })
    ));
    let c64 = g.shared("c64", Array1::<f64>::zeros(2));
    assert!(matches!(
        GbRbm::from_params(&w, &b3, &c64),
        Err(Error::Usage { .. })
    ));
    let runtime = g.matrix("w", DType::F32);
    assert!(GbRbm::from_params(&runtime, &b3, &c2).is_err());
}

#[test]
fn standardizer_round_trips_and_floors_the_scale() {
    let x = ndarray::array![
        [0.0f32, 1.0, 0.5],
        [0.0, 0.0, 0.5],
        [0.0, 1.0, 0.5],
        [0.0, 0.0, 0.6]
    ];
    let s = Standardizer::fit(&x, 0.3).unwrap();
    assert_eq!(
        s.scale[0], 0.3,
        "a constant column is divided by the floor, not 0"
    );
    assert_eq!(s.scale[1], 0.5);
    let z = s.apply(&x);
    assert!(z.iter().all(|v| v.is_finite()));
    assert!(z.column(1).sum().abs() < 1e-6);
    let back = s.invert(&z);
    assert!(back.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-6));
}

/// Bundled training digits, standardized.
fn digits(n: usize) -> Array2<f32> {
    let m = Mnist::bundled().unwrap().truncate(n, 1);
    Standardizer::fit(&m.train_images, 0.3)
        .unwrap()
        .apply(&m.train_images)
}

/// Train for `epochs` and return the reconstruction error on `x` before and after, per epoch.
fn train(x: &Array2<f32>, cfg: &CdConfig, epochs: usize) -> (f64, Vec<f64>, GbRbm) {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 3);
    let rbm = GbRbm::new(&g, x.ncols(), 32, 3).unwrap();
    let v = g.input("v", DType::F32, &[None, Some(x.ncols())]);
    let monitor = function(&[&v], &[&rbm.reconstruction_error(&v)])
        .compile()
        .unwrap();
    let error = || {
        monitor.call(&[Tensor::from(x.clone())]).unwrap()[0]
            .item()
            .unwrap()
    };
    let before = error();
    let step = rbm.trainer(cfg, &stream).unwrap();
    let mut after = Vec::new();
    for _ in 0..epochs {
        for chunk in x.axis_chunks_iter(Axis(0), cfg.batch) {
            if chunk.nrows() == cfg.batch {
                step.call(&[Tensor::from(chunk.to_owned())]).unwrap();
            }
        }
        after.push(error());
    }
    (before, after, rbm)
}

#[test]
fn short_cd_training_lowers_the_reconstruction_error() {
    let x = digits(600);
    let (before, after, _) = train(&x, &GbRbm::cd_config(), 3);
    assert!(after.iter().all(|e| e.is_finite()), "{after:?}");
    // Measured: 357 -> 322, 270, 248.
    assert!(
        after.windows(2).all(|e| e[1] < e[0]) && after[2] < 0.8 * before,
        "reconstruction error {before} -> {after:?}"
    );
}

#[test]
fn short_pcd_training_lowers_the_reconstruction_error_and_saves() {
    let x = digits(400);
    let cfg = CdConfig {
        persistent: true,
        momentum: 0.5,
        ..GbRbm::cd_config()
    };
    let (before, after, rbm) = train(&x, &cfg, 3);
    // Measured: 352 -> 352, 340, 314: slower than CD at first, its chains start from h = 0.
    assert!(
        after[2] < 0.95 * before && after[2] < after[0],
        "reconstruction error {before} -> {after:?}"
    );

    // What it learned survives a save and a load into a fresh model.
    let path =
        std::env::temp_dir().join(format!("gradus-gbrbm-{}.safetensors", std::process::id()));
    save_params(&path, &rbm.params()).unwrap();
    let g = Graph::new();
    let fresh = GbRbm::new(&g, x.ncols(), 32, 99).unwrap();
    load_params(&path, &fresh.params()).unwrap();
    std::fs::remove_file(&path).ok();
    for (a, b) in rbm.params().iter().zip(fresh.params()) {
        assert_eq!(a.get_value().unwrap(), b.get_value().unwrap());
    }
}
