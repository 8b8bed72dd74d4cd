//! Single-precision products by one column on AVX-512 (a matrix by a vector), for
//! [`super::sgemm`]: its tiles are 32 columns wide and would use one lane of them.

use super::sgemm::{Onto, Operand, Product, Ptr};

/// `product` (`c ← alpha · a @ b + onto`, `a` m×k) for a `b` of one column (a matrix by a
/// vector), on one thread: the kernel's tiles are 32 columns wide and would use one lane of
/// them (0.03–0.07 ms for the `[100, 784] @ [784, 1]` of an RBM's free energy and its gradient). An `a` whose columns are
/// contiguous (`xᵀ`) is added column by column onto the sums of a block of rows; one whose rows
/// are, row by row in sixteen partial sums. Either way the sum runs in a fixed order.
#[target_feature(enable = "avx512f,fma")]
pub(super) unsafe fn column(m: usize, product: &Product) {
    let Product {
        k,
        a,
        b,
        c: Ptr(c),
        ldc,
        alpha,
        onto,
    } = *product;
    const ROWS: usize = 256;
    const LANES: usize = 16;
    let at = |x: Operand, r: usize, p: usize| unsafe {
        *x.ptr.offset(r as isize * x.rs + p as isize * x.cs)
    };
    let finish = |r: usize, sum: f32| unsafe {
        let dst = c.add(r * ldc);
        let init = match onto {
            Onto::Zero => 0.0,
            Onto::Out => *dst,
            Onto::From(from) => *from.add(r * ldc),
        };
        *dst = sum * alpha + init;
    };
    if a.rs == 1 && a.cs != 1 {
        for r0 in (0..m).step_by(ROWS) {
            let rows = ROWS.min(m - r0);
            let mut sums = [0.0f32; ROWS];
            for p in 0..k {
                let (bp, col) = (at(b, p, 0), unsafe {
                    a.ptr.offset(p as isize * a.cs + r0 as isize)
                });
                let col = unsafe { std::slice::from_raw_parts(col, rows) };
                for (s, &x) in sums[..rows].iter_mut().zip(col) {
                    *s = x.mul_add(bp, *s);
                }
            }
            for (i, &s) in sums[..rows].iter().enumerate() {
                finish(r0 + i, s);
            }
        }
    } else if a.cs == 1 && b.rs == 1 {
        let bs = unsafe { std::slice::from_raw_parts(b.ptr, k) };
        for r in 0..m {
            let row = unsafe { std::slice::from_raw_parts(a.ptr.offset(r as isize * a.rs), k) };
            let mut lanes = [0.0f32; LANES];
            let (whole, rest) = (row.chunks_exact(LANES), bs.chunks_exact(LANES));
            let (tail_a, tail_b) = (whole.remainder(), rest.remainder());
            for (x, y) in whole.zip(rest) {
                for l in 0..LANES {
                    lanes[l] = x[l].mul_add(y[l], lanes[l]);
                }
            }
            let mut sum = lanes.iter().sum::<f32>();
            for (x, y) in tail_a.iter().zip(tail_b) {
                sum = x.mul_add(*y, sum);
            }
            finish(r, sum);
        }
    } else {
        for r in 0..m {
            let sum = (0..k).fold(0.0f32, |s, p| at(a, r, p).mul_add(at(b, p, 0), s));
            finish(r, sum);
        }
    }
}
