//! One-hidden-layer autoencoders with sigmoid units: plain, denoising (Vincent et al. 2008),
//! sparse (the UFLDL notes) and contractive (Rifai et al. 2011), following the Theano
//! deep-learning tutorial's `dA.py` and `cA.py`.
//!
//! The code is `h = sigmoid(x W + c)` and the reconstruction `z = sigmoid(h W' + b)`, with
//! `W' = Wᵀ` (tied) or a matrix of its own (untied). The loss is the cross-entropy of `z`
//! against the *clean* input, computed from the decoder's logits
//! ([`Expr::binary_cross_entropy_with_logits`]) so it stays finite when `z` saturates, plus the
//! variant's penalty. Corruption noise is drawn inside the graph from a
//! [`RandomStream`], and the contractive penalty `‖∂h/∂x‖²_F` is built with [`grad`] inside the
//! graph, so `grad` differentiates a gradient to train it.
//!
//! ```
//! use gradus::models::autoencoder::{AeConfig, Autoencoder, Corruption, Variant, Weights};
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let rng = RandomStream::new(&g, 1);
//! let ae = Autoencoder::new(&g, 6, 3, Weights::Tied, 1)
//!     .with_variant(Variant::Denoising(Corruption::Masking(0.3)));
//! let step = ae.trainer(&AeConfig::default(), &rng).unwrap();
//! let x = Tensor::full(&[4, 6], 0.5, DType::F32);
//! let first = step.call(&[x.clone()]).unwrap()[0].item().unwrap();
//! assert!(first > 0.0);
//! ```

use crate::models::{cross_entropy_per_row, squared_error};
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::{Expr, Graph};
use crate::optim::{Optimizer, as_pairs};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// Whether the decoder reuses the encoder's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// Decoder weights `Wᵀ` (the dA tutorial's choice): `D·H + H + D` parameters.
    Tied,
    /// A separate decoder matrix `W' [H, D]`: `2·D·H + H + D` parameters.
    Untied,
}

/// How a denoising autoencoder corrupts its input before encoding it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Corruption {
    /// Masking noise: each input is set to 0 with this probability (ν in Vincent et al.).
    Masking(f64),
    /// Additive isotropic Gaussian noise with this standard deviation.
    Gaussian(f64),
}

/// How the contractive penalty's Jacobian is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jacobian {
    /// With [`grad`] inside the graph: each row of the input is copied once per hidden unit
    /// so one reverse sweep yields every row of `∂h/∂x` (a `[batch, H, D]` tensor). Exact for
    /// any encoder; costs `O(batch·H·D)` elementwise work, about as much as DLT's `cA.py`.
    Grad,
    /// The sigmoid closed form `Σ_j (h_j(1-h_j))² Σ_i W_ij²`: `O(batch·H + D·H)`. The test
    /// oracle of [`Jacobian::Grad`], and the fast choice for wide layers.
    ClosedForm,
}

/// The autoencoder family: what is added to, or done before, the reconstruction loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Variant {
    /// Reconstruction loss only.
    Plain,
    /// Reconstruct the clean input from a corrupted one.
    Denoising(Corruption),
    /// `beta · Σ_j KL(rho ‖ rho_hat_j)`, `rho_hat_j` the batch mean of hidden unit `j`.
    Sparse {
        /// Target mean activation.
        rho: f64,
        /// Weight of the penalty.
        beta: f64,
    },
    /// `lambda · mean over the batch of ‖∂h/∂x‖²_F`.
    Contractive {
        /// Weight of the penalty.
        lambda: f64,
        /// How the Jacobian is formed.
        jacobian: Jacobian,
    },
}

impl Variant {
    /// A short name: `plain`, `denoising`, `sparse` or `contractive`.
    pub fn name(&self) -> &'static str {
        match self {
            Variant::Plain => "plain",
            Variant::Denoising(_) => "denoising",
            Variant::Sparse { .. } => "sparse",
            Variant::Contractive { .. } => "contractive",
        }
    }
}

/// Hyper-parameters of minibatch training. The defaults are the dA tutorial's: plain SGD
/// with learning rate 0.1 on batches of 20.
#[derive(Clone, Debug)]
pub struct AeConfig {
    /// Learning rate.
    pub lr: f64,
    /// Momentum of the parameter velocities (0: plain SGD).
    pub momentum: f64,
    /// L2 weight decay on the weight matrices (not the biases).
    pub weight_decay: f64,
    /// Minibatch size (used by callers that slice the data; the step takes any batch size).
    pub batch: usize,
}

impl Default for AeConfig {
    fn default() -> Self {
        AeConfig {
            lr: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            batch: 20,
        }
    }
}

impl AeConfig {
    fn optimizer(&self) -> Optimizer {
        if self.momentum == 0.0 {
            Optimizer::sgd(self.lr)
        } else {
            Optimizer::momentum(self.lr, self.momentum)
        }
    }

    /// The updates of `weights` (with weight decay) and `biases` (without), given their
    /// gradients.
    pub(crate) fn updates(
        &self,
        weights: (&[&Expr], &[Expr]),
        biases: (&[&Expr], &[Expr]),
    ) -> Result<Vec<(Expr, Expr)>> {
        let mut updates = self
            .optimizer()
            .weight_decay(self.weight_decay)
            .updates(weights.0, weights.1)?;
        updates.extend(self.optimizer().updates(biases.0, biases.1)?);
        Ok(updates)
    }
}

/// A one-hidden-layer autoencoder whose parameters are expressions: shared variables for a
/// trainable model ([`Autoencoder::new`]), or anything else (symbolic inputs for a gradient
/// check) through [`Autoencoder::from_params`].
#[derive(Clone, Debug)]
pub struct Autoencoder {
    /// Encoder weights `[n_visible, n_hidden]`.
    pub w: Expr,
    /// Hidden biases `[n_hidden]`.
    pub hbias: Expr,
    /// Visible (reconstruction) biases `[n_visible]`.
    pub vbias: Expr,
    /// Decoder weights `[n_hidden, n_visible]` when untied; `None` means `Wᵀ`.
    pub w_dec: Option<Expr>,
    /// Number of visible units.
    pub n_visible: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
    /// What the loss adds to the reconstruction error.
    pub variant: Variant,
}

impl Autoencoder {
    /// A new plain autoencoder with `f32` parameters in `graph`: weights drawn from
    /// `U(±sqrt(6 / (n_visible + n_hidden)))`, biases zero.
    ///
    /// The dA tutorial draws from four times that range (Glorot's advice for sigmoid units).
    /// On MNIST the weights of pixels that are always 0 barely move from their start, so with
    /// the wider range the pictures of the filters stay speckled with the initial noise for
    /// many epochs; the reconstruction error ends up about the same either way.
    pub fn new(
        graph: &Graph,
        n_visible: usize,
        n_hidden: usize,
        weights: Weights,
        seed: u64,
    ) -> Autoencoder {
        Autoencoder::with_dtype(graph, n_visible, n_hidden, weights, DType::F32, seed)
    }

    /// [`Autoencoder::new`] with parameters of another float dtype (`f64` for gradient checks).
    pub fn with_dtype(
        graph: &Graph,
        n_visible: usize,
        n_hidden: usize,
        weights: Weights,
        dtype: DType,
        seed: u64,
    ) -> Autoencoder {
        let mut rng = StdRng::seed_from_u64(seed);
        let s = (6.0 / (n_visible + n_hidden) as f64).sqrt();
        let mut uniform = |rows, cols| {
            let a = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-s..s));
            Tensor::from(a).cast(dtype)
        };
        let w = graph.shared("W", uniform(n_visible, n_hidden));
        let w_dec = (weights == Weights::Untied)
            .then(|| graph.shared("W_dec", uniform(n_hidden, n_visible)));
        Autoencoder {
            w,
            hbias: graph.shared("hbias", Tensor::full(&[n_hidden], 0.0, dtype)),
            vbias: graph.shared("vbias", Tensor::full(&[n_visible], 0.0, dtype)),
            w_dec,
            n_visible,
            n_hidden,
            variant: Variant::Plain,
        }
    }

    /// An autoencoder over given parameter expressions (`w [D, H]`, `hbias [H]`, `vbias [D]`,
    /// and `w_dec [H, D]` when untied). The sizes come from `w`'s static shape.
    #[track_caller]
    pub fn from_params(
        w: &Expr,
        hbias: &Expr,
        vbias: &Expr,
        w_dec: Option<&Expr>,
    ) -> Result<Autoencoder> {
        let loc = Location::caller();
        let (n_visible, n_hidden) = match w.shape().dims() {
            [Some(d), Some(h)] => (*d, *h),
            _ => {
                return Err(Error::Usage {
                    what: format!(
                        "autoencoder weights need a static [D, H] shape, got {}",
                        w.ty()
                    ),
                    loc,
                });
            }
        };
        Ok(Autoencoder {
            w: w.clone(),
            hbias: hbias.clone(),
            vbias: vbias.clone(),
            w_dec: w_dec.cloned(),
            n_visible,
            n_hidden,
            variant: Variant::Plain,
        })
    }

    /// The same parameters trained as another variant.
    pub fn with_variant(mut self, variant: Variant) -> Autoencoder {
        self.variant = variant;
        self
    }

    /// The parameters' dtype.
    pub fn dtype(&self) -> DType {
        self.w.dtype()
    }

    /// The weight matrices: `[W]` tied, `[W, W_dec]` untied.
    pub fn weights(&self) -> Vec<&Expr> {
        std::iter::once(&self.w).chain(&self.w_dec).collect()
    }

    /// Every parameter: the weights, then `hbias` and `vbias`.
    pub fn params(&self) -> Vec<&Expr> {
        let mut p = self.weights();
        p.extend([&self.hbias, &self.vbias]);
        p
    }

    /// Number of scalar parameters.
    pub fn n_params(&self) -> usize {
        self.params()
            .iter()
            .map(|p| {
                p.shape()
                    .dims()
                    .iter()
                    .map(|d| d.unwrap_or(0))
                    .product::<usize>()
            })
            .sum()
    }

    /// `x W + c`, the hidden units' input.
    #[track_caller]
    pub fn hidden_logits(&self, x: &Expr) -> Expr {
        x.matmul(&self.w) + &self.hbias
    }

    /// The code `h = sigmoid(x W + c)`.
    #[track_caller]
    pub fn encode(&self, x: &Expr) -> Expr {
        self.hidden_logits(x).sigmoid()
    }

    /// `h W' + b`, the reconstruction's logits.
    #[track_caller]
    pub fn decode_logits(&self, h: &Expr) -> Expr {
        match &self.w_dec {
            Some(w) => h.matmul(w) + &self.vbias,
            None => h.matmul(&self.w.t()) + &self.vbias,
        }
    }

    /// The reconstruction `z = sigmoid(h W' + b)` of a code.
    #[track_caller]
    pub fn decode(&self, h: &Expr) -> Expr {
        self.decode_logits(h).sigmoid()
    }

    /// `decode(encode(x))`, without corruption.
    #[track_caller]
    pub fn reconstruct(&self, x: &Expr) -> Expr {
        self.decode(&self.encode(x))
    }

    /// The variant's corruption of `x` (the identity unless denoising).
    #[track_caller]
    pub fn corrupt(&self, x: &Expr, rng: &RandomStream) -> Expr {
        match self.variant {
            Variant::Denoising(Corruption::Masking(nu)) => {
                x * &rng.bernoulli(&x.scalar_like(1.0 - nu).broadcast_like(x))
            }
            Variant::Denoising(Corruption::Gaussian(std)) => x + &(rng.normal(x) * std),
            _ => x.clone(),
        }
    }

    /// Cross-entropy of the reconstruction of `input` against `target`, summed over the
    /// visible units and averaged over the rows.
    #[track_caller]
    pub fn cross_entropy(&self, input: &Expr, target: &Expr) -> Expr {
        cross_entropy_per_row(&self.decode_logits(&self.encode(input)), target)
    }

    /// Squared reconstruction error `|x - z|²` per row, averaged over the rows.
    #[track_caller]
    pub fn squared_error(&self, x: &Expr) -> Expr {
        squared_error(x, &self.reconstruct(x))
    }

    /// `Σ_j KL(rho ‖ rho_hat_j)` with `rho_hat` the mean of the code `h` over the rows.
    #[track_caller]
    pub fn sparsity_penalty(&self, h: &Expr, rho: f64) -> Expr {
        // Clipped so a dead or saturated unit costs a large but finite amount.
        let rho_hat = h.mean_axes(&[0], false).clip(1e-6, 1.0 - 1e-6);
        let on = (rho.ln() - &rho_hat.log()) * rho;
        let off = ((1.0 - rho).ln() - &(1.0 - &rho_hat).log()) * (1.0 - rho);
        (on + off).sum()
    }

    /// The contractive penalty `‖∂h/∂x‖²_F` averaged over the rows of `x`, its Jacobian built
    /// with [`grad`] inside the graph (see [`Jacobian::Grad`]).
    #[track_caller]
    pub fn contractive_penalty(&self, x: &Expr) -> Result<Expr> {
        let (n_hidden, dtype) = (self.n_hidden, self.dtype());
        // x3[b, j, :] = x[b, :]: one copy of each row per hidden unit, and unit j reads only its
        // own copy, so the gradient of Σ h3 with respect to x3 keeps the units apart: its
        // [b, j, :] slice is row j of the Jacobian of h at x_b. Differentiating x itself would
        // give only the column sums Σ_j ∂h_j/∂x.
        let zeros = x
            .graph()
            .constant(Tensor::full(&[1, n_hidden, 1], 0.0, dtype));
        let x3 = x.expand_dims(&[1]) + &zeros;
        let a3 = (&x3 * &self.w.t().expand_dims(&[0])).sum_axes(&[2], false) + &self.hbias;
        let jac = grad(&a3.sigmoid().sum(), &[&x3])?.remove(0);
        Ok(jac.square().sum_axes(&[1, 2], false).mean())
    }

    /// The contractive penalty in closed form for sigmoid units:
    /// `mean_b Σ_j (h_bj (1 - h_bj))² Σ_i W_ij²`.
    #[track_caller]
    pub fn contractive_penalty_closed_form(&self, x: &Expr) -> Expr {
        let h = self.encode(x);
        let slope = (&h * &(1.0 - &h)).square();
        let col_norms = self.w.square().sum_axes(&[0], false);
        (slope * col_norms).sum_axes(&[1], false).mean()
    }

    /// The training objective on a batch `x`: the cross-entropy of the reconstruction of the
    /// (corrupted) input against the clean `x`, plus the variant's penalty.
    #[track_caller]
    pub fn loss(&self, x: &Expr, rng: &RandomStream) -> Result<Expr> {
        let input = self.corrupt(x, rng);
        let rec = self.cross_entropy(&input, x);
        Ok(match self.variant {
            Variant::Plain | Variant::Denoising(_) => rec,
            Variant::Sparse { rho, beta } => {
                rec + self.sparsity_penalty(&self.encode(x), rho) * beta
            }
            Variant::Contractive { lambda, jacobian } => {
                let penalty = match jacobian {
                    Jacobian::Grad => self.contractive_penalty(x)?,
                    Jacobian::ClosedForm => self.contractive_penalty_closed_form(x),
                };
                rec + penalty * lambda
            }
        })
    }

    /// A compiled training step: input a minibatch `x [batch, n_visible]` of values in
    /// `[0, 1]` (in the parameters' dtype), output the loss, and update the parameters (and
    /// their velocities, with momentum).
    pub fn trainer(&self, cfg: &AeConfig, rng: &RandomStream) -> Result<Function> {
        let x = self.batch_input("x");
        let loss = self.loss(&x, rng)?;
        self.training_step(&x, &loss, cfg)
    }

    /// A compiled step from input `x` (of this autoencoder or of a stack it is a layer of):
    /// output `loss` and update this autoencoder's parameters as `cfg` says.
    pub(crate) fn training_step(&self, x: &Expr, loss: &Expr, cfg: &AeConfig) -> Result<Function> {
        let params = self.params();
        let grads = grad(loss, &params)?;
        let n_w = self.weights().len();
        let updates = cfg.updates(
            (&params[..n_w], &grads[..n_w]),
            (&params[n_w..], &grads[n_w..]),
        )?;
        function(&[x], &[loss])
            .updates(&as_pairs(&updates))
            .compile()
    }

    /// A compiled evaluation on clean inputs `x`: outputs the cross-entropy and the squared
    /// error of the reconstruction, each summed over the visible units and averaged over rows.
    pub fn evaluator(&self) -> Result<Function> {
        let x = self.batch_input("x_eval");
        function(
            &[&x],
            &[&self.cross_entropy(&x, &x), &self.squared_error(&x)],
        )
        .compile()
    }

    /// A compiled `x -> (h, z)`: codes and reconstructions.
    pub fn reconstructor(&self) -> Result<Function> {
        let x = self.batch_input("x_rec");
        let h = self.encode(&x);
        function(&[&x], &[&h, &self.decode(&h)]).compile()
    }

    /// The encoder weights as `f32` rows, one per hidden unit (`Wᵀ`): the filters to tile.
    #[track_caller]
    pub fn filters(&self) -> Result<Array2<f32>> {
        let w = self.w.get_value()?.cast(DType::F32);
        let w = w.as_f32().ok_or_else(|| Error::Usage {
            what: "filters: weights did not cast to f32".into(),
            loc: Location::caller(),
        })?;
        let w = w
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|e| Error::Usage {
                what: format!("filters: {e}"),
                loc: Location::caller(),
            })?;
        Ok(w.t().to_owned())
    }

    fn batch_input(&self, name: &str) -> Expr {
        self.w
            .graph()
            .input(name, self.dtype(), &[None, Some(self.n_visible)])
    }
}
