//! Convolutions over NCHW batches (the pools and padding are in [`super::pool`]).
//!
//! A convolution visits its taps (a filter cell over an input cell, for one output cell) in one
//! loop, [`Geometry::taps`]. The reference kernels accumulate each tap directly; the fast ones
//! gather the taps of one image into a matrix (im2col, into this thread's scratch buffer) and
//! multiply it with the filters through the `gemm` crate, one image per task of the rayon pool
//! (or, for fewer images than threads, one at a time with a threaded product). The input's
//! gradient multiplies the other way and scatters the matrix back (col2im); the filters'
//! gradient sums one product per image.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use rayon::prelude::*;

use super::gemm::{Gemm, Init, gemm_onto};
use super::pool::{Pooling, Windows, pool_forward, pool_grad};
use super::{Exec, KernelFloat, KernelResult};
use crate::dtype::Float;
use crate::graph::op::{Conv2d, Op, Pool2d};
use crate::shape::{self, window_places};
use crate::tensor::Tensor;

/// The sizes of one convolution: the input `[n, c, h, w]`, the filters `[o, c / groups, kh,
/// kw]`, the output `[n, o, oh, ow]`.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    conv: Conv2d,
}

pub(super) fn rank4(what: &str, s: &[usize]) -> Result<(), String> {
    if s.len() == 4 {
        Ok(())
    } else {
        Err(format!("{what} must be 4-d, got {}", shape::show(s)))
    }
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], conv: &Conv2d) -> Result<Geometry, String> {
        rank4("the input (NCHW)", x)?;
        rank4("the filters (OIHW)", w)?;
        let g = conv.groups;
        if g == 0 || !x[1].is_multiple_of(g) || !w[0].is_multiple_of(g) || w[1] * g != x[1] {
            return Err(format!(
                "filters {} do not fit an input {} in {g} group(s)",
                shape::show(w),
                shape::show(x)
            ));
        }
        let s = conv;
        let oh = window_places(x[2], w[2], (s.stride.h, s.padding.h, s.dilation.h))?;
        let ow = window_places(x[3], w[3], (s.stride.w, s.padding.w, s.dilation.w))?;
        Ok(Geometry {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            o: w[0],
            kh: w[2],
            kw: w[3],
            oh,
            ow,
            conv: *conv,
        })
    }

    /// Check that `dy` is shaped like the output.
    fn output(&self, dy: &[usize]) -> Result<(), String> {
        if dy == [self.n, self.o, self.oh, self.ow] {
            Ok(())
        } else {
            Err(format!(
                "the output's gradient {} does not fit the convolution's output {}",
                shape::show(dy),
                shape::show(&[self.n, self.o, self.oh, self.ow])
            ))
        }
    }

    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.conv.groups
    }
    /// Output channels per group.
    fn og(&self) -> usize {
        self.o / self.conv.groups
    }
    /// Rows of the im2col matrix: the taps of one filter.
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Columns of the im2col matrix: the output cells of one channel.
    fn l(&self) -> usize {
        self.oh * self.ow
    }
    /// Elements of one image's channel group.
    fn x_group(&self) -> usize {
        self.cg() * self.h * self.w
    }

    /// Every tap of one image's channel group: `f(row, col, at)` for the filter cell `row`
    /// (of [`k`](Geometry::k)), the output cell `col` (of [`l`](Geometry::l)) and the input
    /// cell `at` (of [`x_group`](Geometry::x_group)) under it; taps on the padding are skipped.
    fn taps(&self, mut f: impl FnMut(usize, usize, usize)) {
        let Conv2d {
            stride,
            padding,
            dilation,
            ..
        } = self.conv;
        let ow = self.ow;
        for ci in 0..self.cg() {
            for ki in 0..self.kh {
                for kj in 0..self.kw {
                    let row = (ci * self.kh + ki) * self.kw + kj;
                    // The output columns whose tap lands inside the input: jj = j s + kj d - p
                    // in 0..w.
                    let off = kj * dilation.w;
                    let j0 = padding.w.saturating_sub(off).div_ceil(stride.w);
                    let j1 = (self.w + padding.w)
                        .checked_sub(off + 1)
                        .map_or(0, |m| (m / stride.w + 1).min(ow));
                    for i in 0..self.oh {
                        let ii = (i * stride.h + ki * dilation.h).wrapping_sub(padding.h);
                        if ii >= self.h {
                            continue;
                        }
                        let base = (ci * self.h + ii) * self.w;
                        for j in j0..j1 {
                            let jj = j * stride.w + off - padding.w;
                            f(row, i * ow + j, base + jj);
                        }
                    }
                }
            }
        }
    }
}

/// `col ← the taps of x` (one image's channel group) as a `k × l` matrix, zeros on the padding.
fn im2col<T: Float>(g: &Geometry, x: &[T], col: &mut [T]) {
    let l = g.l();
    col.fill(T::zero());
    g.taps(|r, j, at| col[r * l + j] = x[at]);
}

/// `dx += the taps of col` (the adjoint of [`im2col`]).
fn col2im<T: Float>(g: &Geometry, col: &[T], dx: &mut [T]) {
    let l = g.l();
    g.taps(|r, j, at| dx[at] = dx[at] + col[r * l + j]);
}

fn matrix<T>(s: &[T], rows: usize, cols: usize) -> Result<ArrayViewD<'_, T>, String> {
    ArrayViewD::from_shape(IxDyn(&[rows, cols]), s).map_err(|e| e.to_string())
}

fn product(transpose_a: bool, transpose_b: bool) -> Gemm {
    Gemm {
        transpose_a,
        transpose_b,
        alpha: 1.0,
        bias_add: None,
    }
}

/// Run `f(image, out)` for each image and its `len`-element part of `out`: a task per image on
/// the rayon pool when there are at least as many images as threads (each product then on one
/// thread), else one after the other with products on every thread. `f` gets the threads its
/// products may use.
fn per_image<T: Float>(
    out: &mut [T],
    len: usize,
    n: usize,
    exec: Exec,
    f: impl Fn(usize, &mut [T], usize) -> Result<(), String> + Sync,
) -> Result<(), String> {
    let threads = if exec.is_fast() {
        crate::kernels::threads()
    } else {
        1
    };
    if len == 0 {
        return Ok(());
    }
    if threads > 1 && n >= threads {
        out.par_chunks_mut(len)
            .enumerate()
            .try_for_each(|(i, o)| f(i, o, 1))
    } else {
        out.chunks_mut(len)
            .enumerate()
            .try_for_each(|(i, o)| f(i, o, threads))
    }
}

/// Which of a convolution's three products.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    /// `y = conv(x, w)`, operands `[x, w]`; with `true`, `y = conv(x, w) + b` for a bias `b`
    /// of one value per output channel, operands `[x, w, b]` (the compiler's fused form).
    Forward(bool),
    /// The input's gradient, the transposed convolution of `dy`: operands `[dy, w, like x]`.
    Input,
    /// The filters' gradient, the correlation of `x` with `dy`: operands `[x, dy, like w]`.
    Filters,
}

/// A windowed op (a convolution, a pool, or one of their gradients) with its operands' shapes
/// checked: what the general kernel runs into a fresh array and the runtime's fast path into a
/// pooled buffer, so that both make the same checks.
pub(crate) struct Windowed {
    job: Job,
    shape: Vec<usize>,
}

enum Job {
    Conv(Pass, Geometry),
    /// A pool, or (`true`) its gradient.
    Pool(Pooling, bool, Windows),
}

impl Windowed {
    /// The op on operands of these shapes; `None` for an op that is not windowed.
    pub(crate) fn new(op: &Op, shapes: &[&[usize]]) -> Option<Result<Windowed, String>> {
        let need = match op {
            Op::Conv2d(_) | Op::MaxPool2dGrad(_) | Op::AvgPool2dGrad(_) => 2,
            Op::Conv2dInputGrad(_) | Op::Conv2dFilterGrad(_) => 3,
            Op::MaxPool2d(_) | Op::AvgPool2d(_) => 1,
            _ => return None,
        };
        if shapes.len() != need {
            return Some(Err(format!("takes {need} operands, got {}", shapes.len())));
        }
        Some(Self::checked(op, shapes))
    }

    /// A convolution `c` with a bias added, on operands of shapes `[x, w, b]`: `b` holds one
    /// value per output channel (`[o]` after dims of length 1 on its left, `[o, 1, 1]`).
    pub(crate) fn conv_bias(c: &Conv2d, s: &[&[usize]]) -> Result<Windowed, String> {
        let [x, w, b] = s else {
            return Err(format!("takes 3 operands, got {}", s.len()));
        };
        let mut job = Self::checked(&Op::Conv2d(*c), &[x, w])?;
        let per_channel = b.len() <= 4
            && b.len() >= 3
            && b[..b.len() - 3].iter().all(|&d| d == 1)
            && b[b.len() - 3..] == [w[0], 1, 1];
        if !per_channel {
            return Err(format!(
                "the bias {} is not one value per channel of the output {}",
                shape::show(b),
                shape::show(&job.shape)
            ));
        }
        if let Job::Conv(pass, _) = &mut job.job {
            *pass = Pass::Forward(true);
        }
        Ok(job)
    }

    fn checked(op: &Op, s: &[&[usize]]) -> Result<Windowed, String> {
        let conv = |pass, x: &[usize], w: &[usize], dy: Option<&[usize]>, c: &Conv2d| {
            let g = Geometry::new(x, w, c)?;
            if let Some(dy) = dy {
                g.output(dy)?;
            }
            let shape = match pass {
                Pass::Forward(_) => vec![g.n, g.o, g.oh, g.ow],
                Pass::Input => x.to_vec(),
                Pass::Filters => w.to_vec(),
            };
            Ok(Windowed {
                job: Job::Conv(pass, g),
                shape,
            })
        };
        let pool = |kind, grad: Option<&[usize]>, x: &[usize], p: &Pool2d| {
            let win = Windows::new(x, p)?;
            let out = vec![x[0], x[1], win.oh, win.ow];
            if let Some(dy) = grad.filter(|dy| *dy != out.as_slice()) {
                return Err(format!(
                    "the output's gradient {} does not fit the pool's output {}",
                    shape::show(dy),
                    shape::show(&out)
                ));
            }
            Ok(Windowed {
                shape: if grad.is_some() { x.to_vec() } else { out },
                job: Job::Pool(kind, grad.is_some(), win),
            })
        };
        match op {
            Op::Conv2d(c) => conv(Pass::Forward(false), s[0], s[1], None, c),
            Op::Conv2dInputGrad(c) => conv(Pass::Input, s[2], s[1], Some(s[0]), c),
            Op::Conv2dFilterGrad(c) => conv(Pass::Filters, s[0], s[2], Some(s[1]), c),
            Op::MaxPool2d(p) => pool(Pooling::Max, None, s[0], p),
            Op::AvgPool2d(p) => pool(Pooling::Avg, None, s[0], p),
            Op::MaxPool2dGrad(p) => pool(Pooling::Max, Some(s[1]), s[0], p),
            Op::AvgPool2dGrad(p) => pool(Pooling::Avg, Some(s[0]), s[1], p),
            _ => Err(format!("{} is not a windowed op", op.name())),
        }
    }

    /// The result's shape.
    pub(crate) fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// How many of the operands, from the first, the op reads the elements of (the others
    /// give only a shape).
    pub(crate) fn reads(&self) -> usize {
        match self.job {
            Job::Conv(Pass::Forward(true), _) => 3,
            Job::Conv(..) | Job::Pool(Pooling::Max, true, _) => 2,
            Job::Pool(..) => 1,
        }
    }

    /// `out ←` the op of the operands `x` (the first [`reads`](Windowed::reads), contiguous);
    /// `out` holds anything on entry.
    pub(crate) fn run<T: KernelFloat>(
        &self,
        x: &[&[T]],
        out: &mut [T],
        exec: Exec,
    ) -> Result<(), String> {
        let len: usize = self.shape.iter().product();
        if x.len() < self.reads() || out.len() != len {
            return Err(format!(
                "{} operands and {} elements for a windowed op of {} and {len}",
                x.len(),
                out.len(),
                self.reads()
            ));
        }
        match &self.job {
            Job::Conv(Pass::Forward(bias), g) => {
                forward(g, x[0], x[1], bias.then(|| x[2]), out, exec)
            }
            Job::Conv(Pass::Input, g) => input_grad(g, x[0], x[1], out, exec),
            Job::Conv(Pass::Filters, g) => filter_grad(g, x[0], x[1], out, exec),
            Job::Pool(kind, false, win) => {
                pool_forward(*kind, win, x[0], out, exec);
                Ok(())
            }
            Job::Pool(kind, true, win) => {
                let (dy, x) = match kind {
                    Pooling::Max => (x[1], Some(x[0])),
                    Pooling::Avg => (x[0], None),
                };
                pool_grad(*kind, win, dy, x, out, exec);
                Ok(())
            }
        }
    }
}

/// A windowed op on concrete operands, into a fresh array.
pub(crate) fn eval(op: &Op, x: &[&Tensor], exec: Exec) -> KernelResult {
    let shapes: Vec<&[usize]> = x.iter().map(|t| t.shape()).collect();
    let job =
        Windowed::new(op, &shapes).ok_or_else(|| format!("{} is not windowed", op.name()))??;
    eval_job(&job, x, exec)
}

/// The convolution `c` of `x[0]` with `x[1]` plus the per-channel bias `x[2]`, into a fresh
/// array.
pub(crate) fn eval_conv_bias(c: &Conv2d, x: &[&Tensor], exec: Exec) -> KernelResult {
    let shapes: Vec<&[usize]> = x.iter().map(|t| t.shape()).collect();
    eval_job(&Windowed::conv_bias(c, &shapes)?, x, exec)
}

fn eval_job(job: &Windowed, x: &[&Tensor], exec: Exec) -> KernelResult {
    fn fresh<T: KernelFloat>(job: &Windowed, x: &[&Tensor], exec: Exec) -> KernelResult {
        let data = x[..job.reads()]
            .iter()
            .map(|t| {
                T::view(t)
                    .map(|v| v.as_standard_layout().into_owned())
                    .ok_or_else(|| format!("expected {}, got {}", T::DTYPE, t.dtype()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let slices = data
            .iter()
            .map(|a| a.as_slice().ok_or("a standard-layout copy is contiguous"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = vec![T::zero(); job.shape().iter().product()];
        job.run(&slices, &mut out, exec)?;
        ArrayD::from_shape_vec(IxDyn(job.shape()), out)
            .map(T::wrap)
            .map_err(|e| e.to_string())
    }
    match x[0] {
        Tensor::F32(_) => fresh::<f32>(job, x, exec),
        Tensor::F64(_) => fresh::<f64>(job, x, exec),
        other => Err(format!("expected a float tensor, got {}", other.dtype())),
    }
}

/// `y = conv(x, w)`, plus `bias[o]` on every cell of output channel `o` when there is a bias
/// (written into each image's output before the product accumulates onto it).
fn forward<T: KernelFloat>(
    g: &Geometry,
    xs: &[T],
    ws: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    exec: Exec,
) -> Result<(), String> {
    let (k, l, og, groups) = (g.k(), g.l(), g.og(), g.conv.groups);
    // Each channel's block of `l` cells of one image's output, set to its bias.
    let init = |y_i: &mut [T], bias: &[T]| {
        y_i.chunks_mut(l)
            .zip(bias)
            .for_each(|(cells, &b)| cells.fill(b));
    };
    if !exec.is_fast() {
        match bias {
            Some(b) => y.chunks_mut(g.o * l).for_each(|y_i| init(y_i, b)),
            None => y.fill(T::zero()),
        }
        each_tap(g, |xi, wi, yi| y[yi] = y[yi] + xs[xi] * ws[wi]);
        return Ok(());
    }
    let start = if bias.is_some() {
        Init::Out
    } else {
        Init::Zero
    };
    per_image(y, g.o * l, g.n, exec, |i, y_i, threads| {
        if let Some(b) = bias {
            init(y_i, b);
        }
        T::with_scratch(k * l, |col| {
            for grp in 0..groups {
                im2col(
                    g,
                    &xs[(i * groups + grp) * g.x_group()..][..g.x_group()],
                    col,
                );
                let w_g = matrix(&ws[grp * og * k..][..og * k], og, k)?;
                let out = &mut y_i[grp * og * l..][..og * l];
                let col = matrix(col, k, l)?;
                gemm_onto(
                    &w_g,
                    &col,
                    start,
                    &product(false, false),
                    out,
                    threads,
                    None,
                )?;
            }
            Ok(())
        })
    })
}

/// Every tap of the whole convolution: `f(x index, w index, y index)`, flat.
fn each_tap(g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
    let (k, l, og) = (g.k(), g.l(), g.og());
    for n in 0..g.n {
        for grp in 0..g.conv.groups {
            let x0 = (n * g.conv.groups + grp) * g.x_group();
            for oo in 0..og {
                let o = grp * og + oo;
                let y0 = (n * g.o + o) * l;
                g.taps(|r, j, at| f(x0 + at, o * k + r, y0 + j));
            }
        }
    }
}

/// The gradient of `conv(x, w)` for `x`: the transposed convolution of `dy`.
fn input_grad<T: KernelFloat>(
    g: &Geometry,
    dys: &[T],
    ws: &[T],
    dx: &mut [T],
    exec: Exec,
) -> Result<(), String> {
    dx.fill(T::zero());
    if !exec.is_fast() {
        each_tap(g, |xi, wi, yi| dx[xi] = dx[xi] + dys[yi] * ws[wi]);
        return Ok(());
    }
    let (k, l, og) = (g.k(), g.l(), g.og());
    per_image(dx, g.c * g.h * g.w, g.n, exec, |i, dx_i, threads| {
        T::with_scratch(k * l, |col| {
            for grp in 0..g.conv.groups {
                let w_g = matrix(&ws[grp * og * k..][..og * k], og, k)?;
                let dy_g = matrix(&dys[(i * g.o + grp * og) * l..][..og * l], og, l)?;
                gemm_onto(
                    &w_g,
                    &dy_g,
                    Init::Zero,
                    &product(true, false),
                    col,
                    threads,
                    None,
                )?;
                col2im(g, col, &mut dx_i[grp * g.x_group()..][..g.x_group()]);
            }
            Ok(())
        })
    })
}

/// The gradient of `conv(x, w)` for `w`: the correlation of `x` with `dy`, one product per
/// image added up.
fn filter_grad<T: KernelFloat>(
    g: &Geometry,
    xs: &[T],
    dys: &[T],
    dw: &mut [T],
    exec: Exec,
) -> Result<(), String> {
    dw.fill(T::zero());
    if !exec.is_fast() {
        each_tap(g, |xi, wi, yi| dw[wi] = dw[wi] + xs[xi] * dys[yi]);
        return Ok(());
    }
    let (k, l, og, groups) = (g.k(), g.l(), g.og(), g.conv.groups);
    // The filters' gradient of images `range` added onto `dw`, on `threads` threads, with
    // `col` to unfold each image into.
    let part = |range: std::ops::Range<usize>, dw: &mut [T], col: &mut [T], threads: usize| {
        for i in range {
            for grp in 0..groups {
                im2col(
                    g,
                    &xs[(i * groups + grp) * g.x_group()..][..g.x_group()],
                    col,
                );
                let dy_g = matrix(&dys[(i * g.o + grp * og) * l..][..og * l], og, l)?;
                let out = &mut dw[grp * og * k..][..og * k];
                let col = matrix(col, k, l)?;
                gemm_onto(
                    &dy_g,
                    &col,
                    Init::Out,
                    &product(false, true),
                    out,
                    threads,
                    None,
                )?;
            }
        }
        Ok::<_, String>(())
    };
    let threads = crate::kernels::threads();
    if threads > 1 && g.n >= threads {
        // A partial sum per thread's share of the images, in that thread's scratch (no
        // allocation on a warm step), added onto `dw` under a lock.
        let share = g.n.div_ceil(threads);
        let total = std::sync::Mutex::new(dw);
        (0..g.n.div_ceil(share)).into_par_iter().try_for_each(|t| {
            T::with_scratch(k * l + og * k * groups, |scratch| {
                let (col, part_dw) = scratch.split_at_mut(k * l);
                part_dw.fill(T::zero());
                part(t * share..((t + 1) * share).min(g.n), part_dw, col, 1)?;
                let mut dw = total.lock().unwrap_or_else(|e| e.into_inner());
                dw.iter_mut().zip(&*part_dw).for_each(|(d, &v)| *d = *d + v);
                Ok(())
            })
        })
    } else {
        T::with_scratch(k * l, |col| part(0..g.n, dw, col, threads))
    }
}
