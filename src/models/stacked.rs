//! Stacked denoising autoencoders (Vincent et al. 2008; the Theano tutorial's `SdA.py`):
//! greedy layer-wise pretraining, each layer a denoising autoencoder of the codes of the
//! layers below it, then fine-tuning of the encoders with a softmax layer on top as a
//! multilayer perceptron.
//!
//! ```
//! use gradus::models::autoencoder::{AeConfig, Corruption};
//! use gradus::models::stacked::StackedAutoencoder;
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let rng = RandomStream::new(&g, 0);
//! let sda = StackedAutoencoder::new(&g, &[6, 4, 3], 2, &[Corruption::Masking(0.1); 2], 0).unwrap();
//! let x = Tensor::full(&[5, 6], 0.5, DType::F32);
//! for layer in 0..2 {
//!     let step = sda.pretrainer(layer, &AeConfig::default(), &rng).unwrap();
//!     step.call(&[x.clone()]).unwrap();
//! }
//! let finetune = sda.finetuner(&AeConfig::default()).unwrap();
//! let y = Tensor::from(vec![0i64, 1, 0, 1, 0]);
//! assert!(finetune.call(&[x, y]).unwrap()[0].item().unwrap() > 0.0);
//! ```

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::{Expr, Graph};
use crate::models::autoencoder::{AeConfig, Autoencoder, Corruption, Variant, Weights};
use crate::optim::as_pairs;
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// A stack of tied-weight denoising autoencoders with a softmax classifier on top.
#[derive(Clone, Debug)]
pub struct StackedAutoencoder {
    /// The layers, bottom first; layer `k` encodes the codes of layer `k - 1`.
    pub layers: Vec<Autoencoder>,
    /// Softmax weights `[top layer size, n_classes]`, zero at the start.
    pub w_out: Expr,
    /// Softmax biases `[n_classes]`.
    pub b_out: Expr,
    /// Number of classes.
    pub n_classes: usize,
}

impl StackedAutoencoder {
    /// `sizes` lists the input size then each layer's width (`[784, 1000, 1000, 1000]` in the
    /// tutorial); `corruption[k]` is layer `k`'s pretraining noise. Parameters are `f32`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] if `sizes` has fewer than two entries or `corruption` does not have one
    /// per layer.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        sizes: &[usize],
        n_classes: usize,
        corruption: &[Corruption],
        seed: u64,
    ) -> Result<StackedAutoencoder> {
        if sizes.len() < 2 || corruption.len() != sizes.len() - 1 {
            return Err(Error::Usage {
                what: format!(
                    "a stack of sizes {sizes:?} needs {} corruption levels, got {}",
                    sizes.len().saturating_sub(1),
                    corruption.len()
                ),
                loc: Location::caller(),
            });
        }
        let layers = sizes
            .windows(2)
            .zip(corruption)
            .enumerate()
            .map(|(k, (io, c))| {
                Autoencoder::new(
                    graph,
                    io[0],
                    io[1],
                    Weights::Tied,
                    seed.wrapping_add(k as u64),
                )
                .with_variant(Variant::Denoising(*c))
            })
            .collect();
        let top = sizes[sizes.len() - 1];
        Ok(StackedAutoencoder {
            layers,
            w_out: graph.shared("W_out", Tensor::full(&[top, n_classes], 0.0, DType::F32)),
            b_out: graph.shared("b_out", Tensor::full(&[n_classes], 0.0, DType::F32)),
            n_classes,
        })
    }

    /// The codes of the first `depth` layers applied to `x` (no corruption).
    #[track_caller]
    pub fn features(&self, x: &Expr, depth: usize) -> Expr {
        self.layers[..depth]
            .iter()
            .fold(x.clone(), |h, layer| layer.encode(&h))
    }

    /// The classifier's logits: the softmax layer on the top layer's code.
    #[track_caller]
    pub fn logits(&self, x: &Expr) -> Expr {
        self.features(x, self.layers.len()).matmul(&self.w_out) + &self.b_out
    }

    /// The parameters fine-tuning trains: each encoder's `W` and `hbias`, then the softmax
    /// layer's. The decoders' biases are left out: the classifier does not use them.
    pub fn params(&self) -> Vec<&Expr> {
        self.layers
            .iter()
            .flat_map(|l| [&l.w, &l.hbias])
            .chain([&self.w_out, &self.b_out])
            .collect()
    }

    fn input(&self, name: &str) -> Expr {
        let n = self.layers[0].n_visible;
        self.w_out.graph().input(name, DType::F32, &[None, Some(n)])
    }

    /// A compiled pretraining step of layer `k`: input a minibatch of raw inputs `x`, output
    /// layer `k`'s denoising loss on the codes of the layers below, and update layer `k` only.
    pub fn pretrainer(&self, k: usize, cfg: &AeConfig, rng: &RandomStream) -> Result<Function> {
        let x = self.input("x");
        let layer = &self.layers[k];
        let loss = layer.loss(&self.features(&x, k), rng)?;
        layer.training_step(&x, &loss, cfg)
    }

    /// A compiled fine-tuning step: inputs `x` and `i64` labels `y`, output the mean softmax
    /// cross-entropy, and update every encoder and the softmax layer (with `cfg`'s weight
    /// decay on the weight matrices).
    pub fn finetuner(&self, cfg: &AeConfig) -> Result<Function> {
        let x = self.input("x");
        let y = self.w_out.graph().input("y", DType::I64, &[None]);
        let loss = self.logits(&x).softmax_cross_entropy(&y).mean();
        let params = self.params();
        let grads = grad(&loss, &params)?;
        let (weights, biases): (Vec<usize>, Vec<usize>) =
            (0..params.len()).partition(|i| i % 2 == 0);
        let pick = |idx: &[usize]| -> (Vec<&Expr>, Vec<Expr>) {
            idx.iter().map(|&i| (params[i], grads[i].clone())).unzip()
        };
        let (pw, gw) = pick(&weights);
        let (pb, gb) = pick(&biases);
        let updates = cfg.updates((&pw, &gw), (&pb, &gb))?;
        function(&[&x, &y], &[&loss])
            .updates(&as_pairs(&updates))
            .compile()
    }

    /// A compiled classifier: `x -> ` predicted class (`i64`) per row.
    pub fn predictor(&self) -> Result<Function> {
        let x = self.input("x_predict");
        function(&[&x], &[&self.logits(&x).argmax(1)]).compile()
    }
}
