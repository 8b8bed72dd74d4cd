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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::graph::{Expr, Graph, GraphInner, NodeId, Type};
use crate::shape::{Dim, Shape};

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

/// A loop being described (Theano's `scan`): over sequences, with states, a number of steps,
/// and a body built once as graph.
///
/// ```
/// use gradus::prelude::*;
/// use gradus::{Scan, StepResult};
/// let g = Graph::new();
/// let xs = g.input("xs", DType::F64, &[None, Some(2)]);
/// let h0 = g.input("h0", DType::F64, &[Some(2)]);
/// // h_t = tanh(h_{t-1} + x_t), one output per step
/// let looped = Scan::over(&[&xs])
///     .states(&[&h0])
///     .run(|s| {
///         let h = (s.state(0) + s.seq(0)).tanh();
///         Ok(StepResult::new().state(&h).output(&h))
///     })
///     .unwrap();
/// let f = function(&[&xs, &h0], &[&looped.states[0], &looped.outputs[0]]).compile().unwrap();
/// let out = f.call(&[ndarray::arr2(&[[0.5, 0.0], [0.5, 1.0]]).into(), vec![0.0, 0.0].into()]).unwrap();
/// assert_eq!(out[1].shape(), &[2, 2]);
/// ```
pub struct Scan {
    sequences: Vec<Expr>,
    init: Vec<Expr>,
    steps: ScanSteps,
    reverse: bool,
    recompute: bool,
    loc: Location,
}

enum ScanSteps {
    OfSequences,
    Counted(Expr),
    Fixed(usize),
    Until(usize),
}

impl Scan {
    /// A loop over `sequences`, each sliced along its first axis: step `t` sees `xs[t]`.
    #[track_caller]
    pub fn over(sequences: &[&Expr]) -> Scan {
        Scan {
            sequences: sequences.iter().map(|e| (*e).clone()).collect(),
            init: Vec::new(),
            steps: ScanSteps::OfSequences,
            reverse: false,
            recompute: false,
            loc: Location::caller(),
        }
    }

    /// A loop over no sequences, for `steps` steps.
    #[track_caller]
    pub fn times(steps: usize) -> Scan {
        let mut s = Scan::over(&[]);
        s.loc = Location::caller();
        s.steps = ScanSteps::Fixed(steps);
        s
    }

    /// A loop over no sequences, for as many steps as the `i64` scalar `count` says when it
    /// runs (CD-k with k chosen per call).
    #[track_caller]
    pub fn counted(count: &Expr) -> Scan {
        let mut s = Scan::over(&[]);
        s.loc = Location::caller();
        s.steps = ScanSteps::Counted(count.clone());
        s
    }

    /// A while loop: steps until the body's [`StepResult::until`] holds, at most `max`.
    #[track_caller]
    pub fn until(max: usize) -> Scan {
        let mut s = Scan::over(&[]);
        s.loc = Location::caller();
        s.steps = ScanSteps::Until(max);
        s
    }

    /// The states and their initial values.
    pub fn states(mut self, init: &[&Expr]) -> Self {
        self.init = init.iter().map(|e| (*e).clone()).collect();
        self
    }

    /// Run the steps from the last to the first: the sequences are read backwards, and the
    /// outputs are stacked in sequence order.
    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    /// Checkpointing: the gradient keeps only the state at the start of each step and
    /// recomputes the rest of the step when it needs it, instead of keeping every value of
    /// every step that it reads. Less memory (the states, not the gates of an LSTM), one more
    /// forward step per step of the gradient.
    pub fn recompute(mut self) -> Self {
        self.recompute = true;
        self
    }

    /// The loop is the user's at `loc` (a loop gradus builds for one of the user's).
    pub(crate) fn at(mut self, loc: Location) -> Self {
        self.loc = loc;
        self
    }

    /// Build the body from the step values, and the loop.
    pub fn run(self, body: impl FnOnce(&Step) -> Result<StepResult>) -> Result<Looped> {
        let loc = self.loc;
        let usage = |what: String| Error::Usage { what, loc };
        let graph = match (self.sequences.first(), self.init.first()) {
            (Some(e), _) | (None, Some(e)) => e.graph().clone(),
            (None, None) => return Err(usage("a loop needs a sequence or a state".into())),
        };
        let all: Vec<&Expr> = self.sequences.iter().chain(&self.init).collect();
        for e in &all {
            if !e.graph().same(&graph) {
                return Err(usage(format!("{} belongs to another graph", e.name())));
            }
            (*e).clone().check()?;
        }
        if matches!(self.steps, ScanSteps::Until(_)) && self.reverse {
            return Err(usage(
                "a while loop runs forward; it cannot be reversed".into(),
            ));
        }
        if matches!(self.steps, ScanSteps::OfSequences) && self.sequences.is_empty() {
            return Err(usage(
                "a loop over no sequences needs a number of steps".into(),
            ));
        }
        let mut seq_types = Vec::new();
        for s in &self.sequences {
            let ty = s.ty();
            if ty.ndim() == 0 {
                return Err(usage(format!(
                    "sequence {} is a scalar; a loop slices its first axis",
                    s.name()
                )));
            }
            seq_types.push(ty);
        }
        let slices: Vec<Expr> = seq_types
            .iter()
            .zip(&self.sequences)
            .map(|(t, e)| {
                let ty = Type::new(t.dtype, &t.shape.dims()[1..]);
                step_value(&graph, &ty, &format!("{}[t]", e.name()), loc)
            })
            .collect();
        let states: Vec<Expr> = (self.init.iter().enumerate())
            .map(|(k, e)| step_value(&graph, &e.ty(), &format!("state{k}"), loc))
            .collect();
        let step = Step {
            sequences: slices,
            states,
        };
        let result = body(&step)?;
        let (next, outputs, until) = (result.states, result.outputs, result.until);
        if next.len() != self.init.len() {
            return Err(usage(format!(
                "the body returns {} next states for {} states",
                next.len(),
                self.init.len()
            )));
        }
        for (k, (n, s)) in next.iter().zip(&step.states).enumerate() {
            let n = n.clone().check()?;
            // Dims known on one side only are checked when the loop runs.
            let (nt, st) = (n.ty(), s.ty());
            let fits = nt.dtype == st.dtype
                && nt.ndim() == st.ndim()
                && (nt.shape.dims().iter().zip(st.shape.dims()))
                    .all(|(a, b)| a.is_none() || b.is_none() || a == b);
            if !fits {
                return Err(Error::Usage {
                    what: format!(
                        "the next value of state {k} has type {}, the state {}",
                        n.ty(),
                        s.ty()
                    ),
                    loc: n.location(),
                });
            }
        }
        for o in &outputs {
            o.clone().check()?;
        }
        let steps = match (&self.steps, &until) {
            (ScanSteps::Until(max), Some(u)) => {
                let u = u.clone().check()?;
                if u.dtype() != DType::Bool || u.ndim() != 0 {
                    return Err(Error::Usage {
                        what: format!("a loop's `until` must be a bool scalar, got {}", u.ty()),
                        loc: u.location(),
                    });
                }
                Steps::Until { max: *max }
            }
            (ScanSteps::Until(_), None) => {
                return Err(usage("a while loop's body must say `until`".into()));
            }
            (_, Some(_)) => {
                return Err(usage("only a while loop (Scan::until) stops early".into()));
            }
            (ScanSteps::Counted(c), None) => {
                let c = c.clone().check()?;
                if c.dtype() != DType::I64 || c.ndim() != 0 {
                    return Err(usage(format!(
                        "a loop's count must be an i64 scalar, got {}",
                        c.ty()
                    )));
                }
                Steps::Counted
            }
            (ScanSteps::Fixed(_), None) => Steps::Counted,
            (ScanSteps::OfSequences, None) => Steps::OfSequences,
        };
        let count = match &self.steps {
            ScanSteps::Counted(c) => Some(c.clone()),
            ScanSteps::Fixed(n) => Some(graph.constant(crate::tensor::Tensor::from(*n as i64))),
            _ => None,
        };
        // The static number of steps, where it is known.
        let length: Dim = match &self.steps {
            ScanSteps::Fixed(n) => Some(*n),
            ScanSteps::OfSequences => {
                let known: Vec<Dim> = seq_types.iter().map(|t| t.shape.dims()[0]).collect();
                match known.first() {
                    Some(Some(n)) if known.iter().all(|d| *d == Some(*n)) => Some(*n),
                    _ => None,
                }
            }
            _ => None,
        };
        let roots: Vec<NodeId> = next
            .iter()
            .chain(&outputs)
            .chain(until.iter())
            .map(|e| e.id())
            .collect();
        let step_ids: Vec<NodeId> = step
            .sequences
            .iter()
            .chain(&step.states)
            .map(|e| e.id())
            .collect();
        let (captured, streams) = captured_nodes(&graph, &roots, &step_ids);
        let inner: HashMap<NodeId, Type> = {
            let g = graph.lock();
            let body_nodes = inner_nodes(&g, &roots, &step_ids, &captured);
            body_nodes
                .into_iter()
                .map(|n| (n, g.node(n).ty.clone()))
                .collect()
        };
        let captured_exprs: Vec<Expr> = captured.iter().map(|&id| graph.expr(id)).collect();
        let input_types: Vec<Type> = self
            .sequences
            .iter()
            .chain(&self.init)
            .chain(count.iter())
            .chain(&captured_exprs)
            .map(|e| e.ty())
            .collect();
        let body = Arc::new(LoopBody {
            step_values: step_ids,
            n_sequences: self.sequences.len(),
            captured: captured.clone(),
            streams,
            next_states: next.iter().map(|e| e.id()).collect(),
            outputs: outputs.iter().map(|e| e.id()).collect(),
            until: until.as_ref().map(|e| e.id()),
            steps,
            reverse: self.reverse,
            state_types: self.init.iter().map(|e| e.ty()).collect(),
            output_types: outputs.iter().map(|e| e.ty()).collect(),
            length,
            inner,
            input_types,
            recompute: self.recompute,
            loc,
        });
        let inputs: Vec<&Expr> = self
            .sequences
            .iter()
            .chain(&self.init)
            .chain(count.iter())
            .chain(&captured_exprs)
            .collect();
        let inputs: Vec<Expr> = inputs.into_iter().cloned().collect();
        let handle = LoopHandle(body);
        let result = |r: LoopResult| handle.result_node(&graph, &inputs, r);
        Ok(Looped {
            states: (0..self.init.len())
                .map(|k| result(LoopResult::Final(k)))
                .collect::<Result<_>>()?,
            outputs: (0..outputs.len())
                .map(|k| result(LoopResult::Stacked(k)))
                .collect::<Result<_>>()?,
        })
    }
}

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
fn inner_nodes(
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

/// The outer nodes the body rooted at `roots` reads, with the step values `step_ids`: the
/// nodes that do not depend on a step value, read by nodes that do (constants excepted: they
/// stay in the body). And for each, whether it is a random stream's state.
fn captured_nodes(
    graph: &Graph,
    roots: &[NodeId],
    step_ids: &[NodeId],
) -> (Vec<NodeId>, Vec<bool>) {
    let g = graph.lock();
    let mut depends: HashMap<NodeId, bool> = step_ids.iter().map(|&s| (s, true)).collect();
    // Node ids are a topological order: decide dependence bottom-up over the ids the body uses.
    let mut order: Vec<NodeId> = Vec::new();
    let mut seen: HashMap<NodeId, ()> = HashMap::new();
    let mut stack: Vec<NodeId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if seen.insert(id, ()).is_some() {
            continue;
        }
        order.push(id);
        stack.extend(g.node(id).inputs.iter().copied());
    }
    order.sort_unstable();
    // The body was built after its step values: a draw made there is the body's, whatever it
    // reads, so that every step draws anew.
    let body_start = step_ids.iter().min().copied();
    for &id in &order {
        let n = g.node(id);
        let drawn_in_body = body_start.is_some_and(|s| id > s)
            && match &n.op {
                Op::Random { .. } => true,
                Op::Custom(c) => c.op().is_random(),
                // A loop in the body that draws draws anew at every step of this one.
                Op::Loop { body, .. } => body.body().streams.iter().any(|s| *s),
                _ => false,
            };
        let d = drawn_in_body
            || depends.get(&id).copied().unwrap_or(false)
            || n.inputs
                .iter()
                .any(|p| depends.get(p).copied().unwrap_or(false));
        depends.insert(id, d);
    }
    let mut captured: Vec<NodeId> = Vec::new();
    let mut streams: Vec<bool> = Vec::new();
    let is_outer = |id: NodeId| !depends[&id] && !matches!(g.node(id).op, Op::Constant(_));
    for &root in roots {
        if is_outer(root) && !captured.contains(&root) {
            captured.push(root);
            streams.push(false);
        }
    }
    for &id in &order {
        let n = g.node(id);
        if !depends[&id] {
            continue;
        }
        for (k, &p) in n.inputs.iter().enumerate() {
            // A stream is read by a draw, or by a loop (of this body) that draws from it.
            let stream = match &n.op {
                Op::Random { .. } => k == 0,
                Op::Loop { body, .. } => {
                    let body = body.body();
                    let first = body.first_captured();
                    k >= first && body.streams[k - first]
                }
                _ => false,
            };
            if is_outer(p) {
                match captured.iter().position(|&c| c == p) {
                    Some(at) => streams[at] |= stream,
                    None => {
                        captured.push(p);
                        streams.push(stream);
                    }
                }
            }
        }
    }
    (captured, streams)
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
