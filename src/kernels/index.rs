//! Kernels that move elements: reshapes, gathers and scatters of rows, slices and concatenation.

use ndarray::{ArrayD, Axis, IxDyn, Slice, Zip};

use super::{Exec, KernelResult};
use crate::dtype::{DType, Float};
use crate::shape;
use crate::shape::slice_bounds;
use crate::tensor::Tensor;

pub(crate) fn reshape_dims(
    target: &[isize],
    size: usize,
    from: &[usize],
) -> Result<Vec<usize>, String> {
    let known: usize = target
        .iter()
        .filter(|d| **d >= 0)
        .map(|d| *d as usize)
        .product();
    let bad = || format!("cannot reshape {} to {target:?}", shape::show(from));
    target
        .iter()
        .map(|&d| {
            if d >= 0 {
                Ok(d as usize)
            } else if known > 0 && size.is_multiple_of(known) {
                Ok(size / known)
            } else {
                Err(bad())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|dims| {
            if dims.iter().product::<usize>() == size {
                Ok(dims)
            } else {
                Err(bad())
            }
        })
}

pub(crate) fn reshape<A: Clone>(a: &ArrayD<A>, dims: &[usize]) -> Result<ArrayD<A>, String> {
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(dims))
        .map_err(|e| e.to_string())
}

pub(crate) fn indices(t: &Tensor) -> Result<&ArrayD<i64>, String> {
    t.as_i64()
        .ok_or_else(|| format!("indices must be i64, got {}", t.dtype()))
}

/// The first index of `idx` outside `0..len`.
pub(crate) fn out_of_range(idx: &ArrayD<i64>, len: usize) -> Option<i64> {
    idx.iter().copied().find(|&i| i < 0 || i as usize >= len)
}

/// The positions the indices name along an axis of length `n`, each checked.
fn positions(idx: &ArrayD<i64>, n: usize, axis: usize) -> Result<Vec<usize>, String> {
    match out_of_range(idx, n) {
        Some(i) => Err(format!(
            "index {i} out of range for axis {axis} of length {n}"
        )),
        None => Ok(idx.iter().map(|&i| i as usize).collect()),
    }
}

/// numpy's `take(a, idx, axis)`: the indices' shape in place of `axis`. Rows of a contiguous
/// array (along axis 0) are copied a block each, over the rayon pool when fast and large (the
/// embedding lookups and minibatch gathers of a training step).
pub(crate) fn take<A: Copy + Default + Send + Sync>(
    a: &ArrayD<A>,
    idx: &ArrayD<i64>,
    axis: usize,
    exec: Exec,
) -> Result<ArrayD<A>, String> {
    let at = positions(idx, a.shape()[axis], axis)?;
    let dims = taken_dims(a.shape(), idx.shape(), axis);
    let row: usize = a.shape()[1..].iter().product();
    match a.as_slice() {
        Some(src) if axis == 0 && row > 0 => {
            let mut out = vec![A::default(); at.len() * row];
            let copy = |(r, dst): (usize, &mut [A])| {
                dst.copy_from_slice(&src[at[r] * row..][..row]);
            };
            if crate::kernels::parallel(exec, out.len()) {
                use rayon::prelude::*;
                out.par_chunks_mut(row).enumerate().for_each(copy);
            } else {
                out.chunks_mut(row).enumerate().for_each(copy);
            }
            ArrayD::from_shape_vec(IxDyn(&dims), out).map_err(|e| e.to_string())
        }
        _ => reshape(&a.select(Axis(axis), &at), &dims),
    }
}

/// The shape `take` along `axis` gives: the indices' shape in place of that axis.
fn taken_dims(shape: &[usize], idx: &[usize], axis: usize) -> Vec<usize> {
    [&shape[..axis], idx, &shape[axis + 1..]].concat()
}

/// Zeros of shape `like` with the slices of `updates` along `axis` added at the indices: the
/// adjoint of [`take`].
pub(crate) fn scatter_add<T: Float>(
    updates: &ArrayD<T>,
    idx: &ArrayD<i64>,
    like: &[usize],
    axis: usize,
) -> Result<ArrayD<T>, String> {
    let at = positions(idx, like[axis], axis)?;
    let want = taken_dims(like, idx.shape(), axis);
    if updates.shape() != want.as_slice() {
        return Err(format!(
            "updates of shape {} do not fit indices of shape {} into {} along axis {axis} \
             (they must have shape {})",
            shape::show(updates.shape()),
            shape::show(idx.shape()),
            shape::show(like),
            shape::show(&want)
        ));
    }
    // The updates with the indices' axes flattened into one, matching `at`.
    let mut flat = like.to_vec();
    flat[axis] = at.len();
    let src = reshape(updates, &flat)?;
    let mut out = ArrayD::<T>::zeros(IxDyn(like));
    for (k, &i) in at.iter().enumerate() {
        Zip::from(out.index_axis_mut(Axis(axis), i))
            .and(src.index_axis(Axis(axis), k))
            .for_each(|d, &s| *d = *d + s);
    }
    Ok(out)
}

/// Running sums along `axis`, from the end when `reverse`.
pub(crate) fn cumsum<T: Float>(a: &ArrayD<T>, axis: usize, reverse: bool) -> ArrayD<T> {
    let mut out = a.to_owned();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let mut acc = T::zero();
        let mut add = |v: &mut T| {
            acc = acc + *v;
            *v = acc;
        };
        if reverse {
            lane.iter_mut().rev().for_each(&mut add);
        } else {
            lane.iter_mut().for_each(&mut add);
        }
    }
    out
}

pub(crate) fn slice_info(n: usize, start: isize, end: Option<isize>, step: usize) -> Slice {
    let (s, e) = slice_bounds(n, start, end);
    Slice::new(s as isize, Some(e.max(s) as isize), step as isize)
}

/// The blocks of contiguous elements of the part `start..start + len` of axis `axis` of a
/// standard-layout array of `shape`: one per index of the axes before it, as (offset in the
/// whole, offset in the part, length).
fn blocks(
    shape: &[usize],
    (axis, start, len): (usize, usize, usize),
) -> impl Iterator<Item = (usize, usize, usize)> {
    let inner: usize = shape[axis + 1..].iter().product();
    let (outer, n) = (shape[..axis].iter().product::<usize>(), shape[axis]);
    let block = len * inner;
    (0..outer).map(move |o| ((o * n + start) * inner, o * block, block))
}

/// `part` ← the part `start..start + len` of axis `axis` of `whole` (of `shape`): a slice.
pub(crate) fn gather_block<T: Copy>(
    whole: &[T],
    part: &mut [T],
    shape: &[usize],
    at: (usize, usize, usize),
) {
    for (w, p, n) in blocks(shape, at) {
        part[p..p + n].copy_from_slice(&whole[w..w + n]);
    }
}

/// The part `start..start + len` of axis `axis` of `whole` (of `shape`) ← `part`: a slice's
/// gradient put in its place.
pub(crate) fn scatter_block<T: Copy>(
    whole: &mut [T],
    part: &[T],
    shape: &[usize],
    at: (usize, usize, usize),
) {
    for (w, p, n) in blocks(shape, at) {
        whole[w..w + n].copy_from_slice(&part[p..p + n]);
    }
}

/// `whole` (of `shape`) ← the standard-layout `parts` side by side along `axis`, part `k` of
/// `lens[k]` there. Large results split their outer indices over the threads, each copying
/// every part's block of its rows.
pub(crate) fn concat_into<T: Copy + Send + Sync>(
    whole: &mut [T],
    parts: &[&[T]],
    lens: &[usize],
    shape: &[usize],
    axis: usize,
) {
    let inner: usize = shape[axis + 1..].iter().product();
    let row = shape[axis] * inner;
    let outer: usize = shape[..axis].iter().product();
    if row == 0 || outer == 0 {
        return;
    }
    let rows = |first: usize, out: &mut [T]| {
        for (r, dst) in out.chunks_mut(row).enumerate() {
            let o = first + r;
            let mut at = 0;
            for (part, &len) in parts.iter().zip(lens) {
                let n = len * inner;
                dst[at..at + n].copy_from_slice(&part[o * n..(o + 1) * n]);
                at += n;
            }
        }
    };
    let threads = crate::kernels::threads();
    if threads > 1 && outer > 1 && outer * row >= super::PAR_MIN {
        use rayon::prelude::*;
        let per = outer.div_ceil(threads);
        whole[..outer * row]
            .par_chunks_mut(per * row)
            .enumerate()
            .for_each(|(c, out)| rows(c * per, out));
    } else {
        rows(0, &mut whole[..outer * row]);
    }
}

/// Concatenate tensors of one dtype along `axis`.
pub(crate) fn concat(x: &[&Tensor], axis: usize) -> KernelResult {
    macro_rules! cat {
        ($v:ident) => {{
            let views = x
                .iter()
                .map(|t| match t {
                    Tensor::$v(a) => Ok(a.view()),
                    other => Err(format!("dtype mismatch in concat: {}", other.dtype())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Tensor::$v(
                ndarray::concatenate(Axis(axis), &views)
                    .map_err(|e| format!("cannot concatenate: {e}"))?,
            )
        }};
    }
    Ok(match x[0].dtype() {
        DType::F32 => cat!(F32),
        DType::F64 => cat!(F64),
        DType::I64 => cat!(I64),
        DType::Bool => cat!(Bool),
    })
}

/// `out ← aᵀ` for each `rows × cols` matrix of `a` in turn (row-major), in square blocks so
/// that both the reads and the writes stay within a few cache lines at a time.
pub(crate) fn transpose_matrices<T: Copy>(a: &[T], rows: usize, cols: usize, out: &mut [T]) {
    const BLOCK: usize = 16;
    let size = rows * cols;
    if size == 0 {
        return;
    }
    for (src, dst) in a.chunks_exact(size).zip(out.chunks_exact_mut(size)) {
        for r0 in (0..rows).step_by(BLOCK) {
            for c0 in (0..cols).step_by(BLOCK) {
                for r in r0..(r0 + BLOCK).min(rows) {
                    for c in c0..(c0 + BLOCK).min(cols) {
                        dst[c * rows + r] = src[r * cols + c];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_into_matches_ndarray_serial_and_parallel() {
        use ndarray::{ArrayD, Axis, Dimension, IxDyn};
        // Small (one thread) and large (split over the rows) results, along every axis.
        let cases = [
            (vec![2, 3, 4], 0),
            (vec![2, 3, 4], 1),
            (vec![2, 3, 4], 2),
            (vec![64, 128], 1),
            (vec![300, 40, 8], 1),
            (vec![3, 5000], 0),
            (vec![2000, 1, 8], 1),
            (vec![7000, 1], 1),
        ];
        for (base, axis) in cases {
            let lens = [1usize, 3, 2];
            let parts: Vec<ArrayD<f32>> = lens
                .iter()
                .enumerate()
                .map(|(k, &len)| {
                    let mut shape = base.clone();
                    shape[axis] = len;
                    ArrayD::from_shape_fn(IxDyn(&shape), |i| {
                        let at: usize = i
                            .slice()
                            .iter()
                            .enumerate()
                            .map(|(d, &v)| v * 7usize.pow(d as u32))
                            .sum();
                        (k * 100_000 + at) as f32
                    })
                })
                .collect();
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            let want = ndarray::concatenate(Axis(axis), &views).unwrap();
            let mut got = vec![0.0f32; want.len()];
            let slices: Vec<&[f32]> = parts.iter().map(|p| p.as_slice().unwrap()).collect();
            let mut shape = base.clone();
            shape[axis] = lens.iter().sum();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            pool.install(|| concat_into(&mut got, &slices, &lens, &shape, axis));
            assert_eq!(
                got,
                want.iter().copied().collect::<Vec<_>>(),
                "{base:?} along {axis}"
            );
        }
    }
}
