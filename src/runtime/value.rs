//! The values of a run: what each node's slot holds while a program runs, and the bytes the
//! run owns for it.

use std::sync::{Arc, Mutex};

use super::loops;
use super::pool::Pool;
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
    /// The per-step lists of a loop split by rows, one per part.
    Parts(Vec<PartList>),
}

/// The per-step list one part of a loop split by rows made.
pub(crate) struct PartList {
    /// The part's rows.
    pub rows: std::ops::Range<usize>,
    /// Its value at each step, in sequence order.
    pub steps: Vec<Tensor>,
    /// The pool the part ran on, where its buffers go back (`None`: the pool of the run that
    /// ran the loop), so that each part's pool keeps the buffers it needs from call to call.
    pub home: Option<Arc<Mutex<Pool>>>,
}

impl Value {
    pub(super) fn get<'a>(&'a self, inputs: &[&'a Tensor]) -> &'a Tensor {
        match self {
            Value::Fed(k) => inputs[*k],
            Value::Shared(t) => t,
            Value::Owned(t) => t,
            Value::Steps(_) | Value::Parts(_) => {
                unreachable!("per-step lists are read by loops, as sequences")
            }
        }
    }

    /// As a loop's operand.
    pub(super) fn arg<'a>(&'a self, inputs: &[&'a Tensor]) -> loops::Arg<'a> {
        match self {
            Value::Steps(steps) => loops::Arg::Steps(steps),
            Value::Parts(parts) => loops::Arg::Parts(parts),
            v => loops::Arg::One(v.get(inputs)),
        }
    }

    /// Give the buffers the run owns for it back to `pool`.
    pub(super) fn give_to(self, pool: &mut Pool) {
        match self {
            Value::Owned(t) => pool.give(t),
            Value::Steps(steps) => steps.into_iter().for_each(|t| pool.give(t)),
            Value::Parts(parts) => {
                for part in parts {
                    match part.home {
                        Some(home) => {
                            let mut home = home.lock().unwrap_or_else(|e| e.into_inner());
                            part.steps.into_iter().for_each(|t| home.give(t));
                        }
                        None => part.steps.into_iter().for_each(|t| pool.give(t)),
                    }
                }
            }
            Value::Fed(_) | Value::Shared(_) => {}
        }
    }

    /// The bytes this run owns for it.
    pub(super) fn owned_bytes(&self) -> usize {
        match self {
            Value::Owned(t) => bytes(t),
            Value::Steps(steps) => steps.iter().map(bytes).sum(),
            Value::Parts(parts) => parts.iter().flat_map(|p| &p.steps).map(bytes).sum(),
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
