//! Random streams as graph ops.
//!
//! A [`RandomStream`] is a shared `i64[2]` state `(seed, counter)`. Each sampling node draws
//! element `i` as a hash of `(seed, counter, node key, i)`: a counter-based generator, so the
//! draws are the same bit for bit whatever the number of threads, and two sampling nodes never
//! share numbers. Every call of a compiled function that samples from a stream advances its
//! counter by one after the call, as an update would (unless the user updates the state).
//!
//! ```
//! use gradus::prelude::*;
//! use gradus::random::RandomStream;
//! let g = Graph::new();
//! let p = g.vector("p", DType::F64);
//! let rng = RandomStream::new(&g, 42);
//! let h = rng.bernoulli(&p);
//! let f = function(&[&p], &[&h]).compile().unwrap();
//! let a = f.call(&[vec![0.5; 8].into()]).unwrap();
//! let b = f.call(&[vec![0.5; 8].into()]).unwrap();
//! assert_ne!(a, b, "the stream advanced between calls");
//! ```

use crate::dtype::DType;
use crate::error::Location;
use crate::graph::op::{Dist, Op};
use crate::graph::{Expr, Graph};
use crate::kernels::random;
use crate::tensor::Tensor;

/// A seeded stream of random numbers whose state is an explicit shared variable.
#[derive(Clone, Debug)]
pub struct RandomStream {
    state: Expr,
}

impl RandomStream {
    /// A stream seeded with `seed`, its state a new shared variable of `graph`.
    #[track_caller]
    pub fn new(graph: &Graph, seed: u64) -> RandomStream {
        let state = graph.shared("rng_state", vec![seed as i64, 0i64]);
        RandomStream { state }
    }

    /// The state variable (`i64[2]`: seed and call counter).
    pub fn state(&self) -> &Expr {
        &self.state
    }

    /// Restart the stream from `seed`.
    pub fn reseed(&self, seed: u64) -> crate::Result<()> {
        self.state.set_value(vec![seed as i64, 0i64])
    }

    /// A sampling node of `dist` reading `operands` (the shape to draw, or the parameters).
    /// A parameter that is a constant is checked against the distribution's domain here, where
    /// the user wrote it; the others are checked when the draw runs.
    #[track_caller]
    fn random(&self, dist: Dist, operands: &[&Expr], dtype: DType) -> Expr {
        let g = self.state.graph();
        let loc = Location::caller();
        let key = {
            let mut inner = g.lock();
            for (k, p) in operands.iter().enumerate().take(dist.params().len()) {
                let Op::Constant(c) = inner.node(p.id()).op else {
                    continue;
                };
                let values = inner.constants[c].to_f64_vec();
                if let Err(detail) = random::check_param(dist, k, &values) {
                    let err = crate::Error::Invalid {
                        op: dist.name(),
                        detail,
                        loc,
                    };
                    let id = inner.invalid(err, loc);
                    drop(inner);
                    return g.expr(id);
                }
            }
            inner.next_key += 1;
            inner.next_key
        };
        let inputs: Vec<&Expr> = std::iter::once(&self.state)
            .chain(operands.iter().copied())
            .collect();
        g.apply_loc(Op::Random { dist, dtype, key }, &inputs, loc)
    }

    /// The float dtype of draws shaped like `like`: its own, f64 for a non-float `like`.
    fn float_of(like: &Expr) -> DType {
        let d = like.dtype();
        if d.is_float() { d } else { DType::F64 }
    }

    /// Uniform draws on `[0, 1)` shaped like `like` (whose values are not used), in its float
    /// dtype (f64 for non-float `like`).
    #[track_caller]
    pub fn uniform(&self, like: &Expr) -> Expr {
        self.random(Dist::Uniform, &[like], Self::float_of(like))
    }

    /// Standard normal draws shaped like `like`.
    #[track_caller]
    pub fn normal(&self, like: &Expr) -> Expr {
        self.random(Dist::Normal, &[like], Self::float_of(like))
    }

    /// Binary samples with success probabilities `p`: `1` where `u < p`.
    #[track_caller]
    pub fn bernoulli(&self, p: &Expr) -> Expr {
        self.uniform(p).lt(p).cast(p.dtype())
    }

    /// Binomial samples: the number of successes in `n` trials of probability `p`, one draw
    /// per element of `p`, in its float dtype. A `p` outside `[0, 1]` is an error: at build
    /// time for a constant, when the draw runs otherwise.
    #[track_caller]
    pub fn binomial(&self, n: usize, p: &Expr) -> Expr {
        let dist = Dist::Binomial { n: n as u64 };
        self.random(dist, &[p], p.dtype())
    }

    /// Gamma samples of shape `k` and scale `theta` (mean `k θ`, variance `k θ²`), broadcast
    /// together, in their float dtype. Both must be finite and positive.
    #[track_caller]
    pub fn gamma(&self, k: &Expr, theta: &Expr) -> Expr {
        self.random(Dist::Gamma, &[k, theta], k.dtype())
    }

    /// Beta samples with parameters `a` and `b` (mean `a / (a + b)`), broadcast together, in
    /// their float dtype. Both must be finite and positive.
    #[track_caller]
    pub fn beta(&self, a: &Expr, b: &Expr) -> Expr {
        self.random(Dist::Beta, &[a, b], a.dtype())
    }

    /// Poisson samples of mean `lambda` (a count, in `lambda`'s float dtype), one per element
    /// of `lambda`, which must be finite and at least 0.
    #[track_caller]
    pub fn poisson(&self, lambda: &Expr) -> Expr {
        self.random(Dist::Poisson, &[lambda], lambda.dtype())
    }

    /// One category index (`i64`) per row of a probability matrix `[rows, k]`: the number of
    /// cumulative probabilities below a uniform draw.
    #[track_caller]
    pub fn categorical(&self, probs: &Expr) -> Expr {
        let k = match probs.shape().dims() {
            [_, Some(k)] => *k,
            _ => {
                let g = probs.graph();
                let loc = Location::caller();
                let err = crate::Error::Shape {
                    op: "categorical".into(),
                    detail: format!(
                        "needs a [rows, k] matrix with known k, got {}",
                        probs.shape()
                    ),
                    loc,
                };
                let id = g.lock().invalid(err, loc);
                return g.expr(id);
            }
        };
        let upper = ndarray::Array2::from_shape_fn((k, k), |(i, j)| if i <= j { 1.0 } else { 0.0 });
        let upper = probs
            .graph()
            .constant(Tensor::from(upper).cast(probs.dtype()));
        let cdf = probs.matmul(&upper);
        let u = self.uniform(&probs.slice(1, 0, Some(1)));
        let below = cdf.lt(&u).cast(probs.dtype()).sum_axes(&[1], false);
        below.minimum((k - 1) as f64).cast(DType::I64)
    }
}
