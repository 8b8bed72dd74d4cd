//! The debug mode (Theano's `DebugMode`): every call also evaluates the graph as written and
//! every node each rewrite made with the reference kernels, and reports the first rewrite whose
//! node computes something other than the node it replaced, or a fast-plan output that differs
//! from the reference.

use std::sync::Arc;

use super::interpret::interpret;
use crate::compile::DebugTrace;
use crate::error::{Error, Result};
use crate::graph::SharedVar;
use crate::tensor::Tensor;

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

impl DebugTrace {
    /// Evaluate every node with the reference kernels, check every replacement, and return the
    /// reference values of the roots.
    pub fn check(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut run = interpret(&self.nodes, inputs);
        for r in &self.history {
            if let (Some(a), Some(b)) = (&run.values[r.new], &run.values[r.old])
                && let Some(detail) = differ(a, b)
            {
                return Err(Error::DebugMismatch {
                    what: format!(
                        "rewrite {} replaced {} by {}",
                        r.rule, self.nodes[r.old].kind, self.nodes[r.new].kind
                    ),
                    detail,
                    loc: self.nodes[r.old].loc,
                });
            }
        }
        run.take(&self.roots, &self.nodes)
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
    use crate::compile::fgraph::Replacement;
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
        check.history.push(Replacement {
            old,
            new,
            rule: "bogus_rule",
        });
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
