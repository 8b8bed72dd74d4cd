//! Sparse coding (Olshausen & Field 1996) with dictionary learning: each input row `x` is coded
//! as a sparse `z` over a dictionary `D` of unit-norm atoms by minimising
//!
//! ```text
//! E(x, z) = ½ |x - z D|² + λ |z|₁
//! ```
//!
//! Inference is ISTA or FISTA (Beck & Teboulle 2009) written as a loop of the graph ([`Scan`]):
//! a gradient step on the squared error followed by soft-thresholding, with the step size `1/L`,
//! `L = λmax(DᵀD)`, found by power iteration, a second loop of the same graph. Learning takes a
//! gradient step on `D` with the codes held constant, then scales every atom back to unit norm:
//! the projection is part of the update, so the dictionary leaves each step with unit-norm
//! atoms.
//!
//! Why a loop rather than the steps unrolled: the body is built and compiled once, so the graph
//! and the compile time stay the same at 20 steps or 500, and a tolerance turns the same body
//! into a while loop ([`ScConfig::tolerance`]). Training runs a fixed number of steps, so every
//! minibatch costs the same and every row of it gets the same number of steps.
//!
//! Why the codes are held constant (`stop_gradient`) in the dictionary's gradient: at the
//! minimising `z*`, the derivative of `min_z E` with respect to `D` is the partial derivative
//! at fixed `z*` (the envelope theorem), so backpropagating through the solver's steps would
//! cost a backward loop and change nothing at convergence.
//!
//! ```
//! use gradus::models::sparse_coding::{ScConfig, SparseCoding};
//! use gradus::prelude::*;
//! let g = Graph::new();
//! let sc = SparseCoding::new(&g, 16, 24, 7).unwrap();
//! let cfg = ScConfig { lambda: 0.05, steps: 30, ..ScConfig::default() };
//! let train = sc.trainer(&cfg).unwrap();
//! let x = Tensor::full(&[8, 16], 0.25, DType::F32);
//! let first = train.step(&x, 0.1).unwrap();
//! let later = (0..20).map(|_| train.step(&x, 0.1).unwrap()).last().unwrap();
//! assert!(later.objective < first.objective);
//! ```

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::loops::{Scan, StepResult};
use crate::graph::{Expr, Graph};
use crate::tensor::Tensor;

/// How the codes are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solver {
    /// Iterative shrinkage-thresholding: `z ← soft(z - ∇/L, λ/L)`. The objective falls at
    /// every step; the error after `k` steps is `O(1/k)`.
    Ista,
    /// ISTA with Nesterov's momentum (Beck & Teboulle's FISTA): the gradient step is taken at
    /// `z + β_k (z - z_prev)`. The error after `k` steps is `O(1/k²)`; the objective need not
    /// fall at every step.
    Fista,
}

/// Settings of inference and of dictionary learning.
#[derive(Clone, Debug)]
pub struct ScConfig {
    /// Weight `λ` of the `ℓ₁` penalty (at least 0).
    pub lambda: f64,
    /// The solver.
    pub solver: Solver,
    /// Steps of the solver, starting from `z = 0` (at most this many with a tolerance).
    pub steps: usize,
    /// Stop once no code moves by more than this in a step (a while loop); `None` runs all
    /// `steps`.
    pub tolerance: Option<f64>,
    /// Steps of the power iteration that finds `L = λmax(DᵀD)`.
    pub power_steps: usize,
}

impl Default for ScConfig {
    fn default() -> Self {
        ScConfig {
            lambda: 0.1,
            solver: Solver::Fista,
            steps: 50,
            tolerance: None,
            power_steps: 30,
        }
    }
}

impl ScConfig {
    #[track_caller]
    fn check(&self) -> Result<()> {
        let loc = Location::caller();
        let bad = |what: String| Err(Error::Usage { what, loc });
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return bad(format!(
                "sparse coding needs a finite lambda >= 0, got {}",
                self.lambda
            ));
        }
        if self.steps == 0 || self.power_steps == 0 {
            return bad(format!(
                "sparse coding needs at least one solver step and one power step, got {} and {}",
                self.steps, self.power_steps
            ));
        }
        if let Some(t) = self.tolerance
            && !(t.is_finite() && t > 0.0)
        {
            return bad(format!("a tolerance must be finite and > 0, got {t}"));
        }
        Ok(())
    }
}

/// A dictionary of `n_atoms` atoms of `dim` values each, one atom per row, held in an
/// expression: a shared variable for learning ([`SparseCoding::new`]), or anything else
/// ([`SparseCoding::from_dictionary`]). An input row `x` is reconstructed as `z D`.
#[derive(Clone, Debug)]
pub struct SparseCoding {
    /// The dictionary `D [n_atoms, dim]`.
    pub dictionary: Expr,
    /// Number of atoms (the length of a code).
    pub n_atoms: usize,
    /// Length of an input row.
    pub dim: usize,
}

/// What a call measured on its batch: each a mean over the rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScStats {
    /// `½ |x - z D|² + λ |z|₁`.
    pub objective: f64,
    /// `|x - z D|²`.
    pub squared_error: f64,
    /// The number of codes that are not exactly zero.
    pub nonzeros: f64,
}

impl ScStats {
    fn from_outputs(out: &[Tensor]) -> Result<ScStats> {
        Ok(ScStats {
            objective: out[0].item()?,
            squared_error: out[1].item()?,
            nonzeros: out[2].item()?,
        })
    }
}

/// One step of dictionary learning, compiled: codes a minibatch with the current dictionary,
/// then moves the dictionary ([`SparseCoding::trainer`]).
pub struct ScTrainer {
    step: Function,
    dtype: DType,
}

impl ScTrainer {
    /// Code `x [batch, dim]`, measure the batch (before the update), then take a gradient step
    /// of size `lr` on the dictionary and scale its atoms back to unit norm.
    pub fn step(&self, x: &Tensor, lr: f64) -> Result<ScStats> {
        let out = self
            .step
            .call(&[x.cast(self.dtype), Tensor::scalar(lr, self.dtype)])?;
        ScStats::from_outputs(&out)
    }
}

/// The objective, reconstruction error and sparsity of a batch under the current dictionary,
/// compiled ([`SparseCoding::measure`]).
pub struct ScMeasure {
    measure: Function,
    dtype: DType,
}

impl ScMeasure {
    /// Code `x [batch, dim]` and measure it.
    pub fn call(&self, x: &Tensor) -> Result<ScStats> {
        ScStats::from_outputs(&self.measure.call(&[x.cast(self.dtype)])?)
    }
}

impl SparseCoding {
    /// A new `f32` dictionary in `graph`: atoms drawn from N(0, 1) and scaled to unit norm.
    #[track_caller]
    pub fn new(graph: &Graph, dim: usize, n_atoms: usize, seed: u64) -> Result<SparseCoding> {
        SparseCoding::new_with_dtype(graph, dim, n_atoms, DType::F32, seed)
    }

    /// [`SparseCoding::new`] with a dictionary of float `dtype` (`F32` or `F64`); the atoms are
    /// the same for either dtype and seed.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when a size is zero or `dtype` is not a float type.
    #[track_caller]
    pub fn new_with_dtype(
        graph: &Graph,
        dim: usize,
        n_atoms: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<SparseCoding> {
        let loc = Location::caller();
        if dim == 0 || n_atoms == 0 || !dtype.is_float() {
            return Err(Error::Usage {
                what: format!(
                    "a dictionary needs atoms, values and a float dtype, got {n_atoms} atoms of {dim} {dtype:?} values"
                ),
                loc,
            });
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let atoms = Array2::from_shape_fn((n_atoms, dim), |_| {
            f64::from(Distribution::<f32>::sample(&StandardNormal, &mut rng))
        });
        let d = graph.shared("D", Tensor::from(unit_rows(atoms)).cast(dtype));
        SparseCoding::from_dictionary(&d)
    }

    /// Sparse coding over a given dictionary `[n_atoms, dim]` (a constant, an input, or a
    /// shared variable); the sizes come from its static shape. A dictionary that is not a
    /// shared variable can code ([`SparseCoding::encode`]) but not learn.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when the dictionary is not a float matrix of known shape.
    #[track_caller]
    pub fn from_dictionary(dictionary: &Expr) -> Result<SparseCoding> {
        let loc = Location::caller();
        match dictionary.shape().dims() {
            [Some(k), Some(d)] if dictionary.dtype().is_float() && *k > 0 && *d > 0 => {
                Ok(SparseCoding {
                    dictionary: dictionary.clone(),
                    n_atoms: *k,
                    dim: *d,
                })
            }
            _ => Err(Error::Usage {
                what: format!(
                    "a dictionary is a float [n_atoms, dim] matrix of known shape, got {}",
                    dictionary.ty()
                ),
                loc,
            }),
        }
    }

    /// Set the atoms to the rows of `rows` (`[n_atoms, dim]`, for instance patches of the data),
    /// each scaled to unit norm (a zero row becomes the first unit vector).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `rows` has the wrong shape or the dictionary is not shared.
    #[track_caller]
    pub fn set_atoms(&self, rows: &Array2<f32>) -> Result<()> {
        if rows.dim() != (self.n_atoms, self.dim) {
            return Err(Error::Usage {
                what: format!(
                    "atoms of a {}x{} dictionary, got a {}x{} matrix",
                    self.n_atoms,
                    self.dim,
                    rows.nrows(),
                    rows.ncols()
                ),
                loc: Location::caller(),
            });
        }
        let rows = unit_rows(rows.mapv(f64::from));
        self.dictionary
            .set_value(Tensor::from(rows).cast(self.dictionary.dtype()))
    }

    /// The atoms, one per row, as `f32`.
    pub fn atoms(&self) -> Result<Array2<f32>> {
        let t = self.dictionary.get_value()?.cast(DType::F32);
        let a = t.as_f32().cloned().ok_or_else(|| Error::Usage {
            what: "the dictionary is not f32 after a cast".into(),
            loc: Location::caller(),
        })?;
        a.into_dimensionality().map_err(|e| Error::Usage {
            what: format!("the dictionary is not a matrix: {e}"),
            loc: Location::caller(),
        })
    }

    /// `L = λmax(DᵀD)`, the Lipschitz constant of the squared error's gradient in `z`, by
    /// `power_steps` steps of power iteration in the graph. The Rayleigh quotient
    /// `|D v|² / |v|²` it returns approaches `L` from below, its error the square of the
    /// direction's.
    #[track_caller]
    pub fn lipschitz(&self, power_steps: usize) -> Result<Expr> {
        let d = &self.dictionary;
        let g = d.graph();
        // A start with no symmetry, so it is not orthogonal to the top eigenvector by accident.
        let v0 = Array1::from_shape_fn(self.dim, |i| 1.0 + 0.5 * ((i as f64) * 0.7).sin());
        let v0 = g.constant(Tensor::from(v0).cast(d.dtype()));
        let gram = d.t().matmul(d);
        let looped = Scan::times(power_steps)
            .at(Location::caller())
            .states(&[&v0])
            .run(|s| {
                let w = gram.dot(s.state(0));
                let norm = w.square().sum().sqrt();
                Ok(StepResult::new().state(&(&w / &norm)))
            })?;
        let v = &looped.states[0];
        Ok(d.dot(v).square().sum() / v.square().sum())
    }

    /// The codes `[batch, n_atoms]` of `x [batch, dim]` by `cfg.solver`, from `z = 0`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a bad `cfg`; the shape or dtype error of `x` that does not fit the
    /// dictionary.
    #[track_caller]
    pub fn encode(&self, x: &Expr, cfg: &ScConfig) -> Result<Expr> {
        cfg.check()?;
        let loc = Location::caller();
        let d = &self.dictionary;
        let c = x.matmul(&d.t()).check()?; // xDᵀ: the gradient of ½|x - zD|² is zDDᵀ - xDᵀ
        let gram = d.matmul(&d.t());
        let eta = 1.0 / self.lipschitz(cfg.power_steps)?;
        let threshold = &eta * cfg.lambda;
        let soft = |v: &Expr| (v - &threshold).relu() - (-v - &threshold).relu();
        let step = |y: &Expr| soft(&(y - &((y.matmul(&gram) - &c) * &eta)));
        let z0 = c.zeros_like();
        let scan = match cfg.tolerance {
            Some(_) => Scan::until(cfg.steps),
            None => Scan::times(cfg.steps),
        }
        .at(loc);
        // The while loop's condition: no code moved by more than the tolerance.
        let done = |r: StepResult, next: &Expr, z: &Expr| match cfg.tolerance {
            Some(tol) => r.until(&(next - z).abs().max().lt(tol)),
            None => r,
        };
        let looped = match cfg.solver {
            Solver::Ista => scan.states(&[&z0]).run(|s| {
                let z = s.state(0);
                let next = step(z);
                Ok(done(StepResult::new().state(&next), &next, z))
            })?,
            Solver::Fista => {
                // States: the last iterate z, the point y of the next gradient step, and t
                // (t_1 = 1, t_{k+1} = (1 + √(1 + 4t_k²)) / 2), which sets the momentum
                // β_k = (t_k - 1) / t_{k+1}.
                let t0 = d.graph().scalar_constant(1.0, d.dtype());
                scan.states(&[&z0, &z0, &t0]).run(|s| {
                    let (z, y, t) = (s.state(0), s.state(1), s.state(2));
                    let next = step(y);
                    let t_next = ((t.square() * 4.0 + 1.0).sqrt() + 1.0) * 0.5;
                    let beta = (t - 1.0) / &t_next;
                    let y_next = &next + &((&next - z) * &beta);
                    let r = StepResult::new().state(&next).state(&y_next).state(&t_next);
                    Ok(done(r, &next, z))
                })?
            }
        };
        Ok(looped.states[0].clone())
    }

    /// `z D`: the reconstruction of codes `z [batch, n_atoms]`.
    #[track_caller]
    pub fn reconstruct(&self, z: &Expr) -> Expr {
        z.matmul(&self.dictionary)
    }

    /// `½ |x - z D|² + λ |z|₁`, averaged over the rows.
    #[track_caller]
    pub fn objective(&self, x: &Expr, z: &Expr, lambda: f64) -> Expr {
        let half_error = (x - &self.reconstruct(z)).square().sum_axes(&[1], false) * 0.5;
        (half_error + z.abs().sum_axes(&[1], false) * lambda).mean()
    }

    fn stats(&self, x: &Expr, z: &Expr, lambda: f64) -> [Expr; 3] {
        let error = (x - &self.reconstruct(z))
            .square()
            .sum_axes(&[1], false)
            .mean();
        let nonzeros = z.abs().gt(0.0).cast(z.dtype()).sum_axes(&[1], false).mean();
        [self.objective(x, z, lambda), error, nonzeros]
    }

    /// The compiled step of dictionary learning: code a minibatch by `cfg`, then
    /// `D ← normalize_rows(D - lr ∂E/∂D)` with the codes held constant.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a bad `cfg` or a dictionary that is not a shared variable.
    #[track_caller]
    pub fn trainer(&self, cfg: &ScConfig) -> Result<ScTrainer> {
        let loc = Location::caller();
        let d = &self.dictionary;
        if d.get_value().is_err() {
            return Err(Error::Usage {
                what: format!(
                    "dictionary learning updates a shared variable; {} is not one",
                    d.name()
                ),
                loc,
            });
        }
        let g = d.graph();
        let x = g.input("x", d.dtype(), &[None, Some(self.dim)]);
        let lr = g.scalar("lr", d.dtype());
        let z = self.encode(&x, cfg)?.stop_gradient();
        let [objective, error, nonzeros] = self.stats(&x, &z, cfg.lambda);
        let gd = grad(&objective, &[d])?.remove(0);
        let moved = d - &(gd * &lr);
        // The projection onto unit-norm atoms, part of the update.
        let norms = moved.square().sum_axes(&[1], true).sqrt();
        let projected = &moved / &norms.maximum(1e-12);
        let step = function(&[&x, &lr], &[&objective, &error, &nonzeros])
            .updates(&[(d, &projected)])
            .compile()?;
        Ok(ScTrainer {
            step,
            dtype: d.dtype(),
        })
    }

    /// The compiled measurement of a batch by `cfg`: its objective, reconstruction error and
    /// mean number of non-zero codes.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a bad `cfg`.
    #[track_caller]
    pub fn measure(&self, cfg: &ScConfig) -> Result<ScMeasure> {
        let d = &self.dictionary;
        let x = d.graph().input("x", d.dtype(), &[None, Some(self.dim)]);
        let z = self.encode(&x, cfg)?;
        let [objective, error, nonzeros] = self.stats(&x, &z, cfg.lambda);
        let measure = function(&[&x], &[&objective, &error, &nonzeros]).compile()?;
        Ok(ScMeasure {
            measure,
            dtype: d.dtype(),
        })
    }
}

/// Each row of `a` scaled to unit norm; a zero row becomes the first unit vector.
fn unit_rows(mut a: Array2<f64>) -> Array2<f64> {
    for mut row in a.axis_iter_mut(Axis(0)) {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        } else {
            row[0] = 1.0;
        }
    }
    a
}
