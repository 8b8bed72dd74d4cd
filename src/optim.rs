//! Optimizers as update builders: each turns parameters and their gradients into the
//! `(variable, new value)` pairs a compiled function applies after every call.
//!
//! ```
//! use gradus::prelude::*;
//! use gradus::optim::Optimizer;
//! let g = Graph::new();
//! let w = g.shared("w", vec![3.0f64]);
//! let cost = w.square().sum();
//! let gw = grad(&cost, &[&w]).unwrap();
//! let updates = Optimizer::momentum(0.1, 0.9).updates(&[&w], &gw).unwrap();
//! let pairs: Vec<(&Expr, &Expr)> = updates.iter().map(|(a, b)| (a, b)).collect();
//! let step = function(&[], &[&cost]).updates(&pairs).compile().unwrap();
//! for _ in 0..200 { step.call(&[]).unwrap(); }
//! assert!(w.get_value().unwrap().item().unwrap().abs() < 1e-3);
//! ```

use crate::error::{Error, Location, Result};
use crate::graph::Expr;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug)]
enum Rule {
    Sgd,
    Momentum { mu: f64, nesterov: bool },
    RmsProp { rho: f64, eps: f64 },
    Adam { beta1: f64, beta2: f64, eps: f64 },
}

/// An update rule with its hyper-parameters.
#[derive(Clone, Debug)]
pub struct Optimizer {
    rule: Rule,
    lr: f64,
    lr_expr: Option<Expr>,
    weight_decay: f64,
}

impl Optimizer {
    fn new(rule: Rule, lr: f64) -> Optimizer {
        Optimizer {
            rule,
            lr,
            lr_expr: None,
            weight_decay: 0.0,
        }
    }

    /// `p <- p - lr g`
    pub fn sgd(lr: f64) -> Optimizer {
        Optimizer::new(Rule::Sgd, lr)
    }

    /// Classical momentum: `v <- mu v - lr g; p <- p + v`.
    pub fn momentum(lr: f64, mu: f64) -> Optimizer {
        Optimizer::new(
            Rule::Momentum {
                mu,
                nesterov: false,
            },
            lr,
        )
    }

    /// Nesterov momentum: `v <- mu v - lr g; p <- p + mu v - lr g`.
    pub fn nesterov(lr: f64, mu: f64) -> Optimizer {
        Optimizer::new(Rule::Momentum { mu, nesterov: true }, lr)
    }

    /// RMSprop: `s <- rho s + (1 - rho) g^2; p <- p - lr g / (sqrt(s) + eps)`.
    pub fn rmsprop(lr: f64, rho: f64) -> Optimizer {
        Optimizer::new(Rule::RmsProp { rho, eps: 1e-8 }, lr)
    }

    /// Adam (Kingma & Ba) with `beta1 = 0.9, beta2 = 0.999, eps = 1e-8`.
    pub fn adam(lr: f64) -> Optimizer {
        Optimizer::new(
            Rule::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr,
        )
    }

    /// Add `wd * p` to every gradient (L2 weight decay).
    pub fn weight_decay(mut self, wd: f64) -> Optimizer {
        self.weight_decay = wd;
        self
    }

    /// Take the learning rate from a scalar expression (an input, for schedules) instead of the
    /// constant.
    pub fn learning_rate(mut self, lr: &Expr) -> Optimizer {
        self.lr_expr = Some(lr.clone());
        self
    }

    /// The updates for `params` given their gradients. Slot variables (velocities, moments)
    /// are new shared variables named after each parameter.
    #[track_caller]
    pub fn updates(&self, params: &[&Expr], grads: &[Expr]) -> Result<Vec<(Expr, Expr)>> {
        let loc = Location::caller();
        if params.len() != grads.len() {
            return Err(Error::Usage {
                what: format!("{} parameters but {} gradients", params.len(), grads.len()),
                loc,
            });
        }
        let mut out = Vec::new();
        for (p, g) in params.iter().zip(grads) {
            let value = p.get_value()?;
            let zeros = || {
                p.graph().shared(
                    &format!("{}_slot", p.name()),
                    Tensor::full(value.shape(), 0.0, value.dtype()),
                )
            };
            let lr = match &self.lr_expr {
                Some(e) => e.cast(p.dtype()),
                None => p.scalar_like(self.lr),
            };
            let g = if self.weight_decay != 0.0 {
                g + &(*p * self.weight_decay)
            } else {
                g.clone()
            };
            match self.rule {
                // Momentum 0 is plain SGD: no velocity to keep.
                Rule::Sgd | Rule::Momentum { mu: 0.0, .. } => {
                    out.push(((*p).clone(), *p - &(&g * &lr)))
                }
                Rule::Momentum { mu, nesterov } => {
                    let v = zeros();
                    let v_new = &v * mu - &(&g * &lr);
                    let step = if nesterov {
                        &v_new * mu - &(&g * &lr)
                    } else {
                        v_new.clone()
                    };
                    out.push(((*p).clone(), *p + &step));
                    out.push((v, v_new));
                }
                Rule::RmsProp { rho, eps } => {
                    let s = zeros();
                    let s_new = &s * rho + &(g.square() * (1.0 - rho));
                    out.push(((*p).clone(), *p - &(&(&g * &lr) / &(s_new.sqrt() + eps))));
                    out.push((s, s_new));
                }
                Rule::Adam { beta1, beta2, eps } => {
                    let (m, v) = (zeros(), zeros());
                    let t = p.graph().shared(
                        &format!("{}_t", p.name()),
                        Tensor::scalar(0.0, value.dtype()),
                    );
                    let t_new = &t + 1.0;
                    let m_new = &m * beta1 + &(&g * (1.0 - beta1));
                    let v_new = &v * beta2 + &(g.square() * (1.0 - beta2));
                    // Bias corrections folded into the step size.
                    let c1 = 1.0 - &p.scalar_like(beta1).pow(&t_new);
                    let c2 = 1.0 - &p.scalar_like(beta2).pow(&t_new);
                    let step = &(&lr * &(c2.sqrt() / &c1)) * &(&m_new / &(v_new.sqrt() + eps));
                    out.push(((*p).clone(), *p - &step));
                    out.push((m, m_new));
                    out.push((v, v_new));
                    out.push((t, t_new));
                }
            }
        }
        Ok(out)
    }
}

/// Borrow update pairs in the form `function(...).updates(...)` takes.
pub fn as_pairs(updates: &[(Expr, Expr)]) -> Vec<(&Expr, &Expr)> {
    updates.iter().map(|(a, b)| (a, b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    /// Each rule minimises a badly scaled quadratic from the same start.
    #[test]
    fn every_rule_descends_a_quadratic() {
        for (name, opt, steps) in [
            ("sgd", Optimizer::sgd(0.1), 200),
            ("momentum", Optimizer::momentum(0.05, 0.9), 200),
            ("nesterov", Optimizer::nesterov(0.05, 0.9), 200),
            ("rmsprop", Optimizer::rmsprop(0.01, 0.9), 500),
            ("adam", Optimizer::adam(0.05), 500),
            ("sgd+wd", Optimizer::sgd(0.1).weight_decay(0.1), 200),
        ] {
            let g = Graph::new();
            let w = g.shared("w", vec![3.0f64, -2.0]);
            let scale = g.constant(vec![1.0f64, 4.0]);
            let cost = (&w.square() * &scale).sum();
            let gw = grad(&cost, &[&w]).unwrap();
            let ups = opt.updates(&[&w], &gw).unwrap();
            let step = function(&[], &[&cost])
                .updates(&as_pairs(&ups))
                .compile()
                .unwrap();
            let first = step.call(&[]).unwrap()[0].item().unwrap();
            for _ in 0..steps {
                step.call(&[]).unwrap();
            }
            let last = step.call(&[]).unwrap()[0].item().unwrap();
            assert!(last < 1e-3 * first, "{name}: {first} -> {last}");
        }
    }

    /// Momentum 0 (plain or Nesterov) is SGD: the same update, and no velocity to keep.
    #[test]
    fn momentum_zero_is_sgd_without_a_velocity() {
        let g = Graph::new();
        let w = g.shared("w", vec![3.0f64, -2.0]);
        let cost = (w.square() * 2.0).sum();
        let gw = grad(&cost, &[&w]).unwrap();
        let sgd = Optimizer::sgd(0.1).updates(&[&w], &gw).unwrap();
        for opt in [Optimizer::momentum(0.1, 0.0), Optimizer::nesterov(0.1, 0.0)] {
            let ups = opt.updates(&[&w], &gw).unwrap();
            assert_eq!(ups.len(), 1, "a velocity is kept");
            assert_eq!(crate::pp(&ups[0].1), crate::pp(&sgd[0].1));
        }
        assert_eq!(
            Optimizer::momentum(0.1, 0.5)
                .updates(&[&w], &gw)
                .unwrap()
                .len(),
            2
        );
    }
}
