//! Reductions over axes: sums, products, extrema, means, variances, `logsumexp`, `argmax`;
//! and running sums.

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

    /// Product of all elements.
    #[track_caller]
    pub fn prod(&self) -> Expr {
        self.reduce(Reduce::Prod, &self.all_axes(), false)
    }

    /// Maximum of all elements.
    #[track_caller]
    pub fn max(&self) -> Expr {
        self.reduce(Reduce::Max, &self.all_axes(), false)
    }

    /// Minimum of all elements.
    #[track_caller]
    pub fn min(&self) -> Expr {
        self.reduce(Reduce::Min, &self.all_axes(), false)
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

    /// The number of elements over `axes`, as a scalar of this dtype (read at run time for
    /// run-time dims).
    #[track_caller]
    fn count(&self, op: &str, axes: &[isize]) -> Result<Expr, Expr> {
        let axes = self.axes(op, axes)?;
        let dtype = self.dtype();
        Ok(self.apply(Op::DimSize { axes, dtype }, &[self]))
    }

    /// Mean of all elements.
    #[track_caller]
    pub fn mean(&self) -> Expr {
        self.mean_axes(&self.all_axes(), false)
    }

    /// Mean over `axes`: `sum / count`, the count read at run time for run-time dims.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        match self.count("mean", axes) {
            Ok(n) => &self.sum_axes(axes, keepdims) / &n,
            Err(e) => e,
        }
    }

    /// Population variance of all elements (divided by `n`, numpy's default); see
    /// [`var_ddof`](Expr::var_ddof) for the sample variance.
    #[track_caller]
    pub fn var(&self) -> Expr {
        self.var_ddof(&self.all_axes(), false, 0)
    }

    /// Population variance over `axes` (divided by `n`).
    #[track_caller]
    pub fn var_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.var_ddof(axes, keepdims, 0)
    }

    /// Variance over `axes` divided by `n - ddof`: `ddof = 0` is the population variance
    /// (numpy's default), `ddof = 1` the unbiased sample variance (PyTorch's default,
    /// `correction=1`). With `n <= ddof` the result is not finite.
    #[track_caller]
    pub fn var_ddof(&self, axes: &[isize], keepdims: bool, ddof: usize) -> Expr {
        if let Some(e) = self.not_float("var") {
            return e;
        }
        match self.count("var", axes) {
            Ok(n) => {
                let d = self - &self.mean_axes(axes, true);
                &d.square().sum_axes(axes, keepdims) / &(n - ddof as f64)
            }
            Err(e) => e,
        }
    }

    /// Population standard deviation of all elements: `sqrt(var())`. Like `sqrt`'s, its
    /// gradient is not finite where the variance is 0 (all elements equal), as in PyTorch.
    #[track_caller]
    pub fn std(&self) -> Expr {
        self.var().sqrt()
    }

    /// Population standard deviation over `axes`.
    #[track_caller]
    pub fn std_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.var_axes(axes, keepdims).sqrt()
    }

    /// Standard deviation over `axes` with `n - ddof` in the variance (see
    /// [`var_ddof`](Expr::var_ddof)).
    #[track_caller]
    pub fn std_ddof(&self, axes: &[isize], keepdims: bool, ddof: usize) -> Expr {
        self.var_ddof(axes, keepdims, ddof).sqrt()
    }

    /// Running sum along `axis`: `y[i] = x[0] + ... + x[i]`.
    #[track_caller]
    pub fn cumsum(&self, axis: isize) -> Expr {
        match self.axis("cumsum", axis) {
            Ok(axis) => self.apply(
                Op::Cumsum {
                    axis,
                    reverse: false,
                },
                &[self],
            ),
            Err(e) => e,
        }
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

    /// `log(sum(exp(x)))` over all elements (a scalar), computed stably.
    #[track_caller]
    pub fn logsumexp(&self) -> Expr {
        self.logsumexp_axes(&self.all_axes(), false)
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
