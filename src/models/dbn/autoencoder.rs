//! The deep autoencoder of Hinton & Salakhutdinov (2006): a pretrained DBN unrolled into an
//! encoder (the RBMs' up pass) and a decoder (their down pass, in reverse), then fine-tuned by
//! backprop on the cross-entropy of the reconstruction.

use super::{Dbn, to_array2};
use crate::dtype::DType;
use crate::error::Result;
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::Expr;
use crate::models::{cross_entropy_per_row, squared_error};
use crate::optim::{Optimizer, as_pairs};

/// An unrolled DBN. The encoder reads the RBMs' own shared `W` and hidden biases, so
/// fine-tuning moves the DBN's recognition weights; the decoder starts as copies of each
/// RBM's `Wᵀ` and visible biases in new shared variables, so the two halves are tied at the
/// start and free afterwards. The code layer is linear when the DBN's top is
/// [`super::TopUnits::Linear`], logistic otherwise; every other layer is logistic.
#[derive(Clone, Debug)]
pub struct DeepAutoencoder {
    /// `(W [n_in, n_out], b)` per encoder layer, bottom first (the RBMs' variables).
    pub encoder: Vec<(Expr, Expr)>,
    /// `(W [n_in, n_out], b)` per decoder layer, from the code down to the pixels.
    pub decoder: Vec<(Expr, Expr)>,
    linear_code: bool,
}

impl Dbn {
    /// Unroll into a [`DeepAutoencoder`]: encoder `sizes[0] -> ... -> sizes[L]`, decoder back.
    pub fn unroll_autoencoder(&self) -> Result<DeepAutoencoder> {
        let g = self.graph();
        let encoder = self
            .rbms
            .iter()
            .map(|r| (r.w.clone(), r.hbias.clone()))
            .collect();
        let decoder = self
            .rbms
            .iter()
            .enumerate()
            .rev()
            .map(|(l, r)| {
                let wt = to_array2(&r.w.get_value()?)?.t().to_owned();
                Ok((
                    g.shared(&format!("W_dec{l}"), wt),
                    g.shared(&format!("b_dec{l}"), r.vbias.get_value()?),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DeepAutoencoder {
            encoder,
            decoder,
            linear_code: self.linear(self.depth() - 1),
        })
    }
}

impl DeepAutoencoder {
    /// The code of each row of `x`.
    #[track_caller]
    pub fn encode(&self, x: &Expr) -> Expr {
        let n = self.encoder.len();
        let mut h = x.clone();
        for (l, (w, b)) in self.encoder.iter().enumerate() {
            let pre = h.matmul(w) + b;
            h = if self.linear_code && l + 1 == n {
                pre
            } else {
                pre.sigmoid()
            };
        }
        h
    }

    /// The logits of the reconstruction from a code.
    #[track_caller]
    pub fn decode_logits(&self, code: &Expr) -> Expr {
        let n = self.decoder.len();
        let mut h = code.clone();
        for (l, (w, b)) in self.decoder.iter().enumerate() {
            let pre = h.matmul(w) + b;
            h = if l + 1 == n { pre } else { pre.sigmoid() };
        }
        h
    }

    /// The reconstruction `sigmoid(decode_logits(encode(x)))`.
    #[track_caller]
    pub fn reconstruct(&self, x: &Expr) -> Expr {
        self.decode_logits(&self.encode(x)).sigmoid()
    }

    /// The training loss: cross-entropy of the reconstruction summed over pixels, mean over rows.
    #[track_caller]
    pub fn cross_entropy(&self, x: &Expr) -> Expr {
        cross_entropy_per_row(&self.decode_logits(&self.encode(x)), x)
    }

    /// Squared reconstruction error summed over pixels, mean over rows: the measure of the
    /// 2006 paper (3.00 on the MNIST test set after full training).
    #[track_caller]
    pub fn squared_error(&self, x: &Expr) -> Expr {
        squared_error(x, &self.reconstruct(x))
    }

    /// All parameters, encoder then decoder.
    pub fn params(&self) -> Vec<&Expr> {
        self.encoder
            .iter()
            .chain(&self.decoder)
            .flat_map(|(w, b)| [w, b])
            .collect()
    }

    fn input(&self) -> Expr {
        let w = &self.encoder[0].0;
        w.graph()
            .input("x", DType::F32, &[None, w.shape().dims()[0]])
    }

    /// A compiled training step: inputs `x [n, d]` and the learning rate (`f32` scalar); output
    /// the cross-entropy before the step; SGD with `momentum` and L2 `weight_decay` on the
    /// weight matrices.
    pub fn trainer(&self, momentum: f64, weight_decay: f64) -> Result<Function> {
        let x = self.input();
        let lr = x.graph().scalar("lr", DType::F32);
        let loss = self.cross_entropy(&x);
        let all: Vec<(&Expr, &Expr)> = self
            .encoder
            .iter()
            .chain(&self.decoder)
            .map(|(w, b)| (w, b))
            .collect();
        let weights: Vec<&Expr> = all.iter().map(|p| p.0).collect();
        let biases: Vec<&Expr> = all.iter().map(|p| p.1).collect();
        let gw = grad(&loss, &weights)?;
        let gb = grad(&loss, &biases)?;
        let opt = Optimizer::momentum(0.0, momentum).learning_rate(&lr);
        let mut updates = opt
            .clone()
            .weight_decay(weight_decay)
            .updates(&weights, &gw)?;
        updates.extend(opt.updates(&biases, &gb)?);
        function(&[&x, &lr], &[&loss])
            .updates(&as_pairs(&updates))
            .compile()
    }

    /// A compiled evaluation: `x` to `[cross-entropy, squared error]` (both means per row).
    pub fn evaluator(&self) -> Result<Function> {
        let x = self.input();
        function(&[&x], &[&self.cross_entropy(&x), &self.squared_error(&x)]).compile()
    }

    /// A compiled reconstruction: `x` to `sigmoid(decode(encode(x)))`.
    pub fn reconstructor(&self) -> Result<Function> {
        let x = self.input();
        function(&[&x], &[&self.reconstruct(&x)]).compile()
    }

    /// A compiled encoder: `x` to its codes.
    pub fn coder(&self) -> Result<Function> {
        let x = self.input();
        function(&[&x], &[&self.encode(&x)]).compile()
    }
}
