//! Greedy pretraining of a DBM: two RBMs with the doubled-input trick, trained by the library's
//! CD trainer ([`Cd`]) and composed.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Dbm, usage};
use crate::error::Result;
use crate::function::function;
use crate::graph::Expr;
use crate::models::Rbm;
use crate::models::cd::{Cd, EnergyModel};
use crate::models::dbn::{LayerSchedule, Progress, to_array2};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// The bottom RBM with its visible layer doubled: two tied copies of `v`, both clamped to the
/// data, so `p(h | v) = σ(2 v W + c)` while each copy is `p(v | h) = σ(h Wᵀ + b)`. Summing out
/// `h` with both copies equal to `v` gives `F(v) = -2 b·v - Σ_j softplus(2 (v W)_j + c_j)`. The
/// negative phase draws one copy and uses it for both, as Salakhutdinov's code does.
struct DoubledVisible<'a>(&'a Rbm);

/// The top RBM with its hidden layer doubled: two tied copies of `h`, independent given the
/// visible layer, so `F(v) = -b·v - 2 Σ_j softplus((v W)_j + c_j)`. The hidden state the
/// trainer carries is the sum of the copies (0, 1 or 2): `p(v | h, h') = σ((h + h') Wᵀ + b)`.
struct DoubledHidden<'a>(&'a Rbm);

impl EnergyModel for DoubledVisible<'_> {
    fn units(&self) -> (usize, usize) {
        (self.0.n_visible, self.0.n_hidden)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.0.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.0.vbias, &self.0.hbias]
    }
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let hidden = (v.matmul(&self.0.w) * 2.0 + &self.0.hbias)
            .softplus()
            .sum_axes(&[1], false);
        -(v.dot(&self.0.vbias) * 2.0 + hidden)
    }
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        (v.matmul(&self.0.w) * 2.0 + &self.0.hbias).sigmoid()
    }
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        self.0.visible_probs(h)
    }
}

impl EnergyModel for DoubledHidden<'_> {
    fn units(&self) -> (usize, usize) {
        (self.0.n_visible, self.0.n_hidden)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.0.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.0.vbias, &self.0.hbias]
    }
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let hidden = (v.matmul(&self.0.w) + &self.0.hbias)
            .softplus()
            .sum_axes(&[1], false);
        -(v.dot(&self.0.vbias) + hidden * 2.0)
    }
    /// The mean of the sum of the two copies.
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        self.0.hidden_probs(v) * 2.0
    }
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        self.0.visible_probs(h)
    }
    #[track_caller]
    fn sample_hidden(&self, v: &Expr, rng: &RandomStream) -> Expr {
        let p = self.0.hidden_probs(v);
        rng.bernoulli(&p) + rng.bernoulli(&p)
    }
}

impl Dbm {
    /// Greedy pretraining on the rows of `data` (binary, or probabilities), then composition:
    /// the bottom RBM (visible input doubled) by CD for `schedule[0]`, the top RBM (hidden layer
    /// doubled) for `schedule[1]` on the bottom one's `p(h1 | v) = σ(2 v W1 + c1)`. Each RBM's
    /// visible biases start at the logits of its input's means, its weights at the DBM's
    /// current ones. The DBM then takes `W1`, `b` from the bottom RBM, `W2`, `c2` from the top
    /// one, and for `c1` the mean of the two RBMs' biases of that layer: in the DBM `h1` hears
    /// `v` and `h2` together, where each RBM had doubled one of them. Minibatches come from a
    /// permutation seeded by `seed`; `report` sees every minibatch. Returns each RBM's mean
    /// reconstruction error per epoch.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`](crate::Error::Usage) unless there are two schedules and the rows of
    /// `data` are `n_visible` wide; the trainer's errors otherwise.
    #[track_caller]
    pub fn pretrain(
        &self,
        data: &Array2<f32>,
        schedule: &[LayerSchedule],
        rng: &RandomStream,
        seed: u64,
        mut report: impl FnMut(&Progress),
    ) -> Result<Vec<Vec<f64>>> {
        let [nv, n1, n2] = self.sizes;
        if schedule.len() != 2 || data.ncols() != nv {
            return Err(usage(format!(
                "Dbm::pretrain: needs 2 layer schedules and rows of {nv} values, got {} \
                 schedules and rows of {}",
                schedule.len(),
                data.ncols()
            )));
        }
        let g = self.graph();
        let bottom = Rbm::new(g, nv, n1, seed)?;
        let top = Rbm::new(g, n1, n2, seed)?;
        bottom.w.set_value(self.w1.get_value()?)?;
        top.w.set_value(self.w2.get_value()?)?;
        let mut order = StdRng::seed_from_u64(seed);
        let mut curves = Vec::new();
        let mut train = |layer: usize, model: &dyn EnergyModel, x: &Array2<f32>| -> Result<()> {
            let sched = &schedule[layer];
            let trainer = Cd::new(model, &sched.cd, rng).compile()?;
            let mut curve = Vec::new();
            for epoch in 0..sched.epochs {
                curve.push(trainer.epoch(x, &mut order, |batch, batches, error| {
                    report(&Progress {
                        layer,
                        epoch,
                        batch,
                        batches,
                        error,
                    })
                })?);
            }
            curves.push(curve);
            Ok(())
        };
        bottom.init_visible_bias(data)?;
        train(0, &DoubledVisible(&bottom), data)?;

        let v = g.input("v", crate::DType::F32, &[None, Some(nv)]);
        let up = function(&[&v], &[&DoubledVisible(&bottom).hidden_mean(&v)]).compile()?;
        let features = to_array2(&up.call(&[Tensor::from(data.clone())])?[0])?;
        top.init_visible_bias(&features)?;
        train(1, &DoubledHidden(&top), &features)?;

        self.w1.set_value(bottom.w.get_value()?)?;
        self.vbias.set_value(bottom.vbias.get_value()?)?;
        self.w2.set_value(top.w.get_value()?)?;
        self.h2bias.set_value(top.hbias.get_value()?)?;
        let (c_bottom, c_top) = (bottom.hbias.get_value()?, top.vbias.get_value()?);
        let mean: Vec<f64> = c_bottom
            .to_f64_vec()
            .iter()
            .zip(c_top.to_f64_vec())
            .map(|(a, b)| 0.5 * (a + b))
            .collect();
        self.h1bias.set_value(ndarray::Array1::from_iter(
            mean.into_iter().map(|x| x as f32),
        ))?;
        Ok(curves)
    }
}
