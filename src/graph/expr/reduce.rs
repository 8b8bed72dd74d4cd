//! Reductions over axes: sums, products, extrema, means, `logsumexp`, `argmax`.

use super::Expr;
use crate::graph::op::{Op, Reduce};

impl Expr {
    #[track_caller]
    fn reduce(&self, op: Reduce, axes: &[isize], keepdims: bool) -> Expr {
        match self.axes(op.name(), axes) {
            Ok(axes) => self.apply(Op::Reduce { op, axes, keepdims }, &[self]),
            Err(e) => e,
        }
    }

    /// Sum of all elements (a scalar).
    #[track_caller]
    pub fn sum(&self) -> Expr {
        self.reduce(Reduce::Sum, &self.all_axes(), false)
    }

    /// Sum over `axes` (negative axes count from the end).
    #[track_caller]
    pub fn sum_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Sum, axes, keepdims)
    }

    /// Product over `axes`.
    #[track_caller]
    pub fn prod_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Prod, axes, keepdims)
    }

    /// Maximum over `axes`.
    #[track_caller]
    pub fn max_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Max, axes, keepdims)
    }

    /// Minimum over `axes`.
    #[track_caller]
    pub fn min_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Min, axes, keepdims)
    }

    /// Mean of all elements.
    #[track_caller]
    pub fn mean(&self) -> Expr {
        self.mean_axes(&self.all_axes(), false)
    }

    /// Mean over `axes`: `sum / count`, the count read at run time for run-time dims.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        let norm = match self.axes("mean", axes) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let n = self.apply(
            Op::DimSize {
                axes: norm,
                dtype: self.dtype(),
            },
            &[self],
        );
        &self.sum_axes(axes, keepdims) / &n
    }

    /// The shift that keeps `exp(x - shift)` over `axes` from overflowing: the maximum (kept
    /// dims, held constant for grad), or 0 for a lane that is all -inf, so that it gives -inf
    /// rather than NaN from -inf - -inf.
    #[track_caller]
    pub(crate) fn max_shift(&self, axes: &[isize]) -> Expr {
        let m = self.max_axes(axes, true);
        m.gt(f64::NEG_INFINITY).select(&m, 0.0).stop_gradient()
    }

    /// `log(sum(exp(x)))` over `axes`, shifted by the maximum so it never overflows.
    #[track_caller]
    pub fn logsumexp_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        let m = self.max_shift(axes);
        let s = (self - &m).exp().sum_axes(axes, true).log() + &m;
        if keepdims {
            s
        } else {
            match self.axes("logsumexp", axes) {
                Ok(a) => s.apply(Op::Squeeze(a), &[&s]),
                Err(e) => e,
            }
        }
    }

    /// Index of the maximum along `axis`, as `i64`.
    #[track_caller]
    pub fn argmax(&self, axis: isize) -> Expr {
        match self.axis("argmax", axis) {
            Ok(axis) => self.apply(
                Op::Argmax {
                    axis,
                    keepdims: false,
                },
                &[self],
            ),
            Err(e) => e,
        }
    }
}
