//! The runtime: runs a compiled [`Program`].
//!
//! A fast program runs node by node in its planned order, each value into a buffer from the
//! pool ([`pool`]) that goes back to it right after the value's last reader; runs of fused
//! kernels go chunk by chunk through all of them ([`group`]); products run through the `gemm`
//! crate, two independent ones side by side ([`products`]); other ops have fast paths into
//! pooled buffers ([`fast`]) or run their general kernel. A reference program runs on the one
//! reference interpreter ([`interpret`]), which the debug mode ([`debug`]) and `eval` use too.
//! A loop's body runs on an executor of its own, once per step ([`loops`]),
//! split by rows over the threads where its rows are independent ([`rows`]). Feeds and new values
//! are checked in [`checks`]; a node's failure becomes the user's error in [`failure`], and a
//! call's shape error names the inputs behind it ([`sources`]).

mod checks;
mod debug;
mod failure;
mod fast;
mod group;
mod guard;
mod interpret;
mod loops;
mod pool;
mod products;
mod profile;
mod rows;
mod sources;
mod stacks;
mod value;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use smallvec::SmallVec;

use crate::compile::ir::{Kind, Node, eval_kind};
use crate::compile::{DebugTrace, Program};
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::Type;
use crate::kernels::{Exec, KernelFloat};
use crate::tensor::Tensor;
pub(crate) use failure::{Failure, kernel_error, node_error, reserve};
use group::Groups;
use pool::Pool;
pub use profile::{LoopProfile, NodeProfile, Profile};
pub(crate) use value::Value;
use value::bytes;

/// What a run needs besides the program, kept between calls.
#[derive(Default)]
struct Workspace {
    values: Vec<Option<Value>>,
    pool: Pool,
    /// Reads left of each output and update value.
    reads: Vec<u32>,
    /// New values of the updated variables, before they are assigned.
    new_values: Vec<Tensor>,
    /// The kernels of the group being run (empty between groups).
    groups: Groups,
    /// The bytes of each value the run owns, counted in the live total until the value dies:
    /// then they leave it, whether its buffer goes back to the pool or a later node took the
    /// buffer over.
    held: Vec<usize>,
    /// The values of the program's shared variables for this call, read together.
    snapshot: Vec<Arc<Tensor>>,
    /// The results of the loops run in this call, until they are read.
    loops: loops::LoopCache,
    /// Whether the pool is the caller's (a loop's body): the outputs then leave in the buffers
    /// they were made in, which come back to that pool when the caller is done with them.
    lent: bool,
    /// The inputs the run was given to own, by position (see `run_pooled`).
    given: Vec<Option<Tensor>>,
}

/// Time and calls of one node, summed over calls since profiling began.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeTime {
    pub calls: u64,
    pub nanos: u64,
}

/// A program with what its runs keep: the buffers of earlier calls, the peak of the last plan
/// and, when profiling, the time of every node.
pub(crate) struct Executor {
    pub program: Arc<Program>,
    /// The bodies of the program's loops, each with its own executor.
    loops: Vec<loops::BodyRunner>,
    peak: AtomicUsize,
    workspace: Mutex<Workspace>,
    profile: Option<Mutex<Vec<NodeTime>>>,
    /// The most bytes one value may take.
    memory_limit: Option<usize>,
    /// Stop at the first node that makes a NaN or an infinity from finite operands.
    nan_guard: bool,
    /// The debug mode's trace of the optimizer, to check every call against.
    debug: Option<DebugTrace>,
}

fn shaped<T: KernelFloat>(buf: Vec<T>, shape: &[usize]) -> Result<Tensor, String> {
    ArrayD::from_shape_vec(IxDyn(shape), buf)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

impl Executor {
    pub fn new(program: Program) -> Executor {
        Executor::shared(Arc::new(program))
    }

    /// An executor of a program another owner holds too (a loop's body).
    pub fn shared(program: Arc<Program>) -> Executor {
        Executor {
            loops: loops::body_runners(&program),
            program,
            peak: AtomicUsize::new(0),
            workspace: Mutex::new(Workspace::default()),
            profile: None,
            memory_limit: None,
            nan_guard: false,
            debug: None,
        }
    }

    /// Check every call in the debug mode, against `trace`.
    pub fn enable_debug(&mut self, trace: DebugTrace) {
        self.debug = Some(trace);
    }

    /// Check every result for a NaN or an infinity born there (see [`guard`]). Operands are
    /// then never overwritten in place, so that they can be checked too.
    pub fn enable_nan_guard(&mut self) {
        self.nan_guard = true;
        self.loops
            .iter_mut()
            .for_each(|r| r.executors_mut().for_each(|e| e.enable_nan_guard()));
    }

    /// Under the NaN guard, check the result of node `j` against its operands.
    fn guard(&self, j: usize, values: &[Option<Value>], inputs: &[&Tensor]) -> Result<()> {
        if !self.nan_guard {
            return Ok(());
        }
        let n = &self.program.nodes[j];
        // What is fed in, or held in a constant or a shared variable, is not born here.
        let (false, Some(out)) = (n.kind.is_leaf(), values[j].as_ref()) else {
            return Ok(());
        };
        let operands: SmallVec<[&Tensor; 4]> = n
            .inputs
            .iter()
            .map(|&i| operand(values, inputs, i))
            .collect();
        guard::check(n, out.get(inputs), &operands)
    }

    /// Refuse to compute a value larger than `bytes`.
    pub fn set_memory_limit(&mut self, bytes: usize) {
        self.memory_limit = Some(bytes);
        self.loops
            .iter_mut()
            .for_each(|r| r.executors_mut().for_each(|e| e.set_memory_limit(bytes)));
    }

    /// Record time and calls per node from now on.
    pub fn enable_profile(&mut self) {
        let times = vec![NodeTime::default(); self.program.nodes.len()];
        self.profile = Some(Mutex::new(times));
        self.loops
            .iter_mut()
            .for_each(|r| r.executor.enable_profile());
    }

    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Per-node times so far (`None` unless profiling).
    pub fn profile(&self) -> Option<Vec<NodeTime>> {
        self.profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// What the program spent its time on so far, its loops' bodies included (`None` unless
    /// profiling).
    pub fn profile_report(&self) -> Option<Profile> {
        let times = self.profile()?;
        let mut report = Profile::new(&self.program.nodes, &times);
        for r in &self.loops {
            if let Some(body) = r.executor.profile_report() {
                report.loops.push(profile::LoopProfile {
                    loc: r.compiled.body.body().loc,
                    steps: body.calls,
                    body,
                });
            }
        }
        Some(report)
    }

    /// One call: the outputs, and the updates applied. Calls that write the graph's shared
    /// state (updates, random streams) run one at a time, from reading the variables to
    /// assigning the new values; the others read a consistent snapshot and run side by side
    /// (see [`StateLock`](crate::graph::StateLock)).
    #[track_caller]
    pub fn run(&self, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
        self.run_on(inputs, &mut [], None)
    }

    /// A run of a loop's body: its buffers come from, and go back to, the pool of the call that
    /// runs the loop, so that the values one step hands out (to the loop's stacks and lists, to
    /// a later loop) come back to the next as their readers are done with them.
    ///
    /// The inputs at the positions where `given` holds a tensor are that tensor, which the run
    /// takes (`inputs` has a placeholder there): a step's slice of a sequence then dies in the
    /// body like any value, and a product accumulates onto it in place. In the debug mode,
    /// which replays the feeds, and on the reference interpreter, nothing is taken.
    pub(crate) fn run_pooled(
        &self,
        inputs: &[&Tensor],
        given: &mut [Option<Tensor>],
        pool: &mut Pool,
    ) -> Result<Vec<Tensor>> {
        if self.debug.is_some() || self.program.exec == Exec::Reference {
            let fed = with_given(inputs, given);
            return self.run_on(&fed, &mut [], Some(pool));
        }
        self.run_on(inputs, given, Some(pool))
    }

    #[track_caller]
    fn run_on(
        &self,
        inputs: &[&Tensor],
        given: &mut [Option<Tensor>],
        mut outer: Option<&mut Pool>,
    ) -> Result<Vec<Tensor>> {
        self.check_feeds(&with_given(inputs, given))?;
        let state = self.program.state.as_deref();
        let writes = !self.program.updates.is_empty() || !self.program.streams.is_empty();
        let _writer = state.filter(|_| writes).map(|s| s.write());
        // Take the buffers of earlier calls; a concurrent call finds none and allocates its own.
        let mut ws = std::mem::take(&mut *self.workspace.lock().unwrap_or_else(|e| e.into_inner()));
        ws.snapshot.clear();
        let outer_limit = outer.as_ref().map(|p| p.limit);
        if let Some(p) = outer.as_deref_mut() {
            std::mem::swap(&mut ws.pool, p);
        }
        ws.lent = outer.is_some();
        ws.given.clear();
        ws.given.extend(given.iter_mut().map(Option::take));
        {
            let _reading = state.map(|s| s.reading());
            let read = self.program.shared.iter().map(|(_, v)| v.read());
            ws.snapshot.extend(read);
        }
        let result = self.run_with(inputs, &mut ws);
        ws.values.clear();
        ws.snapshot.clear();
        if result.is_ok() {
            let _committing = state.map(|s| s.committing());
            self.commit(ws.new_values.drain(..), &mut ws.pool);
        }
        ws.new_values.clear();
        // (What the body was given and did not read.)
        ws.given.drain(..).flatten().for_each(|t| ws.pool.give(t));
        if let (Some(p), Some(limit)) = (outer, outer_limit) {
            std::mem::swap(&mut ws.pool, p);
            p.limit = limit;
        }
        *self.workspace.lock().unwrap_or_else(|e| e.into_inner()) = ws;
        result
    }

    /// The outputs of a call on the shared values in `ws.snapshot`, and the new values of the
    /// updated variables in `ws.new_values`, checked; nothing assigned yet.
    fn run_with(&self, inputs: &[&Tensor], ws: &mut Workspace) -> Result<Vec<Tensor>> {
        let want = match &self.debug {
            Some(trace) => Some(trace.check(inputs, &self.program.shared, &ws.snapshot, self)?),
            None => None,
        };
        let outputs = if self.program.exec == Exec::Reference {
            self.run_reference(inputs, ws)?
        } else if rayon::current_thread_index().is_none() {
            // The whole call runs on a worker of the rayon pool: the kernels that split their
            // work then fork and join within the pool instead of waking it from outside.
            rayon::scope(|_| self.run_in(inputs, ws))?
        } else {
            self.run_in(inputs, ws)?
        };
        self.check_updates(&ws.new_values)?;
        if let (Some(trace), Some(want)) = (&self.debug, want) {
            let updated: Vec<&str> = self
                .program
                .updates
                .iter()
                .map(|(v, _)| &v.name[..])
                .collect();
            trace.compare(&outputs, &ws.new_values, &updated, &want)?;
        }
        Ok(outputs)
    }

    /// A reference program: every node on the reference interpreter, every value kept.
    fn run_reference(&self, inputs: &[&Tensor], ws: &mut Workspace) -> Result<Vec<Tensor>> {
        let p = &self.program;
        let mut times = self
            .profile
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()));
        let settings = interpret::Settings {
            limit: self.memory_limit,
            on_error: interpret::OnError::Stop,
            nan_guard: self.nan_guard,
            times: times.as_deref_mut().map(|t| &mut t[..]),
            shared: Some((&p.shared, &ws.snapshot)),
            loops: Some(self),
        };
        let mut run = interpret::interpret(&p.nodes, inputs, settings);
        drop(times);
        // Every value is kept to the end: the peak holds all that the run computed.
        let computed = p
            .nodes
            .iter()
            .zip(&run.values)
            .filter(|(n, _)| !n.kind.is_leaf());
        let peak = computed.filter_map(|(_, v)| v.as_deref()).map(bytes).sum();
        self.peak.store(peak, Ordering::Relaxed);
        let outputs = run.take(&p.outputs, &p.nodes)?;
        let update_nodes: Vec<usize> = p.updates.iter().map(|u| u.1).collect();
        ws.new_values = run.take(&update_nodes, &p.nodes)?;
        Ok(outputs)
    }

    fn run_in(&self, inputs: &[&Tensor], ws: &mut Workspace) -> Result<Vec<Tensor>> {
        let nodes = &self.program.nodes;
        let Workspace {
            values,
            pool,
            reads,
            new_values,
            groups,
            held,
            snapshot,
            loops,
            lent,
            given,
        } = ws;
        loops.clear();
        values.clear();
        values.resize_with(nodes.len(), || None);
        for ((j, _), value) in self.program.shared.iter().zip(snapshot.iter()) {
            values[*j] = Some(Value::Shared(value.clone()));
        }
        held.clear();
        held.resize(nodes.len(), 0);
        let mut live = 0usize;
        if given.iter().any(Option::is_some) {
            for (j, n) in nodes.iter().enumerate() {
                if let Kind::Input { position, .. } = n.kind
                    && let Some(t) = given.get_mut(position).and_then(Option::take)
                {
                    held[j] = bytes(&t);
                    live += held[j];
                    values[j] = Some(Value::Owned(t));
                }
            }
        }
        pool.limit = self.memory_limit;
        let mut times = self
            .profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()));
        let mut peak = live;
        let mut j = 0;
        while j < nodes.len() {
            let start = times.as_ref().map(|_| Instant::now());
            // A run of fused kernels goes chunk by chunk through all of them at once.
            if let Some(end) = self.program.run_end[j] {
                let done = match nodes[j].ty.dtype {
                    DType::F32 => self.run_group::<f32>(j, end, inputs, values, pool, groups)?,
                    _ => self.run_group::<f64>(j, end, inputs, values, pool, groups)?,
                };
                let total = start.map(|s| s.elapsed().as_nanos() as u64);
                let cost = |k: usize| match &nodes[k].kind {
                    Kind::Fused(f) => f.cost() as u64,
                    _ => 0,
                };
                let all: u64 = (j..done).map(cost).sum::<u64>().max(1);
                for k in j..done {
                    if let Some(Value::Owned(t)) = &values[k] {
                        held[k] = bytes(t);
                        live += held[k];
                    }
                    if let (Some(times), Some(total)) = (times.as_mut(), total) {
                        // The kernels of a group share its time in proportion to their work.
                        times[k].calls += 1;
                        times[k].nanos += total * cost(k) / all;
                    }
                }
                peak = peak.max(live);
                for k in j..done {
                    self.guard(k, values, inputs)?;
                }
                for k in j..done {
                    self.release_dead(k, values, pool, held, &mut live);
                }
                j = done;
                continue;
            }
            if self.program.pair_start[j] {
                let (a, b) = match nodes[j].ty.dtype {
                    DType::F32 => self.gemm_pair::<f32>(j, inputs, values, pool)?,
                    _ => self.gemm_pair::<f64>(j, inputs, values, pool)?,
                };
                let total = start.map(|s| s.elapsed().as_nanos() as u64);
                (held[j], held[j + 1]) = (bytes(&a), bytes(&b));
                live += held[j] + held[j + 1];
                peak = peak.max(live);
                values[j] = Some(Value::Owned(a));
                values[j + 1] = Some(Value::Owned(b));
                self.guard(j, values, inputs)?;
                self.guard(j + 1, values, inputs)?;
                for k in [j, j + 1] {
                    self.release_dead(k, values, pool, held, &mut live);
                    if let (Some(times), Some(total)) = (times.as_mut(), total) {
                        // The two share their time equally.
                        times[k].calls += 1;
                        times[k].nanos += total / 2;
                    }
                }
                j += 2;
                continue;
            }
            let n = &nodes[j];
            let v = if n.kind.is_leaf() {
                match values[j].take() {
                    Some(shared) => shared,
                    None => self.leaf(&n.kind),
                }
            } else {
                let out = match &n.kind {
                    Kind::Loop { .. } => {
                        let args: SmallVec<[loops::Arg; 8]> = n
                            .inputs
                            .iter()
                            .map(|&i| {
                                values[i]
                                    .as_ref()
                                    .expect("operands are computed first")
                                    .arg(inputs)
                            })
                            .collect();
                        // Under the NaN guard every value is a tensor, checked as it is made.
                        let lists = !self.nan_guard;
                        self.loop_value(n, &n.inputs, &args, loops, pool, lists)?
                    }
                    _ => Value::Owned(self.eval_node(j, n, inputs, values, pool)?),
                };
                held[j] = out.owned_bytes();
                live += held[j];
                out
            };
            values[j] = Some(v);
            peak = peak.max(live);
            self.guard(j, values, inputs)?;
            self.release_dead(j, values, pool, held, &mut live);
            if let (Some(times), Some(start)) = (times.as_mut(), start) {
                times[j].calls += 1;
                times[j].nanos += start.elapsed().as_nanos() as u64;
            }
            j += 1;
        }
        self.peak.store(peak, Ordering::Relaxed);
        // Outputs and new values move out of the run where nothing else reads them.
        reads.clear();
        reads.extend_from_slice(&self.program.root_reads);
        let mut take = |i: usize, values: &mut Vec<Option<Value>>| -> Tensor {
            reads[i] -= 1;
            match values[i].take() {
                Some(Value::Owned(t)) if reads[i] == 0 && *lent => t,
                Some(Value::Owned(t)) if reads[i] == 0 => pool.release(t),
                Some(v) => {
                    // (What a body hands out twice comes back to the pool it was lent.)
                    let t = match *lent {
                        true => pool.copy_of(v.get(inputs)),
                        false => v.get(inputs).clone(),
                    };
                    values[i] = Some(v);
                    t
                }
                None => unreachable!("outputs are computed"),
            }
        };
        let outputs: Vec<Tensor> = self
            .program
            .outputs
            .iter()
            .map(|&o| take(o, values))
            .collect();
        new_values.clear();
        for (_, i) in &self.program.updates {
            new_values.push(take(*i, values));
        }
        // Every reference to the old values goes before the new ones are assigned.
        values.clear();
        Ok(outputs)
    }

    /// Assign the new values of the updated variables, then advance the random streams.
    fn commit(&self, new_values: impl IntoIterator<Item = Tensor>, pool: &mut Pool) {
        for ((var, _), mut t) in self.program.updates.iter().zip(new_values) {
            let mut state = var.value.write().unwrap_or_else(|p| p.into_inner());
            match Arc::get_mut(&mut state) {
                // Nobody else holds the old value: swap buffers and keep the old one.
                Some(old) => {
                    std::mem::swap(old, &mut t);
                    pool.give(t);
                }
                None => *state = Arc::new(t),
            }
        }
        for s in &self.program.streams {
            let mut state = s.value.write().unwrap_or_else(|p| p.into_inner());
            let state = Arc::make_mut(&mut state);
            if let Tensor::I64(a) = state
                && let Some(c) = a.iter_mut().nth(1)
            {
                *c = c.wrapping_add(1);
            }
        }
    }

    /// Whether node `j` may take over the buffer of its operand `i` for a result of `shape`:
    /// `i` dies at `j` and is a standard-layout array of type `T` and that shape that the run
    /// owns (never a caller's input or a shared variable), and the NaN guard, which reads the
    /// operands after the result, is off.
    fn can_take<T: KernelFloat>(
        &self,
        i: usize,
        j: usize,
        values: &[Option<Value>],
        shape: &[usize],
    ) -> bool {
        !self.nan_guard
            && self.program.last_use[i] == Some(j)
            && matches!(&values[i], Some(Value::Owned(t)) if t.dtype() == T::DTYPE
                && t.shape() == shape
                && T::view(t).is_some_and(|v| v.is_standard_layout()))
    }

    /// The buffer of operand `i`, which [`Executor::can_take`] allowed.
    fn take_buffer<T: KernelFloat>(values: &mut [Option<Value>], i: usize) -> Vec<T> {
        match values[i].take().map(|v| match v {
            Value::Owned(t) => T::unwrap(t),
            _ => unreachable!("can_take checked that the run owns it"),
        }) {
            Some(Ok(a)) => a.into_raw_vec_and_offset().0,
            _ => unreachable!("can_take checked that it is there, of this type"),
        }
    }

    /// The value of a leaf other than a shared variable (whose value the call's snapshot
    /// holds from the start).
    fn leaf(&self, kind: &Kind) -> Value {
        match kind {
            Kind::Input { position, .. } => Value::Fed(*position),
            Kind::Constant(c) => Value::Shared(c.clone()),
            _ => unreachable!("inputs and constants are read this way"),
        }
    }

    /// Give back the buffers of the operands of node `j` that it was the last to read, and take
    /// their bytes off the live total (also of those whose buffer `j` took over: it counts
    /// them as its own).
    fn release_dead(
        &self,
        j: usize,
        values: &mut [Option<Value>],
        pool: &mut Pool,
        held: &mut [usize],
        live: &mut usize,
    ) {
        for &i in &self.program.nodes[j].inputs {
            if self.program.last_use[i] == Some(j) {
                *live -= std::mem::take(&mut held[i]);
                if let Some(v) = values[i].take() {
                    v.give_to(pool);
                }
            }
        }
    }

    /// Compute node `j` (not a leaf): a fast path into a pooled buffer where there is one, else
    /// the general kernel.
    fn eval_node(
        &self,
        j: usize,
        n: &Node,
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Result<Tensor> {
        let out = match n.ty.dtype {
            DType::F32 => self.fast_node::<f32>(j, n, inputs, values, pool),
            DType::F64 => self.fast_node::<f64>(j, n, inputs, values, pool),
            _ => None,
        };
        if let Some(out) = out {
            return out.map_err(|f| f.at(n));
        }
        let args: SmallVec<[&Tensor; 4]> = n
            .inputs
            .iter()
            .map(|&i| operand(values, inputs, i))
            .collect();
        let types: SmallVec<[&Type; 4]> = n
            .inputs
            .iter()
            .map(|&i| &self.program.nodes[i].ty)
            .collect();
        reserve(n, &args, self.memory_limit).map_err(|f| f.at(n))?;
        eval_kind(&n.kind, &args, &types, &n.ty, Exec::Fast).map_err(|e| kernel_error(n, &args, e))
    }
}

/// The feeds of a run with the given tensors in their places.
fn with_given<'a>(inputs: &[&'a Tensor], given: &'a [Option<Tensor>]) -> SmallVec<[&'a Tensor; 8]> {
    inputs
        .iter()
        .enumerate()
        .map(|(k, &i)| given.get(k).and_then(Option::as_ref).unwrap_or(i))
        .collect()
}

fn operand<'a>(values: &'a [Option<Value>], inputs: &[&'a Tensor], i: usize) -> &'a Tensor {
    values[i]
        .as_ref()
        .expect("operands are computed first")
        .get(inputs)
}

fn float_view<'a, T: KernelFloat>(t: &'a Tensor) -> Result<ArrayViewD<'a, T>, String> {
    T::view(t).ok_or_else(|| format!("expected {}, got {}", T::DTYPE, t.dtype()))
}
