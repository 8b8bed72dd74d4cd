//! The type rules of the windowed ops: convolutions, pools and their gradients, and padding.
//! The arithmetic of window places is [`shape::window_places`], which the kernels share.

use crate::graph::Type;
use crate::graph::infer::{InferError, InferResult, arity, need_float, same_dtype};
use crate::graph::op::{Conv2d, Hw, Op, Pad, Pool2d};
use crate::shape::{self, Dim, Shape};

/// An NCHW (or OIHW) operand's dims, or why it is not one.
fn rank4<'t>(t: &'t Type, what: &str) -> Result<&'t [Dim], InferError> {
    match t.ndim() {
        4 => Ok(t.shape.dims()),
        n => Err(InferError::Shape(format!(
            "{what} must be 4-d, got {n}-d {}",
            t.shape
        ))),
    }
}

fn positive(what: &str, hw: Hw) -> Result<(), InferError> {
    if hw.h == 0 || hw.w == 0 {
        return Err(InferError::Invalid(format!(
            "{what} must be positive, got {hw}"
        )));
    }
    Ok(())
}

/// The output length along one spatial axis, where the input's is known.
fn places(
    len: Dim,
    window: Dim,
    (stride, pad, dilation): (usize, usize, usize),
) -> Result<Dim, InferError> {
    match (len, window) {
        (Some(len), Some(window)) => shape::window_places(len, window, (stride, pad, dilation))
            .map(Some)
            .map_err(InferError::Shape),
        _ => Ok(None),
    }
}

fn check_conv(c: &Conv2d) -> Result<(), InferError> {
    positive("the stride", c.stride)?;
    positive("the dilation", c.dilation)?;
    if c.groups == 0 {
        return Err(InferError::Invalid("groups must be positive".into()));
    }
    Ok(())
}

/// `x [N, C, H, W]` by `w [O, C / groups, KH, KW]`: `[N, O, OH, OW]`.
fn conv_shape(c: &Conv2d, x: &[Dim], w: &[Dim]) -> Result<Shape, InferError> {
    let g = c.groups;
    if let Some(ch) = x[1].filter(|ch| !ch.is_multiple_of(g)) {
        return Err(InferError::Shape(format!(
            "the input's {ch} channels do not split into {g} groups"
        )));
    }
    if let Some(o) = w[0].filter(|o| !o.is_multiple_of(g)) {
        return Err(InferError::Shape(format!(
            "the filters' {o} output channels do not split into {g} groups"
        )));
    }
    if let (Some(ch), Some(i)) = (x[1], w[1])
        && ch != i * g
    {
        return Err(InferError::Shape(format!(
            "the filters take {i} channels per group, the input has {ch} in {g} group(s) \
             ({} per group)",
            ch / g
        )));
    }
    let oh = places(x[2], w[2], (c.stride.h, c.padding.h, c.dilation.h))?;
    let ow = places(x[3], w[3], (c.stride.w, c.padding.w, c.dilation.w))?;
    Ok(Shape::new(vec![x[0], w[0], oh, ow]))
}

pub(crate) fn conv2d(c: &Conv2d, ts: &[Type]) -> InferResult {
    arity(ts, 2)?;
    let dtype = same_dtype(ts)?;
    need_float(&ts[0])?;
    check_conv(c)?;
    let x = rank4(&ts[0], "the input (NCHW)")?;
    let w = rank4(&ts[1], "the filters (OIHW)")?;
    Ok(Type {
        dtype,
        shape: conv_shape(c, x, w)?,
    })
}

/// The gradient of a convolution for operand `of` (0: the input, 1: the filters): operands
/// `[dy, w, x]` or `[x, dy, w]`, the last giving the result's shape.
pub(crate) fn conv2d_grad(c: &Conv2d, ts: &[Type], of: usize, what: &str) -> InferResult {
    arity(ts, 3)?;
    let dtype = same_dtype(ts)?;
    need_float(&ts[0])?;
    check_conv(c)?;
    let (dy, x, w) = if of == 0 {
        (&ts[0], &ts[2], &ts[1])
    } else {
        (&ts[1], &ts[0], &ts[2])
    };
    let y = conv_shape(
        c,
        rank4(x, "the input (NCHW)")?,
        rank4(w, "the filters (OIHW)")?,
    )?;
    if !fits(&y, rank4(dy, "the output's gradient")?) {
        return Err(InferError::Shape(format!(
            "the output's gradient {} does not fit the convolution's output {y} (gradient of \
             {what})",
            dy.shape
        )));
    }
    Ok(Type {
        dtype,
        shape: ts[2].shape.clone(),
    })
}

/// Do two shapes of one rank agree where both are known?
fn fits(a: &Shape, b: &[Dim]) -> bool {
    a.ndim() == b.len()
        && a.dims()
            .iter()
            .zip(b)
            .all(|(p, q)| p.is_none() || q.is_none() || p == q)
}

fn pool_shape(p: &Pool2d, x: &[Dim]) -> Result<Shape, InferError> {
    positive("the window", p.window)?;
    positive("the stride", p.stride)?;
    if p.padding.h > p.window.h / 2 || p.padding.w > p.window.w / 2 {
        return Err(InferError::Invalid(format!(
            "the padding {} is more than half the window {}",
            p.padding, p.window
        )));
    }
    let oh = places(x[2], Some(p.window.h), (p.stride.h, p.padding.h, 1))?;
    let ow = places(x[3], Some(p.window.w), (p.stride.w, p.padding.w, 1))?;
    Ok(Shape::new(vec![x[0], x[1], oh, ow]))
}

pub(crate) fn pool2d(p: &Pool2d, ts: &[Type]) -> InferResult {
    arity(ts, 1)?;
    need_float(&ts[0])?;
    let x = rank4(&ts[0], "the input (NCHW)")?;
    Ok(Type {
        dtype: ts[0].dtype,
        shape: pool_shape(p, x)?,
    })
}

/// A pool's gradient: `[x, dy]` (max) or `[dy, x]` (average), shaped like `x`.
pub(crate) fn pool2d_grad(op: &Op, ts: &[Type]) -> InferResult {
    arity(ts, 2)?;
    let dtype = same_dtype(ts)?;
    need_float(&ts[0])?;
    let (p, x, dy) = match op {
        Op::MaxPool2dGrad(p) => (p, &ts[0], &ts[1]),
        Op::AvgPool2dGrad(p) => (p, &ts[1], &ts[0]),
        _ => return Err(InferError::Invalid("not a pool's gradient".into())),
    };
    let y = pool_shape(p, rank4(x, "the input (NCHW)")?)?;
    if !fits(&y, dy.shape.dims()) {
        return Err(InferError::Shape(format!(
            "the output's gradient {} does not fit the pool's output {y}",
            dy.shape
        )));
    }
    Ok(Type {
        dtype,
        shape: x.shape.clone(),
    })
}

pub(crate) fn pad(p: &Pad, ts: &[Type]) -> InferResult {
    arity(ts, 1)?;
    let n = ts[0].ndim();
    if p.widths.len() != n {
        return Err(InferError::Invalid(format!(
            "{} (before, after) pairs for {n} axes; give one per axis",
            p.widths.len()
        )));
    }
    need_float(&ts[0])?;
    let mut dims = Vec::with_capacity(n);
    for (d, &(b, a)) in ts[0].shape.dims().iter().zip(&p.widths) {
        let Some(grown) = b
            .checked_add(a)
            .and_then(|w| d.map_or(Some(0), |d| d.checked_add(w)))
        else {
            return Err(InferError::Shape(format!(
                "padding {b} + {a} cells makes a dim larger than a usize counts"
            )));
        };
        dims.push(d.map(|_| grown));
    }
    Ok(Type {
        dtype: ts[0].dtype,
        shape: Shape::new(dims),
    })
}
