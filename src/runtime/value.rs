//! The values of a run: what each node's slot holds while a program runs, and the bytes the
//! run owns for it.

use std::sync::Arc;

use super::loops;
use crate::dtype::DType;
use crate::tensor::Tensor;

/// A value during a run: an input of the call (by position), a constant or a shared variable's
/// value (shared with the graph), or a buffer the run owns.
pub(crate) enum Value {
    Fed(usize),
    Shared(Arc<Tensor>),
    Owned(Tensor),
    /// A loop's per-step values, in sequence order, which only loops read (as a sequence; see
    /// the plan's `as_steps`).
    Steps(Vec<Tensor>),
}

impl Value {
    pub(super) fn get<'a>(&'a self, inputs: &[&'a Tensor]) -> &'a Tensor {
        match self {
            Value::Fed(k) => inputs[*k],
            Value::Shared(t) => t,
            Value::Owned(t) => t,
            Value::Steps(_) => unreachable!("per-step lists are read by loops, as sequences"),
        }
    }

    /// As a loop's operand.
    pub(super) fn arg<'a>(&'a self, inputs: &[&'a Tensor]) -> loops::Arg<'a> {
        match self {
            Value::Steps(steps) => loops::Arg::Steps(steps),
            v => loops::Arg::One(v.get(inputs)),
        }
    }

    /// The bytes this run owns for it.
    pub(super) fn owned_bytes(&self) -> usize {
        match self {
            Value::Owned(t) => bytes(t),
            Value::Steps(steps) => steps.iter().map(bytes).sum(),
            _ => 0,
        }
    }
}

/// The bytes of a tensor's elements.
pub(super) fn bytes(t: &Tensor) -> usize {
    let per = match t.dtype() {
        DType::F32 => 4,
        DType::Bool => 1,
        _ => 8,
    };
    t.len() * per
}
