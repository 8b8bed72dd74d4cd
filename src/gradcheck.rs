//! The gradient checker: compares `grad`'s symbolic gradients with central finite differences.
//!
//! Two modes:
//! * **directions** (default): along `n` random unit directions `u` (over all variables jointly),
//!   `(c(x + εu) - c(x - εu)) / 2ε` against `<grad c, u>`: O(1) evaluations per direction, as
//!   PyTorch's fast gradcheck and JAX's `check_grads` do;
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
use crate::graph::Expr;
use crate::graph::op::Op;
use crate::tensor::Tensor;
use crate::{Mode, function};

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
    /// Check the gradient of `y` (any float expression) with respect to the symbolic inputs
    /// `wrt`.
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

    /// The point at which to check: one value per variable in `wrt`.
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
        if self.at.len() != self.wrt.len() {
            return Err(usage(format!(
                "gradcheck: {} variables but {} values",
                self.wrt.len(),
                self.at.len()
            )));
        }
        for w in &self.wrt {
            if !matches!(w.op(), Op::Input { .. }) {
                return Err(usage(format!(
                    "gradcheck: {} is not a symbolic input",
                    w.name()
                )));
            }
        }
        let y = self.y.clone().check()?;
        let dtype = y.dtype();
        if !dtype.is_float() {
            return Err(usage(format!(
                "gradcheck: {} is not a float expression",
                y.name()
            )));
        }
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
        let g = y.graph().clone();

        // Reduce to a scalar cost with a fixed random projection.
        let feed_refs: Vec<(&Expr, Tensor)> = self
            .wrt
            .iter()
            .zip(&self.at)
            .map(|(w, v)| (w, v.clone()))
            .chain(self.feeds.iter().map(|(e, t)| (e, t.clone())))
            .collect();
        let mut cost = if y.ndim() == 0 {
            y.clone()
        } else {
            let value = crate::eval(&[&y], &feed_refs)?.remove(0);
            let r: Vec<f64> = (0..value.len()).map(|_| half.sample(&mut rng)).collect();
            let r = g.constant(Tensor::from_f64(value.shape(), r, dtype)?);
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
            for (gi, v) in grads.iter().zip(&self.at) {
                let s: Vec<f64> = (0..v.len()).map(|_| half.sample(&mut rng)).collect();
                let s = g.constant(Tensor::from_f64(v.shape(), s, dtype)?);
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

        let inputs: Vec<&Expr> = self
            .wrt
            .iter()
            .chain(self.feeds.iter().map(|(e, _)| e))
            .collect();
        let f = function(&inputs, &[&cost])
            .mode(Mode::Reference)
            .compile()?;
        let df = function(&inputs, &grads.iter().collect::<Vec<_>>())
            .mode(Mode::Reference)
            .compile()?;
        let fixed: Vec<Tensor> = self.feeds.iter().map(|(_, t)| t.clone()).collect();
        let base: Vec<Vec<f64>> = self.at.iter().map(|t| t.to_f64_vec()).collect();
        let shapes: Vec<Vec<usize>> = self.at.iter().map(|t| t.shape().to_vec()).collect();
        let dtypes: Vec<DType> = self.at.iter().map(|t| t.dtype()).collect();
        let evaluate = |point: &[Vec<f64>]| -> Result<f64> {
            let mut args = Vec::with_capacity(inputs.len());
            for ((p, s), d) in point.iter().zip(&shapes).zip(&dtypes) {
                args.push(Tensor::from_f64(s, p.clone(), *d)?);
            }
            args.extend(fixed.iter().cloned());
            f.call(&args)?[0].item()
        };
        let mut args = self.at.clone();
        args.extend(fixed.iter().cloned());
        let analytic: Vec<Vec<f64>> = df.call(&args)?.iter().map(|t| t.to_f64_vec()).collect();

        let mut report = Report {
            comparisons: 0,
            max_abs_err: 0.0,
            worst: "none".into(),
            worst_ratio: 0.0,
            tolerance: (atol, rtol),
        };
        let mut judge = |a: f64, n: f64, what: &dyn Fn() -> String| {
            let err = (a - n).abs();
            let ratio = if err.is_nan() {
                f64::INFINITY
            } else {
                err / (atol + rtol * n.abs())
            };
            report.comparisons += 1;
            // f64::max drops a NaN; the report must show it, not the largest finite error.
            if err.is_nan() || err > report.max_abs_err {
                report.max_abs_err = err;
            }
            if ratio > report.worst_ratio || report.comparisons == 1 {
                report.worst_ratio = ratio;
                report.worst = format!(
                    "{}: analytic {a:.6e}, numeric {n:.6e}, |diff| {err:.3e}",
                    what()
                );
            }
        };
        if self.elementwise {
            for (i, b) in base.iter().enumerate() {
                for j in 0..b.len() {
                    let mut plus = base.clone();
                    plus[i][j] += eps;
                    let mut minus = base.clone();
                    minus[i][j] -= eps;
                    let n = (evaluate(&plus)? - evaluate(&minus)?) / (2.0 * eps);
                    let name = self.wrt[i].name();
                    judge(analytic[i][j], n, &|| {
                        format!("{name} element {:?} (flat {j})", unravel(j, &shapes[i]))
                    });
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
                judge(a, n, &|| format!("direction {d}"));
            }
        }
        Ok(report)
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
