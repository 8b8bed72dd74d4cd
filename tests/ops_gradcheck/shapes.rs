//! Shape ops: transpose/permute, reshape, broadcast, expand/squeeze, concat, stack, slice, take.
//! The random projection of the checker makes any misplaced element show.

use gradus::prelude::*;

use crate::common::{Fill, case};

const U: Fill = Fill::Uniform(-2.0, 2.0);

#[test]
fn transpose() {
    case("t 2-d")
        .var(&[3, 4], U)
        .elementwise()
        .check(|x| x[0].t());
    case("t 3-d").var(&[2, 3, 4], U).check(|x| x[0].t().sin());
}

#[test]
fn permute() {
    for perm in [[0, 2, 1], [2, 0, 1], [1, 2, 0]] {
        case(&format!("permute {perm:?}"))
            .var(&[2, 3, 4], U)
            .check(|x| &x[0].permute(&perm) * &x[0].permute(&perm).exp());
    }
    // a non-involutive permutation of a small tensor, element by element
    case("permute [1, 2, 0]")
        .var(&[2, 3, 2], U)
        .elementwise()
        .check(|x| x[0].permute(&[1, 2, 0]));
}

#[test]
fn reshape() {
    for target in [&[2, 6][..], &[-1], &[4, -1], &[-1, 2, 3], &[1, 12, 1]] {
        case(&format!("reshape {target:?}"))
            .var(&[3, 4], U)
            .elementwise()
            .check(|x| x[0].reshape(target));
    }
    case("reshape [6, -1]")
        .var(&[2, 3, 4], U)
        .check(|x| x[0].reshape(&[6, -1]).softmax(1));
}

#[test]
fn broadcast_to() {
    case("broadcast_to [4] -> [3, 4]")
        .var(&[4], U)
        .elementwise()
        .check(|x| x[0].broadcast_to(&[3, 4]));
    case("broadcast_to [3, 1] -> [2, 3, 4]")
        .var(&[3, 1], U)
        .elementwise()
        .check(|x| x[0].broadcast_to(&[2, 3, 4]));
    case("broadcast_to [] -> [2, 3]")
        .var(&[], U)
        .elementwise()
        .check(|x| x[0].broadcast_to(&[2, 3]));
    case("broadcast_to [1, 4] -> [3, 4]")
        .var(&[1, 4], U)
        .elementwise()
        .check(|x| x[0].broadcast_to(&[3, 4]));
}

#[test]
fn expand_dims() {
    for axes in [&[0][..], &[1], &[-1], &[0, 3]] {
        case(&format!("expand_dims {axes:?}"))
            .var(&[3, 4], U)
            .elementwise()
            .check(|x| x[0].expand_dims(axes));
    }
    // expand then broadcast against a bigger tensor: the expanded axis is summed back
    case("expand_dims [1] * y")
        .var(&[3, 4], U)
        .var(&[3, 5, 4], U)
        .check(|x| &x[0].expand_dims(&[1]) * &x[1]);
}

#[test]
fn squeeze() {
    case("squeeze [0]")
        .var(&[1, 4], U)
        .elementwise()
        .check(|x| x[0].squeeze(&[0]));
    case("squeeze [1, -1]")
        .var(&[3, 1, 1], U)
        .elementwise()
        .check(|x| x[0].squeeze(&[1, -1]));
}

#[test]
fn concat() {
    case("concat axis 0")
        .var(&[2, 3], U)
        .var(&[1, 3], U)
        .var(&[3, 3], U)
        .elementwise()
        .check(|x| gradus::concat(&[&x[0], &x[1], &x[2]], 0));
    case("concat axis -1")
        .var(&[2, 1], U)
        .var(&[2, 4], U)
        .elementwise()
        .check(|x| gradus::concat(&[&x[0], &x[1]], -1));
    // one variable twice, with a different op on each copy
    case("concat of x with itself")
        .var(&[2, 3], U)
        .elementwise()
        .check(|x| gradus::concat(&[&x[0], &x[0].sin(), &x[0]], 1));
}

#[test]
fn stack() {
    for axis in [0, 1, -1] {
        case(&format!("stack axis {axis}"))
            .var(&[2, 3], U)
            .var(&[2, 3], U)
            .elementwise()
            .check(|x| gradus::stack(&[&x[0], &x[1].exp()], axis));
    }
}

#[test]
fn slice() {
    // (axis, start, end, step) on a [5, 6] input
    let cases: [(isize, isize, Option<isize>, usize); 7] = [
        (0, 1, Some(4), 1),
        (1, 0, None, 2),
        (1, 1, Some(-1), 2),
        (0, -3, None, 1),
        (-1, -5, Some(6), 3),
        (0, -2, Some(-1), 1),
        (1, 4, Some(100), 1),
    ];
    for (axis, start, end, step) in cases {
        case(&format!("slice axis {axis} {start}:{end:?}:{step}"))
            .var(&[5, 6], U)
            .elementwise()
            .check(|x| x[0].slice_step(axis, start, end, step));
    }
    // overlapping slices of one tensor: their gradients add up
    case("slice overlapping")
        .var(&[2, 7], U)
        .elementwise()
        .check(|x| &x[0].slice(1, 0, Some(3)) * &x[0].slice_step(1, 1, None, 2));
}

#[test]
fn slices_that_tile_an_axis() {
    // An LSTM's gates: four adjacent slices covering the columns, each through its own op; the
    // gradient assembles them side by side.
    case("slices covering an axis")
        .var(&[3, 8], U)
        .elementwise()
        .check(|x| {
            let g = |k: isize| x[0].slice(1, 2 * k, Some(2 * k + 2));
            &g(0).sigmoid() * &g(2).tanh() + &g(1).sigmoid() * &g(3).exp()
        });
    // Adjacent slices with a gap, out of order, and along the first axis with negative bounds.
    case("slices with a gap")
        .var(&[4, 9], U)
        .elementwise()
        .check(|x| {
            let a = x[0].slice(1, 6, Some(9)).sin();
            let b = x[0].slice(1, 0, Some(2)).exp();
            let c = x[0].slice(1, 2, Some(4)).square();
            &a.sum_axes(&[1], true) + &b.sum_axes(&[1], true) * &c.sum_axes(&[1], true)
        });
    case("slices along rows, negative bounds")
        .var(&[6, 2], U)
        .elementwise()
        .check(|x| {
            let top = x[0].slice(0, 0, Some(-3));
            let bottom = x[0].slice(0, -3, None);
            &top.tanh() * &bottom
        });
}

#[test]
fn take() {
    let rows = Tensor::from(vec![0i64, 2, 2, 4, 0, 2]);
    case("take repeated rows")
        .var(&[5, 3], U)
        .fixed(rows)
        .elementwise()
        .check(|x| x[0].take(&x[1]));
    let grid = Tensor::from(ndarray::array![[1i64, 1], [3, 0]]);
    case("take 2-d indices")
        .var(&[4, 2], U)
        .fixed(grid)
        .elementwise()
        .check(|x| x[0].take(&x[1]).sin());
    let picks = Tensor::from(vec![3i64, 3, 3, 1]);
    case("take from a vector")
        .var(&[5], U)
        .fixed(picks)
        .elementwise()
        .check(|x| x[0].take(&x[1]));
    // an embedding lookup feeding a matmul, as in a language model
    let ids = Tensor::from(vec![2i64, 0, 2]);
    case("take then matmul")
        .var(&[4, 3], U)
        .var(&[3, 2], U)
        .fixed(ids)
        .check(|x| x[0].take(&x[2]).matmul(&x[1]).tanh());
}

/// Empty slices and a scalar index: gradients of the right (possibly empty) shape.
#[test]
fn slice_and_take_edges() {
    case("empty slice")
        .var(&[3, 4], U)
        .elementwise()
        .check(|x| &x[0].slice(1, 3, Some(1)).sum() + &x[0].sum());
    case("take with a scalar index")
        .var(&[4], U)
        .fixed(Tensor::from(2i64))
        .elementwise()
        .check(|x| x[0].take(&x[1]));
}
