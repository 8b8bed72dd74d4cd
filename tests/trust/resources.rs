//! Resources: a value that cannot be allocated is an error naming the op, the shape, the bytes
//! and the line; shape arithmetic is checked; gzip input stops inflating past its declared size.

use std::io::Write;

use gradus::prelude::*;

use crate::common::assert_located;

#[test]
fn a_result_too_large_to_allocate_is_an_error_not_an_abort() {
    let g = Graph::new();
    let a = g.input("a", DType::F32, &[None, Some(1)]);
    let b = g.input("b", DType::F32, &[Some(1), None]);
    let (p, line) = (a.matmul(&b), line!());
    let feeds = [
        Tensor::from(ndarray::Array2::<f32>::ones((100_000, 1))),
        Tensor::from(ndarray::Array2::<f32>::ones((1, 100_000))),
    ];
    for mode in [Mode::Fast, Mode::Reference] {
        let f = function(&[&a, &b], &[&p]).mode(mode).compile().unwrap();
        let err = f.call(&feeds).expect_err("40 GB");
        assert!(
            matches!(err, Error::OutOfMemory { .. }),
            "{mode:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("40000000000 bytes") && msg.contains("f32[100000, 100000]"),
            "{mode:?}: {msg}"
        );
        assert_located(&err, file!(), line);
    }
}

#[test]
fn the_memory_limit_stops_a_value_larger_than_it() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let (big, line) = (x.broadcast_to(&[1000, 1000]), line!());
    let f = function(&[&x], &[&big.sum()])
        .memory_limit(1 << 20)
        .compile()
        .unwrap();
    let err = f.call(&[vec![1.0; 1000].into()]).expect_err("8 MB > 1 MiB");
    assert!(
        err.to_string().contains("memory limit of 1048576 bytes"),
        "{err}"
    );
    assert_located(&err, file!(), line);
    let small = function(&[&x], &[&x.sum()])
        .memory_limit(1 << 20)
        .compile()
        .unwrap();
    assert_eq!(
        small.call(&[vec![1.0; 1000].into()]).unwrap()[0]
            .item()
            .unwrap(),
        1000.0
    );
}

#[test]
fn shapes_too_large_to_count_are_build_errors() {
    let g = Graph::new();
    let huge = Some(1 << 40);
    let (x, line) = (g.input("x", DType::F32, &[huge, huge]), line!());
    let flat = x.reshape(&[-1]);
    let err = flat.check().expect_err("2^80 elements");
    assert!(
        err.to_string()
            .contains("more elements than a usize counts"),
        "{err}"
    );
    assert_located(&err, file!(), line);
    // Broadcasting two large static shapes overflows the same way.
    let a = g.input("a", DType::F32, &[Some(1 << 33), Some(1)]);
    let b = g.input("b", DType::F32, &[Some(1), Some(1 << 33)]);
    let (s, line) = (&a + &b, line!());
    let err = s.check().expect_err("2^66 elements");
    assert!(
        err.to_string()
            .contains("more elements than a usize counts"),
        "{err}"
    );
    assert_located(&err, file!(), line);
}

#[test]
fn gzip_input_stops_inflating_past_its_declared_size() {
    // A header for 10 bytes of u8, then 8 MiB of zeros: compressed, about 8 kB.
    let mut plain = vec![0u8, 0, 0x08, 1, 0, 0, 0, 10];
    plain.extend(std::iter::repeat_n(0u8, 8 << 20));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&plain).unwrap();
    let bytes = gz.finish().unwrap();
    assert!(bytes.len() < 1 << 20);
    let err = gradus::data::idx::parse_idx(&bytes, "bomb.gz").expect_err("trailing bytes");
    assert!(err.to_string().contains("trailing bytes"), "{err}");
    // (How far it inflated is checked by the unit test `inflates_no_further_than_declared`.)
}
