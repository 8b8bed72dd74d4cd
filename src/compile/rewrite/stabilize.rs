//! The stabilize phase: forms that neither overflow nor divide 0 by 0 where the naive form does.

use super::pattern::{add_unary, binary, if_same_type, unary};
use super::{Phase, Rewrite};
use crate::compile::fgraph::FGraph;
use crate::graph::op::{Binary, Op, Reduce, Unary};

pub(super) const LOG_SIGMOID_TO_SOFTPLUS: Rewrite = Rewrite::new(
    "log_sigmoid_to_softplus",
    Phase::Stabilize,
    log_sigmoid_to_softplus,
);
pub(super) const LOG_ONE_MINUS_SIGMOID: Rewrite = Rewrite::new(
    "log_one_minus_sigmoid",
    Phase::Stabilize,
    log_one_minus_sigmoid,
);
pub(super) const LOG_SIGMOID_GRAD: Rewrite =
    Rewrite::new("log_sigmoid_grad", Phase::Stabilize, log_sigmoid_grad);
pub(super) const LOG_ONE_PLUS_TO_LOG1P: Rewrite = Rewrite::new(
    "log_one_plus_to_log1p",
    Phase::Stabilize,
    log_one_plus_to_log1p,
);
pub(super) const EXP_MINUS_ONE_TO_EXPM1: Rewrite = Rewrite::new(
    "exp_minus_one_to_expm1",
    Phase::Stabilize,
    exp_minus_one_to_expm1,
);
pub(super) const LOG_SOFTMAX: Rewrite = Rewrite::new("log_softmax", Phase::Stabilize, log_softmax);
pub(super) const LOG_SUM_EXP: Rewrite = Rewrite::new("log_sum_exp", Phase::Stabilize, log_sum_exp);

// log(sigmoid(x)) -> -softplus(-x)
fn log_sigmoid_to_softplus(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let x = unary(fg, s, Unary::Sigmoid)?;
    let nx = add_unary(fg, Unary::Neg, x, i)?;
    let sp = add_unary(fg, Unary::Softplus, nx, i)?;
    let r = add_unary(fg, Unary::Neg, sp, i);
    if_same_type(fg, i, r)
}

// log(1 - sigmoid(x)) -> -softplus(x)
fn log_one_minus_sigmoid(fg: &mut FGraph, i: usize) -> Option<usize> {
    let d = unary(fg, i, Unary::Log)?;
    let (one, s) = binary(fg, d, Binary::Sub)?;
    if !fg.is_const(one, 1.0) {
        return None;
    }
    let x = unary(fg, s, Unary::Sigmoid)?;
    let sp = add_unary(fg, Unary::Softplus, x, i)?;
    let r = add_unary(fg, Unary::Neg, sp, i);
    if_same_type(fg, i, r)
}

// The gradient of log(sigmoid(x)) as grad builds it, (g / s) * (s * (1 - s)) with s = sigmoid(x),
// -> g * sigmoid(-x): no 0/0 where sigmoid underflows.
fn log_sigmoid_grad(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (q, r) = binary(fg, i, Binary::Mul)?;
    let (g, s) = binary(fg, q, Binary::Div)?;
    let (s2, d) = binary(fg, r, Binary::Mul)?;
    let (one, s3) = binary(fg, d, Binary::Sub)?;
    if s != s2 || s != s3 || !fg.is_const(one, 1.0) {
        return None;
    }
    let x = unary(fg, s, Unary::Sigmoid)?;
    let nx = add_unary(fg, Unary::Neg, x, i)?;
    let sn = add_unary(fg, Unary::Sigmoid, nx, i)?;
    let loc = fg.loc(i);
    let out = fg.add_op(Op::Binary(Binary::Mul), &[g, sn], loc);
    if_same_type(fg, i, out)
}

// log(1 + x) -> log1p(x), log(x + 1) -> log1p(x)
fn log_one_plus_to_log1p(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let (a, b) = binary(fg, s, Binary::Add)?;
    let x = if fg.is_const(a, 1.0) {
        b
    } else if fg.is_const(b, 1.0) {
        a
    } else {
        return None;
    };
    let r = add_unary(fg, Unary::Log1p, x, i);
    if_same_type(fg, i, r)
}

// exp(x) - 1 -> expm1(x)
fn exp_minus_one_to_expm1(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (e, one) = binary(fg, i, Binary::Sub)?;
    if !fg.is_const(one, 1.0) {
        return None;
    }
    let x = unary(fg, e, Unary::Exp)?;
    let r = add_unary(fg, Unary::Expm1, x, i);
    if_same_type(fg, i, r)
}

// log(softmax(x, axis)) -> log_softmax(x, axis)
fn log_softmax(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let Some(&Op::Softmax(axis)) = fg.op(s) else {
        return None;
    };
    let x = fg.inputs(s)[0];
    let loc = fg.loc(i);
    let r = fg.add_op(Op::LogSoftmax(axis), &[x], loc);
    if_same_type(fg, i, r)
}

// log(sum(exp(x), axes)) -> log(sum(exp(x - m), axes)) + m, m = max(x, axes): never overflows
fn log_sum_exp(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let Some(Op::Reduce {
        op: Reduce::Sum,
        axes,
        keepdims,
    }) = fg.op(s).cloned()
    else {
        return None;
    };
    let x = unary(fg, fg.inputs(s)[0], Unary::Exp)?;
    // Already shifted (x = y - max(y)): this rule's own output; leave it.
    if let Some((y, m)) = binary(fg, x, Binary::Sub)
        && matches!(
            fg.op(m),
            Some(Op::Reduce {
                op: Reduce::Max,
                ..
            })
        )
        && fg.inputs(m)[0] == y
    {
        return None;
    }
    let loc = fg.loc(i);
    let m = fg.add_op(
        Op::Reduce {
            op: Reduce::Max,
            axes: axes.clone(),
            keepdims: true,
        },
        &[x],
        loc,
    )?;
    let d = fg.add_op(Op::Binary(Binary::Sub), &[x, m], loc)?;
    let e = add_unary(fg, Unary::Exp, d, i)?;
    let sum = fg.add_op(
        Op::Reduce {
            op: Reduce::Sum,
            axes: axes.clone(),
            keepdims,
        },
        &[e],
        loc,
    )?;
    let l = add_unary(fg, Unary::Log, sum, i)?;
    let m = if keepdims {
        m
    } else {
        fg.add_op(Op::Squeeze(axes), &[m], loc)?
    };
    let r = fg.add_op(Op::Binary(Binary::Add), &[l, m], loc);
    if_same_type(fg, i, r)
}
