//! The code of the book's chapter "Gradients" (`book/src/gradients.md`).
//!
//! Run with `cargo run --example book_gradients`.

use gradus::prelude::*;

fn main() -> Result<(), gradus::Error> {
    // ANCHOR: grad
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(2)]); // a batch of points
    let t = g.vector("t", DType::F64); // their 0/1 labels
    let w = g.shared("w", vec![0.0, 0.0]);
    let b = g.shared("b", 0.0);
    let logits = x.dot(&w) + &b; // [?]
    let cost = logits.binary_cross_entropy_with_logits(&t).mean();
    let gw_gb = grad(&cost, &[&w, &b])?;
    let (gw, gb) = (&gw_gb[0], &gw_gb[1]);
    println!("cost {}, gw {}, gb {}", cost.ty(), gw.ty(), gb.ty());

    let train = function(&[&x, &t], &[&cost])
        .updates(&[(&w, &(&w - &(gw * 0.5))), (&b, &(&b - &(gb * 0.5)))])
        .compile()?;
    let points = Tensor::from_f64(
        &[4, 2],
        vec![1., 2., 2., 1., -1., -2., -2., -1.],
        DType::F64,
    )?;
    let labels: Tensor = vec![1.0, 1.0, 0.0, 0.0].into();
    for step in 0..3 {
        let c = train.call(&[points.clone(), labels.clone()])?;
        let wv = w.get_value()?.to_f64_vec();
        println!("step {step}: cost {:.4}, w {wv:.4?}", c[0].item()?);
    }
    // ANCHOR_END: grad

    // ANCHOR: pp
    let a = g.scalar("a", DType::F64);
    let s = g.scalar("s", DType::F64);
    let y = (&a * &s).tanh();
    let dy_ds = grad(&y, &[&s])?.remove(0);
    println!("{}", pp(&dy_ds));
    // ANCHOR_END: pp

    // ANCHOR: unbroadcast
    let m = g.input("m", DType::F64, &[None, Some(3)]);
    let bias = g.input("bias", DType::F64, &[Some(3)]);
    let scale = g.input("scale", DType::F64, &[None, Some(1)]);
    let out = ((&m + &bias) * &scale).sum();
    let d = grad(&out, &[&bias, &scale])?;
    println!("d bias : {} = {}", d[0].ty(), pp(&d[0]));
    println!("d scale: {} = {}", d[1].ty(), pp(&d[1]));
    // ANCHOR_END: unbroadcast

    // ANCHOR: disconnected
    let unused = g.scalar("unused", DType::F64);
    match grad(&y, &[&unused]) {
        Err(e) => println!("{e}"),
        Ok(_) => unreachable!("y does not depend on unused"),
    }
    let zero = grad_with(&y, &[&unused], GradOptions::default().allow_disconnected())?;
    println!("{}", pp(&zero[0]));
    // ANCHOR_END: disconnected

    // ANCHOR: stop_gradient
    let u = g.scalar("u", DType::F64);
    let frozen = &u * &u.stop_gradient(); // u * u, but the second factor is a constant to grad
    let d_frozen = grad(&frozen, &[&u])?.remove(0);
    let d_square = grad(&(&u * &u), &[&u])?.remove(0);
    let at3 = [(&u, Tensor::from(3.0))];
    println!(
        "d(u * stop_gradient(u)) = {}, d(u * u) = {} at u = 3",
        d_frozen.eval(&at3)?,
        d_square.eval(&at3)?
    );
    // ANCHOR_END: stop_gradient

    // ANCHOR: vjp
    // z = p * q for vectors; seed the output with a known gradient dz instead of a cost.
    let p = g.input("p", DType::F64, &[Some(3)]);
    let q = g.input("q", DType::F64, &[Some(3)]);
    let dz = g.input("dz", DType::F64, &[Some(3)]);
    let z = &p * &q;
    let dp = vjp(&[&z], &[&dz], &[&p], GradOptions::default())?.remove(0);
    println!("{}", pp(&dp)); // dz * q: the Jacobian diag(q), transposed, times dz
    // ANCHOR_END: vjp

    // ANCHOR: second_order
    let r = g.scalar("r", DType::F64);
    let cube = r.pow(3.0);
    let d1 = grad(&cube, &[&r])?.remove(0);
    let d2 = grad(&d1, &[&r])?.remove(0);
    let f = function(&[&r], &[&cube, &d1, &d2]).compile()?;
    let vals = f.call(&[2.0.into()])?;
    println!(
        "r^3 = {}, 3r^2 = {}, 6r = {} at r = 2",
        vals[0], vals[1], vals[2]
    );
    // ANCHOR_END: second_order

    // ANCHOR: jacobian
    let v = g.input("v", DType::F64, &[Some(2)]);
    let field = &v * &v.sum(); // v * sum(v): Jacobian sum(v) I + v 1^T
    let jac = jacobian(&field, &v)?; // [2, 2]: d field_i / d v_j
    let energy = v.pow(3.0).sum(); // sum(v^3): Hessian diag(6v)
    let hess = hessian(&energy, &v)?;
    let dir = g.input("dir", DType::F64, &[Some(2)]);
    // H dir, without forming H
    let hvp = hessian_vector_product(&energy, &[&v], &[&dir])?.remove(0);
    let f = function(&[&v, &dir], &[&jac, &hess, &hvp]).compile()?;
    let out = f.call(&[vec![1.0, 2.0].into(), vec![1.0, -1.0].into()])?;
    println!(
        "jacobian:\n{}\nhessian:\n{}\nH dir: {}",
        out[0], out[1], out[2]
    );
    // ANCHOR_END: jacobian
    Ok(())
}
