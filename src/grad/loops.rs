//! The gradient of a loop (backpropagation through time) as another loop.
//!
//! The forward loop keeps the value of each state at the start of each step (its history) and,
//! unless the loop asks to recompute them ([`Scan::recompute`]), the values of the step that
//! the gradient reads (its residuals: an LSTM's gates). The backward loop runs over the steps in
//! the other direction, reading the forward sequences, the history, the residuals and the
//! cotangents of the stacked results as its sequences; its states are the cotangents of the
//! forward states and the sums of the captured nodes' gradients. Its body is the
//! vector-Jacobian product of the forward step, taken on the forward step rebuilt on the
//! step's values (same draws: same stream, same step), with the residuals read from the
//! forward loop instead of recomputed. Since the backward loop is a loop like any other, its
//! own gradient is built the same way (the gradient of the gradient).

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::graph::loops::{
    LoopBody, LoopHandle, LoopResult, Rebuilt, Scan, StepResult, step_value, substitute,
};
use crate::graph::{Expr, Graph, NodeId};

use super::pushout::{self, Term};
use super::{GradOptions, rules, sweep};

/// The cotangents of the inputs of the loop `handle` (its sequences, initial states, count
/// and captured nodes: `inputs`) given the cotangents of some of its results; `needs[i]` says
/// whether input `i` wants one.
pub(super) fn vjp(
    graph: &Graph,
    handle: &LoopHandle,
    inputs: &[Expr],
    cotangents: &[(LoopResult, Expr)],
    needs: &[bool],
) -> Result<Vec<Option<Expr>>> {
    let body: &LoopBody = handle.body();
    let loc = body.loc;
    let (p, q) = (body.n_sequences, body.n_states());
    let first = body.first_captured();
    let (sequences, init, captured) = (&inputs[..p], &inputs[p..p + q], &inputs[first..]);
    let float = |e: &Expr| rules::differentiable(e.dtype());
    let zeros = |like: &Expr| like.scalar_like(0.0).broadcast_like(like);
    let cotangent = |r: LoopResult| {
        cotangents
            .iter()
            .find(|(c, _)| *c == r)
            .map(|(_, d)| d.clone())
    };
    let result = |r: LoopResult| handle.result_node(graph, inputs, r);

    // What is differentiated, and the cotangents that come in per step.
    let plan = Plan {
        body,
        states: (0..q).filter(|&j| float(&init[j])).collect(),
        seqs: (0..p)
            .filter(|&i| needs[i] && float(&sequences[i]))
            .collect(),
        caps: (0..captured.len())
            .filter(|&k| needs[first + k] && float(&captured[k]))
            .collect(),
        captured,
    };
    let d_outputs: Vec<(usize, Expr)> = (0..body.n_outputs())
        .filter_map(|o| cotangent(LoopResult::Stacked(o)).map(|d| (o, d)))
        .collect();
    let d_history: Vec<(usize, Expr)> = plan
        .states
        .iter()
        .filter_map(|&j| cotangent(LoopResult::History(j)).map(|d| (j, d)))
        .collect();
    let d_inner: Vec<(NodeId, Expr)> = cotangents
        .iter()
        .filter_map(|(r, d)| match r {
            LoopResult::Inner(n) => Some((*n, d.clone())),
            _ => None,
        })
        .collect();
    let seeded = Seeded {
        outputs: d_outputs.iter().map(|(o, _)| *o).collect(),
        inner: d_inner.iter().map(|(n, _)| *n).collect(),
    };

    // The values of a step the gradient reads, found on a step built on stand-ins, and the
    // step values it reads (all of them, where it recomputes the step).
    // Also how the captured nodes' per-step gradients split into products pushed out of the
    // loop and the rest (all of it, where it recomputes).
    let all_rest = pushout::Shape {
        products: 0,
        rest: true,
    };
    let (residuals, reads, pushed) = if body.recompute {
        (
            Vec::new(),
            vec![true; p + q],
            vec![all_rest; plan.caps.len()],
        )
    } else {
        let stand_in = |e: &Expr| step_value(graph, &e.ty(), "stand-in", loc);
        let slice_type = |e: &Expr| {
            let ty = e.ty();
            crate::graph::Type::new(ty.dtype, &ty.shape.dims()[1.min(ty.ndim())..])
        };
        let x: Vec<Expr> = sequences
            .iter()
            .map(|s| step_value(graph, &slice_type(s), "stand-in", loc))
            .collect();
        let h: Vec<Expr> = init.iter().map(stand_in).collect();
        let d_state: Vec<Expr> = plan.states.iter().map(|&j| stand_in(&init[j])).collect();
        let dy: Vec<Expr> = d_outputs
            .iter()
            .map(|(_, d)| step_value(graph, &slice_type(d), "stand-in", loc))
            .collect();
        let dn: Vec<Expr> = d_inner
            .iter()
            .map(|(_, d)| step_value(graph, &slice_type(d), "stand-in", loc))
            .collect();
        let (grads, rebuilt) = plan.step(graph, &x, &h, (&d_state, &dy, &dn), &seeded)?;
        let stand_ins: Vec<NodeId> = x.iter().chain(&h).map(|e| e.id()).collect();
        let steps: Vec<NodeId> = stand_ins
            .iter()
            .copied()
            .chain([&d_state, &dy, &dn].into_iter().flatten().map(|e| e.id()))
            .collect();
        let pushed: Vec<pushout::Shape> = grads[grads.len() - plan.caps.len()..]
            .iter()
            .map(|d| pushout::Shape::of(&pushout::terms(graph, d, &steps)))
            .collect();
        let (residuals, reads) = read_by(graph, &grads, &rebuilt, &stand_ins);
        (residuals, reads, pushed)
    };
    // The backward loop takes its length from its sequences: it reads at least one.
    let mut reads = reads;
    let any_cotangent_sequence =
        !d_outputs.is_empty() || !d_history.is_empty() || !d_inner.is_empty();
    if !reads.iter().any(|r| *r) && residuals.is_empty() && !any_cotangent_sequence {
        reads[if q > 0 { p } else { 0 }] = true;
    }
    let kept: Vec<Expr> = residuals
        .iter()
        .map(|&n| result(LoopResult::Inner(n)))
        .collect::<Result<_>>()?;
    let history: Vec<Expr> = (0..q)
        .map(|j| result(LoopResult::History(j)))
        .collect::<Result<_>>()?;

    // Backward sequences: the forward ones and the history that the step's gradient reads,
    // the residuals, the cotangents. The step values it does not read are stand-ins that only
    // the rebuilt step (which the residuals replace) reads.
    let read: Vec<&Expr> = sequences
        .iter()
        .chain(&history)
        .zip(&reads)
        .filter_map(|(e, r)| r.then_some(e))
        .collect();
    let unread: Vec<Option<Expr>> = sequences
        .iter()
        .map(|s| {
            let ty = s.ty();
            crate::graph::Type::new(ty.dtype, &ty.shape.dims()[1.min(ty.ndim())..])
        })
        .chain(init.iter().map(|e| e.ty()))
        .zip(&reads)
        .map(|(ty, r)| (!r).then(|| step_value(graph, &ty, "unread", loc)))
        .collect();
    let n_read = read.len();
    let mut back_seqs: Vec<&Expr> = read.into_iter().chain(&kept).collect();
    back_seqs.extend(d_outputs.iter().map(|(_, d)| d));
    back_seqs.extend(d_history.iter().map(|(_, d)| d));
    back_seqs.extend(d_inner.iter().map(|(_, d)| d));
    // Backward states: the states' cotangents (from the final states'), then the captured
    // nodes' gradients, summed over the steps.
    let d_final: Vec<Expr> = plan
        .states
        .iter()
        .map(|&j| cotangent(LoopResult::Final(j)).unwrap_or_else(|| zeros(&init[j])))
        .collect();
    // (Only those with a rest to sum in the loop.)
    let d_captured: Vec<Expr> = plan
        .caps
        .iter()
        .zip(&pushed)
        .filter(|(_, s)| s.rest)
        .map(|(&k, _)| zeros(&captured[k]))
        .collect();
    let back_init: Vec<&Expr> = d_final.iter().chain(&d_captured).collect();

    let mut scan = Scan::over(&back_seqs).states(&back_init).at(loc);
    if !body.reverse {
        scan = scan.reverse();
    }
    if body.recompute {
        scan = scan.recompute();
    }
    let (ns, nk) = (plan.states.len(), kept.len());
    // The stacks of the pushed products' operands: backward sequences or outputs (after the
    // sequences' gradients), for each captured node.
    let mut products: Vec<Vec<(Stacked, Stacked)>> = vec![Vec::new(); plan.caps.len()];
    let looped = scan.run(|s| {
        let at = |k: usize| s.seq(k).clone();
        let mut next_read = 0..n_read;
        let step_values: Vec<Expr> = unread
            .iter()
            .map(|u| match u {
                Some(stand_in) => stand_in.clone(),
                None => at(next_read.next().expect("one sequence per value read")),
            })
            .collect();
        let (x, h) = step_values.split_at(p);
        let res: Vec<Expr> = (n_read..n_read + nk).map(at).collect();
        let base = n_read + nk;
        let dy: Vec<Expr> = (base..base + d_outputs.len()).map(at).collect();
        let base = base + d_outputs.len();
        let dh: Vec<Expr> = (base..base + d_history.len()).map(at).collect();
        let base = base + d_history.len();
        let dn: Vec<Expr> = (base..base + d_inner.len()).map(at).collect();
        let d_state: Vec<Expr> = (0..ns).map(|n| s.state(n).clone()).collect();
        let (mut grads, rebuilt) = plan.step(graph, x, h, (&d_state, &dy, &dn), &seeded)?;
        if !residuals.is_empty() {
            // The residuals are read from the forward loop, not recomputed.
            let mut map: HashMap<NodeId, NodeId> = residuals
                .iter()
                .zip(&res)
                .map(|(n, r)| (rebuilt.map[n], r.id()))
                .collect();
            let roots: Vec<NodeId> = grads.iter().map(|g| g.id()).collect();
            grads = substitute(graph, &roots, &mut map);
        }
        let (d_x, rest) = grads.split_at(plan.seqs.len());
        let (d_h, d_c) = rest.split_at(ns);
        let mut step = StepResult::new();
        for (n, &j) in plan.states.iter().enumerate() {
            let mut d = d_h[n].clone();
            if let Some(at) = d_history.iter().position(|(i, _)| *i == j) {
                d = &d + &dh[at];
            }
            step = step.state(&d);
        }
        let steps: Vec<NodeId> = s
            .sequences()
            .iter()
            .chain(s.states())
            .map(|e| e.id())
            .collect();
        let mut outputs: Vec<Expr> = d_x.to_vec();
        let mut stacked = |e: &Expr| match s.sequences().iter().position(|q| q.id() == e.id()) {
            Some(k) => Stacked::Sequence(k),
            None => Stacked::Output(match outputs.iter().position(|o| o.id() == e.id()) {
                Some(at) => at,
                None => {
                    outputs.push(e.clone());
                    outputs.len() - 1
                }
            }),
        };
        let mut sums = ns..;
        for (n, d) in d_c.iter().enumerate() {
            let terms = if body.recompute {
                vec![Term::Other(d.clone())]
            } else {
                pushout::terms(graph, d, &steps)
            };
            if pushout::Shape::of(&terms) != pushed[n] {
                return Err(crate::error::Error::Usage {
                    what:
                        "internal: a loop's gradient changed shape between its probe and its body"
                            .into(),
                    loc,
                });
            }
            let mut rest: Option<Expr> = None;
            for term in terms {
                match term {
                    Term::Product(a, b) => products[n].push((stacked(&a), stacked(&b))),
                    Term::Other(e) => rest = Some(rest.map_or(e.clone(), |r| &r + &e)),
                }
            }
            if pushed[n].rest {
                let sum = s.state(sums.next().expect("a state per rest"));
                step = step.state(&rest.map_or(sum.clone(), |r| sum + &r));
            }
        }
        for d in &outputs {
            step = step.output(d);
        }
        Ok(step)
    })?;
    let stack = |e: Stacked| match e {
        Stacked::Sequence(k) => back_seqs[k].clone(),
        Stacked::Output(at) => looped.outputs[at].clone(),
    };

    let mut out: Vec<Option<Expr>> = vec![None; inputs.len()];
    for (n, &j) in plan.states.iter().enumerate() {
        if needs[p + j] {
            out[p + j] = Some(looped.states[n].clone());
        }
    }
    let mut sums = ns..;
    for (n, &k) in plan.caps.iter().enumerate() {
        let mut d = pushed[n]
            .rest
            .then(|| looped.states[sums.next().expect("a state per rest")].clone());
        for &(a, b) in &products[n] {
            let p = pushout::summed(&stack(a), &stack(b));
            d = Some(d.map_or(p.clone(), |d| &d + &p));
        }
        out[first + k] = d;
    }
    for (n, &i) in plan.seqs.iter().enumerate() {
        out[i] = Some(looped.outputs[n].clone());
    }
    Ok(out)
}

/// Where the backward loop keeps the per-step values of a pushed product's operand.
#[derive(Clone, Copy)]
enum Stacked {
    /// One of its sequences.
    Sequence(usize),
    /// One of its outputs.
    Output(usize),
}

/// What the gradient of a loop differentiates: the float states, the sequences and captured
/// nodes that want a gradient.
struct Plan<'a> {
    body: &'a LoopBody,
    states: Vec<usize>,
    seqs: Vec<usize>,
    caps: Vec<usize>,
    captured: &'a [Expr],
}

/// The per-step results with an incoming cotangent: stacked outputs, and body nodes kept.
struct Seeded {
    outputs: Vec<usize>,
    inner: Vec<NodeId>,
}

impl Plan<'_> {
    /// The vector-Jacobian product of one step on step values `x` (sequences' slices) and `h`
    /// (states), seeded with the cotangents of the next states, of the seeded outputs and of
    /// the seeded body nodes: the gradients of the differentiated sequences' slices, states
    /// and captured nodes, in that order; and the step as rebuilt.
    fn step(
        &self,
        graph: &Graph,
        x: &[Expr],
        h: &[Expr],
        (d_state, dy, dn): (&[Expr], &[Expr], &[Expr]),
        seeded: &Seeded,
    ) -> Result<(Vec<Expr>, Rebuilt)> {
        let step_values: Vec<Expr> = x.iter().chain(h).cloned().collect();
        let rebuilt = self.body.rebuild(graph, &step_values);
        let mut outs: Vec<Expr> = self
            .states
            .iter()
            .map(|&j| rebuilt.next[j].clone())
            .collect();
        let mut seeds: Vec<Expr> = d_state.to_vec();
        for (&o, d) in seeded.outputs.iter().zip(dy) {
            outs.push(rebuilt.outputs[o].clone());
            seeds.push(d.clone());
        }
        for (n, d) in seeded.inner.iter().zip(dn) {
            outs.push(graph.expr(rebuilt.map[n]));
            seeds.push(d.clone());
        }
        let wrt: Vec<&Expr> = self
            .seqs
            .iter()
            .map(|&i| &x[i])
            .chain(self.states.iter().map(|&j| &h[j]))
            .chain(self.caps.iter().map(|&k| &self.captured[k]))
            .collect();
        let grads = if outs.is_empty() {
            wrt.iter()
                .map(|w| w.scalar_like(0.0).broadcast_like(w))
                .collect()
        } else {
            let options = GradOptions {
                allow_disconnected: true,
                stop_at_wrt: true,
            };
            let out_refs: Vec<&Expr> = outs.iter().collect();
            let seed_refs: Vec<&Expr> = seeds.iter().collect();
            sweep(&out_refs, &seed_refs, &wrt, options, self.body.loc)?
        };
        Ok((grads, rebuilt))
    }
}

/// The nodes of the body (`rebuilt`'s preimages) whose rebuilt values the gradient nodes
/// `grads` read: what the backward loop would otherwise recompute; and which of the step
/// values `steps` (the stand-ins it was rebuilt on) they read.
fn read_by(
    graph: &Graph,
    grads: &[Expr],
    rebuilt: &Rebuilt,
    steps: &[NodeId],
) -> (Vec<NodeId>, Vec<bool>) {
    let image: HashMap<NodeId, NodeId> = rebuilt
        .map
        .iter()
        .filter(|(_, r)| !steps.contains(r))
        .map(|(n, r)| (*r, *n))
        .collect();
    let last = image.keys().copied().max();
    let made_after = |id: NodeId| last.is_none_or(|l| id > l);
    let g = graph.lock();
    let mut found: Vec<NodeId> = Vec::new();
    let mut reads = vec![false; steps.len()];
    let mut seen: HashSet<NodeId> = HashSet::new();
    let mut stack: Vec<NodeId> = Vec::new();
    let mut visit = |p: NodeId, stack: &mut Vec<NodeId>, found: &mut Vec<NodeId>| {
        if let Some(k) = steps.iter().position(|&s| s == p) {
            reads[k] = true;
        } else if let Some(&n) = image.get(&p) {
            if !found.contains(&n) {
                found.push(n);
            }
        } else {
            stack.push(p);
        }
    };
    for e in grads {
        visit(e.id(), &mut stack, &mut found);
    }
    while let Some(id) = stack.pop() {
        if !seen.insert(id) || !made_after(id) {
            continue;
        }
        for &p in &g.node(id).inputs {
            visit(p, &mut stack, &mut found);
        }
    }
    found.sort_unstable();
    (found, reads)
}
