//! Deep belief nets: a stack of RBMs trained greedily, one layer at a time, each on the hidden
//! probabilities of the layer below (Hinton, Osindero & Teh 2006). A trained stack is then
//! used three ways:
//!
//! * as a generative model: alternating Gibbs sampling in the top RBM, then one deterministic
//!   top-down pass through the lower layers' `P(v | h)` ([`Dbn::generator`]);
//! * as the initialisation of a sigmoid network fine-tuned by backprop on labels
//!   ([`Dbn::classifier`], [`Classifier`]);
//! * unrolled into a deep autoencoder fine-tuned on reconstruction ([`Dbn::unroll_autoencoder`],
//!   [`DeepAutoencoder`]; Hinton & Salakhutdinov 2006).
//!
//! [`GenerativeDbn`] is the paper's own model: labels joined to the top RBM
//! ([`LabelledRbm`]), so that it draws a digit of a chosen class, and contrastive wake-sleep
//! fine-tuning with the up and down weights untied ([`GenerativeDbn::up_down`]).
//!
//! The classifier and the autoencoder's encoder compute with the RBMs' own shared variables,
//! so fine-tuning them changes the DBN itself.
//!
//! ```no_run
//! use gradus::data::Mnist;
//! use gradus::models::CdConfig;
//! use gradus::models::dbn::{Dbn, LayerSchedule};
//! use gradus::random::RandomStream;
//! use gradus::prelude::*;
//!
//! let mnist = Mnist::bundled()?;
//! let g = Graph::new();
//! let rng = RandomStream::new(&g, 1);
//! let dbn = Dbn::new(&g, &[784, 500, 500], 1)?;
//! let schedule = vec![LayerSchedule { epochs: 10, cd: CdConfig::default() }; dbn.depth()];
//! dbn.pretrain(&mnist.train_images, &schedule, &rng, 1, |_| {})?;
//! let net = dbn.classifier(10, 1)?; // fine-tune with net.trainer(...)
//! # Ok::<(), gradus::Error>(())
//! ```

mod autoencoder;
mod classifier;
mod generative;
mod labelled;

pub use autoencoder::DeepAutoencoder;
pub use classifier::{Classifier, FineTuneConfig};
pub use generative::{GenerativeDbn, UpDownConfig, UpDownTrainer};
pub use labelled::LabelledRbm;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::graph::{Expr, Graph};
use crate::models::cd::{Cd, EnergyModel};
use crate::models::rbm::{CdConfig, Rbm};
use crate::models::unroll;
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// The hidden units of the top RBM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopUnits {
    /// Binary stochastic units, `P(h = 1 | v) = sigmoid(v W + c)`, as in every other layer.
    Binary,
    /// Linear units with unit-variance Gaussian noise, `h ~ N(v W + c, 1)`: the real-valued
    /// 30-d code of Hinton & Salakhutdinov's deep autoencoder (their `rbmhidlinear.m`). The free
    /// energy becomes `F(v) = -v·b - ½|v W + c|²` (up to a constant) and CD takes its gradient
    /// as for binary units. Such a layer wants a smaller learning rate: 0.001 over 50 epochs in
    /// `rbmhidlinear.m`, 0.03 over 10 in `examples/deep_autoencoder.rs`.
    Linear,
}

/// How long and how to train one layer during greedy pretraining.
#[derive(Clone, Debug)]
pub struct LayerSchedule {
    /// Passes over the layer's training data.
    pub epochs: usize,
    /// CD-k settings for this layer.
    pub cd: CdConfig,
}

/// Reported after every minibatch of [`Dbn::pretrain`].
#[derive(Clone, Debug)]
pub struct Progress {
    /// Layer being trained, 0 at the bottom.
    pub layer: usize,
    /// Epoch of that layer, from 0.
    pub epoch: usize,
    /// Minibatches done in this epoch.
    pub batch: usize,
    /// Minibatches in an epoch.
    pub batches: usize,
    /// Mean reconstruction error per example over this epoch's minibatches so far.
    pub error: f64,
}

/// A deep belief net: RBMs stacked bottom first, `rbms[l]` of size `sizes[l]`-`sizes[l + 1]`.
#[derive(Clone, Debug)]
pub struct Dbn {
    /// The stacked RBMs, bottom first.
    pub rbms: Vec<Rbm>,
    /// The hidden units of the top RBM.
    pub top: TopUnits,
}

/// The rows of an `f32` matrix tensor as an array.
pub(crate) fn to_array2(t: &Tensor) -> Result<Array2<f32>> {
    let shape = t.shape().to_vec();
    let bad = || Error::Data {
        path: "<tensor>".into(),
        reason: format!(
            "expected an f32 matrix, got {:?} of shape {shape:?}",
            t.dtype()
        ),
    };
    t.as_f32()
        .ok_or_else(bad)?
        .clone()
        .into_dimensionality()
        .map_err(|_| bad())
}

impl Dbn {
    /// A DBN of binary RBMs with layer sizes `sizes` (visible first), weights drawn from
    /// N(0, 0.01²) with seeds `seed, seed + 1, ...`.
    #[track_caller]
    pub fn new(graph: &Graph, sizes: &[usize], seed: u64) -> Result<Dbn> {
        Dbn::with_top(graph, sizes, TopUnits::Binary, seed)
    }

    /// As [`Dbn::new`], choosing the top RBM's hidden units.
    #[track_caller]
    pub fn with_top(graph: &Graph, sizes: &[usize], top: TopUnits, seed: u64) -> Result<Dbn> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::Usage {
                what: format!("a DBN needs at least two non-zero layer sizes, got {sizes:?}"),
                loc: Location::caller(),
            });
        }
        let rbms = sizes
            .windows(2)
            .enumerate()
            .map(|(l, w)| Rbm::new(graph, w[0], w[1], seed.wrapping_add(l as u64)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Dbn { rbms, top })
    }

    /// Redraw every RBM's weights from N(0, std²) with seeds `seed, seed + 1, ...`. The
    /// practical guide's 0.01 (the default) is slow to break the symmetry between few hidden
    /// units on few examples; Hinton & Salakhutdinov's code uses 0.1.
    pub fn init_weights(&self, std: f32, seed: u64) -> Result<()> {
        for (l, rbm) in self.rbms.iter().enumerate() {
            let normal = Normal::new(0.0f32, std).map_err(|e| Error::Data {
                path: "<init>".into(),
                reason: e.to_string(),
            })?;
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(l as u64));
            rbm.w
                .set_value(Array2::from_shape_fn((rbm.n_visible, rbm.n_hidden), |_| {
                    normal.sample(&mut rng)
                }))?;
        }
        Ok(())
    }

    /// The graph holding the parameters.
    pub fn graph(&self) -> &Graph {
        self.rbms[0].w.graph()
    }

    /// Number of RBMs.
    pub fn depth(&self) -> usize {
        self.rbms.len()
    }

    /// Layer sizes, visible first.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![self.rbms[0].n_visible];
        s.extend(self.rbms.iter().map(|r| r.n_hidden));
        s
    }

    /// Whether layer `l`'s hidden units are linear.
    fn linear(&self, l: usize) -> bool {
        self.top == TopUnits::Linear && l + 1 == self.rbms.len()
    }

    /// Layer `l`'s hidden activity given its input: probabilities, or means for a linear top.
    #[track_caller]
    pub fn layer_up(&self, l: usize, v: &Expr) -> Expr {
        let rbm = &self.rbms[l];
        if self.linear(l) {
            v.matmul(&rbm.w) + &rbm.hbias
        } else {
            rbm.hidden_probs(v)
        }
    }

    /// The deterministic up pass through the first `layers` RBMs.
    #[track_caller]
    pub fn up(&self, x: &Expr, layers: usize) -> Expr {
        (0..layers).fold(x.clone(), |v, l| self.layer_up(l, &v))
    }

    /// The deterministic down pass from layer `from` (an input of `rbms[from - 1]`'s hidden
    /// size) to visible probabilities, through each RBM's `P(v | h)`.
    #[track_caller]
    pub fn down(&self, h: &Expr, from: usize) -> Expr {
        (0..from)
            .rev()
            .fold(h.clone(), |h, l| self.rbms[l].visible_probs(&h))
    }

    /// A compiled up pass: data `[n, sizes[0]]` to layer `layers`'s activity.
    pub fn encoder(&self, layers: usize) -> Result<Function> {
        let x = self
            .graph()
            .input("x", DType::F32, &[None, Some(self.rbms[0].n_visible)]);
        function(&[&x], &[&self.up(&x, layers)]).compile()
    }

    /// The compiled CD-k training step of layer `l`: input a minibatch of that layer's input,
    /// output its reconstruction error. Binary layers use [`Rbm::trainer`].
    pub fn layer_trainer(&self, l: usize, cd: &CdConfig, rng: &RandomStream) -> Result<Function> {
        if self.linear(l) {
            Ok(Cd::new(&LinearHidden(&self.rbms[l]), cd, rng)
                .compile()?
                .into_step())
        } else {
            self.rbms[l].trainer(cd, rng)
        }
    }

    /// Greedy layer-wise pretraining on the rows of `data`: layer 0 on the data, layer `l` on
    /// the hidden probabilities of layer `l - 1` (computed once by a compiled up pass), each by
    /// CD-k for `schedule[l]`. Visible biases start at `log(p / (1 - p))` of the layer's mean
    /// input. Minibatches are drawn from a permutation seeded by `seed`; `report` sees every
    /// minibatch. Returns each layer's mean reconstruction error per epoch.
    #[track_caller]
    pub fn pretrain(
        &self,
        data: &Array2<f32>,
        schedule: &[LayerSchedule],
        rng: &RandomStream,
        seed: u64,
        mut report: impl FnMut(&Progress),
    ) -> Result<Vec<Vec<f64>>> {
        if schedule.len() != self.depth() {
            return Err(Error::Usage {
                what: format!(
                    "{} layer schedules for a DBN of {} RBMs",
                    schedule.len(),
                    self.depth()
                ),
                loc: Location::caller(),
            });
        }
        let mut order = StdRng::seed_from_u64(seed);
        let mut features: Option<Array2<f32>> = None;
        let mut curves = Vec::new();
        for (l, sched) in schedule.iter().enumerate() {
            let x = features.as_ref().unwrap_or(data);
            self.rbms[l].init_visible_bias(x)?;
            let train = self.layer_trainer(l, &sched.cd, rng)?;
            let mut curve = Vec::new();
            for epoch in 0..sched.epochs {
                let mut perm: Vec<usize> = (0..x.nrows()).collect();
                perm.shuffle(&mut order);
                let batches: Vec<&[usize]> = perm.chunks(sched.cd.batch.max(1)).collect();
                let mut total = 0.0;
                for (i, idx) in batches.iter().enumerate() {
                    let batch = Tensor::from(x.select(Axis(0), idx));
                    total += train.call(&[batch])?[0].item()?;
                    report(&Progress {
                        layer: l,
                        epoch,
                        batch: i + 1,
                        batches: batches.len(),
                        error: total / (i + 1) as f64,
                    });
                }
                curve.push(total / batches.len().max(1) as f64);
            }
            curves.push(curve);
            if l + 1 < self.depth() {
                let v = self
                    .graph()
                    .input("v", DType::F32, &[None, Some(self.rbms[l].n_visible)]);
                let up = function(&[&v], &[&self.layer_up(l, &v)]).compile()?;
                features = Some(to_array2(&up.call(&[Tensor::from(x.clone())])?[0])?);
            }
        }
        Ok(curves)
    }

    /// One Gibbs step `v -> h -> v` in the top RBM: `(v probabilities, v sample)`.
    #[track_caller]
    fn top_gibbs(&self, v: &Expr, rng: &RandomStream) -> (Expr, Expr) {
        let l = self.depth() - 1;
        let top = &self.rbms[l];
        if self.linear(l) {
            let mean = self.layer_up(l, v);
            let h = &mean + &rng.normal(&mean);
            let vp = top.visible_probs(&h);
            let vs = rng.bernoulli(&vp);
            (vp, vs)
        } else {
            top.gibbs_vhv(v, rng)
        }
    }

    /// A compiled generator: from states of the top RBM's visible layer `[n, sizes[L - 1]]`
    /// (binary samples, or probabilities from [`Dbn::encoder`]`(L - 1)`), run `steps`
    /// alternating Gibbs steps in the top RBM, then one deterministic down pass. Outputs
    /// `[new top-visible samples, visible probabilities [n, sizes[0]]]`; feed the first back
    /// in to continue the chains.
    pub fn generator(&self, steps: usize, rng: &RandomStream) -> Result<Function> {
        let l = self.depth() - 1;
        let v0 = self
            .graph()
            .input("top_v", DType::F32, &[None, Some(self.rbms[l].n_visible)]);
        let (vp, vs) = unroll(steps.max(1), (v0.clone(), v0.clone()), |(_, v)| {
            self.top_gibbs(&v, rng)
        });
        let image = self.down(&vp, l);
        function(&[&v0], &[&vs, &image]).compile()
    }
}

/// `rbm` with linear, unit-variance Gaussian hidden units, `h ~ N(v W + c, 1)`, for CD-k: the
/// free energy is `F(v) = -v·b - ½|v W + c|²` (up to a constant). As in `rbmhidlinear.m`, the
/// hidden units are sampled (`mean + N(0, 1)`) to drive the reconstruction, and the
/// reconstruction is the visible probability, not a sample.
struct LinearHidden<'a>(&'a Rbm);

impl EnergyModel for LinearHidden<'_> {
    fn units(&self) -> (usize, usize) {
        EnergyModel::units(self.0)
    }
    fn weights(&self) -> Vec<&Expr> {
        self.0.weights()
    }
    fn biases(&self) -> Vec<&Expr> {
        self.0.biases()
    }
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let vb = v.dot(&self.0.vbias);
        -(vb + self.hidden_mean(v).square().sum_axes(&[1], false) * 0.5)
    }
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        v.matmul(&self.0.w) + &self.0.hbias
    }
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        self.0.visible_probs(h)
    }
    #[track_caller]
    fn sample_hidden(&self, v: &Expr, rng: &RandomStream) -> Expr {
        let mean = self.hidden_mean(v);
        &mean + &rng.normal(&mean)
    }
    #[track_caller]
    fn sample_visible(&self, h: &Expr, _rng: &RandomStream) -> Expr {
        self.visible_mean(h)
    }
}
