//! Type and shape inference: one match over [`Op`].

use crate::dtype::DType;
use crate::error::{Error, Location};
use crate::graph::Type;
use crate::graph::op::{Binary, Op, Unary};
use crate::graph::window;
use crate::shape::{self, Dim, Shape};

/// Why inference rejected an op's operands.
#[derive(Debug)]
pub enum InferError {
    /// Shapes do not fit.
    Shape(String),
    /// Dtypes do not fit.
    DType(String),
    /// An axis out of range.
    Axis(isize, usize),
    /// Another invalid argument.
    Invalid(String),
}

impl InferError {
    pub(crate) fn into_error(self, op: &Op, inputs: &[Type], loc: Location) -> Error {
        let op = op.name();
        let shapes = inputs
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            InferError::Shape(d) => Error::Shape {
                op,
                detail: format!("{d}; operands {shapes}"),
                loc,
            },
            InferError::DType(d) => Error::DType {
                op,
                detail: format!("{d}; operands {shapes}"),
                loc,
            },
            InferError::Axis(axis, ndim) => Error::Axis {
                op,
                axis,
                ndim,
                loc,
            },
            InferError::Invalid(detail) => Error::Invalid { op, detail, loc },
        }
    }
}

pub(crate) type InferResult = Result<Type, InferError>;

pub(crate) fn same_dtype(ts: &[Type]) -> Result<DType, InferError> {
    let d = ts[0].dtype;
    match ts.iter().find(|t| t.dtype != d) {
        Some(t) => Err(InferError::DType(format!(
            "{d} vs {}; cast one operand",
            t.dtype
        ))),
        None => Ok(d),
    }
}

pub(crate) fn need_float(t: &Type) -> Result<(), InferError> {
    if t.dtype.is_float() {
        Ok(())
    } else {
        Err(InferError::DType(format!(
            "needs a float operand, got {}",
            t.dtype
        )))
    }
}

fn need_indices(t: &Type) -> Result<(), InferError> {
    if t.dtype == DType::I64 {
        Ok(())
    } else {
        Err(InferError::DType(format!(
            "indices must be i64, got {}",
            t.dtype
        )))
    }
}

/// The shape of `take` along `axis`: the indices' shape in place of that axis.
fn taken_shape(x: &Shape, idx: &Shape, axis: usize) -> Shape {
    let d = x.dims();
    Shape::new([&d[..axis], idx.dims(), &d[axis + 1..]].concat())
}

pub(crate) fn arity(ts: &[Type], n: usize) -> Result<(), InferError> {
    if ts.len() == n {
        Ok(())
    } else {
        Err(InferError::Invalid(format!(
            "takes {n} operands, got {}",
            ts.len()
        )))
    }
}

fn bcast(a: &Shape, b: &Shape) -> Result<Shape, InferError> {
    shape::broadcast(a, b).map_err(InferError::Shape)
}

fn reduce_shape(s: &Shape, axes: &[usize], keepdims: bool) -> Shape {
    let mut out = Vec::new();
    for (i, d) in s.dims().iter().enumerate() {
        if axes.contains(&i) {
            if keepdims {
                out.push(Some(1));
            }
        } else {
            out.push(*d);
        }
    }
    Shape::new(out)
}

fn check_axes(axes: &[usize], ndim: usize) -> Result<(), InferError> {
    match axes.iter().find(|a| **a >= ndim) {
        Some(a) => Err(InferError::Axis(*a as isize, ndim)),
        None => Ok(()),
    }
}

/// The type of `op` applied to operands of types `ts`.
pub fn infer(op: &Op, ts: &[Type]) -> InferResult {
    match op {
        Op::Input { .. } | Op::Constant(_) | Op::Shared(_) => Err(InferError::Invalid(
            "leaf nodes are created by the graph".into(),
        )),
        Op::Unary(u) => {
            arity(ts, 1)?;
            match u {
                Unary::Not if ts[0].dtype != DType::Bool => Err(InferError::DType(format!(
                    "needs a bool operand, got {}",
                    ts[0].dtype
                ))),
                Unary::Not => Ok(ts[0].clone()),
                _ => need_float(&ts[0]).map(|_| ts[0].clone()),
            }
        }
        Op::Binary(b) => {
            arity(ts, 2)?;
            let dtype = same_dtype(ts)?;
            match b {
                Binary::And | Binary::Or if dtype != DType::Bool => {
                    return Err(InferError::DType(format!(
                        "needs bool operands, got {dtype}"
                    )));
                }
                Binary::And | Binary::Or => {}
                _ => need_float(&ts[0])?,
            }
            Ok(Type {
                dtype,
                shape: bcast(&ts[0].shape, &ts[1].shape)?,
            })
        }
        Op::Compare(_) => {
            arity(ts, 2)?;
            same_dtype(ts)?;
            Ok(Type {
                dtype: DType::Bool,
                shape: bcast(&ts[0].shape, &ts[1].shape)?,
            })
        }
        Op::Where => {
            arity(ts, 3)?;
            if ts[0].dtype != DType::Bool {
                return Err(InferError::DType(format!(
                    "condition must be bool, got {}",
                    ts[0].dtype
                )));
            }
            let dtype = same_dtype(&ts[1..])?;
            let s = bcast(&bcast(&ts[0].shape, &ts[1].shape)?, &ts[2].shape)?;
            Ok(Type { dtype, shape: s })
        }
        Op::Cast(d) => {
            arity(ts, 1)?;
            Ok(Type {
                dtype: *d,
                shape: ts[0].shape.clone(),
            })
        }
        Op::Reduce { axes, keepdims, .. } => {
            arity(ts, 1)?;
            need_float(&ts[0])?;
            check_axes(axes, ts[0].ndim())?;
            Ok(Type {
                dtype: ts[0].dtype,
                shape: reduce_shape(&ts[0].shape, axes, *keepdims),
            })
        }
        Op::Argmax { axis, keepdims } => {
            arity(ts, 1)?;
            check_axes(&[*axis], ts[0].ndim())?;
            Ok(Type {
                dtype: DType::I64,
                shape: reduce_shape(&ts[0].shape, &[*axis], *keepdims),
            })
        }
        Op::MatMul => {
            arity(ts, 2)?;
            let dtype = same_dtype(ts)?;
            need_float(&ts[0])?;
            let (a, b) = (&ts[0].shape.dims(), &ts[1].shape.dims());
            let inner = |p: Dim, q: Dim| match (p, q) {
                (Some(p), Some(q)) if p != q => {
                    Err(InferError::Shape(format!("inner dims differ ({p} vs {q})")))
                }
                _ => Ok(()),
            };
            let shape = match (a.len(), b.len()) {
                (2, 2) => {
                    inner(a[1], b[0])?;
                    vec![a[0], b[1]]
                }
                (3, 3) => {
                    inner(a[2], b[1])?;
                    if let (Some(p), Some(q)) = (a[0], b[0])
                        && p != q
                    {
                        return Err(InferError::Shape(format!("batch dims differ ({p} vs {q})")));
                    }
                    vec![a[0].or(b[0]), a[1], b[2]]
                }
                // A batch of sequences by one matrix: [N, T, D] @ [D, H] -> [N, T, H].
                (3, 2) => {
                    inner(a[2], b[0])?;
                    vec![a[0], a[1], b[1]]
                }
                _ => {
                    return Err(InferError::Shape(
                        "needs two 2-d operands, two 3-d (batched) ones, or a 3-d one by a \
                         matrix; use dot for vectors"
                            .into(),
                    ));
                }
            };
            Ok(Type {
                dtype,
                shape: Shape::new(shape),
            })
        }
        Op::Transpose(perm) => {
            arity(ts, 1)?;
            let n = ts[0].ndim();
            let mut seen = vec![false; n];
            for &p in perm {
                if p >= n || std::mem::replace(&mut seen[p], true) {
                    return Err(InferError::Invalid(format!(
                        "{perm:?} is not a permutation of {n} axes"
                    )));
                }
            }
            if perm.len() != n {
                return Err(InferError::Invalid(format!(
                    "{perm:?} is not a permutation of {n} axes"
                )));
            }
            Ok(Type {
                dtype: ts[0].dtype,
                shape: Shape::new(perm.iter().map(|&p| ts[0].shape.dims()[p]).collect()),
            })
        }
        Op::Reshape(target) => {
            arity(ts, 1)?;
            if target.iter().filter(|d| **d == -1).count() > 1 || target.iter().any(|d| *d < -1) {
                return Err(InferError::Invalid(format!(
                    "target {target:?} may hold one -1 and sizes >= 0"
                )));
            }
            let too_many = || {
                InferError::Shape(format!(
                    "target {target:?} has more elements than a usize counts"
                ))
            };
            let known: usize = target
                .iter()
                .filter(|d| **d >= 0)
                .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
                .ok_or_else(too_many)?;
            let out: Vec<Dim> = match ts[0].shape.size() {
                Some(n) => {
                    let fill = if target.contains(&-1) {
                        if known == 0 || n % known != 0 {
                            return Err(InferError::Shape(format!(
                                "cannot reshape {} to {target:?}",
                                ts[0].shape
                            )));
                        }
                        n / known
                    } else {
                        if known != n {
                            return Err(InferError::Shape(format!(
                                "cannot reshape {} to {target:?}",
                                ts[0].shape
                            )));
                        }
                        0
                    };
                    target
                        .iter()
                        .map(|&d| Some(if d == -1 { fill } else { d as usize }))
                        .collect()
                }
                None => {
                    if !target.contains(&-1) {
                        return Err(InferError::Shape(format!(
                            "{} has run-time dims: give -1 for the dim to infer",
                            ts[0].shape
                        )));
                    }
                    target
                        .iter()
                        .map(|&d| (d >= 0).then_some(d as usize))
                        .collect()
                }
            };
            Ok(Type {
                dtype: ts[0].dtype,
                shape: Shape::new(out),
            })
        }
        Op::ReshapeLike => {
            arity(ts, 2)?;
            if let (Some(p), Some(q)) = (ts[0].shape.size(), ts[1].shape.size())
                && p != q
            {
                return Err(InferError::Shape(format!(
                    "{} has {p} elements, {} has {q}",
                    ts[0].shape, ts[1].shape
                )));
            }
            Ok(Type {
                dtype: ts[0].dtype,
                shape: ts[1].shape.clone(),
            })
        }
        Op::BroadcastTo(target) => {
            arity(ts, 1)?;
            let t = Shape::known(target);
            let b = bcast(&ts[0].shape, &t)?;
            if b != t {
                return Err(InferError::Shape(format!(
                    "{} does not broadcast to {t}",
                    ts[0].shape
                )));
            }
            Ok(Type {
                dtype: ts[0].dtype,
                shape: t,
            })
        }
        Op::BroadcastLike => {
            arity(ts, 2)?;
            let b = bcast(&ts[0].shape, &ts[1].shape)?;
            if b.ndim() != ts[1].ndim() {
                return Err(InferError::Shape(format!(
                    "{} does not broadcast to {}",
                    ts[0].shape, ts[1].shape
                )));
            }
            Ok(Type {
                dtype: ts[0].dtype,
                shape: b,
            })
        }
        Op::ExpandDims(axes) => {
            arity(ts, 1)?;
            let n = ts[0].ndim() + axes.len();
            check_axes(axes, n)?;
            let mut src = ts[0].shape.dims().iter();
            let shape = (0..n)
                .map(|i| {
                    if axes.contains(&i) {
                        Some(1)
                    } else {
                        src.next().copied().flatten()
                    }
                })
                .collect();
            Ok(Type {
                dtype: ts[0].dtype,
                shape: Shape::new(shape),
            })
        }
        Op::Squeeze(axes) => {
            arity(ts, 1)?;
            check_axes(axes, ts[0].ndim())?;
            if let Some(a) = axes.iter().find(|a| ts[0].shape.dims()[**a] != Some(1)) {
                return Err(InferError::Shape(format!(
                    "axis {a} of {} is not 1",
                    ts[0].shape
                )));
            }
            Ok(Type {
                dtype: ts[0].dtype,
                shape: reduce_shape(&ts[0].shape, axes, false),
            })
        }
        Op::Concat(axis) => {
            if ts.is_empty() {
                return Err(InferError::Invalid("needs at least one operand".into()));
            }
            let dtype = same_dtype(ts)?;
            let n = ts[0].ndim();
            check_axes(&[*axis], n)?;
            let mut out = ts[0].shape.dims().to_vec();
            for t in &ts[1..] {
                if t.ndim() != n {
                    return Err(InferError::Shape("operands differ in rank".into()));
                }
                for (i, (o, d)) in out.iter_mut().zip(t.shape.dims()).enumerate() {
                    if i == *axis {
                        *o = o.zip(*d).map(|(p, q)| p + q);
                    } else {
                        match (*o, *d) {
                            (Some(p), Some(q)) if p != q => {
                                return Err(InferError::Shape(format!(
                                    "dim {i} differs ({p} vs {q})"
                                )));
                            }
                            (None, Some(q)) => *o = Some(q),
                            _ => {}
                        }
                    }
                }
            }
            Ok(Type {
                dtype,
                shape: Shape::new(out),
            })
        }
        Op::Slice {
            axis,
            start,
            end,
            step,
        } => {
            arity(ts, 1)?;
            check_axes(&[*axis], ts[0].ndim())?;
            if *step == 0 {
                return Err(InferError::Invalid("slice step must be positive".into()));
            }
            let mut shape = ts[0].shape.clone();
            shape.dims_mut()[*axis] =
                shape.dims()[*axis].map(|n| shape::slice_len(n, *start, *end, *step));
            Ok(Type {
                dtype: ts[0].dtype,
                shape,
            })
        }
        Op::ConcatPart { axis, part } => {
            let Some(x) = ts.get(part + 1) else {
                return Err(InferError::Invalid(format!(
                    "part {part} of a concat of {} operands",
                    ts.len().saturating_sub(1)
                )));
            };
            check_axes(&[*axis], ts[0].ndim())?;
            if ts.iter().any(|t| t.ndim() != ts[0].ndim()) {
                return Err(InferError::Shape("operands differ in rank".into()));
            }
            let mut shape = ts[0].shape.clone();
            shape.dims_mut()[*axis] = x.shape.dims()[*axis];
            Ok(Type {
                dtype: ts[0].dtype,
                shape,
            })
        }
        Op::SliceGrad { .. } => {
            arity(ts, 2)?;
            Ok(Type {
                dtype: ts[0].dtype,
                shape: ts[1].shape.clone(),
            })
        }
        Op::Take { axis } => {
            arity(ts, 2)?;
            need_indices(&ts[1])?;
            if ts[0].ndim() == 0 {
                return Err(InferError::Shape("cannot take from a scalar".into()));
            }
            check_axes(&[*axis], ts[0].ndim())?;
            Ok(Type {
                dtype: ts[0].dtype,
                shape: taken_shape(&ts[0].shape, &ts[1].shape, *axis),
            })
        }
        Op::ScatterAdd { axis } => {
            arity(ts, 3)?;
            need_indices(&ts[1])?;
            need_float(&ts[0])?;
            same_dtype(&[ts[0].clone(), ts[2].clone()])?;
            if ts[2].ndim() == 0 {
                return Err(InferError::Shape(
                    "cannot add into a scalar at indices".into(),
                ));
            }
            check_axes(&[*axis], ts[2].ndim())?;
            let want = taken_shape(&ts[2].shape, &ts[1].shape, *axis);
            let fits = ts[0].ndim() == want.ndim()
                && ts[0]
                    .shape
                    .dims()
                    .iter()
                    .zip(want.dims())
                    .all(|(a, b)| a.is_none() || b.is_none() || a == b);
            if !fits {
                return Err(InferError::Shape(format!(
                    "the updates must have shape {want} (the target's shape with axis {axis} \
                     replaced by the indices' shape), got {}",
                    ts[0].shape
                )));
            }
            Ok(Type {
                dtype: ts[0].dtype,
                shape: ts[2].shape.clone(),
            })
        }
        Op::Cumsum { axis, .. } => {
            arity(ts, 1)?;
            need_float(&ts[0])?;
            check_axes(&[*axis], ts[0].ndim())?;
            Ok(ts[0].clone())
        }
        Op::Conv2d(c) => window::conv2d(c, ts),
        Op::Conv2dInputGrad(c) => window::conv2d_grad(c, ts, 0, "the input"),
        Op::Conv2dFilterGrad(c) => window::conv2d_grad(c, ts, 1, "the filters"),
        Op::MaxPool2d(p) | Op::AvgPool2d(p) => window::pool2d(p, ts),
        Op::MaxPool2dGrad(_) | Op::AvgPool2dGrad(_) => window::pool2d_grad(op, ts),
        Op::Pad(p) => window::pad(p, ts),
        Op::OneHot { depth, dtype } => {
            arity(ts, 1)?;
            if ts[0].dtype != DType::I64 {
                return Err(InferError::DType(format!(
                    "labels must be i64, got {}",
                    ts[0].dtype
                )));
            }
            let mut shape = ts[0].shape.dims().to_vec();
            shape.push(Some(*depth));
            Ok(Type {
                dtype: *dtype,
                shape: Shape::new(shape),
            })
        }
        Op::Softmax(axis) | Op::LogSoftmax(axis) => {
            arity(ts, 1)?;
            need_float(&ts[0])?;
            check_axes(&[*axis], ts[0].ndim())?;
            Ok(ts[0].clone())
        }
        Op::StopGradient => {
            arity(ts, 1)?;
            Ok(ts[0].clone())
        }
        Op::DimSize { axes, dtype } => {
            arity(ts, 1)?;
            check_axes(axes, ts[0].ndim())?;
            Ok(Type {
                dtype: *dtype,
                shape: Shape::scalar(),
            })
        }
        Op::Random { dist, dtype, .. } => {
            let params = dist.params().len();
            arity(ts, 1 + params.max(1))?;
            if ts[0].dtype != DType::I64 || ts[0].shape != Shape::known(&[2]) {
                return Err(InferError::DType(format!(
                    "the stream state must be i64[2], got {}",
                    ts[0]
                )));
            }
            if !dtype.is_float() {
                return Err(InferError::DType(format!(
                    "draws must be float, got {dtype}"
                )));
            }
            if let Some(t) = ts[1..].iter().find(|t| params > 0 && t.dtype != *dtype) {
                return Err(InferError::DType(format!(
                    "the parameters of {dtype} draws must be {dtype}, got {t}"
                )));
            }
            let shape = ts[2..]
                .iter()
                .try_fold(ts[1].shape.clone(), |s, t| bcast(&s, &t.shape))?;
            Ok(Type {
                dtype: *dtype,
                shape,
            })
        }
        Op::Custom(c) => c.0.infer(ts).map_err(InferError::Invalid),
        Op::StepValue { .. } => Err(InferError::Invalid(
            "step values are made by the loop that reads them".into(),
        )),
        Op::Loop { body, result } => {
            let body = body.body();
            arity(ts, body.input_types.len())?;
            for (k, (t, want)) in ts.iter().zip(&body.input_types).enumerate() {
                let fits = t.dtype == want.dtype
                    && t.ndim() == want.ndim()
                    && t.shape
                        .dims()
                        .iter()
                        .zip(want.shape.dims())
                        .all(|(a, b)| a.is_none() || b.is_none() || a == b);
                if !fits {
                    return Err(InferError::Invalid(format!(
                        "loop input {k} has type {t}, the loop was built for {want}"
                    )));
                }
            }
            body.result_type(*result)
                .ok_or_else(|| InferError::Invalid(format!("the loop has no result {result:?}")))
        }
    }
}
