//! Mistakes found when a function runs, told in the user's terms: a shape mismatch names the
//! inputs its operands come from and the shapes they were fed, an index out of range is an index
//! error, and a feed error names the line of the call.

mod common;

use common::{assert_built_at, assert_mentions, at};
use gradus::prelude::*;
use gradus::{Error, FunctionBuilder, eval};

/// The ways a function can be compiled: optimized (fused kernels, products), as written, and
/// on the reference interpreter.
fn builds(inputs: &[&Expr], outputs: &[&Expr]) -> Vec<(&'static str, Function)> {
    let compile = |f: FunctionBuilder| f.compile().unwrap();
    vec![
        ("optimized", compile(function(inputs, outputs))),
        (
            "unoptimized",
            compile(function(inputs, outputs).without_rewrites()),
        ),
        (
            "reference",
            compile(function(inputs, outputs).mode(Mode::Reference)),
        ),
    ]
}

/// A two-layer classifier of `[?, 6]` images into 4 classes with its cost and the line of the
/// cross-entropy.
struct Mlp {
    images: Expr,
    labels: Expr,
    cost: Expr,
    line: u32,
}

fn mlp() -> Mlp {
    let g = Graph::new();
    let images = g.input("images", DType::F64, &[None, Some(6)]);
    let labels = g.input("labels", DType::I64, &[None]);
    let w1 = g.shared("w1", Tensor::full(&[6, 5], 0.1, DType::F64));
    let b1 = g.shared("b1", vec![0.0; 5]);
    let w2 = g.shared("w2", Tensor::full(&[5, 4], 0.1, DType::F64));
    let hidden = (&images.matmul(&w1) + &b1).tanh();
    let logits = hidden.matmul(&w2);
    let (loss, line) = (logits.softmax_cross_entropy(&labels), line!());
    Mlp {
        images,
        labels,
        cost: loss.mean(),
        line,
    }
}

fn images(rows: usize) -> Tensor {
    Tensor::full(&[rows, 6], 0.5, DType::F64)
}

fn labels(values: &[i64]) -> Tensor {
    values.to_vec().into()
}

#[test]
fn a_batch_mismatch_names_the_inputs_and_their_fed_shapes() {
    let m = mlp();
    let grads = grad(&m.cost, &[&m.images]).unwrap();
    for (how, f) in builds(&[&m.images, &m.labels], &[&m.cost, &grads[0]]) {
        let err = f
            .call(&[images(4), labels(&[0, 1, 2])])
            .expect_err("4 images, 3 labels");
        if how == "optimized" {
            assert!(
                f.debugprint().contains("fused{(i0 * i1)}"),
                "the mul is fused"
            );
        }
        assert!(matches!(err, Error::Runtime { .. }), "{how}: {err:?}");
        assert_mentions(
            &err.to_string(),
            &[&format!(
                "run-time shape error in mul: [3, 4] and [4, 4] do not broadcast (3 vs 4); the \
                 operands come from the inputs `labels` (fed [3]) and `images` (fed [4, 6]) \
                 (built at {}",
                at(m.line)
            )],
        );
        assert_built_at(&err, m.line);
    }
    let err = eval(
        &[&m.cost],
        &[(&m.images, images(2)), (&m.labels, labels(&[1]))],
    )
    .expect_err("eval traces them too");
    assert_mentions(
        &err.to_string(),
        &["the operands come from the inputs `labels` (fed [1]) and `images` (fed [2, 6])"],
    );
}

#[test]
fn a_mismatch_in_a_fused_kernel_names_the_inputs_of_its_op() {
    // exp(a) + b * c: fused into one kernel; the add's operands are a and b * c.
    let g = Graph::new();
    let a = g.vector("a", DType::F64);
    let b = g.vector("b", DType::F64);
    let c = g.vector("c", DType::F64);
    let prod = &b * &c;
    let (sum, line) = (&a.exp() + &prod, line!());
    let out = sum.tanh();
    let f = function(&[&a, &b, &c], &[&out]).compile().unwrap();
    assert!(
        f.debugprint().contains("fused"),
        "one kernel:\n{}",
        f.debugprint()
    );
    let v = |n: usize| -> Tensor { vec![1.0; n].into() };
    let err = f.call(&[v(2), v(3), v(3)]).expect_err("2 vs 3");
    assert_mentions(
        &err.to_string(),
        &[
            "run-time shape error in add",
            "the operands come from the inputs `a` (fed [2]), `b` (fed [3]) and `c` (fed [3]) \
             (built",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn a_product_and_its_bias_name_the_inputs() {
    // x @ w + bias, one gemm when optimized: a bias of the wrong length, then an x of the wrong
    // width.
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, None]);
    let w = g.shared("w", Tensor::full(&[3, 2], 1.0, DType::F64));
    let bias = g.input("bias", DType::F64, &[None]);
    let (y, line) = (&x.matmul(&w) + &bias, line!());
    for (how, f) in builds(&[&x, &bias], &[&y]) {
        let err = f
            .call(&[Tensor::full(&[4, 3], 1.0, DType::F64), vec![0.0; 5].into()])
            .expect_err("a bias of 5 for 2 columns");
        if how == "optimized" {
            assert!(
                f.debugprint().contains("gemm{a·b}(%0, %1, %2)"),
                "one product"
            );
        }
        assert_mentions(
            &err.to_string(),
            &[
                "run-time shape error in add",
                "the operands come from the inputs `x` (fed [4, 3]) and `bias` (fed [5]) (built",
            ],
        );
        assert!(err.to_string().contains(&at(line)), "{how}: {err}");
        let err = f
            .call(&[Tensor::full(&[4, 7], 1.0, DType::F64), vec![0.0; 2].into()])
            .expect_err("7 columns for 3 rows of w");
        assert_mentions(
            &err.to_string(),
            &[
                "run-time shape error in matmul",
                "the operands come from the input `x` (fed [4, 7]) and the shared variable `w` \
                 (holding [3, 2]) (built",
            ],
        );
    }
}

#[test]
fn a_mismatch_with_a_shared_variable_names_it_with_the_shape_it_holds() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let w = g.shared("w", vec![1.0; 4]);
    let (y, line) = (&(&x * 2.0) - &w.exp(), line!());
    for (how, f) in builds(&[&x], &[&y]) {
        let err = f.call(&[vec![1.0; 3].into()]).expect_err("3 vs 4");
        assert_mentions(
            &err.to_string(),
            &[
                "run-time shape error in sub",
                "the operands come from the input `x` (fed [3]) and the shared variable `w` \
                 (holding [4]) (built",
            ],
        );
        assert!(err.to_string().contains(&at(line)), "{how}: {err}");
    }
}

#[test]
fn an_out_of_range_label_is_an_index_error() {
    let m = mlp();
    for (how, f) in builds(&[&m.images, &m.labels], &[&m.cost]) {
        let err = f
            .call(&[images(3), labels(&[0, 7, 1])])
            .expect_err("4 classes");
        let Error::Index {
            op,
            what,
            index,
            len,
            ..
        } = &err
        else {
            panic!("{how}: not an index error: {err:?}");
        };
        assert_eq!(
            (&op[..], &what[..], *index, *len),
            ("one_hot{4}", "label", 7, 4)
        );
        assert_mentions(
            &err.to_string(),
            &["index error in one_hot{4}: label 7 is out of range 0..4"],
        );
        assert_built_at(&err, m.line);
    }
}

#[test]
fn an_out_of_range_index_of_take_and_of_its_gradient_is_an_index_error() {
    let g = Graph::new();
    let table = g.shared("table", Tensor::full(&[3, 2], 1.0, DType::F64));
    let rows = g.input("rows", DType::I64, &[None]);
    let (picked, line) = (table.take(&rows), line!());
    let gt = grad(&picked.sum(), &[&table]).unwrap().remove(0);
    for (how, f) in builds(&[&rows], &[&picked]) {
        let err = f.call(&[vec![2i64, -1].into()]).expect_err("-1");
        assert_mentions(
            &err.to_string(),
            &["index error in take{axis=0}: index -1 is out of range 0..3"],
        );
        assert!(matches!(err, Error::Index { .. }), "{how}: {err:?}");
        assert_built_at(&err, line);
    }
    // The gradient alone: its scatter-add meets the index first.
    let f = function(&[&rows], &[&gt]).compile().unwrap();
    let err = f.call(&[vec![3i64].into()]).expect_err("3 of 3 rows");
    assert!(
        matches!(
            err,
            Error::Index {
                index: 3,
                len: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_built_at(&err, line);
}

/// A function of `x: f64[3]` and `y: f64[?, 2]`.
fn two_inputs() -> Function {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3)]);
    let y = g.input("y", DType::F64, &[None, Some(2)]);
    function(&[&x, &y], &[&(&x.sum() * &y).sum()])
        .compile()
        .unwrap()
}

#[test]
fn feed_errors_name_the_line_of_the_call() {
    let f = two_inputs();
    let x: Tensor = vec![1.0; 3].into();
    let y = Tensor::full(&[2, 2], 1.0, DType::F64);

    let (x4, y32): (Tensor, Tensor) = (vec![1.0; 4].into(), y.cast(DType::F32));
    let calls = [
        (f.call(std::slice::from_ref(&x)), line!()),
        (f.call(&[x4, y.clone()]), line!()),
        (f.call(&[x.clone(), y32]), line!()),
    ];
    let expected = [
        ("MissingFeed", "missing feed for input y"),
        ("FeedShape", "wrong shape for input x"),
        ("FeedDType", "wrong dtype for input y"),
    ];
    for ((res, line), (variant, what)) in calls.into_iter().zip(expected) {
        let err = res.expect_err(what);
        assert!(format!("{err:?}").starts_with(variant), "{err:?}");
        assert_mentions(&err.to_string(), &[what, "in the call at"]);
        assert_built_at(&err, line);
    }

    // eval names its own line.
    let g = Graph::new();
    let v = g.input("v", DType::F64, &[Some(2)]);
    let (res, line) = (eval(&[&v.sum()], &[(&v, x)]), line!());
    let err = res.expect_err("v is [2]");
    assert_built_at(&err, line);
}
