//! Reader for the IDX file format used by MNIST and its relatives.
//!
//! An IDX file is a 4-byte magic number `0x00 0x00 <type code> <ndims>`, then `ndims`
//! big-endian `u32` dimensions, then the elements in row-major order, each big-endian.
//! Files may be gzip-compressed; compression is detected from the gzip magic bytes
//! (`1f 8b`), not from the file name.
//!
//! ```no_run
//! use gradus::data::idx::{read_idx, IdxData};
//!
//! let labels = read_idx("data/mnist-subset/t10k-labels-idx1-ubyte.gz")?;
//! assert_eq!(labels.dims.len(), 1);
//! if let IdxData::U8(bytes) = &labels.data {
//!     println!("first label: {:?}", bytes.first());
//! }
//! # Ok::<(), gradus::Error>(())
//! ```

use std::fmt;
use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{Error, Result};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Element type of an IDX file, as given by the third byte of its magic number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdxDType {
    /// Unsigned byte (type code `0x08`).
    U8,
    /// Signed byte (type code `0x09`).
    I8,
    /// Big-endian 16-bit signed integer (type code `0x0B`).
    I16,
    /// Big-endian 32-bit signed integer (type code `0x0C`).
    I32,
    /// Big-endian 32-bit IEEE float (type code `0x0D`).
    F32,
    /// Big-endian 64-bit IEEE float (type code `0x0E`).
    F64,
}

impl IdxDType {
    /// The dtype for an IDX type code, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0x08 => Some(IdxDType::U8),
            0x09 => Some(IdxDType::I8),
            0x0B => Some(IdxDType::I16),
            0x0C => Some(IdxDType::I32),
            0x0D => Some(IdxDType::F32),
            0x0E => Some(IdxDType::F64),
            _ => None,
        }
    }

    /// The IDX type code of this dtype.
    pub fn code(self) -> u8 {
        match self {
            IdxDType::U8 => 0x08,
            IdxDType::I8 => 0x09,
            IdxDType::I16 => 0x0B,
            IdxDType::I32 => 0x0C,
            IdxDType::F32 => 0x0D,
            IdxDType::F64 => 0x0E,
        }
    }

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            IdxDType::U8 | IdxDType::I8 => 1,
            IdxDType::I16 => 2,
            IdxDType::I32 | IdxDType::F32 => 4,
            IdxDType::F64 => 8,
        }
    }

    /// Lower-case name (`"u8"`, `"f32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            IdxDType::U8 => "u8",
            IdxDType::I8 => "i8",
            IdxDType::I16 => "i16",
            IdxDType::I32 => "i32",
            IdxDType::F32 => "f32",
            IdxDType::F64 => "f64",
        }
    }
}

impl fmt::Display for IdxDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The elements of an IDX file, in row-major order, in their stored type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// Unsigned bytes (type code `0x08`, e.g. MNIST pixels and labels).
    U8(Vec<u8>),
    /// Signed bytes (type code `0x09`).
    I8(Vec<i8>),
    /// 16-bit signed integers (type code `0x0B`).
    I16(Vec<i16>),
    /// 32-bit signed integers (type code `0x0C`).
    I32(Vec<i32>),
    /// 32-bit floats (type code `0x0D`).
    F32(Vec<f32>),
    /// 64-bit floats (type code `0x0E`).
    F64(Vec<f64>),
}

impl IdxData {
    /// The element type.
    pub fn dtype(&self) -> IdxDType {
        match self {
            IdxData::U8(_) => IdxDType::U8,
            IdxData::I8(_) => IdxDType::I8,
            IdxData::I16(_) => IdxDType::I16,
            IdxData::I32(_) => IdxDType::I32,
            IdxData::F32(_) => IdxDType::F32,
            IdxData::F64(_) => IdxDType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements converted to `f64` (exact for every IDX type).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            IdxData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I16(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            IdxData::F64(v) => v.clone(),
        }
    }
}

/// A whole IDX file: its dimensions and its elements.
///
/// Invariant (upheld by [`parse_idx`] and [`read_idx`]): `data.len()` equals the product
/// of `dims` (1 for zero dims).
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[n, 28, 28]` for MNIST images).
    pub dims: Vec<usize>,
    /// The elements in row-major order.
    pub data: IdxData,
}

impl IdxArray {
    /// The element type.
    pub fn dtype(&self) -> IdxDType {
        self.data.dtype()
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.dims.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as bytes, if the file holds `u8` (type code `0x08`).
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            IdxData::U8(v) => Some(v),
            _ => None,
        }
    }

    /// The elements as bytes, consuming the array, if the file holds `u8`.
    pub fn into_u8(self) -> Option<Vec<u8>> {
        match self.data {
            IdxData::U8(v) => Some(v),
            _ => None,
        }
    }
}

/// Reads an IDX file, gzip-compressed or plain.
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read, [`Error::Data`] when its content is not a
/// well-formed IDX file (or a corrupt gzip stream).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    parse_idx(&bytes, &shown)
}

/// Parses an IDX file held in memory, gzip-compressed or plain.
///
/// `path_for_errors` only names the source in error messages.
///
/// # Errors
///
/// [`Error::Data`] for a corrupt gzip stream, a truncated header, a bad magic number, an
/// unknown type code, dimensions whose size overflows `usize`, or a payload whose size is
/// not the product of the dimensions times the element size.
pub fn parse_idx(bytes: &[u8], path_for_errors: &str) -> Result<IdxArray> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let plain = inflate(bytes, path_for_errors)?;
        parse_plain(&plain, path_for_errors)
    } else {
        parse_plain(bytes, path_for_errors)
    }
}

/// Inflate a gzip-compressed IDX file no further than its header says it is long: the header
/// first, then at most one byte more than the payload it declares (so that trailing data is
/// still seen). A small file that inflates to gigabytes stops there.
fn inflate(bytes: &[u8], path: &str) -> Result<Vec<u8>> {
    let corrupt = |e: std::io::Error| data_err(path, format!("corrupt gzip stream: {e}"));
    let mut stream = MultiGzDecoder::new(bytes);
    let mut plain = Vec::new();
    let mut read_up_to =
        |plain: &mut Vec<u8>, n: u64| (&mut stream).take(n).read_to_end(plain).map_err(corrupt);
    read_up_to(&mut plain, 4)?;
    let Some(&ndims) = plain.get(3) else {
        return Ok(plain);
    };
    read_up_to(&mut plain, 4 * u64::from(ndims))?;
    let Some(payload) = declared_payload(&plain) else {
        // A malformed header: the plain parser says what is wrong with it.
        return Ok(plain);
    };
    read_up_to(&mut plain, payload.saturating_add(1))?;
    Ok(plain)
}

/// The payload bytes a well-formed header at the start of `header` declares.
fn declared_payload(header: &[u8]) -> Option<u64> {
    let [0, 0, code, ndims] = *header.first_chunk::<4>()? else {
        return None;
    };
    let dtype = IdxDType::from_code(code)?;
    let dims = header.get(4..4 + 4 * usize::from(ndims))?;
    dims.chunks_exact(4)
        .map(|w| u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]])))
        .try_fold(dtype.size() as u64, |acc, d| acc.checked_mul(d))
}

fn data_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Parses an uncompressed IDX buffer.
fn parse_plain(bytes: &[u8], path: &str) -> Result<IdxArray> {
    let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(data_err(
            path,
            format!(
                "truncated header: file has {} bytes, the magic number alone needs 4",
                bytes.len()
            ),
        ));
    };
    let [zero0, zero1, code, ndims] = *magic;
    if zero0 != 0 || zero1 != 0 {
        return Err(data_err(
            path,
            format!(
                "bad magic number {zero0:#04x} {zero1:#04x} {code:#04x} {ndims:#04x}: an IDX \
                 file starts with 0x00 0x00 <type code> <ndims>"
            ),
        ));
    }
    let dtype = IdxDType::from_code(code).ok_or_else(|| {
        data_err(
            path,
            format!(
                "unknown type code {code:#04x} (expected 0x08 u8, 0x09 i8, 0x0b i16, 0x0c i32, \
                 0x0d f32 or 0x0e f64)"
            ),
        )
    })?;

    let ndims = usize::from(ndims);
    let dims_bytes = ndims * 4;
    let Some((dims_raw, payload)) = rest.split_at_checked(dims_bytes) else {
        return Err(data_err(
            path,
            format!(
                "truncated header: {ndims} dimensions need {} header bytes, file has {}",
                4 + dims_bytes,
                bytes.len()
            ),
        ));
    };
    let (dim_words, _) = dims_raw.as_chunks::<4>();
    let mut dims = Vec::with_capacity(ndims);
    for word in dim_words {
        let d = usize::try_from(u32::from_be_bytes(*word))
            .map_err(|_| data_err(path, "dimension does not fit in usize on this platform"))?;
        dims.push(d);
    }

    let overflow = || {
        data_err(
            path,
            format!("dimensions {dims:?} of {dtype} overflow the addressable size"),
        )
    };
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let expected = count.checked_mul(dtype.size()).ok_or_else(overflow)?;
    if payload.len() != expected {
        let what = if payload.len() < expected {
            "truncated payload"
        } else {
            "trailing bytes after payload"
        };
        return Err(data_err(
            path,
            format!(
                "{what}: dimensions {dims:?} of {dtype} need {expected} bytes of data, found {}",
                payload.len()
            ),
        ));
    }

    let data = match dtype {
        IdxDType::U8 => IdxData::U8(payload.to_vec()),
        IdxDType::I8 => IdxData::I8(payload.iter().map(|&b| i8::from_be_bytes([b])).collect()),
        IdxDType::I16 => IdxData::I16(decode(payload, i16::from_be_bytes)),
        IdxDType::I32 => IdxData::I32(decode(payload, i32::from_be_bytes)),
        IdxDType::F32 => IdxData::F32(decode(payload, f32::from_be_bytes)),
        IdxDType::F64 => IdxData::F64(decode(payload, f64::from_be_bytes)),
    };
    Ok(IdxArray { dims, data })
}

/// Decodes consecutive `N`-byte big-endian elements (the length was checked by the caller).
fn decode<T, const N: usize>(payload: &[u8], from_be: fn([u8; N]) -> T) -> Vec<T> {
    let (words, _) = payload.as_chunks::<N>();
    words.iter().map(|w| from_be(*w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflates_no_further_than_declared() {
        use std::io::Write;
        // A header for 10 bytes of u8, then 8 MiB of zeros.
        let mut plain = vec![0u8, 0, 0x08, 1, 0, 0, 0, 10];
        plain.extend(std::iter::repeat_n(0u8, 8 << 20));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&plain).unwrap();
        let inflated = inflate(&gz.finish().unwrap(), "bomb.gz").unwrap();
        // The header, the 10 declared bytes and one more, to see that more follow.
        assert_eq!(inflated.len(), 8 + 10 + 1);
    }
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// Builds an IDX buffer from a type code, dims and an already-encoded payload.
    fn build(code: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let ndims = u8::try_from(dims.len()).unwrap();
        let mut out = vec![0, 0, code, ndims];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// The `reason` of a `Data` error; fails the test on anything else.
    fn data_reason(r: Result<IdxArray>) -> String {
        match r {
            Err(Error::Data { path, reason }) => {
                assert_eq!(path, "test.idx");
                reason
            }
            other => panic!("expected Error::Data, got {other:?}"),
        }
    }

    fn u8_file() -> Vec<u8> {
        build(0x08, &[2, 3], &[0, 1, 2, 253, 254, 255])
    }

    fn f32_values() -> Vec<f32> {
        vec![0.0, -1.5, 3.25, f32::MAX, f32::MIN_POSITIVE, -0.0]
    }

    fn f32_file() -> Vec<u8> {
        let payload: Vec<u8> = f32_values().iter().flat_map(|x| x.to_be_bytes()).collect();
        build(0x0D, &[3, 2], &payload)
    }

    #[test]
    fn u8_round_trip_plain_and_gzip() {
        for bytes in [u8_file(), gzip(&u8_file())] {
            let a = parse_idx(&bytes, "test.idx").unwrap();
            assert_eq!(a.dims, vec![2, 3]);
            assert_eq!(a.dtype(), IdxDType::U8);
            assert_eq!(a.len(), 6);
            assert_eq!(a.as_u8(), Some(&[0u8, 1, 2, 253, 254, 255][..]));
        }
    }

    #[test]
    fn f32_round_trip_plain_and_gzip() {
        for bytes in [f32_file(), gzip(&f32_file())] {
            let a = parse_idx(&bytes, "test.idx").unwrap();
            assert_eq!(a.dims, vec![3, 2]);
            match &a.data {
                IdxData::F32(v) => {
                    let bits: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                    let want: Vec<u32> = f32_values().iter().map(|x| x.to_bits()).collect();
                    assert_eq!(bits, want);
                }
                other => panic!("expected f32 data, got {other:?}"),
            }
            assert_eq!(a.as_u8(), None);
        }
    }

    #[test]
    fn other_dtypes_big_endian() {
        let a = parse_idx(&build(0x09, &[2], &[0x80, 0x7f]), "test.idx").unwrap();
        assert_eq!(a.data, IdxData::I8(vec![-128, 127]));
        let a = parse_idx(&build(0x0B, &[2], &[0xff, 0xfe, 0x01, 0x02]), "test.idx").unwrap();
        assert_eq!(a.data, IdxData::I16(vec![-2, 0x0102]));
        let a = parse_idx(&build(0x0C, &[1], &[0x01, 0x02, 0x03, 0x04]), "test.idx").unwrap();
        assert_eq!(a.data, IdxData::I32(vec![0x0102_0304]));
        let a = parse_idx(&build(0x0E, &[1], &(-2.5f64).to_be_bytes()), "test.idx").unwrap();
        assert_eq!(a.data, IdxData::F64(vec![-2.5]));
        assert_eq!(a.data.to_f64_vec(), vec![-2.5]);
        // A dimension of zero is a valid, empty array.
        let a = parse_idx(&build(0x08, &[0, 28, 28], &[]), "test.idx").unwrap();
        assert!(a.is_empty());
        assert_eq!(a.ndim(), 3);
    }

    #[test]
    fn dtype_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(t) = IdxDType::from_code(code) {
                assert_eq!(t.code(), code);
            }
        }
    }

    #[test]
    fn truncated_header() {
        let r = data_reason(parse_idx(&[0, 0, 8], "test.idx"));
        assert!(r.contains("truncated header"), "{r}");
        // Magic says 3 dims but only two are present.
        let mut bytes = build(0x08, &[2, 3], &[]);
        bytes[3] = 3;
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("truncated header"), "{r}");
        let r = data_reason(parse_idx(&[], "test.idx"));
        assert!(r.contains("truncated header"), "{r}");
    }

    #[test]
    fn truncated_payload() {
        let mut bytes = u8_file();
        bytes.pop();
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("truncated payload"), "{r}");
        assert!(r.contains("need 6 bytes"), "{r}");
        // Also through gzip.
        let r = data_reason(parse_idx(&gzip(&bytes), "test.idx"));
        assert!(r.contains("truncated payload"), "{r}");
        // Too many bytes is also an error.
        let mut bytes = f32_file();
        bytes.push(0);
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("trailing bytes"), "{r}");
    }

    #[test]
    fn truncated_gzip_stream() {
        let gz = gzip(&u8_file());
        let r = data_reason(parse_idx(&gz[..gz.len() - 6], "test.idx"));
        assert!(r.contains("gzip"), "{r}");
    }

    #[test]
    fn bad_magic() {
        let mut bytes = u8_file();
        bytes[1] = 0x01;
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("bad magic number"), "{r}");
    }

    #[test]
    fn unknown_type_code() {
        let bytes = build(0x0A, &[1], &[0]);
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("unknown type code 0x0a"), "{r}");
    }

    #[test]
    fn dims_product_overflow() {
        let bytes = build(0x08, &[u32::MAX; 4], &[]);
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("overflow"), "{r}");
        // The element count fits but the byte count does not.
        let bytes = build(0x0E, &[1 << 31, 1 << 30], &[]);
        let r = data_reason(parse_idx(&bytes, "test.idx"));
        assert!(r.contains("overflow"), "{r}");
    }

    #[test]
    fn read_files_plain_and_gzip() {
        let dir = std::env::temp_dir().join(format!("gradus-idx-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("a.idx");
        let gz = dir.join("a.idx.weird-extension");
        std::fs::write(&plain, u8_file()).unwrap();
        std::fs::write(&gz, gzip(&u8_file())).unwrap();
        let a = read_idx(&plain).unwrap();
        let b = read_idx(&gz).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.dims, vec![2, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_io_error() {
        let path = std::env::temp_dir().join("gradus-idx-test-does-not-exist.idx");
        match read_idx(&path) {
            Err(Error::Io { path: p, reason }) => {
                assert!(p.contains("gradus-idx-test-does-not-exist"), "{p}");
                assert!(!reason.is_empty());
            }
            other => panic!("expected Error::Io, got {other:?}"),
        }
    }
}
