//! Elementwise ops: unary ops at several ranks, binary ops at several broadcast pairs (the
//! gradient of the broadcast operand is summed back by the sweep).

use gradus::prelude::*;

use crate::common::{BINARY_SHAPES, Fill, UNARY_SHAPES, assert_close, case, small};

/// One test per unary op, named after it: the op at every shape of `UNARY_SHAPES`, element by
/// element where the input is small, along random directions otherwise.
macro_rules! unary_tests {
    ($($name:ident: $f:expr, $fill:expr;)*) => {$(
        #[test]
        fn $name() {
            let f: fn(&Expr) -> Expr = $f;
            for (k, shape) in UNARY_SHAPES.iter().enumerate() {
                let c = case(stringify!($name)).var(shape, $fill).seed(k as u64);
                let c = if small(&[shape]) { c.elementwise() } else { c };
                c.check(|x| f(&x[0]));
            }
        }
    )*};
}

unary_tests! {
    neg: |x| -x, Fill::Uniform(-2.0, 2.0);
    exp: |x| x.exp(), Fill::Uniform(-2.0, 2.0);
    log: |x| x.log(), Fill::Uniform(0.2, 3.0);
    log1p: |x| x.log1p(), Fill::Uniform(-0.7, 3.0);
    expm1: |x| x.expm1(), Fill::Uniform(-2.0, 2.0);
    sqrt: |x| x.sqrt(), Fill::Uniform(0.2, 3.0);
    square: |x| x.square(), Fill::Uniform(-2.0, 2.0);
    abs: |x| x.abs(), Fill::Signed(0.1, 2.0);
    sin: |x| x.sin(), Fill::Uniform(-3.0, 3.0);
    cos: |x| x.cos(), Fill::Uniform(-3.0, 3.0);
    tanh: |x| x.tanh(), Fill::Uniform(-2.5, 2.5);
    sigmoid: |x| x.sigmoid(), Fill::Uniform(-4.0, 4.0);
    softplus: |x| x.softplus(), Fill::Uniform(-4.0, 4.0);
    log_sigmoid: |x| x.log_sigmoid(), Fill::Uniform(-4.0, 4.0);
    relu: |x| x.relu(), Fill::Signed(0.1, 2.0);
    pow_constant_exponent: |x| x.pow(3.0), Fill::Uniform(-2.0, 2.0);
    pow_constant_fractional_exponent: |x| x.pow(-1.5), Fill::Uniform(0.3, 2.0);
    clip: |x| x.clip(-1.0, 1.0), Fill::Distinct;
}

/// A unary op far out in its tails, where a naive formula overflows or cancels.
#[test]
fn sigmoid_and_softplus_large_logits() {
    for (name, f) in [
        ("sigmoid", (|x: &Expr| x.sigmoid()) as fn(&Expr) -> Expr),
        ("softplus", |x: &Expr| x.softplus()),
        ("log_sigmoid", |x: &Expr| x.log_sigmoid()),
    ] {
        case(name)
            .var(&[6], Fill::Signed(15.0, 30.0))
            .elementwise()
            .check(|x| f(&x[0]));
    }
}

/// One test per binary op, named after it: gradients of both operands at every pair of
/// `BINARY_SHAPES` (same shape, trailing-axis, leading-axis and 1-vs-n broadcasts, scalar with
/// matrix, rank 3 with rank 2).
macro_rules! binary_tests {
    ($($name:ident: $f:expr, $fa:expr, $fb:expr;)*) => {$(
        #[test]
        fn $name() {
            let f: fn(&Expr, &Expr) -> Expr = $f;
            for (k, (a, b)) in BINARY_SHAPES.iter().enumerate() {
                let c = case(stringify!($name)).var(a, $fa).var(b, $fb).seed(k as u64);
                let c = if small(&[a, b]) { c.elementwise() } else { c };
                c.check(|x| f(&x[0], &x[1]));
            }
        }
    )*};
}

binary_tests! {
    add: |a, b| a + b, Fill::Uniform(-2.0, 2.0), Fill::Uniform(-2.0, 2.0);
    sub: |a, b| a - b, Fill::Uniform(-2.0, 2.0), Fill::Uniform(-2.0, 2.0);
    mul: |a, b| a * b, Fill::Uniform(-2.0, 2.0), Fill::Uniform(-2.0, 2.0);
    div: |a, b| a / b, Fill::Uniform(-2.0, 2.0), Fill::Signed(0.5, 2.0);
    pow: |a, b| a.pow(b), Fill::Uniform(0.3, 2.5), Fill::Uniform(-2.0, 2.0);
    maximum: |a, b| a.maximum(b), Fill::Distinct, Fill::Distinct;
    minimum: |a, b| a.minimum(b), Fill::Distinct, Fill::Distinct;
    // an operand used on both sides of an op: the fan-out sums must meet the broadcast sums
    mul_self_broadcast: |a, b| &(a * b) * a, Fill::Uniform(-2.0, 2.0), Fill::Uniform(-2.0, 2.0);
}

/// `clip` with tensor bounds: gradient flows to `x` inside, to the bounds outside.
#[test]
fn clip_tensor_bounds() {
    case("clip")
        .var(&[3, 4], Fill::Distinct)
        .var(&[4], Fill::Distinct)
        .var(&[3, 1], Fill::Distinct)
        .elementwise()
        .check(|x| {
            // offsets that are not multiples of the grid step, so bounds never tie with x
            let lo = &x[1] - 0.55;
            let hi = &x[2] + 0.52;
            x[0].clip(&lo, &hi)
        });
}

/// `where(c, a, b)` with a condition, branches of three broadcast shapes, and a number branch.
#[test]
fn select() {
    let cond = Tensor::from(ndarray::array![[true], [false], [true]]);
    case("select")
        .var(&[3, 4], Fill::Uniform(-2.0, 2.0))
        .var(&[4], Fill::Uniform(-2.0, 2.0))
        .fixed(cond.clone())
        .elementwise()
        .check(|x| x[2].select(x[0].sin(), x[1].exp()));
    case("select")
        .var(&[3, 4], Fill::Uniform(-2.0, 2.0))
        .fixed(cond)
        .elementwise()
        .check(|x| x[1].select(&x[0], 0.5));
    // the condition computed from the variable itself carries no gradient
    case("select")
        .var(&[2, 3, 4], Fill::Distinct)
        .check(|x| x[0].gt(0.0).select(x[0].square(), x[0].sin()));
}

/// Through a cast to f32 and back: the gradient is cast along. f32 rounding limits the
/// finite-difference accuracy, so this runs with f32's tolerance and a larger step.
#[test]
fn cast() {
    case("cast f64->f32->f64")
        .var(&[3, 4], Fill::Uniform(-1.0, 1.0))
        .eps(1e-2)
        .tolerance(1e-3, 1e-2)
        .elementwise()
        .check(|x| x[0].cast(DType::F32).exp().cast(DType::F64) * &x[0]);
    // f32 variables, f64 in the middle, default f32 tolerances
    case("cast f32->f64->f32")
        .var(&[2, 3], Fill::Uniform(-1.0, 1.0))
        .dtype(DType::F32)
        .elementwise()
        .check(|x| x[0].cast(DType::F64).sin().cast(DType::F32));
    // a cast to the same dtype is the identity
    case("cast f64->f64")
        .var(&[3, 4], Fill::Uniform(-1.0, 1.0))
        .check(|x| x[0].cast(DType::F64).tanh());
}

/// f32 variables through a few ops, with the checker's f32 defaults.
#[test]
fn f32_elementwise() {
    case("f32 tanh*exp")
        .var(&[3, 4], Fill::Uniform(-1.0, 1.0))
        .var(&[4], Fill::Uniform(-1.0, 1.0))
        .dtype(DType::F32)
        .check(|x| &x[0].tanh() * &x[1].exp());
}

/// `a^b` at a zero base with a positive exponent: the value is 0 for every nearby `b`, so the
/// gradient of `b` is 0 (not `log(0) * 0 = NaN`); the gradient of `a` is `b a^(b-1)`.
#[test]
fn pow_zero_base() {
    let base = Tensor::from(vec![0.0, 0.0, 1.5, 0.0]);
    for second in [false, true] {
        let c = case("pow of a zero base, d/d exponent")
            .var(&[4], Fill::Uniform(1.2, 3.0))
            .fixed(base.clone())
            .elementwise();
        let c = if second { c.second_order() } else { c };
        c.check(|x| x[1].pow(&x[0]));
    }
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(4)]);
    let b = g.input("b", DType::F64, &[Some(4)]);
    let grads = grad(&a.pow(&b).sum(), &[&a, &b]).unwrap();
    let out = gradus::eval(
        &[&grads[0], &grads[1]],
        &[(&a, base), (&b, Tensor::from(vec![2.5, 1.0, 2.0, 3.0]))],
    )
    .unwrap();
    let db = 1.5f64.powi(2) * 1.5f64.ln();
    assert_close(
        "d/da",
        &out[0],
        &Tensor::from(vec![0.0, 1.0, 3.0, 0.0]),
        1e-12,
    );
    assert_close(
        "d/db",
        &out[1],
        &Tensor::from(vec![0.0, 0.0, db, 0.0]),
        1e-12,
    );
}
