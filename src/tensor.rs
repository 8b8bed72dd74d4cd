//! `Tensor`: a concrete n-d array of one of gradus's dtypes, the values that flow into and out
//! of compiled functions.

use ndarray::{ArrayD, ArrayViewD, IxDyn};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape;

/// A concrete array value.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit floats.
    F64(ArrayD<f64>),
    /// 64-bit integers.
    I64(ArrayD<i64>),
    /// Booleans.
    Bool(ArrayD<bool>),
}

impl Tensor {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I64(_) => DType::I64,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::F64(a) => a.shape(),
            Tensor::I64(a) => a.shape(),
            Tensor::Bool(a) => a.shape(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A zero-dimensional tensor holding `v` in the given float or integer dtype.
    pub fn scalar(v: f64, dtype: DType) -> Tensor {
        Tensor::full(&[], v, dtype)
    }

    /// A tensor of the given shape filled with `v` (cast to `dtype`; nonzero is `true`).
    pub fn full(shape: &[usize], v: f64, dtype: DType) -> Tensor {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::from_elem(s, v as f32)),
            DType::F64 => Tensor::F64(ArrayD::from_elem(s, v)),
            DType::I64 => Tensor::I64(ArrayD::from_elem(s, v as i64)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(s, v != 0.0)),
        }
    }

    /// A tensor from row-major `f64` data, cast to `dtype`.
    pub fn from_f64(shape: &[usize], data: Vec<f64>, dtype: DType) -> Result<Tensor> {
        let a = ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Data {
            path: "<tensor>".into(),
            reason: format!("data does not fit shape {}: {e}", shape::show(shape)),
        })?;
        Ok(Tensor::F64(a).cast(dtype))
    }

    /// Convert to another dtype (floats truncate toward zero when cast to `i64`).
    pub fn cast(&self, dtype: DType) -> Tensor {
        macro_rules! to {
            ($a:expr, $f:expr) => {
                match dtype {
                    DType::F32 => Tensor::F32($a.mapv(|v| $f(v) as f32)),
                    DType::F64 => Tensor::F64($a.mapv(|v| $f(v))),
                    DType::I64 => Tensor::I64($a.mapv(|v| $f(v) as i64)),
                    DType::Bool => Tensor::Bool($a.mapv(|v| $f(v) != 0.0)),
                }
            };
        }
        if dtype == self.dtype() {
            return self.clone();
        }
        match self {
            Tensor::F32(a) => to!(a, |v: f32| v as f64),
            Tensor::F64(a) => to!(a, |v: f64| v),
            Tensor::I64(a) => to!(a, |v: i64| v as f64),
            Tensor::Bool(a) => to!(a, |v: bool| if v { 1.0 } else { 0.0 }),
        }
    }

    /// All values as `f64`, row-major.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self.cast(DType::F64) {
            Tensor::F64(a) => a.iter().copied().collect(),
            _ => unreachable!("cast to f64 gives f64"),
        }
    }

    /// The array as `f64` (a copy; converts other dtypes).
    pub fn to_f64_array(&self) -> ArrayD<f64> {
        match self.cast(DType::F64) {
            Tensor::F64(a) => a,
            _ => unreachable!("cast to f64 gives f64"),
        }
    }

    /// The single value of a one-element tensor, as `f64`.
    pub fn item(&self) -> Result<f64> {
        match self.to_f64_vec().as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::Data {
                path: "<tensor>".into(),
                reason: format!(
                    "item() needs one element, shape is {}",
                    shape::show(self.shape())
                ),
            }),
        }
    }

    /// Borrow as an `f32` array.
    pub fn as_f32(&self) -> Option<&ArrayD<f32>> {
        match self {
            Tensor::F32(a) => Some(a),
            _ => None,
        }
    }

    /// Borrow as an `f64` array.
    pub fn as_f64(&self) -> Option<&ArrayD<f64>> {
        match self {
            Tensor::F64(a) => Some(a),
            _ => None,
        }
    }

    /// Borrow as an `i64` array.
    pub fn as_i64(&self) -> Option<&ArrayD<i64>> {
        match self {
            Tensor::I64(a) => Some(a),
            _ => None,
        }
    }

    /// Borrow as a `bool` array.
    pub fn as_bool(&self) -> Option<&ArrayD<bool>> {
        match self {
            Tensor::Bool(a) => Some(a),
            _ => None,
        }
    }
}

/// An element type a [`Tensor`] holds, with the conversions between its arrays and tensors.
pub(crate) trait Element: Copy + Send + Sync + 'static {
    /// Wrap an array of this type as a [`Tensor`].
    fn wrap(a: ArrayD<Self>) -> Tensor;
    /// View a tensor of this type; `None` for another dtype.
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, Self>>;
    /// Take the array out of a tensor of this type; the tensor back for another dtype.
    fn unwrap(t: Tensor) -> Result<ArrayD<Self>, Tensor>;
}

macro_rules! element {
    ($($t:ty => $v:ident),*) => {$(
        impl Element for $t {
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$v(a)
            }
            fn view(t: &Tensor) -> Option<ArrayViewD<'_, Self>> {
                match t {
                    Tensor::$v(a) => Some(a.view()),
                    _ => None,
                }
            }
            fn unwrap(t: Tensor) -> Result<ArrayD<Self>, Tensor> {
                match t {
                    Tensor::$v(a) => Ok(a),
                    other => Err(other),
                }
            }
        }
    )*};
}
element!(f32 => F32, f64 => F64, i64 => I64, bool => Bool);

macro_rules! from_arrays {
    ($($t:ty => $v:ident),*) => {$(
        impl<D: ndarray::Dimension> From<ndarray::Array<$t, D>> for Tensor {
            fn from(a: ndarray::Array<$t, D>) -> Tensor {
                Tensor::$v(a.into_dyn())
            }
        }
        impl From<$t> for Tensor {
            fn from(v: $t) -> Tensor {
                Tensor::$v(ndarray::arr0(v).into_dyn())
            }
        }
        impl From<Vec<$t>> for Tensor {
            fn from(v: Vec<$t>) -> Tensor {
                Tensor::$v(ndarray::Array1::from(v).into_dyn())
            }
        }
    )*};
}
from_arrays!(f32 => F32, f64 => F64, i64 => I64, bool => Bool);

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tensor::F32(a) => write!(f, "{a}"),
            Tensor::F64(a) => write!(f, "{a}"),
            Tensor::I64(a) => write!(f, "{a}"),
            Tensor::Bool(a) => write!(f, "{a}"),
        }
    }
}
