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
        /// the error function `erf(x) = 2/sqrt(pi) * integral_0^x e^(-t^2) dt`
        erf => Erf;
        /// the largest integer `<= x`; its gradient is zero
        floor => Floor;
        /// the nearest integer, a half to the even one (`2.5 -> 2`, `3.5 -> 4`, as numpy and
        /// PyTorch round); its gradient is zero
        round => Round;
        /// the smallest integer `>= x`; its gradient is zero
        ceil => Ceil;
        /// logical not of a bool tensor
        not => Not;
    }

    /// The Gaussian error linear unit in its exact form, `x * Phi(x)` =
    /// `x / 2 * (1 + erf(x / sqrt(2)))` (not the `tanh` approximation).
    #[track_caller]
    pub fn gelu(&self) -> Expr {
        if let Some(e) = self.not_float("gelu") {
            return e;
        }
        let phi = (self * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0;
        self * &phi * 0.5
    }

    /// The exponential linear unit: `x` for `x > 0`, else `alpha * (e^x - 1)`.
    #[track_caller]
    pub fn elu(&self, alpha: f64) -> Expr {
        if let Some(e) = self.not_float("elu") {
            return e;
        }
        // expm1 of min(x, 0): the branch not taken never overflows, so its zero gradient
        // stays zero (0 * inf would be NaN).
        let neg = self.minimum(0.0).expm1() * alpha;
        self.gt(0.0).select(self, &neg)
    }

    /// The leaky rectifier: `x` for `x > 0`, else `slope * x`.
    #[track_caller]
    pub fn leaky_relu(&self, slope: f64) -> Expr {
        if let Some(e) = self.not_float("leaky_relu") {
            return e;
        }
        self.gt(0.0).select(self, &(self * slope))
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
