//! `exp` and `log` for `f32` written so that the compiler can vectorize a loop over them: range
//! reduction, a short polynomial and exponent arithmetic on the bits, with no branches and no
//! calls. The polynomials are the classic Cephes minimax fits (within 2 ulp over the range).
//! `f64` keeps the standard library's functions.

/// `e^x` to within 2 ulp; `inf` above 88.72, `0` below -87.33 (denormal results flush to 0);
/// NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by adding and subtracting 1.5 · 2^23 (no call to `floor`, which SSE2
    // lacks).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.33, 88.72);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let v = y * scale;
    if x > 88.72 {
        f32::INFINITY
    } else if x < -87.33 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// Natural log to within 2 ulp for positive normal `x`; `-inf` at 0, NaN below 0, `inf` at
/// `inf`.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    // Mantissa in [0.5, 1).
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    let e = (e - small as i32) as f32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let p = 7.037_683_6e-2_f32;
    let p = p * m - 1.151_461e-1;
    let p = p * m + 1.167_699_9e-1;
    let p = p * m - 1.242_014_1e-1;
    let p = p * m + 1.424_932_3e-1;
    let p = p * m - 1.666_805_8e-1;
    let p = p * m + 2.000_071_4e-1;
    let p = p * m - 2.499_999_4e-1;
    let p = p * m + 3.333_333e-1;
    let y = p * m * z - 2.121_944_4e-4 * e - 0.5 * z;
    let v = m + y + 0.693_359_4 * e;
    if x.is_nan() || x < 0.0 {
        f32::NAN
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY || x < f32::MIN_POSITIVE {
        // inf, and denormals (rare): the library.
        x.ln()
    } else {
        v
    }
}

/// `log(1 + x)`, accurate near 0: `log(u) · x / (u - 1)` with `u = 1 + x` corrects the rounding
/// of `1 + x`.
#[inline(always)]
pub fn ln_1p(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    if d == 0.0 {
        x
    } else if u == f32::INFINITY {
        u
    } else {
        ln(u) * (x / d)
    }
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `log(1 + e^x)` computed as `max(x, 0) + log1p(e^-|x|)`.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + ln_1p(exp(-x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error in ulps of `got` against the `f64` truth.
    fn ulps(got: f32, truth: f64) -> f64 {
        let t = truth as f32;
        if got == t {
            return 0.0;
        }
        ((got as f64 - truth) / (t.abs() as f64 * f32::EPSILON as f64)).abs()
    }

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
    }

    #[test]
    fn exp_is_within_two_ulps_and_saturates() {
        for x in grid(-87.0, 88.0, 200_000) {
            let e = ulps(exp(x), (x as f64).exp());
            assert!(e <= 2.0, "exp({x}): {e} ulps");
        }
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn ln_and_ln_1p_are_within_two_ulps() {
        for x in grid(1e-30, 1e30, 100_000)
            .chain(grid(1e-6, 10.0, 100_000))
            .chain([f32::MIN_POSITIVE, 1.0, f32::MAX])
        {
            let e = ulps(ln(x), (x as f64).ln());
            assert!(e <= 2.0 || ln(x).abs() < 1e-30, "ln({x}): {e} ulps");
        }
        for x in grid(-0.9, 1.0, 100_000).chain([1e-10, -1e-10, 3e-8]) {
            let truth = (x as f64).ln_1p();
            let e = ulps(ln_1p(x), truth);
            assert!(e <= 3.0, "ln_1p({x}): {e} ulps");
        }
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert_eq!(ln_1p(-1.0), f32::NEG_INFINITY);
    }

    #[test]
    fn sigmoid_and_softplus_match_f64_over_the_whole_range() {
        // Below -87 the results are denormal in f32, and flush to 0.
        for x in grid(-87.0, 100.0, 100_000) {
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(ulps(sigmoid(x), s) <= 4.0, "sigmoid({x})");
            let sp = (x as f64).max(0.0) + (-(x as f64).abs()).exp().ln_1p();
            assert!(ulps(softplus(x), sp) <= 4.0, "softplus({x})");
        }
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!(sigmoid(-95.0) < 1e-38 && softplus(-95.0) < 1e-38);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(softplus(1000.0), 1000.0);
    }
}
