//! Scheduling: the order a program's nodes run in, and which run together. Consecutive fused
//! kernels of one float type form a run that the runtime takes chunk by chunk through all of
//! them; independent big products pair up to run side by side.

use crate::compile::ir::{Kind, Node};
use crate::dtype::DType;
use crate::graph::op::Op;
use crate::kernels::gemm;
use crate::shape::Dim;

/// For each node, the end of the run of fused kernels it starts: consecutive kernels of one
/// float type, with leaves between them allowed, and at least one more kernel after it; `None`
/// for a node that starts no run.
pub(super) fn kernel_runs(nodes: &[Node]) -> Vec<Option<usize>> {
    let kernel = |n: &Node| {
        matches!(n.kind, Kind::Fused(_)) && matches!(n.ty.dtype, DType::F32 | DType::F64)
    };
    let mut run_end = vec![None; nodes.len()];
    let mut j = 0;
    while j < nodes.len() {
        if !kernel(&nodes[j]) {
            j += 1;
            continue;
        }
        let dtype = nodes[j].ty.dtype;
        let mut kernels = vec![j];
        let mut k = j + 1;
        while k < nodes.len() {
            if kernel(&nodes[k]) && nodes[k].ty.dtype == dtype {
                kernels.push(k);
            } else if !nodes[k].kind.is_leaf() {
                break;
            }
            k += 1;
        }
        let end = kernels.last().expect("one kernel at least") + 1;
        for w in kernels.windows(2) {
            run_end[w[0]] = Some(end);
        }
        j = end;
    }
    run_end
}

/// An order in which each slice runs right after the node it slices: the fused kernels that
/// read the slices of one value (an LSTM's four gates of one product) then follow each other
/// and run as one run (see [`kernel_runs`]) instead of one at a time between the slices.
/// Returns the new order (old indices by position).
pub(super) fn slices_early(nodes: &[Node]) -> Vec<usize> {
    let slice = |n: &Node| matches!(&n.kind, Kind::Op(Op::Slice { .. }));
    let mut slices: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (j, n) in nodes.iter().enumerate() {
        if slice(n) {
            slices[n.inputs[0]].push(j);
        }
    }
    let mut order = Vec::with_capacity(nodes.len());
    for (j, n) in nodes.iter().enumerate() {
        if !slice(n) {
            order.push(j);
        }
        order.extend(slices[j].iter().copied());
    }
    order
}

/// Whether node `n` gives its operand's elements another shape (a view): at the operand's
/// last reader it takes over the operand's buffer, elsewhere it copies it.
fn reshapes(n: &Node) -> bool {
    matches!(
        &n.kind,
        Kind::Op(
            Op::Reshape(_)
                | Op::ReshapeLike
                | Op::ExpandDims(_)
                | Op::Squeeze(_)
                | Op::StopGradient
        )
    )
}

/// An order in which a value's other readers run before a node that reshapes it, where they
/// can (they read only values made before it), so that the reshape is its last reader and
/// takes its buffer over instead of copying it: `sum(g)` before `reshape(g)` when both read
/// the stacked gradient `g` of a loop. Returns the new order (old indices by position).
pub(super) fn readers_before_views(nodes: &[Node]) -> Vec<usize> {
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (j, n) in nodes.iter().enumerate() {
        for &i in &n.inputs {
            if readers[i].last() != Some(&j) {
                readers[i].push(j);
            }
        }
    }
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    let mut pos: Vec<usize> = order.clone();
    for j in 0..nodes.len() {
        if !reshapes(&nodes[j]) {
            continue;
        }
        let later: Vec<usize> = readers[nodes[j].inputs[0]]
            .iter()
            .copied()
            .filter(|&r| r != j && pos[r] > pos[j])
            .collect();
        let movable = |r: &usize| nodes[*r].inputs.iter().all(|&x| pos[x] < pos[j]);
        if later.is_empty() || !later.iter().all(movable) {
            continue;
        }
        let at = pos[j];
        order.retain(|k| !later.contains(k));
        order.splice(at..at, later);
        for (k, &i) in order.iter().enumerate() {
            pos[i] = k;
        }
    }
    order
}

/// Products with fewer multiply-adds than this (unknown dims counted as 1) are not worth
/// running beside another.
const PAIR_MIN_FLOPS: usize = gemm::PAR_MIN_FLOPS;
/// How far ahead (in nodes) a product looks for a partner.
const PAIR_WINDOW: usize = 4096;

/// The multiply-adds of product node `n` that its static shapes guarantee (an unknown dim
/// counts as 1), or 0 if it is not a float product.
fn static_flops(nodes: &[Node], n: &Node) -> usize {
    let Kind::Gemm(product) = &n.kind else {
        return 0;
    };
    if !matches!(n.ty.dtype, DType::F32 | DType::F64) {
        return 0;
    }
    let known = |d: &Dim| d.unwrap_or(1);
    let a = &nodes[n.inputs[0]].ty.shape.dims();
    let k = a
        .get(if product.transpose_a { 0 } else { 1 })
        .map_or(1, known);
    n.ty.shape.dims().iter().map(known).product::<usize>() * k
}

/// Schedule independent products side by side so that the executor can run each pair at
/// once, one on each half of the pool (the runtime's `gemm_pair`). This is meant for machines
/// with more cores than one product of batch 100 can keep busy. (On two cores the `gemm` crate
/// already keeps both busy, and pairs measure the same as products in turn.)
///
/// Each product, in order, looks ahead for the first big product of its dtype that does not
/// depend on it. That one moves up to just after it, and with it the nodes it needs that lie
/// between them, which go first: they cannot depend on the first product either. The result
/// is still an order in which every node comes after its operands. Returns the new order
/// (old indices by position) and the positions that start a pair.
pub(super) fn pair_products(nodes: &[Node]) -> (Vec<usize>, Vec<bool>) {
    let big = |k: usize| static_flops(nodes, &nodes[k]) >= PAIR_MIN_FLOPS;
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    let mut paired = vec![false; nodes.len()];
    // By position: a splice replaces as many positions as it removes, so earlier marks stay.
    let mut pair_start = vec![false; nodes.len()];
    // Scratch marks by old index, cleared after each search.
    let mut after = vec![false; nodes.len()];
    let mut needed = vec![false; nodes.len()];
    let mut pos = 0;
    while pos < order.len() {
        let j = order[pos];
        if paired[j] || !big(j) {
            pos += 1;
            continue;
        }
        after[j] = true;
        let end = order.len().min(pos + PAIR_WINDOW);
        let mut partner = None;
        for (q, &k) in order.iter().enumerate().take(end).skip(pos + 1) {
            if nodes[k].inputs.iter().any(|&i| after[i]) {
                after[k] = true;
            } else if !paired[k] && big(k) && nodes[k].ty.dtype == nodes[j].ty.dtype {
                partner = Some(q);
                break;
            }
        }
        for &k in &order[pos..end] {
            after[k] = false;
        }
        let Some(q) = partner else {
            pos += 1;
            continue;
        };
        let p = order[q];
        for &i in &nodes[p].inputs {
            needed[i] = true;
        }
        for r in (pos + 1..q).rev() {
            if needed[order[r]] {
                for &i in &nodes[order[r]].inputs {
                    needed[i] = true;
                }
            }
        }
        let between = &order[pos + 1..q];
        let mut moved: Vec<usize> = between.iter().copied().filter(|&k| needed[k]).collect();
        let hoisted = moved.len();
        moved.extend([j, p]);
        moved.extend(between.iter().copied().filter(|&k| !needed[k]));
        for k in &moved {
            needed[*k] = false;
        }
        for i in nodes[p]
            .inputs
            .iter()
            .chain(moved.iter().flat_map(|&k| &nodes[k].inputs))
        {
            needed[*i] = false;
        }
        order.splice(pos..=q, moved);
        paired[j] = true;
        paired[p] = true;
        pair_start[pos + hoisted] = true;
        pos += hoisted + 2;
    }
    (order, pair_start)
}
