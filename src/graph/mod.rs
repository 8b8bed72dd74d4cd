//! The expression graph: interned, immutable nodes `(op, inputs, type)` and the user's handle
//! [`Expr`].
//!
//! Building is append-only, so node ids are a topological order. Identical pure subexpressions
//! are interned to one node as they are built. A mistake found while building (a shape or dtype
//! mismatch) does not panic: it is recorded in an invalid node with the user's source location,
//! every node built on top of it is that same invalid node, and `grad`, `function` and `eval`
//! return the error. [`Expr::check`] reports it at once.

pub mod custom;
mod expr;
pub mod infer;
pub mod loops;
pub mod op;
mod params;
pub mod print;
mod window;

use rustc_hash::FxHashMap as HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use smallvec::SmallVec;

pub(crate) use expr::stack_at;
pub use expr::{Expr, Operand, concat, ones_like, stack, zeros_like};
pub use infer::{InferError, infer};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;
use op::Op;

/// Index of a node in its graph.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub(crate) u32);

impl NodeId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The static type of a node: dtype and shape (dims possibly known only at run time).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Type {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
}

impl Type {
    /// A type from a dtype and dims.
    pub fn new(dtype: DType, dims: &[Dim]) -> Type {
        Type {
            dtype,
            shape: Shape::new(dims.to_vec()),
        }
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.shape.ndim()
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// Operand list of a node.
pub type Inputs = SmallVec<[NodeId; 3]>;

/// One immutable node.
#[derive(Clone, Debug)]
pub struct Node {
    /// The op.
    pub op: Op,
    /// Operand nodes.
    pub inputs: Inputs,
    /// The inferred type.
    pub ty: Type,
    /// Where the user's code built it.
    pub loc: Location,
    /// The build error this node stands for, if it is invalid.
    pub error: Option<Arc<Error>>,
}

/// A shared variable: a named parameter whose value lives across calls of compiled functions.
#[derive(Debug)]
pub struct SharedVar {
    /// Name.
    pub name: String,
    /// Declared type (fixed at creation; updates must keep it).
    pub ty: Type,
    /// The current value.
    pub value: RwLock<Arc<Tensor>>,
    /// The lock of the graph's shared state, which every write of this variable takes.
    pub state: Arc<StateLock>,
}

impl SharedVar {
    /// The current value (a read of this variable alone).
    pub fn read(&self) -> Arc<Tensor> {
        self.value.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How the shared variables of one graph change, so that concurrent calls behave as if they
/// ran one after another. A call that writes the state (a function with updates, or one that
/// advances a random stream) holds `writers` from reading the variables to assigning the new
/// values: such calls of the graph's functions run one at a time. Reading a snapshot of the
/// variables takes `commit` shared, assigning takes it exclusive, so that a call that only
/// reads never sees half of another call's updates, and still runs beside other readers.
#[derive(Debug, Default)]
pub struct StateLock {
    writers: Mutex<()>,
    commit: RwLock<()>,
}

impl StateLock {
    /// Become the one writer of the graph's state until the guard drops.
    pub fn write(&self) -> MutexGuard<'_, ()> {
        self.writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Read variables consistently: no commit happens until the guard drops.
    pub fn reading(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.commit.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Assign variables together: no reader sees them until the guard drops.
    pub fn committing(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.commit.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
pub(crate) struct GraphInner {
    pub nodes: Vec<Node>,
    intern: HashMap<(Op, Inputs), NodeId>,
    scalar_consts: HashMap<(DType, u64), NodeId>,
    pub constants: Vec<Arc<Tensor>>,
    pub shared: Vec<Arc<SharedVar>>,
    /// The lock every shared variable of the graph shares.
    pub state: Arc<StateLock>,
    n_inputs: usize,
    /// Next key for a sampling node.
    pub next_key: u64,
    /// While a gradient rule runs, new nodes get the location of the forward node.
    pub loc_override: Option<Location>,
}

impl GraphInner {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    fn push(&mut self, node: Node) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(node);
        id
    }

    /// Add a node after inferring its type; interns pure ops; records errors as invalid nodes.
    pub fn apply(&mut self, op: Op, inputs: Inputs, loc: Location) -> NodeId {
        let loc = self.loc_override.unwrap_or(loc);
        if let Some(&bad) = inputs.iter().find(|i| self.node(**i).error.is_some()) {
            return bad;
        }
        let interned = match &op {
            Op::Input { .. } | Op::Constant(_) | Op::Shared(_) | Op::Random { .. } => false,
            Op::Custom(c) => !c.0.is_random(),
            _ => true,
        };
        if interned && let Some(&id) = self.intern.get(&(op.clone(), inputs.clone())) {
            return id;
        }
        let types: Vec<Type> = inputs.iter().map(|i| self.node(*i).ty.clone()).collect();
        let inferred = infer(&op, &types).and_then(|ty| {
            if ty.shape.overflows() {
                Err(InferError::Shape(format!(
                    "the result {} has more elements than a usize counts",
                    ty.shape
                )))
            } else {
                Ok(ty)
            }
        });
        match inferred {
            Ok(ty) => {
                let id = self.push(Node {
                    op: op.clone(),
                    inputs: inputs.clone(),
                    ty,
                    loc,
                    error: None,
                });
                if interned {
                    self.intern.insert((op, inputs), id);
                }
                id
            }
            Err(e) => {
                let err = e.into_error(&op, &types, loc);
                self.invalid(err, loc)
            }
        }
    }

    /// A leaf node of `op` and type `ty` (step values of loops).
    pub fn leaf(&mut self, op: Op, ty: Type, loc: Location) -> NodeId {
        self.push(Node {
            op,
            inputs: Inputs::new(),
            ty,
            loc,
            error: None,
        })
    }

    /// Record a build error as an invalid node.
    pub fn invalid(&mut self, err: Error, loc: Location) -> NodeId {
        self.push(Node {
            op: Op::StopGradient,
            inputs: Inputs::new(),
            ty: Type::new(DType::F64, &[]),
            loc,
            error: Some(Arc::new(err)),
        })
    }

    pub fn constant(&mut self, value: Tensor, loc: Location) -> NodeId {
        let ty = Type {
            dtype: value.dtype(),
            shape: Shape::known(value.shape()),
        };
        let key = match (&value, value.len()) {
            (Tensor::F32(a), 1) if ty.shape.ndim() == 0 => {
                Some((DType::F32, a.iter().next().map(|v| v.to_bits() as u64)))
            }
            (Tensor::F64(a), 1) if ty.shape.ndim() == 0 => {
                Some((DType::F64, a.iter().next().map(|v| v.to_bits())))
            }
            (Tensor::I64(a), 1) if ty.shape.ndim() == 0 => {
                Some((DType::I64, a.iter().next().map(|v| *v as u64)))
            }
            _ => None,
        };
        if let Some((dt, Some(bits))) = key {
            if let Some(&id) = self.scalar_consts.get(&(dt, bits)) {
                return id;
            }
            let id = self.new_constant(value, ty, loc);
            self.scalar_consts.insert((dt, bits), id);
            return id;
        }
        self.new_constant(value, ty, loc)
    }

    fn new_constant(&mut self, value: Tensor, ty: Type, loc: Location) -> NodeId {
        self.constants.push(Arc::new(value));
        let op = Op::Constant(self.constants.len() - 1);
        self.push(Node {
            op,
            inputs: Inputs::new(),
            ty,
            loc,
            error: None,
        })
    }

    /// A display name for a node (inputs and shared variables by name).
    pub fn name_of(&self, id: NodeId) -> String {
        match &self.node(id).op {
            Op::Input { name, .. } => name.clone(),
            Op::Shared(s) => self.shared[*s].name.clone(),
            op => format!("{}#{}", op.name(), id.0),
        }
    }

    /// The first build error among the ancestors of `roots`, if any.
    pub fn first_error(&self, roots: &[NodeId]) -> Option<Error> {
        roots
            .iter()
            .find_map(|r| self.node(*r).error.as_ref().map(|e| (**e).clone()))
    }
}

/// A handle to an expression graph. Cloning the handle shares the graph.
///
/// ```
/// use gradus::prelude::*;
/// let g = Graph::new();
/// let x = g.scalar("x", DType::F64);
/// let y = &x * &x + 1.0;
/// assert_eq!(gradus::pp(&y), "((x * x) + 1)");
/// ```
#[derive(Clone, Default)]
pub struct Graph {
    pub(crate) inner: Arc<Mutex<GraphInner>>,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Graph({} nodes)", self.lock().nodes.len())
    }
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GraphInner> {
        // A poisoned lock means a panic (a gradus bug) happened while building; the graph
        // itself is append-only and stays consistent, so keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn expr(&self, id: NodeId) -> Expr {
        Expr {
            graph: self.clone(),
            id,
        }
    }

    /// Do two handles share one graph?
    pub fn same(&self, other: &Graph) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Number of nodes built so far.
    pub fn len(&self) -> usize {
        self.lock().nodes.len()
    }

    /// True when no node was built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A symbolic input of the given dtype and shape (`None` dims are known only at run time).
    #[track_caller]
    pub fn input(&self, name: &str, dtype: DType, shape: &[Dim]) -> Expr {
        let loc = Location::caller();
        let mut g = self.lock();
        let ty = Type::new(dtype, shape);
        if ty.shape.overflows() {
            let err = Error::Invalid {
                op: format!("input {name}"),
                detail: format!("shape {} has more elements than a usize counts", ty.shape),
                loc,
            };
            let id = g.invalid(err, loc);
            drop(g);
            return self.expr(id);
        }
        let id = g.n_inputs;
        g.n_inputs += 1;
        let node = Node {
            op: Op::Input {
                name: name.to_string(),
                id,
            },
            inputs: Inputs::new(),
            ty,
            loc,
            error: None,
        };
        let id = g.push(node);
        drop(g);
        self.expr(id)
    }

    /// A scalar input.
    #[track_caller]
    pub fn scalar(&self, name: &str, dtype: DType) -> Expr {
        self.input(name, dtype, &[])
    }

    /// A vector input of run-time length.
    #[track_caller]
    pub fn vector(&self, name: &str, dtype: DType) -> Expr {
        self.input(name, dtype, &[None])
    }

    /// A matrix input whose dims are known only at run time.
    #[track_caller]
    pub fn matrix(&self, name: &str, dtype: DType) -> Expr {
        self.input(name, dtype, &[None, None])
    }

    /// A constant tensor.
    #[track_caller]
    pub fn constant(&self, value: impl Into<Tensor>) -> Expr {
        let loc = Location::caller();
        let id = self.lock().constant(value.into(), loc);
        self.expr(id)
    }

    /// A scalar constant of the given dtype.
    #[track_caller]
    pub fn scalar_constant(&self, value: f64, dtype: DType) -> Expr {
        self.constant(Tensor::scalar(value, dtype))
    }

    /// A shared variable holding `value`; read and write it with [`Expr::get_value`] and
    /// [`Expr::set_value`], update it from compiled functions with `updates`.
    #[track_caller]
    pub fn shared(&self, name: &str, value: impl Into<Tensor>) -> Expr {
        let loc = Location::caller();
        let value = value.into();
        let ty = Type {
            dtype: value.dtype(),
            shape: Shape::known(value.shape()),
        };
        let mut g = self.lock();
        let state = g.state.clone();
        g.shared.push(Arc::new(SharedVar {
            name: name.to_string(),
            ty: ty.clone(),
            value: RwLock::new(Arc::new(value)),
            state,
        }));
        let op = Op::Shared(g.shared.len() - 1);
        let id = g.push(Node {
            op,
            inputs: Inputs::new(),
            ty,
            loc,
            error: None,
        });
        drop(g);
        self.expr(id)
    }

    /// Every shared variable of the graph, in the order they were made: a model's parameters,
    /// its optimizer's velocities, its random streams' states, a persistent chain.
    pub fn shared_variables(&self) -> Vec<Expr> {
        let g = self.lock();
        let ids: Vec<NodeId> = (0..g.nodes.len())
            .map(|i| NodeId(i as u32))
            .filter(|&id| matches!(g.node(id).op, Op::Shared(_)))
            .collect();
        drop(g);
        ids.into_iter().map(|id| self.expr(id)).collect()
    }

    /// Apply a user op.
    #[track_caller]
    pub fn custom(&self, op: Arc<dyn custom::CustomOp>, inputs: &[&Expr]) -> Expr {
        let loc = Location::caller();
        self.apply_loc(Op::Custom(op::CustomHandle(op)), inputs, loc)
    }

    pub(crate) fn apply_loc(&self, op: Op, inputs: &[&Expr], loc: Location) -> Expr {
        // An invalid operand's error comes first, even from another graph (a `concat` of
        // nothing has a graph of its own): it says more than the mix does.
        for e in inputs {
            let own = e.graph.lock().node(e.id).error.clone();
            if let Some(err) = own {
                if e.graph.same(self) {
                    return (*e).clone();
                }
                let id = self.lock().invalid((*err).clone(), loc);
                return self.expr(id);
            }
        }
        let mut ids = Inputs::new();
        for e in inputs {
            if !e.graph.same(self) {
                let err = Error::Usage {
                    what: format!("{} mixes expressions from two graphs", op.name()),
                    loc,
                };
                let id = self.lock().invalid(err, loc);
                return self.expr(id);
            }
            ids.push(e.id);
        }
        let id = self.lock().apply(op, ids, loc);
        self.expr(id)
    }

    /// The error recorded for any node among `roots` (invalid nodes propagate to all users).
    pub(crate) fn check(&self, roots: &[NodeId]) -> Result<()> {
        match self.lock().first_error(roots) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
