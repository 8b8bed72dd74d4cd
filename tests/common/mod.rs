//! Helpers shared by the test files that declare `mod common;`: checks of error messages and
//! their locations, a rayon pool of a given size, and the bundled digits.

// Each test file uses only some of these.
#![allow(dead_code)]

use gradus::Error;
use gradus::data::Mnist;
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
