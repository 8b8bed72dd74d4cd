//! A loop's body rebuilt on other step values: how the gradient of a loop builds a step.

use std::collections::HashMap;

use super::LoopBody;
use crate::error::Location;
use crate::graph::op::Op;
use crate::graph::{Expr, Graph, GraphInner, NodeId, Type};

/// A step value of type `ty`: a leaf of the graph that only a loop's body may read.
pub(crate) fn step_value(graph: &Graph, ty: &Type, label: &str, loc: Location) -> Expr {
    let mut g = graph.lock();
    g.next_key += 1;
    let id = g.next_key;
    let label = label.into();
    let node = g.leaf(Op::StepValue { id, label }, ty.clone(), loc);
    drop(g);
    graph.expr(node)
}

/// The nodes of the body rooted at `roots`, in build order: those reached from the roots
/// without passing a step value, a captured node or a constant.
pub(super) fn inner_nodes(
    g: &GraphInner,
    roots: &[NodeId],
    step_ids: &[NodeId],
    captured: &[NodeId],
) -> Vec<NodeId> {
    let mut inner: Vec<NodeId> = Vec::new();
    let mut seen: HashMap<NodeId, ()> = HashMap::new();
    let mut stack = roots.to_vec();
    while let Some(id) = stack.pop() {
        if seen.insert(id, ()).is_some()
            || step_ids.contains(&id)
            || captured.contains(&id)
            || matches!(g.node(id).op, Op::Constant(_))
        {
            continue;
        }
        inner.push(id);
        stack.extend(g.node(id).inputs.iter().copied());
    }
    inner.sort_unstable();
    inner
}

/// `roots` rebuilt with the nodes of `map` replaced by their images: every node between them
/// is made anew on the replaced operands, the others are kept. The map gains the images of
/// the rebuilt nodes.
pub(crate) fn substitute(
    graph: &Graph,
    roots: &[NodeId],
    map: &mut HashMap<NodeId, NodeId>,
) -> Vec<Expr> {
    let mut g = graph.lock();
    let mut order: Vec<NodeId> = Vec::new();
    let mut seen: HashMap<NodeId, ()> = HashMap::new();
    let mut stack = roots.to_vec();
    while let Some(id) = stack.pop() {
        if seen.insert(id, ()).is_some() || map.contains_key(&id) {
            continue;
        }
        order.push(id);
        stack.extend(g.node(id).inputs.iter().copied());
    }
    order.sort_unstable();
    for id in order {
        let n = g.node(id);
        if !n.inputs.iter().any(|p| map.contains_key(p)) {
            continue;
        }
        let (op, loc) = (n.op.clone(), n.loc);
        let inputs = n.inputs.iter().map(|p| *map.get(p).unwrap_or(p)).collect();
        let new = g.apply(op, inputs, loc);
        map.insert(id, new);
    }
    drop(g);
    roots
        .iter()
        .map(|id| graph.expr(*map.get(id).unwrap_or(id)))
        .collect()
}

impl LoopBody {
    /// The body's results (next states, then outputs) rebuilt on other step values `steps`
    /// (one per step value, of its type): every node of the body between its step values and
    /// its results is made anew, draws included, so that a draw rebuilt with the same stream
    /// and step draws the same; captured nodes and constants are shared. This is how the
    /// gradient of a loop recomputes a step.
    pub(crate) fn rebuild(&self, graph: &Graph, steps: &[Expr]) -> Rebuilt {
        debug_assert_eq!(steps.len(), self.step_values.len());
        let mut map: HashMap<NodeId, NodeId> = self
            .step_values
            .iter()
            .zip(steps)
            .map(|(&s, e)| (s, e.id()))
            .collect();
        let mut g = graph.lock();
        let inner = inner_nodes(&g, &self.roots(), &self.step_values, &self.captured);
        for id in inner {
            let n = g.node(id);
            let (op, loc) = (n.op.clone(), n.loc);
            let inputs = n.inputs.iter().map(|p| *map.get(p).unwrap_or(p)).collect();
            let new = g.apply(op, inputs, loc);
            map.insert(id, new);
        }
        drop(g);
        let at = |ids: &[NodeId]| -> Vec<Expr> {
            ids.iter()
                .map(|id| graph.expr(*map.get(id).unwrap_or(id)))
                .collect()
        };
        Rebuilt {
            next: at(&self.next_states),
            outputs: at(&self.outputs),
            map,
        }
    }
}

/// A loop's step rebuilt on other step values ([`LoopBody::rebuild`]).
pub(crate) struct Rebuilt {
    /// The next states.
    pub next: Vec<Expr>,
    /// The per-step outputs.
    pub outputs: Vec<Expr>,
    /// The image of every node of the body (and of its step values).
    pub map: HashMap<NodeId, NodeId>,
}
