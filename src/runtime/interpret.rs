//! The reference interpreter: evaluates a list of nodes in order with the reference kernels,
//! keeping every value. It is slow and obviously correct, and it is the one oracle: reference
//! programs (and so [`eval`](crate::eval)) run on it, and the debug mode runs every node the
//! optimizer saw on it.

use std::sync::Arc;

use super::{node_error, reserve};
use crate::compile::ir::{Kind, Node, eval_kind};
use crate::error::{Error, Result};
use crate::graph::Type;
use crate::kernels::Exec;
use crate::tensor::Tensor;

/// The values of an interpreted node list.
pub(crate) struct Interpreted {
    /// The value of each node; `None` where its kernel failed or an operand has none.
    pub values: Vec<Option<Arc<Tensor>>>,
    /// The first failure, in node order.
    pub first_error: Option<Error>,
}

/// Evaluate `nodes` (operands before users) on `inputs`, every node with the reference kernels.
/// A failure does not stop the run: the failed node and those that read it have no value.
pub(crate) fn interpret(nodes: &[Node], inputs: &[Tensor], limit: Option<usize>) -> Interpreted {
    let mut values: Vec<Option<Arc<Tensor>>> = Vec::with_capacity(nodes.len());
    let mut first_error: Option<Error> = None;
    for n in nodes {
        let v = match &n.kind {
            Kind::Input { position, .. } => Some(Arc::new(inputs[*position].clone())),
            Kind::Constant(c) => Some(c.clone()),
            Kind::Shared(s) => Some(s.value.read().unwrap_or_else(|p| p.into_inner()).clone()),
            kind => {
                let args: Option<Vec<&Tensor>> =
                    n.inputs.iter().map(|&i| values[i].as_deref()).collect();
                let types: Vec<&Type> = n.inputs.iter().map(|&i| &nodes[i].ty).collect();
                let run = |a: Vec<&Tensor>| {
                    reserve(n, &a, limit).map_err(|f| f.at(n))?;
                    eval_kind(kind, &a, &types, &n.ty, Exec::Reference)
                        .map_err(|e| node_error(n, e))
                };
                match args.map(run) {
                    Some(Ok(t)) => Some(Arc::new(t)),
                    Some(Err(e)) => {
                        first_error.get_or_insert(e);
                        None
                    }
                    None => None,
                }
            }
        };
        values.push(v);
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
