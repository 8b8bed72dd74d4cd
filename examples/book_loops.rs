//! The code of the book's chapter "Loops" (`book/src/loops.md`): a recurrence by `Scan`, a
//! number of steps given per call, a while loop (ISTA until the code stops changing), the
//! gradient through a loop, and what the listing and the profile show of a loop.
//!
//! Run with `cargo run --release --example book_loops`.

use gradus::gradcheck::GradCheck;
use gradus::prelude::*;
use gradus::{Scan, StepResult};
use ndarray::{Array1, Array2, Array3};

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: scan
    let g = Graph::new();
    // A batch of sequences: [steps, batch, inputs], the number of steps known when it runs.
    let xs = g.input("xs", DType::F64, &[None, None, Some(3)]);
    let h0 = g.input("h0", DType::F64, &[None, Some(4)]);
    let w = g.shared(
        "W",
        Array2::from_shape_fn((3, 4), |(i, j)| 0.1 * (i + j) as f64 - 0.2),
    );
    let u = g.shared(
        "U",
        Array2::from_shape_fn((4, 4), |(i, j)| if i == j { 0.5 } else { 0.1 }),
    );
    // h_t = tanh(x_t W + h_{t-1} U): the body is built once, from the step's values.
    let rnn = Scan::over(&[&xs]).states(&[&h0]).run(|s| {
        let h = (s.seq(0).matmul(&w) + s.state(0).matmul(&u)).tanh();
        Ok(StepResult::new().state(&h).output(&h))
    })?;
    let (last, all) = (&rnn.states[0], &rnn.outputs[0]);
    let f = function(&[&xs, &h0], &[last, all]).compile()?;
    for steps in [1, 5, 50] {
        let seq = Array3::from_shape_fn((steps, 2, 3), |(t, n, i)| ((t + n + i) % 3) as f64 - 1.0);
        let out = f.call(&[seq.into(), Array2::<f64>::zeros((2, 4)).into()])?;
        println!(
            "{steps:3} steps: last state {:?}, all states {:?}",
            out[0].shape(),
            out[1].shape()
        );
    }
    // ANCHOR_END: scan

    // ANCHOR: counted
    // x_{k+1} = x_k / 2 + 1, k given at each call.
    let k = g.scalar("k", DType::I64);
    let x0 = g.scalar("x0", DType::F64);
    let halve = Scan::counted(&k)
        .states(&[&x0])
        .run(|s| Ok(StepResult::new().state(&(s.state(0) * 0.5 + 1.0))))?;
    let f = function(&[&k, &x0], &[&halve.states[0]]).compile()?;
    for steps in [0i64, 1, 10] {
        println!(
            "{steps:2} steps from 0: {}",
            f.call(&[steps.into(), 0.0.into()])?[0].item()?
        );
    }
    // ANCHOR_END: counted

    // ANCHOR: ista
    // ISTA for sparse coding: a code z of y in the dictionary D with few non-zeros,
    // z <- soft(z + eta D^T (y - D z), eta lambda), until z moves less than 1e-6.
    let (dim, atoms) = (8, 16);
    let d = g.constant(Array2::from_shape_fn((dim, atoms), |(i, j)| {
        (((i * 7 + j * 3) % 11) as f64 - 5.0) / 10.0
    }));
    let y = g.input("y", DType::F64, &[Some(dim)]);
    let z0 = g.constant(Array1::<f64>::zeros(atoms));
    let (eta, lambda) = (0.2, 0.05);
    let soft = |v: &Expr, t: f64| (v - t).relu() - (-v - t).relu();
    let ista = Scan::until(10_000).states(&[&z0]).run(|s| {
        let z = s.state(0);
        let residual = &y - &d.dot(z);
        let next = soft(&(z + &(d.t().dot(&residual) * eta)), eta * lambda);
        let moved = (&next - z).abs().max_axes(&[0], false);
        Ok(StepResult::new()
            .state(&next)
            .output(&moved)
            .until(&moved.lt(1e-6)))
    })?;
    let f = function(&[&y], &[&ista.states[0], &ista.outputs[0]]).compile()?;
    let target = Array1::from_shape_fn(dim, |i| if i % 3 == 0 { 1.0 } else { -0.5 });
    let out = f.call(&[target.into()])?;
    let code = out[0].to_f64_vec();
    let nonzero = code.iter().filter(|c| c.abs() > 1e-9).count();
    println!(
        "ISTA stopped after {} steps; {nonzero} of {atoms} atoms used",
        out[1].shape()[0]
    );
    // ANCHOR_END: ista

    // ANCHOR: grad
    // The gradient through the RNN, checked by finite differences.
    let cost = all.square().sum() * 0.5 + last.sum();
    let report = GradCheck::new(&cost, &[&xs, &h0, &w, &u])
        .at(&[
            Array3::from_shape_fn((6, 2, 3), |(t, n, i)| {
                0.1 * (t + 2 * n) as f64 - 0.1 * i as f64
            })
            .into(),
            Array2::from_elem((2, 4), 0.1).into(),
        ])
        .run()?;
    println!("gradient through 6 steps: {report}");
    // Checkpointing: the same gradient, keeping only the states of the forward steps.
    let checkpointed = Scan::over(&[&xs]).states(&[&h0]).recompute().run(|s| {
        let h = (s.seq(0).matmul(&w) + s.state(0).matmul(&u)).tanh();
        Ok(StepResult::new().state(&h).output(&h))
    })?;
    let cost2 = checkpointed.outputs[0].square().sum() * 0.5 + checkpointed.states[0].sum();
    let grads = grad(&cost, &[&w])?;
    let grads2 = grad(&cost2, &[&w])?;
    let f = function(&[&xs, &h0], &[&grads[0], &grads2[0]]).compile()?;
    let seq = Array3::from_shape_fn((6, 2, 3), |(t, n, i)| {
        0.1 * (t * n) as f64 - 0.05 * i as f64
    });
    let out = f.call(&[seq.into(), Array2::from_elem((2, 4), 0.1).into()])?;
    let diff = (out[0].to_f64_vec().iter().zip(out[1].to_f64_vec()))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("kept or recomputed: the gradients differ by {diff:.1e}");
    // ANCHOR_END: grad

    // ANCHOR: inspect
    println!("{}", gradus::pp(&halve.states[0]));
    let train = function(&[&xs, &h0], &grad(&cost, &[&w])?.iter().collect::<Vec<_>>())
        .profile(true)
        .compile()?;
    let seq = Array3::from_shape_fn((28, 16, 3), |(t, n, i)| ((t + n * i) % 5) as f64 * 0.1);
    for _ in 0..20 {
        train.call(&[seq.clone().into(), Array2::<f64>::zeros((16, 4)).into()])?;
    }
    print!("{}", train.profile().expect("compiled with profile(true)"));
    // ANCHOR_END: inspect
    Ok(())
}
