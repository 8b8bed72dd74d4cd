//! The code of the book's chapter "The optimizer" (`book/src/optimizer.md`).
//!
//! Run with `cargo run --example book_optimizer`.

use gradus::prelude::*;

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: stats
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let loss = x.sigmoid().log().sum(); // log(sigmoid(x)): -inf at x = -1000 as written
    let gx = grad(&loss, &[&x])?.remove(0);
    let f = function(&[&x], &[&loss, &gx]).compile()?;
    print!("{}", f.rewrite_stats());
    let out = f.call(&[vec![-1000.0, 0.0, 1000.0].into()])?;
    println!("loss = {}, gradient = {}", out[0], out[1]);
    // ANCHOR_END: stats

    // ANCHOR: exclude
    let raw = function(&[&x], &[&loss, &gx])
        .exclude(&["log_sigmoid_to_softplus"])
        .compile()?;
    let out = raw.call(&[vec![-1000.0, 0.0, 1000.0].into()])?;
    println!(
        "without log_sigmoid_to_softplus: loss = {}, gradient = {}",
        out[0], out[1]
    );
    // ANCHOR_END: exclude

    // ANCHOR: debug
    let checked = function(&[&x], &[&loss, &gx]).mode(Mode::Debug).compile()?;
    checked.call(&[vec![-3.0, 0.0, 3.0].into()])?; // Err(DebugMismatch) if a rewrite broke it
    print!("{}", checked.debugprint());
    // ANCHOR_END: debug

    // ANCHOR: rules
    for rule in gradus::rewrite::RULES {
        println!("{:?}: {}", rule.phase, rule.name);
    }
    // ANCHOR_END: rules
    Ok(())
}
