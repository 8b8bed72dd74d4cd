//! `log Z` by annealed importance sampling (Salakhutdinov & Murray 2008), as their `RBM_AIS.m`.

use ndarray::{Array1, Array2, Axis};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use super::{RbmParams, logsumexp, softplus, sum_softplus, usage};
use crate::error::Result;
use crate::kernels::fastmath;

/// Settings of [`RbmParams::ais_log_partition`]. The default is Salakhutdinov & Murray's: 100 runs, the
/// 14,501 inverse temperatures of [`standard_betas`], a uniform base model (set a base-rate one
/// with [`AisConfig::with_base_rate`]), seed 0.
#[derive(Clone, Debug)]
pub struct AisConfig {
    /// Independent annealing runs, all advanced together (one matrix product per step).
    pub runs: usize,
    /// Inverse temperatures, increasing from 0 to 1.
    pub betas: Vec<f64>,
    /// Visible biases of the base model A (`W = 0`, `c = 0`); `None` is the uniform model.
    pub base_vbias: Option<Array1<f64>>,
    /// Seed of the runs' random numbers: the same seed gives the same estimate.
    pub seed: u64,
}

impl Default for AisConfig {
    fn default() -> Self {
        AisConfig {
            runs: 100,
            betas: standard_betas(),
            base_vbias: None,
            seed: 0,
        }
    }
}

impl AisConfig {
    /// Use the base-rate model of the training data (see [`base_rate_visible_bias`]) as the
    /// start of the annealing, as `RBM_AIS.m` does. Its samples look like blurred digits, so far
    /// fewer temperatures are needed than from the uniform model.
    pub fn with_base_rate(mut self, data: &Array2<f64>) -> Self {
        self.base_vbias = Some(base_rate_visible_bias(data));
        self
    }

    /// Replace the schedule with `n` evenly spaced inverse temperatures (a quick, rougher run).
    pub fn with_betas(mut self, n: usize) -> Self {
        self.betas = linear_betas(n);
        self
    }

    /// Use `seed` for the runs' random numbers.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The result of [`RbmParams::ais_log_partition`].
#[derive(Clone, Debug)]
pub struct AisEstimate {
    /// `log Ẑ = log Z_A + log mean(w)`.
    pub log_z: f64,
    /// `log(Ẑ + 3σ)`, with `σ = Z_A std(w) / √runs`.
    pub log_z_upper: f64,
    /// `log(Ẑ - 3σ)`; `-∞` when the band reaches zero.
    pub log_z_lower: f64,
    /// `log Z_A` of the base model.
    pub log_z_base: f64,
    /// The log importance weight of each run.
    pub log_weights: Array1<f64>,
}

/// The annealing schedule of Salakhutdinov & Murray (2008) as in their `RBM_AIS.m` demo:
/// steps of 1e-3 from 0 to 0.5, 1e-4 to 0.9 and 1e-5 to 1, 14,501 values without repeats.
pub fn standard_betas() -> Vec<f64> {
    let coarse = (0..=500).map(|i| i as f64 / 1e3);
    let middle = (5001..=9000).map(|i| i as f64 / 1e4);
    let fine = (90001..=100_000).map(|i| i as f64 / 1e5);
    coarse.chain(middle).chain(fine).collect()
}

/// `n` evenly spaced inverse temperatures from 0 to 1 (at least the two ends).
pub fn linear_betas(n: usize) -> Vec<f64> {
    let n = n.max(2);
    (0..n).map(|i| i as f64 / (n - 1) as f64).collect()
}

/// Visible biases of the base-rate model of `data` (`RBM_AIS.m`'s `base_rate`): the logit of
/// each unit's mean, smoothed by a pseudo-count of 5 per 100 examples,
/// `p_i = (Σ_n v_ni + 0.05 N) / (1.05 N)`. That formula gives `p = 1` for a unit on in every
/// example; such a unit gets the logit of `20/21` instead, the mirror image of a unit never on.
pub fn base_rate_visible_bias(data: &Array2<f64>) -> Array1<f64> {
    let n = data.nrows() as f64;
    data.sum_axis(Axis(0)).mapv(|count| {
        let p = ((count + 0.05 * n) / (1.05 * n)).min(20.0 / 21.0);
        p.ln() - (-p).ln_1p()
    })
}

impl RbmParams {
    /// Estimate `log Z` by annealed importance sampling, exactly as Salakhutdinov's
    /// `RBM_AIS.m`: anneal from the base model A (`W = 0`, `c = 0`, visible biases
    /// `cfg.base_vbias`) to the RBM through `p*_β(v) ∝ exp((1-β) b_A·v + β b·v) Π_j
    /// (1 + exp(β (c_j + (v W)_j)))`, one Gibbs step `v → h → v` per temperature. All runs move
    /// together: a step is one `[runs, D] x [D, H]` and one `[runs, H] x [H, D]` product. Each
    /// run draws from its own `SmallRng` seeded from `cfg.seed`, so results do not depend on the
    /// number of threads.
    ///
    /// The estimate of `Z` is unbiased, but its log tends to be low, so a log-likelihood from it
    /// tends to be optimistic.
    ///
    /// # Errors
    ///
    /// When there are no runs, the schedule does not rise from 0 to 1, or the base biases do not
    /// match the visible layer.
    #[track_caller]
    pub fn ais_log_partition(&self, cfg: &AisConfig) -> Result<AisEstimate> {
        let nv = self.n_visible();
        let betas = &cfg.betas;
        let monotone = betas.windows(2).all(|p| p[0] <= p[1]);
        if cfg.runs == 0 || betas.len() < 2 || betas[0] != 0.0 || betas[betas.len() - 1] != 1.0 {
            return Err(usage(format!(
                "ais_log_partition: needs at least one run and betas from 0 to 1 (got {} runs, \
                 {} betas)",
                cfg.runs,
                betas.len()
            )));
        }
        if !monotone {
            return Err(usage("ais_log_partition: betas must not decrease".into()));
        }
        let base = match &cfg.base_vbias {
            Some(b) if b.len() != nv => {
                return Err(usage(format!(
                    "ais_log_partition: {} base-rate biases for {nv} visible units",
                    b.len()
                )));
            }
            Some(b) => b.clone(),
            None => Array1::zeros(nv),
        };
        Ok(ais(self, &base, betas, cfg.runs, cfg.seed))
    }
}

/// `log p*_β(v)` of each run for the current visible states, from their cached terms:
/// `(1-β) b_A·v + β b·v + Σ_j softplus(β (c_j + (v W)_j))`.
fn log_p_star(beta: f64, bv_base: &Array1<f64>, bv: &Array1<f64>, wh: &Array2<f64>) -> Array1<f64> {
    let hidden = wh.map_axis(Axis(1), |row| {
        row.iter().map(|&x| softplus(beta * x)).sum::<f64>()
    });
    bv_base * (1.0 - beta) + bv * beta + hidden
}

/// One AIS run's random numbers: a SmallRng (xoshiro256++; StdRng's ChaCha12 costs 2x more in
/// release builds and 25x more in debug ones) and a buffer for a row of raw draws.
struct Stream {
    rng: SmallRng,
    bits: Vec<u32>,
}

/// Replace each row `x` of `rows` by a draw from Bernoulli(σ(β x + bias)), 0.0 or 1.0, row `r`
/// drawing from `streams[r]`. The probabilities and uniforms are `f32` and the exp is
/// [`exp_f32`], so the loop vectorizes: a step of AIS draws `runs x (D + H)` numbers, and this
/// is most of its cost.
fn bernoulli_rows(rows: &mut Array2<f64>, beta: f64, bias: &Array1<f64>, streams: &mut [Stream]) {
    let bias = bias.as_slice().expect("biases are contiguous");
    let rows = rows.as_slice_mut().expect("fresh arrays are contiguous");
    rows.par_chunks_mut(bias.len())
        .zip(streams)
        .for_each(|(row, s)| {
            s.bits.resize(row.len(), 0);
            s.rng.fill(&mut s.bits[..]);
            for ((x, &b), &u) in row.iter_mut().zip(bias).zip(&s.bits) {
                let p = 1.0 / (1.0 + exp_f32(-(beta * *x + b) as f32));
                let u = (u >> 8) as f32 * (1.0 / 16_777_216.0);
                *x = if u < p { 1.0 } else { 0.0 };
            }
        });
}

/// `eˣ` in `f32`, clamped to `[-87, 88]` so that a probability `1 / (1 + e⁻ˣ)` is never
/// `1 / (1 + ∞)`: the library's vectorizable exp, so a loop of it vectorizes where `f32::exp`
/// is a library call per element.
#[inline]
pub(super) fn exp_f32(x: f32) -> f32 {
    fastmath::single::exp::<false>(x.clamp(-87.0, 88.0))
}

/// The annealing itself (arguments checked by the caller).
fn ais(p: &RbmParams, base: &Array1<f64>, betas: &[f64], runs: usize, seed: u64) -> AisEstimate {
    let (nv, nh) = (p.n_visible(), p.n_hidden());
    let wt = p.w.t().to_owned();
    let mut streams: Vec<Stream> = (0..runs as u64)
        .map(|r| Stream {
            rng: SmallRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(r)),
            bits: Vec::new(),
        })
        .collect();
    let ln2 = std::f64::consts::LN_2;

    // Exact samples of the base model, whose log Z_A is Σ softplus(b_A) + H log 2.
    let mut v = Array2::<f64>::zeros((runs, nv));
    bernoulli_rows(&mut v, 0.0, base, &mut streams);
    let mut log_w = -(v.dot(base) + nh as f64 * ln2);
    let mut wh = v.dot(&p.w) + &p.hbias;
    let mut bv_base = v.dot(base);
    let mut bv = v.dot(&p.vbias);
    let no_bias = Array1::zeros(nh);

    for &beta in &betas[1..betas.len() - 1] {
        log_w += &log_p_star(beta, &bv_base, &bv, &wh);
        // One Gibbs step that leaves p*_β invariant: h | v, then v | h.
        let mut h = wh;
        bernoulli_rows(&mut h, beta, &no_bias, &mut streams);
        v = h.dot(&wt);
        let vis_bias = base * (1.0 - beta) + &p.vbias * beta;
        bernoulli_rows(&mut v, beta, &vis_bias, &mut streams);
        wh = v.dot(&p.w) + &p.hbias;
        bv_base = v.dot(base);
        bv = v.dot(&p.vbias);
        log_w -= &log_p_star(beta, &bv_base, &bv, &wh);
    }
    log_w += &log_p_star(1.0, &bv_base, &bv, &wh);

    let log_z_base = sum_softplus(base) + nh as f64 * ln2;
    let m = runs as f64;
    let log_mean = logsumexp(log_w.iter().copied()) - m.ln();
    // log(std(w) / √M), std with M - 1 as Matlab's, computed relative to the largest weight.
    let top = log_w.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let scaled = log_w.mapv(|x| (x - top).exp());
    let log_sigma = if runs > 1 {
        scaled.std(1.0).ln() + top - 0.5 * m.ln()
    } else {
        f64::NEG_INFINITY
    };
    let band = 3f64.ln() + log_sigma;
    let upper = logsumexp([band, log_mean].into_iter());
    let lower = if band < log_mean {
        log_mean + (-(band - log_mean).exp()).ln_1p()
    } else {
        f64::NEG_INFINITY
    };
    AisEstimate {
        log_z: log_mean + log_z_base,
        log_z_upper: upper + log_z_base,
        log_z_lower: lower + log_z_base,
        log_z_base,
        log_weights: log_w,
    }
}
