//! The graph of a contrastive-divergence step, shared by the RBMs with binary hidden units
//! ([`Rbm`](super::Rbm), [`GbRbm`](super::gbrbm::GbRbm)): they differ in their visible units
//! and their monitor, not in how CD-k and PCD-k update them.

use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::grad::grad;
use crate::graph::loops::{Scan, StepResult};
use crate::graph::{Expr, Graph};
use crate::models::gbrbm::GbRbm;
use crate::models::{CdConfig, Rbm, unroll};
use crate::optim::Optimizer;
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// The shared parameters `[W, vbias, hbias]` of a new `f32` RBM in `graph`: weights drawn
/// from N(0, 0.01²) by a generator seeded with `seed`, biases zero (Hinton's guide, §8).
pub(crate) fn new_params(
    graph: &Graph,
    n_visible: usize,
    n_hidden: usize,
    seed: u64,
) -> Result<[Expr; 3]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.01).map_err(|e| Error::Data {
        path: "<init>".into(),
        reason: e.to_string(),
    })?;
    let w = Array2::from_shape_fn((n_visible, n_hidden), |_| normal.sample(&mut rng));
    Ok([
        graph.shared("W", w),
        graph.shared("vbias", Tensor::full(&[n_visible], 0.0, DType::F32)),
        graph.shared("hbias", Tensor::full(&[n_hidden], 0.0, DType::F32)),
    ])
}

/// What a CD step needs of a model.
pub(crate) trait EnergyModel {
    /// Visible and hidden units.
    fn units(&self) -> (usize, usize);
    /// `[W, visible bias, hidden bias]`; the graph and dtype of `W` are the model's.
    fn energy_params(&self) -> [&Expr; 3];
    /// Free energy of each row of `v`.
    fn energy(&self, v: &Expr) -> Expr;
    /// `P(h = 1 | v)`.
    fn hidden_given(&self, v: &Expr) -> Expr;
    /// One Gibbs step from hidden samples: `(v, h probabilities, h sample)`.
    fn gibbs_from_hidden(&self, h: &Expr, rng: &RandomStream) -> (Expr, Expr, Expr);
}

/// Both RBMs give [`EnergyModel`] their inherent methods of the same meaning.
macro_rules! energy_model {
    ($($model:ty),*) => {$(
        impl EnergyModel for $model {
            fn units(&self) -> (usize, usize) {
                (self.n_visible, self.n_hidden)
            }
            fn energy_params(&self) -> [&Expr; 3] {
                self.params()
            }
            #[track_caller]
            fn energy(&self, v: &Expr) -> Expr {
                self.free_energy(v)
            }
            #[track_caller]
            fn hidden_given(&self, v: &Expr) -> Expr {
                self.hidden_probs(v)
            }
            #[track_caller]
            fn gibbs_from_hidden(&self, h: &Expr, rng: &RandomStream) -> (Expr, Expr, Expr) {
                self.gibbs_hvh(h, rng)
            }
        }
    )*};
}
energy_model!(Rbm, GbRbm);

/// A CD-k (PCD-k with `cfg.persistent`) step as a graph.
pub(crate) struct CdStep {
    /// The minibatch input `x [batch, n_visible]`.
    pub x: Expr,
    /// Where the negative chain starts: a hidden sample of the data (CD) or the persistent
    /// chain (PCD).
    pub h_start: Expr,
    /// The persistent chain's shared variable, for PCD only.
    pub chain: Option<Expr>,
    /// Momentum updates of the parameters (weight decay on `W`) and of the persistent chain.
    pub updates: Vec<(Expr, Expr)>,
}

/// How the negative phase runs its Gibbs steps.
#[derive(Clone, Copy)]
pub(crate) enum Chain<'a> {
    /// `cfg.k` steps unrolled into the graph.
    Unrolled,
    /// As many steps as the `i64` scalar says at each call, by one loop ([`Scan::counted`]).
    Counted(&'a Expr),
}

/// Build the step: `k` Gibbs steps from `h_start`, the gradient of
/// `mean F(x) - mean F(vᵏ)` with the negative sample held constant, and momentum updates at the
/// rate `lr` (a scalar read at every call) or else `cfg.lr`. The nodes it builds are located
/// at its own lines, as they were when each trainer wrote them out.
pub(crate) fn cd_step(
    model: &impl EnergyModel,
    cfg: &CdConfig,
    rng: &RandomStream,
    lr: Option<&Expr>,
    gibbs: Chain,
) -> Result<CdStep> {
    let params = model.energy_params();
    let (g, dtype) = (params[0].graph().clone(), params[0].dtype());
    let (n_visible, n_hidden) = model.units();
    let x = g.input("x", dtype, &[None, Some(n_visible)]);
    let chain = cfg.persistent.then(|| {
        g.shared(
            "pcd_chain",
            Tensor::full(&[cfg.batch, n_hidden], 0.0, dtype),
        )
    });
    let h_start = match &chain {
        Some(c) => c.clone(),
        None => rng.bernoulli(&model.hidden_given(&x)),
    };
    let (v_neg, h_neg) = match gibbs {
        Chain::Unrolled => unroll(cfg.k, (h_start.clone(), h_start.clone()), |(_, h)| {
            let (v, _, hs) = model.gibbs_from_hidden(&h, rng);
            (v, hs)
        }),
        Chain::Counted(k) => {
            // The states: the visible sample (zeros until the first step) and the hidden one.
            let v0 = x.zeros_like();
            let chain = Scan::counted(k).states(&[&v0, &h_start]).run(|s| {
                let (v, _, hs) = model.gibbs_from_hidden(s.state(1), rng);
                Ok(StepResult::new().state(&v).state(&hs))
            })?;
            (chain.states[0].clone(), chain.states[1].clone())
        }
    };
    let cost = model.energy(&x).mean() - model.energy(&v_neg.stop_gradient()).mean();
    let grads = grad(&cost, &params)?;
    let optimizer = || match lr {
        Some(lr) => Optimizer::momentum(cfg.lr, cfg.momentum).learning_rate(lr),
        None => Optimizer::momentum(cfg.lr, cfg.momentum),
    };
    let mut updates = optimizer()
        .weight_decay(cfg.weight_decay)
        .updates(&params[..1], &grads[..1])?;
    updates.extend(optimizer().updates(&params[1..], &grads[1..])?);
    if let Some(c) = &chain {
        updates.push((c.clone(), h_neg));
    }
    Ok(CdStep {
        x,
        h_start,
        chain,
        updates,
    })
}
