//! Compiled functions: `function(inputs, outputs)` with `updates` and `givens`, compiled once and
//! called many times (Theano's `theano.function`).
//!
//! Compiling copies the subgraph the outputs and updates need into the compiler's own program
//! (applying `givens` on the way), orders it, and plans when each buffer is last used so it can be
//! freed right after. The user's graph is never modified.

mod debug;
pub(crate) mod eval;
mod plan;
mod profile;

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::graph::{Expr, NodeId, SharedVar, Type};
use crate::shape;
use crate::tensor::Tensor;

pub use plan::Mode;
use plan::Program;
pub(crate) use plan::{Leaf, PNode};
pub use profile::{NodeProfile, Profile};

use crate::rewrite::{FGraph, RewriteStats, optimize};

/// Start describing a compiled function of `inputs` computing `outputs`.
///
/// ```
/// use gradus::prelude::*;
/// let g = Graph::new();
/// let x = g.vector("x", DType::F64);
/// let w = g.shared("w", vec![1.0, 1.0]);
/// let cost = (&x * &w).sum();
/// let gw = grad(&cost, &[&w]).unwrap().remove(0);
/// let step = function(&[&x], &[&cost]).updates(&[(&w, &(&w - &(&gw * 0.5)))]).compile().unwrap();
/// step.call(&[vec![2.0, 4.0].into()]).unwrap();
/// assert_eq!(w.get_value().unwrap(), vec![0.0, -1.0].into());
/// ```
#[track_caller]
pub fn function(inputs: &[&Expr], outputs: &[&Expr]) -> FunctionBuilder {
    FunctionBuilder {
        inputs: inputs.iter().map(|e| (*e).clone()).collect(),
        outputs: outputs.iter().map(|e| (*e).clone()).collect(),
        updates: Vec::new(),
        givens: Vec::new(),
        mode: Mode::Fast,
        excluded: Vec::new(),
        profile: false,
        loc: Location::caller(),
    }
}

/// A function being described; [`FunctionBuilder::compile`] turns it into a [`Function`].
pub struct FunctionBuilder {
    inputs: Vec<Expr>,
    outputs: Vec<Expr>,
    updates: Vec<(Expr, Expr)>,
    givens: Vec<(Expr, Expr)>,
    mode: Mode,
    excluded: Vec<String>,
    profile: bool,
    loc: Location,
}

impl FunctionBuilder {
    /// After each call, set each shared variable to its new value. All new values are computed
    /// from the old ones, then assigned together.
    pub fn updates(mut self, updates: &[(&Expr, &Expr)]) -> Self {
        self.updates
            .extend(updates.iter().map(|(s, v)| ((*s).clone(), (*v).clone())));
        self
    }

    /// Replace each `old` node by `new` in the compiled function (Theano's `givens`).
    pub fn givens(mut self, givens: &[(&Expr, &Expr)]) -> Self {
        self.givens
            .extend(givens.iter().map(|(o, n)| ((*o).clone(), (*n).clone())));
        self
    }

    /// Switch off the rewrites with these names (see [`crate::rewrite::RULES`]; `merge` is the
    /// merge phase).
    pub fn exclude(mut self, names: &[&str]) -> Self {
        self.excluded.extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// Switch off every rewrite and graph pass: the graph runs as written, on the fast kernels
    /// (for comparisons; [`Mode::Reference`] also uses the slow reference kernels).
    pub fn without_rewrites(self) -> Self {
        let all: Vec<&str> = crate::rewrite::RULES
            .iter()
            .map(|r| r.name)
            .chain(crate::rewrite::GRAPH_PASSES.iter().copied())
            .collect();
        self.exclude(&all)
    }

    /// Time every node of every call; read the result with [`Function::profile`].
    pub fn profile(mut self, on: bool) -> Self {
        self.profile = on;
        self
    }

    /// How to execute (default [`Mode::Fast`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Check everything and build the executable program.
    pub fn compile(self) -> Result<Function> {
        let loc = self.loc;
        let usage = |what: String| Error::Usage { what, loc };
        let all: Vec<&Expr> = self
            .inputs
            .iter()
            .chain(&self.outputs)
            .chain(self.updates.iter().flat_map(|(a, b)| [a, b]))
            .chain(self.givens.iter().flat_map(|(a, b)| [a, b]))
            .collect();
        let Some(first) = all.first() else {
            return Err(usage("function with no inputs, outputs or updates".into()));
        };
        let graph = first.graph.clone();
        if let Some(e) = all.iter().find(|e| !e.graph.same(&graph)) {
            return Err(usage(format!("{} belongs to another graph", e.name())));
        }
        graph.check(&all.iter().map(|e| e.id).collect::<Vec<_>>())?;
        let g = graph.lock();

        let mut input_pos: HashMap<NodeId, usize> = HashMap::new();
        let mut input_types = Vec::new();
        for (k, e) in self.inputs.iter().enumerate() {
            let n = g.node(e.id);
            if !matches!(n.op, Op::Input { .. }) {
                return Err(usage(format!(
                    "function inputs must be symbolic inputs; {} is not",
                    g.name_of(e.id)
                )));
            }
            if input_pos.insert(e.id, k).is_some() {
                return Err(usage(format!("input {} is listed twice", g.name_of(e.id))));
            }
            input_types.push((g.name_of(e.id), n.ty.clone()));
        }
        let mut givens: HashMap<NodeId, NodeId> = HashMap::new();
        for (old, new) in &self.givens {
            let (to, tn) = (&g.node(old.id).ty, &g.node(new.id).ty);
            if to.dtype != tn.dtype
                || to.ndim() != tn.ndim()
                || shape::broadcast(&to.shape, &tn.shape).is_err()
            {
                return Err(usage(format!(
                    "givens: {} of type {to} cannot be replaced by {tn}",
                    g.name_of(old.id)
                )));
            }
            givens.insert(old.id, new.id);
        }
        let mut updates = Vec::new();
        for (var, value) in &self.updates {
            let Op::Shared(s) = g.node(var.id).op else {
                return Err(usage(format!(
                    "updates: {} is not a shared variable",
                    g.name_of(var.id)
                )));
            };
            let shared: Arc<SharedVar> = g.shared[s].clone();
            let vt = &g.node(value.id).ty;
            if vt.dtype != shared.ty.dtype
                || vt.ndim() != shared.ty.ndim()
                || shape::broadcast(&vt.shape, &shared.ty.shape).ok().as_ref()
                    != Some(&shared.ty.shape)
            {
                return Err(Error::Usage {
                    what: format!(
                        "update of {} must have type {}, the new value has {vt}",
                        shared.name, shared.ty
                    ),
                    loc: g.node(value.id).loc,
                });
            }
            if updates
                .iter()
                .any(|(u, _): &(Arc<SharedVar>, NodeId)| Arc::ptr_eq(u, &shared))
            {
                return Err(usage(format!("updates: {} is updated twice", shared.name)));
            }
            updates.push((shared, value.id));
        }

        // Copy the needed subgraph, substituting givens, in dependency order (iterative DFS:
        // graphs thousands of nodes deep must not overflow the stack).
        let subst = |id: NodeId| *givens.get(&id).unwrap_or(&id);
        let mut index: HashMap<NodeId, usize> = HashMap::new();
        let mut on_stack: HashMap<NodeId, bool> = HashMap::new();
        let mut nodes: Vec<PNode> = Vec::new();
        let roots: Vec<NodeId> = self
            .outputs
            .iter()
            .map(|e| e.id)
            .chain(updates.iter().map(|u| u.1))
            .collect();
        for root in &roots {
            let mut stack = vec![(subst(*root), false)];
            while let Some((id, expanded)) = stack.pop() {
                if index.contains_key(&id) {
                    continue;
                }
                let n = g.node(id);
                if expanded {
                    let leaf = match &n.op {
                        Op::Input { .. } => match input_pos.get(&id) {
                            Some(k) => Some(Leaf::Input(*k)),
                            None => {
                                return Err(usage(format!(
                                    "the outputs depend on input {} (built at {}), which is not among the function's inputs",
                                    g.name_of(id),
                                    n.loc
                                )));
                            }
                        },
                        Op::Constant(c) => Some(Leaf::Const(g.constants[*c].clone())),
                        Op::Shared(s) => Some(Leaf::Shared(g.shared[*s].clone())),
                        _ => None,
                    };
                    let inputs = n.inputs.iter().map(|p| index[&subst(*p)]).collect();
                    index.insert(id, nodes.len());
                    on_stack.remove(&id);
                    nodes.push(PNode {
                        op: n.op.clone(),
                        inputs,
                        ty: n.ty.clone(),
                        loc: n.loc,
                        leaf,
                    });
                    continue;
                }
                if on_stack.contains_key(&id) {
                    return Err(usage(format!(
                        "givens create a cycle through {}",
                        g.name_of(id)
                    )));
                }
                on_stack.insert(id, true);
                stack.push((id, true));
                for p in n.inputs.iter().rev() {
                    let p = subst(*p);
                    if !index.contains_key(&p) {
                        stack.push((p, false));
                    }
                }
            }
        }
        let outputs: Vec<usize> = self.outputs.iter().map(|e| index[&subst(e.id)]).collect();
        let n_out = outputs.len();
        let (shared_vars, values): (Vec<Arc<SharedVar>>, Vec<usize>) = updates
            .into_iter()
            .map(|(s, v)| (s, index[&subst(v)]))
            .unzip();
        drop(g);
        if let Some(bad) = self.excluded.iter().find(|n| {
            !crate::rewrite::GRAPH_PASSES.contains(&n.as_str())
                && !crate::rewrite::RULES.iter().any(|r| r.name == n.as_str())
        }) {
            return Err(usage(format!("no rewrite is named {bad}")));
        }

        // The optimizer works on its own copy; the reference mode runs the graph as written.
        let mut fg = FGraph::new(nodes, outputs.into_iter().chain(values).collect());
        let roots_as_written: Vec<usize> = (0..n_out + shared_vars.len())
            .map(|k| fg.roots()[k])
            .collect();
        let stats = if self.mode == Mode::Reference {
            RewriteStats::default()
        } else {
            optimize(&mut fg, &self.excluded)
        };
        let debug = (self.mode == Mode::Debug).then(|| debug::DebugCheck {
            nodes: fg.all_nodes().to_vec(),
            history: fg.history.clone(),
            roots: roots_as_written,
        });
        let (nodes, roots) = fg.finish();
        let outputs = roots[..n_out].to_vec();
        let updates: Vec<(Arc<SharedVar>, usize)> = shared_vars
            .into_iter()
            .zip(roots[n_out..].iter().copied())
            .collect();

        // Streams sampled from advance after each call, unless the user updates their state.
        let mut streams: Vec<Arc<SharedVar>> = Vec::new();
        for n in &nodes {
            if let Op::Random { .. } = n.op
                && let Some(Leaf::Shared(s)) = &nodes[n.inputs[0]].leaf
            {
                let updated = updates.iter().any(|(u, _)| Arc::ptr_eq(u, s));
                if !updated && !streams.iter().any(|t| Arc::ptr_eq(t, s)) {
                    streams.push(s.clone());
                }
            }
        }
        let updated: Vec<Arc<SharedVar>> = updates.iter().map(|(v, _)| v.clone()).collect();
        let mode = if self.mode == Mode::Debug {
            Mode::Fast
        } else {
            self.mode
        };
        let mut program = Program::new(nodes, outputs, updates, streams, input_types, mode);
        if self.profile {
            program.enable_profile();
        }
        Ok(Function {
            program,
            stats,
            debug: debug.map(|d| (d, updated)),
        })
    }
}

/// A compiled function: call it with one tensor per input; it returns the outputs and applies
/// the updates. `Send + Sync`: one compiled function can be shared by threads.
pub struct Function {
    program: Program,
    stats: RewriteStats,
    /// The debug mode's reference, and the variables the function updates.
    debug: Option<(debug::DebugCheck, Vec<Arc<SharedVar>>)>,
}

impl Function {
    /// Run on one value per input, in the order the inputs were given.
    #[track_caller]
    pub fn call(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let Some((check, updated)) = &self.debug else {
            return self.program.run(inputs);
        };
        self.program.check_feeds(inputs)?;
        // The reference first: the run then advances the streams and assigns the updates.
        let want = check.check(inputs)?;
        let outputs = self.program.run(inputs)?;
        check.compare(&outputs, updated, &want)?;
        Ok(outputs)
    }

    /// What the optimizer did: hits per rewrite and why each phase stopped.
    pub fn rewrite_stats(&self) -> &RewriteStats {
        &self.stats
    }

    /// Time and calls per node since compiling, when compiled with
    /// [`FunctionBuilder::profile`]; `None` otherwise.
    pub fn profile(&self) -> Option<Profile> {
        let times = self.program.profile()?;
        Some(Profile::new(&self.program.nodes, &times))
    }

    /// The program as it runs, after the optimizer: one line per node with its op (a fused
    /// kernel shows its expression), operands, type, and the line of the user's code that built
    /// it (for a rewritten node, the node it replaced).
    pub fn debugprint(&self) -> String {
        self.program.listing()
    }

    /// Names and types of the inputs.
    pub fn inputs(&self) -> Vec<(String, Type)> {
        self.program.input_types.clone()
    }

    /// Number of nodes in the compiled program.
    pub fn len(&self) -> usize {
        self.program.nodes.len()
    }

    /// True when the program has no nodes.
    pub fn is_empty(&self) -> bool {
        self.program.nodes.is_empty()
    }

    /// Bytes of the largest set of buffers alive at once during the last call's plan, counted
    /// from the shapes of that call (an estimate for planning memory).
    pub fn peak_bytes(&self) -> usize {
        self.program.peak_bytes()
    }
}
