//! Loops in the graph: `Scan` over sequences with states, with a number of steps known only at
//! run time, a while form, random draws per step, in every mode; their gradients (by finite
//! differences, through sequences, states, captured parameters and shared variables).

mod common;

use common::close;
use gradus::gradcheck::GradCheck;
use gradus::models::unroll;
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::{Scan, StepResult};
use ndarray::{Array1, Array2, Array3, arr2};

/// `h_t = tanh(x_t W + h_{t-1} U)`, over `xs [T, n, 3]` with `h0 [n, 2]`.
fn rnn(g: &Graph) -> (Expr, Expr, Expr, Expr, gradus::Looped) {
    let xs = g.input("xs", DType::F64, &[None, None, Some(3)]);
    let h0 = g.input("h0", DType::F64, &[None, Some(2)]);
    let w = g.shared("W", arr2(&[[0.5, -0.3], [0.1, 0.8], [-0.4, 0.2]]));
    let u = g.shared("U", arr2(&[[0.9, -0.2], [0.3, 0.4]]));
    let looped = Scan::over(&[&xs])
        .states(&[&h0])
        .run(|s| {
            let h = (s.seq(0).matmul(&w) + s.state(0).matmul(&u)).tanh();
            Ok(StepResult::new().state(&h).output(&(&h * 2.0)))
        })
        .unwrap();
    (xs, h0, w, u, looped)
}

fn sequence(t: usize, n: usize) -> Tensor {
    Array3::from_shape_fn((t, n, 3), |(a, b, c)| {
        ((a * 7 + b * 3 + c) % 5) as f64 / 5.0 - 0.4
    })
    .into()
}

#[test]
fn a_scan_computes_what_its_unrolled_steps_compute_in_every_mode() {
    let g = Graph::new();
    let (xs, h0, w, u, looped) = rnn(&g);
    // The same recurrence unrolled over 4 known steps.
    let x4 = g.input("x4", DType::F64, &[Some(4), None, Some(3)]);
    let mut h = h0.clone();
    let mut outs = Vec::new();
    for t in 0..4 {
        let x = x4.slice(0, t, Some(t + 1)).squeeze(&[0]);
        h = (x.matmul(&w) + h.matmul(&u)).tanh();
        outs.push(&h * 2.0);
    }
    let stacked = gradus::stack(&outs.iter().collect::<Vec<_>>(), 0);
    let unrolled = function(&[&x4, &h0], &[&h, &stacked]).compile().unwrap();
    let feed = [sequence(4, 2), Tensor::from(Array2::<f64>::zeros((2, 2)))];
    let want = unrolled.call(&feed).unwrap();
    for mode in [Mode::Fast, Mode::Reference, Mode::Debug] {
        let f = function(&[&xs, &h0], &[&looped.states[0], &looped.outputs[0]])
            .mode(mode)
            .compile()
            .unwrap();
        let got = f.call(&feed).unwrap();
        close(&got[0], &want[0], 1e-12);
        close(&got[1], &want[1], 1e-12);
        assert_eq!(got[1].shape(), &[4, 2, 2]);
    }
}

#[test]
fn the_number_of_steps_can_be_known_only_at_run_time() {
    let g = Graph::new();
    let (xs, h0, _, _, looped) = rnn(&g);
    let f = function(&[&xs, &h0], &[&looped.states[0], &looped.outputs[0]])
        .compile()
        .unwrap();
    let h_init = Tensor::from(arr2(&[[0.1, -0.2]]));
    for t in [1, 2, 7] {
        let out = f.call(&[sequence(t, 1), h_init.clone()]).unwrap();
        assert_eq!(out[1].shape(), &[t, 1, 2]);
        // The last stacked output is twice the final state.
        let last = out[1].to_f64_vec()[(t - 1) * 2..].to_vec();
        let fin: Vec<f64> = out[0].to_f64_vec().iter().map(|v| v * 2.0).collect();
        assert_eq!(last, fin);
    }
    // No steps: the initial state, and nothing stacked.
    let out = f.call(&[sequence(0, 1), h_init.clone()]).unwrap();
    assert_eq!(out[0], h_init);
    assert_eq!(out[1].shape(), &[0, 1, 2]);
}

#[test]
fn a_counted_loop_takes_its_number_of_steps_per_call() {
    let g = Graph::new();
    let k = g.scalar("k", DType::I64);
    let x0 = g.scalar("x0", DType::F64);
    let looped = Scan::counted(&k)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) * 2.0 + 1.0))))
        .unwrap();
    let f = function(&[&k, &x0], &[&looped.states[0]])
        .compile()
        .unwrap();
    for (steps, want) in [(0i64, 1.0), (1, 3.0), (3, 15.0), (10, 2047.0)] {
        let out = f.call(&[steps.into(), 1.0.into()]).unwrap();
        assert_eq!(out[0].item().unwrap(), want, "{steps} steps");
    }
    let err = f
        .call(&[(-1i64).into(), 1.0.into()])
        .expect_err("negative count");
    assert!(err.to_string().contains("-1 steps"), "{err}");
    // A fixed number of steps gives the stacked outputs a known length.
    let fixed = Scan::times(5)
        .states(&[&x0])
        .run(|s| {
            let y = s.state(0) + 1.0;
            Ok(StepResult::new().state(&y).output(&y))
        })
        .unwrap();
    assert_eq!(fixed.outputs[0].shape().dims(), &[Some(5)]);
}

#[test]
fn a_while_loop_stops_when_its_condition_holds() {
    let g = Graph::new();
    let x0 = g.scalar("x0", DType::F64);
    let looped = Scan::until(100)
        .states(&[&x0])
        .run(|s| {
            let half = s.state(0) * 0.5;
            Ok(StepResult::new()
                .state(&half)
                .output(&half)
                .until(&half.lt(1.0)))
        })
        .unwrap();
    let f = function(&[&x0], &[&looped.states[0], &looped.outputs[0]])
        .compile()
        .unwrap();
    let out = f.call(&[40.0.into()]).unwrap();
    // 20, 10, 5, 2.5, 1.25, 0.625: stops after the first below 1.
    assert_eq!(out[0].item().unwrap(), 0.625);
    assert_eq!(out[1].to_f64_vec(), vec![20.0, 10.0, 5.0, 2.5, 1.25, 0.625]);
}

#[test]
fn draws_in_a_loop_differ_per_step_and_call_and_repeat_for_a_seed() {
    let run = |seed: u64| {
        let g = Graph::new();
        let stream = RandomStream::new(&g, seed);
        let x0 = g.input("x0", DType::F64, &[Some(3)]);
        let looped = Scan::times(4)
            .states(&[&x0])
            .run(|s| {
                let u = stream.uniform(s.state(0));
                Ok(StepResult::new().state(s.state(0)).output(&u))
            })
            .unwrap();
        let f = function(&[&x0], &[&looped.outputs[0]]).compile().unwrap();
        let a = f.call(&[vec![0.0; 3].into()]).unwrap().remove(0);
        let b = f.call(&[vec![0.0; 3].into()]).unwrap().remove(0);
        (a, b)
    };
    let (a, b) = run(7);
    let rows: Vec<Vec<f64>> = a.to_f64_vec().chunks(3).map(|c| c.to_vec()).collect();
    for i in 0..4 {
        for j in 0..i {
            assert_ne!(rows[i], rows[j], "steps {i} and {j} drew alike");
        }
    }
    assert_ne!(a, b, "two calls drew alike");
    assert_eq!(run(7), (a, b), "the same seed draws the same");
}

#[test]
fn a_loop_captures_what_it_reads_and_keeps_its_constants() {
    // An unrolled loop of 25 steps against a scan of 25 steps: the same values, and the scan's
    // program does not grow with the steps.
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[Some(4)]);
    let c = g.shared("c", Array1::from(vec![0.5, -0.5, 0.25, 1.0]));
    let step = |x: &Expr| (x * &c + 0.1).tanh();
    let unrolled = unroll(25, x0.clone(), |x| step(&x));
    let looped = Scan::times(25)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&step(s.state(0)))))
        .unwrap();
    let f = function(&[&x0], &[&looped.states[0], &unrolled])
        .compile()
        .unwrap();
    let out = f.call(&[vec![0.3, -0.1, 2.0, 0.0].into()]).unwrap();
    close(&out[0], &out[1], 1e-12);
    let small = function(&[&x0], &[&looped.states[0]]).compile().unwrap();
    assert!(small.len() < 10, "{}", small.debugprint());
}

/// An RNN over `xs` declared `[len, 2, 3]`, with a non-sequence input bias `b` and shared `W`,
/// `U`; the cost reads the stacked outputs and the final state.
struct Rnn {
    xs: Expr,
    h0: Expr,
    b: Expr,
    w: Expr,
    u: Expr,
    cost: Expr,
}

fn rnn_cost(len: Option<usize>) -> Rnn {
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[len, Some(2), Some(3)]);
    let h0 = g.input("h0", DType::F64, &[Some(2), Some(2)]);
    let b = g.input("b", DType::F64, &[Some(2)]);
    let w = g.shared("W", arr2(&[[0.5, -0.3], [0.1, 0.8], [-0.4, 0.2]]));
    let u = g.shared("U", arr2(&[[0.9, -0.2], [0.3, 0.4]]));
    let looped = Scan::over(&[&xs])
        .states(&[&h0])
        .run(|s| {
            let h = (s.seq(0).matmul(&w) + s.state(0).matmul(&u) + &b).tanh();
            Ok(StepResult::new().state(&h).output(&(&h * &h)))
        })
        .unwrap();
    let cost = looped.outputs[0].sum() * 0.5 + (&looped.states[0] * 3.0).sin().sum();
    Rnn {
        xs,
        h0,
        b,
        w,
        u,
        cost,
    }
}

fn h0_value() -> Tensor {
    arr2(&[[0.1, -0.2], [0.3, 0.05]]).into()
}

#[test]
fn the_gradient_of_a_loop_checks_by_finite_differences_at_every_length() {
    // Lengths known when the loop is built, and a length known only when it runs.
    for (declared, t) in [(Some(1), 1), (Some(2), 2), (Some(7), 7), (None, 5)] {
        let r = rnn_cost(declared);
        let report = GradCheck::new(&r.cost, &[&r.xs, &r.h0, &r.b, &r.w, &r.u])
            .at(&[sequence(t, 2), h0_value(), vec![0.1, -0.3].into()])
            .elementwise()
            .run()
            .unwrap_or_else(|e| panic!("length {t}: {e}"));
        assert_eq!(report.comparisons, t * 6 + 4 + 2 + 6 + 4, "length {t}");
    }
}

#[test]
fn the_gradient_of_an_empty_loop_is_that_of_its_initial_state() {
    let r = rnn_cost(None);
    let gradients = grad(&r.cost, &[&r.h0, &r.w]).unwrap();
    let f = function(&[&r.xs, &r.h0, &r.b], &[&gradients[0], &gradients[1]])
        .compile()
        .unwrap();
    let out = f
        .call(&[sequence(0, 2), h0_value(), vec![0.1, -0.3].into()])
        .unwrap();
    // cost = sum(sin(3 h0)): d/dh0 = 3 cos(3 h0); nothing reaches W.
    let want: Vec<f64> = h0_value()
        .to_f64_vec()
        .iter()
        .map(|h| 3.0 * (3.0 * h).cos())
        .collect();
    close(
        &out[0],
        &Tensor::from(Array1::from(want).into_shape_with_order((2, 2)).unwrap()),
        1e-12,
    );
    assert!(out[1].to_f64_vec().iter().all(|&v| v == 0.0));
    GradCheck::new(&r.cost, &[&r.h0, &r.w])
        .at(&[h0_value()])
        .feed(&[(&r.xs, sequence(0, 2)), (&r.b, vec![0.1, -0.3].into())])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn counted_while_and_reversed_loops_have_checked_gradients() {
    let g = Graph::new();
    let k = g.scalar("k", DType::I64);
    let x0 = g.input("x0", DType::F64, &[Some(3)]);
    let a = g.shared("a", Array1::from(vec![0.7, -0.4, 1.1]));
    let counted = Scan::counted(&k)
        .states(&[&x0])
        .run(|s| {
            let x = (s.state(0) * &a).sin() + s.state(0) * 0.5;
            Ok(StepResult::new().state(&x).output(&x.sum()))
        })
        .unwrap();
    let cost = counted.states[0].sum() + counted.outputs[0].sum();
    for steps in [0i64, 1, 4] {
        GradCheck::new(&cost, &[&x0, &a])
            .at(&[vec![0.3, -0.2, 0.8].into()])
            .feed(&[(&k, steps.into())])
            .elementwise()
            .run()
            .unwrap_or_else(|e| panic!("{steps} steps: {e}"));
    }
    // A while loop: the number of steps is what the forward run made.
    let y0 = g.scalar("y0", DType::F64);
    let c = g.shared("c", 0.6);
    let whiled = Scan::until(50)
        .states(&[&y0])
        .run(|s| {
            let y = s.state(0) * &c + 0.01;
            Ok(StepResult::new().state(&y).output(&y).until(&y.lt(0.1)))
        })
        .unwrap();
    let cost = &whiled.states[0] * 2.0 + whiled.outputs[0].sum();
    GradCheck::new(&cost, &[&y0, &c])
        .at(&[3.0.into()])
        .elementwise()
        .run()
        .unwrap();
    // A reversed loop over a sequence.
    let xs = g.input("xs", DType::F64, &[None, Some(3)]);
    let reversed = Scan::over(&[&xs])
        .states(&[&x0])
        .reverse()
        .run(|s| {
            let x = (s.state(0) * &a + s.seq(0)).tanh();
            Ok(StepResult::new().state(&x).output(&(&x * s.seq(0))))
        })
        .unwrap();
    let weights = g.constant(Array2::from_shape_fn((4, 3), |(i, j)| {
        (i * 3 + j) as f64 * 0.1
    }));
    let cost = (&reversed.outputs[0] * &weights).sum() + reversed.states[0].sum();
    let xs_value: Tensor =
        Array2::from_shape_fn((4, 3), |(i, j)| ((i + 2 * j) % 3) as f64 * 0.3 - 0.2).into();
    GradCheck::new(&cost, &[&xs, &x0, &a])
        .at(&[xs_value, vec![0.3, -0.2, 0.8].into()])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn a_loop_that_draws_checks_with_its_draws_frozen() {
    // Dropout on the state at every step: the backward loop must recompute each step with
    // the draws the forward step made.
    let g = Graph::new();
    let stream = RandomStream::new(&g, 11);
    let x0 = g.input("x0", DType::F64, &[Some(6)]);
    let w = g.shared("w", Array1::from(vec![0.9, -0.5, 0.3, 1.2, -0.8, 0.4]));
    let looped = Scan::times(5)
        .states(&[&x0])
        .run(|s| {
            let keep = stream.bernoulli(&s.state(0).scalar_like(0.5).broadcast_like(s.state(0)));
            let x = (s.state(0) * &w * &keep * 2.0 + 0.1).tanh();
            Ok(StepResult::new().state(&x))
        })
        .unwrap();
    let cost = looped.states[0].pow(2.0).sum();
    GradCheck::new(&cost, &[&x0, &w])
        .at(&[vec![0.5, -0.4, 0.3, 0.2, -0.1, 0.6].into()])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn the_gradient_of_the_gradient_goes_through_a_scalar_loop() {
    let g = Graph::new();
    let x0 = g.scalar("x0", DType::F64);
    let w = g.scalar("w", DType::F64);
    let looped = Scan::times(6)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&((s.state(0) * &w).sin() + s.state(0) * 0.3))))
        .unwrap();
    let cost = looped.states[0].pow(2.0);
    GradCheck::new(&cost, &[&x0, &w])
        .at(&[0.4.into(), 1.3.into()])
        .elementwise()
        .second_order()
        .run()
        .unwrap();
    // The Hessian-vector product through the loop against finite differences of the gradient.
    let v = g.scalar("v", DType::F64);
    let hv = gradus::hessian_vector_product(&cost, &[&w], &[&v])
        .unwrap()
        .remove(0);
    let dw = grad(&cost, &[&w]).unwrap().remove(0);
    let f = function(&[&x0, &w, &v], &[&hv, &dw]).compile().unwrap();
    let at = |wv: f64| f.call(&[0.4.into(), wv.into(), 1.0.into()]).unwrap();
    let eps = 1e-5;
    let numeric =
        (at(1.3 + eps)[1].item().unwrap() - at(1.3 - eps)[1].item().unwrap()) / (2.0 * eps);
    let analytic = at(1.3)[0].item().unwrap();
    assert!(
        (numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()),
        "{numeric} vs {analytic}"
    );
}

#[test]
fn a_loop_reading_a_parameter_and_a_node_made_from_it_counts_each_path_once() {
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[Some(3)]);
    let w = g.shared("w", Array1::from(vec![0.4, -0.7, 0.2]));
    let w2 = (&w * 2.0).exp();
    let looped = Scan::times(3)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&((s.state(0) * &w).tanh() + s.state(0) * &w2 * 0.1))))
        .unwrap();
    GradCheck::new(&looped.states[0].sum(), &[&x0, &w])
        .at(&[vec![0.3, 0.1, -0.5].into()])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn a_gradient_check_refuses_a_stop_gradient_inside_a_loop() {
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[Some(2)]);
    let looped = Scan::times(2)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0).stop_gradient() + s.state(0).sin()))))
        .unwrap();
    let err = GradCheck::new(&looped.states[0].sum(), &[&x0])
        .at(&[vec![0.3, 0.1].into()])
        .run()
        .expect_err("a stop_gradient per step cannot be held");
    assert!(
        err.to_string().contains("loop's body holds stop_gradient"),
        "{err}"
    );
}

#[test]
fn pp_debugprint_and_the_listing_show_the_loop_and_its_body() {
    let g = Graph::new();
    let (xs, h0, _, _, looped) = rnn(&g);
    let text = gradus::pp(&looped.states[0]);
    assert!(
        text.contains("loop{final state 0}(xs, h0, W, U) where each step:"),
        "{text}"
    );
    assert!(
        text.contains("state0 <- tanh(((xs[t] @ W) + (state0 @ U)))"),
        "{text}"
    );
    assert!(text.contains("output0 <- (tanh("), "{text}");
    let tree = gradus::debugprint(&[&looped.outputs[0]]);
    assert!(
        tree.contains("each step of the loop built at tests/loops.rs"),
        "{tree}"
    );
    assert!(tree.contains("state0 <- tanh"), "{tree}");
    let f = function(&[&xs, &h0], &[&looped.outputs[0]])
        .compile()
        .unwrap();
    let listing = f.debugprint();
    assert!(listing.contains("loop of %"), "{listing}");
    assert!(
        listing.contains("    %") && listing.contains("gemm"),
        "{listing}"
    );
}

#[test]
fn an_error_inside_a_body_names_the_line_in_the_body_and_the_step() {
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None]);
    let x0 = g.scalar("x0", DType::F64);
    let log_line = line!() + 4;
    let looped = Scan::over(&[&xs])
        .states(&[&x0])
        .run(|s| {
            let y = s.seq(0).log();
            Ok(StepResult::new().state(&(s.state(0) + &y)))
        })
        .unwrap();
    let f = function(&[&xs, &x0], &[&looped.states[0]])
        .nan_guard(true)
        .compile()
        .unwrap();
    let err = f
        .call(&[vec![1.0, 2.0, -1.0, 3.0].into(), 0.0.into()])
        .expect_err("log(-1) at step 2");
    let text = err.to_string();
    assert!(
        text.contains("at step 2 of the loop built at tests/loops.rs"),
        "{text}"
    );
    assert!(
        text.contains(&format!("tests/loops.rs:{log_line}")),
        "{text}"
    );
    // Indices out of range at one step only.
    let ids = g.input("ids", DType::I64, &[None]);
    let table = g.shared("table", Array1::from(vec![0.5, 1.5, 2.5]));
    let take_line = line!() + 4;
    let gathered = Scan::over(&[&ids])
        .states(&[&x0])
        .run(|s| {
            let v = table.take(s.seq(0));
            Ok(StepResult::new().state(&(s.state(0) + &v)))
        })
        .unwrap();
    let f = function(&[&ids, &x0], &[&gathered.states[0]])
        .compile()
        .unwrap();
    assert_eq!(
        f.call(&[vec![0i64, 2].into(), 0.0.into()]).unwrap()[0]
            .item()
            .unwrap(),
        3.0
    );
    let err = f
        .call(&[vec![0i64, 1, 7].into(), 0.0.into()])
        .expect_err("index 7");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::Index {
                index: 7,
                len: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        text.contains("index 7 is out of range 0..3, at step 2 of the loop"),
        "{text}"
    );
    assert!(
        text.contains(&format!("tests/loops.rs:{take_line}")),
        "{text}"
    );
    // Sequences of different lengths.
    let ys = g.input("ys", DType::F64, &[None]);
    let two = Scan::over(&[&xs, &ys])
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) + s.seq(0) * s.seq(1)))))
        .unwrap();
    let f = function(&[&xs, &ys, &x0], &[&two.states[0]])
        .compile()
        .unwrap();
    let err = f
        .call(&[vec![1.0, 2.0].into(), vec![1.0].into(), 0.0.into()])
        .expect_err("lengths 2 and 1");
    assert!(err.to_string().contains("lengths 2 and 1"), "{err}");
}

/// An LSTM-like step over `xs [T, 2, 3]` whose gradient reads gates of each step.
fn gated(recompute: bool) -> (Expr, Expr, Expr, Expr) {
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None, Some(2), Some(3)]);
    let h0 = g.input("h0", DType::F64, &[Some(2), Some(2)]);
    let w = g.shared(
        "W",
        Array2::from_shape_fn((3, 2), |(i, j)| (i as f64 - j as f64) * 0.3),
    );
    let u = g.shared(
        "U",
        Array2::from_shape_fn((2, 2), |(i, j)| 0.2 + (i * j) as f64 * 0.1),
    );
    let mut scan = Scan::over(&[&xs]).states(&[&h0]);
    if recompute {
        scan = scan.recompute();
    }
    let looped = scan
        .run(|s| {
            let a = s.seq(0).matmul(&w) + s.state(0).matmul(&u);
            let gate = a.sigmoid();
            Ok(StepResult::new().state(&(&gate * &a.tanh() + s.state(0) * 0.5)))
        })
        .unwrap();
    let cost = looped.states[0].square().sum();
    (xs, h0, w, cost)
}

#[test]
fn the_gradient_keeps_the_values_of_each_step_or_recomputes_them_and_both_check() {
    let (xs_v, h0_v) = (sequence(4, 2), h0_value());
    let mut values = Vec::new();
    let mut products = Vec::new();
    for recompute in [false, true] {
        let (xs, h0, w, cost) = gated(recompute);
        GradCheck::new(&cost, &[&xs, &h0, &w])
            .at(&[xs_v.clone(), h0_v.clone()])
            .elementwise()
            .run()
            .unwrap_or_else(|e| panic!("recompute {recompute}: {e}"));
        let gw = grad(&cost, &[&w]).unwrap().remove(0);
        let f = function(&[&xs, &h0], &[&gw])
            .profile(true)
            .compile()
            .unwrap();
        values.push(f.call(&[xs_v.clone(), h0_v.clone()]).unwrap().remove(0));
        // The backward loop's body: where it keeps the step's values, one product (the
        // state's cotangent; W's gradient is one product over all the steps after the loop);
        // where it recomputes them, also the step's two and W's, summed in the loop.
        let profile = f.profile().unwrap();
        assert_eq!(profile.loops.len(), 2, "{profile}");
        let backward = &profile.loops[1].body;
        products.push(
            backward
                .nodes
                .iter()
                .filter(|n| n.op.starts_with("gemm"))
                .count(),
        );
        assert!(
            profile.to_string().contains("loop built at tests/loops.rs"),
            "{profile}"
        );
        assert_eq!(profile.loops[1].steps, 4);
    }
    close(&values[0], &values[1], 1e-12);
    assert_eq!(products, [1, 4]);
}

#[test]
fn a_state_that_changes_shape_is_an_error_when_the_loop_runs() {
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[None]);
    let looped = Scan::times(3)
        .states(&[&x0])
        .run(|s| {
            let twice = gradus::concat(&[s.state(0), s.state(0)], 0);
            Ok(StepResult::new().state(&twice))
        })
        .unwrap();
    let f = function(&[&x0], &[&looped.states[0]]).compile().unwrap();
    let err = f
        .call(&[vec![1.0, 2.0].into()])
        .expect_err("a state that doubles");
    assert!(
        err.to_string()
            .contains("state 0 is [2] at the start of step 0 and [4] after it"),
        "{err}"
    );
    // A next state whose shape is known where the state's is not, and that keeps it, is fine.
    let y0 = g.input("y0", DType::F64, &[None, Some(2)]);
    let w = g.constant(arr2(&[[1.0, 0.0], [0.0, 1.0]]));
    let fixed = Scan::times(2)
        .states(&[&y0])
        .run(|s| Ok(StepResult::new().state(&s.state(0).matmul(&w))))
        .unwrap();
    let f = function(&[&y0], &[&fixed.states[0]]).compile().unwrap();
    assert_eq!(
        f.call(&[arr2(&[[1.0, 2.0]]).into()]).unwrap()[0].shape(),
        &[1, 2]
    );
}

#[test]
fn calls_of_a_loop_from_several_threads_at_once_are_each_right() {
    let g = Graph::new();
    let (xs, h0, _, _, looped) = rnn(&g);
    let cost = looped.outputs[0].sum();
    let gw = grad(&cost, &[&h0]).unwrap().remove(0);
    let f = function(&[&xs, &h0], &[&looped.states[0], &gw])
        .compile()
        .unwrap();
    let want: Vec<Vec<Tensor>> = (1..=4)
        .map(|t| f.call(&[sequence(t, 1), h0_one()]).unwrap())
        .collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for round in 0..50 {
                    let t = round % 4 + 1;
                    let got = f.call(&[sequence(t, 1), h0_one()]).unwrap();
                    assert_eq!(got, want[t - 1], "{t} steps");
                }
            });
        }
    });
}

fn h0_one() -> Tensor {
    arr2(&[[0.1, -0.2]]).into()
}

#[test]
fn draws_in_a_loop_are_the_same_on_one_thread_and_on_two() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 21);
    let x0 = g.input("x0", DType::F32, &[Some(50_000)]);
    let looped = Scan::times(3)
        .states(&[&x0])
        .run(|s| {
            let u = stream.uniform(s.state(0));
            Ok(StepResult::new().state(&(s.state(0) * 0.5 + &u)).output(&u))
        })
        .unwrap();
    let f = function(&[&x0], &[&looped.outputs[0]]).compile().unwrap();
    let feed = [Tensor::from(vec![0.0f32; 50_000])];
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // Each call advances the stream: start from the same state.
        stream.state().set_value(vec![21i64, 0]).unwrap();
        pool.install(|| f.call(&feed).unwrap().remove(0))
    };
    assert_eq!(on(1), on(2));
}

#[test]
fn simple_recurrences_whose_step_gradient_reads_nothing_have_gradients() {
    // A cumulative sum, a doubling, a linear map: the gradient of a step reads no value of
    // the step, and the backward loop still knows its length.
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None, Some(2)]);
    let h0 = g.input("h0", DType::F64, &[Some(2)]);
    let cumsum = Scan::over(&[&xs])
        .states(&[&h0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) + s.seq(0)))))
        .unwrap();
    let xs_v: Tensor = arr2(&[[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]]).into();
    GradCheck::new(&cumsum.states[0].square().sum(), &[&xs, &h0])
        .at(&[xs_v, vec![0.1, 0.2].into()])
        .elementwise()
        .run()
        .unwrap();
    let w = g.shared("w", arr2(&[[0.5, 0.1], [-0.2, 0.9]]));
    let doubled = Scan::times(3)
        .states(&[&h0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0).dot(&w) * 2.0))))
        .unwrap();
    GradCheck::new(&doubled.states[0].sum(), &[&h0])
        .at(&[vec![0.3, -0.4].into()])
        .elementwise()
        .run()
        .unwrap();
    // A gradient with respect to a loop's result itself needs nothing of the loop.
    let d = grad(&doubled.states[0].sum(), &[&doubled.states[0]])
        .unwrap()
        .remove(0);
    let f = function(&[&h0], &[&d]).compile().unwrap();
    assert_eq!(
        f.call(&[vec![0.3, -0.4].into()]).unwrap()[0].to_f64_vec(),
        vec![1.0, 1.0]
    );
}

#[test]
fn a_loop_capturing_another_loops_result_counts_each_path_once() {
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[Some(2)]);
    let y0 = g.input("y0", DType::F64, &[Some(2)]);
    let w = g.shared("w", Array1::from(vec![0.8, -0.6]));
    let first = Scan::times(2)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) * &w).tanh())))
        .unwrap();
    let c = first.states[0].clone();
    let second = Scan::times(3)
        .states(&[&y0])
        .run(|s| Ok(StepResult::new().state(&((s.state(0) * &w).sin() + &c))))
        .unwrap();
    GradCheck::new(&second.states[0].sum(), &[&w, &x0, &y0])
        .at(&[vec![0.3, 0.7].into(), vec![-0.2, 0.4].into()])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn a_loop_in_a_loop_draws_anew_at_every_step_of_both_and_every_call() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 4);
    let x0 = g.input("x0", DType::F64, &[Some(3)]);
    let outer = Scan::times(3)
        .states(&[&x0])
        .run(|s| {
            let inner = Scan::times(2).states(&[s.state(0)]).run(|t| {
                Ok(StepResult::new().state(&(t.state(0) + &stream.uniform(t.state(0)))))
            })?;
            let drawn = &inner.states[0] - s.state(0);
            Ok(StepResult::new().state(s.state(0)).output(&drawn))
        })
        .unwrap();
    let f = function(&[&x0], &[&outer.outputs[0]]).compile().unwrap();
    let a = f
        .call(&[vec![0.0; 3].into()])
        .unwrap()
        .remove(0)
        .to_f64_vec();
    let rows: Vec<&[f64]> = a.chunks(3).collect();
    assert_ne!(rows[0], rows[1]);
    assert_ne!(rows[1], rows[2]);
    let b = f
        .call(&[vec![0.0; 3].into()])
        .unwrap()
        .remove(0)
        .to_f64_vec();
    assert_ne!(a, b, "two calls drew alike");
}

#[test]
fn huge_step_counts_are_errors_or_run_only_the_steps_made() {
    let g = Graph::new();
    let k = g.scalar("k", DType::I64);
    let n0 = g.input("n0", DType::F64, &[Some(64)]);
    // A bool output per step: stacking 2^40 of them cannot be allocated.
    let counted = Scan::counted(&k)
        .states(&[&n0])
        .run(|s| {
            let n = s.state(0) + 1.0;
            Ok(StepResult::new().state(&n).output(&n.gt(2.0)))
        })
        .unwrap();
    let f = function(&[&k, &n0], &[&counted.outputs[0]])
        .compile()
        .unwrap();
    let zeros = Tensor::from(vec![0.0; 64]);
    let err = f
        .call(&[(1i64 << 40).into(), zeros.clone()])
        .expect_err("too many steps");
    assert!(matches!(err, gradus::Error::OutOfMemory { .. }), "{err}");
    let out = f.call(&[3i64.into(), zeros]).unwrap().remove(0);
    assert_eq!(out.shape(), &[3, 64]);
    assert_eq!(
        out.to_f64_vec()[..3 * 64]
            .iter()
            .filter(|&&b| b == 1.0)
            .count(),
        64
    );
    // A while loop whose maximum is huge makes only the steps it needs.
    let x0 = g.scalar("x0", DType::F64);
    let halving = Scan::until(usize::MAX)
        .states(&[&x0])
        .run(|s| {
            let x = s.state(0) * 0.5;
            Ok(StepResult::new().state(&x).output(&x).until(&x.lt(1.0)))
        })
        .unwrap();
    let f = function(&[&x0], &[&halving.outputs[0]]).compile().unwrap();
    assert_eq!(
        f.call(&[8.0.into()]).unwrap()[0].to_f64_vec(),
        vec![4.0, 2.0, 1.0, 0.5]
    );
}

#[test]
fn update_only_steps_empty_loops_empty_slices_reversed_while_loops_and_givens_in_bodies() {
    // A step that only updates a shared variable through a loop: no inputs, no outputs.
    let g = Graph::new();
    let chain = g.shared("chain", vec![1.0f64, 2.0]);
    let looped = Scan::times(3)
        .states(&[&chain])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) * 2.0))))
        .unwrap();
    let f = function(&[], &[])
        .updates(&[(&chain, &looped.states[0])])
        .compile()
        .unwrap();
    f.call(&[]).unwrap();
    assert_eq!(chain.get_value().unwrap().to_f64_vec(), vec![8.0, 16.0]);

    // The gradient with respect to the sequences of a loop of no steps has their shape, also
    // where the batch is known only when it runs.
    let (xs, h0, _, _, rnn) = rnn(&g);
    let cost = rnn.outputs[0].sum() + rnn.states[0].square().sum();
    let dxs = grad(&cost, &[&xs]).unwrap().remove(0);
    let f = function(&[&xs, &h0], &[&dxs]).compile().unwrap();
    let out = f
        .call(&[sequence(0, 2), Array2::<f64>::zeros((2, 2)).into()])
        .unwrap();
    assert_eq!(out[0].shape(), &[0, 2, 3]);

    // An empty slice next to a slice: their gradients are not joined.
    let x = g.input("x", DType::F64, &[Some(5)]);
    let cost = x.slice(0, 4, Some(2)).sum() + x.slice(0, 2, None).square().sum();
    let dx = grad(&cost, &[&x]).unwrap().remove(0);
    let by_parts = grad(&x.slice(0, 4, Some(2)).sum(), &[&x])
        .unwrap()
        .remove(0)
        + grad(&x.slice(0, 2, None).square().sum(), &[&x])
            .unwrap()
            .remove(0);
    let f = function(&[&x], &[&dx, &by_parts]).compile().unwrap();
    let out = f.call(&[vec![1.0, 2.0, 3.0, 4.0, 5.0].into()]).unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![0.0, 0.0, 6.0, 8.0, 10.0]);
    assert_eq!(out[1], out[0]);

    // A while loop cannot run backwards.
    let y0 = g.scalar("y0", DType::F64);
    let err = Scan::until(5)
        .states(&[&y0])
        .reverse()
        .run(|s| {
            Ok(StepResult::new()
                .state(s.state(0))
                .until(&s.state(0).lt(0.0)))
        })
        .expect_err("a reversed while loop");
    assert!(err.to_string().contains("cannot be reversed"), "{err}");

    // A given cannot replace a node inside a body.
    let mut inside = None;
    let l = Scan::times(2)
        .states(&[&y0])
        .run(|s| {
            let m = s.state(0) * 3.0;
            inside = Some(m.clone());
            Ok(StepResult::new().state(&(m + 1.0)))
        })
        .unwrap();
    let inside = inside.unwrap();
    let zero = g.scalar_constant(0.0, DType::F64);
    let Err(err) = function(&[&y0], &[&l.states[0]])
        .givens(&[(&inside, &zero)])
        .compile()
    else {
        panic!("a given inside a body")
    };
    assert!(
        err.to_string().contains("inside the body of the loop"),
        "{err}"
    );
}

#[test]
fn the_gradient_goes_through_a_loop_in_a_loop() {
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[Some(2)]);
    let w = g.shared("w", Array1::from(vec![0.7, -0.4]));
    let outer = Scan::times(3)
        .states(&[&x0])
        .run(|s| {
            let inner = Scan::times(2).states(&[s.state(0)]).run(|t| {
                Ok(StepResult::new().state(&((t.state(0) * &w).sin() + t.state(0) * 0.5)))
            })?;
            Ok(StepResult::new().state(&(&inner.states[0] * &w).tanh()))
        })
        .unwrap();
    GradCheck::new(&outer.states[0].square().sum(), &[&x0, &w])
        .at(&[vec![0.3, -0.6].into()])
        .elementwise()
        .run()
        .unwrap();
}

/// A step whose gradient with respect to `U` is a product per step (pushed out of the
/// backward loop, unless it recomputes) plus a term that is not one (summed in it), and whose
/// gradient with respect to `V` is a product with a factor that is the same at every step
/// (kept in the loop).
fn pushed_and_kept(recompute: bool) -> (Vec<Expr>, Expr) {
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None, Some(2), Some(3)]);
    let h0 = g.input("h0", DType::F64, &[Some(2), Some(2)]);
    let m = g.input("m", DType::F64, &[Some(2), Some(2)]);
    let u = g.shared("U", arr2(&[[0.9, -0.2], [0.3, 0.4]]));
    let v = g.shared("V", arr2(&[[0.2, 0.1], [-0.3, 0.5]]));
    let w = g.shared("W", arr2(&[[0.5, -0.3], [0.1, 0.8], [-0.4, 0.2]]));
    let mut scan = Scan::over(&[&xs]).states(&[&h0]);
    if recompute {
        scan = scan.recompute();
    }
    let looped = scan
        .run(|s| {
            let h = s.state(0);
            let a = s.seq(0).matmul(&w) + h.matmul(&u) + h * &u * 0.5 + m.matmul(&v);
            let next = a.tanh();
            Ok(StepResult::new().state(&next).output(&next.square()))
        })
        .unwrap();
    let cost = looped.outputs[0].sum() + looped.states[0].sin().sum();
    (vec![xs, h0, m, u, v, w], cost)
}

#[test]
fn products_pushed_out_of_a_loops_gradient_and_the_terms_kept_in_it_check() {
    let m_value: Tensor = arr2(&[[0.3, -0.1], [0.2, 0.6]]).into();
    for t in [0, 1, 3] {
        let mut values = Vec::new();
        for recompute in [false, true] {
            let (vars, cost) = pushed_and_kept(recompute);
            let refs: Vec<&Expr> = vars.iter().collect();
            GradCheck::new(&cost, &refs)
                .at(&[sequence(t, 2), h0_value(), m_value.clone()])
                .elementwise()
                .run()
                .unwrap_or_else(|e| panic!("length {t}, recompute {recompute}: {e}"));
            let grads = grad(&cost, &refs[3..]).unwrap();
            let f = function(&refs[..3], &grads.iter().collect::<Vec<_>>())
                .compile()
                .unwrap();
            values.push(
                f.call(&[sequence(t, 2), h0_value(), m_value.clone()])
                    .unwrap(),
            );
        }
        // Pushed out of the loop or summed in it, the same gradients.
        for (a, b) in values[0].iter().zip(&values[1]) {
            close(a, b, 1e-12);
        }
    }
}

/// The line of `listing` (a function's `debugprint`) that defines a node whose text contains
/// `what`.
fn line_of(listing: &str, what: &str) -> usize {
    listing
        .lines()
        .position(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what} in\n{listing}"))
}

#[test]
fn a_value_reshaped_is_read_first_by_its_other_readers_and_slices_run_early() {
    // sum(t) runs before reshape(t), so that the reshape, its last reader, takes t's buffer
    // over instead of copying it; the slices of p run right after p, so that the kernels
    // that read them follow each other (one run of kernels).
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(4)]);
    let t = (&x * 2.0).exp();
    let flat = t.reshape(&[-1]).sin().sum();
    // (Slices of a kernel's result: a kernel reads a slice of a product in place, with no
    // slice left to schedule.)
    let p = x.matmul(&g.shared("W", Array2::<f64>::eye(4))).exp();
    let a = p.slice(1, 0, Some(2)).sigmoid();
    let b = p.slice(1, 2, Some(4)).tanh();
    let cost = flat + t.sum() + (&a * &b).sum();
    // (a and b are outputs too: kernels of their own.)
    let f = function(&[&x], &[&cost, &a, &b]).compile().unwrap();
    let listing = f.debugprint();
    assert!(
        line_of(&listing, "sum{axes=[0, 1]}") < line_of(&listing, "reshape[-1]"),
        "{listing}"
    );
    assert!(
        line_of(&listing, "1, 2:4:1}") < line_of(&listing, "sigmoid"),
        "{listing}"
    );
    let value = f.call(&[arr2(&[[0.1, 0.2, 0.3, 0.4]]).into()]).unwrap();
    let reference = function(&[&x], &[&cost, &a, &b])
        .without_rewrites()
        .compile()
        .unwrap();
    close(
        &value[0],
        &reference
            .call(&[arr2(&[[0.1, 0.2, 0.3, 0.4]]).into()])
            .unwrap()[0],
        1e-12,
    );
}

#[test]
fn a_draws_parameter_out_of_its_domain_at_one_step_names_the_step() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 3);
    let ks = g.input("ks", DType::F64, &[None, Some(2)]);
    let x0 = g.input("x0", DType::F64, &[Some(2)]);
    let theta = g.scalar_constant(1.0, DType::F64);
    let looped = Scan::over(&[&ks])
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) + &stream.gamma(s.seq(0), &theta)))))
        .unwrap();
    let f = function(&[&ks, &x0], &[&looped.states[0]])
        .compile()
        .unwrap();
    let ks_value = Tensor::from(arr2(&[[1.0, 2.0], [0.0, 1.0]]));
    let err = f
        .call(&[ks_value, vec![0.0, 0.0].into()])
        .expect_err("k = 0 at step 1");
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("at step 1 of the loop built at tests/loops.rs"),
        "{err}"
    );
}

#[test]
fn a_stacked_output_that_no_result_reads_is_not_computed() {
    // The output is NaN at every step; the NaN guard would refuse it if the body computed it.
    let g = Graph::new();
    let x0 = g.input("x0", DType::F64, &[Some(2)]);
    let looped = Scan::times(3)
        .states(&[&x0])
        .run(|s| {
            let x = s.state(0) * 0.5;
            Ok(StepResult::new().state(&x).output(&(&x - 10.0).log()))
        })
        .unwrap();
    let only_state = function(&[&x0], &[&looped.states[0]])
        .nan_guard(true)
        .compile()
        .unwrap();
    let out = only_state.call(&[vec![4.0, 8.0].into()]).unwrap();
    assert_eq!(out[0].to_f64_vec(), vec![0.5, 1.0]);
    let both = function(&[&x0], &[&looped.states[0], &looped.outputs[0]])
        .nan_guard(true)
        .compile()
        .unwrap();
    let err = both
        .call(&[vec![4.0, 8.0].into()])
        .expect_err("log of a negative");
    assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");
}

/// An outer loop whose step output is an inner loop's stacked outputs over a count that grows
/// with the step: `[1]`, then `[2]`, ... Its stack of per-step values cannot hold them.
fn growing(g: &Graph, outer: Scan, until: bool) -> Function {
    let k0 = g.scalar("k0", DType::F64);
    let x0 = g.scalar("x0", DType::F64);
    let looped = outer
        .states(&[&k0, &x0])
        .run(|s| {
            let inner = Scan::counted(&s.state(0).cast(DType::I64))
                .states(&[s.state(1)])
                .run(|t| {
                    let y = t.state(0) + 1.0;
                    Ok(StepResult::new().state(&y).output(&y))
                })?;
            let k = s.state(0) + 1.0;
            let step = StepResult::new()
                .state(&k)
                .state(s.state(1))
                .output(&inner.outputs[0]);
            Ok(if until { step.until(&k.gt(10.0)) } else { step })
        })
        .unwrap();
    function(&[&k0, &x0], &[&looped.outputs[0]])
        .compile()
        .unwrap()
}

#[test]
fn per_step_outputs_of_different_shapes_are_an_error_when_the_loop_runs() {
    // Known steps (the stack is sized before the first) and a while loop (stacked at the end).
    for (outer, until) in [(Scan::times(3), false), (Scan::until(5), true)] {
        let f = growing(&Graph::new(), outer, until);
        let err = f
            .call(&[1.0.into(), 0.0.into()])
            .expect_err("steps of [1] and [2]");
        let msg = err.to_string();
        assert!(
            msg.contains("output 0 is [2] at step 1 and [1] at the steps before"),
            "{msg}"
        );
        assert!(
            msg.contains("tests/loops.rs"),
            "names the loop's line: {msg}"
        );
    }
}
