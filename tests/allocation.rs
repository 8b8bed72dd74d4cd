//! A warm training step allocates no arrays. Alone in its test binary: the counting allocator
//! counts every thread's allocations while it is on, so no other test may run beside it.

use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array2;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts the bytes allocated by the thread that set `COUNTING` (and by any thread while it is
/// set: rayon workers allocate for the run too).
struct Counter;
static COUNTING: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static SIZES: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

unsafe impl GlobalAlloc for Counter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            let k = COUNT.fetch_add(1, Ordering::Relaxed);
            if k < 256 {
                SIZES[k].store(layout.size(), Ordering::Relaxed);
            }
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counter = Counter;

#[test]
fn a_warm_rbm_step_allocates_no_arrays() {
    let g = Graph::new();
    let rng = RandomStream::new(&g, 3);
    let rbm = Rbm::new(&g, 784, 500, 1).unwrap();
    let cfg = CdConfig {
        batch: 100,
        ..CdConfig::default()
    };
    let step = rbm.trainer(&cfg, &rng).unwrap();
    let x: Tensor = Array2::from_shape_fn((100, 784), |(i, j)| ((i + j) % 2) as f32).into();
    for _ in 0..10 {
        step.call(std::slice::from_ref(&x)).unwrap();
    }
    BYTES.store(0, Ordering::SeqCst);
    COUNT.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let calls = 5;
    for _ in 0..calls {
        step.call(std::slice::from_ref(&x)).unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let (bytes, count) = (
        BYTES.load(Ordering::SeqCst) / calls,
        COUNT.load(Ordering::SeqCst) / calls,
    );
    // One call moves about 7 MB through its buffers; what is left per call is the returned
    // Vec of outputs, the scalar output itself and the bookkeeping of the pool of threads.
    let sizes: Vec<usize> = SIZES
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .take(count * calls)
        .filter(|&s| s > 200)
        .collect();
    assert!(
        bytes < 4096,
        "{sizes:?} {bytes} bytes in {count} allocations per call (peak of the plan {} bytes)",
        step.peak_bytes()
    );
    assert!(step.peak_bytes() > 1_000_000);
    eprintln!(
        "warm rbm step: {bytes} bytes in {count} allocations per call, plan peak {} bytes",
        step.peak_bytes()
    );
}
