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

pub mod data;
pub mod dtype;
pub mod error;
pub mod function;
pub mod grad;
pub mod gradcheck;
pub mod graph;
pub mod io;
mod kernels;
pub mod models;
pub mod optim;
pub mod random;
pub mod rewrite;
pub mod shape;
pub mod tensor;
pub mod viz;

pub use dtype::{DType, Float};
pub use error::{Error, Location, Result};
pub use function::eval::eval;
pub use function::{Function, FunctionBuilder, Mode, function};
pub use grad::{GradOptions, grad, grad_with, hessian, hessian_vector_product, jacobian, vjp};
pub use graph::custom::CustomOp;
pub use graph::print::{debugprint, pp, to_dot};
pub use graph::{Expr, Graph, NodeId, Type, concat, stack};
pub use kernels::PAR_MIN;
pub use shape::{Dim, Shape};
pub use tensor::Tensor;

/// The names most programs need.
pub mod prelude {
    pub use crate::gradcheck::GradCheck;
    pub use crate::{
        DType, Error, Expr, Function, GradOptions, Graph, Mode, Tensor, concat, function, grad,
        grad_with, pp, stack, vjp,
    };
}
