//! Max and average pools over the channel planes of NCHW batches, their gradients, and
//! constant padding. A pool's windows are listed once per shape ([`Windows`]); each plane is
//! one task of the rayon pool where the work pays for it.

use ndarray::{ArrayD, IxDyn, Slice};
use rayon::prelude::*;

use super::Exec;
use super::conv::rank4;
use crate::dtype::Float;
use crate::graph::op::Pool2d;
use crate::shape::window_places;

/// Which pool.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Pooling {
    /// The maximum of each window.
    Max,
    /// The mean of each window, padding counted.
    Avg,
}

/// The sizes of a pool over planes of `h × w`: `oh × ow` windows.
pub(super) struct Windows {
    h: usize,
    w: usize,
    pub(super) oh: usize,
    pub(super) ow: usize,
    pool: Pool2d,
}

impl Windows {
    pub(super) fn new(x: &[usize], pool: &Pool2d) -> Result<Windows, String> {
        rank4("the input (NCHW)", x)?;
        let p = pool;
        if p.padding.h > p.window.h / 2 || p.padding.w > p.window.w / 2 {
            return Err(format!(
                "the padding {} is more than half the window {}",
                p.padding, p.window
            ));
        }
        Ok(Windows {
            h: x[2],
            w: x[3],
            oh: window_places(x[2], p.window.h, (p.stride.h, p.padding.h, 1))?,
            ow: window_places(x[3], p.window.w, (p.stride.w, p.padding.w, 1))?,
            pool: *pool,
        })
    }

    /// `f(window, cells)` for each window of one plane: its index and the plane's cells it
    /// covers (never none: the padding is at most half a window).
    fn each(&self, mut f: impl FnMut(usize, &[usize])) {
        let Pool2d {
            window,
            stride,
            padding,
        } = self.pool;
        if padding.h == 0 && padding.w == 0 {
            // Every window lies inside the plane: its cells are one pattern of offsets, moved.
            let pattern: Vec<usize> = (0..window.h)
                .flat_map(|ki| (0..window.w).map(move |kj| ki * self.w + kj))
                .collect();
            let mut cells = pattern.clone();
            for i in 0..self.oh {
                for j in 0..self.ow {
                    let base = i * stride.h * self.w + j * stride.w;
                    for (c, p) in cells.iter_mut().zip(&pattern) {
                        *c = base + p;
                    }
                    f(i * self.ow + j, &cells);
                }
            }
            return;
        }
        let mut cells = Vec::with_capacity(window.h * window.w);
        for i in 0..self.oh {
            for j in 0..self.ow {
                cells.clear();
                for ki in 0..window.h {
                    let ii = (i * stride.h + ki).wrapping_sub(padding.h);
                    if ii >= self.h {
                        continue;
                    }
                    for kj in 0..window.w {
                        let jj = (j * stride.w + kj).wrapping_sub(padding.w);
                        if jj < self.w {
                            cells.push(ii * self.w + jj);
                        }
                    }
                }
                f(i * self.ow + j, &cells);
            }
        }
    }

    fn area(&self) -> usize {
        self.pool.window.h * self.pool.window.w
    }
}

/// The first of `cells` where `x` is largest, and that value. (Selects, not branches: on
/// data, which cell wins is a coin toss that a branch would mispredict half the time.)
#[inline]
fn first_max<T: Float>(x: &[T], cells: &[usize]) -> (usize, T) {
    let (mut best, mut value) = (cells[0], x[cells[0]]);
    for &c in &cells[1..] {
        let v = x[c];
        let bigger = v > value;
        best = if bigger { c } else { best };
        value = if bigger { v } else { value };
    }
    (best, value)
}

/// Run `f(plane, out)` for each plane of `out` (`len` elements each), threaded over the planes
/// when fast and large.
fn per_plane<T: Float>(out: &mut [T], len: usize, exec: Exec, f: impl Fn(usize, &mut [T]) + Sync) {
    if len == 0 {
        return;
    }
    if crate::kernels::parallel(exec, out.len()) {
        out.par_chunks_mut(len)
            .enumerate()
            .for_each(|(p, o)| f(p, o));
    } else {
        out.chunks_mut(len).enumerate().for_each(|(p, o)| f(p, o));
    }
}

/// `y ←` the max or average pool of `x`.
pub(super) fn pool_forward<T: Float>(
    kind: Pooling,
    win: &Windows,
    xs: &[T],
    y: &mut [T],
    exec: Exec,
) {
    let (plane, out_plane) = (win.h * win.w, win.oh * win.ow);
    let area = T::from_f(win.area() as f64);
    per_plane(y, out_plane, exec, |p, y_p| {
        let x_p = &xs[p * plane..][..plane];
        win.each(|o, cells| {
            y_p[o] = match kind {
                Pooling::Max => first_max(x_p, cells).1,
                Pooling::Avg => cells.iter().map(|&c| x_p[c]).fold(T::zero(), |a, v| a + v) / area,
            }
        });
    });
}

/// `dx ←` the gradient of a pool (for a max pool, of `x`): each window's `dy` at its first
/// maximum, or spread evenly over it.
pub(super) fn pool_grad<T: Float>(
    kind: Pooling,
    win: &Windows,
    dys: &[T],
    xs: Option<&[T]>,
    dx: &mut [T],
    exec: Exec,
) {
    let (plane, out_plane) = (win.h * win.w, win.oh * win.ow);
    let area = T::from_f(win.area() as f64);
    per_plane(dx, plane, exec, |p, dx_p| {
        dx_p.fill(T::zero());
        let dy_p = &dys[p * out_plane..][..out_plane];
        win.each(|o, cells| match (kind, xs) {
            (Pooling::Max, Some(xs)) => {
                let (at, _) = first_max(&xs[p * plane..][..plane], cells);
                dx_p[at] = dx_p[at] + dy_p[o];
            }
            _ => {
                for &c in cells {
                    dx_p[c] = dx_p[c] + dy_p[o] / area;
                }
            }
        });
    });
}

/// `x` with `widths[k]` cells of `value` before and after it along axis `k`.
pub(crate) fn pad<T: Float>(
    x: &ArrayD<T>,
    widths: &[(usize, usize)],
    value: f64,
) -> Result<ArrayD<T>, String> {
    if widths.len() != x.ndim() {
        return Err(format!(
            "{} (before, after) pairs for {} axes",
            widths.len(),
            x.ndim()
        ));
    }
    let dims = x
        .shape()
        .iter()
        .zip(widths)
        .map(|(d, (b, a))| d.checked_add(*b)?.checked_add(*a))
        .collect::<Option<Vec<usize>>>()
        .ok_or("the padded shape is larger than a usize counts")?;
    let mut out = ArrayD::from_elem(IxDyn(&dims), T::from_f(value));
    out.slice_each_axis_mut(|ax| {
        let (before, after) = widths[ax.axis.index()];
        Slice::from(before..ax.len - after)
    })
    .assign(x);
    Ok(out)
}
