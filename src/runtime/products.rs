//! Products: a product node's buffers (a pooled output, or a dying bias's own buffer to
//! accumulate onto), its computation through the `gemm` crate, and two independent products
//! run side by side, each on half of the pool.

use ndarray::{ArrayViewD, IxDyn};

use super::pool::{Pool, Pooled};
use super::{Executor, Failure, Value, float_view, operand, shaped};
use crate::compile::ir::Kind;
use crate::error::{Error, Result};
use crate::kernels::gemm::{self, Gemm};
use crate::tensor::Tensor;

/// A product with its buffers taken: the output (a dying bias's own buffer, or a pooled one),
/// for a transposed left operand the `gemm` crate would pack, a pooled buffer to transpose it
/// into, and the space gradus's own kernel packs panels into (pooled, so that which threads
/// run the product does not decide whether a warm call allocates).
pub(super) struct GemmJob<T> {
    out: Vec<T>,
    at: Option<Vec<T>>,
    scratch: Vec<T>,
    own_bias: bool,
    /// Rows, inner dim and columns.
    dims: (usize, usize, usize),
    product: Gemm,
}

impl Executor {
    /// Two independent products at once (see the planner's `pair_products`), each on half the pool's
    /// threads; one after the other where either is too small to be worth it.
    pub(super) fn gemm_pair<T: Pooled>(
        &self,
        j: usize,
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Result<(Tensor, Tensor)> {
        let err = |k: usize| move |f: Failure| f.at(&self.program.nodes[k]);
        let mut first = self
            .gemm_job::<T>(j, inputs, values, pool)
            .map_err(err(j))?;
        let mut second = match self.gemm_job::<T>(j + 1, inputs, values, pool) {
            Ok(job) => job,
            Err(e) => {
                pool.keep_vec(first.out);
                return Err(err(j + 1)(e));
            }
        };
        let flops = |job: &GemmJob<T>| job.dims.0 * job.dims.1 * job.dims.2;
        let threads = crate::kernels::threads();
        let values = &*values;
        let (a, b) = if threads > 1 && flops(&first).min(flops(&second)) >= gemm::PAR_MIN_FLOPS {
            let half = threads / 2;
            rayon::join(
                || self.gemm_run(&mut first, j, inputs, values, half),
                || self.gemm_run(&mut second, j + 1, inputs, values, threads - half),
            )
        } else {
            (
                self.gemm_run(&mut first, j, inputs, values, threads),
                self.gemm_run(&mut second, j + 1, inputs, values, threads),
            )
        };
        let a = Self::gemm_finish(first, pool, a).map_err(err(j));
        let b = Self::gemm_finish(second, pool, b).map_err(err(j + 1));
        Ok((a?, b?))
    }

    /// Check the operands of product node `j` and take its buffers: a pooled one for the
    /// result or, with a bias of the output's shape that dies here, the bias's own buffer, which
    /// the product accumulates onto (the second weight gradient of a CD step adds onto the first
    /// without a copy).
    pub(super) fn gemm_job<T: Pooled>(
        &self,
        j: usize,
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
    ) -> Result<GemmJob<T>, Failure> {
        let n = &self.program.nodes[j];
        let Kind::Gemm(product) = n.kind else {
            unreachable!("a gemm job is made for a product node")
        };
        let (a, b) = (
            operand(values, inputs, n.inputs[0]),
            operand(values, inputs, n.inputs[1]),
        );
        let (m, k, cols) = product.dims(a.shape(), b.shape())?;
        // The space gradus's own kernel would pack panels into.
        let space = match (float_view::<T>(a), float_view::<T>(b)) {
            (Ok(a), Ok(b)) => gemm::scratch_len(&a, &b, &product, crate::kernels::threads()),
            // (`gemm_run` reports it.)
            _ => 0,
        };
        // The bias stretches only as the `add` it replaced would have let it, and a mismatch is
        // that add's error.
        if let Some(&c) = n.inputs.get(2) {
            let declared = &self.program.nodes[c].ty.shape;
            let bias = operand(values, inputs, c).shape();
            if let Err(detail) = product.check_bias(&n.ty.shape, declared, bias, (m, cols)) {
                return Err(match product.bias_add {
                    Some(add) => Failure::Located(Error::Runtime {
                        op: add.op.into(),
                        detail,
                        loc: add.loc,
                    }),
                    None => Failure::Shape(detail),
                });
            }
        }
        let own_bias = n.inputs.get(2).copied().filter(|&c| {
            !n.inputs[..2].contains(&c) && self.can_take::<T>(c, j, values, &[m, cols])
        });
        let out = match own_bias {
            Some(c) => Self::take_buffer(values, c),
            None => pool.take::<T>(&[m, cols])?,
        };
        // The gemm crate would allocate a packing buffer for a transposed left operand on
        // every call: it is transposed into a pooled buffer instead.
        let at = if product.transpose_a && gemm::packs_transposed_lhs::<T>(m, k, cols) {
            match pool.take::<T>(&[m, k]) {
                Ok(buf) => Some(buf),
                Err(e) => {
                    pool.keep_vec(out);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let scratch = match pool.take_space::<T>(space) {
            Ok(buf) => buf,
            Err(e) => {
                pool.keep_vec(out);
                at.into_iter().for_each(|at| pool.keep_vec(at));
                return Err(e);
            }
        };
        Ok(GemmJob {
            out,
            at,
            scratch,
            own_bias: own_bias.is_some(),
            dims: (m, k, cols),
            product,
        })
    }

    /// Compute the product of node `j` into its job's buffers, on up to `threads` threads.
    pub(super) fn gemm_run<T: Pooled>(
        &self,
        job: &mut GemmJob<T>,
        j: usize,
        inputs: &[&Tensor],
        values: &[Option<Value>],
        threads: usize,
    ) -> std::result::Result<(), String> {
        let n = &self.program.nodes[j];
        let a = float_view::<T>(operand(values, inputs, n.inputs[0]))?;
        let b = float_view::<T>(operand(values, inputs, n.inputs[1]))?;
        let bias = match (job.own_bias, n.inputs.get(2)) {
            (false, Some(&c)) => Some(float_view::<T>(operand(values, inputs, c))?),
            _ => None,
        };
        let init = match (&bias, job.own_bias) {
            (Some(v), _) => gemm::Init::Bias(v),
            (None, true) => gemm::Init::Out,
            (None, false) => gemm::Init::Zero,
        };
        let (m, k, _) = job.dims;
        match &mut job.at {
            Some(at) => {
                match a.as_slice() {
                    Some(src) => gemm::transpose_into(src, k, m, at),
                    None => at.iter_mut().zip(a.t().iter()).for_each(|(o, v)| *o = *v),
                }
                let a2 =
                    ArrayViewD::from_shape(IxDyn(&[m, k]), &at[..]).map_err(|e| e.to_string())?;
                let product = Gemm {
                    transpose_a: false,
                    ..job.product
                };
                gemm::gemm_onto(&a2, &b, init, &product, &mut job.out, threads, None)
            }
            None => {
                let lent = Some(&mut job.scratch[..]);
                gemm::gemm_onto(&a, &b, init, &job.product, &mut job.out, threads, lent)
            }
        }
    }

    /// The result of a product job, its transposition buffer and packing space back in the
    /// pool.
    pub(super) fn gemm_finish<T: Pooled>(
        job: GemmJob<T>,
        pool: &mut Pool,
        done: std::result::Result<(), String>,
    ) -> Result<Tensor, Failure> {
        if let Some(at) = job.at {
            pool.keep_vec(at);
        }
        pool.keep_vec(job.scratch);
        match done {
            Ok(()) => Ok(shaped(job.out, &[job.dims.0, job.dims.2])?),
            Err(e) => {
                pool.keep_vec(job.out);
                Err(e.into())
            }
        }
    }
}
