//! `benches/steps.rs`'s command line: the timer's flags override a workload's own timer, and
//! the flag `cargo bench` adds is ignored.

mod common;

use common::args::{Args, Timer};

fn parse(line: &str) -> Result<Args, String> {
    Args::parse(line.split_whitespace().map(String::from))
}

#[test]
fn names_and_no_flags_keep_each_workloads_timer() {
    let args = parse("W1 L1 --bench").unwrap();
    assert_eq!(args.chosen, ["W1", "L1"]);
    assert!(args.runs("L1") && !args.runs("W2"));
    assert_eq!(args.timer(Timer::new(30, 15, 20)), Timer::new(30, 15, 20));
    assert_eq!(args.stages, None);
}

#[test]
fn flags_override_the_fields_they_name() {
    let args = parse("--bench W4 --repeats 7 --stages 200 --warmup 0").unwrap();
    assert_eq!(args.timer(Timer::new(10, 15, 5)), Timer::new(0, 7, 5));
    assert_eq!(args.stages, Some(200));
    assert!(parse("").unwrap().runs("W3"));
}

#[test]
fn a_flag_without_a_usable_number_is_an_error() {
    assert!(parse("W1 --steps").is_err());
    assert!(parse("--steps x").is_err());
    assert!(parse("--repeats 0").is_err());
}
