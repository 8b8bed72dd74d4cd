//! Loops in the graph: `Scan` over sequences with states, with a number of steps known only at
//! run time, a while form, random draws per step, in every mode; their gradients (by finite
//! differences, through sequences, states, captured parameters and shared variables).

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

fn close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
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
    let stacked = gradus::stack(&outs.iter().collect::<Vec<_>>(), 0).unwrap();
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
