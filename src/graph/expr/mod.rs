//! `Expr`: the user's handle on a node. Maths reads as maths: operators and methods return a new
//! `Expr`; a mistake is recorded with the caller's location and reported by `grad`, `function`,
//! `eval` or [`Expr::check`].
//!
//! The methods are grouped by op family, one file each: elementwise maths and comparisons,
//! reductions, linear algebra, shapes (with `concat` and `stack`), neural-network helpers, and
//! the arithmetic operators. This file holds the handle itself, its accessors, shared
//! variables' values, and the [`Operand`] trait.

use std::fmt;
use std::sync::Arc;

mod conv;
mod elementwise;
mod linalg;
mod nn;
mod operators;
mod reduce;
mod shape_ops;

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::graph::{Graph, NodeId, Type};
use crate::shape;
use crate::tensor::Tensor;

pub(crate) use shape_ops::stack_at;
pub use shape_ops::{concat, ones_like, stack, zeros_like};

/// A node of an expression graph, held with its graph. Cheap to clone.
#[derive(Clone)]
pub struct Expr {
    pub(crate) graph: Graph,
    pub(crate) id: NodeId,
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expr({} : {})", crate::graph::print::pp(self), self.ty())
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::graph::print::pp(self))
    }
}

impl Expr {
    /// The graph this node belongs to.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The node's id in its graph.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The static type (dtype and shape).
    pub fn ty(&self) -> Type {
        self.graph.lock().node(self.id).ty.clone()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.ty().dtype
    }

    /// The static shape (`None` for dims known only at run time).
    pub fn shape(&self) -> shape::Shape {
        self.ty().shape
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.ty().ndim()
    }

    /// The op of the node.
    pub fn op(&self) -> Op {
        self.graph.lock().node(self.id).op.clone()
    }

    /// Operands of the node.
    pub fn inputs(&self) -> Vec<Expr> {
        let ids = self.graph.lock().node(self.id).inputs.clone();
        ids.into_iter().map(|i| self.graph.expr(i)).collect()
    }

    /// Where the user's code built the node.
    pub fn location(&self) -> Location {
        self.graph.lock().node(self.id).loc
    }

    /// Display name: the name of an input or shared variable, else `op#id`.
    pub fn name(&self) -> String {
        self.graph.lock().name_of(self.id)
    }

    /// `Ok(self)` when the node was built without error, else the recorded error (with the
    /// location of the first bad op).
    pub fn check(self) -> Result<Expr> {
        self.graph.check(&[self.id])?;
        Ok(self)
    }

    /// Is this the same node (in the same graph) as `other`?
    pub fn same(&self, other: &Expr) -> bool {
        self.id == other.id && self.graph.same(&other.graph)
    }

    #[track_caller]
    pub(crate) fn apply(&self, op: Op, inputs: &[&Expr]) -> Expr {
        self.graph.apply_loc(op, inputs, Location::caller())
    }

    /// Record `err` as an invalid node. An operand that is already invalid has no real shape
    /// to check against, so its own error wins: a chain reports the first bad line.
    #[track_caller]
    fn fail(&self, err: Error) -> Expr {
        self.fail_at(err, Location::caller())
    }

    /// [`fail`](Expr::fail) at a location the caller passes on.
    fn fail_at(&self, err: Error, loc: Location) -> Expr {
        let mut g = self.graph.lock();
        if g.node(self.id).error.is_some() {
            return self.clone();
        }
        let id = g.invalid(err, loc);
        drop(g);
        self.graph.expr(id)
    }

    /// A scalar constant of this node's dtype.
    #[track_caller]
    pub fn scalar_like(&self, v: f64) -> Expr {
        self.graph.scalar_constant(v, self.dtype())
    }

    #[track_caller]
    fn axes(&self, op: &str, axes: &[isize]) -> std::result::Result<Vec<usize>, Expr> {
        let ndim = self.ndim();
        // Not `map_err`: `#[track_caller]` does not reach into closures, and the error must
        // name the user's line.
        match shape::axes(axes, ndim) {
            Ok(a) => Ok(a),
            Err(axis) => Err(self.fail(Error::Axis {
                op: op.into(),
                axis,
                ndim,
                loc: Location::caller(),
            })),
        }
    }

    #[track_caller]
    fn axis(&self, op: &str, axis: isize) -> std::result::Result<usize, Expr> {
        self.axes(op, &[axis]).map(|a| a[0])
    }

    /// For an op built of others (`gelu`, `var`): the error to return when this is not a
    /// float tensor, so that it names the op the user wrote rather than one inside it.
    #[track_caller]
    fn not_float(&self, op: &str) -> Option<Expr> {
        let dtype = self.dtype();
        if dtype.is_float() {
            return None;
        }
        // Not in a closure: `#[track_caller]` does not reach into one.
        Some(self.fail(Error::DType {
            op: op.into(),
            detail: format!("needs a float operand, got {dtype}"),
            loc: Location::caller(),
        }))
    }

    /// All axes, for full reductions.
    fn all_axes(&self) -> Vec<isize> {
        (0..self.ndim() as isize).collect()
    }

    /// The current value of a shared variable.
    #[track_caller]
    pub fn get_value(&self) -> Result<Tensor> {
        let g = self.graph.lock();
        match g.node(self.id).op {
            Op::Shared(s) => {
                let var = g.shared[s].clone();
                drop(g);
                let _reading = var.state.reading();
                Ok((*var.read()).clone())
            }
            _ => Err(Error::Usage {
                what: format!("{} is not a shared variable", g.name_of(self.id)),
                loc: Location::caller(),
            }),
        }
    }

    /// Replace the value of a shared variable; the dtype and shape must stay the same.
    #[track_caller]
    pub fn set_value(&self, value: impl Into<Tensor>) -> Result<()> {
        let value = value.into();
        let g = self.graph.lock();
        let Op::Shared(s) = g.node(self.id).op else {
            return Err(Error::Usage {
                what: format!("{} is not a shared variable", g.name_of(self.id)),
                loc: Location::caller(),
            });
        };
        let var = g.shared[s].clone();
        drop(g);
        if value.dtype() != var.ty.dtype || !var.ty.shape.matches(value.shape()) {
            return Err(Error::Usage {
                what: format!(
                    "set_value of {}: expected {}, got {}{}",
                    var.name,
                    var.ty,
                    value.dtype(),
                    shape::show(value.shape())
                ),
                loc: Location::caller(),
            });
        }
        // A write of the graph's state, like a call's updates: never inside another call.
        let _writer = var.state.write();
        let _committing = var.state.committing();
        *var.value.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
        Ok(())
    }
}

/// Something that can be an operand next to an `Expr`: another `Expr` or a Rust number, which
/// becomes a constant of the other operand's dtype.
pub trait Operand {
    /// Turn into a node of `like`'s graph.
    #[track_caller]
    fn to_expr(&self, like: &Expr) -> Expr;
    /// The expression, if this operand is one.
    fn as_expr(&self) -> Option<Expr> {
        None
    }
}

impl Operand for Expr {
    fn to_expr(&self, _: &Expr) -> Expr {
        self.clone()
    }
    fn as_expr(&self) -> Option<Expr> {
        Some(self.clone())
    }
}

impl Operand for &Expr {
    fn to_expr(&self, _: &Expr) -> Expr {
        (*self).clone()
    }
    fn as_expr(&self) -> Option<Expr> {
        Some((*self).clone())
    }
}

macro_rules! scalar_operand {
    ($($t:ty),*) => {$(
        impl Operand for $t {
            #[track_caller]
            fn to_expr(&self, like: &Expr) -> Expr {
                like.scalar_like(*self as f64)
            }
        }
    )*};
}
scalar_operand!(f64, f32, i32, i64);
