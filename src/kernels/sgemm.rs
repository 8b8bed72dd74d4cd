//! Single-precision products on AVX-512: `c ← alpha · a @ b (+ c)`, with `a` and `b` given by
//! pointer and strides, `c` row-major. The `gemm` crate's kernels reach about two thirds of the
//! machine's peak at the shapes of the models' steps (a few hundred rows, columns and inner
//! dims); this one keeps each step's products near the peak:
//!
//! - a micro-kernel of `MR` rows by `NR` = 32 columns (two vectors per row, 24 accumulators),
//!   which broadcasts `a`'s values and reads `b`'s rows as vectors;
//! - `b` read in place where its rows are contiguous (a weight matrix `W`), unless they are a
//!   multiple of 128 bytes apart (a layer of 512 units: [`aliases`]), packed into 32-column
//!   panels by 16×16 transposes in registers where its columns are contiguous (`Wᵀ`); `a` read
//!   in place by rows (`x`) or by columns (`xᵀ`); only a strided view is packed element by
//!   element;
//! - the work split over the threads along the columns when `a` is the smaller operand, the
//!   rows otherwise (every task reads all of the operand not split), in twice as many tasks as
//!   threads so that a slow thread's share is taken by the others; a task packs the panels of
//!   `b` it needs, unless the split is by rows, when `b` is packed once before the split,
//!   into space the caller lends (a plan's pool: [`scratch_len`]) or else the threads' own;
//! - a product by one column handed to [`super::sgemv`].
//!
//! The sum over the inner dimension runs in the same order whatever the split and the number
//! of threads, so a product's value does not depend on them.

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the micro-kernel (values of `a` broadcast per step of the inner dimension).
const MR: usize = 12;
/// Columns of the micro-kernel: two vectors of 16.
const NR: usize = 32;
/// The inner dimension is walked in blocks of this many, so that a panel of `b` (`KC × NR`)
/// stays in the first-level cache while the kernel runs down the rows.
const KC: usize = 256;

/// How many rows of `b` ahead the kernel asks for: about a memory latency of the kernel's
/// steps (with `b` out of cache, nine product shapes of the steps on two threads: 8 rows,
/// 152 GFLOP/s on their geometric mean; 16, 153; 24, 162; 32, 157 on an AMD EPYC; 24 over 8,
/// 5-18% on most of them on a Xeon).
const PREFETCH: isize = 24;
/// How many elements ahead along a column of `b` its packing asks for.
const PACK_AHEAD: usize = 64;

/// Whether `b`'s rows, read in place, fall in few sets of the first-level cache: rows a
/// multiple of 32 floats (128 bytes) apart, as a layer of 512 or 1024 units has, map to at most
/// half of its 64 sets, and a panel's `KC` rows then evict each other before the next tile
/// reads them again. Such a `b` is packed (on an AMD EPYC, medians of eight rounds on two
/// threads: 784x100x512, 292 GFLOP/s in place, 349 packed; 1024x100x1024, 259 and 344).
fn aliases(b: &Operand) -> bool {
    b.cs == 1 && b.rs % 32 == 0
}

/// A matrix operand: element `(r, c)` at `ptr + r * rs + c * cs`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: an operand is only read, by the tasks of the one product it was given to, while the
// caller keeps it alive (the contract of `sgemm`).
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

/// Whether this machine runs the kernels of this module.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Buffers of packed panels, one per thread, kept from product to product.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([f32; 16]);

thread_local! {
    static TASK_BUF: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
    static SHARED_BUF: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with at least `len` floats of the thread's buffer `key` (a fresh one if that is in
/// use further up this thread's stack, as when a thread waiting for its tasks runs another's).
fn with_buf<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<Line>>>,
    len: usize,
    f: impl FnOnce(*mut f32) -> R,
) -> R {
    let lines = len.div_ceil(16);
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < lines {
                buf.resize(lines, Line([0.0; 16]));
            }
            f(buf.as_mut_ptr() as *mut f32)
        }
        Err(_) => {
            let mut buf = vec![Line([0.0; 16]); lines];
            f(buf.as_mut_ptr() as *mut f32)
        }
    })
}

/// A pointer a task may take to another thread.
#[derive(Clone, Copy)]
pub(super) struct Ptr<T>(pub *mut T);
// SAFETY: the tasks of one product read its operands (and the panels packed before the split)
// and write disjoint blocks of its output, all of which outlive the tasks.
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

/// Where a block of panels of one operand lives: panel `q` starts at `ptr + q * panel`, and
/// its steps along the inner dimension are `ld` apart (see [`Tile`] for the elements).
#[derive(Clone, Copy)]
struct Panels {
    ptr: *const f32,
    panel: isize,
    ld: isize,
}

// SAFETY: packed panels are written before the tasks start and only read by them.
unsafe impl Send for Panels {}
unsafe impl Sync for Panels {}

/// What every task of one product shares: `c ← alpha · a @ b (+ c)`, `a` m×k, `b` k×n.
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub k: usize,
    pub a: Operand,
    pub b: Operand,
    pub c: Ptr<f32>,
    pub ldc: usize,
    pub alpha: f32,
    pub onto: Onto,
}

/// What a product is added to.
#[derive(Clone, Copy)]
pub(crate) enum Onto {
    /// Nothing: `c ← alpha · a @ b`.
    Zero,
    /// What `c` holds: `c ← alpha · a @ b + c`.
    Out,
    /// Another m×n matrix with rows `ldc` apart, as `c`'s: `c ← alpha · a @ b + init`, read
    /// where the first block of the inner dimension is written (an update `W - lr · g`
    /// reads `W` in place instead of copying it into `c` first).
    From(*const f32),
}

// SAFETY: `From`'s matrix is only read, by the tasks of the one product it was given to,
// while the caller keeps it alive (the contract of `sgemm`).
unsafe impl Send for Onto {}
unsafe impl Sync for Onto {}

/// `c ← alpha · a @ b + onto` for `a` m×k, `b` k×n, `c` m×n row-major with row stride `ldc`,
/// on up to `threads` threads of the current rayon pool (the caller decides when a product is
/// too small to split: `threads == 1`). Panels are packed into `scratch` where the caller
/// lends at least [`scratch_len`] floats, else into buffers of the threads that run the tasks
/// (which grow, and so allocate, the first time a thread runs a product that large).
///
/// # Safety
/// `a` and `b` must describe live m×k and k×n matrices, `c` a live m×n block of rows `ldc`
/// apart that nothing else reads or writes during the call, an `Onto::From` matrix a live
/// m×n block of rows `ldc` apart that nothing writes during the call (it may be `c` itself),
/// and [`available`] must hold.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: Operand,
    b: Operand,
    c: *mut f32,
    ldc: usize,
    alpha: f32,
    onto: Onto,
    threads: usize,
    scratch: Option<&mut [f32]>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            let row = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), n) };
            match onto {
                Onto::Zero => row.fill(0.0),
                Onto::Out => {}
                Onto::From(init) => unsafe {
                    std::ptr::copy(init.add(r * ldc), row.as_mut_ptr(), n)
                },
            }
        }
        return;
    }
    let product = Product {
        k,
        a,
        b,
        c: Ptr(c),
        ldc,
        alpha,
        onto,
    };
    if n == 1 {
        // SAFETY: the caller's contract, for one column; AVX-512 (with FMA) is there.
        return unsafe { super::sgemv::column(m, &product) };
    }
    let split = Split::new(m, n, k, &a, &b, threads);
    let Split {
        split_rows,
        panels,
        tasks,
        pack_b,
        a_len,
        b_len,
        task_len,
        ..
    } = split;
    // The caller's space where it lent enough, from its first 64-byte line on.
    // (`align_offset` is at most 15 for a pointer to `f32`s; were it not, the space is not used.)
    let lent = scratch.and_then(|s| {
        let skip = s.as_ptr().align_offset(64);
        (skip <= 15 && s.len() >= split.floats() + 15)
            .then(|| Ptr(unsafe { s.as_mut_ptr().add(skip) }))
    });
    let run = |pa: Option<Panels>, pb: Option<Panels>| {
        let task = |t: usize| {
            let (q0, q1) = (t * panels / tasks, (t + 1) * panels / tasks);
            let (r0, r1, c0, c1) = if split_rows {
                (q0 * MR, (q1 * MR).min(m), 0, n)
            } else {
                (0, m, q0 * NR, (q1 * NR).min(n))
            };
            // Packed panels of the whole operand start at its first row or column.
            let pa = pa.map(|p| p.from(r0 / MR));
            let block = |pb| unsafe { product.block(r0..r1, c0..c1, pa, pb, None) };
            let own = |buf| block(Some(unsafe { pack_cols(b, c0, c1, k, buf) }));
            let late = |buf| unsafe { product.block(r0..r1, c0..c1, pa, None, Some(buf)) };
            // The task's own space for panels of `b` (`len` floats): its share of the lent
            // space, after what is packed before the split, or the thread's buffer.
            let own_space = |len: usize, f: &dyn Fn(*mut f32)| match lent {
                Some(base) => f(unsafe { base.0.add(split.shared() + t * task_len) }),
                None => with_buf(&TASK_BUF, len, f),
            };
            match pb {
                Some(p) => block(Some(p.from(c0 / NR))),
                None if split.pack_b_late => own_space(task_len, &late),
                None if pack_b => own_space((q1 - q0) * NR * k, &own),
                None => block(None),
            }
        };
        if tasks == 1 {
            task(0)
        } else {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().with_max_len(1).for_each(task);
        }
    };
    if a_len + b_len == 0 {
        return run(None, None);
    }
    let before = |buf: *mut f32| unsafe {
        let pa = split.pack_a.then(|| pack_rows(a, 0, m, k, buf));
        let pb = (b_len > 0).then(|| pack_cols(b, 0, n, k, buf.add(a_len)));
        run(pa, pb)
    };
    match lent {
        Some(base) => before(base.0),
        None => with_buf(&SHARED_BUF, a_len + b_len, before),
    }
}

/// How one product is shared among its tasks and what it packs: decided once, for the
/// product ([`sgemm`]) and for the space its caller lends it ([`scratch_len`]).
#[derive(Clone, Copy)]
struct Split {
    /// Whether the tasks take bands of rows (else of columns), and how many panels of
    /// `MR` rows (or `NR` columns) there are to share among how many tasks.
    split_rows: bool,
    panels: usize,
    tasks: usize,
    /// Whether `a` (a strided view) is packed before the split; whether `b` is packed at all.
    pack_a: bool,
    pack_b: bool,
    /// Floats of `a`'s and of `b`'s panels packed before the split, and of the panels of `b`
    /// each task packs for itself (a whole number of 64-byte lines).
    a_len: usize,
    b_len: usize,
    task_len: usize,
    /// Whether each task packs `b` one panel and block of the inner dimension at a time, just
    /// before it reads it (`b` in place, but its rows [`aliases`]).
    pack_b_late: bool,
}

impl Split {
    fn new(m: usize, n: usize, k: usize, a: &Operand, b: &Operand, threads: usize) -> Split {
        let (row_panels, col_panels) = (m.div_ceil(MR), n.div_ceil(NR));
        let threads = threads.max(1);
        // Every task reads all of the operand along the dimension not split: split the
        // columns when `a` is the smaller (fewer rows than `b` has columns), the rows
        // otherwise, unless that leaves the threads too few panels to share.
        let split_rows = if m >= n {
            row_panels >= 2 * threads || row_panels >= col_panels
        } else {
            col_panels < 2 * threads && row_panels > col_panels
        };
        let panels = if split_rows { row_panels } else { col_panels };
        let tasks = if threads == 1 {
            1
        } else {
            panels.min(2 * threads)
        };
        // `a` is read in place when its rows or its columns are contiguous; `b` when its rows
        // are. What is packed before the split: `a` where neither is (a strided view), `b`
        // where it needs packing and the split is by rows.
        let (pack_a, pack_b) = (
            a.rs != 1 && a.cs != 1,
            b.cs != 1 || aliases(b) && split_rows,
        );
        let pack_b_late = aliases(b) && !split_rows;
        Split {
            split_rows,
            panels,
            tasks,
            pack_a,
            pack_b,
            a_len: if pack_a { row_panels * MR * k } else { 0 },
            b_len: if pack_b && split_rows {
                col_panels * NR * k
            } else {
                0
            },
            task_len: if pack_b && !split_rows {
                panels.div_ceil(tasks) * NR * k
            } else if pack_b_late {
                KC * NR
            } else {
                0
            },
            pack_b_late,
        }
    }

    /// Floats packed before the split, rounded up to whole lines (the tasks' panels follow).
    fn shared(&self) -> usize {
        (self.a_len + self.b_len).next_multiple_of(16)
    }

    /// Floats of packing space the product uses in all.
    fn floats(&self) -> usize {
        self.shared() + self.tasks * self.task_len
    }
}

/// Floats of packing space for `sgemm` to run this product on up to `threads` threads,
/// alignment included: a caller that lends this much (a plan's pool) makes the product
/// allocate nothing whichever threads run it; one that lends less leaves it the threads' own
/// buffers.
pub(crate) fn scratch_len(
    m: usize,
    n: usize,
    k: usize,
    a: &Operand,
    b: &Operand,
    threads: usize,
) -> usize {
    // (A product by one column packs nothing: see [`super::sgemv::column`].)
    if m == 0 || n <= 1 || k == 0 {
        return 0;
    }
    let most = (1..=threads.max(1))
        .map(|t| Split::new(m, n, k, a, b, t).floats())
        .max()
        .unwrap_or(0);
    if most == 0 { 0 } else { most + 15 }
}

impl Panels {
    /// The panels from panel `q` on.
    fn from(self, q: usize) -> Panels {
        Panels {
            ptr: unsafe { self.ptr.offset(q as isize * self.panel) },
            ..self
        }
    }
}

/// Pack rows `r0 .. r1` of `a` (all `k` columns) into `MR`-row panels at `buf`: element
/// `(i, p)` of panel `q` at `q * MR * k + p * MR + i`.
unsafe fn pack_rows(a: Operand, r0: usize, r1: usize, k: usize, buf: *mut f32) -> Panels {
    for (q, r) in (r0..r1).step_by(MR).enumerate() {
        let rows = MR.min(r1 - r);
        let dst = unsafe { buf.add(q * MR * k) };
        for i in 0..rows {
            let src = unsafe { a.ptr.offset((r + i) as isize * a.rs) };
            for p in 0..k {
                unsafe { *dst.add(p * MR + i) = *src.offset(p as isize * a.cs) };
            }
        }
    }
    Panels {
        ptr: buf,
        panel: (MR * k) as isize,
        ld: MR as isize,
    }
}

/// Pack columns `c0 .. c1` of `b` (all `k` rows) into `NR`-column panels at `buf`: element
/// `(p, j)` of panel `q` at `q * NR * k + p * NR + j`. Lanes past the last column are left as
/// they were: the kernel does not read them.
unsafe fn pack_cols(b: Operand, c0: usize, c1: usize, k: usize, buf: *mut f32) -> Panels {
    for (q, c) in (c0..c1).step_by(NR).enumerate() {
        let cols = NR.min(c1 - c);
        let dst = unsafe { buf.add(q * NR * k) };
        let src = unsafe { b.ptr.offset(c as isize * b.cs) };
        unsafe { pack_panel(src, b.rs, b.cs, cols, k, dst) };
    }
    Panels {
        ptr: buf,
        panel: (NR * k) as isize,
        ld: NR as isize,
    }
}

/// One panel of `cols` (<= NR) columns of `b` (element `(p, j)` at `src + p * rs + j * cs`),
/// `k` rows: where each row is contiguous (`cs == 1`), a masked vector copy per row and half;
/// where each column is (`rs == 1`, a transposed matrix), by 16×16 transposes in registers;
/// otherwise one element at a time.
#[target_feature(enable = "avx512f")]
unsafe fn pack_panel(src: *const f32, rs: isize, cs: isize, cols: usize, k: usize, dst: *mut f32) {
    for h in 0..cols.div_ceil(16) {
        let width = 16.min(cols - 16 * h);
        let base = unsafe { src.offset((16 * h) as isize * cs) };
        let out = unsafe { dst.add(16 * h) };
        if cs == 1 {
            let mask = if width == 16 {
                0xFFFF
            } else {
                (1u16 << width) - 1
            };
            for p in 0..k {
                unsafe {
                    let v = _mm512_maskz_loadu_ps(mask, base.offset(p as isize * rs));
                    _mm512_storeu_ps(out.add(p * NR), v);
                }
            }
            continue;
        }
        if rs != 1 {
            for p in 0..k {
                for j in 0..width {
                    unsafe {
                        *out.add(p * NR + j) = *base.offset(p as isize * rs + j as isize * cs)
                    };
                }
            }
            continue;
        }
        for p0 in (0..k).step_by(16) {
            let depth = 16.min(k - p0);
            let mask = if depth == 16 {
                0xFFFF
            } else {
                (1u16 << depth) - 1
            };
            let mut r = [_mm512_setzero_ps(); 16];
            // Each column four lines ahead: the hardware's prefetchers do not keep up with
            // sixteen streams (a cold `Wᵀ` of 500×784: 150 -> 160 GFLOP/s on two threads).
            for j in 0..width {
                let ahead = base.wrapping_offset(j as isize * cs + (p0 + PACK_AHEAD) as isize);
                _mm_prefetch::<_MM_HINT_T0>(ahead as *const i8);
            }
            for (j, v) in r.iter_mut().enumerate().take(width) {
                *v = unsafe {
                    _mm512_maskz_loadu_ps(mask, base.offset(j as isize * cs + p0 as isize))
                };
            }
            transpose16(&mut r);
            for (pp, v) in r.iter().enumerate().take(depth) {
                unsafe { _mm512_storeu_ps(out.add((p0 + pp) * NR), *v) };
            }
        }
    }
}

/// Transpose the 16×16 block whose rows are `r`.
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [__m512; 16]) {
    // Pairs of rows interleaved, then pairs of pairs: within each 128-bit lane `l`, `u[4g + c]`
    // holds column `4l + c` of rows `4g .. 4g + 4`.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let d = |x: __m512| _mm512_castps_pd(x);
        let (t0, t1, t2, t3) = (
            d(t[4 * g]),
            d(t[4 * g + 1]),
            d(t[4 * g + 2]),
            d(t[4 * g + 3]),
        );
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // Then the lanes: column `4l + c` gathers lane `l` of `u[c]`, `u[4 + c]`, `u[8 + c]`,
    // `u[12 + c]`.
    for c in 0..4 {
        let v = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let w = _mm512_shuffle_f32x4::<0xDD>(u[c], u[4 + c]);
        let x = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let y = _mm512_shuffle_f32x4::<0xDD>(u[8 + c], u[12 + c]);
        r[c] = _mm512_shuffle_f32x4::<0x88>(v, x);
        r[8 + c] = _mm512_shuffle_f32x4::<0xDD>(v, x);
        r[4 + c] = _mm512_shuffle_f32x4::<0x88>(w, y);
        r[12 + c] = _mm512_shuffle_f32x4::<0xDD>(w, y);
    }
}

impl Product {
    /// The block of `rows` and `cols` of the product, over all of `k`; `pa` and `pb` are the
    /// packed panels of those rows and columns, where packed; `late`, space for one panel of
    /// `b` (`KC × NR`) where it is packed a panel at a time as the block reaches it.
    unsafe fn block(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        pa: Option<Panels>,
        pb: Option<Panels>,
        late: Option<*mut f32>,
    ) {
        let (a, b) = (self.a, self.b);
        // `a` in place: by rows (`cs == 1`), each row's values along the inner dimension `rs`
        // apart, or by columns (`rs == 1`, as in packed panels).
        let (pa, a_rows) = match pa {
            Some(p) => (p, false),
            None if a.rs == 1 => (
                Panels {
                    ptr: unsafe { a.ptr.add(rows.start) },
                    panel: MR as isize,
                    ld: a.cs,
                },
                false,
            ),
            None => (
                Panels {
                    ptr: unsafe { a.ptr.offset(rows.start as isize * a.rs) },
                    panel: MR as isize * a.rs,
                    ld: a.rs,
                },
                true,
            ),
        };
        let pb = pb.unwrap_or(Panels {
            ptr: unsafe { b.ptr.add(cols.start) },
            panel: NR as isize,
            ld: b.rs,
        });
        // Blocks of equal depth, at most `KC`: a thin last block (784 = 3 × 256 + 16) would
        // cost a pass over the output for little work.
        let depth = self.k.div_ceil(self.k.div_ceil(KC));
        for p0 in (0..self.k).step_by(depth) {
            let kc = depth.min(self.k - p0);
            // The first block adds what the product is onto; the others, the blocks before.
            let (onto, src) = match self.onto {
                _ if p0 > 0 => (true, self.c.0 as *const f32),
                Onto::Zero => (false, self.c.0 as *const f32),
                Onto::Out => (true, self.c.0 as *const f32),
                Onto::From(init) => (true, init),
            };
            // By rows, the block starts `p0` along each row; by columns, `p0` rows down.
            let a_from = if a_rows {
                p0 as isize
            } else {
                p0 as isize * pa.ld
            };
            let col_panels = (cols.end - cols.start).div_ceil(NR);
            let tile = |jq: usize, col: usize, iq: usize, row: usize| {
                let (bp, ldb) = match late {
                    Some(panel) => (panel as *const f32, NR as isize),
                    None => {
                        let bp =
                            unsafe { pb.ptr.offset(jq as isize * pb.panel + p0 as isize * pb.ld) };
                        (bp, pb.ld)
                    }
                };
                // The next panel, for the first tile to bring into the second-level cache
                // (which packing a panel late does itself).
                let next = if late.is_none() && iq == 0 && jq + 1 < col_panels {
                    unsafe { bp.offset(pb.panel) }
                } else {
                    bp
                };
                let tile = Tile {
                    kc,
                    a: unsafe { pa.ptr.offset(iq as isize * pa.panel + a_from) },
                    lda: pa.ld,
                    b: bp,
                    ldb,
                    masks: masks(NR.min(cols.end - col)),
                    c: unsafe { self.c.0.add(row * self.ldc + col) },
                    src: unsafe { src.add(row * self.ldc + col) },
                    ldc: self.ldc,
                    alpha: self.alpha,
                    onto,
                    next,
                };
                unsafe { micro(MR.min(rows.end - row), a_rows, tile) };
            };
            // (A `b` packed late goes down the columns: each panel is packed once per block.)
            if late.is_none() && matches!(self.onto, Onto::From(_)) && p0 == 0 {
                // Onto another matrix (out of cache, as an update's `W`): tile by tile along
                // its rows, so that each row is read in order (cold, 784x100x1000 on two
                // threads: 108 GFLOP/s down the columns, 131 along the rows, 160 onto nothing).
                for (iq, row) in rows.clone().step_by(MR).enumerate() {
                    for (jq, col) in cols.clone().step_by(NR).enumerate() {
                        tile(jq, col, iq, row);
                    }
                }
            } else {
                for (jq, col) in cols.clone().step_by(NR).enumerate() {
                    if let Some(panel) = late {
                        let width = NR.min(cols.end - col);
                        unsafe {
                            let src = b.ptr.offset(p0 as isize * b.rs + col as isize * b.cs);
                            pack_panel(src, b.rs, b.cs, width, kc, panel);
                        }
                    }
                    for (iq, row) in rows.clone().step_by(MR).enumerate() {
                        tile(jq, col, iq, row);
                    }
                }
            }
        }
    }
}

/// The lane masks of a panel of `cols` columns.
fn masks(cols: usize) -> [u16; 2] {
    let lanes = |w: usize| if w >= 16 { 0xFFFF } else { (1u16 << w) - 1 };
    [lanes(cols), lanes(cols.saturating_sub(16))]
}

/// One call of the micro-kernel: `c ← alpha · a @ b (+ c)` for a tile of up to `MR` rows and
/// `NR` columns (`masks`), `kc` deep.
#[derive(Clone, Copy)]
struct Tile {
    kc: usize,
    /// By columns: element `(i, p)` at `a + p * lda + i`; by rows: at `a + i * lda + p`.
    a: *const f32,
    lda: isize,
    /// Element `(p, j)` at `b + p * ldb + j`.
    b: *const f32,
    ldb: isize,
    masks: [u16; 2],
    c: *mut f32,
    /// What the tile is added to where `onto` (`c` itself, or the matrix it starts from), with
    /// rows `ldc` apart.
    src: *const f32,
    ldc: usize,
    alpha: f32,
    onto: bool,
    /// Where the kernel brings rows of `b` into the second-level cache, `ldb` apart.
    next: *const f32,
}

/// The micro-kernel for `rows` (1 ..= MR) rows of `a` read by rows or by columns; a tile of
/// all `NR` columns reads and writes whole vectors (masked loads cost a few percent of the
/// kernel's speed on Intel's cores: 3% at 100x784x500).
unsafe fn micro(rows: usize, a_rows: bool, t: Tile) {
    let full = t.masks == [0xFFFF; 2];
    macro_rules! dispatch {
        ($($r:literal)*) => {
            match (rows, a_rows, full) {
                $(($r, false, false) => unsafe { kernel::<$r, false, false>(t) },
                  ($r, true, false) => unsafe { kernel::<$r, true, false>(t) },
                  ($r, false, true) => unsafe { kernel::<$r, false, true>(t) },
                  ($r, true, true) => unsafe { kernel::<$r, true, true>(t) },)*
                _ => unreachable!("a panel of {rows} rows"),
            }
        };
    }
    dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// A vector of 16 lanes at `p`: all of them where the tile is `FULL`, else those of `mask`
/// (the others read as zero).
#[target_feature(enable = "avx512f")]
unsafe fn load<const FULL: bool>(mask: u16, p: *const f32) -> __m512 {
    if FULL {
        unsafe { _mm512_loadu_ps(p) }
    } else {
        unsafe { _mm512_maskz_loadu_ps(mask, p) }
    }
}

/// Store the lanes of `v` at `p`: all of them where the tile is `FULL`, else those of `mask`.
#[target_feature(enable = "avx512f")]
unsafe fn store<const FULL: bool>(mask: u16, p: *mut f32, v: __m512) {
    if FULL {
        unsafe { _mm512_storeu_ps(p, v) }
    } else {
        unsafe { _mm512_mask_storeu_ps(p, mask, v) }
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn kernel<const R: usize, const A_ROWS: bool, const FULL: bool>(t: Tile) {
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    let [m0, m1] = t.masks;
    let (mut ap, mut bp, mut np) = (t.a, t.b, t.next);
    let (a_step, a_lane) = if A_ROWS { (1, t.lda) } else { (t.lda, 1) };
    if t.onto {
        // What the tile is added to, asked for now to be there when the sums are: rows
        // `ldc` apart that no prefetcher follows (an update's `W` out of cache).
        for i in 0..R {
            let row = t.src.wrapping_add(i * t.ldc) as *const i8;
            _mm_prefetch::<_MM_HINT_T1>(row);
            _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(64));
        }
    }
    for _ in 0..t.kc {
        let (b0, b1) = unsafe { (load::<FULL>(m0, bp), load::<FULL>(m1, bp.add(16))) };
        // The rows of `b` a few steps ahead: on the first tile of a panel they come from
        // memory, at a stride the hardware's prefetchers do not follow far enough (a product
        // whose `b` is out of cache: 110 -> 120-130 GFLOP/s at 100x784x500). The first tile
        // of a panel also brings the next panel into the second-level cache, which the
        // prefetchers cannot guess either (cold `b` at 100x784x500 on two threads: 160 -> 175).
        let ahead = bp.wrapping_offset(PREFETCH * t.ldb) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(ahead);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
        _mm_prefetch::<_MM_HINT_T1>(np as *const i8);
        _mm_prefetch::<_MM_HINT_T1>((np as *const i8).wrapping_add(64));
        for i in 0..R {
            let x = _mm512_set1_ps(unsafe { *ap.offset(i as isize * a_lane) });
            lo[i] = _mm512_fmadd_ps(x, b0, lo[i]);
            hi[i] = _mm512_fmadd_ps(x, b1, hi[i]);
        }
        ap = unsafe { ap.offset(a_step) };
        bp = unsafe { bp.offset(t.ldb) };
        np = np.wrapping_offset(t.ldb);
    }
    let alpha = _mm512_set1_ps(t.alpha);
    for i in 0..R {
        let (row, src) = unsafe { (t.c.add(i * t.ldc), t.src.add(i * t.ldc)) };
        let (mut v0, mut v1) = (_mm512_mul_ps(lo[i], alpha), _mm512_mul_ps(hi[i], alpha));
        if t.onto {
            unsafe {
                v0 = _mm512_add_ps(v0, load::<FULL>(m0, src));
                v1 = _mm512_add_ps(v1, load::<FULL>(m1, src.add(16)));
            }
        }
        unsafe {
            store::<FULL>(m0, row, v0);
            store::<FULL>(m1, row.add(16), v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix of `rows × cols` small integers (exact in `f32` sums), laid out by rows, by
    /// columns, or strided (every other element of every other row of a larger buffer); the
    /// buffer and the operand that describes it.
    fn matrix(
        rows: usize,
        cols: usize,
        layout: usize,
        seed: usize,
    ) -> (Vec<f32>, Operand, Vec<f64>) {
        let value = |r: usize, c: usize| ((r * 7 + c * 3 + seed * 5) % 13) as f64 - 6.0;
        let dense: Vec<f64> = (0..rows * cols)
            .map(|i| value(i / cols, i % cols))
            .collect();
        let (len, rs, cs) = match layout {
            0 => (rows * cols, cols, 1),
            1 => (rows * cols, 1, rows),
            _ => (4 * rows * cols + 1, 4 * cols, 2),
        };
        let mut buf = vec![f32::NAN; len.max(1)];
        for r in 0..rows {
            for c in 0..cols {
                buf[r * rs + c * cs] = dense[r * cols + c] as f32;
            }
        }
        let op = Operand {
            ptr: buf.as_ptr(),
            rs: rs as isize,
            cs: cs as isize,
        };
        (buf, op, dense)
    }

    #[test]
    fn products_match_the_definition_for_every_layout_and_edge() {
        if !available() {
            eprintln!("no AVX-512 here: gradus's own f32 kernel is not used");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        // Panels cut by the rows (MR = 12), the columns (NR = 32, 16 per vector) and the
        // inner dimension's blocks (KC = 256) and transposes (16).
        let shapes = [
            (1, 1, 1),
            (5, 7, 3),
            (12, 32, 16),
            (13, 33, 17),
            (25, 16, 257),
            (100, 70, 40),
            (3, 200, 600),
            (40, 5, 30),
            // Rows of `b` 32 and 64 floats apart (`aliases`): packed before a split by rows,
            // and a panel at a time in a split by columns over three blocks of `k`.
            (40, 64, 300),
            (5, 64, 600),
            (3, 4, 0),
            // One column (`column`): blocks of 256 rows, sixteen lanes and a tail.
            (300, 1, 37),
            (7, 1, 300),
        ];
        for (m, n, k) in shapes {
            for la in 0..3 {
                for lb in 0..3 {
                    let (_abuf, a, ad) = matrix(m, k, la, 1);
                    let (_bbuf, b, bd) = matrix(k, n, lb, 2);
                    // Onto nothing, onto `c`, onto another matrix of `c`'s layout; packing into
                    // the threads' buffers and into space lent by the caller.
                    let cases = (0..3).flat_map(|o| [(o, 1), (o, 3)]);
                    for ((onto, threads), lend) in cases.flat_map(|c| [(c, false), (c, true)]) {
                        // `c` is a block of a wider matrix whose other columns must not change.
                        let ldc = n + 5;
                        let mut c: Vec<f32> = (0..m * ldc).map(|i| (i % 7) as f32).collect();
                        let before = c.clone();
                        let init: Vec<f32> = (0..m * ldc).map(|i| (i % 11) as f32 - 5.0).collect();
                        let mode = [Onto::Zero, Onto::Out, Onto::From(init.as_ptr())][onto];
                        let len = if lend {
                            scratch_len(m, n, k, &a, &b, threads)
                        } else {
                            0
                        };
                        let mut space = vec![f32::NAN; len];
                        pool.install(|| unsafe {
                            let lent = Some(&mut space[..]);
                            sgemm(m, n, k, a, b, c.as_mut_ptr(), ldc, 0.5, mode, threads, lent)
                        });
                        // A product that packs does so in the space it was lent.
                        // (`b` by rows 32 floats or a multiple apart is packed too.)
                        let aliased = lb == 0 && n % 32 == 0;
                        let packs = (a.rs != 1 && a.cs != 1 || b.cs != 1 || aliased) && n > 1;
                        assert_eq!(
                            space.iter().any(|v| !v.is_nan()),
                            lend && packs && k > 0 && m > 0 && n > 0,
                            "{m}x{k}x{n}, layouts {la} {lb}, {threads} threads"
                        );
                        for r in 0..m {
                            for j in 0..ldc {
                                let want = if j < n {
                                    let dot: f64 =
                                        (0..k).map(|p| ad[r * k + p] * bd[p * n + j]).sum();
                                    0.5 * dot
                                        + [0.0, before[r * ldc + j], init[r * ldc + j]][onto] as f64
                                } else {
                                    before[r * ldc + j] as f64
                                };
                                assert_eq!(
                                    c[r * ldc + j] as f64,
                                    want,
                                    "{m}x{k}x{n}, layouts {la} {lb}, onto {onto}, \
                                     {threads} threads, at ({r}, {j})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn values_do_not_depend_on_the_number_of_threads() {
        if !available() {
            return;
        }
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (m, n, k) = (100, 500, 300);
        let a: Vec<f32> = (0..m * k).map(|_| rng.random::<f32>() - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random::<f32>() - 0.5).collect();
        let (oa, ob) = (
            Operand {
                ptr: a.as_ptr(),
                rs: k as isize,
                cs: 1,
            },
            Operand {
                ptr: b.as_ptr(),
                rs: 1,
                cs: k as isize,
            },
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![0.0f32; m * n];
            pool.install(|| unsafe {
                sgemm(
                    m,
                    n,
                    k,
                    oa,
                    ob,
                    c.as_mut_ptr(),
                    n,
                    1.0,
                    Onto::Zero,
                    threads,
                    None,
                )
            });
            c
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            assert!(
                one.iter()
                    .zip(run(threads))
                    .all(|(x, y)| x.to_bits() == y.to_bits())
            );
        }
    }

    #[test]
    fn transposes_a_block_of_sixteen_rows() {
        if !available() {
            return;
        }
        let src: Vec<f32> = (0..256).map(|v| v as f32).collect();
        let mut dst = vec![0.0f32; 256];
        unsafe {
            let mut r = [_mm512_setzero_ps(); 16];
            for (i, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(src.as_ptr().add(16 * i));
            }
            transpose16(&mut r);
            for (i, v) in r.iter().enumerate() {
                _mm512_storeu_ps(dst.as_mut_ptr().add(16 * i), *v);
            }
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(dst[16 * j + i], src[16 * i + j]);
            }
        }
    }
}
