//! The fast executor: fused kernels, gemm specialisation, profiling, the debug mode, and a warm
//! training step that allocates no arrays.

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

fn close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
}

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

#[test]
fn an_elementwise_tree_with_broadcasting_is_one_kernel() {
    for dtype in [DType::F32, DType::F64] {
        let g = Graph::new();
        let x = g.input("x", dtype, &[None, Some(5)]);
        let b = g.input("b", dtype, &[Some(5)]);
        let s = (&x + &b).sigmoid() * &x - (&x * 2.0).tanh();
        let (y, line) = (s.exp(), line!());
        let f = function(&[&x, &b], &[&y]).compile().unwrap();
        let listing = f.debugprint();
        assert_eq!(listing.matches("fused{").count(), 1, "{listing}");
        for op in ["sigmoid", "tanh", "exp"] {
            assert_eq!(listing.matches(op).count(), 1, "{listing}");
        }
        // The kernel keeps the line that built the region's result.
        assert!(
            listing.contains(&format!("{}:{line}", file!())),
            "{listing}"
        );
        let r = function(&[&x, &b], &[&y])
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        let feed = [
            Tensor::from_f64(
                &[3, 5],
                (0..15).map(|i| i as f64 / 7.0 - 1.0).collect(),
                dtype,
            )
            .unwrap(),
            Tensor::from_f64(&[5], vec![0.1, -0.2, 0.3, -0.4, 0.5], dtype).unwrap(),
        ];
        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
        close(&f.call(&feed).unwrap()[0], &r.call(&feed).unwrap()[0], tol);
    }
}

#[test]
fn a_long_chain_fuses_into_few_kernels_and_keeps_its_value() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let mut y = x.clone();
    for i in 0..500 {
        y = if i % 2 == 0 {
            y.sin() * 1.01
        } else {
            y.tanh() + 0.1
        };
    }
    let f = function(&[&x], &[&y]).compile().unwrap();
    let r = function(&[&x], &[&y])
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    assert!(f.len() < 20, "{} nodes", f.len());
    let feed: Tensor = vec![0.3, -0.7, 1.1].into();
    close(
        &f.call(std::slice::from_ref(&feed)).unwrap()[0],
        &r.call(&[feed]).unwrap()[0],
        1e-13,
    );
}

#[test]
fn matmul_with_transposes_bias_and_factor_is_one_gemm() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(4), Some(3)]);
    let b = g.input("b", DType::F64, &[Some(5), Some(4)]);
    let c = g.input("c", DType::F64, &[Some(5)]);
    let y = (a.t().matmul(&b.t()) * 0.5 + &c).sigmoid();
    let f = function(&[&a, &b, &c], &[&y]).compile().unwrap();
    let listing = f.debugprint();
    assert!(listing.contains("gemm{aᵀ·bᵀ, alpha=0.5}"), "{listing}");
    assert!(
        !listing.contains("transpose") && !listing.contains("matmul"),
        "{listing}"
    );
    let r = function(&[&a, &b, &c], &[&y])
        .mode(Mode::Reference)
        .compile()
        .unwrap();
    let feed = [
        Tensor::from_f64(
            &[4, 3],
            (0..12).map(|i| i as f64 * 0.1).collect(),
            DType::F64,
        )
        .unwrap(),
        Tensor::from_f64(
            &[5, 4],
            (0..20).map(|i| 1.0 - i as f64 * 0.1).collect(),
            DType::F64,
        )
        .unwrap(),
        Tensor::from_f64(&[5], vec![0.0, 1.0, -1.0, 2.0, 0.5], DType::F64).unwrap(),
    ];
    close(
        &f.call(&feed).unwrap()[0],
        &r.call(&feed).unwrap()[0],
        1e-13,
    );
}

#[test]
fn the_profile_counts_calls_and_time_per_node() {
    let g = Graph::new();
    let x = g.matrix("x", DType::F32);
    let w = g.shared("w", Array2::<f32>::eye(3));
    let y = x.matmul(&w).sigmoid().sum();
    let f = function(&[&x], &[&y]).profile(true).compile().unwrap();
    let feed: Tensor = Array2::<f32>::ones((2, 3)).into();
    for _ in 0..4 {
        f.call(std::slice::from_ref(&feed)).unwrap();
    }
    let p = f.profile().unwrap();
    assert_eq!(p.calls, 4);
    assert!(p.nodes.iter().all(|n| n.calls == 4));
    let kinds: Vec<String> = p.by_kind().into_iter().map(|k| k.0).collect();
    assert!(kinds.contains(&"gemm".to_string()), "{kinds:?}");
    let text = p.to_string();
    assert!(text.contains("4 calls") && text.contains("gemm"), "{text}");
    assert!(
        function(&[&x], &[&y])
            .compile()
            .unwrap()
            .profile()
            .is_none()
    );
}

#[test]
fn the_debug_mode_passes_a_training_step_and_matches_the_fast_plan() {
    let g = Graph::new();
    let rng = RandomStream::new(&g, 5);
    let rbm = Rbm::new(&g, 12, 6, 1).unwrap();
    let cfg = CdConfig {
        batch: 4,
        ..CdConfig::default()
    };
    let step = rbm
        .trainer_builder(&cfg, &rng)
        .unwrap()
        .mode(Mode::Debug)
        .compile()
        .unwrap();
    let x: Tensor = Array2::from_shape_fn((4, 12), |(i, j)| ((i * j) % 2) as f32).into();
    for _ in 0..3 {
        step.call(std::slice::from_ref(&x)).unwrap();
    }
}

/// Kernels of one shape that cannot fuse (each result is an output, or read twice) run as one
/// chunked loop; it must compute what the reference does, in place and with broadcast operands,
/// on one chunk and on many (split over the pool).
#[test]
fn a_run_of_kernels_of_one_shape_computes_what_the_reference_does() {
    for (dtype, rows) in [(DType::F64, 3), (DType::F64, 300), (DType::F32, 257)] {
        let g = Graph::new();
        let x = g.input("x", dtype, &[None, Some(257)]);
        let b = g.input("b", dtype, &[Some(257)]);
        // Each stage is an output and feeds the next: one kernel per stage, all [rows, 257].
        let s1 = (&x + &b).tanh();
        let s2 = (&s1 * &x).sigmoid();
        let s3 = (&s2 - &s1).exp() * &b;
        let s4 = (&s3 * 0.5 + &s2).sin();
        let s5 = &s4 * &s4 + &b;
        let outs = [&s1, &s2, &s3, &s4, &s5];
        let f = function(&[&x, &b], &outs).compile().unwrap();
        let listing = f.debugprint();
        assert!(listing.contains("run as one loop"), "{listing}");
        let r = function(&[&x, &b], &outs)
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        let feed = [
            Tensor::from_f64(
                &[rows, 257],
                (0..rows * 257)
                    .map(|i| (i % 97) as f64 / 50.0 - 1.0)
                    .collect(),
                dtype,
            )
            .unwrap(),
            Tensor::from_f64(&[257], (0..257).map(|i| i as f64 / 300.0).collect(), dtype).unwrap(),
        ];
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-13 };
        for _ in 0..2 {
            // A second call runs on buffers from the pool.
            for (got, want) in f.call(&feed).unwrap().iter().zip(r.call(&feed).unwrap()) {
                close(got, &want, tol);
            }
        }
    }
}

/// A run-time shape error in a later kernel of a run names the op and line that fail.
#[test]
fn a_shape_error_inside_a_kernel_run_names_the_op_and_line() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(3)]);
    let y = g.input("y", DType::F64, &[None, Some(3)]);
    let a = x.exp();
    let (sum, line) = (&x + &y, line!());
    let c = sum.tanh();
    let f = function(&[&x, &y], &[&a, &c]).compile().unwrap();
    assert!(
        f.debugprint().contains("run as one loop"),
        "{}",
        f.debugprint()
    );
    let feed = [
        Tensor::full(&[2, 3], 0.5, DType::F64),
        Tensor::full(&[4, 3], 0.5, DType::F64),
    ];
    let err = f.call(&feed).unwrap_err().to_string();
    assert!(err.contains("add"), "{err}");
    assert!(err.contains(&format!("{}:{line}", file!())), "{err}");
}

/// A product added onto another product accumulates in the first one's buffer when nothing
/// else reads it, and leaves it alone when something does (here, when it is also an output).
#[test]
fn a_product_accumulates_onto_a_dying_bias_and_only_then() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[None, Some(40)]);
    let b = g.input("b", DType::F64, &[None, Some(30)]);
    let c = g.input("c", DType::F64, &[None, Some(40)]);
    let d = g.input("d", DType::F64, &[None, Some(30)]);
    let first = a.t().matmul(&b);
    let second = c.t().matmul(&d) + &first;
    let value = |n: usize, k: usize, s: f64| {
        Tensor::from_f64(
            &[n, k],
            (0..n * k).map(|i| ((i % 13) as f64 - 6.0) * s).collect(),
            DType::F64,
        )
        .unwrap()
    };
    let feed = [
        value(50, 40, 0.1),
        value(50, 30, 0.2),
        value(70, 40, 0.3),
        value(70, 30, 0.05),
    ];
    for outs in [vec![&second], vec![&second, &first]] {
        let f = function(&[&a, &b, &c, &d], &outs).compile().unwrap();
        let listing = f.debugprint();
        assert_eq!(listing.matches("gemm").count(), 2, "{listing}");
        let r = function(&[&a, &b, &c, &d], &outs)
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        for _ in 0..2 {
            for (got, want) in f.call(&feed).unwrap().iter().zip(r.call(&feed).unwrap()) {
                close(got, &want, 1e-12);
            }
        }
    }
}
