//! Products pushed out of a loop's gradient.
//!
//! The gradient of a matrix that a step multiplies by, `W` in `h W`, is a sum over the steps
//! of products `a_tᵀ b_t` (`a_t` the step's `h`, `b_t` the cotangent of the product). Summed
//! in the backward loop, that is one small product and one add per step. Pushed out, the loop
//! only stacks `a_t` and `b_t` (where it does not already: `a_t` is often a state's history,
//! which the backward loop reads as a sequence, and `b_t` the cotangent of a sequence it
//! makes anyway), and one product over the rows of all the steps, `Aᵀ B` with `A` of
//! `[T·N, K]` and `B` of `[T·N, M]`, makes the sum after the loop: one large product instead
//! of T small ones, as Theano's scan optimizations move a dot out of the loop.
//!
//! A loop that recomputes its steps ([`Scan::recompute`](crate::graph::loops::Scan)) keeps
//! the sums in the loop: stacking `a_t` and `b_t` would spend the memory it saves.

use std::collections::HashSet;

use crate::graph::op::{Binary, Op};
use crate::graph::{Expr, Graph, NodeId};

/// One term of a captured node's per-step gradient.
pub(super) enum Term {
    /// `aᵀ b` of two step-dependent matrices whose columns are known: pushed out.
    Product(Expr, Expr),
    /// Anything else: summed in the loop.
    Other(Expr),
}

/// What the terms of a captured node's per-step gradient look like: how many products are
/// pushed out, and whether anything is left to sum in the loop.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct Shape {
    pub products: usize,
    pub rest: bool,
}

impl Shape {
    pub fn of(terms: &[Term]) -> Shape {
        let products = terms
            .iter()
            .filter(|t| matches!(t, Term::Product(..)))
            .count();
        Shape {
            products,
            rest: products < terms.len() || terms.is_empty(),
        }
    }
}

/// The terms of `d`, a sum (of terms of `d`'s own type), where `steps` are the nodes of the
/// step's values: a product `matmul(transpose(a), b)` of 2-D `a` and `b` that both depend
/// on the step and whose last dimensions are known is a [`Term::Product`].
pub(super) fn terms(graph: &Graph, d: &Expr, steps: &[NodeId]) -> Vec<Term> {
    let mut out = Vec::new();
    let mut todo = vec![d.clone()];
    let ty = d.ty();
    while let Some(e) = todo.pop() {
        let inputs = e.inputs();
        let op = e.op();
        if op == Op::Binary(Binary::Add) && inputs.iter().all(|i| i.ty() == ty) {
            todo.extend(inputs.into_iter().rev());
            continue;
        }
        let pushed = (op == Op::MatMul)
            .then(|| product(graph, &inputs, steps))
            .flatten();
        out.push(match pushed {
            Some((a, b)) => Term::Product(a, b),
            None => Term::Other(e),
        });
    }
    out
}

/// `(a, b)` where `inputs` are those of `matmul(transpose(a), b)` as [`terms`] wants them.
fn product(graph: &Graph, inputs: &[Expr], steps: &[NodeId]) -> Option<(Expr, Expr)> {
    let (ta, b) = (&inputs[0], &inputs[1]);
    if ta.op() != Op::Transpose(vec![1, 0]) {
        return None;
    }
    let a = ta.inputs().remove(0);
    let known = |e: &Expr| e.ndim() == 2 && e.shape().dims()[1].is_some();
    (known(&a) && known(b) && depends(graph, &a, steps) && depends(graph, b, steps))
        .then_some((a, b.clone()))
}

/// Whether `e` reads (through any path) one of the nodes `steps`.
fn depends(graph: &Graph, e: &Expr, steps: &[NodeId]) -> bool {
    let Some(&first) = steps.iter().min() else {
        return false;
    };
    let g = graph.lock();
    let mut seen: HashSet<NodeId> = HashSet::new();
    let mut stack = vec![e.id()];
    while let Some(id) = stack.pop() {
        if steps.contains(&id) {
            return true;
        }
        // A node made before the step's values cannot read them.
        if id < first || !seen.insert(id) {
            continue;
        }
        stack.extend(g.node(id).inputs.iter().copied());
    }
    false
}

/// `Σ_t a_tᵀ b_t` from the stacks `a` (`[T, N, K]`) and `b` (`[T, N, M]`): one product over
/// the rows of all the steps.
pub(super) fn summed(a: &Expr, b: &Expr) -> Expr {
    let rows = |e: &Expr| {
        let cols = e.shape().dims()[2].expect("a pushed product's columns are known");
        e.reshape(&[-1, cols as isize])
    };
    rows(a).t().matmul(&rows(b))
}
