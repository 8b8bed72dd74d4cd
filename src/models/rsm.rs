//! The replicated softmax model (Salakhutdinov & Hinton 2009), an RBM for word counts: a
//! document of `N` words over a vocabulary of `K` is `N` softmax units that share their weights,
//! seen through its counts `v ∈ ℕᴷ`, and `F` binary hidden units whose biases are scaled by the
//! document's length:
//!
//! ```text
//! E(v, h) = -v·b - N h·a - vᵀ W h          F(v) = -v·b - Σ_j softplus(N a_j + (v W)_j)
//! p(h_j = 1 | v) = σ(N a_j + (v W)_j)      v | h ~ Multinomial(N, softmax(b + W h))
//! ```
//!
//! Probabilities are those of a document as a sequence of words (a bag of counts would add the
//! multinomial coefficient `N! / Π v_k!` to both a model and its reference alike). The model
//! trains by the library's CD ([`Cd`](super::cd::Cd)) through [`EnergyModel`]; its Gibbs chain
//! draws documents of [`Rsm::doc_length`] words. [`Rsm::ais_log_partition`] estimates `log Z_N`
//! by annealed importance sampling, so [`Rsm::log_prob`] gives held-out log-probabilities.
//!
//! ```
//! use gradus::models::rsm::Rsm;
//! use gradus::prelude::*;
//! let g = Graph::new();
//! let rsm = Rsm::new(&g, 5, 3, 4, 1).unwrap(); // 5 words, 3 hidden units, documents of 4 words
//! // With zero weights the model is uniform over the 5⁴ sequences, and AIS is exact.
//! let log_z = rsm.ais_log_partition(&Default::default()).unwrap();
//! assert!((log_z - (3.0 * 2f64.ln() + 4.0 * 5f64.ln())).abs() < 0.05, "{log_z}");
//! ```

use ndarray::{Array1, Array2, Axis};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::{Expr, Graph, concat};
use crate::models::cd::EnergyModel;
use crate::random::RandomStream;
use crate::tensor::Tensor;

/// A replicated softmax model with parameters in shared variables.
#[derive(Clone, Debug)]
pub struct Rsm {
    /// Weights `[K, F]`.
    pub w: Expr,
    /// Word biases `b [K]`.
    pub vbias: Expr,
    /// Hidden biases `a [F]`, multiplied by a document's length.
    pub hbias: Expr,
    /// Vocabulary size `K`.
    pub n_words: usize,
    /// Hidden units `F`.
    pub n_hidden: usize,
    /// The number of words of the documents that the Gibbs chain draws.
    pub doc_length: usize,
}

/// Settings of [`Rsm::ais_log_partition`].
#[derive(Clone, Debug)]
pub struct RsmAis {
    /// Independent annealing runs.
    pub runs: usize,
    /// Intermediate distributions, evenly spaced in `β` from 0 to 1.
    pub steps: usize,
    /// Word biases of the base model (`W = 0`, `a = 0`), for instance the log of the training
    /// documents' word frequencies; `None` is the uniform model.
    pub base_vbias: Option<Array1<f64>>,
    /// Seed of the runs.
    pub seed: u64,
}

impl Default for RsmAis {
    fn default() -> Self {
        RsmAis {
            runs: 100,
            steps: 10_000,
            base_vbias: None,
            seed: 0,
        }
    }
}

impl Rsm {
    /// A new `f32` model in `graph`: weights from N(0, 0.01²), biases zero; its chain draws
    /// documents of `doc_length` words.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when a size is zero.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        n_words: usize,
        n_hidden: usize,
        doc_length: usize,
        seed: u64,
    ) -> Result<Rsm> {
        let loc = Location::caller();
        if n_words == 0 || n_hidden == 0 || doc_length == 0 {
            return Err(Error::Usage {
                what: format!(
                    "a replicated softmax needs words, hidden units and a document length, got {n_words}, {n_hidden}, {doc_length}"
                ),
                loc,
            });
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.01).map_err(|e| Error::Usage {
            what: e.to_string(),
            loc,
        })?;
        let w = Array2::from_shape_fn((n_words, n_hidden), |_| normal.sample(&mut rng));
        Ok(Rsm {
            w: graph.shared("W", Tensor::from(w)),
            vbias: graph.shared("vbias", Tensor::full(&[n_words], 0.0, DType::F32)),
            hbias: graph.shared("hbias", Tensor::full(&[n_hidden], 0.0, DType::F32)),
            n_words,
            n_hidden,
            doc_length,
        })
    }

    /// Set the word biases to the log of the word frequencies in `docs` (rows of counts, plus
    /// half a count each, so no word has probability zero), the practical guide's start: the
    /// weights then learn how topics depart from the unigram instead of the unigram itself.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when `docs` is not rows of `n_words` counts.
    #[track_caller]
    pub fn init_visible_bias(&self, docs: &Array2<f64>) -> Result<()> {
        self.check_counts(docs)?;
        let freq = docs.sum_axis(Axis(0)) + 0.5;
        let log_freq = freq.mapv(f64::ln) - freq.sum().ln();
        self.vbias
            .set_value(Tensor::from(log_freq).cast(self.vbias.dtype()))
    }

    /// The hidden units' input `N a + v W`, `N` the row sums of the counts `v`.
    #[track_caller]
    pub fn hidden_input(&self, v: &Expr) -> Expr {
        let length = v.sum_axes(&[1], true);
        v.matmul(&self.w) + length * &self.hbias
    }

    /// The current parameters as `f64` arrays `(W, b, a)`.
    pub fn values(&self) -> Result<(Array2<f64>, Array1<f64>, Array1<f64>)> {
        let get = |e: &Expr| -> Result<Vec<f64>> { Ok(e.get_value()?.to_f64_vec()) };
        let loc = Location::caller();
        let w =
            Array2::from_shape_vec((self.n_words, self.n_hidden), get(&self.w)?).map_err(|e| {
                Error::Usage {
                    what: e.to_string(),
                    loc,
                }
            })?;
        Ok((w, get(&self.vbias)?.into(), get(&self.hbias)?.into()))
    }

    /// `-F(v)` of each row of counts `v [docs, K]` with the current parameters.
    #[track_caller]
    pub fn neg_free_energy(&self, v: &Array2<f64>) -> Result<Array1<f64>> {
        self.check_counts(v)?;
        let (w, b, a) = self.values()?;
        let lengths = v.sum_axis(Axis(1));
        let x = v.dot(&w) + &lengths.insert_axis(Axis(1)).dot(&a.insert_axis(Axis(0)));
        Ok(v.dot(&b) + x.map_axis(Axis(1), |r| r.iter().map(|&t| softplus(t)).sum::<f64>()))
    }

    /// `log p(v)` of each document (a row of counts, `doc_length` words) given `log_z`, the
    /// log partition function for documents of that length.
    #[track_caller]
    pub fn log_prob(&self, v: &Array2<f64>, log_z: f64) -> Result<Array1<f64>> {
        let loc = Location::caller();
        if v.rows()
            .into_iter()
            .any(|r| r.sum() != self.doc_length as f64)
        {
            return Err(Error::Usage {
                what: format!(
                    "log_prob takes documents of {} words, the length log Z is for",
                    self.doc_length
                ),
                loc,
            });
        }
        Ok(self.neg_free_energy(v)? - log_z)
    }

    #[track_caller]
    fn check_counts(&self, v: &Array2<f64>) -> Result<()> {
        if v.ncols() != self.n_words || v.iter().any(|&c| c < 0.0 || c.fract() != 0.0) {
            return Err(Error::Usage {
                what: format!(
                    "documents are rows of {} non-negative whole counts, got {} columns",
                    self.n_words,
                    v.ncols()
                ),
                loc: Location::caller(),
            });
        }
        Ok(())
    }

    /// `log Z_N` for documents of `doc_length` words by annealed importance sampling: from the
    /// base model (`W = 0`, `a = 0`, word biases `cfg.base_vbias`), whose `log Z` is
    /// `F log 2 + N logsumexp(b_A)`, through `p*_β(v) = exp(v·((1-β) b_A + β b)) Π_j (1 +
    /// exp(β (N a_j + (vW)_j)))`, one Gibbs step `v → h → v` per `β`. Each run draws from its
    /// own generator seeded from `cfg.seed`.
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] when there are no runs or steps or the base biases do not fit.
    #[track_caller]
    pub fn ais_log_partition(&self, cfg: &RsmAis) -> Result<f64> {
        let loc = Location::caller();
        let base = cfg
            .base_vbias
            .clone()
            .unwrap_or_else(|| Array1::zeros(self.n_words));
        if cfg.runs == 0 || cfg.steps == 0 || base.len() != self.n_words {
            return Err(Error::Usage {
                what: format!(
                    "AIS needs runs, steps and {} base biases, got {} runs, {} steps, {} biases",
                    self.n_words,
                    cfg.runs,
                    cfg.steps,
                    base.len()
                ),
                loc,
            });
        }
        let (w, b, a) = self.values()?;
        let n = self.doc_length;
        let na = &a * n as f64;
        let log_z_base =
            self.n_hidden as f64 * 2f64.ln() + n as f64 * logsumexp(base.as_slice().unwrap_or(&[]));
        let weights: Vec<f64> = (0..cfg.runs as u64)
            .into_par_iter()
            .map(|r| {
                let mut rng = SmallRng::seed_from_u64(
                    cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(r),
                );
                let run = Run {
                    w: &w,
                    b: &b,
                    na: &na,
                    base: &base,
                    n,
                };
                run.anneal(cfg.steps, &mut rng)
            })
            .collect();
        Ok(log_z_base + logsumexp(&weights) - (cfg.runs as f64).ln())
    }
}

impl Rsm {
    /// `log Z_N` for documents of `doc_length` words exactly, by summing over the `2^F` hidden
    /// states: given `h` the words are independent, so `Σ_v exp(-E(v, h)) = exp(N a·h)
    /// (Σ_k exp(b_k + (W h)_k))^N`. The oracle of [`Rsm::ais_log_partition`].
    ///
    /// # Errors
    ///
    /// [`Error::Usage`] for more than 24 hidden units.
    #[track_caller]
    pub fn exact_log_partition(&self) -> Result<f64> {
        if self.n_hidden > 24 {
            return Err(Error::Usage {
                what: format!(
                    "the exact log Z sums over 2^F hidden states; F = {} is too many (at most 24)",
                    self.n_hidden
                ),
                loc: Location::caller(),
            });
        }
        let (w, b, a) = self.values()?;
        let n = self.doc_length as f64;
        let terms: Vec<f64> = (0..1u64 << self.n_hidden)
            .into_par_iter()
            .map(|bits| {
                let h = Array1::from_shape_fn(self.n_hidden, |j| ((bits >> j) & 1) as f64);
                let logits = &b + &w.dot(&h);
                n * a.dot(&h) + n * logsumexp(logits.as_slice().unwrap_or(&[]))
            })
            .collect();
        Ok(logsumexp(&terms))
    }
}

/// One annealing run's fixed data.
struct Run<'a> {
    w: &'a Array2<f64>,
    b: &'a Array1<f64>,
    na: &'a Array1<f64>,
    base: &'a Array1<f64>,
    n: usize,
}

impl Run<'_> {
    /// `log p*_β(v)` given `x = vW + N a`.
    fn log_p_star(&self, beta: f64, v: &Array1<f64>, x: &Array1<f64>) -> f64 {
        let words = v.dot(&(self.base * (1.0 - beta) + self.b * beta));
        words + x.iter().map(|&t| softplus(beta * t)).sum::<f64>()
    }

    /// `n` words from `softmax(logits)`, as counts.
    fn draw(&self, logits: &Array1<f64>, rng: &mut SmallRng) -> Array1<f64> {
        let m = logits.fold(f64::NEG_INFINITY, |m, &l| m.max(l));
        let mut cdf: Vec<f64> = logits.iter().map(|&l| (l - m).exp()).collect();
        for k in 1..cdf.len() {
            cdf[k] += cdf[k - 1];
        }
        let total = cdf[cdf.len() - 1];
        let mut v = Array1::zeros(logits.len());
        for _ in 0..self.n {
            let u = rng.random::<f64>() * total;
            let k = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1);
            v[k] += 1.0;
        }
        v
    }

    /// The log importance weight of one run through `steps` temperatures.
    fn anneal(&self, steps: usize, rng: &mut SmallRng) -> f64 {
        let mut v = self.draw(self.base, rng);
        let mut log_w = 0.0;
        for k in 1..=steps {
            let (prev, beta) = ((k - 1) as f64 / steps as f64, k as f64 / steps as f64);
            let x = v.dot(self.w) + self.na;
            log_w += self.log_p_star(beta, &v, &x) - self.log_p_star(prev, &v, &x);
            if k == steps {
                break;
            }
            let h = x.mapv(|t| f64::from(rng.random::<f64>() < sigmoid(beta * t)));
            let logits = self.base * (1.0 - beta) + (self.b + &self.w.dot(&h)) * beta;
            v = self.draw(&logits, rng);
        }
        log_w
    }
}

fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logsumexp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + xs.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
}

impl EnergyModel for Rsm {
    fn units(&self) -> (usize, usize) {
        (self.n_words, self.n_hidden)
    }
    fn weights(&self) -> Vec<&Expr> {
        vec![&self.w]
    }
    fn biases(&self) -> Vec<&Expr> {
        vec![&self.vbias, &self.hbias]
    }
    /// `-v·b - Σ_j softplus(N a_j + (v W)_j)`.
    #[track_caller]
    fn free_energy(&self, v: &Expr) -> Expr {
        let vb = v.dot(&self.vbias);
        -(vb + self.hidden_input(v).softplus().sum_axes(&[1], false))
    }
    #[track_caller]
    fn hidden_mean(&self, v: &Expr) -> Expr {
        self.hidden_input(v).sigmoid()
    }
    /// The expected counts of a document of `doc_length` words, `N softmax(b + W h)`.
    #[track_caller]
    fn visible_mean(&self, h: &Expr) -> Expr {
        (h.matmul(&self.w.t()) + &self.vbias).softmax(1) * self.doc_length as f64
    }
    /// `doc_length` words drawn from `softmax(b + W h)`, as counts: one categorical draw per
    /// word of each document, summed.
    #[track_caller]
    fn sample_visible(&self, h: &Expr, rng: &RandomStream) -> Expr {
        let probs = (h.matmul(&self.w.t()) + &self.vbias).softmax(1);
        let copies = vec![&probs; self.doc_length];
        let k = self.n_words as isize;
        let per_word = concat(&copies, 1).reshape(&[-1, k]);
        let words = rng
            .categorical(&per_word)
            .one_hot(self.n_words, probs.dtype());
        words
            .reshape(&[-1, self.doc_length as isize, k])
            .sum_axes(&[1], false)
    }
}
