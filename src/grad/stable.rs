//! Stable gradient rules: where a fragile pair of ops meets (`log` of a `softmax`, `log` of a
//! sum of exponentials), the cotangent goes straight to the inner operand in a form that
//! neither overflows nor divides 0 by 0, past the pair's own rules, which divide by values
//! that underflow to 0 or overflow. The optimizer stabilizes the forward pass the same way.
//!
//! Each rule looks at the node being differentiated and the operands below it; the sweep tries
//! them in order before the node's own rule.

use super::Snapshot;
use crate::graph::op::{Binary, Op, Reduce, Unary};
use crate::graph::{Expr, Graph, NodeId};

/// What a stable rule sees: the node whose cotangent `dy` is known, the snapshot of the graph
/// the sweep reads, and which nodes lie on a path from the variables to the cost.
pub(super) struct Site<'a> {
    pub nodes: &'a [Snapshot],
    pub id: NodeId,
    pub graph: &'a Graph,
    pub dy: &'a Expr,
    pub on_path: &'a dyn Fn(usize) -> bool,
}

impl Site<'_> {
    /// The op and operands of node `id`.
    fn node(&self, id: NodeId) -> (&Op, &[NodeId]) {
        let n = &self.nodes[id.index()];
        (&n.op, &n.inputs)
    }

    /// The operand of `id` when it is the unary op `u` and the operand is on the path.
    fn unary(&self, id: NodeId, u: Unary) -> Option<NodeId> {
        match self.node(id) {
            (Op::Unary(x), [a]) if *x == u && (self.on_path)(a.index()) => Some(*a),
            _ => None,
        }
    }

    /// The operand of `id` when it is the unary op `u`, on the path or not.
    fn unary_any(&self, id: NodeId, u: Unary) -> Option<NodeId> {
        match self.node(id) {
            (Op::Unary(x), [a]) if *x == u => Some(*a),
            _ => None,
        }
    }

    /// Is `id` a one-element constant equal to `v`?
    fn is_scalar(&self, id: NodeId, v: f64) -> bool {
        let Op::Constant(c) = self.node(id).0 else {
            return false;
        };
        let value = self.graph.lock().constants[*c].clone();
        value.len() == 1 && value.to_f64_vec()[0] == v
    }
}

/// A rule: a name, and where it applies, the node the cotangent goes to with its contribution.
pub(super) struct StableRule {
    pub name: &'static str,
    pub apply: fn(&Site) -> Option<(NodeId, Expr)>,
}

/// The rules, tried in order.
pub(super) static STABLE_RULES: &[StableRule] = &[
    StableRule {
        name: "log_softmax_grad",
        apply: log_softmax_grad,
    },
    StableRule {
        name: "log_sum_exp_grad",
        apply: log_sum_exp_grad,
    },
    StableRule {
        name: "log_sigmoid_grad",
        apply: log_sigmoid_grad,
    },
    StableRule {
        name: "log_one_minus_sigmoid_grad",
        apply: log_one_minus_sigmoid_grad,
    },
];

/// The first rule that applies at `site`.
pub(super) fn apply(site: &Site) -> Option<(NodeId, Expr)> {
    STABLE_RULES.iter().find_map(|r| {
        let hit = (r.apply)(site);
        if hit.is_some() {
            log::debug!("grad: {} at node {}", r.name, site.id.index());
        }
        hit
    })
}

// y = log(softmax(x)): dx = dy - softmax(x) · sum(dy), the gradient of log_softmax
fn log_softmax_grad(site: &Site) -> Option<(NodeId, Expr)> {
    let u = site.unary(site.id, Unary::Log)?;
    let (Op::Softmax(axis), [x]) = site.node(u) else {
        return None;
    };
    if !(site.on_path)(x.index()) {
        return None;
    }
    let s = site.graph.expr(u);
    let dy = site.dy;
    Some((*x, dy - &(&s * &dy.sum_axes(&[*axis as isize], true))))
}

// y = log(sum(exp(x))): dx = dy · softmax(x) over the summed axes, shifted by the maximum
fn log_sum_exp_grad(site: &Site) -> Option<(NodeId, Expr)> {
    let u = site.unary(site.id, Unary::Log)?;
    let (
        Op::Reduce {
            op: Reduce::Sum,
            axes,
            keepdims,
        },
        [e],
    ) = site.node(u)
    else {
        return None;
    };
    let x = site.unary(*e, Unary::Exp)?;
    let xe = site.graph.expr(x);
    let axes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
    let w = (&xe - &xe.max_shift(&axes)).exp();
    let soft = &w / &w.sum_axes(&axes, true);
    let dy = if *keepdims {
        site.dy.clone()
    } else {
        site.dy.expand_dims(&axes)
    };
    Some((x, &soft * &dy))
}

// y = log(sigmoid(x)): dx = dy · sigmoid(-x) (the rules of log and sigmoid give
// dy / s · s (1 - s), which is 0 / 0 where s underflows)
fn log_sigmoid_grad(site: &Site) -> Option<(NodeId, Expr)> {
    let s = site.unary(site.id, Unary::Log)?;
    let x = site.unary(s, Unary::Sigmoid)?;
    let xe = site.graph.expr(x);
    Some((x, site.dy * &(-&xe).sigmoid()))
}

// y = log(1 - sigmoid(x)): dx = -dy · sigmoid(x) (the rules give -dy / (1 - s) · s (1 - s),
// which is 0 / 0 where 1 - s rounds to 0)
fn log_one_minus_sigmoid_grad(site: &Site) -> Option<(NodeId, Expr)> {
    let d = site.unary_any(site.id, Unary::Log)?;
    let (Op::Binary(Binary::Sub), [one, s]) = site.node(d) else {
        return None;
    };
    if !site.is_scalar(*one, 1.0) {
        return None;
    }
    let x = site.unary(*s, Unary::Sigmoid)?;
    let xe = site.graph.expr(x);
    Some((x, -(site.dy * &xe.sigmoid())))
}
