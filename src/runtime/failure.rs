//! Why a node failed, and the checks a general kernel makes before it allocates: a failure
//! becomes an [`Error`] at the node's op and the user's line.

use smallvec::SmallVec;

use crate::compile::ir::{Node, infer_kind};
use crate::dtype::DType;
use crate::error::Error;
use crate::graph::Type;
use crate::kernels::fault::{Fault, diagnose};
use crate::shape;
use crate::tensor::Tensor;

/// Allocations at least this large are tried before a general kernel makes them.
const PROBE_MIN_BYTES: usize = 1 << 26;

/// Before a general kernel allocates the result of node `n` (through `ndarray`, which aborts the
/// process when it cannot): the result's shape, inferred from the operands' shapes as they are,
/// must fit within `limit` and in memory. Where inference rejects the operands, the kernel
/// reports the mismatch itself.
pub(crate) fn reserve(n: &Node, args: &[&Tensor], limit: Option<usize>) -> Result<(), Failure> {
    let types: SmallVec<[Type; 4]> = args
        .iter()
        .map(|t| Type {
            dtype: t.dtype(),
            shape: shape::Shape::known(t.shape()),
        })
        .collect();
    let Ok(ty) = infer_kind(&n.kind, &types) else {
        return Ok(());
    };
    let Some(dims) = ty.shape.to_known() else {
        return Ok(());
    };
    let per = match ty.dtype {
        DType::F32 => 4,
        DType::Bool => 1,
        _ => 8,
    };
    let bytes = shape::checked_size(&dims).and_then(|n| n.checked_mul(per));
    let fits = match bytes {
        None => false,
        Some(b) if limit.is_some_and(|l| b > l) => false,
        Some(b) if b >= PROBE_MIN_BYTES => Vec::<u8>::new().try_reserve_exact(b).is_ok(),
        Some(_) => true,
    };
    if fits {
        return Ok(());
    }
    Err(Failure::OutOfMemory {
        dtype: ty.dtype,
        shape: dims,
        limit: limit.filter(|&l| bytes.is_none_or(|b| b > l)),
    })
}

/// The error of node `n` that failed with `detail`, at the user's line.
pub(crate) fn node_error(n: &Node, detail: String) -> Error {
    Error::Runtime {
        op: n.kind.user_name(),
        detail,
        loc: n.loc,
    }
}

/// The error of node `n` whose kernel failed with `detail` on operands `args`: an index or a
/// parameter out of its range where the operands show one, else a run-time shape error.
pub(crate) fn kernel_error(n: &Node, args: &[&Tensor], detail: String) -> Error {
    let (op, loc) = (n.kind.user_name(), n.loc);
    match n.kind.op().and_then(|o| diagnose(o, args)) {
        Some(Fault::Index { what, index, len }) => Error::Index {
            op,
            what: what.into(),
            index,
            len,
            context: String::new(),
            loc,
        },
        Some(Fault::Domain(detail)) => Error::Invalid { op, detail, loc },
        None => node_error(n, detail),
    }
}

/// Why a node failed, before it is an [`Error`] at the node's op and line.
pub(crate) enum Failure {
    /// A run-time shape mismatch (or another kernel error), in words.
    Shape(String),
    /// An error already located: a fused kernel names the op of its region that failed, a
    /// product the `add` of its bias.
    Located(Error),
    /// A result of this dtype and shape could not be allocated: larger than the function's
    /// memory limit (`Some`), or the allocation itself failed.
    OutOfMemory {
        dtype: DType,
        shape: Vec<usize>,
        limit: Option<usize>,
    },
}

impl From<String> for Failure {
    fn from(detail: String) -> Failure {
        Failure::Shape(detail)
    }
}

impl Failure {
    /// The error of node `n`, at the user's line.
    pub(crate) fn at(self, n: &Node) -> Error {
        match self {
            Failure::Shape(detail) => node_error(n, detail),
            Failure::Located(e) => e,
            Failure::OutOfMemory {
                dtype,
                shape,
                limit,
            } => {
                let per = match dtype {
                    DType::F32 => 4,
                    DType::Bool => 1,
                    _ => 8,
                };
                let bytes = shape
                    .iter()
                    .fold(per as u128, |b, &d| b.saturating_mul(d as u128));
                Error::OutOfMemory {
                    op: n.kind.user_name(),
                    shape: format!("{dtype}{}", shape::show(&shape)),
                    bytes,
                    why: match limit {
                        Some(l) => format!(", over the function's memory limit of {l} bytes"),
                        None => String::new(),
                    },
                    loc: n.loc,
                }
            }
        }
    }
}
