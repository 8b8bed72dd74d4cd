//! Loops: a loop's compiled body runs once per step on an executor of its own, whose buffers
//! persist from step to step. The results of one loop are made in one run, the first time one
//! of them is needed in a call, and kept until the others are read.

use std::ops::Range;
use std::sync::Arc;

use super::Executor;
use super::Value;
use super::pool::Pool;
use super::rows::{self, PartRunner, Rows};
use super::stacks::{RowsMut, Stack, join_rows, rows_of, slice, slice_rows};
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
    pub(super) lists: Vec<bool>,
    /// Where the body treats the rows of its step values independently (see [`rows`]): how
    /// each of its outputs depends on them.
    pub(super) rows: Option<Vec<Rows>>,
    /// The executors of the parts after the first of a loop split by rows (the first runs on
    /// `executor`): none where the body cannot be split or one thread runs it.
    pub(super) parts: Vec<PartRunner>,
}

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
    pub(super) fn one(self) -> &'a Tensor {
        match self {
            Arg::One(t) => t,
            _ => unreachable!("only a loop's sequences are given as lists or parts"),
        }
    }

    /// The number of steps of a sequence.
    pub(super) fn len(self) -> usize {
        match self {
            Arg::One(t) | Arg::Rows(t, _) => t.shape()[0],
            Arg::Steps(steps) | Arg::StepRows(steps, _) => steps.len(),
            Arg::Parts(parts) => parts[0].steps.len(),
        }
    }

    /// The shape of one step of a sequence (a list has at least one step).
    pub(super) fn step_shape(self) -> Vec<usize> {
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
            let (rows, parts) = rows::plan(compiled);
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
    if let Some(parts) = rows::split(runner, args)
        && let Some(results) = rows::run_split(runner, args, &parts, pool, node, lists)?
    {
        return Ok(results);
    }
    run_whole(
        runner,
        &runner.executor,
        args,
        pool,
        node,
        lists,
        Vec::new(),
    )
}

/// Run the loop of `runner` on `args`, all its rows, with the body on `executor`.
///
/// `into`, by result (or empty): where a result's stack is a part's rows of a stack shared by
/// the parts of a split loop, filled in place; such a result is `None`.
#[allow(clippy::too_many_arguments)]
pub(super) fn run_whole<'a>(
    runner: &BodyRunner,
    executor: &Executor,
    args: &[Arg],
    pool: &mut Pool,
    node: &Node,
    lists: bool,
    mut into: Vec<Option<RowsMut<'a>>>,
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
    let mut stacked: Vec<Stack<'a>> = (0..o).map(|_| Stack::Empty).collect();
    let mut history: Vec<Stack<'a>> = (0..q).map(|_| Stack::Empty).collect();
    let mut inner: Vec<Stack<'a>> = (0..n_inner).map(|_| Stack::Empty).collect();
    for (j, &r) in compiled.results.iter().enumerate() {
        if let Some(rows) = into.get_mut(j).and_then(Option::take) {
            let stack = match r {
                LoopResult::Stacked(k) => &mut stacked[k],
                LoopResult::History(k) => &mut history[k],
                LoopResult::Inner(id) => {
                    &mut inner[compiled.inner.iter().position(|&c| c == id).expect("kept")]
                }
                LoopResult::Final(_) => unreachable!("a final state is not stacked"),
            };
            *stack = Stack::Into(rows);
        }
    }
    let mut spent: Vec<Tensor> = Vec::new();
    // The streams a step draws from, each with its own counter.
    let mut stream_states: Vec<Option<Tensor>> = vec![None; captured.len()];
    let mut made = 0;
    // The shape of each per-step output at the first step: every step's keeps it.
    let mut output_shapes: Vec<Option<Vec<usize>>> = vec![None; o];
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
        for (k, y) in per_step.iter().enumerate() {
            match &output_shapes[k] {
                Some(first) if first.as_slice() != y.shape() => {
                    return Err(loop_error(format!(
                        "output {k} is {} at step {t} and {} at the steps before; the \
                         outputs of every step are stacked, so each keeps its shape",
                        crate::shape::show(y.shape()),
                        crate::shape::show(first)
                    )));
                }
                Some(_) => {}
                None => output_shapes[k] = Some(y.shape().to_vec()),
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
            LoopResult::Final(i) => Some(Value::Owned(
                states[i].take().expect("one result per state"),
            )),
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
        results.push(value);
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
