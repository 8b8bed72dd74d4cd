//! What a failed kernel's operands say beyond its words: an index out of its range, a parameter
//! outside its distribution's domain. The runtime asks only once a kernel has failed, so the
//! kernels keep reporting in words and the success path pays nothing.

use super::index::out_of_range;
use super::random::check_param;
use crate::graph::op::Op;
use crate::tensor::Tensor;

/// Why an op failed on these operands, when it is not a mismatch of shapes.
pub(crate) enum Fault {
    /// `what` (an index, a label) `index` is not in `0..len`.
    Index {
        what: &'static str,
        index: i64,
        len: usize,
    },
    /// A parameter outside its domain, in words.
    Domain(String),
}

/// The fault op `op` finds in its operands `x`, if it is one of these.
pub(crate) fn diagnose(op: &Op, x: &[&Tensor]) -> Option<Fault> {
    let index = |what, idx: &Tensor, len: usize| {
        out_of_range(idx.as_i64()?, len).map(|index| Fault::Index { what, index, len })
    };
    match op {
        Op::Take { axis } => index("index", x.get(1)?, *x.first()?.shape().get(*axis)?),
        Op::ScatterAdd { axis } => index("index", x.get(1)?, *x.get(2)?.shape().get(*axis)?),
        Op::OneHot { depth, .. } => index("label", x.first()?, *depth),
        Op::Random { dist, .. } => x.get(1..)?.iter().enumerate().find_map(|(k, p)| {
            check_param(*dist, k, &p.to_f64_vec())
                .err()
                .map(Fault::Domain)
        }),
        _ => None,
    }
}
