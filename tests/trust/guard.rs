//! The NaN guard stops a call at the node where a NaN or an infinity is born, naming the op and
//! the line; without it nothing changes. Debug mode compares values NaN-aware.

use gradus::prelude::*;

use crate::common::assert_located;

#[test]
fn under_the_guard_log_of_x_minus_3_at_1_names_log_and_its_line() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let shifted = &x - 3.0;
    let (y, line) = (shifted.log(), line!());
    let out = (&y * 2.0).sum();
    let feed = [Tensor::from(vec![5.0, 1.0, 4.0])];
    for mode in [Mode::Fast, Mode::Debug, Mode::Reference] {
        let guarded = function(&[&x], &[&out])
            .mode(mode)
            .nan_guard(true)
            .compile()
            .unwrap();
        let err = guarded.call(&feed).expect_err("log(-2) is NaN");
        assert!(matches!(err, Error::NonFinite { .. }), "{mode:?}: {err:?}");
        let msg = err.to_string();
        assert!(msg.starts_with("log produced NaN"), "{mode:?}: {msg}");
        assert!(
            msg.contains("-2"),
            "{mode:?}: the operand value is shown: {msg}"
        );
        assert_located(&err, file!(), line);
        // Without the guard the call returns the NaN, as before.
        let plain = function(&[&x], &[&out]).mode(mode).compile().unwrap();
        assert!(
            plain.call(&feed).unwrap()[0].item().unwrap().is_nan(),
            "{mode:?}"
        );
    }
}

#[test]
fn the_guard_blames_where_the_nan_is_born_not_where_it_spreads() {
    // 0 / 0 makes the NaN; the sqrt and the sum only carry it on.
    let g = Graph::new();
    let x = g.vector("x", DType::F32);
    let (ratio, line) = (&x / &x, line!());
    let y = ratio.sqrt().sum() + x.sum();
    let f = function(&[&x], &[&y]).nan_guard(true).compile().unwrap();
    let err = f.call(&[vec![0.0f32, 1.0].into()]).expect_err("0 / 0");
    assert!(err.to_string().starts_with("div produced NaN"), "{err}");
    assert_located(&err, file!(), line);
    // An infinity fed in is not born in the graph: nothing to stop.
    let g2 = Graph::new();
    let v = g2.vector("v", DType::F64);
    let f = function(&[&v], &[&(&v * 2.0).exp()])
        .nan_guard(true)
        .compile()
        .unwrap();
    let out = f.call(&[vec![f64::INFINITY, 0.0].into()]).unwrap();
    assert!(out[0].to_f64_vec()[0].is_infinite());
}

#[test]
fn the_guard_checks_products_and_reductions() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(2), Some(2)]);
    let (p, line) = (a.matmul(&a), line!());
    let f = function(&[&a], &[&p.sum()])
        .nan_guard(true)
        .compile()
        .unwrap();
    let big: Tensor = ndarray::arr2(&[[1e200f64, 1.0], [1.0, 1.0]]).into();
    let err = f.call(&[big]).expect_err("1e400 overflows");
    assert!(
        err.to_string().starts_with("matmul produced an infinity"),
        "{err}"
    );
    assert_located(&err, file!(), line);
}

#[test]
fn debug_mode_finds_a_number_that_became_nan() {
    // x - x is 0 for every finite x, but NaN at an infinity: the rewrite sub_self changes the
    // value there, and the debug mode says so, naming the rule.
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    #[allow(clippy::eq_op)]
    let y = (&x - &x).exp();
    let f = function(&[&x], &[&y]).mode(Mode::Debug).compile().unwrap();
    f.call(&[vec![1.0, 2.0].into()])
        .expect("finite inputs agree");
    let err = f
        .call(&[vec![f64::INFINITY, 2.0].into()])
        .expect_err("NaN vs 1");
    assert!(matches!(err, Error::DebugMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("sub_self"), "{err}");
}
