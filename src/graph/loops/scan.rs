//! The builder of a loop, [`Scan`], and what a body captures from outside.

use std::collections::HashMap;
use std::sync::Arc;

use super::body::{inner_nodes, step_value};
use super::{LoopBody, LoopHandle, LoopResult, Looped, Step, StepResult, Steps};
use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::graph::{Expr, Graph, NodeId, Type};
use crate::shape::Dim;

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
