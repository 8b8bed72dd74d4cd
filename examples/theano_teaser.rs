//! The Theano tutorial's first gradient: `d(x**2)/dx`, printed as a graph and compiled.
//!
//! Run with `cargo run --example theano_teaser`.

use gradus::prelude::*;

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: teaser
    let g = Graph::new();
    let x = g.scalar("x", DType::F64);
    let y = x.pow(2.0);
    let gy = grad(&y, &[&x])?.remove(0);
    println!("pp(gy) = {}", pp(&gy));

    let f = function(&[&x], &[&gy]).compile()?;
    for v in [4.0, 94.2] {
        let out = f.call(&[v.into()])?;
        println!("f({v}) = {}", out[0].item()?);
    }
    // ANCHOR_END: teaser
    println!("\ndebugprint:\n{}", gradus::debugprint(&[&gy]));
    Ok(())
}
