//! Kernels: one function per op over concrete tensors, written once for `f32` and `f64`.
//!
//! `fast` selects the production paths (threaded GEMM, rayon over large elementwise loops);
//! with `fast = false` the same ops run as plain, obviously correct loops for the reference
//! evaluator.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn, Slice, Zip};

use crate::dtype::{DType, Float};
use crate::exec::fused::{FusedKernel, Src};
use crate::exec::gemm;
use crate::graph::Type;
use crate::graph::infer::slice_bounds;
use crate::graph::op::{Binary, Cmp, Op, Reduce, Unary};
use crate::shape;
use crate::tensor::Tensor;

/// Below this many elements an elementwise kernel runs on one thread.
pub const PAR_MIN: usize = 1 << 15;

type K = Result<Tensor, String>;

/// Apply `f` to a float tensor, generic over its element type.
macro_rules! float {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::F64($a) => Tensor::F64($body),
            other => return Err(format!("expected a float tensor, got {}", other.dtype())),
        }
    };
}

/// Apply a function generic over the element type to a tensor of any dtype.
macro_rules! any {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => Tensor::F32($body),
            Tensor::F64($a) => Tensor::F64($body),
            Tensor::I64($a) => Tensor::I64($body),
            Tensor::Bool($a) => Tensor::Bool($body),
        }
    };
}

/// Apply a generic function to two float tensors of one dtype.
macro_rules! float2 {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr) => {
        match ($x, $y) {
            (Tensor::F32($a), Tensor::F32($b)) => Tensor::F32($body),
            (Tensor::F64($a), Tensor::F64($b)) => Tensor::F64($body),
            (p, q) => return Err(format!("dtype mismatch: {} vs {}", p.dtype(), q.dtype())),
        }
    };
}

fn map<T: Float>(a: &ArrayD<T>, fast: bool, f: impl Fn(T) -> T + Sync + Send) -> ArrayD<T> {
    if fast && a.len() >= PAR_MIN {
        Zip::from(a).par_map_collect(|&x| f(x))
    } else {
        a.mapv(f)
    }
}

fn zip2<A, B, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    fast: bool,
    f: impl Fn(A, B) -> C + Sync + Send,
) -> Result<ArrayD<C>, String>
where
    A: Copy + Send + Sync,
    B: Copy + Send + Sync,
    C: Send + Sync,
{
    let shape = shape::broadcast_concrete(a.shape(), b.shape())?;
    let (av, bv) = (bcast(a, &shape)?, bcast(b, &shape)?);
    let z = Zip::from(&av).and(&bv);
    Ok(if fast && av.len() >= PAR_MIN {
        z.par_map_collect(|&x, &y| f(x, y))
    } else {
        z.map_collect(|&x, &y| f(x, y))
    })
}

fn bcast<'a, A>(a: &'a ArrayD<A>, shape: &[usize]) -> Result<ArrayViewD<'a, A>, String> {
    a.broadcast(IxDyn(shape)).ok_or_else(|| {
        format!(
            "{} does not broadcast to {}",
            shape::show(a.shape()),
            shape::show(shape)
        )
    })
}

pub(crate) fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

pub(crate) fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

pub(crate) fn sign<T: Float>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        -T::one()
    } else {
        x * T::zero()
    }
}

fn unary<T: Float>(u: Unary, a: &ArrayD<T>, fast: bool) -> ArrayD<T> {
    match u {
        Unary::Neg => map(a, fast, |x| -x),
        Unary::Exp => map(a, fast, |x| x.exp()),
        Unary::Log => map(a, fast, |x| x.ln()),
        Unary::Log1p => map(a, fast, |x| x.ln_1p()),
        Unary::Expm1 => map(a, fast, |x| x.exp_m1()),
        Unary::Sqrt => map(a, fast, |x| x.sqrt()),
        Unary::Square => map(a, fast, |x| x * x),
        Unary::Abs => map(a, fast, |x| x.abs()),
        Unary::Sign => map(a, fast, sign),
        Unary::Sin => map(a, fast, |x| x.sin()),
        Unary::Cos => map(a, fast, |x| x.cos()),
        Unary::Tanh => map(a, fast, |x| x.tanh()),
        Unary::Sigmoid => map(a, fast, sigmoid),
        Unary::Softplus => map(a, fast, softplus),
        Unary::Relu => map(a, fast, |x| if x > T::zero() { x } else { T::zero() }),
        Unary::Not => unreachable!("not is a bool op, dispatched before"),
    }
}

fn binary<T: Float>(
    b: Binary,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
    fast: bool,
) -> Result<ArrayD<T>, String> {
    match b {
        Binary::Add => zip2(x, y, fast, |p, q| p + q),
        Binary::Sub => zip2(x, y, fast, |p, q| p - q),
        Binary::Mul => zip2(x, y, fast, |p, q| p * q),
        Binary::Div => zip2(x, y, fast, |p, q| p / q),
        Binary::Pow => zip2(x, y, fast, |p, q| p.powf(q)),
        Binary::Maximum => zip2(x, y, fast, |p, q| if p >= q || q.is_nan() { p } else { q }),
        Binary::Minimum => zip2(x, y, fast, |p, q| if p <= q || q.is_nan() { p } else { q }),
        Binary::And | Binary::Or => unreachable!("logical ops are bool ops, dispatched before"),
    }
}

fn compare<A: PartialOrd + Copy + Send + Sync>(
    c: Cmp,
    x: &ArrayD<A>,
    y: &ArrayD<A>,
    fast: bool,
) -> Result<ArrayD<bool>, String> {
    match c {
        Cmp::Lt => zip2(x, y, fast, |p, q| p < q),
        Cmp::Le => zip2(x, y, fast, |p, q| p <= q),
        Cmp::Gt => zip2(x, y, fast, |p, q| p > q),
        Cmp::Ge => zip2(x, y, fast, |p, q| p >= q),
        Cmp::Eq => zip2(x, y, fast, |p, q| p == q),
        Cmp::Ne => zip2(x, y, fast, |p, q| p != q),
    }
}

fn select<T: Copy + Send + Sync>(
    c: &ArrayD<bool>,
    a: &ArrayD<T>,
    b: &ArrayD<T>,
) -> Result<ArrayD<T>, String> {
    let shape =
        shape::broadcast_concrete(&shape::broadcast_concrete(c.shape(), a.shape())?, b.shape())?;
    let (cv, av, bv) = (bcast(c, &shape)?, bcast(a, &shape)?, bcast(b, &shape)?);
    Ok(Zip::from(&cv)
        .and(&av)
        .and(&bv)
        .map_collect(|&c, &a, &b| if c { a } else { b }))
}

fn reduce<T: Float>(
    r: Reduce,
    a: &ArrayD<T>,
    axes: &[usize],
    keepdims: bool,
) -> Result<ArrayD<T>, String> {
    // Reduce the first axis straight from the operand's view: no copy of the input.
    let mut out: Option<ArrayD<T>> = None;
    for &ax in axes.iter().rev() {
        let cur = out.as_ref().map_or_else(|| a.view(), |o| o.view());
        if cur.shape()[ax] == 0 && matches!(r, Reduce::Max | Reduce::Min) {
            return Err(format!("{} over an empty axis {ax}", r.name()));
        }
        out = Some(match r {
            Reduce::Sum => cur.sum_axis(Axis(ax)),
            Reduce::Prod => cur.fold_axis(Axis(ax), T::one(), |&p, &q| p * q),
            Reduce::Max => cur.fold_axis(Axis(ax), T::neg_infinity(), |&p, &q| {
                if q > p || q.is_nan() { q } else { p }
            }),
            Reduce::Min => cur.fold_axis(Axis(ax), T::infinity(), |&p, &q| {
                if q < p || q.is_nan() { q } else { p }
            }),
        });
    }
    let mut out = out.unwrap_or_else(|| a.clone());
    if keepdims {
        for &ax in axes {
            out.insert_axis_inplace(Axis(ax));
        }
    }
    Ok(out)
}

fn argmax<T: Float>(a: &ArrayD<T>, axis: usize, keepdims: bool) -> Result<ArrayD<i64>, String> {
    if a.shape()[axis] == 0 {
        return Err(format!("argmax over an empty axis {axis}"));
    }
    let mut out = a.map_axis(Axis(axis), |lane| {
        let mut best = 0;
        for (i, &v) in lane.iter().enumerate() {
            if v > lane[best] {
                best = i;
            }
        }
        best as i64
    });
    if keepdims {
        out.insert_axis_inplace(Axis(axis));
    }
    Ok(out)
}

fn matmul<T: Float>(a: &ArrayD<T>, b: &ArrayD<T>, fast: bool) -> Result<ArrayD<T>, String> {
    let mm = |a: ArrayViewD<T>, b: ArrayViewD<T>| -> Result<ndarray::Array2<T>, String> {
        let a = a
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| e.to_string())?;
        let b = b
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| e.to_string())?;
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        if b.nrows() != k {
            return Err(format!(
                "inner dims differ: {} vs {}",
                shape::show(a.shape()),
                shape::show(b.shape())
            ));
        }
        if fast {
            Ok(a.dot(&b))
        } else {
            // The reference: the textbook triple loop, accumulated in f64.
            Ok(ndarray::Array2::from_shape_fn((m, n), |(i, j)| {
                T::from_f((0..k).map(|p| a[[i, p]].to_f() * b[[p, j]].to_f()).sum())
            }))
        }
    };
    match a.ndim() {
        2 => Ok(mm(a.view(), b.view())?.into_dyn()),
        _ => {
            let batch = a.shape()[0];
            if b.shape()[0] != batch {
                return Err(format!(
                    "batch dims differ: {} vs {}",
                    shape::show(a.shape()),
                    shape::show(b.shape())
                ));
            }
            let mats = (0..batch)
                .map(|i| mm(a.index_axis(Axis(0), i), b.index_axis(Axis(0), i)))
                .collect::<Result<Vec<_>, _>>()?;
            let views: Vec<_> = mats.iter().map(|m| m.view()).collect();
            let (m, n) = (a.shape()[1], b.shape()[2]);
            if views.is_empty() {
                return Ok(ArrayD::zeros(IxDyn(&[0, m, n])));
            }
            ndarray::stack(Axis(0), &views)
                .map(|s| s.into_dyn())
                .map_err(|e| e.to_string())
        }
    }
}

fn softmax<T: Float>(a: &ArrayD<T>, axis: usize, log: bool) -> ArrayD<T> {
    let mut out = a.to_owned();
    for mut lane in out.lanes_mut(Axis(axis)) {
        let m = lane.fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
        let m = if m.is_finite() { m } else { T::zero() };
        let s: T = lane.iter().map(|&v| (v - m).exp()).sum();
        if log {
            let ls = s.ln() + m;
            lane.mapv_inplace(|v| v - ls);
        } else {
            lane.mapv_inplace(|v| (v - m).exp() / s);
        }
    }
    out
}

/// Resolve a reshape target (with at most one `-1`) against a concrete size.
fn reshape_dims(target: &[isize], size: usize, from: &[usize]) -> Result<Vec<usize>, String> {
    let known: usize = target
        .iter()
        .filter(|d| **d >= 0)
        .map(|d| *d as usize)
        .product();
    let bad = || format!("cannot reshape {} to {target:?}", shape::show(from));
    target
        .iter()
        .map(|&d| {
            if d >= 0 {
                Ok(d as usize)
            } else if known > 0 && size.is_multiple_of(known) {
                Ok(size / known)
            } else {
                Err(bad())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|dims| {
            if dims.iter().product::<usize>() == size {
                Ok(dims)
            } else {
                Err(bad())
            }
        })
}

fn reshape<A: Clone>(a: &ArrayD<A>, dims: &[usize]) -> Result<ArrayD<A>, String> {
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(dims))
        .map_err(|e| e.to_string())
}

fn indices(t: &Tensor) -> Result<&ArrayD<i64>, String> {
    t.as_i64()
        .ok_or_else(|| format!("indices must be i64, got {}", t.dtype()))
}

fn take<A: Clone>(a: &ArrayD<A>, idx: &ArrayD<i64>) -> Result<ArrayD<A>, String> {
    let n = a.shape()[0];
    let rows: Vec<usize> = idx
        .iter()
        .map(|&i| {
            if i >= 0 && (i as usize) < n {
                Ok(i as usize)
            } else {
                Err(format!("index {i} out of range for {n} rows"))
            }
        })
        .collect::<Result<_, _>>()?;
    let picked = a.select(Axis(0), &rows);
    let mut dims = idx.shape().to_vec();
    dims.extend_from_slice(&a.shape()[1..]);
    reshape(&picked, &dims)
}

fn scatter_add<T: Float>(
    dy: &ArrayD<T>,
    idx: &ArrayD<i64>,
    like: &[usize],
) -> Result<ArrayD<T>, String> {
    let mut out = ArrayD::<T>::zeros(IxDyn(like));
    let row: usize = like[1..].iter().product();
    let src = reshape(dy, &[idx.len(), row])?;
    for (r, &i) in idx.iter().enumerate() {
        if i < 0 || i as usize >= like[0] {
            return Err(format!("index {i} out of range for {} rows", like[0]));
        }
        let mut dst = out.index_axis_mut(Axis(0), i as usize);
        let mut flat = dst
            .view_mut()
            .into_shape_with_order(IxDyn(&[row]))
            .map_err(|e| e.to_string())?;
        Zip::from(&mut flat)
            .and(&src.index_axis(Axis(0), r))
            .for_each(|d, &s| *d = *d + s);
    }
    Ok(out)
}

fn slice_info(n: usize, start: isize, end: Option<isize>, step: usize) -> Slice {
    let (s, e) = slice_bounds(n, start, end);
    Slice::new(s as isize, Some(e.max(s) as isize), step as isize)
}

/// Refuse to broadcast a dim that is 1 at run time but not declared 1 (see
/// [`shape::check_runtime_broadcast`]); the kernels below broadcast any concrete 1.
pub(crate) fn check_broadcast(op: &Op, x: &[&Tensor], types: &[&Type]) -> Result<(), String> {
    if let Op::Fused(k) = op {
        let shapes: Vec<&[usize]> = x.iter().map(|t| t.shape()).collect();
        let declared: Vec<&shape::Shape> = types.iter().map(|t| &t.shape).collect();
        return k.checked_out_shape(&shapes, &declared).map(|_| ());
    }
    let operands: &[usize] = match op {
        Op::Binary(_) | Op::Compare(_) => &[0, 1],
        Op::Where => &[0, 1, 2],
        Op::BroadcastTo(_) | Op::BroadcastLike => &[0],
        Op::Gemm { .. } if x.len() == 3 => &[2],
        _ => return Ok(()),
    };
    let result = match op {
        Op::BroadcastTo(s) => s.clone(),
        Op::BroadcastLike => x[1].shape().to_vec(),
        Op::Gemm { ta, tb, .. } => {
            let (m, _, n) = gemm::dims(x[0].shape(), x[1].shape(), *ta, *tb)?;
            vec![m, n]
        }
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
pub fn eval(op: &Op, x: &[&Tensor], types: &[&Type], ty: &Type, fast: bool) -> K {
    check_broadcast(op, x, types)?;
    Ok(match op {
        Op::Input { .. } | Op::Constant(_) | Op::Shared(_) => {
            return Err("leaf nodes have no kernel".into());
        }
        Op::Unary(Unary::Not) => Tensor::Bool(x[0].as_bool().ok_or("not needs bool")?.mapv(|v| !v)),
        Op::Unary(u) => float!(x[0], a => unary(*u, a, fast)),
        Op::Binary(b @ (Binary::And | Binary::Or)) => {
            let (p, q) = (
                x[0].as_bool().ok_or("needs bool")?,
                x[1].as_bool().ok_or("needs bool")?,
            );
            Tensor::Bool(if *b == Binary::And {
                zip2(p, q, fast, |a, b| a && b)?
            } else {
                zip2(p, q, fast, |a, b| a || b)?
            })
        }
        Op::Binary(b) => float2!(x[0], x[1], p, q => binary(*b, p, q, fast)?),
        Op::Compare(c) => Tensor::Bool(match (x[0], x[1]) {
            (Tensor::F32(p), Tensor::F32(q)) => compare(*c, p, q, fast)?,
            (Tensor::F64(p), Tensor::F64(q)) => compare(*c, p, q, fast)?,
            (Tensor::I64(p), Tensor::I64(q)) => compare(*c, p, q, fast)?,
            (Tensor::Bool(p), Tensor::Bool(q)) => compare(*c, p, q, fast)?,
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
        Op::MatMul => float2!(x[0], x[1], a, b => matmul(a, b, fast)?),
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
        Op::Take => {
            let idx = indices(x[1])?;
            any!(x[0], a => take(a, idx)?)
        }
        Op::ScatterAdd => {
            let idx = indices(x[1])?;
            float!(x[0], dy => scatter_add(dy, idx, x[2].shape())?)
        }
        Op::OneHot { depth, dtype } => {
            let idx = indices(x[0])?;
            let mut dims = idx.shape().to_vec();
            dims.push(*depth);
            let mut out = ArrayD::<f64>::zeros(IxDyn(&dims));
            let flat = out.as_slice_mut().ok_or("one_hot output is contiguous")?;
            for (r, &i) in idx.iter().enumerate() {
                if i < 0 || i as usize >= *depth {
                    return Err(format!("label {i} out of range for {depth} classes"));
                }
                flat[r * depth + i as usize] = 1.0;
            }
            Tensor::F64(out).cast(*dtype)
        }
        Op::Softmax(axis) => float!(x[0], a => softmax(a, *axis, false)),
        Op::LogSoftmax(axis) => float!(x[0], a => softmax(a, *axis, true)),
        Op::StopGradient => x[0].clone(),
        Op::DimSize { axes, dtype } => {
            let n: usize = axes.iter().map(|&a| x[0].shape()[a]).product();
            Tensor::scalar(n as f64, *dtype)
        }
        Op::Random { dist, dtype, key } => {
            let state = x[0].as_i64().ok_or("stream state must be i64")?;
            let st: Vec<i64> = state.iter().copied().collect();
            let (seed, counter) = (st[0] as u64, st[1] as u64);
            let shape = x[1].shape();
            match dtype {
                DType::F32 => {
                    Tensor::F32(crate::random::draw(*dist, seed, counter, *key, shape, fast))
                }
                _ => Tensor::F64(crate::random::draw(*dist, seed, counter, *key, shape, fast)),
            }
        }
        Op::Gemm { ta, tb, alpha } => {
            let alpha = f64::from_bits(*alpha);
            float2!(x[0], x[1], a, b => gemm_alloc(a, b, x.get(2).copied(), (*ta, *tb, alpha), fast)?)
        }
        Op::Fused(k) => match ty.dtype {
            DType::F32 => Tensor::F32(fused_alloc::<f32>(k, x, fast)?),
            _ => Tensor::F64(fused_alloc::<f64>(k, x, fast)?),
        },
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

fn fused_alloc<T: Float>(k: &FusedKernel, x: &[&Tensor], fast: bool) -> Result<ArrayD<T>, String> {
    let shape = k.out_shape(x.iter().map(|t| t.shape()))?;
    let mut out = vec![T::zero(); shape.iter().product()];
    let srcs = x
        .iter()
        .map(|t| Src::of(t))
        .collect::<Result<Vec<Src<T>>, String>>()?;
    k.run(&srcs, &mut out, &shape, fast)?;
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

fn gemm_alloc<T: Float>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    bias: Option<&Tensor>,
    flags: (bool, bool, f64),
    fast: bool,
) -> Result<ArrayD<T>, String> {
    let (m, _, n) = gemm::dims(a.shape(), b.shape(), flags.0, flags.1)?;
    let bias = bias
        .map(|c| T::view(c).ok_or_else(|| format!("bias of dtype {}", c.dtype())))
        .transpose()?;
    let mut out = vec![T::zero(); m * n];
    let threads = if fast {
        rayon::current_num_threads()
    } else {
        1
    };
    let init = bias.as_ref().map_or(gemm::Init::Zero, gemm::Init::Bias);
    gemm::gemm_onto(&a.view(), &b.view(), init, flags, &mut out, threads)?;
    ArrayD::from_shape_vec(IxDyn(&[m, n]), out).map_err(|e| e.to_string())
}

fn concat(x: &[&Tensor], axis: usize) -> K {
    macro_rules! cat {
        ($v:ident) => {{
            let views = x
                .iter()
                .map(|t| match t {
                    Tensor::$v(a) => Ok(a.view()),
                    other => Err(format!("dtype mismatch in concat: {}", other.dtype())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Tensor::$v(
                ndarray::concatenate(Axis(axis), &views)
                    .map_err(|e| format!("cannot concatenate: {e}"))?,
            )
        }};
    }
    Ok(match x[0].dtype() {
        DType::F32 => cat!(F32),
        DType::F64 => cat!(F64),
        DType::I64 => cat!(I64),
        DType::Bool => cat!(Bool),
    })
}
