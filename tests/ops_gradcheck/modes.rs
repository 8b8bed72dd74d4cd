//! `Mode::Fast` (threaded GEMM, rayon over large elementwise loops) against `Mode::Reference`
//! (plain loops, the spec) on inputs large enough to take the fast paths, forward and backward.

use gradus::PAR_MIN;
use gradus::prelude::*;

use crate::common::{assert_close, uniform};

/// A network-shaped graph over `x [?, k]`, `w [k, n]`, `b [n]`, labels `[?]`: matmul, bias
/// broadcast, softmax, log-softmax, cross-entropy, reductions over each axis, and the
/// gradients of a scalar loss with respect to all three variables.
fn outputs(dtype: DType, k: usize, n: usize) -> (Vec<Expr>, Vec<Expr>) {
    let g = Graph::new();
    let x = g.input("x", dtype, &[None, Some(k)]);
    let w = g.input("w", dtype, &[Some(k), Some(n)]);
    let b = g.input("b", dtype, &[Some(n)]);
    let labels = g.input("labels", DType::I64, &[None]);
    let h = &x.matmul(&w) + &b;
    let p = h.softmax(-1);
    let lp = h.log_softmax(0);
    let act = h.tanh() * h.sigmoid() + h.exp().log1p();
    let loss = h.softmax_cross_entropy(&labels).mean()
        + (&act * &p).sum_axes(&[0, 1], false) / 1000.0
        + lp.max_axes(&[1], false).mean()
        + h.logsumexp_axes(&[0], false).sum() / 100.0;
    let grads = grad(&loss, &[&x, &w, &b]).unwrap();
    let mut outs = vec![
        h.clone(),
        p,
        lp,
        act.clone(),
        act.sum_axes(&[0], false),
        act.mean_axes(&[1], true),
        h.max_axes(&[0], false),
        loss,
    ];
    outs.extend(grads);
    (vec![x, w, b, labels], outs)
}

fn compare(dtype: DType, tol: f64, relative: bool) {
    let (m, k, n) = (192, 96, 256);
    assert!(
        m * n >= PAR_MIN,
        "the test must take the parallel elementwise paths"
    );
    let (ins, outs) = outputs(dtype, k, n);
    let refs: Vec<&Expr> = ins.iter().collect();
    let out_refs: Vec<&Expr> = outs.iter().collect();
    let fast = function(&refs, &out_refs).compile().unwrap();
    let reference = function(&refs, &out_refs)
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let labels: Vec<i64> = (0..m as i64).map(|i| (i * 37) % n as i64).collect();
    let args = [
        uniform(&[m, k], -1.0, 1.0, 1).cast(dtype),
        uniform(&[k, n], -0.3, 0.3, 2).cast(dtype),
        uniform(&[n], -1.0, 1.0, 3).cast(dtype),
        Tensor::from(labels),
    ];
    let a = fast.call(&args).unwrap();
    let r = reference.call(&args).unwrap();
    for (i, (p, q)) in a.iter().zip(&r).enumerate() {
        assert_eq!(p.shape(), q.shape(), "output {i}");
        assert_eq!(p.dtype(), dtype, "output {i}");
        let (pv, qv) = (p.to_f64_vec(), q.to_f64_vec());
        let mut worst = 0.0f64;
        for (u, v) in pv.iter().zip(&qv) {
            let scale = if relative { v.abs().max(1.0) } else { 1.0 };
            worst = worst.max((u - v).abs() / scale);
        }
        assert!(
            worst <= tol,
            "{dtype}: output {i} ({}) differs between Fast and Reference by {worst:e} > {tol:e}",
            outs[i].name()
        );
    }
    // the comparison is not vacuous: the outputs vary
    assert!(a[0].to_f64_vec().iter().any(|v| v.abs() > 0.1));
}

#[test]
fn fast_matches_reference_f64() {
    compare(DType::F64, 1e-10, false);
}

#[test]
fn fast_matches_reference_f32() {
    compare(DType::F32, 1e-4, true);
}

/// Every kernel, and the gradient of a loss over all of them, on a `[200, 180]` input (past
/// `PAR_MIN`, with broadcasts of both a row and a column), compiled Fast and Reference, and
/// evaluated directly on the user's graph.
#[test]
fn fast_matches_reference_every_kernel() {
    let g = Graph::new();
    let (m, n) = (200, 180);
    assert!(m * n >= PAR_MIN);
    let a = g.input("a", DType::F64, &[Some(m), Some(n)]);
    let b = g.input("b", DType::F64, &[Some(n)]);
    let c = g.input("c", DType::F64, &[Some(m), Some(1)]);
    let rows: Vec<i64> = (0..300).map(|i| (i * 7) % m as i64).collect();
    let idx = g.constant(rows);
    let cols = g.constant((0..250).map(|i| (i * 11) % n as i64).collect::<Vec<_>>());
    let exprs: Vec<Expr> = vec![
        &a + &b,
        &a - &c,
        &a * &b,
        &a / &c.exp(),
        a.abs(),
        a.relu(),
        a.maximum(&b),
        a.minimum(&c),
        a.exp(),
        a.sin(),
        a.cos(),
        a.tanh(),
        a.sigmoid(),
        a.softplus(),
        a.log_sigmoid(),
        a.square(),
        a.abs().sqrt(),
        a.abs().log(),
        a.log1p(),
        a.expm1(),
        a.abs().pow(b.exp()),
        -&a,
        a.clip(-0.5, 0.5),
        a.gt(0.0).select(&a, &b),
        a.sign(),
        c.expand_dims(&[0])
            .broadcast_to(&[3, m, 1])
            .reshape(&[-1, 1])
            * 2.0,
        &b.expand_dims(&[0]) + &c,
        a.sum_axes(&[0], false),
        a.prod_axes(&[1], true),
        a.max_axes(&[0, 1], false),
        a.min_axes(&[1], false),
        a.t(),
        a.reshape(&[-1, 40]),
        a.slice_step(0, -150, Some(-3), 3),
        a.take(&idx),
        gradus::concat(&[&a, &a.exp()], 1),
        gradus::stack(&[&a, &b.broadcast_like(&a)], 0),
        a.softmax(0),
        a.log_softmax(1),
        a.t().matmul(&a),
        a.argmax(1).cast(DType::F64),
        a.reshape(&[4, 50, 180]).matmul(&a.reshape(&[4, 180, 50])),
        a.erf(),
        a.gelu(),
        a.elu(0.5),
        a.leaky_relu(0.2),
        (&a * 4.0).floor() + (&a * 4.0).round() + (&a * 4.0).ceil(),
        a.var_axes(&[0], true),
        a.std_ddof(&[1], false, 1),
        a.cumsum(0),
        a.cumsum(1),
        a.take_axis(&cols, 1),
        a.scatter_add(&idx.slice(0, 0, Some(100)), &b.broadcast_to(&[100, n])),
        a.max() + a.min() + a.logsumexp(),
    ];
    let zero = g.scalar_constant(0.0, DType::F64);
    let loss = exprs.iter().fold(zero, |acc, e| &acc + &e.sin().mean());
    let grads = grad(&loss, &[&a, &b, &c]).unwrap();
    let outs: Vec<&Expr> = exprs.iter().chain(&grads).collect();
    let fast = function(&[&a, &b, &c], &outs).compile().unwrap();
    let reference = function(&[&a, &b, &c], &outs)
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let args = [
        uniform(&[m, n], -1.0, 1.0, 1),
        uniform(&[n], -1.0, 1.0, 2),
        uniform(&[m, 1], -1.0, 1.0, 3),
    ];
    let p = fast.call(&args).unwrap();
    let q = reference.call(&args).unwrap();
    let feeds = [
        (&a, args[0].clone()),
        (&b, args[1].clone()),
        (&c, args[2].clone()),
    ];
    let r = gradus::eval(&outs, &feeds).unwrap();
    for (i, ((fast, reference), eval)) in p.iter().zip(&q).zip(&r).enumerate() {
        let what = format!("output {i} ({})", outs[i].name());
        assert!(
            reference.to_f64_vec().iter().all(|v| v.is_finite()),
            "{what} is not finite: the comparison would be vacuous"
        );
        assert_close(
            &format!("Fast vs Reference, {what}"),
            fast,
            reference,
            1e-10,
        );
        assert_close(&format!("eval vs Reference, {what}"), eval, reference, 0.0);
    }
}
