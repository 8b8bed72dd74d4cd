//! One error type for every user mistake gradus can detect.
//!
//! Graph-building mistakes carry the [`Location`] of the user's code that built the bad node
//! (captured with `#[track_caller]`), so a message reads like
//! `shape mismatch in add: [3, 4] vs [5] (built at src/main.rs:12:13)`.

use std::fmt;
use std::panic::Location as StdLocation;

/// Where in the user's code a node was built.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location(&'static StdLocation<'static>);

impl Location {
    /// The caller of the current `#[track_caller]` chain.
    #[track_caller]
    pub fn caller() -> Self {
        Location(StdLocation::caller())
    }

    /// Source file of the location.
    pub fn file(&self) -> &'static str {
        self.0.file()
    }

    /// Line of the location.
    pub fn line(&self) -> u32 {
        self.0.line()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0.file(), self.0.line(), self.0.column())
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything that can go wrong when building, differentiating, compiling or running a graph,
/// or when reading data.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Operand shapes that do not fit the op (broadcasting, matmul inner dims, reshape sizes...).
    #[error("shape mismatch in {op}: {detail} (built at {loc})")]
    Shape {
        /// The op that rejected its operands.
        op: String,
        /// The shapes involved and why they do not fit.
        detail: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// Operand dtypes that do not fit the op.
    #[error("dtype mismatch in {op}: {detail} (built at {loc})")]
    DType {
        /// The op that rejected its operands.
        op: String,
        /// The dtypes involved and what was expected.
        detail: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// An axis outside `-ndim..ndim`, or repeated.
    #[error("axis error in {op}: axis {axis} for a tensor of {ndim} dims (built at {loc})")]
    Axis {
        /// The op that received the axis.
        op: String,
        /// The axis as the user gave it.
        axis: isize,
        /// Number of dimensions of the operand.
        ndim: usize,
        /// Where the user built the node.
        loc: Location,
    },
    /// Any other invalid argument to an op (bad permutation, empty concat list, ...).
    #[error("invalid argument to {op}: {detail} (built at {loc})")]
    Invalid {
        /// The op that received the argument.
        op: String,
        /// What is wrong.
        detail: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// `grad` needs a scalar cost.
    #[error(
        "grad needs a scalar cost, got shape {shape} (cost built at {loc}, grad called at {at})"
    )]
    NonScalarCost {
        /// Shape of the cost.
        shape: String,
        /// Where the cost was built.
        loc: Location,
        /// Where `grad` was called.
        at: Location,
    },
    /// The cost does not depend on a variable `grad` was asked about.
    #[error(
        "cost does not depend on {name} (built at {loc}); pass GradOptions::allow_disconnected() \
         to get zeros instead"
    )]
    Disconnected {
        /// The variable.
        name: String,
        /// Where it was built.
        loc: Location,
    },
    /// Gradients were requested of something that is not a float tensor.
    #[error("cannot differentiate with respect to {name}: {detail} (built at {loc})")]
    NotDifferentiable {
        /// The variable.
        name: String,
        /// Why.
        detail: String,
        /// Where it was built.
        loc: Location,
    },
    /// A custom op on a path from the cost to a variable has no gradient.
    #[error(
        "custom op {op} has no gradient (built at {loc}); implement CustomOp::vjp, or return \
         true from CustomOp::stops_gradient if the op is not differentiable on purpose"
    )]
    MissingGradient {
        /// The op's name.
        op: String,
        /// Where the user applied it.
        loc: Location,
    },
    /// A compiled function was called without a value for one of its inputs.
    #[error(
        "missing feed for input {name}: expected {expected} values, got {got} (in the call at {at})"
    )]
    MissingFeed {
        /// Name of the first input without a value.
        name: String,
        /// Number of inputs the function takes.
        expected: usize,
        /// Number of values given.
        got: usize,
        /// Where the user called the function (or `eval`).
        at: Location,
    },
    /// A fed value has the wrong shape.
    #[error("wrong shape for input {name}: expected {expected}, got {got} (in the call at {at})")]
    FeedShape {
        /// Input name.
        name: String,
        /// Declared shape (`?` for dims known only at run time).
        expected: String,
        /// Shape of the fed value.
        got: String,
        /// Where the user called the function (or `eval`).
        at: Location,
    },
    /// A fed value has the wrong dtype.
    #[error("wrong dtype for input {name}: expected {expected}, got {got} (in the call at {at})")]
    FeedDType {
        /// Input name.
        name: String,
        /// Declared dtype.
        expected: String,
        /// Dtype of the fed value.
        got: String,
        /// Where the user called the function (or `eval`).
        at: Location,
    },
    /// A shape mismatch that could only be detected at run time (dims unknown at build time).
    #[error("run-time shape error in {op}: {detail} (built at {loc})")]
    Runtime {
        /// The op that failed.
        op: String,
        /// What went wrong.
        detail: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// An index or label outside the range of what it indexes, found when the op ran.
    #[error(
        "index error in {op}: {}{context} (built at {loc})",
        out_of_range(what, *index, *len)
    )]
    Index {
        /// The op that indexes.
        op: String,
        /// What the value is to the op: an index, a label.
        what: String,
        /// The value out of range.
        index: i64,
        /// The number of valid indices: the valid range is `0..len`.
        len: usize,
        /// Where it happened beyond the node, or nothing: the step of a loop
        /// (", at step 2 of the loop built at …").
        context: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// A value too large to allocate, or larger than the function's memory limit
    /// ([`FunctionBuilder::memory_limit`](crate::FunctionBuilder::memory_limit)).
    #[error("cannot allocate {bytes} bytes for the {shape} result of {op}{why} (built at {loc})")]
    OutOfMemory {
        /// The op whose result it is.
        op: String,
        /// Its dtype and shape.
        shape: String,
        /// Its size.
        bytes: u128,
        /// Why not: the memory limit, or nothing when the allocation itself failed.
        why: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// A value that holds a NaN or an infinity where none of its operands did, found by the
    /// NaN guard ([`FunctionBuilder::nan_guard`](crate::FunctionBuilder::nan_guard)).
    #[error("{op} produced {what} from finite operands (built at {loc}); operands: {operands}")]
    NonFinite {
        /// The op that produced it.
        op: String,
        /// What it produced: how many NaNs and infinities, and where the first is.
        what: String,
        /// A summary of each operand: shape, min, max.
        operands: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// [`Mode::Debug`](crate::Mode::Debug) found a rewrite or a fast kernel that
    /// changed a value.
    #[error("debug mode: {what}: {detail} (node built at {loc})")]
    DebugMismatch {
        /// The rewrite (or `plan` for the fast kernels) that changed the value.
        what: String,
        /// The values that differ.
        detail: String,
        /// Where the user built the node.
        loc: Location,
    },
    /// A mistake in the arguments to `function`, `grad` or another graph-level call.
    #[error("{what} (at {loc})")]
    Usage {
        /// What is wrong.
        what: String,
        /// Where the call was made.
        loc: Location,
    },
    /// A gradient check failed; the report names the worst element.
    #[error("gradient check failed:\n{0}")]
    GradCheck(String),
    /// A malformed data file (IDX, parameters).
    #[error("malformed data in {path}: {reason}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An I/O error, with the path it concerns.
    #[error("I/O error on {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error, as text.
        reason: String,
    },
}

/// "label 7 is out of range 0..4".
fn out_of_range(what: &str, index: i64, len: usize) -> String {
    format!("{what} {index} is out of range 0..{len}")
}

/// `Result` with gradus's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The user location carried by the error, when it has one: where the node was built, or
    /// for a feed error the call.
    pub fn location(&self) -> Option<Location> {
        match self {
            Error::Shape { loc, .. }
            | Error::DType { loc, .. }
            | Error::Axis { loc, .. }
            | Error::Invalid { loc, .. }
            | Error::NonScalarCost { loc, .. }
            | Error::Disconnected { loc, .. }
            | Error::NotDifferentiable { loc, .. }
            | Error::MissingGradient { loc, .. }
            | Error::Runtime { loc, .. }
            | Error::Index { loc, .. }
            | Error::OutOfMemory { loc, .. }
            | Error::NonFinite { loc, .. }
            | Error::DebugMismatch { loc, .. }
            | Error::Usage { loc, .. } => Some(*loc),
            Error::MissingFeed { at, .. }
            | Error::FeedShape { at, .. }
            | Error::FeedDType { at, .. } => Some(*at),
            _ => None,
        }
    }
}
