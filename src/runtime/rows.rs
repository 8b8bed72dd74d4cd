//! Loops split by rows. Where a loop's body treats the rows of its states and of its
//! sequences' slices independently (an RNN's batch: each sequence of the minibatch goes its
//! own way through the steps), the rows can be cut into parts and each part run through all
//! the steps on a thread of its own: one fork and join per loop instead of several per step,
//! which is what the small products of a recurrent step cannot afford.
//!
//! [`by_rows`] proves the independence on the compiled body, node by node: a value is
//! [`Rows::Each`] where its row `r` (along its first axis) is computed from row `r` of the
//! step values alone (and from values that do not depend on the step values), and
//! [`Rows::Same`] where it does not depend on the step values at all. An op that mixes rows
//! (a product over the batch, a sum over the first axis, a reshape) makes the body run whole.

use std::ops::Range;

use crate::compile::ir::{Kind, Node};
use crate::compile::plan::Program;
use crate::graph::Type;
use crate::graph::op::Op;

/// How a value of a body depends on the rows of the step values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Its row `r` along the first axis depends on row `r` of the step values only.
    Each,
    /// It depends on no step value: every part computes the same.
    Same,
}

/// For a body `program` whose inputs `0..step_values` are the step values (the sequences'
/// slices, then the states) and whose other inputs are captured, how each of its outputs
/// depends on the rows; `None` where some node mixes rows (or draws, or is an op this
/// analysis does not know), so that the body cannot be split.
pub(crate) fn by_rows(program: &Program, step_values: usize) -> Option<Vec<Rows>> {
    let nodes = &program.nodes;
    let mut rows: Vec<Rows> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let r = node_rows(n, nodes, &rows, step_values)?;
        rows.push(r);
    }
    Some(program.outputs.iter().map(|&o| rows[o]).collect())
}

/// How node `n` depends on the rows, given its operands' (`None`: it mixes them).
fn node_rows(n: &Node, nodes: &[Node], rows: &[Rows], step_values: usize) -> Option<Rows> {
    match &n.kind {
        Kind::Input { position, .. } => {
            return Some(if *position < step_values {
                Rows::Each
            } else {
                Rows::Same
            });
        }
        Kind::Constant(_) | Kind::Shared(_) => return Some(Rows::Same),
        // A nested loop, a draw or a user's op is never split, even on values of no step.
        Kind::Loop { .. } | Kind::Op(Op::Loop { .. } | Op::Random { .. } | Op::Custom(_)) => {
            return None;
        }
        _ => {}
    }
    let each = |k: usize| rows[n.inputs[k]] == Rows::Each;
    if !(0..n.inputs.len()).any(each) {
        return Some(Rows::Same);
    }
    let ty = |k: usize| &nodes[n.inputs[k]].ty;
    let out = &n.ty;
    // Every operand with rows lines its first axis up with the result's; the others
    // broadcast along it.
    let broadcast = |mut operands: std::ops::Range<usize>| {
        operands.all(|k| {
            if each(k) {
                ty(k).ndim() == out.ndim()
            } else {
                broadcasts_along_rows(ty(k), out)
            }
        })
    };
    let ok = match &n.kind {
        Kind::Gemm(g) => {
            !g.transpose_a
                && each(0)
                && !each(1)
                && ty(0).ndim() == 2
                && (n.inputs.len() < 3 || broadcast(2..3))
        }
        Kind::ConvBias { .. } => each(0) && !each(1) && !each(2),
        Kind::Fused(kernel) => (0..n.inputs.len()).all(|k| {
            let view_axis = kernel.view(k).map(|v| v.axis);
            if each(k) {
                ty(k).ndim() == out.ndim() && view_axis != Some(0)
            } else {
                ty(k).ndim() < out.ndim() || (view_axis != Some(0) && first_is_one(ty(k)))
            }
        }),
        Kind::Op(op) => match op {
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast(_) => {
                broadcast(0..n.inputs.len())
            }
            Op::StopGradient => true,
            // The number of elements along axes other than the rows' is one for all rows.
            Op::DimSize { axes, .. } if !axes.contains(&0) => return Some(Rows::Same),
            Op::Reduce { axes, .. } => !axes.contains(&0),
            Op::Argmax { axis, .. }
            | Op::Softmax(axis)
            | Op::LogSoftmax(axis)
            | Op::Cumsum { axis, .. } => *axis != 0,
            Op::Transpose(perm) => perm.first() == Some(&0),
            Op::ExpandDims(axes) | Op::Squeeze(axes) => !axes.contains(&0),
            Op::Concat(axis) => *axis != 0 && (0..n.inputs.len()).all(each),
            Op::ConcatPart { axis, .. } => *axis != 0 && each(0),
            Op::Slice { axis, .. } => *axis != 0,
            Op::SliceGrad { axis, .. } => *axis != 0 && each(0) && each(1),
            Op::BroadcastLike => each(1) && broadcast(0..1),
            Op::MatMul => each(0) && !each(1) && ty(0).ndim() == 2 && ty(1).ndim() == 2,
            Op::OneHot { .. } => true,
            Op::Conv2d(_) | Op::MaxPool2d(_) | Op::AvgPool2d(_) => each(0) && !each(1),
            // (The last operand gives the shape of the result: it has the rows too.)
            Op::Conv2dInputGrad(_) => each(0) && !each(1) && each(2),
            Op::MaxPool2dGrad(_) | Op::AvgPool2dGrad(_) => (0..n.inputs.len()).all(each),
            _ => false,
        },
        _ => false,
    };
    // (A value made of rows has a first axis: every rule keeps the operand's.)
    (ok && out.ndim() > 0).then_some(Rows::Each)
}

/// Whether a value of type `ty` that depends on no row broadcasts along the first axis of a
/// result of type `out`: it has fewer axes, or a first axis of one.
fn broadcasts_along_rows(ty: &Type, out: &Type) -> bool {
    ty.ndim() < out.ndim() || first_is_one(ty)
}

fn first_is_one(ty: &Type) -> bool {
    ty.shape.dims().first() == Some(&Some(1))
}

/// The rows `0..n` cut into `parts` ranges of nearly equal length, in order: every split of
/// `n` rows into `parts` is this one, so that a loop that reads a split loop's per-step lists
/// and splits the same way reads each part's list as it was made.
pub(crate) fn partition(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts)
        .map(|k| k * n / parts..(k + 1) * n / parts)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_covers_the_rows_in_order() {
        assert_eq!(partition(64, 2), vec![0..32, 32..64]);
        assert_eq!(partition(7, 3), vec![0..2, 2..4, 4..7]);
        for (n, parts) in [(1, 1), (100, 7), (33, 4)] {
            let p = partition(n, parts);
            assert_eq!(p.first().unwrap().start, 0);
            assert_eq!(p.last().unwrap().end, n);
            assert!(p.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
