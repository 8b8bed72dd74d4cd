//! The training workloads of the optimizer issue, float32, minibatch 100, each compiled with all
//! rewrites and with none (same fast executor), side by side in one run:
//! W1 binary RBM 784x500 CD-1 step; W2 MLP 784-500-500-10 sigmoid SGD step;
//! W3 deep autoencoder 784-1000-500-250-30-250-500-1000-784 SGD step;
//! and the compile time of a CD-25 trainer (25 Gibbs steps unrolled in one function).
//! W4 (the 2,000-stage chain) is in `benches/chain.rs`.
//!
//! Peers on this machine: `benches/peers/README.md` (JAX jit 230/242/54 steps/s for W1/W2/W3).

use criterion::{Criterion, criterion_group, criterion_main};
use gradus::models::{CdConfig, Rbm};
use gradus::optim::{Optimizer, as_pairs};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BATCH: usize = 100;

fn batch(rng: &mut StdRng) -> Tensor {
    Tensor::from(Array2::from_shape_fn((BATCH, 784), |_| rng.random::<f32>()))
}

/// An SGD step of a sigmoid network with the given layer sizes and a loss on its output.
fn sgd_step(sizes: &[usize], classify: bool, rewrites: bool) -> Function {
    let mut rng = StdRng::seed_from_u64(0);
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(sizes[0])]);
    let y = g.input("y", DType::I64, &[None]);
    let mut h = x.clone();
    let mut params = Vec::new();
    for (l, w) in sizes.windows(2).enumerate() {
        let s = (6.0 / (w[0] + w[1]) as f32).sqrt();
        let wl = g.shared(
            &format!("W{l}"),
            Array2::from_shape_fn((w[0], w[1]), |_| rng.random_range(-s..s)),
        );
        let bl = g.shared(&format!("b{l}"), Array1::<f32>::zeros(w[1]));
        let a = h.matmul(&wl) + &bl;
        h = if l + 2 == sizes.len() { a } else { a.sigmoid() };
        params.push(wl);
        params.push(bl);
    }
    let loss = if classify {
        h.softmax_cross_entropy(&y).mean()
    } else {
        h.binary_cross_entropy_with_logits(&x)
            .sum_axes(&[1], false)
            .mean()
    };
    let refs: Vec<&Expr> = params.iter().collect();
    let grads = grad(&loss, &refs).unwrap();
    let updates = Optimizer::sgd(0.01).updates(&refs, &grads).unwrap();
    let inputs: Vec<&Expr> = if classify { vec![&x, &y] } else { vec![&x] };
    let f = function(&inputs, &[&loss]).updates(&as_pairs(&updates));
    let f = if rewrites { f } else { f.without_rewrites() };
    f.compile().unwrap()
}

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
        let cfg = CdConfig {
            batch: BATCH,
            ..CdConfig::default()
        };
        let w1 = rbm.trainer_builder(&cfg, &stream).unwrap();
        let w1 = if rewrites { w1 } else { w1.without_rewrites() };
        let w1 = w1.compile().unwrap();
        group.bench_function(label("W1 rbm 784x500 cd-1 step", rewrites), |b| {
            b.iter(|| w1.call(std::slice::from_ref(&x)).unwrap())
        });

        let w2 = sgd_step(&[784, 500, 500, 10], true, rewrites);
        group.bench_function(label("W2 mlp 784-500-500-10 sgd step", rewrites), |b| {
            b.iter(|| w2.call(&feed).unwrap())
        });

        let w3 = sgd_step(
            &[784, 1000, 500, 250, 30, 250, 500, 1000, 784],
            false,
            rewrites,
        );
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

criterion_group!(benches, workloads);
criterion_main!(benches);
