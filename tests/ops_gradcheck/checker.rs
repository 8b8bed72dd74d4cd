//! The gradient checker must be able to fail: a custom op with a deliberately wrong `vjp` is
//! caught (in both modes, the elementwise report naming the bad element), a correct one passes.

use std::sync::Arc;

use gradus::Type;
use gradus::prelude::*;
use gradus::{CustomOp, Result};
use ndarray::ArrayD;

use crate::common::uniform;

/// `y = x`, with a vjp that multiplies `dy` by `scale` (all ones for a correct op).
struct Identity {
    scale: Tensor,
}

impl CustomOp for Identity {
    fn name(&self) -> &str {
        "identity"
    }
    fn infer(&self, inputs: &[Type]) -> std::result::Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> std::result::Result<Tensor, String> {
        Ok(inputs[0].clone())
    }
    fn vjp(&self, _: &[Expr], _: &Expr, dy: &Expr) -> Result<Vec<Option<Expr>>> {
        let s = dy.graph().constant(self.scale.clone());
        Ok(vec![Some(dy * &s)])
    }
}

/// `y = x^3` with the right vjp `3 x^2 dy`, itself differentiable.
struct Cube;

impl CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn infer(&self, inputs: &[Type]) -> std::result::Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> std::result::Result<Tensor, String> {
        let x = inputs[0].as_f64().ok_or("cube takes f64")?;
        Ok(Tensor::F64(x.mapv(|v| v * v * v)))
    }
    fn vjp(&self, inputs: &[Expr], _: &Expr, dy: &Expr) -> Result<Vec<Option<Expr>>> {
        Ok(vec![Some(&(dy * &inputs[0].square()) * 3.0)])
    }
}

fn scale_with(shape: &[usize], at: &[usize], v: f64) -> Tensor {
    let mut s = ArrayD::<f64>::ones(shape);
    s[at] = v;
    Tensor::F64(s)
}

#[test]
fn wrong_custom_vjp_fails_naming_the_element() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3), Some(4)]);
    // wrong only at [1, 2]: the gradient there is doubled
    let op = Identity {
        scale: scale_with(&[3, 4], &[1, 2], 2.0),
    };
    let y = g.custom(Arc::new(op), &[&x]).sin();
    let at = [uniform(&[3, 4], -1.0, 1.0, 5)];
    match GradCheck::new(&y, &[&x]).at(&at).elementwise().run() {
        Err(Error::GradCheck(msg)) => assert!(
            msg.contains("x element [1, 2]"),
            "the report should name x[1, 2]: {msg}"
        ),
        other => panic!("a wrong vjp must fail the elementwise check, got {other:?}"),
    }
    // measured without judging: the report agrees
    let report = GradCheck::new(&y, &[&x])
        .at(&at)
        .elementwise()
        .measure()
        .unwrap();
    assert!(!report.passed());
    assert!(report.worst.contains("[1, 2]"), "{report}");
    assert_eq!(report.comparisons, 12);
}

#[test]
fn wrong_custom_vjp_fails_along_directions() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(20)]);
    // the brief's example: y = x, vjp returns 2 dy
    let op = Identity {
        scale: Tensor::full(&[20], 2.0, DType::F64),
    };
    let y = g.custom(Arc::new(op), &[&x]);
    let at = [uniform(&[20], -1.0, 1.0, 6)];
    let r = GradCheck::new(&y, &[&x]).at(&at).run();
    assert!(
        matches!(r, Err(Error::GradCheck(ref m)) if m.contains("direction")),
        "a doubled gradient must fail the directional check, got {r:?}"
    );
}

#[test]
fn correct_custom_vjp_passes() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3), Some(4)]);
    let ident = Identity {
        scale: Tensor::full(&[3, 4], 1.0, DType::F64),
    };
    let y = g.custom(Arc::new(ident), &[&x]).sin();
    let at = [uniform(&[3, 4], -1.0, 1.0, 5)];
    let report = GradCheck::new(&y, &[&x])
        .at(&at)
        .elementwise()
        .run()
        .unwrap();
    assert_eq!(report.comparisons, 12);

    let c = g.custom(Arc::new(Cube), &[&x]);
    for second in [false, true] {
        let mut gc = GradCheck::new(&c.tanh(), &[&x]).at(&at).elementwise();
        if second {
            gc = gc.second_order();
        }
        gc.run()
            .unwrap_or_else(|e| panic!("cube (second order {second}): {e}"));
    }
    GradCheck::new(&c, &[&x])
        .at(&at)
        .directions(5)
        .run()
        .unwrap();
}

/// A NaN gradient fails the check, and the report's largest error says NaN rather than the
/// largest finite error.
#[test]
fn nan_gradient_fails_and_is_reported() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(3)]);
    let op = Identity {
        scale: scale_with(&[2, 3], &[0, 1], f64::NAN),
    };
    let y = g.custom(Arc::new(op), &[&x]);
    let at = [uniform(&[2, 3], -1.0, 1.0, 8)];
    let report = GradCheck::new(&y, &[&x])
        .at(&at)
        .elementwise()
        .measure()
        .unwrap();
    assert!(!report.passed());
    assert!(report.max_abs_err.is_nan(), "{report}");
    assert!(report.worst.contains("[0, 1]"), "{report}");
    assert!(matches!(
        GradCheck::new(&y, &[&x]).at(&at).run(),
        Err(Error::GradCheck(_))
    ));
}
