//! # gradus
//!
//! Symbolic differentiation of tensor expression graphs, in the spirit of Theano: build a graph
//! of tensor ops, derive gradients as more graph, compile functions with updates to shared
//! parameters, and run them on the CPU.
//!
//! ```
//! use gradus::prelude::*;
//!
//! let g = Graph::new();
//! let x = g.scalar("x", DType::F64);
//! let y = x.pow(2.0);
//! let gy = grad(&y, &[&x]).unwrap().remove(0);
//! let f = function(&[&x], &[&gy]).compile().unwrap();
//! assert_eq!(f.call(&[4.0.into()]).unwrap()[0].item().unwrap(), 8.0);
//! ```
#![deny(missing_docs)]

// The pipeline, each module importing only from those before it: the base types, the user's
// graph, its gradients, the kernels, the compiler, the runtime, and the function API that ties
// the compiler and the runtime together. `tests/architecture.rs` checks the direction.
mod compile;
mod dtype;
mod error;
mod function;
mod grad;
mod graph;
mod kernels;
mod runtime;
mod shape;
mod tensor;

// What is built on the function API: randomness, optimizers, the gradient checker, data, models.
pub mod data;
pub mod gradcheck;
pub mod io;
pub mod models;
pub mod optim;
pub mod random;
pub mod viz;

/// The user's ops, for code that inspects a graph ([`Expr::op`]) or writes its own passes over
/// one.
pub mod op {
    pub use crate::graph::loops::{LoopBody, LoopHandle, LoopResult, Steps};
    pub use crate::graph::op::{
        Binary, Cmp, Conv2d, CustomHandle, Dist, Hw, Op, Pad, Pool2d, Reduce, ReshapeDim, Unary,
    };
}

/// The optimizer's rules and passes, as data: their names (to switch them off with
/// [`FunctionBuilder::exclude`]), phases, and what a compiled function's statistics report.
pub mod rewrite {
    pub use crate::compile::rewrite::{
        DEFAULT_PASS_LIMIT, PASSES, Pass, Phase, PhaseRun, RULES, Repeat, Rewrite, RewriteStats,
        SCHEDULE, StopReason,
    };
}

/// The `ndarray` gradus is built on: tensors hold its arrays, and custom ops compute with it, so
/// use this one rather than pinning a version of your own.
pub use ndarray;

pub use compile::Mode;
pub use dtype::{DType, Float};
pub use error::{Error, Location, Result};
pub use function::{Function, FunctionBuilder, eval, function};
pub use grad::{GradOptions, grad, grad_with, hessian, hessian_vector_product, jacobian, vjp};
pub use graph::custom::CustomOp;
pub use graph::loops::{Looped, Scan, Step, StepResult};
pub use graph::op::{Conv2d, Hw, Pool2d};
pub use graph::print::{debugprint, pp, to_dot};
pub use graph::{Expr, Graph, NodeId, Operand, Type, concat, ones_like, stack, zeros_like};
pub use kernels::PAR_MIN;
pub use runtime::{LoopProfile, NodeProfile, Profile};
pub use shape::{Dim, Shape};
pub use tensor::Tensor;

/// The names most programs need.
pub mod prelude {
    pub use crate::gradcheck::GradCheck;
    pub use crate::{
        DType, Error, Expr, Function, GradOptions, Graph, Mode, Tensor, concat, function, grad,
        grad_with, hessian, hessian_vector_product, jacobian, ones_like, pp, stack, vjp,
        zeros_like,
    };
}
