//! The canonicalize phase: algebraic clean-up to one canonical form, so that the later phases
//! see each pattern one way.

use super::pattern::{binary, if_same_type, is_product, unary};
use super::{Phase, Rewrite};
use crate::compile::fgraph::FGraph;
use crate::graph::op::{Binary, Op, Reduce, Unary};
use crate::tensor::Tensor;

pub(super) const DROP_STOP_GRADIENT: Rewrite = Rewrite::new(
    "drop_stop_gradient",
    Phase::Canonicalize,
    drop_stop_gradient,
);
pub(super) const MUL_BY_ONE: Rewrite = Rewrite::new("mul_by_one", Phase::Canonicalize, mul_by_one);
pub(super) const ADD_ZERO: Rewrite = Rewrite::new("add_zero", Phase::Canonicalize, add_zero);
pub(super) const SUB_ZERO: Rewrite = Rewrite::new("sub_zero", Phase::Canonicalize, sub_zero);
pub(super) const DIV_BY_ONE: Rewrite = Rewrite::new("div_by_one", Phase::Canonicalize, div_by_one);
pub(super) const POW_ONE: Rewrite = Rewrite::new("pow_one", Phase::Canonicalize, pow_one);
pub(super) const SUB_SELF: Rewrite = Rewrite::new("sub_self", Phase::Canonicalize, sub_self);
pub(super) const SHAPE_FROM_OPERAND: Rewrite = Rewrite::new(
    "shape_from_operand",
    Phase::Canonicalize,
    shape_from_operand,
);
pub(super) const DOUBLE_NEG: Rewrite = Rewrite::new("double_neg", Phase::Canonicalize, double_neg);
pub(super) const DOUBLE_TRANSPOSE: Rewrite =
    Rewrite::new("double_transpose", Phase::Canonicalize, double_transpose);
pub(super) const LOG_EXP: Rewrite = Rewrite::new("log_exp", Phase::Canonicalize, log_exp);
pub(super) const SLICE_GRADS_TO_CONCAT: Rewrite = Rewrite::new(
    "slice_grads_to_concat",
    Phase::Canonicalize,
    slice_grads_to_concat,
);
pub(super) const FLATTEN_CONCAT: Rewrite =
    Rewrite::new("flatten_concat", Phase::Canonicalize, flatten_concat);

// stop_gradient(x) -> x (it only matters to grad, which has run)
fn drop_stop_gradient(fg: &mut FGraph, i: usize) -> Option<usize> {
    match fg.op(i) {
        Some(Op::StopGradient) => if_same_type(fg, i, Some(fg.inputs(i)[0])),
        _ => None,
    }
}

/// `x` when `i` is the commutative `op` of `x` and the constant `identity` (in either order).
fn identity_operand(fg: &FGraph, i: usize, op: Binary, identity: f64) -> Option<usize> {
    let (a, b) = binary(fg, i, op)?;
    let keep = if fg.is_const(b, identity) {
        a
    } else if fg.is_const(a, identity) {
        b
    } else {
        return None;
    };
    if_same_type(fg, i, Some(keep))
}

// x * 1 -> x, 1 * x -> x
fn mul_by_one(fg: &mut FGraph, i: usize) -> Option<usize> {
    identity_operand(fg, i, Binary::Mul, 1.0)
}

// x + 0 -> x, 0 + x -> x
fn add_zero(fg: &mut FGraph, i: usize) -> Option<usize> {
    identity_operand(fg, i, Binary::Add, 0.0)
}

// x - 0 -> x
fn sub_zero(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Sub)?;
    if_same_type(fg, i, fg.is_const(b, 0.0).then_some(a))
}

// x / 1 -> x
fn div_by_one(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Div)?;
    if_same_type(fg, i, fg.is_const(b, 1.0).then_some(a))
}

// x ** 1 -> x
fn pow_one(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Pow)?;
    if_same_type(fg, i, fg.is_const(b, 1.0).then_some(a))
}

// x - x -> 0 (shaped like x; only for finite x is this exact, as in every CAS: inf - inf is nan)
fn sub_self(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Sub)?;
    if a != b {
        return None;
    }
    let loc = fg.loc(i);
    let zero = fg.constant(Tensor::scalar(0.0, fg.ty(i).dtype), loc);
    let z = fg.add_op(Op::BroadcastLike, &[zero, a], loc);
    if_same_type(fg, i, z)
}

// Ops that read only the shape of an operand read it from further up when it is the same:
// dim_size(f(x), axes) -> dim_size(x, axes') when f keeps those dims of x (an elementwise op of
// x's shape, a squeeze, a reduction, a matmul's outer dims); broadcast_like(y, f(x)) ->
// broadcast_like(y, x) and reshape_like(y, f(x)) -> reshape_like(y, x) for an elementwise f of
// x's shape. The shape then no longer waits for f(x), and f(x) is dropped if nothing else reads it.
fn shape_from_operand(fg: &mut FGraph, i: usize) -> Option<usize> {
    // Walk as far up as the shape stays the same, in one application: a chain thousands of
    // nodes deep then takes one pass, not one pass per node.
    if let Some(op @ (Op::BroadcastLike | Op::ReshapeLike)) = fg.op(i) {
        let op = op.clone();
        let ins = fg.inputs(i);
        let mut like = ins[1];
        while let Some(p) = like_source(fg, like) {
            like = p;
        }
        if like == ins[1] {
            return None;
        }
        let loc = fg.loc(i);
        let new = fg.add_op(op, &[ins[0], like], loc);
        return if_same_type(fg, i, new);
    }
    let Some(Op::DimSize { axes, dtype }) = fg.op(i).cloned() else {
        return None;
    };
    let (mut x, mut axes) = (fg.inputs(i)[0], axes);
    while let Some((p, mapped)) = dims_source(fg, x, &axes) {
        (x, axes) = (p, mapped);
    }
    if x == fg.inputs(i)[0] {
        return None;
    }
    let loc = fg.loc(i);
    let new = fg.add_op(Op::DimSize { axes, dtype }, &[x], loc);
    if_same_type(fg, i, new)
}

// -(-x) -> x
fn double_neg(fg: &mut FGraph, i: usize) -> Option<usize> {
    let inner = unary(fg, i, Unary::Neg)?;
    if_same_type(fg, i, unary(fg, inner, Unary::Neg))
}

// transpose(transpose(x, p), q) -> transpose(x, p∘q), or x when that is the identity
fn double_transpose(fg: &mut FGraph, i: usize) -> Option<usize> {
    let Some(Op::Transpose(q)) = fg.op(i).cloned() else {
        return None;
    };
    let inner = fg.inputs(i)[0];
    let Some(Op::Transpose(p)) = fg.op(inner).cloned() else {
        return None;
    };
    let x = fg.inputs(inner)[0];
    let perm: Vec<usize> = q.iter().map(|&k| p[k]).collect();
    if perm.iter().enumerate().all(|(k, &v)| k == v) {
        return if_same_type(fg, i, Some(x));
    }
    let loc = fg.loc(i);
    let t = fg.add_op(Op::Transpose(perm), &[x], loc);
    if_same_type(fg, i, t)
}

// log(exp(x)) -> x
fn log_exp(fg: &mut FGraph, i: usize) -> Option<usize> {
    let inner = unary(fg, i, Unary::Log)?;
    if_same_type(fg, i, unary(fg, inner, Unary::Exp))
}

/// An operand of the elementwise node `x` with `x`'s shape, whose shape can stand for `x`'s
/// without dropping a check: `x` runs anyway (something reads its values), or every other
/// operand has static dims (a run-time dim is checked against the chosen operand's when `x`
/// runs, and `x` might not run any more).
fn shape_operand(fg: &FGraph, x: usize, accept: impl Fn(usize) -> bool) -> Option<usize> {
    if !matches!(
        fg.op(x),
        Some(Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast(_))
    ) {
        return None;
    }
    let ins = fg.inputs(x);
    let static_dims = |q: usize| fg.ty(q).shape.dims().iter().all(|d| d.is_some());
    ins.iter().copied().find(|&p| {
        fg.ty(p).shape == fg.ty(x).shape
            && accept(p)
            && (fg.value_uses(x) > 0 || ins.iter().all(|&q| q == p || static_dims(q)))
    })
}

/// An operand of `like` with its shape, when `like` is elementwise. Not a product: its bias add
/// would then have two readers, and gemm_bias could not take the add into the product.
fn like_source(fg: &FGraph, like: usize) -> Option<usize> {
    shape_operand(fg, like, |p| !is_product(fg, p))
}

/// The operand of `x` that has the dims `axes` of `x`, and where they are in it.
fn dims_source(fg: &FGraph, x: usize, axes: &[usize]) -> Option<(usize, Vec<usize>)> {
    let ins = fg.inputs(x);
    let xs = &fg.ty(x).shape;
    // Something reads the values of `x`, so it runs (and makes its checks) anyway.
    let runs = fg.value_uses(x) > 0;
    let kept = |dropped: &[usize]| -> Vec<usize> {
        (0..fg.ty(ins[0]).ndim())
            .filter(|k| !dropped.contains(k))
            .collect()
    };
    match fg.op(x) {
        Some(Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast(_)) => {
            shape_operand(fg, x, |_| true).map(|p| (p, axes.to_vec()))
        }
        Some(Op::Squeeze(sq)) => {
            let kept = kept(sq);
            Some((ins[0], axes.iter().map(|&a| kept[a]).collect()))
        }
        // A max over an empty axis fails when it runs: it must still run, if it is one.
        Some(Op::Reduce {
            op,
            axes: red,
            keepdims: false,
        }) if runs || matches!(op, Reduce::Sum | Reduce::Prod) => {
            let kept = kept(red);
            Some((ins[0], axes.iter().map(|&a| kept[a]).collect()))
        }
        // A product whose inner dims are static was checked when it was built; else it must
        // still run, to check them.
        Some(Op::MatMul)
            if xs.ndim() == 2
                && axes.len() == 1
                && (runs
                    || fg.ty(ins[0]).shape.dims()[1].is_some()
                        && fg.ty(ins[1]).shape.dims()[0].is_some()) =>
        {
            Some(if axes[0] == 0 {
                (ins[0], vec![0])
            } else {
                (ins[1], vec![1])
            })
        }
        _ => None,
    }
}

/// The axis, bounds in a tensor of static length `n` along it, gradient and tensor of the
/// slice gradient `i` (step 1).
fn slice_grad(fg: &FGraph, i: usize) -> Option<(usize, (usize, usize), usize, usize)> {
    match fg.op(i) {
        Some(Op::SliceGrad {
            axis,
            start,
            end,
            step: 1,
        }) => {
            let ins = fg.inputs(i);
            let n = fg.ty(ins[1]).shape.dims()[*axis]?;
            // (An empty slice's end may come before its start.)
            let (s, e) = crate::shape::slice_bounds(n, *start, *end);
            Some((*axis, (s, e.max(s)), ins[0], ins[1]))
        }
        _ => None,
    }
}

// slice_grad[a:b](d1, x) + slice_grad[b:c](d2, x) -> slice_grad[a:c](concat(d1, d2), x), and
// slice_grad[0:n](d, x) -> d: the gradient of adjacent slices of one tensor (an LSTM's four
// gates) is assembled by one concat instead of zeros filled, written and added per slice.
fn slice_grads_to_concat(fg: &mut FGraph, i: usize) -> Option<usize> {
    if let Some((axis, (0, e), d, x)) = slice_grad(fg, i)
        && fg.ty(x).shape.dims()[axis] == Some(e)
    {
        return if_same_type(fg, i, Some(d));
    }
    let (p, q) = binary(fg, i, Binary::Add)?;
    let (ax1, (a1, b1), d1, x1) = slice_grad(fg, p)?;
    let (ax2, (a2, b2), d2, x2) = slice_grad(fg, q)?;
    if ax1 != ax2 || x1 != x2 {
        return None;
    }
    let ((lo, from), (hi, to)) = if b1 == a2 {
        ((d1, a1), (d2, b2))
    } else if b2 == a1 {
        ((d2, a2), (d1, b1))
    } else {
        return None;
    };
    let loc = fg.loc(i);
    let parts = fg.add_op(Op::Concat(ax1), &[lo, hi], loc)?;
    let op = Op::SliceGrad {
        axis: ax1,
        start: from as isize,
        end: Some(to as isize),
        step: 1,
    };
    let r = fg.add_op(op, &[parts, x1], loc);
    if_same_type(fg, i, r)
}

// concat(concat(a, b), c) -> concat(a, b, c) along one axis, when nothing else reads the inner
// concat: one copy of each part.
fn flatten_concat(fg: &mut FGraph, i: usize) -> Option<usize> {
    let Some(Op::Concat(axis)) = fg.op(i) else {
        return None;
    };
    let axis = *axis;
    let ins = fg.inputs(i);
    let inner = |p: usize| matches!(fg.op(p), Some(Op::Concat(a)) if *a == axis) && fg.uses(p) == 1;
    if !ins.iter().any(|&p| inner(p)) {
        return None;
    }
    let parts: Vec<usize> = ins
        .iter()
        .flat_map(|&p| if inner(p) { fg.inputs(p) } else { vec![p] })
        .collect();
    let loc = fg.loc(i);
    let r = fg.add_op(Op::Concat(axis), &parts, loc);
    if_same_type(fg, i, r)
}
