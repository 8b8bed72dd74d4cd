//! Reductions along axes, `argmax`, and softmax along one axis.

use ndarray::{ArrayD, Axis};

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

/// The sum over axes `first..=last` of a contiguous row-major array of shape `dims`, into `out`
/// (the product of the other dims long).
pub(crate) fn sum_contiguous_axes<T: Float>(
    flat: &[T],
    dims: &[usize],
    (first, last): (usize, usize),
    out: &mut [T],
) {
    let outer: usize = dims[..first].iter().product();
    let mid: usize = dims[first..=last].iter().product();
    let inner: usize = dims[last + 1..].iter().product();
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

    #[test]
    fn lane_sum_adds_every_element() {
        for n in [0, 1, 7, 8, 9, 100, 1003] {
            let xs: Vec<f64> = (0..n).map(|i| i as f64).collect();
            assert_eq!(lane_sum(&xs), (n * n.max(1) - n) as f64 / 2.0, "{n}");
        }
    }
}
