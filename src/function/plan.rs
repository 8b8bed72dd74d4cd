//! The executable program of a compiled function and its run loop.
//!
//! Nodes are in dependency order. Each value is dropped right after its last use (unless it is an
//! output or an update), so a long chain holds only a few buffers at a time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use smallvec::SmallVec;

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::{Dist, Op, Reduce};
use crate::graph::{SharedVar, Type};
use crate::kernels::fused::{FusedKernel, Layout, Src};
use crate::kernels::{self, gemm};
use crate::kernels::{Exec, KernelFloat};
use crate::shape::{self, Dim};
use crate::tensor::Tensor;

/// How a compiled function executes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Fast kernels (threaded GEMM, rayon), buffers freed after their last use.
    #[default]
    Fast,
    /// The plain reference kernels, every value kept: slow, for checking.
    Reference,
    /// Theano's `DebugMode`: run the optimized plan, and also the graph as written and every
    /// node each rewrite made, with the reference kernels. A call fails with
    /// [`Error::DebugMismatch`] naming the first rewrite that changed a value, or the output
    /// where the fast plan differs from the reference. Several times slower than `Reference`.
    Debug,
}

#[derive(Clone)]
pub(crate) enum Leaf {
    Input(usize),
    Const(Arc<Tensor>),
    Shared(Arc<SharedVar>),
}

#[derive(Clone)]
pub(crate) struct PNode {
    pub op: Op,
    pub inputs: Vec<usize>,
    pub ty: Type,
    pub loc: Location,
    pub leaf: Option<Leaf>,
}

pub(crate) struct Program {
    pub nodes: Vec<PNode>,
    outputs: Vec<usize>,
    updates: Vec<(Arc<SharedVar>, usize)>,
    /// Random stream states whose counter advances after each call.
    streams: Vec<Arc<SharedVar>>,
    pub input_types: Vec<(String, Type)>,
    mode: Mode,
    /// Index of the last node that reads each value (`usize::MAX`: kept to the end).
    last_use: Vec<usize>,
    /// How many outputs and updates read each node.
    root_reads: Vec<u32>,
    /// For a node that starts a run of fused kernels of one float type (leaves may sit between
    /// them), the end of the run; 0 elsewhere. See [`Program::run_group`].
    run_end: Vec<usize>,
    /// Whether a node is a product that runs at once with the next (see [`pair_products`]).
    pair_start: Vec<bool>,
    peak: AtomicUsize,
    workspace: Mutex<Workspace>,
    /// Per-node times, when profiling.
    profile: Option<Mutex<Vec<NodeTime>>>,
}

/// Work (elements times the kernels' cost) above which a kernel group is split over the pool.
const GROUP_PAR_WORK: usize = 1 << 13;
/// Elements per chunk of a large kernel group: its kernels' data for one chunk stays in cache.
const GROUP_CHUNK: usize = 4096;
/// Chunks are a multiple of this many elements.
const GROUP_CHUNK_MIN: usize = 64;

/// For each node, the end of the run of fused kernels it starts (see [`Program::run_group`]):
/// consecutive kernels of one float type, with leaves between them allowed, and at least one
/// more kernel after it; 0 elsewhere.
fn kernel_runs(nodes: &[PNode]) -> Vec<usize> {
    let kernel =
        |n: &PNode| matches!(n.op, Op::Fused(_)) && matches!(n.ty.dtype, DType::F32 | DType::F64);
    let mut run_end = vec![0; nodes.len()];
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
            } else if nodes[k].leaf.is_none() {
                break;
            }
            k += 1;
        }
        let end = kernels.last().expect("one kernel at least") + 1;
        for w in kernels.windows(2) {
            run_end[w[0]] = end;
        }
        j = end;
    }
    run_end
}

/// Products with fewer multiply-adds than this (unknown dims counted as 1) are not worth
/// running beside another.
const PAIR_MIN_FLOPS: usize = gemm::PAR_MIN_FLOPS;
/// How far ahead (in nodes) a product looks for a partner.
const PAIR_WINDOW: usize = 4096;

/// The multiply-adds of product node `n` that its static shapes guarantee (an unknown dim
/// counts as 1), or 0 if it is not a float product.
fn static_flops(nodes: &[PNode], n: &PNode) -> usize {
    let Op::Gemm { ta, .. } = n.op else { return 0 };
    if !matches!(n.ty.dtype, DType::F32 | DType::F64) {
        return 0;
    }
    let known = |d: &Dim| d.unwrap_or(1);
    let a = &nodes[n.inputs[0]].ty.shape.0;
    let k = a.get(if ta { 0 } else { 1 }).map_or(1, known);
    n.ty.shape.0.iter().map(known).product::<usize>() * k
}

/// Schedule independent products side by side so that the executor can run each pair at
/// once, one on each half of the pool ([`Program::gemm_pair`]). This is meant for machines
/// with more cores than one product of batch 100 can keep busy. (On two cores the `gemm` crate
/// already keeps both busy, and pairs measure the same as products in turn.)
///
/// Each product, in order, looks ahead for the first big product of its dtype that does not
/// depend on it. That one moves up to just after it, and with it the nodes it needs that lie
/// between them, which go first: they cannot depend on the first product either. The result
/// is still an order in which every node comes after its operands. Returns the new order
/// (old indices by position) and the positions that start a pair.
fn pair_products(nodes: &[PNode]) -> (Vec<usize>, Vec<bool>) {
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

/// A value during a run: an input of the call (by position), a shared constant or variable, or a
/// buffer the run owns.
enum Val {
    Fed(usize),
    Arc(Arc<Tensor>),
    Own(Tensor),
}

impl Val {
    fn get<'a>(&'a self, inputs: &'a [Tensor]) -> &'a Tensor {
        match self {
            Val::Fed(k) => &inputs[*k],
            Val::Arc(t) => t,
            Val::Own(t) => t,
        }
    }
}

fn bytes(t: &Tensor) -> usize {
    let per = match t.dtype() {
        crate::dtype::DType::F32 => 4,
        crate::dtype::DType::Bool => 1,
        _ => 8,
    };
    t.len() * per
}

/// Float buffers kept between calls, so a warm plan allocates no arrays.
#[derive(Default)]
struct Pool {
    f32: Bins<f32>,
    f64: Bins<f64>,
}

/// Free buffers of one float type by capacity. A capacity whose buffers are all taken keeps its
/// (empty) entry, so a warm plan does not allocate map nodes either.
struct Bins<T> {
    by_cap: BTreeMap<usize, Vec<Vec<T>>>,
    count: usize,
}

impl<T> Default for Bins<T> {
    fn default() -> Self {
        Bins {
            by_cap: BTreeMap::new(),
            count: 0,
        }
    }
}

/// Buffers kept per float type: enough for every live value of a long chain's gradient.
const POOL_MAX: usize = 4096;

trait Pooled: KernelFloat {
    fn bins(pool: &mut Pool) -> &mut Bins<Self>;
    fn members(groups: &mut Groups) -> (&mut Vec<Member<Self>>, &mut Vec<u32>);
}
impl Pooled for f32 {
    fn bins(pool: &mut Pool) -> &mut Bins<f32> {
        &mut pool.f32
    }
    fn members(groups: &mut Groups) -> (&mut Vec<Member<f32>>, &mut Vec<u32>) {
        (&mut groups.f32, &mut groups.member)
    }
}
impl Pooled for f64 {
    fn bins(pool: &mut Pool) -> &mut Bins<f64> {
        &mut pool.f64
    }
    fn members(groups: &mut Groups) -> (&mut Vec<Member<f64>>, &mut Vec<u32>) {
        (&mut groups.f64, &mut groups.member)
    }
}

impl<T: num_traits::Zero + Clone> Bins<T> {
    /// The smallest buffer with room for `n`, else a new one; resized to `n` (contents
    /// unspecified). Best fit keeps the large buffers for the large values, so a warm plan finds
    /// every buffer it needs.
    fn take(&mut self, n: usize) -> Vec<T> {
        let found = self.by_cap.range_mut(n..).find_map(|(_, bufs)| bufs.pop());
        let mut buf = match found {
            Some(b) => {
                self.count -= 1;
                b
            }
            None => Vec::with_capacity(n),
        };
        buf.resize(n, T::zero());
        buf
    }

    fn keep(&mut self, buf: Vec<T>) {
        if self.count < POOL_MAX && buf.capacity() > 0 {
            self.count += 1;
            self.by_cap.entry(buf.capacity()).or_default().push(buf);
        }
    }
}

impl Pool {
    fn take<T: Pooled>(&mut self, n: usize) -> Vec<T> {
        T::bins(self).take(n)
    }

    fn give(&mut self, t: Tensor) {
        match t {
            Tensor::F32(a) => self.f32.keep(a.into_raw_vec_and_offset().0),
            Tensor::F64(a) => self.f64.keep(a.into_raw_vec_and_offset().0),
            _ => {}
        }
    }

    /// `t` to hand to the caller: a small value in a large pooled buffer leaves as an exact
    /// copy, and the buffer stays in the pool.
    fn release(&mut self, t: Tensor) -> Tensor {
        fn fit<T: Pooled>(pool: &mut Pool, a: ArrayD<T>) -> ArrayD<T> {
            let shape: SmallVec<[usize; 6]> = a.shape().into();
            let (buf, _) = a.into_raw_vec_and_offset();
            let buf = if buf.capacity() > 2 * buf.len() + 64 {
                let exact = buf.to_vec();
                pool.keep_vec(buf);
                exact
            } else {
                buf
            };
            ArrayD::from_shape_vec(IxDyn(&shape), buf).expect("the shape of the buffer")
        }
        match t {
            Tensor::F32(a) if a.is_standard_layout() => Tensor::F32(fit(self, a)),
            Tensor::F64(a) if a.is_standard_layout() => Tensor::F64(fit(self, a)),
            other => other,
        }
    }

    fn keep_vec<T: Pooled>(&mut self, buf: Vec<T>) {
        T::bins(self).keep(buf)
    }
}

/// What a run needs besides the program, kept between calls.
#[derive(Default)]
struct Workspace {
    values: Vec<Option<Val>>,
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
}

/// A kernel group in the making, per float type: kept in the workspace so that a warm call
/// allocates nothing for it.
#[derive(Default)]
struct Groups {
    f32: Vec<Member<f32>>,
    f64: Vec<Member<f64>>,
    /// For each node, 1 + its position among the members (0: not a member).
    member: Vec<u32>,
}

/// One kernel of a group: its node, the buffer it writes and its operands.
struct Member<T> {
    node: usize,
    /// The output buffer (empty once a later kernel of the group took it over in place).
    buf: Vec<T>,
    out: OutPtr<T>,
    layout: Layout<T>,
}

/// Where a group kernel writes: its buffer, written chunk by chunk from several threads.
struct OutPtr<T>(*mut T);
// SAFETY: each chunk of a group writes a disjoint range of positions of every buffer (see
// `Program::run_group`), and the buffers outlive the group's run.
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Sync> Sync for OutPtr<T> {}

/// Time and calls of one node, summed over calls since profiling began.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeTime {
    pub calls: u64,
    pub nanos: u64,
}

fn shaped<T: KernelFloat>(buf: Vec<T>, shape: &[usize]) -> Result<Tensor, String> {
    ArrayD::from_shape_vec(IxDyn(shape), buf)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

impl Program {
    pub fn new(
        mut nodes: Vec<PNode>,
        mut outputs: Vec<usize>,
        mut updates: Vec<(Arc<SharedVar>, usize)>,
        streams: Vec<Arc<SharedVar>>,
        input_types: Vec<(String, Type)>,
        mode: Mode,
    ) -> Program {
        let mut pair_start = vec![false; nodes.len()];
        if mode == Mode::Fast {
            let order;
            (order, pair_start) = pair_products(&nodes);
            let mut index = vec![0; nodes.len()];
            for (k, &i) in order.iter().enumerate() {
                index[i] = k;
            }
            let mut old: Vec<Option<PNode>> = nodes.into_iter().map(Some).collect();
            nodes = order
                .iter()
                .map(|&i| {
                    let mut n = old[i].take().expect("a permutation");
                    n.inputs.iter_mut().for_each(|x| *x = index[*x]);
                    n
                })
                .collect();
            outputs.iter_mut().for_each(|o| *o = index[*o]);
            updates.iter_mut().for_each(|u| u.1 = index[u.1]);
        }
        debug_assert!(
            nodes
                .iter()
                .enumerate()
                .all(|(k, n)| n.inputs.iter().all(|&i| i < k)),
            "every node comes after its operands"
        );
        let mut last_use = vec![0; nodes.len()];
        for (j, n) in nodes.iter().enumerate() {
            for &i in &n.inputs {
                last_use[i] = j;
            }
        }
        let mut root_reads = vec![0u32; nodes.len()];
        for &o in outputs.iter().chain(updates.iter().map(|u| &u.1)) {
            last_use[o] = usize::MAX;
            root_reads[o] += 1;
        }
        if mode == Mode::Reference {
            last_use.iter_mut().for_each(|l| *l = usize::MAX);
        }
        let run_end = kernel_runs(&nodes);
        Program {
            nodes,
            outputs,
            updates,
            streams,
            input_types,
            mode,
            last_use,
            root_reads,
            run_end,
            pair_start,
            peak: AtomicUsize::new(0),
            workspace: Mutex::new(Workspace::default()),
            profile: None,
        }
    }

    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn listing(&self) -> String {
        let updates: Vec<(String, usize)> = self
            .updates
            .iter()
            .map(|(v, i)| (v.name.clone(), *i))
            .collect();
        let mut notes = Vec::new();
        let mut j = 0;
        while j < self.nodes.len() {
            if self.pair_start[j] {
                notes.push(format!("products %{j} and %{} run side by side", j + 1));
            }
            if self.run_end[j] > j {
                let last = self.run_end[j] - 1;
                notes.push(format!(
                    "kernels %{j}..=%{last} run as one loop (while their shapes agree)"
                ));
                j = self.run_end[j];
            } else {
                j += 1;
            }
        }
        super::profile::listing(&self.nodes, &self.outputs, &updates, &notes)
    }

    /// Record time and calls per node from now on.
    pub fn enable_profile(&mut self) {
        self.profile = Some(Mutex::new(vec![NodeTime::default(); self.nodes.len()]));
    }

    /// Per-node times so far (`None` unless profiling).
    pub fn profile(&self) -> Option<Vec<NodeTime>> {
        self.profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    #[track_caller]
    pub fn check_feeds(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() < self.input_types.len() {
            let (name, _) = &self.input_types[inputs.len()];
            return Err(Error::MissingFeed {
                name: name.clone(),
                expected: self.input_types.len(),
                got: inputs.len(),
            });
        }
        if inputs.len() > self.input_types.len() {
            return Err(Error::Usage {
                what: format!(
                    "function takes {} inputs, got {}",
                    self.input_types.len(),
                    inputs.len()
                ),
                loc: Location::caller(),
            });
        }
        for ((name, ty), t) in self.input_types.iter().zip(inputs) {
            if t.dtype() != ty.dtype {
                return Err(Error::FeedDType {
                    name: name.clone(),
                    expected: ty.dtype.to_string(),
                    got: t.dtype().to_string(),
                });
            }
            if !ty.shape.matches(t.shape()) {
                return Err(Error::FeedShape {
                    name: name.clone(),
                    expected: ty.shape.to_string(),
                    got: shape::show(t.shape()),
                });
            }
        }
        Ok(())
    }

    #[track_caller]
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.check_feeds(inputs)?;
        // Take the buffers of earlier calls; a concurrent call finds none and allocates its own.
        let mut ws = std::mem::take(&mut *self.workspace.lock().unwrap_or_else(|e| e.into_inner()));
        // The whole call runs on a worker of the rayon pool: the kernels that split their work
        // then fork and join within the pool instead of waking it from outside each time.
        let result = if self.mode == Mode::Fast && rayon::current_thread_index().is_none() {
            rayon::scope(|_| self.run_in(inputs, &mut ws))
        } else {
            self.run_in(inputs, &mut ws)
        };
        ws.values.clear();
        *self.workspace.lock().unwrap_or_else(|e| e.into_inner()) = ws;
        result
    }

    fn run_in(&self, inputs: &[Tensor], ws: &mut Workspace) -> Result<Vec<Tensor>> {
        let fast = self.mode == Mode::Fast;
        let Workspace {
            values,
            pool,
            reads,
            new_values,
            groups,
            held,
        } = ws;
        values.clear();
        values.resize_with(self.nodes.len(), || None);
        held.clear();
        held.resize(self.nodes.len(), 0);
        let mut times = self
            .profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()));
        let (mut live, mut peak) = (0usize, 0usize);
        let mut j = 0;
        while j < self.nodes.len() {
            let start = times.as_ref().map(|_| Instant::now());
            // A run of fused kernels goes chunk by chunk through all of them at once.
            if fast && self.run_end[j] > j {
                let end = self.run_end[j];
                let done = match self.nodes[j].ty.dtype {
                    DType::F32 => self.run_group::<f32>(j, end, inputs, values, pool, groups)?,
                    _ => self.run_group::<f64>(j, end, inputs, values, pool, groups)?,
                };
                let total = start.map(|s| s.elapsed().as_nanos() as u64);
                let cost = |k: usize| match &self.nodes[k].op {
                    Op::Fused(f) => f.cost() as u64,
                    _ => 0,
                };
                let all: u64 = (j..done).map(cost).sum::<u64>().max(1);
                for k in j..done {
                    if let Some(Val::Own(t)) = &values[k] {
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
                    self.release_dead(k, values, pool, held, &mut live);
                }
                j = done;
                continue;
            }
            if fast && self.pair_start[j] {
                let (a, b) = match self.nodes[j].ty.dtype {
                    DType::F32 => self.gemm_pair::<f32>(j, inputs, values, pool)?,
                    _ => self.gemm_pair::<f64>(j, inputs, values, pool)?,
                };
                let total = start.map(|s| s.elapsed().as_nanos() as u64);
                (held[j], held[j + 1]) = (bytes(&a), bytes(&b));
                live += held[j] + held[j + 1];
                peak = peak.max(live);
                values[j] = Some(Val::Own(a));
                values[j + 1] = Some(Val::Own(b));
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
            let n = &self.nodes[j];
            let v = match &n.leaf {
                Some(leaf) => self.leaf(leaf),
                None => {
                    let out = self.eval_node(j, n, inputs, values, pool, fast)?;
                    held[j] = bytes(&out);
                    live += held[j];
                    Val::Own(out)
                }
            };
            values[j] = Some(v);
            peak = peak.max(live);
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
        reads.extend_from_slice(&self.root_reads);
        let mut take = |i: usize, values: &mut Vec<Option<Val>>| -> Tensor {
            reads[i] -= 1;
            match values[i].take() {
                Some(Val::Own(t)) if reads[i] == 0 => pool.release(t),
                Some(v) => {
                    let t = v.get(inputs).clone();
                    values[i] = Some(v);
                    t
                }
                None => unreachable!("outputs are computed"),
            }
        };
        let outputs: Vec<Tensor> = self.outputs.iter().map(|&o| take(o, values)).collect();
        new_values.clear();
        for (var, i) in &self.updates {
            let t = take(*i, values);
            if !var.ty.shape.matches(t.shape()) {
                return Err(Error::Runtime {
                    op: "update".into(),
                    detail: format!(
                        "new value of {} has shape {}, the variable {}",
                        var.name,
                        shape::show(t.shape()),
                        var.ty.shape
                    ),
                    loc: self.nodes[*i].loc,
                });
            }
            new_values.push(t);
        }
        // Release every reference to the old values before assigning the new ones.
        values.clear();
        for ((var, _), mut t) in self.updates.iter().zip(new_values.drain(..)) {
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
        for s in &self.streams {
            let mut state = s.value.write().unwrap_or_else(|p| p.into_inner());
            let state = Arc::make_mut(&mut state);
            if let Tensor::I64(a) = state
                && let Some(c) = a.iter_mut().nth(1)
            {
                *c = c.wrapping_add(1);
            }
        }
        Ok(outputs)
    }

    /// Whether node `j` may take over the buffer of its operand `i` for a result of `shape`:
    /// `i` dies at `j` and is a standard-layout array of type `T` and that shape that the run
    /// owns (never a caller's input or a shared variable).
    fn can_take<T: Pooled>(
        &self,
        i: usize,
        j: usize,
        values: &[Option<Val>],
        shape: &[usize],
    ) -> bool {
        self.last_use[i] == j
            && matches!(&values[i], Some(Val::Own(t)) if t.dtype() == T::DTYPE
                && t.shape() == shape
                && T::view(t).is_some_and(|v| v.is_standard_layout()))
    }

    /// The buffer of operand `i`, which [`Program::can_take`] allowed.
    fn take_buffer<T: Pooled>(values: &mut [Option<Val>], i: usize) -> Vec<T> {
        match values[i].take().map(|v| match v {
            Val::Own(t) => T::unwrap(t),
            _ => unreachable!("can_take checked that the run owns it"),
        }) {
            Some(Ok(a)) => a.into_raw_vec_and_offset().0,
            _ => unreachable!("can_take checked that it is there, of this type"),
        }
    }

    fn leaf(&self, leaf: &Leaf) -> Val {
        match leaf {
            Leaf::Input(k) => Val::Fed(*k),
            Leaf::Const(c) => Val::Arc(c.clone()),
            Leaf::Shared(s) => Val::Arc(s.value.read().unwrap_or_else(|p| p.into_inner()).clone()),
        }
    }

    /// Give back the buffers of the operands of node `j` that it was the last to read, and take
    /// their bytes off the live total (also of those whose buffer `j` took over: it counts
    /// them as its own).
    fn release_dead(
        &self,
        j: usize,
        values: &mut [Option<Val>],
        pool: &mut Pool,
        held: &mut [usize],
        live: &mut usize,
    ) {
        for &i in &self.nodes[j].inputs {
            if self.last_use[i] == j {
                *live -= std::mem::take(&mut held[i]);
                if let Some(Val::Own(t)) = values[i].take() {
                    pool.give(t);
                }
            }
        }
    }

    /// Run the fused kernels of nodes `first..end` (leaves may sit between them) that have the
    /// output shape of the first, as one loop: the positions are cut into chunks, and each
    /// chunk goes through every kernel in turn, on its own rayon task. A kernel of a group
    /// only reads the results of earlier ones at its own positions, so chunks are independent;
    /// the kernels share one fork and join and their data stays in cache. Returns where the
    /// group stopped (the first kernel of another shape).
    ///
    /// No buffer is handed out twice within a group: the operands that die in it go back to
    /// the pool after it (the caller does that), and a kernel writes in place only over an
    /// operand of its own shape that it reads last, at the positions it writes.
    fn run_group<T: Pooled>(
        &self,
        first: usize,
        end: usize,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
        groups: &mut Groups,
    ) -> Result<usize> {
        let (members, index) = T::members(groups);
        debug_assert!(members.is_empty());
        index.resize(self.nodes.len(), 0);
        let mut shape: SmallVec<[usize; 6]> = SmallVec::new();
        let mut done = first;
        let mut result = Ok(());
        for j in first..end {
            let n = &self.nodes[j];
            if let Some(leaf) = &n.leaf {
                values[j] = Some(self.leaf(leaf));
                done = j + 1;
                continue;
            }
            let Op::Fused(k) = &n.op else {
                unreachable!("a kernel run holds kernels and leaves")
            };
            let member_of = |i: usize| index[i].checked_sub(1).map(|m| m as usize);
            // Operand shapes: a result of the group has the group's shape.
            let in_shapes: SmallVec<[SmallVec<[usize; 6]>; 8]> = n
                .inputs
                .iter()
                .map(|&i| match member_of(i) {
                    Some(_) => shape.clone(),
                    None => operand(values, inputs, i).shape().into(),
                })
                .collect();
            let out_shape = match self.kernel_shape(k, n, &in_shapes) {
                Ok(s) => s,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if members.is_empty() {
                shape = out_shape;
            } else if out_shape != shape {
                break;
            }
            // In place over an operand of the group's shape that dies here.
            let reuse = n.inputs.iter().position(|&i| match member_of(i) {
                Some(m) => self.last_use[i] == j && !members[m].buf.is_empty(),
                None => self.can_take::<T>(i, j, values, &shape),
            });
            let mut buf: Vec<T> = match reuse.map(|r| n.inputs[r]) {
                Some(i) => match member_of(i) {
                    Some(m) => std::mem::take(&mut members[m].buf),
                    None => Self::take_buffer(values, i),
                },
                None => pool.take(shape.iter().product()),
            };
            let srcs: std::result::Result<SmallVec<[Src<T>; 8]>, String> = n
                .inputs
                .iter()
                .map(|&i| {
                    if reuse.is_some_and(|r| n.inputs[r] == i) {
                        return Ok(Src::Out);
                    }
                    match member_of(i) {
                        Some(m) => Ok(Src::Ptr(members[m].out.0 as *const T)),
                        None => Src::of(operand(values, inputs, i)),
                    }
                })
                .collect();
            let layout = srcs.and_then(|srcs| k.layout(&srcs, &shape));
            match layout {
                Ok(layout) => {
                    index[j] = members.len() as u32 + 1;
                    let out = OutPtr(buf.as_mut_ptr());
                    members.push(Member {
                        node: j,
                        buf,
                        out,
                        layout,
                    });
                    done = j + 1;
                }
                Err(detail) => {
                    pool.keep_vec(buf);
                    result = Err(node_error(n, detail));
                    break;
                }
            }
        }
        if result.is_ok() {
            let total: usize = shape.iter().product();
            let kernel = |m: &Member<T>| -> &FusedKernel {
                match &self.nodes[m.node].op {
                    Op::Fused(k) => k,
                    _ => unreachable!("members are kernels"),
                }
            };
            let work: usize = members.iter().map(|m| kernel(m).cost()).sum::<usize>() * total;
            let run = |from: usize, to: usize| {
                for m in members.iter() {
                    // SAFETY: `m.out` points at `total` elements that stay alive and in place
                    // until the group ends; chunks cover disjoint ranges `from..to`.
                    let out =
                        unsafe { std::slice::from_raw_parts_mut(m.out.0.add(from), to - from) };
                    kernel(m).span(&m.layout, out, from);
                }
            };
            let threads = rayon::current_num_threads();
            if threads > 1 && work >= GROUP_PAR_WORK && total >= 2 * GROUP_CHUNK_MIN {
                let chunks = threads.max(total / GROUP_CHUNK);
                let chunk = total.div_ceil(chunks).next_multiple_of(GROUP_CHUNK_MIN);
                use rayon::prelude::*;
                (0..total.div_ceil(chunk))
                    .into_par_iter()
                    .for_each(|c| run(c * chunk, total.min((c + 1) * chunk)));
            } else if total > 0 {
                run(0, total);
            }
        }
        for m in members.drain(..) {
            index[m.node] = 0;
            if !m.buf.is_empty() || shape.iter().product::<usize>() == 0 {
                let t = shaped(m.buf, &shape).expect("the buffer has the group's shape");
                values[m.node] = Some(Val::Own(t));
            }
        }
        result.map(|()| done)
    }

    /// The output shape of kernel `k` of node `n` for operands of these shapes, with the
    /// checks each op of the region makes unfused; an error names the op of the region that
    /// fails and its line.
    fn kernel_shape(
        &self,
        k: &FusedKernel,
        n: &PNode,
        in_shapes: &[SmallVec<[usize; 6]>],
    ) -> Result<SmallVec<[usize; 6]>> {
        let shapes: SmallVec<[&[usize]; 8]> = in_shapes.iter().map(|s| &s[..]).collect();
        let declared: SmallVec<[&shape::Shape; 8]> =
            n.inputs.iter().map(|&i| &self.nodes[i].ty.shape).collect();
        k.checked_out_shape(&shapes, &declared).map_err(|detail| {
            // Name the op of the region that fails, as it would have failed unfused.
            match k.diagnose(&shapes) {
                Some(e) => Error::Runtime {
                    op: e.op,
                    detail: e.detail,
                    loc: e.loc,
                },
                None => node_error(n, detail),
            }
        })
    }

    /// Compute node `j` (not a leaf): a fast path into a pooled buffer where there is one, else
    /// the general kernel.
    fn eval_node(
        &self,
        j: usize,
        n: &PNode,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
        fast: bool,
    ) -> Result<Tensor> {
        let err = |detail: String| node_error(n, detail);
        if fast {
            let out = match n.ty.dtype {
                DType::F32 => self.fast_node::<f32>(j, n, inputs, values, pool),
                DType::F64 => self.fast_node::<f64>(j, n, inputs, values, pool),
                _ => None,
            };
            if let Some(out) = out {
                return out.map_err(|e| match e {
                    NodeError::Plain(detail) => err(detail),
                    NodeError::Located(e) => e,
                });
            }
        }
        let args: SmallVec<[&Tensor; 4]> = n
            .inputs
            .iter()
            .map(|&i| operand(values, inputs, i))
            .collect();
        let types: SmallVec<[&Type; 4]> = n.inputs.iter().map(|&i| &self.nodes[i].ty).collect();
        kernels::eval(
            &n.op,
            &args,
            &types,
            &n.ty,
            if fast { Exec::Fast } else { Exec::Reference },
        )
        .map_err(err)
    }

    /// The fast path of node `j` with a result of float type `T`, into a pooled buffer; `None`
    /// where the general kernel does the op.
    fn fast_node<T: Pooled>(
        &self,
        j: usize,
        n: &PNode,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
    ) -> Option<std::result::Result<Tensor, NodeError>> {
        let plain = |r: std::result::Result<Tensor, String>| r.map_err(NodeError::Plain);
        Some(match &n.op {
            Op::Fused(k) => self
                .fused::<T>(k, j, n, inputs, values, pool)
                .map_err(NodeError::Located),
            Op::Gemm { .. } => plain(self.gemm_job::<T>(j, inputs, values, pool).and_then(
                |mut job| {
                    let done =
                        self.gemm_run(&mut job, j, inputs, values, rayon::current_num_threads());
                    Self::gemm_finish(job, pool, done)
                },
            )),
            Op::Reduce {
                op: Reduce::Sum,
                axes,
                keepdims,
            } => plain(sum_node::<T>(
                operand(values, inputs, n.inputs[0]),
                axes,
                *keepdims,
                pool,
            )?),
            Op::Random { dist, key, .. } => {
                plain(random_node::<T>(*dist, *key, n, inputs, values, pool))
            }
            Op::ExpandDims(_)
            | Op::Squeeze(_)
            | Op::Reshape(_)
            | Op::ReshapeLike
            | Op::StopGradient
            | Op::BroadcastLike
            | Op::BroadcastTo(_) => plain(self.reshaped::<T>(j, n, inputs, values, pool)?),
            Op::DimSize { axes, .. } => plain(dim_size::<T>(
                axes,
                operand(values, inputs, n.inputs[0]),
                pool,
            )),
            _ => return None,
        })
    }

    /// Ops that only change the shape: the operand's buffer itself when this node is its last
    /// reader, else a copy into a pooled buffer (broadcasts are always copied). `None` where
    /// the general kernel must check something first (a shape that does not fit).
    fn reshaped<T: Pooled>(
        &self,
        j: usize,
        n: &PNode,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
    ) -> Option<std::result::Result<Tensor, String>> {
        let x = operand(values, inputs, n.inputs[0]);
        let from = x.shape();
        let to: SmallVec<[usize; 6]> = match &n.op {
            Op::ExpandDims(axes) => {
                let mut s: SmallVec<[usize; 6]> = from.into();
                for &ax in axes {
                    s.insert(ax.min(s.len()), 1);
                }
                s
            }
            Op::Squeeze(axes) => {
                if axes.iter().any(|&a| from.get(a) != Some(&1)) {
                    return None;
                }
                (0..from.len())
                    .filter(|k| !axes.contains(k))
                    .map(|k| from[k])
                    .collect()
            }
            Op::ReshapeLike | Op::BroadcastLike => {
                operand(values, inputs, n.inputs[1]).shape().into()
            }
            Op::BroadcastTo(s) => s.as_slice().into(),
            Op::Reshape(target) if target.iter().all(|&d| d >= 0) => {
                target.iter().map(|&d| d as usize).collect()
            }
            Op::StopGradient => from.into(),
            _ => return None,
        };
        let broadcast = matches!(n.op, Op::BroadcastLike | Op::BroadcastTo(_));
        if broadcast {
            let declared = &self.nodes[n.inputs[0]].ty.shape;
            if let Err(e) = shape::check_runtime_broadcast(declared, from, &to) {
                return Some(Err(e));
            }
            let view = T::view(x)?;
            let src = view.broadcast(IxDyn(&to))?;
            let mut out = pool.take::<T>(to.iter().product());
            ArrayViewMutD::from_shape(IxDyn(&to), &mut out[..])
                .ok()?
                .assign(&src);
            return Some(shaped(out, &to));
        }
        if to.iter().product::<usize>() != x.len() {
            return None;
        }
        if self.can_take::<T>(n.inputs[0], j, values, from) {
            return Some(shaped(Self::take_buffer::<T>(values, n.inputs[0]), &to));
        }
        let view = T::view(x)?;
        let mut out = pool.take::<T>(x.len());
        for (o, v) in out.iter_mut().zip(view.iter()) {
            *o = *v;
        }
        Some(shaped(out, &to))
    }

    /// A fused kernel, written in place over an operand whose last reader it is when that
    /// operand has the result's shape and belongs to the run.
    fn fused<T: Pooled>(
        &self,
        k: &FusedKernel,
        j: usize,
        n: &PNode,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
    ) -> Result<Tensor> {
        let arg = |i: usize| values[i].as_ref().expect("operands are computed first");
        let in_shapes: SmallVec<[SmallVec<[usize; 6]>; 8]> = n
            .inputs
            .iter()
            .map(|&i| arg(i).get(inputs).shape().into())
            .collect();
        let shape = self.kernel_shape(k, n, &in_shapes)?;
        let err = |detail: String| node_error(n, detail);
        let reuse = n
            .inputs
            .iter()
            .position(|&i| self.can_take::<T>(i, j, values, &shape));
        let mut out: Vec<T> = match reuse {
            Some(k) => Self::take_buffer(values, n.inputs[k]),
            None => pool.take(shape.iter().product()),
        };
        let srcs: SmallVec<[Src<T>; 8]> = n
            .inputs
            .iter()
            .map(|&i| {
                // (After merging, one node can be several inputs of a kernel.)
                if reuse.is_some_and(|k| n.inputs[k] == i) {
                    return Ok(Src::Out);
                }
                Src::of(operand(values, inputs, i))
            })
            .collect::<std::result::Result<_, String>>()
            .map_err(err)?;
        k.run(&srcs, &mut out, &shape, Exec::Fast).map_err(err)?;
        shaped(out, &shape).map_err(err)
    }
}

/// The error of node `n` that failed with `detail`, at the user's line.
fn node_error(n: &PNode, detail: String) -> Error {
    Error::Runtime {
        // A gemm node is the user's matmul (with its bias and factors).
        op: match n.op {
            Op::Gemm { .. } => "matmul".into(),
            _ => n.op.name(),
        },
        detail,
        loc: n.loc,
    }
}

/// A failed fast path: a message for the node's own op and line, or an error already located
/// (a fused kernel names the op of its region that failed).
enum NodeError {
    Plain(String),
    Located(Error),
}

fn operand<'a>(values: &'a [Option<Val>], inputs: &'a [Tensor], i: usize) -> &'a Tensor {
    values[i]
        .as_ref()
        .expect("operands are computed first")
        .get(inputs)
}

fn float_view<'a, T: KernelFloat>(t: &'a Tensor) -> std::result::Result<ArrayViewD<'a, T>, String> {
    T::view(t).ok_or_else(|| format!("expected {}, got {}", T::DTYPE, t.dtype()))
}

/// A product with its buffers taken: the output (a dying bias's own buffer, or a pooled one)
/// and, for a transposed left operand the `gemm` crate would pack, a pooled buffer to
/// transpose it into.
struct GemmJob<T> {
    out: Vec<T>,
    at: Option<Vec<T>>,
    own_bias: bool,
    /// Rows, inner dim and columns.
    dims: (usize, usize, usize),
    flags: (bool, bool, f64),
}

impl Program {
    /// Two independent products at once (see [`pair_products`]), each on half the pool's
    /// threads; one after the other where either is too small to be worth it.
    fn gemm_pair<T: Pooled>(
        &self,
        j: usize,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
    ) -> Result<(Tensor, Tensor)> {
        let err = |k: usize| move |detail: String| node_error(&self.nodes[k], detail);
        let mut first = self
            .gemm_job::<T>(j, inputs, values, pool)
            .map_err(err(j))?;
        let mut second = match self.gemm_job::<T>(j + 1, inputs, values, pool) {
            Ok(job) => job,
            Err(e) => {
                pool.keep_vec(first.out);
                return Err(err(j + 1)(e));
            }
        };
        let flops = |job: &GemmJob<T>| job.dims.0 * job.dims.1 * job.dims.2;
        let threads = rayon::current_num_threads();
        let values = &*values;
        let (a, b) = if threads > 1 && flops(&first).min(flops(&second)) >= gemm::PAR_MIN_FLOPS {
            let half = threads / 2;
            rayon::join(
                || self.gemm_run(&mut first, j, inputs, values, half),
                || self.gemm_run(&mut second, j + 1, inputs, values, threads - half),
            )
        } else {
            (
                self.gemm_run(&mut first, j, inputs, values, threads),
                self.gemm_run(&mut second, j + 1, inputs, values, threads),
            )
        };
        let a = Self::gemm_finish(first, pool, a).map_err(err(j));
        let b = Self::gemm_finish(second, pool, b).map_err(err(j + 1));
        Ok((a?, b?))
    }

    /// Check the operands of product node `j` and take its buffers: a pooled one for the
    /// result or, with a bias of the output's shape that dies here, the bias's own buffer, which
    /// the product accumulates onto (the second weight gradient of a CD step adds onto the first
    /// without a copy).
    fn gemm_job<T: Pooled>(
        &self,
        j: usize,
        inputs: &[Tensor],
        values: &mut [Option<Val>],
        pool: &mut Pool,
    ) -> std::result::Result<GemmJob<T>, String> {
        let n = &self.nodes[j];
        let Op::Gemm { ta, tb, alpha } = n.op else {
            unreachable!("a gemm job is made for a product node")
        };
        let flags = (ta, tb, f64::from_bits(alpha));
        let (a, b) = (
            operand(values, inputs, n.inputs[0]),
            operand(values, inputs, n.inputs[1]),
        );
        let (m, k, cols) = gemm::dims(a.shape(), b.shape(), flags.0, flags.1)?;
        let own_bias = n.inputs.get(2).copied().filter(|&c| {
            !n.inputs[..2].contains(&c) && self.can_take::<T>(c, j, values, &[m, cols])
        });
        let out = match own_bias {
            Some(c) => Self::take_buffer(values, c),
            None => pool.take::<T>(m * cols),
        };
        // The gemm crate would allocate a packing buffer for a transposed left operand on
        // every call: it is transposed into a pooled buffer instead.
        let at = (flags.0 && gemm::packs_transposed_lhs(m, k, cols)).then(|| pool.take::<T>(m * k));
        Ok(GemmJob {
            out,
            at,
            own_bias: own_bias.is_some(),
            dims: (m, k, cols),
            flags,
        })
    }

    /// Compute the product of node `j` into its job's buffers, on up to `threads` threads.
    fn gemm_run<T: Pooled>(
        &self,
        job: &mut GemmJob<T>,
        j: usize,
        inputs: &[Tensor],
        values: &[Option<Val>],
        threads: usize,
    ) -> std::result::Result<(), String> {
        let n = &self.nodes[j];
        let a = float_view::<T>(operand(values, inputs, n.inputs[0]))?;
        let b = float_view::<T>(operand(values, inputs, n.inputs[1]))?;
        let bias = match (job.own_bias, n.inputs.get(2)) {
            (false, Some(&c)) => Some(float_view::<T>(operand(values, inputs, c))?),
            _ => None,
        };
        let init = match (&bias, job.own_bias) {
            (Some(v), _) => gemm::Init::Bias(v),
            (None, true) => gemm::Init::Out,
            (None, false) => gemm::Init::Zero,
        };
        let (m, k, _) = job.dims;
        match &mut job.at {
            Some(at) => {
                match a.as_slice() {
                    Some(src) => gemm::transpose_into(src, k, m, at),
                    None => at.iter_mut().zip(a.t().iter()).for_each(|(o, v)| *o = *v),
                }
                let a2 =
                    ArrayViewD::from_shape(IxDyn(&[m, k]), &at[..]).map_err(|e| e.to_string())?;
                let flags = (false, job.flags.1, job.flags.2);
                gemm::gemm_onto(&a2, &b, init, flags, &mut job.out, threads)
            }
            None => gemm::gemm_onto(&a, &b, init, job.flags, &mut job.out, threads),
        }
    }

    /// The result of a product job, its transposition buffer back in the pool.
    fn gemm_finish<T: Pooled>(
        job: GemmJob<T>,
        pool: &mut Pool,
        done: std::result::Result<(), String>,
    ) -> std::result::Result<Tensor, String> {
        if let Some(at) = job.at {
            pool.keep_vec(at);
        }
        match done {
            Ok(()) => shaped(job.out, &[job.dims.0, job.dims.2]),
            Err(e) => {
                pool.keep_vec(job.out);
                Err(e)
            }
        }
    }
}

/// A sum over a contiguous run of axes of a standard-layout array, into a pooled buffer;
/// `None` for other cases (the general kernel does those).
fn sum_node<T: Pooled>(
    x: &Tensor,
    axes: &[usize],
    keepdims: bool,
    pool: &mut Pool,
) -> Option<std::result::Result<Tensor, String>> {
    let a = T::view(x)?;
    let flat = a.as_slice()?;
    let (first, last) = (*axes.first()?, *axes.last()?);
    if last - first + 1 != axes.len() {
        return None;
    }
    let dims = a.shape();
    let outer: usize = dims[..first].iter().product();
    let mid: usize = dims[first..=last].iter().product();
    let inner: usize = dims[last + 1..].iter().product();
    let mut out = pool.take::<T>(outer * inner);
    for (o, dst) in out.chunks_mut(inner.max(1)).enumerate().take(outer) {
        let block = &flat[o * mid * inner..(o + 1) * mid * inner];
        if inner == 1 {
            dst[0] = lane_sum(block);
        } else {
            dst.fill(T::zero());
            for row in block.chunks_exact(inner) {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = *d + v;
                }
            }
        }
    }
    let shape: SmallVec<[usize; 6]> = dims
        .iter()
        .enumerate()
        .filter_map(|(k, &d)| match (axes.contains(&k), keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    Some(shaped(out, &shape))
}

/// The sum of `xs` in eight running sums (one per SIMD lane), so the loop vectorizes; a plain
/// running sum cannot be reordered by the compiler.
fn lane_sum<T: KernelFloat>(xs: &[T]) -> T {
    const LANES: usize = 8;
    let mut acc = [T::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = *a + v;
        }
    }
    let mut s = tail.iter().fold(T::zero(), |s, &v| s + v);
    for a in acc {
        s = s + a;
    }
    s
}

fn dim_size<T: Pooled>(
    axes: &[usize],
    x: &Tensor,
    pool: &mut Pool,
) -> std::result::Result<Tensor, String> {
    let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let mut out = pool.take::<T>(1);
    out[0] = T::from_f(n as f64);
    shaped(out, &[])
}

fn random_node<T: Pooled>(
    dist: Dist,
    key: u64,
    n: &PNode,
    inputs: &[Tensor],
    values: &[Option<Val>],
    pool: &mut Pool,
) -> std::result::Result<Tensor, String> {
    let state = operand(values, inputs, n.inputs[0])
        .as_i64()
        .ok_or("stream state must be i64")?;
    let (seed, counter) = match state.as_slice() {
        Some(&[seed, counter]) => (seed as u64, counter as u64),
        _ => return Err("stream state must be i64[2]".into()),
    };
    let shape = operand(values, inputs, n.inputs[1]).shape();
    let mut out = pool.take::<T>(shape.iter().product());
    crate::kernels::random::draw_into(dist, (seed, counter, key), &mut out, Exec::Fast);
    shaped(out, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_sum_adds_every_element() {
        for n in [0, 1, 7, 8, 9, 100, 1003] {
            let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(lane_sum(&xs), (n * n.max(1) - n) as f64 / 2.0, "{n}");
        }
    }
}
