//! The top of a generative DBN: an RBM whose visible layer joins binary units (the layer below
//! the top) and one softmax group of label units, exactly one of which is on.

use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Location, Result};
use crate::graph::{Expr, Graph, concat};
use crate::models::cd::EnergyModel;
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// An RBM over `[x, y]`: binary units `x` and a 1-of-K label `y`, with binary hidden units `h`.
/// The energy is `E(x, y, h) = -x·b - y·d - h·c - x W h - y U h`, with `y` restricted to the K
/// one-hot vectors, so `P(y = k | h) = softmax(h Uᵀ + d)_k` and `P(h | x, y)` is the binary RBM's
/// with `y U` added to the hidden input.
///
/// As an [`EnergyModel`] its visible rows are `[x | y]`, `n_visible + n_labels` wide with `y`
/// one-hot, so the library's CD-k and PCD train it: the free energy has the binary RBM's form
/// (the softmax group changes only which visible states exist, not `F`), and the visible
/// sampler draws `x` by Bernoulli and `y` by one categorical draw per row.
#[derive(Clone, Debug)]
pub struct LabelledRbm {
    /// Weights from the binary visible units, `[n_visible, n_hidden]`.
    pub w: Expr,
    /// Weights from the label units, `[n_labels, n_hidden]`.
    pub u: Expr,
    /// Biases of the binary visible units, `[n_visible]`.
    pub vbias: Expr,
    /// Biases of the label units, `[n_labels]`.
    pub lbias: Expr,
    /// Hidden biases, `[n_hidden]`.
    pub hbias: Expr,
    /// Number of binary visible units.
    pub n_visible: usize,
    /// Number of label units (the size of the softmax group).
    pub n_labels: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
}

impl LabelledRbm {
    /// A new `f32` model in `graph`: both weight matrices drawn from N(0, 0.01²) with `seed`,
    /// biases zero.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when a size is zero or there are fewer than two labels.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        n_visible: usize,
        n_labels: usize,
        n_hidden: usize,
        seed: u64,
    ) -> Result<LabelledRbm> {
        if n_visible == 0 || n_hidden == 0 || n_labels < 2 {
            return Err(Error::Usage {
                what: format!(
                    "a labelled RBM needs visible and hidden units and at least two labels, got \
                     {n_visible} visible, {n_labels} labels, {n_hidden} hidden"
                ),
                loc: Location::caller(),
            });
        }
        let normal = Normal::new(0.0f32, 0.01).map_err(|e| Error::Data {
            path: "<init>".into(),
            reason: e.to_string(),
        })?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw =
            |rows, cols| Array2::from_shape_fn((rows, cols), |_| normal.sample(&mut rng));
        Ok(LabelledRbm {
            w: graph.shared("W_top", draw(n_visible, n_hidden)),
            u: graph.shared("U_labels", draw(n_labels, n_hidden)),
            vbias: graph.shared("vbias_top", Array1::<f32>::zeros(n_visible)),
            lbias: graph.shared("lbias", Array1::<f32>::zeros(n_labels)),
            hbias: graph.shared("hbias_top", Array1::<f32>::zeros(n_hidden)),
            n_visible,
            n_labels,
            n_hidden,
        })
    }

    /// The visible rows `[x | y]` of binary states `x` and labels `labels` (`[n]` in
    /// `0..n_labels`), as the model's [`EnergyModel`] side reads them.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when the counts differ, `x` is not `n_visible` wide or a label is out
    /// of range.
    #[track_caller]
    pub fn join(&self, x: &Array2<f32>, labels: &[usize]) -> Result<Array2<f32>> {
        let loc = Location::caller();
        if x.nrows() != labels.len() || x.ncols() != self.n_visible {
            return Err(Error::Usage {
                what: format!(
                    "a labelled RBM of {} visible units needs one label per row, got {:?} rows \
                     and {} labels",
                    self.n_visible,
                    x.dim(),
                    labels.len()
                ),
                loc,
            });
        }
        let y = one_hot(labels, self.n_labels, loc)?;
        Ok(ndarray::concatenate(Axis(1), &[x.view(), y.view()]).expect("same row count"))
    }

    /// Start the biases from the data (Hinton's guide, §8): the binary visible biases at
    /// `log(p / (1 - p))` of `x`'s column means, the label biases at the log of each label's
    /// frequency (the softmax of which is that frequency), hidden biases zero.
    ///
    /// # Errors
    ///
    /// Those of [`LabelledRbm::join`].
    #[track_caller]
    pub fn init_biases(&self, x: &Array2<f32>, labels: &[usize]) -> Result<()> {
        let joint = self.join(x, labels)?;
        let mean = joint.mean_axis(Axis(0)).ok_or_else(|| Error::Usage {
            what: "no rows to start the biases from".into(),
            loc: Location::caller(),
        })?;
        let (p, q) = mean.view().split_at(Axis(0), self.n_visible);
        self.vbias.set_value(p.mapv(|p| {
            let p = p.clamp(1e-3, 1.0 - 1e-3);
            (p / (1.0 - p)).ln()
        }))?;
        self.lbias.set_value(q.mapv(|q| q.max(1e-3).ln()))?;
        self.hbias.set_value(Array1::<f32>::zeros(self.n_hidden))
    }

    /// `(x, y)` of visible rows `[x | y]`.
    #[track_caller]
    fn split(&self, v: &Expr) -> (Expr, Expr) {
        let n = self.n_visible as isize;
        (v.slice(1, 0, Some(n)), v.slice(1, n, None))
    }

    /// The hidden units' input `x W + y U + c` for binary states `x` and one-hot (or
    /// probability) rows `y`.
    #[track_caller]
    pub fn hidden_input(&self, x: &Expr, y: &Expr) -> Expr {
        x.matmul(&self.w) + y.matmul(&self.u) + &self.hbias
    }

    /// `P(x = 1 | h) = sigmoid(h Wᵀ + b)`.
    #[track_caller]
    pub fn visible_probs(&self, h: &Expr) -> Expr {
        (h.matmul(&self.w.t()) + &self.vbias).sigmoid()
    }

    /// `P(y | h) = softmax(h Uᵀ + d)`, one row per row of `h`.
    #[track_caller]
    pub fn label_probs(&self, h: &Expr) -> Expr {
        (h.matmul(&self.u.t()) + &self.lbias).softmax(1)
    }

    /// `F(x, y = k)` for every label k, `[n, n_labels]`: the classifier of Hinton, Osindero &
    /// Teh (2006), who pick the label of lowest free energy, since `P(y = k | x) =
    /// softmax(-F(x, ·))_k`.
    #[track_caller]
    pub fn label_free_energies(&self, x: &Expr) -> Expr {
        // [n, 1, H] + [K, H] -> [n, K, H]: every label's row of U added to the input of x.
        let pre = (x.matmul(&self.w) + &self.hbias).expand_dims(&[1]) + &self.u;
        let hidden = pre.softplus().sum_axes(&[2], false);
        let xb = x.matmul(&self.vbias.expand_dims(&[1]));
        -(hidden + &self.lbias + xb)
    }
}

/// `labels` as one-hot `f32` rows of `classes` columns, or a usage error at `loc`.
pub(crate) fn one_hot(labels: &[usize], classes: usize, loc: Location) -> Result<Array2<f32>> {
    if let Some(bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(Error::Usage {
            what: format!("label {bad} out of range for {classes} labels"),
            loc,
        });
    }
    Ok(Array2::from_shape_fn((labels.len(), classes), |(i, k)| {
        f32::from(labels[i] == k)
    }))
}

impl EnergyModel for LabelledRbm {
    fn units(&self) -> (usize, usize) {
        (self.n_visible + self.n_labels, self.n_hidden)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.w, &self.u]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.vbias, &self.lbias, &self.hbias]
    }
    /// `F(x, y) = -x·b - y·d - Σ_j softplus(x W + y U + c)_j`.
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let (x, y) = self.split(v);
        let bias = v
            .matmul(&concat(&[&self.vbias, &self.lbias], 0).expand_dims(&[1]))
            .squeeze(&[1]);
        let hidden = self.hidden_input(&x, &y).softplus().sum_axes(&[1], false);
        -(bias + hidden)
    }
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        let (x, y) = self.split(v);
        self.hidden_input(&x, &y).sigmoid()
    }
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        concat(&[&self.visible_probs(h), &self.label_probs(h)], 1)
    }
    /// Bernoulli draws of `x` and one categorical draw of the label per row, as one-hot.
    #[track_caller]
    fn sample_visible(&self, h: &Expr, rng: &RandomStream) -> Expr {
        let x = rng.bernoulli(&self.visible_probs(h));
        let y = rng
            .categorical(&self.label_probs(h))
            .one_hot(self.n_labels, h.dtype());
        concat(&[&x, &y], 1)
    }
}

/// The `[n]` labels of `labels` as an `i64` tensor.
pub(crate) fn label_tensor(labels: &[usize]) -> Tensor {
    Tensor::from(Array1::from_iter(labels.iter().map(|&l| l as i64)))
}
