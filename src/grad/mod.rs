//! Symbolic reverse mode: `grad` turns a graph into more graph.
//!
//! The sweep is op-agnostic: it restricts work to nodes on a path from the variables to the
//! outputs, walks them in reverse topological order, sums fan-out contributions once per node,
//! un-broadcasts each contribution to its operand's shape (the one place that happens), and
//! tells disconnected variables from zero gradients. The per-op rules live in `rules.rs`; the
//! rules that send a gradient past a numerically fragile pair of ops (`log` of a `softmax`),
//! in `stable.rs`, are tried first.

mod loops;
mod pushout;
mod rules;
mod stable;

use rustc_hash::FxHashMap as HashMap;

use crate::error::{Error, Location, Result};
use crate::graph::op::Op;
use crate::graph::{Expr, Graph, NodeId, Type};
use stable::Site;

/// Options of [`grad_with`] and [`vjp`].
#[derive(Clone, Copy, Debug, Default)]
pub struct GradOptions {
    allow_disconnected: bool,
    /// Gradients stop at the variables: a variable computed from another sends it nothing
    /// (a loop's body differentiates its captured nodes so, each once).
    stop_at_wrt: bool,
}

impl GradOptions {
    /// Return zeros for variables the cost does not depend on, instead of an error.
    pub fn allow_disconnected(mut self) -> Self {
        self.allow_disconnected = true;
        self
    }
}

/// The gradient of a scalar `cost` with respect to each of `wrt`, as new nodes of the same graph.
///
/// ```
/// use gradus::prelude::*;
/// let g = Graph::new();
/// let x = g.scalar("x", DType::F64);
/// let gx = grad(&x.pow(2.0), &[&x]).unwrap().remove(0);
/// let f = function(&[&x], &[&gx]).compile().unwrap();
/// assert_eq!(f.call(&[4.0.into()]).unwrap()[0].item().unwrap(), 8.0);
/// ```
#[track_caller]
pub fn grad(cost: &Expr, wrt: &[&Expr]) -> Result<Vec<Expr>> {
    grad_at(cost, wrt, GradOptions::default(), Location::caller())
}

/// [`grad`] with options.
#[track_caller]
pub fn grad_with(cost: &Expr, wrt: &[&Expr], options: GradOptions) -> Result<Vec<Expr>> {
    grad_at(cost, wrt, options, Location::caller())
}

fn grad_at(cost: &Expr, wrt: &[&Expr], options: GradOptions, at: Location) -> Result<Vec<Expr>> {
    cost.graph.check(&[cost.id])?;
    let ty = cost.ty();
    if ty.ndim() != 0 {
        return Err(Error::NonScalarCost {
            shape: ty.shape.to_string(),
            loc: cost.location(),
            at,
        });
    }
    // The seed dy = 1 is attributed to the grad call, not to gradus's own source.
    let one = {
        let id = cost
            .graph
            .lock()
            .constant(crate::tensor::Tensor::scalar(1.0, ty.dtype), at);
        cost.graph.expr(id)
    };
    sweep(&[cost], &[&one], wrt, options, at)
}

/// Vector-Jacobian product: the gradient of `sum_i <outputs_i, cotangents_i>` with respect to
/// `wrt`, i.e. reverse mode seeded with known output gradients (Theano's `known_grads`).
#[track_caller]
pub fn vjp(
    outputs: &[&Expr],
    cotangents: &[&Expr],
    wrt: &[&Expr],
    options: GradOptions,
) -> Result<Vec<Expr>> {
    let at = Location::caller();
    if outputs.len() != cotangents.len() {
        return Err(Error::Usage {
            what: format!(
                "vjp: {} outputs but {} cotangents",
                outputs.len(),
                cotangents.len()
            ),
            loc: at,
        });
    }
    for e in outputs.iter().chain(cotangents) {
        e.graph.check(&[e.id])?;
    }
    for (o, c) in outputs.iter().zip(cotangents) {
        let (to, tc) = (o.ty(), c.ty());
        if to.dtype != tc.dtype
            || crate::shape::broadcast(&to.shape, &tc.shape).ok().as_ref() != Some(&to.shape)
        {
            return Err(Error::Usage {
                what: format!(
                    "vjp: cotangent {tc} does not fit output {to} of {}",
                    o.name()
                ),
                loc: at,
            });
        }
    }
    sweep(outputs, cotangents, wrt, options, at)
}

/// Sum `g` down to the shape of `x`: leading axes `g` has in excess, and axes where `x` is
/// statically 1 but `g` is not. Only static 1s broadcast, so this is decided at build time.
fn unbroadcast(g: Expr, x: &Expr, xt: &Type) -> Expr {
    let gt = g.ty();
    if gt.shape == xt.shape {
        return g;
    }
    let extra = gt.ndim().saturating_sub(xt.ndim());
    let mut g = if extra > 0 {
        g.sum_axes(&(0..extra as isize).collect::<Vec<_>>(), false)
    } else {
        g
    };
    let gs = g.shape();
    let ones: Vec<isize> = (0..xt.ndim())
        .filter(|&i| {
            xt.shape.dims()[i] == Some(1) && gs.dims().get(i).copied().flatten() != Some(1)
        })
        .map(|i| i as isize)
        .collect();
    if !ones.is_empty() {
        g = g.sum_axes(&ones, true);
    }
    if g.shape() != xt.shape {
        g.broadcast_like(x)
    } else {
        g
    }
}

fn sweep(
    outputs: &[&Expr],
    seeds: &[&Expr],
    wrt: &[&Expr],
    options: GradOptions,
    at: Location,
) -> Result<Vec<Expr>> {
    let graph = outputs
        .first()
        .map(|o| o.graph.clone())
        .ok_or_else(|| Error::Usage {
            what: "grad of no outputs".into(),
            loc: at,
        })?;
    for e in outputs.iter().chain(seeds).chain(wrt) {
        if !e.graph.same(&graph) {
            return Err(Error::Usage {
                what: format!("{} belongs to another graph", e.name()),
                loc: at,
            });
        }
    }
    let roots: Vec<NodeId> = outputs
        .iter()
        .chain(seeds)
        .chain(wrt)
        .map(|e| e.id)
        .collect();
    graph.check(&roots)?;
    for w in wrt {
        if !rules::differentiable(w.dtype()) {
            return Err(Error::NotDifferentiable {
                name: w.name(),
                detail: format!("dtype is {}", w.dtype()),
                loc: w.location(),
            });
        }
    }

    // Snapshot the part of the graph the sweep reads, so rules can build nodes freely.
    let hi = outputs.iter().map(|o| o.id.index()).max().unwrap_or(0);
    let lo = wrt.iter().map(|w| w.id.index()).min().unwrap_or(hi + 1);
    let nodes: Vec<Snapshot> = {
        let g = graph.lock();
        (0..=hi)
            .map(|i| {
                let n = &g.nodes[i];
                Snapshot {
                    op: n.op.clone(),
                    inputs: n.inputs.to_vec(),
                    ty: n.ty.clone(),
                    loc: n.loc,
                }
            })
            .collect()
    };

    // On a path: depends on some wrt (forward), and some output depends on it (backward).
    let mut from_wrt = vec![false; hi + 1];
    for w in wrt {
        if w.id.index() <= hi {
            from_wrt[w.id.index()] = true;
        }
    }
    for i in lo..=hi {
        let n = &nodes[i];
        if !from_wrt[i] && !rules::stops_gradient(&n.op) && rules::differentiable(n.ty.dtype) {
            from_wrt[i] = n.inputs.iter().any(|p| from_wrt[p.index()]);
        }
    }
    let mut to_out = vec![false; hi + 1];
    for o in outputs {
        to_out[o.id.index()] = true;
    }
    for i in (lo..=hi).rev() {
        if to_out[i] && from_wrt[i] {
            for p in &nodes[i].inputs {
                to_out[p.index()] = true;
            }
        }
    }
    let on_path = |i: usize| from_wrt[i] && to_out[i];

    let mut pending: HashMap<NodeId, Vec<Expr>> = HashMap::default();
    for (o, s) in outputs.iter().zip(seeds) {
        if on_path(o.id.index()) {
            let s = unbroadcast((*s).clone(), o, &o.ty());
            pending.entry(o.id).or_default().push(s);
        }
    }
    let is_wrt = |id: NodeId| options.stop_at_wrt && wrt.iter().any(|w| w.id == id);
    let mut totals: HashMap<NodeId, Expr> = HashMap::default();
    for i in (lo..=hi).rev() {
        if !on_path(i) {
            continue;
        }
        let id = NodeId(i as u32);
        // (A loop result that is a variable where gradients stop is a variable like another.)
        if let Op::Loop { body, .. } = &nodes[i].op
            && !is_wrt(id)
        {
            // The results of one loop are differentiated together, at the first of them: by
            // then every contribution to each of them is in.
            let siblings: Vec<usize> = (lo..=hi)
                .filter(|&j| {
                    on_path(j)
                        && !is_wrt(NodeId(j as u32))
                        && nodes[j].inputs == nodes[i].inputs
                        && matches!(&nodes[j].op, Op::Loop { body: b, .. } if b == body)
                })
                .collect();
            if siblings[0] == i {
                loop_group(
                    &graph,
                    &nodes,
                    &siblings,
                    &mut pending,
                    &mut totals,
                    &on_path,
                )?;
            }
            continue;
        }
        let Some(parts) = pending.remove(&id) else {
            continue;
        };
        let Snapshot {
            op,
            inputs: ins,
            loc,
            ..
        } = &nodes[i];
        // The sum of the contributions is located at the node they are the gradient of.
        let total = located(&graph, *loc, || sum(&graph, parts));
        let site = Site {
            nodes: &nodes,
            id,
            graph: &graph,
            dy: &total,
            on_path: &on_path,
        };
        if is_wrt(id) {
            // A variable: its gradient stops here.
        } else if let Some((x, c)) = located(&graph, *loc, || stable::apply(&site)) {
            let xt = &nodes[x.index()].ty;
            let c = located(&graph, *loc, || unbroadcast(c, &graph.expr(x), xt));
            pending.entry(x).or_default().push(c);
        } else if !ins.is_empty() {
            let needs: Vec<bool> = ins.iter().map(|p| on_path(p.index())).collect();
            if needs.iter().any(|n| *n) {
                let xs: Vec<Expr> = ins.iter().map(|p| graph.expr(*p)).collect();
                let y = graph.expr(id);
                let contributions =
                    located(&graph, *loc, || rules::vjp(op, &xs, &y, &total, &needs));
                for (k, c) in contributions?.into_iter().enumerate() {
                    if let (Some(c), true) = (c, needs[k]) {
                        let p = ins[k];
                        let pt = &nodes[p.index()].ty;
                        let c = located(&graph, *loc, || unbroadcast(c, &xs[k], pt));
                        pending.entry(p).or_default().push(c);
                    }
                }
            }
        }
        totals.insert(id, total);
    }

    let mut out = Vec::with_capacity(wrt.len());
    for w in wrt {
        match totals.get(&w.id) {
            Some(g) => out.push(g.clone()),
            None if options.allow_disconnected => out.push(w.zeros_like()),
            None => {
                return Err(Error::Disconnected {
                    name: w.name(),
                    loc: w.location(),
                });
            }
        }
    }
    graph.check(&out.iter().map(|e| e.id).collect::<Vec<_>>())?;
    Ok(out)
}

/// The gradient through the loop whose results are the nodes `siblings` (one loop, on the same
/// inputs): their contributions are summed per result and sent back through the loop's
/// backward loop to its inputs.
fn loop_group(
    graph: &Graph,
    nodes: &[Snapshot],
    siblings: &[usize],
    pending: &mut HashMap<NodeId, Vec<Expr>>,
    totals: &mut HashMap<NodeId, Expr>,
    on_path: &dyn Fn(usize) -> bool,
) -> Result<()> {
    let first = &nodes[siblings[0]];
    let Op::Loop { body: handle, .. } = &first.op else {
        unreachable!("siblings are loop results")
    };
    let mut cotangents: Vec<(crate::graph::loops::LoopResult, Expr)> = Vec::new();
    for &j in siblings {
        let id = NodeId(j as u32);
        let Some(parts) = pending.remove(&id) else {
            continue;
        };
        let Op::Loop { result, .. } = nodes[j].op else {
            unreachable!("siblings are loop results")
        };
        let total = located(graph, nodes[j].loc, || sum(graph, parts));
        match cotangents.iter_mut().find(|(r, _)| *r == result) {
            Some((_, c)) => *c = &*c + &total,
            None => cotangents.push((result, total.clone())),
        }
        totals.insert(id, total);
    }
    if cotangents.is_empty() {
        return Ok(());
    }
    let xs: Vec<Expr> = first.inputs.iter().map(|p| graph.expr(*p)).collect();
    let needs: Vec<bool> = first.inputs.iter().map(|p| on_path(p.index())).collect();
    if !needs.iter().any(|n| *n) {
        return Ok(());
    }
    let contributions = loops::vjp(graph, handle, &xs, &cotangents, &needs)?;
    for (k, c) in contributions.into_iter().enumerate() {
        if let (Some(c), true) = (c, needs[k]) {
            let p = first.inputs[k];
            let c = unbroadcast(c, &xs[k], &nodes[p.index()].ty);
            pending.entry(p).or_default().push(c);
        }
    }
    Ok(())
}

/// The sum of the contributions `parts` to one node's gradient (never empty). The gradients of
/// adjacent slices of one tensor along one axis (an LSTM's gates) are put side by side by one
/// concat instead of each being placed in zeros and added; where they cover the whole axis the
/// concat is the gradient itself, and the sliced tensor, only ever read for its shape, need
/// not be kept.
fn sum(graph: &Graph, parts: Vec<Expr>) -> Expr {
    // (axis, start, end, like) of a slice gradient of static bounds.
    let slice_grad = |e: &Expr| -> Option<(usize, usize, usize, NodeId)> {
        let g = graph.lock();
        let n = g.node(e.id);
        match n.op {
            Op::SliceGrad {
                axis,
                start,
                end,
                step: 1,
            } => {
                let like = n.inputs[1];
                let len = g.node(like).ty.shape.dims()[axis]?;
                // (An empty slice's end may come before its start.)
                let (s, e) = crate::shape::slice_bounds(len, start, end);
                Some((axis, s, e.max(s), like))
            }
            _ => None,
        }
    };
    let mut rest: Vec<Expr> = Vec::new();
    let mut slices: Vec<((usize, usize, usize, NodeId), Expr)> = Vec::new();
    for p in parts {
        match slice_grad(&p) {
            Some(k) => slices.push((k, p)),
            None => rest.push(p),
        }
    }
    slices.sort_by_key(|((axis, s, _, like), _)| (*like, *axis, *s));
    let mut k = 0;
    while k < slices.len() {
        // The run of adjacent slices from k.
        let ((axis, start, mut end, like), _) = slices[k];
        let mut run = vec![k];
        while let Some(((a, s, e, l), _)) = slices.get(k + run.len()) {
            if (*a, *s, *l) != (axis, end, like) {
                break;
            }
            end = *e;
            run.push(k + run.len());
        }
        k += run.len();
        if run.len() == 1 {
            rest.push(slices[run[0]].1.clone());
            continue;
        }
        let pieces: Vec<Expr> = run
            .iter()
            .map(|&j| {
                let d = graph.lock().node(slices[j].1.id).inputs[0];
                graph.expr(d)
            })
            .collect();
        let like = graph.expr(like);
        let Ok(cat) =
            crate::graph::concat(&pieces.iter().collect::<Vec<_>>(), axis as isize).check()
        else {
            rest.extend(run.iter().map(|&j| slices[j].1.clone()));
            continue;
        };
        let whole = start == 0 && like.shape().dims()[axis] == Some(end);
        rest.push(if whole && cat.ty() == like.ty() {
            cat
        } else {
            let op = Op::SliceGrad {
                axis,
                start: start as isize,
                end: Some(end as isize),
                step: 1,
            };
            cat.apply(op, &[&cat, &like])
        });
    }
    rest.into_iter()
        .reduce(|a, b| &a + &b)
        .expect("pending lists are never empty")
}

/// What the sweep reads of a node of the user's graph.
pub(super) struct Snapshot {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: Type,
    pub loc: Location,
}

/// Run `f` with every node it builds located at `loc` (the node whose gradient it builds).
fn located<R>(graph: &Graph, loc: Location, f: impl FnOnce() -> R) -> R {
    let before = graph.lock().loc_override.replace(loc);
    let r = f();
    graph.lock().loc_override = before;
    r
}

/// The Jacobian of a vector `y` (static length n) with respect to `x`: shape `[n, x.shape...]`.
#[track_caller]
pub fn jacobian(y: &Expr, x: &Expr) -> Result<Expr> {
    let at = Location::caller();
    y.graph.check(&[y.id])?;
    let shape = y.shape();
    let n = match shape.dims() {
        [Some(n)] => *n,
        _ => {
            return Err(Error::Usage {
                what: format!("jacobian needs a vector of known length, got {}", y.ty()),
                loc: at,
            });
        }
    };
    let rows = (0..n)
        .map(|i| {
            grad_at(
                &y.slice(0, i as isize, Some(i as isize + 1)).sum(),
                &[x],
                GradOptions::default().allow_disconnected(),
                at,
            )
            .map(|mut g| g.remove(0))
        })
        .collect::<Result<Vec<_>>>()?;
    crate::graph::stack_at(&rows.iter().collect::<Vec<_>>(), 0, at).check()
}

/// The Hessian of a scalar `cost` with respect to `x`: shape `[x.size, x.shape...]`
/// (a square matrix for a vector `x`).
#[track_caller]
pub fn hessian(cost: &Expr, x: &Expr) -> Result<Expr> {
    let at = Location::caller();
    let g = grad_at(cost, &[x], GradOptions::default(), at)?.remove(0);
    let flat = if g.ndim() == 1 { g } else { g.reshape(&[-1]) };
    jacobian(&flat, x)
}

/// The Hessian-vector product `H v` of a scalar `cost` with respect to the variables `xs`,
/// one vector per variable in `vs` (each of its variable's shape), by reverse over reverse:
/// `grad(sum_i sum(grad(cost, x_i) * v_i), xs)`. The result has one part per variable: the
/// rows of the whole Hessian of all variables that belong to it, applied to all of `vs`.
#[track_caller]
pub fn hessian_vector_product(cost: &Expr, xs: &[&Expr], vs: &[&Expr]) -> Result<Vec<Expr>> {
    let at = Location::caller();
    if xs.len() != vs.len() {
        return Err(Error::Usage {
            what: format!(
                "hessian_vector_product of {} variables needs as many vectors, got {}",
                xs.len(),
                vs.len()
            ),
            loc: at,
        });
    }
    let gs = grad_at(cost, xs, GradOptions::default(), at)?;
    let dot = gs
        .iter()
        .zip(vs)
        .map(|(g, v)| (g * *v).sum())
        .reduce(|a, b| a + b)
        .ok_or_else(|| Error::Usage {
            what: "hessian_vector_product of no variables".into(),
            loc: at,
        })?;
    grad_at(&dot, xs, GradOptions::default().allow_disconnected(), at)
}
