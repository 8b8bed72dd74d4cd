//! Shapes: reshapes, broadcasts, new and removed axes, slices, row gathers, one-hot rows, and
//! `concat` and `stack`.

use super::Expr;
use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::shape;

impl Expr {
    /// Reshape; one target dim may be `-1` (inferred).
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Expr {
        self.apply(Op::Reshape(shape.to_vec()), &[self])
    }

    /// Broadcast to a static shape.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Expr {
        self.apply(Op::BroadcastTo(shape.to_vec()), &[self])
    }

    /// Broadcast to the (run-time) shape of `like`.
    #[track_caller]
    pub fn broadcast_like(&self, like: &Expr) -> Expr {
        self.apply(Op::BroadcastLike, &[self, like])
    }

    /// Reshape to the (run-time) shape of `like`.
    #[track_caller]
    pub fn reshape_like(&self, like: &Expr) -> Expr {
        self.apply(Op::ReshapeLike, &[self, like])
    }

    /// Insert size-1 axes at these positions of the result.
    #[track_caller]
    pub fn expand_dims(&self, axes: &[isize]) -> Expr {
        let n = self.ndim() + axes.len();
        match shape::axes(axes, n) {
            Ok(a) => self.apply(Op::ExpandDims(a), &[self]),
            Err(axis) => self.fail(Error::Axis {
                op: "expand_dims".into(),
                axis,
                ndim: n,
                loc: Location::caller(),
            }),
        }
    }

    /// Remove size-1 axes.
    #[track_caller]
    pub fn squeeze(&self, axes: &[isize]) -> Expr {
        match self.axes("squeeze", axes) {
            Ok(a) => self.apply(Op::Squeeze(a), &[self]),
            Err(e) => e,
        }
    }

    /// `x[start:end]` along `axis` (negative indices count from the end; `end = None` is the end).
    #[track_caller]
    pub fn slice(&self, axis: isize, start: isize, end: Option<isize>) -> Expr {
        self.slice_step(axis, start, end, 1)
    }

    /// `x[start:end:step]` along `axis`, `step >= 1`.
    #[track_caller]
    pub fn slice_step(&self, axis: isize, start: isize, end: Option<isize>, step: usize) -> Expr {
        match self.axis("slice", axis) {
            Ok(axis) => self.apply(
                Op::Slice {
                    axis,
                    start,
                    end,
                    step,
                },
                &[self],
            ),
            Err(e) => e,
        }
    }

    /// Rows of this tensor picked by an `i64` index tensor (`x[idx]` along axis 0).
    #[track_caller]
    pub fn take(&self, indices: &Expr) -> Expr {
        self.apply(Op::Take, &[self, indices])
    }

    /// `i64` labels to one-hot rows of `depth` classes.
    #[track_caller]
    pub fn one_hot(&self, depth: usize, dtype: DType) -> Expr {
        self.apply(Op::OneHot { depth, dtype }, &[self])
    }
}

/// Stack tensors of one shape along a new axis.
#[track_caller]
pub fn stack(xs: &[&Expr], axis: isize) -> Result<Expr> {
    stack_at(xs, axis, Location::caller())
}

pub(crate) fn stack_at(xs: &[&Expr], axis: isize, loc: Location) -> Result<Expr> {
    let first = xs.first().ok_or_else(|| Error::Usage {
        what: "stack of no tensors".into(),
        loc,
    })?;
    // An invalid operand's error comes first: its placeholder type says nothing about axes.
    for x in xs {
        x.graph.check(&[x.id])?;
    }
    let ndim = first.ndim() + 1;
    let a = shape::axis(axis, ndim).ok_or(Error::Axis {
        op: "stack".into(),
        axis,
        ndim,
        loc,
    })?;
    let expanded: Vec<Expr> = xs
        .iter()
        .map(|x| x.graph.apply_loc(Op::ExpandDims(vec![a]), &[x], loc))
        .collect();
    let refs: Vec<&Expr> = expanded.iter().collect();
    concat_at(&refs, a as isize, loc)
}

/// Concatenate tensors along `axis`.
#[track_caller]
pub fn concat(xs: &[&Expr], axis: isize) -> Result<Expr> {
    concat_at(xs, axis, Location::caller())
}

fn concat_at(xs: &[&Expr], axis: isize, loc: Location) -> Result<Expr> {
    let first = xs.first().ok_or_else(|| Error::Usage {
        what: "concat of no tensors".into(),
        loc,
    })?;
    // An invalid operand's error comes first: its placeholder type says nothing about axes.
    for x in xs {
        x.graph.check(&[x.id])?;
    }
    let ndim = first.ndim();
    let a = shape::axis(axis, ndim).ok_or(Error::Axis {
        op: "concat".into(),
        axis,
        ndim,
        loc,
    })?;
    first.graph.apply_loc(Op::Concat(a), xs, loc).check()
}
