//! Fast paths: ops that run into a pooled buffer instead of a fresh array (fused kernels,
//! products, sums, draws, reshapes that take over their operand's buffer).

use ndarray::{ArrayViewMutD, IxDyn};
use smallvec::SmallVec;

use super::pool::{Pool, Pooled};
use super::{Executor, NodeError, Value, node_error, operand, shaped};
use crate::compile::ir::{Kind, Node};
use crate::error::Result;
use crate::graph::op::{Dist, Op, Reduce};
use crate::kernels::fused::{FusedKernel, Src};
use crate::kernels::{Exec, reduce};
use crate::shape;
use crate::tensor::Tensor;

impl Executor {
    /// The fast path of node `j` with a result of float type `T`, into a pooled buffer; `None`
    /// where the general kernel does the op.
    pub(super) fn fast_node<T: Pooled>(
        &self,
        j: usize,
        n: &Node,
        inputs: &[Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Option<std::result::Result<Tensor, NodeError>> {
        let plain = |r: std::result::Result<Tensor, String>| r.map_err(NodeError::Plain);
        let op = match &n.kind {
            Kind::Fused(k) => {
                return Some(
                    self.fused::<T>(k, j, n, inputs, values, pool)
                        .map_err(NodeError::Located),
                );
            }
            Kind::Gemm(_) => {
                return Some(plain(self.gemm_job::<T>(j, inputs, values, pool).and_then(
                    |mut job| {
                        let threads = rayon::current_num_threads();
                        let done = self.gemm_run(&mut job, j, inputs, values, threads);
                        Self::gemm_finish(job, pool, done)
                    },
                )));
            }
            Kind::Op(op) => op,
            _ => return None,
        };
        Some(match op {
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
        n: &Node,
        inputs: &[Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Option<std::result::Result<Tensor, String>> {
        let x = operand(values, inputs, n.inputs[0]);
        let from = x.shape();
        let Kind::Op(op) = &n.kind else {
            return None;
        };
        let to: SmallVec<[usize; 6]> = match op {
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
        let broadcast = matches!(op, Op::BroadcastLike | Op::BroadcastTo(_));
        if broadcast {
            let declared = &self.program.nodes[n.inputs[0]].ty.shape;
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
        n: &Node,
        inputs: &[Tensor],
        values: &mut [Option<Value>],
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
    let kept: usize = dims[..first].iter().chain(&dims[last + 1..]).product();
    let mut out = pool.take::<T>(kept);
    reduce::sum_contiguous_axes(flat, dims, (first, last), &mut out);
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
    n: &Node,
    inputs: &[Tensor],
    values: &[Option<Value>],
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
