//! `exp`, `log`, `tanh`, `log1p`, `sigmoid` and `softplus` for `f32`, written so that the compiler can
//! vectorize a loop over them: range reduction, a short polynomial and exponent arithmetic on the
//! bits, with no branches and no calls. The polynomials are the classic Cephes minimax fits
//! (within 2 ulp over the range). Each function takes `FMA`, as the `f64` ones do: whether
//! `a * b + c` may be one fused multiply-add.

// The coefficients are quoted as published, with more digits than the type holds.
#![allow(clippy::excessive_precision)]

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn mla<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `e^x` to within 2 ulp; `inf` above 88.72, `0` below -87.33 (denormal results flush to 0);
/// NaN stays NaN.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Round to nearest by adding and subtracting 1.5 · 2^23 (no call to `floor`, which SSE2
    // lacks).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(-87.33, 88.72);
    let t = mla::<FMA>(xc, LOG2E, ROUND);
    let n = t - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = mla::<FMA>(p, r, 1.398_2e-3);
    let p = mla::<FMA>(p, r, 8.333_452e-3);
    let p = mla::<FMA>(p, r, 4.166_579_6e-2);
    let p = mla::<FMA>(p, r, 1.666_666_5e-1);
    let p = mla::<FMA>(p, r, 0.5);
    let y = mla::<FMA>(p * r, r, r) + 1.0;
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
pub fn ln<const FMA: bool>(x: f32) -> f32 {
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
    let p = mla::<FMA>(p, m, -1.151_461e-1);
    let p = mla::<FMA>(p, m, 1.167_699_9e-1);
    let p = mla::<FMA>(p, m, -1.242_014_1e-1);
    let p = mla::<FMA>(p, m, 1.424_932_3e-1);
    let p = mla::<FMA>(p, m, -1.666_805_8e-1);
    let p = mla::<FMA>(p, m, 2.000_071_4e-1);
    let p = mla::<FMA>(p, m, -2.499_999_4e-1);
    let p = mla::<FMA>(p, m, 3.333_333e-1);
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
pub fn tanh<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let p = -5.704_988_7e-3_f32;
    let p = mla::<FMA>(p, z, 2.063_908_9e-2);
    let p = mla::<FMA>(p, z, -5.373_971_6e-2);
    let p = mla::<FMA>(p, z, 1.333_144_2e-1);
    let p = mla::<FMA>(p, z, -3.333_328_2e-1);
    let near = mla::<FMA>(p * z, x, x);
    let far = 1.0 - 2.0 / (exp::<FMA>(a + a) + 1.0);
    let far = if x < 0.0 { -far } else { far };
    if a < 0.625 { near } else { far }
}

/// `log(1 + x)`, accurate near 0: `log(u) · x / (u - 1)` with `u = 1 + x` corrects the rounding
/// of `1 + x`.
#[inline(always)]
pub fn ln_1p<const FMA: bool>(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    if d == 0.0 {
        x
    } else if u == f32::INFINITY {
        u
    } else {
        ln::<FMA>(u) * (x / d)
    }
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<FMA>(-x))
}

/// `log(1 + e^x)` computed as `max(x, 0) + log1p(e^-|x|)`.
#[inline(always)]
pub fn softplus<const FMA: bool>(x: f32) -> f32 {
    x.max(0.0) + ln_1p::<FMA>(exp::<FMA>(-x.abs()))
}
