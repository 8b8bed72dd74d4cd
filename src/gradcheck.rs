//! The gradient checker: compares `grad`'s symbolic gradients with central finite differences.
//!
//! It checks model code as written: the variables may be symbolic inputs or shared variables
//! (parameters), whose values it leaves as they were; random draws in the cost are frozen, so
//! that the analytic gradient and every finite-difference evaluation see the same draws
//! (dropout, denoising and CD costs check as written).
//!
//! Two modes:
//! * **directions** (default): along `n` random unit directions `u` (over all variables jointly),
//!   `(c(x + εu) - c(x - εu)) / 2ε` against `<grad c, u>`: O(1) evaluations per direction, as
//!   PyTorch's fast gradcheck and JAX's `check_grads` do; when a direction fails, elements are
//!   then checked one by one (all of them for small variables, else those with the largest
//!   gradients and a random sample) to name the worst;
//! * **elementwise**: every element perturbed in turn; the report names the worst element.
//!
//! A check passes when `|analytic - numeric| <= atol + rtol * |numeric|`, with defaults
//! f64 `(1e-5, 1e-3)` (PyTorch's) and f32 `(1e-3, 1e-2)`. A non-scalar expression is reduced to
//! a scalar with a fixed random projection `sum(r * y)`, `r ~ U[0.5, 1.5)` (Theano's
//! `verify_grad`). The second-order mode checks the gradient of `sum(s * grad(c))`, i.e. Hessian
//! rows, the same way.
//!
//! ```
//! use gradus::prelude::*;
//! let g = Graph::new();
//! let x = g.input("x", DType::F64, &[Some(3)]);
//! let y = x.tanh() * x.exp();
//! let report = GradCheck::new(&y, &[&x]).at(&[vec![0.1, -0.5, 2.0].into()]).run().unwrap();
//! assert!(report.passed());
//! ```

use std::fmt;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, Uniform};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::grad::{GradOptions, grad_with};
use crate::graph::op::Op;
use crate::graph::{Expr, NodeId};
use crate::tensor::Tensor;
use crate::{Mode, function};

/// Elements a failed directional check then perturbs one by one, at most, to name the worst.
const LOCATE_MAX: usize = 256;

/// A gradient check being set up; [`GradCheck::run`] performs it.
pub struct GradCheck {
    y: Expr,
    wrt: Vec<Expr>,
    at: Vec<Tensor>,
    feeds: Vec<(Expr, Tensor)>,
    tol: Option<(f64, f64)>,
    eps: Option<f64>,
    directions: usize,
    elementwise: bool,
    second_order: bool,
    seed: u64,
    loc: Location,
}

/// What a check measured.
#[derive(Clone, Debug)]
pub struct Report {
    /// Number of comparisons made (directions or elements).
    pub comparisons: usize,
    /// Largest `|analytic - numeric|`.
    pub max_abs_err: f64,
    /// The comparison closest to failing (or the failing one), described.
    pub worst: String,
    /// `max(|a - n| / (atol + rtol |n|))`: at most 1 when the check passes.
    pub worst_ratio: f64,
    /// `(atol, rtol)` used.
    pub tolerance: (f64, f64),
    /// The variable of the worst element compared, when elements were compared.
    pub variable: Option<String>,
    /// The index of that element.
    pub element: Option<Vec<usize>>,
    /// The analytic and numeric values of the worst comparison.
    pub values: (f64, f64),
}

impl Report {
    /// Did every comparison pass?
    pub fn passed(&self) -> bool {
        self.worst_ratio <= 1.0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} comparisons, max |analytic - numeric| = {:.3e}, tolerance {:.0e} + {:.0e}*|numeric|; worst: {}",
            self.comparisons, self.max_abs_err, self.tolerance.0, self.tolerance.1, self.worst
        )
    }
}

impl GradCheck {
    /// Check the gradient of `y` (any float expression) with respect to `wrt`: symbolic inputs
    /// and shared variables (a model's parameters), checked where they are and left as they
    /// were.
    #[track_caller]
    pub fn new(y: &Expr, wrt: &[&Expr]) -> GradCheck {
        GradCheck {
            y: y.clone(),
            wrt: wrt.iter().map(|e| (*e).clone()).collect(),
            at: Vec::new(),
            feeds: Vec::new(),
            tol: None,
            eps: None,
            directions: 2,
            elementwise: false,
            second_order: false,
            seed: 0,
            loc: Location::caller(),
        }
    }

    /// The point at which to check: one value per variable in `wrt`, or one per symbolic input
    /// among them (the shared variables are then checked at their current values).
    pub fn at(mut self, values: &[Tensor]) -> Self {
        self.at = values.to_vec();
        self
    }

    /// Values for other inputs `y` depends on (held fixed).
    pub fn feed(mut self, feeds: &[(&Expr, Tensor)]) -> Self {
        self.feeds = feeds
            .iter()
            .map(|(e, t)| ((*e).clone(), t.clone()))
            .collect();
        self
    }

    /// Override `(atol, rtol)`.
    pub fn tolerance(mut self, atol: f64, rtol: f64) -> Self {
        self.tol = Some((atol, rtol));
        self
    }

    /// Override the finite-difference step (default f64 `1e-6`, f32 `1e-3`).
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = Some(eps);
        self
    }

    /// Number of random directions (default 2).
    pub fn directions(mut self, n: usize) -> Self {
        self.directions = n.max(1);
        self
    }

    /// Perturb every element in turn instead of random directions (for small inputs).
    pub fn elementwise(mut self) -> Self {
        self.elementwise = true;
        self
    }

    /// Check second derivatives: the gradient of `sum(s * grad(y))` for a random `s`.
    pub fn second_order(mut self) -> Self {
        self.second_order = true;
        self
    }

    /// Seed of the random directions and projections (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Run the check: `Ok(report)` when it passes, `Err(Error::GradCheck)` with the report when
    /// it fails, other errors for misuse.
    pub fn run(self) -> Result<Report> {
        let report = self.measure()?;
        if report.passed() {
            Ok(report)
        } else {
            Err(Error::GradCheck(report.to_string()))
        }
    }

    /// Measure without judging: the report whether or not it passes.
    pub fn measure(self) -> Result<Report> {
        let loc = self.loc;
        let usage = |what: String| Error::Usage { what, loc };
        let y = self.y.clone().check()?;
        let dtype = y.dtype();
        if !dtype.is_float() {
            return Err(usage(format!(
                "gradcheck: {} is not a float expression",
                y.name()
            )));
        }
        let g = y.graph().clone();
        let variables = self.variables(&usage)?;
        let (atol, rtol) = self.tol.unwrap_or(if dtype == DType::F32 {
            (1e-3, 1e-2)
        } else {
            (1e-5, 1e-3)
        });
        let eps = self
            .eps
            .unwrap_or(if dtype == DType::F32 { 1e-3 } else { 1e-6 });
        let mut rng = StdRng::seed_from_u64(self.seed);
        let half = Uniform::new(0.5, 1.5).map_err(|e| usage(e.to_string()))?;

        // Reduce to a scalar cost with a fixed random projection.
        let mut cost = if y.ndim() == 0 {
            y.clone()
        } else {
            let shape = self.value_shape(&y, &variables)?;
            let r: Vec<f64> = (0..shape.iter().product::<usize>())
                .map(|_| half.sample(&mut rng))
                .collect();
            let r = g.constant(Tensor::from_f64(&shape, r, dtype)?);
            (&y * &r).sum()
        };
        let wrt_refs: Vec<&Expr> = self.wrt.iter().collect();
        if self.second_order {
            let grads = grad_with(
                &cost,
                &wrt_refs,
                GradOptions::default().allow_disconnected(),
            )?;
            let mut total: Option<Expr> = None;
            for (gi, v) in grads.iter().zip(&variables) {
                let s: Vec<f64> = (0..v.value.len()).map(|_| half.sample(&mut rng)).collect();
                let s = g.constant(Tensor::from_f64(v.value.shape(), s, dtype)?);
                let term = (gi * &s).sum();
                total = Some(match total {
                    Some(t) => &t + &term,
                    None => term,
                });
            }
            cost = total.ok_or_else(|| usage("gradcheck: no variables".into()))?;
        }
        let grads = grad_with(
            &cost,
            &wrt_refs,
            GradOptions::default().allow_disconnected(),
        )?;

        // Every variable is fed: a shared one through a stand-in input; the draws are frozen.
        let mut givens = frozen_draws(&cost, &grads, &usage)?;
        let stand_ins: Vec<Expr> = variables
            .iter()
            .map(|v| match v.shared {
                true => g.input(&v.expr.name(), v.value.dtype(), v.expr.shape().dims()),
                false => v.expr.clone(),
            })
            .collect();
        for (v, s) in variables.iter().zip(&stand_ins) {
            if v.shared {
                givens.push((v.expr.clone(), s.clone()));
            }
        }
        let inputs: Vec<&Expr> = stand_ins
            .iter()
            .chain(self.feeds.iter().map(|(e, _)| e))
            .collect();
        let fixed: Vec<Tensor> = self.feeds.iter().map(|(_, t)| t.clone()).collect();
        let mut args: Vec<Tensor> = variables.iter().map(|v| v.value.clone()).collect();
        args.extend(fixed.iter().cloned());
        // What grad holds constant (stop_gradient, samplers) is held at its value at the point
        // of the check, so that the finite differences measure the gradient grad defines.
        let stopped = stopped_nodes(&cost, &grads).map_err(|op| {
            usage(format!(
                "gradcheck: a loop's body holds {op}, which the check cannot hold at one value \
                 (it changes per step); check the body's gradient outside the loop"
            ))
        })?;
        if !stopped.is_empty() {
            let given_refs: Vec<(&Expr, &Expr)> = givens.iter().map(|(a, b)| (a, b)).collect();
            let values = function(&inputs, &stopped.iter().collect::<Vec<_>>())
                .givens(&given_refs)
                .mode(Mode::Reference)
                .compile()?
                .call(&args)?;
            for (node, value) in stopped.into_iter().zip(values) {
                givens.push((node, g.constant(value)));
            }
        }
        let given_refs: Vec<(&Expr, &Expr)> = givens.iter().map(|(a, b)| (a, b)).collect();
        let f = function(&inputs, &[&cost])
            .givens(&given_refs)
            .mode(Mode::Reference)
            .compile()?;
        let df = function(&inputs, &grads.iter().collect::<Vec<_>>())
            .givens(&given_refs)
            .mode(Mode::Reference)
            .compile()?;
        let base: Vec<Vec<f64>> = variables.iter().map(|v| v.value.to_f64_vec()).collect();
        let shapes: Vec<Vec<usize>> = variables.iter().map(|v| v.value.shape().to_vec()).collect();
        let dtypes: Vec<DType> = variables.iter().map(|v| v.value.dtype()).collect();
        let evaluate = |point: &[Vec<f64>]| -> Result<f64> {
            let mut args = Vec::with_capacity(inputs.len());
            for ((p, s), d) in point.iter().zip(&shapes).zip(&dtypes) {
                args.push(Tensor::from_f64(s, p.clone(), *d)?);
            }
            args.extend(fixed.iter().cloned());
            f.call(&args)?[0].item()
        };
        let analytic: Vec<Vec<f64>> = df.call(&args)?.iter().map(|t| t.to_f64_vec()).collect();
        let names: Vec<String> = variables.iter().map(|v| v.expr.name()).collect();

        let mut report = Report {
            comparisons: 0,
            max_abs_err: 0.0,
            worst: "none".into(),
            worst_ratio: 0.0,
            tolerance: (atol, rtol),
            variable: None,
            element: None,
            values: (0.0, 0.0),
        };
        // The finite difference at variable i, element j.
        let numeric = |i: usize, j: usize| -> Result<f64> {
            let mut plus = base.clone();
            plus[i][j] += eps;
            let mut minus = base.clone();
            minus[i][j] -= eps;
            Ok((evaluate(&plus)? - evaluate(&minus)?) / (2.0 * eps))
        };
        if self.elementwise {
            for (i, a) in analytic.iter().enumerate() {
                for (j, &a) in a.iter().enumerate() {
                    let n = numeric(i, j)?;
                    report.judge_element(a, n, &names[i], j, &shapes[i]);
                }
            }
        } else {
            for d in 0..self.directions {
                let mut u: Vec<Vec<f64>> = base
                    .iter()
                    .map(|b| b.iter().map(|_| StandardNormal.sample(&mut rng)).collect())
                    .collect();
                let norm = u
                    .iter()
                    .flatten()
                    .map(|v: &f64| v * v)
                    .sum::<f64>()
                    .sqrt()
                    .max(f64::MIN_POSITIVE);
                u.iter_mut().flatten().for_each(|v| *v /= norm);
                let step = |sign: f64| -> Vec<Vec<f64>> {
                    base.iter()
                        .zip(&u)
                        .map(|(b, u)| b.iter().zip(u).map(|(x, u)| x + sign * eps * u).collect())
                        .collect()
                };
                let n = (evaluate(&step(1.0))? - evaluate(&step(-1.0))?) / (2.0 * eps);
                let a: f64 = analytic
                    .iter()
                    .flatten()
                    .zip(u.iter().flatten())
                    .map(|(g, u)| g * u)
                    .sum();
                report.judge(a, n, &|| format!("direction {d}"));
            }
            if !report.passed() {
                // Name the element: check a few one by one.
                let direction = report.worst.clone();
                let mut located = report.clone();
                located.worst_ratio = 0.0;
                for (i, j) in elements_to_locate(&analytic, &mut rng) {
                    let n = numeric(i, j)?;
                    located.judge_element(analytic[i][j], n, &names[i], j, &shapes[i]);
                }
                report.comparisons = located.comparisons;
                report.max_abs_err = report.max_abs_err.max(located.max_abs_err);
                report.variable = located.variable;
                report.element = located.element;
                report.values = located.values;
                report.worst = format!(
                    "{direction}; of the elements then checked one by one, the worst: {}",
                    located.worst
                );
            }
        }
        Ok(report)
    }

    /// The variables with the values to check them at.
    fn variables(&self, usage: &impl Fn(String) -> Error) -> Result<Vec<Variable>> {
        let inputs = self
            .wrt
            .iter()
            .filter(|w| matches!(w.op(), Op::Input { .. }))
            .count();
        if self.at.len() != self.wrt.len() && self.at.len() != inputs {
            return Err(usage(format!(
                "gradcheck: {} variables ({inputs} symbolic inputs) but {} values",
                self.wrt.len(),
                self.at.len()
            )));
        }
        let positional = self.at.len() == self.wrt.len();
        let mut given = self.at.iter();
        let mut out = Vec::with_capacity(self.wrt.len());
        for w in &self.wrt {
            let shared = match w.op() {
                Op::Input { .. } => false,
                Op::Shared(_) => true,
                _ => {
                    return Err(usage(format!(
                        "gradcheck: {} is neither a symbolic input nor a shared variable",
                        w.name()
                    )));
                }
            };
            let value = if positional || !shared {
                given.next().cloned().expect("counted above")
            } else {
                w.get_value()?
            };
            if value.dtype() != w.dtype() || !w.shape().matches(value.shape()) {
                return Err(usage(format!(
                    "gradcheck: the value for {} is {}{}, not {}",
                    w.name(),
                    value.dtype(),
                    crate::shape::show(value.shape()),
                    w.ty()
                )));
            }
            out.push(Variable {
                expr: w.clone(),
                shared,
                value,
            });
        }
        Ok(out)
    }

    /// The shape of `y` at the point of the check (its dims known only at run time read by
    /// evaluating it).
    fn value_shape(&self, y: &Expr, variables: &[Variable]) -> Result<Vec<usize>> {
        if let Some(dims) = y.shape().to_known() {
            return Ok(dims);
        }
        let feeds: Vec<(&Expr, Tensor)> = variables
            .iter()
            .map(|v| (&v.expr, v.value.clone()))
            .chain(self.feeds.iter().map(|(e, t)| (e, t.clone())))
            .collect();
        Ok(crate::eval(&[y], &feeds)?.remove(0).shape().to_vec())
    }
}

/// A variable of the check and the value to check it at.
struct Variable {
    expr: Expr,
    /// A shared variable (fed through a stand-in input), not a symbolic input.
    shared: bool,
    value: Tensor,
}

/// Constants standing for the states of the random streams `cost` and `grads` draw from, so that
/// every evaluation of the check draws the same numbers; an error for a custom op that draws
/// its own (they cannot be frozen).
fn frozen_draws(
    cost: &Expr,
    grads: &[Expr],
    usage: &impl Fn(String) -> Error,
) -> Result<Vec<(Expr, Expr)>> {
    let graph = cost.graph().clone();
    let mut states: Vec<NodeId> = Vec::new();
    {
        let g = graph.lock();
        let mut seen = vec![false; g.nodes.len()];
        let mut stack: Vec<NodeId> = std::iter::once(cost.id())
            .chain(grads.iter().map(|e| e.id()))
            .collect();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut seen[id.index()], true) {
                continue;
            }
            let n = g.node(id);
            match &n.op {
                Op::Random { .. } if !states.contains(&n.inputs[0]) => states.push(n.inputs[0]),
                Op::Custom(c) if c.op().is_random() => {
                    return Err(usage(format!(
                        "gradcheck: the custom op {} draws its own random numbers, which the \
                         check cannot freeze; draw them with a RandomStream and pass them in",
                        c.op().name()
                    )));
                }
                // A loop's body draws from streams it captures: freeze them too.
                Op::Loop { body, .. } => stack.extend(body.body().roots()),
                _ => {}
            }
            stack.extend(n.inputs.iter().copied());
        }
    }
    states
        .into_iter()
        .map(|id| {
            let state = graph.expr(id);
            let now = state.get_value()?;
            Ok((state, graph.constant(now)))
        })
        .collect()
}

/// The nodes `cost` and `grads` read that `grad` treats as constants: `stop_gradient` and the
/// custom ops that stop gradients (samplers); `Err` with the op's name for one inside a loop's
/// body.
fn stopped_nodes(cost: &Expr, grads: &[Expr]) -> std::result::Result<Vec<Expr>, String> {
    let graph = cost.graph().clone();
    let g = graph.lock();
    let mut seen = vec![false; g.nodes.len()];
    let mut stack: Vec<(NodeId, bool)> = std::iter::once(cost.id())
        .chain(grads.iter().map(|e| e.id()))
        .map(|id| (id, false))
        .collect();
    let mut out = Vec::new();
    while let Some((id, in_body)) = stack.pop() {
        if std::mem::replace(&mut seen[id.index()], true) {
            continue;
        }
        let n = g.node(id);
        let stops = match &n.op {
            Op::StopGradient => true,
            Op::Custom(c) => c.op().stops_gradient(),
            _ => false,
        };
        if stops && in_body {
            return Err(format!("{} (built at {})", n.op.name(), n.loc));
        } else if stops {
            out.push(id);
        } else {
            stack.extend(n.inputs.iter().map(|&p| (p, in_body)));
            if let Op::Loop { body, .. } = &n.op {
                stack.extend(body.body().roots().into_iter().map(|r| (r, true)));
            }
        }
    }
    drop(g);
    out.sort_unstable();
    Ok(out.into_iter().map(|id| graph.expr(id)).collect())
}

/// The elements a failed directional check compares one by one: all, for variables this small,
/// else those with the largest gradients and as many chosen at random.
fn elements_to_locate(analytic: &[Vec<f64>], rng: &mut StdRng) -> Vec<(usize, usize)> {
    let all: Vec<(usize, usize)> = analytic
        .iter()
        .enumerate()
        .flat_map(|(i, a)| (0..a.len()).map(move |j| (i, j)))
        .collect();
    if all.len() <= LOCATE_MAX {
        return all;
    }
    let mut by_size = all.clone();
    by_size.sort_by(|&(i, j), &(k, l)| analytic[k][l].abs().total_cmp(&analytic[i][j].abs()));
    let mut chosen: Vec<(usize, usize)> = by_size[..LOCATE_MAX / 2].to_vec();
    let pick = Uniform::new(0, all.len()).expect("a non-empty range");
    while chosen.len() < LOCATE_MAX {
        let e = all[pick.sample(rng)];
        if !chosen.contains(&e) {
            chosen.push(e);
        }
    }
    chosen
}

impl Report {
    /// Record one comparison of `analytic` with `numeric`, described by `what`.
    fn judge(&mut self, analytic: f64, numeric: f64, what: &dyn Fn() -> String) {
        let (atol, rtol) = self.tolerance;
        let err = (analytic - numeric).abs();
        let ratio = if err.is_nan() {
            f64::INFINITY
        } else {
            err / (atol + rtol * numeric.abs())
        };
        self.comparisons += 1;
        // f64::max drops a NaN; the report must show it, not the largest finite error.
        if err.is_nan() || err > self.max_abs_err {
            self.max_abs_err = err;
        }
        if ratio > self.worst_ratio || self.comparisons == 1 {
            self.worst_ratio = ratio;
            self.values = (analytic, numeric);
            self.worst = format!(
                "{}: analytic {analytic:.6e}, numeric {numeric:.6e}, |diff| {err:.3e}",
                what()
            );
        }
    }

    /// [`Report::judge`] of element `j` of variable `name` of `shape`.
    fn judge_element(&mut self, a: f64, n: f64, name: &str, j: usize, shape: &[usize]) {
        let before = self.worst_ratio;
        let first = self.comparisons == 0;
        self.judge(a, n, &|| {
            format!("{name} element {:?} (flat {j})", unravel(j, shape))
        });
        if first || self.worst_ratio > before {
            self.variable = Some(name.to_string());
            self.element = Some(unravel(j, shape));
        }
    }
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[k] = flat % n;
            flat /= n;
        }
    }
    idx
}
