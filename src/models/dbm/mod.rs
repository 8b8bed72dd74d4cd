//! Deep Boltzmann machines with two hidden layers (Salakhutdinov & Hinton, AISTATS 2009).
//!
//! The energy of visible units `v` and hidden layers `h1`, `h2` (all binary) is
//!
//! ```text
//! E(v, h1, h2) = -b·v - c1·h1 - c2·h2 - vᵀ W1 h1 - h1ᵀ W2 h2
//! ```
//!
//! Unlike a DBN, every connection is undirected, so `h1` hears both `v` and `h2`:
//! `p(h1 | v, h2) = σ(v W1 + h2 W2ᵀ + c1)`, and the posterior over the hidden layers is no longer
//! factorial. Learning follows the paper:
//!
//! * **greedy pretraining** ([`Dbm::pretrain`]) of two RBMs by the library's CD trainer, with
//!   the doubled-input trick: the bottom RBM sees its visible input twice (`p(h1 | v) =
//!   σ(2 v W1 + c1)`), the top RBM has its hidden layer doubled (`p(h1 | h2) = σ(2 h2 W2ᵀ + b)`).
//!   Composed into the DBM, `h1` gets both inputs, so each half of the doubled input is dropped:
//!   the RBMs' weights are the DBM's, the two biases of `h1` are averaged;
//! * **joint training** ([`Dbm::trainer`]): the data-dependent statistics come from a mean-field
//!   posterior `q(h1) q(h2)` (the fixed point of `μ1 = σ(v W1 + μ2 W2ᵀ + c1)`,
//!   `μ2 = σ(μ1 W2 + c2)`, started by a bottom-up pass with doubled `W1`), the model's
//!   statistics from persistent Gibbs chains (stochastic approximation, as PCD). The update is
//!   the gradient of `mean E(v, μ1, μ2) - mean E(chain states)`, every state held constant, so
//!   `grad` derives it;
//! * **evaluation** ([`DbmParams`]): with `h1` summed out analytically the DBM is an RBM between
//!   `h1` and `[v, h2]`, so `log Z` comes from the RBM tools of [`rbm_eval`](super::rbm_eval)
//!   (AIS, or enumeration for small models), and each digit gets the mean-field variational lower
//!   bound `log p(v) >= -E_q[E(v, h)] + H(q) - log Z`;
//! * **discriminative fine-tuning** ([`Dbm::classifier`]): the input is augmented with the
//!   mean-field `q(h2 | v)`, and a 2-hidden-layer sigmoid network initialised from the DBM's
//!   weights (one mean-field step, unrolled) is trained by backprop with a softmax on top.
//!
//! ```
//! use gradus::models::dbm::{Dbm, DbmConfig, DbmParams};
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let dbm = Dbm::new(&g, &[6, 4, 3], 1)?;
//! let trainer = dbm.trainer(&DbmConfig { batch: 5, chains: 10, ..DbmConfig::default() },
//!                           &RandomStream::new(&g, 2))?;
//! let x = ndarray::Array2::<f32>::from_shape_fn((20, 6), |(i, j)| ((i + j) % 2) as f32);
//! let mut order = rand::rngs::StdRng::seed_from_u64(0);
//! # use rand::SeedableRng;
//! trainer.epoch(&x, &mut order, |_, _, _| {})?;
//! let p = DbmParams::of(&dbm)?;
//! let log_z = p.exact_log_partition()?; // 2^4 states of h1 enumerated
//! let bound = p.variational_bound(&x.mapv(f64::from), 30, log_z)?;
//! assert!(bound.iter().all(|&b| b < 0.0));
//! # Ok::<(), gradus::Error>(())
//! ```

mod eval;
mod pretrain;

pub use eval::DbmParams;

use ndarray::{Array1, Array2, Axis, concatenate};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::{Expr, Graph};
use crate::models::dbn::{Classifier, Dbn, TopUnits, to_array2};
use crate::models::{Rbm, squared_error, unroll};
use crate::optim::{Optimizer, as_pairs};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// A two-hidden-layer binary deep Boltzmann machine with `f32` parameters in shared variables.
#[derive(Clone, Debug)]
pub struct Dbm {
    /// Visible-to-first-hidden weights `[n_visible, n_h1]`.
    pub w1: Expr,
    /// First-to-second-hidden weights `[n_h1, n_h2]`.
    pub w2: Expr,
    /// Visible biases `b`.
    pub vbias: Expr,
    /// First hidden layer's biases `c1`.
    pub h1bias: Expr,
    /// Second hidden layer's biases `c2`.
    pub h2bias: Expr,
    sizes: [usize; 3],
}

/// Settings of joint DBM training ([`Dbm::trainer`]). The defaults are those of
/// `examples/dbm.rs`.
#[derive(Clone, Debug)]
pub struct DbmConfig {
    /// Mean-field updates of the positive phase (each updates `μ1` then `μ2`).
    pub mean_field_steps: usize,
    /// Gibbs sweeps of the persistent chains per update (each samples `v` and `h2` given `h1`,
    /// then `h1` given both).
    pub gibbs_steps: usize,
    /// Number of persistent chains (fantasy particles).
    pub chains: usize,
    /// Learning rate at the start; the compiled step reads it from a shared scalar
    /// ([`DbmTrainer::learning_rate`]), so a schedule can lower it.
    pub lr: f64,
    /// Momentum of the parameter velocities.
    pub momentum: f64,
    /// L2 weight decay on `W1` and `W2`.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch: usize,
}

impl Default for DbmConfig {
    fn default() -> Self {
        DbmConfig {
            mean_field_steps: 10,
            gibbs_steps: 1,
            chains: 100,
            lr: 0.01,
            momentum: 0.5,
            weight_decay: 2e-4,
            batch: 100,
        }
    }
}

/// A compiled DBM update and its persistent chains.
pub struct DbmTrainer {
    step: Function,
    chains: Expr,
    lr: Expr,
    batch: usize,
}

#[track_caller]
fn usage(what: String) -> Error {
    Error::Usage {
        what,
        loc: Location::caller(),
    }
}

/// `Σ_j a_ij b_ij` for each row `i`.
#[track_caller]
fn row_dot(a: &Expr, b: &Expr) -> Expr {
    (a * b).sum_axes(&[1], false)
}

impl Dbm {
    /// A DBM with layer sizes `sizes = [n_visible, n_h1, n_h2]`: weights drawn from N(0, 0.01²)
    /// with `seed` (the practical guide's start), biases zero.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] unless `sizes` holds three non-zero sizes.
    #[track_caller]
    pub fn new(graph: &Graph, sizes: &[usize], seed: u64) -> Result<Dbm> {
        let &[nv, n1, n2] = sizes else {
            return Err(usage(format!(
                "a DBM has a visible and two hidden layers, got sizes {sizes:?}"
            )));
        };
        if sizes.contains(&0) {
            return Err(usage(format!("a DBM's layers cannot be empty: {sizes:?}")));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.01).map_err(|e| usage(e.to_string()))?;
        let mut draw =
            |r: usize, c: usize| Array2::from_shape_fn((r, c), |_| normal.sample(&mut rng));
        Ok(Dbm {
            w1: graph.shared("dbm_W1", draw(nv, n1)),
            w2: graph.shared("dbm_W2", draw(n1, n2)),
            vbias: graph.shared("dbm_vbias", Array1::<f32>::zeros(nv)),
            h1bias: graph.shared("dbm_h1bias", Array1::<f32>::zeros(n1)),
            h2bias: graph.shared("dbm_h2bias", Array1::<f32>::zeros(n2)),
            sizes: [nv, n1, n2],
        })
    }

    /// `[n_visible, n_h1, n_h2]`.
    pub fn sizes(&self) -> [usize; 3] {
        self.sizes
    }

    /// The graph holding the parameters.
    pub fn graph(&self) -> &Graph {
        self.w1.graph()
    }

    /// The parameters `[W1, W2, b, c1, c2]`.
    pub fn params(&self) -> [&Expr; 5] {
        [&self.w1, &self.w2, &self.vbias, &self.h1bias, &self.h2bias]
    }

    /// `E(v, h1, h2)` of each row; the states may be probabilities (then it is the expected
    /// energy under a factorial distribution with those means).
    #[track_caller]
    pub fn energy(&self, v: &Expr, h1: &Expr, h2: &Expr) -> Expr {
        let linear = v.dot(&self.vbias) + h1.dot(&self.h1bias) + h2.dot(&self.h2bias);
        -(linear + row_dot(&v.matmul(&self.w1), h1) + row_dot(&h1.matmul(&self.w2), h2))
    }

    /// `p(h1 = 1 | v, h2) = σ(v W1 + h2 W2ᵀ + c1)`.
    #[track_caller]
    pub fn h1_probs(&self, v: &Expr, h2: &Expr) -> Expr {
        (v.matmul(&self.w1) + h2.matmul(&self.w2.t()) + &self.h1bias).sigmoid()
    }

    /// `p(v = 1 | h1) = σ(h1 W1ᵀ + b)`.
    #[track_caller]
    pub fn visible_probs(&self, h1: &Expr) -> Expr {
        (h1.matmul(&self.w1.t()) + &self.vbias).sigmoid()
    }

    /// `p(h2 = 1 | h1) = σ(h1 W2 + c2)`.
    #[track_caller]
    pub fn h2_probs(&self, h1: &Expr) -> Expr {
        (h1.matmul(&self.w2) + &self.h2bias).sigmoid()
    }

    /// The mean-field posterior `(μ1, μ2)` of `v` after `steps` updates, started by the
    /// bottom-up pass `μ1 = σ(2 v W1 + c1)` (the top-down input replaced by a copy of the
    /// bottom-up one, as the pretrained bottom RBM learned it), `μ2 = σ(μ1 W2 + c2)`.
    #[track_caller]
    pub fn mean_field(&self, v: &Expr, steps: usize) -> (Expr, Expr) {
        let vw = v.matmul(&self.w1);
        let mu1 = (&vw * 2.0 + &self.h1bias).sigmoid();
        let mu2 = self.h2_probs(&mu1);
        unroll(steps, (mu1, mu2), |(_, mu2)| {
            let mu1 = (&vw + mu2.matmul(&self.w2.t()) + &self.h1bias).sigmoid();
            let mu2 = self.h2_probs(&mu1);
            (mu1, mu2)
        })
    }

    /// One Gibbs sweep from first-hidden states `h1`: `v` and `h2` sampled given `h1` (they are
    /// independent given it), then `h1` given both. Returns `(v, h2, p(h1 | v, h2), h1)`.
    #[track_caller]
    pub fn gibbs(&self, h1: &Expr, rng: &RandomStream) -> (Expr, Expr, Expr, Expr) {
        let v = rng.bernoulli(&self.visible_probs(h1));
        let h2 = rng.bernoulli(&self.h2_probs(h1));
        let p1 = self.h1_probs(&v, &h2);
        let h1 = rng.bernoulli(&p1);
        (v, h2, p1, h1)
    }

    fn input(&self, name: &str, width: usize) -> Expr {
        self.graph().input(name, DType::F32, &[None, Some(width)])
    }

    /// The compiled training step of joint DBM learning: input a minibatch `x [batch,
    /// n_visible]` (`f32`), output the squared error of its mean-field reconstruction
    /// `σ(μ1 W1ᵀ + b)` (a monitor), and update the parameters, their velocities and the
    /// persistent chains. The chains start at zero; [`DbmTrainer::set_chains`] starts them
    /// elsewhere (e.g. at the posteriors of training digits).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for zero chains, minibatch size, mean-field or Gibbs steps; those of
    /// `grad` and compiling otherwise.
    #[track_caller]
    pub fn trainer(&self, cfg: &DbmConfig, rng: &RandomStream) -> Result<DbmTrainer> {
        if cfg.chains == 0 || cfg.batch == 0 || cfg.gibbs_steps == 0 || cfg.mean_field_steps == 0 {
            return Err(usage(format!(
                "DBM training needs at least one chain, minibatch row, Gibbs step and \
                 mean-field step, got {cfg:?}"
            )));
        }
        let [nv, n1, _] = self.sizes;
        let g = self.graph().clone();
        let x = self.input("x", nv);
        let lr = g.shared("dbm_lr", Tensor::scalar(cfg.lr, DType::F32));
        let chains = g.shared(
            "dbm_chains",
            Tensor::full(&[cfg.chains, n1], 0.0, DType::F32),
        );
        let (mu1, mu2) = self.mean_field(&x, cfg.mean_field_steps);
        let (mu1, mu2) = (mu1.stop_gradient(), mu2.stop_gradient());
        let start = (
            chains.clone(),
            chains.clone(),
            chains.clone(),
            chains.clone(),
        );
        let (v_neg, h2_neg, p1_neg, h1_neg) =
            unroll(cfg.gibbs_steps, start, |(_, _, _, h1)| self.gibbs(&h1, rng));
        // The model's statistics use p(h1 | v, h2) of the last sweep (Rao-Blackwellised).
        let negative = self.energy(
            &v_neg.stop_gradient(),
            &p1_neg.stop_gradient(),
            &h2_neg.stop_gradient(),
        );
        let cost = self.energy(&x, &mu1, &mu2).mean() - negative.mean();
        let params = self.params();
        let grads = grad(&cost, &params)?;
        let opt = Optimizer::momentum(0.0, cfg.momentum).learning_rate(&lr);
        let mut updates = opt
            .clone()
            .weight_decay(cfg.weight_decay)
            .updates(&params[..2], &grads[..2])?;
        updates.extend(opt.updates(&params[2..], &grads[2..])?);
        updates.push((chains.clone(), h1_neg));
        let monitor = squared_error(&x, &self.visible_probs(&mu1));
        let step = function(&[&x], &[&monitor])
            .updates(&as_pairs(&updates))
            .compile()?;
        Ok(DbmTrainer {
            step,
            chains,
            lr,
            batch: cfg.batch,
        })
    }

    /// A compiled mean-field pass: `v [n, n_visible]` (`f32`) to `[μ1, μ2]` after `steps`
    /// updates.
    pub fn mean_field_fn(&self, steps: usize) -> Result<Function> {
        let v = self.input("v", self.sizes[0]);
        let (mu1, mu2) = self.mean_field(&v, steps);
        function(&[&v], &[&mu1, &mu2]).compile()
    }

    /// A compiled sampler: from first-hidden states `h1 [n, n_h1]` run `steps` Gibbs sweeps;
    /// output `[h1 after them, p(v | h1) of the last sweep]`. Feed the first back in to continue
    /// the chains.
    pub fn sampler(&self, steps: usize, rng: &RandomStream) -> Result<Function> {
        let h0 = self.input("h1", self.sizes[1]);
        let (v, h1) = unroll(steps.max(1), (h0.clone(), h0.clone()), |(_, h1)| {
            let (_, _, _, h1) = self.gibbs(&h1, rng);
            (self.visible_probs(&h1), h1)
        });
        function(&[&h0], &[&h1, &v]).compile()
    }

    /// The rows of `x` with their mean-field `q(h2 | x)` after `steps` updates appended: the
    /// input of the [`Dbm::classifier`], `[n, n_visible + n_h2]`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when the rows of `x` are not `n_visible` wide.
    #[track_caller]
    pub fn augment(&self, x: &Array2<f32>, steps: usize) -> Result<Array2<f32>> {
        if x.ncols() != self.sizes[0] {
            return Err(usage(format!(
                "Dbm::augment: rows of {} values for {} visible units",
                x.ncols(),
                self.sizes[0]
            )));
        }
        let mf = self.mean_field_fn(steps)?;
        let mu2 = to_array2(&mf.call(&[Tensor::from(x.clone())])?[1])?;
        concatenate(Axis(1), &[x.view(), mu2.view()]).map_err(|e| usage(e.to_string()))
    }

    /// A classifier for inputs from [`Dbm::augment`]: `h1 = σ([v, q2] [W1; W2ᵀ] + c1)`,
    /// `h2 = σ(h1 W2 + c2)`, `softmax(h2 V + d)` (the network of the paper's fine-tuning: one
    /// mean-field step of the DBM, unrolled, with `q(h2)` held as input). Its weights start as
    /// copies of the DBM's, so fine-tuning leaves the DBM itself as it is; the new softmax
    /// weights are drawn from N(0, 0.01²) with `seed`. Train it with [`Classifier::trainer`].
    pub fn classifier(&self, n_classes: usize, seed: u64) -> Result<Classifier> {
        let g = self.graph();
        let [nv, n1, n2] = self.sizes;
        let value = |x: &Expr| -> Result<Array2<f32>> { to_array2(&x.get_value()?) };
        let (w1, w2) = (value(&self.w1)?, value(&self.w2)?);
        let first = concatenate(Axis(0), &[w1.view(), w2.t()]).map_err(|e| usage(e.to_string()))?;
        let bottom = Rbm::new(g, nv + n2, n1, seed)?;
        bottom.w.set_value(first)?;
        bottom.hbias.set_value(self.h1bias.get_value()?)?;
        let top = Rbm::new(g, n1, n2, seed)?;
        top.w.set_value(w2)?;
        top.hbias.set_value(self.h2bias.get_value()?)?;
        let stack = Dbn {
            rbms: vec![bottom, top],
            top: TopUnits::Binary,
        };
        stack.classifier(n_classes, seed)
    }
}

impl DbmTrainer {
    /// The step: input `x [batch, n_visible]` (`f32`); output the mean-field reconstruction
    /// error.
    pub fn step(&self) -> &Function {
        &self.step
    }

    /// The persistent chains' first-hidden states `[chains, n_h1]` (a shared variable).
    pub fn chains(&self) -> &Expr {
        &self.chains
    }

    /// Replace the chains' first-hidden states (`[chains, n_h1]`; binary, as a chain holds
    /// them: e.g. samples of the mean-field `μ1` of training digits).
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `h1` does not have the chains' shape.
    #[track_caller]
    pub fn set_chains(&self, h1: &Array2<f32>) -> Result<()> {
        let want = self.chains.get_value()?.shape().to_vec();
        if h1.shape() != want.as_slice() {
            return Err(usage(format!(
                "DBM chains are {want:?}, got {:?}",
                h1.shape()
            )));
        }
        self.chains.set_value(h1.clone())
    }

    /// The shared `f32` scalar the step reads its learning rate from.
    pub fn learning_rate(&self) -> &Expr {
        &self.lr
    }

    /// One pass over the rows of `data` in minibatches, shuffled by `order`; `report` sees
    /// `(minibatches done, minibatches, running mean of the monitor)` after each. Returns the
    /// epoch's mean monitor.
    ///
    /// # Errors
    ///
    /// Those of the step (e.g. rows of the wrong width).
    pub fn epoch(
        &self,
        data: &Array2<f32>,
        order: &mut impl Rng,
        mut report: impl FnMut(usize, usize, f64),
    ) -> Result<f64> {
        let mut rows: Vec<usize> = (0..data.nrows()).collect();
        rows.shuffle(order);
        let batches: Vec<&[usize]> = rows.chunks(self.batch).collect();
        let mut total = 0.0;
        for (i, idx) in batches.iter().enumerate() {
            total += self.step.call(&[Tensor::from(data.select(Axis(0), idx))])?[0].item()?;
            report(i + 1, batches.len(), total / (i + 1) as f64);
        }
        Ok(total / batches.len().max(1) as f64)
    }
}
