//! The buffer pool: float buffers kept between calls, by capacity, so that a warm plan allocates
//! no arrays.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use smallvec::SmallVec;

use super::Failure;
use crate::kernels::KernelFloat;
use crate::tensor::Tensor;

/// Float buffers kept between calls, so a warm plan allocates no arrays.
#[derive(Default)]
pub(crate) struct Pool {
    f32: Bins<f32>,
    f64: Bins<f64>,
    /// The most bytes one value may take, when the function has a memory limit.
    pub limit: Option<usize>,
}

/// Free buffers of one float type by capacity. A capacity whose buffers are all taken keeps its
/// (empty) entry, so a warm plan does not allocate map nodes either.
pub(crate) struct Bins<T> {
    by_cap: BTreeMap<usize, Vec<Vec<T>>>,
    count: usize,
}

impl<T> Default for Bins<T> {
    fn default() -> Self {
        Bins {
            by_cap: BTreeMap::new(),
            count: 0,
        }
    }
}

/// Buffers kept per float type: enough for every live value of a long chain's gradient.
const POOL_MAX: usize = 4096;

/// A float type with buffers of its own in the pool.
pub(crate) trait Pooled: KernelFloat {
    fn bins(pool: &mut Pool) -> &mut Bins<Self>;
}
impl Pooled for f32 {
    fn bins(pool: &mut Pool) -> &mut Bins<f32> {
        &mut pool.f32
    }
}
impl Pooled for f64 {
    fn bins(pool: &mut Pool) -> &mut Bins<f64> {
        &mut pool.f64
    }
}

impl<T: num_traits::Zero + Clone> Bins<T> {
    /// The smallest buffer with room for `n`, else a new one (`None` if it cannot be
    /// allocated); resized to `n` (contents unspecified). Best fit keeps the large buffers for
    /// the large values, so a warm plan finds every buffer it needs.
    fn take(&mut self, n: usize) -> Option<Vec<T>> {
        let found = self.by_cap.range_mut(n..).find_map(|(_, bufs)| bufs.pop());
        let mut buf = match found {
            Some(b) => {
                self.count -= 1;
                b
            }
            None => {
                let mut fresh = Vec::new();
                fresh.try_reserve_exact(n).ok()?;
                fresh
            }
        };
        buf.resize(n, T::zero());
        Some(buf)
    }

    fn keep(&mut self, buf: Vec<T>) {
        if self.count < POOL_MAX && buf.capacity() > 0 {
            self.count += 1;
            self.by_cap.entry(buf.capacity()).or_default().push(buf);
        }
    }
}

impl Pool {
    /// A buffer for a value of `shape`: pooled, or newly allocated within the memory limit.
    pub fn take<T: Pooled>(&mut self, shape: &[usize]) -> Result<Vec<T>, Failure> {
        let too_big = |limit: Option<usize>| Failure::OutOfMemory {
            dtype: T::DTYPE,
            shape: shape.to_vec(),
            limit,
        };
        let n = crate::shape::checked_size(shape).ok_or_else(|| too_big(None))?;
        let bytes = n.checked_mul(std::mem::size_of::<T>());
        if let Some(limit) = self.limit
            && bytes.is_none_or(|b| b > limit)
        {
            return Err(too_big(Some(limit)));
        }
        T::bins(self).take(n).ok_or_else(|| too_big(None))
    }

    /// Scratch space of `len` elements (a product's packing space): pooled, or newly allocated
    /// within the memory limit; none at all for 0, which would otherwise take the smallest
    /// buffer of the pool.
    pub fn take_space<T: Pooled>(&mut self, len: usize) -> Result<Vec<T>, Failure> {
        match len {
            0 => Ok(Vec::new()),
            _ => self.take(&[len]),
        }
    }

    pub fn give(&mut self, t: Tensor) {
        match t {
            Tensor::F32(a) => self.f32.keep(a.into_raw_vec_and_offset().0),
            Tensor::F64(a) => self.f64.keep(a.into_raw_vec_and_offset().0),
            _ => {}
        }
    }

    /// `t` to hand to the caller: a small value in a large pooled buffer leaves as an exact
    /// copy, and the buffer stays in the pool.
    pub fn release(&mut self, t: Tensor) -> Tensor {
        fn fit<T: Pooled>(pool: &mut Pool, a: ArrayD<T>) -> ArrayD<T> {
            let shape: SmallVec<[usize; 6]> = a.shape().into();
            let (buf, _) = a.into_raw_vec_and_offset();
            let buf = if buf.capacity() > 2 * buf.len() + 64 {
                let exact = buf.to_vec();
                pool.keep_vec(buf);
                exact
            } else {
                buf
            };
            ArrayD::from_shape_vec(IxDyn(&shape), buf).expect("the shape of the buffer")
        }
        match t {
            Tensor::F32(a) if a.is_standard_layout() => Tensor::F32(fit(self, a)),
            Tensor::F64(a) if a.is_standard_layout() => Tensor::F64(fit(self, a)),
            other => other,
        }
    }

    /// A copy of `t`, a float one in a pooled buffer (it exists already: no limit applies).
    pub fn copy_of(&mut self, t: &Tensor) -> Tensor {
        fn copied<T: Pooled>(pool: &mut Pool, a: &ArrayD<T>) -> Option<ArrayD<T>> {
            let src = a.as_slice()?;
            let mut buf = T::bins(pool).take(src.len())?;
            buf.copy_from_slice(src);
            Some(ArrayD::from_shape_vec(a.raw_dim(), buf).expect("the shape of the buffer"))
        }
        let copy = match t {
            Tensor::F32(a) => copied(self, a).map(Tensor::F32),
            Tensor::F64(a) => copied(self, a).map(Tensor::F64),
            _ => None,
        };
        copy.unwrap_or_else(|| t.clone())
    }

    pub fn keep_vec<T: Pooled>(&mut self, buf: Vec<T>) {
        T::bins(self).keep(buf)
    }
}
