//! How compiling grows with the graph: the elementwise chain of `benches/chain.rs` built with
//! 1k to 100k nodes (and as many again for its gradient), with the time to build it, to take
//! its gradient and to compile value and gradient, and the peak resident memory of each size
//! (Linux: the high-water mark is reset before each size).
//!
//! `cargo bench -p gradus-bench --bench scale` (sizes in nodes: `-- 1000 100000`; with
//! `SCALE_STATS=1`, the optimizer's statistics of each size too)

use std::time::Instant;

use gradus::prelude::*;

mod common;

/// Peak resident memory since the last reset, in MB; `None` where /proc is not there.
fn peak_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Reset the peak to what is resident now (`clear_refs` 5, Linux 4.0 and later).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![1_000, 10_000, 30_000, 100_000];
    }
    println!("| nodes | with grad | build ms | grad ms | compile ms | peak MB |");
    println!("| --- | --- | --- | --- | --- | --- |");
    // Nodes per stage, measured on a small one.
    let per_stage = common::chain_of(100).0.len() as f64 / 100.0;
    for target in sizes {
        let stages = ((target as f64 / per_stage).round() as usize).max(1);
        reset_peak();
        let t0 = Instant::now();
        let (g, x, cost) = common::chain_of(stages);
        let built = g.len();
        let t1 = Instant::now();
        let dx = grad(&cost, &[&x]).unwrap().remove(0);
        let t2 = Instant::now();
        let f = function(&[&x], &[&cost, &dx]).compile().unwrap();
        let t3 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        let peak = peak_mb().map_or("-".into(), |p| format!("{p:.0}"));
        println!(
            "| {built} | {} | {:.1} | {:.1} | {:.1} | {peak} |",
            g.len(),
            ms(t0, t1),
            ms(t1, t2),
            ms(t2, t3)
        );
        if std::env::var("SCALE_STATS").is_ok() {
            println!("{}", f.rewrite_stats());
        }
        drop(f);
    }
}
