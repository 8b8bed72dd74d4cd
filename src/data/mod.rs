//! Data sets: an IDX reader and an MNIST loader.
//!
//! [`idx::read_idx`] reads any IDX file (gzip-compressed or plain). [`Mnist`] loads the four
//! standard MNIST files from a directory; [`Mnist::bundled`] loads the 10,000-digit subset
//! shipped in the repository under `data/mnist-subset` (8,004 training and 1,996 test digits),
//! so examples and tests run without a download.
//!
//! ```no_run
//! use gradus::data::{Mnist, one_hot};
//!
//! let mnist = Mnist::bundled()?.truncate(1000, 200);
//! assert_eq!(mnist.train_images.ncols(), 784);
//! let targets = one_hot(&mnist.train_labels, 10)?; // 1000 x 10
//! # Ok::<(), gradus::Error>(())
//! ```

pub mod idx;

pub use idx::{IdxArray, IdxDType, IdxData, parse_idx, read_idx};

use std::path::{Path, PathBuf};

use ndarray::{Array2, s};

use crate::error::{Error, Result};

/// Number of digit classes in MNIST.
const CLASSES: usize = 10;

/// The MNIST data set (or a subset), with images as rows of pixels scaled to `[0, 1]`.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// Training images, one row of `rows * cols` pixels (784 for MNIST) per digit.
    pub train_images: Array2<f32>,
    /// Training labels, each in `0..10`, one per row of `train_images`.
    pub train_labels: Vec<usize>,
    /// Test images, one row of `rows * cols` pixels (784 for MNIST) per digit.
    pub test_images: Array2<f32>,
    /// Test labels, each in `0..10`, one per row of `test_images`.
    pub test_labels: Vec<usize>,
}

/// The directory of the MNIST subset shipped with gradus (`<crate root>/data/mnist-subset`).
pub fn default_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist-subset"))
}

impl Mnist {
    /// Loads MNIST from `dir`, which must hold `train-images-idx3-ubyte`,
    /// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each
    /// either gzip-compressed with a `.gz` suffix or plain without one (the `.gz` file is
    /// used when both exist).
    ///
    /// Works unchanged on the full MNIST distribution (60,000 / 10,000 digits) and on
    /// look-alikes such as Fashion-MNIST.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the missing file when one of the four is absent or unreadable;
    /// [`Error::Data`] when a file is malformed, images are not 3-d `u8`, labels are not 1-d
    /// `u8`, image and label counts disagree, training and test images differ in size, or a
    /// label is 10 or more.
    pub fn load(dir: impl AsRef<Path>) -> Result<Mnist> {
        let dir = dir.as_ref();
        let (train_images, train_size) = load_images(&find(dir, "train-images-idx3-ubyte")?)?;
        let train_labels = load_labels(&find(dir, "train-labels-idx1-ubyte")?)?;
        let (test_images, test_size) = load_images(&find(dir, "t10k-images-idx3-ubyte")?)?;
        let test_labels = load_labels(&find(dir, "t10k-labels-idx1-ubyte")?)?;

        check_count(dir, "train", train_images.nrows(), train_labels.len())?;
        check_count(dir, "t10k", test_images.nrows(), test_labels.len())?;
        if train_size != test_size {
            return Err(Error::Data {
                path: dir.display().to_string(),
                reason: format!(
                    "training images are {}x{} but test images are {}x{}",
                    train_size.0, train_size.1, test_size.0, test_size.1
                ),
            });
        }
        Ok(Mnist {
            train_images,
            train_labels,
            test_images,
            test_labels,
        })
    }

    /// Loads the subset shipped with gradus from [`default_dir`]: 8,004 training and 1,996
    /// test digits.
    ///
    /// # Errors
    ///
    /// As [`Mnist::load`]; in practice only if the repository's `data/` directory is missing.
    pub fn bundled() -> Result<Mnist> {
        Mnist::load(default_dir())
    }

    /// Keeps only the first `n_train` training and the first `n_test` test digits, for quick
    /// runs. Asking for more digits than there are keeps them all.
    pub fn truncate(self, n_train: usize, n_test: usize) -> Mnist {
        let n_train = n_train.min(self.train_labels.len());
        let n_test = n_test.min(self.test_labels.len());
        let mut train_labels = self.train_labels;
        train_labels.truncate(n_train);
        let mut test_labels = self.test_labels;
        test_labels.truncate(n_test);
        Mnist {
            train_images: self.train_images.slice(s![..n_train, ..]).to_owned(),
            train_labels,
            test_images: self.test_images.slice(s![..n_test, ..]).to_owned(),
            test_labels,
        }
    }
}

/// One-hot encodes `labels`: row `i` is all zeros except a one in column `labels[i]`.
/// A label of `classes` or more is an error.
pub fn one_hot(labels: &[usize], classes: usize) -> Result<Array2<f32>> {
    let mut out = Array2::zeros((labels.len(), classes));
    for (mut row, &label) in out.rows_mut().into_iter().zip(labels) {
        if label >= classes {
            return Err(Error::Data {
                path: "<labels>".into(),
                reason: format!("one_hot: label {label} out of range for {classes} classes"),
            });
        }
        row[label] = 1.0;
    }
    Ok(out)
}

/// Finds `name.gz` or `name` in `dir`.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    Err(Error::Io {
        path: plain.display().to_string(),
        reason: format!(
            "MNIST file not found: neither {name}.gz nor {name} exists in this directory"
        ),
    })
}

fn data_err(path: &Path, reason: String) -> Error {
    Error::Data {
        path: path.display().to_string(),
        reason,
    }
}

/// Reads an images file: 3-d `u8`, returned as one row per image scaled to `[0, 1]`,
/// together with the image size `(rows, cols)`.
fn load_images(path: &Path) -> Result<(Array2<f32>, (usize, usize))> {
    let array = read_idx(path)?;
    let (n, rows, cols) = match (array.dtype(), array.dims.as_slice()) {
        (IdxDType::U8, &[n, rows, cols]) => (n, rows, cols),
        (dtype, dims) => {
            return Err(data_err(
                path,
                format!(
                    "expected 3-d u8 images, found {}-d {dtype} with dims {dims:?}",
                    dims.len()
                ),
            ));
        }
    };
    let pixels: Vec<f32> = array
        .as_u8()
        .unwrap_or_default()
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    // rows * cols cannot overflow: read_idx checked the product of all dims.
    let images = Array2::from_shape_vec((n, rows * cols), pixels)
        .map_err(|e| data_err(path, format!("cannot shape images: {e}")))?;
    Ok((images, (rows, cols)))
}

/// Reads a labels file: 1-d `u8`, each below 10.
fn load_labels(path: &Path) -> Result<Vec<usize>> {
    let array = read_idx(path)?;
    if array.dtype() != IdxDType::U8 || array.ndim() != 1 {
        return Err(data_err(
            path,
            format!(
                "expected 1-d u8 labels, found {}-d {} with dims {:?}",
                array.ndim(),
                array.dtype(),
                array.dims
            ),
        ));
    }
    let bytes = array.into_u8().unwrap_or_default();
    if let Some((i, &bad)) = bytes
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= CLASSES)
    {
        return Err(data_err(
            path,
            format!("label {bad} at index {i} is not a digit (expected 0..{CLASSES})"),
        ));
    }
    Ok(bytes.into_iter().map(usize::from).collect())
}

fn check_count(dir: &Path, split: &str, images: usize, labels: usize) -> Result<()> {
    if images == labels {
        Ok(())
    } else {
        Err(data_err(
            dir,
            format!("{split} set has {images} images but {labels} labels"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn idx_u8(dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, u8::try_from(dims.len()).unwrap()];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A fresh temporary directory for one test.
    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gradus-mnist-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes a tiny 2x2-pixel MNIST look-alike: 3 train and 2 test digits; the train files
    /// gzip-compressed with `.gz`, the test files plain.
    fn write_tiny(dir: &Path, train_labels: &[u8]) {
        let n = u32::try_from(train_labels.len()).unwrap();
        let train_px: Vec<u8> = (0..4 * train_labels.len())
            .map(|i| (i * 20) as u8)
            .collect();
        let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        write(
            "train-images-idx3-ubyte.gz",
            gzip(&idx_u8(&[n, 2, 2], &train_px)),
        );
        write(
            "train-labels-idx1-ubyte.gz",
            gzip(&idx_u8(&[n], train_labels)),
        );
        write(
            "t10k-images-idx3-ubyte",
            idx_u8(&[2, 2, 2], &[0, 255, 0, 255, 51, 51, 51, 51]),
        );
        write("t10k-labels-idx1-ubyte", idx_u8(&[2], &[9, 0]));
    }

    #[test]
    fn load_mixed_gzip_and_plain() {
        let dir = temp_dir("mixed");
        write_tiny(&dir, &[3, 1, 4]);
        let m = Mnist::load(&dir).unwrap();
        assert_eq!(m.train_images.dim(), (3, 4));
        assert_eq!(m.train_labels, vec![3, 1, 4]);
        assert_eq!(m.test_images.dim(), (2, 4));
        assert_eq!(m.test_labels, vec![9, 0]);
        assert_eq!(m.test_images[[0, 1]], 1.0);
        assert!((m.test_images[[1, 0]] - 0.2).abs() < 1e-6);
        let t = m.truncate(2, 100);
        assert_eq!(t.train_images.dim(), (2, 4));
        assert_eq!(t.train_labels, vec![3, 1]);
        assert_eq!(t.test_labels.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_missing_file_names_it() {
        let dir = temp_dir("missing");
        write_tiny(&dir, &[3, 1, 4]);
        std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).unwrap();
        match Mnist::load(&dir) {
            Err(Error::Io { path, reason }) => {
                assert!(path.ends_with("t10k-labels-idx1-ubyte"), "{path}");
                assert!(reason.contains("t10k-labels-idx1-ubyte.gz"), "{reason}");
            }
            other => panic!("expected Error::Io, got {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_rejects_bad_labels_and_counts() {
        let dir = temp_dir("bad");
        write_tiny(&dir, &[3, 10, 4]);
        let err = Mnist::load(&dir).unwrap_err();
        assert!(
            matches!(&err, Error::Data { reason, .. } if reason.contains("label 10")),
            "{err}"
        );

        write_tiny(&dir, &[3, 1]);
        // Labels now count 2 but images were rewritten with 2 too; make images disagree.
        std::fs::write(
            dir.join("train-images-idx3-ubyte.gz"),
            gzip(&idx_u8(&[3, 2, 2], &[0; 12])),
        )
        .unwrap();
        let err = Mnist::load(&dir).unwrap_err();
        assert!(
            matches!(&err, Error::Data { reason, .. } if reason.contains("3 images but 2 labels")),
            "{err}"
        );

        // Labels file holding images: wrong dimensionality.
        write_tiny(&dir, &[3, 1, 4]);
        std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_u8(&[2, 1], &[9, 0])).unwrap();
        let err = Mnist::load(&dir).unwrap_err();
        assert!(
            matches!(&err, Error::Data { reason, .. } if reason.contains("expected 1-d u8 labels")),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_hot_rows() {
        let y = one_hot(&[2, 0], 3).unwrap();
        assert_eq!(y, ndarray::array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]);
        assert_eq!(one_hot(&[], 10).unwrap().dim(), (0, 10));
    }

    #[test]
    fn one_hot_out_of_range_is_an_error() {
        let err = one_hot(&[3], 3).unwrap_err();
        assert!(err.to_string().contains("label 3 out of range"), "{err}");
    }

    #[test]
    fn bundled_subset() {
        let m = Mnist::bundled().unwrap();
        assert_eq!(m.train_images.dim(), (8004, 784));
        assert_eq!(m.train_labels.len(), 8004);
        assert_eq!(m.test_images.dim(), (1996, 784));
        assert_eq!(m.test_labels.len(), 1996);
        for images in [&m.train_images, &m.test_images] {
            assert!(images.iter().all(|&p| (0.0..=1.0).contains(&p)));
            assert!(images.iter().any(|&p| p == 1.0));
        }
        for labels in [&m.train_labels, &m.test_labels] {
            let mut seen = [false; 10];
            for &l in labels.iter() {
                seen[l] = true;
            }
            assert!(seen.iter().all(|&s| s), "missing a class: {seen:?}");
        }
        let y = one_hot(&m.test_labels, 10).unwrap();
        assert_eq!(y.sum(), 1996.0);
    }
}
