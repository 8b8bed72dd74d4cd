//! Element types of tensors and the `Float` bound for the kernels.

use std::cell::RefCell;
use std::fmt;
use std::thread::LocalKey;

use ndarray::{ArrayD, ArrayViewD, LinalgScalar, ScalarOperand};

use crate::tensor::Tensor;

/// The element type of a tensor.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 64-bit signed integer (indices, labels).
    I64,
    /// Boolean (comparison results, masks).
    Bool,
}

impl DType {
    /// `f32` or `f64`.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// Lower-case name, as in `f32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The float element types gradus computes with (`f32`, `f64`): kernels are written once,
/// generic over this bound.
pub trait Float:
    num_traits::Float
    + num_traits::FloatConst
    + LinalgScalar
    + ScalarOperand
    + Send
    + Sync
    + fmt::Debug
    + fmt::Display
    + std::iter::Sum
    + 'static
{
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Wrap an array of this type as a [`Tensor`].
    fn wrap(a: ArrayD<Self>) -> Tensor;
    /// View a tensor of this type, `None` for another dtype.
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, Self>>;
    /// Take the array out of a tensor of this type; the tensor back for another dtype.
    fn unwrap(t: Tensor) -> Result<ArrayD<Self>, Tensor>;
    /// Conversion from `f64` (rounding for `f32`).
    fn from_f(v: f64) -> Self;
    /// Conversion to `f64`.
    fn to_f(self) -> f64;
    /// Run `f` on this thread's scratch buffer of at least `n` elements (kept between calls,
    /// contents unspecified).
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// `e^x` as the fast kernels compute it (a vectorizable polynomial for `f32`).
    fn fast_exp(self) -> Self {
        self.exp()
    }
    /// Natural log as the fast kernels compute it.
    fn fast_ln(self) -> Self {
        self.ln()
    }
    /// `log(1 + x)` as the fast kernels compute it.
    fn fast_ln_1p(self) -> Self {
        self.ln_1p()
    }
    /// Hyperbolic tangent as the fast kernels compute it.
    fn fast_tanh(self) -> Self {
        self.tanh()
    }
    /// Sine as the fast kernels compute it, for `|x| <` [`TRIG_MAX`](crate::exec::fastmath::f64s::TRIG_MAX).
    fn fast_sin(self) -> Self {
        self.sin()
    }
    /// Cosine as the fast kernels compute it, for `|x| <` [`TRIG_MAX`](crate::exec::fastmath::f64s::TRIG_MAX).
    fn fast_cos(self) -> Self {
        self.cos()
    }
    /// `1 / (1 + e^-x)` as the fast kernels compute it.
    fn fast_sigmoid(self) -> Self {
        crate::exec::kernels::sigmoid(self)
    }
    /// `log(1 + e^x)` as the fast kernels compute it.
    fn fast_softplus(self) -> Self {
        crate::exec::kernels::softplus(self)
    }
}

/// Run `f` on the first `n` elements of the thread-local buffer `key`, grown as needed.
fn scratch<T: Copy + Default + 'static, R>(
    key: &'static LocalKey<RefCell<Vec<T>>>,
    n: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < n {
                buf.resize(n, T::default());
            }
            f(&mut buf[..n])
        }
        // Re-entered on this thread (a kernel inside a kernel): a fresh buffer.
        Err(_) => f(&mut vec![T::default(); n]),
    })
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        thread_local! {
            static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        scratch(&SCRATCH, n, f)
    }
    fn wrap(a: ArrayD<Self>) -> Tensor {
        Tensor::F32(a)
    }
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, Self>> {
        match t {
            Tensor::F32(a) => Some(a.view()),
            _ => None,
        }
    }
    fn unwrap(t: Tensor) -> Result<ArrayD<Self>, Tensor> {
        match t {
            Tensor::F32(a) => Ok(a),
            other => Err(other),
        }
    }
    fn from_f(v: f64) -> Self {
        v as f32
    }
    fn to_f(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        crate::exec::fastmath::exp(self)
    }
    #[inline(always)]
    fn fast_ln(self) -> Self {
        crate::exec::fastmath::ln(self)
    }
    #[inline(always)]
    fn fast_ln_1p(self) -> Self {
        crate::exec::fastmath::ln_1p(self)
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        crate::exec::fastmath::tanh(self)
    }
    #[inline(always)]
    fn fast_sin(self) -> Self {
        crate::exec::fastmath::f64s::sin(self as f64) as f32
    }
    #[inline(always)]
    fn fast_cos(self) -> Self {
        crate::exec::fastmath::f64s::cos(self as f64) as f32
    }
    #[inline(always)]
    fn fast_sigmoid(self) -> Self {
        crate::exec::fastmath::sigmoid(self)
    }
    #[inline(always)]
    fn fast_softplus(self) -> Self {
        crate::exec::fastmath::softplus(self)
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        thread_local! {
            static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
        }
        scratch(&SCRATCH, n, f)
    }
    fn wrap(a: ArrayD<Self>) -> Tensor {
        Tensor::F64(a)
    }
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, Self>> {
        match t {
            Tensor::F64(a) => Some(a.view()),
            _ => None,
        }
    }
    fn unwrap(t: Tensor) -> Result<ArrayD<Self>, Tensor> {
        match t {
            Tensor::F64(a) => Ok(a),
            other => Err(other),
        }
    }
    fn from_f(v: f64) -> Self {
        v
    }
    fn to_f(self) -> f64 {
        self
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        crate::exec::fastmath::f64s::exp(self)
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        crate::exec::fastmath::f64s::tanh(self)
    }
    #[inline(always)]
    fn fast_sin(self) -> Self {
        crate::exec::fastmath::f64s::sin(self)
    }
    #[inline(always)]
    fn fast_cos(self) -> Self {
        crate::exec::fastmath::f64s::cos(self)
    }
    #[inline(always)]
    fn fast_sigmoid(self) -> Self {
        crate::exec::fastmath::f64s::sigmoid(self)
    }
}
