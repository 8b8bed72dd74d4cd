//! Shapes: reshapes, broadcasts, new and removed axes, slices, row gathers, one-hot rows, and
//! `concat` and `stack`.

use super::Expr;
use crate::dtype::DType;
use crate::error::{Error, Location};
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

    /// Rows of this tensor picked by an `i64` index tensor (`x[idx]` along axis 0); see
    /// [`take_axis`](Expr::take_axis).
    #[track_caller]
    pub fn take(&self, indices: &Expr) -> Expr {
        self.take_axis(indices, 0)
    }

    /// numpy's `take(x, indices, axis)`: the slices along `axis` picked by an `i64` index
    /// tensor of any shape, which takes that axis's place (`x` of `[a, b, c]` with indices of
    /// `[m, n]` along axis 1 gives `[a, m, n, c]`). An index out of range is an error when the
    /// function runs.
    #[track_caller]
    pub fn take_axis(&self, indices: &Expr, axis: isize) -> Expr {
        match self.axis("take", axis) {
            Ok(axis) => self.apply(Op::Take { axis }, &[self, indices]),
            Err(e) => e,
        }
    }

    /// This tensor with the rows of `updates` added at the rows `indices` names (along axis 0;
    /// repeated indices add up); see [`scatter_add_axis`](Expr::scatter_add_axis).
    #[track_caller]
    pub fn scatter_add(&self, indices: &Expr, updates: &Expr) -> Expr {
        self.scatter_add_axis(indices, updates, 0)
    }

    /// The adjoint of [`take_axis`](Expr::take_axis): this tensor with the slices of `updates`
    /// added along `axis` at the `i64` `indices`, repeated indices adding up (numpy's
    /// `np.add.at(x, idx, updates)` on a copy, PyTorch's `index_add`). `updates` has the shape
    /// `take_axis(indices, axis)` would give. An index out of range is an error when the
    /// function runs.
    #[track_caller]
    pub fn scatter_add_axis(&self, indices: &Expr, updates: &Expr, axis: isize) -> Expr {
        match self.axis("scatter_add", axis) {
            Ok(axis) => self + &self.apply(Op::ScatterAdd { axis }, &[updates, indices, self]),
            Err(e) => e,
        }
    }

    /// Zeros of this tensor's dtype and (run-time) shape.
    #[track_caller]
    pub fn zeros_like(&self) -> Expr {
        self.scalar_like(0.0).broadcast_like(self)
    }

    /// Ones of this tensor's dtype and (run-time) shape.
    #[track_caller]
    pub fn ones_like(&self) -> Expr {
        self.scalar_like(1.0).broadcast_like(self)
    }

    /// `i64` labels to one-hot rows of `depth` classes.
    #[track_caller]
    pub fn one_hot(&self, depth: usize, dtype: DType) -> Expr {
        self.apply(Op::OneHot { depth, dtype }, &[self])
    }
}

/// Zeros of `x`'s dtype and (run-time) shape.
#[track_caller]
pub fn zeros_like(x: &Expr) -> Expr {
    x.zeros_like()
}

/// Ones of `x`'s dtype and (run-time) shape.
#[track_caller]
pub fn ones_like(x: &Expr) -> Expr {
    x.ones_like()
}

/// Stack tensors of one shape along a new axis. A mistake (no tensors, an axis out of range,
/// shapes that differ) is recorded like any op's and reported by `grad`, `function`, `eval`
/// or [`Expr::check`].
#[track_caller]
pub fn stack(xs: &[&Expr], axis: isize) -> Expr {
    stack_at(xs, axis, Location::caller())
}

pub(crate) fn stack_at(xs: &[&Expr], axis: isize, loc: Location) -> Expr {
    let first = match operands("stack", xs, loc) {
        Ok(first) => first,
        Err(e) => return e,
    };
    let ndim = first.ndim() + 1;
    let Some(a) = shape::axis(axis, ndim) else {
        return first.fail_at(
            Error::Axis {
                op: "stack".into(),
                axis,
                ndim,
                loc,
            },
            loc,
        );
    };
    let expanded: Vec<Expr> = xs
        .iter()
        .map(|x| x.graph.apply_loc(Op::ExpandDims(vec![a]), &[x], loc))
        .collect();
    let refs: Vec<&Expr> = expanded.iter().collect();
    concat_at(&refs, a as isize, loc)
}

/// Concatenate tensors along `axis`. A mistake (no tensors, an axis out of range, shapes that
/// differ) is recorded like any op's and reported by `grad`, `function`, `eval` or
/// [`Expr::check`].
#[track_caller]
pub fn concat(xs: &[&Expr], axis: isize) -> Expr {
    concat_at(xs, axis, Location::caller())
}

fn concat_at(xs: &[&Expr], axis: isize, loc: Location) -> Expr {
    let first = match operands("concat", xs, loc) {
        Ok(first) => first,
        Err(e) => return e,
    };
    let ndim = first.ndim();
    match shape::axis(axis, ndim) {
        Some(a) => first.graph.apply_loc(Op::Concat(a), xs, loc),
        None => first.fail_at(
            Error::Axis {
                op: "concat".into(),
                axis,
                ndim,
                loc,
            },
            loc,
        ),
    }
}

/// The first of the operands of `op`, or the node to return instead: the first invalid
/// operand (its placeholder type says nothing about axes, and its error comes first), or, for
/// no operands at all, an invalid node in a graph of its own (there is no other to put it in).
fn operands<'a>(op: &str, xs: &[&'a Expr], loc: Location) -> std::result::Result<&'a Expr, Expr> {
    if let Some(bad) = xs
        .iter()
        .find(|x| x.graph.lock().node(x.id).error.is_some())
    {
        return Err((*bad).clone());
    }
    match xs.first() {
        Some(first) => Ok(first),
        None => {
            let g = crate::graph::Graph::new();
            let err = Error::Usage {
                what: format!("{op} of no tensors"),
                loc,
            };
            let id = g.lock().invalid(err, loc);
            Err(g.expr(id))
        }
    }
}
