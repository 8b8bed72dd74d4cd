//! The code of the book's chapter "Checking gradients" (`book/src/checking-gradients.md`).
//!
//! Run with `cargo run --example book_gradcheck`.

use std::sync::Arc;

use gradus::prelude::*;
use gradus::{CustomOp, Type};

// ANCHOR: buggy_op
/// `x * x` with a gradient that forgets the factor 2.
struct BuggySquare;

impl CustomOp for BuggySquare {
    fn name(&self) -> &str {
        "buggy_square"
    }
    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        let x = inputs[0].to_f64_array();
        Ok(Tensor::F64(x.mapv(|v| v * v)).cast(inputs[0].dtype()))
    }
    fn vjp(&self, inputs: &[Expr], _y: &Expr, dy: &Expr) -> gradus::Result<Vec<Option<Expr>>> {
        Ok(vec![Some(dy * &inputs[0])]) // should be 2 * x * dy
    }
}
// ANCHOR_END: buggy_op

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: directions
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3)]);
    let y = x.tanh() * x.exp(); // a vector: reduced to sum(r * y) for a fixed random r
    let report = GradCheck::new(&y, &[&x])
        .at(&[vec![0.1, -0.5, 2.0].into()])
        .run()?;
    println!("{report}");
    // ANCHOR_END: directions

    // ANCHOR: elementwise
    let logits = g.input("logits", DType::F64, &[Some(2), Some(3)]);
    let labels = g.input("labels", DType::I64, &[Some(2)]);
    let loss = logits.softmax_cross_entropy(&labels).mean();
    let at = Tensor::from_f64(&[2, 3], vec![0.5, -1.0, 2.0, 0.0, 3.0, -2.0], DType::F64)?;
    let report = GradCheck::new(&loss, &[&logits])
        .at(&[at])
        .feed(&[(&labels, vec![2i64, 0].into())]) // held fixed, not differentiated
        .elementwise()
        .run()?;
    println!("{report}");
    // ANCHOR_END: elementwise

    // ANCHOR: f32
    let h = g.input("h", DType::F32, &[Some(4)]);
    let act = h.sigmoid() * &h;
    let report = GradCheck::new(&act, &[&h])
        .at(&[vec![0.3f32, -1.2, 2.5, 0.0].into()])
        .directions(8)
        .run()?;
    println!("{report}");
    // ANCHOR_END: f32

    // ANCHOR: second_order
    let report = GradCheck::new(&y, &[&x])
        .at(&[vec![0.1, -0.5, 2.0].into()])
        .second_order()
        .run()?;
    println!("{report}");
    // ANCHOR_END: second_order

    // ANCHOR: failure
    let sq = g.custom(Arc::new(BuggySquare), &[&x]);
    let result = GradCheck::new(&sq.sum(), &[&x])
        .at(&[vec![0.1, -0.5, 2.0].into()])
        .elementwise()
        .run();
    match result {
        Err(e) => println!("{e}"),
        Ok(report) => unreachable!("the bug went unnoticed: {report}"),
    }
    // ANCHOR_END: failure

    // ANCHOR: model
    // A layer with dropout, checked with respect to its parameters where they are.
    let rng = gradus::random::RandomStream::new(&g, 1);
    let w = g.shared("W", gradus::ndarray::Array2::from_elem((3, 2), 0.3));
    let b = g.shared("b", vec![0.1, -0.2]);
    let inputs = g.input("inputs", DType::F64, &[None, Some(3)]);
    let hidden = (inputs.matmul(&w) + &b).tanh();
    let kept = &hidden * &rng.bernoulli(&hidden.scalar_like(0.5).broadcast_like(&hidden)) * 2.0;
    let cost = kept.square().mean();
    let batch = Tensor::from_f64(&[2, 3], vec![1.0, -1.0, 0.5, 0.2, 0.4, -2.0], DType::F64)?;
    let report = GradCheck::new(&cost, &[&w, &b])
        .at(&[]) // the shared variables' current values
        .feed(&[(&inputs, batch)])
        .elementwise()
        .run()?;
    println!("{report}");
    // ANCHOR_END: model

    // ANCHOR: measure
    let report = GradCheck::new(&sq.sum(), &[&x])
        .at(&[vec![0.1, -0.5, 2.0].into()])
        .measure()?; // the report, pass or fail
    println!(
        "passed: {}, worst ratio {:.1}, max |diff| {:.3e}",
        report.passed(),
        report.worst_ratio,
        report.max_abs_err
    );
    // ANCHOR_END: measure
    Ok(())
}
