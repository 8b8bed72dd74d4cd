//! The fuse pass: regions of elementwise nodes become one fused kernel node each.
//!
//! Walking the graph from its outputs back, an elementwise node joins the region of its users
//! when every user is in that one region, it is not itself a result of the function, and it has
//! the region's shape (so nothing is computed twice and no broadcast value is recomputed per
//! element). Otherwise it starts a region of its own. A region is thus a chain, tree or DAG with
//! one result; the nodes it reads from outside become the kernel's inputs, and scalar constants
//! become immediates.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Pass, Phase, Repeat};
use crate::compile::fgraph::FGraph;
use crate::compile::ir::Kind;
use crate::dtype::DType;
use crate::graph::op::{Binary, Op, Unary};
use crate::kernels::fused::{FusedKernel, Instr, Origin, View};
use crate::shape::Shape;

/// Nodes a region may hold; longer chains are cut into several kernels.
const MAX_REGION: usize = 64;

pub(super) const FUSE_ELEMENTWISE: Pass = Pass {
    name: "fuse_elementwise",
    phase: Phase::Fuse,
    repeat: Repeat::Once,
    run: fuse,
};

/// Can node `i` be computed inside a kernel of float dtype `t`? Bool nodes (comparisons) only
/// as interior values.
fn fusible(fg: &FGraph, i: usize, t: DType) -> bool {
    let ty = fg.ty(i);
    let operands_ok = |float_ops: &[usize]| {
        let ins = fg.inputs(i);
        float_ops.iter().all(|&k| fg.ty(ins[k]).dtype == t)
    };
    let Some(op) = fg.op(i) else {
        return false;
    };
    match op {
        Op::Unary(u) => *u != Unary::Not && ty.dtype == t,
        Op::Binary(b) => !matches!(b, Binary::And | Binary::Or) && ty.dtype == t,
        Op::Compare(_) => operands_ok(&[0, 1]),
        Op::Where => ty.dtype == t && fg.ty(fg.inputs(i)[0]).dtype == DType::Bool,
        Op::Cast(d) => *d == t && matches!(fg.ty(fg.inputs(i)[0]).dtype, DType::Bool),
        _ => false,
    }
}

/// Fuse every region; returns the number of elementwise nodes absorbed into kernels.
fn fuse(fg: &mut FGraph) -> usize {
    let order = fg.order();
    // Tables indexed by node (node indices are dense): a graph of 100k nodes spends its time
    // here, and hashing each index would double it.
    let n = fg.all_nodes().len();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &i in order.iter() {
        for p in fg.inputs(i) {
            users[p].push(i);
        }
    }
    let mut is_root = vec![false; n];
    for r in fg.roots() {
        is_root[r] = true;
    }
    // Region of each node (its result node), walking users before operands.
    let mut region: Vec<Option<usize>> = vec![None; n];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &i in order.iter().rev() {
        let us = users[i].as_slice();
        let joined = (!is_root[i])
            .then(|| us.first().and_then(|&u| region[u]))
            .flatten()
            .filter(|&r| {
                us.iter().all(|&u| region[u] == Some(r))
                    && fg.ty(i).shape == fg.ty(r).shape
                    && members[r].len() < MAX_REGION
                    && fusible(fg, i, fg.ty(r).dtype)
            });
        if let Some(r) = joined {
            region[i] = Some(r);
            members[r].push(i);
        } else if fg.ty(i).dtype.is_float() && fusible(fg, i, fg.ty(i).dtype) {
            region[i] = Some(i);
            members[i] = vec![i];
        }
    }
    let mut pos = vec![0; n];
    for (k, &i) in order.iter().enumerate() {
        pos[i] = k;
    }
    let mut absorbed = 0;
    // Regions by their result, in dependency order.
    for &r in order.iter() {
        if region[r] != Some(r) {
            continue;
        }
        let mut nodes = std::mem::take(&mut members[r]);
        nodes.sort_unstable_by_key(|&i| pos[i]);
        if let Some(k) = kernel(fg, r, &nodes, &region) {
            let (inputs, kernel) = k;
            let loc = fg.loc(r);
            if let Some(new) = fg.add(Kind::Fused(Arc::new(kernel)), &inputs, loc) {
                log::debug!(
                    "rewrite {}: {} nodes ending at node {r} -> node {new} ({})",
                    FUSE_ELEMENTWISE.name,
                    nodes.len(),
                    fg.kind(new)
                );
                fg.replace(r, new, FUSE_ELEMENTWISE.name);
                absorbed += nodes.len();
            }
        }
    }
    absorbed
}

/// The kernel of region `r` (its `nodes` in dependency order) and the nodes it reads from
/// outside.
fn kernel(
    fg: &FGraph,
    r: usize,
    nodes: &[usize],
    region: &[Option<usize>],
) -> Option<(Vec<usize>, FusedKernel)> {
    let t = fg.ty(r).dtype;
    let inside = |p: usize| region.get(p) == Some(&Some(r));
    let scalar = |p: usize| {
        fg.const_value(p)
            .filter(|v| v.len() == 1 && (v.dtype() == t || v.dtype() == DType::Bool))
            .map(|v| v.to_f64_vec()[0])
    };
    let mut inputs: Vec<usize> = Vec::new();
    for &i in nodes {
        for p in fg.inputs(i) {
            if !inside(p) && scalar(p).is_none() && !inputs.contains(&p) {
                inputs.push(p);
            }
        }
    }
    // A slice the kernel reads is read in place: the kernel's operand is what it slices, of
    // which it reads the part. (Not of a value a kernel makes: kernels run together read those
    // from one another whole.)
    let views: Vec<Option<(usize, View)>> = inputs
        .iter()
        .map(|&p| match fg.op(p) {
            Some(&Op::Slice {
                axis,
                start,
                end,
                step: 1,
            }) => {
                let q = fg.inputs(p)[0];
                let ty = fg.ty(q);
                let kernel_made = fusible(fg, q, ty.dtype) || matches!(fg.kind(q), Kind::Fused(_));
                (!kernel_made && (ty.dtype == t || ty.dtype == DType::Bool))
                    .then_some((q, View { axis, start, end }))
            }
            _ => None,
        })
        .collect();
    let mut value: HashMap<usize, u16> = inputs
        .iter()
        .enumerate()
        .map(|(k, &p)| (p, k as u16))
        .collect();
    let mut instrs: Vec<Instr> = Vec::new();
    let mut origin = Origin {
        shapes: inputs.iter().map(|&p| fg.ty(p).shape.clone()).collect(),
        ops: Vec::new(),
    };
    let mut scalars: HashMap<u64, u16> = HashMap::new();
    for &i in nodes {
        let mut ops = Vec::new();
        for p in fg.inputs(i) {
            let v = match (value.get(&p), scalar(p)) {
                (Some(&v), _) => v,
                (None, Some(c)) => *scalars.entry(c.to_bits()).or_insert_with(|| {
                    instrs.push(Instr::Scalar(c));
                    origin.shapes.push(Shape::scalar());
                    origin.ops.push(("constant".into(), fg.loc(p)));
                    (inputs.len() + instrs.len() - 1) as u16
                }),
                (None, None) => return None,
            };
            ops.push(v);
        }
        let ins = match fg.op(i) {
            Some(Op::Unary(u)) => Instr::Unary(*u, ops[0]),
            Some(Op::Binary(b)) => Instr::Binary(*b, ops[0], ops[1]),
            Some(Op::Compare(c)) => Instr::Compare(*c, ops[0], ops[1]),
            Some(Op::Where) => Instr::Where(ops[0], ops[1], ops[2]),
            // bool -> float is the identity on 0/1 values
            Some(Op::Cast(_)) => {
                value.insert(i, ops[0]);
                continue;
            }
            _ => return None,
        };
        instrs.push(ins);
        origin.shapes.push(fg.ty(i).shape.clone());
        origin.ops.push((fg.kind(i).name(), fg.loc(i)));
        value.insert(i, (inputs.len() + instrs.len() - 1) as u16);
    }
    // The result must be the last instruction (a region that is only a cast multiplies by 1).
    let res = value[&r];
    if instrs.is_empty() || res as usize != inputs.len() + instrs.len() - 1 {
        let at = (fg.kind(r).name(), fg.loc(r));
        instrs.push(Instr::Scalar(1.0));
        let one = (inputs.len() + instrs.len() - 1) as u16;
        instrs.push(Instr::Binary(Binary::Mul, res, one));
        origin
            .shapes
            .extend([Shape::scalar(), fg.ty(r).shape.clone()]);
        origin.ops.extend([at.clone(), at]);
    }
    let operands: Vec<usize> = inputs
        .iter()
        .zip(&views)
        .map(|(&p, v)| v.map_or(p, |(q, _)| q))
        .collect();
    let views: Vec<Option<View>> = views.iter().map(|v| v.map(|(_, v)| v)).collect();
    FusedKernel::new(inputs.len(), instrs, fg.ty(r).clone(), origin)
        .map(|k| (operands, k.with_views(views)))
}
