//! The semantics of the reverse sweep and its derived operators (`vjp`, `jacobian`, `hessian`,
//! `hessian_vector_product`), each against a closed form.

use gradus::prelude::*;
use gradus::{hessian, hessian_vector_product, jacobian};
use ndarray::{Array1, Array2, array};

use crate::common::{Fill, assert_close, case, max_abs_diff, uniform};

fn vec_input(g: &Graph, name: &str, n: usize) -> Expr {
    g.input(name, DType::F64, &[Some(n)])
}

/// `x` used four times: the sweep must add every contribution exactly once.
#[test]
fn fan_out() {
    let g = Graph::new();
    let x = vec_input(&g, "x", 5);
    let y = (&(&x * &x) + &(&x.sin() * &x)).sum();
    let gx = grad(&y, &[&x]).unwrap().remove(0);
    let xv = array![-2.0, -0.5, 0.0, 0.7, 3.0];
    let got = gx.eval(&[(&x, Tensor::from(xv.clone()))]).unwrap();
    // d/dx (x^2 + x sin x) = 2x + sin x + x cos x
    let want = xv.mapv(|v: f64| 2.0 * v + v.sin() + v * v.cos());
    assert_close("grad of x*x + sin(x)*x", &got, &Tensor::from(want), 1e-12);
    case("fan out")
        .var(&[5], Fill::Uniform(-2.0, 2.0))
        .elementwise()
        .check(|x| &(&x[0] * &x[0]) + &(&x[0].sin() * &x[0]));
}

#[test]
fn disconnected_input() {
    let g = Graph::new();
    let x = vec_input(&g, "x", 3);
    let w = g.input("w", DType::F64, &[None, Some(2)]);
    let cost = x.exp().sum();
    match grad(&cost, &[&x, &w]) {
        Err(Error::Disconnected { name, .. }) => assert_eq!(name, "w"),
        other => panic!("expected Disconnected for w, got {other:?}"),
    }
    let grads = grad_with(
        &cost,
        &[&x, &w],
        GradOptions::default().allow_disconnected(),
    )
    .unwrap();
    let wv = Tensor::from(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]);
    let xv = array![0.1, 0.2, 0.3];
    let out = gradus::eval(
        &[&grads[0], &grads[1]],
        &[(&x, Tensor::from(xv.clone())), (&w, wv)],
    )
    .unwrap();
    assert_close(
        "connected grad",
        &out[0],
        &Tensor::from(xv.mapv(f64::exp)),
        1e-12,
    );
    // zeros with w's run-time shape
    assert_close(
        "disconnected grad",
        &out[1],
        &Tensor::from(Array2::<f64>::zeros((3, 2))),
        0.0,
    );

    // an integer cast cuts the path too
    let through_int = x.cast(DType::I64).cast(DType::F64).sum();
    assert!(matches!(
        grad(&through_int, &[&x]),
        Err(Error::Disconnected { .. })
    ));
    // and integers are not differentiable variables
    let i = g.input("i", DType::I64, &[Some(3)]);
    assert!(matches!(
        grad(&i.cast(DType::F64).sum(), &[&i]),
        Err(Error::NotDifferentiable { .. })
    ));
}

#[test]
fn non_scalar_cost() {
    let g = Graph::new();
    let x = vec_input(&g, "x", 3);
    match grad(&x.exp(), &[&x]) {
        Err(Error::NonScalarCost { shape, .. }) => assert_eq!(shape, "[3]"),
        other => panic!("expected NonScalarCost, got {other:?}"),
    }
    // a [1]-shaped cost is not a scalar either
    assert!(matches!(
        grad(&x.sum_axes(&[0], true), &[&x]),
        Err(Error::NonScalarCost { .. })
    ));
}

/// `vjp(y, c)` is the gradient of `sum(y * c)`, for a cotangent input and a broadcast one.
#[test]
fn vjp_matches_grad_of_weighted_sum() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(3), Some(4)]);
    let b = g.input("b", DType::F64, &[Some(4), Some(2)]);
    let c = g.input("c", DType::F64, &[Some(3), Some(2)]);
    let y = a.matmul(&b).tanh();
    let v = vjp(&[&y], &[&c], &[&a, &b], GradOptions::default()).unwrap();
    let w = grad(&(&y * &c).sum(), &[&a, &b]).unwrap();
    let feeds = [
        (&a, uniform(&[3, 4], -1.0, 1.0, 1)),
        (&b, uniform(&[4, 2], -1.0, 1.0, 2)),
        (&c, uniform(&[3, 2], -1.0, 1.0, 3)),
    ];
    let out = gradus::eval(&[&v[0], &v[1], &w[0], &w[1]], &feeds).unwrap();
    assert_close("vjp da", &out[0], &out[2], 1e-12);
    assert_close("vjp db", &out[1], &out[3], 1e-12);
    // and the oracle is not vacuous: the cotangent changes the result
    let ones = g.constant(Tensor::full(&[3, 2], 1.0, DType::F64));
    let u = vjp(&[&y], &[&ones], &[&a], GradOptions::default()).unwrap();
    let other = gradus::eval(&[&u[0]], &feeds).unwrap().remove(0);
    assert!(max_abs_diff(&other, &out[0]) > 1e-3);

    // a cotangent that broadcasts against the output (a scalar weight)
    let s = g.scalar("s", DType::F64);
    let v = vjp(&[&y], &[&s], &[&a], GradOptions::default()).unwrap();
    let w = grad(&(&y * &s).sum(), &[&a]).unwrap();
    let mut feeds = feeds.to_vec();
    feeds.push((&s, Tensor::from(0.7)));
    let out = gradus::eval(&[&v[0], &w[0]], &feeds).unwrap();
    assert_close("vjp with a scalar cotangent", &out[0], &out[1], 1e-12);
}

/// d/dx x^3 = 3x^2, d^2/dx^2 = 6x, d^3/dx^3 = 6: gradients of gradients, evaluated.
#[test]
fn gradient_of_gradient() {
    let g = Graph::new();
    let x = g.scalar("x", DType::F64);
    let y = &(&x * &x) * &x;
    let d1 = grad(&y, &[&x]).unwrap().remove(0);
    let d2 = grad(&d1, &[&x]).unwrap().remove(0);
    let d3 = grad(&d2, &[&x]).unwrap().remove(0);
    let f = function(&[&x], &[&d1, &d2, &d3]).compile().unwrap();
    for v in [-1.5, 0.0, 0.25, 2.0] {
        let out = f.call(&[v.into()]).unwrap();
        let got: Vec<f64> = out.iter().map(|t| t.item().unwrap()).collect();
        let want = [3.0 * v * v, 6.0 * v, 6.0];
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 1e-12, "d{} x^3 at {v}: {g} vs {w}", k + 1);
        }
    }
    // the same with pow
    let d2p = grad(&grad(&x.pow(3.0), &[&x]).unwrap()[0], &[&x])
        .unwrap()
        .remove(0);
    let got = d2p.eval(&[(&x, 1.5.into())]).unwrap().item().unwrap();
    assert!((got - 9.0).abs() < 1e-12, "d2 pow(x, 3) at 1.5: {got}");
}

/// The Jacobian of `f(x) = [x0 x1, sin x2, x0^2 + x2, exp(x1)]`, against its closed form.
#[test]
fn jacobian_of_vector_function() {
    let g = Graph::new();
    let x = vec_input(&g, "x", 3);
    let (x0, x1, x2) = (
        x.slice(0, 0, Some(1)),
        x.slice(0, 1, Some(2)),
        x.slice(0, 2, Some(3)),
    );
    let y = gradus::concat(
        &[&(&x0 * &x1), &x2.sin(), &(&x0.square() + &x2), &x1.exp()],
        0,
    );
    let j = jacobian(&y, &x).unwrap();
    assert_eq!(j.shape().to_known(), Some(vec![4, 3]));
    let (a, b, c) = (0.3, -1.2, 0.8);
    let got = j.eval(&[(&x, Tensor::from(vec![a, b, c]))]).unwrap();
    let want = array![
        [b, a, 0.0],
        [0.0, 0.0, f64::cos(c)],
        [2.0 * a, 0.0, 1.0],
        [0.0, f64::exp(b), 0.0],
    ];
    assert_close("jacobian", &got, &Tensor::from(want), 1e-12);

    // the Jacobian of a linear map is its matrix
    let m = array![[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]];
    let mc = g.constant(m.clone());
    let jm = jacobian(&mc.dot(&x), &x).unwrap();
    let got = jm.eval(&[(&x, Tensor::from(vec![a, b, c]))]).unwrap();
    assert_close("jacobian of M x", &got, &Tensor::from(m), 0.0);
}

/// Hessian of `0.5 x^T A x` is `(A + A^T) / 2`, which is `A` for a symmetric `A`.
#[test]
fn hessian_of_quadratic_form() {
    let a_sym = array![[2.0, 0.5, -1.0], [0.5, 3.0, 0.25], [-1.0, 0.25, 1.0]];
    let a_gen = array![[2.0, 1.0, -1.0], [0.0, 3.0, 4.0], [-2.0, 0.5, 1.0]];
    for (label, a) in [("symmetric", a_sym), ("general", a_gen)] {
        let g = Graph::new();
        let x = vec_input(&g, "x", 3);
        let ac = g.constant(a.clone());
        let q = &x.dot(&ac.dot(&x)) * 0.5;
        let h = hessian(&q, &x).unwrap();
        assert_eq!(h.shape().to_known(), Some(vec![3, 3]));
        let got = h.eval(&[(&x, Tensor::from(vec![0.4, -0.3, 1.1]))]).unwrap();
        let want = (&a + &a.t()) / 2.0;
        assert_close(
            &format!("hessian, {label} A"),
            &got,
            &Tensor::from(want),
            1e-12,
        );
    }
}

/// A Hessian of a matrix variable has shape `[x.size, x.shape...]`.
#[test]
fn hessian_of_matrix_variable() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(2)]);
    // sum(x^3) / 6: the Hessian is diagonal with x on it
    let h = hessian(&(&x.pow(3.0).sum() / 6.0), &x).unwrap();
    assert_eq!(h.shape().to_known(), Some(vec![4, 2, 2]));
    let xv = array![[1.0, -2.0], [0.5, 3.0]];
    let got = h.eval(&[(&x, Tensor::from(xv.clone()))]).unwrap();
    let mut want = ndarray::Array3::<f64>::zeros((4, 2, 2));
    for (k, v) in xv.iter().enumerate() {
        want[[k, k / 2, k % 2]] = *v;
    }
    assert_close("hessian of sum(x^3)/6", &got, &Tensor::from(want), 1e-12);
}

/// `hessian_vector_product` equals `H v`: for a quadratic form against `(A + A^T)/2 v`, for a
/// non-quadratic cost against the explicit Hessian times `v`.
#[test]
fn hessian_vector_product_equals_h_v() {
    let g = Graph::new();
    let x = vec_input(&g, "x", 3);
    let v = vec_input(&g, "v", 3);
    let a = array![[2.0, 1.0, -1.0], [0.0, 3.0, 4.0], [-2.0, 0.5, 1.0]];
    let ac = g.constant(a.clone());
    let q = &x.dot(&ac.dot(&x)) * 0.5;
    let hv = hessian_vector_product(&q, &[&x], &[&v]).unwrap().remove(0);
    let vv: Array1<f64> = array![0.3, -1.0, 2.0];
    let got = hv
        .eval(&[
            (&x, Tensor::from(vec![0.4, -0.3, 1.1])),
            (&v, Tensor::from(vv.clone())),
        ])
        .unwrap();
    let want = ((&a + &a.t()) / 2.0).dot(&vv);
    assert_close("hvp of a quadratic form", &got, &Tensor::from(want), 1e-12);

    let c = (&x.exp() * &x.sin()).sum() + x.dot(&x).square();
    let hv = hessian_vector_product(&c, &[&x], &[&v]).unwrap().remove(0);
    let h = hessian(&c, &x).unwrap();
    let feeds = [
        (&x, Tensor::from(vec![0.4, -0.3, 1.1])),
        (&v, Tensor::from(vv.clone())),
    ];
    let out = gradus::eval(&[&hv, &h.dot(&v)], &feeds).unwrap();
    assert_close("hvp vs H v", &out[0], &out[1], 1e-10);
    // the closed form of this Hessian: diag(2 e^x cos x) + 4 (x.x) I + 8 x x^T
    let xv = array![0.4, -0.3, 1.1];
    let n2: f64 = xv.dot(&xv);
    let mut hm = Array2::<f64>::zeros((3, 3));
    for i in 0..3 {
        for j in 0..3 {
            hm[[i, j]] = 8.0 * xv[i] * xv[j];
        }
        hm[[i, i]] += 2.0 * f64::exp(xv[i]) * f64::cos(xv[i]) + 4.0 * n2;
    }
    assert_close(
        "hvp closed form",
        &out[0],
        &Tensor::from(hm.dot(&vv)),
        1e-10,
    );
}

/// The gradient of a variable with respect to itself is 1; a variable listed twice gets its
/// gradient twice.
#[test]
fn trivial_and_repeated_wrt() {
    let g = Graph::new();
    let x = g.scalar("x", DType::F64);
    let gx = grad(&x, &[&x]).unwrap().remove(0);
    assert_eq!(gx.eval(&[(&x, 3.0.into())]).unwrap().item().unwrap(), 1.0);
    let gs = grad(&x.exp(), &[&x, &x]).unwrap();
    let out = gradus::eval(&[&gs[0], &gs[1]], &[(&x, 1.0.into())]).unwrap();
    for o in out {
        assert!((o.item().unwrap() - 1f64.exp()).abs() < 1e-12);
    }
}
