//! Convolutions, pools and padding: values against direct nested loops written here (compiled,
//! which runs the im2col kernels, and by `eval`, which runs the reference ones), their
//! finite-difference gradients over a grid of strides, paddings, dilations, groups and batch
//! sizes (second order for `conv2d`), and the fast kernels against `Mode::Reference` forward
//! and backward on a batch large enough to thread.

use gradus::prelude::*;
use gradus::{Conv2d, Pool2d};
use ndarray::{ArrayD, IxDyn};

use crate::common::{Fill, array, assert_close, case, uniform};

const U: Fill = Fill::Uniform(-1.0, 1.0);

/// Cell `i` of a padded axis of `len` cells, shifted by the padding `pad`: `None` on the padding.
fn inside(i: usize, pad: usize, len: usize) -> Option<usize> {
    i.checked_sub(pad).filter(|&i| i < len)
}

/// `conv2d` by its definition: `y[n, o, i, j] = sum_{c, ki, kj} x[n, g I + c, i s + ki d - p,
/// j s + kj d - p] w[o, c, ki, kj]`, `g` the group of output channel `o`.
fn conv_by_loops(x: &ArrayD<f64>, w: &ArrayD<f64>, c: &Conv2d) -> ArrayD<f64> {
    let (xs, ws) = (x.shape(), w.shape());
    let (s, p, d) = (c.stride, c.padding, c.dilation);
    let oh = (xs[2] + 2 * p.h - d.h * (ws[2] - 1) - 1) / s.h + 1;
    let ow = (xs[3] + 2 * p.w - d.w * (ws[3] - 1) - 1) / s.w + 1;
    let out_per_group = ws[0] / c.groups;
    let mut y = ArrayD::zeros(IxDyn(&[xs[0], ws[0], oh, ow]));
    for n in 0..xs[0] {
        for o in 0..ws[0] {
            let group = o / out_per_group;
            for i in 0..oh {
                for j in 0..ow {
                    let mut sum = 0.0;
                    for ci in 0..ws[1] {
                        for ki in 0..ws[2] {
                            for kj in 0..ws[3] {
                                let (Some(r), Some(q)) = (
                                    inside(i * s.h + ki * d.h, p.h, xs[2]),
                                    inside(j * s.w + kj * d.w, p.w, xs[3]),
                                ) else {
                                    continue;
                                };
                                sum += x[[n, group * ws[1] + ci, r, q]] * w[[o, ci, ki, kj]];
                            }
                        }
                    }
                    y[[n, o, i, j]] = sum;
                }
            }
        }
    }
    y
}

/// A pool by its definition: the max (padding never wins) or the sum over the full window
/// divided by its size (padding counts as zeros).
fn pool_by_loops(x: &ArrayD<f64>, p: &Pool2d, max: bool) -> ArrayD<f64> {
    let xs = x.shape();
    let (k, s, pad) = (p.window, p.stride, p.padding);
    let oh = (xs[2] + 2 * pad.h - k.h) / s.h + 1;
    let ow = (xs[3] + 2 * pad.w - k.w) / s.w + 1;
    let mut y = ArrayD::zeros(IxDyn(&[xs[0], xs[1], oh, ow]));
    for n in 0..xs[0] {
        for c in 0..xs[1] {
            for i in 0..oh {
                for j in 0..ow {
                    let mut acc = if max { f64::NEG_INFINITY } else { 0.0 };
                    for ki in 0..k.h {
                        for kj in 0..k.w {
                            if let (Some(r), Some(q)) = (
                                inside(i * s.h + ki, pad.h, xs[2]),
                                inside(j * s.w + kj, pad.w, xs[3]),
                            ) {
                                let v = x[[n, c, r, q]];
                                acc = if max { acc.max(v) } else { acc + v };
                            }
                        }
                    }
                    y[[n, c, i, j]] = if max { acc } else { acc / (k.h * k.w) as f64 };
                }
            }
        }
    }
    y
}

/// Every convolution of the grid: strides 1 and 2, paddings 0, 1 and 2, dilations 1 and 2,
/// one or two groups, with non-square strides and paddings mixed in.
fn convs() -> Vec<Conv2d> {
    let mut all = Vec::new();
    for stride in [1, 2] {
        for padding in [0, 1, 2] {
            for dilation in [1, 2] {
                for groups in [1, 2] {
                    all.push(
                        Conv2d::default()
                            .with_stride(stride)
                            .with_padding(padding)
                            .with_dilation(dilation)
                            .with_groups(groups),
                    );
                }
            }
        }
    }
    all.push(Conv2d::default().with_stride((2, 1)).with_padding((0, 1)));
    all.push(Conv2d::default().with_dilation((1, 2)).with_padding((2, 0)));
    all
}

/// `f(x)` of one input and `w` (a fixed input) compiled and by `eval`, against `want`.
#[track_caller]
fn assert_values(what: &str, inputs: &[Tensor], f: impl Fn(&[Expr]) -> Expr, want: &Tensor) {
    let g = Graph::new();
    let xs: Vec<Expr> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let dims: Vec<Option<usize>> = t.shape().iter().map(|&d| Some(d)).collect();
            g.input(&format!("x{i}"), t.dtype(), &dims)
        })
        .collect();
    let y = f(&xs);
    let refs: Vec<&Expr> = xs.iter().collect();
    let compiled = function(&refs, &[&y]).compile().unwrap();
    let got = compiled.call(inputs).unwrap().remove(0);
    assert_close(&format!("{what} (compiled)"), &got, want, 1e-12);
    let feeds: Vec<(&Expr, Tensor)> = xs.iter().zip(inputs.iter().cloned()).collect();
    let got = y.eval(&feeds).unwrap();
    assert_close(&format!("{what} (eval)"), &got, want, 1e-12);
}

#[test]
fn conv2d_values_equal_the_nested_loops() {
    for c in convs() {
        for batch in [1, 3] {
            // a 7x6 image by 3x2 filters: 4 channels in, 4 out
            let x = uniform(&[batch, 4, 7, 6], -1.0, 1.0, 1);
            let w = uniform(&[4, 4 / c.groups, 3, 2], -1.0, 1.0, 2);
            let want = conv_by_loops(&array(&x), &array(&w), &c);
            assert_values(
                &format!("conv2d {c} batch {batch}"),
                &[x, w],
                |e| e[0].conv2d(&e[1], c),
                &Tensor::from(want),
            );
        }
    }
}

#[test]
fn conv2d_gradients_by_finite_differences() {
    for c in convs() {
        for batch in [1, 3] {
            case(&format!("conv2d {c} batch {batch}"))
                .var(&[batch, 2, 5, 6], U)
                .var(&[4, 2 / c.groups, 2, 3], U)
                .check(|e| e[0].conv2d(&e[1], c));
        }
    }
    // with a batch known only at run time, element by element
    case("conv2d of a run-time batch")
        .var_dyn(&[None, Some(2), Some(3), Some(3)], &[2, 2, 3, 3], U)
        .var(&[2, 1, 2, 2], U)
        .elementwise()
        .check(|e| e[0].conv2d(&e[1], Conv2d::default().with_groups(2).with_padding(1)));
}

#[test]
fn conv2d_second_order() {
    let grid = [
        Conv2d::default(),
        Conv2d::default()
            .with_stride(2)
            .with_padding(1)
            .with_dilation(2)
            .with_groups(2),
        Conv2d::default().with_stride((1, 2)).with_padding((2, 1)),
    ];
    for c in grid {
        // bilinear: the Hessian is the cross terms, the rules of the gradients' gradients
        case(&format!("conv2d second order {c}"))
            .var(&[2, 2, 5, 4], U)
            .var(&[2, 2 / c.groups, 2, 2], U)
            .second_order()
            .check(|e| e[0].conv2d(&e[1], c));
        // squared: the gradients' own cotangents too
        case(&format!("conv2d squared, second order {c}"))
            .var(&[2, 2, 5, 4], U)
            .var(&[2, 2 / c.groups, 2, 2], U)
            .second_order()
            .check(|e| e[0].conv2d(&e[1], c).square());
    }
    // the Hessian-vector product of a conv net's loss against finite differences of its gradient
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(1), Some(5), Some(5)]);
    let w = g.input("w", DType::F64, &[Some(3), Some(1), Some(3), Some(3)]);
    let v = g.input("v", DType::F64, &[Some(3), Some(1), Some(3), Some(3)]);
    let loss = x
        .conv2d(&w, Conv2d::default().with_padding(1))
        .tanh()
        .avg_pool2d(Pool2d::new(2))
        .sum();
    let hv = hessian_vector_product(&loss, &[&w], &[&v])
        .unwrap()
        .remove(0);
    let gw = grad(&loss, &[&w]).unwrap().remove(0);
    let f = function(&[&x, &w, &v], &[&hv, &gw]).compile().unwrap();
    let (xv, wv, vv) = (
        uniform(&[2, 1, 5, 5], -1.0, 1.0, 3),
        uniform(&[3, 1, 3, 3], -1.0, 1.0, 4),
        uniform(&[3, 1, 3, 3], -1.0, 1.0, 5),
    );
    let got = f
        .call(&[xv.clone(), wv.clone(), vv.clone()])
        .unwrap()
        .remove(0);
    let eps = 1e-5;
    let at = |sign: f64| {
        let moved = &array(&wv) + &(&array(&vv) * (sign * eps));
        array(&f.call(&[xv.clone(), moved.into(), vv.clone()]).unwrap()[1])
    };
    let want = (&at(1.0) - &at(-1.0)) / (2.0 * eps);
    assert_close("hessian-vector product", &got, &Tensor::from(want), 1e-7);
}

fn pools() -> Vec<Pool2d> {
    vec![
        Pool2d::new(2),
        Pool2d::new(3).with_stride(2),
        Pool2d::new(3).with_stride(2).with_padding(1),
        Pool2d::new((2, 3)).with_stride((1, 2)).with_padding((1, 1)),
        Pool2d::new(2).with_stride(1),
    ]
}

#[test]
fn pool_values_equal_the_nested_loops() {
    for p in pools() {
        for batch in [1, 3] {
            let x = uniform(&[batch, 2, 7, 6], -1.0, 1.0, 6);
            let want = pool_by_loops(&array(&x), &p, true);
            assert_values(
                &format!("max_pool2d {p} batch {batch}"),
                std::slice::from_ref(&x),
                |e| e[0].max_pool2d(p),
                &Tensor::from(want),
            );
            let want = pool_by_loops(&array(&x), &p, false);
            assert_values(
                &format!("avg_pool2d {p} batch {batch}"),
                &[x],
                |e| e[0].avg_pool2d(p),
                &Tensor::from(want),
            );
        }
    }
}

#[test]
fn pool_gradients_by_finite_differences() {
    for p in pools() {
        // distinct values: no ties within a window, so the max moves smoothly
        case(&format!("max_pool2d {p}"))
            .var(&[2, 2, 5, 6], Fill::Distinct)
            .check(|e| e[0].max_pool2d(p));
        case(&format!("avg_pool2d {p}"))
            .var(&[2, 2, 5, 6], U)
            .check(|e| e[0].avg_pool2d(p));
    }
    case("avg_pool2d second order")
        .var(&[1, 2, 4, 4], U)
        .second_order()
        .check(|e| e[0].avg_pool2d(Pool2d::new(3).with_padding(1)).square());
}

#[test]
fn max_pool2d_ties_go_to_the_first_maximum() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(1), Some(1), Some(2), Some(2)]);
    let dx = grad(&x.max_pool2d(Pool2d::new(2)).sum(), &[&x])
        .unwrap()
        .remove(0);
    let value = Tensor::from_f64(&[1, 1, 2, 2], vec![1.0, 3.0, 3.0, 0.0], DType::F64).unwrap();
    let got = dx.eval(&[(&x, value)]).unwrap();
    assert_eq!(got.to_f64_vec(), vec![0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn pad_values_and_gradients() {
    let x = uniform(&[2, 3], -1.0, 1.0, 8);
    let mut want = ArrayD::from_elem(IxDyn(&[3, 7]), -2.5);
    want.slice_mut(ndarray::s![1..3, 2..5]).assign(&array(&x));
    assert_values(
        "pad",
        &[x],
        |e| e[0].pad(&[(1, 0), (2, 2)], -2.5),
        &Tensor::from(want),
    );
    case("pad")
        .var(&[2, 3], U)
        .elementwise()
        .check(|e| e[0].pad(&[(1, 0), (2, 2)], 0.5).sin());
    case("pad of an NCHW batch known at run time")
        .var_dyn(&[None, Some(1), Some(2), Some(3)], &[2, 1, 2, 3], U)
        .elementwise()
        .check(|e| e[0].pad(&[(0, 0), (0, 0), (1, 2), (0, 1)], 0.0).exp());
    case("pad second order")
        .var(&[2, 2], U)
        .second_order()
        .check(|e| e[0].pad(&[(1, 1), (0, 1)], 1.0).square());
}

/// A small conv net's forward and gradients in `mode` on a batch of 8 (more images than
/// threads: the per-image tasks).
fn net(mode: Mode, dtype: DType) -> Vec<Tensor> {
    let g = Graph::new();
    let x = g.input("x", dtype, &[None, Some(2), Some(12), Some(12)]);
    let w1 = g.input("w1", dtype, &[Some(4), Some(2), Some(3), Some(3)]);
    let w2 = g.input("w2", dtype, &[Some(6), Some(2), Some(3), Some(3)]);
    let h = x
        .conv2d(&w1, Conv2d::default().with_padding(1))
        .relu()
        .max_pool2d(Pool2d::new(2));
    let y = h
        .conv2d(
            &w2,
            Conv2d::default()
                .with_groups(2)
                .with_stride(2)
                .with_dilation(1),
        )
        .tanh()
        .avg_pool2d(Pool2d::new(2).with_padding(1));
    let loss = y.square().sum();
    let grads = grad(&loss, &[&x, &w1, &w2]).unwrap();
    let outs: Vec<&Expr> = std::iter::once(&y).chain(&grads).collect();
    let f = function(&[&x, &w1, &w2], &outs)
        .mode(mode)
        .compile()
        .unwrap();
    let cast = |t: Tensor| t.cast(dtype);
    f.call(&[
        cast(uniform(&[8, 2, 12, 12], -1.0, 1.0, 9)),
        cast(uniform(&[4, 2, 3, 3], -0.5, 0.5, 10)),
        cast(uniform(&[6, 2, 3, 3], -0.5, 0.5, 11)),
    ])
    .unwrap()
}

#[test]
fn fast_conv_net_equals_the_reference() {
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-4)] {
        let fast = net(Mode::Fast, dtype);
        let reference = net(Mode::Reference, dtype);
        for (k, (a, b)) in fast.iter().zip(&reference).enumerate() {
            assert_close(&format!("{dtype} output {k}"), a, b, tol);
        }
    }
}
