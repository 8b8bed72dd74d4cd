//! `CustomOp`: how users add their own ops (for example sampling ops for a CD negative phase).

use crate::error::{Error, Result};
use crate::graph::{Expr, Type};
use crate::tensor::Tensor;

/// A user-defined op. Implement the forward computation for `f32` and `f64` tensors, shape
/// inference, and a gradient written as a graph.
///
/// An op has a gradient or says it has none on purpose:
/// - implement [`CustomOp::vjp`] for an op gradients flow through; `grad` checks nothing in
///   it, so check it with [`GradCheck`](crate::gradcheck::GradCheck);
/// - return `true` from [`CustomOp::stops_gradient`] for an op that is not differentiable on
///   purpose (a sampler): `grad` then treats it like
///   [`stop_gradient`](crate::Expr::stop_gradient), and its inputs get no gradient through it.
///
/// An op that does neither is an error from `grad` as soon as it lies on a path from the cost
/// to a variable, naming the op and the line that applied it: a missing gradient is never a
/// silent zero.
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

    /// The vector-Jacobian product: given the inputs, the output and the output's cotangent
    /// `dy`, one entry per input, `None` for an input that gets no gradient (an index, a
    /// mask). The default is [`Error::MissingGradient`], at the line that applied the op.
    fn vjp(&self, inputs: &[Expr], output: &Expr, dy: &Expr) -> Result<Vec<Option<Expr>>> {
        let _ = (inputs, dy);
        Err(Error::MissingGradient {
            op: self.name().to_string(),
            loc: output.location(),
        })
    }

    /// Is the op not differentiable on purpose (a sampler)? Then `grad` never calls
    /// [`CustomOp::vjp`] and passes no gradient through the op, as through `stop_gradient`.
    fn stops_gradient(&self) -> bool {
        false
    }

    /// Random ops are never merged with each other, even with equal inputs.
    fn is_random(&self) -> bool {
        false
    }
}
