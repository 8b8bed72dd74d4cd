//! Static shapes, broadcasting and axis normalisation: all shape arithmetic lives here.
//!
//! A dimension is either known when the graph is built (`Some(n)`) or only at run time (`None`,
//! printed `?`, typically the batch dimension). As in Theano, only a dimension statically known to
//! be 1 broadcasts; a run-time dimension must match its partner exactly when the function runs.

use std::fmt;

/// One dimension: `Some(n)` when known at build time, `None` when known only at run time.
pub type Dim = Option<usize>;

/// A shape whose dims may be known only at run time.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<Dim>);

impl Shape {
    /// A shape of these dims.
    pub fn new(dims: Vec<Dim>) -> Self {
        Shape(dims)
    }

    /// The dims.
    pub fn dims(&self) -> &[Dim] {
        &self.0
    }

    /// The dims, to change one in place.
    pub(crate) fn dims_mut(&mut self) -> &mut Vec<Dim> {
        &mut self.0
    }

    /// A shape with every dim known.
    pub fn known(dims: &[usize]) -> Self {
        Shape(dims.iter().map(|&d| Some(d)).collect())
    }

    /// The scalar shape `[]`.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.0.len()
    }

    /// The dims, when all are known.
    pub fn to_known(&self) -> Option<Vec<usize>> {
        self.0.iter().copied().collect()
    }

    /// Number of elements, when every dim is known.
    pub fn size(&self) -> Option<usize> {
        self.to_known().and_then(|dims| checked_size(&dims))
    }

    /// Do the dims known at build time multiply to more than a `usize` counts? (No array of
    /// such a shape can exist.)
    pub fn overflows(&self) -> bool {
        self.0
            .iter()
            .flatten()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .is_none()
    }

    /// Does a concrete shape fit this one?
    pub fn matches(&self, concrete: &[usize]) -> bool {
        self.0.len() == concrete.len()
            && self
                .0
                .iter()
                .zip(concrete)
                .all(|(d, &c)| d.is_none_or(|d| d == c))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match d {
                Some(n) => write!(f, "{n}")?,
                None => f.write_str("?")?,
            }
        }
        f.write_str("]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The number of elements of a concrete shape; `None` if it overflows `usize`.
pub fn checked_size(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Format a concrete shape like a [`Shape`].
pub fn show(dims: &[usize]) -> String {
    Shape::known(dims).to_string()
}

/// Numpy broadcasting of two static shapes; `Err` with a description when they do not fit.
pub fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, String> {
    let n = a.ndim().max(b.ndim());
    let pad = |s: &Shape| -> Vec<Dim> {
        let mut v = vec![Some(1); n - s.ndim()];
        v.extend_from_slice(&s.0);
        v
    };
    let (pa, pb) = (pad(a), pad(b));
    let mut out = Vec::with_capacity(n);
    for (x, y) in pa.into_iter().zip(pb) {
        out.push(match (x, y) {
            (Some(1), d) | (d, Some(1)) => d,
            (Some(p), Some(q)) if p == q => Some(p),
            (Some(p), Some(q)) => {
                return Err(format!("{a} and {b} do not broadcast ({p} vs {q})"));
            }
            (None, Some(q)) | (Some(q), None) => Some(q),
            (None, None) => None,
        });
    }
    Ok(Shape(out))
}

/// Broadcasting of concrete shapes at run time.
pub fn broadcast_concrete(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let get = |s: &[usize], i: usize| {
        if i + s.len() < n {
            1
        } else {
            s[i + s.len() - n]
        }
    };
    (0..n)
        .map(|i| match (get(a, i), get(b, i)) {
            (1, d) | (d, 1) => Ok(d),
            (p, q) if p == q => Ok(p),
            (p, q) => Err(format!(
                "{} and {} do not broadcast ({p} vs {q})",
                show(a),
                show(b)
            )),
        })
        .collect()
}

/// May an operand of static shape `declared` and run-time shape `concrete` broadcast to the
/// run-time `result`? Only where a dim is declared 1 (or is a missing leading dim): a run-time
/// dim must equal its partner exactly, even when it happens to be 1, because gradients sum
/// broadcast dims out at build time, from static shapes.
pub fn check_runtime_broadcast(
    declared: &Shape,
    concrete: &[usize],
    result: &[usize],
) -> Result<(), String> {
    let lead = result.len().saturating_sub(concrete.len());
    for (i, (&c, d)) in concrete.iter().zip(&declared.0).enumerate() {
        let r = result.get(lead + i).copied().unwrap_or(c);
        if c != r && *d != Some(1) {
            return Err(format!(
                "an operand of shape {declared} is {} when run, and its dim {i} would broadcast \
                 from {c} to {r}; only a dim declared 1 broadcasts",
                show(concrete)
            ));
        }
    }
    Ok(())
}

/// Normalise a possibly negative axis; `None` when out of range.
pub fn axis(axis: isize, ndim: usize) -> Option<usize> {
    let n = ndim as isize;
    let a = if axis < 0 { axis + n } else { axis };
    (0..n).contains(&a).then_some(a as usize)
}

/// Normalise a list of axes (sorted, deduplicated check); `Err(axis)` names the first bad one.
pub fn axes(list: &[isize], ndim: usize) -> Result<Vec<usize>, isize> {
    let mut out = Vec::with_capacity(list.len());
    for &a in list {
        let n = axis(a, ndim).ok_or(a)?;
        if out.contains(&n) {
            return Err(a);
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// Length of `start:end:step` over a dim of size `n`, numpy style (clamped).
pub fn slice_len(n: usize, start: isize, end: Option<isize>, step: usize) -> usize {
    let (s, e) = slice_bounds(n, start, end);
    if e <= s { 0 } else { (e - s).div_ceil(step) }
}

/// Clamped `[start, end)` of a slice over a dim of size `n`.
pub fn slice_bounds(n: usize, start: isize, end: Option<isize>) -> (usize, usize) {
    let clamp = |i: isize| -> usize {
        let i = if i < 0 { i + n as isize } else { i };
        i.clamp(0, n as isize) as usize
    };
    (clamp(start), end.map_or(n, clamp))
}

/// The number of places a window of `window` cells, its taps `dilation` apart, takes along a
/// dim of `len` cells padded by `pad` on both sides, moving `stride` at a time (the output length
/// of a convolution or a pool); an error when the window is larger than the padded dim.
pub fn window_places(
    len: usize,
    window: usize,
    (stride, pad, dilation): (usize, usize, usize),
) -> Result<usize, String> {
    if window == 0 || stride == 0 || dilation == 0 {
        return Err(format!(
            "window {window}, stride {stride} and dilation {dilation} must be positive"
        ));
    }
    let span = dilation
        .checked_mul(window - 1)
        .and_then(|s| s.checked_add(1));
    let padded = pad.checked_mul(2).and_then(|p| len.checked_add(p));
    let (Some(span), Some(padded)) = (span, padded) else {
        return Err(format!(
            "the window (dilation {dilation}) or the padding ({pad}) is larger than a usize counts"
        ));
    };
    if span > padded {
        return Err(format!(
            "the window spans {span} cells, more than the {padded} of the padded input \
             ({len} + 2 x {pad})"
        ));
    }
    Ok((padded - span) / stride + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy_with_static_ones() {
        let s = |v: &[Dim]| Shape(v.to_vec());
        assert_eq!(
            broadcast(&s(&[Some(3), Some(1)]), &s(&[Some(4)])).unwrap(),
            s(&[Some(3), Some(4)])
        );
        assert_eq!(
            broadcast(&s(&[None, Some(5)]), &s(&[Some(5)])).unwrap(),
            s(&[None, Some(5)])
        );
        assert!(broadcast(&s(&[Some(3)]), &s(&[Some(4)])).is_err());
        assert_eq!(
            broadcast_concrete(&[2, 1, 3], &[4, 1]).unwrap(),
            vec![2, 4, 3]
        );
        assert!(broadcast_concrete(&[2], &[3]).is_err());
    }

    #[test]
    fn only_declared_ones_broadcast_at_run_time() {
        let s = |v: &[Dim]| Shape(v.to_vec());
        let (q, one, three) = (s(&[None]), s(&[Some(1)]), s(&[Some(3)]));
        // A run-time dim that is 1 when run must not stretch to its partner's size...
        assert!(check_runtime_broadcast(&q, &[1], &[3]).is_err());
        assert!(check_runtime_broadcast(&q, &[3], &[3]).is_ok());
        // ...a declared 1 may, and equal sizes are fine even when both are 1.
        assert!(check_runtime_broadcast(&one, &[1], &[3]).is_ok());
        assert!(check_runtime_broadcast(&q, &[1], &[1]).is_ok());
        assert!(check_runtime_broadcast(&three, &[3], &[2, 3]).is_ok());
        let m = s(&[None, Some(3)]);
        assert!(check_runtime_broadcast(&m, &[1, 3], &[1, 3]).is_ok());
        assert!(check_runtime_broadcast(&m, &[1, 3], &[4, 3]).is_err());
        assert!(check_runtime_broadcast(&s(&[]), &[], &[2, 3]).is_ok());
    }

    #[test]
    fn axes_are_normalised_and_checked() {
        assert_eq!(axes(&[-1, 0], 3).unwrap(), vec![0, 2]);
        assert_eq!(axes(&[3], 3), Err(3));
        assert_eq!(axes(&[1, -2], 3), Err(-2));
        assert_eq!(Shape(vec![None, Some(3)]).to_string(), "[?, 3]");
    }
}
