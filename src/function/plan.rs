//! The executable program of a compiled function and its run loop.
//!
//! Nodes are in dependency order. Each value is dropped right after its last use (unless it is an
//! output or an update), so a long chain holds only a few buffers at a time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::{ArrayD, ArrayViewD, IxDyn};
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
    f32: Vec<Vec<f32>>,
    f64: Vec<Vec<f64>>,
}

/// Buffers kept per float type.
const POOL_MAX: usize = 64;

trait Pooled: Float {
    fn bin(pool: &mut Pool) -> &mut Vec<Vec<Self>>;
}
impl Pooled for f32 {
    fn bin(pool: &mut Pool) -> &mut Vec<Vec<f32>> {
        &mut pool.f32
    }
}
impl Pooled for f64 {
    fn bin(pool: &mut Pool) -> &mut Vec<Vec<f64>> {
        &mut pool.f64
    }
}

impl Pool {
    /// A buffer of exactly `n` elements (contents unspecified): one of that length if there is
    /// one, else the roomiest, else a new one.
    fn take<T: Pooled>(&mut self, n: usize) -> Vec<T> {
        let bin = T::bin(self);
        let pick = bin
            .iter()
            .position(|b| b.len() == n)
            .or_else(|| (0..bin.len()).max_by_key(|&k| bin[k].capacity()));
        let mut buf = pick.map(|k| bin.swap_remove(k)).unwrap_or_default();
        buf.resize(n, T::zero());
        buf
    }

    fn give(&mut self, t: Tensor) {
        match t {
            Tensor::F32(a) => Self::keep(&mut self.f32, a.into_raw_vec_and_offset().0),
            Tensor::F64(a) => Self::keep(&mut self.f64, a.into_raw_vec_and_offset().0),
            _ => {}
        }
    }

    fn keep<T>(bin: &mut Vec<Vec<T>>, buf: Vec<T>) {
        if bin.len() < POOL_MAX && buf.capacity() > 0 {
            bin.push(buf);
        }
    }
}

/// What a run needs besides the program, kept between calls.
#[derive(Default)]
struct Workspace {
    values: Vec<Option<Val>>,
    pool: Pool,
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
    fn check_feeds(&self, inputs: &[Tensor]) -> Result<()> {
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
        let result = self.run_in(inputs, &mut ws);
        ws.values.clear();
        *self.workspace.lock().unwrap_or_else(|e| e.into_inner()) = ws;
        result
    }

    fn run_in(&self, inputs: &[Tensor], ws: &mut Workspace) -> Result<Vec<Tensor>> {
        let fast = self.mode == Mode::Fast;
        let Workspace { values, pool } = ws;
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
        let mut reads = self.root_reads.clone();
        let mut take = |i: usize, values: &mut Vec<Option<Val>>| -> Tensor {
            reads[i] -= 1;
            match values[i].take() {
                Some(Val::Own(t)) if reads[i] == 0 => t,
                Some(v) => {
                    let t = v.get(inputs).clone();
                    values[i] = Some(v);
                    t
                }
                None => unreachable!("outputs are computed"),
            }
        };
        let outputs: Vec<Tensor> = self.outputs.iter().map(|&o| take(o, values)).collect();
        let mut new_values = Vec::with_capacity(self.updates.len());
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
        for ((var, _), mut t) in self.updates.iter().zip(new_values) {
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
            let out = match (&n.op, n.ty.dtype) {
                (Op::Fused(k), DType::F32) => {
                    return self.fused::<f32>(k, j, n, inputs, values, pool);
                }
                (Op::Fused(k), DType::F64) => {
                    return self.fused::<f64>(k, j, n, inputs, values, pool);
                }
                (Op::Gemm { ta, tb, alpha }, DType::F32) => {
                    let flags = (*ta, *tb, f64::from_bits(*alpha));
                    Some(gemm_node::<f32>(flags, n, inputs, values, pool))
                }
                (Op::Gemm { ta, tb, alpha }, DType::F64) => {
                    let flags = (*ta, *tb, f64::from_bits(*alpha));
                    Some(gemm_node::<f64>(flags, n, inputs, values, pool))
                }
                (
                    Op::Reduce {
                        op: Reduce::Sum,
                        axes,
                        keepdims,
                    },
                    DType::F32,
                ) => {
                    let x = values[n.inputs[0]].as_ref().expect("computed").get(inputs);
                    sum_node::<f32>(x, axes, *keepdims, pool)
                }
                (
                    Op::Reduce {
                        op: Reduce::Sum,
                        axes,
                        keepdims,
                    },
                    DType::F64,
                ) => {
                    let x = values[n.inputs[0]].as_ref().expect("computed").get(inputs);
                    sum_node::<f64>(x, axes, *keepdims, pool)
                }
                (Op::Random { dist, key, .. }, DType::F32) => {
                    Some(random_node::<f32>(*dist, *key, n, inputs, values, pool))
                }
                (Op::Random { dist, key, .. }, DType::F64) => {
                    Some(random_node::<f64>(*dist, *key, n, inputs, values, pool))
                }
                _ => None,
            };
            if let Some(out) = out {
                return out.map_err(err);
            }
        }
        let args: SmallVec<[&Tensor; 4]> = n
            .inputs
            .iter()
            .map(|&i| {
                values[i]
                    .as_ref()
                    .expect("operands are computed first")
                    .get(inputs)
            })
            .collect();
        let types: SmallVec<[&Type; 4]> = n.inputs.iter().map(|&i| &self.nodes[i].ty).collect();
        kernels::eval(&n.op, &args, &types, &n.ty, fast).map_err(err)
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
        let err = |detail: String| {
            // Name the op of the region that fails, as it would have failed unfused.
            let shapes: SmallVec<[&[usize]; 8]> = in_shapes.iter().map(|s| &s[..]).collect();
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
        let shape = k.out_shape(in_shapes.iter().map(|s| &s[..])).map_err(err)?;
        for (&i, concrete) in n.inputs.iter().zip(&in_shapes) {
            let declared = &self.nodes[i].ty.shape;
            shape::check_runtime_broadcast(declared, concrete, &shape).map_err(err)?;
        }
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
            .enumerate()
            .map(|(pos, &i)| {
                if Some(pos) == reuse {
                    return Ok(Src::Out);
                }
                match values[i]
                    .as_ref()
                    .expect("operands are computed first")
                    .get(inputs)
                {
                    Tensor::Bool(b) => Ok(Src::Bool(b.view())),
                    t => T::view(t)
                        .map(Src::Float)
                        .ok_or_else(|| format!("fused kernel input of dtype {}", t.dtype())),
                }
            })
            .collect::<std::result::Result<_, String>>()
            .map_err(err)?;
        k.run(&srcs, &mut out, &shape, true).map_err(err)?;
        shaped(out, &shape).map_err(err)
    }
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
    let (m, _, cols) = gemm::dims(a.shape(), b.shape(), flags.0, flags.1)?;
    let mut out = pool.take::<T>(m * cols);
    gemm::gemm_into(&a, &b, bias.as_ref(), flags, &mut out, true)?;
    shaped(out, &[m, cols])
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
