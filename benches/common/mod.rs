//! The workloads the benches share: the SGD steps of W2 and W3 and the chain of W4.

// Each bench uses part of this module.
#![allow(dead_code)]

pub mod args;

use gradus::FunctionBuilder;
use gradus::optim::{Optimizer, as_pairs};
use gradus::prelude::*;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Minibatch size of W1-W3.
pub const BATCH: usize = 100;

/// A minibatch of uniform "images".
pub fn batch(rng: &mut StdRng) -> Tensor {
    Tensor::from(Array2::from_shape_fn((BATCH, 784), |_| rng.random::<f32>()))
}

/// An SGD step of a sigmoid network with the given layer sizes and a loss on its output: the
/// softmax cross-entropy against labels (`classify`, W2) or the cross-entropy of a
/// reconstruction of the input (W3). Float32, Glorot-uniform weights from a fixed seed.
pub fn sgd_step(sizes: &[usize], classify: bool) -> FunctionBuilder {
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
    function(&inputs, &[&loss]).updates(&as_pairs(&updates))
}

/// Stages of the chain of W4.
pub const STAGES: usize = 2000;
/// Length of its vector.
pub const N: usize = 1000;

/// The chain of W4: stage i applies one of four elementwise maps in turn to a float64 vector.
/// Its graph, its input, and the sum of its output.
pub fn chain() -> (Graph, Expr, Expr) {
    chain_of(STAGES)
}

/// [`chain`] with `stages` stages.
pub fn chain_of(stages: usize) -> (Graph, Expr, Expr) {
    let g = Graph::new();
    let x0 = g.input("x", DType::F64, &[Some(N)]);
    let mut x = x0.clone();
    for i in 0..stages {
        x = match i % 4 {
            0 => x.sin() * 1.0001 + &x * 0.5,
            1 => x.tanh(),
            2 => (-(&x * &x)).exp(),
            _ => x.sigmoid(),
        };
    }
    let cost = x.sum();
    (g, x0, cost)
}

/// W5: an LSTM of 128 units over `steps` steps of 28 inputs, minibatch 64, a softmax on the
/// last state, one SGD step (lr 0.01); the loop by `Scan` (`scan`) or unrolled into the graph.
/// Float32, sequences `[steps, 64, 28]`. The builder and a feed (random sequences, labels).
pub fn lstm_step(steps: usize, scan: bool) -> (FunctionBuilder, Vec<Tensor>) {
    use gradus::models::recurrent::Lstm;
    let (n, d, hidden) = (LSTM_BATCH, 28, 128);
    let mut rng = StdRng::seed_from_u64(0);
    let g = Graph::new();
    let xs = g.input("xs", DType::F32, &[Some(steps), None, Some(d)]);
    let y = g.input("y", DType::I64, &[None]);
    let lstm = Lstm::new(&g, "lstm", d, hidden, DType::F32, 0).unwrap();
    let zero = lstm.zero_state(&xs);
    let last = if scan {
        lstm.scan(&xs, &zero, &zero).unwrap().states[0].clone()
    } else {
        lstm.unroll(&xs, &zero, &zero, steps).0
    };
    let s = (6.0 / (hidden + 10) as f32).sqrt();
    let w = g.shared(
        "W_out",
        Array2::from_shape_fn((hidden, 10), |_| rng.random_range(-s..s)),
    );
    let b = g.shared("b_out", Array1::<f32>::zeros(10));
    let loss = (last.matmul(&w) + &b).softmax_cross_entropy(&y).mean();
    let mut params = lstm.params();
    params.extend([&w, &b]);
    let grads = grad(&loss, &params).unwrap();
    let updates = Optimizer::sgd(0.01).updates(&params, &grads).unwrap();
    let feed = vec![
        Tensor::from(ndarray::Array3::from_shape_fn((steps, n, d), |_| {
            rng.random::<f32>()
        })),
        Tensor::from(Array1::from_shape_fn(n, |i| (i % 10) as i64)),
    ];
    (
        function(&[&xs, &y], &[&loss]).updates(&as_pairs(&updates)),
        feed,
    )
}

/// Minibatch size of W5.
pub const LSTM_BATCH: usize = 64;

/// W7: one SGD step (lr 0.01) of the LeNet-5-like net of `examples/convnet.rs` (conv 5x5x20,
/// max-pool 2, conv 5x5x50, max-pool 2, 500 ReLU, softmax) on a batch of 100 "images".
pub fn convnet_step() -> (FunctionBuilder, Vec<Tensor>) {
    use gradus::{Conv2d, Pool2d};
    use ndarray::Array4;
    let mut rng = StdRng::seed_from_u64(0);
    let mut filters = |o: usize, i: usize| {
        let s = (6.0 / (i * 25 + o * 25 / 4) as f32).sqrt();
        Array4::from_shape_fn((o, i, 5, 5), |_| rng.random_range(-s..s))
    };
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let y = g.input("y", DType::I64, &[None]);
    let w1 = g.shared("W1", filters(20, 1));
    let w2 = g.shared("W2", filters(50, 20));
    let b1 = g.shared("b1", Array1::<f32>::zeros(20));
    let b2 = g.shared("b2", Array1::<f32>::zeros(50));
    let mut layer = |name: &str, n_in: usize, n_out: usize| {
        let s = (6.0 / (n_in + n_out) as f32).sqrt();
        let w = Array2::from_shape_fn((n_in, n_out), |_| rng.random_range(-s..s));
        (
            g.shared(&format!("W{name}"), w),
            g.shared(&format!("b{name}"), Array1::<f32>::zeros(n_out)),
        )
    };
    let (w3, b3) = layer("3", 800, 500);
    let (w4, b4) = layer("4", 500, 10);
    let pool = Pool2d::new(2);
    let images = x.reshape(&[-1, 1, 28, 28]);
    let c1 = (images.conv2d(&w1, Conv2d::default()) + b1.reshape(&[1, 20, 1, 1])).relu();
    let c2 =
        (c1.max_pool2d(pool).conv2d(&w2, Conv2d::default()) + b2.reshape(&[1, 50, 1, 1])).relu();
    let h = (c2.max_pool2d(pool).reshape(&[-1, 800]).matmul(&w3) + &b3).relu();
    let loss = (h.matmul(&w4) + &b4).softmax_cross_entropy(&y).mean();
    let params = [&w1, &b1, &w2, &b2, &w3, &b3, &w4, &b4];
    let grads = grad(&loss, &params).unwrap();
    let updates = Optimizer::sgd(0.01).updates(&params, &grads).unwrap();
    let feed = vec![
        batch(&mut rng),
        Tensor::from(Array1::from_shape_fn(BATCH, |i| (i % 10) as i64)),
    ];
    (
        function(&[&x, &y], &[&loss]).updates(&as_pairs(&updates)),
        feed,
    )
}
