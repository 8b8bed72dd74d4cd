//! The reference interpreter: evaluates a list of nodes in order with the reference kernels,
//! keeping every value. It is slow and obviously correct, and it is the one oracle: reference
//! programs (and so [`eval`](crate::eval)) run on it, and the debug mode runs every node the
//! optimizer saw on it.

use std::sync::Arc;
use std::time::Instant;

use super::loops::LoopCache;
use super::{Executor, NodeTime, guard, kernel_error, reserve};
use crate::compile::ir::{Kind, Node, eval_kind};
use crate::error::{Error, Result};
use crate::graph::op::Op;
use crate::graph::{SharedVar, Type};
use crate::kernels::Exec;
use crate::tensor::Tensor;

/// The values of an interpreted node list.
pub(crate) struct Interpreted {
    /// The value of each node; `None` where its kernel failed or an operand has none.
    pub values: Vec<Option<Arc<Tensor>>>,
    /// The first failure, in node order.
    pub first_error: Option<Error>,
}

/// What a failure does to the rest of the run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnError {
    /// Nothing more runs (a call: custom ops after the failure do not run either).
    Stop,
    /// Every node that can still be computed is (the debug mode compares them all).
    Continue,
}

/// How to interpret: the memory limit, what a failure does, the NaN guard, and where to add
/// each node's time when profiling.
pub(crate) struct Settings<'a> {
    pub limit: Option<usize>,
    pub on_error: OnError,
    pub nan_guard: bool,
    pub times: Option<&'a mut [NodeTime]>,
    /// The call's snapshot of the shared variables (the variables with their values, in one
    /// order); without one, a variable is read when its node runs.
    pub shared: Option<Snapshot<'a>>,
    /// The executor whose body runners run the loops.
    pub loops: Option<&'a Executor>,
}

/// The shared variables a program reads (with their nodes), and their values for one call.
pub(crate) type Snapshot<'a> = (&'a [(usize, Arc<SharedVar>)], &'a [Arc<Tensor>]);

/// Evaluate `nodes` (operands before users) on `inputs`, every node with the reference kernels.
/// A node that fails, and those that read it, have no value; the first failure is kept.
pub(crate) fn interpret(nodes: &[Node], inputs: &[&Tensor], mut settings: Settings) -> Interpreted {
    let mut values: Vec<Option<Arc<Tensor>>> = vec![None; nodes.len()];
    let mut first_error: Option<Error> = None;
    let mut loop_cache = LoopCache::default();
    let mut loop_pool = super::pool::Pool::default();
    for (k, n) in nodes.iter().enumerate() {
        let start = settings.times.as_ref().map(|_| Instant::now());
        let v = match &n.kind {
            Kind::Input { position, .. } => Ok(Some(Arc::new((*inputs[*position]).clone()))),
            Kind::Constant(c) => Ok(Some(c.clone())),
            Kind::Shared(s) => {
                let held = settings.shared.and_then(|(vars, values)| {
                    vars.iter()
                        .position(|(_, v)| Arc::ptr_eq(v, s))
                        .map(|k| values[k].clone())
                });
                Ok(Some(held.unwrap_or_else(|| s.read())))
            }
            Kind::Loop { .. } | Kind::Op(Op::Loop { .. }) => {
                let args: Option<Vec<&Tensor>> =
                    n.inputs.iter().map(|&i| values[i].as_deref()).collect();
                let executor = settings
                    .loops
                    .expect("a program with loops has their runners");
                args.map(|a| {
                    executor
                        .loop_result(n, &n.inputs, &a, &mut loop_cache, &mut loop_pool)
                        .map(Arc::new)
                })
                .transpose()
            }
            kind => {
                let args: Option<Vec<&Tensor>> =
                    n.inputs.iter().map(|&i| values[i].as_deref()).collect();
                let types: Vec<&Type> = n.inputs.iter().map(|&i| &nodes[i].ty).collect();
                let run = |a: Vec<&Tensor>| {
                    reserve(n, &a, settings.limit).map_err(|f| f.at(n))?;
                    let out = eval_kind(kind, &a, &types, &n.ty, Exec::Reference)
                        .map_err(|e| kernel_error(n, &a, e))?;
                    if settings.nan_guard {
                        guard::check(n, &out, &a)?;
                    }
                    Ok(Arc::new(out))
                };
                args.map(run).transpose()
            }
        };
        if let (Some(times), Some(start)) = (settings.times.as_mut(), start) {
            times[k].calls += 1;
            times[k].nanos += start.elapsed().as_nanos() as u64;
        }
        match v {
            Ok(v) => values[k] = v,
            Err(e) => {
                first_error.get_or_insert(e);
                if settings.on_error == OnError::Stop {
                    break;
                }
            }
        }
    }
    Interpreted {
        values,
        first_error,
    }
}

impl Interpreted {
    /// The values of `roots`, or the first failure if one of them has none.
    pub fn take(&mut self, roots: &[usize], nodes: &[Node]) -> Result<Vec<Tensor>> {
        roots
            .iter()
            .map(|&r| match &self.values[r] {
                Some(t) => Ok((**t).clone()),
                None => Err(self.first_error.clone().unwrap_or_else(|| Error::Runtime {
                    op: nodes[r].kind.user_name(),
                    detail: "an operand failed".into(),
                    loc: nodes[r].loc,
                })),
            })
            .collect()
    }
}
