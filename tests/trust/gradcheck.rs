//! The gradient checker takes model code as written: shared parameters, random draws, custom
//! ops with a gradient, unrolled loops and stop_gradient; a failure names the variable, the
//! element, both values and the error.

use std::sync::Arc;

use gradus::gradcheck::GradCheck;
use gradus::models::{Rbm, unroll};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::{CustomOp, Type};
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn uniform(rows: usize, cols: usize, scale: f64, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..scale))
}

#[test]
fn an_mlp_with_dropout_checks_with_respect_to_its_shared_weights() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 3);
    let x = g.input("x", DType::F64, &[None, Some(5)]);
    let labels = g.input("labels", DType::I64, &[None]);
    let w1 = g.shared("W1", uniform(5, 7, 0.5, 1));
    let b1 = g.shared("b1", Array1::<f64>::zeros(7));
    let w2 = g.shared("W2", uniform(7, 3, 0.5, 2));
    let h = (x.matmul(&w1) + &b1).relu();
    // Inverted dropout with p = 0.5: a fresh mask at every call, frozen for the check.
    let keep = stream.bernoulli(&h.scalar_like(0.5).broadcast_like(&h));
    let loss = (&h * &keep * 2.0)
        .matmul(&w2)
        .softmax_cross_entropy(&labels)
        .mean();
    let before = w1.get_value().unwrap();
    let state = stream.state().get_value().unwrap();
    let report = GradCheck::new(&loss, &[&w1, &b1, &w2])
        .at(&[])
        .feed(&[
            (&x, uniform(4, 5, 1.0, 3).into()),
            (&labels, vec![0i64, 2, 1, 2].into()),
        ])
        .elementwise()
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.comparisons, 5 * 7 + 7 + 7 * 3);
    // The parameters and the stream are as they were.
    assert_eq!(w1.get_value().unwrap(), before);
    assert_eq!(stream.state().get_value().unwrap(), state);
    // Along directions too.
    GradCheck::new(&loss, &[&w1, &b1, &w2])
        .at(&[])
        .feed(&[
            (&x, uniform(4, 5, 1.0, 3).into()),
            (&labels, vec![0i64, 2, 1, 2].into()),
        ])
        .directions(4)
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_cd_1_cost_checks_with_respect_to_the_rbms_shared_weights() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 4);
    let rbm = Rbm::new(&g, 6, 4, 5).unwrap();
    let v0 = g.input("v0", DType::F32, &[None, Some(6)]);
    // CD-1: the negative phase is a sample, a constant to grad.
    let (_, v1) = rbm.gibbs_vhv(&v0, &stream);
    let v1 = v1.stop_gradient();
    let cost = (rbm.free_energy(&v0) - rbm.free_energy(&v1)).mean();
    let data: Array2<f32> = uniform(3, 6, 1.0, 7).mapv(|v| (v > 0.0) as u8 as f32);
    let report = GradCheck::new(&cost, &rbm.params())
        .at(&[])
        .feed(&[(&v0, data.into())])
        .elementwise()
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.comparisons, 6 * 4 + 6 + 4);
}

/// `y = x³` with its gradient `3 x² dy`.
struct Cube;

impl CustomOp for Cube {
    fn name(&self) -> &str {
        "cube"
    }
    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        Ok(Tensor::F64(
            inputs[0].as_f64().ok_or("f64")?.mapv(|v| v * v * v),
        ))
    }
    fn vjp(&self, x: &[Expr], _: &Expr, dy: &Expr) -> gradus::Result<Vec<Option<Expr>>> {
        Ok(vec![Some(&(dy * &x[0].square()) * 3.0)])
    }
}

#[test]
fn custom_ops_unrolled_loops_and_stop_gradient_check_as_written() {
    let g = Graph::new();
    let w = g.shared("w", uniform(3, 3, 0.4, 8));
    let x0 = g.input("x0", DType::F64, &[Some(2), Some(3)]);
    // Five steps of x -> cube(tanh(x W)), with a constant target made from the first step.
    let step = |x: Expr| g.custom(Arc::new(Cube), &[&x.matmul(&w).tanh()]);
    let first = step(x0.clone());
    let last = unroll(4, first.clone(), step);
    let cost = (&last - &first.stop_gradient()).square().sum();
    GradCheck::new(&cost, &[&w, &x0])
        .at(&[uniform(2, 3, 1.0, 9).into()])
        .elementwise()
        .run()
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `y = x`, whose vjp doubles the gradient of the element `[1, 2]`.
struct WrongAtOneElement;

impl CustomOp for WrongAtOneElement {
    fn name(&self) -> &str {
        "wrong"
    }
    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        Ok(inputs[0].clone())
    }
    fn vjp(&self, _: &[Expr], _: &Expr, dy: &Expr) -> gradus::Result<Vec<Option<Expr>>> {
        let mut s = Array2::<f64>::ones((3, 4));
        s[[1, 2]] = 2.0;
        Ok(vec![Some(dy * &dy.graph().constant(s))])
    }
}

#[test]
fn a_failure_names_the_shared_variable_its_element_both_values_and_the_error() {
    let g = Graph::new();
    let w = g.shared("W", uniform(3, 4, 1.0, 10));
    let y = g.custom(Arc::new(WrongAtOneElement), &[&w]).sin().sum();
    for check in [
        GradCheck::new(&y, &[&w]).at(&[]).elementwise(),
        GradCheck::new(&y, &[&w]).at(&[]).directions(3),
    ] {
        let report = check.measure().unwrap();
        assert!(!report.passed());
        assert_eq!(report.variable.as_deref(), Some("W"), "{report}");
        assert_eq!(report.element.as_deref(), Some(&[1, 2][..]), "{report}");
        let (analytic, numeric) = report.values;
        assert!((analytic - 2.0 * numeric).abs() < 1e-6, "{report}");
        let msg = report.to_string();
        assert!(
            msg.contains("W element [1, 2]") && msg.contains("|diff|"),
            "{msg}"
        );
    }
}
