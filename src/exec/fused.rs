//! Fused elementwise kernels: a region of elementwise ops with one result, run as one loop.
//!
//! The optimizer's fuse phase replaces such a region (a chain, tree or DAG of elementwise nodes
//! whose intermediate values nobody else reads) by one [`Op::Fused`](crate::graph::op::Op)
//! node holding a [`FusedKernel`]: a list of instructions over numbered values. The kernel walks
//! the output in blocks of up to [`BLOCK`] elements. For each block it loads every input (broadcast
//! inputs have stride 0), runs each instruction as a tight loop over the block, and writes the
//! result. Intermediate values live in a small per-thread register file, so a fused kernel
//! allocates nothing, whatever the length of the chain.
//!
//! Booleans inside a kernel (comparison results, masks) are held as `0` and `1` of the float type.

use std::fmt::{self, Write};

use ndarray::{ArrayViewD, IxDyn};
use rayon::prelude::*;
use smallvec::SmallVec;

use crate::dtype::Float;
use crate::error::Location;
use crate::exec::kernels::{self, PAR_MIN};
use crate::graph::Type;
use crate::graph::op::{Binary, Cmp, Unary};
use crate::shape::{self, Shape};
use crate::tensor::Tensor;

/// Elements per block of the inner loops, at most.
pub const BLOCK: usize = 256;
/// Elements of the register file (a per-thread scratch buffer): a kernel with many live values
/// runs shorter blocks.
const REG_ELEMS: usize = 4096;
/// Registers a kernel may use at once; the fuse phase splits a region that needs more.
pub const MAX_SLOTS: usize = 256;
/// Work (elements times the cost of the instructions) above which a kernel is split over the
/// rayon pool: a transcendental function costs about 12 additions.
const PAR_WORK: usize = 1 << 13;

/// One instruction. Operands are value numbers: inputs first, then one value per instruction.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Instr {
    /// An elementwise op of one operand.
    Unary(Unary, u16),
    /// An elementwise op of two operands.
    Binary(Binary, u16, u16),
    /// A comparison, `1` where it holds and `0` elsewhere.
    Compare(Cmp, u16, u16),
    /// `where(c != 0, a, b)`.
    Where(u16, u16, u16),
    /// A scalar constant (the bits of an `f64`).
    Scalar(u64),
}

impl Instr {
    fn operands(&self) -> SmallVec<[u16; 3]> {
        match *self {
            Instr::Unary(_, a) => smallvec::smallvec![a],
            Instr::Binary(_, a, b) | Instr::Compare(_, a, b) => smallvec::smallvec![a, b],
            Instr::Where(c, a, b) => smallvec::smallvec![c, a, b],
            Instr::Scalar(_) => SmallVec::new(),
        }
    }
}

/// A compiled elementwise region: its inputs, instructions and result type, with registers
/// assigned by liveness. Two kernels are equal when they compute the same thing (the origins of
/// their instructions do not count).
#[derive(Clone, Debug)]
pub struct FusedKernel {
    /// Number of inputs (values `0..n_inputs`).
    pub n_inputs: usize,
    /// Instruction `j` defines value `n_inputs + j`; the last one is the result.
    pub instrs: Vec<Instr>,
    /// Type of the result.
    pub ty: Type,
    /// Register of each value.
    slots: Vec<u16>,
    /// Elements per block (the register file holds one block per register).
    block: usize,
    /// Work per element, in additions.
    cost: usize,
    /// Declared shape of each value, and the op and source line each instruction came from:
    /// a run-time shape error is reported as the unfused op would have reported it.
    origin: Origin,
}

/// Where the values of a kernel came from.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Declared shape of each value (inputs, then instructions).
    pub shapes: Vec<Shape>,
    /// Op name and source line of each instruction.
    pub ops: Vec<(String, Location)>,
}

impl PartialEq for FusedKernel {
    fn eq(&self, other: &Self) -> bool {
        (self.n_inputs, &self.instrs, &self.ty) == (other.n_inputs, &other.instrs, &other.ty)
    }
}
impl Eq for FusedKernel {}
impl std::hash::Hash for FusedKernel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.n_inputs, &self.instrs, &self.ty).hash(state)
    }
}

/// A run-time shape error inside a kernel, located at the op that would have raised it.
#[derive(Debug)]
pub struct ShapeError {
    /// Name of the op.
    pub op: String,
    /// Where the user built it.
    pub loc: Location,
    /// What went wrong.
    pub detail: String,
}

/// An operand of a running kernel.
pub enum Src<'a, T> {
    /// A float array, broadcast to the output shape.
    Float(ArrayViewD<'a, T>),
    /// A boolean array, read as `0`/`1`.
    Bool(ArrayViewD<'a, bool>),
    /// The output buffer itself (in-place execution): same shape, read before it is written.
    Out,
    /// A contiguous array of the output's shape, read through a pointer: the result of an
    /// earlier kernel of a group that runs chunk by chunk (see `Program::run_group`), which
    /// another thread may be writing at other positions meanwhile.
    Ptr(*const T),
}

impl<'a, T: Float> Src<'a, T> {
    /// A tensor as a kernel operand: float arrays of the kernel's type, and bool masks.
    pub fn of(t: &'a Tensor) -> Result<Src<'a, T>, String> {
        match t {
            Tensor::Bool(b) => Ok(Src::Bool(b.view())),
            t => T::view(t)
                .map(Src::Float)
                .ok_or_else(|| format!("fused kernel input of dtype {}", t.dtype())),
        }
    }
}

impl FusedKernel {
    /// Assign registers; `None` when the kernel would need more than [`MAX_SLOTS`].
    pub fn new(
        n_inputs: usize,
        instrs: Vec<Instr>,
        ty: Type,
        origin: Origin,
    ) -> Option<FusedKernel> {
        let n_values = n_inputs + instrs.len();
        let mut last = vec![0usize; n_values];
        for (j, ins) in instrs.iter().enumerate() {
            for a in ins.operands() {
                last[a as usize] = j;
            }
        }
        let mut slots = vec![0u16; n_values];
        let mut free: Vec<u16> = Vec::new();
        let mut n_slots = 0usize;
        let mut alloc = |free: &mut Vec<u16>| {
            free.pop().unwrap_or_else(|| {
                n_slots += 1;
                (n_slots - 1) as u16
            })
        };
        for slot in slots.iter_mut().take(n_inputs) {
            *slot = alloc(&mut free);
        }
        for (j, ins) in instrs.iter().enumerate() {
            // The destination is taken before the operands are freed: it never aliases them.
            slots[n_inputs + j] = alloc(&mut free);
            let mut ops = ins.operands();
            ops.sort_unstable();
            ops.dedup();
            for a in ops {
                if last[a as usize] == j {
                    free.push(slots[a as usize]);
                }
            }
        }
        let block = (REG_ELEMS / n_slots.max(1)).min(BLOCK) / 16 * 16;
        let cost = n_inputs
            + instrs
                .iter()
                .map(|i| match i {
                    Instr::Unary(
                        Unary::Exp
                        | Unary::Log
                        | Unary::Log1p
                        | Unary::Expm1
                        | Unary::Sin
                        | Unary::Cos
                        | Unary::Tanh
                        | Unary::Sigmoid
                        | Unary::Softplus,
                        _,
                    )
                    | Instr::Binary(Binary::Pow, ..) => 12,
                    _ => 1,
                })
                .sum::<usize>();
        (n_slots <= MAX_SLOTS).then_some(FusedKernel {
            n_inputs,
            instrs,
            ty,
            slots,
            block,
            cost,
            origin,
        })
    }

    /// Replay the shapes of the region instruction by instruction, with the checks each op
    /// makes unfused, to name the op that a run-time shape error belongs to.
    pub fn diagnose(&self, inputs: &[&[usize]]) -> Option<ShapeError> {
        let mut shapes: Vec<Vec<usize>> = inputs.iter().map(|s| s.to_vec()).collect();
        for (j, ins) in self.instrs.iter().enumerate() {
            let ops = ins.operands();
            let (op, loc) = self.origin.ops.get(j)?.clone();
            let fail = |detail: String| {
                Some(ShapeError {
                    op: op.clone(),
                    loc,
                    detail,
                })
            };
            let mut result: Vec<usize> = Vec::new();
            for &a in &ops {
                match shape::broadcast_concrete(&result, &shapes[a as usize]) {
                    Ok(r) => result = r,
                    Err(e) => return fail(e),
                }
            }
            for &a in &ops {
                let declared = self.origin.shapes.get(a as usize)?;
                if let Err(e) =
                    shape::check_runtime_broadcast(declared, &shapes[a as usize], &result)
                {
                    return fail(e);
                }
            }
            shapes.push(result);
        }
        None
    }

    /// Compute the result into `out` (shaped `shape`, contiguous). `rayon` splits large outputs
    /// into chunks run on the pool.
    pub fn run<T: Float>(
        &self,
        srcs: &[Src<T>],
        out: &mut [T],
        shape: &[usize],
        par: bool,
    ) -> Result<(), String> {
        let total: usize = shape.iter().product();
        if out.len() != total {
            return Err(format!(
                "output buffer of {} elements for shape {}",
                out.len(),
                shape::show(shape)
            ));
        }
        if total == 0 {
            return Ok(());
        }
        let plan = self.layout(srcs, shape)?;
        let threads = rayon::current_num_threads();
        if par && threads > 1 && total * self.cost >= PAR_WORK && total >= 2 * self.block {
            // Several chunks per thread balance the load on big outputs.
            let chunks = threads * if total >= PAR_MIN { 4 } else { 1 };
            let chunk = total.div_ceil(chunks).next_multiple_of(self.block);
            out.par_chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, c)| self.span(&plan, c, i * chunk));
        } else {
            self.span(&plan, out, 0);
        }
        Ok(())
    }

    /// The operands of a run over an output of `shape`, checked against the kernel's arity.
    pub(crate) fn layout<T: Float>(
        &self,
        srcs: &[Src<T>],
        shape: &[usize],
    ) -> Result<Layout<T>, String> {
        if srcs.len() != self.n_inputs {
            return Err(format!(
                "fused kernel takes {} inputs, got {}",
                self.n_inputs,
                srcs.len()
            ));
        }
        Layout::new(srcs, shape)
    }

    /// Work per element, in additions.
    pub(crate) fn cost(&self) -> usize {
        self.cost
    }

    /// Run the flat output positions `start .. start + out.len()`.
    pub(crate) fn span<T: Float>(&self, plan: &Layout<T>, out: &mut [T], start: usize) {
        T::with_scratch(REG_ELEMS, |regs| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                return unsafe { self.span_avx2(plan, out, start, regs) };
            }
            self.span_in(plan, out, start, regs)
        })
    }

    /// [`FusedKernel::span_in`] compiled for AVX2 and FMA: the same code, vectorized four
    /// `f64` or eight `f32` wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn span_avx2<T: Float>(
        &self,
        plan: &Layout<T>,
        out: &mut [T],
        start: usize,
        regs: &mut [T],
    ) {
        self.span_in(plan, out, start, regs)
    }

    #[inline(always)]
    fn span_in<T: Float>(&self, plan: &Layout<T>, out: &mut [T], start: usize, regs: &mut [T]) {
        let block = self.block;
        let row_len = plan.dims.last().copied().unwrap_or(1);
        let end = start + out.len();
        // The result goes straight into `out` unless `out` is also an operand (in place).
        let direct_out = !plan.operands.iter().any(|o| matches!(o.data, Data::Out));
        let n_values = self.n_inputs + self.instrs.len();
        // Where each value of the current block is: a register, or for an operand read
        // contiguously, the operand's memory itself.
        let mut at: SmallVec<[*const T; 96]> = smallvec::smallvec![std::ptr::null(); n_values];
        let regs = regs.as_mut_ptr();
        let mut p = start;
        while p < end {
            let (row, col) = (p / row_len, p % row_len);
            let len = block.min(row_len - col).min(end - p);
            let out_at = out[p - start..p - start + len].as_mut_ptr();
            for (k, opnd) in plan.operands.iter().enumerate() {
                // SAFETY: register `slots[k]` is `block` elements inside the register file.
                let reg = unsafe { regs.add(self.slots[k] as usize * block) };
                at[k] = opnd.locate(&plan.dims, row, col, reg, len, out_at);
            }
            for (j, ins) in self.instrs.iter().enumerate() {
                let v = self.n_inputs + j;
                let dst = if direct_out && v + 1 == n_values {
                    out_at
                } else {
                    // SAFETY: as above.
                    unsafe { regs.add(self.slots[v] as usize * block) }
                };
                // SAFETY: every operand of `ins` is an earlier value, located above at `len`
                // readable elements; `dst` is a register that no operand uses (see
                // `FusedKernel::new`) or the output, which no operand reads when `direct_out`.
                unsafe { exec(ins, &at, dst, len) };
                at[v] = dst;
            }
            if !direct_out || self.instrs.is_empty() {
                // SAFETY: the result has `len` elements at `at[n_values - 1]`, a register or an
                // operand, neither of which is `out_at` here except in place, at equal offsets.
                unsafe { std::ptr::copy(at[n_values - 1], out_at, len) };
            }
            p += len;
        }
    }

    /// The result's shape for operands of these shapes: they broadcast together, at the rank of
    /// the result type (a scalar immediate can add leading 1s).
    pub fn out_shape<'a>(
        &self,
        shapes: impl Iterator<Item = &'a [usize]>,
    ) -> Result<SmallVec<[usize; 6]>, String> {
        let mut out: SmallVec<[usize; 6]> = smallvec::smallvec![1; self.ty.ndim()];
        for s in shapes {
            if s.len() > out.len() {
                return Err(format!(
                    "operand {} has more dims than the result {}",
                    shape::show(s),
                    self.ty
                ));
            }
            let lead = out.len() - s.len();
            for (o, &d) in out[lead..].iter_mut().zip(s) {
                match (*o, d) {
                    (_, 1) => {}
                    (1, d) => *o = d,
                    (p, q) if p == q => {}
                    (p, q) => return Err(format!("operands do not broadcast ({p} vs {q})")),
                }
            }
        }
        Ok(out)
    }

    /// [`FusedKernel::out_shape`], after checking that each operand broadcasts only dims it
    /// declared 1 (`declared`: the operands' static shapes), as the unfused ops check.
    pub fn checked_out_shape(
        &self,
        shapes: &[&[usize]],
        declared: &[&Shape],
    ) -> Result<SmallVec<[usize; 6]>, String> {
        let out = self.out_shape(shapes.iter().copied())?;
        for (d, s) in declared.iter().zip(shapes) {
            shape::check_runtime_broadcast(d, s, &out)?;
        }
        Ok(out)
    }

    /// The kernel as an expression over its inputs `i0, i1, ...`, for printing.
    pub fn expr(&self) -> String {
        let mut vals: Vec<String> = (0..self.n_inputs).map(|k| format!("i{k}")).collect();
        for ins in &self.instrs {
            let v = |a: u16| vals[a as usize].clone();
            let s = match *ins {
                Instr::Unary(Unary::Neg, a) => format!("-{}", v(a)),
                Instr::Unary(u, a) => format!("{}({})", u.name(), v(a)),
                Instr::Binary(b, a, c) => match b.symbol() {
                    Some(sym) => format!("({} {sym} {})", v(a), v(c)),
                    None => format!("{}({}, {})", b.name(), v(a), v(c)),
                },
                Instr::Compare(c, a, b) => format!("({} {} {})", v(a), c.symbol(), v(b)),
                Instr::Where(c, a, b) => format!("where({}, {}, {})", v(c), v(a), v(b)),
                Instr::Scalar(bits) => f64::from_bits(bits).to_string(),
            };
            vals.push(if s.len() > 200 { "…".into() } else { s });
        }
        vals.pop().unwrap_or_default()
    }
}

impl fmt::Display for FusedKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fused{")?;
        f.write_str(&self.expr())?;
        f.write_char('}')
    }
}

fn trig_ok<T: Float>(a: &[T]) -> bool {
    let max = T::from_f(crate::exec::fastmath::f64s::TRIG_MAX);
    // A count rather than `all`: a loop without an early exit vectorizes.
    a.iter().map(|x| (x.abs() < max) as usize).sum::<usize>() == a.len()
}

/// Run one instruction over `len` elements: `dst` ← op(the values at `at[operand]`).
///
/// # Safety
/// Each operand of `ins` has `len` readable elements at its entry of `at`, and `dst` has `len`
/// writable elements that no operand overlaps.
#[inline(always)]
unsafe fn exec<T: Float>(ins: &Instr, at: &[*const T], dst: *mut T, len: usize) {
    let mut tmp: [&[T]; 3] = [&[], &[], &[]];
    for (k, &a) in ins.operands().iter().enumerate() {
        // SAFETY: the caller's contract.
        tmp[k] = unsafe { std::slice::from_raw_parts(at[a as usize], len) };
    }
    // SAFETY: the caller's contract.
    let dst = unsafe { std::slice::from_raw_parts_mut(dst, len) };
    let [a, b, c] = tmp;
    macro_rules! map1 {
        (|$x:ident| $e:expr) => {
            for (o, &$x) in dst.iter_mut().zip(a) {
                *o = $e;
            }
        };
    }
    macro_rules! map2 {
        (|$x:ident, $y:ident| $e:expr) => {
            for ((o, &$x), &$y) in dst.iter_mut().zip(a).zip(b) {
                *o = $e;
            }
        };
    }
    let (zero, one) = (T::zero(), T::one());
    let truth = |t: bool| if t { one } else { zero };
    match *ins {
        Instr::Unary(u, _) => match u {
            Unary::Neg => map1!(|x| -x),
            Unary::Exp => map1!(|x| x.fast_exp()),
            Unary::Log => map1!(|x| x.fast_ln()),
            Unary::Log1p => map1!(|x| x.fast_ln_1p()),
            Unary::Expm1 => map1!(|x| x.exp_m1()),
            Unary::Sqrt => map1!(|x| x.sqrt()),
            Unary::Square => map1!(|x| x * x),
            Unary::Abs => map1!(|x| x.abs()),
            Unary::Sign => map1!(|x| kernels::sign(x)),
            // The fast reductions hold for |x| < TRIG_MAX; a block with a larger x uses the library.
            Unary::Sin if trig_ok(a) => map1!(|x| x.fast_sin()),
            Unary::Sin => map1!(|x| x.sin()),
            Unary::Cos if trig_ok(a) => map1!(|x| x.fast_cos()),
            Unary::Cos => map1!(|x| x.cos()),
            Unary::Tanh => map1!(|x| x.fast_tanh()),
            Unary::Sigmoid => map1!(|x| x.fast_sigmoid()),
            Unary::Softplus => map1!(|x| x.fast_softplus()),
            Unary::Relu => map1!(|x| if x > zero { x } else { zero }),
            Unary::Not => map1!(|x| truth(x == zero)),
        },
        Instr::Binary(op, _, _) => match op {
            Binary::Add => map2!(|x, y| x + y),
            Binary::Sub => map2!(|x, y| x - y),
            Binary::Mul => map2!(|x, y| x * y),
            Binary::Div => map2!(|x, y| x / y),
            Binary::Pow => map2!(|x, y| x.powf(y)),
            Binary::Maximum => map2!(|x, y| if x >= y || y.is_nan() { x } else { y }),
            Binary::Minimum => map2!(|x, y| if x <= y || y.is_nan() { x } else { y }),
            Binary::And => map2!(|x, y| truth(x != zero && y != zero)),
            Binary::Or => map2!(|x, y| truth(x != zero || y != zero)),
        },
        Instr::Compare(cmp, _, _) => match cmp {
            Cmp::Lt => map2!(|x, y| truth(x < y)),
            Cmp::Le => map2!(|x, y| truth(x <= y)),
            Cmp::Gt => map2!(|x, y| truth(x > y)),
            Cmp::Ge => map2!(|x, y| truth(x >= y)),
            Cmp::Eq => map2!(|x, y| truth(x == y)),
            Cmp::Ne => map2!(|x, y| truth(x != y)),
        },
        Instr::Where(..) => {
            for (((o, &p), &x), &y) in dst.iter_mut().zip(a).zip(b).zip(c) {
                *o = if p != zero { x } else { y };
            }
        }
        Instr::Scalar(bits) => dst.fill(T::from_f(f64::from_bits(bits))),
    }
}

/// The operands of a run with their strides over the output's dims, after merging dims that
/// every operand walks contiguously.
pub(crate) struct Layout<T> {
    dims: SmallVec<[usize; 6]>,
    operands: SmallVec<[Operand<T>; 8]>,
}

enum Data<T> {
    Float(*const T),
    Bool(*const bool),
    Out,
}

struct Operand<T> {
    data: Data<T>,
    strides: SmallVec<[isize; 6]>,
}

// SAFETY: the pointers come from views borrowed for the whole run (`Layout` never outlives the
// `srcs` of `FusedKernel::run`) or from buffers a kernel group keeps alive until it ends, and
// the kernel only reads through them.
unsafe impl<T: Sync> Sync for Layout<T> {}
unsafe impl<T: Send> Send for Layout<T> {}

impl<T: Float> Layout<T> {
    fn new(srcs: &[Src<T>], shape: &[usize]) -> Result<Layout<T>, String> {
        let contiguous = {
            let mut s: SmallVec<[isize; 6]> = smallvec::smallvec![0; shape.len()];
            let mut acc = 1isize;
            for (k, &d) in shape.iter().enumerate().rev() {
                s[k] = acc;
                acc *= d as isize;
            }
            s
        };
        let bcast = |from: &[usize]| {
            format!(
                "{} does not broadcast to {}",
                shape::show(from),
                shape::show(shape)
            )
        };
        let mut full: SmallVec<[Operand<T>; 8]> = SmallVec::new();
        for src in srcs {
            let (data, strides) = match src {
                Src::Float(v) => {
                    let b = v.broadcast(IxDyn(shape)).ok_or_else(|| bcast(v.shape()))?;
                    (Data::Float(b.as_ptr()), b.strides().into())
                }
                Src::Bool(v) => {
                    let b = v.broadcast(IxDyn(shape)).ok_or_else(|| bcast(v.shape()))?;
                    (Data::Bool(b.as_ptr()), b.strides().into())
                }
                Src::Out => (Data::Out, contiguous.clone()),
                Src::Ptr(p) => (Data::Float(*p), contiguous.clone()),
            };
            full.push(Operand { data, strides });
        }
        // Merge dim k into the one before it when every operand steps over both as one.
        let mut dims: SmallVec<[usize; 6]> = SmallVec::new();
        let mut kept: SmallVec<[usize; 6]> = SmallVec::new();
        for (k, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let merge = kept.last().is_some_and(|&prev| {
                full.iter()
                    .all(|o| o.strides[prev] == o.strides[k] * d as isize)
                    && contiguous[prev] == contiguous[k] * d as isize
            });
            if merge {
                let n = dims.len();
                dims[n - 1] *= d;
                let last = kept.len() - 1;
                kept[last] = k;
            } else {
                dims.push(d);
                kept.push(k);
            }
        }
        let operands = full
            .into_iter()
            .map(|o| Operand {
                strides: kept.iter().map(|&k| o.strides[k]).collect(),
                data: o.data,
            })
            .collect();
        Ok(Layout { dims, operands })
    }
}

impl<T: Float> Operand<T> {
    /// The offset of element `col` of row `row` (of the merged dims, at least one).
    #[inline(always)]
    fn offset(&self, dims: &[usize], row: usize, col: usize) -> isize {
        let n = dims.len();
        let mut off = col as isize * self.strides[n - 1];
        let mut r = row;
        for k in (0..n - 1).rev() {
            off += (r % dims[k]) as isize * self.strides[k];
            r /= dims[k];
        }
        off
    }

    /// Where `len` elements of row `row` from column `col` are: in the operand's memory when
    /// it is contiguous there, else loaded into `reg` (`out` is the output at the same place,
    /// for an in-place operand).
    #[inline(always)]
    fn locate(
        &self,
        dims: &[usize],
        row: usize,
        col: usize,
        reg: *mut T,
        len: usize,
        out: *const T,
    ) -> *const T {
        let n = dims.len();
        if n > 0
            && let Data::Float(p) = self.data
            && self.strides[n - 1] == 1
        {
            // SAFETY: `off .. off + len` lies inside the broadcast view (see `load`).
            return unsafe { p.offset(self.offset(dims, row, col)) };
        }
        // SAFETY: `reg` is a register of at least `len` elements, and an in-place `out` has
        // `len` elements here; neither overlaps the other.
        let (reg, out) = unsafe {
            (
                std::slice::from_raw_parts_mut(reg, len),
                std::slice::from_raw_parts(out, len),
            )
        };
        self.load(dims, row, col, reg, out);
        reg.as_ptr()
    }

    /// Load `reg.len()` elements of row `row` from column `col` (of the merged dims).
    #[inline(always)]
    fn load(&self, dims: &[usize], row: usize, col: usize, reg: &mut [T], out: &[T]) {
        let n = dims.len();
        if n == 0 {
            // A scalar output: one element at offset 0.
            match self.data {
                // SAFETY: a 0-d view has one element at its pointer.
                Data::Float(p) => reg[0] = unsafe { *p },
                Data::Bool(p) => reg[0] = if unsafe { *p } { T::one() } else { T::zero() },
                Data::Out => reg[0] = out[0],
            }
            return;
        }
        let off = self.offset(dims, row, col);
        let step = self.strides[n - 1];
        match self.data {
            Data::Out => reg.copy_from_slice(out),
            // SAFETY (all reads below): `off + i * step` for `i < reg.len()` stays inside the
            // broadcast view, whose strides and dims the offsets were computed from.
            Data::Float(p) => unsafe {
                let p = p.offset(off);
                if step == 1 {
                    reg.copy_from_slice(std::slice::from_raw_parts(p, reg.len()));
                } else if step == 0 {
                    reg.fill(*p);
                } else {
                    for (i, v) in reg.iter_mut().enumerate() {
                        *v = *p.offset(i as isize * step);
                    }
                }
            },
            Data::Bool(p) => unsafe {
                let p = p.offset(off);
                for (i, v) in reg.iter_mut().enumerate() {
                    *v = if *p.offset(i as isize * step) {
                        T::one()
                    } else {
                        T::zero()
                    };
                }
            },
        }
    }
}
