//! Saving and loading parameters as [safetensors] files, the format PyTorch, numpy
//! (`safetensors.numpy.load_file`) and Hugging Face tools read.
//!
//! A file is an 8-byte little-endian header length, a JSON header mapping each name to its
//! dtype, shape and byte range, then the raw little-endian row-major data. gradus writes and
//! reads `F32`, `F64`, `I64` and `BOOL` (one byte, 0 or 1); any other dtype in a file is
//! refused with [`Error::Data`] rather than converted.
//!
//! [`save_params`] / [`load_params`] store shared variables under their names;
//! [`save_tensors`] / [`load_tensors`] store any named tensors. A malformed or truncated file
//! is an [`Error::Data`] naming the file, never a panic; loading parameters checks every name,
//! dtype and shape before it changes any value, so a failed load leaves the model as it was.
//!
//! ```
//! use gradus::prelude::*;
//! use gradus::io::{load_params, save_params};
//! let g = Graph::new();
//! let w = g.shared("W", vec![1.0f32, 2.0, 3.0]);
//! let path = std::env::temp_dir().join(format!("gradus-io-doc-{}.safetensors", std::process::id()));
//! save_params(&path, &[&w])?;
//! w.set_value(vec![0.0f32; 3])?;
//! load_params(&path, &[&w])?;
//! assert_eq!(w.get_value()?.to_f64_vec(), [1.0, 2.0, 3.0]);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), gradus::Error>(())
//! ```
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, View};

use crate::error::{Error, Location, Result};
use crate::graph::Expr;
use crate::shape;
use crate::tensor::Tensor;

/// Size of the little-endian `u64` header length that opens every file.
const HEADER_LEN_BYTES: usize = 8;

fn data_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// A tensor's bytes as safetensors wants them: little-endian, row-major.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Encoded {
    fn new(t: &Tensor) -> Encoded {
        // `iter` walks in logical row-major order whatever the memory layout.
        let (dtype, bytes) = match t {
            Tensor::F32(a) => (Dtype::F32, a.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Tensor::F64(a) => (Dtype::F64, a.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Tensor::I64(a) => (Dtype::I64, a.iter().flat_map(|v| v.to_le_bytes()).collect()),
            Tensor::Bool(a) => (Dtype::BOOL, a.iter().map(|&v| u8::from(v)).collect()),
        };
        Encoded {
            dtype,
            shape: t.shape().to_vec(),
            bytes,
        }
    }
}

impl View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Decode `bytes` (already checked by the header to hold exactly `shape`'s elements) as a
/// tensor.
fn decode(path: &Path, name: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
    fn array<T>(shape: &[usize], v: Vec<T>) -> std::result::Result<ArrayD<T>, String> {
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| e.to_string())
    }
    let words = |n: usize| bytes.chunks_exact(n);
    let t = match dtype {
        Dtype::F32 => array(
            shape,
            words(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk")))
                .collect(),
        )
        .map(Tensor::F32),
        Dtype::F64 => array(
            shape,
            words(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
        )
        .map(Tensor::F64),
        Dtype::I64 => array(
            shape,
            words(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
        )
        .map(Tensor::I64),
        Dtype::BOOL => match bytes.iter().find(|&&b| b > 1) {
            Some(b) => Err(format!("bool byte {b} is neither 0 nor 1")),
            None => array(shape, bytes.iter().map(|&b| b == 1).collect()).map(Tensor::Bool),
        },
        other => Err(format!(
            "dtype {other:?} is not one gradus reads (F32, F64, I64, BOOL)"
        )),
    };
    t.map_err(|reason| data_err(path, format!("tensor {name}: {reason}")))
}

/// Parse a safetensors file held in memory; `path` names it in errors. Tensors come back in
/// file order.
pub fn parse_tensors(path: impl AsRef<Path>, bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let (header_len, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| data_err(path, format!("not a safetensors file: {e}")))?;
    // `read_metadata` checked that the byte ranges tile the rest of the file exactly.
    let data = &bytes[HEADER_LEN_BYTES + header_len..];
    meta.offset_keys()
        .into_iter()
        .map(|name| {
            let info = meta
                .info(&name)
                .ok_or_else(|| data_err(path, format!("tensor {name} lost from the header")))?;
            let (start, end) = info.data_offsets;
            let t = decode(path, &name, info.dtype, &info.shape, &data[start..end])?;
            Ok((name, t))
        })
        .collect()
}

/// Write named tensors to a safetensors file (replacing it whole: the data go to a sibling
/// temporary file that is then renamed over `path`, so a crash never leaves half a file).
pub fn save_tensors(path: impl AsRef<Path>, tensors: &[(&str, &Tensor)]) -> Result<()> {
    let path = path.as_ref();
    let mut seen = HashSet::new();
    if let Some((name, _)) = tensors.iter().find(|(n, _)| !seen.insert(*n)) {
        return Err(data_err(path, format!("two tensors named {name}")));
    }
    let encoded: Vec<(&str, Encoded)> =
        tensors.iter().map(|(n, t)| (*n, Encoded::new(t))).collect();
    let bytes = safetensors::serialize(encoded.iter().map(|(n, e)| (*n, e)), None)
        .map_err(|e| data_err(path, e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = Path::new(&tmp);
    std::fs::write(tmp, &bytes).map_err(|e| io_err(tmp, e))?;
    std::fs::rename(tmp, path).map_err(|e| io_err(path, e))
}

/// Read every tensor of a safetensors file, in file order.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    parse_tensors(path, &bytes)
}

/// Save the current values of shared variables, each under its name ([`Expr::name`]).
///
/// # Errors
///
/// [`Error::Usage`] when an expression is not a shared variable or two share a name;
/// [`Error::Io`] when the file cannot be written.
#[track_caller]
pub fn save_params(path: impl AsRef<Path>, params: &[&Expr]) -> Result<()> {
    let loc = Location::caller();
    let path = path.as_ref();
    let mut named = Vec::with_capacity(params.len());
    for p in params {
        let name = p.name();
        if named.iter().any(|(n, _)| *n == name) {
            return Err(Error::Usage {
                what: format!(
                    "save_params: two parameters named {name}; give shared variables distinct names"
                ),
                loc,
            });
        }
        let value = p.get_value().map_err(|_| Error::Usage {
            what: format!("save_params: {name} is not a shared variable"),
            loc,
        })?;
        named.push((name, value));
    }
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    save_tensors(path, &refs)
}

/// Set shared variables from the tensors of the same names in a safetensors file. Every
/// parameter must be present with its exact dtype and shape; the file may hold others (a
/// checkpoint can carry optimizer state or a persistent chain that a caller does not want).
/// Nothing is changed unless every parameter can be loaded.
///
/// # Errors
///
/// [`Error::Data`] naming the tensor that is missing or has the wrong dtype or shape, or
/// describing what is malformed in the file; [`Error::Io`] when it cannot be read;
/// [`Error::Usage`] when an expression is not a shared variable.
#[track_caller]
pub fn load_params(path: impl AsRef<Path>, params: &[&Expr]) -> Result<()> {
    let loc = Location::caller();
    let path = path.as_ref();
    let tensors = load_tensors(path)?;
    let mut values = Vec::with_capacity(params.len());
    for p in params {
        let name = p.name();
        let current = p.get_value().map_err(|_| Error::Usage {
            what: format!("load_params: {name} is not a shared variable"),
            loc,
        })?;
        let Some((_, t)) = tensors.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
            return Err(data_err(
                path,
                format!(
                    "no tensor named {name} (the file holds: {})",
                    names.join(", ")
                ),
            ));
        };
        if t.dtype() != current.dtype() || t.shape() != current.shape() {
            return Err(data_err(
                path,
                format!(
                    "tensor {name} is {}{} in the file but the parameter is {}{}",
                    t.dtype(),
                    shape::show(t.shape()),
                    current.dtype(),
                    shape::show(current.shape())
                ),
            ));
        }
        values.push(t.clone());
    }
    for (p, v) in params.iter().zip(values) {
        p.set_value(v)?;
    }
    Ok(())
}
