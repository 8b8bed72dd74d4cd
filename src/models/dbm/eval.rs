//! How good is a DBM? `log Z` by AIS (or exactly, for small models) and the mean-field
//! variational lower bound on `log p(v)`, computed in `f64` with `ndarray` from a snapshot of
//! the parameters.

use ndarray::{Array1, Array2, Axis, concatenate, s};

use super::{Dbm, usage};
use crate::error::Result;
use crate::kernels::elementwise::softplus;
use crate::models::rbm_eval::{
    AisConfig, AisEstimate, MAX_ENUMERATED_UNITS, RbmParams, base_rate_visible_bias,
};

/// A DBM's parameters in `f64`, read once from the shared variables.
#[derive(Clone, Debug)]
pub struct DbmParams {
    /// `W1 [n_visible, n_h1]`.
    pub w1: Array2<f64>,
    /// `W2 [n_h1, n_h2]`.
    pub w2: Array2<f64>,
    /// Visible biases `b`.
    pub vbias: Array1<f64>,
    /// First hidden biases `c1`.
    pub h1bias: Array1<f64>,
    /// Second hidden biases `c2`.
    pub h2bias: Array1<f64>,
}

/// The value of a shared variable as an `f64` array of `D` dimensions.
#[track_caller]
fn read<D: ndarray::Dimension>(x: &crate::Expr, what: &str) -> Result<ndarray::Array<f64, D>> {
    x.get_value()?
        .to_f64_array()
        .into_dimensionality()
        .map_err(|e| usage(format!("DbmParams: {what}: {e}")))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Entropy of Bernoulli(σ(a)) from its logit: `softplus(a) - a σ(a)`, exact where `σ(a)`
/// rounds to 0 or 1.
fn entropy_of_logit(a: f64) -> f64 {
    softplus(a) - a * sigmoid(a)
}

impl DbmParams {
    /// Snapshot the current parameters of `dbm`.
    ///
    /// # Errors
    ///
    /// When a parameter is not a shared variable or the shapes do not fit.
    #[track_caller]
    pub fn of(dbm: &Dbm) -> Result<DbmParams> {
        DbmParams::new(
            read(&dbm.w1, "W1")?,
            read(&dbm.w2, "W2")?,
            read(&dbm.vbias, "vbias")?,
            read(&dbm.h1bias, "h1bias")?,
            read(&dbm.h2bias, "h2bias")?,
        )
    }

    /// Parameters from arrays.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`](crate::Error::Usage) when `w1` is not `[b, c1]` or `w2` not `[c1, c2]`
    /// in size.
    #[track_caller]
    pub fn new(
        w1: Array2<f64>,
        w2: Array2<f64>,
        vbias: Array1<f64>,
        h1bias: Array1<f64>,
        h2bias: Array1<f64>,
    ) -> Result<DbmParams> {
        let (nv, n1, n2) = (vbias.len(), h1bias.len(), h2bias.len());
        if w1.dim() != (nv, n1) || w2.dim() != (n1, n2) {
            return Err(usage(format!(
                "DbmParams: W1 {:?} and W2 {:?} do not fit {nv}, {n1} and {n2} biases",
                w1.shape(),
                w2.shape()
            )));
        }
        Ok(DbmParams {
            w1,
            w2,
            vbias,
            h1bias,
            h2bias,
        })
    }

    /// `[n_visible, n_h1, n_h2]`.
    pub fn sizes(&self) -> [usize; 3] {
        [self.vbias.len(), self.h1bias.len(), self.h2bias.len()]
    }

    #[track_caller]
    fn check(&self, v: &Array2<f64>) -> Result<()> {
        if v.ncols() != self.vbias.len() {
            return Err(usage(format!(
                "DbmParams: rows of {} values for {} visible units",
                v.ncols(),
                self.vbias.len()
            )));
        }
        Ok(())
    }

    /// The same distribution read as an RBM: `h1` is its hidden layer, `[v, h2]` its visible
    /// one (the DBM's layers `v` and `h2` do not touch), with weights `[W1; W2ᵀ]`, visible biases
    /// `[b; c2]` and hidden biases `c1`. Its `log Z` is the DBM's.
    pub fn as_rbm(&self) -> RbmParams {
        let w = concatenate(Axis(0), &[self.w1.view(), self.w2.t()])
            .expect("W1 and W2ᵀ have n_h1 columns");
        let b = concatenate(Axis(0), &[self.vbias.view(), self.h2bias.view()])
            .expect("vectors concatenate");
        RbmParams {
            w,
            vbias: b,
            hbias: self.h1bias.clone(),
        }
    }

    /// `log Z` exactly, summing out `h1` analytically and enumerating the smaller of `h1` and
    /// `[v, h2]` (see [`RbmParams::exact_log_partition`]).
    ///
    /// # Errors
    ///
    /// When both have more than [`MAX_ENUMERATED_UNITS`] units.
    #[track_caller]
    pub fn exact_log_partition(&self) -> Result<f64> {
        self.as_rbm().exact_log_partition()
    }

    /// `log Z` by annealed importance sampling over the states of `[v, h2]`, with `h1` summed
    /// out analytically at every temperature: [`RbmParams::ais_log_partition`] of
    /// [`DbmParams::as_rbm`]. A base-rate model must therefore cover `n_visible + n_h2` units:
    /// see [`DbmParams::base_rate`].
    ///
    /// # Errors
    ///
    /// Those of [`RbmParams::ais_log_partition`].
    #[track_caller]
    pub fn ais_log_partition(&self, cfg: &AisConfig) -> Result<AisEstimate> {
        self.as_rbm().ais_log_partition(cfg)
    }

    /// Base-rate biases of AIS's start model over `[v, h2]`: those of the rows of `data` for
    /// `v` and of their mean-field `q(h2)` (after `steps` updates) for `h2`
    /// ([`base_rate_visible_bias`]). Set them as `AisConfig::base_vbias`.
    ///
    /// # Errors
    ///
    /// When the rows of `data` are not `n_visible` wide.
    #[track_caller]
    pub fn base_rate(&self, data: &Array2<f64>, steps: usize) -> Result<Array1<f64>> {
        let (_, mu2) = self.mean_field(data, steps)?;
        let both =
            concatenate(Axis(1), &[data.view(), mu2.view()]).map_err(|e| usage(e.to_string()))?;
        Ok(base_rate_visible_bias(&both))
    }

    /// The mean-field posterior `(μ1, μ2)` of each row of `v` after `steps` updates, started as
    /// [`Dbm::mean_field`] is.
    ///
    /// # Errors
    ///
    /// When the rows of `v` are not `n_visible` wide.
    #[track_caller]
    pub fn mean_field(&self, v: &Array2<f64>, steps: usize) -> Result<(Array2<f64>, Array2<f64>)> {
        let [mu1, mu2, _, _] = self.mean_field_logits(v, steps)?;
        Ok((mu1, mu2))
    }

    /// `[μ1, μ2, a1, a2]` with `μ = σ(a)`.
    #[track_caller]
    fn mean_field_logits(&self, v: &Array2<f64>, steps: usize) -> Result<[Array2<f64>; 4]> {
        self.check(v)?;
        let vw = v.dot(&self.w1) + &self.h1bias;
        let mut a1 = &vw * 2.0 - &self.h1bias;
        let mut mu1 = a1.mapv(sigmoid);
        let mut a2 = mu1.dot(&self.w2) + &self.h2bias;
        let mut mu2 = a2.mapv(sigmoid);
        for _ in 0..steps {
            a1 = &vw + &mu2.dot(&self.w2.t());
            mu1 = a1.mapv(sigmoid);
            a2 = mu1.dot(&self.w2) + &self.h2bias;
            mu2 = a2.mapv(sigmoid);
        }
        Ok([mu1, mu2, a1, a2])
    }

    /// The mean-field lower bound on `log p(v)` of each row of `v`:
    /// `-E_q[E(v, h1, h2)] + H(q) - log_z`, with `q` the mean-field posterior after `steps`
    /// updates. Pass `log Z` from [`DbmParams::ais_log_partition`] or
    /// [`DbmParams::exact_log_partition`]; with `log_z = 0` it is the bound on `log p*(v)`.
    ///
    /// # Errors
    ///
    /// When the rows of `v` are not `n_visible` wide.
    #[track_caller]
    pub fn variational_bound(
        &self,
        v: &Array2<f64>,
        steps: usize,
        log_z: f64,
    ) -> Result<Array1<f64>> {
        let [mu1, mu2, a1, a2] = self.mean_field_logits(v, steps)?;
        let neg_energy = v.dot(&self.vbias)
            + mu1.dot(&self.h1bias)
            + mu2.dot(&self.h2bias)
            + (v.dot(&self.w1) * &mu1).sum_axis(Axis(1))
            + (mu1.dot(&self.w2) * &mu2).sum_axis(Axis(1));
        let entropy = a1.mapv(entropy_of_logit).sum_axis(Axis(1))
            + a2.mapv(entropy_of_logit).sum_axis(Axis(1));
        Ok(neg_energy + entropy - log_z)
    }

    /// `log p*(v) = log Σ_{h1, h2} exp(-E(v, h1, h2))` of each row, exactly: `h1` summed out
    /// analytically and the `2^n_h2` states of `h2` enumerated. With `log Z`, `log p(v) =
    /// log p*(v) - log Z`: what the bound of [`DbmParams::variational_bound`] is below.
    ///
    /// # Errors
    ///
    /// When the rows of `v` are not `n_visible` wide or `n_h2` exceeds
    /// [`MAX_ENUMERATED_UNITS`].
    #[track_caller]
    pub fn log_unnormalized(&self, v: &Array2<f64>) -> Result<Array1<f64>> {
        self.check(v)?;
        let n2 = self.h2bias.len();
        if n2 > MAX_ENUMERATED_UNITS {
            return Err(usage(format!(
                "DbmParams::log_unnormalized: 2^{n2} states of h2 are out of reach (at most \
                 2^{MAX_ENUMERATED_UNITS})"
            )));
        }
        let vw = v.dot(&self.w1) + &self.h1bias;
        let vb = v.dot(&self.vbias);
        let states = Array2::from_shape_fn((1 << n2, n2), |(k, j)| (k >> j & 1) as f64);
        // terms[r, k] = c2·h2_k + Σ_j softplus((v_r W1 + c1 + W2 h2_k)_j)
        let top = states.dot(&self.w2.t());
        let ch = states.dot(&self.h2bias);
        let mut out = Array1::zeros(v.nrows());
        for (r, row) in vw.rows().into_iter().enumerate() {
            let terms: Vec<f64> = (0..1 << n2)
                .map(|k| {
                    let act = &row + &top.slice(s![k, ..]);
                    ch[k] + act.iter().map(|&a| softplus(a)).sum::<f64>()
                })
                .collect();
            let m = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out[r] = vb[r] + m + terms.iter().map(|t| (t - m).exp()).sum::<f64>().ln();
        }
        Ok(out)
    }
}
