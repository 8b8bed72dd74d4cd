//! `log Z` exactly, by enumerating every state of the smaller layer.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

use super::{RbmParams, layer_softplus, usage};
use crate::error::Result;

/// The largest layer [`RbmParams::exact_log_partition`] enumerates: `2^24` states of `D` softplus terms
/// each is minutes of work.
pub const MAX_ENUMERATED_UNITS: usize = 24;

/// States per block of the enumeration: one matrix product each.
const BLOCK: usize = 1024;

impl RbmParams {
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
