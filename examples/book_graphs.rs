//! The code of the book's chapter "Graphs and functions" (`book/src/graphs-and-functions.md`).
//!
//! Run with `cargo run --example book_graphs`.

use gradus::prelude::*;
use gradus::{debugprint, to_dot};

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: inputs
    let g = Graph::new();
    let x = g.scalar("x", DType::F64); // f64[]
    let v = g.vector("v", DType::F64); // f64[?]: length known when the function runs
    let batch = g.input("batch", DType::F32, &[None, Some(784)]); // f32[?, 784]
    println!("{} {} {}", x.ty(), v.ty(), batch.ty());
    // ANCHOR_END: inputs

    // ANCHOR: constants
    let c = g.constant(vec![1.0, 2.0, 3.0]); // f64[3]
    let y = &x * 2.0 + 1.0; // Rust numbers become constants of x's dtype
    let z = &x * 2.0 + 1.0; // the same expression is the same node
    println!("{} : {}", pp(&y), y.ty());
    println!("interned: {}, constant: {}", y.same(&z), c.ty());
    // ANCHOR_END: constants

    // ANCHOR: shared
    let w = g.shared("w", vec![0.5, -0.5, 0.25]);
    println!("w = {}", w.get_value()?);
    w.set_value(vec![1.0, 1.0, 1.0])?;
    println!("w = {}", w.get_value()?);
    // ANCHOR_END: shared

    // ANCHOR: broadcasting
    let m = g.input("m", DType::F64, &[None, Some(3)]);
    let shifted = &m - &c; // [?, 3] - [3]: c is broadcast over the rows
    let col = g.input("col", DType::F64, &[None, Some(1)]);
    let scaled = &shifted * &col; // [?, 3] * [?, 1]: a declared 1 broadcasts
    let probs = scaled.matmul(&w.expand_dims(&[1])).softmax(0); // [?, 1]
    println!("{} : {}", pp(&shifted), shifted.ty());
    println!("{} : {}", pp(&scaled), scaled.ty());
    println!("{} : {}", pp(&probs), probs.ty());
    // ANCHOR_END: broadcasting

    // ANCHOR: function
    let f = function(&[&m, &col], &[&scaled.sum_axes(&[1], false)]).compile()?;
    let rows = Tensor::from_f64(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], DType::F64)?;
    let cols = Tensor::from_f64(&[2, 1], vec![1.0, 10.0], DType::F64)?;
    let out = f.call(&[rows, cols])?;
    println!("{}", out[0]);
    // ANCHOR_END: function

    // ANCHOR: updates
    let acc = g.shared("acc", 0.0);
    let inc = g.scalar("inc", DType::F64);
    let accumulate = function(&[&inc], &[&acc])
        .updates(&[(&acc, &(&acc + &inc))])
        .compile()?;
    for step in [1.0, 10.0, 100.0] {
        let before = accumulate.call(&[step.into()])?;
        println!("acc was {}, is {}", before[0], acc.get_value()?);
    }
    // ANCHOR_END: updates

    // ANCHOR: givens
    // The same graph, with `inc` replaced by a constant and `acc` by a fresh input.
    let start = g.scalar("start", DType::F64);
    let preview = function(&[&start], &[&(&acc + &inc)])
        .givens(&[(&inc, &g.scalar_constant(0.5, DType::F64)), (&acc, &start)])
        .compile()?;
    println!("preview(2) = {}", preview.call(&[2.0.into()])?[0]);
    println!("acc is still {}", acc.get_value()?);
    // ANCHOR_END: givens

    // ANCHOR: printing
    let h = (&v * &x).tanh().sum();
    println!("{}", pp(&h));
    print!("{}", debugprint(&[&h]));
    print!("{}", to_dot(&[&h]));
    // ANCHOR_END: printing

    let _ = batch;
    Ok(())
}
