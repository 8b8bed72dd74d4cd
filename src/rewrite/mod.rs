//! Graph rewrites: named rules, run by one driver in ordered phases on the compiler's own copy
//! of the graph (`FGraph`), never on the user's graph.
//!
//! Phases run in order: merge → fold → canonicalize → stabilize → specialize → fuse → merge. Within a
//! phase, every enabled rule is tried on every live node, in passes, until a pass changes nothing
//! or the pass limit is hit; [`RewriteStats`] records per-rule hits and why each phase stopped.
//! Any rule can be switched off by name (`FunctionBuilder::exclude`). In debug builds and tests a
//! validation pass runs after each phase and names the rule that broke an invariant.

mod fgraph;
mod fuse;
mod rules;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub(crate) use fgraph::FGraph;
pub use rules::RULES;

use crate::graph::op::Op;

/// When a rule runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Identical nodes become one (CSE).
    Merge,
    /// Nodes of constants are evaluated at compile time.
    Fold,
    /// Algebraic clean-up to a canonical form (`x*1`, `--x`, double transposes...).
    Canonicalize,
    /// Numerically stable forms (`log(sigmoid x)`, `log(1+x)`, `log(softmax)`...).
    Stabilize,
    /// Faster forms (`x*x` → `square x`, `matmul` → `gemm` with flags, bias and alpha).
    Specialize,
    /// Regions of elementwise ops become one loop each.
    Fuse,
}

/// Whole-graph passes that can be switched off by name like the rules.
pub const GRAPH_PASSES: &[&str] = &["merge", fuse::NAME];

/// A rule: a name, its phase, and a function that returns the replacement of a node (with the
/// same type) or `None`.
pub struct Rewrite {
    /// Snake-case name describing the change; used to switch the rule off.
    pub name: &'static str,
    /// The phase it runs in.
    pub phase: Phase,
    pub(crate) apply: fn(&mut FGraph, usize) -> Option<usize>,
}

/// What the optimizer did to one function.
#[derive(Clone, Debug, Default)]
pub struct RewriteStats {
    /// Hits per rule name.
    pub hits: BTreeMap<&'static str, usize>,
    /// For each phase run: the phase, passes made, and why it stopped.
    pub phases: Vec<(Phase, usize, &'static str)>,
    /// Nodes before and after.
    pub nodes_before: usize,
    /// Nodes after optimization (live ones).
    pub nodes_after: usize,
}

impl fmt::Display for RewriteStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nodes: {} -> {}", self.nodes_before, self.nodes_after)?;
        for (phase, passes, why) in &self.phases {
            writeln!(f, "phase {phase:?}: {passes} passes, {why}")?;
        }
        for (name, n) in &self.hits {
            writeln!(f, "  {name}: {n}")?;
        }
        Ok(())
    }
}

/// Passes a phase may make before it stops anyway.
const PASS_LIMIT: usize = 16;

/// Run all phases over `fg`, skipping the rules named in `excluded`.
pub(crate) fn optimize(fg: &mut FGraph, excluded: &[String]) -> RewriteStats {
    let mut stats = RewriteStats {
        nodes_before: fg.order().len(),
        ..RewriteStats::default()
    };
    let on = |name: &str| !excluded.iter().any(|e| e == name);
    for phase in [
        Phase::Merge,
        Phase::Fold,
        Phase::Canonicalize,
        Phase::Stabilize,
        Phase::Specialize,
        Phase::Fuse,
        Phase::Merge,
    ] {
        let mut passes = 0;
        let mut why = "fixed point";
        loop {
            if passes == PASS_LIMIT {
                why = "pass limit";
                break;
            }
            passes += 1;
            fg.count_uses();
            let mut fired: Vec<&'static str> = Vec::new();
            let changed = if phase == Phase::Fuse {
                // One pass: fused kernels are not fused again.
                if on(fuse::NAME) {
                    let n = fuse::fuse(fg);
                    if n > 0 {
                        *stats.hits.entry(fuse::NAME).or_default() += n;
                        fired.push(fuse::NAME);
                    }
                }
                false
            } else if phase == Phase::Merge {
                if on("merge") {
                    merge(fg, &mut stats)
                } else {
                    false
                }
            } else {
                let mut changed = false;
                for node in fg.order() {
                    for rule in RULES.iter().filter(|r| r.phase == phase && on(r.name)) {
                        let node = fg.find(node);
                        if let Some(new) = (rule.apply)(fg, node) {
                            let new = fg.find(new);
                            if new == node {
                                continue;
                            }
                            debug_assert!(
                                fg.node(new).ty == fg.node(node).ty,
                                "rewrite {} changed the type of node {node}: {} -> {}",
                                rule.name,
                                fg.node(node).ty,
                                fg.node(new).ty
                            );
                            log::debug!(
                                "rewrite {}: node {node} ({}) -> {new} ({})",
                                rule.name,
                                fg.node(node).op.name(),
                                fg.node(new).op.name()
                            );
                            fg.replace(node, new, rule.name);
                            *stats.hits.entry(rule.name).or_default() += 1;
                            fired.push(rule.name);
                            changed = true;
                        }
                    }
                }
                changed
            };
            if cfg!(debug_assertions)
                && let Err(e) = fg.validate()
            {
                panic!(
                    "the graph is invalid after phase {phase:?}, pass {passes}, which applied {fired:?}: {e}"
                );
            }
            if !changed {
                break;
            }
        }
        stats.phases.push((phase, passes, why));
    }
    stats.nodes_after = fg.order().len();
    stats
}

/// Merge nodes with the same op and operands (and constants with equal values).
fn merge(fg: &mut FGraph, stats: &mut RewriteStats) -> bool {
    let mut seen: HashMap<(Op, Vec<usize>), usize> = HashMap::new();
    let mut consts: HashMap<(crate::dtype::DType, Vec<usize>, Vec<u64>), usize> = HashMap::new();
    let mut changed = false;
    for node in fg.order() {
        let n = fg.node(node);
        let target = match (&n.op, &n.leaf) {
            (Op::Constant(_), Some(crate::function::Leaf::Const(t))) => {
                let bits: Vec<u64> = t.to_f64_vec().iter().map(|v| v.to_bits()).collect();
                *consts
                    .entry((t.dtype(), t.shape().to_vec(), bits))
                    .or_insert(node)
            }
            (Op::Random { .. } | Op::Input { .. } | Op::Shared(_) | Op::Constant(_), _) => node,
            (Op::Custom(c), _) if c.0.is_random() => node,
            (op, _) => {
                let key = (op.clone(), fg.inputs(node));
                *seen.entry(key).or_insert(node)
            }
        };
        if target != node {
            fg.replace(node, target, "merge");
            *stats.hits.entry("merge").or_default() += 1;
            changed = true;
        }
    }
    changed
}
