//! Printing graphs for people: `pp` (infix algebra), `debugprint` (a tree with dtypes, shapes
//! and source locations) and `to_dot` (Graphviz).

use std::collections::HashSet;
use std::fmt::Write;

use petgraph::dot::{Config, Dot};

use crate::graph::op::{Op, Unary};
use crate::graph::{Expr, GraphInner, NodeId};
use crate::tensor::Tensor;

/// Infix rendering, like Theano's `pp`: `pp(grad(x**2, x))` prints `((1 * 2) * (x ** (2 - 1)))`.
pub fn pp(e: &Expr) -> String {
    let g = e.graph.lock();
    let mut s = String::new();
    pp_node(&g, e.id, &mut s);
    s
}

fn fmt_scalar(t: &Tensor) -> Option<String> {
    if !t.shape().is_empty() {
        return None;
    }
    Some(match t {
        Tensor::F32(a) => a.iter().next().map(|v| v.to_string())?,
        Tensor::F64(a) => a.iter().next().map(|v| v.to_string())?,
        Tensor::I64(a) => a.iter().next().map(|v| v.to_string())?,
        Tensor::Bool(a) => a.iter().next().map(|v| v.to_string())?,
    })
}

fn pp_node(g: &GraphInner, id: NodeId, s: &mut String) {
    let n = g.node(id);
    if let Some(err) = &n.error {
        let _ = write!(s, "<error: {err}>");
        return;
    }
    let arg = |i: usize, s: &mut String| pp_node(g, n.inputs[i], s);
    match &n.op {
        Op::Input { name, .. } => s.push_str(name),
        Op::StepValue { label, .. } => s.push_str(label),
        Op::Shared(v) => s.push_str(&g.shared[*v].name),
        Op::Constant(c) => match fmt_scalar(&g.constants[*c]) {
            Some(v) => s.push_str(&v),
            None => {
                let _ = write!(s, "constant{}", n.ty);
            }
        },
        Op::Binary(b) if b.symbol().is_some() => {
            s.push('(');
            arg(0, s);
            let _ = write!(s, " {} ", b.symbol().unwrap_or_default());
            arg(1, s);
            s.push(')');
        }
        Op::Compare(c) => {
            s.push('(');
            arg(0, s);
            let _ = write!(s, " {} ", c.symbol());
            arg(1, s);
            s.push(')');
        }
        Op::MatMul => {
            s.push('(');
            arg(0, s);
            s.push_str(" @ ");
            arg(1, s);
            s.push(')');
        }
        Op::Unary(Unary::Neg) => {
            s.push('-');
            arg(0, s);
        }
        Op::Loop { body, .. } => {
            // loop{output 0}(xs, h0, W) where each step t: state0 <- ...; output0 <- ...
            let _ = write!(s, "{}(", n.op.name());
            for i in 0..n.inputs.len() {
                if i > 0 {
                    s.push_str(", ");
                }
                arg(i, s);
            }
            let _ = write!(s, ") where each step: ");
            let body = body.body();
            let parts = (body.next_states.iter().enumerate())
                .map(|(k, &r)| (format!("state{k}"), r))
                .chain(
                    body.outputs
                        .iter()
                        .enumerate()
                        .map(|(k, &r)| (format!("output{k}"), r)),
                )
                .chain(body.until.map(|u| ("until".to_string(), u)));
            for (k, (what, r)) in parts.enumerate() {
                if k > 0 {
                    s.push_str("; ");
                }
                let _ = write!(s, "{what} <- ");
                pp_node(g, r, s);
            }
        }
        Op::Reduce { op, axes, keepdims }
            if axes.len() == g.node(n.inputs[0]).ty.ndim() && !keepdims =>
        {
            let _ = write!(s, "{}(", op.name());
            arg(0, s);
            s.push(')');
        }
        op => {
            let name = match op {
                Op::Unary(u) => u.name().to_string(),
                Op::Binary(b) => b.name().to_string(),
                other => other.name(),
            };
            s.push_str(&name);
            s.push('(');
            for i in 0..n.inputs.len() {
                if i > 0 {
                    s.push_str(", ");
                }
                arg(i, s);
            }
            s.push(')');
        }
    }
}

/// A tree of the graph below `outputs`, one node a line with its id, type and the source
/// location that built it. A node already printed is referred to by id.
pub fn debugprint(outputs: &[&Expr]) -> String {
    let mut s = String::new();
    let mut seen = HashSet::new();
    for e in outputs {
        let g = e.graph.lock();
        tree(&g, e.id, "", "", &mut seen, &mut s);
    }
    s
}

fn tree(
    g: &GraphInner,
    id: NodeId,
    head: &str,
    tail: &str,
    seen: &mut HashSet<NodeId>,
    s: &mut String,
) {
    let n = g.node(id);
    let label = match &n.op {
        Op::Constant(c) => fmt_scalar(&g.constants[*c]).unwrap_or_else(|| "constant".into()),
        Op::Shared(v) => format!("shared {}", g.shared[*v].name),
        Op::Input { name, .. } => format!("input {name}"),
        op => op.name(),
    };
    let again = !n.inputs.is_empty() && !seen.insert(id);
    let _ = writeln!(
        s,
        "{head}{label} [id {}] {} ({}){}",
        id.0,
        n.ty,
        n.loc,
        if again { " ..." } else { "" }
    );
    if again {
        return;
    }
    for (i, inp) in n.inputs.iter().enumerate() {
        let last = i + 1 == n.inputs.len();
        let h = format!("{tail}{}", if last { "└─ " } else { "├─ " });
        let t = format!("{tail}{}", if last { "   " } else { "│  " });
        tree(g, *inp, &h, &t, seen, s);
    }
    // A loop's body, once per loop: the tree of each step's results.
    if let Op::Loop { body, .. } = &n.op
        && seen.insert(body.body().step_values.first().copied().unwrap_or(id))
    {
        let body = body.body();
        let _ = writeln!(s, "{tail}   each step of the loop built at {}:", body.loc);
        let parts = (body.next_states.iter().enumerate())
            .map(|(k, &r)| (format!("state{k} <- "), r))
            .chain(
                body.outputs
                    .iter()
                    .enumerate()
                    .map(|(k, &r)| (format!("output{k} <- "), r)),
            )
            .chain(body.until.map(|u| ("until ".to_string(), u)));
        for (what, r) in parts {
            let h = format!("{tail}   {what}");
            let t = format!("{tail}   {}", " ".repeat(what.chars().count()));
            tree(g, r, &h, &t, seen, s);
        }
    }
}

/// Graphviz DOT of the graph below `outputs` (operands point to their users).
pub fn to_dot(outputs: &[&Expr]) -> String {
    let Some(first) = outputs.first() else {
        return "digraph {\n}\n".into();
    };
    let g = first.graph.lock();
    let mut pg = petgraph::Graph::<String, &str>::new();
    let mut index = std::collections::HashMap::new();
    let mut stack: Vec<NodeId> = outputs.iter().map(|e| e.id).collect();
    let mut order = Vec::new();
    while let Some(id) = stack.pop() {
        if index.contains_key(&id) {
            continue;
        }
        let n = g.node(id);
        let label = match &n.op {
            Op::Constant(c) => fmt_scalar(&g.constants[*c]).unwrap_or_else(|| "constant".into()),
            _ => g
                .name_of(id)
                .split('#')
                .next()
                .unwrap_or_default()
                .to_string(),
        };
        index.insert(id, pg.add_node(format!("{label}\n{}", n.ty)));
        order.push(id);
        stack.extend(n.inputs.iter().copied());
    }
    for id in order {
        for inp in &g.node(id).inputs {
            pg.add_edge(index[inp], index[&id], "");
        }
    }
    // Display, not Debug: Debug would quote each label a second time.
    format!("{}", Dot::with_config(&pg, &[Config::EdgeNoLabel]))
}
