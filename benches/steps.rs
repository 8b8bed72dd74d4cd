//! The training steps W1-W4 timed the way the peers' scripts time theirs: a warm-up, then the
//! median over repeated blocks of steps (per step). One line per workload, so that runs of two
//! builds, or of gradus and a peer, can alternate and be compared with the same timer.
//!
//! W1 binary RBM 784x500 CD-1 step; W2 MLP 784-500-500-10 sigmoid SGD step; W3 deep autoencoder
//! 784-1000-500-250-30-250-500-1000-784 SGD step (all float32, minibatch 100); W4 value and
//! gradient of the 2,000-stage elementwise chain over a 1000-vector (float64), and the time to
//! build, differentiate and compile it.
//!
//! L1: W1's five products alone (f32: v·W and v1·W 100x784x500, h·Wᵀ 100x500x784, vᵀ·h0 and
//! v1ᵀ·h1 784x100x500), each a compiled function as in `benches/gemm.rs`, called one after the
//! other: the steps per second that a CD-1 step made only of its products would reach.
//!
//! P: calls per second of a pure function (no updates, no draws) on one thread, and on two
//! threads calling it at once: they run side by side, not one at a time.
//!
//! W5: an LSTM SGD step (batch 64, 128 units, 28 steps of 28 inputs, softmax on the last state)
//! by `Scan` and unrolled, and the time to compile it at T = 28 and T = 1000 (`W5-scan`: the
//! `Scan` step alone, for profiling it).
//!
//! W7: a LeNet-5-like convnet SGD step (batch 100; `examples/convnet.rs`'s net); with
//! `W7_PROFILE=1`, its profile by kind of node.
//!
//! W1: with `W1_PROFILE=1`, its profile; with `W1_PRINT=1`, its program. W2: with
//! `W2_PRINT=1`, its program.
//!
//! W4: with `W4_PROFILE=1`, the chain's profile; with `W4_PRINT=1`, its program (try
//! `--stages 8`).
//!
//! W6: the time to compile the RBM CD-k step, unrolled (k = 1, 5, 25, 100) and as one loop.
//!
//! L1, L2, L3: the matrix products of W1's, W2's and W3's steps alone, one after the other (the
//! speed a step made only of them would have).
//!
//! `cargo bench -p gradus-bench --bench steps` runs all;
//! `cargo bench -p gradus-bench --bench steps -- W1 W3` a few. `--warmup N`, `--repeats N` and
//! `--steps N` replace the timer's fields for every workload chosen, `--stages N` W4's length
//! (`benches/peers/side_by_side.py` runs this binary so, beside the peers).

use std::time::Instant;

use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array1;
use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;

use common::args::{Args, Timer};
use common::{BATCH, batch, chain_of, sgd_step};

/// Milliseconds per step: `t.warmup` steps, then the median over `t.repeats` blocks of
/// `t.steps` steps.
fn time(t: Timer, mut step: impl FnMut()) -> f64 {
    for _ in 0..t.warmup {
        step();
    }
    let mut per_step: Vec<f64> = (0..t.repeats)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..t.steps {
                step();
            }
            start.elapsed().as_secs_f64() * 1e3 / t.steps as f64
        })
        .collect();
    per_step.sort_by(f64::total_cmp);
    per_step[t.repeats / 2]
}

/// `time` of calls of `f` on `feed`.
fn time_calls(t: Timer, f: &Function, feed: &[Tensor]) -> f64 {
    time(t, || {
        f.call(feed).unwrap();
    })
}

/// A compiled product of an f32 `m x k` by a `k x n` matrix, either stored transposed
/// (`ta`, `tb`), and a feed for it.
/// Whether W2 and W3 print their profiles (`STEPS_PROFILE=1`).
fn profiling() -> bool {
    std::env::var_os("STEPS_PROFILE").is_some()
}

fn product(m: usize, k: usize, n: usize, ta: bool, tb: bool) -> (Function, Vec<Tensor>) {
    let g = Graph::new();
    let a_shape = if ta { [k, m] } else { [m, k] };
    let b_shape = if tb { [n, k] } else { [k, n] };
    let a = g.input("a", DType::F32, &[Some(a_shape[0]), Some(a_shape[1])]);
    let b = g.input("b", DType::F32, &[Some(b_shape[0]), Some(b_shape[1])]);
    let lhs = if ta { a.t() } else { a.clone() };
    let rhs = if tb { b.t() } else { b.clone() };
    let f = function(&[&a, &b], &[&lhs.matmul(&rhs)]).compile().unwrap();
    let feed = vec![
        Tensor::full(&a_shape, 0.5, DType::F32),
        Tensor::full(&b_shape, 0.25, DType::F32),
    ];
    (f, feed)
}

/// The products of one SGD step of a dense net of `layers` on a batch of `BATCH`: each layer's
/// forward product, its weights' gradient, and (but the first layer's) its input's gradient.
fn mlp_products(layers: &[usize]) -> (Vec<(Function, Vec<Tensor>)>, f64) {
    let mut products = Vec::new();
    let mut flop = 0.0;
    for (i, w) in layers.windows(2).enumerate() {
        let (d_in, d_out) = (w[0], w[1]);
        products.push(product(BATCH, d_in, d_out, false, false));
        products.push(product(d_in, BATCH, d_out, true, false));
        flop += 2.0 * 2.0 * (BATCH * d_in * d_out) as f64;
        if i > 0 {
            products.push(product(BATCH, d_out, d_in, false, true));
            flop += 2.0 * (BATCH * d_in * d_out) as f64;
        }
    }
    (products, flop)
}

/// W1's timer (also the products' limit L1's); W2's is the same.
const W1_TIMER: Timer = Timer::new(30, 15, 20);

fn main() {
    let args = Args::parse(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("steps: {e}");
        std::process::exit(2)
    });
    let run = |name: &str| args.runs(name);
    let mut rng = StdRng::seed_from_u64(1);
    let x = batch(&mut rng);
    let labels = Tensor::from(Array1::from_shape_fn(BATCH, |i| (i % 10) as i64));
    if run("W1") {
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
        let w1 = rbm
            .trainer_builder(&cfg, &stream)
            .unwrap()
            .profile(std::env::var_os("W1_PROFILE").is_some())
            .compile()
            .unwrap();
        let ms = time_calls(args.timer(W1_TIMER), &w1, std::slice::from_ref(&x));
        println!("W1 rbm cd-1 step: {ms:.3} ms ({:.0} steps/s)", 1e3 / ms);
        if let Some(profile) = w1.profile() {
            println!("{profile}");
        }
        if std::env::var_os("W1_PRINT").is_some() {
            println!("{}", w1.debugprint());
        }
    }
    if run("L1") {
        let (b, h, v) = (BATCH, 500, 784);
        let products = [
            product(b, v, h, false, false), // v·W
            product(b, h, v, false, true),  // h0s·Wᵀ
            product(b, v, h, false, false), // v1·W
            product(v, b, h, true, false),  // vᵀ·h0
            product(v, b, h, true, false),  // v1ᵀ·h1
        ];
        let ms = time(args.timer(W1_TIMER), || {
            for (f, feed) in &products {
                f.call(feed).unwrap();
            }
        });
        let flop = 5.0 * 2.0 * (b * v * h) as f64;
        println!(
            "L1 w1's five products: {ms:.3} ms ({:.0} steps/s, {:.0} GFLOP/s)",
            1e3 / ms,
            flop / (ms * 1e6)
        );
    }
    // W2's and W3's products alone (L2, L3), one after the other, with their steps' timers.
    for (name, layers, timer) in [
        ("L2", &[784, 500, 500, 10][..], W1_TIMER),
        (
            "L3",
            &[784, 1000, 500, 250, 30, 250, 500, 1000, 784][..],
            Timer::new(10, 15, 5),
        ),
    ] {
        if !run(name) {
            continue;
        }
        let (products, flop) = mlp_products(layers);
        let ms = time(args.timer(timer), || {
            for (f, feed) in &products {
                f.call(feed).unwrap();
            }
        });
        println!(
            "{name} w{}'s {} products: {ms:.3} ms ({:.0} steps/s, {:.0} GFLOP/s)",
            &name[1..],
            products.len(),
            1e3 / ms,
            flop / (ms * 1e6)
        );
    }
    if run("W2") {
        let w2 = sgd_step(&[784, 500, 500, 10], true)
            .profile(profiling())
            .compile()
            .unwrap();
        let ms = time_calls(args.timer(W1_TIMER), &w2, &[x.clone(), labels]);
        println!("W2 mlp sgd step: {ms:.3} ms ({:.0} steps/s)", 1e3 / ms);
        if let Some(profile) = w2.profile() {
            println!("{profile}");
        }
        if std::env::var_os("W2_PRINT").is_some() {
            println!("{}", w2.debugprint());
        }
    }
    if run("W3") {
        let layers = [784, 1000, 500, 250, 30, 250, 500, 1000, 784];
        let w3 = sgd_step(&layers, false)
            .profile(profiling())
            .compile()
            .unwrap();
        let ms = time_calls(
            args.timer(Timer::new(10, 15, 5)),
            &w3,
            std::slice::from_ref(&x),
        );
        println!(
            "W3 deep autoencoder sgd step: {ms:.3} ms ({:.0} steps/s)",
            1e3 / ms
        );
        if let Some(profile) = w3.profile() {
            println!("{profile}");
        }
    }
    if run("P") {
        // Small enough that each call's kernels run on one thread.
        let g = Graph::new();
        let v = g.vector("v", DType::F64);
        let w = g.shared("w", vec![0.5f64; 256]);
        let mut y = &v * &w;
        for _ in 0..8 {
            y = (y.tanh() * 1.1).exp() * &w;
        }
        let f = function(&[&v], &[&y.sum()]).compile().unwrap();
        let feed = [Tensor::from(vec![0.1f64; 256])];
        let rate = |threads: usize| {
            let calls = 2000 / threads;
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..calls {
                            f.call(&feed).unwrap();
                        }
                    });
                }
            });
            (calls * threads) as f64 / start.elapsed().as_secs_f64()
        };
        rate(1);
        let mut one: Vec<f64> = (0..5).map(|_| rate(1)).collect();
        let mut two: Vec<f64> = (0..5).map(|_| rate(2)).collect();
        one.sort_by(f64::total_cmp);
        two.sort_by(f64::total_cmp);
        println!(
            "P pure function: {:.0} calls/s on 1 thread, {:.0} on 2 threads at once ({:.2}x)",
            one[2],
            two[2],
            two[2] / one[2]
        );
    }
    if run("W5") || run("W5-scan") {
        for (name, scan) in [("scan", true), ("unroll", false)] {
            if !run("W5") && !scan {
                continue;
            }
            let (builder, feed) = common::lstm_step(28, scan);
            let f = builder
                .profile(std::env::var_os("W5_PROFILE").is_some())
                .compile()
                .unwrap();
            // The peers' timer for W5: 5 warm-up steps, the median of 20 blocks of 20.
            let ms = time_calls(args.timer(Timer::new(5, 20, 20)), &f, &feed);
            println!(
                "W5 lstm sgd step ({name}): {ms:.3} ms ({:.0} steps/s)",
                1e3 / ms
            );
            if let Some(profile) = f.profile() {
                println!("{profile}");
            }
            if std::env::var_os("W5_PRINT").is_some() {
                println!("{}", f.debugprint());
            }
        }
        for steps in [28, 1000] {
            for (name, scan) in [("scan", true), ("unroll", false)] {
                if !run("W5") {
                    continue;
                }
                let mut times: Vec<f64> = (0..5)
                    .map(|_| {
                        let (builder, _) = common::lstm_step(steps, scan);
                        let start = Instant::now();
                        builder.compile().unwrap();
                        start.elapsed().as_secs_f64() * 1e3
                    })
                    .collect();
                times.sort_by(f64::total_cmp);
                println!("W5 lstm compile ({name}, T = {steps}): {:.2} ms", times[2]);
            }
        }
    }
    if run("W7") {
        // The peers' timer: 5 warm-up steps, the median of 20 blocks of 10.
        let (builder, feed) = common::convnet_step();
        let f = builder
            .profile(std::env::var_os("W7_PROFILE").is_some())
            .compile()
            .unwrap();
        let ms = time_calls(args.timer(Timer::new(5, 20, 10)), &f, &feed);
        println!("W7 convnet sgd step: {ms:.3} ms ({:.0} steps/s)", 1e3 / ms);
        if let Some(profile) = f.profile() {
            println!("{profile}");
        }
    }
    if run("W6") {
        // The RBM CD-k step compiled with its chain unrolled (k known when it compiles) and as
        // one loop (k given at each call): the median of 5 compiles each.
        let compile = |k: Option<usize>| {
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    let g = Graph::new();
                    let stream = RandomStream::new(&g, 1);
                    let rbm = Rbm::new(&g, 784, 500, 1).unwrap();
                    let cfg = CdConfig {
                        k: k.unwrap_or(1),
                        batch: BATCH,
                        ..CdConfig::default()
                    };
                    let start = Instant::now();
                    match k {
                        Some(_) => drop(rbm.trainer(&cfg, &stream).unwrap()),
                        None => drop(rbm.trainer_with_steps_per_call(&cfg, &stream).unwrap()),
                    }
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[2]
        };
        for k in [1, 5, 25, 100] {
            println!(
                "W6 rbm cd-{k} compile (unrolled): {:.2} ms",
                compile(Some(k))
            );
        }
        println!(
            "W6 rbm cd-k compile (one loop, any k): {:.2} ms",
            compile(None)
        );
    }
    if run("W4") {
        let stages = args.stages.unwrap_or(common::STAGES);
        let start = Instant::now();
        let (_g, x, cost) = chain_of(stages);
        let gx = grad(&cost, &[&x]).unwrap().remove(0);
        let w4 = function(&[&x], &[&cost, &gx])
            .profile(std::env::var_os("W4_PROFILE").is_some())
            .compile()
            .unwrap();
        let compile_ms = start.elapsed().as_secs_f64() * 1e3;
        let input: Tensor = vec![0.5f64; common::N].into();
        let ms = time_calls(args.timer(Timer::new(10, 15, 5)), &w4, &[input]);
        println!(
            "W4 chain value and gradient: {ms:.3} ms (build + grad + compile {compile_ms:.1} ms) \
             [{stages} stages]"
        );
        if let Some(profile) = w4.profile() {
            println!("{profile}");
        }
        if std::env::var_os("W4_PRINT").is_some() {
            println!("{}", w4.debugprint());
        }
    }
}
