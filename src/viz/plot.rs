//! Line plots of training curves, drawn by `plotters` into a bitmap and written as PNG.
//!
//! Text is set in a subset of DejaVu Sans bundled with the crate (`assets/fonts`, its licence
//! beside it), so a plot needs no system fonts, fontconfig or freetype.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};

/// The family name the bundled font is registered under: a name of our own, so that a program
/// that registers its own "sans-serif" with plotters is left alone.
const FONT: &str = "gradus-sans";

/// The bundled font: DejaVu Sans cut down to ASCII, Latin-1 signs, Greek lowercase and a few
/// dashes (13 KB; `assets/fonts/README.md` says how it was made).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

/// Series colours, in order: distinct on white and for the common colour blindnesses in the
/// first four.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 90, 181),
    RGBColor(220, 50, 32),
    RGBColor(26, 133, 55),
    RGBColor(230, 140, 0),
    RGBColor(120, 70, 170),
    RGBColor(90, 90, 90),
];

/// At most this many ticks on a y axis.
const Y_LABELS: usize = 8;

/// Markers are drawn on each point of a series up to this length; longer curves are lines.
const MAX_MARKED_POINTS: usize = 60;

/// A line chart of named series, with axes, ticks, axis labels, a title and a legend.
///
/// Series given by [`with_series`](Self::with_series) are one value per epoch (x = 1, 2, ...);
/// [`with_points`](Self::with_points) takes any x. A series on a second scale (a test error
/// beside a loss) goes against an axis on the right: [`with_right_series`](Self::with_right_series).
/// Non-finite values are left out (the line breaks there). Written as an RGB PNG by
/// [`save`](Self::save).
///
/// ```no_run
/// use gradus::viz::Plot;
///
/// let (loss, error) = ([0.9, 0.5, 0.35, 0.3], [0.12, 0.07, 0.05, 0.045]);
/// Plot::new("GRU on digit rows")
///     .with_x_label("epoch")
///     .with_y_label("training loss")
///     .with_series("loss", &loss)
///     .with_right_label("test error")
///     .with_right_series("test error", &error)
///     .save("out/curve.png")?;
/// # Ok::<(), gradus::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Plot {
    title: String,
    x_label: String,
    y_label: String,
    right_label: String,
    size: (u32, u32),
    series: Vec<Series>,
}

#[derive(Clone, Debug)]
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    right: bool,
}

/// An RGB image, row-major, three bytes per pixel (what a [`Plot`] renders to).
#[derive(Clone, Debug)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Pixels, row-major, `[r, g, b]` each.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The `[r, g, b]` of the pixel at column `x`, row `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = 3 * (y * self.width + x);
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }

    /// Write as an 8-bit RGB PNG.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        super::write_png(
            path.as_ref(),
            (self.width, self.height),
            png::ColorType::Rgb,
            &self.pixels,
        )
    }
}

impl Plot {
    /// An empty plot with a title, 720 x 440 pixels.
    pub fn new(title: impl Into<String>) -> Self {
        Plot {
            title: title.into(),
            x_label: String::new(),
            y_label: String::new(),
            right_label: String::new(),
            size: (720, 440),
            series: Vec::new(),
        }
    }

    /// The label under the x axis ("epoch").
    pub fn with_x_label(mut self, label: impl Into<String>) -> Self {
        self.x_label = label.into();
        self
    }

    /// The label beside the y axis ("reconstruction error").
    pub fn with_y_label(mut self, label: impl Into<String>) -> Self {
        self.y_label = label.into();
        self
    }

    /// The label beside the right-hand y axis, for series added by
    /// [`with_right_series`](Self::with_right_series).
    pub fn with_right_label(mut self, label: impl Into<String>) -> Self {
        self.right_label = label.into();
        self
    }

    /// The picture's size in pixels (default 720 x 440).
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.size = (width, height);
        self
    }

    /// A series of one value per epoch, drawn at x = 1, 2, ..., named in the legend.
    pub fn with_series(self, name: impl Into<String>, values: &[f64]) -> Self {
        self.push(name.into(), per_epoch(values), false)
    }

    /// A series of `(x, y)` points, named in the legend.
    pub fn with_points(
        self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Self {
        self.push(name.into(), points.into_iter().collect(), false)
    }

    /// A series of one value per epoch against the right-hand y axis, which has a scale of its
    /// own (a test error drawn beside a loss).
    pub fn with_right_series(self, name: impl Into<String>, values: &[f64]) -> Self {
        self.push(name.into(), per_epoch(values), true)
    }

    fn push(mut self, name: String, points: Vec<(f64, f64)>, right: bool) -> Self {
        self.series.push(Series {
            name,
            points,
            right,
        });
        self
    }

    /// Draw the plot into an RGB image.
    pub fn render(&self) -> Result<RgbImage> {
        register_font()?;
        let (width, height) = (self.size.0 as usize, self.size.1 as usize);
        let mut pixels = vec![255u8; width * height * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, self.size).into_drawing_area();
            self.draw(&root).map_err(|e| self.failed(&e))?;
            root.present().map_err(|e| self.failed(&e))?;
        }
        Ok(RgbImage {
            width,
            height,
            pixels,
        })
    }

    /// Draw the plot and write it as an RGB PNG.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.render()?.save(path)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let has_right = self.series.iter().any(|s| s.right);
        let has_left_and_right = has_right && self.series.iter().any(|s| !s.right);
        let xs = span(self.points(None).map(|p| p.0), 0.02);
        let left = span(self.points(Some(false)).map(|p| p.1), 0.05);
        let right = span(self.points(Some(true)).map(|p| p.1), 0.05);
        let font = |size: f64| (FontFamily::Name(FONT), size).into_font();

        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, font(20.0))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(72);
        if has_right {
            builder.right_y_label_area_size(72);
        }
        let mut chart = builder
            .build_cartesian_2d(xs.clone(), left.clone())?
            .set_secondary_coord(xs.clone(), right.clone());

        let x_labels = x_ticks(&xs);
        let (x_fmt, y_fmt, r_fmt) = (
            ticks(&xs, x_labels),
            ticks(&left, Y_LABELS),
            ticks(&right, Y_LABELS),
        );
        let (x_fmt, y_fmt, r_fmt) = (
            move |v: &f64| x_fmt.label(*v),
            move |v: &f64| y_fmt.label(*v),
            move |v: &f64| r_fmt.label(*v),
        );
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_labels(x_labels)
            .y_labels(Y_LABELS)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style(font(14.0))
            .axis_desc_style(font(16.0))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .axis_style(BLACK)
            .draw()?;
        if has_right {
            chart
                .configure_secondary_axes()
                .y_desc(&self.right_label)
                .y_labels(Y_LABELS)
                .y_label_formatter(&r_fmt)
                .label_style(font(14.0))
                .axis_desc_style(font(16.0))
                .axis_style(BLACK)
                .draw()?;
        }

        for (k, s) in self.series.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let line = colour.stroke_width(2);
            let pieces = finite_runs(&s.points);
            let marked = s.points.len() <= MAX_MARKED_POINTS;
            let markers = || {
                s.points
                    .iter()
                    .filter(|p| p.0.is_finite() && p.1.is_finite())
                    .filter(move |_| marked)
                    .map(move |&p| Circle::new(p, 3, colour.filled()))
            };
            let lines = || pieces.iter().map(|run| PathElement::new(run.clone(), line));
            let anno = if s.right {
                chart.draw_secondary_series(markers())?;
                chart.draw_secondary_series(lines())?
            } else {
                chart.draw_series(markers())?;
                chart.draw_series(lines())?
            };
            if !s.name.is_empty() {
                let name = match (s.right, has_left_and_right) {
                    (true, true) => format!("{} (right axis)", s.name),
                    _ => s.name.clone(),
                };
                anno.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
                });
            }
        }
        if self.series.iter().any(|s| !s.name.is_empty()) {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(font(14.0))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .margin(8)
                .draw()?;
        }
        Ok(())
    }

    /// The finite points of the series on one axis (`Some(true)`: the right one), or of all.
    fn points(&self, right: Option<bool>) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .filter(move |s| right.is_none_or(|r| s.right == r))
            .flat_map(|s| s.points.iter().copied())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    }

    fn failed(&self, e: &dyn std::fmt::Display) -> Error {
        Error::Io {
            path: format!("<plot {:?}>", self.title),
            reason: format!("drawing failed: {e}"),
        }
    }
}

/// Register the bundled font with plotters once per process.
fn register_font() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    ok.then_some(()).ok_or_else(|| Error::Io {
        path: "assets/fonts/DejaVuSans-subset.ttf".into(),
        reason: "the bundled font is not a font plotters can read".into(),
    })
}

fn per_epoch(values: &[f64]) -> Vec<(f64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| ((i + 1) as f64, v))
        .collect()
}

/// The range an axis shows: the values' span, widened by the fraction `pad` of it each side so
/// that no line runs along the frame and no marker is cut by it, and made non-empty for one
/// value or none.
fn span(values: impl Iterator<Item = f64>, pad: f64) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let d = 0.5 * lo.abs().max(1.0);
        return lo - d..hi + d;
    }
    let m = pad * (hi - lo);
    lo - m..hi + m
}

/// How many labels the x axis asks for: one per whole step when the range is short (so
/// epochs 1..5 are not labelled 1.5, 2.5), at most 10.
fn x_ticks(xs: &Range<f64>) -> usize {
    ((xs.end - xs.start).floor() as usize + 1).clamp(2, 10)
}

/// Tick labels with as many decimals as the ticks plotters puts on the axis need (all labels
/// of an axis get the same number).
struct Ticks {
    decimals: usize,
}

/// The labels of an axis over `range` with at most `labels` ticks.
fn ticks(range: &Range<f64>, labels: usize) -> Ticks {
    let points = RangedCoordf64::from(range.clone()).key_points(labels);
    let decimals = points.iter().map(|&v| decimals_of(v)).max().unwrap_or(0);
    Ticks { decimals }
}

/// The fewest decimals (at most 6) that write `v` without rounding it.
fn decimals_of(v: f64) -> usize {
    (0..6)
        .find(|&d| {
            let scaled = v * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.abs().max(1.0)
        })
        .unwrap_or(6)
}

impl Ticks {
    fn label(&self, v: f64) -> String {
        // `-0.00` reads as a bug on an axis.
        let v = if v.abs() < 0.5 * 10f64.powi(-(self.decimals as i32)) {
            0.0
        } else {
            v
        };
        format!("{v:.*}", self.decimals)
    }
}

/// The runs of consecutive finite points: a line is drawn through each, broken at the rest.
fn finite_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    points
        .split(|p| !(p.0.is_finite() && p.1.is_finite()))
        .filter(|run| !run.is_empty())
        .map(|run| run.to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE_PX: [u8; 3] = [255, 255, 255];

    fn two_series() -> Plot {
        Plot::new("reconstruction error")
            .with_x_label("epoch")
            .with_y_label("cross-entropy")
            .with_series("CD-1", &[27.3, 12.0, 9.1, 7.9, 7.2, 6.6])
            .with_series("PCD-1", &[28.0, 14.5, 11.0, f64::NAN, 9.0, 8.5])
    }

    fn is_colour(px: [u8; 3], c: RGBColor) -> bool {
        px == [c.0, c.1, c.2]
    }

    #[test]
    fn a_plot_has_a_frame_ticks_labels_a_title_and_its_series_colours() {
        let img = two_series().with_size(400, 260).render().unwrap();
        assert_eq!((img.width, img.height), (400, 260));
        assert_eq!(img.pixels.len(), 400 * 260 * 3);
        // The y axis is a black vertical line left of the plot area: some column in the left
        // quarter is black over most of the height.
        let dark = |x: usize, y: usize| img.pixel(x, y).iter().all(|&c| c < 60);
        let axis = (0..img.width / 4)
            .find(|&x| (0..img.height).filter(|&y| dark(x, y)).count() > img.height / 2);
        let axis = axis.expect("a y axis");
        // Tick labels and the axis label are text left of the axis.
        let text = (0..axis - 2)
            .flat_map(|x| (0..img.height).map(move |y| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y) != WHITE_PX)
            .count();
        assert!(text > 200, "{text} pixels of text left of the y axis");
        // The title: ink in the top strip.
        let title = (0..img.width)
            .flat_map(|x| (0..24).map(move |y| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y) != WHITE_PX)
            .count();
        assert!(title > 100, "{title} pixels of title");
        // Both series are drawn in their colours (lines, markers and legend swatches).
        for c in &COLOURS[..2] {
            let n = img
                .pixels
                .chunks(3)
                .filter(|p| is_colour([p[0], p[1], p[2]], *c))
                .count();
            assert!(n > 100, "{n} pixels of {c:?}");
        }
        assert!(
            !img.pixels
                .chunks(3)
                .any(|p| is_colour([p[0], p[1], p[2]], COLOURS[2]))
        );
    }

    #[test]
    fn a_plot_is_written_as_an_rgb_png_of_its_size() {
        let path = std::env::temp_dir().join(format!("gradus-plot-{}.png", std::process::id()));
        two_series()
            .with_right_label("test error")
            .with_right_series("test error", &[0.2, 0.1, 0.08])
            .save(&path)
            .unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let info = reader.info();
        assert_eq!((info.width, info.height), (720, 440));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        assert!(
            buf.chunks(3)
                .any(|p| p == [COLOURS[2].0, COLOURS[2].1, COLOURS[2].2])
        );
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn empty_constant_and_non_finite_series_still_draw_axes() {
        for plot in [
            Plot::new("nothing"),
            Plot::new("one value").with_series("a", &[3.0]),
            Plot::new("flat").with_series("a", &[2.0, 2.0, 2.0]),
            Plot::new("all NaN").with_series("a", &[f64::NAN, f64::INFINITY]),
        ] {
            let img = plot.with_size(200, 120).render().unwrap();
            assert!(img.pixels.iter().any(|&c| c < 60));
        }
    }

    #[test]
    fn tick_labels_have_the_decimals_their_spacing_needs() {
        // 0, 0.2, ..., 1 with 8 labels; 0, 0.25, ... would need two decimals.
        assert_eq!(ticks(&(0.0..1.0), 8).label(0.2), "0.2");
        assert_eq!(ticks(&(0.0..1.0), 8).label(0.25), "0.2");
        assert_eq!(ticks(&(0.0..100.0), 8).label(37.0), "37");
        assert_eq!(ticks(&(6.0..28.0), 8).label(10.0), "10");
        assert_eq!(ticks(&(0.003..0.011), 8).label(0.005), "0.005");
        assert_eq!(ticks(&(-0.01..0.01), 8).label(-0.0000001), "0.000");
        // Epochs 1..5 are labelled 1, 2, ..., 5, not 1.0, 1.5, ...
        assert_eq!(x_ticks(&(1.0..5.0)), 5);
        assert_eq!(ticks(&(1.0..5.0), 5).label(2.0), "2");
        assert_eq!(decimals_of(0.30000000000000004), 1);
        assert_eq!(decimals_of(12.0), 0);
        assert_eq!(x_ticks(&(1.0..50.0)), 10);
        assert_eq!(span([3.0].into_iter(), 0.05), 1.5..4.5);
        assert_eq!(span([1.0, 3.0].into_iter(), 0.05), 0.9..3.1);
        assert_eq!(span(std::iter::empty(), 0.05), 0.0..1.0);
    }

    #[test]
    fn non_finite_values_break_the_line() {
        let runs = finite_runs(&per_epoch(&[1.0, f64::NAN, 2.0, 3.0, f64::INFINITY]));
        assert_eq!(runs, vec![vec![(1.0, 1.0)], vec![(3.0, 2.0), (4.0, 3.0)]]);
    }
}
