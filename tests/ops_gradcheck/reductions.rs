//! Reductions over one axis, several axes and all axes, with and without `keepdims`.

use gradus::prelude::*;

use gradus::gradcheck::GradCheck;

use crate::common::{Fill, assert_close, case};

/// Axis sets over a `[2, 3, 4]` input, negative axes included.
const AXES: [&[isize]; 6] = [&[0], &[1], &[-1], &[0, 2], &[-2, -1], &[0, 1, 2]];

/// One test per reduction, named after it: every axis set of `AXES`, with and without
/// `keepdims`, plus the full reduction method where there is one. Small cases go element by
/// element.
macro_rules! reduction_tests {
    ($($name:ident: $f:expr, $fill:expr;)*) => {$(
        #[test]
        fn $name() {
            let f: fn(&Expr, &[isize], bool) -> Expr = $f;
            for (k, axes) in AXES.iter().enumerate() {
                for keepdims in [false, true] {
                    let label = format!("{} axes {axes:?} keepdims {keepdims}", stringify!($name));
                    let c = case(&label).var(&[2, 3, 4], $fill).seed(k as u64);
                    let c = if k % 2 == 0 { c.elementwise() } else { c };
                    c.check(|x| f(&x[0], axes, keepdims));
                }
            }
            // a vector and a matrix, all axes
            case(stringify!($name)).var(&[5], $fill).elementwise().check(|x| f(&x[0], &[0], false));
            case(stringify!($name)).var(&[3, 1], $fill).elementwise().check(|x| f(&x[0], &[0, 1], true));
        }
    )*};
}

reduction_tests! {
    sum: |x, a, k| x.sum_axes(a, k), Fill::Uniform(-2.0, 2.0);
    mean: |x, a, k| x.mean_axes(a, k), Fill::Uniform(-2.0, 2.0);
    max: |x, a, k| x.max_axes(a, k), Fill::Distinct;
    min: |x, a, k| x.min_axes(a, k), Fill::Distinct;
    prod: |x, a, k| x.prod_axes(a, k), Fill::Signed(0.5, 1.5);
    logsumexp: |x, a, k| x.logsumexp_axes(a, k), Fill::Uniform(-3.0, 3.0);
}

/// The full reductions `sum()` and `mean()`, and a reduction feeding more maths.
#[test]
fn sum_and_mean_all() {
    case("sum all")
        .var(&[3, 4], Fill::Uniform(-2.0, 2.0))
        .elementwise()
        .check(|x| x[0].sin().sum());
    case("mean all")
        .var(&[2, 3, 4], Fill::Uniform(-2.0, 2.0))
        .check(|x| x[0].mean().exp());
}

/// `logsumexp` of large values, where only the max-shifted form is finite.
#[test]
fn logsumexp_large_values() {
    case("logsumexp")
        .var(&[3, 4], Fill::Uniform(700.0, 720.0))
        .elementwise()
        .check(|x| x[0].logsumexp_axes(&[1], false));
}

/// A reduction result broadcast back against its input (the usual normalisation pattern).
#[test]
fn reduce_then_broadcast() {
    case("x - mean(x, 1, keepdims)")
        .var(&[3, 4], Fill::Uniform(-2.0, 2.0))
        .elementwise()
        .check(|x| (&x[0] - &x[0].mean_axes(&[1], true)).square());
    case("x / max(x, 0)")
        .var(&[3, 4], Fill::Distinct)
        .elementwise()
        .check(|x| &x[0] / &(x[0].max_axes(&[0], false).abs() + 1.0));
}

/// `prod` is a polynomial, smooth at zero: the gradient of a factor that is zero is the product
/// of the others (not `y / x = 0/0`), and any lane with two zeros has a zero gradient. The
/// function is multilinear, so central differences are exact there too.
#[test]
fn prod_with_zeros() {
    let x = ndarray::array![[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.5, -2.0, 0.5]];
    let g = Graph::new();
    let xs = g.input("x", DType::F64, &[Some(3), Some(3)]);
    let gx = grad(&xs.prod_axes(&[1], false).sum(), &[&xs])
        .unwrap()
        .remove(0);
    let got = gx.eval(&[(&xs, Tensor::from(x.clone()))]).unwrap();
    let want = ndarray::array![[6.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.75, -3.0]];
    assert_close("grad of prod with zeros", &got, &Tensor::from(want), 1e-12);

    for (axes, keepdims) in [(&[1][..], false), (&[0][..], true), (&[0, 1][..], false)] {
        for second in [false, true] {
            let report = GradCheck::new(&xs.prod_axes(axes, keepdims), &[&xs])
                .at(&[Tensor::from(x.clone())])
                .elementwise();
            let report = if second {
                report.second_order()
            } else {
                report
            };
            report.run().unwrap_or_else(|e| {
                panic!("prod axes {axes:?} keepdims {keepdims} second order {second}: {e}")
            });
        }
    }
}

/// At ties the gradient of `max`/`min` is split evenly: the max over `[x, x]` is `x`, so its
/// gradient must be 1, and a central difference at a tie sees each tied element at `1/k`.
#[test]
fn max_and_min_ties() {
    for (name, f) in [
        (
            "max",
            (|x: &Expr| x.max_axes(&[0], false)) as fn(&Expr) -> Expr,
        ),
        ("min", |x: &Expr| x.min_axes(&[0], false)),
    ] {
        case(&format!("{name} of stack([x, x])"))
            .var(&[3], Fill::Uniform(-1.0, 1.0))
            .elementwise()
            .check(|x| f(&gradus::stack(&[&x[0], &x[0]], 0)));
        case(&format!("{name} of stack([x, x, x]) (second order)"))
            .var(&[3], Fill::Uniform(-1.0, 1.0))
            .elementwise()
            .second_order()
            .check(|x| f(&gradus::stack(&[&x[0], &x[0].sin(), &x[0]], 0)).square());
    }
    // three-way tie in one lane, none in the other: closed form
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(4)]);
    let gx = grad(&x.max_axes(&[1], true).sum(), &[&x])
        .unwrap()
        .remove(0);
    let xv = ndarray::array![[2.0, 1.0, 2.0, 2.0], [0.5, 3.0, -1.0, 0.0]];
    let got = gx.eval(&[(&x, Tensor::from(xv))]).unwrap();
    let third = 1.0 / 3.0;
    let want = ndarray::array![[third, 0.0, third, third], [0.0, 1.0, 0.0, 0.0]];
    assert_close(
        "grad of max with a three-way tie",
        &got,
        &Tensor::from(want),
        1e-12,
    );
}
