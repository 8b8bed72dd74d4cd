//! The checks of a call: its feeds against the program's inputs, and the new values of the
//! updated variables against their shapes.

use super::Executor;
use crate::error::{Error, Location, Result};
use crate::shape;
use crate::tensor::Tensor;

impl Executor {
    /// Each input has its declared dtype and shape.
    #[track_caller]
    pub fn check_feeds(&self, inputs: &[&Tensor]) -> Result<()> {
        let at = Location::caller();
        let input_types = &self.program.input_types;
        if inputs.len() < input_types.len() {
            let (name, _) = &input_types[inputs.len()];
            return Err(Error::MissingFeed {
                name: name.clone(),
                expected: input_types.len(),
                got: inputs.len(),
                at,
            });
        }
        if inputs.len() > input_types.len() {
            return Err(Error::Usage {
                what: format!(
                    "function takes {} inputs, got {}",
                    input_types.len(),
                    inputs.len()
                ),
                loc: at,
            });
        }
        for ((name, ty), t) in input_types.iter().zip(inputs) {
            if t.dtype() != ty.dtype {
                return Err(Error::FeedDType {
                    name: name.clone(),
                    expected: ty.dtype.to_string(),
                    got: t.dtype().to_string(),
                    at,
                });
            }
            if !ty.shape.matches(t.shape()) {
                return Err(Error::FeedShape {
                    name: name.clone(),
                    expected: ty.shape.to_string(),
                    got: shape::show(t.shape()),
                    at,
                });
            }
        }
        Ok(())
    }

    /// Each new value must have its variable's shape.
    pub(super) fn check_updates(&self, new_values: &[Tensor]) -> Result<()> {
        for ((var, i), t) in self.program.updates.iter().zip(new_values) {
            if !var.ty.shape.matches(t.shape()) {
                return Err(Error::Runtime {
                    op: "update".into(),
                    detail: format!(
                        "new value of {} has shape {}, the variable {}",
                        var.name,
                        shape::show(t.shape()),
                        var.ty.shape
                    ),
                    loc: self.program.nodes[*i].loc,
                });
            }
        }
        Ok(())
    }
}
