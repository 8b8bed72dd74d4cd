//! Element types: the [`DType`] of a tensor and the [`Float`] bound of the kernels. Names and
//! bounds only; the kernels themselves live in `kernels`.

use std::fmt;

use ndarray::{LinalgScalar, ScalarOperand};

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
    /// Conversion from `f64` (rounding for `f32`).
    fn from_f(v: f64) -> Self;
    /// Conversion to `f64`.
    fn to_f(self) -> f64;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f(v: f64) -> Self {
        v as f32
    }
    fn to_f(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn from_f(v: f64) -> Self {
        v
    }
    fn to_f(self) -> f64 {
        self
    }
}
