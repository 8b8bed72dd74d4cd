//! The contrastive-divergence trainer, open to any energy model with a free energy and two
//! conditional samplers: the library's RBMs ([`Rbm`](super::Rbm),
//! [`GbRbm`](super::gbrbm::GbRbm), the linear-hidden top of a [`Dbn`](super::dbn::Dbn), the
//! [`CenteredRbm`](super::CenteredRbm), which moves its offsets in each step) and a
//! user's own variant (`examples/rbm_bipolar.rs`) train by the same CD-k and PCD-k,
//! with momentum, weight decay on the weights, an optional learning-rate schedule, persistent
//! chains that can be read and reset, and the model's monitor as the step's output.
//!
//! A model implements [`EnergyModel`]; [`Cd`] builds and compiles its training step:
//!
//! ```
//! use gradus::models::cd::Cd;
//! use gradus::models::{CdConfig, Rbm};
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let rbm = Rbm::new(&g, 6, 4, 1)?;
//! let cfg = CdConfig { persistent: true, chains: Some(7), ..CdConfig::default() };
//! let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, 2)).compile()?;
//! let x: Tensor = ndarray::Array2::<f32>::zeros((3, 6)).into();
//! trainer.step().call(&[x])?;
//! let chains = trainer.chains().expect("PCD keeps chains");
//! assert_eq!(chains.value()?.shape(), &[7, 4]);
//! chains.reset()?;
//! # Ok::<(), gradus::Error>(())
//! ```

use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, FunctionBuilder, function};
use crate::grad::grad;
use crate::graph::loops::{Scan, StepResult};
use crate::graph::{Expr, Graph};
use crate::models::{CdConfig, squared_error, unroll};
use crate::optim::{Optimizer, as_pairs};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// The shared parameters `[W, vbias, hbias]` of a new RBM of float `dtype` in `graph`: weights
/// drawn in `f32` from N(0, 0.01²) by a generator seeded with `seed` (so models of either dtype
/// start from the same values), biases zero (Hinton's guide, §8).
#[track_caller]
pub(crate) fn new_params(
    graph: &Graph,
    n_visible: usize,
    n_hidden: usize,
    dtype: DType,
    seed: u64,
) -> Result<[Expr; 3]> {
    if !dtype.is_float() {
        return Err(Error::Usage {
            what: format!("an RBM's parameters must be f32 or f64, not {dtype}"),
            loc: Location::caller(),
        });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.01).map_err(|e| Error::Data {
        path: "<init>".into(),
        reason: e.to_string(),
    })?;
    let w = Array2::from_shape_fn((n_visible, n_hidden), |_| normal.sample(&mut rng));
    Ok([
        graph.shared("W", Tensor::from(w).cast(dtype)),
        graph.shared("vbias", Tensor::full(&[n_visible], 0.0, dtype)),
        graph.shared("hbias", Tensor::full(&[n_hidden], 0.0, dtype)),
    ])
}

/// What CD-k and PCD-k need of a model: its units, its parameters, its free energy
/// `F(v) = -log Σ_h exp(-E(v, h))` and the two conditionals of its Gibbs chain.
///
/// The samplers default to binary units (`bernoulli` of the means), so a variant with other
/// units overrides only the side that differs. The CD update is the gradient of
/// `mean F(v⁰) - mean F(stop_gradient(vᵏ))`, so every parameter must reach the free energy.
pub trait EnergyModel {
    /// Visible and hidden units.
    fn units(&self) -> (usize, usize);
    /// The parameters trained with weight decay (the weight matrices), all of one float dtype
    /// and graph, the first of which sets the dtype and graph of the step.
    fn weights(&self) -> Vec<&Expr>;
    /// The parameters trained without weight decay (the biases).
    fn biases(&self) -> Vec<&Expr>;
    /// Free energy of each row of `v`.
    fn free_energy(&self, v: &Expr) -> Expr;
    /// `E[h | v]`: what reconstructions (the default monitor) and the default sampler use; the
    /// update itself comes from the free energy.
    fn hidden_mean(&self, v: &Expr) -> Expr;
    /// `E[v | h]`: the visible means of a reconstruction.
    fn visible_mean(&self, h: &Expr) -> Expr;
    /// A sample of `p(h | v)`; binary by default.
    fn sample_hidden(&self, v: &Expr, rng: &RandomStream) -> Expr {
        rng.bernoulli(&self.hidden_mean(v))
    }
    /// A sample of `p(v | h)`; binary by default.
    fn sample_visible(&self, h: &Expr, rng: &RandomStream) -> Expr {
        rng.bernoulli(&self.visible_mean(h))
    }
    /// Mean squared reconstruction error per example, `|v - E[v | E[h | v]]|²`.
    fn reconstruction_error(&self, v: &Expr) -> Expr {
        squared_error(v, &self.visible_mean(&self.hidden_mean(v)))
    }
    /// What the training step outputs for the minibatch `x`: the reconstruction error by
    /// default. `h0` is the hidden sample of `x` that CD's chain starts from (`None` under
    /// PCD), which a model may reuse to save a product.
    fn monitor(&self, x: &Expr, h0: Option<&Expr>) -> Expr {
        let _ = h0;
        self.reconstruction_error(x)
    }
    /// Change the step's `updates` (pairs of a shared variable and its new value: the
    /// parameters and their velocities) before it compiles, given the minibatch `x` and the
    /// negative sample `v_neg`: a model with state outside its parameters moves it here, as
    /// the [`CenteredRbm`](super::CenteredRbm) moves its offsets and reparametrizes its biases.
    /// Nothing by default. The new values are computed from the old ones, all at once.
    ///
    /// # Errors
    ///
    /// The model's own, which fail building the step.
    fn amend_updates(&self, x: &Expr, v_neg: &Expr, updates: &mut Vec<(Expr, Expr)>) -> Result<()> {
        let _ = (x, v_neg, updates);
        Ok(())
    }
}

/// The persistent chains of a PCD trainer: `[chains, n_hidden]` hidden states held in a shared
/// variable, advanced `k` Gibbs steps by every call and started at zero.
#[derive(Clone, Debug)]
pub struct Chains {
    state: Expr,
    shape: [usize; 2],
}

impl Chains {
    /// Number of chains.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether there are no chains (never, for a built trainer).
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// The hidden states now, `[chains, n_hidden]` in the model's dtype.
    pub fn value(&self) -> Result<Tensor> {
        self.state.get_value()
    }

    /// Replace the hidden states, e.g. with hidden samples of data (`[chains, n_hidden]`; an
    /// `f32` or `f64` tensor is cast to the model's dtype).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `h` is not `[chains, n_hidden]` or not a float tensor.
    #[track_caller]
    pub fn set(&self, h: impl Into<Tensor>) -> Result<()> {
        let h = h.into();
        if h.shape() != self.shape || !h.dtype().is_float() {
            return Err(Error::Usage {
                what: format!(
                    "persistent chains are {:?} float hidden states, got {:?} of {}",
                    self.shape,
                    h.shape(),
                    h.dtype()
                ),
                loc: Location::caller(),
            });
        }
        self.state.set_value(h.cast(self.state.dtype()))
    }

    /// Restart every chain at the all-zero hidden state, where training starts them.
    pub fn reset(&self) -> Result<()> {
        self.state
            .set_value(Tensor::full(&self.shape, 0.0, self.state.dtype()))
    }

    /// The shared variable holding the states.
    pub fn shared(&self) -> &Expr {
        &self.state
    }
}

/// A compiled CD step and, under PCD, its chains.
pub struct CdTrainer {
    step: Function,
    chains: Option<Chains>,
    batch: usize,
    dtype: DType,
    steps_per_call: bool,
}

impl CdTrainer {
    /// The step: input a minibatch `x [batch, n_visible]` in the model's dtype (and `k`, an
    /// `i64` scalar, with [`Cd::steps_per_call`]); output the model's
    /// [`monitor`](EnergyModel::monitor); update the parameters, their velocities and the
    /// chains.
    pub fn step(&self) -> &Function {
        &self.step
    }

    /// The persistent chains, under PCD.
    pub fn chains(&self) -> Option<&Chains> {
        self.chains.as_ref()
    }

    /// The step alone.
    pub fn into_step(self) -> Function {
        self.step
    }

    /// One pass over the rows of `data` in minibatches of `cfg.batch` rows, in an order
    /// shuffled by `order`; after each minibatch `report` sees `(minibatches done,
    /// minibatches, running mean of the monitor)`, enough to drive a progress bar. Returns the
    /// epoch's mean monitor.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a trainer built with [`Cd::steps_per_call`] (call its step with
    /// `k`) or rows of the wrong width; the step's errors otherwise.
    #[track_caller]
    pub fn epoch(
        &self,
        data: &Array2<f32>,
        order: &mut impl Rng,
        mut report: impl FnMut(usize, usize, f64),
    ) -> Result<f64> {
        if self.steps_per_call {
            return Err(Error::Usage {
                what: "CdTrainer::epoch runs a fixed k; a trainer with steps per call takes \
                       k at each call of its step"
                    .into(),
                loc: Location::caller(),
            });
        }
        let mut rows: Vec<usize> = (0..data.nrows()).collect();
        rows.shuffle(order);
        let batches: Vec<&[usize]> = rows.chunks(self.batch.max(1)).collect();
        let mut total = 0.0;
        for (i, idx) in batches.iter().enumerate() {
            let x = Tensor::from(data.select(Axis(0), idx)).cast(self.dtype);
            total += self.step.call(&[x])?[0].item()?;
            report(i + 1, batches.len(), total / (i + 1) as f64);
        }
        Ok(total / batches.len().max(1) as f64)
    }
}

/// Builds the CD-k (PCD-k with `cfg.persistent`) training step of an [`EnergyModel`].
pub struct Cd<'a, M: EnergyModel + ?Sized> {
    model: &'a M,
    cfg: &'a CdConfig,
    rng: &'a RandomStream,
    lr: Option<&'a Expr>,
    steps_per_call: bool,
}

impl<'a, M: EnergyModel + ?Sized> Cd<'a, M> {
    /// The step of `model` under `cfg`, sampling from `rng`.
    pub fn new(model: &'a M, cfg: &'a CdConfig, rng: &'a RandomStream) -> Self {
        Cd {
            model,
            cfg,
            rng,
            lr: None,
            steps_per_call: false,
        }
    }

    /// Read the learning rate from the scalar `lr` (a shared variable of the model's dtype) at
    /// every call instead of the constant `cfg.lr`, so that a schedule can anneal it.
    pub fn learning_rate(mut self, lr: &'a Expr) -> Self {
        self.lr = Some(lr);
        self
    }

    /// Take the number of Gibbs steps as a second input, an `i64` scalar `k` (at least 1;
    /// `cfg.k` is not read), run by one loop ([`Scan::counted`]) so that the step compiles in
    /// the same time whatever k and k can change between calls.
    pub fn steps_per_call(mut self) -> Self {
        self.steps_per_call = true;
        self
    }

    /// The step before compiling, to set options such as [`FunctionBuilder::profile`], and
    /// the chains.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a model without weights, `cfg.k == 0` (unless the steps come per
    /// call) or zero chains; the errors of `grad` and the optimizer otherwise.
    #[track_caller]
    pub fn builder(self) -> Result<(FunctionBuilder, Option<Chains>)> {
        let loc = Location::caller();
        let usage = |what: String| Error::Usage { what, loc };
        let (model, cfg, rng) = (self.model, self.cfg, self.rng);
        let weights = model.weights();
        let Some(first) = weights.first() else {
            return Err(usage("a CD trainer needs a model with weights".into()));
        };
        if cfg.k == 0 && !self.steps_per_call {
            return Err(usage("CD-k needs k >= 1 Gibbs steps, got k = 0".into()));
        }
        let n_chains = cfg.chains.unwrap_or(cfg.batch);
        if cfg.persistent && n_chains == 0 {
            return Err(usage(
                "PCD needs at least one persistent chain, got 0 (set CdConfig::chains)".into(),
            ));
        }
        let (g, dtype) = (first.graph().clone(), first.dtype());
        let (n_visible, n_hidden) = model.units();
        let x = g.input("x", dtype, &[None, Some(n_visible)]);
        let chains = cfg.persistent.then(|| Chains {
            state: g.shared("pcd_chain", Tensor::full(&[n_chains, n_hidden], 0.0, dtype)),
            shape: [n_chains, n_hidden],
        });
        let h_start = match &chains {
            Some(c) => c.state.clone(),
            None => model.sample_hidden(&x, rng),
        };
        let gibbs = |h: &Expr| {
            let v = model.sample_visible(h, rng);
            let h = model.sample_hidden(&v, rng);
            (v, h)
        };
        let k = self.steps_per_call.then(|| g.scalar("k", DType::I64));
        let (v_neg, h_neg) = match &k {
            None => unroll(cfg.k, (h_start.clone(), h_start.clone()), |(_, h)| {
                gibbs(&h)
            }),
            Some(k) => {
                // The states: the visible sample (zeros until the first step) and the hidden one.
                let v0 = match &chains {
                    None => x.zeros_like(),
                    Some(_) => g.constant(Tensor::full(&[n_chains, n_visible], 0.0, dtype)),
                };
                let chain = Scan::counted(k).states(&[&v0, &h_start]).run(|s| {
                    let (v, h) = gibbs(s.state(1));
                    Ok(StepResult::new().state(&v).state(&h))
                })?;
                (chain.states[0].clone(), chain.states[1].clone())
            }
        };
        let cost = model.free_energy(&x).mean() - model.free_energy(&v_neg.stop_gradient()).mean();
        let biases = model.biases();
        let params: Vec<&Expr> = weights.iter().chain(&biases).copied().collect();
        let grads = grad(&cost, &params)?;
        let optimizer = || match self.lr {
            Some(lr) => Optimizer::momentum(cfg.lr, cfg.momentum).learning_rate(lr),
            None => Optimizer::momentum(cfg.lr, cfg.momentum),
        };
        let nw = weights.len();
        let mut updates = optimizer()
            .weight_decay(cfg.weight_decay)
            .updates(&params[..nw], &grads[..nw])?;
        updates.extend(optimizer().updates(&params[nw..], &grads[nw..])?);
        model.amend_updates(&x, &v_neg, &mut updates)?;
        if let Some(c) = &chains {
            updates.push((c.state.clone(), h_neg));
        }
        let monitor = model.monitor(&x, chains.is_none().then_some(&h_start));
        let inputs: Vec<&Expr> = [Some(&x), k.as_ref()].into_iter().flatten().collect();
        let builder = function(&inputs, &[&monitor]).updates(&as_pairs(&updates));
        Ok((builder, chains))
    }

    /// The compiled step and its chains.
    ///
    /// # Errors
    ///
    /// Those of [`Cd::builder`] and of compiling.
    #[track_caller]
    pub fn compile(self) -> Result<CdTrainer> {
        let (cfg, model, steps_per_call) = (self.cfg, self.model, self.steps_per_call);
        let (builder, chains) = self.builder()?;
        Ok(CdTrainer {
            step: builder.compile()?,
            chains,
            batch: cfg.batch,
            dtype: model.weights()[0].dtype(),
            steps_per_call,
        })
    }
}

/// `impl EnergyModel` for an RBM type with fields `w`, `vbias`, `hbias`, `n_visible`,
/// `n_hidden` and inherent `free_energy`, `hidden_probs` and the visible-mean method named
/// second; the methods in braces override the trait's defaults.
macro_rules! rbm_energy_model {
    ($model:ty, $visible_mean:ident, { $($extra:tt)* }) => {
        impl $crate::models::cd::EnergyModel for $model {
            fn units(&self) -> (usize, usize) {
                (self.n_visible, self.n_hidden)
            }
            fn weights(&self) -> Vec<&Expr> {
                vec![&self.w]
            }
            fn biases(&self) -> Vec<&Expr> {
                vec![&self.vbias, &self.hbias]
            }
            #[track_caller]
            fn free_energy(&self, v: &Expr) -> Expr {
                <$model>::free_energy(self, v)
            }
            #[track_caller]
            fn hidden_mean(&self, v: &Expr) -> Expr {
                self.hidden_probs(v)
            }
            #[track_caller]
            fn visible_mean(&self, h: &Expr) -> Expr {
                <$model>::$visible_mean(self, h)
            }
            $($extra)*
        }
    };
}
pub(crate) use rbm_energy_model;
