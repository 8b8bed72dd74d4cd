//! Neural-network helpers: softmax, log-softmax, the cross-entropies.

use super::Expr;
use crate::error::{Error, Location};
use crate::graph::op::Op;

impl Expr {
    /// Softmax along `axis`.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Expr {
        match self.axis("softmax", axis) {
            Ok(a) => self.apply(Op::Softmax(a), &[self]),
            Err(e) => e,
        }
    }

    /// Log-softmax along `axis`, computed stably.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Expr {
        match self.axis("log_softmax", axis) {
            Ok(a) => self.apply(Op::LogSoftmax(a), &[self]),
            Err(e) => e,
        }
    }

    /// Per-row cross-entropy of logits `[n, k]` against `i64` labels `[n]`:
    /// `-log_softmax(x)[i, label_i]`.
    #[track_caller]
    pub fn softmax_cross_entropy(&self, labels: &Expr) -> Expr {
        let depth = match self.shape().dims().last() {
            Some(Some(k)) => *k,
            _ => {
                return self.fail(Error::Shape {
                    op: "softmax_cross_entropy".into(),
                    detail: format!("logits need a known last (class) dim, got {}", self.shape()),
                    loc: Location::caller(),
                });
            }
        };
        let t = labels.one_hot(depth, self.dtype());
        -(&t * &self.log_softmax(-1)).sum_axes(&[-1], false)
    }

    /// Elementwise binary cross-entropy of logits against targets in `[0, 1]`:
    /// `softplus(x) - t * x`, stable for large logits.
    #[track_caller]
    pub fn binary_cross_entropy_with_logits(&self, targets: &Expr) -> Expr {
        &self.softplus() - &(targets * self)
    }
}
