//! Matrix products through a compiled function, at the shapes of the RBM step (W1) and two of
//! the LSTM step (W5): throughput is reported in multiply-adds × 2 per second, so criterion's
//! "elem/s" reads as FLOP/s. `GRADUS_GEMM=crate` runs the `f32` products through the `gemm`
//! crate instead of gradus's own kernel, to compare the two.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gradus::prelude::*;

fn products(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(30);
    // (name, m, k, n, transpose a): v W, h Wᵀ (as a product with a transposed operand), vᵀ h.
    let shapes = [
        ("v·W 100x784x500", 100, 784, 500, false),
        ("h·Wᵀ 100x500x784", 100, 500, 784, false),
        ("vᵀ·h 784x100x500", 784, 100, 500, true),
        // The LSTM step's (W5): h·W_h, per step, and the input weights' gradient xᵀ·δ.
        ("h·W_h 64x128x512", 64, 128, 512, false),
        ("xᵀ·δ 28x1792x512", 28, 1792, 512, true),
    ];
    for dtype in [DType::F32, DType::F64] {
        for &(name, m, k, n, ta) in &shapes {
            let g = Graph::new();
            let (a_shape, a_val) = if ta {
                ([k, m], [k, m])
            } else {
                ([m, k], [m, k])
            };
            let a = g.input("a", dtype, &[Some(a_shape[0]), Some(a_shape[1])]);
            let b = g.input("b", dtype, &[Some(k), Some(n)]);
            let p = if ta { a.t().matmul(&b) } else { a.matmul(&b) };
            let f = function(&[&a, &b], &[&p]).compile().unwrap();
            let feed = [
                Tensor::full(&a_val, 0.5, dtype),
                Tensor::full(&[k, n], 0.25, dtype),
            ];
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            group.bench_function(format!("{name} {dtype}"), |bench| {
                bench.iter(|| f.call(&feed).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's HTML plots want a system font, which the plotters that gradus's viz shares
    // (built for its bundled font) does not look for: the numbers, without those plots.
    config = Criterion::default().without_plots();
    targets = products
}
criterion_main!(benches);
