//! Elementwise kernels: maps of one operand, broadcast zips of two, comparisons and `where`.

use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

use super::Exec;
use crate::dtype::Float;
use crate::graph::op::{Binary, Cmp, Unary};
use crate::shape;

pub(crate) fn map<T: Float>(
    a: &ArrayD<T>,
    exec: Exec,
    f: impl Fn(T) -> T + Sync + Send,
) -> ArrayD<T> {
    if crate::kernels::parallel(exec, a.len()) {
        Zip::from(a).par_map_collect(|&x| f(x))
    } else {
        a.mapv(f)
    }
}

pub(crate) fn zip2<A, B, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    exec: Exec,
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
    Ok(if crate::kernels::parallel(exec, av.len()) {
        z.par_map_collect(|&x, &y| f(x, y))
    } else {
        z.map_collect(|&x, &y| f(x, y))
    })
}

pub(crate) fn bcast<'a, A>(a: &'a ArrayD<A>, shape: &[usize]) -> Result<ArrayViewD<'a, A>, String> {
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

/// The error function, from `libm` in `f64` (then rounded for `f32`).
pub(crate) fn erf<T: Float>(x: T) -> T {
    T::from_f(libm::erf(x.to_f()))
}

/// The nearest integer, a half to the even neighbour: `2.5 -> 2`, `3.5 -> 4`.
pub(crate) fn round_half_even<T: Float>(x: T) -> T {
    let r = x.round();
    let two = T::one() + T::one();
    if (r - x).abs() == T::from_f(0.5) && r % two != T::zero() {
        r - (r - x) * two
    } else {
        r
    }
}

pub(crate) fn unary<T: Float>(u: Unary, a: &ArrayD<T>, exec: Exec) -> ArrayD<T> {
    match u {
        Unary::Neg => map(a, exec, |x| -x),
        Unary::Exp => map(a, exec, |x| x.exp()),
        Unary::Log => map(a, exec, |x| x.ln()),
        Unary::Log1p => map(a, exec, |x| x.ln_1p()),
        Unary::Expm1 => map(a, exec, |x| x.exp_m1()),
        Unary::Sqrt => map(a, exec, |x| x.sqrt()),
        Unary::Square => map(a, exec, |x| x * x),
        Unary::Abs => map(a, exec, |x| x.abs()),
        Unary::Sign => map(a, exec, sign),
        Unary::Sin => map(a, exec, |x| x.sin()),
        Unary::Cos => map(a, exec, |x| x.cos()),
        Unary::Tanh => map(a, exec, |x| x.tanh()),
        Unary::Sigmoid => map(a, exec, sigmoid),
        Unary::Softplus => map(a, exec, softplus),
        Unary::LogSigmoid => map(a, exec, |x| -softplus(-x)),
        Unary::Relu => map(a, exec, |x| if x > T::zero() { x } else { T::zero() }),
        Unary::Erf => map(a, exec, erf),
        Unary::Floor => map(a, exec, |x| x.floor()),
        Unary::Round => map(a, exec, round_half_even),
        Unary::Ceil => map(a, exec, |x| x.ceil()),
        Unary::Not => unreachable!("not is a bool op, dispatched before"),
    }
}

pub(crate) fn binary<T: Float>(
    b: Binary,
    x: &ArrayD<T>,
    y: &ArrayD<T>,
    exec: Exec,
) -> Result<ArrayD<T>, String> {
    match b {
        Binary::Add => zip2(x, y, exec, |p, q| p + q),
        Binary::Sub => zip2(x, y, exec, |p, q| p - q),
        Binary::Mul => zip2(x, y, exec, |p, q| p * q),
        Binary::Div => zip2(x, y, exec, |p, q| p / q),
        Binary::Pow => zip2(x, y, exec, |p, q| p.powf(q)),
        Binary::Maximum => zip2(x, y, exec, |p, q| if p >= q || q.is_nan() { p } else { q }),
        Binary::Minimum => zip2(x, y, exec, |p, q| if p <= q || q.is_nan() { p } else { q }),
        Binary::And | Binary::Or => unreachable!("logical ops are bool ops, dispatched before"),
    }
}

pub(crate) fn compare<A: PartialOrd + Copy + Send + Sync>(
    c: Cmp,
    x: &ArrayD<A>,
    y: &ArrayD<A>,
    exec: Exec,
) -> Result<ArrayD<bool>, String> {
    match c {
        Cmp::Lt => zip2(x, y, exec, |p, q| p < q),
        Cmp::Le => zip2(x, y, exec, |p, q| p <= q),
        Cmp::Gt => zip2(x, y, exec, |p, q| p > q),
        Cmp::Ge => zip2(x, y, exec, |p, q| p >= q),
        Cmp::Eq => zip2(x, y, exec, |p, q| p == q),
        Cmp::Ne => zip2(x, y, exec, |p, q| p != q),
    }
}

pub(crate) fn select<T: Copy + Send + Sync>(
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
