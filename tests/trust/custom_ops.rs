//! A custom op without a gradient on a path to a variable is an error naming the op and the line
//! that built it; an op that is not differentiable on purpose says so and passes no gradient.

use std::sync::Arc;

use gradus::prelude::*;
use gradus::{CustomOp, Type};

use crate::common::assert_located;

/// `y = x²` elementwise, with no `vjp`.
struct SquareWithoutGradient;

impl CustomOp for SquareWithoutGradient {
    fn name(&self) -> &str {
        "my_square"
    }
    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        let x = inputs[0].as_f64().ok_or("f64 only")?;
        Ok(Tensor::F64(x.mapv(|v| v * v)))
    }
}

/// `y = [u < p]`: a sampler, not differentiable on purpose.
struct Threshold;

impl CustomOp for Threshold {
    fn name(&self) -> &str {
        "threshold"
    }
    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        let (p, u) = (
            inputs[0].as_f64().ok_or("f64")?,
            inputs[1].as_f64().ok_or("f64")?,
        );
        Ok(Tensor::F64(
            ndarray::Zip::from(p)
                .and(u)
                .map_collect(|&p, &u| (u < p) as u8 as f64),
        ))
    }
    fn stops_gradient(&self) -> bool {
        true
    }
}

#[test]
fn a_custom_op_without_a_gradient_on_one_of_two_paths_is_an_error() {
    let g = Graph::new();
    let u = g.vector("u", DType::F64);
    let (sq, line) = (g.custom(Arc::new(SquareWithoutGradient), &[&u]), line!());
    let cost = u.sum() + sq.sum();
    // Silently [1, 1, 1] at u = [1, 2, 3] before; the right answer is [3, 5, 7].
    let err = grad(&cost, &[&u]).expect_err("my_square has no gradient");
    let msg = err.to_string();
    assert!(msg.contains("my_square") && msg.contains("vjp"), "{msg}");
    assert_located(&err, file!(), line);
}

#[test]
fn a_custom_op_without_a_gradient_on_the_only_path_names_the_op() {
    let g = Graph::new();
    let u = g.vector("u", DType::F64);
    let (sq, line) = (g.custom(Arc::new(SquareWithoutGradient), &[&u]), line!());
    let err = grad(&sq.sum(), &[&u]).expect_err("my_square has no gradient");
    assert!(
        err.to_string().contains("my_square") && !err.to_string().contains("does not depend"),
        "{err}"
    );
    assert_located(&err, file!(), line);
}

#[test]
fn a_sampler_passes_no_gradient_like_stop_gradient() {
    let g = Graph::new();
    let p = g.vector("p", DType::F64);
    let u = g.constant(vec![0.1f64, 0.9, 0.5]);
    let h = g.custom(Arc::new(Threshold), &[&p, &u]);
    // d/dp sum(p * h) = h: the sample is a constant to grad.
    let gp = grad(&(&p * &h).sum(), &[&p]).unwrap().remove(0);
    let got = gp.eval(&[(&p, vec![0.5, 0.5, 0.7].into())]).unwrap();
    assert_eq!(got.to_f64_vec(), vec![1.0, 0.0, 1.0]);
    // On its own, the cost does not depend on p, as with stop_gradient.
    let err = grad(&h.sum(), &[&p]).expect_err("no path to p");
    assert!(matches!(err, gradus::Error::Disconnected { .. }), "{err:?}");
}
