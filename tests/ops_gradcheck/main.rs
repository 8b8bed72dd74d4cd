//! Finite-difference gradient checks for every differentiable op, the sweep's semantics, the
//! checker's own ability to fail, and fast kernels against the reference ones.
//!
//! Every check has an oracle: central finite differences in f64 (`GradCheck`), or a closed form.
//! Points are chosen away from kinks (abs, relu, max ties, clip bounds) and domain edges (log,
//! sqrt, pow bases).

mod api;
mod checker;
mod common;
mod conv;
mod conveniences;
mod elementwise;
mod linalg;
mod modes;
mod nn;
mod reductions;
mod second_order;
mod shapes;
mod sweep;
