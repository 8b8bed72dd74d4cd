//! Convolutional nets: 2-d convolution, max and average pools over NCHW batches, and constant
//! padding. Bad arguments (ranks, channels, windows larger than the padded input) are checked
//! by the ops' type rules and recorded at the caller's line.

use super::Expr;
use crate::graph::op::{Conv2d, Op, Pad, Pool2d};

impl Expr {
    /// The 2-d convolution of this NCHW batch with OIHW `filters` (`O` output channels,
    /// `I = C / groups` input channels each), computed as every deep-learning library does
    /// (a cross-correlation: the filters are not flipped), zero-padded:
    ///
    /// ```
    /// use gradus::prelude::*;
    /// use gradus::Conv2d;
    /// let g = Graph::new();
    /// let x = g.input("x", DType::F32, &[None, Some(1), Some(28), Some(28)]);
    /// let w = g.input("w", DType::F32, &[Some(20), Some(1), Some(5), Some(5)]);
    /// let y = x.conv2d(&w, Conv2d::default().with_padding(2));
    /// assert_eq!(y.shape().dims(), &[None, Some(20), Some(28), Some(28)]);
    /// ```
    #[track_caller]
    pub fn conv2d(&self, filters: &Expr, conv: Conv2d) -> Expr {
        self.apply(Op::Conv2d(conv), &[self, filters])
    }

    /// The maximum of each window of each channel of this NCHW batch; padding is `-inf`, and
    /// the gradient goes to the first maximum of each window.
    #[track_caller]
    pub fn max_pool2d(&self, pool: Pool2d) -> Expr {
        self.apply(Op::MaxPool2d(pool), &[self])
    }

    /// The mean of each window of each channel of this NCHW batch; padding is zeros that count
    /// in the mean (each window divides by its full size).
    #[track_caller]
    pub fn avg_pool2d(&self, pool: Pool2d) -> Expr {
        self.apply(Op::AvgPool2d(pool), &[self])
    }

    /// This tensor with `widths[k] = (before, after)` cells of `value` added along axis `k`.
    #[track_caller]
    pub fn pad(&self, widths: &[(usize, usize)], value: f64) -> Expr {
        self.apply(Op::Pad(Pad::new(widths, value)), &[self])
    }
}
