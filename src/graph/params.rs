//! The parameters of the windowed ops (convolutions, pools, padding): what
//! [`Expr::conv2d`](crate::Expr::conv2d), the pools and [`Expr::pad`](crate::Expr::pad) take,
//! and how they print in graphs.

use std::fmt;

/// A height and a width: of a window, a stride, a padding or a dilation. A `usize` gives both.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Hw {
    /// Along the rows (axis 2 of NCHW).
    pub h: usize,
    /// Along the columns (axis 3).
    pub w: usize,
}

impl From<usize> for Hw {
    fn from(n: usize) -> Hw {
        Hw { h: n, w: n }
    }
}

impl From<(usize, usize)> for Hw {
    fn from((h, w): (usize, usize)) -> Hw {
        Hw { h, w }
    }
}

impl fmt::Display for Hw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.h == self.w {
            write!(f, "{}", self.h)
        } else {
            write!(f, "{}x{}", self.h, self.w)
        }
    }
}

/// How [`Expr::conv2d`](crate::Expr::conv2d) slides its filters: `Conv2d::default()` is stride
/// 1, no padding, dilation 1, one group; the `with_*` builders change one each.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Conv2d {
    /// Step between two places of the filter.
    pub stride: Hw,
    /// Zeros added on both sides of each spatial axis.
    pub padding: Hw,
    /// Step between two taps of the filter (1: adjacent cells).
    pub dilation: Hw,
    /// The channels split into this many groups, each convolved with its own filters.
    pub groups: usize,
}

impl Default for Conv2d {
    fn default() -> Conv2d {
        Conv2d {
            stride: 1.into(),
            padding: 0.into(),
            dilation: 1.into(),
            groups: 1,
        }
    }
}

impl Conv2d {
    /// This convolution with another stride.
    pub fn with_stride(mut self, stride: impl Into<Hw>) -> Conv2d {
        self.stride = stride.into();
        self
    }
    /// This convolution with another zero padding.
    pub fn with_padding(mut self, padding: impl Into<Hw>) -> Conv2d {
        self.padding = padding.into();
        self
    }
    /// This convolution with another dilation.
    pub fn with_dilation(mut self, dilation: impl Into<Hw>) -> Conv2d {
        self.dilation = dilation.into();
        self
    }
    /// This convolution with its channels in `groups` groups.
    pub fn with_groups(mut self, groups: usize) -> Conv2d {
        self.groups = groups;
        self
    }
}

impl fmt::Display for Conv2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stride={}, padding={}, dilation={}, groups={}",
            self.stride, self.padding, self.dilation, self.groups
        )
    }
}

/// The windows of a pool: `Pool2d::new(window)` moves by the window (no overlap) with no
/// padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Pool2d {
    /// The window's height and width.
    pub window: Hw,
    /// Step between two windows.
    pub stride: Hw,
    /// Cells added on both sides of each spatial axis (at most half the window).
    pub padding: Hw,
}

impl Pool2d {
    /// Windows of this size, side by side.
    pub fn new(window: impl Into<Hw>) -> Pool2d {
        let window = window.into();
        Pool2d {
            window,
            stride: window,
            padding: 0.into(),
        }
    }
    /// These windows with another stride.
    pub fn with_stride(mut self, stride: impl Into<Hw>) -> Pool2d {
        self.stride = stride.into();
        self
    }
    /// These windows over an input padded by this much.
    pub fn with_padding(mut self, padding: impl Into<Hw>) -> Pool2d {
        self.padding = padding.into();
        self
    }
}

impl fmt::Display for Pool2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "window={}, stride={}, padding={}",
            self.window, self.stride, self.padding
        )
    }
}

/// Constant padding: `(before, after)` cells per axis, filled with a value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Pad {
    /// Cells added before and after, one pair per axis.
    pub widths: Vec<(usize, usize)>,
    /// The fill value's bits (so that the op compares and hashes).
    value_bits: u64,
}

impl Pad {
    /// Pad by `widths` with `value`.
    pub fn new(widths: &[(usize, usize)], value: f64) -> Pad {
        Pad {
            widths: widths.to_vec(),
            value_bits: value.to_bits(),
        }
    }
    /// The fill value.
    pub fn value(&self) -> f64 {
        f64::from_bits(self.value_bits)
    }
}
