//! Random draws as a counter-based generator: element `i` of a sampling node is a hash of
//! `(seed, counter, node key, i)`, so the draws are the same bit for bit whatever the number of
//! threads, and two sampling nodes never share numbers.

use ndarray::{ArrayD, IxDyn};

use super::{Exec, KernelFloat};
use crate::graph::op::Dist;
use crate::tensor::Tensor;

/// The counter step `step` of a loop draws with, for a call whose stream counter is `counter`:
/// a mix of the two, so that steps and calls draw apart.
pub(crate) fn step_counter(counter: u64, step: u64) -> u64 {
    mix(counter ^ mix(step ^ 0x632b_e59b_d9b4_e019))
}

/// The seed and call counter of a stream's state, an `i64[2]` tensor.
pub(crate) fn stream_state(state: &Tensor) -> Result<(u64, u64), String> {
    match state
        .as_i64()
        .map(|s| s.iter().copied().collect::<Vec<i64>>())
    {
        Some(s) if s.len() == 2 => Ok((s[0] as u64, s[1] as u64)),
        _ => Err(format!(
            "a stream state is i64[2], got {}{}",
            state.dtype(),
            crate::shape::show(state.shape())
        )),
    }
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

/// The random bits of element `i` of a draw that takes as many as it needs (the rejection
/// samplers of `rand_distr`): a SplitMix64 sequence started from the element's hash, so each
/// element still depends only on `(seed, counter, key, i)`.
struct ElementRng(u64);

impl ElementRng {
    fn new(base: u64, i: u64) -> ElementRng {
        ElementRng(bits(base, i, 0))
    }
}

impl rand::RngCore for ElementRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let b = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// Element `i` of a draw whose parameters at that element are `at` (in the order of
/// [`Dist::params`]), checked by [`check_param`].
fn sample(dist: Dist, base: u64, i: u64, at: [f64; 2]) -> f64 {
    use rand_distr::{Beta, Binomial, Distribution, Gamma, Poisson};
    let rng = || ElementRng::new(base, i);
    // The parameters are checked, so the constructors accept them; NaN rather than a panic if
    // one did not.
    match dist {
        Dist::Uniform => unit(bits(base, i, 0)),
        Dist::Normal => {
            // Box-Muller; 1 - u keeps the log away from 0.
            let u1 = 1.0 - unit(bits(base, i, 0));
            let u2 = unit(bits(base, i, 1));
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
        Dist::Binomial { n } => {
            Binomial::new(n, at[0]).map_or(f64::NAN, |d| d.sample(&mut rng()) as f64)
        }
        Dist::Gamma => Gamma::new(at[0], at[1]).map_or(f64::NAN, |d| d.sample(&mut rng())),
        Dist::Beta => Beta::new(at[0], at[1]).map_or(f64::NAN, |d| d.sample(&mut rng())),
        // `rand_distr` wants λ > 0; Poisson(0) is always 0.
        Dist::Poisson if at[0] == 0.0 => 0.0,
        Dist::Poisson => Poisson::new(at[0]).map_or(f64::NAN, |d| d.sample(&mut rng())),
    }
}

/// The values of parameter `k` of a draw (in the order of [`Dist::params`]) must lie in the
/// distribution's domain.
pub(crate) fn check_param(dist: Dist, k: usize, values: &[f64]) -> Result<(), String> {
    let (domain, want): (fn(f64) -> bool, &str) = match dist {
        Dist::Uniform | Dist::Normal => return Ok(()),
        Dist::Binomial { .. } => (|p| (0.0..=1.0).contains(&p), "a probability in [0, 1]"),
        Dist::Gamma | Dist::Beta => (|v| v > 0.0 && v.is_finite(), "finite and > 0"),
        Dist::Poisson => (
            |l| (0.0..=rand_distr::Poisson::<f64>::MAX_LAMBDA).contains(&l),
            "finite and >= 0",
        ),
    };
    let name = dist.params().get(k).copied().unwrap_or("a parameter");
    match values.iter().find(|v| !domain(**v)) {
        Some(v) => Err(format!("{name} must be {want}, got {v}")),
        None => Ok(()),
    }
}

/// The parameters of a draw of `shape` as `f64`, each broadcast over the draws (empty for a
/// distribution without parameters).
fn param_values(params: &[&Tensor], shape: &[usize]) -> Result<Vec<Vec<f64>>, String> {
    params
        .iter()
        .map(|p| {
            let values = p.cast(crate::dtype::DType::F64);
            let a = values.as_f64().ok_or("a cast to f64 is f64")?;
            let b = a.broadcast(IxDyn(shape)).ok_or_else(|| {
                format!(
                    "a parameter of shape {} does not broadcast to {}",
                    crate::shape::show(a.shape()),
                    crate::shape::show(shape)
                )
            })?;
            Ok(b.iter().copied().collect())
        })
        .collect()
}

/// The draws of a node: `x` are its operands after the state (the shape to draw, or the
/// parameters, already broadcast-checked); element `i` depends only on `(seed, counter, key,
/// i)` and the parameters at `i`.
pub(crate) fn draw_node<T: KernelFloat>(
    dist: Dist,
    stream: (u64, u64, u64),
    x: &[&Tensor],
    exec: Exec,
) -> Result<ArrayD<T>, String> {
    if dist.params().is_empty() {
        let shape = x.first().ok_or("a draw reads the shape to draw")?.shape();
        return Ok(draw(dist, stream, shape, exec));
    }
    let shape = x.iter().try_fold(Vec::new(), |s, p| {
        crate::shape::broadcast_concrete(&s, p.shape())
    })?;
    let params = param_values(x, &shape)?;
    for (k, values) in params.iter().enumerate() {
        check_param(dist, k, values)?;
    }
    let mut out = ArrayD::<T>::zeros(IxDyn(&shape));
    let flat = out.as_slice_mut().ok_or("fresh arrays are contiguous")?;
    let base = node_base(stream.0, stream.1, stream.2);
    let one = |(i, v): (usize, &mut T)| {
        let at = [params[0][i], params.get(1).map_or(0.0, |p| p[i])];
        *v = T::from_f(sample(dist, base, i as u64, at));
    };
    if crate::kernels::parallel(exec, flat.len()) {
        use rayon::prelude::*;
        flat.par_iter_mut().enumerate().for_each(one);
    } else {
        flat.iter_mut().enumerate().for_each(one);
    }
    Ok(out)
}

/// Draw an array of the given shape; element `i` depends only on `(seed, counter, key, i)`.
pub(crate) fn draw<T: KernelFloat>(
    dist: Dist,
    stream: (u64, u64, u64),
    shape: &[usize],
    exec: Exec,
) -> ArrayD<T> {
    let mut out = ArrayD::<T>::zeros(IxDyn(shape));
    let flat = out.as_slice_mut().expect("fresh arrays are contiguous");
    draw_into(dist, stream, flat, exec);
    out
}

/// Fill `out` with draws of a distribution without parameters: element `i` depends only on
/// `(seed, counter, key, i)`.
pub(crate) fn draw_into<T: KernelFloat>(
    dist: Dist,
    (seed, counter, key): (u64, u64, u64),
    out: &mut [T],
    exec: Exec,
) {
    /// Elements per task of a parallel draw: small enough that a draw of a few tens of
    /// thousands splits evenly over the threads.
    const CHUNK: usize = 1 << 12;
    let base = node_base(seed, counter, key);
    let fill = |(c, chunk): (usize, &mut [T])| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU has AVX-512 F and DQ (checked just above).
            return unsafe { fill_avx512(dist, base, c * CHUNK, chunk) };
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { fill_avx2(dist, base, c * CHUNK, chunk) };
        }
        fill_from(dist, base, c * CHUNK, chunk)
    };
    if crate::kernels::parallel(exec, out.len()) {
        use rayon::prelude::*;
        out.par_chunks_mut(CHUNK).enumerate().for_each(fill);
    } else {
        out.chunks_mut(CHUNK).enumerate().for_each(fill);
    }
}

/// [`fill_from`] compiled for AVX2, whose 64-bit lanes make the hash vectorize.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2<T: KernelFloat>(dist: Dist, base: u64, start: usize, out: &mut [T]) {
    fill_from(dist, base, start, out)
}

/// [`fill_from`] compiled for AVX-512, whose 64-bit multiplies (DQ) make the hash eight lanes
/// wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fill_avx512<T: KernelFloat>(dist: Dist, base: u64, start: usize, out: &mut [T]) {
    fill_from(dist, base, start, out)
}

/// Elements `start ..` of a draw into `out`.
#[inline(always)]
fn fill_from<T: KernelFloat>(dist: Dist, base: u64, start: usize, out: &mut [T]) {
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
        _ => {
            for (i, v) in out.iter_mut().enumerate() {
                *v = T::from_f(sample(dist, base, (start + i) as u64, [0.0; 2]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_depend_only_on_the_index_so_threads_do_not_matter() {
        let a: ArrayD<f64> = draw(Dist::Uniform, (7, 3, 11), &[100, 400], Exec::Fast);
        let b: ArrayD<f64> = draw(Dist::Uniform, (7, 3, 11), &[100, 400], Exec::Reference);
        assert_eq!(a, b);
        let c: ArrayD<f64> = draw(Dist::Uniform, (7, 4, 11), &[100, 400], Exec::Reference);
        assert_ne!(a, c);
    }

    #[test]
    fn the_uniform_loop_draws_exactly_unit_of_the_bits() {
        // Through the dispatch (the AVX2 build where the CPU has it) and the portable loop,
        // over several parallel chunks.
        let base = node_base(5, 2, 9);
        let mut fast = vec![0.0f64; 70_000];
        draw_into(Dist::Uniform, (5, 2, 9), &mut fast, Exec::Fast);
        let mut plain = vec![0.0f64; 5000];
        fill_from(Dist::Uniform, base, 1000, &mut plain);
        for (i, v) in fast.iter().enumerate() {
            assert_eq!(*v, unit(bits(base, i as u64, 0)), "element {i}");
        }
        assert_eq!(plain[..], fast[1000..6000]);
    }

    #[test]
    fn uniform_and_normal_moments() {
        let u: ArrayD<f64> = draw(Dist::Uniform, (1, 0, 1), &[20_000], Exec::Reference);
        let n: ArrayD<f64> = draw(Dist::Normal, (1, 0, 2), &[20_000], Exec::Reference);
        let mean = |a: &ArrayD<f64>| a.sum() / a.len() as f64;
        let var = |a: &ArrayD<f64>| a.mapv(|v| (v - mean(a)).powi(2)).sum() / a.len() as f64;
        assert!((mean(&u) - 0.5).abs() < 0.01 && (var(&u) - 1.0 / 12.0).abs() < 0.004);
        assert!(mean(&n).abs() < 0.03 && (var(&n) - 1.0).abs() < 0.05);
        assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
        let f: ArrayD<f32> = draw(Dist::Uniform, (1, 0, 1), &[20_000], Exec::Reference);
        assert!(f.iter().all(|v| (0.0..1.0).contains(v)));
    }
}
