//! A thousand random graphs, compiled with every rewrite and run on the fast executor, against
//! the reference interpreter running them as written: the same values and gradients, or the
//! same error.
//!
//! The inputs have dims known only at run time (`x [?, 4]`, `z [?, 1]`, `m [?, 4]`) and dims
//! declared 1 that broadcast (`z`'s columns, `s [1, 4]`); the graphs mix the stabilized forms,
//! erf and the activations built on it or beside it, the roundings,
//! products with a bias, reductions and broadcasting. One case in five is fed rows that disagree
//! (or a single row where the type says `?`), which both must refuse with the same error.

#![allow(clippy::eq_op)] // x - x is a pattern the rewrites look for

use gradus::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The inputs of a random graph and its scalar cost.
struct Case {
    inputs: Vec<Expr>,
    cost: Expr,
}

fn random_case(rng: &mut StdRng, dtype: DType) -> Case {
    let g = Graph::new();
    let x = g.input("x", dtype, &[None, Some(4)]);
    let y = g.input("y", dtype, &[Some(4)]);
    let z = g.input("z", dtype, &[None, Some(1)]);
    let m = g.input("m", dtype, &[None, Some(4)]);
    let s = g.input("s", dtype, &[Some(1), Some(4)]);
    let w = g.constant(
        Tensor::from_f64(
            &[4, 4],
            (0..16)
                .map(|i| ((i * 7 % 11) as f64 - 5.0) / 10.0)
                .collect(),
            dtype,
        )
        .unwrap(),
    );
    let mut pool = vec![x.clone(), &x + &y, &x * &z, &x - &s];
    for _ in 0..rng.random_range(3..10) {
        let a = pool[rng.random_range(0..pool.len())].clone();
        let b = pool[rng.random_range(0..pool.len())].clone();
        let e = match rng.random_range(0..28) {
            0 => a.tanh(),
            1 => a.sigmoid().log(),
            2 => (1.0 - &a.sigmoid()).log(),
            3 => a.log_sigmoid(),
            4 => (1.0 + &a.square()).log(),
            5 => a.tanh().exp() - 1.0,
            6 => &a * &b,
            7 => &a - &(&b / &(b.square() + 1.0)),
            8 => a.matmul(&w).tanh(),
            // A product with a bias of run-time rows: the fast path checks it as the add would.
            9 => a.matmul(&w).sigmoid().matmul(&w) + &m,
            10 => a.softmax(1).log(),
            11 => a.exp().sum_axes(&[1], true).log() + &a,
            12 => a.logsumexp_axes(&[0], true) * &b,
            13 => (&a - &a) + &b.sin(),
            14 => a.max_axes(&[0], true) * &b,
            15 => a.mean_axes(&[1], true) - &b,
            16 => (-(-&a)).softplus() * &z,
            17 => a.t().t().cos() + &s,
            18 | 19 => a.scalar_like(0.0).broadcast_like(&(&b + &m)) + &a,
            20 => a.matmul(&w) + &m,
            21 => a.erf() * &b,
            22 => a.gelu() + &b,
            23 => a.elu(0.5) * &z,
            24 => a.leaky_relu(0.1) - &b.exp(),
            // steps: a gradient of zero through them, fused or not
            25 => (&a * 3.0).floor() + &b,
            26 => (&a * 3.0).round() * &b + (&a * 2.0).ceil(),
            _ => &a + &y,
        };
        pool.push(e);
    }
    let cost = pool
        .iter()
        .skip(1)
        .fold(pool[0].sum(), |acc, e| acc + e.sum());
    Case {
        inputs: vec![x, y, z, m, s],
        cost,
    }
}

fn uniform(rng: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let values = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_f64(shape, values, dtype).unwrap()
}

#[test]
fn a_thousand_random_graphs_agree_with_the_reference_or_fail_alike() {
    let mut rng = StdRng::seed_from_u64(10);
    let (mut agreed, mut refused) = (0, 0);
    for case in 0..1000 {
        let dtype = if case % 2 == 0 {
            DType::F64
        } else {
            DType::F32
        };
        let Case { inputs, cost } = random_case(&mut rng, dtype);
        let refs: Vec<&Expr> = inputs.iter().collect();
        let grads = grad_with(&cost, &refs, GradOptions::default().allow_disconnected()).unwrap();
        let mut outs = vec![&cost];
        outs.extend(grads.iter());
        let fast = function(&refs, &outs).compile().unwrap();
        let reference = function(&refs, &outs)
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        // Rows of x, z and m: equal; or (one case in five) those of z or of m differ from x's,
        // half of the time by being 1 where the type says `?`.
        let rows = rng.random_range(2..5);
        let (mut z_rows, mut m_rows) = (rows, rows);
        if case % 5 == 4 {
            let wrong = if rng.random() { 1 } else { rows + 1 };
            if rng.random() {
                z_rows = wrong;
            } else {
                m_rows = wrong;
            }
        }
        let feed = [
            uniform(&mut rng, &[rows, 4], dtype),
            uniform(&mut rng, &[4], dtype),
            uniform(&mut rng, &[z_rows, 1], dtype),
            uniform(&mut rng, &[m_rows, 4], dtype),
            uniform(&mut rng, &[1, 4], dtype),
        ];
        match (fast.call(&feed), reference.call(&feed)) {
            (Ok(a), Ok(b)) => {
                agreed += 1;
                // The stabilized forms are more accurate than the graph as written.
                let tol = if dtype == DType::F64 { 1e-7 } else { 2e-3 };
                for (k, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(p.shape(), q.shape(), "case {case} output {k}");
                    for (u, v) in p.to_f64_vec().iter().zip(q.to_f64_vec()) {
                        assert!(
                            (u - v).abs() <= tol * (1.0 + v.abs())
                                || !v.is_finite() && u.is_finite(),
                            "case {case} output {k}: {u} vs {v}\n{}",
                            fast.debugprint()
                        );
                    }
                }
            }
            (Err(a), Err(b)) => {
                refused += 1;
                // The same error: the op, the shapes, the line. (Which inputs the operands
                // come from may differ: a rewrite can drop a read, as `s - s` drops `s`.)
                assert!(
                    matches!(a, gradus::Error::Runtime { .. }),
                    "case {case}: {a}"
                );
                let what = |e: &gradus::Error| {
                    let s = e.to_string();
                    match (s.find("; the operand"), s.rfind(" (built at ")) {
                        (Some(from), Some(at)) if from < at => {
                            format!("{}{}", &s[..from], &s[at..])
                        }
                        _ => s,
                    }
                };
                assert_eq!(what(&a), what(&b), "case {case}");
            }
            (a, b) => panic!(
                "case {case}: the modes disagree: fast {:?}, reference {:?}\n{}",
                a.map(|_| "values"),
                b.map(|_| "values"),
                fast.debugprint()
            ),
        }
    }
    // Both kinds of case occur often enough to mean something.
    assert!(
        agreed >= 700 && refused >= 50,
        "{agreed} agreed, {refused} refused"
    );
}
