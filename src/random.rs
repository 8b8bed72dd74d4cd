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

use ndarray::{ArrayD, IxDyn};

use crate::dtype::{DType, Float};
use crate::error::Location;
use crate::graph::op::{Dist, Op};
use crate::graph::{Expr, Graph};
use crate::tensor::Tensor;

/// A seeded stream of random numbers whose state is an explicit shared variable.
#[derive(Clone, Debug)]
pub struct RandomStream {
    state: Expr,
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-node part of the hash: it depends on the seed, the call and the node, not on the
/// element, so a draw computes it once.
fn node_base(seed: u64, counter: u64, key: u64) -> u64 {
    let a = mix(seed ^ 0x9e37_79b9_7f4a_7c15);
    let b = mix(a ^ counter.wrapping_mul(0xd1b5_4a32_d192_ed03));
    mix(b ^ key.wrapping_mul(0x8cb9_2ba7_2f3d_8dd7))
}

/// 64 random bits for element `i` of draw `lane` of the node with hash base `base`.
#[inline(always)]
fn bits(base: u64, i: u64, lane: u64) -> u64 {
    mix(base ^ i.wrapping_mul(2).wrapping_add(lane))
}

/// A uniform in `[0, 1)` with 53 random bits.
fn unit(b: u64) -> f64 {
    (b >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

fn sample(dist: Dist, base: u64, i: u64) -> f64 {
    match dist {
        Dist::Uniform => unit(bits(base, i, 0)),
        Dist::Normal => {
            // Box-Muller; 1 - u keeps the log away from 0.
            let u1 = 1.0 - unit(bits(base, i, 0));
            let u2 = unit(bits(base, i, 1));
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }
}

/// Draw an array of the given shape; element `i` depends only on `(seed, counter, key, i)`.
pub(crate) fn draw<T: Float>(
    dist: Dist,
    seed: u64,
    counter: u64,
    key: u64,
    shape: &[usize],
    fast: bool,
) -> ArrayD<T> {
    let mut out = ArrayD::<T>::zeros(IxDyn(shape));
    let flat = out.as_slice_mut().expect("fresh arrays are contiguous");
    draw_into(dist, (seed, counter, key), flat, fast);
    out
}

/// Fill `out` with draws: element `i` depends only on `(seed, counter, key, i)`.
pub(crate) fn draw_into<T: Float>(
    dist: Dist,
    (seed, counter, key): (u64, u64, u64),
    out: &mut [T],
    fast: bool,
) {
    /// Elements per task of a parallel draw: small enough that a draw of a few tens of
    /// thousands splits evenly over the threads.
    const CHUNK: usize = 1 << 12;
    let base = node_base(seed, counter, key);
    let fill = |(c, chunk): (usize, &mut [T])| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { fill_avx2(dist, base, c * CHUNK, chunk) };
        }
        fill_from(dist, base, c * CHUNK, chunk)
    };
    if fast && out.len() >= crate::exec::kernels::PAR_MIN {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK).enumerate().for_each(fill);
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(fill);
    }
}

/// [`fill_from`] compiled for AVX2, whose 64-bit lanes make the hash vectorize.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2<T: Float>(dist: Dist, base: u64, start: usize, out: &mut [T]) {
    fill_from(dist, base, start, out)
}

/// Elements `start ..` of a draw into `out`.
#[inline(always)]
fn fill_from<T: Float>(dist: Dist, base: u64, start: usize, out: &mut [T]) {
    match dist {
        Dist::Uniform => {
            // `unit`, in a loop that vectorizes: the 53 bits as 52 in the mantissa of a float
            // in [1, 2), less 1, plus the last bit.
            let below_one = T::one() - T::epsilon();
            for (i, v) in out.iter_mut().enumerate() {
                let b = bits(base, (start + i) as u64, 0);
                let hi = f64::from_bits((b >> 12) | 0x3ff0_0000_0000_0000) - 1.0;
                let x = hi + ((b >> 11) & 1) as f64 * (1.0 / (1u64 << 53) as f64);
                // f32: round down so uniform draws stay below 1.
                let t = T::from_f(x);
                *v = if t >= T::one() { below_one } else { t };
            }
        }
        Dist::Normal => {
            for (i, v) in out.iter_mut().enumerate() {
                *v = T::from_f(sample(dist, base, (start + i) as u64));
            }
        }
    }
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

    #[track_caller]
    fn random(&self, dist: Dist, like: &Expr, dtype: DType) -> Expr {
        let g = self.state.graph();
        let key = {
            let mut inner = g.lock();
            inner.next_key += 1;
            inner.next_key
        };
        g.apply_loc(
            Op::Random { dist, dtype, key },
            &[&self.state, like],
            Location::caller(),
        )
    }

    /// Uniform draws on `[0, 1)` shaped like `like` (whose values are not used), in its float
    /// dtype (f64 for non-float `like`).
    #[track_caller]
    pub fn uniform(&self, like: &Expr) -> Expr {
        let d = like.dtype();
        self.random(
            Dist::Uniform,
            like,
            if d.is_float() { d } else { DType::F64 },
        )
    }

    /// Standard normal draws shaped like `like`.
    #[track_caller]
    pub fn normal(&self, like: &Expr) -> Expr {
        let d = like.dtype();
        self.random(
            Dist::Normal,
            like,
            if d.is_float() { d } else { DType::F64 },
        )
    }

    /// Binary samples with success probabilities `p`: `1` where `u < p`.
    #[track_caller]
    pub fn bernoulli(&self, p: &Expr) -> Expr {
        self.uniform(p).lt(p).cast(p.dtype())
    }

    /// Binomial samples: the number of successes in `n` trials of probability `p`.
    #[track_caller]
    pub fn binomial(&self, n: usize, p: &Expr) -> Expr {
        let mut total = p.lit(0.0).broadcast_like(p);
        for _ in 0..n {
            total = &total + &self.bernoulli(p);
        }
        total
    }

    /// One category index (`i64`) per row of a probability matrix `[rows, k]`: the number of
    /// cumulative probabilities below a uniform draw.
    #[track_caller]
    pub fn categorical(&self, probs: &Expr) -> Expr {
        let k = match probs.shape().0.as_slice() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_only_on_the_index_so_threads_do_not_matter() {
        let a: ArrayD<f64> = draw(Dist::Uniform, 7, 3, 11, &[100, 400], true);
        let b: ArrayD<f64> = draw(Dist::Uniform, 7, 3, 11, &[100, 400], false);
        assert_eq!(a, b);
        let c: ArrayD<f64> = draw(Dist::Uniform, 7, 4, 11, &[100, 400], false);
        assert_ne!(a, c);
    }

    #[test]
    fn the_uniform_loop_draws_exactly_unit_of_the_bits() {
        // Through the dispatch (the AVX2 build where the CPU has it) and the portable loop,
        // over several parallel chunks.
        let base = node_base(5, 2, 9);
        let mut fast = vec![0.0f64; 70_000];
        draw_into(Dist::Uniform, (5, 2, 9), &mut fast, true);
        let mut plain = vec![0.0f64; 5000];
        fill_from(Dist::Uniform, base, 1000, &mut plain);
        for (i, v) in fast.iter().enumerate() {
            assert_eq!(*v, unit(bits(base, i as u64, 0)), "element {i}");
        }
        assert_eq!(plain[..], fast[1000..6000]);
    }

    #[test]
    fn uniform_and_normal_moments() {
        let u: ArrayD<f64> = draw(Dist::Uniform, 1, 0, 1, &[20_000], false);
        let n: ArrayD<f64> = draw(Dist::Normal, 1, 0, 2, &[20_000], false);
        let mean = |a: &ArrayD<f64>| a.sum() / a.len() as f64;
        let var = |a: &ArrayD<f64>| a.mapv(|v| (v - mean(a)).powi(2)).sum() / a.len() as f64;
        assert!((mean(&u) - 0.5).abs() < 0.01 && (var(&u) - 1.0 / 12.0).abs() < 0.004);
        assert!(mean(&n).abs() < 0.03 && (var(&n) - 1.0).abs() < 0.05);
        assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
        let f: ArrayD<f32> = draw(Dist::Uniform, 1, 0, 1, &[20_000], false);
        assert!(f.iter().all(|v| (0.0..1.0).contains(v)));
    }
}
