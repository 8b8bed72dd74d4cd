//! A user-defined RBM trained by the library's CD trainer: binary visible units and *bipolar*
//! hidden units, `h ∈ {-1, +1}`, written outside gradus through the public
//! [`EnergyModel`](gradus::models::cd::EnergyModel) trait.
//!
//! With the energy `E(v, h) = -v·b - h·c - vᵀW h` and `a = c + vW`, summing out each hidden
//! unit over `{-1, +1}` gives `F(v) = -v·b - Σ_j log(e^{a_j} + e^{-a_j})`, the hidden unit is
//! +1 with probability `sigmoid(2 a_j)` and its mean is `tanh(a_j)`. The visible side is the
//! binary RBM's, so the trait's default visible sampler serves.
//!
//! `cargo run --release --example rbm_bipolar -- [EPOCHS]` trains 784-64 by CD-1 on the bundled
//! digits and prints the reconstruction error per epoch.

use gradus::Result;
use gradus::data::Mnist;
use gradus::models::cd::{Cd, EnergyModel};
use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;

// ANCHOR: model
/// An RBM with bipolar (`±1`) hidden units.
pub struct BipolarRbm {
    w: Expr,
    vbias: Expr,
    hbias: Expr,
    units: (usize, usize),
}

impl BipolarRbm {
    /// Parameters made as the library's RBM makes them: `W ~ N(0, 0.01²)`, biases zero.
    pub fn new(g: &Graph, n_visible: usize, n_hidden: usize, seed: u64) -> Result<BipolarRbm> {
        let Rbm {
            w, vbias, hbias, ..
        } = Rbm::new(g, n_visible, n_hidden, seed)?;
        Ok(BipolarRbm {
            w,
            vbias,
            hbias,
            units: (n_visible, n_hidden),
        })
    }

    /// The hidden units' input `a = c + vW`.
    fn hidden_input(&self, v: &Expr) -> Expr {
        v.matmul(&self.w) + &self.hbias
    }
}

impl EnergyModel for BipolarRbm {
    fn units(&self) -> (usize, usize) {
        self.units
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.vbias, &self.hbias]
    }
    /// `-v·b - Σ log(2 cosh a)`, with `log(2 cosh a) = a + softplus(-2a)` (stable both ways).
    fn free_energy(&self, v: &Expr) -> Expr {
        let a = self.hidden_input(v);
        let vb = v.matmul(&self.vbias.expand_dims(&[1])).squeeze(&[1]);
        -(vb + (&a + (&a * -2.0).softplus()).sum_axes(&[1], false))
    }
    fn hidden_mean(&self, v: &Expr) -> Expr {
        self.hidden_input(v).tanh()
    }
    fn visible_mean(&self, h: &Expr) -> Expr {
        (h.matmul(&self.w.t()) + &self.vbias).sigmoid()
    }
    /// `+1` with probability `sigmoid(2a)`, else `-1`.
    fn sample_hidden(&self, v: &Expr, rng: &RandomStream) -> Expr {
        rng.bernoulli(&(self.hidden_input(v) * 2.0).sigmoid()) * 2.0 - 1.0
    }
}
// ANCHOR_END: model

// ANCHOR: train
/// Train a 784-`n_hidden` bipolar RBM by CD-1 on the rows of `data`, `epochs` passes in
/// shuffled minibatches of 20; the mean reconstruction error of each epoch.
pub fn train(data: &Array2<f32>, n_hidden: usize, epochs: usize, seed: u64) -> Result<Vec<f64>> {
    let g = Graph::new();
    let rbm = BipolarRbm::new(&g, data.ncols(), n_hidden, seed)?;
    let cfg = CdConfig::default(); // CD-1, lr 0.1, momentum 0.5, weight decay 2e-4, batch 20
    let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, seed)).compile()?;
    let mut order = StdRng::seed_from_u64(seed);
    (0..epochs)
        .map(|_| trainer.epoch(data, &mut order, |_done, _of, _running_mean| {}))
        .collect()
}
// ANCHOR_END: train

fn main() -> Result<()> {
    let epochs = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let digits = Mnist::bundled()?.train_images;
    for (epoch, error) in train(&digits, 64, epochs, 1)?.iter().enumerate() {
        println!("epoch {:2}  reconstruction error {error:7.3}", epoch + 1);
    }
    Ok(())
}
