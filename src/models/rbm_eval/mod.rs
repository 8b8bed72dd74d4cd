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
//!

mod ais;
mod exact;
mod pseudo;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{Error, Location, Result};
use crate::kernels::elementwise::softplus;
use crate::models::Rbm;
pub use ais::{AisConfig, AisEstimate, base_rate_visible_bias, linear_betas, standard_betas};
pub use exact::MAX_ENUMERATED_UNITS;
pub use pseudo::Binarize;

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

/// Pixels above `threshold` become 1, the others 0: the convention of the measured reference
/// numbers (threshold 0.5).
pub fn binarize(images: &Array2<f32>, threshold: f32) -> Array2<f64> {
    images.mapv(|p| if p > threshold { 1.0 } else { 0.0 })
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
}

/// `Σ_j softplus(c_j + (x W)_j)` for each row of `x`.
fn layer_softplus(x: ArrayView2<f64>, w: ArrayView2<f64>, c: ArrayView1<f64>) -> Array1<f64> {
    let act = x.dot(&w) + c;
    act.map_axis(Axis(1), sum_softplus)
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
/// When a parameter cannot be read, the rows of `data` do not have `n_visible` values, or under
/// [`Binarize::No`] a value is neither 0 nor 1.
#[track_caller]
pub fn pseudo_log_likelihood(rbm: &Rbm, data: &Array2<f64>, binarize: Binarize) -> Result<f64> {
    RbmParams::of(rbm)?.pseudo_log_likelihood(data, binarize)
}

#[cfg(test)]
mod tests {
    use super::ais::exp_f32;
    use super::*;
    use crate::graph::Graph;
    use ndarray::array;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

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
        // The mean over `rows` (states as bit patterns) of Σ_i log p(v_i | v_-i).
        let want = |rows: [usize; 2]| {
            let mut sum = 0.0;
            for row in rows {
                for i in 0..6 {
                    let (a, b) = (neg_f[row], neg_f[row ^ (1 << i)]);
                    sum += a - logsumexp([a, b].into_iter());
                }
            }
            sum / 2.0
        };
        // At 0.5 the second row is 0b100110; at 0.95 it is 0b100000.
        for (t, rows) in [(0.5, [0b011001, 0b100110]), (0.95, [0b011001, 0b100000])] {
            let got = pseudo_log_likelihood(&rbm, &data, Binarize::At(t)).unwrap();
            assert!(
                (got - want(rows)).abs() < 1e-10,
                "at {t}: {got} vs {}",
                want(rows)
            );
        }
        // Binary data needs no threshold; grey data without one is refused, naming the value.
        let binary = data.mapv(|x| if x >= 0.5 { 1.0 } else { 0.0 });
        let rounded = pseudo_log_likelihood(&rbm, &data, Binarize::At(0.5)).unwrap();
        assert_eq!(
            pseudo_log_likelihood(&rbm, &binary, Binarize::No).unwrap(),
            rounded
        );
        let err = pseudo_log_likelihood(&rbm, &data, Binarize::No).unwrap_err();
        assert!(err.to_string().contains("row 1 column 0 is 0.2"), "{err}");
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
