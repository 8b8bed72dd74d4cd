//! The NaN guard (Theano's `NanGuardMode`, JAX's `debug_nans`): under it, the first node whose
//! result holds a NaN or an infinity when none of its operands did stops the call, naming the op
//! and the line that built it, with a summary of its operands. Inside a fused kernel, the
//! instruction that made the first such element is found by replaying the kernel there.

use crate::compile::ir::{Kind, Node};
use crate::error::Error;
use crate::kernels::KernelFloat;
use crate::kernels::fused::FusedKernel;
use crate::shape;
use crate::tensor::Tensor;

/// How many NaNs and infinities `t` holds, and the flat position of the first; `None` for a
/// tensor that is all finite (or not float).
fn non_finite(t: &Tensor) -> Option<(usize, usize, usize)> {
    fn count<T: KernelFloat>(v: impl Iterator<Item = T>) -> Option<(usize, usize, usize)> {
        let (mut nans, mut infs, mut first) = (0, 0, None);
        for (k, x) in v.enumerate() {
            if x.is_nan() {
                nans += 1;
            } else if x.is_infinite() {
                infs += 1;
            } else {
                continue;
            }
            first.get_or_insert(k);
        }
        first.map(|f| (nans, infs, f))
    }
    match t {
        Tensor::F32(a) => count(a.iter().copied()),
        Tensor::F64(a) => count(a.iter().copied()),
        _ => None,
    }
}

/// `shape [min, max]` of a tensor, with its count of NaNs and infinities when it has some.
fn summary(t: &Tensor) -> String {
    let shown = shape::show(t.shape());
    if !t.dtype().is_float() {
        return format!("{}{shown}", t.dtype());
    }
    let v = t.to_f64_vec();
    let finite = v.iter().copied().filter(|x| x.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let range = if lo <= hi {
        format!("min {lo}, max {hi}")
    } else {
        "no finite values".into()
    };
    match non_finite(t) {
        Some((nans, infs, _)) => format!("{}{shown} {range}, {nans} NaN, {infs} inf", t.dtype()),
        None => format!("{}{shown} {range}", t.dtype()),
    }
}

/// The multi-index of flat position `k` of `shape`.
fn unravel(mut k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (i, &n) in shape.iter().enumerate().rev() {
        if n > 0 {
            idx[i] = k % n;
            k /= n;
        }
    }
    idx
}

/// Check the result `out` of node `n` against its `operands`: `Err` when it holds a NaN or an
/// infinity and none of them does.
pub(crate) fn check(n: &Node, out: &Tensor, operands: &[&Tensor]) -> Result<(), Error> {
    let Some((nans, infs, first)) = non_finite(out) else {
        return Ok(());
    };
    if operands.iter().any(|t| non_finite(t).is_some()) {
        return Ok(());
    }
    let at = unravel(first, out.shape());
    let what = format!(
        "{} at element {at:?} ({nans} NaN and {infs} inf among {} elements)",
        if out.to_f64_vec()[first].is_nan() {
            "NaN"
        } else {
            "an infinity"
        },
        out.len()
    );
    let operands_seen = operands
        .iter()
        .map(|t| summary(t))
        .collect::<Vec<_>>()
        .join("; ");
    // (A kernel reading parts of its operands is blamed as a whole.)
    if let Kind::Fused(k) = &n.kind
        && !k.has_views()
        && let Some(e) = blame_in_kernel(k, operands, out.shape(), &at, &operands_seen)
    {
        return Err(e);
    }
    Err(Error::NonFinite {
        op: n.kind.user_name(),
        what,
        operands: operands_seen,
        loc: n.loc,
    })
}

/// The op of kernel `k` that made the element at `at` not finite, named at its own line.
fn blame_in_kernel(
    k: &FusedKernel,
    operands: &[&Tensor],
    out_shape: &[usize],
    at: &[usize],
    operands_seen: &str,
) -> Option<Error> {
    // Each input's value at `at`, broadcast as the kernel reads it.
    let value_at = |t: &Tensor| -> f64 {
        let lead = out_shape.len() - t.shape().len();
        let idx: Vec<usize> = t
            .shape()
            .iter()
            .enumerate()
            .map(|(i, &d)| if d == 1 { 0 } else { at[lead + i] })
            .collect();
        let flat = idx
            .iter()
            .zip(t.shape())
            .fold(0, |acc, (&i, &d)| acc * d + i);
        t.to_f64_vec()[flat]
    };
    let inputs: Vec<f64> = operands.iter().map(|t| value_at(t)).collect();
    let blame = match k.ty.dtype {
        crate::dtype::DType::F32 => {
            k.blame::<f32>(&inputs.iter().map(|&v| v as f32).collect::<Vec<_>>())
        }
        _ => k.blame::<f64>(&inputs),
    }?;
    let (op, loc) = k.origin_of(blame.instr)?.clone();
    let args: Vec<String> = blame.operands.iter().map(|v| v.to_string()).collect();
    Some(Error::NonFinite {
        op,
        what: format!(
            "{} at element {at:?} from operands ({}) there",
            blame.value,
            args.join(", ")
        ),
        operands: format!("the fused kernel's inputs: {operands_seen}"),
        loc,
    })
}
