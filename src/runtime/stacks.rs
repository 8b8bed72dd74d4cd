//! The per-step values of a loop: slices of its sequences in, stacks of its outputs, its
//! states' history and the body values it keeps out, in buffers from the caller's pool.

use std::ops::Range;

use ndarray::{ArrayD, ArrayViewMutD, Axis, IxDyn, Slice};

use super::pool::Pool;
use super::{Failure, Value};
use crate::compile::ir::Node;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `body` on the arrays of two tensors of one dtype, named `$d` and `$s` (`what`: why their
/// dtypes cannot differ).
macro_rules! same_dtype {
    ($dst:expr, $src:expr, $d:ident, $s:ident => $body:expr, $what:literal) => {
        match ($dst, $src) {
            (Tensor::F32($d), Tensor::F32($s)) => $body,
            (Tensor::F64($d), Tensor::F64($s)) => $body,
            (Tensor::I64($d), Tensor::I64($s)) => $body,
            (Tensor::Bool($d), Tensor::Bool($s)) => $body,
            _ => unreachable!($what),
        }
    };
}

/// Per-step values stacked along a new first axis: into one buffer of all the steps where
/// their number is known when the loop starts, else kept and stacked at the end.
pub(super) enum Stack<'a> {
    /// Not yet sized (sized at the first step).
    Empty,
    /// `[steps, ...]`, filled step by step.
    Filled(Tensor),
    /// One part's rows of a stack of all the rows of a loop split by rows (`[steps, rows,
    /// ...]`, a view of the stack the parts share), filled step by step.
    Into(RowsMut<'a>),
    /// The steps of a while loop, in the order they ran.
    Steps(Vec<Tensor>),
    /// Each step's own tensor, in the order they ran, to hand over as a list (never stacked).
    List(Vec<Tensor>),
}

impl Stack<'_> {
    /// Put `y`, the value of step `t` of `steps` (`None`: a while loop's), in its place.
    pub(super) fn put(
        &mut self,
        t: usize,
        steps: Option<usize>,
        y: &Tensor,
        (pool, node): (&mut Pool, &Node),
    ) -> Result<()> {
        if let (Stack::Empty, Some(steps)) = (&*self, steps) {
            let mut shape = vec![steps];
            shape.extend_from_slice(y.shape());
            *self = Stack::Filled(buffer(y.dtype(), &shape, pool, node)?);
        }
        match self {
            Stack::Empty => *self = Stack::Steps(vec![y.clone()]),
            Stack::Steps(ys) | Stack::List(ys) => ys.push(y.clone()),
            Stack::Filled(all) => RowsMut::of(all).put(t, y)?,
            Stack::Into(rows) => rows.put(t, y)?,
        }
        Ok(())
    }

    /// Keep `y`, the next step's value, as it is: the stack becomes a list.
    pub(super) fn push(&mut self, y: Tensor) {
        match self {
            Stack::List(ys) => ys.push(y),
            _ => *self = Stack::List(vec![y]),
        }
    }

    /// As [`finish`](Self::finish), but a list stays a list (in sequence order), and a part's
    /// rows of a shared stack are no value of their own (`None`: the stack holds them).
    pub(super) fn finish_value(
        self,
        dtype: DType,
        empty: &[usize],
        reverse: bool,
    ) -> Result<Option<Value>> {
        match self {
            Stack::List(mut ys) => {
                if reverse {
                    ys.reverse();
                }
                Ok(Some(Value::Steps(ys)))
            }
            Stack::Into(_) => Ok(None),
            other => other
                .finish(dtype, empty, reverse)
                .map(|t| Some(Value::Owned(t))),
        }
    }

    /// The stacked values: `empty` (the shape of no steps) where there were none; a while
    /// loop's in sequence order (`reverse`: they ran from the last).
    pub(super) fn finish(self, dtype: DType, empty: &[usize], reverse: bool) -> Result<Tensor> {
        match self {
            Stack::Filled(all) => Ok(all),
            Stack::Empty => stack(&[], dtype, empty),
            Stack::Into(_) => unreachable!("a part's rows of a shared stack are not finished"),
            Stack::Steps(mut ys) | Stack::List(mut ys) => {
                if reverse {
                    ys.reverse();
                }
                stack(&ys, dtype, empty)
            }
        }
    }
}

/// A mutable view of a tensor's elements, of its dtype.
pub(super) enum RowsMut<'a> {
    F32(ArrayViewMutD<'a, f32>),
    F64(ArrayViewMutD<'a, f64>),
    I64(ArrayViewMutD<'a, i64>),
    Bool(ArrayViewMutD<'a, bool>),
}

impl<'a> RowsMut<'a> {
    /// A view of all of `t`.
    fn of(t: &'a mut Tensor) -> Self {
        match t {
            Tensor::F32(a) => RowsMut::F32(a.view_mut()),
            Tensor::F64(a) => RowsMut::F64(a.view_mut()),
            Tensor::I64(a) => RowsMut::I64(a.view_mut()),
            Tensor::Bool(a) => RowsMut::Bool(a.view_mut()),
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            RowsMut::F32(a) => a.shape(),
            RowsMut::F64(a) => a.shape(),
            RowsMut::I64(a) => a.shape(),
            RowsMut::Bool(a) => a.shape(),
        }
    }

    /// Put `y`, the value of step `t`, in its place along the first axis: a step's value has
    /// the shape of the steps before it.
    fn put(&mut self, t: usize, y: &Tensor) -> Result<()> {
        let before = &self.shape()[1..];
        if before != y.shape() {
            return Err(Error::Data {
                path: "<loop>".into(),
                reason: format!(
                    "per-step values of different shapes: {} at step {t}, {} before",
                    crate::shape::show(y.shape()),
                    crate::shape::show(before)
                ),
            });
        }
        let at = Axis(0);
        match (self, y) {
            (RowsMut::F32(a), Tensor::F32(b)) => copy_into(a.index_axis_mut(at, t), b.view()),
            (RowsMut::F64(a), Tensor::F64(b)) => copy_into(a.index_axis_mut(at, t), b.view()),
            (RowsMut::I64(a), Tensor::I64(b)) => copy_into(a.index_axis_mut(at, t), b.view()),
            (RowsMut::Bool(a), Tensor::Bool(b)) => copy_into(a.index_axis_mut(at, t), b.view()),
            _ => unreachable!("a stack has the dtype of its first value"),
        }
        Ok(())
    }
}

/// `stack` (`[steps, rows, ...]`) cut along its rows into the disjoint views of `parts`
/// (consecutive ranges from row 0 to the last row).
pub(super) fn rows_mut<'a>(stack: &'a mut Tensor, parts: &[Range<usize>]) -> Vec<RowsMut<'a>> {
    macro_rules! cut {
        ($a:expr, $v:ident) => {{
            let mut rest = $a.view_mut();
            let mut views = Vec::with_capacity(parts.len());
            for rows in parts {
                let (mine, after) = rest.split_at(Axis(1), rows.len());
                views.push(RowsMut::$v(mine));
                rest = after;
            }
            views
        }};
    }
    match stack {
        Tensor::F32(a) => cut!(a, F32),
        Tensor::F64(a) => cut!(a, F64),
        Tensor::I64(a) => cut!(a, I64),
        Tensor::Bool(a) => cut!(a, Bool),
    }
}

/// A tensor of `dtype` and `shape` (contents unspecified), float buffers from `pool`.
pub(super) fn buffer(
    dtype: DType,
    shape: &[usize],
    pool: &mut Pool,
    node: &Node,
) -> Result<Tensor> {
    let failed = |f: Failure| f.at(node);
    Ok(match dtype {
        DType::F32 => Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(shape), pool.take::<f32>(shape).map_err(failed)?)
                .expect("a buffer of the shape's size"),
        ),
        DType::F64 => Tensor::F64(
            ArrayD::from_shape_vec(IxDyn(shape), pool.take::<f64>(shape).map_err(failed)?)
                .expect("a buffer of the shape's size"),
        ),
        DType::I64 => Tensor::I64(checked(shape, pool, DType::I64).map_err(failed)?),
        DType::Bool => Tensor::Bool(checked(shape, pool, DType::Bool).map_err(failed)?),
    })
}

/// An array of `shape` of a type the pool does not keep, allocated within the pool's memory
/// limit, or why not.
fn checked<T: Clone + Default>(
    shape: &[usize],
    pool: &Pool,
    dtype: DType,
) -> Result<ArrayD<T>, Failure> {
    let too_big = |limit| Failure::OutOfMemory {
        dtype,
        shape: shape.to_vec(),
        limit,
    };
    let n = crate::shape::checked_size(shape).ok_or_else(|| too_big(None))?;
    let bytes = n.checked_mul(std::mem::size_of::<T>());
    if let Some(limit) = pool.limit
        && bytes.is_none_or(|b| b > limit)
    {
        return Err(too_big(Some(limit)));
    }
    let mut v: Vec<T> = Vec::new();
    v.try_reserve_exact(n).map_err(|_| too_big(None))?;
    v.resize(n, T::default());
    Ok(ArrayD::from_shape_vec(IxDyn(shape), v).expect("a buffer of the shape's size"))
}

/// Slice `t` of a sequence along its first axis, float slices in buffers from `pool`.
pub(super) fn slice(s: &Tensor, t: usize, pool: &mut Pool, node: &Node) -> Result<Tensor> {
    let mut out = buffer(s.dtype(), &s.shape()[1..], pool, node)?;
    same_dtype!(&mut out, s, o, a => copy_into(o.view_mut(), a.index_axis(Axis(0), t)),
        "the buffer has the sequence's dtype");
    Ok(out)
}

/// The rows `rows` (along the first axis) of slice `t` of a sequence, in a buffer from `pool`.
pub(super) fn slice_rows(
    s: &Tensor,
    t: usize,
    rows: &Range<usize>,
    pool: &mut Pool,
    node: &Node,
) -> Result<Tensor> {
    let mut shape = s.shape()[1..].to_vec();
    shape[0] = rows.len();
    let mut out = buffer(s.dtype(), &shape, pool, node)?;
    same_dtype!(&mut out, s, o, a => copy_into(
        o.view_mut(),
        a.index_axis(Axis(0), t).slice_axis(Axis(0), Slice::from(rows.clone()))
    ), "the buffer has the sequence's dtype");
    Ok(out)
}

/// The rows `rows` (along the first axis) of `s`, in a buffer from `pool`.
pub(super) fn rows_of(
    s: &Tensor,
    rows: &Range<usize>,
    pool: &mut Pool,
    node: &Node,
) -> Result<Tensor> {
    let mut shape = s.shape().to_vec();
    shape[0] = rows.len();
    let mut out = buffer(s.dtype(), &shape, pool, node)?;
    same_dtype!(&mut out, s, o, a => copy_into(
        o.view_mut(),
        a.slice_axis(Axis(0), Slice::from(rows.clone()))
    ), "the buffer has the tensor's dtype");
    Ok(out)
}

/// The parts of a value split by rows, joined along `axis` (where their rows are), in a
/// buffer from `pool`: for each position before `axis`, each part's block in turn.
pub(super) fn join_rows(
    parts: &[&Tensor],
    axis: usize,
    pool: &mut Pool,
    node: &Node,
) -> Result<Tensor> {
    let mut shape = parts[0].shape().to_vec();
    shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
    let mut out = buffer(parts[0].dtype(), &shape, pool, node)?;
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let blocks: Vec<usize> = parts.iter().map(|p| p.shape()[axis] * inner).collect();
    for (k, part) in parts.iter().enumerate() {
        let before: usize = blocks[..k].iter().sum();
        let (block, row) = (blocks[k], shape[axis] * inner);
        same_dtype!(&mut out, *part, o, a => {
            let (o, a) = (o.as_slice_mut(), a.as_standard_layout());
            let (o, a) = (o.expect("a pool buffer is contiguous"), a.as_slice().expect("standard"));
            for i in 0..outer {
                o[i * row + before..i * row + before + block]
                    .copy_from_slice(&a[i * block..(i + 1) * block]);
            }
        }, "the parts have one dtype");
    }
    Ok(out)
}

/// `dst ← src` (of one shape): one copy of the elements where both are contiguous.
fn copy_into<T: Copy>(mut dst: ndarray::ArrayViewMutD<T>, src: ndarray::ArrayViewD<T>) {
    match (dst.as_slice_mut(), src.as_slice()) {
        (Some(d), Some(s)) => d.copy_from_slice(s),
        _ => dst.assign(&src),
    }
}

/// Per-step tensors stacked along a new first axis; for no steps, an empty tensor of `dtype`
/// and shape `empty`.
fn stack(items: &[Tensor], dtype: DType, empty: &[usize]) -> Result<Tensor> {
    macro_rules! stacked {
        ($v:ident, $t:ty) => {{
            let views: Vec<_> = items
                .iter()
                .map(|i| match i {
                    Tensor::$v(a) => Ok(a.view()),
                    other => Err(format!("a loop output of {}", other.dtype())),
                })
                .collect::<std::result::Result<_, String>>()
                .map_err(|e| Error::Data {
                    path: "<loop>".into(),
                    reason: e,
                })?;
            if views.is_empty() {
                Tensor::$v(ArrayD::<$t>::default(IxDyn(empty)))
            } else {
                Tensor::$v(ndarray::stack(Axis(0), &views).map_err(|e| Error::Data {
                    path: "<loop>".into(),
                    reason: format!("per-step outputs of different shapes: {e}"),
                })?)
            }
        }};
    }
    Ok(match dtype {
        DType::F32 => stacked!(F32, f32),
        DType::F64 => stacked!(F64, f64),
        DType::I64 => stacked!(I64, i64),
        DType::Bool => stacked!(Bool, bool),
    })
}
