//! What the rules match and build with: an op of a node, its operands, a scalar constant.

use crate::compile::fgraph::FGraph;
use crate::compile::ir::Kind;
use crate::graph::op::{Binary, Op, Unary};
use crate::tensor::Tensor;

/// `new`, if it has the type of `node`: a rule never changes a type.
pub(super) fn if_same_type(fg: &FGraph, node: usize, new: Option<usize>) -> Option<usize> {
    new.filter(|&n| fg.ty(n) == fg.ty(node))
}

/// The operands of `i` when it is the binary op `b`.
pub(super) fn binary(fg: &FGraph, i: usize, b: Binary) -> Option<(usize, usize)> {
    match fg.op(i) {
        Some(Op::Binary(x)) if *x == b => {
            let mut ins = fg.operands(i);
            Some((ins.next()?, ins.next()?))
        }
        _ => None,
    }
}

/// The operand of `i` when it is the unary op `u`.
pub(super) fn unary(fg: &FGraph, i: usize, u: Unary) -> Option<usize> {
    match fg.op(i) {
        Some(Op::Unary(x)) if *x == u => fg.operands(i).next(),
        _ => None,
    }
}

/// A new node `u(x)`, located where node `at` was built.
pub(super) fn add_unary(fg: &mut FGraph, u: Unary, x: usize, at: usize) -> Option<usize> {
    let loc = fg.loc(at);
    fg.add_op(Op::Unary(u), &[x], loc)
}

/// The value of a one-element float constant.
pub(super) fn scalar_const(fg: &FGraph, i: usize) -> Option<f64> {
    // Read in place: the rules ask this of every operand they look at.
    match fg.const_value(i)? {
        Tensor::F32(a) if a.len() == 1 => a.iter().next().map(|&v| v as f64),
        Tensor::F64(a) if a.len() == 1 => a.iter().next().copied(),
        _ => None,
    }
}

/// Is `i` a product node?
pub(super) fn is_product(fg: &FGraph, i: usize) -> bool {
    matches!(fg.kind(i), Kind::Gemm(_) | Kind::Op(Op::MatMul))
}
