//! Binary restricted Boltzmann machines trained by contrastive divergence (CD-k) or persistent
//! CD (PCD), following the Theano deep-learning tutorial and Hinton's practical guide.
//!
//! The energy is `E(v, h) = -v·b - h·c - v W h`; summing out `h` gives the free energy
//! `F(v) = -v·b - Σ_j softplus(c_j + (v W)_j)`. The CD update is the gradient of
//! `mean F(v⁰) - mean F(vᵏ)` with the negative sample `vᵏ` held constant (`stop_gradient`), so
//! `grad` derives it: no hand-written update rules.

use ndarray::Array2;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::function::{Function, FunctionBuilder, function};
use crate::graph::{Expr, Graph};
use crate::models::cd::{Cd, new_params, rbm_energy_model};
use crate::models::{squared_error, unroll};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// A binary-binary RBM with `f32` or `f64` parameters held in shared variables.
#[derive(Clone, Debug)]
pub struct Rbm {
    /// Weights `[n_visible, n_hidden]`.
    pub w: Expr,
    /// Visible biases `[n_visible]`.
    pub vbias: Expr,
    /// Hidden biases `[n_hidden]`.
    pub hbias: Expr,
    /// Number of visible units.
    pub n_visible: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
}

/// Hyper-parameters of CD-k / PCD-k training. The defaults follow Hinton's practical guide
/// (learning rate 0.1, momentum 0.5 rising to 0.9 is left to the caller, weight decay 2e-4).
#[derive(Clone, Debug)]
pub struct CdConfig {
    /// Gibbs steps in the negative phase.
    pub k: usize,
    /// Keep the negative chain across updates (PCD) instead of restarting it at the data.
    pub persistent: bool,
    /// Learning rate.
    pub lr: f64,
    /// Momentum of the parameter velocities.
    pub momentum: f64,
    /// L2 weight decay on `W`.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch: usize,
    /// Number of persistent chains under PCD; `None` keeps as many as the minibatch has rows
    /// (`batch`), as the Theano tutorial does. Not read by CD, whose chains start at the data.
    pub chains: Option<usize>,
}

impl Default for CdConfig {
    fn default() -> Self {
        CdConfig {
            k: 1,
            persistent: false,
            lr: 0.1,
            momentum: 0.5,
            weight_decay: 2e-4,
            batch: 20,
            chains: None,
        }
    }
}

impl Rbm {
    /// A new `f32` RBM in `graph`: weights drawn from N(0, 0.01²), biases zero (Hinton's
    /// guide, §8).
    #[track_caller]
    pub fn new(graph: &Graph, n_visible: usize, n_hidden: usize, seed: u64) -> Result<Rbm> {
        Rbm::new_with_dtype(graph, n_visible, n_hidden, DType::F32, seed)
    }

    /// [`Rbm::new`] with parameters of float `dtype` (`F32` or `F64`). The weights are the
    /// same values for either dtype and seed: drawn in `f32`, then cast.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `dtype` is not a float type.
    #[track_caller]
    pub fn new_with_dtype(
        graph: &Graph,
        n_visible: usize,
        n_hidden: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<Rbm> {
        let [w, vbias, hbias] = new_params(graph, n_visible, n_hidden, dtype, seed)?;
        Ok(Rbm {
            w,
            vbias,
            hbias,
            n_visible,
            n_hidden,
        })
    }

    /// Set the visible biases to `log(p / (1 - p))` of the training data's mean activations,
    /// the practical guide's recommended start.
    pub fn init_visible_bias(&self, data: &Array2<f32>) -> Result<()> {
        let mean = data
            .mean_axis(ndarray::Axis(0))
            .ok_or_else(|| Error::Data {
                path: "<data>".into(),
                reason: "no rows".into(),
            })?;
        let logit = mean.mapv(|p| {
            let p = p.clamp(1e-3, 1.0 - 1e-3);
            (p / (1.0 - p)).ln()
        });
        self.vbias
            .set_value(Tensor::from(logit).cast(self.vbias.dtype()))
    }

    /// The shared parameters `[W, vbias, hbias]`.
    pub fn params(&self) -> [&Expr; 3] {
        [&self.w, &self.vbias, &self.hbias]
    }

    /// Free energy of each row of `v`: `-v·b - Σ softplus(v W + c)`.
    #[track_caller]
    pub fn free_energy(&self, v: &Expr) -> Expr {
        let vb = v.dot(&self.vbias);
        let hidden = (v.matmul(&self.w) + &self.hbias)
            .softplus()
            .sum_axes(&[1], false);
        -(vb + hidden)
    }

    /// `P(h = 1 | v) = sigmoid(v W + c)`.
    #[track_caller]
    pub fn hidden_probs(&self, v: &Expr) -> Expr {
        (v.matmul(&self.w) + &self.hbias).sigmoid()
    }

    /// `P(v = 1 | h) = sigmoid(h Wᵀ + b)`.
    #[track_caller]
    pub fn visible_probs(&self, h: &Expr) -> Expr {
        (h.matmul(&self.w.t()) + &self.vbias).sigmoid()
    }

    /// One Gibbs step from hidden samples: `(v sample, h probabilities, h sample)`.
    #[track_caller]
    pub fn gibbs_hvh(&self, h: &Expr, rng: &RandomStream) -> (Expr, Expr, Expr) {
        let v = rng.bernoulli(&self.visible_probs(h));
        let hp = self.hidden_probs(&v);
        let hs = rng.bernoulli(&hp);
        (v, hp, hs)
    }

    /// One Gibbs step from visible states: `(v probabilities, v sample)` after `v -> h -> v`.
    #[track_caller]
    pub fn gibbs_vhv(&self, v: &Expr, rng: &RandomStream) -> (Expr, Expr) {
        let h = rng.bernoulli(&self.hidden_probs(v));
        let vp = self.visible_probs(&h);
        let vs = rng.bernoulli(&vp);
        (vp, vs)
    }

    /// Mean squared reconstruction error per example, `|v - P(v | P(h | v))|²`: a monitor,
    /// not the objective.
    #[track_caller]
    pub fn reconstruction_error(&self, v: &Expr) -> Expr {
        squared_error(v, &self.visible_probs(&self.hidden_probs(v)))
    }

    /// A compiled training step: input a minibatch `x [batch, n_visible]` (in the
    /// parameters' dtype), output the reconstruction error, and update `W`, the biases, their
    /// velocities and (for PCD) the persistent chain. [`Cd`] builds the same step and also
    /// hands out the persistent chains.
    pub fn trainer(&self, cfg: &CdConfig, rng: &RandomStream) -> Result<Function> {
        Ok(Cd::new(self, cfg, rng).compile()?.into_step())
    }

    /// The [`Rbm::trainer`] before compiling, to set options such as
    /// [`FunctionBuilder::profile`] or [`FunctionBuilder::exclude`].
    pub fn trainer_builder(&self, cfg: &CdConfig, rng: &RandomStream) -> Result<FunctionBuilder> {
        Ok(Cd::new(self, cfg, rng).builder()?.0)
    }

    /// [`Rbm::trainer`] with the learning rate read from the scalar `lr` (a shared variable)
    /// at every call instead of the constant `cfg.lr`, so that a schedule can anneal it. PCD
    /// needs one: under a constant rate its log-likelihood swings by several nats from epoch to
    /// epoch, and decaying the rate to zero over the last epochs settles it.
    pub fn trainer_with_learning_rate(
        &self,
        cfg: &CdConfig,
        rng: &RandomStream,
        lr: &Expr,
    ) -> Result<Function> {
        Ok(Cd::new(self, cfg, rng)
            .learning_rate(lr)
            .compile()?
            .into_step())
    }

    /// [`Rbm::trainer`] whose number of Gibbs steps is given at each call: input a minibatch
    /// `x` and an `i64` scalar `k` (at least 1; `cfg.k` is not read). The chain is one loop
    /// ([`Scan::counted`](crate::Scan::counted)), so the step compiles in the same time
    /// whatever k, and k can grow during training (CD-1 early, CD-10 later, as Hinton's guide
    /// suggests).
    ///
    /// ```
    /// use gradus::prelude::*;
    /// use gradus::models::{CdConfig, Rbm};
    /// use gradus::random::RandomStream;
    /// let g = Graph::new();
    /// let rbm = Rbm::new(&g, 6, 4, 1).unwrap();
    /// let step = rbm.trainer_with_steps_per_call(&CdConfig::default(), &RandomStream::new(&g, 2)).unwrap();
    /// let x: Tensor = ndarray::Array2::<f32>::zeros((3, 6)).into();
    /// for k in [1i64, 5, 10] {
    ///     step.call(&[x.clone(), k.into()]).unwrap();
    /// }
    /// ```
    pub fn trainer_with_steps_per_call(
        &self,
        cfg: &CdConfig,
        rng: &RandomStream,
    ) -> Result<Function> {
        Ok(Cd::new(self, cfg, rng)
            .steps_per_call()
            .compile()?
            .into_step())
    }

    /// A compiled sampler: from visible states `v [n, n_visible]`, run `steps` Gibbs steps and
    /// return the visible probabilities of the last step (the usual picture of samples).
    pub fn sampler(&self, steps: usize, rng: &RandomStream) -> Result<Function> {
        let g = self.w.graph().clone();
        let v0 = g.input("v", self.w.dtype(), &[None, Some(self.n_visible)]);
        let (vp, _) = unroll(steps.max(1), (v0.clone(), v0.clone()), |(_, v)| {
            self.gibbs_vhv(&v, rng)
        });
        function(&[&v0], &[&vp]).compile()
    }
}

rbm_energy_model!(Rbm, visible_probs, {
    /// CD reuses its first Gibbs step, which starts at the data, so the reconstruction costs no
    /// extra product (as in the Theano tutorial); PCD's chain does not start at the data, so it
    /// reconstructs the data separately.
    #[track_caller]
    fn monitor(&self, x: &Expr, h0: Option<&Expr>) -> Expr {
        match h0 {
            Some(h0) => squared_error(x, &self.visible_probs(h0)),
            None => Rbm::reconstruction_error(self, x),
        }
    }
});
