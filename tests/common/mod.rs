//! Helpers shared by the test files that declare `mod common;`: checks of error messages and
//! their locations, a rayon pool of a given size, and the bundled digits.

// Each test file uses only some of these.
#![allow(dead_code)]

use gradus::Error;
use gradus::data::Mnist;
use gradus::eval;
use gradus::prelude::*;
use ndarray::{Array2, s};

/// The first `n` bundled training digits, grey levels in [0, 1].
pub fn digits(n: usize) -> Array2<f32> {
    Mnist::bundled()
        .unwrap()
        .train_images
        .slice(s![..n, ..])
        .to_owned()
}

/// `FILE:LINE:` of the calling test file, with the trailing colon so line 12 does not match
/// line 123.
#[track_caller]
pub fn at(line: u32) -> String {
    format!("{}:{line}:", std::panic::Location::caller().file())
}

/// The message contains every one of `parts`.
#[track_caller]
pub fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message lacks {p:?}:\n  {msg}");
    }
}

/// The message names `line` of the calling test file, and `Error::location` points at it.
#[track_caller]
pub fn assert_built_at(err: &Error, line: u32) {
    let file = std::panic::Location::caller().file();
    assert_mentions(&err.to_string(), &[&at(line)]);
    let loc = err.location().expect("the error carries a location");
    assert_eq!((loc.file(), loc.line()), (file, line), "{err}");
}

/// `f` run on a rayon pool of `threads` threads.
pub fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a pool of a few threads")
        .install(f)
}

/// A build error must come back, identical, from `check`, `grad`, `function` and `eval`.
#[track_caller]
pub fn reported(bad: &Expr, inputs: &[&Expr]) -> Error {
    let err = bad
        .clone()
        .check()
        .expect_err("check() reports the bad node");
    let msg = err.to_string();
    let routes = [
        ("grad", grad(bad, inputs).err()),
        ("function", function(inputs, &[bad]).compile().err()),
        ("eval", eval(&[bad], &[]).err()),
    ];
    for (route, e) in routes {
        assert_eq!(
            e.map(|e| e.to_string()).as_deref(),
            Some(msg.as_str()),
            "{route} must return the recorded error"
        );
    }
    err
}

/// `a` and `b` have one shape and agree elementwise within `tol` (relative to 1 + |b|).
pub fn close(a: &Tensor, b: &Tensor, tol: f64) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{x} vs {y}");
    }
}
