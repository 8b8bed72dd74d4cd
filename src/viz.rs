//! Pictures: image tiles (filters, samples, digits) and line curves, written as PNG.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ndarray::ArrayView2;

use crate::error::{Error, Result};

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
    /// Write as an 8-bit greyscale PNG.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |e: &dyn std::fmt::Display| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        }
        let file = File::create(path).map_err(|e| io(&e))?;
        let mut enc =
            png::Encoder::new(BufWriter::new(file), self.width as u32, self.height as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| io(&e))?;
        w.write_image_data(&self.pixels).map_err(|e| io(&e))
    }
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

/// A line chart of one or more series (drawn in different grey levels) on a white canvas with
/// axes; the y range covers all finite values.
pub fn curve(series: &[&[f64]], width: usize, height: usize) -> Image {
    let mut pixels = vec![255u8; width * height];
    let (m, x0, y0) = (8usize, 8usize, height.saturating_sub(8));
    let finite = series
        .iter()
        .flat_map(|s| s.iter())
        .copied()
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut put = |x: usize, y: usize, c: u8| {
        if x < width && y < height {
            pixels[y * width + x] = c;
        }
    };
    for x in x0..width.saturating_sub(m) {
        put(x, y0, 0);
    }
    for y in m..=y0 {
        put(x0, y, 0);
    }
    let (pw, ph) = ((width - x0 - m) as f64, (y0 - m) as f64);
    for (k, s) in series.iter().enumerate() {
        let shade = (k * 90).min(180) as u8;
        let pt = |i: usize, v: f64| {
            let x = x0 as f64 + pw * i as f64 / (s.len().max(2) - 1) as f64;
            let y = y0 as f64 - ph * (v - lo) / span;
            (x, y)
        };
        for i in 1..s.len() {
            if !(s[i - 1].is_finite() && s[i].is_finite()) {
                continue;
            }
            let ((ax, ay), (bx, by)) = (pt(i - 1, s[i - 1]), pt(i, s[i]));
            let steps = ((bx - ax).abs().max((by - ay).abs()).ceil() as usize).max(1);
            for t in 0..=steps {
                let f = t as f64 / steps as f64;
                let (x, y) = (ax + f * (bx - ax), ay + f * (by - ay));
                put(x.round() as usize, y.round() as usize, shade);
                put(x.round() as usize, y.round() as usize + 1, shade);
            }
        }
    }
    Image {
        width,
        height,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

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
    fn curves_and_png_files_are_written() {
        let c = curve(&[&[3.0, 2.0, 1.5, 1.2], &[3.5, 2.5, 2.0, 1.9]], 120, 80);
        assert!(c.pixels.contains(&0));
        let path = std::env::temp_dir().join(format!("gradus-viz-{}.png", std::process::id()));
        c.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_file(path).unwrap();
    }
}
