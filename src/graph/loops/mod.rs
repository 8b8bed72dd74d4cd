//! Loops in the graph: [`Scan`], Theano's `scan` in Rust's shape, and its while form.
//!
//! A loop's body is built once, as ordinary graph, from symbolic step values: the slices of the
//! sequences at the current step and the current states. What the body reads from outside
//! (parameters, shared variables, inputs, anything computed before the loop) is captured as an
//! input of the loop, computed once and fed to every step; constants stay in the body, where
//! the optimizer can fold them. The loop is then one node per result: the final states, the
//! per-step outputs stacked along a new first axis, and (for gradients) the state at the start
//! of each step, stacked. The compiler compiles the body once into a sub-program that the
//! runtime runs once per step: nothing grows with the number of steps.

//!
//! `mod.rs` holds the loop's types, `scan.rs` the builder ([`Scan`]) and what a body captures,
//! `body.rs` the body rebuilt on other step values (the gradient's use).

mod body;
mod scan;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Location, Result};
use crate::graph::op::Op;
use crate::graph::{Expr, Graph, NodeId, Type};
use crate::shape::{Dim, Shape};

pub(crate) use body::{Rebuilt, step_value, substitute};
pub use scan::Scan;

/// How many steps a loop makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steps {
    /// As many as its sequences are long (they must agree when it runs).
    OfSequences,
    /// As many as its `i64` scalar count input says (at least 0).
    Counted,
    /// Until its condition holds after a step, or `max` steps.
    Until {
        /// The most steps it makes.
        max: usize,
    },
}

/// A loop body: its step values, what it captures, and the results of a step, as nodes of the
/// user's graph (the loop holds ids, not the graph, so that the graph does not hold itself).
#[derive(Debug)]
pub struct LoopBody {
    /// The step values: one slice per sequence, then one value per state.
    pub step_values: Vec<NodeId>,
    /// Number of sequences.
    pub n_sequences: usize,
    /// The outer nodes the body reads, fed to every step unchanged.
    pub captured: Vec<NodeId>,
    /// Which captured nodes are random stream states: a step draws from them with its own
    /// counter, so that steps draw apart.
    pub streams: Vec<bool>,
    /// The next value of each state.
    pub next_states: Vec<NodeId>,
    /// The per-step outputs.
    pub outputs: Vec<NodeId>,
    /// The condition that stops a while loop (a `bool` scalar of the next states).
    pub until: Option<NodeId>,
    /// How many steps it makes.
    pub steps: Steps,
    /// Steps run from the last to the first (sequences read backwards, outputs stacked in
    /// sequence order).
    pub reverse: bool,
    /// The type of each state.
    pub state_types: Vec<Type>,
    /// The type of each per-step output.
    pub output_types: Vec<Type>,
    /// The number of steps, where it is known when the loop is built.
    pub length: Dim,
    /// The body's own nodes (between its step values and its results) with their types: any
    /// of them can be kept per step as a result of the loop ([`LoopResult::Inner`]).
    pub inner: HashMap<NodeId, Type>,
    /// The types of the loop's inputs when it was built (its results' types rest on them).
    pub input_types: Vec<Type>,
    /// Its gradient recomputes each step from the states instead of keeping the values of the
    /// step it needs ([`Scan::recompute`]).
    pub recompute: bool,
    /// Where the user wrote the loop.
    pub loc: Location,
}

impl LoopBody {
    /// Number of states.
    pub fn n_states(&self) -> usize {
        self.next_states.len()
    }

    /// Number of per-step outputs.
    pub fn n_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// The type of result `r` of the loop; `None` if it has no such result.
    pub fn result_type(&self, r: LoopResult) -> Option<Type> {
        let stacked = |ty: &Type| -> Type {
            let mut dims = vec![self.length];
            dims.extend_from_slice(ty.shape.dims());
            Type {
                dtype: ty.dtype,
                shape: Shape::new(dims),
            }
        };
        match r {
            LoopResult::Final(k) => self.state_types.get(k).cloned(),
            LoopResult::Stacked(k) => self.output_types.get(k).map(stacked),
            LoopResult::History(k) => self.state_types.get(k).map(stacked),
            LoopResult::Inner(n) => self.inner.get(&n).map(stacked),
        }
    }

    /// The body's results: the next states, the outputs and the condition.
    pub fn roots(&self) -> Vec<NodeId> {
        let results = self.next_states.iter().chain(&self.outputs);
        results.chain(self.until.iter()).copied().collect()
    }

    /// Position of the count among the loop's inputs, for a counted loop.
    pub fn count_input(&self) -> Option<usize> {
        (self.steps == Steps::Counted).then_some(self.n_sequences + self.n_states())
    }

    /// Position of the first captured node among the loop's inputs.
    pub fn first_captured(&self) -> usize {
        self.n_sequences + self.n_states() + usize::from(self.steps == Steps::Counted)
    }
}

/// Which result of a loop a [`Op::Loop`] node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoopResult {
    /// The final value of state `k`.
    Final(usize),
    /// Per-step output `k`, stacked.
    Stacked(usize),
    /// The value of state `k` at the start of each step, stacked (what the gradient reads).
    History(usize),
    /// The value of a node of the body at each step, stacked (what the gradient keeps of a
    /// step instead of recomputing it).
    Inner(NodeId),
}

/// A loop of the graph, compared by identity.
#[derive(Clone)]
pub struct LoopHandle(pub(crate) Arc<LoopBody>);

impl LoopHandle {
    /// The loop's body.
    pub fn body(&self) -> &LoopBody {
        &self.0
    }

    /// Result `result` of this loop on `inputs` (its sequences, initial states, count and
    /// captured nodes), as a node of `graph`.
    pub(crate) fn result_node(
        &self,
        graph: &Graph,
        inputs: &[Expr],
        result: LoopResult,
    ) -> Result<Expr> {
        let op = Op::Loop {
            body: self.clone(),
            result,
        };
        let inputs: Vec<&Expr> = inputs.iter().collect();
        graph.apply_loc(op, &inputs, self.0.loc).check()
    }
}

impl PartialEq for LoopHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for LoopHandle {}
impl std::hash::Hash for LoopHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state)
    }
}
impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "loop@{}", self.0.loc)
    }
}

/// The results of a loop: the final value of each state, and each per-step output stacked
/// along a new first axis.
#[derive(Clone, Debug)]
pub struct Looped {
    /// The final value of each state.
    pub states: Vec<Expr>,
    /// Each per-step output, stacked: `[steps, ...]`.
    pub outputs: Vec<Expr>,
}

/// What the body of a loop gets at each step.
pub struct Step {
    sequences: Vec<Expr>,
    states: Vec<Expr>,
}

impl Step {
    /// The slice of sequence `k` at this step (its first axis removed).
    pub fn seq(&self, k: usize) -> &Expr {
        &self.sequences[k]
    }

    /// The value of state `k` at the start of this step.
    pub fn state(&self, k: usize) -> &Expr {
        &self.states[k]
    }

    /// All the sequences' slices.
    pub fn sequences(&self) -> &[Expr] {
        &self.sequences
    }

    /// All the states.
    pub fn states(&self) -> &[Expr] {
        &self.states
    }
}

/// What a step of a loop computes: the next value of each state (in order, each of its state's
/// type) and its outputs.
#[derive(Default)]
pub struct StepResult {
    states: Vec<Expr>,
    outputs: Vec<Expr>,
    until: Option<Expr>,
}

impl StepResult {
    /// Nothing yet.
    pub fn new() -> StepResult {
        StepResult::default()
    }

    /// The next value of the next state.
    pub fn state(mut self, next: &Expr) -> Self {
        self.states.push(next.clone());
        self
    }

    /// A per-step output, stacked by the loop.
    pub fn output(mut self, y: &Expr) -> Self {
        self.outputs.push(y.clone());
        self
    }

    /// For a while loop ([`Scan::until`]): stop after this step if `done` (a `bool` scalar)
    /// holds.
    pub fn until(mut self, done: &Expr) -> Self {
        self.until = Some(done.clone());
        self
    }
}
