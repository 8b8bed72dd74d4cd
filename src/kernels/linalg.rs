//! The matrix product of the `matmul` op as written (2-d, or batched over the first dim): by
//! [`gemm`](super::gemm)'s kernels when fast, by the textbook triple loop accumulated in `f64`
//! for the reference. The optimizer turns 2-d products into gemm nodes of their own.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

use super::Exec;
use crate::dtype::Float;
use crate::shape;

pub(crate) fn matmul<T: Float>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    exec: Exec,
) -> Result<ArrayD<T>, String> {
    let mm = |a: ArrayViewD<T>, b: ArrayViewD<T>| -> Result<ndarray::Array2<T>, String> {
        let a = a
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| e.to_string())?;
        let b = b
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| e.to_string())?;
        let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
        if b.nrows() != k {
            return Err(format!(
                "inner dims differ: {} vs {}",
                shape::show(a.shape()),
                shape::show(b.shape())
            ));
        }
        if exec.is_fast() {
            let mut out = vec![T::zero(); m * n];
            let plain = super::gemm::Gemm {
                transpose_a: false,
                transpose_b: false,
                alpha: 1.0,
                bias_add: None,
            };
            let threads = crate::kernels::threads();
            let (a, b) = (a.into_dyn(), b.into_dyn());
            super::gemm::gemm_onto(
                &a,
                &b,
                super::gemm::Init::Zero,
                &plain,
                &mut out,
                threads,
                None,
            )?;
            ndarray::Array2::from_shape_vec((m, n), out).map_err(|e| e.to_string())
        } else {
            // The reference: the textbook triple loop, accumulated in f64.
            Ok(ndarray::Array2::from_shape_fn((m, n), |(i, j)| {
                T::from_f((0..k).map(|p| a[[i, p]].to_f() * b[[p, j]].to_f()).sum())
            }))
        }
    };
    match (a.ndim(), b.ndim()) {
        (2, _) => Ok(mm(a.view(), b.view())?.into_dyn()),
        // [N, T, D] @ [D, H]: one product of the N T rows.
        (3, 2) => {
            let (n, t, d) = (a.shape()[0], a.shape()[1], a.shape()[2]);
            let rows = a
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order((n * t, d))
                .map_err(|e| e.to_string())?;
            let y = mm(rows.into_dyn().view(), b.view())?;
            let h = y.ncols();
            y.into_shape_with_order(IxDyn(&[n, t, h]))
                .map_err(|e| e.to_string())
        }
        _ => {
            let batch = a.shape()[0];
            if b.shape()[0] != batch {
                return Err(format!(
                    "batch dims differ: {} vs {}",
                    shape::show(a.shape()),
                    shape::show(b.shape())
                ));
            }
            let mats = (0..batch)
                .map(|i| mm(a.index_axis(Axis(0), i), b.index_axis(Axis(0), i)))
                .collect::<Result<Vec<_>, _>>()?;
            let views: Vec<_> = mats.iter().map(|m| m.view()).collect();
            let (m, n) = (a.shape()[1], b.shape()[2]);
            if views.is_empty() {
                return Ok(ArrayD::zeros(IxDyn(&[0, m, n])));
            }
            ndarray::stack(Axis(0), &views)
                .map(|s| s.into_dyn())
                .map_err(|e| e.to_string())
        }
    }
}
