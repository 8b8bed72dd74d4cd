//! Compiled functions: updates, givens, feeds, thread safety, buffer freeing, and printing.

use gradus::prelude::*;
use gradus::{debugprint, eval, to_dot};

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec()
}

#[test]
fn updates_are_computed_from_old_values_then_assigned_together() {
    let g = Graph::new();
    let a = g.shared("a", vec![1.0f64]);
    let b = g.shared("b", vec![2.0f64]);
    // A swap only works if both new values are computed before either is assigned.
    let f = function(&[], &[&(&a + &b)])
        .updates(&[(&a, &b), (&b, &a)])
        .compile()
        .unwrap();
    let out = f.call(&[]).unwrap();
    assert_eq!(f64s(&out[0]), vec![3.0]);
    assert_eq!(f64s(&a.get_value().unwrap()), vec![2.0]);
    assert_eq!(f64s(&b.get_value().unwrap()), vec![1.0]);
    f.call(&[]).unwrap();
    assert_eq!(f64s(&a.get_value().unwrap()), vec![1.0]);
}

#[test]
fn sgd_updates_descend_and_set_value_is_seen_by_compiled_functions() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let w = g.shared("w", vec![0.0f64, 0.0]);
    let cost = (&x - &w).square().sum();
    let gw = grad(&cost, &[&w]).unwrap().remove(0);
    let step = function(&[&x], &[&cost])
        .updates(&[(&w, &(&w - &(&gw * 0.25)))])
        .compile()
        .unwrap();
    let target: Tensor = vec![1.0, -2.0].into();
    let first = step.call(std::slice::from_ref(&target)).unwrap()[0]
        .item()
        .unwrap();
    for _ in 0..50 {
        step.call(std::slice::from_ref(&target)).unwrap();
    }
    let last = step.call(std::slice::from_ref(&target)).unwrap()[0]
        .item()
        .unwrap();
    assert_eq!(first, 5.0);
    assert!(last < 1e-12, "{last}");
    w.set_value(vec![10.0f64, 10.0]).unwrap();
    assert_eq!(
        step.call(&[target]).unwrap()[0].item().unwrap(),
        81.0 + 144.0
    );
}

#[test]
fn givens_substitute_a_subgraph() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let h = x.exp();
    let y = (&h * 2.0).sum();
    let z = g.vector("z", DType::F64);
    // Replace exp(x) by z: y becomes sum(2 z).
    let f = function(&[&z], &[&y])
        .givens(&[(&h, &z)])
        .compile()
        .unwrap();
    assert_eq!(
        f.call(&[vec![1.0, 2.0].into()]).unwrap()[0].item().unwrap(),
        6.0
    );
    // The user's graph is untouched.
    let v = eval(&[&y], &[(&x, vec![0.0, 0.0].into())]).unwrap();
    assert_eq!(v[0].item().unwrap(), 4.0);
}

#[test]
fn givens_that_create_a_cycle_are_an_error() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let y = x.exp();
    let err = function(&[&x], &[&y])
        .givens(&[(&x, &y)])
        .compile()
        .err()
        .expect("cycle must be rejected");
    assert!(err.to_string().contains("cycle"), "{err}");
}

#[test]
fn compiled_functions_are_send_and_sync_and_callable_from_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Function>();
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let f = function(&[&x], &[&(&x * 3.0).sum()]).compile().unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let f = &f;
                s.spawn(move || {
                    f.call(&[vec![i as f64; 3].into()]).unwrap()[0]
                        .item()
                        .unwrap()
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), 9.0 * i as f64);
        }
    });
}

#[test]
fn identical_subexpressions_are_interned() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let a = (&x * 2.0).exp();
    let n = g.len();
    let b = (&x * 2.0).exp();
    assert!(a.same(&b));
    assert_eq!(g.len(), n, "rebuilding the same expression adds no node");
    // Inputs with the same name are still distinct.
    let y = g.vector("x", DType::F64);
    assert!(!x.same(&y));
}

#[test]
fn the_plan_frees_buffers_after_their_last_use() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(10_000)]);
    let mut y = x.clone();
    for _ in 0..50 {
        y = (&y * 0.5).tanh();
    }
    let fast = function(&[&x], &[&y.sum()]).compile().unwrap();
    let reference = function(&[&x], &[&y.sum()])
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let input: Tensor = vec![0.3f64; 10_000].into();
    let a = fast.call(std::slice::from_ref(&input)).unwrap();
    let b = reference.call(&[input]).unwrap();
    // The fast sum adds in another order than the reference.
    let (a, b) = (a[0].item().unwrap(), b[0].item().unwrap());
    assert!((a - b).abs() <= 1e-12 * b.abs(), "{a} vs {b}");
    // 100 intermediate vectors of 80 kB: the plan holds about two at a time (fused, fewer), the
    // reference all.
    assert!(fast.peak_bytes() <= 3 * 80_000, "{}", fast.peak_bytes());
    assert!(
        reference.peak_bytes() >= 100 * 80_000,
        "{}",
        reference.peak_bytes()
    );
}

#[test]
fn compile_once_call_many_with_run_time_batch_sizes() {
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(3)]);
    let w = g.shared("w", ndarray::Array2::<f32>::eye(3));
    let y = x.matmul(&w).sum_axes(&[1], false);
    let f = function(&[&x], &[&y]).compile().unwrap();
    for n in [1, 5, 64] {
        let out = f
            .call(&[ndarray::Array2::<f32>::ones((n, 3)).into()])
            .unwrap();
        assert_eq!(out[0].shape(), &[n]);
        assert!(out[0].to_f64_vec().iter().all(|v| *v == 3.0));
    }
}

#[test]
fn pp_prints_the_gradient_of_x_squared_like_theano() {
    let g = Graph::new();
    let x = g.scalar("x", DType::F64);
    let gx = grad(&x.pow(2.0), &[&x]).unwrap().remove(0);
    assert_eq!(pp(&gx), "(1 * (2 * (x ** (2 - 1))))");
    let w = g.matrix("w", DType::F32);
    let v = g.vector("v", DType::F32);
    assert_eq!(
        pp(&(w.matmul(&v.expand_dims(&[1])).sigmoid() - 1.0).sum()),
        "sum((sigmoid((w @ expand_dims[1](v))) - 1))"
    );
}

#[test]
fn debugprint_shows_types_and_the_lines_that_built_each_node() {
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(4)]);
    let (y, line) = ((&x * 2.0).sum_axes(&[1], false), line!());
    let text = debugprint(&[&y]);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("sum{axes=[1]} [id"), "{text}");
    assert!(first.contains("f32[?]"), "{text}");
    assert!(
        first.contains(&format!("tests/function.rs:{line}")),
        "{text}"
    );
    assert!(text.contains("input x"), "{text}");
    assert!(text.contains("f32[?, 4]"), "{text}");
    let dot = to_dot(&[&y]);
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("->"), "{dot}");
}

#[test]
fn logsumexp_is_stable_for_huge_and_empty_lanes() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(3)]);
    let y = x.logsumexp_axes(&[1], false);
    let v = eval(
        &[&y],
        &[(
            &x,
            ndarray::arr2(&[[1e4, 1e4, 0.0], [f64::NEG_INFINITY; 3]]).into(),
        )],
    )
    .unwrap();
    let v = v[0].to_f64_vec();
    assert!((v[0] - (1e4 + 2f64.ln())).abs() < 1e-9, "{v:?}");
    assert_eq!(v[1], f64::NEG_INFINITY);
}

#[test]
fn the_gradient_seed_is_located_at_the_grad_call() {
    let g = Graph::new();
    let x = g.scalar("x", DType::F32);
    let (gx, line) = (grad(&x.exp(), &[&x]).unwrap().remove(0), line!());
    let text = debugprint(&[&gx]);
    assert!(
        text.contains(&format!("tests/function.rs:{line}")),
        "{text}"
    );
    assert!(!text.contains("src/grad"), "{text}");
}
