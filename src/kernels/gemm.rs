//! Matrix products, specialised as the optimizer's product nodes ask: `alpha · op(a) @ op(b)
//! (+ bias)`. A transpose is only a swap of strides; a bias is copied into the output first and
//! the product accumulated onto it. `f32` products on a machine with AVX-512 run gradus's own
//! kernel ([`super::sgemm`]), every other one the `gemm` crate's. Both keep their packing
//! buffers per thread, so a product allocates nothing once warm.

use std::fmt;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};

use super::{Exec, KernelFloat, KernelResult};
use crate::dtype::Float;
use crate::error::Location;
use crate::shape::{self, Shape};
use crate::tensor::Tensor;

/// What a product node computes: `alpha · op(a) @ op(b)`, where `op` transposes a matrix whose
/// flag is set, plus a third operand (the bias) broadcast onto the result when there is one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm {
    /// Read the left operand transposed.
    pub transpose_a: bool,
    /// Read the right operand transposed.
    pub transpose_b: bool,
    /// The scalar factor.
    pub alpha: f64,
    /// The `add` the bias came from, for the errors of its check: a product with a bias was
    /// the user's `matmul` and `add`.
    pub bias_add: Option<BiasAdd>,
}

/// The `add` of a product and its bias (or the `sub` of the product from a matrix it is now
/// accumulated onto), as the user wrote it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BiasAdd {
    /// Where the user wrote it.
    pub loc: Location,
    /// The op the user wrote: `add` or `sub`, the name its errors give.
    pub op: &'static str,
    /// Whether the bias was its first operand (`c + a @ b`).
    pub bias_first: bool,
}

// Two products are the same when their flags and factors are, bit for bit (where the user
// wrote them does not count).
impl PartialEq for Gemm {
    fn eq(&self, other: &Self) -> bool {
        (self.transpose_a, self.transpose_b, self.alpha.to_bits())
            == (other.transpose_a, other.transpose_b, other.alpha.to_bits())
    }
}
impl Eq for Gemm {}
impl std::hash::Hash for Gemm {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.transpose_a, self.transpose_b, self.alpha.to_bits()).hash(state)
    }
}

impl fmt::Display for Gemm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gemm{{{}{}",
            if self.transpose_a { "aᵀ" } else { "a" },
            if self.transpose_b { "·bᵀ" } else { "·b" }
        )?;
        if self.alpha != 1.0 {
            write!(f, ", alpha={}", self.alpha)?;
        }
        f.write_str("}")
    }
}

impl Gemm {
    /// Rows, inner dim and columns of the product of operands of these shapes.
    pub(crate) fn dims(&self, a: &[usize], b: &[usize]) -> Result<(usize, usize, usize), String> {
        dims(a, b, self.transpose_a, self.transpose_b)
    }

    /// The checks of the `add` the bias came from, with the same message: the product (of
    /// static shape `declared`, `[m, n]` when run) and the bias (`bias_declared`, `bias`) must
    /// broadcast together, each stretching only dims declared 1, to the product's shape.
    pub(crate) fn check_bias(
        &self,
        declared: &Shape,
        bias_declared: &Shape,
        bias: &[usize],
        (m, n): (usize, usize),
    ) -> Result<(), String> {
        let product = [m, n];
        let mut operands = [(declared, &product[..]), (bias_declared, bias)];
        if self.bias_add.is_some_and(|a| a.bias_first) {
            operands.swap(0, 1);
        }
        let result = shape::broadcast_concrete(operands[0].1, operands[1].1)?;
        for (d, s) in operands {
            shape::check_runtime_broadcast(d, s, &result)?;
        }
        if result != product {
            return Err(format!(
                "the bias {} would make the product {} larger",
                shape::show(bias),
                shape::show(&product)
            ));
        }
        Ok(())
    }

    /// The product of `x = [a, b]` or `[a, b, bias]` into a new array, after the checks of the
    /// ops it replaced (`declared`: the operands' static shapes).
    pub(crate) fn eval(
        &self,
        x: &[&Tensor],
        declared: &[&Shape],
        ty: &Shape,
        exec: Exec,
    ) -> KernelResult {
        let (m, _, n) = self.dims(x[0].shape(), x[1].shape())?;
        if let (Some(c), Some(d)) = (x.get(2), declared.get(2)) {
            self.check_bias(ty, d, c.shape(), (m, n))?;
        }
        Ok(float2!(x[0], x[1], a, b => self.product(a, b, x.get(2).copied(), exec)?))
    }

    fn product<T: KernelFloat>(
        &self,
        a: &ArrayD<T>,
        b: &ArrayD<T>,
        bias: Option<&Tensor>,
        exec: Exec,
    ) -> Result<ArrayD<T>, String> {
        let (m, _, n) = self.dims(a.shape(), b.shape())?;
        let bias = bias
            .map(|c| T::view(c).ok_or_else(|| format!("bias of dtype {}", c.dtype())))
            .transpose()?;
        let mut out = vec![T::zero(); m * n];
        let threads = if exec.is_fast() {
            crate::kernels::threads()
        } else {
            1
        };
        let init = bias.as_ref().map_or(Init::Zero, Init::Bias);
        gemm_onto(&a.view(), &b.view(), init, self, &mut out, threads, None)?;
        ArrayD::from_shape_vec(IxDyn(&[m, n]), out).map_err(|e| e.to_string())
    }
}

/// Below this many multiply-adds a product runs on one thread.
pub(crate) const PAR_MIN_FLOPS: usize = 1 << 16;

/// Rows, inner dim and columns of `op(a) @ op(b)`.
fn dims(a: &[usize], b: &[usize], ta: bool, tb: bool) -> Result<(usize, usize, usize), String> {
    if a.len() != 2 || b.len() != 2 {
        return Err(format!(
            "gemm needs matrices, got {} and {}",
            shape::show(a),
            shape::show(b)
        ));
    }
    let (m, k) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
    let (k2, n) = if tb { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != k2 {
        return Err(format!(
            "inner dims differ: {}{} vs {}{}",
            shape::show(a),
            if ta { "ᵀ" } else { "" },
            shape::show(b),
            if tb { "ᵀ" } else { "" }
        ));
    }
    Ok((m, k, n))
}

/// Would this product allocate a packing buffer for a transposed left operand? The `gemm`
/// crate does for products big enough to be split into blocks; gradus's own kernel reads such
/// an operand in place.
pub(crate) fn packs_transposed_lhs<T: 'static>(m: usize, k: usize, n: usize) -> bool {
    !own_kernel::<T>() && n > 1 && m * n * k >= PAR_MIN_FLOPS
}

/// Whether products of `T` run gradus's own kernel on this machine: `f32` where the CPU has
/// AVX-512, unless the environment variable `GRADUS_GEMM` is `crate` when the first product
/// runs (then every product goes through the `gemm` crate, to compare the two).
fn own_kernel<T: 'static>() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        static OWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        return *OWN.get_or_init(|| {
            super::sgemm::available() && std::env::var("GRADUS_GEMM").map_or(true, |v| v != "crate")
        });
    }
    false
}

/// Row and column strides of `op(x)`.
fn strides<T>(x: &ArrayViewD<T>, t: bool) -> (isize, isize) {
    let s = x.strides();
    if t { (s[1], s[0]) } else { (s[0], s[1]) }
}

/// What the product is added to.
#[derive(Clone, Copy)]
pub(crate) enum Init<'v, 'a, T> {
    /// Nothing: `out ← alpha · op(a) @ op(b)`.
    Zero,
    /// A bias broadcast onto the output, copied into it first.
    Bias(&'v ArrayViewD<'a, T>),
    /// What `out` already holds (a bias of the output's shape, in place).
    Out,
}

/// `op(x)` (row and column strides `rs`, `cs`) as an operand of gradus's own kernel, for a
/// `T` that is `f32` there.
#[cfg(target_arch = "x86_64")]
fn operand<T>(x: &ArrayViewD<T>, (rs, cs): (isize, isize)) -> super::sgemm::Operand {
    super::sgemm::Operand {
        ptr: x.as_ptr() as *const f32,
        rs,
        cs,
    }
}

/// Elements of packing space to lend [`gemm_onto`] for this product on up to `threads`
/// threads, so that it allocates nothing whichever threads run it (0 where it packs nothing,
/// or the `gemm` crate computes it).
pub(crate) fn scratch_len<T: 'static>(
    a: &ArrayViewD<T>,
    b: &ArrayViewD<T>,
    product: &Gemm,
    threads: usize,
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if own_kernel::<T>()
        && let Ok((m, k, n)) = product.dims(a.shape(), b.shape())
    {
        let (oa, ob) = (
            operand(a, strides(a, product.transpose_a)),
            operand(b, strides(b, product.transpose_b)),
        );
        return super::sgemm::scratch_len(m, n, k, &oa, &ob, threads);
    }
    0
}

/// `out ← alpha · op(a) @ op(b) + init`, `out` contiguous `[m, n]`, on up to `threads`
/// threads of the current rayon pool (one below [`PAR_MIN_FLOPS`] multiply-adds), packing
/// into `scratch` where it has [`scratch_len`] elements (else into the threads' own buffers).
pub(crate) fn gemm_onto<T: Float>(
    a: &ArrayViewD<T>,
    b: &ArrayViewD<T>,
    init: Init<T>,
    product: &Gemm,
    out: &mut [T],
    threads: usize,
    scratch: Option<&mut [T]>,
) -> Result<(), String> {
    let (m, k, n) = product.dims(a.shape(), b.shape())?;
    let (ta, tb) = (product.transpose_a, product.transpose_b);
    if out.len() != m * n {
        return Err(format!(
            "output buffer of {} elements for [{m}, {n}]",
            out.len()
        ));
    }
    // A bias of the output's shape (the weights an update subtracts the product from), read
    // in place by gradus's own kernel where it is contiguous and the product is not empty.
    let whole = match init {
        Init::Bias(c) if c.shape() == [m, n] => c.as_slice(),
        _ => None,
    };
    let read_in_place = own_kernel::<T>() && whole.is_some() && k > 0;
    if read_in_place {
        // The kernel below reads it.
    } else if let Init::Bias(c) = init
        && n > 0
        && c.shape().last() == Some(&n)
        && c.shape().iter().rev().skip(1).all(|&d| d == 1)
        && let Some(row) = c.as_slice_memory_order()
    {
        // A bias of one row (`[n]` or `[1, n]`), copied onto each row of the output (an
        // assignment through a broadcast view goes element by element: 0.1 ms at 100×500).
        for dst in out.chunks_exact_mut(n) {
            dst.copy_from_slice(row);
        }
    } else if let Some(all) = whole {
        out.copy_from_slice(all);
    } else if let Init::Bias(c) = init {
        let src = c.broadcast(IxDyn(&[m, n])).ok_or_else(|| {
            format!(
                "bias {} does not broadcast to [{m}, {n}]",
                shape::show(c.shape())
            )
        })?;
        ArrayViewMutD::from_shape(IxDyn(&[m, n]), &mut *out)
            .map_err(|e| e.to_string())?
            .assign(&src);
    } else if k == 0 && matches!(init, Init::Zero) {
        out.fill(T::zero());
    }
    if m == 0 || n == 0 || k == 0 {
        return Ok(());
    }
    let ((rsa, csa), (rsb, csb)) = (strides(a, ta), strides(b, tb));
    let parallel = threads > 1 && m * n * k >= PAR_MIN_FLOPS;
    let read_out = !matches!(init, Init::Zero);
    #[cfg(target_arch = "x86_64")]
    if own_kernel::<T>() {
        use super::sgemm::{Onto, sgemm};
        let threads = if parallel { threads } else { 1 };
        let onto = match whole {
            Some(all) if read_in_place => Onto::From(all.as_ptr() as *const f32),
            _ if read_out => Onto::Out,
            _ => Onto::Zero,
        };
        // SAFETY: `T` is `f32` (`own_kernel`); `a` and `b` are live views whose strides
        // describe `op(a)` as m×k and `op(b)` as k×n (checked by `dims`); `out` holds exactly
        // m×n elements, row-major, borrowed mutably for the call, and an `Onto::From` bias as
        // many, row-major, borrowed for the call; the lent scratch is `T`s, so `f32`s, and
        // borrowed mutably for the call; AVX-512 was detected.
        unsafe {
            sgemm(
                m,
                n,
                k,
                operand(a, (rsa, csa)),
                operand(b, (rsb, csb)),
                out.as_mut_ptr() as *mut f32,
                n,
                product.alpha as f32,
                onto,
                threads,
                scratch
                    .map(|s| std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len())),
            )
        };
        return Ok(());
    }
    let alpha = T::from_f(product.alpha);
    let (out_at, a_at, b_at) = (
        SendPtr(out.as_mut_ptr()),
        SendPtr(a.as_ptr() as *mut T),
        SendPtr(b.as_ptr() as *mut T),
    );
    // The columns `c0 .. c0 + cols` of the product.
    let columns = |c0: usize, cols: usize, parallelism: gemm::Parallelism| {
        // SAFETY: `a` and `b` are live views whose strides describe `op(a)` as m×k and `op(b)`
        // as k×n (checked by `dims`); `out` holds exactly m×n elements, row-major; the columns
        // `c0 .. c0 + cols` are within both, and bands of one product write disjoint columns.
        unsafe {
            gemm::gemm(
                m,
                cols,
                k,
                out_at.get().add(c0),
                1,
                n as isize,
                read_out,
                a_at.get(),
                csa,
                rsa,
                b_at.get().offset(c0 as isize * csb),
                csb,
                rsb,
                T::one(),
                alpha,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    // A product of few rows: the `gemm` crate splits its work by rows and runs such a product
    // on one thread, so its columns are split over the threads here, a band each.
    if parallel && m < SKINNY_ROWS && n >= 2 * MIN_BAND {
        let bands = threads.min(n / MIN_BAND);
        let width = n.div_ceil(bands);
        let band = |c0: usize| columns(c0, width.min(n - c0), gemm::Parallelism::None);
        rayon::scope(|s| {
            for c0 in (width..n).step_by(width) {
                s.spawn(move |_| band(c0));
            }
            band(0);
        });
    } else if parallel {
        columns(0, n, gemm::Parallelism::Rayon(threads));
    } else {
        columns(0, n, gemm::Parallelism::None);
    }
    Ok(())
}

/// Products with fewer rows than this split their columns over the threads (see `gemm_onto`).
const SKINNY_ROWS: usize = 48;
/// The fewest columns a thread's band of a skinny product gets.
const MIN_BAND: usize = 64;

/// A pointer a band of a product may take to another thread.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the bands of one product read its operands and write disjoint columns of its output,
// all of which outlive the scope the bands run in.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

/// `dst` (cols × rows, row-major) ← the transpose of `src` (rows × cols, row-major). Each task
/// writes a band of `TILE` rows of `dst` (columns of `src`), walking `src` a `TILE`-wide strip
/// at a time, so both sides stay in cache; large matrices split the bands over the pool.
pub(crate) fn transpose_into<T: Copy + Send + Sync>(
    src: &[T],
    rows: usize,
    cols: usize,
    dst: &mut [T],
) {
    const TILE: usize = 32;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    let band = |(b, out): (usize, &mut [T])| {
        let c0 = b * TILE;
        let width = out.len() / rows.max(1);
        for r in 0..rows {
            let strip = &src[r * cols + c0..r * cols + c0 + width];
            for (c, &v) in strip.iter().enumerate() {
                out[c * rows + r] = v;
            }
        }
    };
    if rows * cols >= super::PAR_MIN && crate::kernels::threads() > 1 {
        use rayon::prelude::*;
        dst[..rows * cols]
            .par_chunks_mut(TILE * rows.max(1))
            .enumerate()
            .for_each(band);
    } else {
        dst[..rows * cols]
            .chunks_mut(TILE * rows.max(1))
            .enumerate()
            .for_each(band);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skinny_products_split_by_columns_match_the_definition() {
        // Few rows (split by columns over the threads) and enough rows (the crate's own split),
        // either operand transposed, onto zeros, a bias row, or the output's own values.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for (m, k, n) in [
            (1, 3, 200),
            (28, 50, 300),
            (47, 7, 129),
            (5, 64, 1000),
            (60, 40, 200),
            (40, 9, 40),
            (3, 4, 0),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                let value = |r: usize, c: usize, s: usize| ((r * 7 + c * 3 + s) % 13) as f64 - 6.0;
                let a_shape = if ta { [k, m] } else { [m, k] };
                let b_shape = if tb { [n, k] } else { [k, n] };
                let a = ArrayD::from_shape_fn(IxDyn(&a_shape), |i| value(i[0], i[1], 1));
                let b = ArrayD::from_shape_fn(IxDyn(&b_shape), |i| value(i[0], i[1], 2));
                // A bias row (`[n]`, `[1, n]`: copied row by row) and a bias column (`[m, 1]`,
                // broadcast along the rows; square products tell the two apart) and a bias of the
                // output's shape.
                let bias_row = ArrayD::from_shape_fn(IxDyn(&[n]), |i| value(i[0], 0, 3));
                let bias_row2 = bias_row
                    .clone()
                    .into_shape_with_order(IxDyn(&[1, n]))
                    .unwrap();
                let bias_col = ArrayD::from_shape_fn(IxDyn(&[m, 1]), |i| value(i[0], 0, 4));
                let bias_full = ArrayD::from_shape_fn(IxDyn(&[m, n]), |i| value(i[0], i[1], 5));
                let op = |x: &ArrayD<f64>, t: bool, r: usize, c: usize| {
                    if t { x[[c, r]] } else { x[[r, c]] }
                };
                let want = |r: usize, c: usize| {
                    0.5 * (0..k)
                        .map(|j| op(&a, ta, r, j) * op(&b, tb, j, c))
                        .sum::<f64>()
                };
                let product = Gemm {
                    transpose_a: ta,
                    transpose_b: tb,
                    alpha: 0.5,
                    bias_add: None,
                };
                let views = [
                    bias_row.view(),
                    bias_row2.view(),
                    bias_col.view(),
                    bias_full.view(),
                ];
                let inits = [
                    Init::Zero,
                    Init::Bias(&views[0]),
                    Init::Bias(&views[1]),
                    Init::Bias(&views[2]),
                    Init::Bias(&views[3]),
                    Init::Out,
                ];
                for (which, init) in inits.into_iter().enumerate() {
                    let mut out: Vec<f64> = (0..m * n).map(|i| (i % 5) as f64).collect();
                    let before = out.clone();
                    pool.install(|| {
                        gemm_onto(&a.view(), &b.view(), init, &product, &mut out, 3, None).unwrap()
                    });
                    for r in 0..m {
                        for c in 0..n {
                            let onto = match which {
                                0 => 0.0,
                                1 | 2 => bias_row[[c]],
                                3 => bias_col[[r, 0]],
                                4 => bias_full[[r, c]],
                                _ => before[r * n + c],
                            };
                            assert_eq!(
                                out[r * n + c],
                                want(r, c) + onto,
                                "{m}x{k}x{n} {ta} {tb}, init {which}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn f32_products_onto_a_whole_bias_read_it_in_place() {
        // gradus's own f32 kernel (where the machine has it) reads a bias of the output's
        // shape where it starts, instead of a copy in the output; small integers keep every
        // sum exact.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (m, k, n) in [(100, 300, 200), (13, 40, 33), (7, 0, 5)] {
            let value = |r: usize, c: usize, s: usize| ((r * 7 + c * 3 + s) % 13) as f32 - 6.0;
            let a = ArrayD::from_shape_fn(IxDyn(&[m, k]), |i| value(i[0], i[1], 1));
            let b = ArrayD::from_shape_fn(IxDyn(&[k, n]), |i| value(i[0], i[1], 2));
            let w = ArrayD::from_shape_fn(IxDyn(&[m, n]), |i| value(i[0], i[1], 3));
            let product = Gemm {
                transpose_a: false,
                transpose_b: false,
                alpha: -0.5,
                bias_add: None,
            };
            let run = |init: Init<f32>| {
                let mut out = vec![f32::NAN; m * n];
                pool.install(|| {
                    gemm_onto(&a.view(), &b.view(), init, &product, &mut out, 2, None).unwrap()
                });
                out
            };
            let (w_view, plain) = (w.view(), run(Init::Zero));
            let onto = run(Init::Bias(&w_view));
            for (i, (x, y)) in onto.iter().zip(&plain).enumerate() {
                assert_eq!(*x, y + w.as_slice().unwrap()[i], "{m}x{k}x{n} at {i}");
            }
        }
    }

    #[test]
    fn transpose_matches_the_definition_serial_and_parallel() {
        // Shapes below and above the parallel threshold, with ragged last bands.
        for (rows, cols) in [(1, 1), (3, 70), (100, 784), (257, 300)] {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32).collect();
            let mut dst = vec![0.0; rows * cols];
            transpose_into(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(
                        dst[c * rows + r],
                        src[r * cols + c],
                        "{rows}x{cols} at {r},{c}"
                    );
                }
            }
        }
    }
}
