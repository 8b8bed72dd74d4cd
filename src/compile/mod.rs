//! The compiler: from the user's graph to a program.
//!
//! Compiling copies the subgraph the outputs and updates need into the compiler's own IR
//! ([`ir`]), applying `givens` on the way; the optimizer rewrites that copy ([`rewrite`]); the
//! planner orders it and decides when each buffer dies ([`plan`]). The user's graph is never
//! modified. What comes out is a [`Program`] for the runtime, the optimizer's statistics, and
//! for the debug mode, every node the optimizer saw with the replacements it made.

pub(crate) mod fgraph;
pub(crate) mod ir;
pub(crate) mod plan;
pub(crate) mod rewrite;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use crate::error::{Error, Location, Result};
use crate::graph::loops::{LoopHandle, LoopResult};
use crate::graph::op::Op;
use crate::graph::{Expr, GraphInner, NodeId, SharedVar, Type};
use crate::kernels::Exec;
use crate::shape;
use fgraph::{FGraph, Replacement};
use ir::{CompiledLoop, Kind, Node};
pub(crate) use plan::Program;
use rewrite::RewriteStats;

/// How a compiled function executes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Fast kernels (threaded GEMM, rayon), buffers freed after their last use.
    #[default]
    Fast,
    /// The graph as written, on the plain reference kernels, every value kept: slow, for
    /// checking.
    Reference,
    /// Theano's `DebugMode`: run the optimized plan, and also every node the optimizer saw or
    /// made, with the reference kernels. A call fails with
    /// [`Error::DebugMismatch`] naming the first rewrite that changed a value, or the output
    /// where the fast plan differs from the reference. Several times slower than `Reference`.
    Debug,
}

/// What the fed nodes of a compilation are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feeds {
    /// A function's inputs: only symbolic inputs, and every symbolic input the outputs depend
    /// on must be among them.
    FunctionInputs,
    /// The feeds of [`eval`](crate::eval): any nodes, whose values stand in for what they
    /// compute; an input left unfed is a missing feed.
    AnyNodes,
}

/// What to compile: `function(inputs, outputs).updates(..).givens(..)` and its options.
#[derive(Clone)]
pub(crate) struct Spec {
    pub inputs: Vec<Expr>,
    pub feeds: Feeds,
    pub outputs: Vec<Expr>,
    pub updates: Vec<(Expr, Expr)>,
    pub givens: Vec<(Expr, Expr)>,
    pub mode: Mode,
    pub excluded: Vec<String>,
    pub pass_limit: usize,
    /// Where the user described the function.
    pub loc: Location,
}

/// The optimizer's trace for the debug mode: every node it saw or made (index order is a
/// dependency order), the replacements it made, and the roots of the graph as written.
#[derive(Clone)]
pub(crate) struct DebugTrace {
    pub nodes: Vec<Node>,
    pub history: Vec<Replacement>,
    pub roots: Vec<usize>,
    /// The roots after the rewrites: what the fast plan computes.
    pub final_roots: Vec<usize>,
}

/// The result of compiling.
pub(crate) struct Compiled {
    pub program: Program,
    pub stats: RewriteStats,
    pub debug: Option<DebugTrace>,
}

/// Check `spec`, copy the subgraph it needs, optimize it and plan the program.
pub(crate) fn compile(spec: &Spec) -> Result<Compiled> {
    let usage = |what: String| Error::Usage {
        what,
        loc: spec.loc,
    };
    let all: Vec<&Expr> = spec
        .inputs
        .iter()
        .chain(&spec.outputs)
        .chain(spec.updates.iter().flat_map(|(a, b)| [a, b]))
        .chain(spec.givens.iter().flat_map(|(a, b)| [a, b]))
        .collect();
    let Some(first) = all.first() else {
        return Err(usage("function with no inputs, outputs or updates".into()));
    };
    let graph = first.graph.clone();
    if let Some(e) = all.iter().find(|e| !e.graph.same(&graph)) {
        return Err(usage(format!("{} belongs to another graph", e.name())));
    }
    graph.check(&all.iter().map(|e| e.id).collect::<Vec<_>>())?;
    let g = graph.lock();
    let (input_pos, input_types) = inputs(&g, spec, &usage)?;
    let givens = givens(&g, spec, &usage)?;
    let updates = updates(&g, spec, &usage)?;

    let roots: Vec<NodeId> = spec
        .outputs
        .iter()
        .map(|e| e.id)
        .chain(updates.iter().map(|u| u.1))
        .collect();
    let (nodes, index) = copy_subgraph(&g, spec, &roots, &input_pos, &givens, &usage)?;
    drop(g);
    if let Some(bad) = spec.excluded.iter().find(|n| !rewrite::exists(n)) {
        return Err(usage(format!("no rewrite is named {bad}")));
    }
    let subst = |id: NodeId| *givens.get(&id).unwrap_or(&id);
    let n_out = spec.outputs.len();
    let root_index: Vec<usize> = roots.iter().map(|r| index[subst(*r).index()]).collect();
    let shared_vars: Vec<Arc<SharedVar>> = updates.into_iter().map(|(s, _)| s).collect();

    // The optimizer works on its own copy; the reference mode runs the graph as written.
    let mut fg = FGraph::new(nodes, root_index.clone());
    let stats = if spec.mode == Mode::Reference {
        RewriteStats::default()
    } else {
        rewrite::optimize(&mut fg, &spec.excluded, spec.pass_limit)
    };
    let debug = (spec.mode == Mode::Debug).then(|| DebugTrace {
        nodes: fg.all_nodes().to_vec(),
        history: fg.history.clone(),
        roots: root_index,
        final_roots: fg.roots(),
    });
    let (mut nodes, roots) = fg.finish();
    compile_loops(&mut nodes, spec)?;
    let outputs = roots[..n_out].to_vec();
    let updates: Vec<(Arc<SharedVar>, usize)> = shared_vars
        .into_iter()
        .zip(roots[n_out..].iter().copied())
        .collect();

    // Streams sampled from advance after each call, unless the user updates their state (or
    // this is an `eval`, which only reads them).
    let mut streams: Vec<Arc<SharedVar>> = Vec::new();
    if spec.feeds == Feeds::FunctionInputs {
        for n in &nodes {
            // A draw reads its stream's state; a loop draws from the states it captures.
            let states: Vec<usize> = match &n.kind {
                Kind::Op(Op::Random { .. }) => vec![n.inputs[0]],
                Kind::Loop { compiled, .. } => {
                    let body = compiled.body.body();
                    let first = body.first_captured();
                    (0..body.captured.len())
                        .filter(|&k| body.streams[k])
                        .map(|k| n.inputs[first + k])
                        .collect()
                }
                _ => Vec::new(),
            };
            for i in states {
                if let Kind::Shared(s) = &nodes[i].kind {
                    let updated = updates.iter().any(|(u, _)| Arc::ptr_eq(u, s));
                    if !updated && !streams.iter().any(|t| Arc::ptr_eq(t, s)) {
                        streams.push(s.clone());
                    }
                }
            }
        }
    }
    let exec = if spec.mode == Mode::Reference {
        Exec::Reference
    } else {
        Exec::Fast
    };
    let program = Program::new(nodes, outputs, updates, streams, input_types, exec);
    Ok(Compiled {
        program,
        stats,
        debug,
    })
}

/// Position of each fed node, and the names and types of the inputs.
#[allow(clippy::type_complexity)]
fn inputs(
    g: &GraphInner,
    spec: &Spec,
    usage: &impl Fn(String) -> Error,
) -> Result<(HashMap<NodeId, usize>, Vec<(String, Type)>)> {
    let mut input_pos: HashMap<NodeId, usize> = HashMap::new();
    let mut input_types = Vec::new();
    for (k, e) in spec.inputs.iter().enumerate() {
        let n = g.node(e.id);
        if spec.feeds == Feeds::FunctionInputs && !matches!(n.op, Op::Input { .. }) {
            return Err(usage(format!(
                "function inputs must be symbolic inputs; {} is not",
                g.name_of(e.id)
            )));
        }
        if input_pos.insert(e.id, k).is_some() {
            return Err(usage(format!("input {} is listed twice", g.name_of(e.id))));
        }
        input_types.push((g.name_of(e.id), n.ty.clone()));
    }
    Ok((input_pos, input_types))
}

/// The replacement of each node `givens` names, checked for fit.
fn givens(
    g: &GraphInner,
    spec: &Spec,
    usage: &impl Fn(String) -> Error,
) -> Result<HashMap<NodeId, NodeId>> {
    let mut givens: HashMap<NodeId, NodeId> = HashMap::new();
    for (old, new) in &spec.givens {
        let (to, tn) = (&g.node(old.id).ty, &g.node(new.id).ty);
        if to.dtype != tn.dtype
            || to.ndim() != tn.ndim()
            || shape::broadcast(&to.shape, &tn.shape).is_err()
        {
            return Err(usage(format!(
                "givens: {} of type {to} cannot be replaced by {tn}",
                g.name_of(old.id)
            )));
        }
        givens.insert(old.id, new.id);
    }
    Ok(givens)
}

/// Each updated shared variable with the node of its new value, checked for fit.
fn updates(
    g: &GraphInner,
    spec: &Spec,
    usage: &impl Fn(String) -> Error,
) -> Result<Vec<(Arc<SharedVar>, NodeId)>> {
    let mut updates: Vec<(Arc<SharedVar>, NodeId)> = Vec::new();
    for (var, value) in &spec.updates {
        let Op::Shared(s) = g.node(var.id).op else {
            return Err(usage(format!(
                "updates: {} is not a shared variable",
                g.name_of(var.id)
            )));
        };
        let shared: Arc<SharedVar> = g.shared[s].clone();
        let vt = &g.node(value.id).ty;
        if vt.dtype != shared.ty.dtype
            || vt.ndim() != shared.ty.ndim()
            || shape::broadcast(&vt.shape, &shared.ty.shape).ok().as_ref() != Some(&shared.ty.shape)
        {
            return Err(Error::Usage {
                what: format!(
                    "update of {} must have type {}, the new value has {vt}",
                    shared.name, shared.ty
                ),
                loc: g.node(value.id).loc,
            });
        }
        if updates.iter().any(|(u, _)| Arc::ptr_eq(u, &shared)) {
            return Err(usage(format!("updates: {} is updated twice", shared.name)));
        }
        updates.push((shared, value.id));
    }
    Ok(updates)
}

/// Copy the subgraph `roots` need into compiler nodes, substituting givens, in dependency order
/// (an iterative walk: graphs thousands of nodes deep must not overflow the stack). Returns the
/// nodes and where each user node landed.
fn copy_subgraph(
    g: &GraphInner,
    spec: &Spec,
    roots: &[NodeId],
    input_pos: &HashMap<NodeId, usize>,
    givens: &HashMap<NodeId, NodeId>,
    usage: &impl Fn(String) -> Error,
) -> Result<(Vec<Node>, Vec<usize>)> {
    let subst = |id: NodeId| *givens.get(&id).unwrap_or(&id);
    // By the graph's node ids, dense: a copy's position (`UNSEEN` before it is copied), and
    // whether the node waits on the walk's stack for its operands.
    const UNSEEN: usize = usize::MAX;
    let mut index: Vec<usize> = vec![UNSEEN; g.nodes.len()];
    let mut on_stack: Vec<bool> = vec![false; g.nodes.len()];
    let mut nodes: Vec<Node> = Vec::new();
    let mut ids: Vec<NodeId> = Vec::new();
    for root in roots {
        let mut stack = vec![(subst(*root), false)];
        while let Some((id, expanded)) = stack.pop() {
            if index[id.index()] != UNSEEN {
                continue;
            }
            let n = g.node(id);
            let fed = input_pos.get(&id).copied();
            if expanded || fed.is_some() {
                let kind = match (fed, &n.op) {
                    (Some(position), _) => Kind::Input {
                        position,
                        name: g.name_of(id),
                    },
                    (None, Op::Input { name, .. }) => {
                        return Err(match spec.feeds {
                            Feeds::FunctionInputs => usage(format!(
                                "the outputs depend on input {} (built at {}), which is not among the function's inputs",
                                g.name_of(id),
                                n.loc
                            )),
                            Feeds::AnyNodes => Error::MissingFeed {
                                name: name.clone(),
                                expected: spec.inputs.len() + 1,
                                got: spec.inputs.len(),
                                at: spec.loc,
                            },
                        });
                    }
                    (None, Op::StepValue { .. }) => {
                        return Err(Error::Usage {
                            what: format!(
                                "{} is a value of a loop's step, read outside the loop's body",
                                g.name_of(id)
                            ),
                            loc: n.loc,
                        });
                    }
                    (None, Op::Constant(c)) => Kind::Constant(g.constants[*c].clone()),
                    (None, Op::Shared(s)) => Kind::Shared(g.shared[*s].clone()),
                    (None, op) => Kind::Op(op.clone()),
                };
                let inputs = match kind {
                    Kind::Op(_) => n.inputs.iter().map(|p| index[subst(*p).index()]).collect(),
                    _ => Vec::new(),
                };
                index[id.index()] = nodes.len();
                on_stack[id.index()] = false;
                ids.push(id);
                nodes.push(Node {
                    kind,
                    inputs,
                    ty: n.ty.clone(),
                    loc: n.loc,
                });
                continue;
            }
            if std::mem::replace(&mut on_stack[id.index()], true) {
                return Err(usage(format!(
                    "givens create a cycle through {}",
                    g.name_of(id)
                )));
            }
            stack.push((id, true));
            for p in n.inputs.iter().rev() {
                let p = subst(*p);
                if index[p.index()] == UNSEEN {
                    stack.push((p, false));
                }
            }
        }
    }
    // The order the user built the nodes in, as far as givens allow: a reference program then
    // runs them in that order, and of two failing nodes reports the one built first.
    let order = build_order(&nodes, &ids);
    let (nodes, position) = ir::permuted(nodes, &order);
    index
        .iter_mut()
        .filter(|k| **k != UNSEEN)
        .for_each(|k| *k = position[*k]);
    Ok((nodes, index))
}

/// A dependency order of `nodes` that takes, of the nodes ready to run, the one the user built
/// first (`ids`: each node's id in the user's graph).
fn build_order(nodes: &[Node], ids: &[NodeId]) -> Vec<usize> {
    // Without givens (or with ones that point back), every operand was built before its user:
    // the order of the ids is the order below, without the heap.
    if nodes
        .iter()
        .zip(ids)
        .all(|(n, &id)| n.inputs.iter().all(|&p| ids[p] < id))
    {
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_unstable_by_key(|&k| ids[k]);
        return order;
    }
    let mut waiting: Vec<usize> = nodes.iter().map(|n| n.inputs.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (k, n) in nodes.iter().enumerate() {
        for &p in &n.inputs {
            users[p].push(k);
        }
    }
    let mut ready: BinaryHeap<Reverse<(NodeId, usize)>> = (0..nodes.len())
        .filter(|&k| waiting[k] == 0)
        .map(|k| Reverse((ids[k], k)))
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse((_, k))) = ready.pop() {
        order.push(k);
        for &u in &users[k] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.push(Reverse((ids[u], u)));
            }
        }
    }
    order
}

/// Compile the body of every loop among `nodes` once, and make its results [`Kind::Loop`]
/// nodes: the results of one loop (the same loop on the same operands) share the compiled body
/// and run together.
fn compile_loops(nodes: &mut [Node], spec: &Spec) -> Result<()> {
    let mut compiled: Vec<(LoopHandle, Vec<usize>, Vec<usize>)> = Vec::new();
    for (j, n) in nodes.iter().enumerate() {
        if let Kind::Op(Op::Loop { body, .. }) = &n.kind {
            match compiled
                .iter_mut()
                .find(|(b, ins, _)| b == body && *ins == n.inputs)
            {
                Some((_, _, members)) => members.push(j),
                None => compiled.push((body.clone(), n.inputs.clone(), vec![j])),
            }
        }
    }
    for (handle, _, members) in compiled {
        let body = handle.body();
        let graph = spec
            .outputs
            .iter()
            .chain(&spec.inputs)
            .chain(spec.updates.iter().map(|(_, v)| v))
            .map(|e| e.graph().clone())
            .next()
            .ok_or_else(|| Error::Usage {
                what: "a loop in a function of no inputs, outputs or updates".into(),
                loc: spec.loc,
            })?;
        // A given cannot reach into a body: the body's captured nodes are fixed.
        if let Some((target, _)) = spec
            .givens
            .iter()
            .find(|(t, _)| body.inner.contains_key(&t.id()) || body.step_values.contains(&t.id()))
        {
            return Err(Error::Usage {
                what: format!(
                    "givens cannot replace {}, a node inside the body of the loop built at {}; \
                     give the loop a value to read instead (an input it captures)",
                    target.name(),
                    body.loc
                ),
                loc: spec.loc,
            });
        }
        let results: Vec<LoopResult> = members
            .iter()
            .filter_map(|&j| match nodes[j].kind {
                Kind::Op(Op::Loop { result, .. }) => Some(result),
                _ => None,
            })
            .fold(Vec::new(), |mut v, r| {
                if !v.contains(&r) {
                    v.push(r);
                }
                v
            });
        let inner: Vec<NodeId> = results
            .iter()
            .filter_map(|r| match r {
                LoopResult::Inner(n) => Some(*n),
                _ => None,
            })
            .collect();
        let exprs = |ids: &[NodeId]| -> Vec<Expr> { ids.iter().map(|&i| graph.expr(i)).collect() };
        let body_spec = Spec {
            inputs: exprs(&body.step_values)
                .into_iter()
                .chain(exprs(&body.captured))
                .collect(),
            feeds: Feeds::AnyNodes,
            // A stacked output no result reads is not computed: a scalar stands in its place.
            outputs: exprs(&body.next_states)
                .into_iter()
                .chain(body.outputs.iter().enumerate().map(|(k, &o)| {
                    if results.contains(&LoopResult::Stacked(k)) {
                        graph.expr(o)
                    } else {
                        graph.scalar_constant(0.0, crate::dtype::DType::F32)
                    }
                }))
                .chain(body.until.map(|u| graph.expr(u)))
                .chain(exprs(&inner))
                .collect(),
            updates: Vec::new(),
            givens: Vec::new(),
            mode: spec.mode,
            excluded: spec.excluded.clone(),
            pass_limit: spec.pass_limit,
            loc: body.loc,
        };
        let Compiled { program, debug, .. } = compile(&body_spec)?;
        let loop_ = Arc::new(CompiledLoop {
            body: handle.clone(),
            program: Arc::new(program),
            debug,
            results,
            inner,
        });
        for &j in &members {
            if let Kind::Op(Op::Loop { result, .. }) = nodes[j].kind {
                nodes[j].kind = Kind::Loop {
                    compiled: loop_.clone(),
                    result,
                };
            }
        }
    }
    Ok(())
}
