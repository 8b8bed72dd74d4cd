//! The specialize phase: faster forms of the same value (squares, products with their
//! transposes, bias and scale folded in, convolutions with their bias).

use super::pattern::{add_unary, binary, if_same_type, scalar_const, unary};
use super::{Phase, Rewrite};
use crate::compile::fgraph::FGraph;
use crate::compile::ir::Kind;
use crate::graph::op::{Binary, Op, Unary};
use crate::kernels::gemm::{BiasAdd, Gemm};

pub(super) const MUL_SELF_TO_SQUARE: Rewrite =
    Rewrite::new("mul_self_to_square", Phase::Specialize, mul_self_to_square);
pub(super) const POW_TWO_TO_SQUARE: Rewrite =
    Rewrite::new("pow_two_to_square", Phase::Specialize, pow_two_to_square);
pub(super) const MATMUL_TO_GEMM: Rewrite =
    Rewrite::new("matmul_to_gemm", Phase::Specialize, matmul_to_gemm);
pub(super) const GEMM_BIAS: Rewrite = Rewrite::new("gemm_bias", Phase::Specialize, gemm_bias);
pub(super) const GEMM_ALPHA: Rewrite = Rewrite::new("gemm_alpha", Phase::Specialize, gemm_alpha);
pub(super) const GEMM_SUB: Rewrite = Rewrite::new("gemm_sub", Phase::Specialize, gemm_sub);
pub(super) const CONV_BIAS: Rewrite = Rewrite::new("conv_bias", Phase::Specialize, conv_bias);

// x * x -> square(x)
fn mul_self_to_square(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Mul)?;
    if a != b {
        return None;
    }
    let r = add_unary(fg, Unary::Square, a, i);
    if_same_type(fg, i, r)
}

// x ** 2 -> square(x)
fn pow_two_to_square(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (a, b) = binary(fg, i, Binary::Pow)?;
    if !fg.is_const(b, 2.0) {
        return None;
    }
    let r = add_unary(fg, Unary::Square, a, i);
    if_same_type(fg, i, r)
}

// a @ b -> gemm(a, b) for matrices, with transposed operands read through strides:
// transpose(a) @ b -> gemm{aᵀ}(a, b), a @ transpose(b) -> gemm{bᵀ}(a, b)
fn matmul_to_gemm(fg: &mut FGraph, i: usize) -> Option<usize> {
    if !matches!(fg.op(i), Some(Op::MatMul)) || fg.ty(i).ndim() != 2 {
        return None;
    }
    let ins = fg.inputs(i);
    let untranspose = |p: usize| match fg.op(p) {
        Some(Op::Transpose(perm)) if perm[..] == [1, 0] => (fg.inputs(p)[0], true),
        _ => (p, false),
    };
    let ((a, transpose_a), (b, transpose_b)) = (untranspose(ins[0]), untranspose(ins[1]));
    let loc = fg.loc(i);
    let product = Gemm {
        transpose_a,
        transpose_b,
        alpha: 1.0,
        bias_add: None,
    };
    let new = fg.add(Kind::Gemm(product), &[a, b], loc);
    if_same_type(fg, i, new)
}

/// The product of node `i`, when it is one without a bias that nothing else reads.
fn lone_product(fg: &FGraph, i: usize) -> Option<Gemm> {
    match fg.kind(i) {
        Kind::Gemm(g) if fg.inputs(i).len() == 2 && fg.uses(i) == 1 => Some(*g),
        _ => None,
    }
}

// gemm(a, b) + c -> gemm(a, b, c): the bias is written into the output and the product
// accumulated onto it, when c broadcasts onto the product and nothing else reads the product
fn gemm_bias(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (x, y) = binary(fg, i, Binary::Add)?;
    for (g, c) in [(x, y), (y, x)] {
        if let Some(product) = lone_product(fg, g)
            && fg.ty(g) == fg.ty(i)
        {
            let bias_add = Some(BiasAdd {
                op: "add",
                loc: fg.loc(i),
                bias_first: c == x,
            });
            let loc = fg.loc(g);
            let mut ins = fg.inputs(g);
            ins.push(c);
            let product = Gemm {
                bias_add,
                ..product
            };
            let new = fg.add(Kind::Gemm(product), &ins, loc);
            return if_same_type(fg, i, new);
        }
    }
    None
}

// s * gemm(a, b) -> gemm{alpha = s}(a, b) for a scalar constant s (one reader), and with a
// bias, s * gemm(a, b, d) -> gemm{alpha = s}(a, b, s * d) (a smaller bias, or a bias that is
// itself a product, takes the factor in turn); gemm(-a, b) -> gemm{alpha = -1}(a, b);
// gemm(s * a, b) -> gemm{alpha = s}(a, b)
fn gemm_alpha(fg: &mut FGraph, i: usize) -> Option<usize> {
    if let Some((x, y)) = binary(fg, i, Binary::Mul) {
        for (g, s) in [(x, y), (y, x)] {
            if let (Kind::Gemm(product), Some(c)) = (fg.kind(g), scalar_const(fg, s))
                && fg.uses(g) == 1
                && fg.ty(g) == fg.ty(i)
            {
                let scaled = Gemm {
                    alpha: product.alpha * c,
                    ..*product
                };
                let (mut ins, loc) = (fg.inputs(g), fg.loc(g));
                if let Some(&d) = ins.get(2) {
                    ins[2] = fg.add_op(Op::Binary(Binary::Mul), &[d, s], fg.loc(i))?;
                }
                let new = fg.add(Kind::Gemm(scaled), &ins, loc);
                return if_same_type(fg, i, new);
            }
        }
    }
    let Kind::Gemm(mut product) = *fg.kind(i) else {
        return None;
    };
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
            product.alpha *= c;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    let loc = fg.loc(i);
    let new = fg.add(Kind::Gemm(product), &ins, loc);
    if_same_type(fg, i, new)
}

// c - gemm{alpha}(a, b) -> gemm{-alpha}(a, b, c), and with a bias, c - gemm{alpha}(a, b, d)
// -> gemm{-alpha}(a, b, c - d), for c of the product's type that nothing else reads the
// product for: an update W - lr * (a @ b) is the product accumulated onto a copy of W instead
// of the product and then a pass that reads both (Theano's in-place gemm)
fn gemm_sub(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (c, g) = binary(fg, i, Binary::Sub)?;
    let Kind::Gemm(product) = *fg.kind(g) else {
        return None;
    };
    if fg.uses(g) != 1 || fg.ty(g) != fg.ty(i) || fg.ty(c) != fg.ty(i) {
        return None;
    }
    let (mut ins, loc) = (fg.inputs(g), fg.loc(i));
    let init = match ins.get(2) {
        Some(&d) => fg.add_op(Op::Binary(Binary::Sub), &[c, d], loc)?,
        None => c,
    };
    ins.truncate(2);
    ins.push(init);
    let onto = Gemm {
        alpha: -product.alpha,
        bias_add: Some(BiasAdd {
            loc,
            op: "sub",
            bias_first: true,
        }),
        ..product
    };
    let at = fg.loc(g);
    let new = fg.add(Kind::Gemm(onto), &ins, at);
    if_same_type(fg, i, new)
}

// conv2d(x, w) + b -> conv2d+bias(x, w, b) for a bias of one value per output channel known
// statically ([O, 1, 1] or [1, O, 1, 1]) that nothing else reads the convolution for: the bias
// is written into the output and the product accumulated onto it
fn conv_bias(fg: &mut FGraph, i: usize) -> Option<usize> {
    let (x, y) = binary(fg, i, Binary::Add)?;
    for (c, b) in [(x, y), (y, x)] {
        let Some(Op::Conv2d(conv)) = fg.op(c) else {
            continue;
        };
        let (conv, out, bias) = (*conv, fg.ty(c), fg.ty(b));
        let channels = out.shape.dims().get(1).copied().flatten();
        let dims: Option<Vec<usize>> = bias.shape.dims().iter().copied().collect();
        let per_channel = match (channels, dims.as_deref()) {
            (Some(o), Some([1, o2, 1, 1] | [o2, 1, 1])) => *o2 == o,
            _ => false,
        };
        if !per_channel || fg.uses(c) != 1 || out != fg.ty(i) || bias.dtype != out.dtype {
            continue;
        }
        let (mut ins, loc) = (fg.inputs(c), fg.loc(c));
        ins.push(b);
        let add = fg.loc(i);
        let new = fg.add(Kind::ConvBias { conv, add }, &ins, loc);
        return if_same_type(fg, i, new);
    }
    None
}
