//! The GRU and LSTM cells: by `scan` they compute what they compute unrolled, and their
//! gradients check by finite differences (f64) with respect to inputs and every parameter.

mod common;

use common::close;
use gradus::gradcheck::GradCheck;
use gradus::models::recurrent::{Gru, Lstm};
use gradus::prelude::*;
use ndarray::Array3;

fn sequences(t: usize, n: usize, d: usize) -> Tensor {
    Array3::from_shape_fn((t, n, d), |(a, b, c)| {
        ((a * 5 + b * 3 + c * 7) % 11) as f64 / 11.0 - 0.5
    })
    .into()
}

#[test]
fn a_gru_by_scan_is_the_gru_unrolled_and_its_gradient_checks() {
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None, None, Some(3)]);
    let x4 = g.input("x4", DType::F64, &[Some(4), None, Some(3)]);
    let gru = Gru::new(&g, "gru", 3, 4, DType::F64, 3).unwrap();
    let h0 = gru.zero_state(&xs);
    let looped = gru.scan(&xs, &h0).unwrap();
    let unrolled = gru.unroll(&x4, &gru.zero_state(&x4), 4);
    let f = function(&[&xs, &x4], &[&looped.states[0], &unrolled])
        .compile()
        .unwrap();
    let v = sequences(4, 2, 3);
    let out = f.call(&[v.clone(), v.clone()]).unwrap();
    close(&out[0], &out[1], 1e-12);
    let cost = (looped.outputs[0].sum() + looped.states[0].square().sum()) * 0.5;
    let mut wrt = vec![&xs];
    wrt.extend(gru.params());
    GradCheck::new(&cost, &wrt)
        .at(&[sequences(3, 2, 3)])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn an_lstm_by_scan_is_the_lstm_unrolled_and_its_gradient_checks() {
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None, None, Some(3)]);
    let x4 = g.input("x4", DType::F64, &[Some(4), None, Some(3)]);
    let lstm = Lstm::new(&g, "lstm", 3, 4, DType::F64, 5).unwrap();
    let zero = lstm.zero_state(&xs);
    let looped = lstm.scan(&xs, &zero, &zero).unwrap();
    let z4 = lstm.zero_state(&x4);
    let (h, c) = lstm.unroll(&x4, &z4, &z4, 4);
    let f = function(&[&xs, &x4], &[&looped.states[0], &looped.states[1], &h, &c])
        .compile()
        .unwrap();
    let v = sequences(4, 2, 3);
    let out = f.call(&[v.clone(), v.clone()]).unwrap();
    close(&out[0], &out[2], 1e-12);
    close(&out[1], &out[3], 1e-12);
    let cost = looped.outputs[0].sum() + looped.states[1].square().sum();
    let mut wrt = vec![&xs];
    wrt.extend(lstm.params());
    GradCheck::new(&cost, &wrt)
        .at(&[sequences(3, 2, 3)])
        .elementwise()
        .run()
        .unwrap();
}

#[test]
fn cells_refuse_empty_sizes() {
    let g = Graph::new();
    assert!(Gru::new(&g, "gru", 0, 4, DType::F64, 1).is_err());
    assert!(Lstm::new(&g, "lstm", 3, 0, DType::F32, 1).is_err());
    assert!(Lstm::new(&g, "lstm", 3, 2, DType::I64, 1).is_err());
}

#[test]
fn the_gradient_of_the_gates_is_one_concat_and_keeps_no_gates() {
    // The four gate slices' gradients side by side: no slice gradient in zeros, and the
    // pre-activation gates, read only for their shape, are not kept by the forward loop.
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(8)]);
    let part = |k: isize| x.slice(1, 2 * k, Some(2 * k + 2));
    let y = (&part(0).sigmoid() * &part(2).tanh() + &part(1).sigmoid() * &part(3)).sum();
    let dx = grad(&y, &[&x]).unwrap().remove(0);
    let text = gradus::pp(&dx);
    assert!(
        text.contains("concat") && !text.contains("slice_grad"),
        "{text}"
    );
    let xs = g.input("xs", DType::F64, &[None, None, Some(3)]);
    let lstm = Lstm::new(&g, "lstm", 3, 4, DType::F64, 5).unwrap();
    let zero = lstm.zero_state(&xs);
    let looped = lstm.scan(&xs, &zero, &zero).unwrap();
    let dw = grad(&looped.states[0].sum(), &[&lstm.w_h])
        .unwrap()
        .remove(0);
    let f = function(&[&xs], &[&dw]).compile().unwrap();
    let kept: Vec<String> = f
        .debugprint()
        .lines()
        .filter(|l| l.contains("per step}") && !l.starts_with(' '))
        .map(|l| l.split(" : ").nth(1).unwrap_or("").to_string())
        .collect();
    // i, f, g, o and tanh(c'), each [T, N, 4]; nothing of [T, N, 16].
    assert_eq!(kept.len(), 5, "{kept:?}");
    assert!(
        kept.iter().all(|t| t.starts_with("f64[?, ?, 4]")),
        "{kept:?}"
    );
}

#[test]
fn the_backward_loop_reads_what_the_forward_loop_kept_as_lists_not_stacks() {
    // The forward loop's kept gates and its cell's history go to the backward loop step by
    // step (no stack, no slice); the history of h, which the pushed-out weight product reads
    // whole, is stacked. Lists or stacks (the NaN guard turns the lists off), the same values.
    let g = Graph::new();
    let xs = g.input("xs", DType::F64, &[None, None, Some(3)]);
    let lstm = Lstm::new(&g, "lstm", 3, 4, DType::F64, 5).unwrap();
    let zero = lstm.zero_state(&xs);
    let looped = lstm.scan(&xs, &zero, &zero).unwrap();
    let cost = looped.states[0].sum() + looped.states[1].square().sum();
    let grads = grad(&cost, &lstm.params()).unwrap();
    let outs: Vec<&Expr> = grads.iter().collect();
    let f = function(&[&xs], &outs).compile().unwrap();
    let text = f.debugprint();
    // The program's own nodes (its bodies' listings are indented), and the lists it hands over.
    let id_of = |what: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with(' ') && l.contains(what))
            .map(|l| l.split(" = ").next().unwrap().to_string())
            .collect()
    };
    let lists: Vec<String> = text
        .lines()
        .find(|l| l.starts_with("loop results"))
        .unwrap_or_else(|| panic!("no lists:\n{text}"))
        .split_whitespace()
        .filter(|w| w.starts_with('%'))
        .map(|w| w.trim_end_matches(',').to_string())
        .collect();
    let mut want = id_of("per step}");
    want.extend(id_of("{state 1 before each step}"));
    want.sort();
    let mut got = lists.clone();
    got.sort();
    assert_eq!(want.len(), 6, "{text}");
    assert_eq!(got, want, "{text}");
    assert!(
        !lists.contains(&id_of("{state 0 before each step}")[0]),
        "{text}"
    );
    let guarded = function(&[&xs], &outs).nan_guard(true).compile().unwrap();
    for len in [0, 1, 5] {
        let v = sequences(len, 2, 3);
        let (a, b) = (
            f.call(std::slice::from_ref(&v)).unwrap(),
            guarded.call(std::slice::from_ref(&v)).unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "length {len}");
        }
    }
}
