//! Centered binary RBMs (Melchior, Fischer & Wiskott 2016, "How to center deep Boltzmann
//! machines"): the units enter the coupling relative to offsets `μ` (visible) and `λ`
//! (hidden),
//!
//! ```text
//! E(v, h) = -(v - μ)ᵀ W (h - λ) - bᵀv - cᵀh
//! F(v)    = -bᵀv + aᵀλ - Σⱼ softplus(cⱼ + aⱼ),   a = (v - μ) W
//! ```
//!
//! The model is the plain RBM with weights `W`, visible bias `b - Wλ` and hidden bias
//! `c - Wᵀμ` ([`CenteredRbm::plain_params`]); only the gradient changes. The CD gradient of
//! this free energy is the centered one, `<(v - μ)(h - λ)ᵀ>_data - <(v - μ)(h - λ)ᵀ>_model` for
//! `W`, so the library's [`Cd`](super::cd::Cd) trainer derives it by `grad` as for any
//! [`EnergyModel`](crate::models::EnergyModel). Centering makes that gradient invariant to flipping units (`v → 1 - v`) and
//! better conditioned: on the bundled digits a 784-16 centered RBM trained by PCD-1 reaches a
//! higher exact log-likelihood than the plain one (see the book's RBM chapter).
//!
//! The offsets follow the minibatch means of the data (`v` and `P(h | v)`, Melchior's "dd"
//! centering) as exponential moving averages with sliding factors `ν` (0.01 by default). Each
//! training step moves them and then reparametrizes the biases so that the modelled
//! distribution is the one the gradient step gave:
//!
//! ```text
//! μ' = (1 - ν)μ + ν mean(v),  λ' = (1 - ν)λ + ν mean P(h | v)
//! b' = b + W(λ' - λ),         c' = c + Wᵀ(μ' - μ)
//! ```
//!
//! (`b - Wλ` and `c - Wᵀμ`, the plain biases, do not change.)
//!
//! ```
//! use gradus::models::cd::Cd;
//! use gradus::models::{CdConfig, CenteredRbm};
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let data = ndarray::Array2::from_shape_fn((8, 6), |(i, j)| ((i + j) % 2) as f32);
//! let rbm = CenteredRbm::new(&g, 6, 4, 1)?;
//! rbm.init_from_data(&data)?;
//! let cfg = CdConfig { persistent: true, ..CdConfig::default() };
//! let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, 2)).compile()?;
//! trainer.step().call(&[data.into()])?;
//! // The equivalent plain RBM, for exact log-likelihoods and AIS.
//! let plain = rbm.plain_params()?;
//! assert!(plain.exact_log_partition()?.is_finite());
//! # Ok::<(), gradus::Error>(())
//! ```

use ndarray::{Array1, Array2, Axis};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::{Expr, Graph};
use crate::models::cd::{new_params, rbm_energy_model};
use crate::models::rbm_eval::RbmParams;
use crate::tensor::Tensor;

/// The sliding factor of both offsets unless [`CenteredRbm::with_sliding`] sets others: the
/// value of Melchior et al.'s experiments.
pub const DEFAULT_SLIDING: f64 = 0.01;

/// A binary-binary RBM centered by the offsets `μ` and `λ`, with `f32` or `f64` parameters in
/// shared variables. Train it with [`Cd`](super::cd::Cd); evaluate it as the equivalent plain
/// RBM of [`CenteredRbm::plain_params`].
#[derive(Clone, Debug)]
pub struct CenteredRbm {
    /// Weights `W [n_visible, n_hidden]`.
    pub w: Expr,
    /// Visible biases `b [n_visible]` of the centered energy.
    pub vbias: Expr,
    /// Hidden biases `c [n_hidden]` of the centered energy.
    pub hbias: Expr,
    /// Visible offsets `μ [n_visible]`, moved by training, not by the gradient.
    pub visible_offset: Expr,
    /// Hidden offsets `λ [n_hidden]`, moved by training, not by the gradient.
    pub hidden_offset: Expr,
    /// Number of visible units.
    pub n_visible: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
    sliding: [f64; 2],
}

#[track_caller]
fn usage(what: String) -> Error {
    Error::Usage {
        what,
        loc: Location::caller(),
    }
}

/// The value of the shared variable `x` as an `f64` array of `D` dimensions.
#[track_caller]
fn read<D: ndarray::Dimension>(x: &Expr, what: &str) -> Result<ndarray::Array<f64, D>> {
    x.get_value()?
        .to_f64_array()
        .into_dimensionality()
        .map_err(|e| usage(format!("centered RBM: {what}: {e}")))
}

impl CenteredRbm {
    /// A new `f32` centered RBM in `graph`: weights drawn from N(0, 0.01²) (the same as
    /// [`Rbm::new`](super::Rbm::new) of that seed), biases zero, both offsets 0.5, sliding
    /// factors [`DEFAULT_SLIDING`]. [`CenteredRbm::init_from_data`] sets the visible side from
    /// the training data.
    #[track_caller]
    pub fn new(graph: &Graph, n_visible: usize, n_hidden: usize, seed: u64) -> Result<Self> {
        CenteredRbm::new_with_dtype(graph, n_visible, n_hidden, DType::F32, seed)
    }

    /// [`CenteredRbm::new`] with parameters of float `dtype` (`F32` or `F64`).
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
    ) -> Result<Self> {
        let [w, vbias, hbias] = new_params(graph, n_visible, n_hidden, dtype, seed)?;
        Ok(CenteredRbm {
            w,
            vbias,
            hbias,
            visible_offset: graph.shared("visible_offset", Tensor::full(&[n_visible], 0.5, dtype)),
            hidden_offset: graph.shared("hidden_offset", Tensor::full(&[n_hidden], 0.5, dtype)),
            n_visible,
            n_hidden,
            sliding: [DEFAULT_SLIDING; 2],
        })
    }

    /// Set the sliding factors of the visible and hidden offsets, each in `[0, 1]`: 0 keeps an
    /// offset where it is, 1 sets it to each minibatch's mean.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when a factor lies outside `[0, 1]`.
    #[track_caller]
    pub fn with_sliding(mut self, visible: f64, hidden: f64) -> Result<Self> {
        for (name, v) in [("visible", visible), ("hidden", hidden)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(usage(format!(
                    "a centered RBM's {name} sliding factor must lie in [0, 1], got {v}"
                )));
            }
        }
        self.sliding = [visible, hidden];
        Ok(self)
    }

    /// The sliding factors `[visible, hidden]`.
    pub fn sliding(&self) -> [f64; 2] {
        self.sliding
    }

    /// Melchior et al.'s start: the visible offsets at the data's mean `μ` and the visible
    /// biases at `log(μ / (1 - μ))` (clamped to `[10⁻³, 1 - 10⁻³]`), the hidden offsets at 0.5
    /// and the hidden biases at zero.
    ///
    /// # Errors
    ///
    /// [`Error::Data`] for data without rows, [`Error::Usage`] for rows of the wrong width.
    #[track_caller]
    pub fn init_from_data(&self, data: &Array2<f32>) -> Result<()> {
        if data.ncols() != self.n_visible {
            return Err(usage(format!(
                "centered RBM: data rows have {} values but the RBM has {} visible units",
                data.ncols(),
                self.n_visible
            )));
        }
        let mean = data.mean_axis(Axis(0)).ok_or_else(|| Error::Data {
            path: "<data>".into(),
            reason: "no rows".into(),
        })?;
        let logit = mean.mapv(|p| {
            let p = p.clamp(1e-3, 1.0 - 1e-3);
            (p / (1.0 - p)).ln()
        });
        let dtype = self.w.dtype();
        self.visible_offset
            .set_value(Tensor::from(mean).cast(dtype))?;
        self.vbias.set_value(Tensor::from(logit).cast(dtype))?;
        self.hidden_offset
            .set_value(Tensor::full(&[self.n_hidden], 0.5, dtype))?;
        self.hbias
            .set_value(Tensor::full(&[self.n_hidden], 0.0, dtype))
    }

    /// The trained parameters `[W, vbias, hbias]`.
    pub fn params(&self) -> [&Expr; 3] {
        [&self.w, &self.vbias, &self.hbias]
    }

    /// `(v - μ) W`, the coupling's input to the hidden units.
    #[track_caller]
    fn hidden_input(&self, v: &Expr) -> Expr {
        (v - &self.visible_offset).matmul(&self.w)
    }

    /// Free energy of each row of `v`: `-bᵀv + aᵀλ - Σⱼ softplus(cⱼ + aⱼ)`, `a = (v - μ) W`.
    /// It is the equivalent plain RBM's free energy less the constant `μᵀWλ`.
    #[track_caller]
    pub fn free_energy(&self, v: &Expr) -> Expr {
        let a = self.hidden_input(v);
        let hidden = (&a + &self.hbias).softplus().sum_axes(&[1], false);
        a.dot(&self.hidden_offset) - &v.dot(&self.vbias) - &hidden
    }

    /// `P(h = 1 | v) = sigmoid(c + (v - μ) W)`.
    #[track_caller]
    pub fn hidden_probs(&self, v: &Expr) -> Expr {
        (self.hidden_input(v) + &self.hbias).sigmoid()
    }

    /// `P(v = 1 | h) = sigmoid(b + W (h - λ))`.
    #[track_caller]
    pub fn visible_probs(&self, h: &Expr) -> Expr {
        ((h - &self.hidden_offset).matmul(&self.w.t()) + &self.vbias).sigmoid()
    }

    /// Move the offsets to `mu` and `lambda` and reparametrize the biases (`b += W(λ' - λ)`,
    /// `c += Wᵀ(μ' - μ)`) so that the modelled distribution stays the same; what training does
    /// after each step, here for any offsets.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `mu` or `lambda` has the wrong length; errors reading the
    /// parameters otherwise.
    #[track_caller]
    pub fn set_offsets(&self, mu: &Array1<f64>, lambda: &Array1<f64>) -> Result<()> {
        if mu.len() != self.n_visible || lambda.len() != self.n_hidden {
            return Err(usage(format!(
                "centered RBM: offsets of {} visible and {} hidden units, got {} and {}",
                self.n_visible,
                self.n_hidden,
                mu.len(),
                lambda.len()
            )));
        }
        let w: Array2<f64> = read(&self.w, "W")?;
        let b: Array1<f64> = read(&self.vbias, "vbias")?;
        let c: Array1<f64> = read(&self.hbias, "hbias")?;
        let old_mu: Array1<f64> = read(&self.visible_offset, "visible offset")?;
        let old_lambda: Array1<f64> = read(&self.hidden_offset, "hidden offset")?;
        let dtype = self.w.dtype();
        let set = |x: &Expr, v: Array1<f64>| x.set_value(Tensor::from(v).cast(dtype));
        set(&self.vbias, b + w.dot(&(lambda - &old_lambda)))?;
        set(&self.hbias, c + w.t().dot(&(mu - &old_mu)))?;
        set(&self.visible_offset, mu.clone())?;
        set(&self.hidden_offset, lambda.clone())
    }

    /// The equivalent plain RBM `(W, b - Wλ, c - Wᵀμ)` in `f64`, whose log-likelihood,
    /// exact or by AIS, is this model's.
    ///
    /// # Errors
    ///
    /// When a parameter cannot be read.
    #[track_caller]
    pub fn plain_params(&self) -> Result<RbmParams> {
        let w: Array2<f64> = read(&self.w, "W")?;
        let b: Array1<f64> = read(&self.vbias, "vbias")?;
        let c: Array1<f64> = read(&self.hbias, "hbias")?;
        let mu: Array1<f64> = read(&self.visible_offset, "visible offset")?;
        let lambda: Array1<f64> = read(&self.hidden_offset, "hidden offset")?;
        let (vbias, hbias) = (b - w.dot(&lambda), c - w.t().dot(&mu));
        RbmParams::new(w, vbias, hbias)
    }

    /// Rewrite the bias updates of a training step for the moved offsets and add the offsets'
    /// own updates (see the module docs).
    #[track_caller]
    fn center(&self, x: &Expr, updates: &mut [(Expr, Expr)]) -> Result<Vec<(Expr, Expr)>> {
        let [nu_v, nu_h] = self.sliding;
        if nu_v == 0.0 && nu_h == 0.0 {
            return Ok(Vec::new());
        }
        let find = |p: &Expr| {
            updates
                .iter()
                .position(|(t, _)| t.id() == p.id())
                .ok_or_else(|| {
                    usage(format!(
                        "centered RBM: the step has no update of {}",
                        p.name()
                    ))
                })
        };
        let (iw, ib, ic) = (find(&self.w)?, find(&self.vbias)?, find(&self.hbias)?);
        let w_new = updates[iw].1.clone();
        let slide = |old: &Expr, mean: Expr, nu: f64| old * (1.0 - nu) + &(mean * nu);
        let (mu, lambda) = (&self.visible_offset, &self.hidden_offset);
        let mu_new = slide(mu, x.mean_axes(&[0], false), nu_v);
        let lambda_new = slide(lambda, self.hidden_probs(x).mean_axes(&[0], false), nu_h);
        let d_lambda = (&lambda_new - lambda).expand_dims(&[1]);
        let d_mu = (&mu_new - mu).expand_dims(&[1]);
        updates[ib].1 = &updates[ib].1 + &w_new.matmul(&d_lambda).squeeze(&[1]);
        updates[ic].1 = &updates[ic].1 + &w_new.t().matmul(&d_mu).squeeze(&[1]);
        Ok(vec![(mu.clone(), mu_new), (lambda.clone(), lambda_new)])
    }
}

rbm_energy_model!(CenteredRbm, visible_probs, {
    #[track_caller]
    fn amend_updates(
        &self,
        x: &Expr,
        _v_neg: &Expr,
        updates: &mut Vec<(Expr, Expr)>,
    ) -> Result<()> {
        let extra = self.center(x, updates)?;
        updates.extend(extra);
        Ok(())
    }
});
