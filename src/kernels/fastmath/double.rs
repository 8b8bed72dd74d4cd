//! The fast math for `f64`: the Cephes double-precision fits, with float arithmetic only so that
//! loops over them vectorize.

// The coefficients are quoted as published, with more digits than the type holds.
#![allow(clippy::excessive_precision)]

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
    let p =
        (-9.643_991_794_250_523e-1 * z - 9.928_772_310_019_186e1) * z - 1.614_687_684_417_084_5e3;
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
