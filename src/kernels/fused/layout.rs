//! Where a fused kernel's operands are: their strides over the output's dims, after merging the
//! dims that every operand walks contiguously.

use ndarray::{ArrayViewD, IxDyn};
use smallvec::SmallVec;

use crate::kernels::KernelFloat;
use crate::shape;
use crate::tensor::Tensor;

/// An operand of a running kernel.
pub(crate) enum Src<'a, T> {
    /// A float array, broadcast to the output shape.
    Float(ArrayViewD<'a, T>),
    /// A boolean array, read as `0`/`1`.
    Bool(ArrayViewD<'a, bool>),
    /// The output buffer itself (in-place execution): same shape, read before it is written.
    Out,
    /// A contiguous array of the output's shape, read through a pointer: the result of an
    /// earlier kernel of a group that runs chunk by chunk (see the runtime's kernel groups), which
    /// another thread may be writing at other positions meanwhile.
    Ptr(*const T),
}

impl<'a, T: KernelFloat> Src<'a, T> {
    /// A tensor as a kernel operand: float arrays of the kernel's type, and bool masks.
    pub(crate) fn of(t: &'a Tensor) -> Result<Src<'a, T>, String> {
        match t {
            Tensor::Bool(b) => Ok(Src::Bool(b.view())),
            t => T::view(t)
                .map(Src::Float)
                .ok_or_else(|| format!("fused kernel input of dtype {}", t.dtype())),
        }
    }
}

/// The operands of a run with their strides over the output's dims, after merging dims that
/// every operand walks contiguously.
pub(crate) struct Layout<T> {
    pub(super) dims: SmallVec<[usize; 6]>,
    pub(super) operands: SmallVec<[Operand<T>; 8]>,
}

pub(super) enum Data<T> {
    Float(*const T),
    Bool(*const bool),
    Out,
}

pub(super) struct Operand<T> {
    pub(super) data: Data<T>,
    strides: SmallVec<[isize; 6]>,
}

// SAFETY: the pointers come from views borrowed for the whole run (`Layout` never outlives the
// `srcs` of `FusedKernel::run`) or from buffers a kernel group keeps alive until it ends, and
// the kernel only reads through them.
unsafe impl<T: Sync> Sync for Layout<T> {}
unsafe impl<T: Send> Send for Layout<T> {}

impl<T: KernelFloat> Layout<T> {
    pub(super) fn new(srcs: &[Src<T>], shape: &[usize]) -> Result<Layout<T>, String> {
        let contiguous = {
            let mut s: SmallVec<[isize; 6]> = smallvec::smallvec![0; shape.len()];
            let mut acc = 1isize;
            for (k, &d) in shape.iter().enumerate().rev() {
                s[k] = acc;
                acc *= d as isize;
            }
            s
        };
        let bcast = |from: &[usize]| {
            format!(
                "{} does not broadcast to {}",
                shape::show(from),
                shape::show(shape)
            )
        };
        let mut full: SmallVec<[Operand<T>; 8]> = SmallVec::new();
        for src in srcs {
            let (data, strides) = match src {
                Src::Float(v) => {
                    let b = v.broadcast(IxDyn(shape)).ok_or_else(|| bcast(v.shape()))?;
                    (Data::Float(b.as_ptr()), b.strides().into())
                }
                Src::Bool(v) => {
                    let b = v.broadcast(IxDyn(shape)).ok_or_else(|| bcast(v.shape()))?;
                    (Data::Bool(b.as_ptr()), b.strides().into())
                }
                Src::Out => (Data::Out, contiguous.clone()),
                Src::Ptr(p) => (Data::Float(*p), contiguous.clone()),
            };
            full.push(Operand { data, strides });
        }
        // Merge dim k into the one before it when every operand steps over both as one.
        let mut dims: SmallVec<[usize; 6]> = SmallVec::new();
        let mut kept: SmallVec<[usize; 6]> = SmallVec::new();
        for (k, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let merge = kept.last().is_some_and(|&prev| {
                full.iter()
                    .all(|o| o.strides[prev] == o.strides[k] * d as isize)
                    && contiguous[prev] == contiguous[k] * d as isize
            });
            if merge {
                let n = dims.len();
                dims[n - 1] *= d;
                let last = kept.len() - 1;
                kept[last] = k;
            } else {
                dims.push(d);
                kept.push(k);
            }
        }
        let operands = full
            .into_iter()
            .map(|o| Operand {
                strides: kept.iter().map(|&k| o.strides[k]).collect(),
                data: o.data,
            })
            .collect();
        Ok(Layout { dims, operands })
    }
}

impl<T: KernelFloat> Operand<T> {
    /// The offset of element `col` of row `row` (of the merged dims, at least one).
    #[inline(always)]
    fn offset(&self, dims: &[usize], row: usize, col: usize) -> isize {
        let n = dims.len();
        let mut off = col as isize * self.strides[n - 1];
        let mut r = row;
        for k in (0..n - 1).rev() {
            off += (r % dims[k]) as isize * self.strides[k];
            r /= dims[k];
        }
        off
    }

    /// Where `len` elements of row `row` from column `col` are: in the operand's memory when
    /// it is contiguous there, else loaded into `reg` (`out` is the output at the same place,
    /// for an in-place operand).
    #[inline(always)]
    pub(super) fn locate(
        &self,
        dims: &[usize],
        row: usize,
        col: usize,
        reg: *mut T,
        len: usize,
        out: *const T,
    ) -> *const T {
        // In place, the output itself: no instruction writes it before the last has run.
        if matches!(self.data, Data::Out) {
            return out;
        }
        let n = dims.len();
        if n > 0
            && let Data::Float(p) = self.data
            && self.strides[n - 1] == 1
        {
            // SAFETY: `off .. off + len` lies inside the broadcast view (see `load`).
            return unsafe { p.offset(self.offset(dims, row, col)) };
        }
        // SAFETY: `reg` is a register of at least `len` elements, and an in-place `out` has
        // `len` elements here; neither overlaps the other.
        let (reg, out) = unsafe {
            (
                std::slice::from_raw_parts_mut(reg, len),
                std::slice::from_raw_parts(out, len),
            )
        };
        self.load(dims, row, col, reg, out);
        reg.as_ptr()
    }

    /// Load `reg.len()` elements of row `row` from column `col` (of the merged dims).
    #[inline(always)]
    fn load(&self, dims: &[usize], row: usize, col: usize, reg: &mut [T], out: &[T]) {
        let n = dims.len();
        if n == 0 {
            // A scalar output: one element at offset 0.
            match self.data {
                // SAFETY: a 0-d view has one element at its pointer.
                Data::Float(p) => reg[0] = unsafe { *p },
                Data::Bool(p) => reg[0] = if unsafe { *p } { T::one() } else { T::zero() },
                Data::Out => reg[0] = out[0],
            }
            return;
        }
        let off = self.offset(dims, row, col);
        let step = self.strides[n - 1];
        match self.data {
            Data::Out => reg.copy_from_slice(out),
            // SAFETY (all reads below): `off + i * step` for `i < reg.len()` stays inside the
            // broadcast view, whose strides and dims the offsets were computed from.
            Data::Float(p) => unsafe {
                let p = p.offset(off);
                if step == 1 {
                    reg.copy_from_slice(std::slice::from_raw_parts(p, reg.len()));
                } else if step == 0 {
                    reg.fill(*p);
                } else {
                    for (i, v) in reg.iter_mut().enumerate() {
                        *v = *p.offset(i as isize * step);
                    }
                }
            },
            Data::Bool(p) => unsafe {
                let p = p.offset(off);
                for (i, v) in reg.iter_mut().enumerate() {
                    *v = if *p.offset(i as isize * step) {
                        T::one()
                    } else {
                        T::zero()
                    };
                }
            },
        }
    }
}
