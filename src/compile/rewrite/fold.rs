//! The fold phase: nodes of constants are evaluated when the function is compiled.

use super::{Phase, Rewrite};
use crate::compile::fgraph::FGraph;
use crate::compile::ir::Kind;
use crate::graph::op::Op;

pub(super) const CONSTANT_FOLD: Rewrite = Rewrite::new("constant_fold", Phase::Fold, constant_fold);

// f(c1, c2, ...) -> its value, when every operand is a constant
fn constant_fold(fg: &mut FGraph, i: usize) -> Option<usize> {
    // Random draws differ per call, and a user op may have effects or be costly.
    match fg.kind(i) {
        Kind::Op(Op::Random { .. } | Op::Custom(_)) => None,
        kind if kind.is_leaf() || !fg.operands_const(i) => None,
        _ => fg.fold(i),
    }
}
