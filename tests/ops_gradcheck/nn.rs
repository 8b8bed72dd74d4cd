//! Neural-network ops (softmax, log-softmax, the cross-entropies), `stop_gradient`, and graphs
//! over inputs with run-time dims, which take the `DimSize` / `BroadcastLike` / `ReshapeLike`
//! paths.

use gradus::prelude::*;

use crate::common::{Fill, assert_close, case};

const U: Fill = Fill::Uniform(-2.0, 2.0);

#[test]
fn softmax() {
    for axis in [0, 1, -1] {
        case(&format!("softmax axis {axis}"))
            .var(&[3, 4], U)
            .elementwise()
            .check(|x| x[0].softmax(axis));
    }
    case("softmax axis 1 of 3-d")
        .var(&[2, 3, 4], U)
        .check(|x| x[0].softmax(1));
    case("softmax of a vector")
        .var(&[5], U)
        .elementwise()
        .check(|x| x[0].softmax(0));
}

#[test]
fn log_softmax() {
    for axis in [0, 1, -1] {
        case(&format!("log_softmax axis {axis}"))
            .var(&[3, 4], U)
            .elementwise()
            .check(|x| x[0].log_softmax(axis));
    }
    case("log_softmax axis 0 of 3-d")
        .var(&[2, 3, 4], U)
        .check(|x| x[0].log_softmax(0));
    case("log_softmax large logits")
        .var(&[2, 3], Fill::Uniform(300.0, 320.0))
        .elementwise()
        .check(|x| x[0].log_softmax(-1));
}

#[test]
fn softmax_cross_entropy() {
    let labels = Tensor::from(vec![1i64, 0, 4, 1]);
    case("softmax_cross_entropy")
        .var(&[4, 5], U)
        .fixed(labels.clone())
        .elementwise()
        .check(|x| x[0].softmax_cross_entropy(&x[1]));
    case("softmax_cross_entropy mean")
        .var(&[4, 5], Fill::Uniform(-5.0, 5.0))
        .fixed(labels)
        .check(|x| x[0].softmax_cross_entropy(&x[1]).mean());
    // logits from a linear layer, the usual classifier
    case("softmax_cross_entropy of x W")
        .var(&[3, 4], U)
        .var(&[4, 6], U)
        .fixed(Tensor::from(vec![5i64, 5, 0]))
        .check(|x| x[0].matmul(&x[1]).softmax_cross_entropy(&x[2]).mean());
}

#[test]
fn binary_cross_entropy_with_logits() {
    case("binary_cross_entropy_with_logits")
        .var(&[3, 4], Fill::Uniform(-4.0, 4.0))
        .var(&[3, 4], Fill::Uniform(0.0, 1.0))
        .elementwise()
        .check(|x| x[0].binary_cross_entropy_with_logits(&x[1]));
    case("binary_cross_entropy_with_logits broadcast targets")
        .var(&[2, 3, 4], Fill::Uniform(-20.0, 20.0))
        .var(&[4], Fill::Uniform(0.0, 1.0))
        .check(|x| x[0].binary_cross_entropy_with_logits(&x[1]).mean());
}

/// `x * stop_gradient(exp(x))` differentiates as if `exp(x)` were a constant: the gradient is
/// `exp(x)`, not `(1 + x) exp(x)`. A finite difference sees through `stop_gradient`, so the
/// oracle here is the closed form.
#[test]
fn stop_gradient() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(4)]);
    let y = (&x * &x.exp().stop_gradient()).sum();
    let gx = grad(&y, &[&x]).unwrap().remove(0);
    let xv: Vec<f64> = vec![-1.0, 0.0, 0.5, 2.0];
    let got = gx.eval(&[(&x, Tensor::from(xv.clone()))]).unwrap();
    let want = Tensor::from(xv.iter().map(|v| v.exp()).collect::<Vec<_>>());
    assert_close("grad of x * stop_gradient(exp x)", &got, &want, 1e-12);

    // the only path goes through stop_gradient: disconnected, or zeros on request
    let z = x.stop_gradient().square().sum();
    assert!(
        matches!(grad(&z, &[&x]), Err(Error::Disconnected { .. })),
        "a cost depending on x only through stop_gradient must be disconnected"
    );
    let gz = grad_with(&z, &[&x], GradOptions::default().allow_disconnected())
        .unwrap()
        .remove(0);
    let got = gz.eval(&[(&x, Tensor::from(xv))]).unwrap();
    assert_close(
        "allowed disconnected grad",
        &got,
        &Tensor::from(vec![0.0; 4]),
        0.0,
    );
}

/// Inputs with run-time dims: the count of `mean` is read at run time (`DimSize`), broadcasts
/// against them go through `BroadcastLike`, reshapes through `ReshapeLike`. Each graph is
/// checked at two run-time sizes.
#[test]
fn dynamic_dims() {
    let rows_dyn: &[Option<usize>] = &[None, Some(4)];
    for (k, n) in [3usize, 5].into_iter().enumerate() {
        let c = || case(&format!("dynamic [?, 4] at n = {n}")).seed(k as u64);
        c().var_dyn(rows_dyn, &[n, 4], U)
            .check(|x| x[0].sum_axes(&[0], false).sin());
        c().var_dyn(rows_dyn, &[n, 4], U)
            .check(|x| x[0].mean_axes(&[0], true));
        c().var_dyn(rows_dyn, &[n, 4], U)
            .elementwise()
            .check(|x| x[0].mean().exp());
        c().var_dyn(rows_dyn, &[n, 4], U).check(|x| {
            (&x[0] - &x[0].mean_axes(&[0], true))
                .square()
                .mean_axes(&[0], false)
        });
        // a static bias broadcast over run-time rows: its gradient sums the rows
        c().var_dyn(rows_dyn, &[n, 4], U)
            .var(&[4], U)
            .check(|x| (&x[0] * &x[1]).tanh());
        c().var_dyn(rows_dyn, &[n, 4], U)
            .var(&[1, 4], U)
            .check(|x| &x[1].broadcast_like(&x[0]) * &x[0]);
        // a column of run-time length
        c().var_dyn(rows_dyn, &[n, 4], U)
            .var_dyn(&[None, Some(1)], &[n, 1], U)
            .check(|x| &x[0] / &(x[1].exp() + 1.0));
        c().var_dyn(rows_dyn, &[n, 4], U)
            .check(|x| x[0].reshape(&[-1, 2]).softmax(1));
        c().var_dyn(rows_dyn, &[n, 4], U)
            .var(&[4, 3], U)
            .check(|x| x[0].matmul(&x[1]).log_softmax(-1).mean());
        c().var_dyn(&[None], &[n], U)
            .var(&[], U)
            .elementwise()
            .check(|x| (&x[0] * &x[1]).exp().mean());
        c().var_dyn(&[None, None], &[n, 2], U)
            .check(|x| x[0].mean_axes(&[1], false).logsumexp_axes(&[0], false));
    }
}

/// More ops over run-time dims, and a run-time dim that is 1 when the function runs.
#[test]
fn dynamic_dims_other_ops() {
    let rows: &[Option<usize>] = &[None, Some(4)];
    // a run-time dim of 1 is not a broadcast: the gradient keeps its shape
    case("dynamic rows = 1: sum")
        .var_dyn(rows, &[1, 4], U)
        .check(|x| x[0].sum_axes(&[0], false));
    case("dynamic rows = 1: mean")
        .var_dyn(rows, &[1, 4], U)
        .check(|x| x[0].mean_axes(&[0], true).exp());
    case("dynamic rows = 1: bias")
        .var_dyn(rows, &[1, 4], U)
        .var(&[4], U)
        .check(|x| &x[0] * &x[1]);
    // a static 1 against a run-time dim is a broadcast: its gradient sums
    case("static [1] with dynamic [?]")
        .var(&[1], U)
        .var_dyn(&[None], &[5], U)
        .check(|x| (&x[0] * &x[1]).sin());
    case("dynamic max")
        .var_dyn(rows, &[3, 4], Fill::Distinct)
        .check(|x| x[0].max_axes(&[0], true));
    case("dynamic prod")
        .var_dyn(rows, &[3, 4], Fill::Signed(0.5, 1.5))
        .check(|x| x[0].prod_axes(&[0], false));
    case("dynamic slice")
        .var_dyn(rows, &[5, 4], U)
        .check(|x| x[0].slice_step(0, 1, None, 2));
    case("dynamic stack")
        .var_dyn(rows, &[5, 4], U)
        .check(|x| gradus::stack(&[&x[0], &x[0].sin()], 0));
    case("dynamic concat along a static axis")
        .var_dyn(rows, &[5, 4], U)
        .check(|x| gradus::concat(&[&x[0], &x[0].sin()], 1));
    // each part's place in the gradient is read from the operands' sizes when it runs
    case("concat along a run-time axis")
        .var_dyn(rows, &[5, 4], U)
        .var_dyn(rows, &[2, 4], U)
        .var(&[3, 4], U)
        .check(|x| gradus::concat(&[&x[0], &x[1].sin(), &x[2], &x[0]], 0));
    case("concat along a run-time axis (second order)")
        .var_dyn(rows, &[3, 4], U)
        .var_dyn(rows, &[2, 4], U)
        .second_order()
        .check(|x| gradus::concat(&[&x[0], &x[1]], 0).tanh());
    case("dynamic transpose")
        .var_dyn(rows, &[5, 4], U)
        .check(|x| x[0].t().softmax(1));
    case("dynamic batched matmul")
        .var_dyn(&[None, Some(2), Some(3)], &[4, 2, 3], U)
        .var(&[4, 3, 2], U)
        .check(|x| x[0].matmul(&x[1]));
    case("dynamic take")
        .var_dyn(rows, &[5, 4], U)
        .fixed(Tensor::from(vec![1i64, 1, 4]))
        .check(|x| x[0].take(&x[1]));
    case("dynamic expand_dims")
        .var_dyn(&[None], &[5], U)
        .var(&[3, 1], U)
        .check(|x| &x[0].expand_dims(&[0]) * &x[1]);
    case("dynamic squeeze")
        .var_dyn(&[None, Some(1)], &[5, 1], U)
        .check(|x| x[0].squeeze(&[1]).exp());
    case("reshape_like a dynamic input")
        .var_dyn(rows, &[5, 4], U)
        .var(&[20], U)
        .check(|x| &x[1].reshape_like(&x[0]) * &x[0]);
    case("broadcast_to from a dynamic dim")
        .var_dyn(&[None], &[4], U)
        .check(|x| x[0].broadcast_to(&[3, 4]));
}

/// Softmax and log-softmax along an axis of length 1 (constant outputs, zero gradient).
#[test]
fn softmax_axis_of_one() {
    case("softmax axis of 1")
        .var(&[3, 1], U)
        .elementwise()
        .check(|x| &x[0].softmax(1) * &x[0]);
    case("log_softmax axis of 1")
        .var(&[3, 1], U)
        .elementwise()
        .check(|x| &x[0].log_softmax(1) + &x[0].sin());
}

/// Only a dim declared 1 broadcasts: a run-time dim that is 1 when the function runs must
/// match its partner exactly. Broadcasting it anyway made the forward pass succeed and the
/// gradient come back in the partner's shape (`[5, 3]` for a `[1, 3]` input) or fail later.
#[test]
fn dynamic_dim_of_one_does_not_broadcast() {
    let g = Graph::new();
    let z = g.input("z", DType::F64, &[None, Some(3)]);
    let w = g.input("w", DType::F64, &[None, Some(3)]);
    let y = (&z * &w).sum();
    let gz = grad(&y, &[&z]).unwrap().remove(0);
    let feeds = |rows_z: usize, rows_w: usize| {
        vec![
            (&z, Tensor::full(&[rows_z, 3], 1.0, DType::F64)),
            (&w, Tensor::full(&[rows_w, 3], 2.0, DType::F64)),
        ]
    };
    for e in [&y, &gz] {
        assert!(
            matches!(e.eval(&feeds(1, 5)), Err(Error::Runtime { .. })),
            "a run-time 1 must not broadcast against 5"
        );
    }
    let f = function(&[&z, &w], &[&y, &gz]).compile().unwrap();
    let args: Vec<Tensor> = feeds(1, 5).into_iter().map(|(_, t)| t).collect();
    assert!(matches!(f.call(&args), Err(Error::Runtime { .. })));
    // equal run-time dims, 1 included, are fine
    for rows in [1, 4] {
        let got = gz.eval(&feeds(rows, rows)).unwrap();
        assert_close(
            "d/dz sum(z w)",
            &got,
            &Tensor::full(&[rows, 3], 2.0, DType::F64),
            0.0,
        );
    }
    // a vector of run-time length 1 against a static 4, and a broadcast_to
    let x = g.input("x", DType::F64, &[None]);
    let v = g.input("v", DType::F64, &[Some(4)]);
    let one = [
        (&x, Tensor::from(vec![2.0])),
        (&v, Tensor::from(vec![1.0; 4])),
    ];
    assert!(matches!((&x * &v).eval(&one), Err(Error::Runtime { .. })));
    assert!(matches!(
        x.broadcast_to(&[3, 4]).eval(&one),
        Err(Error::Runtime { .. })
    ));
    assert!(matches!(
        x.broadcast_like(&v).eval(&one),
        Err(Error::Runtime { .. })
    ));
    // declared 1, it broadcasts, and its gradient sums back to [1, 3]
    case("static 1 against run-time rows")
        .var(&[1, 3], U)
        .var_dyn(&[None, Some(3)], &[5, 3], U)
        .check(|x| (&x[0] * &x[1]).sin());
}
