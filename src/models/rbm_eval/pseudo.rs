//! The exact pseudo-likelihood over all visible bits.

use ndarray::{Array2, Zip};
use rayon::prelude::*;

use super::{RbmParams, softplus, sum_softplus};
use crate::error::Result;

impl RbmParams {
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
