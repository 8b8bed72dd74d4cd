//! Kernel runs: consecutive fused kernels with outputs of one shape run as one loop. The
//! positions are cut into chunks, and each rayon task takes its chunk through every kernel of
//! the run: one fork and join for the run instead of one per kernel, and each chunk's data
//! stays in cache.

use rayon::prelude::*;
use smallvec::SmallVec;

use super::pool::{Pool, Pooled};
use super::{Executor, Value, node_error, operand, shaped};
use crate::compile::ir::{Kind, Node};
use crate::error::{Error, Result};
use crate::kernels::fused::{FusedKernel, Layout, Src};
use crate::shape;
use crate::tensor::Tensor;

/// Work (elements times the kernels' cost) above which a kernel group is split over the pool.
const GROUP_PAR_WORK: usize = 1 << 13;
/// Elements per chunk of a large kernel group: its kernels' data for one chunk stays in cache.
const GROUP_CHUNK: usize = 4096;
/// Chunks are a multiple of this many elements.
const GROUP_CHUNK_MIN: usize = 64;

/// A kernel group in the making, per float type: kept in the workspace so that a warm call
/// allocates nothing for it.
#[derive(Default)]
pub(super) struct Groups {
    f32: Vec<Member<f32>>,
    f64: Vec<Member<f64>>,
    /// For each node, its position among the members of the group being run, if it is one.
    member: Vec<Option<u32>>,
}

/// A float type whose kernels can run as a group.
pub(super) trait Grouped: Pooled {
    fn members(groups: &mut Groups) -> (&mut Vec<Member<Self>>, &mut Vec<Option<u32>>);
}
impl Grouped for f32 {
    fn members(groups: &mut Groups) -> (&mut Vec<Member<f32>>, &mut Vec<Option<u32>>) {
        (&mut groups.f32, &mut groups.member)
    }
}
impl Grouped for f64 {
    fn members(groups: &mut Groups) -> (&mut Vec<Member<f64>>, &mut Vec<Option<u32>>) {
        (&mut groups.f64, &mut groups.member)
    }
}

/// One kernel of a group: its node, the buffer it writes and its operands.
pub(super) struct Member<T> {
    node: usize,
    /// The output buffer (empty once a later kernel of the group took it over in place).
    buf: Vec<T>,
    out: OutPtr<T>,
    layout: Layout<T>,
}

/// Where a group kernel writes: its buffer, written chunk by chunk from several threads.
struct OutPtr<T>(*mut T);
// SAFETY: each chunk of a group writes a disjoint range of positions of every buffer (see
// `Executor::run_group`), and the buffers outlive the group's run.
unsafe impl<T: Send> Send for OutPtr<T> {}
unsafe impl<T: Sync> Sync for OutPtr<T> {}

impl Executor {
    /// Run the fused kernels of nodes `first..end` (leaves may sit between them) that have the
    /// output shape of the first, as one loop: the positions are cut into chunks, and each
    /// chunk goes through every kernel in turn, on its own rayon task. A kernel of a group
    /// only reads the results of earlier ones at its own positions, so chunks are independent;
    /// the kernels share one fork and join and their data stays in cache. Returns where the
    /// group stopped (the first kernel of another shape).
    ///
    /// No buffer is handed out twice within a group: the operands that die in it go back to
    /// the pool after it (the caller does that), and a kernel writes in place only over an
    /// operand of its own shape that it reads last, at the positions it writes.
    pub(super) fn run_group<T: Grouped>(
        &self,
        first: usize,
        end: usize,
        inputs: &[&Tensor],
        values: &mut [Option<Value>],
        pool: &mut Pool,
        groups: &mut Groups,
    ) -> Result<usize> {
        let (members, index) = T::members(groups);
        debug_assert!(members.is_empty());
        index.resize(self.program.nodes.len(), None);
        let mut shape: SmallVec<[usize; 6]> = SmallVec::new();
        let mut done = first;
        let mut result = Ok(());
        for j in first..end {
            let n = &self.program.nodes[j];
            if n.kind.is_leaf() {
                if values[j].is_none() {
                    values[j] = Some(self.leaf(&n.kind));
                }
                done = j + 1;
                continue;
            }
            let Kind::Fused(k) = &n.kind else {
                unreachable!("a kernel run holds kernels and leaves")
            };
            let member_of = |i: usize| index[i].map(|m| m as usize);
            // Operand shapes: a result of the group has the group's shape.
            let in_shapes: SmallVec<[SmallVec<[usize; 6]>; 8]> = n
                .inputs
                .iter()
                .map(|&i| match member_of(i) {
                    Some(_) => shape.clone(),
                    None => operand(values, inputs, i).shape().into(),
                })
                .collect();
            let out_shape = match self.kernel_shape(k, n, &in_shapes) {
                Ok(s) => s,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if members.is_empty() {
                shape = out_shape;
            } else if out_shape != shape {
                break;
            }
            // In place over an operand of the group's shape that dies here.
            let reuse = n.inputs.iter().position(|&i| match member_of(i) {
                _ if k.reads_part_of(&n.inputs, i) => false,
                Some(m) => {
                    !self.nan_guard
                        && self.program.last_use[i] == Some(j)
                        && !members[m].buf.is_empty()
                }
                None => self.can_take::<T>(i, j, values, &shape),
            });
            let mut buf: Vec<T> = match reuse.map(|r| n.inputs[r]) {
                Some(i) => match member_of(i) {
                    Some(m) => std::mem::take(&mut members[m].buf),
                    None => Self::take_buffer(values, i),
                },
                None => match pool.take(&shape) {
                    Ok(buf) => buf,
                    Err(f) => {
                        result = Err(f.at(n));
                        break;
                    }
                },
            };
            let srcs: std::result::Result<SmallVec<[Src<T>; 8]>, String> = n
                .inputs
                .iter()
                .enumerate()
                .map(|(x, &i)| {
                    if reuse.is_some_and(|r| n.inputs[r] == i) {
                        return Ok(Src::Out);
                    }
                    let src = match member_of(i) {
                        Some(m) => Src::Ptr(members[m].out.0 as *const T),
                        None => Src::of(operand(values, inputs, i))?,
                    };
                    k.input_src(x, src)
                })
                .collect();
            let layout = srcs.and_then(|srcs| k.layout(&srcs, &shape));
            match layout {
                Ok(layout) => {
                    index[j] = Some(members.len() as u32);
                    let out = OutPtr(buf.as_mut_ptr());
                    members.push(Member {
                        node: j,
                        buf,
                        out,
                        layout,
                    });
                    done = j + 1;
                }
                Err(detail) => {
                    pool.keep_vec(buf);
                    result = Err(node_error(n, detail));
                    break;
                }
            }
        }
        if result.is_ok() {
            let total: usize = shape.iter().product();
            let kernel = |m: &Member<T>| -> &FusedKernel {
                match &self.program.nodes[m.node].kind {
                    Kind::Fused(k) => k,
                    _ => unreachable!("members are kernels"),
                }
            };
            let work: usize = members.iter().map(|m| kernel(m).cost()).sum::<usize>() * total;
            let run = |from: usize, to: usize| {
                for m in members.iter() {
                    // SAFETY: `m.out` points at `total` elements that stay alive and in place
                    // until the group ends; chunks cover disjoint ranges `from..to`.
                    let out =
                        unsafe { std::slice::from_raw_parts_mut(m.out.0.add(from), to - from) };
                    kernel(m).span(&m.layout, out, from);
                }
            };
            let threads = crate::kernels::threads();
            if threads > 1 && work >= GROUP_PAR_WORK && total >= 2 * GROUP_CHUNK_MIN {
                let chunks = threads.max(total / GROUP_CHUNK);
                let chunk = total.div_ceil(chunks).next_multiple_of(GROUP_CHUNK_MIN);
                (0..total.div_ceil(chunk))
                    .into_par_iter()
                    .for_each(|c| run(c * chunk, total.min((c + 1) * chunk)));
            } else if total > 0 {
                run(0, total);
            }
        }
        for m in members.drain(..) {
            index[m.node] = None;
            if !m.buf.is_empty() || shape.iter().product::<usize>() == 0 {
                let t = shaped(m.buf, &shape).expect("the buffer has the group's shape");
                values[m.node] = Some(Value::Owned(t));
            }
        }
        result.map(|()| done)
    }

    /// The output shape of kernel `k` of node `n` for operands of these shapes, with the
    /// checks each op of the region makes unfused; an error names the op of the region that
    /// fails and its line.
    pub(super) fn kernel_shape(
        &self,
        k: &FusedKernel,
        n: &Node,
        in_shapes: &[SmallVec<[usize; 6]>],
    ) -> Result<SmallVec<[usize; 6]>> {
        // (An input that reads a part of its operand has the part's shape; without parts, the
        // operands' own shapes are read as they are.)
        let parts: SmallVec<[SmallVec<[usize; 6]>; 8]>;
        let kernel_shapes = if k.has_views() {
            parts = in_shapes
                .iter()
                .enumerate()
                .map(|(x, s)| k.input_shape(x, s))
                .collect::<std::result::Result<_, String>>()
                .map_err(|detail| node_error(n, detail))?;
            &parts[..]
        } else {
            in_shapes
        };
        let shapes: SmallVec<[&[usize]; 8]> = kernel_shapes.iter().map(|s| &s[..]).collect();
        let declared: SmallVec<[&shape::Shape; 8]> = n
            .inputs
            .iter()
            .enumerate()
            .map(|(x, &i)| k.input_declared(x, &self.program.nodes[i].ty.shape))
            .collect();
        k.checked_out_shape(&shapes, &declared).map_err(|detail| {
            // Name the op of the region that fails, as it would have failed unfused.
            match k.diagnose(&shapes) {
                Some(e) => Error::Runtime {
                    op: e.op,
                    detail: e.detail,
                    loc: e.loc,
                },
                None => node_error(n, detail),
            }
        })
    }
}
