//! The merge pass (common subexpression elimination): nodes that compute the same thing from the
//! same operands become one, and so do constants of equal values.

use std::hash::{BuildHasher, Hash, Hasher};

use rustc_hash::FxHashMap as HashMap;
use smallvec::SmallVec;

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
enum Computes<'a> {
    Op(&'a Op),
    Gemm(&'a Gemm),
    ConvBias(&'a Conv2d, &'a Location),
    Fused(&'a FusedKernel),
}

/// What node `i` computes, for the nodes that may merge.
fn computes(fg: &FGraph, i: usize) -> Option<Computes<'_>> {
    match fg.kind(i) {
        Kind::Constant(_) | Kind::Input { .. } | Kind::Shared(_) | Kind::Loop { .. } => None,
        kind if kind.is_random() => None,
        Kind::Op(op) => Some(Computes::Op(op)),
        Kind::Gemm(g) => Some(Computes::Gemm(g)),
        Kind::ConvBias { conv, add } => Some(Computes::ConvBias(conv, add)),
        Kind::Fused(k) => Some(Computes::Fused(k)),
    }
}

/// Merge nodes with the same op and operands, and constants with equal values (bit for bit).
/// Inputs, shared variables and random draws never merge.
fn merge(fg: &mut FGraph) -> usize {
    // Nodes by the hash of what they compute and of their operands: the keys themselves are
    // not stored (a 100k-node graph would clone every op and operand list); nodes with the
    // same hash are compared.
    let mut seen: HashMap<u64, SmallVec<[usize; 1]>> = HashMap::default();
    let mut consts: HashMap<(DType, Vec<usize>, Vec<u64>), usize> = HashMap::default();
    let mut merged = 0;
    let hasher = rustc_hash::FxBuildHasher;
    for &node in fg.order().iter() {
        if let Kind::Constant(t) = fg.kind(node) {
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
        let Some(key) = computes(fg, node) else {
            continue;
        };
        let hash = {
            let mut h = hasher.build_hasher();
            key.hash(&mut h);
            fg.operands(node).for_each(|p| p.hash(&mut h));
            h.finish()
        };
        let same = |&t: &usize| {
            computes(fg, t).as_ref() == Some(&key) && fg.operands(t).eq(fg.operands(node))
        };
        let bucket = seen.entry(hash).or_default();
        match bucket.iter().find(|t| same(t)) {
            Some(&target) => {
                fg.replace(node, target, MERGE.name);
                merged += 1;
            }
            None => bucket.push(node),
        }
    }
    merged
}
