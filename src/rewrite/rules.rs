//! The rewrite rules. Each is named data: a snake-case name that describes the change, its
//! phase, and a function with the maths in a comment above it. A rule returns a replacement of
//! the same type or `None`; it may add nodes with `FGraph::add`.

use super::{FGraph, Phase, Rewrite};
use crate::graph::op::{Binary, Op, Reduce, Unary};

/// Every rule, in the order they are tried within a phase.
pub static RULES: &[Rewrite] = &[
    Rewrite {
        name: "constant_fold",
        phase: Phase::Fold,
        apply: constant_fold,
    },
    Rewrite {
        name: "drop_stop_gradient",
        phase: Phase::Canonicalize,
        apply: drop_stop_gradient,
    },
    Rewrite {
        name: "mul_by_one",
        phase: Phase::Canonicalize,
        apply: mul_by_one,
    },
    Rewrite {
        name: "add_zero",
        phase: Phase::Canonicalize,
        apply: add_zero,
    },
    Rewrite {
        name: "sub_zero",
        phase: Phase::Canonicalize,
        apply: sub_zero,
    },
    Rewrite {
        name: "div_by_one",
        phase: Phase::Canonicalize,
        apply: div_by_one,
    },
    Rewrite {
        name: "pow_one",
        phase: Phase::Canonicalize,
        apply: pow_one,
    },
    Rewrite {
        name: "sub_self",
        phase: Phase::Canonicalize,
        apply: sub_self,
    },
    Rewrite {
        name: "shape_from_operand",
        phase: Phase::Canonicalize,
        apply: shape_from_operand,
    },
    Rewrite {
        name: "double_neg",
        phase: Phase::Canonicalize,
        apply: double_neg,
    },
    Rewrite {
        name: "double_transpose",
        phase: Phase::Canonicalize,
        apply: double_transpose,
    },
    Rewrite {
        name: "log_exp",
        phase: Phase::Canonicalize,
        apply: log_exp,
    },
    Rewrite {
        name: "log_sigmoid_to_softplus",
        phase: Phase::Stabilize,
        apply: log_sigmoid_to_softplus,
    },
    Rewrite {
        name: "log_one_minus_sigmoid",
        phase: Phase::Stabilize,
        apply: log_one_minus_sigmoid,
    },
    Rewrite {
        name: "log_sigmoid_grad",
        phase: Phase::Stabilize,
        apply: log_sigmoid_grad,
    },
    Rewrite {
        name: "log_one_plus_to_log1p",
        phase: Phase::Stabilize,
        apply: log_one_plus_to_log1p,
    },
    Rewrite {
        name: "exp_minus_one_to_expm1",
        phase: Phase::Stabilize,
        apply: exp_minus_one_to_expm1,
    },
    Rewrite {
        name: "log_softmax",
        phase: Phase::Stabilize,
        apply: log_softmax,
    },
    Rewrite {
        name: "log_sum_exp",
        phase: Phase::Stabilize,
        apply: log_sum_exp,
    },
    Rewrite {
        name: "mul_self_to_square",
        phase: Phase::Specialize,
        apply: mul_self_to_square,
    },
    Rewrite {
        name: "pow_two_to_square",
        phase: Phase::Specialize,
        apply: pow_two_to_square,
    },
    Rewrite {
        name: "matmul_to_gemm",
        phase: Phase::Specialize,
        apply: matmul_to_gemm,
    },
    Rewrite {
        name: "gemm_bias",
        phase: Phase::Specialize,
        apply: gemm_bias,
    },
    Rewrite {
        name: "gemm_alpha",
        phase: Phase::Specialize,
        apply: gemm_alpha,
    },
];

/// Keep a replacement only if it has the node's type (a rule never changes a type).
fn same(fg: &FGraph, node: usize, new: Option<usize>) -> Option<usize> {
    new.filter(|&n| fg.ty(n) == fg.ty(node))
}

fn binary(fg: &FGraph, i: usize, b: Binary) -> Option<(usize, usize)> {
    match fg.op(i) {
        Op::Binary(x) if *x == b => {
            let ins = fg.inputs(i);
            Some((ins[0], ins[1]))
        }
        _ => None,
    }
}

fn unary(fg: &FGraph, i: usize, u: Unary) -> Option<usize> {
    match fg.op(i) {
        Op::Unary(x) if *x == u => Some(fg.inputs(i)[0]),
        _ => None,
    }
}

fn add_unary(fg: &mut FGraph, u: Unary, x: usize, at: usize) -> Option<usize> {
    let loc = fg.loc(at);
    fg.add(Op::Unary(u), &[x], loc)
}

// f(c1, c2, ...) -> its value, when every operand is a constant
fn constant_fold(fg: &mut FGraph, i: usize) -> Option<usize> {
    let n = fg.node(fg.find(i));
    if n.leaf.is_some() || n.inputs.is_empty() || matches!(n.op, Op::Random { .. } | Op::Custom(_))
    {
        return None;
    }
    fg.fold(i)
}

// stop_gradient(x) -> x (it only matters to grad, which has run)
fn drop_stop_gradient(fg: &mut FGraph, i: usize) -> Option<usize> {
    match fg.op(i) {
        Op::StopGradient => same(fg, i, Some(fg.inputs(i)[0])),
        _ => None,
    }
}

// x * 1 -> x, 1 * x -> x
fn mul_by_one(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Mul)?;
    let keep = if fg.is_const(b, 1.0) {
        a
    } else if fg.is_const(a, 1.0) {
        b
    } else {
        return None;
    };
    same(fg, i, Some(keep))
}

// x + 0 -> x, 0 + x -> x
fn add_zero(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Add)?;
    let keep = if fg.is_const(b, 0.0) {
        a
    } else if fg.is_const(a, 0.0) {
        b
    } else {
        return None;
    };
    same(fg, i, Some(keep))
}

// x - 0 -> x
fn sub_zero(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Sub)?;
    same(fg, i, fg.is_const(b, 0.0).then_some(a))
}

// x / 1 -> x
fn div_by_one(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Div)?;
    same(fg, i, fg.is_const(b, 1.0).then_some(a))
}

// x ** 1 -> x
fn pow_one(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Pow)?;
    same(fg, i, fg.is_const(b, 1.0).then_some(a))
}

// x - x -> 0 (shaped like x; only for finite x is this exact, as in every CAS: inf - inf is nan)
fn sub_self(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Sub)?;
    if a != b {
        return None;
    }
    let loc = fg.loc(i);
    let zero = fg.constant(crate::tensor::Tensor::scalar(0.0, fg.ty(i).dtype), loc);
    let z = fg.add(Op::BroadcastLike, &[zero, a], loc);
    same(fg, i, z)
}

// -(-x) -> x
fn double_neg(fg: &mut FGraph, i: usize) -> Option<usize> {
    let inner = unary(fg, i, Unary::Neg)?;
    same(fg, i, unary(fg, inner, Unary::Neg))
}

// transpose(transpose(x, p), q) -> transpose(x, p∘q), or x when that is the identity
fn double_transpose(fg: &mut FGraph, i: usize) -> Option<usize> {
    let Op::Transpose(q) = fg.op(i).clone() else {
        return None;
    };
    let inner = fg.inputs(i)[0];
    let Op::Transpose(p) = fg.op(inner).clone() else {
        return None;
    };
    let x = fg.inputs(inner)[0];
    let perm: Vec<usize> = q.iter().map(|&k| p[k]).collect();
    if perm.iter().enumerate().all(|(k, &v)| k == v) {
        return same(fg, i, Some(x));
    }
    let loc = fg.loc(i);
    let t = fg.add(Op::Transpose(perm), &[x], loc);
    same(fg, i, t)
}

// log(exp(x)) -> x
fn log_exp(fg: &mut FGraph, i: usize) -> Option<usize> {
    let inner = unary(fg, i, Unary::Log)?;
    same(fg, i, unary(fg, inner, Unary::Exp))
}

// log(sigmoid(x)) -> -softplus(-x)
fn log_sigmoid_to_softplus(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let x = unary(fg, s, Unary::Sigmoid)?;
    let nx = add_unary(fg, Unary::Neg, x, i)?;
    let sp = add_unary(fg, Unary::Softplus, nx, i)?;
    let r = add_unary(fg, Unary::Neg, sp, i);
    same(fg, i, r)
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
    same(fg, i, r)
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
    let out = fg.add(Op::Binary(Binary::Mul), &[g, sn], loc);
    same(fg, i, out)
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
    same(fg, i, r)
}

// exp(x) - 1 -> expm1(x)
fn exp_minus_one_to_expm1(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (e, one) = binary(fg, i, Binary::Sub)?;
    if !fg.is_const(one, 1.0) {
        return None;
    }
    let x = unary(fg, e, Unary::Exp)?;
    let r = add_unary(fg, Unary::Expm1, x, i);
    same(fg, i, r)
}

// log(softmax(x, axis)) -> log_softmax(x, axis)
fn log_softmax(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let Op::Softmax(axis) = *fg.op(s) else {
        return None;
    };
    let x = fg.inputs(s)[0];
    let loc = fg.loc(i);
    let r = fg.add(Op::LogSoftmax(axis), &[x], loc);
    same(fg, i, r)
}

// log(sum(exp(x), axes)) -> log(sum(exp(x - m), axes)) + m, m = max(x, axes): never overflows
fn log_sum_exp(fg: &mut FGraph, i: usize) -> Option<usize> {
    let s = unary(fg, i, Unary::Log)?;
    let Op::Reduce {
        op: Reduce::Sum,
        axes,
        keepdims,
    } = fg.op(s).clone()
    else {
        return None;
    };
    let x = unary(fg, fg.inputs(s)[0], Unary::Exp)?;
    // Already shifted (x = y - max(y)): this rule's own output; leave it.
    if let Some((y, m)) = binary(fg, x, Binary::Sub)
        && matches!(
            fg.op(m),
            Op::Reduce {
                op: Reduce::Max,
                ..
            }
        )
        && fg.inputs(m)[0] == y
    {
        return None;
    }
    let loc = fg.loc(i);
    let m = fg.add(
        Op::Reduce {
            op: Reduce::Max,
            axes: axes.clone(),
            keepdims: true,
        },
        &[x],
        loc,
    )?;
    let d = fg.add(Op::Binary(Binary::Sub), &[x, m], loc)?;
    let e = add_unary(fg, Unary::Exp, d, i)?;
    let sum = fg.add(
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
        fg.add(Op::Squeeze(axes), &[m], loc)?
    };
    let r = fg.add(Op::Binary(Binary::Add), &[l, m], loc);
    same(fg, i, r)
}

// x * x -> square(x)
fn mul_self_to_square(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Mul)?;
    if a != b {
        return None;
    }
    let r = add_unary(fg, Unary::Square, a, i);
    same(fg, i, r)
}

// x ** 2 -> square(x)
fn pow_two_to_square(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Pow)?;
    if !fg.is_const(b, 2.0) {
        return None;
    }
    let r = add_unary(fg, Unary::Square, a, i);
    same(fg, i, r)
}

/// The value of a one-element float constant.
fn scalar_const(fg: &FGraph, i: usize) -> Option<f64> {
    fg.const_value(i)
        .filter(|v| v.len() == 1 && v.dtype().is_float())
        .map(|v| v.to_f64_vec()[0])
}

// a @ b -> gemm(a, b) for matrices, with transposed operands read through strides:
// transpose(a) @ b -> gemm{aᵀ}(a, b), a @ transpose(b) -> gemm{bᵀ}(a, b)
fn matmul_to_gemm(fg: &mut FGraph, i: usize) -> Option<usize> {
    if !matches!(fg.op(i), Op::MatMul) || fg.ty(i).ndim() != 2 {
        return None;
    }
    let ins = fg.inputs(i);
    let untranspose = |p: usize| match fg.op(p) {
        Op::Transpose(perm) if perm[..] == [1, 0] => (fg.inputs(p)[0], true),
        _ => (p, false),
    };
    let ((a, ta), (b, tb)) = (untranspose(ins[0]), untranspose(ins[1]));
    let loc = fg.loc(i);
    let op = Op::Gemm {
        ta,
        tb,
        alpha: 1f64.to_bits(),
    };
    let new = fg.add(op, &[a, b], loc);
    same(fg, i, new)
}

// gemm(a, b) + c -> gemm(a, b, c): the bias is written into the output and the product
// accumulated onto it, when c broadcasts onto the product and nothing else reads the product
fn gemm_bias(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (x, y) = binary(fg, i, Binary::Add)?;
    for (g, c) in [(x, y), (y, x)] {
        if let Op::Gemm { .. } = fg.op(g)
            && fg.inputs(g).len() == 2
            && fg.uses(g) == 1
            && fg.ty(g) == fg.ty(i)
        {
            let (op, loc) = (fg.op(g).clone(), fg.loc(g));
            let mut ins = fg.inputs(g);
            ins.push(c);
            let new = fg.add(op, &ins, loc);
            return same(fg, i, new);
        }
    }
    None
}

// s * gemm(a, b) -> gemm{alpha = s}(a, b) for a scalar constant s (no bias, one reader);
// gemm(-a, b) -> gemm{alpha = -1}(a, b); gemm(s * a, b) -> gemm{alpha = s}(a, b)
fn gemm_alpha(fg: &mut FGraph, i: usize) -> Option<usize> {
    let gemm = |op: &Op| match op {
        Op::Gemm { ta, tb, alpha } => Some((*ta, *tb, f64::from_bits(*alpha))),
        _ => None,
    };
    if let Some((x, y)) = binary(fg, i, Binary::Mul) {
        for (g, s) in [(x, y), (y, x)] {
            if let (Some((ta, tb, alpha)), Some(c)) = (gemm(fg.op(g)), scalar_const(fg, s))
                && fg.inputs(g).len() == 2
                && fg.uses(g) == 1
                && fg.ty(g) == fg.ty(i)
            {
                let op = Op::Gemm {
                    ta,
                    tb,
                    alpha: (alpha * c).to_bits(),
                };
                let (ins, loc) = (fg.inputs(g), fg.loc(g));
                let new = fg.add(op, &ins, loc);
                return same(fg, i, new);
            }
        }
    }
    let (ta, tb, mut alpha) = gemm(fg.op(i))?;
    let mut ins = fg.inputs(i);
    let mut changed = false;
    for operand in ins.iter_mut().take(2) {
        let p = *operand;
        let factor = if let Some(x) = unary(fg, p, Unary::Neg) {
            Some((x, -1.0))
        } else if let Some((x, y)) = binary(fg, p, Binary::Mul) {
            match (scalar_const(fg, x), scalar_const(fg, y)) {
                (_, Some(c)) if fg.ty(x) == fg.ty(p) => Some((x, c)),
                (Some(c), _) if fg.ty(y) == fg.ty(p) => Some((y, c)),
                _ => None,
            }
        } else {
            None
        };
        if let Some((x, c)) = factor {
            *operand = x;
            alpha *= c;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let loc = fg.loc(i);
    let op = Op::Gemm {
        ta,
        tb,
        alpha: alpha.to_bits(),
    };
    let new = fg.add(op, &ins, loc);
    same(fg, i, new)
}

// Ops that read only the shape of an operand read it from further up when it is the same:
// dim_size(f(x), axes) -> dim_size(x, axes') when f keeps those dims of x (an elementwise op of
// x's shape, a squeeze, a reduction, a matmul's outer dims); broadcast_like(y, f(x)) ->
// broadcast_like(y, x) and reshape_like(y, f(x)) -> reshape_like(y, x) for an elementwise f of
// x's shape. The shape then no longer waits for f(x), and f(x) is dropped if nothing else reads it.
fn shape_from_operand(fg: &mut FGraph, i: usize) -> Option<usize> {
    // Walk as far up as the shape stays the same, in one application: a chain thousands of
    // nodes deep then takes one pass, not one pass per node.
    if matches!(fg.op(i), Op::BroadcastLike | Op::ReshapeLike) {
        let ins = fg.inputs(i);
        let mut like = ins[1];
        while let Some(p) = like_source(fg, like) {
            like = p;
        }
        if like == ins[1] {
            return None;
        }
        let (op, loc) = (fg.op(i).clone(), fg.loc(i));
        let new = fg.add(op, &[ins[0], like], loc);
        return same(fg, i, new);
    }
    let Op::DimSize { axes, dtype } = fg.op(i).clone() else {
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
    let new = fg.add(Op::DimSize { axes, dtype }, &[x], loc);
    same(fg, i, new)
}

/// An operand of `like` with its shape, when `like` is elementwise. Not a product: its bias add
/// would then have two readers, and gemm_bias could not take the add into the product.
fn like_source(fg: &FGraph, like: usize) -> Option<usize> {
    match fg.op(like) {
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast(_) => {
            fg.inputs(like).into_iter().find(|&p| {
                fg.ty(p).shape == fg.ty(like).shape
                    && !matches!(fg.op(p), Op::MatMul | Op::Gemm { .. })
            })
        }
        _ => None,
    }
}

/// The operand of `x` that has the dims `axes` of `x`, and where they are in it.
fn dims_source(fg: &FGraph, x: usize, axes: &[usize]) -> Option<(usize, Vec<usize>)> {
    let ins = fg.inputs(x);
    let xs = &fg.ty(x).shape;
    let kept = |dropped: &[usize]| -> Vec<usize> {
        (0..fg.ty(ins[0]).ndim())
            .filter(|k| !dropped.contains(k))
            .collect()
    };
    match fg.op(x) {
        Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast(_) => {
            let p = *ins.iter().find(|&&p| fg.ty(p).shape == *xs)?;
            Some((p, axes.to_vec()))
        }
        Op::Squeeze(sq) => {
            let kept = kept(sq);
            Some((ins[0], axes.iter().map(|&a| kept[a]).collect()))
        }
        Op::Reduce {
            axes: red,
            keepdims: false,
            ..
        } => {
            let kept = kept(red);
            Some((ins[0], axes.iter().map(|&a| kept[a]).collect()))
        }
        Op::MatMul if xs.0.len() == 2 && axes.len() == 1 => Some(if axes[0] == 0 {
            (ins[0], vec![0])
        } else {
            (ins[1], vec![1])
        }),
        _ => None,
    }
}
