//! The debug mode (Theano's `DebugMode`): every call also evaluates the graph as written and
//! every node each rewrite made with the reference kernels, and reports the first rewrite whose
//! node computes something other than the node it replaced, or a fast-plan output that differs
//! from the reference.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::function::plan::{Leaf, PNode};
use crate::graph::{SharedVar, Type};
use crate::kernels;
use crate::tensor::Tensor;

/// What the debug mode keeps of the compilation.
pub(crate) struct DebugCheck {
    /// Every node the optimizer saw or made (index order is a dependency order).
    pub nodes: Vec<PNode>,
    /// Replacements made: `(old, new, rule)`.
    pub history: Vec<(usize, usize, &'static str)>,
    /// Outputs and update values of the graph as written.
    pub roots: Vec<usize>,
}

/// Are `got` and `want` equal within rounding? Where the graph as written overflows or divides
/// by zero and the rewritten one does not (stabilization), the rewritten value wins.
pub(crate) fn differ(got: &Tensor, want: &Tensor) -> Option<String> {
    if got.shape() != want.shape() || got.dtype() != want.dtype() {
        return Some(format!(
            "{}{:?} vs {}{:?}",
            got.dtype(),
            got.shape(),
            want.dtype(),
            want.shape()
        ));
    }
    let tol = if got.dtype() == crate::dtype::DType::F32 {
        1e-3
    } else {
        1e-7
    };
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    g.iter()
        .zip(&w)
        .enumerate()
        .find(|(_, (x, y))| {
            let same =
                (*x - *y).abs() <= tol * (1.0 + y.abs()) || (x.is_nan() && y.is_nan()) || *x == *y;
            !same && y.is_finite()
        })
        .map(|(k, (x, y))| format!("element {k} is {x}, expected {y}"))
}

impl DebugCheck {
    /// Evaluate every node with the reference kernels, check every replacement, and return the
    /// reference values of the roots.
    pub fn check(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut vals: Vec<Option<Arc<Tensor>>> = Vec::with_capacity(self.nodes.len());
        let mut first_error: Option<Error> = None;
        for n in &self.nodes {
            let v = match &n.leaf {
                Some(Leaf::Input(k)) => Some(Arc::new(inputs[*k].clone())),
                Some(Leaf::Const(c)) => Some(c.clone()),
                Some(Leaf::Shared(s)) => {
                    Some(s.value.read().unwrap_or_else(|p| p.into_inner()).clone())
                }
                None => {
                    let args: Option<Vec<&Tensor>> =
                        n.inputs.iter().map(|&i| vals[i].as_deref()).collect();
                    let types: Vec<&Type> = n.inputs.iter().map(|&i| &self.nodes[i].ty).collect();
                    match args.map(|a| {
                        kernels::eval(&n.op, &a, &types, &n.ty, crate::kernels::Exec::Reference)
                    }) {
                        Some(Ok(t)) => Some(Arc::new(t)),
                        Some(Err(detail)) => {
                            first_error.get_or_insert(Error::Runtime {
                                op: n.op.name(),
                                detail,
                                loc: n.loc,
                            });
                            None
                        }
                        None => None,
                    }
                }
            };
            vals.push(v);
        }
        for &(old, new, rule) in &self.history {
            if let (Some(a), Some(b)) = (&vals[new], &vals[old])
                && let Some(detail) = differ(a, b)
            {
                return Err(Error::DebugMismatch {
                    what: format!(
                        "rewrite {rule} replaced {} by {}",
                        self.nodes[old].op.name(),
                        self.nodes[new].op.name()
                    ),
                    detail,
                    loc: self.nodes[old].loc,
                });
            }
        }
        self.roots
            .iter()
            .map(|&r| match &vals[r] {
                Some(t) => Ok((**t).clone()),
                None => Err(first_error.take().unwrap_or_else(|| Error::Runtime {
                    op: self.nodes[r].op.name(),
                    detail: "an operand failed".into(),
                    loc: self.nodes[r].loc,
                })),
            })
            .collect()
    }

    /// Compare what the fast plan returned and assigned with the reference values.
    pub fn compare(
        &self,
        outputs: &[Tensor],
        updated: &[Arc<SharedVar>],
        want: &[Tensor],
    ) -> Result<()> {
        let got = outputs.iter().cloned().chain(
            updated
                .iter()
                .map(|v| (**v.value.read().unwrap_or_else(|p| p.into_inner())).clone()),
        );
        for (k, (g, w)) in got.zip(want).enumerate() {
            if let Some(detail) = differ(&g, w) {
                let what = if k < outputs.len() {
                    format!("the fast plan's output {k}")
                } else {
                    format!(
                        "the fast plan's update of {}",
                        updated[k - outputs.len()].name
                    )
                };
                return Err(Error::DebugMismatch {
                    what,
                    detail,
                    loc: self.nodes[self.roots[k]].loc,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::prelude::*;

    #[test]
    fn a_rewrite_that_changes_a_value_is_named() {
        let g = Graph::new();
        let x = g.vector("x", DType::F64);
        let (a, b) = (x.exp(), x.sin());
        let mut f = function(&[&x], &[&a, &b])
            .mode(Mode::Debug)
            .compile()
            .unwrap();
        let feed: Tensor = vec![0.5, 1.5].into();
        f.call(std::slice::from_ref(&feed))
            .expect("correct rewrites pass");
        // Pretend a rule turned exp(x) into sin(x).
        let (check, _) = f.debug.as_mut().unwrap();
        let (old, new) = (check.roots[0], check.roots[1]);
        check.history.push((old, new, "bogus_rule"));
        let err = f.call(&[feed]).expect_err("exp(x) is not sin(x)");
        assert!(matches!(err, Error::DebugMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("bogus_rule") && msg.contains("exp") && msg.contains("sin"),
            "{msg}"
        );
        assert!(msg.contains(file!()), "{msg}");
    }
}
