//! `CustomOp`: how users add their own ops (for example sampling ops for a CD negative phase).

use crate::error::Result;
use crate::graph::{Expr, Type};
use crate::tensor::Tensor;

/// A user-defined op. Implement the forward computation for `f32` and `f64` tensors, shape
/// inference, and optionally a gradient written as a graph.
///
/// A custom node is interned by the identity of the `Arc` it was created from, so applying the
/// same op object to the same inputs twice gives one node; create a new object (or return `true`
/// from [`CustomOp::is_random`]) for ops that must not merge.
pub trait CustomOp: Send + Sync + 'static {
    /// Name used in printing and errors.
    fn name(&self) -> &str;

    /// The output type for these input types; `Err` with a message for a misuse.
    fn infer(&self, inputs: &[Type]) -> std::result::Result<Type, String>;

    /// Compute the output from concrete inputs (their dtypes are the ones given to `infer`).
    fn forward(&self, inputs: &[&Tensor]) -> std::result::Result<Tensor, String>;

    /// The vector-Jacobian product: one entry per input, `None` for an input that gets no
    /// gradient. The default says the op is not differentiable (all inputs get none).
    fn vjp(&self, inputs: &[Expr], output: &Expr, dy: &Expr) -> Result<Vec<Option<Expr>>> {
        let _ = (output, dy);
        Ok(vec![None; inputs.len()])
    }

    /// Random ops are never merged with each other, even with equal inputs.
    fn is_random(&self) -> bool {
        false
    }
}
