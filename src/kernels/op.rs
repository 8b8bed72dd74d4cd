//! One user op on concrete operands: the dispatch to the kernels of each op family.

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use super::conv;
use super::elementwise::{bcast, binary, compare, select, unary, zip2};
use super::index::{
    concat, cumsum, indices, out_of_range, reshape, reshape_dims, scatter_add, slice_info, take,
};
use super::linalg::matmul;
use super::reduce::{argmax, log_softmax, reduce, softmax};
use super::{Exec, KernelResult, pool};
use crate::dtype::DType;
use crate::graph::Type;
use crate::graph::op::{Binary, Op, Unary};
use crate::shape;
use crate::tensor::Tensor;

/// Refuse to broadcast a dim that is 1 at run time but not declared 1 (see
/// [`shape::check_runtime_broadcast`]); the kernels below broadcast any concrete 1.
fn check_broadcast(op: &Op, x: &[&Tensor], types: &[&Type]) -> Result<(), String> {
    let operands: &[usize] = match op {
        Op::Binary(_) | Op::Compare(_) => &[0, 1],
        Op::Where => &[0, 1, 2],
        Op::Random { dist, .. } if dist.params().len() == 2 => &[1, 2],
        Op::BroadcastTo(_) | Op::BroadcastLike => &[0],
        _ => return Ok(()),
    };
    let result = match op {
        Op::BroadcastTo(s) => s.clone(),
        Op::BroadcastLike => x[1].shape().to_vec(),
        _ => operands.iter().try_fold(Vec::new(), |acc, &k| {
            shape::broadcast_concrete(&acc, x[k].shape())
        })?,
    };
    for &k in operands {
        shape::check_runtime_broadcast(&types[k].shape, x[k].shape(), &result)?;
    }
    Ok(())
}

/// Run one op on concrete operands; `types` are the operands' static types, `ty` the node's
/// (for dtypes of results). A run-time shape mismatch is an `Err` describing it.
pub(crate) fn eval(op: &Op, x: &[&Tensor], types: &[&Type], ty: &Type, exec: Exec) -> KernelResult {
    check_broadcast(op, x, types)?;
    Ok(match op {
        Op::Input { .. } | Op::Constant(_) | Op::Shared(_) | Op::StepValue { .. } => {
            return Err("leaf nodes have no kernel".into());
        }
        Op::Loop { .. } => return Err("a loop runs in the runtime, not in a kernel".into()),
        Op::Unary(Unary::Not) => Tensor::Bool(x[0].as_bool().ok_or("not needs bool")?.mapv(|v| !v)),
        Op::Unary(u) => float!(x[0], a => unary(*u, a, exec)),
        Op::Binary(b @ (Binary::And | Binary::Or)) => {
            let (p, q) = (
                x[0].as_bool().ok_or("needs bool")?,
                x[1].as_bool().ok_or("needs bool")?,
            );
            Tensor::Bool(if *b == Binary::And {
                zip2(p, q, exec, |a, b| a && b)?
            } else {
                zip2(p, q, exec, |a, b| a || b)?
            })
        }
        Op::Binary(b) => float2!(x[0], x[1], p, q => binary(*b, p, q, exec)?),
        Op::Compare(c) => Tensor::Bool(match (x[0], x[1]) {
            (Tensor::F32(p), Tensor::F32(q)) => compare(*c, p, q, exec)?,
            (Tensor::F64(p), Tensor::F64(q)) => compare(*c, p, q, exec)?,
            (Tensor::I64(p), Tensor::I64(q)) => compare(*c, p, q, exec)?,
            (Tensor::Bool(p), Tensor::Bool(q)) => compare(*c, p, q, exec)?,
            (p, q) => return Err(format!("dtype mismatch: {} vs {}", p.dtype(), q.dtype())),
        }),
        Op::Where => {
            let c = x[0].as_bool().ok_or("condition must be bool")?;
            match (x[1], x[2]) {
                (Tensor::F32(a), Tensor::F32(b)) => Tensor::F32(select(c, a, b)?),
                (Tensor::F64(a), Tensor::F64(b)) => Tensor::F64(select(c, a, b)?),
                (Tensor::I64(a), Tensor::I64(b)) => Tensor::I64(select(c, a, b)?),
                (Tensor::Bool(a), Tensor::Bool(b)) => Tensor::Bool(select(c, a, b)?),
                (p, q) => return Err(format!("dtype mismatch: {} vs {}", p.dtype(), q.dtype())),
            }
        }
        Op::Cast(d) => x[0].cast(*d),
        Op::Reduce { op, axes, keepdims } => float!(x[0], a => reduce(*op, a, axes, *keepdims)?),
        Op::Argmax { axis, keepdims } => Tensor::I64(match x[0] {
            Tensor::F32(a) => argmax(a, *axis, *keepdims)?,
            Tensor::F64(a) => argmax(a, *axis, *keepdims)?,
            Tensor::I64(a) => argmax(&a.mapv(|v| v as f64), *axis, *keepdims)?,
            Tensor::Bool(a) => argmax(&a.mapv(|v| v as u8 as f64), *axis, *keepdims)?,
        }),
        Op::MatMul => float2!(x[0], x[1], a, b => matmul(a, b, exec)?),
        Op::Transpose(perm) => {
            any!(x[0], a => a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned())
        }
        Op::Reshape(target) => {
            let dims = reshape_dims(target, x[0].len(), x[0].shape())?;
            any!(x[0], a => reshape(a, &dims)?)
        }
        Op::ReshapeLike => {
            let dims = x[1].shape().to_vec();
            if dims.iter().product::<usize>() != x[0].len() {
                return Err(format!(
                    "cannot reshape {} to {}",
                    shape::show(x[0].shape()),
                    shape::show(&dims)
                ));
            }
            any!(x[0], a => reshape(a, &dims)?)
        }
        Op::BroadcastTo(s) => any!(x[0], a => bcast(a, s)?.to_owned()),
        Op::BroadcastLike => {
            let s = x[1].shape().to_vec();
            any!(x[0], a => bcast(a, &s)?.to_owned())
        }
        Op::ExpandDims(axes) => any!(x[0], a => {
            let mut out = a.clone();
            for &ax in axes {
                out.insert_axis_inplace(Axis(ax));
            }
            out
        }),
        Op::Squeeze(axes) => any!(x[0], a => {
            let mut out = a.view();
            for &ax in axes.iter().rev() {
                if out.shape()[ax] != 1 {
                    return Err(format!("axis {ax} of {} is not 1", shape::show(a.shape())));
                }
                out.index_axis_inplace(Axis(ax), 0);
            }
            out.to_owned()
        }),
        Op::Concat(axis) => concat(x, *axis)?,
        Op::ConcatPart { axis, part } => {
            // Operand `part` of the concat is input `part + 1`; those before it come first.
            let start: usize = x[1..=*part].iter().map(|t| t.shape()[*axis]).sum();
            let len = x[part + 1].shape()[*axis];
            any!(x[0], dy => {
                if start + len > dy.shape()[*axis] {
                    return Err(format!(
                        "part {part} ({start}..{}) of a concat gradient {} long",
                        start + len,
                        dy.shape()[*axis]
                    ));
                }
                dy.slice_axis(Axis(*axis), Slice::from(start..start + len)).to_owned()
            })
        }
        Op::Slice {
            axis,
            start,
            end,
            step,
        } => any!(x[0], a => {
            let s = slice_info(a.shape()[*axis], *start, *end, *step);
            a.slice_axis(Axis(*axis), s).to_owned()
        }),
        Op::SliceGrad {
            axis,
            start,
            end,
            step,
        } => float!(x[0], dy => {
            let like = x[1].shape();
            let mut out = ArrayD::zeros(IxDyn(like));
            let s = slice_info(like[*axis], *start, *end, *step);
            let mut dst = out.slice_axis_mut(Axis(*axis), s);
            if dst.shape() != dy.shape() {
                return Err(format!("slice gradient {} does not fit {}", shape::show(dy.shape()), shape::show(dst.shape())));
            }
            dst.assign(dy);
            out
        }),
        Op::Take { axis } => {
            let idx = indices(x[1])?;
            any!(x[0], a => take(a, idx, *axis, exec)?)
        }
        Op::ScatterAdd { axis } => {
            let idx = indices(x[1])?;
            float!(x[0], u => scatter_add(u, idx, x[2].shape(), *axis)?)
        }
        Op::Cumsum { axis, reverse } => float!(x[0], a => cumsum(a, *axis, *reverse)),
        Op::Conv2d(_)
        | Op::Conv2dInputGrad(_)
        | Op::Conv2dFilterGrad(_)
        | Op::MaxPool2d(_)
        | Op::MaxPool2dGrad(_)
        | Op::AvgPool2d(_)
        | Op::AvgPool2dGrad(_) => conv::eval(op, x, exec)?,
        Op::Pad(p) => float!(x[0], a => pool::pad(a, &p.widths, p.value())?),
        Op::OneHot { depth, dtype } => {
            let idx = indices(x[0])?;
            let mut dims = idx.shape().to_vec();
            dims.push(*depth);
            let mut out = ArrayD::<f64>::zeros(IxDyn(&dims));
            let flat = out.as_slice_mut().ok_or("one_hot output is contiguous")?;
            if let Some(i) = out_of_range(idx, *depth) {
                return Err(format!("label {i} out of range for {depth} classes"));
            }
            for (r, &i) in idx.iter().enumerate() {
                flat[r * depth + i as usize] = 1.0;
            }
            Tensor::F64(out).cast(*dtype)
        }
        Op::Softmax(axis) => float!(x[0], a => softmax(a, *axis)),
        Op::LogSoftmax(axis) => float!(x[0], a => log_softmax(a, *axis)),
        Op::StopGradient => x[0].clone(),
        Op::DimSize { axes, dtype } => {
            let n: usize = axes.iter().map(|&a| x[0].shape()[a]).product();
            Tensor::scalar(n as f64, *dtype)
        }
        Op::Random { dist, dtype, key } => {
            let (seed, counter) = super::random::stream_state(x[0])?;
            let stream = (seed, counter, *key);
            match dtype {
                DType::F32 => Tensor::F32(super::random::draw_node(*dist, stream, &x[1..], exec)?),
                _ => Tensor::F64(super::random::draw_node(*dist, stream, &x[1..], exec)?),
            }
        }
        Op::Custom(c) => {
            let out = c.0.forward(x)?;
            if out.dtype() != ty.dtype || !ty.shape.matches(out.shape()) {
                return Err(format!(
                    "custom op returned {}{}, declared {ty}",
                    out.dtype(),
                    shape::show(out.shape())
                ));
            }
            out
        }
    })
}
