//! A specialized or fused path keeps every run-time check of the ops it replaces: an error in
//! one mode is the same error in every mode.

use gradus::prelude::*;

use crate::common::assert_located;

/// Every way to compile and run a function: the default, Debug, the fast executor with no
/// rewrites, and Reference.
fn every_mode(inputs: &[&Expr], outputs: &[&Expr]) -> Vec<(&'static str, Function)> {
    let make = |mode: Mode| function(inputs, outputs).mode(mode).compile().unwrap();
    vec![
        ("fast", make(Mode::Fast)),
        ("debug", make(Mode::Debug)),
        (
            "no rewrites",
            function(inputs, outputs)
                .without_rewrites()
                .compile()
                .unwrap(),
        ),
        ("reference", make(Mode::Reference)),
    ]
}

#[test]
fn a_bias_fed_with_one_row_where_rows_are_declared_run_time_is_an_error_in_every_mode() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(4)]);
    let w = g.input("w", DType::F64, &[Some(4), Some(10)]);
    let m = g.input("m", DType::F64, &[None, Some(10)]);
    let (y, line) = (x.matmul(&w) + &m, line!());
    let gm = grad(&y.sum(), &[&m]).unwrap().remove(0);
    let feeds = [
        Tensor::from(ndarray::Array2::<f64>::ones((3, 4))),
        Tensor::from(ndarray::Array2::<f64>::ones((4, 10))),
        Tensor::from(ndarray::Array2::<f64>::ones((1, 10))),
    ];
    for (mode, f) in every_mode(&[&x, &w, &m], &[&y, &gm]) {
        let err = f.call(&feeds).expect_err(mode);
        assert!(
            matches!(err, gradus::Error::Runtime { .. }),
            "{mode}: {err:?}"
        );
        assert!(
            err.to_string().contains("only a dim declared 1 broadcasts"),
            "{mode}: {err}"
        );
        assert_located(&err, file!(), line);
    }
}

#[test]
fn a_shape_read_through_an_add_keeps_the_adds_check() {
    // The zeros only read the shape of x + m; reading it from x instead must not drop the
    // check that x and m have the same number of rows.
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(3)]);
    let m = g.input("m", DType::F64, &[None, Some(3)]);
    let (sum, line) = (&x + &m, line!());
    let zeros = x.scalar_like(0.0).broadcast_like(&sum);
    let feeds = [
        Tensor::from(ndarray::Array2::<f64>::ones((2, 3))),
        Tensor::from(ndarray::Array2::<f64>::ones((4, 3))),
    ];
    for (mode, f) in every_mode(&[&x, &m], &[&zeros]) {
        let err = f.call(&feeds).expect_err(mode);
        assert!(
            err.to_string().contains("run-time shape error in add"),
            "{mode}: {err}"
        );
        assert_located(&err, file!(), line);
    }
}
