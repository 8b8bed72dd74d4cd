//! Models of the deep-learning revival written as gradus graphs.

pub mod autoencoder;
pub mod dbn;
pub mod gbrbm;
pub mod rbm;
pub mod rbm_eval;
pub mod stacked;

pub use autoencoder::{AeConfig, Autoencoder};
pub use rbm::{CdConfig, Rbm};
pub use stacked::StackedAutoencoder;

/// Unroll `k` steps of a loop body into the graph: `step(step(...step(init)))`. A Gibbs chain
/// of k steps is `unroll(k, v, |v| rbm.gibbs_vhv(&v, &rng).1)`; every step draws fresh random
/// numbers because each sampling node has its own key. Compiling stays fast at k = 25 and
/// beyond: the graph grows linearly and nothing copies the stream state per step.
pub fn unroll<S>(k: usize, init: S, mut step: impl FnMut(S) -> S) -> S {
    (0..k).fold(init, |s, _| step(s))
}
