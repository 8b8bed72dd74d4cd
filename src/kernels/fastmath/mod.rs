//! Vectorizable math for the fast kernels: [`single`] for `f32`, [`double`] for `f64`. The
//! reference kernels use the standard library instead; the tests below hold these to a few ulps
//! of it.

pub(crate) mod double;
pub(crate) mod single;

#[cfg(test)]
mod tests {
    use super::double;
    use super::single::*;

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
            assert!(ulps64(double::exp(x), x.exp()) <= 2.0, "exp({x})");
            let t = -20.0 + 40.0 * i as f64 / n as f64;
            assert!(ulps64(double::tanh(t), t.tanh()) <= 3.0, "tanh({t})");
            assert!(
                ulps64(double::sigmoid(t), 1.0 / (1.0 + (-t).exp())) <= 3.0,
                "sigmoid({t})"
            );
            let s = -1000.0 + 2000.0 * i as f64 / n as f64;
            // Near a zero of sin or cos the relative error grows; compare to the scale of 1.
            assert!(
                (double::sin(s) - s.sin()).abs() <= 4.0 * f64::EPSILON,
                "sin({s})"
            );
            assert!(
                (double::cos(s) - s.cos()).abs() <= 4.0 * f64::EPSILON,
                "cos({s})"
            );
        }
        assert_eq!(double::exp(-1000.0), 0.0);
        assert_eq!(double::exp(1000.0), f64::INFINITY);
        assert!(double::exp(f64::NAN).is_nan() && double::tanh(f64::NAN).is_nan());
        assert_eq!(double::sin(0.0), 0.0);
        assert_eq!(double::cos(0.0), 1.0);
        assert!((double::sin(1e7) - 1e7f64.sin()).abs() < 1e-9);
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
