//! Parameter files: round trips per dtype, the safetensors layout other tools read, and
//! malformed files (every truncation, corrupt headers, lying lengths) as `Err`, never a panic.

use std::path::PathBuf;

use gradus::io::{load_params, load_tensors, parse_tensors, save_params, save_tensors};
use gradus::prelude::*;
use ndarray::{Array2, ArrayD, IxDyn, array};

/// A fresh path in the temp dir, removed when dropped; unique per call, since tests that share
/// a tag run in parallel.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempFile(std::env::temp_dir().join(format!(
            "gradus-io-{tag}-{}-{n}.safetensors",
            std::process::id()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        std::fs::remove_file(&self.0).ok();
    }
}

fn sample_tensors() -> Vec<(&'static str, Tensor)> {
    vec![
        (
            "w",
            Tensor::from(array![[1.5f32, -2.0, 3.25], [0.0, 1e-3, -7.0]]),
        ),
        ("b", Tensor::from(vec![0.1f64, -0.2])),
        ("n", Tensor::from(vec![-3i64, 1 << 40])),
        ("m", Tensor::from(array![[true, false], [false, true]])),
    ]
}

fn small_file() -> Vec<u8> {
    let f = TempFile::new("small");
    let ts = sample_tensors();
    let refs: Vec<(&str, &Tensor)> = ts.iter().map(|(n, t)| (*n, t)).collect();
    save_tensors(&f.0, &refs).unwrap();
    std::fs::read(&f.0).unwrap()
}

fn is_data_error(r: &gradus::Result<Vec<(String, Tensor)>>) -> bool {
    matches!(r, Err(Error::Data { .. }))
}

#[test]
fn every_dtype_round_trips_bit_for_bit() {
    let f = TempFile::new("dtypes");
    let tensors = vec![
        (
            "f32",
            Tensor::from(array![[1.0f32, f32::MIN_POSITIVE], [-0.0, f32::MAX]]),
        ),
        (
            "f64",
            Tensor::from(vec![std::f64::consts::PI, f64::NEG_INFINITY, 1e-300]),
        ),
        ("i64", Tensor::from(vec![i64::MIN, -1, 0, i64::MAX])),
        ("bool", Tensor::from(vec![true, false, false, true, true])),
        ("scalar", Tensor::from(2.5f64)),
        ("empty", Tensor::F32(ArrayD::zeros(IxDyn(&[0, 3])))),
        // A transposed (non-standard layout) array is written in logical row-major order.
        (
            "transposed",
            Tensor::from(
                Array2::from_shape_fn((3, 2), |(i, j)| (i * 2 + j) as f32).reversed_axes(),
            ),
        ),
    ];
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    save_tensors(&f.0, &refs).unwrap();
    let back = load_tensors(&f.0).unwrap();
    assert_eq!(back.len(), tensors.len());
    for (name, t) in &tensors {
        let (_, u) = back.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(u.dtype(), t.dtype(), "{name}");
        assert_eq!(u.shape(), t.shape(), "{name}");
        let bits = |t: &Tensor| {
            t.to_f64_vec()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(u), bits(t), "{name}");
    }
    // i64 extremes do not survive an f64 detour: compare them exactly.
    let (_, i) = back.iter().find(|(n, _)| n == "i64").unwrap();
    assert_eq!(
        i.as_i64().unwrap().as_slice().unwrap(),
        [i64::MIN, -1, 0, i64::MAX]
    );
}

#[test]
fn the_layout_is_the_one_python_safetensors_writes() {
    // What `safetensors.numpy.save` (0.8.0, numpy 2.4) wrote for `sample_tensors()`: header
    // length, JSON header padded with spaces to a multiple of 8, then little-endian data.
    let header = br#"{"n":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"b":{"dtype":"F64","shape":[2],"data_offsets":[16,32]},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[32,56]},"m":{"dtype":"BOOL","shape":[2,2],"data_offsets":[56,60]}}       "#;
    let mut python = (header.len() as u64).to_le_bytes().to_vec();
    python.extend_from_slice(header);
    for v in [-3i64, 1 << 40] {
        python.extend(v.to_le_bytes());
    }
    for v in [0.1f64, -0.2] {
        python.extend(v.to_le_bytes());
    }
    for v in [1.5f32, -2.0, 3.25, 0.0, 1e-3, -7.0] {
        python.extend(v.to_le_bytes());
    }
    python.extend([1u8, 0, 0, 1]);
    assert_eq!(python.len(), 300);

    // gradus reads Python's file...
    let read = parse_tensors("python.safetensors", &python).unwrap();
    let names: Vec<&str> = read.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["n", "b", "w", "m"], "file order");
    for (name, t) in sample_tensors() {
        let (_, u) = read.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(u, &t, "{name}");
    }
    // ...and writes the same bytes: same sort (by alignment, then name), same padding.
    assert_eq!(small_file(), python);
}

#[test]
fn every_truncation_is_a_data_error() {
    let bytes = small_file();
    assert!(parse_tensors("ok", &bytes).is_ok());
    for len in 0..bytes.len() {
        let r = parse_tensors("cut", &bytes[..len]);
        assert!(is_data_error(&r), "prefix of {len} bytes gave {r:?}");
    }
    // A file with trailing garbage is as wrong as a short one.
    let mut long = bytes.clone();
    long.push(0);
    assert!(is_data_error(&parse_tensors("long", &long)));
}

#[test]
fn truncated_files_on_disk_are_data_errors() {
    let bytes = small_file();
    let f = TempFile::new("cut");
    for len in [0, 7, 8, 100, bytes.len() - 1] {
        std::fs::write(&f.0, &bytes[..len]).unwrap();
        let r = load_tensors(&f.0);
        match r {
            Err(Error::Data { path, .. }) => assert_eq!(path, f.0.display().to_string()),
            other => panic!("prefix of {len} bytes gave {other:?}"),
        }
    }
}

/// A file from a header string and a data block.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn corrupt_headers_are_data_errors() {
    let bytes = small_file();
    // Not UTF-8.
    let mut bad = bytes.clone();
    bad[8] = 0xff;
    assert!(is_data_error(&parse_tensors("utf8", &bad)));
    // UTF-8 but not JSON.
    let mut bad = bytes.clone();
    bad[8] = b'[';
    assert!(is_data_error(&parse_tensors("json", &bad)));
    let cases = [
        ("not json", "this is not json"),
        ("wrong json: array", "[1, 2, 3]"),
        ("wrong json: number", "42"),
        ("wrong json: missing fields", r#"{"w":{"dtype":"F32"}}"#),
        (
            "wrong json: unknown dtype",
            r#"{"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#,
        ),
        (
            "wrong json: shape of strings",
            r#"{"w":{"dtype":"F32","shape":["a"],"data_offsets":[0,4]}}"#,
        ),
        (
            "negative offset",
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#,
        ),
        (
            "reversed offsets",
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#,
        ),
        (
            "size disagrees with shape",
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
        ),
        (
            "overlapping tensors",
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        ),
        (
            "element count overflows",
            r#"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
        ),
        (
            "unsupported dtype",
            r#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#,
        ),
        (
            "unsupported dtype: sub-byte",
            r#"{"w":{"dtype":"F4","shape":[8],"data_offsets":[0,4]}}"#,
        ),
    ];
    for (what, header) in cases {
        let r = parse_tensors(what, &file(header, &[0u8; 4]));
        assert!(is_data_error(&r), "{what}: {r:?}");
    }
    // A bool byte other than 0 or 1.
    let r = parse_tensors(
        "bool",
        &file(
            r#"{"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}"#,
            &[1, 2],
        ),
    );
    assert!(is_data_error(&r), "{r:?}");
    // An empty dim next to a huge one is no data, but too many elements for an array.
    let r = parse_tensors(
        "zero-size",
        &file(
            r#"{"w":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}}"#,
            &[],
        ),
    );
    assert!(is_data_error(&r), "{r:?}");
}

#[test]
fn lying_lengths_are_data_errors() {
    let bytes = small_file();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    for claimed in [header_len + 1, header_len + 1000, 1 << 40, u64::MAX, 0] {
        let mut bad = bytes.clone();
        bad[..8].copy_from_slice(&claimed.to_le_bytes());
        assert!(
            is_data_error(&parse_tensors("len", &bad)),
            "header length {claimed}"
        );
    }
    // The header claims more data than the file holds.
    let r = parse_tensors(
        "short data",
        &file(
            r#"{"w":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}"#,
            &[0u8; 16],
        ),
    );
    assert!(is_data_error(&r), "{r:?}");
}

#[test]
fn no_single_byte_corruption_panics() {
    let bytes = small_file();
    for i in 0..bytes.len() {
        for v in [0u8, 1, b'"', b'9', b'}', 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] = v;
            // Data bytes may change values and stay valid; anything else must be `Err(Data)`.
            let r = parse_tensors("flip", &bad);
            assert!(r.is_ok() || is_data_error(&r), "byte {i} = {v}: {r:?}");
        }
    }
}

#[test]
fn params_round_trip_by_name() {
    let f = TempFile::new("params");
    let g = Graph::new();
    let w = g.shared("W", array![[1.0f32, 2.0], [3.0, 4.0]]);
    let b = g.shared("b", vec![0.5f64]);
    let steps = g.shared("steps", 7i64);
    save_params(&f.0, &[&w, &b, &steps]).unwrap();

    let h = Graph::new();
    let w2 = h.shared("W", Array2::<f32>::zeros((2, 2)));
    let b2 = h.shared("b", vec![0.0f64]);
    // Loading a subset of what the file holds is fine.
    load_params(&f.0, &[&b2, &w2]).unwrap();
    assert_eq!(w2.get_value().unwrap(), w.get_value().unwrap());
    assert_eq!(b2.get_value().unwrap(), b.get_value().unwrap());
}

#[test]
fn load_params_names_the_missing_or_mismatched_tensor_and_changes_nothing() {
    let f = TempFile::new("mismatch");
    let g = Graph::new();
    save_params(
        &f.0,
        &[
            &g.shared("W", Array2::<f32>::ones((2, 3))),
            &g.shared("b", vec![1.0f32; 3]),
        ],
    )
    .unwrap();

    let h = Graph::new();
    let b = h.shared("b", vec![0.0f32; 3]);
    let check = |params: &[&Expr], needle: &str| {
        let err = load_params(&f.0, params).unwrap_err();
        assert!(matches!(err, Error::Data { .. }), "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
        assert_eq!(
            b.get_value().unwrap().to_f64_vec(),
            [0.0; 3],
            "nothing loaded"
        );
    };
    check(
        &[&b, &h.shared("hbias", vec![0.0f32; 3])],
        "no tensor named hbias",
    );
    check(
        &[&b, &h.shared("W", Array2::<f32>::zeros((3, 2)))],
        "tensor W is f32[2, 3]",
    );
    check(
        &[&b, &h.shared("W", Array2::<f64>::zeros((2, 3)))],
        "parameter is f64",
    );
}

#[test]
fn misuse_is_reported() {
    let f = TempFile::new("misuse");
    let g = Graph::new();
    let x = g.vector("x", DType::F32);
    let a = g.shared("same", vec![1.0f32]);
    let c = g.shared("same", vec![2.0f32]);
    assert!(matches!(
        save_params(&f.0, &[&a, &c]),
        Err(Error::Usage { .. })
    ));
    assert!(matches!(save_params(&f.0, &[&x]), Err(Error::Usage { .. })));
    save_params(&f.0, &[&a]).unwrap();
    assert!(matches!(load_params(&f.0, &[&x]), Err(Error::Usage { .. })));
    let t = Tensor::from(1.0f32);
    assert!(save_tensors(&f.0, &[("t", &t), ("t", &t)]).is_err());
    let missing = std::env::temp_dir().join("gradus-io-no-such-dir/none.safetensors");
    assert!(matches!(load_tensors(&missing), Err(Error::Io { .. })));
}
