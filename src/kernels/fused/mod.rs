//! Fused elementwise kernels: a region of elementwise ops with one result, run as one loop.
//!
//! The optimizer's fuse pass replaces such a region (a chain, tree or DAG of elementwise nodes
//! whose intermediate values nobody else reads) by one node holding a [`FusedKernel`]: a list of
//! instructions over numbered values. The kernel walks the output in blocks of up to [`BLOCK`]
//! elements. For each block it loads every input (broadcast inputs have stride 0), runs each
//! instruction as a tight loop over the block, and writes the result. Intermediate values live
//! in a small per-thread register file ([`registers`]), so a fused kernel allocates nothing,
//! whatever the length of the chain.
//!
//! Booleans inside a kernel (comparison results, masks) are held as `0` and `1` of the float type.
//!
//! The parts: this file holds the kernel and its shapes; `registers` assigns registers by
//! liveness; `interpreter` runs the instructions over blocks; `layout` places the operands.

mod interpreter;
mod layout;
mod registers;

use std::fmt::{self, Write};

use ndarray::{ArrayD, IxDyn};
use smallvec::SmallVec;

pub(crate) use layout::{Layout, Src};

use super::{Exec, KernelFloat};
use crate::error::Location;
use crate::graph::Type;
use crate::graph::op::{Binary, Cmp, Unary};
use crate::shape::{self, Shape};
use crate::tensor::Tensor;

/// Elements per block of the inner loops, at most.
pub(crate) const BLOCK: usize = 256;
/// Registers a kernel may use at once; a region that needs more stays unfused.
pub(crate) const MAX_SLOTS: usize = 256;

/// One instruction. Operands are value numbers: inputs first, then one value per instruction.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Instr {
    /// An elementwise op of one operand.
    Unary(Unary, u16),
    /// An elementwise op of two operands.
    Binary(Binary, u16, u16),
    /// A comparison, `1` where it holds and `0` elsewhere.
    Compare(Cmp, u16, u16),
    /// `where(c != 0, a, b)`.
    Where(u16, u16, u16),
    /// A scalar constant.
    Scalar(f64),
}

impl Instr {
    pub(crate) fn operands(&self) -> SmallVec<[u16; 3]> {
        match *self {
            Instr::Unary(_, a) => smallvec::smallvec![a],
            Instr::Binary(_, a, b) | Instr::Compare(_, a, b) => smallvec::smallvec![a, b],
            Instr::Where(c, a, b) => smallvec::smallvec![c, a, b],
            Instr::Scalar(_) => SmallVec::new(),
        }
    }
}

// Two instructions are equal when they compute the same thing, so immediates compare bit for bit
// (a NaN immediate equals itself).
impl PartialEq for Instr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Instr::Scalar(a), Instr::Scalar(b)) => a.to_bits() == b.to_bits(),
            (Instr::Unary(u, a), Instr::Unary(v, b)) => (u, a) == (v, b),
            (Instr::Binary(o, a, b), Instr::Binary(p, c, d)) => (o, a, b) == (p, c, d),
            (Instr::Compare(o, a, b), Instr::Compare(p, c, d)) => (o, a, b) == (p, c, d),
            (Instr::Where(a, b, c), Instr::Where(d, e, f)) => (a, b, c) == (d, e, f),
            _ => false,
        }
    }
}
impl Eq for Instr {}
impl std::hash::Hash for Instr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match *self {
            Instr::Unary(u, a) => (u, a).hash(state),
            Instr::Binary(o, a, b) => (o, a, b).hash(state),
            Instr::Compare(o, a, b) => (o, a, b).hash(state),
            Instr::Where(a, b, c) => (a, b, c).hash(state),
            Instr::Scalar(v) => v.to_bits().hash(state),
        }
    }
}

/// A compiled elementwise region: its inputs, instructions and result type, with registers
/// assigned by liveness. Two kernels are equal when they compute the same thing (the origins of
/// their instructions do not count).
#[derive(Clone, Debug)]
pub(crate) struct FusedKernel {
    /// Number of inputs (values `0..n_inputs`).
    pub(crate) n_inputs: usize,
    /// Instruction `j` defines value `n_inputs + j`; the last one is the result.
    pub(crate) instrs: Vec<Instr>,
    /// Type of the result.
    pub(crate) ty: Type,
    /// Register of each value.
    slots: Vec<u16>,
    /// Elements per block (the register file holds one block per register).
    block: usize,
    /// Work per element, in additions.
    cost: usize,
    /// Declared shape of each value, and the op and source line each instruction came from:
    /// a run-time shape error is reported as the unfused op would have reported it.
    origin: Origin,
    /// For each input, the part of the operand it reads where it reads a part: a `slice` of
    /// the operand folded into the kernel, read in place instead of copied out first.
    views: Vec<Option<View>>,
}

/// The part `start..end` (step 1) of axis `axis` of an operand, as `slice` takes it (negative
/// bounds count from the end).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct View {
    pub(crate) axis: usize,
    pub(crate) start: isize,
    pub(crate) end: Option<isize>,
}

impl View {
    /// The bounds along the axis, for an operand of `len` there.
    fn bounds(&self, len: usize) -> (usize, usize) {
        let (s, e) = shape::slice_bounds(len, self.start, self.end);
        (s, e.max(s))
    }

    /// The shape of the part of an operand of `shape` (`None`: the operand has no such axis).
    pub(crate) fn shape(&self, shape: &[usize]) -> Option<SmallVec<[usize; 6]>> {
        let mut out: SmallVec<[usize; 6]> = shape.into();
        let (s, e) = self.bounds(*shape.get(self.axis)?);
        out[self.axis] = e - s;
        Some(out)
    }

    /// The part of `src`.
    fn of<'a, T: KernelFloat>(&self, src: Src<'a, T>) -> Result<Src<'a, T>, String> {
        let part = |len: usize| {
            let (s, e) = self.bounds(len);
            ndarray::Slice::new(s as isize, Some(e as isize), 1)
        };
        let axis = ndarray::Axis(self.axis);
        let missing =
            |nd: usize| format!("a part of axis {} of an operand of {nd} dims", self.axis);
        match src {
            Src::Float(v) if self.axis < v.ndim() => {
                let p = part(v.len_of(axis));
                Ok(Src::Float(v.slice_axis_move(axis, p)))
            }
            Src::Bool(v) if self.axis < v.ndim() => {
                let p = part(v.len_of(axis));
                Ok(Src::Bool(v.slice_axis_move(axis, p)))
            }
            Src::Float(v) => Err(missing(v.ndim())),
            Src::Bool(v) => Err(missing(v.ndim())),
            Src::Out | Src::Ptr(_) => Err("a part of a kernel's own values".into()),
        }
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.end.map_or(String::new(), |e| e.to_string());
        write!(f, "[axis {}, {}:{end}]", self.axis, self.start)
    }
}

/// Where the values of a kernel came from.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    /// Declared shape of each value (inputs, then instructions).
    pub(crate) shapes: Vec<Shape>,
    /// Op name and source line of each instruction.
    pub(crate) ops: Vec<(String, Location)>,
}

impl PartialEq for FusedKernel {
    fn eq(&self, other: &Self) -> bool {
        (self.n_inputs, &self.instrs, &self.ty, &self.views)
            == (other.n_inputs, &other.instrs, &other.ty, &other.views)
    }
}
impl Eq for FusedKernel {}
impl std::hash::Hash for FusedKernel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.n_inputs, &self.instrs, &self.ty, &self.views).hash(state)
    }
}

/// A run-time shape error inside a kernel, located at the op that would have raised it.
#[derive(Debug)]
pub(crate) struct ShapeError {
    /// Name of the op.
    pub(crate) op: String,
    /// Where the user built it.
    pub(crate) loc: Location,
    /// What went wrong.
    pub(crate) detail: String,
}

impl FusedKernel {
    /// Assign registers; `None` when the kernel would need more than [`MAX_SLOTS`].
    pub(crate) fn new(
        n_inputs: usize,
        instrs: Vec<Instr>,
        ty: Type,
        origin: Origin,
    ) -> Option<FusedKernel> {
        let registers::Assignment { slots, n_slots } = registers::assign(n_inputs, &instrs);
        let block = registers::block_len(n_slots);
        let cost = n_inputs + instrs.iter().map(cost_of).sum::<usize>();
        (n_slots <= MAX_SLOTS).then_some(FusedKernel {
            n_inputs,
            instrs,
            ty,
            slots,
            block,
            cost,
            origin,
            views: vec![None; n_inputs],
        })
    }

    /// The kernel reading the parts `views` of its operands (one entry per input).
    pub(crate) fn with_views(mut self, views: Vec<Option<View>>) -> FusedKernel {
        assert_eq!(views.len(), self.n_inputs, "one view entry per input");
        self.views = views;
        self
    }

    /// Does it read a part of operand `i` (of a node whose operands are `operands`)? Such an
    /// operand is never overwritten in place: the kernel reads it at other positions.
    pub(crate) fn reads_part_of(&self, operands: &[usize], i: usize) -> bool {
        operands
            .iter()
            .zip(&self.views)
            .any(|(&o, v)| o == i && v.is_some())
    }

    /// The part of input `k` it reads, where it reads a part.
    pub(crate) fn view(&self, k: usize) -> Option<View> {
        self.views.get(k).copied().flatten()
    }

    /// Does it read a part of some operand?
    pub(crate) fn has_views(&self) -> bool {
        self.views.iter().any(Option::is_some)
    }

    /// The shape input `k` has in the kernel, for an operand of `shape`.
    pub(crate) fn input_shape(
        &self,
        k: usize,
        shape: &[usize],
    ) -> Result<SmallVec<[usize; 6]>, String> {
        match self.views.get(k).copied().flatten() {
            Some(v) => v.shape(shape).ok_or_else(|| {
                format!(
                    "a part of axis {} of an operand of {} dims",
                    v.axis,
                    shape.len()
                )
            }),
            None => Ok(shape.into()),
        }
    }

    /// Input `k`'s declared shape in the kernel: its operand's (`operand`), or the part's.
    pub(crate) fn input_declared<'a>(&'a self, k: usize, operand: &'a Shape) -> &'a Shape {
        match self.views.get(k).copied().flatten() {
            Some(_) => self.origin.shapes.get(k).unwrap_or(operand),
            None => operand,
        }
    }

    /// Operand `k` as input `k` reads it.
    pub(crate) fn input_src<'a, T: KernelFloat>(
        &self,
        k: usize,
        src: Src<'a, T>,
    ) -> Result<Src<'a, T>, String> {
        match self.views.get(k).copied().flatten() {
            Some(v) => v.of(src),
            None => Ok(src),
        }
    }

    /// Work per element, in additions.
    pub(crate) fn cost(&self) -> usize {
        self.cost
    }

    /// The op and source line instruction `j` came from.
    pub(crate) fn origin_of(&self, j: usize) -> Option<&(String, Location)> {
        self.origin.ops.get(j)
    }

    /// Evaluate into a new array (the reference path, and the fast one outside the runtime's
    /// pooled buffers), after the checks the unfused ops make on their operands' shapes
    /// (`declared`: the operands' static shapes).
    pub(crate) fn eval<T: KernelFloat>(
        &self,
        x: &[&Tensor],
        declared: &[&Shape],
        exec: Exec,
    ) -> Result<ArrayD<T>, String> {
        let parts: SmallVec<[SmallVec<[usize; 6]>; 8]> = x
            .iter()
            .enumerate()
            .map(|(k, t)| self.input_shape(k, t.shape()))
            .collect::<Result<_, String>>()?;
        let shapes: SmallVec<[&[usize]; 8]> = parts.iter().map(|s| &s[..]).collect();
        let declared: SmallVec<[&Shape; 8]> = declared
            .iter()
            .enumerate()
            .map(|(k, d)| self.input_declared(k, d))
            .collect();
        let shape = self.checked_out_shape(&shapes, &declared)?;
        let mut out = vec![T::zero(); shape.iter().product()];
        let srcs = x
            .iter()
            .enumerate()
            .map(|(k, t)| self.input_src(k, Src::of(t)?))
            .collect::<Result<Vec<Src<T>>, String>>()?;
        self.run(&srcs, &mut out, &shape, exec)?;
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
    }

    /// Replay the shapes of the region instruction by instruction, with the checks each op
    /// makes unfused, to name the op that a run-time shape error belongs to.
    pub(crate) fn diagnose(&self, inputs: &[&[usize]]) -> Option<ShapeError> {
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

    /// The kernel inputs that each operand of the op built at `loc` (named `op`) reads, for the
    /// first instruction that came from it; `None` when none did.
    pub(crate) fn operand_inputs(&self, op: &str, loc: Location) -> Option<Vec<Vec<usize>>> {
        let j = self
            .origin
            .ops
            .iter()
            .position(|(o, l)| o == op && *l == loc)?;
        let mut reads: Vec<Vec<usize>> = (0..self.n_inputs).map(|i| vec![i]).collect();
        for ins in &self.instrs[..j] {
            let mut r: Vec<usize> = ins
                .operands()
                .iter()
                .flat_map(|&a| reads.get(a as usize).cloned().unwrap_or_default())
                .collect();
            r.sort_unstable();
            r.dedup();
            reads.push(r);
        }
        let ops = self.instrs.get(j)?.operands();
        Some(
            ops.iter()
                .map(|&a| reads.get(a as usize).cloned().unwrap_or_default())
                .collect(),
        )
    }

    /// The result's shape for operands of these shapes: they broadcast together, at the rank of
    /// the result type (a scalar immediate can add leading 1s).
    pub(crate) fn out_shape<'a>(
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
    pub(crate) fn checked_out_shape(
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

    /// The kernel as an expression over its inputs `i0, i1, ...` (a part of one with its
    /// bounds), for printing.
    pub(crate) fn expr(&self) -> String {
        let mut vals: Vec<String> = (0..self.n_inputs)
            .map(|k| match self.views[k] {
                Some(v) => format!("i{k}{v}"),
                None => format!("i{k}"),
            })
            .collect();
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
                Instr::Scalar(v) => v.to_string(),
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

/// The work of one instruction per element, in additions: a transcendental function costs
/// about twelve.
fn cost_of(i: &Instr) -> usize {
    match i {
        Instr::Unary(
            Unary::Exp
            | Unary::Log
            | Unary::Log1p
            | Unary::Expm1
            | Unary::Sin
            | Unary::Cos
            | Unary::Tanh
            | Unary::Sigmoid
            | Unary::Softplus
            | Unary::LogSigmoid
            | Unary::Erf,
            _,
        )
        | Instr::Binary(Binary::Pow, ..) => 12,
        _ => 1,
    }
}
