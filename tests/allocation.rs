//! A warm training step allocates no arrays. The counting allocator counts every thread's
//! allocations while it is on, so the tests of this binary take turns (`ONE_AT_A_TIME`) and no
//! other test binary's tests run beside them.

use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::{Conv2d, Pool2d};
use ndarray::{Array1, Array2, Array4};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts the bytes allocated by the thread that set `COUNTING` (and by any thread while it is
/// set: rayon workers allocate for the run too).
struct Counter;
static COUNTING: AtomicBool = AtomicBool::new(false);
static BYTES: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static SIZES: [AtomicUsize; 4096] = [const { AtomicUsize::new(0) }; 4096];

unsafe impl GlobalAlloc for Counter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            let k = COUNT.fetch_add(1, Ordering::Relaxed);
            if k < SIZES.len() {
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

/// Held by each test for its whole run: the counters see every thread.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Bytes and count of the allocations of one warm call of `step` on `feed` (after ten calls to
/// warm it), averaged over five calls, with the sizes of all of them (up to 4096).
fn per_warm_call(step: &Function, feed: &[Tensor]) -> (usize, usize, Vec<usize>) {
    for _ in 0..10 {
        step.call(feed).unwrap();
    }
    BYTES.store(0, Ordering::SeqCst);
    COUNT.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let calls = 5;
    for _ in 0..calls {
        step.call(feed).unwrap();
    }
    COUNTING.store(false, Ordering::SeqCst);
    let (bytes, count) = (
        BYTES.load(Ordering::SeqCst) / calls,
        COUNT.load(Ordering::SeqCst) / calls,
    );
    let sizes: Vec<usize> = SIZES
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .take(count * calls)
        .collect();
    (bytes, count, sizes)
}

/// One SGD step (lr 0.01) of `loss` over `params`, returning the loss.
fn sgd_step(inputs: &[&Expr], loss: &Expr, params: &[&Expr]) -> Function {
    let grads = grad(loss, params).unwrap();
    let updates: Vec<(Expr, Expr)> = params
        .iter()
        .zip(&grads)
        .map(|(p, gp)| ((*p).clone(), *p - gp * 0.01))
        .collect();
    let pairs: Vec<(&Expr, &Expr)> = updates.iter().map(|(p, u)| (p, u)).collect();
    function(inputs, &[loss]).updates(&pairs).compile().unwrap()
}

#[test]
fn a_warm_rbm_step_allocates_no_arrays() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = Graph::new();
    let rng = RandomStream::new(&g, 3);
    let rbm = Rbm::new(&g, 784, 500, 1).unwrap();
    let cfg = CdConfig {
        batch: 100,
        ..CdConfig::default()
    };
    let step = rbm.trainer(&cfg, &rng).unwrap();
    let x: Tensor = Array2::from_shape_fn((100, 784), |(i, j)| ((i + j) % 2) as f32).into();
    let (bytes, count, sizes) = per_warm_call(&step, std::slice::from_ref(&x));
    let sizes: Vec<usize> = sizes.into_iter().filter(|&s| s > 200).collect();
    // One call moves about 7 MB through its buffers; what is left per call is the returned
    // Vec of outputs, the scalar output itself and the bookkeeping of the pool of threads.
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

/// A convnet's SGD step: its convolutions, their two gradients, a bias's gradient over
/// `[N, C, H, W]` and the pools run in pooled buffers and thread-local scratch, on fewer images
/// than threads and more: no allocation is the size of one of the step's arrays (or of the
/// partial sums of a reduction over them). What is left is the `gemm` crate's: it allocates a
/// packing buffer inside most products it is given, which only a packing of our own would
/// avoid.
#[test]
fn a_warm_convnet_step_allocates_no_arrays() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(1), Some(10), Some(10)]);
    let y = g.input("y", DType::F32, &[None, Some(6), Some(4), Some(4)]);
    let filters = |o, i| {
        Array4::from_shape_fn((o, i, 3, 3), |(a, b, r, c)| {
            ((a * 7 + b * 3 + r * 5 + c) % 11) as f32 * 0.04 - 0.2
        })
    };
    let w1 = g.shared("W1", filters(4, 1));
    let w2 = g.shared("W2", filters(6, 4));
    let b2 = g.shared("b2", Array1::<f32>::zeros(6));
    let c1 = x.conv2d(&w1, Conv2d::default()).relu();
    let c2 = (c1.conv2d(&w2, Conv2d::default().with_padding(1)) + b2.reshape(&[1, 6, 1, 1])).relu();
    let loss = (c2.max_pool2d(Pool2d::new(2)) - &y).square().mean();
    let step = sgd_step(&[&x, &y], &loss, &[&w1, &w2, &b2]);
    for n in [1, 8] {
        let images: Tensor = Array4::from_shape_fn((n, 1, 10, 10), |(i, _, r, c)| {
            ((i + r * c) % 5) as f32 * 0.2
        })
        .into();
        let targets: Tensor = Array4::from_elem((n, 6, 4, 4), 0.5f32).into();
        let (bytes, count, sizes) = per_warm_call(&step, &[images, targets]);
        let arrays: [&[usize]; 14] = [
            &[n, 1, 10, 10],
            &[n, 4, 8, 8],
            &[n, 6, 8, 8],
            &[n, 6, 4, 4],
            &[4, 1, 3, 3],
            &[6, 4, 3, 3],
            &[6],
            &[n, 6, 8],
            &[n, 6],
            &[6, 8, 8],
            &[6, 8],
            &[n, 4],
            &[4, 8, 8],
            &[9 * 4, 64],
        ];
        let bytes_of = |s: &[usize]| s.iter().product::<usize>() * 4;
        // Smaller ones are the size of bookkeeping too (a shape's Vec).
        for a in arrays.into_iter().filter(|a| bytes_of(a) >= 128) {
            assert!(
                !sizes.contains(&bytes_of(a)),
                "batch {n}: an array of {a:?} is allocated on a warm step ({bytes} bytes in \
                 {count} allocations per call: {sizes:?})"
            );
        }
        eprintln!("warm convnet step, batch {n}: {bytes} bytes in {count} allocations per call");
    }
}

/// An LSTM's SGD step by `Scan`: the forward loop hands its kept values to the backward loop
/// step by step, and both bodies run on the call's pool, so the buffers come back to it: a warm
/// step allocates none of the size of a step's values or of their stacks.
#[test]
fn a_warm_lstm_step_by_scan_allocates_no_arrays() {
    use gradus::models::recurrent::Lstm;
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (t, n, d, h) = (6, 16, 5, 32);
    let g = Graph::new();
    let xs = g.input("xs", DType::F32, &[None, None, Some(d)]);
    let lstm = Lstm::new(&g, "lstm", d, h, DType::F32, 2).unwrap();
    let zero = lstm.zero_state(&xs);
    let looped = lstm.scan(&xs, &zero, &zero).unwrap();
    let loss = looped.states[0].square().mean() + looped.outputs[0].mean();
    let step = sgd_step(&[&xs], &loss, &lstm.params());
    let x: Tensor =
        ndarray::Array3::from_shape_fn((t, n, d), |(a, b, c)| ((a + b * c) % 7) as f32 * 0.1)
            .into();
    let (bytes, count, sizes) = per_warm_call(&step, std::slice::from_ref(&x));
    let f32s = |k: usize| k * 4;
    let step_sizes = [
        f32s(n * h),
        f32s(n * 4 * h),
        f32s(t * n * h),
        f32s(t * n * 4 * h),
    ];
    let bad: Vec<usize> = sizes
        .iter()
        .copied()
        .filter(|s| step_sizes.contains(s))
        .collect();
    assert!(
        bad.is_empty(),
        "{bad:?} of {sizes:?}: {bytes} bytes in {count} allocations per call"
    );
    eprintln!("warm lstm step: {bytes} bytes in {count} allocations per call");
}

/// Which threads run a warm product does not decide whether it allocates: the panels it packs
/// (here all of `Wᵀ`, 1.6 MB) go into space from the function's pool, not into buffers of the
/// threads, which grow the first time a thread packs that much. Each call runs on a pool of
/// threads that have never run a product.
#[test]
fn a_warm_product_allocates_no_arrays_on_threads_new_to_it() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(500)]);
    let w = g.shared(
        "W",
        Array2::from_shape_fn((784, 500), |(i, j)| ((i * 3 + j) % 7) as f32 * 0.01),
    );
    let y = x.matmul(&w.t()).sum();
    let f = function(&[&x], &[&y]).compile().unwrap();
    let feed: Tensor = Array2::from_elem((100, 500), 0.5f32).into();
    for _ in 0..5 {
        f.call(std::slice::from_ref(&feed)).unwrap();
    }
    let mut large = Vec::new();
    for _ in 0..3 {
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // The workers are up before the counting starts.
        threads.install(|| rayon::join(|| (), || ()));
        COUNT.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        threads.install(|| f.call(std::slice::from_ref(&feed)).unwrap());
        COUNTING.store(false, Ordering::SeqCst);
        let count = COUNT.load(Ordering::SeqCst).min(SIZES.len());
        large.extend(
            SIZES[..count]
                .iter()
                .map(|s| s.load(Ordering::SeqCst))
                .filter(|&s| s >= 16 * 1024),
        );
    }
    assert!(large.is_empty(), "allocations of {large:?} bytes");
}
