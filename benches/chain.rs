//! Build + grad + compile + call of a 2,000-stage elementwise chain over a 1000-vector
//! (the core issue's compile-time benchmark). For scale on this machine: JAX jit compiles it in
//! 13.8 s, PyTensor's C backend in 154 s, torch.compile (forward only) in 189 s.

use criterion::{Criterion, criterion_group, criterion_main};
use gradus::prelude::*;

mod common;

use common::{N, chain as build};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain2000");
    group.sample_size(10);
    group.bench_function("build", |b| b.iter(build));
    group.bench_function("build+grad", |b| {
        b.iter(|| {
            let (_g, x, cost) = build();
            grad(&cost, &[&x]).unwrap()
        })
    });
    group.bench_function("build+grad+compile", |b| {
        b.iter(|| {
            let (_g, x, cost) = build();
            let gx = grad(&cost, &[&x]).unwrap().remove(0);
            function(&[&x], &[&cost, &gx]).compile().unwrap()
        })
    });
    let (_g, x, cost) = build();
    let gx = grad(&cost, &[&x]).unwrap().remove(0);
    let f = function(&[&x], &[&cost, &gx]).compile().unwrap();
    let none = function(&[&x], &[&cost, &gx])
        .without_rewrites()
        .compile()
        .unwrap();
    let input: Tensor = vec![0.5f64; N].into();
    group.bench_function("call (value and gradient) [all rewrites]", |b| {
        b.iter(|| f.call(std::slice::from_ref(&input)).unwrap())
    });
    group.bench_function("call (value and gradient) [none]", |b| {
        b.iter(|| none.call(std::slice::from_ref(&input)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's HTML plots want a system font, which the plotters that gradus's viz shares
    // (built for its bundled font) does not look for: the numbers, without those plots.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
