//! Mistakes in convolutions, pools and padding: each is an `Err` naming the problem and the
//! line of this file that built the bad node, returned alike by `check`, `grad`, `function`
//! and `eval`; one that shows only at run time names the line too.

mod common;

use common::{assert_built_at, assert_mentions, reported};
use gradus::prelude::*;
use gradus::{Conv2d, Error, Pool2d};

fn nchw(g: &Graph, name: &str, dims: [usize; 4]) -> Expr {
    g.input(name, DType::F64, &dims.map(Some))
}

#[test]
fn conv2d_of_an_input_that_is_not_nchw() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(1), Some(28), Some(28)]);
    let w = nchw(&g, "w", [4, 1, 3, 3]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default()), line!());
    let err = reported(&bad, &[&x, &w]);
    assert!(matches!(err, Error::Shape { .. }), "{err:?}");
    assert_mentions(
        &err.to_string(),
        &["conv2d", "the input (NCHW) must be 4-d", "3-d"],
    );
    assert_built_at(&err, line);
}

#[test]
fn conv2d_with_filters_that_are_not_oihw() {
    let g = Graph::new();
    let x = nchw(&g, "x", [2, 1, 8, 8]);
    let w = g.input("w", DType::F64, &[Some(4), Some(3), Some(3)]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default()), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(&err.to_string(), &["the filters (OIHW) must be 4-d"]);
    assert_built_at(&err, line);
}

#[test]
fn conv2d_channels_not_divisible_by_groups() {
    let g = Graph::new();
    let x = nchw(&g, "x", [2, 3, 8, 8]);
    let w = nchw(&g, "w", [4, 1, 3, 3]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default().with_groups(2)), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(&err.to_string(), &["3 channels do not split into 2 groups"]);
    assert_built_at(&err, line);

    let x = nchw(&g, "x", [2, 4, 8, 8]);
    let w = nchw(&g, "w", [3, 2, 3, 3]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default().with_groups(2)), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(
        &err.to_string(),
        &["the filters' 3 output channels do not split into 2 groups"],
    );
    assert_built_at(&err, line);
}

#[test]
fn conv2d_filters_for_other_channels() {
    let g = Graph::new();
    let x = nchw(&g, "x", [2, 3, 8, 8]);
    let w = nchw(&g, "w", [4, 2, 3, 3]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default()), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(
        &err.to_string(),
        &[
            "the filters take 2 channels per group, the input has 3",
            "f64[2, 3, 8, 8]",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn conv2d_window_larger_than_the_padded_input() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 4, 4]);
    let w = nchw(&g, "w", [1, 1, 3, 3]);
    // dilation 2 spreads the 3 taps over 5 cells; padding 0 leaves 4
    let (bad, line) = (x.conv2d(&w, Conv2d::default().with_dilation(2)), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(
        &err.to_string(),
        &["the window spans 5 cells, more than the 4 of the padded input"],
    );
    assert_built_at(&err, line);
}

#[test]
fn conv2d_with_zero_stride_dilation_or_groups() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 2, 6, 6]);
    let w = nchw(&g, "w", [2, 2, 3, 3]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default().with_stride((1, 0))), line!());
    let err = reported(&bad, &[&x, &w]);
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["the stride must be positive, got 1x0"]);
    assert_built_at(&err, line);
    let (bad, line) = (x.conv2d(&w, Conv2d::default().with_dilation(0)), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(&err.to_string(), &["the dilation must be positive"]);
    assert_built_at(&err, line);
    let (bad, line) = (x.conv2d(&w, Conv2d::default().with_groups(0)), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(&err.to_string(), &["groups must be positive"]);
    assert_built_at(&err, line);
}

#[test]
fn conv2d_of_mixed_dtypes() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 6, 6]);
    let w = g.input("w", DType::F32, &[Some(1), Some(1), Some(3), Some(3)]);
    let (bad, line) = (x.conv2d(&w, Conv2d::default()), line!());
    let err = reported(&bad, &[&x, &w]);
    assert!(matches!(err, Error::DType { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["conv2d", "f64 vs f32"]);
    assert_built_at(&err, line);
}

#[test]
fn conv2d_window_too_large_for_an_image_known_only_at_run_time() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[None, Some(1), None, None]);
    let w = nchw(&g, "w", [2, 1, 5, 5]);
    let (y, line) = (x.conv2d(&w, Conv2d::default().with_padding(1)), line!());
    let f = function(&[&x, &w], &[&y]).compile().unwrap();
    let image = Tensor::from_f64(&[1, 1, 2, 2], vec![0.0; 4], DType::F64).unwrap();
    let filters = Tensor::from_f64(&[2, 1, 5, 5], vec![0.0; 50], DType::F64).unwrap();
    let err = f.call(&[image, filters]).unwrap_err();
    assert_mentions(
        &err.to_string(),
        &[
            "conv2d",
            "the window spans 5 cells, more than the 4 of the padded input",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn pools_of_windows_larger_than_the_padded_input() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 3, 5]);
    let (bad, line) = (x.max_pool2d(Pool2d::new(4)), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(
        &err.to_string(),
        &[
            "max_pool2d",
            "the window spans 4 cells, more than the 3 of the padded input",
        ],
    );
    assert_built_at(&err, line);
    let wide = Pool2d::new((1, 8)).with_padding((0, 1));
    let (bad, line) = (x.avg_pool2d(wide), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(
        &err.to_string(),
        &[
            "avg_pool2d",
            "the window spans 8 cells, more than the 7 of the padded input",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn pools_padded_by_more_than_half_the_window() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 6, 6]);
    let (bad, line) = (x.max_pool2d(Pool2d::new(2).with_padding(2)), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(
        &err.to_string(),
        &["the padding 2 is more than half the window 2"],
    );
    assert_built_at(&err, line);
}

#[test]
fn pools_with_a_zero_window_or_stride() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 6, 6]);
    let (bad, line) = (x.avg_pool2d(Pool2d::new(2).with_stride(0)), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(&err.to_string(), &["the stride must be positive"]);
    assert_built_at(&err, line);
    let (bad, line) = (x.max_pool2d(Pool2d::new((0, 2))), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(&err.to_string(), &["the window must be positive, got 0x2"]);
    assert_built_at(&err, line);
}

#[test]
fn pools_of_an_input_that_is_not_nchw() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(6), Some(6)]);
    let (bad, line) = (x.max_pool2d(Pool2d::new(2)), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(&err.to_string(), &["the input (NCHW) must be 4-d, got 2-d"]);
    assert_built_at(&err, line);
}

#[test]
fn pad_with_a_pair_per_axis_missing() {
    let g = Graph::new();
    let x = g.input("x", DType::F64, &[Some(2), Some(3)]);
    let (bad, line) = (x.pad(&[(1, 1)], 0.0), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(
        &err.to_string(),
        &[
            "pad",
            "1 (before, after) pairs for 2 axes; give one per axis",
        ],
    );
    assert_built_at(&err, line);
}

#[test]
fn pad_of_integers() {
    let g = Graph::new();
    let k = g.input("k", DType::I64, &[Some(3)]);
    let (bad, line) = (k.pad(&[(1, 1)], 0.0), line!());
    let err = bad.check().unwrap_err();
    assert_mentions(&err.to_string(), &["pad", "needs a float operand, got i64"]);
    assert_built_at(&err, line);
}

#[test]
fn max_pool_has_no_second_order() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 4, 4]);
    let (y, line) = (x.max_pool2d(Pool2d::new(2)), line!());
    let dx = grad(&y.square().sum(), &[&x]).unwrap().remove(0);
    let err = grad(&dx.sum(), &[&x]).unwrap_err();
    assert_mentions(&err.to_string(), &["max_pool2d_grad", "no second order"]);
    assert_built_at(&err, line);
}

#[test]
fn sizes_past_a_usize_are_errors_not_overflows() {
    let g = Graph::new();
    let x = nchw(&g, "x", [1, 1, 6, 6]);
    let w = nchw(&g, "w", [1, 1, 3, 3]);
    let huge = Conv2d::default()
        .with_dilation(usize::MAX)
        .with_padding(usize::MAX);
    let (bad, line) = (x.conv2d(&w, huge), line!());
    let err = reported(&bad, &[&x, &w]);
    assert_mentions(&err.to_string(), &["larger than a usize counts"]);
    assert_built_at(&err, line);
    let widths = [(0, 0), (0, 0), (usize::MAX, 1), (0, 0)];
    let (bad, line) = (x.pad(&widths, 0.0), line!());
    let err = reported(&bad, &[&x]);
    assert_mentions(&err.to_string(), &["larger than a usize counts"]);
    assert_built_at(&err, line);
}
