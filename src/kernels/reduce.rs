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

pub(crate) fn softmax<T: Float>(a: &ArrayD<T>, axis: usize, log: bool) -> ArrayD<T> {
    let mut out = a.to_owned();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let m = lane.fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
        let m = if m.is_finite() { m } else { T::zero() };
        let s: T = lane.iter().map(|&v| (v - m).exp()).sum();
        if log {
            let ls = s.ln() + m;
            lane.mapv_inplace(|v| v - ls);
        } else {
            lane.mapv_inplace(|v| (v - m).exp() / s);
        }
    }
    out
}
