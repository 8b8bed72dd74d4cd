//! Gradients, checks and calls a researcher can trust in their own code: no silent wrong
//! gradient, a gradient checker for model code as written, a NaN guard, concurrent calls that
//! lose nothing, and errors instead of aborts for resources.

mod common;
mod concurrency;
mod custom_ops;
mod differential;
mod gradcheck;
mod guard;
mod modes;
mod resources;
mod stable;
