//! The training workloads of the optimizer issue, float32, minibatch 100, each compiled with all
//! rewrites and with none (same fast executor), side by side in one run:
//! W1 binary RBM 784x500 CD-1 step; W2 MLP 784-500-500-10 sigmoid SGD step;
//! W3 deep autoencoder 784-1000-500-250-30-250-500-1000-784 SGD step;
//! and the compile time of a CD-25 trainer (25 Gibbs steps unrolled in one function).
//! W4 (the 2,000-stage chain) is in `benches/chain.rs`.
//!
//! Peers on this machine: `benches/peers/README.md` (JAX jit 230/242/54 steps/s for W1/W2/W3).

use criterion::{Criterion, criterion_group, criterion_main};
use gradus::FunctionBuilder;
use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array1;
use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;

use common::{BATCH, batch, sgd_step};

/// A label for a benchmark compiled with or without rewrites.
fn label(name: &str, rewrites: bool) -> String {
    format!(
        "{name} [{}]",
        if rewrites { "all rewrites" } else { "none" }
    )
}

fn workloads(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = c.benchmark_group("workloads");
    group.sample_size(20);

    let x = batch(&mut rng);
    let labels = Tensor::from(Array1::from_shape_fn(BATCH, |i| (i % 10) as i64));
    let feed = [x.clone(), labels];
    for rewrites in [true, false] {
        let g = Graph::new();
        let stream = RandomStream::new(&g, 1);
        let rbm = Rbm::new(&g, 784, 500, 1).unwrap();
        // The peers' W1: plain CD-1 at lr 0.1, no momentum, no weight decay.
        let cfg = CdConfig {
            batch: BATCH,
            momentum: 0.0,
            weight_decay: 0.0,
            ..CdConfig::default()
        };
        let w1 = rbm.trainer_builder(&cfg, &stream).unwrap();
        let w1 = if rewrites { w1 } else { w1.without_rewrites() };
        let w1 = w1.compile().unwrap();
        group.bench_function(label("W1 rbm 784x500 cd-1 step", rewrites), |b| {
            b.iter(|| w1.call(std::slice::from_ref(&x)).unwrap())
        });

        let build = |f: FunctionBuilder| if rewrites { f } else { f.without_rewrites() };
        let w2 = build(sgd_step(&[784, 500, 500, 10], true))
            .compile()
            .unwrap();
        group.bench_function(label("W2 mlp 784-500-500-10 sgd step", rewrites), |b| {
            b.iter(|| w2.call(&feed).unwrap())
        });

        let w3 = build(sgd_step(
            &[784, 1000, 500, 250, 30, 250, 500, 1000, 784],
            false,
        ))
        .compile()
        .unwrap();
        group.bench_function(label("W3 deep autoencoder sgd step", rewrites), |b| {
            b.iter(|| w3.call(std::slice::from_ref(&x)).unwrap())
        });
    }

    group.bench_function("compile cd-25 trainer", |b| {
        b.iter(|| {
            let g = Graph::new();
            let stream = RandomStream::new(&g, 1);
            let rbm = Rbm::new(&g, 784, 500, 1).unwrap();
            rbm.trainer(
                &CdConfig {
                    k: 25,
                    batch: BATCH,
                    ..CdConfig::default()
                },
                &stream,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's HTML plots want a system font, which the plotters that gradus's viz shares
    // (built for its bundled font) does not look for: the numbers, without those plots.
    config = Criterion::default().without_plots();
    targets = workloads
}
criterion_main!(benches);
