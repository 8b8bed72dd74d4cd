//! `exp` and `log` for `f32` written so that the compiler can vectorize a loop over them: range
//! reduction, a short polynomial and exponent arithmetic on the bits, with no branches and no
//! calls. The polynomials are the classic Cephes minimax fits (within 2 ulp over the range).
//! The `f64` versions (module [`f64s`]) are the Cephes double-precision fits.

// The coefficients are quoted as published, with more digits than the type holds.
#![allow(clippy::excessive_precision)]

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
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // The low bits of `t` hold n: integer arithmetic on them vectorizes, where a float-to-int
    // cast (saturating in Rust) is done lane by lane.
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
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

/// Natural log to within 2 ulp for positive `x` (denormals included); `-inf` at 0, NaN below 0,
/// `inf` at `inf`.
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    // Denormals are scaled by 2^23 into the normal range first.
    let denormal = x < f32::MIN_POSITIVE;
    let xs = if denormal { x * 8_388_608.0 } else { x };
    let bits = xs.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 126 - if denormal { 23 } else { 0 };
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
    } else if x == f32::INFINITY {
        x
    } else {
        v
    }
}

/// Hyperbolic tangent: an odd polynomial below 0.625, `1 - 2 / (e^2|x| + 1)` above.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let p = -5.704_988_7e-3_f32;
    let p = p * z + 2.063_908_9e-2;
    let p = p * z - 5.373_971_6e-2;
    let p = p * z + 1.333_144_2e-1;
    let p = p * z - 3.333_328_2e-1;
    let near = p * z * x + x;
    let far = 1.0 - 2.0 / (exp(a + a) + 1.0);
    let far = if x < 0.0 { -far } else { far };
    if a < 0.625 { near } else { far }
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

    fn ulps64(got: f64, truth: f64) -> f64 {
        if got == truth {
            return 0.0;
        }
        ((got - truth) / (truth.abs().max(f64::MIN_POSITIVE) * f64::EPSILON)).abs()
    }

    #[test]
    fn f64_functions_are_within_a_few_ulps() {
        let n = 400_000;
        for i in 0..=n {
            let x = -700.0 + 1409.0 * i as f64 / n as f64;
            assert!(ulps64(f64s::exp(x), x.exp()) <= 2.0, "exp({x})");
            let t = -20.0 + 40.0 * i as f64 / n as f64;
            assert!(ulps64(f64s::tanh(t), t.tanh()) <= 3.0, "tanh({t})");
            assert!(
                ulps64(f64s::sigmoid(t), 1.0 / (1.0 + (-t).exp())) <= 3.0,
                "sigmoid({t})"
            );
            let s = -1000.0 + 2000.0 * i as f64 / n as f64;
            // Near a zero of sin or cos the relative error grows; compare to the scale of 1.
            assert!(
                (f64s::sin(s) - s.sin()).abs() <= 4.0 * f64::EPSILON,
                "sin({s})"
            );
            assert!(
                (f64s::cos(s) - s.cos()).abs() <= 4.0 * f64::EPSILON,
                "cos({s})"
            );
        }
        assert_eq!(f64s::exp(-1000.0), 0.0);
        assert_eq!(f64s::exp(1000.0), f64::INFINITY);
        assert!(f64s::exp(f64::NAN).is_nan() && f64s::tanh(f64::NAN).is_nan());
        assert_eq!(f64s::sin(0.0), 0.0);
        assert_eq!(f64s::cos(0.0), 1.0);
        assert!((f64s::sin(1e7) - 1e7f64.sin()).abs() < 1e-9);
    }

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
            .chain([f32::MIN_POSITIVE, 1.0, f32::MAX, 1e-40, 1e-45])
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
    fn tanh_is_within_three_ulps() {
        for x in grid(-12.0, 12.0, 200_000).chain([1e-20, -1e-7, 0.0, 50.0, -50.0]) {
            let e = ulps(tanh(x), (x as f64).tanh());
            assert!(e <= 3.0, "tanh({x}): {e} ulps");
        }
        assert!(tanh(f32::NAN).is_nan());
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

/// The same functions for `f64` (the Cephes double-precision fits), for the fast kernels.
pub mod f64s {
    /// Round a non-negative `v < 2^51` down to an integer, with float arithmetic only (adding
    /// 1.5 · 2^52 rounds to nearest; SSE2 has no `floor`).
    #[inline(always)]
    fn floor_pos(v: f64) -> f64 {
        const MAGIC: f64 = 6_755_399_441_055_744.0;
        let t = (v + MAGIC) - MAGIC;
        if t > v { t - 1.0 } else { t }
    }

    /// `e^x` to within 1 ulp; `inf` above 709.78, `0` below -708.39; NaN stays NaN.
    #[inline(always)]
    pub fn exp(x: f64) -> f64 {
        const C1: f64 = 6.931_457_519_531_25e-1;
        const C2: f64 = 1.428_606_820_309_417_232_1e-6;
        const MAGIC: f64 = 6_755_399_441_055_744.0;
        let xc = x.clamp(-708.39, 709.78);
        // Round to nearest with 1.5 · 2^52: the low bits of `t` then hold n (integer arithmetic
        // on them vectorizes; a float-to-i64 conversion does not on SSE2).
        let t = xc * std::f64::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        let r = xc - n * C1 - n * C2;
        let z = r * r;
        let p = ((1.261_771_930_748_105_9e-4 * z + 3.029_944_077_074_419_6e-2) * z
            + 9.999_999_999_999_999_9e-1)
            * r;
        let q = ((3.001_985_051_386_644_6e-6 * z + 2.524_483_403_496_841e-3) * z
            + 2.272_655_482_081_550_3e-1)
            * z
            + 2.0;
        let e = 1.0 + 2.0 * p / (q - p);
        let n_bits = t.to_bits().wrapping_sub(MAGIC.to_bits());
        let v = e * f64::from_bits(n_bits.wrapping_add(1023) << 52);
        if x > 709.78 {
            f64::INFINITY
        } else if x < -708.39 {
            0.0
        } else if x.is_nan() {
            x
        } else {
            v
        }
    }

    /// `(sin z, cos z)` by the two Cephes polynomials, for `|z| <= π/4`.
    #[inline(always)]
    fn polys(z: f64) -> (f64, f64) {
        let zz = z * z;
        let s = z + z
            * zz
            * (((((1.589_623_015_765_465_7e-10 * zz - 2.505_074_776_285_780_7e-8) * zz
                + 2.755_731_362_138_572_5e-6)
                * zz
                - 1.984_126_982_958_954e-4)
                * zz
                + 8.333_333_333_322_118_6e-3)
                * zz
                - 1.666_666_666_666_663_1e-1);
        let c = 1.0 - 0.5 * zz
            + zz * zz
                * (((((-1.135_853_652_138_768_2e-11 * zz + 2.087_570_084_197_473_2e-9) * zz
                    - 2.755_731_417_929_673_8e-7)
                    * zz
                    + 2.480_158_728_885_170_5e-5)
                    * zz
                    - 1.388_888_888_887_305_6e-3)
                    * zz
                    + 4.166_666_666_666_659_3e-2);
        (s, c)
    }

    /// `|x|` reduced by multiples of π/4 (Cephes' three-part constant): the octant (0, 2, 4
    /// or 6, as a float) and the remainder. Float arithmetic only, so a loop vectorizes.
    #[inline(always)]
    fn reduce(a: f64) -> (f64, f64) {
        const FOPI: f64 = 4.0 / std::f64::consts::PI;
        const DP1: f64 = 7.853_981_256_484_985_4e-1;
        const DP2: f64 = 3.774_894_707_930_798_2e-8;
        const DP3: f64 = 2.695_151_429_079_059_5e-15;
        let y = floor_pos(a * FOPI);
        // To the even octant above an odd one.
        let y = if y - 2.0 * floor_pos(y * 0.5) != 0.0 {
            y + 1.0
        } else {
            y
        };
        let j = y - 8.0 * floor_pos(y * 0.125);
        (j, ((a - y * DP1) - y * DP2) - y * DP3)
    }

    /// Largest `|x|` the reductions are accurate for; callers use the library beyond.
    pub const TRIG_MAX: f64 = 134_217_728.0;

    /// Sine; accurate for `|x| < TRIG_MAX`.
    #[inline(always)]
    pub fn sin(x: f64) -> f64 {
        let (j, z) = reduce(x.abs());
        let flip = (j > 3.0) != (x < 0.0);
        let j = if j > 3.0 { j - 4.0 } else { j };
        let (s, c) = polys(z);
        let v = if j == 2.0 { c } else { s };
        if flip { -v } else { v }
    }

    /// Cosine; accurate for `|x| < TRIG_MAX`.
    #[inline(always)]
    pub fn cos(x: f64) -> f64 {
        let (j, z) = reduce(x.abs());
        let (j, flip) = if j > 3.0 { (j - 4.0, true) } else { (j, false) };
        let flip = flip != (j > 1.0);
        let (s, c) = polys(z);
        let v = if j == 2.0 { s } else { c };
        if flip { -v } else { v }
    }

    /// Hyperbolic tangent: a rational fit below 0.625, `1 - 2 / (e^2|x| + 1)` above.
    #[inline(always)]
    pub fn tanh(x: f64) -> f64 {
        let a = x.abs();
        let z = x * x;
        let p = (-9.643_991_794_250_523e-1 * z - 9.928_772_310_019_186e1) * z
            - 1.614_687_684_417_084_5e3;
        let q = ((z + 1.128_116_784_916_329_3e2) * z + 2.235_488_390_601_004_5e3) * z
            + 4.844_063_053_251_255e3;
        let near = x + x * z * p / q;
        let far = 1.0 - 2.0 / (exp(a + a) + 1.0);
        let far = if x < 0.0 { -far } else { far };
        if a < 0.625 { near } else { far }
    }

    /// `1 / (1 + e^-x)`.
    #[inline(always)]
    pub fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + exp(-x))
    }
}
