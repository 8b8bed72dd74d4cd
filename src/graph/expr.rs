//! `Expr`: the user's handle on a node. Maths reads as maths: operators and methods return a new
//! `Expr`; a mistake is recorded with the caller's location and reported by `grad`, `function`,
//! `eval` or [`Expr::check`].

use std::fmt;
use std::ops;
use std::sync::Arc;

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::{Binary, Cmp, Op, Reduce, Unary};
use crate::graph::{Graph, NodeId, Type};
use crate::shape;
use crate::tensor::Tensor;

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

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:ident;)*) => {$(
        $(#[$doc])*
        #[track_caller]
        pub fn $name(&self) -> Expr {
            self.apply(Op::Unary(Unary::$op), &[self])
        }
    )*};
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
        let loc = Location::caller();
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
    pub fn lit(&self, v: f64) -> Expr {
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

    /// All axes, for full reductions.
    fn all_axes(&self) -> Vec<isize> {
        (0..self.ndim() as isize).collect()
    }

    // ----- shared variables -----

    /// The current value of a shared variable.
    #[track_caller]
    pub fn get_value(&self) -> Result<Tensor> {
        let g = self.graph.lock();
        match g.node(self.id).op {
            Op::Shared(s) => {
                Ok((**g.shared[s].value.read().unwrap_or_else(|p| p.into_inner())).clone())
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
        let var = &g.shared[s];
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
        *var.value.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
        Ok(())
    }

    // ----- elementwise -----

    unary_methods! {
        /// `e^x`
        exp => Exp;
        /// natural logarithm
        log => Log;
        /// `log(1 + x)`
        log1p => Log1p;
        /// `e^x - 1`
        expm1 => Expm1;
        /// square root
        sqrt => Sqrt;
        /// `x * x`
        square => Square;
        /// absolute value
        abs => Abs;
        /// sign: -1, 0 or 1
        sign => Sign;
        /// sine
        sin => Sin;
        /// cosine
        cos => Cos;
        /// hyperbolic tangent
        tanh => Tanh;
        /// logistic sigmoid `1 / (1 + e^-x)`
        sigmoid => Sigmoid;
        /// `log(1 + e^x)`, computed stably
        softplus => Softplus;
        /// `max(x, 0)`
        relu => Relu;
        /// logical not of a bool tensor
        not => Not;
    }

    /// `self ** p` for a tensor or a Rust number.
    #[track_caller]
    pub fn pow(&self, p: impl Operand) -> Expr {
        let p = p.to_expr(self);
        self.apply(Op::Binary(Binary::Pow), &[self, &p])
    }

    /// Elementwise maximum.
    #[track_caller]
    pub fn maximum(&self, other: impl Operand) -> Expr {
        let o = other.to_expr(self);
        self.apply(Op::Binary(Binary::Maximum), &[self, &o])
    }

    /// Elementwise minimum.
    #[track_caller]
    pub fn minimum(&self, other: impl Operand) -> Expr {
        let o = other.to_expr(self);
        self.apply(Op::Binary(Binary::Minimum), &[self, &o])
    }

    /// Clamp into `[lo, hi]`: `minimum(maximum(x, lo), hi)`.
    #[track_caller]
    pub fn clip(&self, lo: impl Operand, hi: impl Operand) -> Expr {
        self.maximum(lo).minimum(hi)
    }

    /// Logical and of bool tensors.
    #[track_caller]
    pub fn and(&self, other: &Expr) -> Expr {
        self.apply(Op::Binary(Binary::And), &[self, other])
    }

    /// Logical or of bool tensors.
    #[track_caller]
    pub fn or(&self, other: &Expr) -> Expr {
        self.apply(Op::Binary(Binary::Or), &[self, other])
    }

    #[track_caller]
    fn compare(&self, c: Cmp, other: impl Operand) -> Expr {
        let o = other.to_expr(self);
        self.apply(Op::Compare(c), &[self, &o])
    }

    /// `self < other`, as bool.
    #[track_caller]
    pub fn lt(&self, other: impl Operand) -> Expr {
        self.compare(Cmp::Lt, other)
    }

    /// `self <= other`, as bool.
    #[track_caller]
    pub fn le(&self, other: impl Operand) -> Expr {
        self.compare(Cmp::Le, other)
    }

    /// `self > other`, as bool.
    #[track_caller]
    pub fn gt(&self, other: impl Operand) -> Expr {
        self.compare(Cmp::Gt, other)
    }

    /// `self >= other`, as bool.
    #[track_caller]
    pub fn ge(&self, other: impl Operand) -> Expr {
        self.compare(Cmp::Ge, other)
    }

    /// `self == other`, as bool.
    #[track_caller]
    pub fn equal(&self, other: impl Operand) -> Expr {
        self.compare(Cmp::Eq, other)
    }

    /// `self != other`, as bool.
    #[track_caller]
    pub fn not_equal(&self, other: impl Operand) -> Expr {
        self.compare(Cmp::Ne, other)
    }

    /// `where(self, a, b)`: `a` where this bool tensor is true, else `b` (broadcast).
    #[track_caller]
    pub fn select(&self, a: impl Operand, b: impl Operand) -> Expr {
        let (a, b) = match (a.as_expr(), b.as_expr()) {
            (Some(a), _) => {
                let b = b.to_expr(&a);
                (a, b)
            }
            (None, Some(b)) => (a.to_expr(&b), b),
            (None, None) => {
                return self.fail(Error::Invalid {
                    op: "where".into(),
                    detail: "at least one branch must be a tensor".into(),
                    loc: Location::caller(),
                });
            }
        };
        self.apply(Op::Where, &[self, &a, &b])
    }

    /// Convert to another dtype.
    #[track_caller]
    pub fn cast(&self, dtype: DType) -> Expr {
        if self.dtype() == dtype {
            return self.clone();
        }
        self.apply(Op::Cast(dtype), &[self])
    }

    /// Identity whose gradient is zero: the value is treated as a constant by `grad`
    /// (Theano's `consider_constant`, JAX's `stop_gradient`).
    #[track_caller]
    pub fn stop_gradient(&self) -> Expr {
        self.apply(Op::StopGradient, &[self])
    }

    // ----- reductions -----

    #[track_caller]
    fn reduce(&self, op: Reduce, axes: &[isize], keepdims: bool) -> Expr {
        match self.axes(op.name(), axes) {
            Ok(axes) => self.apply(Op::Reduce { op, axes, keepdims }, &[self]),
            Err(e) => e,
        }
    }

    /// Sum of all elements (a scalar).
    #[track_caller]
    pub fn sum(&self) -> Expr {
        self.reduce(Reduce::Sum, &self.all_axes(), false)
    }

    /// Sum over `axes` (negative axes count from the end).
    #[track_caller]
    pub fn sum_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Sum, axes, keepdims)
    }

    /// Product over `axes`.
    #[track_caller]
    pub fn prod_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Prod, axes, keepdims)
    }

    /// Maximum over `axes`.
    #[track_caller]
    pub fn max_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Max, axes, keepdims)
    }

    /// Minimum over `axes`.
    #[track_caller]
    pub fn min_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        self.reduce(Reduce::Min, axes, keepdims)
    }

    /// Mean of all elements.
    #[track_caller]
    pub fn mean(&self) -> Expr {
        self.mean_axes(&self.all_axes(), false)
    }

    /// Mean over `axes`: `sum / count`, the count read at run time for run-time dims.
    #[track_caller]
    pub fn mean_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        let norm = match self.axes("mean", axes) {
            Ok(a) => a,
            Err(e) => return e,
        };
        let n = self.apply(
            Op::DimSize {
                axes: norm,
                dtype: self.dtype(),
            },
            &[self],
        );
        &self.sum_axes(axes, keepdims) / &n
    }

    /// The shift that keeps `exp(x - shift)` over `axes` from overflowing: the maximum (kept
    /// dims, held constant for grad), or 0 for a lane that is all -inf, so that it gives -inf
    /// rather than NaN from -inf - -inf.
    #[track_caller]
    pub(crate) fn max_shift(&self, axes: &[isize]) -> Expr {
        let m = self.max_axes(axes, true);
        m.gt(f64::NEG_INFINITY).select(&m, 0.0).stop_gradient()
    }

    /// `log(sum(exp(x)))` over `axes`, shifted by the maximum so it never overflows.
    #[track_caller]
    pub fn logsumexp_axes(&self, axes: &[isize], keepdims: bool) -> Expr {
        let m = self.max_shift(axes);
        let s = (self - &m).exp().sum_axes(axes, true).log() + &m;
        if keepdims {
            s
        } else {
            match self.axes("logsumexp", axes) {
                Ok(a) => s.apply(Op::Squeeze(a), &[&s]),
                Err(e) => e,
            }
        }
    }

    /// Index of the maximum along `axis`, as `i64`.
    #[track_caller]
    pub fn argmax(&self, axis: isize) -> Expr {
        match self.axis("argmax", axis) {
            Ok(axis) => self.apply(
                Op::Argmax {
                    axis,
                    keepdims: false,
                },
                &[self],
            ),
            Err(e) => e,
        }
    }

    // ----- linear algebra -----

    /// Matrix product of 2-d tensors, or batched over the first dim of 3-d tensors.
    #[track_caller]
    pub fn matmul(&self, other: &Expr) -> Expr {
        self.apply(Op::MatMul, &[self, other])
    }

    /// numpy's `dot`: inner product of vectors, matrix-vector, vector-matrix or matrix product.
    #[track_caller]
    pub fn dot(&self, other: &Expr) -> Expr {
        match (self.ndim(), other.ndim()) {
            (1, 1) => (self * other).sum(),
            (2, 1) => self.matmul(&other.expand_dims(&[1])).squeeze(&[1]),
            (1, 2) => self.expand_dims(&[0]).matmul(other).squeeze(&[0]),
            _ => self.matmul(other),
        }
    }

    /// Outer product of two vectors.
    #[track_caller]
    pub fn outer(&self, other: &Expr) -> Expr {
        &self.expand_dims(&[1]) * &other.expand_dims(&[0])
    }

    /// Transpose of a matrix (reverses the axes of any tensor).
    #[track_caller]
    pub fn t(&self) -> Expr {
        let perm: Vec<usize> = (0..self.ndim()).rev().collect();
        self.apply(Op::Transpose(perm), &[self])
    }

    /// Permute the axes.
    #[track_caller]
    pub fn permute(&self, perm: &[usize]) -> Expr {
        self.apply(Op::Transpose(perm.to_vec()), &[self])
    }

    // ----- shape manipulation -----

    /// Reshape; one target dim may be `-1` (inferred).
    #[track_caller]
    pub fn reshape(&self, shape: &[isize]) -> Expr {
        self.apply(Op::Reshape(shape.to_vec()), &[self])
    }

    /// Broadcast to a static shape.
    #[track_caller]
    pub fn broadcast_to(&self, shape: &[usize]) -> Expr {
        self.apply(Op::BroadcastTo(shape.to_vec()), &[self])
    }

    /// Broadcast to the (run-time) shape of `like`.
    #[track_caller]
    pub fn broadcast_like(&self, like: &Expr) -> Expr {
        self.apply(Op::BroadcastLike, &[self, like])
    }

    /// Reshape to the (run-time) shape of `like`.
    #[track_caller]
    pub fn reshape_like(&self, like: &Expr) -> Expr {
        self.apply(Op::ReshapeLike, &[self, like])
    }

    /// Insert size-1 axes at these positions of the result.
    #[track_caller]
    pub fn expand_dims(&self, axes: &[isize]) -> Expr {
        let n = self.ndim() + axes.len();
        match shape::axes(axes, n) {
            Ok(a) => self.apply(Op::ExpandDims(a), &[self]),
            Err(axis) => self.fail(Error::Axis {
                op: "expand_dims".into(),
                axis,
                ndim: n,
                loc: Location::caller(),
            }),
        }
    }

    /// Remove size-1 axes.
    #[track_caller]
    pub fn squeeze(&self, axes: &[isize]) -> Expr {
        match self.axes("squeeze", axes) {
            Ok(a) => self.apply(Op::Squeeze(a), &[self]),
            Err(e) => e,
        }
    }

    /// `x[start:end]` along `axis` (negative indices count from the end; `end = None` is the end).
    #[track_caller]
    pub fn slice(&self, axis: isize, start: isize, end: Option<isize>) -> Expr {
        self.slice_step(axis, start, end, 1)
    }

    /// `x[start:end:step]` along `axis`, `step >= 1`.
    #[track_caller]
    pub fn slice_step(&self, axis: isize, start: isize, end: Option<isize>, step: usize) -> Expr {
        match self.axis("slice", axis) {
            Ok(axis) => self.apply(
                Op::Slice {
                    axis,
                    start,
                    end,
                    step,
                },
                &[self],
            ),
            Err(e) => e,
        }
    }

    /// Rows of this tensor picked by an `i64` index tensor (`x[idx]` along axis 0).
    #[track_caller]
    pub fn take(&self, indices: &Expr) -> Expr {
        self.apply(Op::Take, &[self, indices])
    }

    /// `i64` labels to one-hot rows of `depth` classes.
    #[track_caller]
    pub fn one_hot(&self, depth: usize, dtype: DType) -> Expr {
        self.apply(Op::OneHot { depth, dtype }, &[self])
    }

    // ----- neural-network helpers -----

    /// Softmax along `axis`.
    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Expr {
        match self.axis("softmax", axis) {
            Ok(a) => self.apply(Op::Softmax(a), &[self]),
            Err(e) => e,
        }
    }

    /// Log-softmax along `axis`, computed stably.
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Expr {
        match self.axis("log_softmax", axis) {
            Ok(a) => self.apply(Op::LogSoftmax(a), &[self]),
            Err(e) => e,
        }
    }

    /// Per-row cross-entropy of logits `[n, k]` against `i64` labels `[n]`:
    /// `-log_softmax(x)[i, label_i]`.
    #[track_caller]
    pub fn softmax_cross_entropy(&self, labels: &Expr) -> Expr {
        let depth = match self.shape().dims().last() {
            Some(Some(k)) => *k,
            _ => {
                return self.fail(Error::Shape {
                    op: "softmax_cross_entropy".into(),
                    detail: format!("logits need a known last (class) dim, got {}", self.shape()),
                    loc: Location::caller(),
                });
            }
        };
        let t = labels.one_hot(depth, self.dtype());
        -(&t * &self.log_softmax(-1)).sum_axes(&[-1], false)
    }

    /// Elementwise binary cross-entropy of logits against targets in `[0, 1]`:
    /// `softplus(x) - t * x`, stable for large logits.
    #[track_caller]
    pub fn binary_cross_entropy_with_logits(&self, targets: &Expr) -> Expr {
        &self.softplus() - &(targets * self)
    }
}

/// Stack tensors of one shape along a new axis.
#[track_caller]
pub fn stack(xs: &[&Expr], axis: isize) -> Result<Expr> {
    stack_at(xs, axis, Location::caller())
}

pub(crate) fn stack_at(xs: &[&Expr], axis: isize, loc: Location) -> Result<Expr> {
    let first = xs.first().ok_or_else(|| Error::Usage {
        what: "stack of no tensors".into(),
        loc,
    })?;
    // An invalid operand's error comes first: its placeholder type says nothing about axes.
    for x in xs {
        x.graph.check(&[x.id])?;
    }
    let ndim = first.ndim() + 1;
    let a = shape::axis(axis, ndim).ok_or(Error::Axis {
        op: "stack".into(),
        axis,
        ndim,
        loc,
    })?;
    let expanded: Vec<Expr> = xs
        .iter()
        .map(|x| x.graph.apply_loc(Op::ExpandDims(vec![a]), &[x], loc))
        .collect();
    let refs: Vec<&Expr> = expanded.iter().collect();
    concat_at(&refs, a as isize, loc)
}

/// Concatenate tensors along `axis`.
#[track_caller]
pub fn concat(xs: &[&Expr], axis: isize) -> Result<Expr> {
    concat_at(xs, axis, Location::caller())
}

fn concat_at(xs: &[&Expr], axis: isize, loc: Location) -> Result<Expr> {
    let first = xs.first().ok_or_else(|| Error::Usage {
        what: "concat of no tensors".into(),
        loc,
    })?;
    // An invalid operand's error comes first: its placeholder type says nothing about axes.
    for x in xs {
        x.graph.check(&[x.id])?;
    }
    let ndim = first.ndim();
    let a = shape::axis(axis, ndim).ok_or(Error::Axis {
        op: "concat".into(),
        axis,
        ndim,
        loc,
    })?;
    first.graph.apply_loc(Op::Concat(a), xs, loc).check()
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
                like.lit(*self as f64)
            }
        }
    )*};
}
scalar_operand!(f64, f32, i32, i64);

macro_rules! binary_operator {
    ($trait:ident, $method:ident, $op:ident) => {
        impl ops::$trait<&Expr> for &Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: &Expr) -> Expr {
                self.apply(Op::Binary(Binary::$op), &[self, rhs])
            }
        }
        impl ops::$trait<Expr> for Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: Expr) -> Expr {
                ops::$trait::$method(&self, &rhs)
            }
        }
        impl ops::$trait<&Expr> for Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: &Expr) -> Expr {
                ops::$trait::$method(&self, rhs)
            }
        }
        impl ops::$trait<Expr> for &Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: Expr) -> Expr {
                ops::$trait::$method(self, &rhs)
            }
        }
        // Only `f64`: with a second scalar type a bare literal (`&x * 2.0`) would be ambiguous.
        // The constant takes the tensor's dtype either way.
        binary_operator!(@scalar $trait, $method, f64);
    };
    (@scalar $trait:ident, $method:ident, $t:ty) => {
        impl ops::$trait<$t> for &Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: $t) -> Expr {
                let r = self.lit(rhs as f64);
                ops::$trait::$method(self, &r)
            }
        }
        impl ops::$trait<$t> for Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: $t) -> Expr {
                ops::$trait::$method(&self, rhs)
            }
        }
        impl ops::$trait<&Expr> for $t {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: &Expr) -> Expr {
                let l = rhs.lit(self as f64);
                ops::$trait::$method(&l, rhs)
            }
        }
        impl ops::$trait<Expr> for $t {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: Expr) -> Expr {
                ops::$trait::$method(self, &rhs)
            }
        }
    };
}

binary_operator!(Add, add, Add);
binary_operator!(Sub, sub, Sub);
binary_operator!(Mul, mul, Mul);
binary_operator!(Div, div, Div);

impl ops::Neg for &Expr {
    type Output = Expr;
    #[track_caller]
    fn neg(self) -> Expr {
        self.apply(Op::Unary(Unary::Neg), &[self])
    }
}

impl ops::Neg for Expr {
    type Output = Expr;
    #[track_caller]
    fn neg(self) -> Expr {
        -&self
    }
}
