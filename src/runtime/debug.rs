//! The debug mode (Theano's `DebugMode`): every call also evaluates the graph as written and
//! every node each rewrite made with the reference kernels, and reports the first rewrite whose
//! node computes something other than the node it replaced, or a fast-plan output that differs
//! from the reference evaluation of the optimized graph.
//!
//! Comparisons know NaN: a NaN or an infinity where the other side has a number is a
//! difference, except that a stabilizing rewrite may turn what overflowed or divided 0 by 0
//! into a number: that is what it is for.

use std::sync::Arc;

use super::Executor;
use super::interpret::{OnError, Settings, interpret};
use crate::compile::DebugTrace;
use crate::compile::rewrite::{Phase, RULES};
use crate::error::{Error, Result};
use crate::graph::SharedVar;
use crate::tensor::Tensor;

/// Are `got` and `want` equal within rounding? NaN equals NaN and an infinity itself; a NaN or
/// an infinity against a number is a difference, unless `stabilizing` (the rewrite that made
/// `got` is there to turn what overflowed in `want` into a number) and `got` is the number.
fn differ(got: &Tensor, want: &Tensor, stabilizing: bool) -> Option<String> {
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
            let same = *x == *y
                || (x.is_nan() && y.is_nan())
                || (x.is_finite() && y.is_finite() && (*x - *y).abs() <= tol * (1.0 + y.abs()));
            let stabilized = stabilizing && x.is_finite() && !y.is_finite();
            !same && !stabilized
        })
        .map(|(k, (x, y))| format!("element {k} is {x}, expected {y}"))
}

/// Is `rule` a stabilizing rewrite?
fn stabilizing(rule: &str) -> bool {
    RULES
        .iter()
        .any(|r| r.name == rule && r.phase == Phase::Stabilize)
}

impl DebugTrace {
    /// Evaluate every node with the reference kernels, check every replacement, and return the
    /// reference values of the optimized graph's roots.
    pub fn check(
        &self,
        inputs: &[&Tensor],
        vars: &[(usize, Arc<SharedVar>)],
        snapshot: &[Arc<Tensor>],
        loops: &Executor,
    ) -> Result<Vec<Tensor>> {
        let settings = Settings {
            limit: None,
            on_error: OnError::Continue,
            nan_guard: false,
            times: None,
            shared: Some((vars, snapshot)),
            loops: Some(loops),
        };
        let mut run = interpret(&self.nodes, inputs, settings);
        for r in &self.history {
            if let (Some(a), Some(b)) = (&run.values[r.new], &run.values[r.old])
                && let Some(detail) = differ(a, b, stabilizing(r.rule))
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
        run.take(&self.final_roots, &self.nodes)
    }

    /// Compare what the fast plan returned, and the new values of the variables it updates
    /// (named `updated`), with the reference values.
    pub fn compare(
        &self,
        outputs: &[Tensor],
        new_values: &[Tensor],
        updated: &[&str],
        want: &[Tensor],
    ) -> Result<()> {
        let got = outputs.iter().chain(new_values);
        for (k, (g, w)) in got.zip(want).enumerate() {
            if let Some(detail) = differ(g, w, false) {
                let what = if k < outputs.len() {
                    format!("the fast plan's output {k}")
                } else {
                    format!("the fast plan's update of {}", updated[k - outputs.len()])
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
        let check = f.executor.debug.as_mut().unwrap();
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
