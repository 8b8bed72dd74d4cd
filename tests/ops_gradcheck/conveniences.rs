//! The maths researchers reach for: full reductions (`max`, `min`, `prod`, `logsumexp`), `erf`
//! and the activations built on it or beside it (`gelu`, `elu`, `leaky_relu`), the roundings
//! (zero gradient), `var`/`std` and `cumsum`. Each has its finite-difference check (where
//! differentiable) and its values against a direct computation, compiled and evaluated; the
//! elementwise ones fuse, and their mistakes name the user's line.

use gradus::prelude::*;
use ndarray::Axis;

use crate::common::{Fill, array, assert_close, case, uniform};

const U: Fill = Fill::Uniform(-2.0, 2.0);

/// `f` of one f64 input fed `x`, compiled (optimized, fused) and by `eval` (the reference
/// interpreter): both must give `want` to `tol`.
#[track_caller]
fn assert_values(what: &str, x: &Tensor, f: impl Fn(&Expr) -> Expr, want: &Tensor, tol: f64) {
    let g = Graph::new();
    let dims: Vec<Option<usize>> = x.shape().iter().map(|&d| Some(d)).collect();
    let xe = g.input("x", DType::F64, &dims);
    let y = f(&xe);
    let compiled = function(&[&xe], &[&y]).compile().unwrap();
    let got = compiled.call(std::slice::from_ref(x)).unwrap().remove(0);
    assert_close(&format!("{what} (compiled)"), &got, want, tol);
    let got = y.eval(&[(&xe, x.clone())]).unwrap();
    assert_close(&format!("{what} (eval)"), &got, want, tol);
}

fn map(x: &Tensor, f: impl Fn(f64) -> f64) -> Tensor {
    Tensor::from_f64(
        x.shape(),
        x.to_f64_vec().into_iter().map(f).collect(),
        DType::F64,
    )
    .unwrap()
}

#[test]
fn full_reductions() {
    case("max()")
        .var(&[3, 4], Fill::Distinct)
        .elementwise()
        .check(|x| x[0].max());
    case("min()")
        .var(&[2, 3, 2], Fill::Distinct)
        .elementwise()
        .check(|x| x[0].min());
    case("prod()")
        .var(&[2, 3], Fill::Signed(0.5, 1.5))
        .elementwise()
        .check(|x| x[0].prod());
    case("logsumexp()")
        .var(&[3, 4], U)
        .elementwise()
        .check(|x| x[0].logsumexp());
    case("logsumexp() second order")
        .var(&[2, 3], U)
        .second_order()
        .check(|x| x[0].logsumexp());
    // run-time dims
    case("max() of run-time dims")
        .var_dyn(&[None, Some(3)], &[2, 3], Fill::Distinct)
        .elementwise()
        .check(|x| x[0].max());

    let x = uniform(&[3, 4], -3.0, 3.0, 1);
    let v = x.to_f64_vec();
    let scalar = Tensor::from;
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let prod: f64 = v.iter().product();
    let lse = v.iter().map(|a| a.exp()).sum::<f64>().ln();
    assert_values("max()", &x, |e| e.max(), &scalar(max), 0.0);
    assert_values("min()", &x, |e| e.min(), &scalar(min), 0.0);
    assert_values(
        "prod()",
        &x,
        |e| e.prod(),
        &scalar(prod),
        1e-12 * prod.abs(),
    );
    assert_values("logsumexp()", &x, |e| e.logsumexp(), &scalar(lse), 1e-12);
    // no shape: a scalar in, itself out
    assert_values(
        "max() of a scalar",
        &Tensor::from(2.5),
        |e| e.max(),
        &Tensor::from(2.5),
        0.0,
    );
}

/// Reference values of erf (Abramowitz and Stegun, table 7.1) and `erf(-x) = -erf(x)`.
#[test]
fn erf_values() {
    let x = Tensor::from(vec![0.0, 0.5, 1.0, 2.0, -1.0, 3.5]);
    let want = Tensor::from(vec![
        0.0,
        0.520_499_877_813_046_5,
        0.842_700_792_949_714_9,
        0.995_322_265_018_952_7,
        -0.842_700_792_949_714_9,
        0.999_999_256_901_627_7,
    ]);
    assert_values("erf", &x, |e| e.erf(), &want, 1e-15);
    // f32: the same values rounded
    let g = Graph::new();
    let xe = g.input("x", DType::F32, &[Some(6)]);
    let f = function(&[&xe], &[&xe.erf()]).compile().unwrap();
    let got = f.call(&[x.cast(DType::F32)]).unwrap().remove(0);
    assert_close("erf f32", &got.cast(DType::F64), &want, 1e-7);
}

#[test]
fn erf_and_activations_gradients() {
    for (k, shape) in [&[][..], &[5], &[3, 4]].into_iter().enumerate() {
        let c = |name: &str, fill| case(name).var(shape, fill).seed(k as u64).elementwise();
        c("erf", Fill::Uniform(-2.5, 2.5)).check(|x| x[0].erf());
        c("gelu", Fill::Uniform(-3.0, 3.0)).check(|x| x[0].gelu());
        c("elu", Fill::Signed(0.05, 2.0)).check(|x| x[0].elu(0.7));
        c("leaky_relu", Fill::Signed(0.05, 2.0)).check(|x| x[0].leaky_relu(0.1));
    }
    case("erf second order")
        .var(&[4], U)
        .second_order()
        .check(|x| x[0].erf());
    case("gelu second order")
        .var(&[4], U)
        .second_order()
        .check(|x| x[0].gelu());
    case("elu second order")
        .var(&[6], Fill::Signed(0.1, 2.0))
        .second_order()
        .check(|x| x[0].elu(1.3));
}

#[test]
fn activation_values() {
    let x = Tensor::from(vec![-3.0, -0.5, 0.0, 0.25, 2.0]);
    let erf = |v: f64| libm_free_erf(v);
    assert_values(
        "gelu",
        &x,
        |e| e.gelu(),
        &map(&x, |v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()))),
        1e-12,
    );
    let elu = |v: f64| if v > 0.0 { v } else { 0.7 * (v.exp() - 1.0) };
    assert_values("elu", &x, |e| e.elu(0.7), &map(&x, elu), 1e-15);
    let leaky = |v: f64| if v > 0.0 { v } else { 0.1 * v };
    assert_values(
        "leaky_relu",
        &x,
        |e| e.leaky_relu(0.1),
        &map(&x, leaky),
        1e-15,
    );
    // elu far out on the positive side: the branch not taken does not overflow into NaN
    let g = Graph::new();
    let xe = g.input("x", DType::F64, &[Some(2)]);
    let dx = grad(&xe.elu(1.0).sum(), &[&xe]).unwrap().remove(0);
    let got = dx
        .eval(&[(&xe, Tensor::from(vec![800.0, -800.0]))])
        .unwrap();
    assert_close(
        "elu gradient at +-800",
        &got,
        &Tensor::from(vec![1.0, 0.0]),
        0.0,
    );
}

/// erf by its Maclaurin series (enough terms for |x| <= 3 in f64), an oracle independent of
/// the kernel's `libm`.
fn libm_free_erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

#[test]
fn roundings_have_zero_gradient() {
    let x = Tensor::from(vec![-2.5, -1.5, -0.4, 0.5, 1.5, 2.5, 2.7, -2.7]);
    let round = [-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 3.0, -3.0];
    assert_values(
        "round (halves to even)",
        &x,
        |e| e.round(),
        &Tensor::from(round.to_vec()),
        0.0,
    );
    assert_values("floor", &x, |e| e.floor(), &map(&x, f64::floor), 0.0);
    assert_values("ceil", &x, |e| e.ceil(), &map(&x, f64::ceil), 0.0);
    let g = Graph::new();
    let xe = g.input("x", DType::F64, &[None]);
    let half_even = |v: f64| v.round_ties_even();
    for (name, f, r) in [
        (
            "floor",
            Expr::floor as fn(&Expr) -> Expr,
            f64::floor as fn(f64) -> f64,
        ),
        ("round", Expr::round, half_even),
        ("ceil", Expr::ceil, f64::ceil),
    ] {
        // connected (no disconnected-input error) and zero, of x's run-time shape
        let dx = grad(&(f(&xe) * &xe).sum(), &[&xe]).unwrap().remove(0);
        let got = dx.eval(&[(&xe, x.clone())]).unwrap();
        assert_close(&format!("d/dx {name}(x) x"), &got, &map(&x, r), 0.0);
        let dx = grad(&f(&xe).sum(), &[&xe]).unwrap().remove(0);
        let got = dx.eval(&[(&xe, x.clone())]).unwrap();
        assert_close(&format!("d/dx {name}(x)"), &got, &map(&x, |_| 0.0), 0.0);
        // the finite differences agree away from the steps
        case(name)
            .var(&[2, 3], Fill::Distinct)
            .elementwise()
            .check(|x| &f(&x[0]) * &x[0].sin());
    }
}

const AXES: [&[isize]; 4] = [&[0], &[-1], &[0, 2], &[0, 1, 2]];

#[test]
fn var_and_std_gradients() {
    for (k, axes) in AXES.iter().enumerate() {
        for keepdims in [false, true] {
            for ddof in [0, 1] {
                let label = format!("var axes {axes:?} keepdims {keepdims} ddof {ddof}");
                case(&label)
                    .var(&[2, 3, 4], U)
                    .seed(k as u64)
                    .check(|x| x[0].var_ddof(axes, keepdims, ddof));
                case(&label.replace("var", "std"))
                    .var(&[2, 3, 4], U)
                    .seed(k as u64)
                    .check(|x| x[0].std_ddof(axes, keepdims, ddof));
            }
        }
    }
    case("var()")
        .var(&[3, 4], U)
        .elementwise()
        .check(|x| x[0].var());
    case("std()")
        .var(&[3, 4], U)
        .elementwise()
        .check(|x| x[0].std());
    case("var() second order")
        .var(&[5], U)
        .second_order()
        .check(|x| x[0].var());
    case("std_axes of run-time dims")
        .var_dyn(&[None, Some(4)], &[3, 4], U)
        .elementwise()
        .check(|x| x[0].std_axes(&[0], false));
}

#[test]
fn var_and_std_values() {
    let x = uniform(&[3, 4], -2.0, 2.0, 3);
    let a = array(&x);
    let n = a.len() as f64;
    let mean = a.sum() / n;
    let ss: f64 = a.iter().map(|v| (v - mean).powi(2)).sum();
    assert_values("var()", &x, |e| e.var(), &Tensor::from(ss / n), 1e-14);
    assert_values(
        "std()",
        &x,
        |e| e.std(),
        &Tensor::from((ss / n).sqrt()),
        1e-14,
    );
    let sample = |e: &Expr| e.var_ddof(&[0, 1], false, 1);
    assert_values(
        "var ddof 1",
        &x,
        sample,
        &Tensor::from(ss / (n - 1.0)),
        1e-14,
    );
    // per column, kept dims
    let cols: Vec<f64> = a
        .axis_iter(Axis(1))
        .map(|c| {
            let m = c.sum() / 3.0;
            (c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 3.0).sqrt()
        })
        .collect();
    let want = Tensor::from_f64(&[1, 4], cols, DType::F64).unwrap();
    assert_values(
        "std_axes [0] keepdims",
        &x,
        |e| e.std_axes(&[0], true),
        &want,
        1e-14,
    );
}

#[test]
fn cumsum() {
    for axis in [0, 1, -1] {
        case(&format!("cumsum axis {axis}"))
            .var(&[3, 4], U)
            .elementwise()
            .check(|x| x[0].cumsum(axis).sin());
    }
    case("cumsum second order")
        .var(&[2, 3], U)
        .second_order()
        .check(|x| x[0].cumsum(1).square());
    case("cumsum of run-time dims")
        .var_dyn(&[None, None], &[3, 2], U)
        .elementwise()
        .check(|x| x[0].cumsum(0).exp());

    let x = uniform(&[2, 3], -2.0, 2.0, 5);
    let mut want = array(&x);
    want.accumulate_axis_inplace(Axis(1), |&prev, cur| *cur += prev);
    assert_values(
        "cumsum axis 1",
        &x,
        |e| e.cumsum(1),
        &Tensor::from(want),
        1e-15,
    );
    let mut want = array(&x);
    want.accumulate_axis_inplace(Axis(0), |&prev, cur| *cur += prev);
    assert_values(
        "cumsum axis -2",
        &x,
        |e| e.cumsum(-2),
        &Tensor::from(want),
        1e-15,
    );
    // the gradient of a running sum is the reverse running sum of the cotangent
    let g = Graph::new();
    let xe = g.input("x", DType::F64, &[Some(4)]);
    let dx = grad(&xe.cumsum(0).sum(), &[&xe]).unwrap().remove(0);
    let got = dx.eval(&[(&xe, Tensor::from(vec![0.0; 4]))]).unwrap();
    assert_close(
        "d sum(cumsum x)",
        &got,
        &Tensor::from(vec![4.0, 3.0, 2.0, 1.0]),
        0.0,
    );
}

/// The new elementwise ops fuse with their neighbours: a chain of them is one kernel, with the
/// reference's values.
#[test]
fn the_new_elementwise_ops_fuse() {
    for dtype in [DType::F32, DType::F64] {
        let g = Graph::new();
        let x = g.input("x", dtype, &[None, Some(5)]);
        let y = (x.gelu() + x.elu(0.5).erf() - x.leaky_relu(0.1) * (&x * 3).floor())
            * ((&x * 2.0).round() + x.ceil());
        let f = function(&[&x], &[&y]).compile().unwrap();
        let listing = f.debugprint();
        assert_eq!(listing.matches("fused{").count(), 1, "{listing}");
        // the input, the kernel, the output: nothing left outside the kernel
        assert_eq!(listing.lines().count(), 3, "{listing}");
        let r = function(&[&x], &[&y])
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        let xv = uniform(&[3, 5], -2.0, 2.0, 11).cast(dtype);
        let (p, q) = (
            f.call(std::slice::from_ref(&xv)).unwrap(),
            r.call(&[xv]).unwrap(),
        );
        assert_close(&format!("{dtype} fused"), &p[0], &q[0], 1e-5);
    }
}

/// A mistake with a new op is an `Err` naming the op and the line that built it, from
/// `check`, `grad` and `function` alike.
#[test]
fn mistakes_name_the_op_and_the_users_line() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(3)]);
    let k = g.input("k", DType::I64, &[Some(2)]);
    let f = g.input("f", DType::F64, &[Some(2)]);
    let u = g.input("u", DType::F64, &[Some(5), Some(3)]);
    let cases: Vec<(Expr, u32, &str)> = vec![
        (x.cumsum(2), line!(), "cumsum"),
        (x.take_axis(&k, -3), line!(), "take"),
        (x.take_axis(&f, 1), line!(), "indices must be i64"),
        (x.scatter_add(&k, &u), line!(), "must have shape [2, 3]"),
        (x.scatter_add_axis(&k, &x, 5), line!(), "scatter_add"),
        (x.var_axes(&[2], false), line!(), "var"),
        (x.std_ddof(&[0, 7], true, 1), line!(), "var"),
        (k.erf(), line!(), "erf"),
        (k.floor(), line!(), "floor"),
        (k.cumsum(0), line!(), "cumsum"),
        (k.gelu(), line!(), "in gelu: needs a float operand, got i64"),
        (k.elu(1.0), line!(), "in elu: needs a float operand"),
        (k.leaky_relu(0.1), line!(), "in leaky_relu: needs a float"),
        (k.var(), line!(), "in var: needs a float operand"),
        (k.std_axes(&[0], true), line!(), "in var: needs a float"),
        (k.cast(DType::F64).gelu().cumsum(3), line!(), "cumsum"),
    ];
    for (bad, line, what) in cases {
        let err = bad.clone().check().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(what), "{msg} lacks {what:?}");
        let loc = err.location().expect("a build error has a location");
        assert_eq!((loc.file(), loc.line()), (file!(), line), "{msg}");
        let via_grad = grad(&bad.sum(), &[&x]).unwrap_err().to_string();
        assert_eq!(via_grad, msg);
        let via_function = function(&[&x, &k, &f, &u], &[&bad])
            .compile()
            .err()
            .unwrap();
        assert_eq!(via_function.to_string(), msg);
    }
}
