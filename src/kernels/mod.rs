//! Kernels: the computations behind every op, over concrete tensors, written once for `f32` and
//! `f64`. A leaf of the crate: it knows tensors, dtypes and the op enums, nothing of graphs,
//! gradients, the compiler or the runtime.
//!
//! [`Exec`] chooses how a kernel runs. With `Exec::Fast`, large elementwise loops and products
//! split over the rayon pool, `matmul` goes through `ndarray`'s product, and the fused kernels
//! and random draws are vectorized. With `Exec::Reference` everything runs on one thread,
//! elementwise maps use the standard library's math, and `matmul` is the textbook triple loop
//! accumulated in `f64`: the oracle the fast paths are tested against. Kernels with one obvious
//! loop (reductions, gathers, concatenation, `where`) have one implementation for both.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::dtype::Float;
use crate::tensor::Element;

/// Apply a function generic over the float type to a float tensor.
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

/// Apply a function generic over the float type to two float tensors of one dtype.
macro_rules! float2 {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr) => {
        match ($x, $y) {
            (Tensor::F32($a), Tensor::F32($b)) => Tensor::F32($body),
            (Tensor::F64($a), Tensor::F64($b)) => Tensor::F64($body),
            (p, q) => return Err(format!("dtype mismatch: {} vs {}", p.dtype(), q.dtype())),
        }
    };
}

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod fastmath;
pub(crate) mod fault;
pub(crate) mod fused;
pub(crate) mod gemm;
pub(crate) mod index;
mod linalg;
mod op;
pub(crate) mod pool;
pub(crate) mod random;
pub(crate) mod reduce;
#[cfg(target_arch = "x86_64")]
pub(crate) mod sgemm;
#[cfg(target_arch = "x86_64")]
mod sgemv;

pub(crate) use op::eval;

/// Below this many elements an elementwise kernel runs on one thread; above it, the fast kernels
/// split the work over the rayon pool.
pub const PAR_MIN: usize = 1 << 15;

thread_local! {
    /// Whether this thread runs a part of a loop split by rows (see `runtime::rows`), which
    /// has a thread of its own: its kernels do not split their work further.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The threads the fast kernels split their work over: the rayon pool's, or one on a thread
/// that runs a part of a loop split by rows ([`alone`]).
pub(crate) fn threads() -> usize {
    if ALONE.get() {
        1
    } else {
        rayon::current_num_threads()
    }
}

/// Whether a fast kernel of `len` elements splits its work over the pool.
pub(crate) fn parallel(exec: Exec, len: usize) -> bool {
    exec.is_fast() && len >= PAR_MIN && threads() > 1
}

/// Run `f` with the kernels on this thread alone (see [`threads`]).
pub(crate) fn alone<R>(f: impl FnOnce() -> R) -> R {
    let before = ALONE.replace(true);
    let result = f();
    ALONE.set(before);
    result
}

/// A kernel's result, or what went wrong in words (the caller adds the op and the user's line).
pub(crate) type KernelResult<T = crate::tensor::Tensor> = Result<T, String>;

/// Which implementation of a kernel runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Exec {
    /// One thread, the standard library's math, the textbook product: slow and obviously
    /// correct, the oracle of the fast paths.
    Reference,
    /// Threaded products and large loops; the vectorized math of [`fastmath`] in fused
    /// kernels.
    Fast,
}

impl Exec {
    /// Whether the fast implementation runs.
    pub(crate) fn is_fast(self) -> bool {
        self == Exec::Fast
    }
}

/// The float types the kernels compute with: the [`Float`] bound, conversions to and from
/// tensors, the math as the fast kernels compute it, and a per-thread scratch buffer. `FMA`:
/// whether the math may use fused multiply-adds (the fast kernels' code for CPUs that have them).
pub(crate) trait KernelFloat: Float + Element {
    /// `e^x` (a vectorizable polynomial for `f32`).
    fn fast_exp<const FMA: bool>(self) -> Self {
        self.exp()
    }
    /// Natural log.
    fn fast_ln<const FMA: bool>(self) -> Self {
        self.ln()
    }
    /// `log(1 + x)`.
    fn fast_ln_1p<const FMA: bool>(self) -> Self {
        self.ln_1p()
    }
    /// Hyperbolic tangent.
    fn fast_tanh<const FMA: bool>(self) -> Self {
        self.tanh()
    }
    /// Sine, for `|x| <` [`fastmath::double::TRIG_MAX`].
    fn fast_sin<const FMA: bool>(self) -> Self {
        self.sin()
    }
    /// Cosine, for `|x| <` [`fastmath::double::TRIG_MAX`].
    fn fast_cos<const FMA: bool>(self) -> Self {
        self.cos()
    }
    /// `1 / (1 + e^-x)`.
    fn fast_sigmoid<const FMA: bool>(self) -> Self {
        elementwise::sigmoid(self)
    }
    /// `log(1 + e^x)`.
    fn fast_softplus<const FMA: bool>(self) -> Self {
        elementwise::softplus(self)
    }
    /// Run `f` on this thread's scratch buffer of at least `n` elements (kept between calls,
    /// contents unspecified).
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
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

impl KernelFloat for f32 {
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        thread_local! {
            static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        scratch(&SCRATCH, n, f)
    }
    #[inline(always)]
    fn fast_exp<const FMA: bool>(self) -> Self {
        fastmath::single::exp::<FMA>(self)
    }
    #[inline(always)]
    fn fast_ln<const FMA: bool>(self) -> Self {
        fastmath::single::ln::<FMA>(self)
    }
    #[inline(always)]
    fn fast_ln_1p<const FMA: bool>(self) -> Self {
        fastmath::single::ln_1p::<FMA>(self)
    }
    #[inline(always)]
    fn fast_tanh<const FMA: bool>(self) -> Self {
        fastmath::single::tanh::<FMA>(self)
    }
    #[inline(always)]
    fn fast_sin<const FMA: bool>(self) -> Self {
        fastmath::double::sin::<FMA>(self as f64) as f32
    }
    #[inline(always)]
    fn fast_cos<const FMA: bool>(self) -> Self {
        fastmath::double::cos::<FMA>(self as f64) as f32
    }
    #[inline(always)]
    fn fast_sigmoid<const FMA: bool>(self) -> Self {
        fastmath::single::sigmoid::<FMA>(self)
    }
    #[inline(always)]
    fn fast_softplus<const FMA: bool>(self) -> Self {
        fastmath::single::softplus::<FMA>(self)
    }
}

impl KernelFloat for f64 {
    fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
        thread_local! {
            static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
        }
        scratch(&SCRATCH, n, f)
    }
    #[inline(always)]
    fn fast_exp<const FMA: bool>(self) -> Self {
        fastmath::double::exp::<FMA>(self)
    }
    #[inline(always)]
    fn fast_tanh<const FMA: bool>(self) -> Self {
        fastmath::double::tanh::<FMA>(self)
    }
    #[inline(always)]
    fn fast_sin<const FMA: bool>(self) -> Self {
        fastmath::double::sin::<FMA>(self)
    }
    #[inline(always)]
    fn fast_cos<const FMA: bool>(self) -> Self {
        fastmath::double::cos::<FMA>(self)
    }
    #[inline(always)]
    fn fast_sigmoid<const FMA: bool>(self) -> Self {
        fastmath::double::sigmoid::<FMA>(self)
    }
}
