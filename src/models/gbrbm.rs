//! Gaussian-Bernoulli RBMs: real-valued visible units, binary hidden units, for data such as
//! grey levels that are not probabilities.
//!
//! **Parameterisation.** The visible units have unit variance (σ = 1, fixed) and the data are
//! standardized per dimension first ([`Standardizer`]), as Hinton's practical guide (§13.2)
//! recommends: learning σ is fragile (it can collapse or go negative) and buys little on
//! standardized data. With σ = 1 the energy is
//!
//! `E(v, h) = ½‖v - b‖² - c·h - vᵀ W h`,
//!
//! so `P(h_j = 1 | v) = sigmoid(c_j + (v W)_j)`, `p(v | h) = N(b + W h, I)`, and summing out
//! `h` gives the free energy
//!
//! `F(v) = ½‖v - b‖² - Σ_j softplus(c_j + (v W)_j)`
//!
//! (the general form `Σ (v-b)²/2σ² - Σ softplus(c + (v/σ²) W)` at σ = 1; the quadratic term is
//! `+`). Training is the binary [`Rbm`](crate::models::Rbm)'s: `grad` of
//! `mean F(v⁰) - mean F(stop_gradient(vᵏ))`, where the negative chain samples visible states
//! `b + W h + ε`, `ε ~ N(0, I)`. Gaussian visibles need a learning rate one to two orders of
//! magnitude below a binary RBM's ([`GbRbm::cd_config`]).

use ndarray::{Array1, Array2, Axis};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::graph::{Expr, Graph};
use crate::models::cd::{Cd, new_params, rbm_energy_model};
use crate::models::{CdConfig, squared_error, unroll};
use crate::random::RandomStream;

/// A Gaussian-Bernoulli RBM (unit-variance visibles) whose parameters are graph expressions:
/// shared variables for training, or symbolic inputs for gradient checks.
#[derive(Clone, Debug)]
pub struct GbRbm {
    /// Weights `[n_visible, n_hidden]`.
    pub w: Expr,
    /// Visible biases (the means of `p(v | h = 0)`) `[n_visible]`.
    pub vbias: Expr,
    /// Hidden biases `[n_hidden]`.
    pub hbias: Expr,
    /// Number of visible units.
    pub n_visible: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
}

impl GbRbm {
    /// A new GB-RBM in `graph` with `f32` shared parameters `W`, `vbias`, `hbias`: weights from
    /// N(0, 0.01²), biases zero (the visible means of standardized data).
    #[track_caller]
    pub fn new(graph: &Graph, n_visible: usize, n_hidden: usize, seed: u64) -> Result<GbRbm> {
        GbRbm::new_with_dtype(graph, n_visible, n_hidden, DType::F32, seed)
    }

    /// [`GbRbm::new`] with parameters of float `dtype` (`F32` or `F64`), the weights the same
    /// values for either dtype and seed.
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
    ) -> Result<GbRbm> {
        let [w, vbias, hbias] = new_params(graph, n_visible, n_hidden, dtype, seed)?;
        GbRbm::from_params(&w, &vbias, &hbias)
    }

    /// A GB-RBM over given parameters of one float dtype: `w [n_visible, n_hidden]`,
    /// `vbias [n_visible]`, `hbias [n_hidden]`, all dims known.
    #[track_caller]
    pub fn from_params(w: &Expr, vbias: &Expr, hbias: &Expr) -> Result<GbRbm> {
        let loc = Location::caller();
        let dims = |e: &Expr| -> Option<Vec<usize>> { e.shape().dims().iter().copied().collect() };
        let usage = |what: String| Error::Usage { what, loc };
        let (Some(wd), Some(bd), Some(cd)) = (dims(w), dims(vbias), dims(hbias)) else {
            return Err(usage(format!(
                "GbRbm needs parameters of known shape, got {}, {}, {}",
                w.shape(),
                vbias.shape(),
                hbias.shape()
            )));
        };
        let &[n_visible, n_hidden] = wd.as_slice() else {
            return Err(usage(format!(
                "GbRbm weights must be a matrix, got {}",
                w.shape()
            )));
        };
        if bd != [n_visible] || cd != [n_hidden] {
            return Err(usage(format!(
                "GbRbm biases must be [{n_visible}] and [{n_hidden}] for weights {}, got {} and {}",
                w.shape(),
                vbias.shape(),
                hbias.shape()
            )));
        }
        let dtype = w.dtype();
        if !dtype.is_float() || vbias.dtype() != dtype || hbias.dtype() != dtype {
            return Err(usage(format!(
                "GbRbm parameters must share one float dtype, got {}, {}, {}",
                dtype,
                vbias.dtype(),
                hbias.dtype()
            )));
        }
        Ok(GbRbm {
            w: w.clone(),
            vbias: vbias.clone(),
            hbias: hbias.clone(),
            n_visible,
            n_hidden,
        })
    }

    /// Hyper-parameters for standardized data: the binary RBM's defaults with a learning rate
    /// 20 times smaller (0.005), as the practical guide advises for Gaussian visibles, and
    /// momentum 0.9 from the start. On the bundled digits (784-500, CD-1, batch 20) this trains
    /// stably; 0.001 learns markedly slower and momentum 0.5 gave worse features at equal epochs.
    pub fn cd_config() -> CdConfig {
        CdConfig {
            lr: 0.005,
            momentum: 0.9,
            ..CdConfig::default()
        }
    }

    /// The parameters `[W, vbias, hbias]`.
    pub fn params(&self) -> [&Expr; 3] {
        [&self.w, &self.vbias, &self.hbias]
    }

    /// Free energy of each row of `v`: `½‖v - b‖² - Σ_j softplus(c_j + (v W)_j)`.
    #[track_caller]
    pub fn free_energy(&self, v: &Expr) -> Expr {
        let quadratic = (v - &self.vbias).square().sum_axes(&[1], false) * 0.5;
        let hidden = (v.matmul(&self.w) + &self.hbias)
            .softplus()
            .sum_axes(&[1], false);
        quadratic - hidden
    }

    /// `P(h = 1 | v) = sigmoid(v W + c)`.
    #[track_caller]
    pub fn hidden_probs(&self, v: &Expr) -> Expr {
        (v.matmul(&self.w) + &self.hbias).sigmoid()
    }

    /// The mean of `p(v | h)`: `h Wᵀ + b` (also the noise-free reconstruction from hidden
    /// probabilities).
    #[track_caller]
    pub fn visible_mean(&self, h: &Expr) -> Expr {
        h.matmul(&self.w.t()) + &self.vbias
    }

    /// A sample of `p(v | h) = N(h Wᵀ + b, I)`.
    #[track_caller]
    pub fn sample_visible(&self, h: &Expr, rng: &RandomStream) -> Expr {
        let mean = self.visible_mean(h);
        let noise = rng.normal(&mean);
        mean + noise
    }

    /// One Gibbs step from hidden samples: `(v sample, h probabilities, h sample)`.
    #[track_caller]
    pub fn gibbs_hvh(&self, h: &Expr, rng: &RandomStream) -> (Expr, Expr, Expr) {
        let v = self.sample_visible(h, rng);
        let hp = self.hidden_probs(&v);
        let hs = rng.bernoulli(&hp);
        (v, hp, hs)
    }

    /// One Gibbs step from visible states: `(v mean, v sample)` after `v -> h -> v`.
    #[track_caller]
    pub fn gibbs_vhv(&self, v: &Expr, rng: &RandomStream) -> (Expr, Expr) {
        let h = rng.bernoulli(&self.hidden_probs(v));
        let mean = self.visible_mean(&h);
        let sample = &mean + &rng.normal(&mean);
        (mean, sample)
    }

    /// The contrastive-divergence cost `mean F(v⁰) - mean F(vᵏ)` with the negative sample
    /// held constant: its gradient is the CD update (it is not a loss; it may be negative).
    #[track_caller]
    pub fn cd_cost(&self, v0: &Expr, vk: &Expr) -> Expr {
        self.free_energy(v0).mean() - self.free_energy(&vk.stop_gradient()).mean()
    }

    /// Mean squared reconstruction error per example, `‖v - (P(h | v) Wᵀ + b)‖²`, in the
    /// standardized space the model sees: a monitor, not the objective.
    #[track_caller]
    pub fn reconstruction_error(&self, v: &Expr) -> Expr {
        squared_error(v, &self.visible_mean(&self.hidden_probs(v)))
    }

    /// A compiled training step: input a minibatch `x [batch, n_visible]` of standardized data
    /// (in the parameters' dtype), output the reconstruction error, and update `W`, the
    /// biases, their velocities and (for PCD) the persistent chain of hidden states. [`Cd`]
    /// builds the same step and also hands out the persistent chains.
    pub fn trainer(&self, cfg: &CdConfig, rng: &RandomStream) -> Result<Function> {
        Ok(Cd::new(self, cfg, rng).compile()?.into_step())
    }

    /// A compiled sampler: from visible states `v [n, n_visible]`, run `steps` Gibbs steps and
    /// return the visible means of the last step.
    pub fn sampler(&self, steps: usize, rng: &RandomStream) -> Result<Function> {
        let g = self.w.graph().clone();
        let v0 = g.input("v", self.w.dtype(), &[None, Some(self.n_visible)]);
        let (mean, _) = unroll(steps.max(1), (v0.clone(), v0.clone()), |(_, v)| {
            self.gibbs_vhv(&v, rng)
        });
        function(&[&v0], &[&mean]).compile()
    }
}

rbm_energy_model!(GbRbm, visible_mean, {
    /// Gaussian visibles: `N(h Wᵀ + b, I)`.
    #[track_caller]
    fn sample_visible(&self, h: &Expr, rng: &RandomStream) -> Expr {
        GbRbm::sample_visible(self, h, rng)
    }
});

/// Per-dimension standardization `z = (x - mean) / max(std, min_std)`, fitted on training data
/// and applied unchanged to test data and undone for pictures.
///
/// The floor keeps dimensions that are almost constant in the training data (MNIST's border
/// pixels, inked in a handful of digits) from turning a rare stroke into a value of hundreds.
#[derive(Clone, Debug)]
pub struct Standardizer {
    /// Mean of each dimension.
    pub mean: Array1<f32>,
    /// Divisor of each dimension: its standard deviation, at least `min_std`.
    pub scale: Array1<f32>,
}

impl Standardizer {
    /// Fit to the rows of `data`.
    pub fn fit(data: &Array2<f32>, min_std: f32) -> Result<Standardizer> {
        let mean = data.mean_axis(Axis(0)).ok_or_else(|| Error::Data {
            path: "<data>".into(),
            reason: "no rows to standardize".into(),
        })?;
        let scale = data.std_axis(Axis(0), 0.0).mapv(|s| s.max(min_std));
        Ok(Standardizer { mean, scale })
    }

    /// `(x - mean) / scale`, row by row.
    pub fn apply(&self, data: &Array2<f32>) -> Array2<f32> {
        (data - &self.mean) / &self.scale
    }

    /// `z * scale + mean`, back to the data's units.
    pub fn invert(&self, data: &Array2<f32>) -> Array2<f32> {
        data * &self.scale + &self.mean
    }
}
