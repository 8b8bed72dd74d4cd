//! Elementwise maths, comparisons, `where` and casts.

use super::{Expr, Operand};
use crate::dtype::DType;
use crate::error::{Error, Location};
use crate::graph::op::{Binary, Cmp, Op, Unary};

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
        /// `log(sigmoid(x))` = `-softplus(-x)`, finite for every finite `x` with its gradient
        /// `sigmoid(-x)`
        log_sigmoid => LogSigmoid;
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
}
