//! Running a fused kernel: over blocks of the output, each instruction as a tight loop over the
//! block, on a per-thread register file; large outputs split over the rayon pool.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::layout::{Data, Layout, Src};
use super::registers::REG_ELEMS;
use super::{FusedKernel, Instr};
use crate::graph::op::{Binary, Cmp, Unary};
use crate::kernels::{Exec, KernelFloat, PAR_MIN, elementwise, fastmath};
use crate::shape;

/// Work (elements times the cost of the instructions) above which a kernel is split over the
/// rayon pool: a transcendental function costs about 12 additions.
const PAR_WORK: usize = 1 << 13;

impl FusedKernel {
    /// Compute the result into `out` (shaped `shape`, contiguous). `rayon` splits large outputs
    /// into chunks run on the pool.
    pub fn run<T: KernelFloat>(
        &self,
        srcs: &[Src<T>],
        out: &mut [T],
        shape: &[usize],
        exec: Exec,
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
        let threads = crate::kernels::threads();
        if exec.is_fast() && threads > 1 && total * self.cost >= PAR_WORK && total >= 2 * self.block
        {
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
    pub(crate) fn layout<T: KernelFloat>(
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

    /// Run the flat output positions `start .. start + out.len()`.
    pub(crate) fn span<T: KernelFloat>(&self, plan: &Layout<T>, out: &mut [T], start: usize) {
        T::with_scratch(REG_ELEMS, |regs| {
            #[cfg(target_arch = "x86_64")]
            match isa() {
                // SAFETY: the CPU has AVX-512 F, DQ and VL, AVX2 and FMA (`isa` checked).
                Isa::Avx512 => return unsafe { self.span_avx512(plan, out, start, regs) },
                // SAFETY: the CPU has AVX2 and FMA (`isa` checked).
                Isa::Avx2 => return unsafe { self.span_avx2(plan, out, start, regs) },
                Isa::Baseline => {}
            }
            self.span_in::<T, false>(plan, out, start, regs)
        })
    }

    /// [`FusedKernel::span_in`] compiled for AVX2 and FMA: the same code, vectorized four
    /// `f64` or eight `f32` wide.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn span_avx2<T: KernelFloat>(
        &self,
        plan: &Layout<T>,
        out: &mut [T],
        start: usize,
        regs: &mut [T],
    ) {
        self.span_in::<T, true>(plan, out, start, regs)
    }

    /// [`FusedKernel::span_in`] compiled for AVX-512: eight `f64` or sixteen `f32` wide, with
    /// twice the vector registers of AVX2 (the polynomials' constants stay in them).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
    unsafe fn span_avx512<T: KernelFloat>(
        &self,
        plan: &Layout<T>,
        out: &mut [T],
        start: usize,
        regs: &mut [T],
    ) {
        self.span_in::<T, true>(plan, out, start, regs)
    }

    #[inline(always)]
    fn span_in<T: KernelFloat, const FMA: bool>(
        &self,
        plan: &Layout<T>,
        out: &mut [T],
        start: usize,
        regs: &mut [T],
    ) {
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
                unsafe { exec::<T, FMA>(ins, &at, dst, len) };
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
}

/// Where a value that is not finite was born inside a kernel: the instruction, the values of its
/// operands there, and its own value.
pub(crate) struct Blame {
    pub instr: usize,
    pub operands: Vec<f64>,
    pub value: f64,
}

impl FusedKernel {
    /// Replay the instructions at one element, given the kernel's input values there (bools as
    /// 0 and 1), exactly as the kernel computes them: the first instruction whose value is not
    /// finite while its operands are, if one.
    pub(crate) fn blame<T: KernelFloat>(&self, inputs: &[T]) -> Option<Blame> {
        let mut vals: Vec<T> = inputs.to_vec();
        for (j, ins) in self.instrs.iter().enumerate() {
            let at: SmallVec<[*const T; 3]> =
                (0..vals.len()).map(|v| &vals[v] as *const T).collect();
            let mut out = T::zero();
            // SAFETY: every operand of `ins` is an earlier value, one element at its pointer in
            // `vals`, which is not written while `at` is used; `out` is a separate element.
            // With the kernels' choice of FMA: `mul_add` rounds the same in hardware and library.
            unsafe {
                if fma() {
                    exec::<T, true>(ins, &at, &mut out, 1)
                } else {
                    exec::<T, false>(ins, &at, &mut out, 1)
                }
            };
            let operands: Vec<f64> = ins
                .operands()
                .iter()
                .map(|&a| vals[a as usize].to_f())
                .collect();
            if !out.is_finite() && operands.iter().all(|v| v.is_finite()) {
                return Some(Blame {
                    instr: j,
                    operands,
                    value: out.to_f(),
                });
            }
            vals.push(out);
        }
        None
    }
}

/// The widest code the CPU runs: the fused kernels are compiled for each.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
enum Isa {
    Avx512,
    Avx2,
    Baseline,
}

#[cfg(target_arch = "x86_64")]
fn isa() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    if has!("avx512f") && has!("avx512dq") && has!("avx512vl") && fma() {
        Isa::Avx512
    } else if fma() {
        Isa::Avx2
    } else {
        Isa::Baseline
    }
}

/// Whether the fast kernels use fused multiply-adds: where the CPU runs their AVX2 code.
fn fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn trig_ok<T: KernelFloat>(a: &[T]) -> bool {
    let max = T::from_f(fastmath::double::TRIG_MAX);
    // A count rather than `all`: a loop without an early exit vectorizes.
    a.iter().map(|x| (x.abs() < max) as usize).sum::<usize>() == a.len()
}

/// Run one instruction over `len` elements: `dst` ← op(the values at `at[operand]`).
///
/// # Safety
/// Each operand of `ins` has `len` readable elements at its entry of `at`, and `dst` has `len`
/// writable elements that no operand overlaps.
#[inline(always)]
unsafe fn exec<T: KernelFloat, const FMA: bool>(
    ins: &Instr,
    at: &[*const T],
    dst: *mut T,
    len: usize,
) {
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
            Unary::Exp => map1!(|x| x.fast_exp::<FMA>()),
            Unary::Log => map1!(|x| x.fast_ln::<FMA>()),
            Unary::Log1p => map1!(|x| x.fast_ln_1p::<FMA>()),
            Unary::Expm1 => map1!(|x| x.exp_m1()),
            Unary::Sqrt => map1!(|x| x.sqrt()),
            Unary::Square => map1!(|x| x * x),
            Unary::Abs => map1!(|x| x.abs()),
            Unary::Sign => map1!(|x| elementwise::sign(x)),
            // The fast reductions hold for |x| < TRIG_MAX; a block with a larger x uses the library.
            Unary::Sin if trig_ok(a) => map1!(|x| x.fast_sin::<FMA>()),
            Unary::Sin => map1!(|x| x.sin()),
            Unary::Cos if trig_ok(a) => map1!(|x| x.fast_cos::<FMA>()),
            Unary::Cos => map1!(|x| x.cos()),
            Unary::Tanh => map1!(|x| x.fast_tanh::<FMA>()),
            Unary::Sigmoid => map1!(|x| x.fast_sigmoid::<FMA>()),
            Unary::Softplus => map1!(|x| x.fast_softplus::<FMA>()),
            Unary::LogSigmoid => map1!(|x| -(-x).fast_softplus::<FMA>()),
            Unary::Relu => map1!(|x| if x > zero { x } else { zero }),
            Unary::Erf => map1!(|x| elementwise::erf(x)),
            Unary::Floor => map1!(|x| x.floor()),
            Unary::Round => map1!(|x| elementwise::round_half_even(x)),
            Unary::Ceil => map1!(|x| x.ceil()),
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
        Instr::Scalar(v) => dst.fill(T::from_f(v)),
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use super::*;
    use crate::dtype::DType;
    use crate::graph::Type;
    use crate::kernels::fastmath::double;
    use crate::kernels::fused::Origin;

    /// The kernel `u(i0)` over `x`, by each compiled path this CPU runs.
    fn by_path(u: Unary, x: &[f64]) -> Vec<(&'static str, Vec<f64>)> {
        let ty = Type::new(DType::F64, &[Some(x.len())]);
        let k = FusedKernel::new(1, vec![Instr::Unary(u, 0)], ty, Origin::default()).unwrap();
        let a = ArrayD::from_shape_vec(IxDyn(&[x.len()]), x.to_vec()).unwrap();
        let srcs = [Src::Float(a.view())];
        let plan = k.layout(&srcs, &[x.len()]).unwrap();
        let mut regs = vec![0.0; REG_ELEMS];
        let mut out = vec![0.0; x.len()];
        k.span_in::<f64, false>(&plan, &mut out, 0, &mut regs);
        let mut paths = vec![("baseline", out.clone())];
        #[cfg(target_arch = "x86_64")]
        {
            if fma() {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { k.span_avx2(&plan, &mut out, 0, &mut regs) };
                paths.push(("avx2", out.clone()));
            }
            if matches!(isa(), Isa::Avx512) {
                // SAFETY: the CPU has AVX-512 F, DQ and VL, AVX2 and FMA.
                unsafe { k.span_avx512(&plan, &mut out, 0, &mut regs) };
                paths.push(("avx512", out.clone()));
            }
        }
        paths
    }

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    #[test]
    fn every_compiled_path_computes_the_scalar_functions_exactly() {
        // Over several blocks and a ragged end, so that vector bodies and tails both run.
        let x: Vec<f64> = (0..1003)
            .map(|i| {
                let t = i as f64 / 1003.0;
                match i % 5 {
                    0 => (t - 0.5) * 1500.0,
                    1 => (t - 0.5) * 40.0,
                    2 => (t - 0.5) * 2e6,
                    3 => (t - 0.5) * 1e-12,
                    _ => [0.0, -0.0, 5e-324, -1e-300, 0.625, 709.79, -746.0][i % 7],
                }
            })
            .collect();
        type F = fn(f64) -> f64;
        let fs: [(Unary, F, F); 5] = [
            (Unary::Exp, double::exp::<false>, double::exp::<true>),
            (Unary::Sin, double::sin::<false>, double::sin::<true>),
            (Unary::Cos, double::cos::<false>, double::cos::<true>),
            (Unary::Tanh, double::tanh::<false>, double::tanh::<true>),
            (
                Unary::Sigmoid,
                double::sigmoid::<false>,
                double::sigmoid::<true>,
            ),
        ];
        for (u, plain, fused) in fs {
            for (path, got) in by_path(u, &x) {
                let f = if path == "baseline" { plain } else { fused };
                for (&v, &g) in x.iter().zip(&got) {
                    assert!(same(g, f(v)), "{path} {u:?}({v:e}) = {g:e}, not {:e}", f(v));
                }
            }
        }
    }

    #[test]
    fn a_block_with_a_huge_or_nan_argument_takes_sin_and_cos_from_the_library() {
        let x = [1.0, 3e9, -2.5, f64::NAN, f64::INFINITY, 1e300];
        for (u, f) in [
            (Unary::Sin, f64::sin as fn(f64) -> f64),
            (Unary::Cos, f64::cos),
        ] {
            for (path, got) in by_path(u, &x) {
                for (&v, &g) in x.iter().zip(&got) {
                    assert!(same(g, f(v)), "{path} {u:?}({v:e}) = {g:e}, not {:e}", f(v));
                }
            }
        }
    }
}
