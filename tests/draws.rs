//! Binomial, gamma, beta and Poisson draws: one node each, the same numbers for a seed on any
//! number of threads, the right mean and variance, and parameters outside their domain an
//! error, never a panic.

mod common;

use common::in_pool;
use gradus::prelude::*;
use gradus::random::RandomStream;

/// Draws per moment check: the sample mean is within 5 standard errors of the true one (and
/// the sample variance of its own) except once in a few million runs.
const N: usize = 100_000;

/// A distribution to draw from, with its parameters and their true moments.
struct Case {
    name: &'static str,
    /// Values of the parameters (each filled over all `N` draws).
    params: Vec<f64>,
    mean: f64,
    var: f64,
}

fn cases() -> Vec<Case> {
    let case = |name, params: &[f64], mean, var| Case {
        name,
        params: params.to_vec(),
        mean,
        var,
    };
    vec![
        // Small and large n·p: inversion and BTPE.
        case("binomial 5", &[0.3], 1.5, 5.0 * 0.3 * 0.7),
        case("binomial 1000", &[0.4], 400.0, 240.0),
        case("gamma", &[0.5, 2.0], 1.0, 2.0),
        case("gamma", &[3.0, 0.5], 1.5, 0.75),
        case("beta", &[2.0, 5.0], 2.0 / 7.0, 10.0 / (49.0 * 8.0)),
        case("beta", &[0.5, 0.5], 0.5, 0.125),
        // Knuth's method and rejection.
        case("poisson", &[3.0], 3.0, 3.0),
        case("poisson", &[50.0], 50.0, 50.0),
    ]
}

/// The draws of `case` in `dtype`: each parameter an input fed `N` copies of its value.
fn draw(case: &Case, dtype: DType, seed: u64) -> Vec<f64> {
    draw_in(Mode::Fast, case, dtype, seed)
}

fn draw_in(mode: Mode, case: &Case, dtype: DType, seed: u64) -> Vec<f64> {
    let g = Graph::new();
    let rng = RandomStream::new(&g, seed);
    let params: Vec<Expr> = (0..case.params.len())
        .map(|k| g.input(&format!("p{k}"), dtype, &[Some(N)]))
        .collect();
    let y = match case.name {
        "binomial 5" => rng.binomial(5, &params[0]),
        "binomial 1000" => rng.binomial(1000, &params[0]),
        "gamma" => rng.gamma(&params[0], &params[1]),
        "beta" => rng.beta(&params[0], &params[1]),
        _ => rng.poisson(&params[0]),
    };
    let inputs: Vec<&Expr> = params.iter().collect();
    let f = function(&inputs, &[&y]).mode(mode).compile().unwrap();
    let feeds: Vec<Tensor> = case
        .params
        .iter()
        .map(|&v| Tensor::full(&[N], v, dtype))
        .collect();
    let out = f.call(&feeds).unwrap().remove(0);
    assert_eq!(out.dtype(), dtype);
    out.to_f64_vec()
}

/// Mean and variance of `v`, and the standard errors of each.
fn moments(v: &[f64]) -> (f64, f64, f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let central = |p: i32| v.iter().map(|x| (x - mean).powi(p)).sum::<f64>() / n;
    let (var, m4) = (central(2), central(4));
    (mean, var, (var / n).sqrt(), ((m4 - var * var) / n).sqrt())
}

#[test]
fn the_draws_have_their_distributions_mean_and_variance_in_f64_and_f32() {
    for dtype in [DType::F64, DType::F32] {
        for (k, case) in cases().iter().enumerate() {
            let v = draw(case, dtype, 11 + k as u64);
            let (mean, var, se_mean, se_var) = moments(&v);
            let what = format!("{} {:?} {dtype}", case.name, case.params);
            assert!(
                (mean - case.mean).abs() < 5.0 * se_mean,
                "{what}: mean {mean}, want {} ± {se_mean}",
                case.mean
            );
            assert!(
                (var - case.var).abs() < 5.0 * se_var,
                "{what}: variance {var}, want {} ± {se_var}",
                case.var
            );
            let counts = case.name != "gamma" && case.name != "beta";
            assert!(
                v.iter()
                    .all(|x| x.is_finite() && x >= &0.0 && (!counts || x.fract() == 0.0)),
                "{what}: a draw out of the support"
            );
            if case.name == "beta" {
                assert!(v.iter().all(|x| *x <= 1.0), "{what}: beta above 1");
            }
        }
    }
}

#[test]
fn a_seed_draws_the_same_numbers_on_one_and_two_threads() {
    for case in cases() {
        let one = in_pool(1, || draw(&case, DType::F32, 5));
        let two = in_pool(2, || draw(&case, DType::F32, 5));
        assert!(one == two, "{} differs between 1 and 2 threads", case.name);
        assert!(
            one != draw(&case, DType::F32, 6),
            "{}: the seed matters",
            case.name
        );
    }
}

#[test]
fn the_reference_kernels_draw_the_same_numbers() {
    for case in cases() {
        let fast = draw(&case, DType::F64, 9);
        let reference = draw_in(Mode::Reference, &case, DType::F64, 9);
        assert!(
            fast == reference,
            "{} differs in Mode::Reference",
            case.name
        );
    }
}

#[test]
fn a_binomial_draw_is_one_node() {
    let g = Graph::new();
    let p = g.vector("p", DType::F64);
    let y = RandomStream::new(&g, 1).binomial(1000, &p);
    let f = function(&[&p], &[&y]).compile().unwrap();
    let listing = f.debugprint();
    assert_eq!(listing.matches("binomial{n=1000}").count(), 1, "{listing}");
    assert_eq!(f.len(), 3, "the state, p and the draw:\n{listing}");
}

#[test]
fn parameters_broadcast_against_each_other() {
    // Shape k per row of [2, 1], scale θ per column of [?]: row 0 draws Gamma(0.5, θ), row 1
    // Gamma(4, θ), with θ = 2 everywhere.
    let g = Graph::new();
    let k = g.constant(ndarray::arr2(&[[0.5], [4.0]]));
    let theta = g.vector("theta", DType::F64);
    let y = RandomStream::new(&g, 3).gamma(&k, &theta);
    assert_eq!(y.ty().to_string(), "f64[2, ?]");
    let f = function(&[&theta], &[&y]).compile().unwrap();
    let out = f.call(&[vec![2.0; N].into()]).unwrap().remove(0);
    assert_eq!(out.shape(), &[2, N]);
    let v = out.to_f64_vec();
    for (row, want) in [(0, 1.0), (1, 8.0)] {
        let (mean, _, se, _) = moments(&v[row * N..(row + 1) * N]);
        assert!(
            (mean - want).abs() < 5.0 * se,
            "row {row}: {mean} vs {want}"
        );
    }
    // Two draws are apart: the rows are not copies of one draw.
    assert_ne!(v[..10], v[N..N + 10]);
}

#[test]
fn binomial_of_zero_trials_and_certain_outcomes() {
    let g = Graph::new();
    let p = g.vector("p", DType::F64);
    let rng = RandomStream::new(&g, 2);
    let f = function(
        &[&p],
        &[&rng.binomial(0, &p), &rng.binomial(7, &p), &rng.poisson(&p)],
    )
    .compile()
    .unwrap();
    let out = f.call(&[vec![0.0, 1.0].into()]).unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![0.0, 0.0]);
    assert_eq!(out[1].to_f64_vec(), vec![0.0, 7.0]);
    assert_eq!(out[2].to_f64_vec()[0], 0.0, "Poisson(0) is 0");
}

#[test]
fn draws_carry_no_gradient() {
    let g = Graph::new();
    let lambda = g.shared("lambda", vec![2.0; 3]);
    let y = RandomStream::new(&g, 2).poisson(&lambda).sum();
    let err = grad(&y, &[&lambda]).expect_err("the draw stops the gradient");
    assert!(
        err.to_string().contains("does not depend on lambda"),
        "{err}"
    );
}

#[test]
fn constant_parameters_outside_their_domain_are_build_errors() {
    let g = Graph::new();
    let rng = RandomStream::new(&g, 1);
    let ok = g.constant(vec![1.0, 2.0]);
    let zero = g.constant(vec![1.0, 0.0]);
    let negative = g.constant(vec![-2.0, 1.0]);
    let infinite = g.constant(vec![f64::INFINITY, 1.0]);
    let cases = [
        (
            (rng.gamma(&zero, &ok), line!()),
            "gamma",
            "k must be finite and > 0, got 0",
        ),
        (
            (rng.gamma(&ok, &negative), line!()),
            "gamma",
            "θ must be finite and > 0, got -2",
        ),
        (
            (rng.beta(&ok, &infinite), line!()),
            "beta",
            "b must be finite and > 0, got inf",
        ),
        (
            (rng.poisson(&negative), line!()),
            "poisson",
            "λ must be finite and >= 0, got -2",
        ),
        (
            (rng.binomial(3, &infinite), line!()),
            "binomial{n=3}",
            "p must be a probability",
        ),
    ];
    for ((draw, line), op, detail) in &cases {
        let err = draw.clone().check().expect_err("a bad parameter");
        let msg = err.to_string();
        let want = format!("invalid argument to {op}: {detail}");
        assert!(msg.starts_with(&want), "{msg}\n  wanted {want}");
        assert!(
            msg.contains(&format!("(built at tests/draws.rs:{line}:")),
            "{msg}"
        );
    }
}

#[test]
fn fed_parameters_outside_their_domain_are_run_time_errors() {
    let g = Graph::new();
    let a = g.vector("a", DType::F32);
    let rng = RandomStream::new(&g, 1);
    let draws = [
        ((rng.gamma(&a, &a), line!()), "gamma"),
        ((rng.beta(&a, &a), line!()), "beta"),
        ((rng.poisson(&a), line!()), "poisson"),
        ((rng.binomial(2, &a), line!()), "binomial{n=2}"),
    ];
    for ((draw, line), op) in &draws {
        for mode in [Mode::Fast, Mode::Reference] {
            let f = function(&[&a], &[draw]).mode(mode).compile().unwrap();
            let err = f.call(&[vec![0.5f32, -1.0].into()]).expect_err("-1");
            assert!(
                matches!(err, gradus::Error::Invalid { .. }),
                "{op}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("invalid argument to {op}: ")),
                "{msg}"
            );
            assert!(msg.contains("got -1"), "{msg}");
            assert_eq!(err.location().map(|l| l.line()), Some(*line), "{msg}");
        }
    }
}
