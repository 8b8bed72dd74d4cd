//! The training steps W1-W4 timed the way the peers' scripts time theirs: a warm-up, then the
//! median over repeated blocks of steps (per step). One line per workload, so that runs of two
//! builds, or of gradus and a peer, can alternate and be compared with the same timer.
//!
//! W1 binary RBM 784x500 CD-1 step; W2 MLP 784-500-500-10 sigmoid SGD step; W3 deep autoencoder
//! 784-1000-500-250-30-250-500-1000-784 SGD step (all float32, minibatch 100); W4 value and
//! gradient of the 2,000-stage elementwise chain over a 1000-vector (float64).
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
//! W6: the time to compile the RBM CD-k step, unrolled (k = 1, 5, 25, 100) and as one loop.
//!
//! `cargo bench -p gradus-bench --bench steps` runs all;
//! `cargo bench -p gradus-bench --bench steps -- W1 W3` a few.

use std::time::Instant;

use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array1;
use rand::SeedableRng;
use rand::rngs::StdRng;

mod common;

use common::{BATCH, batch, chain, sgd_step};

/// Milliseconds per step: `warm` steps, then the median over `blocks` blocks of `steps` steps.
fn time(f: &Function, feed: &[Tensor], warm: usize, blocks: usize, steps: usize) -> f64 {
    for _ in 0..warm {
        f.call(feed).unwrap();
    }
    let mut per_step: Vec<f64> = (0..blocks)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..steps {
                f.call(feed).unwrap();
            }
            start.elapsed().as_secs_f64() * 1e3 / steps as f64
        })
        .collect();
    per_step.sort_by(f64::total_cmp);
    per_step[blocks / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; the other arguments choose workloads.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    let mut rng = StdRng::seed_from_u64(1);
    let x = batch(&mut rng);
    let labels = Tensor::from(Array1::from_shape_fn(BATCH, |i| (i % 10) as i64));
    if run("W1") {
        let g = Graph::new();
        let stream = RandomStream::new(&g, 1);
        let rbm = Rbm::new(&g, 784, 500, 1).unwrap();
        let cfg = CdConfig {
            batch: BATCH,
            ..CdConfig::default()
        };
        let w1 = rbm.trainer(&cfg, &stream).unwrap();
        let ms = time(&w1, std::slice::from_ref(&x), 30, 15, 20);
        println!("W1 rbm cd-1 step: {ms:.3} ms ({:.0} steps/s)", 1e3 / ms);
    }
    if run("W2") {
        let w2 = sgd_step(&[784, 500, 500, 10], true).compile().unwrap();
        let ms = time(&w2, &[x.clone(), labels], 30, 15, 20);
        println!("W2 mlp sgd step: {ms:.3} ms ({:.0} steps/s)", 1e3 / ms);
    }
    if run("W3") {
        let layers = [784, 1000, 500, 250, 30, 250, 500, 1000, 784];
        let w3 = sgd_step(&layers, false).compile().unwrap();
        let ms = time(&w3, std::slice::from_ref(&x), 10, 15, 5);
        println!(
            "W3 deep autoencoder sgd step: {ms:.3} ms ({:.0} steps/s)",
            1e3 / ms
        );
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
            let ms = time(&f, &feed, 5, 20, 20);
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
        let ms = time(&f, &feed, 5, 20, 10);
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
        let (_g, x, cost) = chain();
        let gx = grad(&cost, &[&x]).unwrap().remove(0);
        let w4 = function(&[&x], &[&cost, &gx]).compile().unwrap();
        let input: Tensor = vec![0.5f64; 1000].into();
        let ms = time(&w4, &[input], 10, 15, 5);
        println!("W4 chain value and gradient: {ms:.3} ms");
    }
}
