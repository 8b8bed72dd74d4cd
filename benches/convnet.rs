//! W7: the SGD step of the LeNet-5-like convnet of `examples/convnet.rs` (batch 100, float32)
//! under criterion. The peers' step is in `benches/peers` (`--workloads W7`), and
//! `benches/steps.rs -- W7` times it with their timer.
//!
//! `cargo bench -p gradus-bench --bench convnet`

use criterion::{Criterion, criterion_group, criterion_main};

mod common;

fn step(c: &mut Criterion) {
    let (builder, feed) = common::convnet_step();
    let f = builder.compile().unwrap();
    let mut group = c.benchmark_group("convnet");
    group.sample_size(30);
    group.bench_function("sgd step", |b| b.iter(|| f.call(&feed).unwrap()));
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's HTML plots want a system font, which the plotters that gradus's viz shares
    // (built for its bundled font) does not look for: the numbers, without those plots.
    config = Criterion::default().without_plots();
    targets = step
}
criterion_main!(benches);
