//! Loops split by rows. Where a loop's body treats the rows of its states and of its
//! sequences' slices independently (an RNN's batch: each sequence of the minibatch goes its
//! own way through the steps), the rows can be cut into parts and each part run through all
//! the steps on a thread of its own: one fork and join per loop instead of several per step,
//! which is what the small products of a recurrent step cannot afford.
//!
//! [`by_rows`] proves the independence on the compiled body, node by node: a value is
//! [`Rows::Each`] where its row `r` (along its first axis) is computed from row `r` of the
//! step values alone (and from values that do not depend on the step values), and
//! [`Rows::Same`] where it does not depend on the step values at all. An op that mixes rows
//! (a product over the batch, a sum over the first axis, a reshape) makes the body run whole.
//!
//! [`plan`] decides once per compiled loop whether it can split and makes the executors of
//! its parts; [`split`] decides per run (enough threads, rows and work) and [`run_split`] runs
//! the parts and joins their results.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::loops::{Arg, BodyRunner, run_whole};
use super::pool::Pool;
use super::stacks::{RowsMut, buffer, join_rows, rows_mut, rows_of};
use super::value::PartList;
use super::{Executor, Value};
use crate::compile::ir::{CompiledLoop, Kind, Node};
use crate::compile::plan::Program;
use crate::error::Result;
use crate::graph::Type;
use crate::graph::loops::{LoopResult, Steps};
use crate::graph::op::Op;
use crate::tensor::Tensor;

/// How a value of a body depends on the rows of the step values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Its row `r` along the first axis depends on row `r` of the step values only.
    Each,
    /// It depends on no step value: every part computes the same.
    Same,
}

/// For a body `program` whose inputs `0..step_values` are the step values (the sequences'
/// slices, then the states) and whose other inputs are captured, how each of its outputs
/// depends on the rows; `None` where some node mixes rows (or draws, or is an op this
/// analysis does not know), so that the body cannot be split.
pub(crate) fn by_rows(program: &Program, step_values: usize) -> Option<Vec<Rows>> {
    let nodes = &program.nodes;
    let mut rows: Vec<Rows> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let r = node_rows(n, nodes, &rows, step_values)?;
        rows.push(r);
    }
    Some(program.outputs.iter().map(|&o| rows[o]).collect())
}

/// How node `n` depends on the rows, given its operands' (`None`: it mixes them).
fn node_rows(n: &Node, nodes: &[Node], rows: &[Rows], step_values: usize) -> Option<Rows> {
    match &n.kind {
        Kind::Input { position, .. } => {
            return Some(if *position < step_values {
                Rows::Each
            } else {
                Rows::Same
            });
        }
        Kind::Constant(_) | Kind::Shared(_) => return Some(Rows::Same),
        // A nested loop, a draw or a user's op is never split, even on values of no step.
        Kind::Loop { .. } | Kind::Op(Op::Loop { .. } | Op::Random { .. } | Op::Custom(_)) => {
            return None;
        }
        _ => {}
    }
    let each = |k: usize| rows[n.inputs[k]] == Rows::Each;
    if !(0..n.inputs.len()).any(each) {
        return Some(Rows::Same);
    }
    let ty = |k: usize| &nodes[n.inputs[k]].ty;
    let out = &n.ty;
    // Every operand with rows lines its first axis up with the result's; the others
    // broadcast along it.
    let broadcast = |mut operands: std::ops::Range<usize>| {
        operands.all(|k| {
            if each(k) {
                ty(k).ndim() == out.ndim()
            } else {
                broadcasts_along_rows(ty(k), out)
            }
        })
    };
    let ok = match &n.kind {
        Kind::Gemm(g) => {
            !g.transpose_a
                && each(0)
                && !each(1)
                && ty(0).ndim() == 2
                && (n.inputs.len() < 3 || broadcast(2..3))
        }
        Kind::ConvBias { .. } => each(0) && !each(1) && !each(2),
        Kind::Fused(kernel) => (0..n.inputs.len()).all(|k| {
            let view_axis = kernel.view(k).map(|v| v.axis);
            if each(k) {
                ty(k).ndim() == out.ndim() && view_axis != Some(0)
            } else {
                ty(k).ndim() < out.ndim() || (view_axis != Some(0) && first_is_one(ty(k)))
            }
        }),
        Kind::Op(op) => match op {
            Op::Unary(_) | Op::Binary(_) | Op::Compare(_) | Op::Where | Op::Cast(_) => {
                broadcast(0..n.inputs.len())
            }
            Op::StopGradient => true,
            // The number of elements along axes other than the rows' is one for all rows.
            Op::DimSize { axes, .. } if !axes.contains(&0) => return Some(Rows::Same),
            Op::Reduce { axes, .. } => !axes.contains(&0),
            Op::Argmax { axis, .. }
            | Op::Softmax(axis)
            | Op::LogSoftmax(axis)
            | Op::Cumsum { axis, .. } => *axis != 0,
            Op::Transpose(perm) => perm.first() == Some(&0),
            Op::ExpandDims(axes) | Op::Squeeze(axes) => !axes.contains(&0),
            Op::Concat(axis) => *axis != 0 && (0..n.inputs.len()).all(each),
            Op::ConcatPart { axis, .. } => *axis != 0 && each(0),
            Op::Slice { axis, .. } => *axis != 0,
            Op::SliceGrad { axis, .. } => *axis != 0 && each(0) && each(1),
            Op::BroadcastLike => each(1) && broadcast(0..1),
            Op::MatMul => each(0) && !each(1) && ty(0).ndim() == 2 && ty(1).ndim() == 2,
            Op::OneHot { .. } => true,
            Op::Conv2d(_) | Op::MaxPool2d(_) | Op::AvgPool2d(_) => each(0) && !each(1),
            // (The last operand gives the shape of the result: it has the rows too.)
            Op::Conv2dInputGrad(_) => each(0) && !each(1) && each(2),
            Op::MaxPool2dGrad(_) | Op::AvgPool2dGrad(_) => (0..n.inputs.len()).all(each),
            _ => false,
        },
        _ => false,
    };
    // (A value made of rows has a first axis: every rule keeps the operand's.)
    (ok && out.ndim() > 0).then_some(Rows::Each)
}

/// Whether a value of type `ty` that depends on no row broadcasts along the first axis of a
/// result of type `out`: it has fewer axes, or a first axis of one.
fn broadcasts_along_rows(ty: &Type, out: &Type) -> bool {
    ty.ndim() < out.ndim() || first_is_one(ty)
}

fn first_is_one(ty: &Type) -> bool {
    ty.shape.dims().first() == Some(&Some(1))
}

/// A part of a loop split by rows, beyond the first: its own executor, and its own pool (the
/// first part uses the caller's).
pub(crate) struct PartRunner {
    pub(super) executor: Executor,
    pool: Arc<Mutex<Pool>>,
}

/// Rows of states (summed over the states, times their other axes) below which a loop runs
/// whole: its steps are too small for a thread each.
const SPLIT_MIN_WORK: usize = 4096;
/// Fewest rows of a part of a split loop.
const SPLIT_MIN_ROWS: usize = 8;

/// Loops run split by rows so far (for the tests, which check that a split happens).
#[cfg(test)]
static SPLIT_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// For the compiled loop `compiled`: how its body's outputs depend on the rows where it can
/// split, and the runners of the parts after the first (one per thread but the first).
pub(super) fn plan(compiled: &CompiledLoop) -> (Option<Vec<Rows>>, Vec<PartRunner>) {
    let (body, program) = (compiled.body.body(), &compiled.program);
    let (p, q) = (body.n_sequences, body.n_states());
    // A body splits by rows where its states keep their rows, it draws nothing and it does
    // not decide when to stop (a condition holds for all rows or none).
    let rows = by_rows(program, p + q).filter(|r| {
        r[..q].iter().all(|&s| s == Rows::Each)
            && body.until.is_none()
            && !body.streams.iter().any(|&s| s)
            && compiled.debug.is_none()
            && program.exec == crate::kernels::Exec::Fast
    });
    let threads = if rows.is_some() {
        crate::kernels::threads()
    } else {
        1
    };
    let parts = (1..threads)
        .map(|_| PartRunner {
            executor: Executor::shared(program.clone()),
            pool: Arc::new(Mutex::new(Pool::default())),
        })
        .collect();
    (rows, parts)
}

/// The rows of each part where the loop of `runner` runs split by rows on `args` (see
/// the module's head); `None` where it runs whole: its body mixes rows, one thread runs it, the
/// function is profiled (a body's profile is of one executor), or its steps are small.
pub(super) fn split(runner: &BodyRunner, args: &[Arg]) -> Option<Vec<Range<usize>>> {
    runner.rows.as_ref()?;
    if runner.executor.profile.is_some() {
        return None;
    }
    let body = runner.compiled.body.body();
    let (p, q) = (body.n_sequences, body.n_states());
    let (sequences, states) = (&args[..p], &args[p..p + q]);
    if sequences.iter().any(|s| s.len() == 0) {
        return None;
    }
    // The rows: the first axis of the states and of the sequences' steps, one length for all.
    let step_shapes: Vec<Vec<usize>> = sequences.iter().map(|s| s.step_shape()).collect();
    let state_shapes: Vec<&[usize]> = states.iter().map(|s| s.one().shape()).collect();
    let firsts: Vec<Option<usize>> = step_shapes
        .iter()
        .map(|s| s.first().copied())
        .chain(state_shapes.iter().map(|s| s.first().copied()))
        .collect();
    let n = (*firsts.first()?)?;
    if firsts.iter().any(|&f| f != Some(n)) {
        return None;
    }
    let work: usize = state_shapes
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum();
    let threads = crate::kernels::threads().min(runner.parts.len() + 1);
    let count = threads.min(n / SPLIT_MIN_ROWS);
    if count < 2 || work < SPLIT_MIN_WORK {
        return None;
    }
    let parts = partition(n, count);
    // A loop split otherwise than one whose lists it reads runs whole (and joins them).
    let matches = |made: &[PartList]| {
        made.len() == parts.len() && made.iter().zip(&parts).all(|(m, rows)| m.rows == *rows)
    };
    if sequences
        .iter()
        .any(|s| matches!(s, Arg::Parts(made) if !matches(made)))
    {
        return None;
    }
    Some(parts)
}

/// Run the loop of `runner` split by rows into `parts`, each part through all the steps on a
/// thread of its own (the first on the body's executor and `pool`), and put the parts'
/// results together: a result with rows joined along them (per-step lists stay the parts'
/// lists), one the same for every part taken from the first. `None` where a step failed in
/// some part: the loop is to run again whole, so that the error names the shapes the user's
/// values have, not a part's.
pub(super) fn run_split(
    runner: &BodyRunner,
    args: &[Arg],
    parts: &[Range<usize>],
    pool: &mut Pool,
    node: &Node,
    lists: bool,
) -> Result<Option<Vec<Option<Value>>>> {
    #[cfg(test)]
    SPLIT_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let compiled = &runner.compiled;
    let body = compiled.body.body();
    let (p, q) = (body.n_sequences, body.n_states());
    let limit = pool.limit;
    // Each part's initial states: its rows of them.
    let mut initial: Vec<Vec<Tensor>> = Vec::with_capacity(parts.len());
    for rows in parts {
        let mut mine = Vec::with_capacity(q);
        for s in &args[p..p + q] {
            mine.push(rows_of(s.one(), rows, pool, node)?);
        }
        initial.push(mine);
    }
    let part_args = |k: usize| -> Vec<Arg> {
        let rows = &parts[k];
        args[..p]
            .iter()
            .map(|s| match *s {
                Arg::One(t) => Arg::Rows(t, rows),
                Arg::Steps(steps) => Arg::StepRows(steps, rows),
                Arg::Parts(made) => Arg::Steps(&made[k].steps),
                Arg::Rows(..) | Arg::StepRows(..) => {
                    unreachable!("a part of a split loop runs no split loop")
                }
            })
            .chain(initial[k].iter().map(Arg::One))
            .chain(args[p + q..].iter().copied())
            .collect()
    };
    // How each result depends on the rows, and the axis they are along in it.
    let outputs = runner.rows.as_ref().expect("a split loop's body splits");
    let n_inner = compiled.inner.len();
    let n_outputs = compiled.program.outputs.len();
    let depends: Vec<(Rows, usize)> = compiled
        .results
        .iter()
        .map(|&r| match r {
            LoopResult::Final(_) => (Rows::Each, 0),
            LoopResult::History(_) => (Rows::Each, 1),
            LoopResult::Stacked(i) => (outputs[q + i], 1),
            LoopResult::Inner(id) => {
                let k = compiled.inner.iter().position(|&c| c == id);
                (
                    outputs[n_outputs - n_inner + k.expect("kept nodes are outputs")],
                    1,
                )
            }
        })
        .collect();
    // The stacks of all the rows the parts fill in place, where their shapes are known now.
    let mut shared: Vec<Option<Tensor>> = Vec::with_capacity(depends.len());
    for (j, &r) in compiled.results.iter().enumerate() {
        let stacked_rows = depends[j] == (Rows::Each, 1) && !(lists && runner.lists[j]);
        let stack = match stacked_rows
            .then(|| shared_shape(runner, args, r))
            .flatten()
        {
            Some(shape) => {
                let dtype = body.result_type(r).expect("a result of the loop").dtype;
                Some(buffer(dtype, &shape, pool, node)?)
            }
            None => None,
        };
        shared.push(stack);
    }
    let mut into: Vec<Vec<Option<RowsMut>>> = (0..parts.len()).map(|_| Vec::new()).collect();
    for stack in shared.iter_mut() {
        let mut cut = stack.as_mut().map(|s| rows_mut(s, parts).into_iter());
        for mine in into.iter_mut() {
            mine.push(cut.as_mut().map(|c| c.next().expect("a view per part")));
        }
    }
    let mut runs: Vec<Option<Result<Vec<Option<Value>>>>> =
        (0..parts.len()).map(|_| None).collect();
    let (first, others) = runs.split_first_mut().expect("a split has parts");
    let mut into = into.into_iter();
    let first_into = into.next().expect("a split has parts");
    rayon::scope(|scope| {
        for ((k, run), into) in others.iter_mut().enumerate().zip(into) {
            let part = &runner.parts[k];
            let args = part_args(k + 1);
            scope.spawn(move |_| {
                // (A concurrent call of the function that holds the part's pool leaves this
                // one to a pool of its own, which it does not wait for.)
                let mut own = Pool::default();
                let mut held = part.pool.try_lock().ok();
                let pool = held.as_deref_mut().unwrap_or(&mut own);
                pool.limit = limit;
                *run = Some(crate::kernels::alone(|| {
                    run_whole(runner, &part.executor, &args, pool, node, lists, into)
                }));
            });
        }
        let args = part_args(0);
        *first = Some(crate::kernels::alone(|| {
            run_whole(
                runner,
                &runner.executor,
                &args,
                pool,
                node,
                lists,
                first_into,
            )
        }));
    });
    initial.into_iter().flatten().for_each(|t| pool.give(t));
    let runs: Vec<Result<Vec<Option<Value>>>> = runs
        .into_iter()
        .map(|r| r.expect("every part ran"))
        .collect();
    if runs.iter().any(|r| r.is_err()) {
        // A step failed in some part: its buffers go home, and the caller runs the loop whole.
        for (k, made) in runs.into_iter().enumerate() {
            let made = made.into_iter().flatten().flatten();
            made.for_each(|v| give_home(runner, k, v, pool));
        }
        shared.into_iter().flatten().for_each(|t| pool.give(t));
        return Ok(None);
    }
    let mut runs: Vec<Vec<Option<Value>>> = runs.into_iter().flatten().collect();
    let mut results = Vec::with_capacity(compiled.results.len());
    for (j, (&(depends, axis), filled)) in depends.iter().zip(shared).enumerate() {
        if let Some(filled) = filled {
            results.push(Some(Value::Owned(filled)));
            continue;
        }
        let values: Vec<Value> = runs
            .iter_mut()
            .map(|run| run[j].take().expect("each part makes every result"))
            .collect();
        let value = if depends == Rows::Same {
            let mut values = values.into_iter().enumerate();
            let (_, first) = values.next().expect("a split has parts");
            values.for_each(|(k, v)| give_home(runner, k, v, pool));
            first
        } else if values.iter().all(|v| matches!(v, Value::Steps(_))) {
            Value::Parts(
                parts
                    .iter()
                    .zip(values)
                    .enumerate()
                    .map(|(k, (rows, v))| match v {
                        Value::Steps(steps) => PartList {
                            rows: rows.clone(),
                            steps,
                            home: home(runner, k).cloned(),
                        },
                        _ => unreachable!("every part made a list"),
                    })
                    .collect(),
            )
        } else {
            let tensors: Vec<&Tensor> = values
                .iter()
                .map(|v| match v {
                    Value::Owned(t) => t,
                    _ => unreachable!("a part's results are lists or its own tensors"),
                })
                .collect();
            let joined = join_rows(&tensors, axis, pool, node)?;
            for (k, v) in values.into_iter().enumerate() {
                give_home(runner, k, v, pool);
            }
            Value::Owned(joined)
        };
        results.push(Some(value));
    }
    Ok(Some(results))
}

/// The shape of result `r` of the loop of `runner` split by rows on `args`, where it is a
/// stack of all the rows (`[steps, rows, ...]`) known before the loop runs: the number of steps
/// is its sequences' length, and the step's shape is a state's or the body's declared shape.
fn shared_shape(runner: &BodyRunner, args: &[Arg], r: LoopResult) -> Option<Vec<usize>> {
    let body = runner.compiled.body.body();
    let (p, q) = (body.n_sequences, body.n_states());
    if body.steps != Steps::OfSequences || p == 0 {
        return None;
    }
    let steps = args[0].len();
    if args[..p].iter().any(|s| s.len() != steps) {
        return None;
    }
    let rows = args[p..p + q].first()?.one().shape().first().copied()?;
    let step: Vec<usize> = match r {
        LoopResult::Final(_) => return None,
        LoopResult::History(i) => args[p + i].one().shape().to_vec(),
        LoopResult::Stacked(_) | LoopResult::Inner(_) => {
            let ty = body.result_type(r)?;
            let dims = ty.shape.dims();
            let rest = dims
                .get(2..)?
                .iter()
                .copied()
                .collect::<Option<Vec<usize>>>()?;
            std::iter::once(rows).chain(rest).collect()
        }
    };
    Some(std::iter::once(steps).chain(step).collect())
}

/// The pool part `k` of a split loop of `runner` runs on: the caller's (`None`) for the first.
fn home(runner: &BodyRunner, k: usize) -> Option<&Arc<Mutex<Pool>>> {
    k.checked_sub(1).map(|k| &runner.parts[k].pool)
}

/// Give the buffers of `v`, made by part `k`, back to that part's pool (`pool` for the first).
fn give_home(runner: &BodyRunner, k: usize, v: Value, pool: &mut Pool) {
    match home(runner, k) {
        Some(home) => v.give_to(&mut home.lock().unwrap_or_else(|e| e.into_inner())),
        None => v.give_to(pool),
    }
}

/// The rows `0..n` cut into `parts` ranges of nearly equal length, in order: every split of
/// `n` rows into `parts` is this one, so that a loop that reads a split loop's per-step lists
/// and splits the same way reads each part's list as it was made.
pub(crate) fn partition(n: usize, parts: usize) -> Vec<Range<usize>> {
    (0..parts)
        .map(|k| k * n / parts..(k + 1) * n / parts)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use ndarray::{Array2, Array3};

    use super::{SPLIT_RUNS, partition};
    use crate::models::recurrent::Lstm;
    use crate::prelude::*;
    use crate::{Function, Scan, StepResult};

    /// `f` on a rayon pool of `threads` threads.
    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    /// Whether each loop body of `f` splits by rows, in program order.
    fn splits(f: &Function) -> Vec<bool> {
        f.executor
            .loops
            .iter()
            .map(|r| r.rows.is_some() && !r.parts.is_empty())
            .collect()
    }

    fn sequences(t: usize, n: usize, d: usize) -> Tensor {
        Array3::from_shape_fn((t, n, d), |(a, b, c)| {
            ((a * 7 + b * 3 + c * 5) % 11) as f64 / 11.0 - 0.5
        })
        .into()
    }

    /// A loss of a loop's last state and its gradients, compiled and called on `threads`
    /// threads: whether each body splits, and the values.
    fn run(
        threads: usize,
        build: impl Fn(&Graph, &Expr) -> (Expr, Vec<Expr>) + Sync,
        feed: &Tensor,
    ) -> (Vec<bool>, Vec<Tensor>) {
        on_threads(threads, || {
            let g = Graph::new();
            let xs = g.input("xs", DType::F64, &[None, None, Some(feed.shape()[2])]);
            let (loss, params) = build(&g, &xs);
            let grads = grad(&loss, &params.iter().collect::<Vec<_>>()).unwrap();
            let outs: Vec<&Expr> = std::iter::once(&loss).chain(&grads).collect();
            let f = function(&[&xs], &outs).compile().unwrap();
            (splits(&f), f.call(std::slice::from_ref(feed)).unwrap())
        })
    }

    fn assert_same(a: &[Tensor], b: &[Tensor]) {
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.shape(), y.shape());
            for (p, q) in x.to_f64_vec().iter().zip(y.to_f64_vec()) {
                assert!((p - q).abs() <= 1e-12 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }

    fn lstm_loss(g: &Graph, xs: &Expr) -> (Expr, Vec<Expr>) {
        let lstm = Lstm::new(g, "lstm", 8, 64, DType::F64, 3).unwrap();
        let zero = lstm.zero_state(xs);
        let looped = lstm.scan(xs, &zero, &zero).unwrap();
        let loss = (&looped.states[0]
            * &looped.outputs[0].slice(0, 0, Some(1)).sum_axes(&[0], false))
            .sum();
        (
            loss,
            vec![lstm.w_x.clone(), lstm.w_h.clone(), lstm.b.clone()],
        )
    }

    #[test]
    fn an_lstm_over_a_batch_runs_split_by_rows_and_gives_what_it_gives_whole() {
        // 32 sequences of 64 units (two states): 4096 rows of work, two parts of 16 rows.
        let feed = sequences(5, 32, 8);
        let before = SPLIT_RUNS.load(Ordering::Relaxed);
        let (split, on_two) = run(2, lstm_loss, &feed);
        assert_eq!(
            split,
            [true, true],
            "the forward and the backward loop split"
        );
        assert!(SPLIT_RUNS.load(Ordering::Relaxed) >= before + 2);
        let (whole, on_one) = run(1, lstm_loss, &feed);
        assert_eq!(whole, [false, false], "one thread runs every loop whole");
        assert_same(&on_two, &on_one);
    }

    #[test]
    fn a_body_that_mixes_rows_runs_whole_and_gives_the_same_values() {
        // Each step adds a sum over the batch: row r depends on every row. (32 rows of 128: a
        // loop that splits.)
        let mixing = |g: &Graph, xs: &Expr| {
            let u = g.shared(
                "U",
                Array2::from_shape_fn((128, 128), |(i, j)| ((i * 5 + j) % 7) as f64 / 140.0),
            );
            let h0 = xs
                .sum_axes(&[0], false)
                .matmul(&g.constant(Tensor::from(Array2::<f64>::from_elem((8, 128), 0.1))));
            let looped = Scan::over(&[xs])
                .states(&[&h0])
                .run(|s| {
                    let h = s.state(0);
                    let next = (h.matmul(&u) + &(h.sum_axes(&[0], true) * 0.01)).tanh()
                        + s.seq(0).sum_axes(&[1], true);
                    Ok(StepResult::new().state(&next))
                })
                .unwrap();
            (looped.states[0].sum(), vec![u])
        };
        let feed = sequences(4, 32, 8);
        let (split, on_two) = run(2, mixing, &feed);
        assert_eq!(split, [false, false]);
        let (_, on_one) = run(1, mixing, &feed);
        assert_same(&on_two, &on_one);
    }

    #[test]
    fn a_step_that_fails_in_a_part_is_reported_as_the_whole_loop_reports_it() {
        // Row 20 of step 2 goes negative: its log is a NaN, which the guard stops at.
        let mut xs = sequences(4, 32, 8).to_f64_array();
        xs[[2, 20, 0]] = -50.0;
        let feed = Tensor::from(xs);
        let error = |threads: usize| {
            on_threads(threads, || {
                let g = Graph::new();
                let xs = g.input("xs", DType::F64, &[None, None, Some(8)]);
                let h0 = xs
                    .sum_axes(&[0], false)
                    .matmul(&g.constant(Tensor::from(Array2::<f64>::from_elem((8, 128), 0.1))));
                let looped = Scan::over(&[&xs])
                    .states(&[&h0])
                    .run(|s| {
                        let h = s.state(0) + &(s.seq(0).sum_axes(&[1], true) + 10.0).log();
                        Ok(StepResult::new().state(&h))
                    })
                    .unwrap();
                let f = function(&[&xs], &[&looped.states[0]])
                    .nan_guard(true)
                    .compile()
                    .unwrap();
                (
                    splits(&f),
                    f.call(std::slice::from_ref(&feed)).unwrap_err().to_string(),
                )
            })
        };
        let (split, on_two) = error(2);
        assert_eq!(split, [true]);
        let (_, on_one) = error(1);
        assert!(on_one.contains("step 2"), "{on_one}");
        assert_eq!(on_two, on_one);
    }

    #[test]
    fn a_whole_backward_loop_reads_the_lists_of_a_split_forward_loop() {
        // A bias captured in the step: its gradient sums the rows in the backward loop, which
        // runs whole, on the per-step lists of the split forward loop.
        let biased = |g: &Graph, xs: &Expr| {
            let w = g.shared(
                "W",
                Array2::from_shape_fn((8, 128), |(i, j)| ((i + 3 * j) % 9) as f64 / 30.0 - 0.1),
            );
            let u = g.shared(
                "U",
                Array2::from_shape_fn((128, 128), |(i, j)| ((i * 3 + j) % 13) as f64 / 300.0),
            );
            let b = g.shared("b", ndarray::Array1::from_elem(128, 0.05));
            let h0 = xs.sum_axes(&[0], false).matmul(&w).zeros_like();
            let looped = Scan::over(&[xs])
                .states(&[&h0])
                .run(|s| {
                    let h = (s.seq(0).matmul(&w) + s.state(0).matmul(&u) + &b).tanh();
                    Ok(StepResult::new().state(&h).output(&h))
                })
                .unwrap();
            ((&looped.states[0] * 0.5).sum(), vec![w, u, b])
        };
        let feed = sequences(6, 32, 8);
        let (split, on_two) = run(2, biased, &feed);
        assert_eq!(
            split,
            [true, false],
            "the forward loop splits, the backward runs whole"
        );
        let (_, on_one) = run(1, biased, &feed);
        assert_same(&on_two, &on_one);
    }

    #[test]
    fn partition_covers_the_rows_in_order() {
        assert_eq!(partition(64, 2), vec![0..32, 32..64]);
        assert_eq!(partition(7, 3), vec![0..2, 2..4, 4..7]);
        for (n, parts) in [(1, 1), (100, 7), (33, 4)] {
            let p = partition(n, parts);
            assert_eq!(p.first().unwrap().start, 0);
            assert_eq!(p.last().unwrap().end, n);
            assert!(p.windows(2).all(|w| w[0].end == w[1].start));
        }
    }
}
