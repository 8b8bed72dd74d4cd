//! The merge pass (common subexpression elimination): nodes that compute the same thing from the
//! same operands become one, and so do constants of equal values.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::{Pass, Phase, Repeat};
use crate::compile::fgraph::FGraph;
use crate::compile::ir::Kind;
use crate::dtype::DType;
use crate::error::Location;
use crate::graph::op::{Conv2d, Op};
use crate::kernels::fused::FusedKernel;
use crate::kernels::gemm::Gemm;

pub(super) const MERGE: Pass = Pass {
    name: "merge",
    phase: Phase::Merge,
    repeat: Repeat::ToFixedPoint,
    run: merge,
};

/// What a non-leaf node computes, as a key: equal keys on equal operands are equal values.
#[derive(PartialEq, Eq, Hash)]
enum Computes {
    Op(Op),
    Gemm(Gemm),
    ConvBias(Conv2d, Location),
    Fused(Arc<FusedKernel>),
}

/// Merge nodes with the same op and operands, and constants with equal values (bit for bit).
/// Inputs, shared variables and random draws never merge.
fn merge(fg: &mut FGraph) -> usize {
    let mut seen: HashMap<(Computes, Vec<usize>), usize> = HashMap::default();
    let mut consts: HashMap<(DType, Vec<usize>, Vec<u64>), usize> = HashMap::default();
    let mut merged = 0;
    for node in fg.order() {
        let key = match fg.kind(node) {
            Kind::Constant(t) => {
                let bits: Vec<u64> = t.to_f64_vec().iter().map(|v| v.to_bits()).collect();
                let target = *consts
                    .entry((t.dtype(), t.shape().to_vec(), bits))
                    .or_insert(node);
                if target != node {
                    fg.replace(node, target, MERGE.name);
                    merged += 1;
                }
                continue;
            }
            Kind::Input { .. } | Kind::Shared(_) | Kind::Loop { .. } => continue,
            kind if kind.is_random() => continue,
            Kind::Op(op) => Computes::Op(op.clone()),
            Kind::Gemm(g) => Computes::Gemm(*g),
            Kind::ConvBias { conv, add } => Computes::ConvBias(*conv, *add),
            Kind::Fused(k) => Computes::Fused(k.clone()),
        };
        let target = *seen.entry((key, fg.inputs(node))).or_insert(node);
        if target != node {
            fg.replace(node, target, MERGE.name);
            merged += 1;
        }
    }
    merged
}
