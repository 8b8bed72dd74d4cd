//! Fast paths: ops that run into a pooled buffer instead of a fresh array (fused kernels,
//! products, sums, draws, reshapes that take over their operand's buffer).

use ndarray::{ArrayViewMutD, IxDyn};
use smallvec::SmallVec;

use super::pool::{Pool, Pooled};
use super::{Executor, Failure, Value, operand, shaped};
use crate::compile::ir::{Kind, Node};
use crate::graph::op::{Dist, Op, Reduce};
use crate::kernels::fused::{FusedKernel, Src};
use crate::kernels::{Exec, conv, index, random, reduce};
use crate::shape;
use crate::tensor::Tensor;

impl Executor {
    /// The fast path of node `j` with a result of float type `T`, into a pooled buffer; `None`
    /// where the general kernel does the op.
    pub(super) fn fast_node<T: Pooled>(
        &self,
        j: usize,
        n: &Node,
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Option<Result<Tensor, Failure>> {
        let op = match &n.kind {
            Kind::Fused(k) => return Some(self.fused::<T>(k, j, n, inputs, values, pool)),
            Kind::Gemm(_) => {
                let product = self
                    .gemm_job::<T>(j, inputs, values, pool)
                    .and_then(|mut job| {
                        let threads = crate::kernels::threads();
                        let done = self.gemm_run(&mut job, j, inputs, values, threads);
                        Self::gemm_finish(job, pool, done)
                    });
                return Some(product);
            }
            Kind::ConvBias { conv, .. } => {
                return windowed::<T>(n, inputs, values, pool, |s| {
                    Some(conv::Windowed::conv_bias(conv, s))
                });
            }
            Kind::Op(op) => op,
            _ => return None,
        };
        Some(match op {
            Op::Reduce {
                op: Reduce::Sum,
                axes,
                keepdims,
            } => sum_node::<T>(operand(values, inputs, n.inputs[0]), axes, *keepdims, pool)?,
            Op::Random { dist, key, .. } if dist.params().is_empty() => {
                random_node::<T>(*dist, *key, n, inputs, values, pool)
            }
            Op::ExpandDims(_)
            | Op::Squeeze(_)
            | Op::Reshape(_)
            | Op::ReshapeLike
            | Op::StopGradient
            | Op::BroadcastLike
            | Op::BroadcastTo(_) => self.reshaped::<T>(j, n, inputs, values, pool)?,
            Op::Conv2d(_)
            | Op::Conv2dInputGrad(_)
            | Op::Conv2dFilterGrad(_)
            | Op::MaxPool2d(_)
            | Op::MaxPool2dGrad(_)
            | Op::AvgPool2d(_)
            | Op::AvgPool2dGrad(_) => {
                windowed::<T>(n, inputs, values, pool, |s| conv::Windowed::new(op, s))?
            }
            Op::MatMul => self.rows_product::<T>(n, inputs, values, pool)?,
            Op::Transpose(perm) => {
                transposed::<T>(operand(values, inputs, n.inputs[0]), perm, pool)?
            }
            Op::Concat(axis) => {
                // Each part's blocks into a pooled buffer; parts that do not fit are the
                // general kernel's error to report.
                let parts: SmallVec<[ndarray::ArrayViewD<T>; 4]> = n
                    .inputs
                    .iter()
                    .map(|&i| T::view(operand(values, inputs, i)))
                    .collect::<Option<_>>()?;
                let first = parts.first()?.shape();
                let fits = |p: &ndarray::ArrayViewD<T>| {
                    p.is_standard_layout()
                        && p.ndim() == first.len()
                        && (0..first.len()).all(|k| k == *axis || p.shape()[k] == first[k])
                };
                if !parts.iter().all(fits) {
                    return None;
                }
                let mut to: SmallVec<[usize; 6]> = first.into();
                to[*axis] = parts.iter().map(|p| p.shape()[*axis]).sum();
                let mut out = match pool.take::<T>(&to) {
                    Ok(out) => out,
                    Err(e) => return Some(Err(e)),
                };
                let slices: SmallVec<[&[T]; 8]> =
                    parts.iter().map(|p| p.as_slice()).collect::<Option<_>>()?;
                let lens: SmallVec<[usize; 8]> = parts.iter().map(|p| p.shape()[*axis]).collect();
                index::concat_into(&mut out, &slices, &lens, &to, *axis);
                shaped(out, &to).map_err(Failure::from)
            }
            Op::Slice {
                axis,
                start,
                end,
                step: 1,
            } => {
                let x = T::view(operand(values, inputs, n.inputs[0]))?;
                let (s, e) = shape::slice_bounds(x.shape()[*axis], *start, *end);
                let whole = x.as_slice()?;
                let mut to: SmallVec<[usize; 6]> = x.shape().into();
                to[*axis] = e.saturating_sub(s);
                let mut out = match pool.take::<T>(&to) {
                    Ok(out) => out,
                    Err(e) => return Some(Err(e)),
                };
                index::gather_block(whole, &mut out, x.shape(), (*axis, s, to[*axis]));
                shaped(out, &to).map_err(Failure::from)
            }
            Op::SliceGrad {
                axis,
                start,
                end,
                step: 1,
            } => {
                let dy = T::view(operand(values, inputs, n.inputs[0]))?;
                let like: SmallVec<[usize; 6]> =
                    operand(values, inputs, n.inputs[1]).shape().into();
                let (s, e) = shape::slice_bounds(like[*axis], *start, *end);
                let mut expect = like.clone();
                expect[*axis] = e.saturating_sub(s);
                if dy.shape() != &expect[..] {
                    return None;
                }
                let part = dy.as_slice()?;
                let mut out = match pool.take::<T>(&like) {
                    Ok(out) => out,
                    Err(e) => return Some(Err(e)),
                };
                out.fill(T::zero());
                index::scatter_block(&mut out, part, &like, (*axis, s, expect[*axis]));
                shaped(out, &like).map_err(Failure::from)
            }
            Op::DimSize { axes, .. } => {
                dim_size::<T>(axes, operand(values, inputs, n.inputs[0]), pool)
            }
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
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Option<Result<Tensor, Failure>> {
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
            Op::Reshape(target) => {
                // One -1 takes what the others leave; a size that does not fit is the general
                // kernel's error to report.
                let known: usize = target
                    .iter()
                    .filter(|&&d| d >= 0)
                    .map(|&d| d as usize)
                    .product();
                let fill = match target.iter().filter(|&&d| d < 0).count() {
                    0 => 1,
                    1 if known > 0 && x.len().is_multiple_of(known) => x.len() / known,
                    _ => return None,
                };
                target
                    .iter()
                    .map(|&d| if d < 0 { fill } else { d as usize })
                    .collect()
            }
            Op::StopGradient => from.into(),
            _ => return None,
        };
        let broadcast = matches!(op, Op::BroadcastLike | Op::BroadcastTo(_));
        if broadcast {
            let declared = &self.program.nodes[n.inputs[0]].ty.shape;
            if let Err(e) = shape::check_runtime_broadcast(declared, from, &to) {
                return Some(Err(e.into()));
            }
            let view = T::view(x)?;
            let src = view.broadcast(IxDyn(&to))?;
            let mut out = match pool.take::<T>(&to) {
                Ok(out) => out,
                Err(e) => return Some(Err(e)),
            };
            ArrayViewMutD::from_shape(IxDyn(&to), &mut out[..])
                .ok()?
                .assign(&src);
            return Some(shaped(out, &to).map_err(Failure::from));
        }
        if to.iter().product::<usize>() != x.len() {
            return None;
        }
        if self.can_take::<T>(n.inputs[0], j, values, from) {
            let buf = Self::take_buffer::<T>(values, n.inputs[0]);
            return Some(shaped(buf, &to).map_err(Failure::from));
        }
        let view = T::view(x)?;
        let mut out = match pool.take::<T>(&to) {
            Ok(out) => out,
            Err(e) => return Some(Err(e)),
        };
        match view.as_slice() {
            Some(src) => out.copy_from_slice(src),
            None => out.iter_mut().zip(view.iter()).for_each(|(o, v)| *o = *v),
        }
        Some(shaped(out, &to).map_err(Failure::from))
    }

    /// A batch of sequences by a matrix, `[N, T, D] @ [D, H]`: one product of the `N T` rows
    /// into a pooled buffer (the rows copied into one first where they are not contiguous).
    /// `None` for other products and for shapes that do not fit (the general kernel's error).
    fn rows_product<T: Pooled>(
        &self,
        n: &Node,
        inputs: &[&Tensor],
        values: &[Option<Value>],
        pool: &mut Pool,
    ) -> Option<Result<Tensor, Failure>> {
        let a = T::view(operand(values, inputs, n.inputs[0]))?;
        let b = T::view(operand(values, inputs, n.inputs[1]))?;
        let (&[batch, steps, d], &[d2, cols]) = (a.shape(), b.shape()) else {
            return None;
        };
        if d != d2 {
            return None;
        }
        let m = batch * steps;
        let copy = (!a.is_standard_layout()).then(|| {
            pool.take::<T>(&[m, d]).map(|mut buf| {
                buf.iter_mut().zip(a.iter()).for_each(|(o, v)| *o = *v);
                buf
            })
        });
        let copy = match copy.transpose() {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let rows = match &copy {
            Some(buf) => ndarray::ArrayViewD::from_shape(IxDyn(&[m, d]), &buf[..]).ok()?,
            None => a.into_shape_with_order(IxDyn(&[m, d])).ok()?,
        };
        let mut out = match pool.take::<T>(&[m, cols]) {
            Ok(out) => out,
            Err(e) => return Some(Err(e)),
        };
        let product = crate::kernels::gemm::Gemm {
            transpose_a: false,
            transpose_b: false,
            alpha: 1.0,
            bias_add: None,
        };
        let threads = crate::kernels::threads();
        // Packing space for a `b` whose rows are not contiguous (a transposed view).
        let len = crate::kernels::gemm::scratch_len(&rows, &b, &product, threads);
        let mut space = match pool.take_space::<T>(len) {
            Ok(buf) => buf,
            Err(e) => return Some(Err(e)),
        };
        let done = crate::kernels::gemm::gemm_onto(
            &rows,
            &b,
            crate::kernels::gemm::Init::Zero,
            &product,
            &mut out,
            threads,
            Some(&mut space[..]),
        );
        pool.keep_vec(space);
        if let Some(buf) = copy {
            pool.keep_vec(buf);
        }
        Some(match done {
            Ok(()) => shaped(out, &[batch, steps, cols]).map_err(Failure::from),
            Err(e) => {
                pool.keep_vec(out);
                Err(e.into())
            }
        })
    }

    /// A fused kernel, written in place over an operand whose last reader it is when that
    /// operand has the result's shape and belongs to the run.
    fn fused<T: Pooled>(
        &self,
        k: &FusedKernel,
        j: usize,
        n: &Node,
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Result<Tensor, Failure> {
        let arg = |i: usize| values[i].as_ref().expect("operands are computed first");
        let in_shapes: SmallVec<[SmallVec<[usize; 6]>; 8]> = n
            .inputs
            .iter()
            .map(|&i| arg(i).get(inputs).shape().into())
            .collect();
        let shape = self
            .kernel_shape(k, n, &in_shapes)
            .map_err(Failure::Located)?;
        let reuse = n.inputs.iter().position(|&i| {
            !k.reads_part_of(&n.inputs, i) && self.can_take::<T>(i, j, values, &shape)
        });
        let mut out: Vec<T> = match reuse {
            Some(r) => Self::take_buffer(values, n.inputs[r]),
            None => pool.take(&shape)?,
        };
        let srcs: SmallVec<[Src<T>; 8]> = n
            .inputs
            .iter()
            .enumerate()
            .map(|(x, &i)| {
                // (After merging, one node can be several inputs of a kernel.)
                if reuse.is_some_and(|r| n.inputs[r] == i) {
                    return Ok(Src::Out);
                }
                k.input_src(x, Src::of(operand(values, inputs, i))?)
            })
            .collect::<Result<_, String>>()?;
        k.run(&srcs, &mut out, &shape, Exec::Fast)?;
        Ok(shaped(out, &shape)?)
    }
}

/// A transpose of the last two axes (of a matrix, or of each matrix of a batch), block by block
/// into a pooled buffer; `None` for other permutations.
fn transposed<T: Pooled>(
    x: &Tensor,
    perm: &[usize],
    pool: &mut Pool,
) -> Option<Result<Tensor, Failure>> {
    let a = T::view(x)?;
    let flat = a.as_slice()?;
    let nd = perm.len();
    let swaps_last_two = nd >= 2
        && perm[nd - 2] == nd - 1
        && perm[nd - 1] == nd - 2
        && (0..nd - 2).all(|k| perm[k] == k);
    if !swaps_last_two {
        return None;
    }
    let mut shape: SmallVec<[usize; 6]> = a.shape().into();
    let (rows, cols) = (shape[nd - 2], shape[nd - 1]);
    shape.swap(nd - 2, nd - 1);
    let mut out = match pool.take::<T>(&shape) {
        Ok(out) => out,
        Err(e) => return Some(Err(e)),
    };
    index::transpose_matrices(flat, rows, cols, &mut out);
    Some(shaped(out, &shape).map_err(Failure::from))
}

/// A convolution or a pool (or a gradient of one) into a pooled buffer; operands that do not
/// fit are the general kernel's error to report.
fn windowed<T: Pooled>(
    n: &Node,
    inputs: &[&Tensor],
    values: &[Option<Value>],
    pool: &mut Pool,
    job: impl FnOnce(&[&[usize]]) -> Option<Result<conv::Windowed, String>>,
) -> Option<Result<Tensor, Failure>> {
    let xs: SmallVec<[&Tensor; 3]> = n
        .inputs
        .iter()
        .map(|&i| operand(values, inputs, i))
        .collect();
    let shapes: SmallVec<[&[usize]; 3]> = xs.iter().map(|t| t.shape()).collect();
    let job = job(&shapes)?.ok()?;
    let data: SmallVec<[&[T]; 2]> = xs[..job.reads()]
        .iter()
        .map(|t| T::view(t)?.to_slice())
        .collect::<Option<_>>()?;
    let mut out = match pool.take::<T>(job.shape()) {
        Ok(out) => out,
        Err(e) => return Some(Err(e)),
    };
    if let Err(e) = job.run(&data, &mut out, Exec::Fast) {
        pool.keep_vec(out);
        return Some(Err(Failure::from(e)));
    }
    Some(shaped(out, job.shape()).map_err(Failure::from))
}

/// A sum over any axes of a standard-layout array, into a pooled buffer; `None` for a strided
/// one (the general kernel does those).
fn sum_node<T: Pooled>(
    x: &Tensor,
    axes: &[usize],
    keepdims: bool,
    pool: &mut Pool,
) -> Option<Result<Tensor, Failure>> {
    let a = T::view(x)?;
    let flat = a.as_slice()?;
    let dims = a.shape();
    let shape: SmallVec<[usize; 6]> = dims
        .iter()
        .enumerate()
        .filter_map(|(k, &d)| match (axes.contains(&k), keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let mut out = match pool.take::<T>(&shape) {
        Ok(out) => out,
        Err(e) => return Some(Err(e)),
    };
    reduce::sum_axes(flat, dims, axes, &mut out);
    Some(shaped(out, &shape).map_err(Failure::from))
}

fn dim_size<T: Pooled>(axes: &[usize], x: &Tensor, pool: &mut Pool) -> Result<Tensor, Failure> {
    let n: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let mut out = pool.take::<T>(&[])?;
    out[0] = T::from_f(n as f64);
    Ok(shaped(out, &[])?)
}

fn random_node<T: Pooled>(
    dist: Dist,
    key: u64,
    n: &Node,
    inputs: &[&Tensor],
    values: &[Option<Value>],
    pool: &mut Pool,
) -> Result<Tensor, Failure> {
    let (seed, counter) = random::stream_state(operand(values, inputs, n.inputs[0]))?;
    let shape = operand(values, inputs, n.inputs[1]).shape();
    let mut out = pool.take::<T>(shape)?;
    random::draw_into(dist, (seed, counter, key), &mut out, Exec::Fast);
    Ok(shaped(out, shape)?)
}
