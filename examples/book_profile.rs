//! The code of the book's chapter "Performance" (`book/src/performance.md`): profile one
//! compiled RBM training step and print the optimized program.
//!
//! Run with `cargo run --release --example book_profile`.

use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array2;

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: profile
    let g = Graph::new();
    let rng = RandomStream::new(&g, 1);
    let rbm = Rbm::new(&g, 784, 500, 1)?;
    let cfg = CdConfig {
        batch: 100,
        ..CdConfig::default()
    };
    let step = rbm.trainer_builder(&cfg, &rng)?.profile(true).compile()?;
    let batch: Tensor =
        Array2::from_shape_fn((100, 784), |(i, j)| ((i * j) % 7) as f32 / 7.0).into();
    for _ in 0..50 {
        step.call(std::slice::from_ref(&batch))?;
    }
    let profile = step.profile().expect("compiled with profile(true)");
    print!("{profile}");
    // ANCHOR_END: profile

    // ANCHOR: listing
    println!("{} nodes after optimization:", step.len());
    print!("{}", step.debugprint());
    print!("{}", step.rewrite_stats());
    println!("peak memory of one call: {} kB", step.peak_bytes() / 1000);
    // ANCHOR_END: listing
    Ok(())
}
