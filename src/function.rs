//! Compiled functions: `function(inputs, outputs)` with `updates` and `givens`, compiled once and
//! called many times (Theano's `theano.function`), and [`eval`], which evaluates expressions
//! once on the reference interpreter.
//!
//! This is where the pipeline's parts meet: the builder hands its description to the compiler
//! and wraps the program it gets back in the runtime's executor.

use std::collections::HashMap;

use crate::compile::rewrite::{DEFAULT_PASS_LIMIT, PASSES, RULES, RewriteStats};
use crate::compile::{self, Feeds, Mode, Spec};
use crate::error::{Error, Location, Result};
use crate::graph::{Expr, NodeId, Type};
use crate::runtime::{Executor, Profile};
use crate::tensor::Tensor;

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
        spec: Spec {
            inputs: inputs.iter().map(|e| (*e).clone()).collect(),
            feeds: Feeds::FunctionInputs,
            outputs: outputs.iter().map(|e| (*e).clone()).collect(),
            updates: Vec::new(),
            givens: Vec::new(),
            mode: Mode::Fast,
            excluded: Vec::new(),
            pass_limit: DEFAULT_PASS_LIMIT,
            loc: Location::caller(),
        },
        profile: false,
        memory_limit: None,
        nan_guard: false,
    }
}

/// A function being described; [`FunctionBuilder::compile`] turns it into a [`Function`].
pub struct FunctionBuilder {
    spec: Spec,
    profile: bool,
    memory_limit: Option<usize>,
    nan_guard: bool,
}

impl FunctionBuilder {
    /// After each call, set each shared variable to its new value. All new values are computed
    /// from the old ones, then assigned together.
    pub fn updates(mut self, updates: &[(&Expr, &Expr)]) -> Self {
        self.spec
            .updates
            .extend(updates.iter().map(|(s, v)| ((*s).clone(), (*v).clone())));
        self
    }

    /// Replace each `old` node by `new` in the compiled function (Theano's `givens`).
    pub fn givens(mut self, givens: &[(&Expr, &Expr)]) -> Self {
        self.spec
            .givens
            .extend(givens.iter().map(|(o, n)| ((*o).clone(), (*n).clone())));
        self
    }

    /// Switch off the rewrites with these names (see [`RULES`](crate::rewrite::RULES) and
    /// [`PASSES`](crate::rewrite::PASSES); `merge` is the merge pass).
    pub fn exclude(mut self, names: &[&str]) -> Self {
        self.spec
            .excluded
            .extend(names.iter().map(|n| n.to_string()));
        self
    }

    /// Switch off every rewrite: the graph runs as written, on the fast kernels (for
    /// comparisons; [`Mode::Reference`] also uses the slow reference kernels).
    pub fn without_rewrites(self) -> Self {
        let all: Vec<&str> = RULES
            .iter()
            .map(|r| r.name)
            .chain(PASSES.iter().map(|p| p.name))
            .collect();
        self.exclude(&all)
    }

    /// Passes each phase of the optimizer makes at most (default 16); a phase that reaches the
    /// limit stops there, and [`RewriteStats`] says so.
    pub fn pass_limit(mut self, passes: usize) -> Self {
        self.spec.pass_limit = passes.max(1);
        self
    }

    /// Refuse to compute any value larger than `bytes`: a call that would is an
    /// [`Error::OutOfMemory`] naming the op, its shape and the line that built it. Without a
    /// limit, a value the system cannot allocate is that error too, not an abort.
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// The NaN guard: stop a call at the first node whose result holds a NaN or an infinity
    /// when none of its operands does, with [`Error::NonFinite`] naming the op (inside a fused
    /// kernel, the op of the region that made it), the line that built it, and a summary of
    /// its operands. Theano's `NanGuardMode`, JAX's `debug_nans`. It costs nothing when off;
    /// on, every result is scanned and no buffer is reused in place.
    pub fn nan_guard(mut self, on: bool) -> Self {
        self.nan_guard = on;
        self
    }

    /// Time every node of every call; read the result with [`Function::profile`].
    pub fn profile(mut self, on: bool) -> Self {
        self.profile = on;
        self
    }

    /// How to execute (default [`Mode::Fast`]).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.spec.mode = mode;
        self
    }

    /// Check everything and build the executable program.
    pub fn compile(self) -> Result<Function> {
        let compiled = compile::compile(&self.spec)?;
        let mut executor = Executor::new(compiled.program);
        if self.profile {
            executor.enable_profile();
        }
        if let Some(bytes) = self.memory_limit {
            executor.set_memory_limit(bytes);
        }
        if self.nan_guard {
            executor.enable_nan_guard();
        }
        if let Some(trace) = compiled.debug {
            executor.enable_debug(trace);
        }
        Ok(Function {
            executor,
            stats: compiled.stats,
        })
    }
}

/// A compiled function: call it with one tensor per input; it returns the outputs and applies
/// the updates.
///
/// `Send + Sync`, and concurrent calls behave as if they ran one after another: each reads one
/// consistent snapshot of the shared variables; a call that writes the graph's state (updates,
/// random streams) runs alone among its graph's writers, its new values assigned together, so
/// no update is lost and every call draws its own numbers; a call that writes nothing runs beside
/// any other.
pub struct Function {
    pub(crate) executor: Executor,
    stats: RewriteStats,
}

impl Function {
    /// Run on one value per input, in the order the inputs were given.
    #[track_caller]
    pub fn call(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let fed: Vec<&Tensor> = inputs.iter().collect();
        (self.executor.run(&fed)).map_err(|e| self.executor.with_sources(e, inputs))
    }

    /// What the optimizer did: hits per rewrite and why each phase stopped.
    pub fn rewrite_stats(&self) -> &RewriteStats {
        &self.stats
    }

    /// Time and calls per node since compiling, when compiled with
    /// [`FunctionBuilder::profile`]; `None` otherwise.
    pub fn profile(&self) -> Option<Profile> {
        self.executor.profile_report()
    }

    /// The program as it runs, after the optimizer: one line per node with its op (a fused
    /// kernel shows its expression), operands, type, and the line of the user's code that built
    /// it (for a rewritten node, the node it replaced).
    pub fn debugprint(&self) -> String {
        self.executor.program.listing()
    }

    /// Names and types of the inputs.
    pub fn inputs(&self) -> Vec<(String, Type)> {
        self.executor.program.input_types.clone()
    }

    /// Number of nodes in the compiled program.
    pub fn len(&self) -> usize {
        self.executor.program.nodes.len()
    }

    /// True when the program has no nodes.
    pub fn is_empty(&self) -> bool {
        self.executor.program.nodes.is_empty()
    }

    /// Bytes of the largest set of buffers alive at once during the last call's plan, counted
    /// from the shapes of that call (an estimate for planning memory).
    pub fn peak_bytes(&self) -> usize {
        self.executor.peak_bytes()
    }
}

/// Evaluate `outputs` on the reference interpreter, given values for the inputs they depend on
/// (any node may be fed: its value stands in for what it computes).
///
/// ```
/// use gradus::prelude::*;
/// let g = Graph::new();
/// let x = g.vector("x", DType::F64);
/// let y = x.sum() * 2.0;
/// let v = gradus::eval(&[&y], &[(&x, vec![1.0, 2.0].into())]).unwrap();
/// assert_eq!(v[0].item().unwrap(), 6.0);
/// ```
#[track_caller]
pub fn eval(outputs: &[&Expr], feeds: &[(&Expr, Tensor)]) -> Result<Vec<Tensor>> {
    let loc = Location::caller();
    let Some(first) = outputs.first() else {
        return Ok(vec![]);
    };
    let graph = first.graph.clone();
    graph.check(&outputs.iter().map(|e| e.id).collect::<Vec<_>>())?;
    // One value per fed node (a later feed of the same node wins), checked as a call's are.
    let mut fed: HashMap<NodeId, usize> = HashMap::new();
    let mut inputs: Vec<Expr> = Vec::new();
    let mut values: Vec<Tensor> = Vec::new();
    for (e, t) in feeds {
        if !e.graph.same(&graph) {
            return Err(Error::Usage {
                what: format!("feed {} belongs to another graph", e.name()),
                loc,
            });
        }
        match fed.get(&e.id) {
            Some(&k) => values[k] = t.clone(),
            None => {
                fed.insert(e.id, inputs.len());
                inputs.push((*e).clone());
                values.push(t.clone());
            }
        }
    }
    let spec = Spec {
        inputs,
        feeds: Feeds::AnyNodes,
        outputs: outputs.iter().map(|e| (*e).clone()).collect(),
        updates: Vec::new(),
        givens: Vec::new(),
        mode: Mode::Reference,
        excluded: Vec::new(),
        pass_limit: DEFAULT_PASS_LIMIT,
        loc,
    };
    let compiled = compile::compile(&spec)?;
    let executor = Executor::new(compiled.program);
    let fed: Vec<&Tensor> = values.iter().collect();
    (executor.run(&fed)).map_err(|e| executor.with_sources(e, &values))
}

impl Expr {
    /// Evaluate this expression on the reference interpreter (see [`eval`]).
    #[track_caller]
    pub fn eval(&self, feeds: &[(&Expr, Tensor)]) -> Result<Tensor> {
        Ok(eval(&[self], feeds)?.remove(0))
    }
}
