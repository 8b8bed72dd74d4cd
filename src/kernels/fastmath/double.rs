//! The fast math for `f64`, with float arithmetic only so that loops over it vectorize.
//!
//! Each function takes `FMA`: whether `a * b + c` may be one fused multiply-add. The fused kernels
//! pass `true` where the CPU has FMA (the sums are then rounded once, and the code is shorter);
//! elsewhere `f64::mul_add` would be a library call, so they pass `false`. Both are held to the
//! same bounds by the tests in `fastmath`.
//!
//! The polynomials are Chebyshev fits (mpmath's `chebyfit`, which is within a small factor of
//! the minimax error) of `(e^r - 1 - r) / r^2` on `|r| <= 0.35` (error 1.6e-18) and of
//! `(sin r - r) / r^3` in `r^2` on `|r| <= 1.572` (error 3.4e-19), and are evaluated by Estrin's
//! scheme: the interpreter runs a function over a block as one loop, and a shallower chain of
//! dependent operations keeps more of the loop's iterations in flight than Horner's.

// The coefficients are printed with 18 digits, one more than round-trips.
#![allow(clippy::excessive_precision)]

/// 1.5 · 2^52: adding it to a float below 2^51 in magnitude rounds to an integer, which the low
/// bits of the sum then hold.
const MAGIC: f64 = 6_755_399_441_055_744.0;

/// `a * b + c`, fused when `FMA`.
#[inline(always)]
fn mla<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `2^k` from `k + MAGIC` for an integer `-1022 <= k <= 1023`: `k + 1023` in the low bits of the
/// sum, shifted into the exponent field.
#[inline(always)]
fn pow2(k_magic: f64) -> f64 {
    f64::from_bits((k_magic + 1023.0).to_bits() << 52)
}

/// `e^x` to within 1 ulp (subnormal results included); `inf` above `ln(f64::MAX)`, `0` below
/// -745.2; NaN stays NaN.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f64) -> f64 {
    // Beyond these bounds the result overflows, or rounds to 0, either way (clamp keeps NaN).
    let x = x.clamp(-746.0, 709.79);
    let (u, t) = exp_parts::<FMA>(x);
    // 2^n as 2^n1 · 2^(n - n1), n1 = n/2 rounded: both factors are normal for n from -1076 to
    // 1024, so the result rounds once, into the subnormals or to infinity as it should.
    let n = t - MAGIC;
    let t1 = mla::<FMA>(n, 0.5, MAGIC);
    let t2 = (n - (t1 - MAGIC)) + MAGIC;
    u * pow2(t1) * pow2(t2)
}

/// `e^x = u · 2^n` for `|x| <= 746`: `u` within 1 ulp of `e^r`, `|r| <= ln(2)/2`, and `n + MAGIC`.
#[inline(always)]
fn exp_parts<const FMA: bool>(x: f64) -> (f64, f64) {
    // ln 2 in two parts, the first of 32 bits, so that `n * LN2_HI` is exact for |n| < 2^21.
    const LN2_HI: f64 = 6.931_471_806_019_544_60e-01;
    const LN2_LO: f64 = -4.200_915_072_681_084_60e-11;
    let t = mla::<FMA>(x, std::f64::consts::LOG2_E, MAGIC);
    let n = t - MAGIC;
    let r = mla::<FMA>(-n, LN2_HI, x);
    let r = mla::<FMA>(-n, LN2_LO, r);
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let e0 = mla::<FMA>(
        1.666_666_666_666_667_13e-01,
        r,
        5.000_000_000_000_000_00e-01,
    );
    let e1 = mla::<FMA>(
        8.333_333_333_325_544_31e-03,
        r,
        4.166_666_666_666_667_13e-02,
    );
    let e2 = mla::<FMA>(
        1.984_126_987_686_435_58e-04,
        r,
        1.388_888_888_888_332_75e-03,
    );
    let e3 = mla::<FMA>(
        2.755_725_283_351_691_11e-06,
        r,
        2.480_158_732_700_718_72e-05,
    );
    let e4 = mla::<FMA>(
        2.510_627_473_357_329_55e-08,
        r,
        2.755_727_181_021_980_04e-07,
    );
    let f0 = mla::<FMA>(e1, r2, e0);
    let f1 = mla::<FMA>(e3, r2, e2);
    let f2 = mla::<FMA>(2.091_544_229_778_011_63e-09, r2, e4);
    let p = mla::<FMA>(f2, r8, mla::<FMA>(f1, r4, f0));
    (mla::<FMA>(r2, p, r) + 1.0, t)
}

/// π in three parts, the first two of 26 bits, so that `k * PI_HI` and `k * PI_MID` are exact
/// for integers `|k| < 2^27` (each part truncated, so all three are positive).
const PI_HI: f64 = 3.141_592_621_803_283_69e+00;
const PI_MID: f64 = 3.178_650_942_459_171_35e-08;
const PI_LO: f64 = 1.224_646_799_147_353_21e-16;

/// `sin r` for `|r| <= π/2`.
#[inline(always)]
fn sin_poly<const FMA: bool>(r: f64) -> f64 {
    let s = r * r;
    let s2 = s * s;
    let s4 = s2 * s2;
    let e0 = mla::<FMA>(
        8.333_333_333_333_315_87e-03,
        s,
        -1.666_666_666_666_666_57e-01,
    );
    let e1 = mla::<FMA>(
        2.755_731_921_911_501_26e-06,
        s,
        -1.984_126_984_125_479_52e-04,
    );
    let e2 = mla::<FMA>(
        1.605_897_691_509_500_71e-10,
        s,
        -2.505_210_761_086_115_89e-08,
    );
    let e3 = mla::<FMA>(
        2.731_286_891_309_230_66e-15,
        s,
        -7.643_957_622_560_617_23e-13,
    );
    let p = mla::<FMA>(mla::<FMA>(e3, s2, e2), s4, mla::<FMA>(e1, s2, e0));
    // The sign of r, which the sum has but at r = -0 (where -0 + 0 rounds to +0).
    mla::<FMA>(r * s, p, r).copysign(r)
}

/// Largest `|x|` the reductions are accurate for; callers use the library beyond.
pub const TRIG_MAX: f64 = 134_217_728.0;

/// Sine, within 1.5 · 2^-52 of the library's for `|x| < TRIG_MAX`: `x = r + kπ`,
/// `sin x = (-1)^k sin r`.
#[inline(always)]
pub fn sin<const FMA: bool>(x: f64) -> f64 {
    let t = x * std::f64::consts::FRAC_1_PI + MAGIC;
    let k = t - MAGIC;
    // Exact but for the last step (Cody and Waite).
    let r = ((x - k * PI_HI) - k * PI_MID) - k * PI_LO;
    let v = sin_poly::<FMA>(r);
    // The sign flips for odd k, the lowest bit of t.
    f64::from_bits(v.to_bits() ^ (t.to_bits() << 63))
}

/// Cosine, within 1.5 · 2^-52 of the library's for `|x| < TRIG_MAX`: `x = r + (k + 1/2)π`,
/// `cos x = (-1)^(k+1) sin r`, so that the zeros of the cosine keep their relative accuracy.
#[inline(always)]
pub fn cos<const FMA: bool>(x: f64) -> f64 {
    let t = mla::<FMA>(x, std::f64::consts::FRAC_1_PI, -0.5) + MAGIC;
    let h = (t - MAGIC) + 0.5;
    let h2 = h + h;
    // 2h < 2^27 is an integer: the products with the halves of the parts are exact.
    let r = ((x - h2 * (0.5 * PI_HI)) - h2 * (0.5 * PI_MID)) - h2 * (0.5 * PI_LO);
    let v = sin_poly::<FMA>(r);
    // The sign flips for even k.
    f64::from_bits(v.to_bits() ^ (!t.to_bits() << 63))
}

/// Hyperbolic tangent: of `a = |x|`, a rational fit below 0.625 and `1 - 2 / (e^2a + 1)` above,
/// with one division for both; the sign of `x` after (so `tanh(-0) = -0`).
#[inline(always)]
pub fn tanh<const FMA: bool>(x: f64) -> f64 {
    let a = x.abs();
    let z = a * a;
    let p = mla::<FMA>(
        mla::<FMA>(-9.643_991_794_250_523e-1, z, -9.928_772_310_019_186e1),
        z,
        -1.614_687_684_417_084_5e3,
    );
    let q = mla::<FMA>(
        mla::<FMA>(z + 1.128_116_784_916_329_3e2, z, 2.235_488_390_601_004_5e3),
        z,
        4.844_063_053_251_255e3,
    );
    let near = a < 0.625;
    // tanh is 1 to the last bit beyond 20; NaN passes on (a comparison with NaN is false). In
    // 0..=40 one factor 2^n scales without overflow.
    let (u, t) = exp_parts::<FMA>(if a > 20.0 { 40.0 } else { a + a });
    let e = u * pow2(t);
    let num = if near { a * z * p } else { 2.0 };
    let den = if near { q } else { e + 1.0 };
    let v = num / den;
    let t = if near { a + v } else { 1.0 - v };
    t.copysign(x)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid<const FMA: bool>(x: f64) -> f64 {
    1.0 / (1.0 + exp::<FMA>(-x))
}
