//! User mistakes: each one is an `Err`, never a panic, and its message names the op, the shapes
//! or dtypes involved, and the line of this file that built the bad node.
//!
//! The line is captured on the same line as the bad op, `let (bad, line) = (&a + &b, line!());`,
//! so these tests pin the exact location gradus reports.

mod common;

use common::{assert_built_at, assert_mentions, at, reported};
use gradus::prelude::*;
use gradus::{Error, eval, hessian, jacobian};

fn f64s(v: &[f64]) -> Tensor {
    v.to_vec().into()
}

// ----- build time: shapes, dtypes, axes -----

#[test]
fn broadcast_mismatch_in_add() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(3)]);
    let b = g.input("b", DType::F64, &[Some(4)]);
    let (bad, line) = (&a + &b, line!());
    let err = reported(&bad, &[&a, &b]);
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["shape mismatch in add", "(3 vs 4)", "f64[3], f64[4]"],
    );
    assert_built_at(&err, line);
}

#[test]
fn broadcast_mismatch_in_mul() {
    let g = Graph::new();
    let a = g.input("a", DType::F32, &[Some(2), Some(3)]);
    let b = g.input("b", DType::F32, &[Some(3), Some(2)]);
    let (bad, line) = (&a * &b, line!());
    let err = reported(&bad, &[&a, &b]);
    assert_mentions(
        &err.to_string(),
        &[
            "shape mismatch in mul",
            "[2, 3] and [3, 2]",
            "f32[2, 3], f32[3, 2]",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn matmul_inner_dim_mismatch() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[None, Some(3)]);
    let b = g.input("b", DType::F64, &[Some(4), Some(5)]);
    let (bad, line) = (a.matmul(&b), line!());
    let err = reported(&bad, &[&a, &b]);
    assert_mentions(
        &err.to_string(),
        &[
            "shape mismatch in matmul",
            "inner dims differ (3 vs 4)",
            "f64[?, 3], f64[4, 5]",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn dtype_mismatch_f32_plus_f64() {
    let g = Graph::new();
    let a = g.input("a", DType::F32, &[Some(3)]);
    let b = g.input("b", DType::F64, &[Some(3)]);
    let (bad, line) = (&a + &b, line!());
    let err = reported(&bad, &[&a, &b]);
    assert!(matches!(err, Error::DType { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["dtype mismatch in add", "f32 vs f64", "f32[3], f64[3]"],
    );
    assert_built_at(&err, line);
}

#[test]
fn unknown_axis_in_sum_and_softmax() {
    let g = Graph::new();
    let m = g.input("m", DType::F64, &[Some(2), Some(3)]);

    let (bad, line) = (m.sum_axes(&[5], false), line!());
    let err = reported(&bad, &[&m]);
    assert!(
        matches!(
            err,
            Error::Axis {
                axis: 5,
                ndim: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_mentions(&err.to_string(), &["axis error in sum", "axis 5", "2 dims"]);
    assert_built_at(&err, line);

    let (bad, line) = (m.softmax(3), line!());
    let err = reported(&bad, &[&m]);
    assert_mentions(
        &err.to_string(),
        &["axis error in softmax", "axis 3", "2 dims"],
    );
    assert_built_at(&err, line);

    let (bad, line) = (m.mean_axes(&[-3], false), line!());
    let err = reported(&bad, &[&m]);
    assert_mentions(&err.to_string(), &["axis error in mean", "axis -3"]);
    assert_built_at(&err, line);
}

#[test]
fn reshape_to_an_incompatible_size() {
    let g = Graph::new();
    let m = g.input("m", DType::F64, &[Some(2), Some(3)]);
    let (bad, line) = (m.reshape(&[4, 2]), line!());
    let err = reported(&bad, &[&m]);
    assert_mentions(
        &err.to_string(),
        &[
            "shape mismatch in reshape[4, 2]",
            "cannot reshape [2, 3]",
            "f64[2, 3]",
        ],
    );
    assert_built_at(&err, line);

    let (bad, line) = (m.reshape(&[-1, 4]), line!());
    let err = reported(&bad, &[&m]);
    assert_mentions(&err.to_string(), &["cannot reshape [2, 3] to [-1, 4]"]);
    assert_built_at(&err, line);
}

#[test]
fn check_reports_at_once() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(2)]);
    let b = g.input("b", DType::F64, &[Some(5)]);
    let (res, line) = ((&a - &b).check(), line!());
    let err = res.expect_err("check() returns the error");
    assert_mentions(&err.to_string(), &["shape mismatch in sub", "[2] and [5]"]);
    assert_built_at(&err, line);

    let ok = (&a * 2.0_f64).check().expect("a good node checks");
    assert_eq!(ok.shape().to_string(), "[2]");
}

#[test]
fn an_error_deep_in_a_chain_names_the_first_bad_line() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(2), Some(3)]);
    let b = g.input("b", DType::F64, &[Some(4), Some(3)]);
    let (bad, line) = (&a + &b, line!());
    // Ten more ops on top, several of which look at the (unknown) shape of their operand.
    let mut y = bad.exp();
    y = y.softmax(-1);
    y = y.sum_axes(&[0], false);
    y = y.t();
    y = &y * 2.0;
    y = y.expand_dims(&[0]);
    y = y.reshape(&[-1]);
    y = y.slice(0, 1, None);
    y = y.log_softmax(0);
    y = y.mean();
    let err = reported(&y, &[&a, &b]);
    assert_mentions(
        &err.to_string(),
        &["shape mismatch in add", "[2, 3] and [4, 3]"],
    );
    assert_built_at(&err, line);
    assert_eq!(
        err.to_string().matches("tests/errors.rs").count(),
        1,
        "only the first bad line is named: {err}"
    );
}

#[test]
fn an_error_reaches_concat_stack_jacobian_and_vjp_unchanged() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(3)]);
    let b = g.input("b", DType::F64, &[Some(4)]);
    let (bad, line) = (&a * &b, line!());
    let results = [
        ("concat", concat(&[&bad, &a], 0).check().err()),
        ("stack", stack(&[&bad, &a], 1).check().err()),
        ("jacobian", jacobian(&bad, &a).err()),
        ("hessian", hessian(&bad, &a).err()),
        (
            "vjp",
            vjp(&[&bad], &[&a], &[&a], GradOptions::default()).err(),
        ),
    ];
    for (what, err) in results {
        let err = err.unwrap_or_else(|| panic!("{what} must fail"));
        assert_mentions(&err.to_string(), &["shape mismatch in mul"]);
        assert_built_at(&err, line);
    }
}

// ----- grad -----

#[test]
fn non_scalar_cost_names_cost_and_grad_lines() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3)]);
    let (cost, cost_line) = (&x * 2.0, line!());
    let (res, grad_line) = (grad(&cost, &[&x]), line!());
    let err = res.expect_err("a vector cost is refused");
    assert!(matches!(err, Error::NonScalarCost { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &[
            "grad needs a scalar cost",
            "[3]",
            &at(cost_line),
            &at(grad_line),
        ],
    );
    assert_eq!(err.location().map(|l| l.line()), Some(cost_line));
}

#[test]
fn disconnected_and_integer_variables() {
    let g = Graph::new();
    let x = g.scalar("x", DType::F64);
    let (y, y_line) = (g.scalar("y", DType::F64), line!());
    let err = grad(&x.exp(), &[&y]).expect_err("y is disconnected");
    assert_mentions(
        &err.to_string(),
        &["does not depend on y", &at(y_line), "allow_disconnected"],
    );

    let (k, k_line) = (g.input("k", DType::I64, &[Some(2)]), line!());
    let err = grad(&x.exp(), &[&k]).expect_err("no gradient for an integer input");
    assert_mentions(&err.to_string(), &["respect to k", "i64", &at(k_line)]);
}

// ----- compiling -----

#[test]
fn an_input_the_outputs_need_but_not_listed() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let (y, y_line) = (g.vector("y", DType::F64), line!());
    let out = (&x * &y).sum();
    let (res, fn_line) = (function(&[&x], &[&out]).compile(), line!());
    let err = res.err().expect("y is missing from the inputs");
    assert_mentions(
        &err.to_string(),
        &[
            "depend on input y",
            "not among the function's inputs",
            &at(y_line),
            &at(fn_line),
        ],
    );
    assert_eq!(err.location().map(|l| l.line()), Some(fn_line));
}

#[test]
fn update_with_another_dtype_than_the_shared_variable() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2)]);
    let w = g.shared("w", vec![1.0f32, 2.0]);
    let cost = (&w * &w).sum();
    let gw = grad(&cost, &[&w]).unwrap().remove(0);

    // Theano's float32-vs-float64 trap: an f64 learning rate times an f32 gradient. gradus
    // does not upcast, so the mistake is caught where it is written.
    let lr = g.scalar("lr", DType::F64);
    let (step, line) = (&lr * &gw, line!());
    let err = step.check().expect_err("f64 * f32");
    assert_mentions(&err.to_string(), &["dtype mismatch in mul", "f64 vs f32"]);
    assert_built_at(&err, line);

    // An update computed in f64 on purpose: refused at compile, naming the variable, both
    // types and the line that built the new value.
    let (new_w, line) = (&w.cast(DType::F64) - &x, line!());
    let res = function(&[&x], &[&cost]).updates(&[(&w, &new_w)]).compile();
    let err = res.err().expect("an f64 update of an f32 variable");
    assert_mentions(&err.to_string(), &["update of w", "f32[2]", "f64[2]"]);
    assert_built_at(&err, line);

    // Same for a shape the variable cannot hold.
    let (new_w, line) = (concat(&[&w, &w], 0), line!());
    let res = function(&[&x], &[&cost]).updates(&[(&w, &new_w)]).compile();
    let err = res.err().expect("an update of another shape");
    assert_mentions(&err.to_string(), &["update of w", "f32[2]", "f32[4]"]);
    assert_built_at(&err, line);
}

#[test]
fn set_value_with_a_wrong_shape_or_dtype() {
    let g = Graph::new();
    let w = g.shared("w", vec![1.0f32, 2.0]);
    let (res, line) = (w.set_value(vec![1.0f32, 2.0, 3.0]), line!());
    let err = res.expect_err("[3] into [2]");
    assert_mentions(&err.to_string(), &["set_value of w", "f32[2]", "f32[3]"]);
    assert_built_at(&err, line);

    let (res, line) = (w.set_value(vec![1.0f64, 2.0]), line!());
    let err = res.expect_err("f64 into f32");
    assert_mentions(&err.to_string(), &["set_value of w", "f32[2]", "f64[2]"]);
    assert_built_at(&err, line);
    assert_eq!(
        w.get_value().unwrap(),
        vec![1.0f32, 2.0].into(),
        "value unchanged"
    );
}

// ----- calling -----

fn two_input_function() -> (Function, u32) {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3)]);
    let y = g.input("y", DType::F64, &[None, Some(2)]);
    let (out, line) = ((&x.sum() * &y).sum(), line!());
    (function(&[&x, &y], &[&out]).compile().unwrap(), line)
}

#[test]
fn missing_feed_names_the_input() {
    let (f, _) = two_input_function();
    let err = f.call(&[f64s(&[1.0, 2.0, 3.0])]).expect_err("y is missing");
    assert!(matches!(err, Error::MissingFeed { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["missing feed for input y", "expected 2", "got 1"],
    );
    let err = f.call(&[]).expect_err("both are missing");
    assert_mentions(&err.to_string(), &["missing feed for input x"]);
}

#[test]
fn too_many_values_name_the_call_line() {
    let (f, _) = two_input_function();
    let y = Tensor::full(&[1, 2], 0.0, DType::F64);
    let extra = f64s(&[0.0]);
    let (res, line) = (f.call(&[f64s(&[1.0, 2.0, 3.0]), y, extra]), line!());
    let err = res.expect_err("three values for two inputs");
    assert_mentions(&err.to_string(), &["takes 2 inputs, got 3"]);
    assert_built_at(&err, line);
}

#[test]
fn wrong_feed_shape() {
    let (f, _) = two_input_function();
    let y = Tensor::full(&[5, 2], 1.0, DType::F64);
    let err = f
        .call(&[f64s(&[1.0, 2.0, 3.0, 4.0]), y])
        .expect_err("x is [3]");
    assert!(matches!(err, Error::FeedShape { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["wrong shape for input x", "expected [3]", "got [4]"],
    );

    let err = f
        .call(&[f64s(&[1.0, 2.0, 3.0]), f64s(&[1.0, 2.0])])
        .expect_err("y is [?, 2]");
    assert_mentions(
        &err.to_string(),
        &["wrong shape for input y", "expected [?, 2]", "got [2]"],
    );
}

#[test]
fn wrong_feed_dtype() {
    let (f, _) = two_input_function();
    let y = Tensor::full(&[1, 2], 1.0, DType::F64);
    let err = f
        .call(&[vec![1.0f32, 2.0, 3.0].into(), y])
        .expect_err("x is f64");
    assert!(matches!(err, Error::FeedDType { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["wrong dtype for input x", "expected f64", "got f32"],
    );
}

#[test]
fn run_time_mismatch_of_dims_declared_none() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let y = g.vector("y", DType::F64);
    let (s, line) = (&x + &y, line!());
    let s = s.check().expect("[?] + [?] builds");
    let feeds = [f64s(&[1.0, 2.0, 3.0]), f64s(&[1.0, 2.0, 3.0, 4.0])];
    for mode in [Mode::Fast, Mode::Reference] {
        let f = function(&[&x, &y], &[&s]).mode(mode).compile().unwrap();
        let err = f.call(&feeds).expect_err("lengths 3 and 4");
        assert!(matches!(err, Error::Runtime { .. }), "{err:?}");
        assert_mentions(
            &err.to_string(),
            &["run-time shape error in add", "[3] and [4]"],
        );
        assert_built_at(&err, line);
    }
    let err = eval(&[&s], &[(&x, feeds[0].clone()), (&y, feeds[1].clone())])
        .expect_err("eval checks too");
    assert_built_at(&err, line);
}

#[test]
fn run_time_mismatch_in_matmul() {
    let g = Graph::new();
    let a = g.matrix("a", DType::F64);
    let b = g.matrix("b", DType::F64);
    let (p, line) = (a.matmul(&b), line!());
    let f = function(&[&a, &b], &[&p]).compile().unwrap();
    let err = f
        .call(&[
            Tensor::full(&[2, 3], 1.0, DType::F64),
            Tensor::full(&[4, 5], 1.0, DType::F64),
        ])
        .expect_err("inner dims 3 and 4");
    assert_mentions(
        &err.to_string(),
        &["run-time shape error in matmul", "[2, 3] vs [4, 5]"],
    );
    assert_built_at(&err, line);
}

#[test]
fn a_run_time_one_does_not_broadcast_unless_declared_one() {
    // [?] * [?] fed lengths 3 and 1: broadcasting here would make grad(y) come out [3] for a
    // [1] input, since un-broadcasting is decided from the declared shapes.
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let y = g.vector("y", DType::F64);
    let (p, line) = (&x * &y, line!());
    let cost = p.sum();
    let gy = grad(&cost, &[&y]).unwrap().remove(0);
    let f = function(&[&x, &y], &[&cost, &gy]).compile().unwrap();
    let err = f
        .call(&[f64s(&[1.0, 2.0, 3.0]), f64s(&[2.0])])
        .expect_err("y's dim is not declared 1");
    assert_mentions(
        &err.to_string(),
        &[
            "run-time shape error in mul",
            "shape [?] is [1] when run",
            "would broadcast from 1 to 3",
            "only a dim declared 1 broadcasts",
        ],
    );
    assert_built_at(&err, line);

    // Declared 1, it broadcasts, and the gradient has y's shape.
    let y1 = g.input("y1", DType::F64, &[Some(1)]);
    let cost = (&x * &y1).sum();
    let gy1 = grad(&cost, &[&y1]).unwrap().remove(0);
    let f = function(&[&x, &y1], &[&gy1]).compile().unwrap();
    let out = f.call(&[f64s(&[1.0, 2.0, 3.0]), f64s(&[2.0])]).unwrap();
    assert_eq!(out[0], f64s(&[6.0]));
}
