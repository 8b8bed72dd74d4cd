//! RBMs with other units, trained by the library's CD through [`EnergyModel`]:
//!
//! - [`NreluRbm`]: binary visible units and noisy rectified linear hidden units (Nair & Hinton
//!   2010), sampled as `max(0, x + N(0, σ(x)))`;
//! - [`SoftmaxRbm`]: visible units in groups of `K`, exactly one on in each group (a 1-of-K
//!   code per group), and binary hidden units.
//!
//! ```
//! use gradus::models::cd::{Cd, EnergyModel};
//! use gradus::models::units::NreluRbm;
//! use gradus::models::CdConfig;
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let rbm = NreluRbm::new(&g, 6, 4, 1)?;
//! let trainer = Cd::new(&rbm, &CdConfig::default(), &RandomStream::new(&g, 2)).compile()?;
//! let x: Tensor = ndarray::Array2::<f32>::ones((3, 6)).into();
//! trainer.step().call(&[x])?;
//! # Ok::<(), gradus::Error>(())
//! ```

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::{Expr, Graph};
use crate::models::cd::{EnergyModel, new_params};
use crate::random::RandomStream;

/// An RBM with binary visible units and noisy rectified linear (NReLU) hidden units.
///
/// Nair & Hinton's NReLU stands for a *stepped sigmoid* unit: `copies` binary units that share
/// their weights and bias, with offsets `-0.5, -1.5, -2.5, ...`, whose sum has the mean
/// `Σ_i σ(x - i + 0.5) ≈ softplus(x)`. The free energy is that model's, exactly:
///
/// ```text
/// F(v) = -v·b - Σ_j Σ_{i=1..copies} softplus(x_j - i + 0.5),   x = c + v W
/// ```
///
/// so CD's update is the stepped-sigmoid RBM's; sampling the sum of the copies is replaced, as
/// in the paper, by `max(0, x + N(0, σ(x)))`.
#[derive(Clone, Debug)]
pub struct NreluRbm {
    /// Weights `[n_visible, n_hidden]`.
    pub w: Expr,
    /// Visible biases `[n_visible]`.
    pub vbias: Expr,
    /// Hidden biases `[n_hidden]`.
    pub hbias: Expr,
    /// Number of visible units.
    pub n_visible: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
    /// Binary copies in the free energy (the largest hidden input it follows is about this).
    pub copies: usize,
}

impl NreluRbm {
    /// A new `f32` model in `graph`: weights from N(0, 0.01²), biases zero, 20 copies.
    #[track_caller]
    pub fn new(graph: &Graph, n_visible: usize, n_hidden: usize, seed: u64) -> Result<NreluRbm> {
        NreluRbm::new_with_dtype(graph, n_visible, n_hidden, DType::F32, seed)
    }

    /// [`NreluRbm::new`] with parameters of float `dtype`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `dtype` is not a float type.
    #[track_caller]
    pub fn new_with_dtype(
        graph: &Graph,
        n_visible: usize,
        n_hidden: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<NreluRbm> {
        let [w, vbias, hbias] = new_params(graph, n_visible, n_hidden, dtype, seed)?;
        Ok(NreluRbm {
            w,
            vbias,
            hbias,
            n_visible,
            n_hidden,
            copies: 20,
        })
    }

    /// The hidden units' input `x = c + v W`.
    #[track_caller]
    pub fn hidden_input(&self, v: &Expr) -> Expr {
        v.matmul(&self.w) + &self.hbias
    }

    /// `Σ_i f(x - i + 0.5)` over the copies.
    fn over_copies(&self, x: &Expr, f: impl Fn(&Expr) -> Expr) -> Expr {
        (1..=self.copies)
            .map(|i| f(&(x - (i as f64 - 0.5))))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| x.zeros_like())
    }
}

impl EnergyModel for NreluRbm {
    fn units(&self) -> (usize, usize) {
        (self.n_visible, self.n_hidden)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.vbias, &self.hbias]
    }
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let vb = v.dot(&self.vbias);
        let x = self.hidden_input(v);
        -(vb + self.over_copies(&x, |t| t.softplus()).sum_axes(&[1], false))
    }
    /// `Σ_i σ(x - i + 0.5)`, the stepped sigmoid's mean.
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        self.over_copies(&self.hidden_input(v), |t| t.sigmoid())
    }
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        (h.matmul(&self.w.t()) + &self.vbias).sigmoid()
    }
    /// `max(0, x + N(0, σ(x)))`.
    #[track_caller]
    fn sample_hidden(&self, v: &Expr, rng: &RandomStream) -> Expr {
        let x = self.hidden_input(v);
        (&x + &(rng.normal(&x) * x.sigmoid().sqrt())).relu()
    }
}

/// An RBM whose visible units come in `n_groups` groups of `group_size`, exactly one on in each
/// group, with binary hidden units. The energy is the binary RBM's, so is the free energy
/// `F(v) = -v·b - Σ_j softplus(c_j + (v W)_j)`; only `p(v | h)` differs: a softmax over each
/// group of `b + W h`.
#[derive(Clone, Debug)]
pub struct SoftmaxRbm {
    /// Weights `[n_groups * group_size, n_hidden]`, group by group.
    pub w: Expr,
    /// Visible biases `[n_groups * group_size]`.
    pub vbias: Expr,
    /// Hidden biases `[n_hidden]`.
    pub hbias: Expr,
    /// Number of groups.
    pub n_groups: usize,
    /// Units per group (`K` of 1-of-K).
    pub group_size: usize,
    /// Number of hidden units.
    pub n_hidden: usize,
}

impl SoftmaxRbm {
    /// A new `f32` model in `graph`: weights from N(0, 0.01²), biases zero.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when a size is zero.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        n_groups: usize,
        group_size: usize,
        n_hidden: usize,
        seed: u64,
    ) -> Result<SoftmaxRbm> {
        if n_groups == 0 || group_size == 0 || n_hidden == 0 {
            return Err(Error::Usage {
                what: format!(
                    "a softmax RBM needs groups, units per group and hidden units, got {n_groups}, {group_size}, {n_hidden}"
                ),
                loc: Location::caller(),
            });
        }
        let [w, vbias, hbias] =
            new_params(graph, n_groups * group_size, n_hidden, DType::F32, seed)?;
        Ok(SoftmaxRbm {
            w,
            vbias,
            hbias,
            n_groups,
            group_size,
            n_hidden,
        })
    }

    /// `b + W h`, one row of `[group_size]` logits per group and row of `h`.
    fn group_logits(&self, h: &Expr) -> Expr {
        (h.matmul(&self.w.t()) + &self.vbias).reshape(&[-1, self.group_size as isize])
    }

    /// Back from one row per group to one row per example.
    fn per_example(&self, x: &Expr) -> Expr {
        x.reshape(&[-1, (self.n_groups * self.group_size) as isize])
    }
}

impl EnergyModel for SoftmaxRbm {
    fn units(&self) -> (usize, usize) {
        (self.n_groups * self.group_size, self.n_hidden)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.vbias, &self.hbias]
    }
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let vb = v.dot(&self.vbias);
        -(vb + (v.matmul(&self.w) + &self.hbias)
            .softplus()
            .sum_axes(&[1], false))
    }
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        (v.matmul(&self.w) + &self.hbias).sigmoid()
    }
    /// The softmax of each group.
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        self.per_example(&self.group_logits(h).softmax(1))
    }
    /// One unit on per group, drawn from its softmax.
    #[track_caller]
    fn sample_visible(&self, h: &Expr, rng: &RandomStream) -> Expr {
        let probs = self.group_logits(h).softmax(1);
        let on = rng
            .categorical(&probs)
            .one_hot(self.group_size, probs.dtype());
        self.per_example(&on)
    }
}
