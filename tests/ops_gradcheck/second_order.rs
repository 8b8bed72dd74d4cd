//! Second derivatives: the checker differentiates `sum(s * grad(y))` and compares with finite
//! differences of the first gradient, so each rule's own gradient graph is checked too.

use gradus::prelude::*;

use crate::common::{Fill, case};

const U: Fill = Fill::Uniform(-1.5, 1.5);

/// One second-order test per op, named after it.
macro_rules! second_order_tests {
    ($($name:ident: $f:expr, [$($fill:expr => $shape:expr),+];)*) => {$(
        #[test]
        fn $name() {
            let f: fn(&[Expr]) -> Expr = $f;
            let c = case(concat!(stringify!($name), " (second order)"));
            $(let c = c.var(&$shape, $fill);)+
            c.second_order().elementwise().check(f);
            let c = case(concat!(stringify!($name), " (second order, directions)")).seed(3);
            $(let c = c.var(&$shape, $fill);)+
            c.second_order().check(f);
        }
    )*};
}

second_order_tests! {
    exp: |x| x[0].exp(), [U => [2, 3]];
    tanh: |x| x[0].tanh(), [U => [2, 3]];
    sigmoid: |x| x[0].sigmoid(), [Fill::Uniform(-3.0, 3.0) => [2, 3]];
    softplus: |x| x[0].softplus(), [Fill::Uniform(-3.0, 3.0) => [2, 3]];
    log_sigmoid: |x| x[0].log_sigmoid(), [Fill::Uniform(-3.0, 3.0) => [2, 3]];
    log: |x| x[0].log(), [Fill::Uniform(0.3, 2.0) => [2, 3]];
    sqrt: |x| x[0].sqrt(), [Fill::Uniform(0.3, 2.0) => [2, 3]];
    sin: |x| x[0].sin(), [U => [2, 3]];
    mul: |x| &x[0] * &x[1], [U => [2, 3], U => [3]];
    mul_self: |x| &(&x[0] * &x[0]) * &x[1], [U => [2, 3], U => [3]];
    div: |x| &x[0] / &x[1], [U => [2, 3], Fill::Signed(0.5, 2.0) => [3]];
    pow: |x| x[0].pow(&x[1]), [Fill::Uniform(0.5, 2.0) => [2, 3], U => [3]];
    matmul: |x| x[0].matmul(&x[1]).square(), [U => [2, 3], U => [3, 2]];
    matmul_batched: |x| x[0].matmul(&x[1]).sin(), [U => [2, 2, 3], U => [2, 3, 1]];
    softmax: |x| x[0].softmax(-1), [U => [2, 3]];
    log_softmax: |x| x[0].log_softmax(0), [U => [2, 3]];
    sum: |x| x[0].sum_axes(&[1], false).exp(), [U => [2, 3]];
    mean: |x| x[0].mean_axes(&[0], true).sin(), [U => [2, 3]];
    prod: |x| x[0].prod_axes(&[1], false), [Fill::Signed(0.5, 1.5) => [2, 3]];
    logsumexp: |x| x[0].logsumexp_axes(&[1], false), [U => [2, 3]];
    max: |x| x[0].max_axes(&[1], false).square(), [Fill::Distinct => [2, 3]];
    take: |x| x[0].take(&x[0].graph().constant(vec![2i64, 0, 2])).exp(), [U => [3, 2]];
    slice: |x| x[0].slice_step(1, 0, None, 2).exp(), [U => [2, 5]];
    concat: |x| gradus::concat(&[&x[0], &x[1]], 0).tanh(), [U => [2, 3], U => [1, 3]];
    transpose: |x| x[0].t().matmul(&x[0]), [U => [3, 2]];
    select: |x| x[0].gt(0.0).select(x[0].exp(), x[0].sin()), [Fill::Distinct => [2, 3]];
    relu: |x| x[0].relu().square(), [Fill::Signed(0.1, 2.0) => [2, 3]];
    abs: |x| x[0].abs().pow(3.0), [Fill::Signed(0.1, 2.0) => [2, 3]];
    minimum: |x| x[0].minimum(&x[1]).square(), [Fill::Distinct => [2, 3], Fill::Distinct => [3]];
    clip: |x| x[0].clip(-0.5, 0.5).exp(), [Fill::Distinct => [2, 3]];
    broadcast_to: |x| x[0].broadcast_to(&[2, 3, 4]).exp(), [U => [3, 1]];
    expm1: |x| x[0].expm1(), [U => [2, 3]];
    log1p: |x| x[0].log1p(), [Fill::Uniform(-0.5, 2.0) => [2, 3]];
    cos: |x| x[0].cos(), [U => [2, 3]];
    square: |x| x[0].square().sin(), [U => [2, 3]];
    neg: |x| (-&x[0]).exp(), [U => [2, 3]];
    sub: |x| (&x[0] - &x[1]).exp(), [U => [2, 3], U => [1, 3]];
    pow_constant_exponent: |x| x[0].pow(-1.5), [Fill::Uniform(0.3, 2.0) => [2, 3]];
    stack: |x| gradus::stack(&[&x[0], &x[0].exp()], 1).square(), [U => [2, 3]];
    min: |x| x[0].min_axes(&[0], true).exp(), [Fill::Distinct => [2, 3]];
    permute: |x| x[0].permute(&[1, 2, 0]).exp(), [U => [2, 1, 2]];
    reshape: |x| x[0].reshape(&[3, -1]).softmax(1), [U => [2, 3]];
    binary_cross_entropy_with_logits: |x| x[0].binary_cross_entropy_with_logits(&x[1]),
        [Fill::Uniform(-3.0, 3.0) => [2, 3], Fill::Uniform(0.0, 1.0) => [2, 3]];
}

/// Second order through inputs with run-time dims.
#[test]
fn dynamic_mean_second_order() {
    case("mean over run-time rows (second order)")
        .var_dyn(&[None, Some(3)], &[4, 3], U)
        .second_order()
        .check(|x| (&x[0] - &x[0].mean_axes(&[0], true)).square().mean());
}

/// Second order of the cross-entropy with labels.
#[test]
fn softmax_cross_entropy_second_order() {
    case("softmax_cross_entropy (second order)")
        .var(&[3, 4], U)
        .fixed(Tensor::from(vec![3i64, 0, 1]))
        .second_order()
        .elementwise()
        .check(|x| x[0].softmax_cross_entropy(&x[1]).mean());
}

/// Third derivatives: the checker's second-order mode applied to a gradient.
#[test]
fn third_order() {
    case("grad of sum(sin(x)^3) (second order)")
        .var(&[3], U)
        .second_order()
        .elementwise()
        .check(|x| {
            grad(&x[0].sin().pow(3.0).sum(), &[&x[0]])
                .unwrap()
                .remove(0)
        });
}
