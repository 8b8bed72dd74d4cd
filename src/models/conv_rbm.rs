//! The convolutional RBM of Lee, Grosse, Ranganath & Ng (2009): binary hidden maps over a bank
//! of filters shared by every position of a binary (or `[0, 1]`-valued) image, trained by the
//! library's CD-k and PCD-k through [`EnergyModel`].
//!
//! With `K` filters `W_k` of `f x f` over a `s x s` image `v`, hidden map `k` is `m x m`
//! (`m = s - f + 1`) and
//!
//! - `P(h_k = 1 | v) = sigmoid(W_k ⋆ v + b_k)` (a valid cross-correlation, [`Expr::conv2d`]),
//! - `P(v = 1 | h) = sigmoid(Σ_k W̃_k * h_k + c)`, the full convolution of the maps with the
//!   filters flipped in both spatial axes (`W̃`), which is what the transpose of the dense
//!   RBM's weight matrix becomes when every position shares it,
//! - `F(v) = -c Σ v - Σ_k Σ_ij softplus((W_k ⋆ v)_ij + b_k)`.
//!
//! Units are flattened for the trainer: rows of `s²` pixels and of `K m²` hidden units (map by
//! map, row-major). Without a pull on the hidden biases the filters of a convolutional RBM
//! tend to copy the input pixel by pixel; [`ConvRbm::with_sparsity`] adds Lee et al.'s
//! regularizer to the CD step, which moves each map's bias towards a target mean activation.
//!
//! ```
//! use gradus::models::conv_rbm::ConvRbm;
//! use gradus::models::{Cd, CdConfig};
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! // 8x8 images, 4 filters of 3x3, a target mean activation of 5%
//! let crbm = ConvRbm::new(&g, 8, 3, 4, 1)?.with_sparsity(0.05, 0.1)?;
//! assert_eq!(gradus::models::EnergyModel::units(&crbm), (64, 4 * 6 * 6));
//! let cfg = CdConfig { lr: 0.01, batch: 5, ..CdConfig::default() };
//! let trainer = Cd::new(&crbm, &cfg, &RandomStream::new(&g, 2)).compile()?;
//! let x: Tensor = ndarray::Array2::<f32>::from_elem((5, 64), 0.5).into();
//! trainer.step().call(&[x])?;
//! # Ok::<(), gradus::Error>(())
//! ```

use ndarray::{Array1, Array4};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::op::Conv2d;
use crate::graph::{Expr, Graph};
use crate::models::cd::EnergyModel;
use crate::tensor::Tensor;

/// A convolutional RBM over square single-channel images.
#[derive(Clone, Debug)]
pub struct ConvRbm {
    /// Filters `[K, 1, f, f]`.
    pub w: Expr,
    /// The visible bias, one for every pixel: `[1]`.
    pub vbias: Expr,
    /// One hidden bias per map: `[K]`.
    pub hbias: Expr,
    side: usize,
    filter: usize,
    filters: usize,
    /// Lee et al.'s sparsity regularizer: target mean activation and rate.
    sparsity: Option<(f64, f64)>,
}

impl ConvRbm {
    /// A new `f32` convolutional RBM over `side x side` images with `filters` filters of
    /// `filter x filter`: weights drawn from N(0, 0.01²) seeded by `seed`, biases zero.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when the filter is empty or larger than the image, or there are no
    /// filters.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        side: usize,
        filter: usize,
        filters: usize,
        seed: u64,
    ) -> Result<ConvRbm> {
        ConvRbm::new_with_dtype(graph, side, filter, filters, DType::F32, seed)
    }

    /// [`ConvRbm::new`] with parameters of float `dtype` (the same values for either dtype:
    /// drawn in `f32`, then cast).
    ///
    /// # Errors
    ///
    /// Those of [`ConvRbm::new`], and [`Error::Usage`] for a dtype that is not a float.
    #[track_caller]
    pub fn new_with_dtype(
        graph: &Graph,
        side: usize,
        filter: usize,
        filters: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<ConvRbm> {
        let loc = Location::caller();
        let usage = |what: String| Err(Error::Usage { what, loc });
        if !dtype.is_float() {
            return usage(format!(
                "a convolutional RBM's parameters must be f32 or f64, not {dtype}"
            ));
        }
        if filter == 0 || filter > side || filters == 0 {
            return usage(format!(
                "a convolutional RBM needs 1 or more filters of 1 to {side} pixels a side for \
                 {side}x{side} images, got {filters} of {filter}x{filter}"
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.01).map_err(|e| Error::Data {
            path: "<init>".into(),
            reason: e.to_string(),
        })?;
        let w = Array4::from_shape_fn((filters, 1, filter, filter), |_| normal.sample(&mut rng));
        Ok(ConvRbm {
            w: graph.shared("W", Tensor::from(w).cast(dtype)),
            vbias: graph.shared("vbias", Tensor::full(&[1], 0.0, dtype)),
            hbias: graph.shared(
                "hbias",
                Tensor::from(Array1::<f32>::zeros(filters)).cast(dtype),
            ),
            side,
            filter,
            filters,
            sparsity: None,
        })
    }

    /// The side of a hidden map, `side - filter + 1`.
    pub fn map_side(&self) -> usize {
        self.side - self.filter + 1
    }

    /// The filters' responses plus the hidden biases, `[N, K, m, m]`, for rows `v` of pixels.
    #[track_caller]
    pub fn hidden_input(&self, v: &Expr) -> Expr {
        let images = v.reshape(&[-1, 1, self.side as isize, self.side as isize]);
        images.conv2d(&self.w, Conv2d::default()) + self.hbias.reshape(&[1, -1, 1, 1])
    }

    /// The filters flipped in both spatial axes and with their two channel axes swapped,
    /// `[1, K, f, f]`: what the full convolution from the hidden maps back to the image uses.
    #[track_caller]
    fn flipped(&self) -> Expr {
        let f = self.filter;
        let reversed = self
            .w
            .graph()
            .constant(Tensor::from(Array1::from_iter((0..f as i64).rev())));
        self.w
            .permute(&[1, 0, 2, 3])
            .take_axis(&reversed, 2)
            .take_axis(&reversed, 3)
    }

    /// This model with Lee et al.'s sparsity regularizer in its CD step: after each update
    /// each hidden map's bias moves by `rate (target - mean q_k)`, where `mean q_k` is the mean
    /// over the minibatch and the positions of map `k`'s `P(h = 1 | v)`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for a target outside `(0, 1)` or a rate that is negative or not finite.
    #[track_caller]
    pub fn with_sparsity(mut self, target: f64, rate: f64) -> Result<ConvRbm> {
        let valid = target > 0.0 && target < 1.0 && rate >= 0.0 && rate.is_finite();
        if !valid {
            return Err(Error::Usage {
                what: format!(
                    "a sparsity target must be in (0, 1) and its rate finite and at least 0, \
                     got target {target} and rate {rate}"
                ),
                loc: Location::caller(),
            });
        }
        self.sparsity = Some((target, rate));
        Ok(self)
    }

    /// The mean of `P(h = 1 | v)` over the rows `v` and the positions, per map: `[K]`.
    #[track_caller]
    pub fn map_activation(&self, v: &Expr) -> Expr {
        self.hidden_input(v).sigmoid().mean_axes(&[0, 2, 3], false)
    }
}

impl EnergyModel for ConvRbm {
    fn units(&self) -> (usize, usize) {
        let m = self.map_side();
        (self.side * self.side, self.filters * m * m)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.vbias, &self.hbias]
    }
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let hidden = self.hidden_input(v).softplus().sum_axes(&[1, 2, 3], false);
        -(v.sum_axes(&[1], false) * &self.vbias + hidden)
    }
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        let (_, n_hidden) = self.units();
        self.hidden_input(v)
            .sigmoid()
            .reshape(&[-1, n_hidden as isize])
    }
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        let (m, f) = (self.map_side() as isize, self.filter);
        let maps = h.reshape(&[-1, self.filters as isize, m, m]);
        let back = maps.conv2d(&self.flipped(), Conv2d::default().with_padding(f - 1));
        (back + self.vbias.reshape(&[1, 1, 1, 1]))
            .sigmoid()
            .reshape(&[-1, (self.side * self.side) as isize])
    }
    /// The sparsity regularizer, when there is one, added to the hidden biases' update.
    #[track_caller]
    fn amend_updates(&self, x: &Expr, _: &Expr, updates: &mut Vec<(Expr, Expr)>) -> Result<()> {
        let Some((target, rate)) = self.sparsity else {
            return Ok(());
        };
        let Some((_, new)) = updates.iter_mut().find(|(p, _)| p.id() == self.hbias.id()) else {
            return Err(Error::Usage {
                what: "the CD step has no update of the hidden biases to regularize".into(),
                loc: Location::caller(),
            });
        };
        let q = self.map_activation(x);
        *new = &*new + (-&q + target) * rate;
        Ok(())
    }
}
