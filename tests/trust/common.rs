//! Helpers shared by the trust tests.

use gradus::Error;

/// `FILE:LINE:` of this test file, with the colon so line 12 does not match line 123.
pub fn at(file: &str, line: u32) -> String {
    format!("{file}:{line}:")
}

/// The error names `line` of `file`, and `Error::location` points there.
#[track_caller]
pub fn assert_located(err: &Error, file: &str, line: u32) {
    assert!(err.to_string().contains(&at(file, line)), "{err}");
    let loc = err.location().expect("the error carries a location");
    assert_eq!((loc.file(), loc.line()), (file, line), "{err}");
}
