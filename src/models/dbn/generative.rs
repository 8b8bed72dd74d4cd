//! The generative DBN of Hinton, Osindero & Teh (2006): directed sigmoid layers below an
//! undirected top RBM over `[penultimate layer, labels]`. It draws a digit of a chosen class
//! (clamp the label, Gibbs in the top RBM, one down pass), classifies by the top RBM's free
//! energy, and is fine-tuned by contrastive wake-sleep ("up-down") with its recognition (up)
//! and generative (down) weights untied.

use ndarray::{Array2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::labelled::{LabelledRbm, label_tensor, one_hot};
use super::{Dbn, LayerSchedule, Progress, to_array2};
use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::function::{Function, function};
use crate::grad::grad;
use crate::graph::loops::{Scan, StepResult};
use crate::graph::{Expr, concat};
use crate::models::cd::{Cd, EnergyModel};
use crate::models::{cross_entropy_per_row, unroll};
use crate::optim::{Optimizer, as_pairs};
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// A DBN with labels joined to its top RBM: `sizes[0]`-...-`sizes[L - 1]` directed layers and
/// a top [`LabelledRbm`] over `[sizes[L - 1], n_labels]`-`sizes[L]`.
///
/// Greedy pretraining ties each directed layer's up and down weights (they are one RBM); after
/// it, [`GenerativeDbn::untie`] copies the up weights into [`GenerativeDbn::recognition`], so
/// that up-down fine-tuning changes the recognition and the generative weights apart.
#[derive(Clone, Debug)]
pub struct GenerativeDbn {
    /// The directed layers as RBMs, bottom first. Their `W` and visible biases are the
    /// generative (down) weights, `P(layer l | layer l + 1) = sigmoid(h Wᵀ + b)`; their hidden
    /// biases only serve greedy pretraining.
    pub lower: Dbn,
    /// The undirected top: an RBM over the penultimate layer and the labels.
    pub top: LabelledRbm,
    /// The recognition (up) weights and biases `(R, r)` per directed layer, bottom first:
    /// `Q(layer l + 1 | layer l) = sigmoid(v R + r)`.
    pub recognition: Vec<(Expr, Expr)>,
}

/// Settings of contrastive wake-sleep fine-tuning ([`GenerativeDbn::up_down`]).
#[derive(Clone, Debug)]
pub struct UpDownConfig {
    /// Learning rate of every parameter (the updates are means over the minibatch).
    pub lr: f64,
    /// Gibbs steps of the top RBM's negative phase, started at the wake states (Hinton,
    /// Osindero & Teh use 3, then 6 and 10 late in training).
    pub k: usize,
    /// Momentum of the parameter velocities.
    pub momentum: f64,
    /// L2 weight decay on the weight matrices.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch: usize,
}

impl Default for UpDownConfig {
    fn default() -> Self {
        UpDownConfig {
            lr: 0.01,
            k: 3,
            momentum: 0.0,
            weight_decay: 1e-5,
            batch: 100,
        }
    }
}

/// The compiled up-down step ([`GenerativeDbn::up_down`]).
pub struct UpDownTrainer {
    step: Function,
    batch: usize,
    n_labels: usize,
}

impl UpDownTrainer {
    /// The step: inputs a minibatch `x [n, sizes[0]]` (`f32`) and its labels `[n]` (`i64`);
    /// output the generative model's cross-entropy of `x` given the wake states of the layer
    /// above, summed over pixels and averaged over rows; updates every parameter.
    pub fn step(&self) -> &Function {
        &self.step
    }

    /// One pass over the rows of `data` with their `labels` in minibatches, in an order
    /// shuffled by `order`; `report` sees `(minibatches done, minibatches, running mean of
    /// the step's cross-entropy)`. Returns the epoch's mean.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when the counts differ or a label is out of range; the step's errors
    /// otherwise.
    #[track_caller]
    pub fn epoch(
        &self,
        data: &Array2<f32>,
        labels: &[usize],
        order: &mut impl Rng,
        mut report: impl FnMut(usize, usize, f64),
    ) -> Result<f64> {
        let loc = Location::caller();
        check_labels(data, labels, self.n_labels, loc)?;
        let mut rows: Vec<usize> = (0..data.nrows()).collect();
        rows.shuffle(order);
        let batches: Vec<&[usize]> = rows.chunks(self.batch).collect();
        let mut total = 0.0;
        for (i, idx) in batches.iter().enumerate() {
            let x = Tensor::from(data.select(Axis(0), idx));
            let y = label_tensor(&idx.iter().map(|&r| labels[r]).collect::<Vec<_>>());
            total += self.step.call(&[x, y])?[0].item()?;
            report(i + 1, batches.len(), total / (i + 1) as f64);
        }
        Ok(total / batches.len().max(1) as f64)
    }
}

/// A usage error unless `labels` has one label in `0..n_labels` per row of `data`.
fn check_labels(
    data: &Array2<f32>,
    labels: &[usize],
    n_labels: usize,
    loc: Location,
) -> Result<()> {
    if data.nrows() != labels.len() {
        return Err(Error::Usage {
            what: format!("{} rows of data but {} labels", data.nrows(), labels.len()),
            loc,
        });
    }
    one_hot(labels, n_labels, loc).map(|_| ())
}

impl GenerativeDbn {
    /// A generative DBN of layer sizes `sizes` (pixels first, the top RBM's hidden layer
    /// last) with `n_labels` label units joined to the penultimate layer; weights from
    /// N(0, 0.01²) with seeds `seed, seed + 1, ...`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for fewer than three sizes (a directed layer and the top), a zero size
    /// or fewer than two labels.
    #[track_caller]
    pub fn new(
        graph: &crate::graph::Graph,
        sizes: &[usize],
        n_labels: usize,
        seed: u64,
    ) -> Result<GenerativeDbn> {
        if sizes.len() < 3 || sizes.contains(&0) {
            return Err(Error::Usage {
                what: format!(
                    "a generative DBN needs at least three non-zero layer sizes (the pixels, a \
                     penultimate layer and the top), got {sizes:?}"
                ),
                loc: Location::caller(),
            });
        }
        let l = sizes.len() - 2;
        let lower = Dbn::new(graph, &sizes[..=l], seed)?;
        let top = LabelledRbm::new(
            graph,
            sizes[l],
            n_labels,
            sizes[l + 1],
            seed.wrapping_add(l as u64),
        )?;
        let recognition = lower
            .rbms
            .iter()
            .map(|r| -> Result<(Expr, Expr)> {
                Ok((
                    graph.shared("R", r.w.get_value()?),
                    graph.shared("r", r.hbias.get_value()?),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GenerativeDbn {
            lower,
            top,
            recognition,
        })
    }

    /// Layer sizes, pixels first, the top RBM's hidden layer last.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = self.lower.sizes();
        s.push(self.top.n_hidden);
        s
    }

    /// Number of RBMs, the top included: the length of a pretraining schedule.
    pub fn depth(&self) -> usize {
        self.lower.depth() + 1
    }

    /// Copy each directed layer's RBM weights and hidden biases into the recognition weights,
    /// so that up and down start equal and then change apart. [`GenerativeDbn::pretrain`]
    /// calls it at its end.
    pub fn untie(&self) -> Result<()> {
        for (rbm, (r, b)) in self.lower.rbms.iter().zip(&self.recognition) {
            r.set_value(rbm.w.get_value()?)?;
            b.set_value(rbm.hbias.get_value()?)?;
        }
        Ok(())
    }

    /// Greedy pretraining: the directed layers as [`Dbn::pretrain`] does (the first
    /// `depth() - 1` entries of `schedule`), then the top RBM by the library's CD/PCD
    /// ([`Cd`], the last entry) on the penultimate layer's probabilities joined with the
    /// one-hot `labels`; then [`GenerativeDbn::untie`]. `report` sees every minibatch, the
    /// top's with `layer == depth() - 1` and its monitor (reconstruction error of `[x | y]`).
    /// Returns each layer's mean monitor per epoch.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `schedule` does not have `depth()` entries, or `labels` does not
    /// have one label in `0..n_labels` per row of `data`; training's errors otherwise.
    #[track_caller]
    pub fn pretrain(
        &self,
        data: &Array2<f32>,
        labels: &[usize],
        schedule: &[LayerSchedule],
        rng: &RandomStream,
        seed: u64,
        mut report: impl FnMut(&Progress),
    ) -> Result<Vec<Vec<f64>>> {
        let loc = Location::caller();
        if schedule.len() != self.depth() {
            return Err(Error::Usage {
                what: format!(
                    "{} layer schedules for a generative DBN of {} RBMs (the top included)",
                    schedule.len(),
                    self.depth()
                ),
                loc,
            });
        }
        check_labels(data, labels, self.top.n_labels, loc)?;
        let l = self.lower.depth();
        let mut curves = self
            .lower
            .pretrain(data, &schedule[..l], rng, seed, &mut report)?;
        let features = to_array2(&self.lower.encoder(l)?.call(&[Tensor::from(data.clone())])?[0])?;
        let joint = self.top.join(&features, labels)?;
        self.top.init_biases(&features, labels)?;
        let sched = &schedule[l];
        let trainer = Cd::new(&self.top, &sched.cd, rng).compile()?;
        let mut order = StdRng::seed_from_u64(seed.wrapping_add(l as u64));
        let mut curve = Vec::new();
        for epoch in 0..sched.epochs {
            curve.push(trainer.epoch(&joint, &mut order, |batch, batches, error| {
                report(&Progress {
                    layer: l,
                    epoch,
                    batch,
                    batches,
                    error,
                })
            })?);
        }
        curves.push(curve);
        self.untie()?;
        Ok(curves)
    }

    /// The recognition (up) pass to the penultimate layer: probabilities, or binary samples
    /// drawn from `rng` at every layer.
    #[track_caller]
    fn recognize(&self, x: &Expr, sample: Option<&RandomStream>) -> Vec<Expr> {
        let mut states = vec![x.clone()];
        for (r, b) in &self.recognition {
            let p = (states[states.len() - 1].matmul(r) + b).sigmoid();
            states.push(match sample {
                Some(rng) => rng.bernoulli(&p).stop_gradient(),
                None => p,
            });
        }
        states
    }

    /// A compiled generator of digits of chosen classes: inputs `labels [n]` (`i64`, one class
    /// per digit), `steps` (an `i64` scalar, at least 1) and `label_weight` (an `f32` scalar).
    /// Each chain starts with the label alone driving the top units, then runs `steps`
    /// alternating Gibbs steps in the top RBM with the label clamped, and ends in one
    /// deterministic down pass of the penultimate probabilities through the generative
    /// weights. Outputs the pixel probabilities `[n, sizes[0]]`.
    ///
    /// The clamped label enters the top units' input as `label_weight · U_y`: at 1 the chain
    /// samples the model's own `P(penultimate | label)`; above 1 it samples that of a top RBM
    /// whose label row is clamped `label_weight` times over (as if the label units were
    /// duplicated), which sharpens the conditional towards the label's most typical digits.
    pub fn generator(&self, rng: &RandomStream) -> Result<Function> {
        let g = self.lower.graph().clone();
        let labels = g.input("labels", DType::I64, &[None]);
        let steps = g.scalar("steps", DType::I64);
        let weight = g.scalar("label_weight", DType::F32);
        let top = &self.top;
        let y = labels.one_hot(top.n_labels, DType::F32);
        let label_input = &y.matmul(&top.u) * &weight + &top.hbias;
        let h0 = rng.bernoulli(&label_input.sigmoid());
        let chain = Scan::counted(&steps).states(&[&h0]).run(|s| {
            let x = rng.bernoulli(&top.visible_probs(s.state(0)));
            let h = rng.bernoulli(&(x.matmul(&top.w) + &label_input).sigmoid());
            Ok(StepResult::new().state(&h))
        })?;
        let penultimate = top.visible_probs(&chain.states[0]);
        let image = self.lower.down(&penultimate, self.lower.depth());
        function(&[&labels, &steps, &weight], &[&image]).compile()
    }

    /// A compiled classifier: inputs `x [n, sizes[0]]` (`f32`); the deterministic
    /// recognition pass, then the label of lowest top-RBM free energy
    /// ([`LabelledRbm::label_free_energies`]) per row (`i64`).
    pub fn predictor(&self) -> Result<Function> {
        let g = self.lower.graph().clone();
        let x = g.input("x", DType::F32, &[None, Some(self.lower.rbms[0].n_visible)]);
        let pen = self.recognize(&x, None).pop().expect("the input at least");
        let free = self.top.label_free_energies(&pen);
        function(&[&x], &[&(-free).argmax(1)]).compile()
    }

    /// The compiled contrastive wake-sleep step (Hinton, Osindero & Teh 2006, appendix B):
    ///
    /// * **up (wake)**: binary states of every layer by the recognition weights from the data;
    ///   the generative weights learn to predict each layer's wake states from the layer
    ///   above (the delta rule, the gradient of the cross-entropy);
    /// * **top**: CD-`k` in the top RBM from the wake penultimate states and the true labels;
    /// * **down (sleep)**: from the penultimate states at the end of that chain, states of
    ///   every layer by the generative weights; the recognition weights learn to predict each
    ///   layer's sleep states from the layer below.
    ///
    /// Every update is the gradient of a cross-entropy or of the CD cost with the states held
    /// constant (`stop_gradient`), taken by `grad`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for `k == 0` or `batch == 0`; those of `grad` and compiling otherwise.
    #[track_caller]
    pub fn up_down(&self, cfg: &UpDownConfig, rng: &RandomStream) -> Result<UpDownTrainer> {
        if cfg.k == 0 || cfg.batch == 0 {
            return Err(Error::Usage {
                what: format!(
                    "up-down needs k >= 1 Gibbs steps and a non-empty minibatch, got k = {}, \
                     batch = {}",
                    cfg.k, cfg.batch
                ),
                loc: Location::caller(),
            });
        }
        let g = self.lower.graph().clone();
        let (top, rbms) = (&self.top, &self.lower.rbms);
        let x = g.input("x", DType::F32, &[None, Some(rbms[0].n_visible)]);
        let labels = g.input("labels", DType::I64, &[None]);
        let y = labels.one_hot(top.n_labels, DType::F32);

        let wake = self.recognize(&x, Some(rng));
        let down = |l: usize, above: &Expr| above.matmul(&rbms[l].w.t()) + &rbms[l].vbias;
        let generative: Vec<Expr> = (0..rbms.len())
            .map(|l| cross_entropy_per_row(&down(l, &wake[l + 1]), &wake[l]))
            .collect();

        let positive = concat(&[&wake[rbms.len()], &y], 1);
        let h0 = top.sample_hidden(&positive, rng);
        let (negative, _) = unroll(cfg.k, (positive.clone(), h0), |(_, h)| {
            let v = top.sample_visible(&h, rng);
            let h = top.sample_hidden(&v, rng);
            (v, h)
        });
        let negative = negative.stop_gradient();
        let top_cost = top.free_energy(&positive).mean() - top.free_energy(&negative).mean();

        // sleep[l]: layer l's state in the down pass; binary but for the pixels' probabilities.
        let mut sleep = vec![negative.slice(1, 0, Some(top.n_visible as isize))];
        for l in (0..rbms.len()).rev() {
            let p = down(l, &sleep[0]).sigmoid();
            let state = if l == 0 { p } else { rng.bernoulli(&p) };
            sleep.insert(0, state.stop_gradient());
        }
        let recognition = self
            .recognition
            .iter()
            .enumerate()
            .map(|(l, (r, b))| cross_entropy_per_row(&(sleep[l].matmul(r) + b), &sleep[l + 1]));

        let cost = generative
            .iter()
            .cloned()
            .chain(recognition)
            .fold(top_cost, |a, c| a + c);
        let mut weights: Vec<&Expr> = rbms.iter().map(|r| &r.w).collect();
        weights.extend(self.recognition.iter().map(|(r, _)| r));
        weights.extend(top.weights());
        let mut biases: Vec<&Expr> = rbms.iter().map(|r| &r.vbias).collect();
        biases.extend(self.recognition.iter().map(|(_, b)| b));
        biases.extend(top.biases());
        let gw = grad(&cost, &weights)?;
        let gb = grad(&cost, &biases)?;
        let opt = Optimizer::momentum(cfg.lr, cfg.momentum);
        let mut updates = opt
            .clone()
            .weight_decay(cfg.weight_decay)
            .updates(&weights, &gw)?;
        updates.extend(opt.updates(&biases, &gb)?);
        let step = function(&[&x, &labels], &[&generative[0]])
            .updates(&as_pairs(&updates))
            .compile()?;
        Ok(UpDownTrainer {
            step,
            batch: cfg.batch,
            n_labels: top.n_labels,
        })
    }
}
