//! The API around the ops: `take` and `scatter_add` along any axis, `zeros_like` and
//! `ones_like`, integer literals with the operators, `concat` and `stack` as expressions with
//! deferred errors, and `hessian_vector_product` over several variables.

use gradus::prelude::*;
use ndarray::Axis;

use crate::common::{Fill, array, assert_close, case, uniform};

const U: Fill = Fill::Uniform(-2.0, 2.0);

#[test]
fn take_along_any_axis() {
    let idx = Tensor::from(vec![2i64, 0, 2]);
    for axis in [0, 1, 2, -1] {
        case(&format!("take_axis {axis}"))
            .var(&[3, 3, 4], U)
            .fixed(idx.clone())
            .elementwise()
            .check(|x| x[0].take_axis(&x[1], axis));
    }
    let grid = Tensor::from(ndarray::array![[1i64, 1], [3, 0]]);
    case("take_axis 2-d indices along axis 1")
        .var(&[2, 4, 3], U)
        .fixed(grid.clone())
        .check(|x| x[0].take_axis(&x[1], 1).tanh());
    case("take_axis second order")
        .var(&[3, 4], U)
        .fixed(idx.clone())
        .second_order()
        .check(|x| x[0].take_axis(&x[1], 1).square());
    case("take_axis of run-time dims")
        .var_dyn(&[None, None], &[2, 4], U)
        .fixed(grid)
        .elementwise()
        .check(|x| x[0].take_axis(&x[1], 1));

    // values against ndarray's select
    let x = uniform(&[2, 5, 3], -2.0, 2.0, 9);
    let a = array(&x);
    let picks = [4usize, 1, 1, 0];
    let want = a.select(Axis(1), &picks);
    let g = Graph::new();
    let xe = g.input("x", DType::F64, &[Some(2), Some(5), Some(3)]);
    let ie = g.input("i", DType::I64, &[None]);
    let y = xe.take_axis(&ie, 1);
    assert_eq!(
        y.shape().to_known(),
        None,
        "the index count is a run-time dim"
    );
    let f = function(&[&xe, &ie], &[&y]).compile().unwrap();
    let ids = Tensor::from(picks.iter().map(|&p| p as i64).collect::<Vec<_>>());
    let got = f.call(&[x.clone(), ids]).unwrap().remove(0);
    assert_close("take_axis 1", &got, &Tensor::from(want), 0.0);
    // `take` is still axis 0
    let rows = xe.take(&ie);
    let got = rows
        .eval(&[(&xe, x), (&ie, Tensor::from(vec![1i64, 0]))])
        .unwrap();
    assert_close("take", &got, &Tensor::from(a.select(Axis(0), &[1, 0])), 0.0);
}

#[test]
fn scatter_add() {
    let idx = Tensor::from(vec![2i64, 0, 2]);
    case("scatter_add rows")
        .var(&[4, 3], U)
        .var(&[3, 3], U)
        .fixed(idx.clone())
        .elementwise()
        .check(|x| x[0].scatter_add(&x[2], &x[1]).sin());
    case("scatter_add_axis 1")
        .var(&[2, 4], U)
        .var(&[2, 3], U)
        .fixed(idx.clone())
        .elementwise()
        .check(|x| x[0].scatter_add_axis(&x[2], &x[1], -1).square());
    case("scatter_add second order")
        .var(&[4], U)
        .var(&[3], U)
        .fixed(idx.clone())
        .second_order()
        .check(|x| x[0].scatter_add(&x[2], &x[1]).square());

    // values: repeated indices add up, like numpy's add.at
    let g = Graph::new();
    let xe = g.input("x", DType::F64, &[Some(2), Some(4)]);
    let ue = g.input("u", DType::F64, &[Some(2), None]);
    let ie = g.input("i", DType::I64, &[None]);
    let y = xe.scatter_add_axis(&ie, &ue, 1);
    let f = function(&[&xe, &ie, &ue], &[&y]).compile().unwrap();
    let x = Tensor::from(ndarray::array![[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]);
    let u = Tensor::from(ndarray::array![[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]);
    let got = f
        .call(&[x.clone(), idx.clone(), u.clone()])
        .unwrap()
        .remove(0);
    let want = Tensor::from(ndarray::array![
        [21.0, 2.0, 43.0, 4.0],
        [55.0, 6.0, 107.0, 8.0]
    ]);
    assert_close("scatter_add_axis 1", &got, &want, 0.0);

    // an index out of range is an error naming it, never a panic; so is a misfit update
    let err = f
        .call(&[x.clone(), Tensor::from(vec![0i64, 4, 1]), u.clone()])
        .unwrap_err();
    assert!(
        err.to_string().contains("index 4 is out of range 0..4"),
        "{err}"
    );
    let err = f
        .call(&[x.clone(), Tensor::from(vec![-1i64, 0, 1]), u.clone()])
        .unwrap_err();
    assert!(
        err.to_string().contains("index -1 is out of range 0..4"),
        "{err}"
    );
    let err = f
        .call(&[x.clone(), Tensor::from(vec![0i64, 1]), u])
        .unwrap_err();
    assert!(err.to_string().contains("updates"), "{err}");
    let t = xe.take_axis(&ie, 1);
    let err = t
        .eval(&[(&xe, x), (&ie, Tensor::from(vec![7i64]))])
        .unwrap_err();
    assert!(
        err.to_string().contains("index 7 is out of range 0..4"),
        "{err}"
    );
    // a misfit known when building is reported at the user's line
    let three = g.input("three", DType::I64, &[Some(3)]);
    let (bad, line) = (xe.scatter_add(&three, &xe), line!());
    let err = bad.check().unwrap_err();
    assert!(err.to_string().contains("updates must have shape"), "{err}");
    assert!(
        err.to_string().contains(&format!("{}:{line}", file!())),
        "{err}"
    );
}

#[test]
fn zeros_and_ones_like_take_the_run_time_shape() {
    let g = Graph::new();
    let x = g.input("x", DType::F32, &[None, Some(3)]);
    let z = gradus::zeros_like(&x);
    let o = x.ones_like();
    assert_eq!((z.dtype(), o.dtype()), (DType::F32, DType::F32));
    let f = function(&[&x], &[&z, &(&o + &x)]).compile().unwrap();
    let xv = Tensor::from_f64(&[2, 3], vec![1.0; 6], DType::F32).unwrap();
    let out = f.call(&[xv]).unwrap();
    assert_eq!(out[0].shape(), &[2, 3]);
    assert_eq!(out[0].to_f64_vec(), vec![0.0; 6]);
    assert_eq!(out[1].to_f64_vec(), vec![2.0; 6]);
    // a gradient through them is zero for x's shape and connects to nothing
    case("x * zeros_like(x) + ones_like(x)")
        .var(&[2, 3], U)
        .elementwise()
        .check(|x| &x[0].sin() + &(&x[0] * &x[0].zeros_like()) + x[0].ones_like());
}

#[test]
fn integer_literals_work_like_float_ones() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2)]);
    let ys = [
        &x * 2,
        2 * &x,
        &x + 1,
        1 + &x,
        &x - 3,
        3 - &x,
        &x / 2,
        2 / &x,
        x.clone() * 2,
        2 * x.clone(),
    ];
    let refs: Vec<&Expr> = ys.iter().collect();
    let out = gradus::eval(&refs, &[(&x, Tensor::from(vec![1.0, 4.0]))]).unwrap();
    let want: [[f64; 2]; 10] = [
        [2.0, 8.0],
        [2.0, 8.0],
        [2.0, 5.0],
        [2.0, 5.0],
        [-2.0, 1.0],
        [2.0, -1.0],
        [0.5, 2.0],
        [2.0, 0.5],
        [2.0, 8.0],
        [2.0, 8.0],
    ];
    for (k, (got, want)) in out.iter().zip(want).enumerate() {
        assert_eq!(got.to_f64_vec(), want.to_vec(), "case {k}");
    }
    // the constant takes the tensor's dtype
    let h = g.input("h", DType::F32, &[Some(2)]);
    assert_eq!((&h * 2).dtype(), DType::F32);
}

#[test]
fn concat_and_stack_return_expressions_and_defer_errors() {
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[Some(2), Some(3)]);
    let b = g.input("b", DType::F64, &[Some(4), Some(3)]);
    let c = gradus::concat(&[&a, &b], 0);
    assert_eq!(c.shape().to_known(), Some(vec![6, 3]));
    let s = gradus::stack(&[&a, &a], -1);
    assert_eq!(s.shape().to_known(), Some(vec![2, 3, 2]));

    let (bad, line) = (gradus::concat(&[&a, &b], 1), line!());
    let used = bad.tanh().sum();
    let err = grad(&used, &[&a]).unwrap_err();
    assert!(err.to_string().contains("dim 0 differs"), "{err}");
    assert!(
        err.to_string().contains(&format!("{}:{line}", file!())),
        "{err}"
    );
    let (bad, line) = (gradus::stack(&[&a, &a], 3), line!());
    let err = function(&[&a], &[&bad]).compile().err().unwrap();
    assert!(matches!(err, Error::Axis { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("{}:{line}", file!())),
        "{err}"
    );
    // nothing to concatenate: the error comes with the first use
    let (empty, line) = (gradus::concat(&[], 0), line!());
    let err = (&empty + &a).check().unwrap_err();
    assert!(err.to_string().contains("concat of no tensors"), "{err}");
    assert!(
        err.to_string().contains(&format!("{}:{line}", file!())),
        "{err}"
    );
}

/// `H v` over two variables, cross terms included, against the full Hessian of the
/// concatenated variables.
#[test]
fn hessian_vector_product_of_several_variables() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2)]);
    let y = g.input("y", DType::F64, &[Some(3)]);
    let (vx, vy) = (
        g.input("vx", DType::F64, &[Some(2)]),
        g.input("vy", DType::F64, &[Some(3)]),
    );
    let cost = |x: &Expr, y: &Expr| (x.sin().sum() * y.square().sum()) + y.exp().sum() * x.sum();
    let hv = hessian_vector_product(&cost(&x, &y), &[&x, &y], &[&vx, &vy]).unwrap();
    // the same cost of one variable z = [x, y]
    let z = g.input("z", DType::F64, &[Some(5)]);
    let h = hessian(&cost(&z.slice(0, 0, Some(2)), &z.slice(0, 2, None)), &z).unwrap();
    let (xv, yv) = (vec![0.3, -0.7], vec![0.2, 1.1, -0.4]);
    let (vxv, vyv) = (vec![1.0, -2.0], vec![0.5, 0.25, 3.0]);
    let zv: Vec<f64> = xv.iter().chain(&yv).copied().collect();
    let feeds = [
        (&x, Tensor::from(xv)),
        (&y, Tensor::from(yv)),
        (&vx, Tensor::from(vxv.clone())),
        (&vy, Tensor::from(vyv.clone())),
        (&z, Tensor::from(zv)),
    ];
    let out = gradus::eval(&[&hv[0], &hv[1], &h], &feeds).unwrap();
    let hm = array(&out[2]);
    let v: Vec<f64> = vxv.iter().chain(&vyv).copied().collect();
    let want: Vec<f64> = (0..5)
        .map(|i| (0..5).map(|j| hm[[i, j]] * v[j]).sum())
        .collect();
    assert_close(
        "H v, x part",
        &out[0],
        &Tensor::from(want[..2].to_vec()),
        1e-12,
    );
    assert_close(
        "H v, y part",
        &out[1],
        &Tensor::from(want[2..].to_vec()),
        1e-12,
    );
    // as many vectors as variables
    let err = hessian_vector_product(&cost(&x, &y), &[&x, &y], &[&vx]).unwrap_err();
    assert!(err.to_string().contains("needs as many vectors"), "{err}");
}
