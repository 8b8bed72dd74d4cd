//! Discriminative fine-tuning: the DBN read as a feed-forward sigmoid network with a softmax
//! layer on top, trained by backprop on the cross-entropy of the labels.

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::Dbn;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::Expr;
use crate::optim::{Optimizer, as_pairs};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// Settings of a fine-tuning step; the learning rate is an input of the compiled step, so the
/// caller owns the schedule. The defaults are those of `examples/dbn.rs` (2.2-2.7% test error
/// on the bundled MNIST subset with lr 0.2 / (1 + 0.05 epoch), batch 50, 30 epochs).
#[derive(Clone, Debug)]
pub struct FineTuneConfig {
    /// Momentum of the parameter velocities.
    pub momentum: f64,
    /// L2 weight decay on the weight matrices (not the biases).
    pub weight_decay: f64,
    /// Probability of keeping an input pixel in training (1: no input dropout).
    pub keep_input: f64,
    /// Probability of keeping a hidden unit in training (1: no dropout).
    pub keep_hidden: f64,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        FineTuneConfig {
            momentum: 0.9,
            weight_decay: 1e-5,
            keep_input: 0.8,
            keep_hidden: 0.5,
        }
    }
}

/// A DBN as a classifier: `h_l = sigmoid(h_{l-1} W_l + c_l)` with each RBM's own `W` and hidden
/// bias (a linear top stays linear), then `softmax(h_L V + d)`.
#[derive(Clone, Debug)]
pub struct Classifier {
    /// `(W, b)` per layer, bottom first: the RBMs' shared weights and hidden biases (training
    /// the classifier updates them), then the new softmax layer's.
    pub layers: Vec<(Expr, Expr)>,
    /// Whether the last hidden layer is linear (a [`super::TopUnits::Linear`] DBN).
    linear_top: bool,
}

impl Dbn {
    /// A classifier on top of this DBN with `n_classes` softmax outputs, the new weights drawn
    /// from N(0, 0.01²) with `seed`.
    pub fn classifier(&self, n_classes: usize, seed: u64) -> Result<Classifier> {
        let g = self.graph();
        let top = self.rbms[self.depth() - 1].n_hidden;
        let normal = Normal::new(0.0f32, 0.01).map_err(|e| Error::Data {
            path: "<init>".into(),
            reason: e.to_string(),
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let v = Array2::from_shape_fn((top, n_classes), |_| normal.sample(&mut rng));
        let mut layers: Vec<(Expr, Expr)> = self
            .rbms
            .iter()
            .map(|r| (r.w.clone(), r.hbias.clone()))
            .collect();
        layers.push((
            g.shared("W_out", v),
            g.shared("b_out", Array1::<f32>::zeros(n_classes)),
        ));
        Ok(Classifier {
            layers,
            linear_top: self.linear(self.depth() - 1),
        })
    }
}

impl Classifier {
    /// The logits `[n, classes]` for inputs `x`; with `dropout = Some((keep_input,
    /// keep_hidden, rng))` each input and hidden unit is kept with that probability and scaled
    /// by its inverse (masks drawn in the graph).
    #[track_caller]
    pub fn logits_with(&self, x: &Expr, dropout: Option<(f64, f64, &RandomStream)>) -> Expr {
        let drop = |h: Expr, keep: f64| match dropout {
            Some((_, _, rng)) if keep < 1.0 => {
                let mask = rng.uniform(&h).lt(keep).cast(h.dtype());
                &(&h * &mask) * (1.0 / keep)
            }
            _ => h,
        };
        let n = self.layers.len();
        let mut h = drop(x.clone(), dropout.map_or(1.0, |d| d.0));
        for (l, (w, b)) in self.layers[..n - 1].iter().enumerate() {
            let pre = h.matmul(w) + b;
            h = if self.linear_top && l == n - 2 {
                pre
            } else {
                pre.sigmoid()
            };
            h = drop(h, dropout.map_or(1.0, |d| d.1));
        }
        let (w, b) = &self.layers[n - 1];
        h.matmul(w) + b
    }

    /// The logits of the deterministic network (no dropout), as used for prediction.
    #[track_caller]
    pub fn logits(&self, x: &Expr) -> Expr {
        self.logits_with(x, None)
    }

    /// All parameters, weights then biases per layer, bottom first.
    pub fn params(&self) -> Vec<&Expr> {
        self.layers.iter().flat_map(|(w, b)| [w, b]).collect()
    }

    fn input(&self) -> Expr {
        let w = &self.layers[0].0;
        let d = w.shape().dims()[0];
        w.graph().input("x", DType::F32, &[None, d])
    }

    /// A compiled training step: inputs `x [n, d]` (`f32`), labels `y [n]` (`i64`) and the
    /// learning rate (`f32` scalar); output the mean cross-entropy of the (dropout) network;
    /// update every layer's weights and biases by SGD with momentum.
    pub fn trainer(&self, cfg: &FineTuneConfig, rng: &RandomStream) -> Result<Function> {
        let x = self.input();
        let g = x.graph().clone();
        let y = g.input("y", DType::I64, &[None]);
        let lr = g.scalar("lr", DType::F32);
        let dropout = (cfg.keep_input < 1.0 || cfg.keep_hidden < 1.0).then_some((
            cfg.keep_input,
            cfg.keep_hidden,
            rng,
        ));
        let loss = self
            .logits_with(&x, dropout)
            .softmax_cross_entropy(&y)
            .mean();
        let weights: Vec<&Expr> = self.layers.iter().map(|(w, _)| w).collect();
        let biases: Vec<&Expr> = self.layers.iter().map(|(_, b)| b).collect();
        let gw = grad(&loss, &weights)?;
        let gb = grad(&loss, &biases)?;
        let opt = Optimizer::momentum(0.0, cfg.momentum).learning_rate(&lr);
        let mut updates = opt
            .clone()
            .weight_decay(cfg.weight_decay)
            .updates(&weights, &gw)?;
        updates.extend(opt.updates(&biases, &gb)?);
        function(&[&x, &y, &lr], &[&loss])
            .updates(&as_pairs(&updates))
            .compile()
    }

    /// A compiled prediction: `x [n, d]` to the most probable class of each row (`i64`).
    pub fn predictor(&self) -> Result<Function> {
        let x = self.input();
        function(&[&x], &[&self.logits(&x).argmax(1)]).compile()
    }

    /// A compiled mean cross-entropy of the deterministic network: inputs `x`, `y`.
    pub fn loss(&self) -> Result<Function> {
        let x = self.input();
        let y = x.graph().input("y", DType::I64, &[None]);
        let loss = self.logits(&x).softmax_cross_entropy(&y).mean();
        function(&[&x, &y], &[&loss]).compile()
    }

    /// The current parameter values, to restore the best epoch when stopping early.
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.params().iter().map(|p| p.get_value()).collect()
    }

    /// Set the parameters to values from [`Classifier::snapshot`].
    pub fn restore(&self, values: &[Tensor]) -> Result<()> {
        for (p, v) in self.params().iter().zip(values) {
            p.set_value(v.clone())?;
        }
        Ok(())
    }
}
