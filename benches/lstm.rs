//! The LSTM training step of W5 (batch 64, 128 units, 28 steps of 28 inputs, a softmax on the
//! last state, SGD) by `Scan` and unrolled, side by side; and the time to compile it by `Scan`
//! and unrolled at T = 28 and T = 1000. The peers' step is in `benches/peers` (`--workloads W5`).
//!
//! `cargo bench -p gradus-bench --bench lstm`

use criterion::{Criterion, criterion_group, criterion_main};

mod common;

fn step(c: &mut Criterion) {
    let mut group = c.benchmark_group("lstm step");
    group.sample_size(30);
    for (name, scan) in [("scan", true), ("unroll", false)] {
        let (builder, feed) = common::lstm_step(28, scan);
        let f = builder.compile().unwrap();
        group.bench_function(name, |b| b.iter(|| f.call(&feed).unwrap()));
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("lstm compile");
    group.sample_size(10);
    for (name, steps, scan) in [
        ("scan T=28", 28, true),
        ("scan T=1000", 1000, true),
        ("unroll T=28", 28, false),
        ("unroll T=1000", 1000, false),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || common::lstm_step(steps, scan).0,
                |builder| builder.compile().unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's HTML plots want a system font, which the plotters that gradus's viz shares
    // (built for its bundled font) does not look for: the numbers, without those plots.
    config = Criterion::default().without_plots();
    targets = step, compile
}
criterion_main!(benches);
