//! The gradient of a loop (backpropagation through time) as another loop.
//!
//! The forward loop keeps the value of each state at the start of each step (its history
//! result). The backward loop runs over the steps in the other direction, reading the forward
//! sequences, that history and the cotangents of the stacked outputs as its sequences; its
//! states are the cotangents of the forward states and the sums of the captured nodes'
//! gradients. Its body rebuilds the forward step on the step's values (same draws: same stream,
//! same step) and takes the vector-Jacobian product of that step. Since the backward loop is a
//! loop like any other, its own gradient is built the same way (the gradient of the gradient).

use crate::error::Result;
use crate::graph::loops::{LoopBody, LoopHandle, LoopResult, Scan, StepResult};
use crate::graph::{Expr, Graph};

use super::{GradOptions, rules, sweep};

/// The cotangents of the inputs of the loop `handle` (its sequences, initial states, count
/// and captured nodes: `inputs`) given the cotangents of its results (`None` for a result
/// nobody differentiates); `needs[i]` says whether input `i` wants one.
pub(super) fn vjp(
    graph: &Graph,
    handle: &LoopHandle,
    inputs: &[Expr],
    cotangents: &[Option<Expr>],
    needs: &[bool],
) -> Result<Vec<Option<Expr>>> {
    let body: &LoopBody = handle.body();
    let loc = body.loc;
    let (p, q) = (body.n_sequences, body.n_states());
    let sequences = &inputs[..p];
    let init = &inputs[p..p + q];
    let first = body.first_captured();
    let captured = &inputs[first..];
    let float = |e: &Expr| rules::differentiable(e.dtype());
    let zeros = |like: &Expr| like.scalar_like(0.0).broadcast_like(like);

    // The history of every state: a result of the same loop, made in the same run.
    let history: Vec<Expr> = (0..q)
        .map(|j| {
            let k = (0..body.result_types.len())
                .find(|&k| body.result(k) == LoopResult::History(j))
                .expect("every state has a history result");
            handle.result_node(graph, inputs, k)
        })
        .collect::<Result<_>>()?;
    let result_of = |r: LoopResult| -> Option<Expr> {
        (0..cotangents.len())
            .find(|&k| body.result(k) == r)
            .and_then(|k| cotangents[k].clone())
    };
    // The differentiated states, sequences and captured nodes.
    let states: Vec<usize> = (0..q).filter(|&j| float(&init[j])).collect();
    let seqs: Vec<usize> = (0..p)
        .filter(|&i| needs[i] && float(&sequences[i]))
        .collect();
    let caps: Vec<usize> = (0..captured.len())
        .filter(|&k| needs[first + k] && float(&captured[k]))
        .collect();
    let d_outputs: Vec<(usize, Expr)> = (0..body.n_outputs())
        .filter_map(|o| result_of(LoopResult::Stacked(o)).map(|d| (o, d)))
        .collect();
    let d_history: Vec<(usize, Expr)> = states
        .iter()
        .filter_map(|&j| result_of(LoopResult::History(j)).map(|d| (j, d)))
        .collect();

    // Backward sequences: the forward ones, the history, the outputs' and history's cotangents.
    let mut back_seqs: Vec<&Expr> = sequences.iter().chain(&history).collect();
    back_seqs.extend(d_outputs.iter().map(|(_, d)| d));
    back_seqs.extend(d_history.iter().map(|(_, d)| d));
    // Backward states: the states' cotangents (from the final states'), then the captured
    // nodes' gradients, summed over the steps.
    let d_final: Vec<Expr> = states
        .iter()
        .map(|&j| result_of(LoopResult::Final(j)).unwrap_or_else(|| zeros(&init[j])))
        .collect();
    let d_captured: Vec<Expr> = caps.iter().map(|&k| zeros(&captured[k])).collect();
    let back_init: Vec<&Expr> = d_final.iter().chain(&d_captured).collect();

    let mut scan = Scan::over(&back_seqs).states(&back_init).at(loc);
    if !body.reverse {
        scan = scan.reverse();
    }
    let looped = scan.run(|s| {
        let x: Vec<Expr> = (0..p).map(|i| s.seq(i).clone()).collect();
        let h: Vec<Expr> = (0..q).map(|j| s.seq(p + j).clone()).collect();
        let dy = |o: usize| s.seq(p + q + o).clone();
        let dh = |j: usize| s.seq(p + q + d_outputs.len() + j).clone();
        // The forward step, rebuilt on this step's values.
        let step_values: Vec<Expr> = x.iter().chain(&h).cloned().collect();
        let (next, outputs) = body.rebuild(graph, &step_values);
        let mut outs: Vec<&Expr> = states.iter().map(|&j| &next[j]).collect();
        let mut seeds: Vec<Expr> = (0..states.len()).map(|n| s.state(n).clone()).collect();
        for (n, (o, _)) in d_outputs.iter().enumerate() {
            outs.push(&outputs[*o]);
            seeds.push(dy(n));
        }
        let wrt: Vec<&Expr> = seqs
            .iter()
            .map(|&i| &x[i])
            .chain(states.iter().map(|&j| &h[j]))
            .chain(caps.iter().map(|&k| &captured[k]))
            .collect();
        let options = GradOptions {
            allow_disconnected: true,
            stop_at_wrt: true,
        };
        let seed_refs: Vec<&Expr> = seeds.iter().collect();
        let grads = if outs.is_empty() {
            wrt.iter().map(|w| zeros(w)).collect()
        } else {
            sweep(&outs, &seed_refs, &wrt, options, loc)?
        };
        let (d_x, rest) = grads.split_at(seqs.len());
        let (d_h, d_c) = rest.split_at(states.len());
        let mut result = StepResult::new();
        for (n, &j) in states.iter().enumerate() {
            let mut d = d_h[n].clone();
            if let Some(at) = d_history.iter().position(|(i, _)| *i == j) {
                d = &d + &dh(at);
            }
            result = result.state(&d);
        }
        for (n, d) in d_c.iter().enumerate() {
            result = result.state(&(s.state(states.len() + n) + d));
        }
        for d in d_x {
            result = result.output(d);
        }
        Ok(result)
    })?;

    let mut out: Vec<Option<Expr>> = vec![None; inputs.len()];
    for (n, &j) in states.iter().enumerate() {
        if needs[p + j] {
            out[p + j] = Some(looped.states[n].clone());
        }
    }
    for (n, &k) in caps.iter().enumerate() {
        out[first + k] = Some(looped.states[states.len() + n].clone());
    }
    for (n, &i) in seqs.iter().enumerate() {
        out[i] = Some(looped.outputs[n].clone());
    }
    Ok(out)
}
