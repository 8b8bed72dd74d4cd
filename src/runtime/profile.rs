//! What a compiled function spends its time on (Theano's `ProfileMode`). The listing of the
//! program is the plan's (`Program::listing`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::NodeTime;
use crate::compile::ir::Node;
use crate::error::Location;

/// One node of a profiled program.
#[derive(Clone, Debug)]
pub struct NodeProfile {
    /// Position in the program.
    pub node: usize,
    /// The op, as `debugprint` names it (a fused kernel shows its expression).
    pub op: String,
    /// Where the user built the node (for a fused kernel, its result).
    pub loc: Location,
    /// Times the node ran.
    pub calls: u64,
    /// Time spent in it, summed over calls.
    pub total: Duration,
}

/// Time per node and per kind of op, summed over the calls made since profiling began. Print it
/// to read it: the nodes that took the most time come first.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Every node that computes something (leaves are left out), in program order.
    pub nodes: Vec<NodeProfile>,
    /// Calls of the function.
    pub calls: u64,
    /// The bodies of its loops, each with the nodes of its program.
    pub loops: Vec<LoopProfile>,
}

/// The body of a loop of a profiled program.
#[derive(Clone, Debug)]
pub struct LoopProfile {
    /// Where the user built the loop.
    pub loc: Location,
    /// Steps run, over all the calls.
    pub steps: u64,
    /// Time per node of the body (its `calls` are steps).
    pub body: Profile,
}

impl Profile {
    pub(crate) fn new(nodes: &[Node], times: &[NodeTime]) -> Profile {
        let rows: Vec<NodeProfile> = nodes
            .iter()
            .zip(times)
            .enumerate()
            .filter(|(_, (n, _))| !n.kind.is_leaf())
            .map(|(k, (n, t))| NodeProfile {
                node: k,
                op: n.kind.name(),
                loc: n.loc,
                calls: t.calls,
                total: Duration::from_nanos(t.nanos),
            })
            .collect();
        let calls = rows.iter().map(|r| r.calls).max().unwrap_or(0);
        Profile {
            nodes: rows,
            calls,
            loops: Vec::new(),
        }
    }

    /// Total time in nodes.
    pub fn total(&self) -> Duration {
        self.nodes.iter().map(|r| r.total).sum()
    }

    /// Time per kind of op (`gemm`, `fused`, `sum`...), largest first.
    pub fn by_kind(&self) -> Vec<(String, Duration, usize)> {
        let mut kinds: BTreeMap<String, (Duration, usize)> = BTreeMap::new();
        for r in &self.nodes {
            let kind =
                r.op.split(['{', '[', '<'])
                    .next()
                    .unwrap_or(&r.op)
                    .to_string();
            let e = kinds.entry(kind).or_default();
            e.0 += r.total;
            e.1 += 1;
        }
        let mut v: Vec<_> = kinds.into_iter().map(|(k, (t, n))| (k, t, n)).collect();
        v.sort_by_key(|k| std::cmp::Reverse(k.1));
        v
    }
}

fn ms(d: Duration, calls: u64) -> f64 {
    d.as_secs_f64() * 1e3 / calls.max(1) as f64
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.total();
        writeln!(
            f,
            "{} calls, {:.3} ms per call in {} nodes",
            self.calls,
            ms(total, self.calls),
            self.nodes.len()
        )?;
        writeln!(f, "by kind of op:")?;
        let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-12);
        for (kind, t, n) in self.by_kind() {
            writeln!(
                f,
                "  {:5.1}%  {:8.3} ms  {n:4} nodes  {kind}",
                share(t),
                ms(t, self.calls)
            )?;
        }
        writeln!(f, "nodes, most time first:")?;
        rows(f, &self.nodes, total, self.calls, 20, "  ")?;
        for l in &self.loops {
            let inside = l.body.total();
            writeln!(
                f,
                "loop built at {}: {} steps per call, {:.3} ms per call in its body; its nodes \
                 (share of the body, ms per call of the function):",
                l.loc,
                l.steps / self.calls.max(1),
                ms(inside, self.calls)
            )?;
            rows(f, &l.body.nodes, inside, self.calls, 12, "    ")?;
        }
        Ok(())
    }
}

/// The `limit` nodes of `nodes` that took the most time, each with its share of `total` and its
/// time per one of `calls`.
fn rows(
    f: &mut fmt::Formatter<'_>,
    nodes: &[NodeProfile],
    total: Duration,
    calls: u64,
    limit: usize,
    indent: &str,
) -> fmt::Result {
    let share = |d: Duration| 100.0 * d.as_secs_f64() / total.as_secs_f64().max(1e-12);
    let mut rows: Vec<&NodeProfile> = nodes.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.total));
    for r in rows.iter().take(limit) {
        let mut op = r.op.clone();
        if op.chars().count() > 60 {
            op = op.chars().take(59).collect::<String>() + "…";
        }
        writeln!(
            f,
            "{indent}{:5.1}%  {:8.3} ms  %{:<4} {op:<60}  {}",
            share(r.total),
            ms(r.total, calls),
            r.node,
            r.loc
        )?;
    }
    if rows.len() > limit {
        writeln!(f, "{indent}... {} more nodes", rows.len() - limit)?;
    }
    Ok(())
}
