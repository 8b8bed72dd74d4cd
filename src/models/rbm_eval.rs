//! How good is a binary RBM? Exact log-likelihood by enumeration, annealed importance sampling
//! (AIS) of the partition function, and pseudo-likelihood.
//!
//! These are numerical tools, not graphs: they read the RBM's parameters once (as an
//! [`RbmParams`] snapshot in `f64`) and compute with `ndarray`. With `W` of shape `[D, H]`,
//! visible bias `b` and hidden bias `c` (formulas as in `shared/research/rbm_anchors.md` §3.1):
//!
//! * free energy `F(v) = -b·v - Σ_j softplus(c_j + (v W)_j)`;
//! * `log Z = logsumexp_h [c·h + Σ_i softplus(b_i + (W h)_i)]`, summed over the smaller layer;
//! * `log p(v) = -F(v) - log Z`.
//!
//! Log-likelihoods depend on how the digits were binarized; state the convention (here usually
//! [`binarize`] at 0.5) next to every number.
//!
//! ```
//! use gradus::prelude::*;
//! use gradus::models::Rbm;
//! use gradus::models::rbm_eval::{self, AisConfig};
//! use ndarray::array;
//!
//! let g = Graph::new();
//! let rbm = Rbm::new(&g, 6, 3, 7)?;
//! let data = array![[1.0, 0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]];
//! let log_z = rbm_eval::exact_log_partition(&rbm)?;
//! let ll = rbm_eval::log_likelihood(&rbm, &data, log_z)?;
//! let ais = rbm_eval::ais_log_partition(&rbm, &AisConfig::default().with_betas(1000))?;
//! assert!((ais.log_z - log_z).abs() < 0.1);
//! assert!(ll < 0.0);
//! # Ok::<(), gradus::Error>(())
//! ```

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::{Error, Location, Result};
use crate::models::Rbm;

/// The largest layer [`exact_log_partition`] enumerates: `2^24` states of `D` softplus terms
/// each is minutes of work.
pub const MAX_ENUMERATED_UNITS: usize = 24;

/// States per block of the enumeration: one matrix product each.
const BLOCK: usize = 1024;

/// An RBM's parameters in `f64`, read once from the shared variables.
#[derive(Clone, Debug)]
pub struct RbmParams {
    /// Weights `[n_visible, n_hidden]`.
    pub w: Array2<f64>,
    /// Visible biases `b`.
    pub vbias: Array1<f64>,
    /// Hidden biases `c`.
    pub hbias: Array1<f64>,
}

/// Settings of [`ais_log_partition`]. The default is Salakhutdinov & Murray's: 100 runs, the
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

/// The result of [`ais_log_partition`].
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

/// Pixels above `threshold` become 1, the others 0: the convention of the measured reference
/// numbers (threshold 0.5).
pub fn binarize(images: &Array2<f32>, threshold: f32) -> Array2<f64> {
    images.mapv(|p| if p > threshold { 1.0 } else { 0.0 })
}

/// `log(1 + eˣ)` without overflow.
fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// `Σ softplus(x) = Σ max(x, 0) + log Π (1 + e^-|x|)`: one `exp` per term but one `log` per
/// thousand (each factor lies in [1, 2], so a thousand stay below `2^1000 < f64::MAX`). This sum
/// over `D` terms for each of `2^H` states is the cost of [`exact_log_partition`].
fn sum_softplus<'a>(x: impl IntoIterator<Item = &'a f64>) -> f64 {
    let (mut linear, mut log_prod, mut prod) = (0.0, 0.0, 1.0);
    for (i, &x) in x.into_iter().enumerate() {
        linear += x.max(0.0);
        prod *= 1.0 + (-x.abs()).exp();
        if i % 1000 == 999 {
            log_prod += f64::ln(prod);
            prod = 1.0;
        }
    }
    linear + log_prod + prod.ln()
}

/// `log Σ exp(x)`; `-∞` for no terms.
fn logsumexp(x: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = x.clone().fold(f64::NEG_INFINITY, f64::max);
    if m.is_infinite() {
        return m;
    }
    m + x.map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// The value of the shared variable `x` as an `f64` array of `D` dimensions.
#[track_caller]
fn read<D: ndarray::Dimension>(x: &crate::Expr, what: &str) -> Result<ndarray::Array<f64, D>> {
    x.get_value()?
        .to_f64_array()
        .into_dimensionality()
        .map_err(|e| usage(format!("rbm_eval: {what}: {e}")))
}

#[track_caller]
fn usage(what: String) -> Error {
    Error::Usage {
        what,
        loc: Location::caller(),
    }
}

impl RbmParams {
    /// Snapshot the current parameters of `rbm`.
    ///
    /// # Errors
    ///
    /// When a parameter is not a shared variable or its shape does not fit the others.
    #[track_caller]
    pub fn of(rbm: &Rbm) -> Result<RbmParams> {
        RbmParams::new(
            read(&rbm.w, "W")?,
            read(&rbm.vbias, "vbias")?,
            read(&rbm.hbias, "hbias")?,
        )
    }

    /// Parameters from arrays, e.g. weights saved by another program.
    ///
    /// # Errors
    ///
    /// When `w` is not `[vbias.len(), hbias.len()]`.
    #[track_caller]
    pub fn new(w: Array2<f64>, vbias: Array1<f64>, hbias: Array1<f64>) -> Result<RbmParams> {
        if w.dim() != (vbias.len(), hbias.len()) {
            return Err(usage(format!(
                "rbm_eval: W is {:?} but there are {} visible and {} hidden biases",
                w.shape(),
                vbias.len(),
                hbias.len()
            )));
        }
        Ok(RbmParams { w, vbias, hbias })
    }

    /// Number of visible units.
    pub fn n_visible(&self) -> usize {
        self.vbias.len()
    }

    /// Number of hidden units.
    pub fn n_hidden(&self) -> usize {
        self.hbias.len()
    }

    #[track_caller]
    fn check_visible(&self, v: &Array2<f64>) -> Result<()> {
        if v.ncols() != self.n_visible() {
            return Err(usage(format!(
                "rbm_eval: data rows have {} values but the RBM has {} visible units",
                v.ncols(),
                self.n_visible()
            )));
        }
        Ok(())
    }

    /// Free energy of each row of `v`: `F(v) = -b·v - Σ_j softplus(c_j + (v W)_j)`.
    ///
    /// # Errors
    ///
    /// When the rows of `v` do not have `n_visible` values.
    #[track_caller]
    pub fn free_energy(&self, v: &Array2<f64>) -> Result<Array1<f64>> {
        self.check_visible(v)?;
        Ok(-(v.dot(&self.vbias) + layer_softplus(v.view(), self.w.view(), self.hbias.view())))
    }

    /// `log Z`, exactly, by summing over every state of the smaller layer. Enumerating the
    /// hidden layer, `log Z = logsumexp_h [c·h + Σ_i softplus(b_i + (W h)_i)]`; the states go
    /// through in blocks of 1024, one matrix product per block, blocks in parallel. With 784
    /// visible units, 16 hidden units take well under a second and 20 a few seconds.
    ///
    /// # Errors
    ///
    /// When both layers have more than [`MAX_ENUMERATED_UNITS`] units.
    #[track_caller]
    pub fn exact_log_partition(&self) -> Result<f64> {
        let (nv, nh) = (self.n_visible(), self.n_hidden());
        if nv.min(nh) > MAX_ENUMERATED_UNITS {
            return Err(usage(format!(
                "exact_log_partition: {nv} visible and {nh} hidden units; summing over \
                 2^{} states is out of reach (at most 2^{MAX_ENUMERATED_UNITS}); use AIS",
                nv.min(nh)
            )));
        }
        Ok(if nh <= nv {
            log_sum_over_states(self.w.t(), self.hbias.view(), self.vbias.view())
        } else {
            log_sum_over_states(self.w.view(), self.vbias.view(), self.hbias.view())
        })
    }

    /// Mean `log p(v) = -F(v) - log Z` over the rows of `data`, in nats.
    ///
    /// # Errors
    ///
    /// When the rows of `data` do not have `n_visible` values.
    #[track_caller]
    pub fn log_likelihood(&self, data: &Array2<f64>, log_z: f64) -> Result<f64> {
        let f = self.free_energy(data)?;
        Ok(-f.mean().unwrap_or(f64::NAN) - log_z)
    }

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

    /// Mean log pseudo-likelihood per row of `data`, **exact over all visible bits**:
    /// `Σ_i log p(v_i | v_-i) = Σ_i log σ(F(ṽ⁽ⁱ⁾) - F(v))`, with `ṽ⁽ⁱ⁾` equal to `v` with bit
    /// `i` flipped. (Theano's tutorial reports a one-bit stochastic estimate, `D` times one
    /// random term, whose expectation is this sum.) `data` is rounded to 0/1 first, as there.
    /// Flipping bit `i` shifts the hidden inputs by `±W_i`, so the cost is `N·D·H` softplus
    /// terms.
    ///
    /// # Errors
    ///
    /// When the rows of `data` do not have `n_visible` values.
    #[track_caller]
    pub fn pseudo_log_likelihood(&self, data: &Array2<f64>) -> Result<f64> {
        self.check_visible(data)?;
        let v = data.mapv(|x| if x >= 0.5 { 1.0 } else { 0.0 });
        let act = v.dot(&self.w) + &self.hbias;
        let per_row: Vec<f64> = (0..v.nrows())
            .into_par_iter()
            .map(|n| {
                let (v, act) = (v.row(n), act.row(n));
                let base = sum_softplus(act);
                let mut total = 0.0;
                for (i, &vi) in v.iter().enumerate() {
                    let s = 1.0 - 2.0 * vi;
                    let flipped: f64 = Zip::from(act)
                        .and(self.w.row(i))
                        .fold(0.0, |acc, &a, &w| acc + softplus(a + s * w));
                    // F(ṽ) - F(v)
                    let delta = -s * self.vbias[i] - (flipped - base);
                    total -= softplus(-delta);
                }
                total
            })
            .collect();
        Ok(per_row.iter().sum::<f64>() / v.nrows().max(1) as f64)
    }
}

/// `Σ_j softplus(c_j + (x W)_j)` for each row of `x`.
fn layer_softplus(x: ArrayView2<f64>, w: ArrayView2<f64>, c: ArrayView1<f64>) -> Array1<f64> {
    let act = x.dot(&w) + c;
    act.map_axis(Axis(1), sum_softplus)
}

/// `log Σ_s exp(a·s + Σ_j softplus(c_j + (s W)_j))` over all binary `s`, for `w` of shape
/// `[len(s), len(c)]`: the log partition function, enumerating the layer of `s`.
fn log_sum_over_states(w: ArrayView2<f64>, a: ArrayView1<f64>, c: ArrayView1<f64>) -> f64 {
    let n = w.nrows();
    let total = 1usize << n;
    let block = BLOCK.min(total);
    let partial: Vec<(f64, f64)> = (0..total.div_ceil(block))
        .into_par_iter()
        .map(|k| {
            let start = k * block;
            let states = Array2::from_shape_fn((block.min(total - start), n), |(r, j)| {
                ((start + r) >> j & 1) as f64
            });
            let log_w = states.dot(&a) + layer_softplus(states.view(), w, c);
            let m = log_w.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            (m, log_w.iter().map(|&x| (x - m).exp()).sum())
        })
        .collect();
    let m = partial.iter().fold(f64::NEG_INFINITY, |m, p| m.max(p.0));
    m + partial
        .iter()
        .map(|&(mk, s)| s * (mk - m).exp())
        .sum::<f64>()
        .ln()
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

/// `eˣ` in `f32` within 2e-7 relative error (to 0 and `e⁸⁸` outside `[-87, 88]`), branch-free
/// so that a loop of it vectorizes; `f32::exp` is a library call per element. `x = n ln 2 + r`
/// with `|r| ≤ ln 2 / 2`; `eʳ` by its Taylor series to `r⁶`; `2ⁿ` built in the exponent bits.
#[inline]
fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    // ln 2 = 355/512 - 2.12e-4, and n * 355/512 is exact in f32 (Cody & Waite).
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let taylor = [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];
    let p = taylor.iter().fold(0.0, |p, &c| p * r + c);
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
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

/// `log Z` of `rbm` by enumeration; see [`RbmParams::exact_log_partition`].
///
/// # Errors
///
/// When a parameter cannot be read, or both layers exceed [`MAX_ENUMERATED_UNITS`] units.
#[track_caller]
pub fn exact_log_partition(rbm: &Rbm) -> Result<f64> {
    RbmParams::of(rbm)?.exact_log_partition()
}

/// Free energy of each row of `v`; see [`RbmParams::free_energy`].
///
/// # Errors
///
/// When a parameter cannot be read or the rows of `v` do not have `n_visible` values.
#[track_caller]
pub fn free_energy(rbm: &Rbm, v: &Array2<f64>) -> Result<Array1<f64>> {
    RbmParams::of(rbm)?.free_energy(v)
}

/// Mean `log p(v)` over the rows of `data` given `log_z` (exact or from AIS); see
/// [`RbmParams::log_likelihood`].
///
/// # Errors
///
/// When a parameter cannot be read or the rows of `data` do not have `n_visible` values.
#[track_caller]
pub fn log_likelihood(rbm: &Rbm, data: &Array2<f64>, log_z: f64) -> Result<f64> {
    RbmParams::of(rbm)?.log_likelihood(data, log_z)
}

/// AIS estimate of `log Z`; see [`RbmParams::ais_log_partition`].
///
/// # Errors
///
/// When a parameter cannot be read or `cfg` is invalid.
#[track_caller]
pub fn ais_log_partition(rbm: &Rbm, cfg: &AisConfig) -> Result<AisEstimate> {
    RbmParams::of(rbm)?.ais_log_partition(cfg)
}

/// Mean exact log pseudo-likelihood over the rows of `data`; see
/// [`RbmParams::pseudo_log_likelihood`].
///
/// # Errors
///
/// When a parameter cannot be read or the rows of `data` do not have `n_visible` values.
#[track_caller]
pub fn pseudo_log_likelihood(rbm: &Rbm, data: &Array2<f64>) -> Result<f64> {
    RbmParams::of(rbm)?.pseudo_log_likelihood(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Graph;
    use ndarray::array;
    use rand::rngs::StdRng;

    /// A small RBM with uniform random parameters in `[-scale, scale)`.
    fn random_rbm(nv: usize, nh: usize, scale: f32, seed: u64) -> Rbm {
        let rbm = Rbm::new(&Graph::new(), nv, nh, seed).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-scale..scale)).collect() };
        let w = Array2::from_shape_vec((nv, nh), draw(nv * nh)).unwrap();
        rbm.w.set_value(w).unwrap();
        rbm.vbias.set_value(Array1::from(draw(nv))).unwrap();
        rbm.hbias.set_value(Array1::from(draw(nh))).unwrap();
        rbm
    }

    /// Bits of `k` as a row of 0/1.
    fn bits(k: usize, n: usize) -> Array1<f64> {
        Array1::from_shape_fn(n, |j| (k >> j & 1) as f64)
    }

    /// All `2^n` binary rows.
    fn all_states(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((1 << n, n), |(k, j)| (k >> j & 1) as f64)
    }

    /// `log Σ_{v,h} exp(b·v + c·h + v W h)`, one pair at a time.
    fn brute_force_log_z(p: &RbmParams) -> f64 {
        let (nv, nh) = (p.n_visible(), p.n_hidden());
        let mut terms = Vec::new();
        for i in 0..1 << nv {
            let v = bits(i, nv);
            for j in 0..1 << nh {
                let h = bits(j, nh);
                terms.push(v.dot(&p.vbias) + h.dot(&p.hbias) + v.dot(&p.w.dot(&h)));
            }
        }
        logsumexp(terms.into_iter())
    }

    #[test]
    fn exact_log_z_equals_the_sum_over_all_pairs() {
        // 6-4 enumerates the hidden layer, 4-6 the visible one: both free energies are used.
        for (nv, nh) in [(6, 4), (4, 6), (5, 5)] {
            let rbm = random_rbm(nv, nh, 1.5, 3);
            let p = RbmParams::of(&rbm).unwrap();
            let exact = exact_log_partition(&rbm).unwrap();
            let brute = brute_force_log_z(&p);
            assert!(
                (exact - brute).abs() < 1e-10,
                "{nv}-{nh}: {exact} vs {brute}"
            );
        }
    }

    #[test]
    fn closed_forms() {
        let sp = softplus;
        // W = 0: the units are independent.
        let p = RbmParams::new(
            Array2::zeros((3, 2)),
            array![0.5, -1.0, 2.0],
            array![0.3, -0.7],
        )
        .unwrap();
        let want = sp(0.5) + sp(-1.0) + sp(2.0) + sp(0.3) + sp(-0.7);
        assert!((p.exact_log_partition().unwrap() - want).abs() < 1e-12);
        // One unit each: Z = 1 + e^b + e^c + e^(b + c + w).
        let (b, c, w) = (0.4f64, -1.3f64, 2.1f64);
        let p = RbmParams::new(array![[w]], array![b], array![c]).unwrap();
        let want = (1.0 + b.exp() + c.exp() + (b + c + w).exp()).ln();
        assert!((p.exact_log_partition().unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn probabilities_of_all_visible_states_sum_to_one() {
        let rbm = random_rbm(6, 4, 1.5, 11);
        let log_z = exact_log_partition(&rbm).unwrap();
        let f = free_energy(&rbm, &all_states(6)).unwrap();
        let total: f64 = f.iter().map(|&f| (-f - log_z).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        // The mean log-likelihood is the mean of those log-probabilities.
        let ll = log_likelihood(&rbm, &all_states(6), log_z).unwrap();
        assert!((ll - (-f.mean().unwrap() - log_z)).abs() < 1e-12);
    }

    #[test]
    fn ais_is_within_a_tenth_of_a_nat() {
        let rbm = random_rbm(6, 4, 1.5, 5);
        let exact = exact_log_partition(&rbm).unwrap();
        let data = all_states(6).slice(ndarray::s![..20, ..]).to_owned();
        // Shorter schedules than the standard 14,501 betas keep debug builds quick; the
        // ignored acceptance test in tests/rbm_likelihood.rs runs the standard one.
        for cfg in [
            AisConfig::default().with_betas(3000),
            AisConfig::default()
                .with_base_rate(&data)
                .with_betas(1000)
                .with_seed(9),
        ] {
            let est = ais_log_partition(&rbm, &cfg).unwrap();
            assert!((est.log_z - exact).abs() < 0.1, "{} vs {exact}", est.log_z);
            assert!(est.log_z_lower < est.log_z && est.log_z < est.log_z_upper);
            assert_eq!(est.log_weights.len(), 100);
        }
        // The same seed gives the same estimate.
        let cfg = AisConfig::default().with_betas(500).with_seed(4);
        let a = ais_log_partition(&rbm, &cfg).unwrap();
        let b = ais_log_partition(&rbm, &cfg).unwrap();
        assert_eq!(a.log_z, b.log_z);
    }

    #[test]
    fn pseudo_likelihood_is_the_sum_of_exact_conditionals() {
        let rbm = random_rbm(6, 4, 1.5, 8);
        let p = RbmParams::of(&rbm).unwrap();
        // Unnormalised log p(v) of every state; p(v_i | v_-i) = p(v) / (p(v) + p(ṽ)).
        let neg_f = -p.free_energy(&all_states(6)).unwrap();
        let data = array![
            [1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
            [0.2, 0.9, 0.6, 0.0, 0.1, 1.0]
        ];
        let mut want = 0.0;
        for row in [0b011001usize, 0b100110] {
            for i in 0..6 {
                let (a, b) = (neg_f[row], neg_f[row ^ (1 << i)]);
                want += a - logsumexp([a, b].into_iter());
            }
        }
        let got = pseudo_log_likelihood(&rbm, &data).unwrap();
        assert!((got - want / 2.0).abs() < 1e-10, "{got} vs {}", want / 2.0);
    }

    #[test]
    fn fast_exp_is_accurate() {
        for i in -9000..=9000 {
            let x = i as f32 / 100.0;
            let want = f64::from(x).clamp(-87.0, 88.0).exp();
            let got = f64::from(exp_f32(x));
            assert!(
                (got - want).abs() <= 3e-7 * want,
                "exp({x}) = {got}, not {want}"
            );
        }
        assert_eq!(exp_f32(f32::INFINITY), exp_f32(88.0));
        assert_eq!(1.0 / (1.0 + exp_f32(-1e30)), 1.0);
        assert!(1.0 / (1.0 + exp_f32(1e30)) < 1e-38);
        assert_eq!(sum_softplus(&[0.0, 1000.0, -1000.0]), 2f64.ln() + 1000.0);
    }

    #[test]
    fn schedules_and_base_rate() {
        let betas = standard_betas();
        assert_eq!(betas.len(), 14_501);
        assert_eq!(
            (betas[0], betas[500], betas[4500], betas[14_500]),
            (0.0, 0.5, 0.9, 1.0)
        );
        assert!(betas.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(linear_betas(5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        // 20 rows, unit 0 always on, unit 1 never: p = (20 + 1) / 21 and 1 / 21.
        let data = Array2::from_shape_fn((20, 2), |(_, j)| (j == 0) as u8 as f64);
        let b = base_rate_visible_bias(&data);
        assert!((b[0] - 20f64.ln()).abs() < 1e-12 && (b[1] + 20f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn misuse_is_an_error() {
        let big = RbmParams::new(
            Array2::zeros((25, 25)),
            Array1::zeros(25),
            Array1::zeros(25),
        );
        assert!(big.unwrap().exact_log_partition().is_err());
        assert!(RbmParams::new(Array2::zeros((3, 2)), Array1::zeros(2), Array1::zeros(2)).is_err());
        let rbm = random_rbm(6, 4, 1.0, 1);
        assert!(free_energy(&rbm, &Array2::zeros((2, 5))).is_err());
        let bad = AisConfig {
            betas: vec![0.0, 0.5],
            ..AisConfig::default()
        };
        assert!(ais_log_partition(&rbm, &bad).is_err());
    }
}
