//! Pictures, written as PNG: image tiles (filters, samples, digits) and [`Plot`]s of training
//! curves with axes, ticks, labels, a title and a legend.
//!
//! ```no_run
//! use gradus::viz::Plot;
//!
//! let loss = [0.9, 0.5, 0.35, 0.3];
//! Plot::new("training")
//!     .with_x_label("epoch")
//!     .with_y_label("cross-entropy")
//!     .with_series("train", &loss)
//!     .save("out/loss.png")?;
//! # Ok::<(), gradus::Error>(())
//! ```

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::ArrayView2;

use crate::error::{Error, Result};

mod plot;

pub use plot::{Plot, RgbImage};

/// A greyscale image, row-major, one byte per pixel.
#[derive(Clone, Debug)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels, row-major.
    pub pixels: Vec<u8>,
}

impl Image {
    /// This image with each pixel a `k x k` block (nearest neighbour): small tiles, such as a
    /// convolution's 5x5 filters, big enough to see.
    pub fn upscaled(&self, k: usize) -> Image {
        let k = k.max(1);
        let width = self.width * k;
        let mut pixels = Vec::with_capacity(width * self.height * k);
        for row in self.pixels.chunks(self.width.max(1)).take(self.height) {
            let wide: Vec<u8> = row
                .iter()
                .flat_map(|&p| std::iter::repeat_n(p, k))
                .collect();
            for _ in 0..k {
                pixels.extend_from_slice(&wide);
            }
        }
        Image {
            width,
            height: self.height * k,
            pixels,
        }
    }

    /// Write as an 8-bit greyscale PNG.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_png(
            path.as_ref(),
            (self.width, self.height),
            png::ColorType::Grayscale,
            &self.pixels,
        )
    }
}

/// Write 8-bit pixels as a PNG file, creating its folder.
fn write_png(
    path: &Path,
    (width, height): (usize, usize),
    color: png::ColorType,
    pixels: &[u8],
) -> Result<()> {
    let io = |e: &dyn std::fmt::Display| Error::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
    }
    let file = File::create(path).map_err(|e| io(&e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| io(&e))?;
    w.write_image_data(pixels).map_err(|e| io(&e))
}

/// Tile the rows of `rows` (each an `h x w` image) into a grid of `cols` columns with a 1-pixel
/// border. Each tile is scaled to its own min..max (as Theano's `tile_raster_images` does), so
/// filters of any scale are visible.
pub fn tile(rows: ArrayView2<f32>, h: usize, w: usize, cols: usize) -> Result<Image> {
    tile_by(rows, h, w, cols, None)
}

/// Tile images whose values are already in `[0, 1]` (digits, samples), without rescaling.
pub fn tile_unit(rows: ArrayView2<f32>, h: usize, w: usize, cols: usize) -> Result<Image> {
    tile_by(rows, h, w, cols, Some((0.0, 1.0)))
}

fn tile_by(
    rows: ArrayView2<f32>,
    h: usize,
    w: usize,
    cols: usize,
    range: Option<(f32, f32)>,
) -> Result<Image> {
    if rows.ncols() != h * w || cols == 0 {
        return Err(Error::Data {
            path: "<tile>".into(),
            reason: format!(
                "rows of {} values cannot be {h}x{w} images in {cols} columns",
                rows.ncols()
            ),
        });
    }
    let grid_rows = rows.nrows().div_ceil(cols).max(1);
    let (width, height) = (cols * (w + 1) + 1, grid_rows * (h + 1) + 1);
    let mut pixels = vec![0u8; width * height];
    for (k, row) in rows.outer_iter().enumerate() {
        let (lo, hi) = range.unwrap_or_else(|| {
            row.iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                })
        });
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        let (ty, tx) = (k / cols, k % cols);
        for (i, &v) in row.iter().enumerate() {
            let (y, x) = (ty * (h + 1) + 1 + i / w, tx * (w + 1) + 1 + i % w);
            pixels[y * width + x] = ((v - lo) * scale).round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(Image {
        width,
        height,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn an_upscaled_image_repeats_each_pixel_in_a_block() {
        let img = Image {
            width: 2,
            height: 1,
            pixels: vec![10, 200],
        };
        let big = img.upscaled(3);
        assert_eq!((big.width, big.height), (6, 3));
        assert_eq!(big.pixels, [10, 10, 10, 200, 200, 200].repeat(3));
    }

    #[test]
    fn tiles_have_borders_and_scaled_pixels() {
        let rows = Array2::from_shape_fn((3, 4), |(r, i)| (r * 4 + i) as f32);
        let img = tile(rows.view(), 2, 2, 2).unwrap();
        assert_eq!((img.width, img.height), (7, 7));
        assert_eq!(img.pixels[0], 0);
        // first tile: values 0..3 scaled to 0..255
        assert_eq!(img.pixels[7 + 1], 0);
        assert_eq!(img.pixels[2 * 7 + 2], 255);
        assert!(tile(rows.view(), 3, 3, 2).is_err());
        let u = tile_unit(Array2::from_elem((1, 4), 0.5f32).view(), 2, 2, 1).unwrap();
        assert_eq!(u.pixels[u.width + 1], 128);
    }

    #[test]
    fn tiles_are_written_as_greyscale_png() {
        let rows = Array2::from_shape_fn((3, 4), |(r, i)| (r * 4 + i) as f32);
        let img = tile(rows.view(), 2, 2, 2).unwrap();
        let path = std::env::temp_dir().join(format!("gradus-tile-{}.png", std::process::id()));
        img.save(&path).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(File::open(&path).unwrap()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (7, 7));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        std::fs::remove_file(path).unwrap();
    }
}
