//! The plan: a program the runtime executes, with its schedule and the last reader of every
//! value (so that each buffer goes back to the pool right after it).
//!
//! Nodes are in dependency order. Each value dies at its last reader unless it is an output or
//! an update, so a long chain holds only a few buffers at a time; a reference program keeps
//! every value.

mod schedule;

use std::fmt::Write;
use std::sync::Arc;

use super::ir::{CompiledLoop, Kind, Node, permuted};
use crate::graph::{SharedVar, StateLock, Type};
use crate::kernels::Exec;

/// An executable program.
pub(crate) struct Program {
    pub nodes: Vec<Node>,
    pub outputs: Vec<usize>,
    /// Each updated variable with the node of its new value.
    pub updates: Vec<(Arc<SharedVar>, usize)>,
    /// Random stream states whose counter advances after each call.
    pub streams: Vec<Arc<SharedVar>>,
    /// Names and types of the function's inputs.
    pub input_types: Vec<(String, Type)>,
    /// How it runs: planned on the fast kernels, or on the reference interpreter, which keeps
    /// every value and needs none of the plan below.
    pub exec: Exec,
    /// The last node that reads each value; `None` for a value kept to the end of the call (an
    /// output, a new value, or any value of a reference program).
    pub last_use: Vec<Option<usize>>,
    /// How many outputs and updates read each node.
    pub root_reads: Vec<u32>,
    /// For a node that starts a run of fused kernels of one float type (leaves may sit between
    /// them), the end of the run.
    pub run_end: Vec<Option<usize>>,
    /// Whether a node is a product that runs at once with the next (see
    /// [`schedule::pair_products`]).
    pub pair_start: Vec<bool>,
    /// Whether a loop's result goes to its readers as the list of its per-step values instead
    /// of stacked (see [`per_step_lists`]).
    pub as_steps: Vec<bool>,
    /// The shared variables the program reads, with their nodes.
    pub shared: Vec<(usize, Arc<SharedVar>)>,
    /// The lock of their graph's state, if the program reads or writes any.
    pub state: Option<Arc<StateLock>>,
}

/// Which loop results need never be stacked: a loop's per-step values (its outputs, its
/// states' history, the body values it keeps) that only other loops read, each as one of its
/// sequences, go over as the list of the steps' tensors. The loop that makes them then copies
/// no step into a stack, and the loop that reads them slices none: the backward loop of a
/// loop's gradient reads what its forward loop kept, step by step, as it was made.
fn per_step_lists(nodes: &[Node], root_reads: &[u32]) -> Vec<bool> {
    let mut list: Vec<bool> = nodes
        .iter()
        .zip(root_reads)
        .map(|(n, &roots)| {
            roots == 0
                && matches!(&n.kind, Kind::Loop { result, .. }
                    if !matches!(result, crate::graph::loops::LoopResult::Final(_)))
        })
        .collect();
    let mut read = vec![false; nodes.len()];
    for n in nodes {
        let sequences = match &n.kind {
            Kind::Loop { compiled, .. } => compiled.body.body().n_sequences,
            _ => 0,
        };
        for (position, &i) in n.inputs.iter().enumerate() {
            read[i] = true;
            if position >= sequences {
                list[i] = false;
            }
        }
    }
    list.iter().zip(&read).map(|(&l, &r)| l && r).collect()
}

/// `nodes` in the order `order` (old indices by position), with their operands, the outputs
/// and the updates renumbered.
fn reorder(
    nodes: Vec<Node>,
    order: &[usize],
    outputs: &mut [usize],
    updates: &mut [(Arc<SharedVar>, usize)],
) -> Vec<Node> {
    let (nodes, index) = permuted(nodes, order);
    outputs.iter_mut().for_each(|o| *o = index[*o]);
    updates.iter_mut().for_each(|u| u.1 = index[u.1]);
    nodes
}

impl Program {
    pub fn new(
        mut nodes: Vec<Node>,
        mut outputs: Vec<usize>,
        mut updates: Vec<(Arc<SharedVar>, usize)>,
        streams: Vec<Arc<SharedVar>>,
        input_types: Vec<(String, Type)>,
        exec: Exec,
    ) -> Program {
        let mut pair_start = vec![false; nodes.len()];
        if exec == Exec::Fast {
            for pass in [schedule::slices_early, schedule::readers_before_views] {
                let order = pass(&nodes);
                nodes = reorder(nodes, &order, &mut outputs, &mut updates);
            }
            let order;
            (order, pair_start) = schedule::pair_products(&nodes);
            nodes = reorder(nodes, &order, &mut outputs, &mut updates);
        }
        debug_assert!(
            nodes
                .iter()
                .enumerate()
                .all(|(k, n)| n.inputs.iter().all(|&i| i < k)),
            "every node comes after its operands"
        );
        let mut last_use = vec![None; nodes.len()];
        for (j, n) in nodes.iter().enumerate() {
            for &i in &n.inputs {
                last_use[i] = Some(j);
            }
        }
        let mut root_reads = vec![0u32; nodes.len()];
        for &o in outputs.iter().chain(updates.iter().map(|u| &u.1)) {
            last_use[o] = None;
            root_reads[o] += 1;
        }
        let shared: Vec<(usize, Arc<SharedVar>)> = nodes
            .iter()
            .enumerate()
            .filter_map(|(j, n)| match &n.kind {
                Kind::Shared(v) => Some((j, v.clone())),
                _ => None,
            })
            .collect();
        let state = shared
            .first()
            .map(|(_, v)| &v.state)
            .or(updates.first().map(|(v, _)| &v.state))
            .or(streams.first().map(|v| &v.state))
            .cloned();
        let (run_end, as_steps) = match exec {
            Exec::Fast => (
                schedule::kernel_runs(&nodes),
                per_step_lists(&nodes, &root_reads),
            ),
            Exec::Reference => (vec![None; nodes.len()], vec![false; nodes.len()]),
        };
        Program {
            nodes,
            outputs,
            updates,
            streams,
            input_types,
            exec,
            last_use,
            root_reads,
            run_end,
            pair_start,
            as_steps,
            shared,
            state,
        }
    }

    /// The program as a numbered list: `%k = op(%i, %j) : type  [built at file:line]`, then the
    /// outputs, the updates, and which nodes run together.
    pub fn listing(&self) -> String {
        let mut s = String::new();
        for (k, n) in self.nodes.iter().enumerate() {
            let args: Vec<String> = n.inputs.iter().map(|i| format!("%{i}")).collect();
            let _ = writeln!(
                s,
                "%{k} = {}({}) : {}  [{}]",
                n.kind,
                args.join(", "),
                n.ty,
                n.loc
            );
        }
        for (k, o) in self.outputs.iter().enumerate() {
            let _ = writeln!(s, "output {k} = %{o}");
        }
        for (var, v) in &self.updates {
            let _ = writeln!(s, "update {} = %{v}", var.name);
        }
        let mut j = 0;
        while j < self.nodes.len() {
            if self.pair_start[j] {
                let _ = writeln!(s, "products %{j} and %{} run side by side", j + 1);
            }
            match self.run_end[j] {
                Some(end) => {
                    let _ = writeln!(
                        s,
                        "kernels %{j}..=%{} run as one loop (while their shapes agree)",
                        end - 1
                    );
                    j = end;
                }
                None => j += 1,
            }
        }
        let lists: Vec<String> = (0..self.nodes.len())
            .filter(|&k| self.as_steps[k])
            .map(|k| format!("%{k}"))
            .collect();
        if !lists.is_empty() {
            let _ = writeln!(
                s,
                "loop results {} go to the loops that read them as lists of their steps \
                 (not stacked)",
                lists.join(", ")
            );
        }
        // Each loop's body, once: its own program.
        let mut shown: Vec<*const CompiledLoop> = Vec::new();
        for (k, n) in self.nodes.iter().enumerate() {
            if let Kind::Loop { compiled, .. } = &n.kind
                && !shown.contains(&Arc::as_ptr(compiled))
            {
                shown.push(Arc::as_ptr(compiled));
                let body = compiled.body.body();
                let _ = writeln!(
                    s,
                    "loop of %{k} (built at {}): per step, inputs %0.. are the step values ({} \
                     sequence slices, then {} states), then the {} captured values:",
                    body.loc,
                    body.n_sequences,
                    body.n_states(),
                    body.captured.len()
                );
                for line in compiled.program.listing().lines() {
                    let _ = writeln!(s, "    {line}");
                }
            }
        }
        s
    }
}
