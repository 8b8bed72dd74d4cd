//! Models of the deep-learning revival written as gradus graphs.

pub mod autoencoder;
pub mod cd;
pub mod centered;
pub mod conv_rbm;
pub mod dbm;
pub mod dbn;
pub mod gbrbm;
pub mod rbm;
pub mod rbm_eval;
pub mod recurrent;
pub mod rsm;
pub mod sparse_coding;
pub mod stacked;
pub mod units;

pub use autoencoder::{AeConfig, Autoencoder};
pub use cd::{Cd, CdTrainer, Chains, EnergyModel};
pub use centered::CenteredRbm;
pub use rbm::{CdConfig, Rbm};
pub use stacked::StackedAutoencoder;

use crate::graph::Expr;

/// Unroll `k` steps of a loop body into the graph: `step(step(...step(init)))`. A Gibbs chain
/// of k steps is `unroll(k, v, |v| rbm.gibbs_vhv(&v, &rng).1)`; every step draws fresh random
/// numbers because each sampling node has its own key. Compiling stays fast at k = 25 and
/// beyond: the graph grows linearly and nothing copies the stream state per step.
pub fn unroll<S>(k: usize, init: S, mut step: impl FnMut(S) -> S) -> S {
    (0..k).fold(init, |s, _| step(s))
}

/// `|x - r|²` summed over each row, averaged over the rows: the reconstruction error the models
/// report.
#[track_caller]
pub(crate) fn squared_error(x: &Expr, r: &Expr) -> Expr {
    (x - r).square().sum_axes(&[1], false).mean()
}

/// Binary cross-entropy of `logits` against `target`, summed over each row, averaged over the
/// rows.
#[track_caller]
pub(crate) fn cross_entropy_per_row(logits: &Expr, target: &Expr) -> Expr {
    logits
        .binary_cross_entropy_with_logits(target)
        .sum_axes(&[1], false)
        .mean()
}
