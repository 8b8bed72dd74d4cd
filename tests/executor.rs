//! The fast executor: fused kernels, kernel runs, gemm specialisation, products side by side,
//! profiling and the debug mode. (A warm step allocating nothing is `tests/allocation.rs`.)

mod common;

use common::close;
use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::Array2;

/// Two calls of the fast plan `f` (the second on buffers from the pool) agree with the
/// reference plan `r` within `tol`.
fn agrees_with_reference_twice(f: &Function, r: &Function, feed: &[Tensor], tol: f64) {
    for _ in 0..2 {
        for (got, want) in f.call(feed).unwrap().iter().zip(r.call(feed).unwrap()) {
            close(got, &want, tol);
        }
    }
}

/// An `[n, k]` tensor of `((i % period) - period / 2) * scale` over the flat index `i`.
fn sawtooth(n: usize, k: usize, period: usize, scale: f64, dtype: DType) -> Tensor {
    let half = (period / 2) as f64;
    Tensor::from_f64(
        &[n, k],
        (0..n * k)
            .map(|i| ((i % period) as f64 - half) * scale)
            .collect(),
        dtype,
    )
    .unwrap()
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
fn a_reference_program_is_profiled_too() {
    let g = Graph::new();
    let x = g.matrix("x", DType::F64);
    let y = x.exp().sum();
    let f = function(&[&x], &[&y])
        .mode(Mode::Reference)
        .profile(true)
        .compile()
        .unwrap();
    let feed: Tensor = Array2::<f64>::ones((2, 3)).into();
    for _ in 0..3 {
        f.call(std::slice::from_ref(&feed)).unwrap();
    }
    let p = f.profile().unwrap();
    assert_eq!(p.calls, 3);
    assert!(p.nodes.iter().all(|n| n.calls == 3), "{p}");
}

/// Three CD steps of an RBM compiled in the debug mode, which fails a call where the fast plan
/// differs from the reference; returns the listing of the fast plan.
fn debug_mode_cd_steps(visible: usize, hidden: usize, batch: usize) -> String {
    let g = Graph::new();
    let rng = RandomStream::new(&g, 5);
    let rbm = Rbm::new(&g, visible, hidden, 1).unwrap();
    let cfg = CdConfig {
        batch,
        ..CdConfig::default()
    };
    let step = rbm
        .trainer_builder(&cfg, &rng)
        .unwrap()
        .mode(Mode::Debug)
        .compile()
        .unwrap();
    let x: Tensor = Array2::from_shape_fn((batch, visible), |(i, j)| ((i * j) % 2) as f32).into();
    for _ in 0..3 {
        step.call(std::slice::from_ref(&x)).unwrap();
    }
    step.debugprint()
}

#[test]
fn the_debug_mode_passes_a_training_step_and_matches_the_fast_plan() {
    debug_mode_cd_steps(12, 6, 4);
}

/// A CD step big enough that its products run side by side (one of them with the nodes it needs
/// moved up before its partner) checks out against the reference in the debug mode.
#[test]
fn the_debug_mode_passes_a_step_whose_products_run_side_by_side() {
    let listing = debug_mode_cd_steps(256, 256, 8);
    assert!(listing.contains("run side by side"), "{listing}");
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
        agrees_with_reference_twice(&f, &r, &feed, tol);
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
    let value = |n: usize, k: usize, s: f64| sawtooth(n, k, 13, s, DType::F64);
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
        agrees_with_reference_twice(&f, &r, &feed, 1e-12);
    }
}

/// The two products of a layer's backward pass (`e·wᵀ` and `xᵀ·e`) do not depend on each other:
/// the program runs them side by side, one on each half of the pool, and they compute what the
/// reference does, in f32 and f64, for a batch that splits, one too small to split, and none.
#[test]
fn independent_products_run_side_by_side_and_match_the_reference() {
    for dtype in [DType::F32, DType::F64] {
        let g = Graph::new();
        let x = g.input("x", dtype, &[None, Some(256)]);
        let e = g.input("e", dtype, &[None, Some(256)]);
        let w = g.input("w", dtype, &[Some(256), Some(256)]);
        let back = e.matmul(&w.t()).sigmoid().matmul(&w);
        let dw = x.t().matmul(&e) * 0.5;
        let f = function(&[&x, &e, &w], &[&back, &dw]).compile().unwrap();
        let listing = f.debugprint();
        assert!(listing.contains("run side by side"), "{listing}");
        let r = function(&[&x, &e, &w], &[&back, &dw])
            .mode(Mode::Reference)
            .compile()
            .unwrap();
        let value = |n: usize, k: usize, s: f64| sawtooth(n, k, 17, s, dtype);
        let tol = if dtype == DType::F32 { 1e-4 } else { 1e-12 };
        for batch in [50, 1, 0] {
            let feed = [
                value(batch, 256, 0.01),
                value(batch, 256, 0.02),
                value(256, 256, 0.003),
            ];
            agrees_with_reference_twice(&f, &r, &feed, tol);
        }
    }
}

/// A product that fails while running beside another names the matmul and the line that
/// built it, and the function works again afterwards.
#[test]
fn a_failing_product_of_a_pair_names_its_line() {
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(256)]);
    let e = g.input("e", DType::F32, &[None, Some(256)]);
    let w = g.input("w", DType::F32, &[Some(256), Some(256)]);
    let back = e.matmul(&w.t());
    let (dw, line) = (x.t().matmul(&e), line!());
    let f = function(&[&x, &e, &w], &[&back, &dw]).compile().unwrap();
    assert!(
        f.debugprint().contains("run side by side"),
        "{}",
        f.debugprint()
    );
    let feed = |nx: usize| {
        [
            Tensor::full(&[nx, 256], 0.5, DType::F32),
            Tensor::full(&[40, 256], 0.5, DType::F32),
            Tensor::full(&[256, 256], 0.5, DType::F32),
        ]
    };
    let err = f.call(&feed(30)).unwrap_err().to_string();
    assert!(err.contains("matmul"), "{err}");
    assert!(err.contains(&format!("{}:{line}", file!())), "{err}");
    assert!(f.call(&feed(40)).is_ok());
}

/// The peak of a plan counts a buffer once when a node takes it over from an operand that dies
/// there: ten layers of `tanh(h·W)`, each `tanh` in place over its product, never hold more
/// than the layer's input and its product at once.
#[test]
fn the_peak_counts_a_buffer_taken_over_once() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(64)]);
    let w = g.input("w", DType::F64, &[Some(64), Some(64)]);
    let mut h = x.clone();
    for _ in 0..10 {
        h = h.matmul(&w).tanh();
    }
    let f = function(&[&x, &w], &[&h]).compile().unwrap();
    let feed = [
        Tensor::full(&[32, 64], 0.1, DType::F64),
        Tensor::full(&[64, 64], 0.01, DType::F64),
    ];
    f.call(&feed).unwrap();
    let layer = 32 * 64 * 8;
    assert!(f.peak_bytes() >= layer, "{}", f.peak_bytes());
    assert!(f.peak_bytes() <= 2 * layer, "{} bytes", f.peak_bytes());
}

#[test]
fn transposes_of_matrices_and_batches_match_the_reference() {
    // Sizes around the block (16), a batch of matrices, an empty one, and a permutation the
    // fast path leaves to the general kernel.
    for (dims, perm) in [
        (vec![3, 5], vec![1, 0]),
        (vec![37, 19], vec![1, 0]),
        (vec![16, 32], vec![1, 0]),
        (vec![0, 4], vec![1, 0]),
        (vec![2, 21, 17], vec![0, 2, 1]),
        (vec![2, 3, 4], vec![2, 0, 1]),
    ] {
        for dtype in [DType::F32, DType::F64] {
            let g = Graph::new();
            let shape: Vec<Option<usize>> = dims.iter().map(|&d| Some(d)).collect();
            let x = g.input("x", dtype, &shape);
            let y = x.permute(&perm);
            let size: usize = dims.iter().product();
            let feed = Tensor::from_f64(&dims, (0..size).map(|i| i as f64 * 0.5).collect(), dtype)
                .unwrap();
            let f = function(&[&x], &[&y]).compile().unwrap();
            let r = function(&[&x], &[&y])
                .mode(Mode::Reference)
                .compile()
                .unwrap();
            for _ in 0..2 {
                let (got, want) = (
                    f.call(std::slice::from_ref(&feed)).unwrap(),
                    r.call(std::slice::from_ref(&feed)).unwrap(),
                );
                assert_eq!(got[0].shape(), want[0].shape(), "{dims:?} {perm:?}");
                assert_eq!(
                    got[0].to_f64_vec(),
                    want[0].to_f64_vec(),
                    "{dims:?} {perm:?}"
                );
            }
        }
    }
}
