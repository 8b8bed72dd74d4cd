//! Reductions along axes, `argmax`, and softmax along one axis.

use ndarray::{ArrayD, Axis};
use smallvec::SmallVec;

use crate::dtype::Float;
use crate::graph::op::Reduce;

pub(crate) fn reduce<T: Float>(
    r: Reduce,
    a: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
) -> Result<ArrayD<T>, String> {
    // Reduce the first axis straight from the operand's view: no copy of the input.
    let mut out: Option<ArrayD<T>> = None;
    for &ax in axes.iter().rev() {
        let cur = out.as_ref().map_or_else(|| a.view(), |o| o.view());
        if cur.shape()[ax] == 0 && matches!(r, Reduce::Max | Reduce::Min) {
            return Err(format!("{} over an empty axis {ax}", r.name()));
        }
        out = Some(match r {
            Reduce::Sum => cur.sum_axis(Axis(ax)),
            Reduce::Prod => cur.fold_axis(Axis(ax), T::one(), |&p, &q| p * q),
            Reduce::Max => cur.fold_axis(Axis(ax), T::neg_infinity(), |&p, &q| {
                if q > p || q.is_nan() { q } else { p }
            }),
            Reduce::Min => cur.fold_axis(Axis(ax), T::infinity(), |&p, &q| {
                if q < p || q.is_nan() { q } else { p }
            }),
        });
    }
    let mut out = out.unwrap_or_else(|| a.clone());
    if keepdims {
        for &ax in axes {
            out.insert_axis_inplace(Axis(ax));
        }
    }
    Ok(out)
}

pub(crate) fn argmax<T: Float>(
    a: &ArrayD<T>,
    axis: usize,
    keepdims: bool,
) -> Result<ArrayD<i64>, String> {
    if a.shape()[axis] == 0 {
        return Err(format!("argmax over an empty axis {axis}"));
    }
    let mut out = a.map_axis(Axis(axis), |lane| {
        let mut best = 0;
        for (i, &v) in lane.iter().enumerate() {
            if v > lane[best] {
                best = i;
            }
        }
        best as i64
    });
    if keepdims {
        out.insert_axis_inplace(Axis(axis));
    }
    Ok(out)
}

/// What [`softmax_lanes`] computes.
#[derive(Clone, Copy, PartialEq)]
enum Lanes {
    Softmax,
    LogSoftmax,
}

/// Softmax along `axis`, or its log, each lane shifted by its maximum.
fn softmax_lanes<T: Float>(a: &ArrayD<T>, axis: usize, what: Lanes) -> ArrayD<T> {
    let mut out = a.to_owned();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let m = lane.fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
        let m = if m.is_finite() { m } else { T::zero() };
        let s: T = lane.iter().map(|&v| (v - m).exp()).sum();
        if what == Lanes::LogSoftmax {
            let ls = s.ln() + m;
            lane.mapv_inplace(|v| v - ls);
        } else {
            lane.mapv_inplace(|v| (v - m).exp() / s);
        }
    }
    out
}

/// Softmax along `axis`.
pub(crate) fn softmax<T: Float>(a: &ArrayD<T>, axis: usize) -> ArrayD<T> {
    softmax_lanes(a, axis, Lanes::Softmax)
}

/// Log-softmax along `axis`.
pub(crate) fn log_softmax<T: Float>(a: &ArrayD<T>, axis: usize) -> ArrayD<T> {
    softmax_lanes(a, axis, Lanes::LogSoftmax)
}

/// The sum over `axes` (ascending) of a contiguous row-major array of shape `dims`, into `out`
/// (the product of the other dims long, in their order): a bias's gradient over `[N, C, H, W]`
/// sums axes `[0, 2, 3]`. The dims are merged into runs of summed and kept dims; each row of
/// the last run is either summed onto one element of `out` or added onto a row of it.
pub(crate) fn sum_axes<T: Float>(flat: &[T], dims: &[usize], axes: &[usize], out: &mut [T]) {
    // (length, summed) runs, dims of length 1 dropped.
    let mut runs: SmallVec<[(usize, bool); 6]> = SmallVec::new();
    for (k, &d) in dims.iter().enumerate() {
        let summed = axes.contains(&k);
        match runs.last_mut() {
            _ if d == 1 => {}
            Some((len, s)) if *s == summed => *len *= d,
            _ => runs.push((d, summed)),
        }
    }
    out.fill(T::zero());
    let Some(&(inner, inner_summed)) = runs.last() else {
        // Every dim has length 1 (or there are none): one element.
        if let (Some(o), Some(&v)) = (out.first_mut(), flat.first()) {
            *o = v;
        }
        return;
    };
    let outer = &runs[..runs.len() - 1];
    if let [(_, true)] = outer
        && !inner_summed
        && flat.len() >= super::PAR_MIN
        && super::threads() > 1
    {
        // Leading axes summed onto rows (a bias's gradient): the columns split among the
        // threads, each summed in the same order as on one thread.
        use rayon::prelude::*;
        let block = inner.div_ceil(4 * super::threads()).next_multiple_of(16);
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(k, cols)| sum_columns(flat, inner, k * block, cols));
        return;
    }
    // The stride in `out` of each outer run (zero for a summed one).
    let mut strides: SmallVec<[usize; 6]> = SmallVec::from_elem(0, outer.len());
    let mut stride = if inner_summed { 1 } else { inner };
    for (k, &(len, summed)) in outer.iter().enumerate().rev() {
        if !summed {
            strides[k] = stride;
            stride *= len;
        }
    }
    let mut at: SmallVec<[usize; 6]> = SmallVec::from_elem(0, outer.len());
    let mut pos = 0;
    for row in flat.chunks_exact(inner) {
        if inner_summed {
            out[pos] = out[pos] + lane_sum(row);
        } else {
            for (d, &v) in out[pos..pos + inner].iter_mut().zip(row) {
                *d = *d + v;
            }
        }
        // The next row's place: an odometer over the outer runs.
        for k in (0..outer.len()).rev() {
            at[k] += 1;
            pos += strides[k];
            if at[k] < outer[k].0 {
                break;
            }
            pos -= strides[k] * at[k];
            at[k] = 0;
        }
    }
}

/// Columns `c0 .. c0 + out.len()` of the rows of `inner` values in `flat`, each summed down
/// the rows in order, into `out`: 64 columns at a time in running sums the compiler keeps in
/// registers (a sum in `out` itself costs a load and a store per row).
fn sum_columns<T: Float>(flat: &[T], inner: usize, c0: usize, out: &mut [T]) {
    const COLS: usize = 64;
    for (j, dst) in out.chunks_mut(COLS).enumerate() {
        let at = c0 + j * COLS;
        let n = dst.len();
        if let Ok(dst) = <&mut [T; COLS]>::try_from(&mut *dst) {
            let mut acc = [T::zero(); COLS];
            for row in flat.chunks_exact(inner) {
                let row: &[T; COLS] = row[at..at + COLS].try_into().expect("64 columns");
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a = *a + v;
                }
            }
            *dst = acc;
        } else {
            dst.fill(T::zero());
            for row in flat.chunks_exact(inner) {
                for (d, &v) in dst.iter_mut().zip(&row[at..at + n]) {
                    *d = *d + v;
                }
            }
        }
    }
}

/// The sum of `xs` in eight running sums (one per SIMD lane), so the loop vectorizes; a plain
/// running sum cannot be reordered by the compiler.
fn lane_sum<T: Float>(xs: &[T]) -> T {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `sum_axes` against ndarray's `sum_axis`, over every set of axes of a 4-d array with
    /// dims of length 1 among them.
    #[test]
    fn sum_axes_matches_summing_one_axis_at_a_time() {
        let dims = [3, 1, 4, 5];
        let a = ndarray::ArrayD::from_shape_fn(ndarray::IxDyn(&dims), |i| {
            (i[0] * 100 + i[2] * 10 + i[3]) as f64
        });
        for mask in 0u32..16 {
            let axes: Vec<usize> = (0..4).filter(|k| mask & (1 << k) != 0).collect();
            let mut want = a.clone();
            for &k in axes.iter().rev() {
                want = want.sum_axis(ndarray::Axis(k));
            }
            let mut out = vec![f64::NAN; want.len()];
            sum_axes(a.as_slice().unwrap(), &dims, &axes, &mut out);
            assert_eq!(
                out,
                want.iter().copied().collect::<Vec<_>>(),
                "axes {axes:?}"
            );
        }
    }

    /// `sum_axes` of `flat` (`dims`) over its leading two axes on a pool of `threads`.
    fn leading_sum<T: Float>(flat: &[T], dims: &[usize; 3], threads: usize) -> Vec<T> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut out = vec![T::nan(); dims[2]];
        pool.install(|| sum_axes(flat, dims, &[0, 1], &mut out));
        out
    }

    /// Each of the `cols` columns of `flat` summed down its rows in order.
    fn columns_in_order<T: Float>(flat: &[T], cols: usize) -> Vec<T> {
        (0..cols)
            .map(|c| {
                let column = flat.iter().skip(c).step_by(cols);
                column.fold(T::zero(), |s, &v| s + v)
            })
            .collect()
    }

    /// Values in -5 .. 5 that round differently in different orders of summing.
    fn mixed<T: Float>(n: usize) -> Vec<T> {
        (0..n)
            .map(|i| T::from(((i * 7919) % 1009) as f64 / 97.0 - 5.0).unwrap())
            .collect()
    }

    /// Leading axes summed onto long rows (a bias's gradient, large enough to split among
    /// threads): on two threads the same sums, bit for bit, as on one, each column in order.
    #[test]
    fn a_sum_over_leading_axes_is_the_same_on_any_number_of_threads() {
        let dims = [7, 50, 130];
        let flat: Vec<f32> = mixed(7 * 50 * 130);
        assert!(flat.len() >= crate::kernels::PAR_MIN);
        let want = columns_in_order(&flat, 130);
        assert_eq!(leading_sum(&flat, &dims, 1), want);
        assert_eq!(leading_sum(&flat, &dims, 2), want);
    }

    /// Wide rows (columns in blocks of 64 summed in registers, and a narrower rest): each
    /// column summed down the rows in order, on one thread and on two.
    #[test]
    fn a_sum_onto_wide_rows_adds_each_column_in_order() {
        let dims = [9, 30, 520];
        let flat: Vec<f64> = mixed(9 * 30 * 520);
        let want = columns_in_order(&flat, 520);
        for threads in [1, 2] {
            assert_eq!(
                leading_sum(&flat, &dims, threads),
                want,
                "{threads} threads"
            );
        }
    }

    #[test]
    fn lane_sum_adds_every_element() {
        for n in [0, 1, 7, 8, 9, 100, 1003] {
            let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(lane_sum(&xs), (n * n.max(1) - n) as f64 / 2.0, "{n}");
        }
    }
}
