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
        f64_functions_are_within_a_few_ulps_with::<false>();
        f64_functions_are_within_a_few_ulps_with::<true>();
    }

    fn f64_functions_are_within_a_few_ulps_with<const FMA: bool>() {
        let n = 400_000;
        for i in 0..=n {
            let x = -700.0 + 1409.0 * i as f64 / n as f64;
            assert!(ulps64(double::exp::<FMA>(x), x.exp()) <= 2.0, "exp({x})");
            let t = -20.0 + 40.0 * i as f64 / n as f64;
            assert!(ulps64(double::tanh::<FMA>(t), t.tanh()) <= 3.0, "tanh({t})");
            assert!(
                ulps64(double::sigmoid::<FMA>(t), 1.0 / (1.0 + (-t).exp())) <= 3.0,
                "sigmoid({t})"
            );
            let s = -1000.0 + 2000.0 * i as f64 / n as f64;
            // Near a zero of sin or cos the relative error grows; compare to the scale of 1.
            assert!(
                (double::sin::<FMA>(s) - s.sin()).abs() <= 4.0 * f64::EPSILON,
                "sin({s})"
            );
            assert!(
                (double::cos::<FMA>(s) - s.cos()).abs() <= 4.0 * f64::EPSILON,
                "cos({s})"
            );
        }
        assert_eq!(double::exp::<FMA>(-1000.0), 0.0);
        assert_eq!(double::exp::<FMA>(1000.0), f64::INFINITY);
        assert!(double::exp::<FMA>(f64::NAN).is_nan() && double::tanh::<FMA>(f64::NAN).is_nan());
        assert_eq!(double::sin::<FMA>(0.0), 0.0);
        assert_eq!(double::cos::<FMA>(0.0), 1.0);
        assert!((double::sin::<FMA>(1e7) - 1e7f64.sin()).abs() < 1e-9);
    }

    /// Error of `got` in units in the last place of `truth` (the spacing of the doubles at
    /// `|truth|`, 2^-1074 among the subnormals); NaN against NaN is no error, and a result that
    /// is not finite where the truth is (or the other way round) an infinite one.
    fn ulp_error(got: f64, truth: f64) -> f64 {
        if got == truth || (got.is_nan() && truth.is_nan()) {
            return 0.0;
        }
        if !got.is_finite() || !truth.is_finite() {
            return f64::INFINITY;
        }
        let a = truth.abs();
        let ulp = if a < f64::MIN_POSITIVE {
            f64::from_bits(1)
        } else {
            f64::from_bits(a.to_bits() & 0x7ff0_0000_0000_0000) * f64::EPSILON
        };
        ((got - truth) / ulp).abs()
    }

    /// Doubles spread over every binade from 2^-1074 to `max` (each sign), as many near 0 as
    /// near `max`: the full domain, where an evenly spaced grid sees only large inputs.
    fn spread(max: f64, n: usize) -> impl Iterator<Item = f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let top = max.to_bits();
        (0..n).map(move |_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = f64::from_bits(state % top);
            if state >> 63 == 1 { -x } else { x }
        })
    }

    /// Inputs where the reductions and branches change, and the special values.
    fn edges() -> Vec<f64> {
        let mut v = vec![
            0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            1e-300,
            1e-8,
            0.625,
            20.0,
            709.78,
            709.782_712_893_384,
            709.782_712_893_385,
            -708.39,
            -708.396_418_532_264,
            -745.133_219_101_941,
            -745.2,
            -746.0,
            1e300,
            f64::MAX,
            f64::INFINITY,
        ];
        for k in 1..64 {
            let m = k as f64 * std::f64::consts::FRAC_PI_4;
            v.extend([m, m.next_up(), m.next_down(), 1e6 * m, 1e8 * m]);
        }
        let neg: Vec<f64> = v.iter().map(|x| -x).collect();
        v.extend(neg);
        v.push(f64::NAN);
        v
    }

    /// The new `f64` functions against the library's, over the full domain: each binade of both
    /// signs from the smallest subnormal to `f64::MAX` (to `TRIG_MAX` for sin and cos, beyond
    /// which the kernels call the library), the edges of the reductions and branches, ±0, ±inf
    /// and NaN. Bounds in ulps of the library's result (its own error included): exp 1; tanh and
    /// sigmoid (against `1 / (1 + exp(-x))`) 2; sin and cos within 1.5 · 2^-52 absolute, and 3
    /// ulps where the result is at least 1e-3 in magnitude or `|x| <= 1e-3` (near the zeros of
    /// larger arguments the reduction's last rounding, ~1e-31, is what is left).
    fn f64_full_domain_with<const FMA: bool>() -> Vec<(&'static str, f64, f64)> {
        let inputs = || {
            spread(f64::MAX, 300_000)
                .chain(spread(800.0, 300_000))
                .chain(edges())
        };
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let trig = || {
            spread(double::TRIG_MAX, 300_000)
                .chain(spread(8.0, 300_000))
                .chain(edges())
                // NaN too.
                .filter(|x| x.abs() < double::TRIG_MAX || x.is_nan())
        };
        let abs = |f: fn(f64) -> f64, g: fn(f64) -> f64| {
            move |x: f64| {
                let d = (f(x) - g(x)).abs() / f64::EPSILON;
                if x.is_nan() { 0.0 } else { d }
            }
        };
        let rel = |f: fn(f64) -> f64, g: fn(f64) -> f64| {
            move |x: f64| {
                if g(x).abs() >= 1e-3 || x.abs() <= 1e-3 {
                    ulp_error(f(x), g(x))
                } else {
                    0.0
                }
            }
        };
        let worst = |xs: &mut dyn Iterator<Item = f64>, e: &dyn Fn(f64) -> f64| {
            xs.map(|x| (e(x), x))
                .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
        };
        let (sin, cos) = (double::sin::<FMA>, double::cos::<FMA>);
        let rows: [(&str, f64, (f64, f64)); 7] = [
            (
                "exp",
                1.0,
                worst(&mut inputs(), &|x| {
                    ulp_error(double::exp::<FMA>(x), x.exp())
                }),
            ),
            (
                "tanh",
                2.0,
                worst(&mut inputs(), &|x| {
                    ulp_error(double::tanh::<FMA>(x), x.tanh())
                }),
            ),
            (
                "sigmoid",
                2.0,
                worst(&mut inputs(), &|x| {
                    ulp_error(double::sigmoid::<FMA>(x), sigmoid(x))
                }),
            ),
            ("sin (abs)", 1.5, worst(&mut trig(), &abs(sin, f64::sin))),
            ("cos (abs)", 1.5, worst(&mut trig(), &abs(cos, f64::cos))),
            ("sin", 3.0, worst(&mut trig(), &rel(sin, f64::sin))),
            ("cos", 3.0, worst(&mut trig(), &rel(cos, f64::cos))),
        ];
        for (name, bound, (err, at)) in rows {
            assert!(
                err <= bound,
                "FMA {FMA}: {name}({at}) is {err} ulps off (bound {bound})"
            );
        }
        rows.iter().map(|&(n, _, (e, at))| (n, e, at)).collect()
    }

    #[test]
    fn f64_functions_over_the_full_domain() {
        for (fma, worst) in [
            (false, f64_full_domain_with::<false>()),
            (true, f64_full_domain_with::<true>()),
        ] {
            // The measured worst cases (`--nocapture`), for the bounds above.
            for (name, err, at) in worst {
                eprintln!("fma {fma}: {name} {err} at {at}");
            }
        }
        for x in [0.0, -0.0, 1e-300, -1e-300, f64::from_bits(1)] {
            for fma in [false, true] {
                let (s, t) = if fma {
                    (double::sin::<true>(x), double::tanh::<true>(x))
                } else {
                    (double::sin::<false>(x), double::tanh::<false>(x))
                };
                // Odd functions keep the sign of a zero and return tiny inputs as they are.
                assert_eq!(s.to_bits(), x.to_bits(), "sin({x:e})");
                assert_eq!(t.to_bits(), x.to_bits(), "tanh({x:e})");
            }
        }
        for fma in [false, true] {
            type F = fn(f64) -> f64;
            let (e, c, s, t, g): (F, F, F, F, F) = if fma {
                (
                    double::exp::<true>,
                    double::cos::<true>,
                    double::sin::<true>,
                    double::tanh::<true>,
                    double::sigmoid::<true>,
                )
            } else {
                (
                    double::exp::<false>,
                    double::cos::<false>,
                    double::sin::<false>,
                    double::tanh::<false>,
                    double::sigmoid::<false>,
                )
            };
            assert_eq!(
                (e(f64::INFINITY), e(f64::NEG_INFINITY)),
                (f64::INFINITY, 0.0)
            );
            assert_eq!(
                (e(709.782_712_893_384), e(709.782_712_893_385)),
                (709.782_712_893_384f64.exp(), f64::INFINITY)
            );
            assert_eq!(e(-745.0), (-745.0f64).exp(), "a subnormal result");
            assert_eq!((t(f64::INFINITY), t(f64::NEG_INFINITY)), (1.0, -1.0));
            assert_eq!(
                (
                    g(f64::INFINITY),
                    g(f64::NEG_INFINITY),
                    g(1000.0),
                    g(-1000.0)
                ),
                (1.0, 0.0, 1.0, 0.0)
            );
            for f in [e, c, s, t, g] {
                assert!(f(f64::NAN).is_nan());
            }
            assert!(s(f64::INFINITY).is_nan() && c(f64::NEG_INFINITY).is_nan());
        }
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
        // Each with and without fused multiply-adds (the kernels pick by the CPU).
        fn with<const FMA: bool>() {
            for x in grid(-87.0, 88.0, 200_000) {
                let e = ulps(exp::<FMA>(x), (x as f64).exp());
                assert!(e <= 2.0, "exp::<FMA>({x}): {e} ulps");
            }
            assert_eq!(exp::<FMA>(-1000.0), 0.0);
            assert_eq!(exp::<FMA>(1000.0), f32::INFINITY);
            assert_eq!(exp::<FMA>(0.0), 1.0);
            assert!(exp::<FMA>(f32::NAN).is_nan());
        }
        with::<false>();
        with::<true>();
    }

    #[test]
    fn ln_and_ln_1p_are_within_two_ulps() {
        // Each with and without fused multiply-adds (the kernels pick by the CPU).
        fn with<const FMA: bool>() {
            for x in grid(1e-30, 1e30, 100_000)
                .chain(grid(1e-6, 10.0, 100_000))
                .chain([f32::MIN_POSITIVE, 1.0, f32::MAX, 1e-40, 1e-45])
            {
                let e = ulps(ln::<FMA>(x), (x as f64).ln());
                assert!(
                    e <= 2.0 || ln::<FMA>(x).abs() < 1e-30,
                    "ln::<FMA>({x}): {e} ulps"
                );
            }
            for x in grid(-0.9, 1.0, 100_000).chain([1e-10, -1e-10, 3e-8]) {
                let truth = (x as f64).ln_1p();
                let e = ulps(ln_1p::<FMA>(x), truth);
                assert!(e <= 3.0, "ln_1p::<FMA>({x}): {e} ulps");
            }
            assert_eq!(ln::<FMA>(0.0), f32::NEG_INFINITY);
            assert!(ln::<FMA>(-1.0).is_nan());
            assert_eq!(ln::<FMA>(f32::INFINITY), f32::INFINITY);
            assert_eq!(ln_1p::<FMA>(-1.0), f32::NEG_INFINITY);
        }
        with::<false>();
        with::<true>();
    }

    #[test]
    fn tanh_is_within_three_ulps() {
        // Each with and without fused multiply-adds (the kernels pick by the CPU).
        fn with<const FMA: bool>() {
            for x in grid(-12.0, 12.0, 200_000).chain([1e-20, -1e-7, 0.0, 50.0, -50.0]) {
                let e = ulps(tanh::<FMA>(x), (x as f64).tanh());
                assert!(e <= 3.0, "tanh::<FMA>({x}): {e} ulps");
            }
            assert!(tanh::<FMA>(f32::NAN).is_nan());
        }
        with::<false>();
        with::<true>();
    }

    #[test]
    fn sigmoid_and_softplus_match_f64_over_the_whole_range() {
        // Each with and without fused multiply-adds (the kernels pick by the CPU).
        fn with<const FMA: bool>() {
            // Below -87 the results are denormal in f32, and flush to 0.
            for x in grid(-87.0, 100.0, 100_000) {
                let s = 1.0 / (1.0 + (-(x as f64)).exp());
                assert!(ulps(sigmoid::<FMA>(x), s) <= 4.0, "sigmoid::<FMA>({x})");
                let sp = (x as f64).max(0.0) + (-(x as f64).abs()).exp().ln_1p();
                assert!(ulps(softplus::<FMA>(x), sp) <= 4.0, "softplus::<FMA>({x})");
            }
            assert_eq!(sigmoid::<FMA>(-1000.0), 0.0);
            assert!(sigmoid::<FMA>(-95.0) < 1e-38 && softplus::<FMA>(-95.0) < 1e-38);
            assert_eq!(sigmoid::<FMA>(1000.0), 1.0);
            assert_eq!(softplus::<FMA>(1000.0), 1000.0);
        }
        with::<false>();
        with::<true>();
    }
}
