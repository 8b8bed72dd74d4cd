//! The executable program of a compiled function and its run loop.
//!
//! Nodes are in dependency order. Each value is dropped right after its last use (unless it is an
//! output or an update), so a long chain holds only a few buffers at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Location, Result};
use crate::exec::kernels;
use crate::graph::op::Op;
use crate::graph::{SharedVar, Type};
use crate::shape;
use crate::tensor::Tensor;

/// How a compiled function executes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Fast kernels (threaded GEMM, rayon), buffers freed after their last use.
    #[default]
    Fast,
    /// The plain reference kernels, every value kept: slow, for checking.
    Reference,
}

#[derive(Clone)]
pub(crate) enum Leaf {
    Input(usize),
    Const(Arc<Tensor>),
    Shared(Arc<SharedVar>),
}

#[derive(Clone)]
pub(crate) struct PNode {
    pub op: Op,
    pub inputs: Vec<usize>,
    pub ty: Type,
    pub loc: Location,
    pub leaf: Option<Leaf>,
}

pub(crate) struct Program {
    pub nodes: Vec<PNode>,
    outputs: Vec<usize>,
    updates: Vec<(Arc<SharedVar>, usize)>,
    /// Random stream states whose counter advances after each call.
    streams: Vec<Arc<SharedVar>>,
    pub input_types: Vec<(String, Type)>,
    mode: Mode,
    /// Index of the last node that reads each value (`usize::MAX`: kept to the end).
    last_use: Vec<usize>,
    peak: AtomicUsize,
}

enum Val<'a> {
    Fed(&'a Tensor),
    Arc(Arc<Tensor>),
    Own(Tensor),
}

impl Val<'_> {
    fn get(&self) -> &Tensor {
        match self {
            Val::Fed(t) => t,
            Val::Arc(t) => t,
            Val::Own(t) => t,
        }
    }
}

fn bytes(t: &Tensor) -> usize {
    let per = match t.dtype() {
        crate::dtype::DType::F32 => 4,
        crate::dtype::DType::Bool => 1,
        _ => 8,
    };
    t.len() * per
}

impl Program {
    pub fn new(
        nodes: Vec<PNode>,
        outputs: Vec<usize>,
        updates: Vec<(Arc<SharedVar>, usize)>,
        streams: Vec<Arc<SharedVar>>,
        input_types: Vec<(String, Type)>,
        mode: Mode,
    ) -> Program {
        let mut last_use = vec![0; nodes.len()];
        for (j, n) in nodes.iter().enumerate() {
            for &i in &n.inputs {
                last_use[i] = j;
            }
        }
        for &o in outputs.iter().chain(updates.iter().map(|u| &u.1)) {
            last_use[o] = usize::MAX;
        }
        if mode == Mode::Reference {
            last_use.iter_mut().for_each(|l| *l = usize::MAX);
        }
        Program {
            nodes,
            outputs,
            updates,
            streams,
            input_types,
            mode,
            last_use,
            peak: AtomicUsize::new(0),
        }
    }

    #[track_caller]
    fn check_feeds(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() < self.input_types.len() {
            let (name, _) = &self.input_types[inputs.len()];
            return Err(Error::MissingFeed {
                name: name.clone(),
                expected: self.input_types.len(),
                got: inputs.len(),
            });
        }
        if inputs.len() > self.input_types.len() {
            return Err(Error::Usage {
                what: format!(
                    "function takes {} inputs, got {}",
                    self.input_types.len(),
                    inputs.len()
                ),
                loc: Location::caller(),
            });
        }
        for ((name, ty), t) in self.input_types.iter().zip(inputs) {
            if t.dtype() != ty.dtype {
                return Err(Error::FeedDType {
                    name: name.clone(),
                    expected: ty.dtype.to_string(),
                    got: t.dtype().to_string(),
                });
            }
            if !ty.shape.matches(t.shape()) {
                return Err(Error::FeedShape {
                    name: name.clone(),
                    expected: ty.shape.to_string(),
                    got: shape::show(t.shape()),
                });
            }
        }
        Ok(())
    }

    #[track_caller]
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.check_feeds(inputs)?;
        let fast = self.mode == Mode::Fast;
        let mut values: Vec<Option<Val>> = Vec::with_capacity(self.nodes.len());
        values.resize_with(self.nodes.len(), || None);
        let (mut live, mut peak) = (0usize, 0usize);
        for (j, n) in self.nodes.iter().enumerate() {
            let v = match &n.leaf {
                Some(Leaf::Input(k)) => Val::Fed(&inputs[*k]),
                Some(Leaf::Const(c)) => Val::Arc(c.clone()),
                Some(Leaf::Shared(s)) => {
                    Val::Arc(s.value.read().unwrap_or_else(|p| p.into_inner()).clone())
                }
                None => {
                    let args: Vec<&Tensor> = n
                        .inputs
                        .iter()
                        .map(|&i| {
                            values[i]
                                .as_ref()
                                .expect("operands are computed first")
                                .get()
                        })
                        .collect();
                    let types: Vec<&Type> = n.inputs.iter().map(|&i| &self.nodes[i].ty).collect();
                    let out =
                        kernels::eval(&n.op, &args, &types, &n.ty, fast).map_err(|detail| {
                            Error::Runtime {
                                op: n.op.name(),
                                detail,
                                loc: n.loc,
                            }
                        })?;
                    live += bytes(&out);
                    Val::Own(out)
                }
            };
            values[j] = Some(v);
            peak = peak.max(live);
            for &i in &n.inputs {
                if self.last_use[i] == j
                    && let Some(Val::Own(t)) = values[i].take()
                {
                    live -= bytes(&t);
                }
            }
        }
        self.peak.store(peak, Ordering::Relaxed);
        let mut new_values = Vec::with_capacity(self.updates.len());
        for (var, i) in &self.updates {
            let t = values[*i].as_ref().expect("updates are computed").get();
            if !var.ty.shape.matches(t.shape()) {
                return Err(Error::Runtime {
                    op: "update".into(),
                    detail: format!(
                        "new value of {} has shape {}, the variable {}",
                        var.name,
                        shape::show(t.shape()),
                        var.ty.shape
                    ),
                    loc: self.nodes[*i].loc,
                });
            }
            new_values.push(Arc::new(t.clone()));
        }
        let outputs = self
            .outputs
            .iter()
            .map(|&o| {
                values[o]
                    .as_ref()
                    .expect("outputs are computed")
                    .get()
                    .clone()
            })
            .collect();
        for ((var, _), v) in self.updates.iter().zip(new_values) {
            *var.value.write().unwrap_or_else(|p| p.into_inner()) = v;
        }
        for s in &self.streams {
            let mut state = s.value.write().unwrap_or_else(|p| p.into_inner());
            let mut next = (**state).clone();
            if let Tensor::I64(a) = &mut next
                && let Some(c) = a.iter_mut().nth(1)
            {
                *c = c.wrapping_add(1);
            }
            *state = Arc::new(next);
        }
        Ok(outputs)
    }

    pub fn peak_bytes(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}
