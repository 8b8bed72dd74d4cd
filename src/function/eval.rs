//! The reference evaluator: evaluates the user's graph directly, node by node in id order (ids
//! are a topological order), keeping every value, with the plain kernels. It is slow and
//! obviously correct, and it is the oracle compiled plans are tested against.

use std::collections::HashMap;

use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::graph::{Expr, NodeId, Type};
use crate::kernels;
use crate::shape;
use crate::tensor::Tensor;

/// Evaluate `outputs` given values for the inputs they depend on.
///
/// ```
/// use gradus::prelude::*;
/// let g = Graph::new();
/// let x = g.vector("x", DType::F64);
/// let y = x.sum() * 2.0;
/// let v = gradus::eval(&[&y], &[(&x, vec![1.0, 2.0].into())]).unwrap();
/// assert_eq!(v[0].item().unwrap(), 6.0);
/// ```
#[track_caller]
pub fn eval(outputs: &[&Expr], feeds: &[(&Expr, Tensor)]) -> Result<Vec<Tensor>> {
    let at = Location::caller();
    let Some(first) = outputs.first() else {
        return Ok(vec![]);
    };
    let graph = first.graph.clone();
    graph.check(&outputs.iter().map(|e| e.id).collect::<Vec<_>>())?;
    let mut fed: HashMap<NodeId, &Tensor> = HashMap::new();
    for (e, t) in feeds {
        if !e.graph.same(&graph) {
            return Err(Error::Usage {
                what: format!("feed {} belongs to another graph", e.name()),
                loc: at,
            });
        }
        let ty = e.ty();
        if t.dtype() != ty.dtype {
            return Err(Error::FeedDType {
                name: e.name(),
                expected: ty.dtype.to_string(),
                got: t.dtype().to_string(),
            });
        }
        if !ty.shape.matches(t.shape()) {
            return Err(Error::FeedShape {
                name: e.name(),
                expected: ty.shape.to_string(),
                got: shape::show(t.shape()),
            });
        }
        fed.insert(e.id, t);
    }
    let g = graph.lock();
    let hi = outputs.iter().map(|o| o.id.index()).max().unwrap_or(0);
    let mut needed = vec![false; hi + 1];
    for o in outputs {
        needed[o.id.index()] = true;
    }
    for i in (0..=hi).rev() {
        if needed[i] && !fed.contains_key(&NodeId(i as u32)) {
            for p in &g.nodes[i].inputs {
                needed[p.index()] = true;
            }
        }
    }
    let mut values: Vec<Option<Tensor>> = vec![None; hi + 1];
    for i in 0..=hi {
        if !needed[i] {
            continue;
        }
        let n = &g.nodes[i];
        let v = if let Some(t) = fed.get(&NodeId(i as u32)) {
            (*t).clone()
        } else {
            match &n.op {
                Op::Input { name, .. } => {
                    return Err(Error::MissingFeed {
                        name: name.clone(),
                        expected: feeds.len() + 1,
                        got: feeds.len(),
                    });
                }
                Op::Constant(c) => (*g.constants[*c]).clone(),
                Op::Shared(s) => {
                    (**g.shared[*s].value.read().unwrap_or_else(|p| p.into_inner())).clone()
                }
                op => {
                    let args: Vec<&Tensor> = n
                        .inputs
                        .iter()
                        .map(|p| values[p.index()].as_ref().expect("operands come first"))
                        .collect();
                    let types: Vec<&Type> =
                        n.inputs.iter().map(|p| &g.nodes[p.index()].ty).collect();
                    kernels::eval(op, &args, &types, &n.ty, crate::kernels::Exec::Reference)
                        .map_err(|detail| Error::Runtime {
                            op: op.name(),
                            detail,
                            loc: n.loc,
                        })?
                }
            }
        };
        values[i] = Some(v);
    }
    Ok(outputs
        .iter()
        .map(|o| values[o.id.index()].clone().expect("outputs are evaluated"))
        .collect())
}

impl Expr {
    /// Evaluate this expression with the reference evaluator.
    #[track_caller]
    pub fn eval(&self, feeds: &[(&Expr, Tensor)]) -> Result<Tensor> {
        Ok(eval(&[self], feeds)?.remove(0))
    }
}
