//! Same seed, same numbers, whatever the number of threads: random draws are a function of
//! (seed, call counter, node key, element index), and the parallel kernels split work without
//! changing any element's arithmetic.

mod common;

use common::in_pool;
use gradus::data::Mnist;
use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::s;

/// Train a small RBM for a few CD-1 steps and return its weights and the monitor values.
fn train(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mnist = Mnist::bundled().unwrap();
    let g = Graph::new();
    let stream = RandomStream::new(&g, seed);
    let rbm = Rbm::new(&g, 784, 64, seed).unwrap();
    let cfg = CdConfig {
        batch: 100,
        ..CdConfig::default()
    };
    let step = rbm.trainer(&cfg, &stream).unwrap();
    let mut monitor = Vec::new();
    for b in 0..5 {
        let x = mnist
            .train_images
            .slice(s![b * 100..(b + 1) * 100, ..])
            .to_owned();
        monitor.push(step.call(&[x.into()]).unwrap()[0].item().unwrap());
    }
    (rbm.w.get_value().unwrap().to_f64_vec(), monitor)
}

#[test]
fn rbm_training_is_bitwise_identical_on_one_and_two_threads() {
    let one = in_pool(1, || train(7));
    let two = in_pool(2, || train(7));
    assert_eq!(one.1, two.1, "monitor values differ");
    assert!(one.0 == two.0, "weights differ between 1 and 2 threads");
    // And the seed matters.
    let other = in_pool(2, || train(8));
    assert_ne!(one.1, other.1);
}

#[test]
fn large_random_draws_are_identical_on_one_and_two_threads() {
    let draw = || {
        let g = Graph::new();
        let like = g.input("like", DType::F32, &[Some(300), Some(300)]);
        let rng = RandomStream::new(&g, 3);
        let y = &rng.normal(&like) + &rng.uniform(&like);
        let f = function(&[&like], &[&y]).compile().unwrap();
        f.call(&[Tensor::full(&[300, 300], 0.0, DType::F32)])
            .unwrap()
            .remove(0)
    };
    assert_eq!(in_pool(1, draw), in_pool(2, draw));
}
