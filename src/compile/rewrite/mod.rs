//! Graph rewrites: named rules and passes, run by one driver in ordered phases on the compiler's
//! own copy of the graph ([`FGraph`]), never on the user's graph.
//!
//! Phases run in the order of [`SCHEDULE`]: merge → fold → canonicalize → stabilize → specialize
//! → fuse → merge. A phase runs its whole-graph [`PASSES`] and tries each of its node
//! [`RULES`] on every live node, in passes, until a pass changes nothing or the pass limit is
//! hit; [`RewriteStats`] records per-rewrite hits and why each phase stopped. Any rule or pass
//! can be switched off by name (`FunctionBuilder::exclude`). In debug builds and tests a
//! validation pass runs after each pass of a phase and names the rewrites that broke an
//! invariant.

mod canonical;
mod fold;
mod fuse;
mod merge;
mod pattern;
mod specialize;
mod stabilize;

use std::collections::BTreeMap;
use std::fmt;

use super::fgraph::FGraph;

/// When a rewrite runs.
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

/// The phases, in the order they run.
pub const SCHEDULE: &[Phase] = &[
    Phase::Merge,
    Phase::Fold,
    Phase::Canonicalize,
    Phase::Stabilize,
    Phase::Specialize,
    Phase::Fuse,
    Phase::Merge,
];

/// A node rule: a name, its phase, and a function that returns the replacement of a node (with
/// the same type) or `None`.
pub struct Rewrite {
    /// Snake-case name describing the change; used to switch the rule off.
    pub name: &'static str,
    /// The phase it runs in.
    pub phase: Phase,
    pub(crate) apply: fn(&mut FGraph, usize) -> Option<usize>,
}

impl Rewrite {
    /// The rule `name` of `phase`.
    pub(crate) const fn new(
        name: &'static str,
        phase: Phase,
        apply: fn(&mut FGraph, usize) -> Option<usize>,
    ) -> Rewrite {
        Rewrite { name, phase, apply }
    }
}

/// How often a pass runs within its phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Until it changes nothing (or the pass limit).
    ToFixedPoint,
    /// Once: what it makes, it would not change again (fused kernels are not fused again).
    Once,
}

/// A whole-graph pass: a name, its phase, how often it runs, and a function that rewrites the
/// graph and returns how many nodes it rewrote.
pub struct Pass {
    /// Snake-case name; used to switch the pass off.
    pub name: &'static str,
    /// The phase it runs in.
    pub phase: Phase,
    /// Whether the phase repeats it.
    pub repeat: Repeat,
    pub(crate) run: fn(&mut FGraph) -> usize,
}

/// Every node rule, in the order they are tried within a phase.
pub static RULES: &[Rewrite] = &[
    fold::CONSTANT_FOLD,
    canonical::DROP_STOP_GRADIENT,
    canonical::MUL_BY_ONE,
    canonical::ADD_ZERO,
    canonical::SUB_ZERO,
    canonical::DIV_BY_ONE,
    canonical::POW_ONE,
    canonical::SUB_SELF,
    canonical::SHAPE_FROM_OPERAND,
    canonical::DOUBLE_NEG,
    canonical::DOUBLE_TRANSPOSE,
    canonical::LOG_EXP,
    canonical::SLICE_GRADS_TO_CONCAT,
    canonical::FLATTEN_CONCAT,
    stabilize::LOG_SIGMOID_TO_SOFTPLUS,
    stabilize::LOG_ONE_MINUS_SIGMOID,
    stabilize::LOG_SIGMOID_GRAD,
    stabilize::LOG_ONE_PLUS_TO_LOG1P,
    stabilize::EXP_MINUS_ONE_TO_EXPM1,
    stabilize::LOG_SOFTMAX,
    stabilize::LOG_SUM_EXP,
    specialize::MUL_SELF_TO_SQUARE,
    specialize::POW_TWO_TO_SQUARE,
    specialize::MATMUL_TO_GEMM,
    specialize::GEMM_BIAS,
    specialize::GEMM_ALPHA,
    specialize::GEMM_SUB,
    specialize::CONV_BIAS,
];

/// Every whole-graph pass.
pub static PASSES: &[Pass] = &[merge::MERGE, fuse::FUSE_ELEMENTWISE];

/// Why a phase stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// A pass changed nothing (or the phase's only work is a pass that runs once).
    FixedPoint,
    /// It made as many passes as the limit allows.
    PassLimit,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::FixedPoint => "fixed point",
            StopReason::PassLimit => "pass limit",
        })
    }
}

/// One run of a phase.
#[derive(Clone, Copy, Debug)]
pub struct PhaseRun {
    /// The phase.
    pub phase: Phase,
    /// Passes made over the graph.
    pub passes: usize,
    /// Why it stopped.
    pub stop: StopReason,
}

/// What the optimizer did to one function.
#[derive(Clone, Debug, Default)]
pub struct RewriteStats {
    /// Hits per rule or pass name (for a pass: the nodes it rewrote).
    pub hits: BTreeMap<&'static str, usize>,
    /// Each phase run, in order.
    pub phases: Vec<PhaseRun>,
    /// Nodes before optimization.
    pub nodes_before: usize,
    /// Nodes after optimization (live ones).
    pub nodes_after: usize,
}

impl fmt::Display for RewriteStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nodes: {} -> {}", self.nodes_before, self.nodes_after)?;
        for run in &self.phases {
            writeln!(
                f,
                "phase {:?}: {} passes, {}",
                run.phase, run.passes, run.stop
            )?;
        }
        for (name, n) in &self.hits {
            writeln!(f, "  {name}: {n}")?;
        }
        Ok(())
    }
}

/// Passes a phase makes at most, unless the caller sets another limit.
pub const DEFAULT_PASS_LIMIT: usize = 16;

/// Is `name` a rule or a pass?
pub(crate) fn exists(name: &str) -> bool {
    RULES.iter().any(|r| r.name == name) || PASSES.iter().any(|p| p.name == name)
}

/// Run every phase over `fg`, skipping the rewrites named in `excluded`, at most `pass_limit`
/// passes a phase.
pub(crate) fn optimize(fg: &mut FGraph, excluded: &[String], pass_limit: usize) -> RewriteStats {
    let mut stats = RewriteStats {
        nodes_before: fg.order().len(),
        ..RewriteStats::default()
    };
    let on = |name: &str| !excluded.iter().any(|e| e == name);
    for &phase in SCHEDULE {
        let passes: Vec<&Pass> = PASSES
            .iter()
            .filter(|p| p.phase == phase && on(p.name))
            .collect();
        let rules: Vec<&Rewrite> = RULES
            .iter()
            .filter(|r| r.phase == phase && on(r.name))
            .collect();
        let once = rules.is_empty() && passes.iter().all(|p| p.repeat == Repeat::Once);
        let mut made = 0;
        let stop = loop {
            if made == pass_limit {
                break StopReason::PassLimit;
            }
            made += 1;
            let mut order = fg.count_uses();
            let mut fired: Vec<&'static str> = Vec::new();
            for pass in &passes {
                if pass.repeat == Repeat::Once && made > 1 {
                    continue;
                }
                let n = (pass.run)(fg);
                if n > 0 {
                    *stats.hits.entry(pass.name).or_default() += n;
                    fired.push(pass.name);
                }
            }
            // The order the uses were counted in, unless a pass has changed the graph since.
            if !fired.is_empty() {
                order = fg.order();
            }
            for &node in order.iter() {
                for rule in &rules {
                    let node = fg.find(node);
                    if apply(fg, rule, node) {
                        *stats.hits.entry(rule.name).or_default() += 1;
                        fired.push(rule.name);
                    }
                }
            }
            if cfg!(debug_assertions)
                && let Err(e) = fg.validate()
            {
                panic!(
                    "the graph is invalid after phase {phase:?}, pass {made}, which applied {fired:?}: {e}"
                );
            }
            // A pass that runs once leaves nothing for a second pass to do.
            if once || fired.is_empty() {
                break StopReason::FixedPoint;
            }
        };
        stats.phases.push(PhaseRun {
            phase,
            passes: made,
            stop,
        });
    }
    stats.nodes_after = fg.order().len();
    stats
}

/// Try `rule` on `node`; on a hit, forward the node's uses to the replacement.
fn apply(fg: &mut FGraph, rule: &Rewrite, node: usize) -> bool {
    let Some(new) = (rule.apply)(fg, node) else {
        return false;
    };
    let new = fg.find(new);
    if new == node {
        return false;
    }
    debug_assert!(
        fg.ty(new) == fg.ty(node),
        "rewrite {} changed the type of node {node}: {} -> {}",
        rule.name,
        fg.ty(node),
        fg.ty(new)
    );
    log::debug!(
        "rewrite {}: node {node} ({}) -> {new} ({})",
        rule.name,
        fg.kind(node),
        fg.kind(new)
    );
    fg.replace(node, new, rule.name);
    true
}
