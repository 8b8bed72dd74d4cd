//! Linear algebra: matrix products, `dot`, `outer`, transposes.

use super::Expr;
use crate::graph::op::Op;

impl Expr {
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
}
