//! The arithmetic operators on expressions and Rust numbers (`f64` and `i32`, so both `2.0`
//! and `2` work): `+ - * /` and unary `-`.

use std::ops;

use super::Expr;
use crate::graph::op::{Binary, Op, Unary};

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
        // One float and one integer type: a bare literal (`&x * 2.0`, `2 * &x`) then has one
        // impl to pick; with `f32` beside `f64`, `2.0` would be ambiguous. The constant takes
        // the tensor's dtype either way.
        binary_operator!(@scalar $trait, $method, f64);
        binary_operator!(@scalar $trait, $method, i32);
    };
    (@scalar $trait:ident, $method:ident, $t:ty) => {
        impl ops::$trait<$t> for &Expr {
            type Output = Expr;
            #[track_caller]
            fn $method(self, rhs: $t) -> Expr {
                let r = self.scalar_like(rhs as f64);
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
                let l = rhs.scalar_like(self as f64);
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
