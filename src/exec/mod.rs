//! Execution: the kernels, and the slow reference evaluator that is the oracle for every faster
//! path.

pub mod fastmath;
pub mod fused;
pub mod gemm;
pub mod kernels;
pub mod reference;
