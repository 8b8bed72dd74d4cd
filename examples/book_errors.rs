//! The code of the book's chapter "Errors" (`book/src/errors.md`): one user mistake after
//! another, each printed as gradus reports it.
//!
//! Run with `cargo run --example book_errors`.

use gradus::prelude::*;

type Main = Result<(), Box<dyn std::error::Error>>;

// ANCHOR: mistake
/// The error a mistake must produce; a mistake that goes unreported ends `main` with an error.
fn mistake<T>(result: Result<T, Error>) -> Result<Error, &'static str> {
    result.err().ok_or("a mistake went unreported")
}
// ANCHOR_END: mistake

fn main() -> Main {
    build_time()?;
    grad_and_compile()?;
    run_time()?;
    Ok(())
}

fn build_time() -> Main {
    // ANCHOR: recorded
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[None, Some(3)]);
    let b = g.input("b", DType::F64, &[Some(4)]);
    let sum = &a + &b; // [?, 3] + [4]: recorded here, no panic
    let cost = sum.exp().mean(); // more ops on top carry the same error
    let err = mistake(grad(&cost, &[&a]))?;
    println!("{err}");
    // ANCHOR_END: recorded

    // ANCHOR: location
    let loc = err.location().ok_or("a build error has a location")?;
    println!("file {}, line {}", loc.file(), loc.line());
    if let Error::Shape { op, detail, .. } = &err {
        println!("op {op:?}, detail {detail:?}");
    }
    // ANCHOR_END: location

    // ANCHOR: check
    let m = g.input("m", DType::F32, &[Some(2), Some(3)]);
    let n = g.input("n", DType::F64, &[Some(3), Some(2)]);
    println!("{}", mistake(m.matmul(&n).check())?); // dtype, before shapes
    println!("{}", mistake(m.matmul(&m).check())?);
    println!("{}", mistake(m.sum_axes(&[5], false).check())?);
    println!("{}", mistake(m.softmax(3).check())?);
    println!("{}", mistake(m.reshape(&[4, 2]).check())?);
    let ok = m.reshape(&[3, 2]).check()?; // Ok: the node itself
    println!("ok: {}", ok.ty());
    // ANCHOR_END: check
    Ok(())
}

fn grad_and_compile() -> Main {
    // ANCHOR: grad_errors
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(3)]);
    let unused = g.scalar("unused", DType::F64);
    let labels = g.input("labels", DType::I64, &[Some(3)]);
    let y = &x * 2.0;
    println!("{}", mistake(grad(&y, &[&x]))?);
    println!("{}", mistake(grad(&y.sum(), &[&unused]))?);
    println!("{}", mistake(grad(&y.sum(), &[&labels]))?);
    // ANCHOR_END: grad_errors

    // ANCHOR: compile_errors
    let z = g.input("z", DType::F64, &[Some(3)]);
    let out = (&x * &z).sum();
    println!("{}", mistake(function(&[&x], &[&out]).compile())?);

    let w = g.shared("w", vec![0.0f32; 3]);
    let new_w = &w.cast(DType::F64) - &x; // computed in f64 by mistake
    let step = function(&[&x], &[&out]).updates(&[(&w, &new_w)]);
    println!("{}", mistake(step.compile())?);
    println!("{}", mistake(w.set_value(vec![0.0f32; 4]))?);
    // ANCHOR_END: compile_errors
    Ok(())
}

fn run_time() -> Main {
    // ANCHOR: feed_errors
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(2)]);
    let y = g.input("y", DType::F64, &[Some(2)]);
    let f = function(&[&x, &y], &[&(&x * &y).sum()]).compile()?;
    let x_val = Tensor::full(&[5, 2], 1.0, DType::F64); // fits [?, 2]
    let y_long: Tensor = vec![1.0; 3].into();
    let y_f32: Tensor = vec![1.0f32; 2].into();
    println!("{}", mistake(f.call(&[x_val.clone(), y_long]))?);
    println!("{}", mistake(f.call(&[x_val.clone(), y_f32]))?);
    println!("{}", mistake(f.call(&[x_val]))?); // no value for y
    // ANCHOR_END: feed_errors

    // ANCHOR: runtime_errors
    let u = g.vector("u", DType::F64);
    let v = g.vector("v", DType::F64);
    let f = function(&[&u, &v], &[&(&u + &v)]).compile()?; // [?] + [?] builds
    let (three, four, one): (Tensor, Tensor, Tensor) =
        (vec![1.0; 3].into(), vec![1.0; 4].into(), vec![1.0].into());
    println!("{}", mistake(f.call(&[three.clone(), four]))?);
    println!("{}", mistake(f.call(&[three, one]))?); // a run-time 1 does not stretch
    // ANCHOR_END: runtime_errors

    // ANCHOR: batch_mismatch
    let images = g.input("images", DType::F32, &[None, Some(784)]);
    let labels = g.input("labels", DType::I64, &[None]);
    let w = g.shared("w", Tensor::full(&[784, 10], 0.0, DType::F32));
    let b = g.shared("b", vec![0.0f32; 10]);
    let logits = &images.matmul(&w) + &b;
    let cost = logits.softmax_cross_entropy(&labels).mean();
    let train = function(&[&images, &labels], &[&cost]).compile()?;
    let four_images = Tensor::full(&[4, 784], 0.5, DType::F32);
    let three_labels: Tensor = vec![3i64, 1, 4].into();
    println!(
        "{}",
        mistake(train.call(&[four_images.clone(), three_labels]))?
    );
    // ANCHOR_END: batch_mismatch

    // ANCHOR: index_errors
    let bad_label: Tensor = vec![3i64, 1, 4, 10].into(); // 10 classes: 0..10
    println!("{}", mistake(train.call(&[four_images, bad_label]))?);
    let table = g.shared("table", Tensor::full(&[5, 2], 1.0, DType::F32));
    let rows = g.input("rows", DType::I64, &[None]);
    let picked = function(&[&rows], &[&table.take(&rows)]).compile()?;
    println!("{}", mistake(picked.call(&[vec![0i64, -1].into()]))?);
    // ANCHOR_END: index_errors
    Ok(())
}
