//! The compiler's own IR: the nodes of a function being compiled, and of the program it becomes.
//!
//! A node is a leaf (an input of the function, a constant, a shared variable), an op of the
//! user's graph, or one of the forms only the compiler makes: a product with its transposes,
//! scale and bias folded in ([`Gemm`]), a convolution with its bias ([`Kind::ConvBias`]), or a
//! region of elementwise ops run as one loop ([`FusedKernel`]). The user's [`Op`] knows nothing
//! of these.

use std::fmt;
use std::sync::Arc;

use super::{DebugTrace, Program};
use crate::dtype::DType;
use crate::error::Location;
use crate::graph::infer::{InferError, infer};
use crate::graph::loops::{LoopHandle, LoopResult};
use crate::graph::op::{Conv2d, Op};
use crate::graph::{NodeId, SharedVar, Type};
use crate::kernels::fused::FusedKernel;
use crate::kernels::gemm::Gemm;
use crate::kernels::{self, Exec, KernelResult};
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;

/// What a node computes.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Input `position` of the function, fed at each call.
    Input {
        /// Position among the function's inputs.
        position: usize,
        /// The input's name.
        name: String,
    },
    /// A constant value.
    Constant(Arc<Tensor>),
    /// A shared variable, read when the call starts.
    Shared(Arc<SharedVar>),
    /// An op of the user's graph (never one of its leaves).
    Op(Op),
    /// A matrix product with transposes, scale and bias folded in.
    Gemm(Gemm),
    /// A convolution with a bias of one value per output channel added (`conv2d(x, w) + b`,
    /// operands `[x, w, b]`): the bias is written into the output and the product accumulated
    /// onto it, as [`Kind::Gemm`] does with its bias.
    ConvBias {
        /// The convolution.
        conv: Conv2d,
        /// Where the user's `add` of the bias was built (its errors are reported there).
        add: Location,
    },
    /// A region of elementwise ops run as one loop.
    Fused(Arc<FusedKernel>),
    /// Result `result` of a loop whose body is compiled (see [`CompiledLoop`]).
    Loop {
        /// The loop, shared by all its results.
        compiled: Arc<CompiledLoop>,
        /// Which result.
        result: LoopResult,
    },
}

/// A loop's body compiled once into a program, and the results of the loop that are read.
pub(crate) struct CompiledLoop {
    pub body: LoopHandle,
    pub program: Arc<Program>,
    /// The body's trace of the optimizer, in the debug mode.
    pub debug: Option<DebugTrace>,
    /// The loop's results the program reads, in the order a run makes them (the others are
    /// not made).
    pub results: Vec<LoopResult>,
    /// The body's nodes kept per step ([`LoopResult::Inner`]), in the order of the body
    /// program's outputs after its states, outputs and condition.
    pub inner: Vec<NodeId>,
}

impl fmt::Debug for CompiledLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} of {} nodes", self.body, self.program.nodes.len())
    }
}

/// One node: what it computes, from which nodes, its type, and the line of the user's code
/// that built it (for a node a rewrite made, the line of the node it replaced).
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub inputs: Vec<usize>,
    pub ty: Type,
    pub loc: Location,
}

impl Kind {
    /// Is this a leaf, whose value comes from outside the program?
    pub fn is_leaf(&self) -> bool {
        matches!(
            self,
            Kind::Input { .. } | Kind::Constant(_) | Kind::Shared(_)
        )
    }

    /// The user's op, for a node that is one.
    pub fn op(&self) -> Option<&Op> {
        match self {
            Kind::Op(op) => Some(op),
            _ => None,
        }
    }

    /// Does the node draw random numbers (so that two of them never merge)?
    pub fn is_random(&self) -> bool {
        match self {
            Kind::Op(Op::Random { .. }) => true,
            Kind::Op(Op::Custom(c)) => c.0.is_random(),
            _ => false,
        }
    }

    /// The name used in listings, profiles and errors. A product is the user's `matmul` in
    /// errors ([`Kind::user_name`]) but shows its flags in listings.
    pub fn name(&self) -> String {
        match self {
            Kind::Input { name, .. } => name.clone(),
            Kind::Constant(_) => "constant".into(),
            Kind::Shared(_) => "shared".into(),
            Kind::Op(op) => op.name(),
            Kind::Gemm(g) => g.to_string(),
            Kind::ConvBias { conv, .. } => format!("{}+bias", Op::Conv2d(*conv).name()),
            Kind::Fused(k) => k.to_string(),
            Kind::Loop { compiled, result } => Op::Loop {
                body: compiled.body.clone(),
                result: *result,
            }
            .name(),
        }
    }

    /// The name of the op the user wrote, for errors: a product is their `matmul` (with its
    /// bias and factors).
    pub fn user_name(&self) -> String {
        match self {
            Kind::Gemm(_) => "matmul".into(),
            Kind::ConvBias { conv, .. } => Op::Conv2d(*conv).name(),
            other => other.name(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The type of a non-leaf node of kind `kind` with operands of types `ts`.
pub(crate) fn infer_kind(kind: &Kind, ts: &[Type]) -> Result<Type, InferError> {
    match kind {
        Kind::Input { .. } | Kind::Constant(_) | Kind::Shared(_) => Err(InferError::Invalid(
            "leaf nodes are made when the subgraph is copied".into(),
        )),
        Kind::Op(op) => infer(op, ts),
        Kind::Loop { compiled, result } => infer(
            &Op::Loop {
                body: compiled.body.clone(),
                result: *result,
            },
            ts,
        ),
        Kind::Gemm(g) => infer_gemm(g, ts),
        Kind::ConvBias { conv, .. } => {
            let [x, w, b] = ts else {
                return Err(InferError::Invalid(format!(
                    "takes 3 operands, got {}",
                    ts.len()
                )));
            };
            let ty = infer(&Op::Conv2d(*conv), &[x.clone(), w.clone()])?;
            if b.dtype != ty.dtype
                || crate::shape::broadcast(&b.shape, &ty.shape).ok().as_ref() != Some(&ty.shape)
            {
                return Err(InferError::Shape(format!(
                    "bias {} {} does not broadcast onto {} {}",
                    b.dtype, b.shape, ty.dtype, ty.shape
                )));
            }
            Ok(ty)
        }
        Kind::Fused(k) => {
            if ts.len() != k.n_inputs {
                return Err(InferError::Invalid(format!(
                    "takes {} operands, got {}",
                    k.n_inputs,
                    ts.len()
                )));
            }
            // An elementwise region: its result broadcasts its operands (the parts it reads of
            // some).
            let parts: Vec<&crate::shape::Shape> = ts
                .iter()
                .enumerate()
                .map(|(x, t)| k.input_declared(x, &t.shape))
                .collect();
            let mut shape = match parts.first() {
                Some(s) => (*s).clone(),
                None => k.ty.shape.clone(),
            };
            for s in parts {
                shape = crate::shape::broadcast(&shape, s).map_err(InferError::Shape)?;
            }
            Ok(Type {
                dtype: k.ty.dtype,
                shape,
            })
        }
    }
}

/// `alpha · op(a) @ op(b) (+ c)`: matrices of one float dtype whose inner dims agree, and a
/// bias that broadcasts onto the result.
fn infer_gemm(g: &Gemm, ts: &[Type]) -> Result<Type, InferError> {
    if ts.len() != 2 && ts.len() != 3 {
        return Err(InferError::Invalid(format!(
            "takes 2 or 3 operands, got {}",
            ts.len()
        )));
    }
    let dtype = ts[0].dtype;
    if ts.iter().any(|t| t.dtype != dtype) || !dtype.is_float() {
        return Err(InferError::DType(format!(
            "needs operands of one float dtype, got {}",
            ts.iter()
                .map(|t| t.dtype.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let (a, b) = (ts[0].shape.dims(), ts[1].shape.dims());
    if a.len() != 2 || b.len() != 2 {
        return Err(InferError::Shape("gemm needs matrices".into()));
    }
    let swap = |d: &[Dim], t: bool| if t { (d[1], d[0]) } else { (d[0], d[1]) };
    let ((m, k), (k2, n)) = (swap(a, g.transpose_a), swap(b, g.transpose_b));
    if let (Some(p), Some(q)) = (k, k2)
        && p != q
    {
        return Err(InferError::Shape(format!("inner dims differ ({p} vs {q})")));
    }
    let shape = Shape::new(vec![m, n]);
    if let Some(c) = ts.get(2)
        && crate::shape::broadcast(&c.shape, &shape).ok().as_ref() != Some(&shape)
    {
        return Err(InferError::Shape(format!(
            "bias {} does not broadcast to {shape}",
            c.shape
        )));
    }
    Ok(Type { dtype, shape })
}

/// Evaluate a non-leaf node on concrete operands with the kernels `exec` selects (`types`: the
/// operands' static types; `ty`: the node's).
pub(crate) fn eval_kind(
    kind: &Kind,
    x: &[&Tensor],
    types: &[&Type],
    ty: &Type,
    exec: Exec,
) -> KernelResult {
    let declared = || types.iter().map(|t| &t.shape).collect::<Vec<_>>();
    match kind {
        Kind::Op(op) => kernels::eval(op, x, types, ty, exec),
        Kind::Gemm(g) => g.eval(x, &declared(), &ty.shape, exec),
        Kind::ConvBias { conv, .. } => kernels::conv::eval_conv_bias(conv, x, exec),
        Kind::Fused(k) => match ty.dtype {
            DType::F32 => Ok(Tensor::F32(k.eval::<f32>(x, &declared(), exec)?)),
            _ => Ok(Tensor::F64(k.eval::<f64>(x, &declared(), exec)?)),
        },
        Kind::Input { .. } | Kind::Constant(_) | Kind::Shared(_) => {
            Err("leaf nodes have no kernel".into())
        }
        Kind::Loop { .. } => Err("a loop runs in the runtime".into()),
    }
}

/// `nodes` in the order `order` (old indices by position), their operands renumbered; and the
/// new position of each old index.
pub(crate) fn permuted(nodes: Vec<Node>, order: &[usize]) -> (Vec<Node>, Vec<usize>) {
    let mut position = vec![0; nodes.len()];
    for (k, &i) in order.iter().enumerate() {
        position[i] = k;
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    let nodes = order
        .iter()
        .map(|&i| {
            let mut n = slots[i].take().expect("a permutation");
            n.inputs.iter_mut().for_each(|p| *p = position[*p]);
            n
        })
        .collect();
    (nodes, position)
}
