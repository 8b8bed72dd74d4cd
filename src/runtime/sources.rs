//! Where the operands of a failing op come from: a run-time shape error of a call names the
//! inputs (and shared variables) behind the op's operands, with the shapes they have in this
//! call, so that "[3, 10] and [4, 10]" reads as "`labels` was fed 3 rows, `images` 4".

use crate::compile::ir::{Kind, Node};
use crate::error::{Error, Location};
use crate::shape;
use crate::tensor::Tensor;

use super::Executor;

impl Executor {
    /// `err`, a run-time shape error of a call on `inputs`, with the inputs the failing op's
    /// operands come from; any other error unchanged. The failing op is the first node, in the
    /// order a call runs them, of the error's op and line (a gradient's nodes share the line of
    /// the forward op, and run after it).
    pub(crate) fn with_sources(&self, err: Error, inputs: &[Tensor]) -> Error {
        let Error::Runtime { op, detail, loc } = err else {
            return err;
        };
        let nodes = &self.program.nodes;
        let told = nodes
            .iter()
            .find_map(|n| operands_of(n, &op, loc))
            .and_then(|operands| describe(nodes, &operands, inputs));
        let detail = match told {
            Some(sources) => format!("{detail}; {sources}"),
            None => detail,
        };
        Error::Runtime { op, detail, loc }
    }
}

/// The nodes each operand of the op `op` built at `loc` reads, if node `n` computes it: the node
/// itself, an op of its fused kernel, or the product or bias `add` of its gemm.
fn operands_of(n: &Node, op: &str, loc: Location) -> Option<Vec<Vec<usize>>> {
    let pick = |ks: Vec<Vec<usize>>| -> Vec<Vec<usize>> {
        let node = |i: &usize| n.inputs.get(*i).copied();
        ks.iter()
            .map(|k| k.iter().filter_map(node).collect())
            .collect()
    };
    match &n.kind {
        Kind::Fused(k) => Some(pick(k.operand_inputs(op, loc)?)),
        Kind::Gemm(g) => match &g.bias_add {
            Some(add) if op == add.op && add.loc == loc => {
                // The operands in the order the user wrote them.
                let (product, bias) = (vec![0, 1], vec![2]);
                Some(pick(match add.bias_first {
                    true => vec![bias, product],
                    false => vec![product, bias],
                }))
            }
            _ if op == "matmul" && n.loc == loc => Some(pick(vec![vec![0], vec![1]])),
            _ => None,
        },
        _ if n.loc == loc && n.kind.user_name() == op => {
            Some(n.inputs.iter().map(|&i| vec![i]).collect())
        }
        _ => None,
    }
}

/// The input and shared-variable nodes behind the nodes `from`, in the order first reached.
fn leaves(nodes: &[Node], from: &[usize]) -> Vec<usize> {
    let mut seen = vec![false; nodes.len()];
    let mut stack: Vec<usize> = from.iter().rev().copied().collect();
    let mut found = Vec::new();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        match &nodes[i].kind {
            Kind::Input { .. } | Kind::Shared(_) => found.push(i),
            _ => stack.extend(nodes[i].inputs.iter().rev()),
        }
    }
    found
}

/// "the operands come from the inputs `a` (fed [3]) and `b` (fed [4])": for each operand, the
/// inputs that set it apart from the others (behind it, not behind all of them), or its shared
/// variables where no input does; all the operands' inputs where they share theirs. `None` where
/// no operand reads an input or a shared variable.
fn describe(nodes: &[Node], operands: &[Vec<usize>], inputs: &[Tensor]) -> Option<String> {
    let per: Vec<Vec<usize>> = operands.iter().map(|o| leaves(nodes, o)).collect();
    let is_input = |i: &&usize| matches!(nodes[**i].kind, Kind::Input { .. });
    let mut named: Vec<usize> = Vec::new();
    for leaves in &per {
        let apart: Vec<usize> = leaves
            .iter()
            .copied()
            .filter(|i| !per.iter().all(|p| p.contains(i)))
            .collect();
        let fed: Vec<usize> = apart.iter().filter(is_input).copied().collect();
        named.extend(if fed.is_empty() { apart } else { fed });
    }
    if named.is_empty() {
        named = per.concat();
    }
    let mut seen = Vec::new();
    named.retain(|i| {
        !seen.contains(i) && {
            seen.push(*i);
            true
        }
    });
    let (mut fed, mut held) = (Vec::new(), Vec::new());
    for &i in &named {
        match &nodes[i].kind {
            Kind::Input { position, name } => {
                let shape = shape::show(inputs.get(*position)?.shape());
                fed.push(format!("`{name}` (fed {shape})"));
            }
            Kind::Shared(v) => {
                let shape = shape::show(v.read().shape());
                held.push(format!("`{}` (holding {shape})", v.name));
            }
            _ => {}
        }
    }
    let group = |items: &[String], one: &str, many: &str| match items {
        [] => None,
        [only] => Some(format!("{one} {only}")),
        [first @ .., last] => Some(format!("{many} {} and {last}", first.join(", "))),
    };
    let parts: Vec<String> = [
        group(&fed, "the input", "the inputs"),
        group(&held, "the shared variable", "the shared variables"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        return None;
    }
    let subject = if operands.len() == 1 {
        "the operand comes from"
    } else {
        "the operands come from"
    };
    Some(format!("{subject} {}", parts.join(" and ")))
}
