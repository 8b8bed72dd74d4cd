//! Loops: a loop's compiled body runs once per step on an executor of its own, whose buffers
//! persist from step to step. The results of one loop are made in one run, the first time one
//! of them is needed in a call, and kept until the others are read.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::Executor;
use super::Value;
use super::pool::Pool;
use super::rows::{self, Rows};
use super::stacks::{Stack, join_rows, rows_of, slice, slice_rows};
use super::value::PartList;
use crate::compile::ir::{CompiledLoop, Kind, Node, infer_kind};
use crate::compile::plan::Program;
use crate::error::{Error, Result};
use crate::graph::Type;
use crate::graph::loops::{LoopHandle, LoopResult, Steps};
use crate::graph::op::Op;
use crate::kernels::random::step_counter;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// A loop's body with the executor that runs it.
pub(crate) struct BodyRunner {
    pub compiled: Arc<CompiledLoop>,
    pub executor: Executor,
    /// Whether the body reads each of its inputs (the step values first): a sequence whose
    /// slice it does not read is sliced once per run, not at every step.
    reads: Vec<bool>,
    /// For each of the compiled loop's results, whether the program takes it as the list of
    /// its per-step values (the plan's `as_steps`, for every node of that result).
    lists: Vec<bool>,
    /// Where the body treats the rows of its step values independently (see [`rows`]): how
    /// each of its outputs depends on them.
    rows: Option<Vec<Rows>>,
    /// The executors of the parts after the first of a loop split by rows (the first runs on
    /// `executor`): none where the body cannot be split or one thread runs it.
    parts: Vec<PartRunner>,
}

/// A part of a loop split by rows, beyond the first: its own executor, and its own pool (the
/// first part uses the caller's).
pub(crate) struct PartRunner {
    executor: Executor,
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

impl BodyRunner {
    /// The executors of the body: the first part's, then those of the other parts.
    pub(crate) fn executors_mut(&mut self) -> impl Iterator<Item = &mut Executor> {
        std::iter::once(&mut self.executor).chain(self.parts.iter_mut().map(|p| &mut p.executor))
    }
}

/// An operand of a loop: a tensor, or a sequence given as the list of its per-step values.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    One(&'a Tensor),
    Steps(&'a [Tensor]),
    /// A sequence cut to the rows `rows` of each step (a part of a loop split by rows).
    Rows(&'a Tensor, &'a Range<usize>),
    /// A list of per-step values cut to the rows `rows` of each.
    StepRows(&'a [Tensor], &'a Range<usize>),
    /// The per-step lists a loop split by rows made: each part's rows, then its list.
    Parts(&'a [PartList]),
}

impl<'a> Arg<'a> {
    /// A tensor operand (a state, a count, a captured value: never a list).
    fn one(self) -> &'a Tensor {
        match self {
            Arg::One(t) => t,
            _ => unreachable!("only a loop's sequences are given as lists or parts"),
        }
    }

    /// The number of steps of a sequence.
    fn len(self) -> usize {
        match self {
            Arg::One(t) | Arg::Rows(t, _) => t.shape()[0],
            Arg::Steps(steps) | Arg::StepRows(steps, _) => steps.len(),
            Arg::Parts(parts) => parts[0].steps.len(),
        }
    }

    /// The shape of one step of a sequence (a list has at least one step).
    fn step_shape(self) -> Vec<usize> {
        let mut shape = match self {
            Arg::One(t) | Arg::Rows(t, _) => t.shape()[1..].to_vec(),
            Arg::Steps(steps) | Arg::StepRows(steps, _) => steps[0].shape().to_vec(),
            Arg::Parts(parts) => parts[0].steps[0].shape().to_vec(),
        };
        match self {
            Arg::Rows(_, rows) | Arg::StepRows(_, rows) => shape[0] = rows.len(),
            Arg::Parts(parts) => shape[0] = parts.last().map_or(0, |p| p.rows.end),
            _ => {}
        }
        shape
    }

    fn dtype(self) -> crate::dtype::DType {
        match self {
            Arg::One(t) | Arg::Rows(t, _) => t.dtype(),
            Arg::Steps(steps) | Arg::StepRows(steps, _) => steps[0].dtype(),
            Arg::Parts(parts) => parts[0].steps[0].dtype(),
        }
    }

    /// Step `t` of a sequence where it is held as it is (a list's), to feed without a copy.
    fn held(self, t: usize) -> Option<&'a Tensor> {
        match self {
            Arg::Steps(steps) => Some(&steps[t]),
            _ => None,
        }
    }

    /// Step `t` of a sequence that is not [`held`](Self::held), in a buffer from `pool`.
    fn slice(self, t: usize, pool: &mut Pool, node: &Node) -> Result<Tensor> {
        match self {
            Arg::One(s) => slice(s, t, pool, node),
            Arg::Rows(s, rows) => slice_rows(s, t, rows, pool, node),
            Arg::Steps(steps) => Ok(pool.copy_of(&steps[t])),
            Arg::StepRows(steps, rows) => rows_of(&steps[t], rows, pool, node),
            Arg::Parts(parts) => {
                let steps: Vec<&Tensor> = parts.iter().map(|p| &p.steps[t]).collect();
                join_rows(&steps, 0, pool, node)
            }
        }
    }
}

/// The results of the loops run so far in a call, until each is read.
#[derive(Default)]
pub(crate) struct LoopCache {
    runs: Vec<(LoopHandle, Vec<usize>, Vec<Option<Value>>)>,
}

impl LoopCache {
    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

/// The body runners of the loops of `program`, one per compiled body.
pub(crate) fn body_runners(outer: &Program) -> Vec<BodyRunner> {
    let nodes = &outer.nodes;
    let mut runners: Vec<BodyRunner> = Vec::new();
    for n in nodes {
        if let Kind::Loop { compiled, .. } = &n.kind
            && !runners.iter().any(|r| Arc::ptr_eq(&r.compiled, compiled))
        {
            let mut executor = Executor::shared(compiled.program.clone());
            if let Some(trace) = &compiled.debug {
                executor.enable_debug(trace.clone());
            }
            let program = &compiled.program;
            let mut reads = vec![false; program.input_types.len()];
            for (i, n) in program.nodes.iter().enumerate() {
                if let Kind::Input { position, .. } = n.kind
                    && (program.last_use[i].is_some() || program.root_reads[i] > 0)
                {
                    reads[position] = true;
                }
            }
            // A result is a list where every node of it is.
            let lists = compiled
                .results
                .iter()
                .map(|&r| {
                    nodes
                        .iter()
                        .zip(&outer.as_steps)
                        .all(|(m, &steps)| match &m.kind {
                            Kind::Loop {
                                compiled: c,
                                result,
                            } if Arc::ptr_eq(c, compiled) => *result != r || steps,
                            _ => true,
                        })
                })
                .collect();
            let body = compiled.body.body();
            let (p, q) = (body.n_sequences, body.n_states());
            // A body splits by rows where its states keep their rows, it draws nothing and it
            // does not decide when to stop (a condition holds for all rows or none).
            let rows = rows::by_rows(program, p + q).filter(|r| {
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
            runners.push(BodyRunner {
                compiled: compiled.clone(),
                executor,
                reads,
                lists,
                rows,
                parts,
            });
        }
    }
    runners
}

impl Executor {
    /// The value of loop node `n` (of the compiled program, or of the debug mode's trace, where
    /// the loop is still the user's op) on operands `args`: from the cache, or by running the
    /// loop, whose other results then wait in the cache.
    pub(super) fn loop_result(
        &self,
        n: &Node,
        operands: &[usize],
        args: &[&Tensor],
        cache: &mut LoopCache,
        pool: &mut Pool,
    ) -> Result<Tensor> {
        let args: Vec<Arg> = args.iter().map(|&t| Arg::One(t)).collect();
        match self.loop_value(n, operands, &args, cache, pool, false)? {
            Value::Owned(t) => Ok(t),
            _ => unreachable!("a loop asked for no lists makes tensors"),
        }
    }

    /// As [`loop_result`](Self::loop_result), on operands that may be lists of per-step
    /// values; with `lists`, the results the plan hands over as lists are made as lists.
    pub(super) fn loop_value(
        &self,
        n: &Node,
        operands: &[usize],
        args: &[Arg],
        cache: &mut LoopCache,
        pool: &mut Pool,
        lists: bool,
    ) -> Result<Value> {
        let (handle, result) = match &n.kind {
            Kind::Loop { compiled, result } => (&compiled.body, *result),
            Kind::Op(Op::Loop { body, result }) => (body, *result),
            _ => unreachable!("only loop nodes run as loops"),
        };
        let runner = match &n.kind {
            Kind::Loop { compiled, .. } => self
                .loops
                .iter()
                .find(|r| Arc::ptr_eq(&r.compiled, compiled)),
            _ => self.loops.iter().find(|r| r.compiled.body == *handle),
        }
        .ok_or_else(|| Error::Runtime {
            op: n.kind.user_name(),
            detail: "a loop of the program was not compiled".into(),
            loc: n.loc,
        })?;
        let missing = || Error::Runtime {
            op: n.kind.user_name(),
            detail: "a loop result that its compiled loop does not make".into(),
            loc: n.loc,
        };
        let k = runner
            .compiled
            .results
            .iter()
            .position(|r| *r == result)
            .ok_or_else(missing)?;
        let at = match cache
            .runs
            .iter()
            .position(|(h, ins, _)| h == handle && ins == operands)
        {
            Some(at) => at,
            None => {
                let results = run_loop(runner, args, pool, n, lists)?;
                cache
                    .runs
                    .push((handle.clone(), operands.to_vec(), results));
                cache.runs.len() - 1
            }
        };
        // Every result of a loop is read by one node of a program: take it.
        cache.runs[at].2[k].take().ok_or_else(|| Error::Runtime {
            op: n.kind.user_name(),
            detail: "a loop result read twice in one call".into(),
            loc: n.loc,
        })
    }
}

/// Run the loop of `runner` on `args` (its sequences, initial states, count and captured
/// values): every needed result. Slices of the sequences and stacked results take their
/// buffers from `pool`, the body runs on `pool` too, and a step's spent values go back to it,
/// so that a warm loop allocates little. With `lists`, the results the plan hands over as
/// lists keep each step's own tensor (moved, not copied), and a sequence given as a list is
/// read step by step without a slice.
fn run_loop(
    runner: &BodyRunner,
    args: &[Arg],
    pool: &mut Pool,
    node: &Node,
    lists: bool,
) -> Result<Vec<Option<Value>>> {
    match split_rows(runner, args) {
        Some(parts) => run_split(runner, args, &parts, pool, node, lists),
        None => run_whole(runner, &runner.executor, args, pool, node, lists),
    }
}

/// The rows of each part where the loop of `runner` runs split by rows on `args` (see
/// [`rows`]); `None` where it runs whole: its body mixes rows, one thread runs it, the
/// function is profiled (a body's profile is of one executor), or its steps are small.
fn split_rows(runner: &BodyRunner, args: &[Arg]) -> Option<Vec<Range<usize>>> {
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
    let parts = rows::partition(n, count);
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
/// lists), one the same for every part taken from the first.
fn run_split(
    runner: &BodyRunner,
    args: &[Arg],
    parts: &[Range<usize>],
    pool: &mut Pool,
    node: &Node,
    lists: bool,
) -> Result<Vec<Option<Value>>> {
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
    let mut runs: Vec<Option<Result<Vec<Option<Value>>>>> =
        (0..parts.len()).map(|_| None).collect();
    let (first, others) = runs.split_first_mut().expect("a split has parts");
    rayon::scope(|scope| {
        for (k, run) in others.iter_mut().enumerate() {
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
                    run_whole(runner, &part.executor, &args, pool, node, lists)
                }));
            });
        }
        let args = part_args(0);
        *first = Some(crate::kernels::alone(|| {
            run_whole(runner, &runner.executor, &args, pool, node, lists)
        }));
    });
    initial.into_iter().flatten().for_each(|t| pool.give(t));
    let runs: Vec<Result<Vec<Option<Value>>>> = runs
        .into_iter()
        .map(|r| r.expect("every part ran"))
        .collect();
    if runs.iter().any(|r| r.is_err()) {
        // A step failed in some part: the loop runs again whole, so that the error names the
        // shapes the user's values have, not a part's.
        let made = runs.into_iter().flatten().flatten().flatten();
        made.for_each(|v| v.give_to(pool));
        return run_whole(runner, &runner.executor, args, pool, node, lists);
    }
    let mut runs: Vec<Vec<Option<Value>>> = runs.into_iter().flatten().collect();
    // How each result depends on the rows, and the axis they are along in it.
    let outputs = runner.rows.as_ref().expect("a split loop's body splits");
    let n_inner = compiled.inner.len();
    let n_outputs = compiled.program.outputs.len();
    let mut results = Vec::with_capacity(compiled.results.len());
    for (j, &r) in compiled.results.iter().enumerate() {
        let (depends, axis) = match r {
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
        };
        let mut values: Vec<Value> = runs
            .iter_mut()
            .map(|run| run[j].take().expect("each part makes every result"))
            .collect();
        // The buffers of the parts after the first go back to their own pools.
        let give_back = |values: Vec<Value>, pool: &mut Pool| {
            let mut values = values.into_iter();
            if let Some(first) = values.next() {
                first.give_to(pool);
            }
            for (v, part) in values.zip(&runner.parts) {
                v.give_to(&mut part.pool.lock().unwrap_or_else(|e| e.into_inner()));
            }
        };
        let value = if depends == Rows::Same {
            let first = values.remove(0);
            give_back(std::iter::once(Value::Fed(0)).chain(values).collect(), pool);
            first
        } else if values.iter().all(|v| matches!(v, Value::Steps(_))) {
            let homes =
                std::iter::once(None).chain(runner.parts.iter().map(|p| Some(p.pool.clone())));
            Value::Parts(
                parts
                    .iter()
                    .zip(values)
                    .zip(homes)
                    .map(|((rows, v), home)| match v {
                        Value::Steps(steps) => PartList {
                            rows: rows.clone(),
                            steps,
                            home,
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
            give_back(values, pool);
            Value::Owned(joined)
        };
        results.push(Some(value));
    }
    Ok(results)
}

/// Run the loop of `runner` on `args`, all its rows, with the body on `executor`.
fn run_whole(
    runner: &BodyRunner,
    executor: &Executor,
    args: &[Arg],
    pool: &mut Pool,
    node: &Node,
    lists: bool,
) -> Result<Vec<Option<Value>>> {
    let compiled = &runner.compiled;
    let body = compiled.body.body();
    let (p, q) = (body.n_sequences, body.n_states());
    let loop_error = |detail: String| Error::Runtime {
        op: "loop".into(),
        detail,
        loc: body.loc,
    };
    let sequences = &args[..p];
    let captured: Vec<&Tensor> = args[body.first_captured()..]
        .iter()
        .map(|a| a.one())
        .collect();
    let steps = match body.steps {
        Steps::OfSequences => {
            let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
            if let Some(bad) = lengths.iter().find(|&&l| l != lengths[0]) {
                return Err(loop_error(format!(
                    "its sequences have lengths {} and {bad}",
                    lengths[0]
                )));
            }
            lengths[0]
        }
        Steps::Counted => {
            let count = args[body.count_input().expect("a counted loop has a count")]
                .one()
                .item()?;
            if count < 0.0 {
                return Err(loop_error(format!("it is asked to make {count} steps")));
            }
            count as usize
        }
        Steps::Until { max } => max,
    };
    // The number of steps when the loop starts: not a while loop's.
    let known = (body.until.is_none()).then_some(steps);
    let o = body.n_outputs();
    let wants = |r: LoopResult| compiled.results.contains(&r);
    // Which results keep their steps' tensors as a list.
    let listed = |r: LoopResult| {
        lists
            && compiled
                .results
                .iter()
                .zip(&runner.lists)
                .any(|(&c, &l)| c == r && l)
    };
    let list_outputs: Vec<bool> = (0..o).map(|k| listed(LoopResult::Stacked(k))).collect();
    let list_history: Vec<bool> = (0..q).map(|k| listed(LoopResult::History(k))).collect();
    let list_inner: Vec<bool> = compiled
        .inner
        .iter()
        .map(|&id| listed(LoopResult::Inner(id)))
        .collect();
    let n_inner = compiled.inner.len();
    let initial: Vec<&Tensor> = args[p..p + q].iter().map(|a| a.one()).collect();
    // The states after the last step made (none yet: the initial states).
    let mut states: Vec<Tensor> = Vec::new();
    let mut stacked: Vec<Stack> = (0..o).map(|_| Stack::Empty).collect();
    let mut history: Vec<Stack> = (0..q).map(|_| Stack::Empty).collect();
    let mut inner: Vec<Stack> = (0..n_inner).map(|_| Stack::Empty).collect();
    let mut spent: Vec<Tensor> = Vec::new();
    // The streams a step draws from, each with its own counter.
    let mut stream_states: Vec<Option<Tensor>> = vec![None; captured.len()];
    let mut made = 0;
    let mut unread: Vec<Option<Tensor>> = vec![None; p];
    let placeholder = Tensor::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])));
    for i in 0..steps {
        let t = if body.reverse { steps - 1 - i } else { i };
        for (k, s) in stream_states.iter_mut().enumerate() {
            if body.streams[k] {
                *s = Some(step_stream(captured[k], t)?);
            }
        }
        let current: Vec<&Tensor> = if states.is_empty() {
            initial.clone()
        } else {
            states.iter().collect()
        };
        for (k, h) in history.iter_mut().enumerate() {
            if !wants(LoopResult::History(k)) {
                continue;
            }
            if !list_history[k] {
                h.put(t, known, current[k], (&mut *pool, node))?;
            } else if states.is_empty() {
                // (A state made by a step joins its list when the next step is done with it.)
                h.push(pool.copy_of(current[k]));
            }
        }
        // (A slice the body does not read is the first one made, fed at every step.)
        let mut slices: Vec<Option<Tensor>> = Vec::with_capacity(p);
        for (k, s) in sequences.iter().enumerate() {
            if s.held(t).is_some() || unread[k].is_some() {
                slices.push(None);
            } else if runner.reads[k] {
                slices.push(Some(s.slice(t, pool, node)?));
            } else {
                unread[k] = Some(s.slice(t, pool, node)?);
                slices.push(None);
            }
        }
        // The step's own slices are given to the body, which takes them (in their place in
        // the feed, a placeholder).
        let feed: Vec<&Tensor> = sequences
            .iter()
            .zip(slices.iter().zip(&unread))
            .map(|(s, (sliced, u))| match (s.held(t), sliced) {
                (Some(step), _) => step,
                (None, Some(_)) => &placeholder,
                (None, None) => u.as_ref().expect("a slice or the unread one"),
            })
            .chain(current)
            .chain(
                captured
                    .iter()
                    .zip(&stream_states)
                    .map(|(c, s)| s.as_ref().unwrap_or(c)),
            )
            .collect();
        spent.drain(..).for_each(|v| pool.give(v));
        let mut out = executor
            .run_pooled(&feed, &mut slices, pool)
            .map_err(|e| at_step(e, t, body.loc))?;
        // (Slices the body did not take: on the reference interpreter, in the debug mode.)
        slices.into_iter().flatten().for_each(|s| pool.give(s));
        let kept = out.split_off(out.len() - n_inner);
        for (k, v) in kept.into_iter().enumerate() {
            if list_inner[k] {
                inner[k].push(v);
            } else {
                inner[k].put(t, known, &v, (&mut *pool, node))?;
                spent.push(v);
            }
        }
        let done = body
            .until
            .is_some()
            .then(|| out.pop().map(|u| u.item().map(|v| v != 0.0)))
            .flatten()
            .transpose()?
            .unwrap_or(false);
        let per_step = out.split_off(q);
        // A state keeps its shape from step to step.
        let before: Vec<&Tensor> = if states.is_empty() {
            initial.clone()
        } else {
            states.iter().collect()
        };
        for (k, (b, a)) in before.iter().zip(&out).enumerate() {
            if b.shape() != a.shape() {
                return Err(loop_error(format!(
                    "state {k} is {} at the start of step {t} and {} after it; a state keeps \
                     its shape",
                    crate::shape::show(b.shape()),
                    crate::shape::show(a.shape())
                )));
            }
        }
        for (k, y) in per_step.into_iter().enumerate() {
            if !wants(LoopResult::Stacked(k)) {
                spent.push(y);
            } else if list_outputs[k] {
                stacked[k].push(y);
            } else {
                stacked[k].put(t, known, &y, (&mut *pool, node))?;
                spent.push(y);
            }
        }
        for (k, before) in std::mem::replace(&mut states, out).into_iter().enumerate() {
            if list_history[k] && wants(LoopResult::History(k)) {
                history[k].push(before);
            } else {
                spent.push(before);
            }
        }
        made += 1;
        if done {
            break;
        }
    }
    spent.into_iter().for_each(|v| pool.give(v));
    unread.into_iter().flatten().for_each(|s| pool.give(s));
    let states: Vec<Tensor> = if made == 0 {
        initial.iter().map(|t| (*t).clone()).collect()
    } else {
        states
    };
    // With no steps, the shape of a step's output comes from the body's types on these inputs.
    let step_shapes = (made == 0 && (o > 0 || n_inner > 0)).then(|| {
        let slices: Vec<Vec<usize>> = sequences.iter().map(|s| s.step_shape()).collect();
        let fed: Vec<Type> = slices
            .iter()
            .map(|s| s.as_slice())
            .zip(sequences.iter().map(|s| s.dtype()))
            .chain(states.iter().map(|s| (s.shape(), s.dtype())))
            .chain(captured.iter().map(|c| (c.shape(), c.dtype())))
            .map(|(s, dtype)| Type {
                dtype,
                shape: Shape::known(s),
            })
            .collect();
        output_types(&compiled.program.nodes, &compiled.program.outputs, &fed)
    });
    let empty = |declared: &[crate::shape::Dim], step: Option<&Type>| -> Vec<usize> {
        let known = step.and_then(|t| t.shape.to_known());
        let mut dims = vec![0];
        dims.extend(match known {
            Some(d) => d,
            None => declared.iter().map(|d| d.unwrap_or(0)).collect(),
        });
        dims
    };
    let state_types: Vec<Type> = states
        .iter()
        .map(|s| Type {
            dtype: s.dtype(),
            shape: Shape::known(s.shape()),
        })
        .collect();
    // Each final state is one result: it moves out.
    let mut states: Vec<Option<Tensor>> = states.into_iter().map(Some).collect();
    let mut stacked: Vec<Option<Stack>> = stacked.into_iter().map(Some).collect();
    let mut history: Vec<Option<Stack>> = history.into_iter().map(Some).collect();
    let mut inner: Vec<Option<Stack>> = inner.into_iter().map(Some).collect();
    let mut results: Vec<Option<Value>> = Vec::with_capacity(compiled.results.len());
    for &r in &compiled.results {
        let ty = body
            .result_type(r)
            .expect("a compiled loop makes results of its loop");
        let declared = &ty.shape.dims()[1.min(ty.ndim())..];
        let value = match r {
            LoopResult::Final(i) => Value::Owned(states[i].take().expect("one result per state")),
            LoopResult::Stacked(i) => {
                let step = step_shapes
                    .as_ref()
                    .and_then(|s| s.get(q + i))
                    .and_then(|t| t.as_ref());
                let s = stacked[i].take().expect("one result per output");
                s.finish_value(ty.dtype, &empty(declared, step), body.reverse)?
            }
            LoopResult::History(i) => {
                let h = history[i].take().expect("one result per state");
                h.finish_value(
                    ty.dtype,
                    &empty(declared, Some(&state_types[i])),
                    body.reverse,
                )?
            }
            LoopResult::Inner(id) => {
                let k = compiled
                    .inner
                    .iter()
                    .position(|&c| c == id)
                    .expect("kept nodes are outputs");
                let v = inner[k].take().expect("one result per kept node");
                // (The kept nodes are the body program's last outputs.)
                let at = compiled.program.outputs.len() - n_inner + k;
                let step = step_shapes
                    .as_ref()
                    .and_then(|s| s.get(at))
                    .and_then(|t| t.as_ref());
                v.finish_value(ty.dtype, &empty(declared, step), body.reverse)?
            }
        };
        results.push(Some(value));
    }
    // The final states no result reads go back to the pool.
    states.into_iter().flatten().for_each(|s| pool.give(s));
    Ok(results)
}

/// The types of `outputs` of a program whose inputs have the concrete types `fed`, inferred node
/// by node (`None` where inference cannot tell).
fn output_types(nodes: &[Node], outputs: &[usize], fed: &[Type]) -> Vec<Option<Type>> {
    let mut types: Vec<Option<Type>> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let ty = match &n.kind {
            Kind::Input { position, .. } => fed.get(*position).cloned(),
            kind if kind.is_leaf() => Some(n.ty.clone()),
            kind => n
                .inputs
                .iter()
                .map(|&i| types[i].clone())
                .collect::<Option<Vec<Type>>>()
                .and_then(|ts| infer_kind(kind, &ts).ok()),
        };
        types.push(ty);
    }
    outputs.iter().map(|&o| types[o].clone()).collect()
}

/// A stream's state for step `t`: its seed, and a counter of its own for the step.
fn step_stream(state: &Tensor, t: usize) -> Result<Tensor> {
    let (seed, counter) =
        crate::kernels::random::stream_state(state).map_err(|reason| Error::Data {
            path: "<loop>".into(),
            reason,
        })?;
    Ok(Tensor::from(vec![
        seed as i64,
        step_counter(counter, t as u64) as i64,
    ]))
}

/// An error of step `t` of the loop built at `loc`: the step is added to what went wrong.
fn at_step(err: Error, t: usize, loc: crate::error::Location) -> Error {
    let step = |s: String| format!("{s}, at step {t} of the loop built at {loc}");
    match err {
        Error::Runtime { op, detail, loc } => Error::Runtime {
            op,
            detail: step(detail),
            loc,
        },
        Error::NonFinite {
            op,
            what,
            operands,
            loc,
        } => Error::NonFinite {
            op,
            what: step(what),
            operands,
            loc,
        },
        Error::OutOfMemory {
            op,
            shape,
            bytes,
            why,
            loc,
        } => Error::OutOfMemory {
            op,
            shape,
            bytes,
            why: step(why),
            loc,
        },
        Error::Index {
            op,
            what,
            index,
            len,
            context,
            loc,
        } => Error::Index {
            op,
            what,
            index,
            len,
            context: step(context),
            loc,
        },
        Error::Invalid { op, detail, loc } => Error::Invalid {
            op,
            detail: step(detail),
            loc,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use ndarray::{Array2, Array3};

    use super::SPLIT_RUNS;
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
}
