//! The closed set of primitive ops users build. Every `match` over [`Op`] (inference, gradient,
//! kernels, printing) is checked for completeness by the compiler.

use std::fmt;
use std::sync::Arc;

use crate::dtype::DType;
use crate::graph::custom::CustomOp;
use crate::graph::loops::{LoopHandle, LoopResult};

/// Elementwise ops of one operand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Unary {
    /// `-x`
    Neg,
    /// `e^x`
    Exp,
    /// natural log
    Log,
    /// `log(1 + x)`, accurate near 0
    Log1p,
    /// `e^x - 1`, accurate near 0
    Expm1,
    /// square root
    Sqrt,
    /// `x * x`
    Square,
    /// `|x|`
    Abs,
    /// -1, 0 or 1
    Sign,
    /// sine
    Sin,
    /// cosine
    Cos,
    /// hyperbolic tangent
    Tanh,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `log(1 + e^x)`, computed stably
    Softplus,
    /// `log(1 / (1 + e^-x))` = `-softplus(-x)`, computed stably
    LogSigmoid,
    /// `max(x, 0)`
    Relu,
    /// the error function `2/sqrt(pi) * integral_0^x e^(-t^2) dt`
    Erf,
    /// the largest integer `<= x`
    Floor,
    /// the nearest integer, halves to even (numpy's and PyTorch's rounding)
    Round,
    /// the smallest integer `>= x`
    Ceil,
    /// logical not (bool)
    Not,
}

impl Unary {
    /// Name as printed and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Log1p => "log1p",
            Unary::Expm1 => "expm1",
            Unary::Sqrt => "sqrt",
            Unary::Square => "sqr",
            Unary::Abs => "abs",
            Unary::Sign => "sign",
            Unary::Sin => "sin",
            Unary::Cos => "cos",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Softplus => "softplus",
            Unary::LogSigmoid => "log_sigmoid",
            Unary::Relu => "relu",
            Unary::Erf => "erf",
            Unary::Floor => "floor",
            Unary::Round => "round",
            Unary::Ceil => "ceil",
            Unary::Not => "not",
        }
    }
}

/// Elementwise ops of two broadcast operands.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Binary {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ** b`
    Pow,
    /// elementwise max
    Maximum,
    /// elementwise min
    Minimum,
    /// logical and (bool)
    And,
    /// logical or (bool)
    Or,
}

impl Binary {
    /// Name as printed and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Pow => "pow",
            Binary::Maximum => "maximum",
            Binary::Minimum => "minimum",
            Binary::And => "and",
            Binary::Or => "or",
        }
    }

    /// Infix symbol for `pp`, where the op has one.
    pub fn symbol(self) -> Option<&'static str> {
        match self {
            Binary::Add => Some("+"),
            Binary::Sub => Some("-"),
            Binary::Mul => Some("*"),
            Binary::Div => Some("/"),
            Binary::Pow => Some("**"),
            Binary::And => Some("&"),
            Binary::Or => Some("|"),
            Binary::Maximum | Binary::Minimum => None,
        }
    }
}

/// Elementwise comparisons; the result is `bool`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Cmp {
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a > b`
    Gt,
    /// `a >= b`
    Ge,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
}

impl Cmp {
    /// Infix symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
        }
    }
}

/// Reductions over a set of axes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Reduce {
    /// sum
    Sum,
    /// product
    Prod,
    /// maximum
    Max,
    /// minimum
    Min,
}

impl Reduce {
    /// Name as printed and in errors.
    pub fn name(self) -> &'static str {
        match self {
            Reduce::Sum => "sum",
            Reduce::Prod => "prod",
            Reduce::Max => "max",
            Reduce::Min => "min",
        }
    }
}

/// One target dimension of a reshape: a fixed size, or `-1` (inferred).
pub type ReshapeDim = isize;

/// A user op behind the [`CustomOp`] trait, compared by identity.
#[derive(Clone)]
pub struct CustomHandle(pub(crate) Arc<dyn CustomOp>);

impl CustomHandle {
    /// The user's op.
    pub fn op(&self) -> &dyn CustomOp {
        &*self.0
    }
}

impl PartialEq for CustomHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for CustomHandle {}
impl std::hash::Hash for CustomHandle {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as *const () as usize).hash(state)
    }
}
impl fmt::Debug for CustomHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

pub use super::params::{Conv2d, Hw, Pad, Pool2d};

/// A primitive op. Nodes are `(op, inputs, type)`; composites such as `mean`, `clip`,
/// `logsumexp` or the cross-entropies are built from these by [`Expr`](crate::Expr) methods.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    /// A symbolic input, fed when a compiled function is called. `id` keeps inputs distinct.
    Input {
        /// Display name.
        name: String,
        /// Unique id within the graph.
        id: usize,
    },
    /// A constant value, index into the graph's constant table.
    Constant(usize),
    /// A shared variable, index into the graph's shared table.
    Shared(usize),
    /// Elementwise op of one operand.
    Unary(Unary),
    /// Elementwise op of two broadcast operands.
    Binary(Binary),
    /// Elementwise comparison to `bool`.
    Compare(Cmp),
    /// `where(cond, a, b)`, broadcast.
    Where,
    /// Convert to another dtype.
    Cast(DType),
    /// Reduction over sorted axes.
    Reduce {
        /// The reduction.
        op: Reduce,
        /// Sorted, normalised axes.
        axes: Vec<usize>,
        /// Keep reduced axes as size 1.
        keepdims: bool,
    },
    /// Index of the maximum along one axis (`i64`).
    Argmax {
        /// Normalised axis.
        axis: usize,
        /// Keep the axis as size 1.
        keepdims: bool,
    },
    /// Matrix product of 2-d operands, or batched over the first dim of 3-d operands.
    MatMul,
    /// Permutation of axes.
    Transpose(Vec<usize>),
    /// Reshape to a target with at most one `-1`.
    Reshape(Vec<ReshapeDim>),
    /// Reshape input 0 to the run-time shape of input 1.
    ReshapeLike,
    /// Broadcast to a static shape.
    BroadcastTo(Vec<usize>),
    /// Broadcast input 0 to the run-time shape of input 1.
    BroadcastLike,
    /// Insert size-1 axes at these (sorted) output positions.
    ExpandDims(Vec<usize>),
    /// Remove these (sorted) size-1 axes.
    Squeeze(Vec<usize>),
    /// Concatenate along an axis.
    Concat(usize),
    /// Gradient of `Concat` along a dim known only at run time: the part of input 0 along
    /// `axis` where operand `part` of the concat landed. Inputs 1.. are the concat's operands,
    /// read only for their run-time sizes along `axis`.
    ConcatPart {
        /// Normalised axis.
        axis: usize,
        /// Which operand's part.
        part: usize,
    },
    /// `x[start:end:step]` along one axis (negative start/end count from the end).
    Slice {
        /// Normalised axis.
        axis: usize,
        /// First index.
        start: isize,
        /// One past the last index; `None` for the end.
        end: Option<isize>,
        /// Positive step.
        step: usize,
    },
    /// Gradient of `Slice`: zeros shaped like input 1 with input 0 placed at the slice.
    SliceGrad {
        /// Normalised axis.
        axis: usize,
        /// First index.
        start: isize,
        /// One past the last index.
        end: Option<isize>,
        /// Positive step.
        step: usize,
    },
    /// The slices of input 0 along `axis` picked by the `i64` indices in input 1 (numpy's
    /// `take`): the indices' shape replaces that axis.
    Take {
        /// Normalised axis.
        axis: usize,
    },
    /// Zeros shaped like input 2 with the slices of input 0 added along `axis` at the `i64`
    /// indices in input 1 (repeated indices add up): the gradient of `Take`, and `index_add`.
    ScatterAdd {
        /// Normalised axis.
        axis: usize,
    },
    /// Running sum along `axis`; `reverse` sums from the end (the gradient of a forward sum).
    Cumsum {
        /// Normalised axis.
        axis: usize,
        /// Sum from the last element towards the first.
        reverse: bool,
    },
    /// 2-d convolution (a cross-correlation, as in every deep-learning library) of an NCHW batch
    /// (input 0) with OIHW filters (input 1): `O` output channels, `I = C / groups`.
    Conv2d(Conv2d),
    /// The gradient of [`Op::Conv2d`] for its input, a transposed convolution: the
    /// output-shaped input 0 through the filters of input 1 back onto the shape of input 2.
    Conv2dInputGrad(Conv2d),
    /// The gradient of [`Op::Conv2d`] for its filters, a correlation of the batch (input 0)
    /// with the output-shaped input 1, shaped like input 2.
    Conv2dFilterGrad(Conv2d),
    /// The maximum of each window of each channel of an NCHW batch; padding is `-inf`.
    MaxPool2d(Pool2d),
    /// The gradient of [`Op::MaxPool2d`] of input 0: each window's cotangent (input 1) added at
    /// the window's first maximum.
    MaxPool2dGrad(Pool2d),
    /// The mean of each window of each channel of an NCHW batch; padded cells are zeros and
    /// count in the mean (every window divides by its full size).
    AvgPool2d(Pool2d),
    /// The gradient of [`Op::AvgPool2d`]: each window's cotangent (input 0) spread evenly over
    /// the window, shaped like input 1.
    AvgPool2dGrad(Pool2d),
    /// Constant padding of every axis.
    Pad(Pad),
    /// `i64` labels to float rows with a 1 at the label.
    OneHot {
        /// Number of classes.
        depth: usize,
        /// Float dtype of the result.
        dtype: DType,
    },
    /// Softmax along an axis.
    Softmax(usize),
    /// Log of softmax along an axis, computed stably.
    LogSoftmax(usize),
    /// Identity whose gradient is zero (Theano's `consider_constant`).
    StopGradient,
    /// The number of elements along `axes` of input 0, as a scalar of the given float dtype.
    DimSize {
        /// Sorted axes.
        axes: Vec<usize>,
        /// Float dtype of the result.
        dtype: DType,
    },
    /// Random draws from the stream whose state is input 0 (an `i64[2]` shared variable: seed
    /// and call counter). A distribution without parameters draws shaped like input 1; one with
    /// parameters takes them as inputs 1.. (of the draws' dtype), broadcast together to the
    /// shape of the draws. `key` makes every sampling node distinct.
    Random {
        /// The distribution.
        dist: Dist,
        /// Float dtype of the draws.
        dtype: DType,
        /// Unique per sampling node: two draws never merge.
        key: u64,
    },
    /// A user op.
    Custom(CustomHandle),
    /// The value of a loop's step inside its body: a sequence's slice or a state (see
    /// [`Scan`](crate::Scan)). Only the body reads it. `id` keeps step values distinct.
    StepValue {
        /// Unique within the graph.
        id: u64,
        /// What it is, for printing: `xs[t]` (a slice of the sequence `xs`), `state0`.
        label: std::sync::Arc<str>,
    },
    /// Result `result` of a loop: its inputs are the sequences, the initial states, the count
    /// (for a counted loop) and the captured nodes; see
    /// [`LoopResult`](crate::graph::loops::LoopResult).
    Loop {
        /// The loop.
        body: LoopHandle,
        /// Which result.
        result: LoopResult,
    },
}

/// Distributions of [`Op::Random`]; others (Bernoulli, categorical) are built from these.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Dist {
    /// Uniform on `[0, 1)`.
    Uniform,
    /// Standard normal.
    Normal,
    /// The number of successes in `n` trials of probability `p` (the parameter).
    Binomial {
        /// Trials per draw.
        n: u64,
    },
    /// Gamma with shape `k` and scale `θ` (the parameters, in that order).
    Gamma,
    /// Beta with parameters `a` and `b`.
    Beta,
    /// Poisson with mean `λ` (the parameter).
    Poisson,
}

impl Dist {
    /// The names of the parameters, in the order of the op's inputs after the state.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Dist::Uniform | Dist::Normal => &[],
            Dist::Binomial { .. } => &["p"],
            Dist::Gamma => &["k", "θ"],
            Dist::Beta => &["a", "b"],
            Dist::Poisson => &["λ"],
        }
    }

    /// The name of the distribution, as used in errors and `debugprint`.
    pub fn name(self) -> String {
        match self {
            Dist::Uniform => "uniform".into(),
            Dist::Normal => "normal".into(),
            Dist::Binomial { n } => format!("binomial{{n={n}}}"),
            Dist::Gamma => "gamma".into(),
            Dist::Beta => "beta".into(),
            Dist::Poisson => "poisson".into(),
        }
    }
}

impl Op {
    /// Short name, as used in errors and `debugprint`.
    pub fn name(&self) -> String {
        match self {
            Op::Input { name, .. } => name.clone(),
            Op::Constant(_) => "constant".into(),
            Op::Shared(_) => "shared".into(),
            Op::Unary(u) => u.name().into(),
            Op::Binary(b) => b.name().into(),
            Op::Compare(c) => format!("compare{}", c.symbol()),
            Op::Where => "where".into(),
            Op::Cast(d) => format!("cast<{d}>"),
            Op::Reduce { op, axes, keepdims } => {
                format!(
                    "{}{{axes={axes:?}{}}}",
                    op.name(),
                    if *keepdims { ", keepdims" } else { "" }
                )
            }
            Op::Argmax { axis, .. } => format!("argmax{{axis={axis}}}"),
            Op::MatMul => "matmul".into(),
            Op::Transpose(p) => format!("transpose{p:?}"),
            Op::Reshape(s) => format!("reshape{s:?}"),
            Op::ReshapeLike => "reshape_like".into(),
            Op::BroadcastTo(s) => format!("broadcast_to{s:?}"),
            Op::BroadcastLike => "broadcast_like".into(),
            Op::ExpandDims(a) => format!("expand_dims{a:?}"),
            Op::Squeeze(a) => format!("squeeze{a:?}"),
            Op::Concat(a) => format!("concat{{axis={a}}}"),
            Op::ConcatPart { axis, part } => format!("concat_part{{axis={axis}, part={part}}}"),
            Op::Slice {
                axis,
                start,
                end,
                step,
            } => format!("slice{{axis={axis}, {start}:{}:{step}}}", fmt_end(*end)),
            Op::SliceGrad {
                axis,
                start,
                end,
                step,
            } => {
                format!(
                    "slice_grad{{axis={axis}, {start}:{}:{step}}}",
                    fmt_end(*end)
                )
            }
            Op::Take { axis } => format!("take{{axis={axis}}}"),
            Op::ScatterAdd { axis } => format!("scatter_add{{axis={axis}}}"),
            Op::Cumsum { axis, reverse } => format!(
                "cumsum{{axis={axis}{}}}",
                if *reverse { ", reverse" } else { "" }
            ),
            Op::Conv2d(c) => format!("conv2d{{{c}}}"),
            Op::Conv2dInputGrad(c) => format!("conv2d_input_grad{{{c}}}"),
            Op::Conv2dFilterGrad(c) => format!("conv2d_filter_grad{{{c}}}"),
            Op::MaxPool2d(p) => format!("max_pool2d{{{p}}}"),
            Op::MaxPool2dGrad(p) => format!("max_pool2d_grad{{{p}}}"),
            Op::AvgPool2d(p) => format!("avg_pool2d{{{p}}}"),
            Op::AvgPool2dGrad(p) => format!("avg_pool2d_grad{{{p}}}"),
            Op::Pad(p) => format!("pad{{{:?}, value={}}}", p.widths, p.value()),
            Op::OneHot { depth, .. } => format!("one_hot{{{depth}}}"),
            Op::Softmax(a) => format!("softmax{{axis={a}}}"),
            Op::LogSoftmax(a) => format!("log_softmax{{axis={a}}}"),
            Op::StopGradient => "stop_gradient".into(),
            Op::DimSize { axes, .. } => format!("dim_size{axes:?}"),
            Op::Random { dist, .. } => dist.name(),
            Op::Custom(c) => c.0.name().to_string(),
            Op::StepValue { label, .. } => label.to_string(),
            Op::Loop { result, .. } => match result {
                LoopResult::Final(k) => format!("loop{{final state {k}}}"),
                LoopResult::Stacked(k) => format!("loop{{output {k}}}"),
                LoopResult::History(k) => format!("loop{{state {k} before each step}}"),
                LoopResult::Inner(n) => format!("loop{{body node {} per step}}", n.index()),
            },
        }
    }
}

fn fmt_end(end: Option<isize>) -> String {
    end.map(|e| e.to_string()).unwrap_or_default()
}
