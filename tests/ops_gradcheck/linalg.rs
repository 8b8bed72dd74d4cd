//! Matrix products: `matmul` (2-d and batched 3-d), numpy-style `dot`, `outer`.

use crate::common::{Fill, case};

const U: Fill = Fill::Uniform(-1.5, 1.5);

#[test]
fn matmul() {
    case("matmul 2-d")
        .var(&[3, 4], U)
        .var(&[4, 2], U)
        .elementwise()
        .check(|x| x[0].matmul(&x[1]));
    case("matmul 2-d")
        .var(&[5, 7], U)
        .var(&[7, 6], U)
        .check(|x| x[0].matmul(&x[1]));
    case("matmul 1x1 result")
        .var(&[1, 5], U)
        .var(&[5, 1], U)
        .elementwise()
        .check(|x| x[0].matmul(&x[1]));
}

#[test]
fn matmul_batched() {
    case("matmul 3-d")
        .var(&[2, 3, 4], U)
        .var(&[2, 4, 5], U)
        .check(|x| x[0].matmul(&x[1]));
    case("matmul 3-d")
        .var(&[3, 2, 2], U)
        .var(&[3, 2, 1], U)
        .elementwise()
        .check(|x| x[0].matmul(&x[1]));
}

#[test]
fn matmul_of_a_batch_of_sequences_by_a_matrix() {
    case("matmul [N, T, D] @ [D, H]")
        .var(&[2, 3, 4], U)
        .var(&[4, 5], U)
        .check(|x| x[0].matmul(&x[1]));
    case("matmul [N, T, D] @ [D, H]")
        .var(&[2, 2, 3], U)
        .var(&[3, 2], U)
        .elementwise()
        .check(|x| x[0].matmul(&x[1]));
}

#[test]
fn matmul_of_a_batch_of_sequences_by_a_matrix_of_run_time_shape() {
    use gradus::gradcheck::GradCheck;
    use gradus::prelude::*;
    let g = Graph::new();
    let a = g.input("a", DType::F64, &[None, None, None]);
    let b = g.input("b", DType::F64, &[None, None]);
    let y = (a.matmul(&b) * 1.5).sin().sum();
    let av: Tensor = ndarray::Array3::from_shape_fn((2, 3, 4), |(i, j, k)| {
        ((i * 12 + j * 4 + k) % 7) as f64 * 0.2 - 0.6
    })
    .into();
    let bv: Tensor =
        ndarray::Array2::from_shape_fn((4, 2), |(i, j)| ((i * 2 + j) % 5) as f64 * 0.3 - 0.5)
            .into();
    GradCheck::new(&y, &[&a, &b])
        .at(&[av, bv])
        .elementwise()
        .run()
        .unwrap();
    assert_eq!(a.matmul(&b).ndim(), 3);
}

#[test]
fn dot() {
    case("dot vec.vec")
        .var(&[4], U)
        .var(&[4], U)
        .elementwise()
        .check(|x| x[0].dot(&x[1]));
    case("dot mat.vec")
        .var(&[3, 4], U)
        .var(&[4], U)
        .elementwise()
        .check(|x| x[0].dot(&x[1]));
    case("dot vec.mat")
        .var(&[3], U)
        .var(&[3, 4], U)
        .elementwise()
        .check(|x| x[0].dot(&x[1]));
    case("dot mat.mat")
        .var(&[3, 4], U)
        .var(&[4, 5], U)
        .check(|x| x[0].dot(&x[1]));
}

#[test]
fn outer() {
    case("outer")
        .var(&[3], U)
        .var(&[4], U)
        .elementwise()
        .check(|x| x[0].outer(&x[1]));
}
