//! Matrix products through the `gemm` crate, specialised as the optimizer's `Gemm` node asks:
//! `alpha · op(a) @ op(b) (+ bias)`. A transpose is only a swap of strides; a bias is copied
//! into the output first and the product accumulated onto it. `gemm` keeps its packing buffers
//! per thread, so a product allocates nothing once warm.

use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};

use crate::dtype::Float;
use crate::shape;

/// Below this many multiply-adds a product runs on one thread.
pub(crate) const PAR_MIN_FLOPS: usize = 1 << 16;

/// Rows, inner dim and columns of `op(a) @ op(b)`.
pub(crate) fn dims(
    a: &[usize],
    b: &[usize],
    ta: bool,
    tb: bool,
) -> Result<(usize, usize, usize), String> {
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

/// Would the `gemm` crate allocate a packing buffer for a transposed left operand of this
/// product? (It does for products big enough to be split into blocks.)
pub(crate) fn packs_transposed_lhs(m: usize, k: usize, n: usize) -> bool {
    n > 1 && m * n * k >= PAR_MIN_FLOPS
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

/// `out ← alpha · op(a) @ op(b) + init`, `out` contiguous `[m, n]`, on up to `threads`
/// threads of the current rayon pool (one below [`PAR_MIN_FLOPS`] multiply-adds).
pub(crate) fn gemm_onto<T: Float>(
    a: &ArrayViewD<T>,
    b: &ArrayViewD<T>,
    init: Init<T>,
    (ta, tb, alpha): (bool, bool, f64),
    out: &mut [T],
    threads: usize,
) -> Result<(), String> {
    let (m, k, n) = dims(a.shape(), b.shape(), ta, tb)?;
    if out.len() != m * n {
        return Err(format!(
            "output buffer of {} elements for [{m}, {n}]",
            out.len()
        ));
    }
    if let Init::Bias(c) = init {
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
    let parallelism = if threads > 1 && m * n * k >= PAR_MIN_FLOPS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `a` and `b` are live views whose strides describe `op(a)` as m×k and `op(b)` as
    // k×n (checked by `dims`); `out` holds exactly m×n elements, row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            !matches!(init, Init::Zero),
            a.as_ptr(),
            csa,
            rsa,
            b.as_ptr(),
            csb,
            rsb,
            T::one(),
            T::from_f(alpha),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
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
    if rows * cols >= super::PAR_MIN && rayon::current_num_threads() > 1 {
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
