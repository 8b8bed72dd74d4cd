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

use crate::dtype::{DType, Float};
use crate::error::{Error, Location, Result};
use crate::exec::fused::{FusedKernel, Src};
use crate::exec::{gemm, kernels};
use crate::graph::op::{Dist, Op, Reduce};
use crate::graph::{SharedVar, Type};
use crate::shape;
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
    peak: AtomicUsize,
    workspace: Mutex<Workspace>,
    /// Per-node times, when profiling.
    profile: Option<Mutex<Vec<NodeTime>>>,
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

trait Pooled: Float {
    fn bins(pool: &mut Pool) -> &mut Bins<Self>;
}
impl Pooled for f32 {
    fn bins(pool: &mut Pool) -> &mut Bins<f32> {
        &mut pool.f32
    }
}
impl Pooled for f64 {
    fn bins(pool: &mut Pool) -> &mut Bins<f64> {
        &mut pool.f64
    }
}

impl<T: num_traits::Zero + Clone> Bins<T> {
    /// The smallest buffer with room for `n`, else a new one; resized to `n` (contents
    /// unspecified). Best fit keeps the large buffers for the large values, so a warm plan finds
    /// every buffer it needs.
    fn take(&mut self, n: usize) -> Vec<T> {
        let found = self
            .by_cap
            .range_mut(n..)
            .find_map(|(_, bufs)| bufs.pop());
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
}

/// Time and calls of one node, summed over calls since profiling began.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct NodeTime {
    pub calls: u64,
    pub nanos: u64,
}

fn shaped<T: Float>(buf: Vec<T>, shape: &[usize]) -> Result<Tensor, String> {
    ArrayD::from_shape_vec(IxDyn(shape), buf)
        .map(T::wrap)
        .map_err(|e| e.to_string())
}

impl Program {
    pub fn new(
        nodes: Vec<PNode>,
        outputs: Vec<usize>,
        updates: Vec<(Arc<SharedVar>, usize)>,
        streams: Vec<Arc<SharedVar>>,
        input_types: Vec<(String, Type)>,
        mode: Mode,
    ) -> Program {
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
        Program {
            nodes,
            outputs,
            updates,
            streams,
            input_types,
            mode,
            last_use,
            root_reads,
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
        super::profile::listing(&self.nodes, &self.outputs, &updates)
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
        } = ws;
        values.clear();
        values.resize_with(self.nodes.len(), || None);
        let mut times = self
            .profile
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()));
        let (mut live, mut peak) = (0usize, 0usize);
        for (j, n) in self.nodes.iter().enumerate() {
            let start = times.as_ref().map(|_| Instant::now());
            let v = match &n.leaf {
                Some(Leaf::Input(k)) => Val::Fed(*k),
                Some(Leaf::Const(c)) => Val::Arc(c.clone()),
                Some(Leaf::Shared(s)) => {
                    Val::Arc(s.value.read().unwrap_or_else(|p| p.into_inner()).clone())
                }
                None => {
                    let out = self.eval_node(j, n, inputs, values, pool, fast)?;
                    live += bytes(&out);
                    Val::Own(out)
                }
            };
            values[j] = Some(v);
            peak = peak.max(live);
            for &i in &n.inputs {
                if self.last_use[i] == j
                    && let Some(v) = values[i].take()
                    && let Val::Own(t) = v
                {
                    live -= bytes(&t);
                    pool.give(t);
                }
            }
            if let (Some(times), Some(start)) = (times.as_mut(), start) {
                times[j].calls += 1;
                times[j].nanos += start.elapsed().as_nanos() as u64;
            }
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
        let err = |detail: String| Error::Runtime {
            // A gemm node is the user's matmul (with its bias and factors).
            op: match n.op {
                Op::Gemm { .. } => "matmul".into(),
                _ => n.op.name(),
            },
            detail,
            loc: n.loc,
        };
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
        kernels::eval(&n.op, &args, &types, &n.ty, fast).map_err(err)
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
            Op::Gemm { ta, tb, alpha } => {
                let flags = (*ta, *tb, f64::from_bits(*alpha));
                plain(gemm_node::<T>(flags, n, inputs, values, pool))
            }
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
        let standard = T::view(x)?.is_standard_layout();
        let owned_here =
            self.last_use[n.inputs[0]] == j && matches!(values[n.inputs[0]], Some(Val::Own(_)));
        if standard && owned_here {
            let Some(Val::Own(t)) = values[n.inputs[0]].take() else {
                unreachable!("checked above")
            };
            let buf = T::unwrap(t).ok()?.into_raw_vec_and_offset().0;
            return Some(shaped(buf, &to));
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
        let shapes: SmallVec<[&[usize]; 8]> = in_shapes.iter().map(|s| &s[..]).collect();
        let err = |detail: String| {
            // Name the op of the region that fails, as it would have failed unfused.
            match k.diagnose(&shapes) {
                Some(e) => Error::Runtime {
                    op: e.op,
                    detail: e.detail,
                    loc: e.loc,
                },
                None => Error::Runtime {
                    op: n.op.name(),
                    detail,
                    loc: n.loc,
                },
            }
        };
        let declared: SmallVec<[&shape::Shape; 8]> =
            n.inputs.iter().map(|&i| &self.nodes[i].ty.shape).collect();
        let shape = k.checked_out_shape(&shapes, &declared).map_err(err)?;
        let reuse = n.inputs.iter().position(|&i| {
            self.last_use[i] == j
                && matches!(arg(i), Val::Own(t) if t.dtype() == T::DTYPE
                    && t.shape() == &shape[..]
                    && T::view(t).is_some_and(|v| v.is_standard_layout()))
        });
        let mut out: Vec<T> = match reuse {
            Some(k) => match values[n.inputs[k]].take() {
                Some(Val::Own(t)) => match T::unwrap(t) {
                    Ok(a) => a.into_raw_vec_and_offset().0,
                    Err(_) => unreachable!("the dtype was checked above"),
                },
                _ => unreachable!("checked above"),
            },
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
        k.run(&srcs, &mut out, &shape, true).map_err(err)?;
        shaped(out, &shape).map_err(err)
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

fn float_view<'a, T: Float>(t: &'a Tensor) -> std::result::Result<ArrayViewD<'a, T>, String> {
    T::view(t).ok_or_else(|| format!("expected {}, got {}", T::DTYPE, t.dtype()))
}

fn gemm_node<T: Pooled>(
    flags: (bool, bool, f64),
    n: &PNode,
    inputs: &[Tensor],
    values: &[Option<Val>],
    pool: &mut Pool,
) -> std::result::Result<Tensor, String> {
    let a = float_view::<T>(operand(values, inputs, n.inputs[0]))?;
    let b = float_view::<T>(operand(values, inputs, n.inputs[1]))?;
    let bias = n
        .inputs
        .get(2)
        .map(|&i| float_view::<T>(operand(values, inputs, i)))
        .transpose()?;
    let (m, k, cols) = gemm::dims(a.shape(), b.shape(), flags.0, flags.1)?;
    let mut out = pool.take::<T>(m * cols);
    if flags.0 && gemm::packs_transposed_lhs(m, k, cols) {
        // The gemm crate would allocate a packing buffer for a transposed left operand on every
        // call: transpose it into a pooled buffer instead.
        let mut at = pool.take::<T>(m * k);
        match a.as_slice() {
            Some(src) => transpose_into(src, k, m, &mut at),
            None => at.iter_mut().zip(a.t().iter()).for_each(|(o, v)| *o = *v),
        }
        let a2 = ArrayViewD::from_shape(IxDyn(&[m, k]), &at[..]).map_err(|e| e.to_string())?;
        gemm::gemm_into(
            &a2,
            &b,
            bias.as_ref(),
            (false, flags.1, flags.2),
            &mut out,
            true,
        )?;
        pool.keep_vec(at);
    } else {
        gemm::gemm_into(&a, &b, bias.as_ref(), flags, &mut out, true)?;
    }
    shaped(out, &[m, cols])
}

/// `dst` (cols × rows, row-major) ← the transpose of `src` (rows × cols, row-major), in
/// 32 × 32 tiles so both sides stay in cache.
fn transpose_into<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
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
            dst[0] = block.iter().copied().sum();
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
    crate::random::draw_into(dist, (seed, counter, key), &mut out, true);
    shaped(out, shape)
}
