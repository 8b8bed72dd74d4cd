//! `FGraph`: the compiler's mutable copy of the subgraph a function needs.
//!
//! Nodes are never removed: `replace(old, new)` forwards every use of `old` to `new` (resolved by
//! [`FGraph::find`]); [`FGraph::order`] lists the live nodes reachable from the roots in
//! dependency order, and [`FGraph::finish`] compacts them into the program's node list.

use std::cell::RefCell;
use std::sync::Arc;

use super::ir::{Kind, Node, eval_kind, infer_kind};
use crate::error::Location;
use crate::graph::Type;
use crate::graph::op::Op;
use crate::kernels::Exec;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// A replacement the optimizer made: every use of `old` became a use of `new`, by `rule`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Replacement {
    pub old: usize,
    pub new: usize,
    pub rule: &'static str,
}

pub(crate) struct FGraph {
    nodes: Vec<Node>,
    forward: Vec<usize>,
    /// Outputs, then update values.
    roots: Vec<usize>,
    /// Reads per node, refreshed by `count_uses`.
    uses: Vec<u32>,
    /// Reads per node of its values (not only its shape), refreshed by `count_uses`.
    value_uses: Vec<u32>,
    /// Every replacement made, in order, for the debug mode.
    pub history: Vec<Replacement>,
    /// The last [`FGraph::order`] walked, with the number of replacements made before it:
    /// only a replacement changes which nodes are live and their order (a new node is not
    /// live until something is replaced by it), so the walk stands until the next one.
    order: RefCell<Option<(usize, Arc<[usize]>)>>,
    /// `history.len()` when the uses were last counted.
    counted: Option<usize>,
}

impl FGraph {
    pub fn new(nodes: Vec<Node>, roots: Vec<usize>) -> FGraph {
        let forward = (0..nodes.len()).collect();
        FGraph {
            nodes,
            forward,
            roots,
            uses: Vec::new(),
            value_uses: Vec::new(),
            history: Vec::new(),
            order: RefCell::new(None),
            counted: None,
        }
    }

    /// The node `i` now stands for (after replacements).
    pub fn find(&self, mut i: usize) -> usize {
        while self.forward[i] != i {
            i = self.forward[i];
        }
        i
    }

    /// What the node `i` stands for computes.
    pub fn kind(&self, i: usize) -> &Kind {
        &self.nodes[self.find(i)].kind
    }

    /// The user's op of the node `i` stands for, if it is one.
    pub fn op(&self, i: usize) -> Option<&Op> {
        self.kind(i).op()
    }

    pub fn ty(&self, i: usize) -> &Type {
        &self.nodes[self.find(i)].ty
    }

    /// Operands of `i`, resolved.
    pub fn inputs(&self, i: usize) -> Vec<usize> {
        self.operands(i).collect()
    }

    /// [`FGraph::inputs`] without collecting them.
    pub fn operands(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes[self.find(i)]
            .inputs
            .iter()
            .map(|&p| self.find(p))
    }

    pub fn loc(&self, i: usize) -> Location {
        self.nodes[self.find(i)].loc
    }

    /// A new node; its type is inferred (`None` when the operands do not fit, so rules can
    /// simply decline).
    pub fn add(&mut self, kind: Kind, inputs: &[usize], loc: Location) -> Option<usize> {
        let inputs: Vec<usize> = inputs.iter().map(|&p| self.find(p)).collect();
        let types: Vec<Type> = inputs.iter().map(|&p| self.nodes[p].ty.clone()).collect();
        let ty = infer_kind(&kind, &types).ok()?;
        Some(self.push(Node {
            kind,
            inputs,
            ty,
            loc,
        }))
    }

    /// A new node of a user op (see [`FGraph::add`]).
    pub fn add_op(&mut self, op: Op, inputs: &[usize], loc: Location) -> Option<usize> {
        self.add(Kind::Op(op), inputs, loc)
    }

    fn push(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.forward.push(self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    /// A new constant node.
    pub fn constant(&mut self, value: Tensor, loc: Location) -> usize {
        let ty = Type {
            dtype: value.dtype(),
            shape: Shape::known(value.shape()),
        };
        self.push(Node {
            kind: Kind::Constant(Arc::new(value)),
            inputs: Vec::new(),
            ty,
            loc,
        })
    }

    /// The value of a constant node.
    pub fn const_value(&self, i: usize) -> Option<&Tensor> {
        match self.kind(i) {
            Kind::Constant(t) => Some(t),
            _ => None,
        }
    }

    /// Is `i` a constant whose every element equals `v`? (Compared as `f64`, without a copy:
    /// the rules ask this of every node they see.)
    pub fn is_const(&self, i: usize, v: f64) -> bool {
        self.const_value(i).is_some_and(|t| {
            !t.is_empty()
                && match t {
                    Tensor::F32(a) => a.iter().all(|&x| x as f64 == v),
                    Tensor::F64(a) => a.iter().all(|&x| x == v),
                    Tensor::I64(a) => a.iter().all(|&x| x as f64 == v),
                    Tensor::Bool(a) => a.iter().all(|&x| if x { v == 1.0 } else { v == 0.0 }),
                }
        })
    }

    /// Are all of the operands of `i` constants (and is there one)?
    pub fn operands_const(&self, i: usize) -> bool {
        let mut ops = self.operands(i).peekable();
        ops.peek().is_some() && ops.all(|p| self.const_value(p).is_some())
    }

    /// The outputs and update values, resolved.
    pub fn roots(&self) -> Vec<usize> {
        self.roots.iter().map(|&r| self.find(r)).collect()
    }

    /// Recount how many times each live node is read (a root counts as one read); rules that
    /// must not duplicate work ask [`FGraph::uses`]. Returns the [`FGraph::order`] it walked.
    pub fn count_uses(&mut self) -> Arc<[usize]> {
        if self.counted == Some(self.history.len()) {
            // No replacement since: the same live nodes read the same operands.
            return self.order();
        }
        // Each node forwarded straight to what it stands for now, so that the walks below (and
        // the rules' until the next count) follow one link, not a chain of replacements.
        for i in 0..self.forward.len() {
            let to = self.find(i);
            self.forward[i] = to;
        }
        let mut uses = vec![0u32; self.nodes.len()];
        let mut value_uses = vec![0u32; self.nodes.len()];
        let order = self.order();
        for &i in order.iter() {
            // Live nodes stand for themselves, and their operands are one link away (above).
            let n = &self.nodes[i];
            let shape_only = shape_only_operand(&n.kind);
            for (k, p) in n.inputs.iter().map(|&p| self.forward[p]).enumerate() {
                uses[p] += 1;
                if shape_only != Some(k) {
                    value_uses[p] += 1;
                }
            }
        }
        for &r in &self.roots {
            let r = self.forward[r];
            uses[r] += 1;
            value_uses[r] += 1;
        }
        self.uses = uses;
        self.value_uses = value_uses;
        self.counted = Some(self.history.len());
        order
    }

    /// Reads of node `i` as of the last [`FGraph::count_uses`] (0 for nodes made since).
    pub fn uses(&self, i: usize) -> usize {
        self.uses.get(self.find(i)).copied().unwrap_or(0) as usize
    }

    /// Reads of the values of node `i` (not only of its shape), as of the last
    /// [`FGraph::count_uses`]: a node with none would not run if its shape were read elsewhere.
    pub fn value_uses(&self, i: usize) -> usize {
        self.value_uses.get(self.find(i)).copied().unwrap_or(0) as usize
    }

    /// Make every use of `old` a use of `new`; `rule` is recorded for the debug mode.
    pub fn replace(&mut self, old: usize, new: usize, rule: &'static str) {
        let (old, new) = (self.find(old), self.find(new));
        if old != new {
            self.forward[old] = new;
            self.history.push(Replacement { old, new, rule });
        }
    }

    /// Every node, live or replaced, with operands as they were made (index order is a
    /// dependency order).
    pub fn all_nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Live nodes reachable from the roots, operands first.
    pub fn order(&self) -> Arc<[usize]> {
        let made = self.history.len();
        if let Some((at, order)) = &*self.order.borrow()
            && *at == made
        {
            return order.clone();
        }
        let order: Arc<[usize]> = self.walk().into();
        *self.order.borrow_mut() = Some((made, order.clone()));
        order
    }

    /// The depth-first walk behind [`FGraph::order`].
    fn walk(&self) -> Vec<usize> {
        #[derive(Clone, Copy, PartialEq)]
        enum Visit {
            New,
            Open,
            Done,
        }
        let mut state = vec![Visit::New; self.nodes.len()];
        let mut out = Vec::new();
        for &r in &self.roots {
            let mut stack = vec![(self.find(r), false)];
            while let Some((i, expanded)) = stack.pop() {
                if expanded {
                    if state[i] != Visit::Done {
                        state[i] = Visit::Done;
                        out.push(i);
                    }
                    continue;
                }
                if state[i] != Visit::New {
                    continue;
                }
                state[i] = Visit::Open;
                stack.push((i, true));
                for &p in self.nodes[i].inputs.iter().rev() {
                    let p = self.find(p);
                    if state[p] == Visit::New {
                        stack.push((p, false));
                    }
                }
            }
        }
        out
    }

    /// Check the invariants: every live node's type is what inference gives for its operands,
    /// and operands come before users (no cycle).
    pub fn validate(&self) -> Result<(), String> {
        let order = self.order();
        let mut pos: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for (k, &i) in order.iter().enumerate() {
            pos[i] = Some(k);
        }
        for (k, &i) in order.iter().enumerate() {
            let n = &self.nodes[i];
            let ins = self.inputs(i);
            if ins.iter().any(|&p| pos[p].is_none_or(|q| q >= k)) {
                return Err(format!("node {i} ({}) is part of a cycle", n.kind));
            }
            if !n.kind.is_leaf() {
                let types: Vec<Type> = ins.iter().map(|&p| self.nodes[p].ty.clone()).collect();
                match infer_kind(&n.kind, &types) {
                    Ok(t) if t == n.ty => {}
                    Ok(t) => {
                        return Err(format!(
                            "node {i} ({}) has type {} but infers {t}",
                            n.kind, n.ty
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "node {i} ({}) no longer type-checks: {e:?}",
                            n.kind
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluate a node whose operands are all constants (constant folding), with the reference
    /// kernels.
    pub fn fold(&mut self, i: usize) -> Option<usize> {
        let ins = self.inputs(i);
        let values: Vec<&Tensor> = ins
            .iter()
            .map(|&p| self.const_value(p))
            .collect::<Option<_>>()?;
        let types: Vec<&Type> = ins.iter().map(|&p| &self.nodes[p].ty).collect();
        let n = &self.nodes[self.find(i)];
        let out = eval_kind(&n.kind, &values, &types, &n.ty, Exec::Reference).ok()?;
        let loc = n.loc;
        Some(self.constant(out, loc))
    }

    /// Compact the live nodes into a program: nodes in order, and the roots' new indices. A
    /// graph no rewrite touched keeps the order it was copied in (the user's); a rewritten one
    /// runs in the order of [`FGraph::order`].
    pub fn finish(self) -> (Vec<Node>, Vec<usize>) {
        let mut order = self.order().to_vec();
        if self.history.is_empty() {
            order.sort_unstable();
        }
        let mut index: Vec<Option<usize>> = vec![None; self.nodes.len()];
        for (k, &i) in order.iter().enumerate() {
            index[i] = Some(k);
        }
        let live = |i: usize| index[self.find(i)].expect("operands and roots are live");
        let nodes = order
            .iter()
            .map(|&i| {
                let mut n = self.nodes[i].clone();
                n.inputs = n.inputs.iter().map(|&p| live(p)).collect();
                n
            })
            .collect();
        let roots = self.roots.iter().map(|&r| live(r)).collect();
        (nodes, roots)
    }
}

/// The operand of a node of kind `kind` that it reads only for its shape, if one.
fn shape_only_operand(kind: &Kind) -> Option<usize> {
    match kind {
        Kind::Op(Op::DimSize { .. }) => Some(0),
        Kind::Op(Op::BroadcastLike | Op::ReshapeLike) => Some(1),
        _ => None,
    }
}
