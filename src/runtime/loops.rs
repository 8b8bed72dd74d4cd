//! Loops: a loop's compiled body runs once per step on an executor of its own, whose buffers
//! persist from step to step. The results of one loop are made in one run, the first time one
//! of them is needed in a call, and kept until the others are read.

use std::sync::Arc;

use ndarray::{ArrayD, Axis, IxDyn};

use super::Executor;
use crate::compile::ir::{CompiledLoop, Kind, Node, infer_kind};
use crate::dtype::DType;
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
}

/// The results of the loops run so far in a call, until each is read.
#[derive(Default)]
pub(crate) struct LoopCache {
    runs: Vec<(LoopHandle, Vec<usize>, Vec<Option<Tensor>>)>,
}

impl LoopCache {
    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

/// The body runners of the loops of `nodes`, one per compiled body.
pub(crate) fn body_runners(nodes: &[Node]) -> Vec<BodyRunner> {
    let mut runners: Vec<BodyRunner> = Vec::new();
    for n in nodes {
        if let Kind::Loop { compiled, .. } = &n.kind
            && !runners.iter().any(|r| Arc::ptr_eq(&r.compiled, compiled))
        {
            let mut executor = Executor::shared(compiled.program.clone());
            if let Some(trace) = &compiled.debug {
                executor.enable_debug(trace.clone());
            }
            runners.push(BodyRunner {
                compiled: compiled.clone(),
                executor,
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
    ) -> Result<Tensor> {
        let (handle, result) = match &n.kind {
            Kind::Loop { compiled, result } => (&compiled.body, *result),
            Kind::Op(Op::Loop { body, result }) => (body, *result),
            _ => unreachable!("only loop nodes run as loops"),
        };
        let at = match cache
            .runs
            .iter()
            .position(|(h, ins, _)| h == handle && ins == operands)
        {
            Some(at) => at,
            None => {
                let runner = self
                    .loops
                    .iter()
                    .find(|r| r.compiled.body == *handle)
                    .expect("every loop of the program has a runner");
                let results = run_loop(runner, args)?;
                cache
                    .runs
                    .push((handle.clone(), operands.to_vec(), results));
                cache.runs.len() - 1
            }
        };
        let slot = &mut cache.runs[at].2[result];
        // A result read by two nodes (a givens copy) is made twice: take it unless another is
        // due. Every node of one loop reads its result once in a program, so take it.
        slot.take().ok_or_else(|| Error::Runtime {
            op: n.kind.user_name(),
            detail: "a loop result read twice in one call".into(),
            loc: n.loc,
        })
    }
}

/// Run the loop of `runner` on `args` (its sequences, initial states, count and captured
/// values): every needed result.
fn run_loop(runner: &BodyRunner, args: &[&Tensor]) -> Result<Vec<Option<Tensor>>> {
    let compiled = &runner.compiled;
    let body = compiled.body.body();
    let (p, q) = (body.n_sequences, body.n_states());
    let loop_error = |detail: String| Error::Runtime {
        op: "loop".into(),
        detail,
        loc: body.loc,
    };
    let sequences = &args[..p];
    let captured = &args[body.first_captured()..];
    let steps = match body.steps {
        Steps::OfSequences => {
            let lengths: Vec<usize> = sequences.iter().map(|s| s.shape()[0]).collect();
            if let Some(bad) = lengths.iter().find(|&&l| l != lengths[0]) {
                return Err(loop_error(format!(
                    "its sequences have lengths {} and {bad}",
                    lengths[0]
                )));
            }
            lengths[0]
        }
        Steps::Counted => {
            let count = args[body.count_input().expect("a counted loop has a count")].item()?;
            if count < 0.0 {
                return Err(loop_error(format!("it is asked to make {count} steps")));
            }
            count as usize
        }
        Steps::Until { max } => max,
    };
    let (o, needed) = (body.n_outputs(), &compiled.needed);
    let mut states: Vec<Tensor> = args[p..p + q].iter().map(|t| (*t).clone()).collect();
    let mut stacked: Vec<Vec<Tensor>> = vec![Vec::new(); o];
    let mut history: Vec<Vec<Tensor>> = vec![Vec::new(); q];
    // The streams a step draws from, each with its own counter.
    let mut stream_states: Vec<Option<Tensor>> = vec![None; captured.len()];
    let order: Vec<usize> = if body.reverse {
        (0..steps).rev().collect()
    } else {
        (0..steps).collect()
    };
    for &t in &order {
        for (k, s) in stream_states.iter_mut().enumerate() {
            if body.streams[k] {
                *s = Some(step_stream(captured[k], t)?);
            }
        }
        for (k, h) in history.iter_mut().enumerate() {
            if needed[q + o + k] {
                h.push(states[k].clone());
            }
        }
        let slices: Vec<Tensor> = sequences
            .iter()
            .map(|s| slice(s, t))
            .collect::<Result<_>>()?;
        let feed: Vec<&Tensor> = slices
            .iter()
            .chain(&states)
            .chain(
                captured
                    .iter()
                    .zip(&stream_states)
                    .map(|(c, s)| s.as_ref().unwrap_or(c)),
            )
            .collect();
        let mut out = runner
            .executor
            .run(&feed)
            .map_err(|e| at_step(e, t, body.loc))?;
        let done = body
            .until
            .is_some()
            .then(|| out.pop().map(|u| u.item().map(|v| v != 0.0)))
            .flatten()
            .transpose()?
            .unwrap_or(false);
        let per_step = out.split_off(q);
        for (k, y) in per_step.into_iter().enumerate() {
            if needed[q + k] {
                stacked[k].push(y);
            }
        }
        states = out;
        if done {
            break;
        }
    }
    if body.reverse {
        stacked.iter_mut().for_each(|s| s.reverse());
        history.iter_mut().for_each(|h| h.reverse());
    }
    // With no steps, the shape of a step's output comes from the body's types on these inputs.
    let step_shapes = (order.is_empty() && o > 0).then(|| {
        let slices: Vec<Vec<usize>> = sequences.iter().map(|s| s.shape()[1..].to_vec()).collect();
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
    let mut results: Vec<Option<Tensor>> = vec![None; body.result_types.len()];
    for (k, r) in results.iter_mut().enumerate() {
        if !needed[k] {
            continue;
        }
        let empty = |step: Option<&Type>| -> Vec<usize> {
            let declared = &body.result_types[k].shape.dims()[1..];
            let known = step.and_then(|t| t.shape.to_known());
            let mut dims = vec![0];
            dims.extend(match known {
                Some(d) => d,
                None => declared.iter().map(|d| d.unwrap_or(0)).collect(),
            });
            dims
        };
        *r = Some(match body.result(k) {
            LoopResult::Final(i) => states[i].clone(),
            LoopResult::Stacked(i) => {
                let step = step_shapes
                    .as_ref()
                    .and_then(|s| s.get(q + i))
                    .and_then(|t| t.as_ref());
                stack(&stacked[i], body.result_types[k].dtype, &empty(step))?
            }
            LoopResult::History(i) => {
                let state = Type {
                    dtype: states[i].dtype(),
                    shape: Shape::known(states[i].shape()),
                };
                stack(&history[i], state.dtype, &empty(Some(&state)))?
            }
        });
    }
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

/// Slice `t` of a sequence along its first axis.
fn slice(s: &Tensor, t: usize) -> Result<Tensor> {
    macro_rules! at {
        ($a:expr, $v:ident) => {
            Tensor::$v($a.index_axis(Axis(0), t).to_owned())
        };
    }
    Ok(match s {
        Tensor::F32(a) => at!(a, F32),
        Tensor::F64(a) => at!(a, F64),
        Tensor::I64(a) => at!(a, I64),
        Tensor::Bool(a) => at!(a, Bool),
    })
}

/// Per-step tensors stacked along a new first axis; for no steps, an empty tensor of `dtype`
/// and shape `empty`.
fn stack(items: &[Tensor], dtype: DType, empty: &[usize]) -> Result<Tensor> {
    macro_rules! stacked {
        ($v:ident, $t:ty) => {{
            let views: Vec<_> = items
                .iter()
                .map(|i| match i {
                    Tensor::$v(a) => Ok(a.view()),
                    other => Err(format!("a loop output of {}", other.dtype())),
                })
                .collect::<std::result::Result<_, String>>()
                .map_err(|e| Error::Data {
                    path: "<loop>".into(),
                    reason: e,
                })?;
            if views.is_empty() {
                Tensor::$v(ArrayD::<$t>::default(IxDyn(empty)))
            } else {
                Tensor::$v(ndarray::stack(Axis(0), &views).map_err(|e| Error::Data {
                    path: "<loop>".into(),
                    reason: format!("per-step outputs of different shapes: {e}"),
                })?)
            }
        }};
    }
    Ok(match dtype {
        DType::F32 => stacked!(F32, f32),
        DType::F64 => stacked!(F64, f64),
        DType::I64 => stacked!(I64, i64),
        DType::Bool => stacked!(Bool, bool),
    })
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
        other => other,
    }
}
