//! Recurrent cells as graphs: the GRU and the LSTM, run over a sequence by [`Scan`].
//!
//! A sequence is `[T, N, D]`: T steps of a batch of N rows of D inputs (a batch of digits read
//! row by row is `[28, N, 28]`). Each cell projects the inputs of every step at once (one
//! `[T, N, D] @ [D, k H]` product before the loop), so that a step only multiplies the state.
//!
//! ```
//! use gradus::prelude::*;
//! use gradus::models::recurrent::Gru;
//! let g = Graph::new();
//! let xs = g.input("xs", DType::F32, &[None, None, Some(3)]);
//! let gru = Gru::new(&g, "gru", 3, 4, DType::F32, 7).unwrap();
//! let h0 = gru.zero_state(&xs);
//! let hs = gru.scan(&xs, &h0).unwrap();
//! let f = function(&[&xs], &[&hs.states[0]]).compile().unwrap();
//! let last = f.call(&[ndarray::Array3::<f32>::zeros((5, 2, 3)).into()]).unwrap();
//! assert_eq!(last[0].shape(), &[2, 4]);
//! ```

use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dtype::DType;
use crate::error::{Error, Location, Result};
use crate::graph::loops::{Looped, Scan, StepResult};
use crate::graph::{Expr, Graph};
use crate::tensor::Tensor;

/// A matrix drawn from `U(-s, s)`, `s = 1 / sqrt(hidden)` (PyTorch's choice for its cells).
fn uniform(rows: usize, cols: usize, hidden: usize, dtype: DType, rng: &mut StdRng) -> Tensor {
    let s = 1.0 / (hidden as f64).sqrt();
    let a = Array2::from_shape_fn((rows, cols), |_| rng.random_range(-s..s));
    Tensor::from(a).cast(dtype)
}

fn check_sizes(what: &str, inputs: usize, hidden: usize, dtype: DType) -> Result<()> {
    if inputs == 0 || hidden == 0 || !dtype.is_float() {
        return Err(Error::Usage {
            what: format!(
                "a {what} needs inputs and hidden units (got {inputs} and {hidden}) and a float \
                 dtype (got {dtype})"
            ),
            loc: Location::caller(),
        });
    }
    Ok(())
}

/// Columns `k H .. (k + 1) H` of `x`: gate `k` of a projection.
fn gate(x: &Expr, k: usize, hidden: usize) -> Expr {
    let h = hidden as isize;
    x.slice(-1, k as isize * h, Some((k as isize + 1) * h))
}

/// Zeros of shape `[N, hidden]` for the batch of sequences `xs` (`[T, N, D]`).
fn zeros_for(xs: &Expr, hidden: usize) -> Expr {
    // The first step's rows (none for an empty sequence: its sum), one column of them, for
    // their run-time count only.
    let first = xs
        .slice(0, 0, Some(1))
        .sum_axes(&[0], false)
        .slice(1, 0, Some(1));
    let row = xs
        .graph()
        .constant(Tensor::from(Array1::<f64>::zeros(hidden)).cast(xs.dtype()));
    first.zeros_like() + row
}

/// A gated recurrent unit (Cho et al. 2014):
///
/// ```text
/// z  = sigmoid(W_z [h, x]),  r = sigmoid(W_r [h, x])
/// h~ = tanh(W [r * h, x])
/// h' = (1 - z) h + z h~
/// ```
///
/// each `W [h, x]` being `h W_h + x W_x + b`.
pub struct Gru {
    /// Inputs to the gates z, r and the candidate: `[D, 3H]`.
    pub w_x: Expr,
    /// State to the gates z and r: `[H, 2H]`.
    pub w_h: Expr,
    /// Reset state to the candidate: `[H, H]`.
    pub w_c: Expr,
    /// Biases of z, r and the candidate: `[3H]`.
    pub b: Expr,
    hidden: usize,
}

impl Gru {
    /// A GRU of `inputs` to `hidden` units with shared parameters named after `name`, drawn
    /// from `seed`.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        name: &str,
        inputs: usize,
        hidden: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<Gru> {
        check_sizes("GRU", inputs, hidden, dtype)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let zeros = Tensor::from(Array1::<f64>::zeros(3 * hidden)).cast(dtype);
        Ok(Gru {
            w_x: graph.shared(
                &format!("{name}.W_x"),
                uniform(inputs, 3 * hidden, hidden, dtype, &mut rng),
            ),
            w_h: graph.shared(
                &format!("{name}.W_h"),
                uniform(hidden, 2 * hidden, hidden, dtype, &mut rng),
            ),
            w_c: graph.shared(
                &format!("{name}.W_c"),
                uniform(hidden, hidden, hidden, dtype, &mut rng),
            ),
            b: graph.shared(&format!("{name}.b"), zeros),
            hidden,
        })
    }

    /// The shared parameters.
    pub fn params(&self) -> Vec<&Expr> {
        vec![&self.w_x, &self.w_h, &self.w_c, &self.b]
    }

    /// The inputs' part of every gate, for all steps at once: `x W_x + b`.
    #[track_caller]
    pub fn project(&self, x: &Expr) -> Expr {
        x.matmul(&self.w_x) + &self.b
    }

    /// One step from the projected input `xp` (`[N, 3H]`) and the state `h` (`[N, H]`).
    #[track_caller]
    pub fn step(&self, xp: &Expr, h: &Expr) -> Expr {
        let hh = h.matmul(&self.w_h);
        let z = (gate(xp, 0, self.hidden) + gate(&hh, 0, self.hidden)).sigmoid();
        let r = (gate(xp, 1, self.hidden) + gate(&hh, 1, self.hidden)).sigmoid();
        let candidate = (gate(xp, 2, self.hidden) + (&r * h).matmul(&self.w_c)).tanh();
        h + &(&z * &(candidate - h))
    }

    /// One step from the raw input `x` (`[N, D]`).
    #[track_caller]
    pub fn cell(&self, x: &Expr, h: &Expr) -> Expr {
        self.step(&self.project(x), h)
    }

    /// A zero state for the batch of sequences `xs`.
    #[track_caller]
    pub fn zero_state(&self, xs: &Expr) -> Expr {
        zeros_for(xs, self.hidden)
    }

    /// The GRU over the sequences `xs` (`[T, N, D]`) from the state `h0`: its final state and
    /// the state after every step (`[T, N, H]`), by one loop whatever T.
    #[track_caller]
    pub fn scan(&self, xs: &Expr, h0: &Expr) -> Result<Looped> {
        let projected = self.project(xs);
        Scan::over(&[&projected]).states(&[h0]).run(|s| {
            let h = self.step(s.seq(0), s.state(0));
            Ok(StepResult::new().state(&h).output(&h))
        })
    }

    /// The final state after the `steps` steps of `xs`, unrolled into the graph (one copy of
    /// the step per step).
    #[track_caller]
    pub fn unroll(&self, xs: &Expr, h0: &Expr, steps: usize) -> Expr {
        let projected = self.project(xs);
        (0..steps).fold(h0.clone(), |h, t| {
            let xp = projected
                .slice(0, t as isize, Some(t as isize + 1))
                .squeeze(&[0]);
            self.step(&xp, &h)
        })
    }
}

/// A long short-term memory cell (Hochreiter and Schmidhuber 1997, with a forget gate):
///
/// ```text
/// i = sigmoid(.), f = sigmoid(.), o = sigmoid(.), g = tanh(.)   of x W_x + h W_h + b
/// c' = f * c + i * g,  h' = o * tanh(c')
/// ```
///
/// The forget gate's bias starts at 1 (Jozefowicz et al. 2015).
pub struct Lstm {
    /// Inputs to the gates i, f, g, o: `[D, 4H]`.
    pub w_x: Expr,
    /// State to the gates: `[H, 4H]`.
    pub w_h: Expr,
    /// Biases of the gates: `[4H]`.
    pub b: Expr,
    hidden: usize,
}

impl Lstm {
    /// An LSTM of `inputs` to `hidden` units with shared parameters named after `name`, drawn
    /// from `seed`.
    #[track_caller]
    pub fn new(
        graph: &Graph,
        name: &str,
        inputs: usize,
        hidden: usize,
        dtype: DType,
        seed: u64,
    ) -> Result<Lstm> {
        check_sizes("LSTM", inputs, hidden, dtype)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let bias = Array1::from_shape_fn(4 * hidden, |j| f64::from(j / hidden == 1));
        Ok(Lstm {
            w_x: graph.shared(
                &format!("{name}.W_x"),
                uniform(inputs, 4 * hidden, hidden, dtype, &mut rng),
            ),
            w_h: graph.shared(
                &format!("{name}.W_h"),
                uniform(hidden, 4 * hidden, hidden, dtype, &mut rng),
            ),
            b: graph.shared(&format!("{name}.b"), Tensor::from(bias).cast(dtype)),
            hidden,
        })
    }

    /// The shared parameters.
    pub fn params(&self) -> Vec<&Expr> {
        vec![&self.w_x, &self.w_h, &self.b]
    }

    /// The inputs' part of every gate, for all steps at once: `x W_x + b`.
    #[track_caller]
    pub fn project(&self, x: &Expr) -> Expr {
        x.matmul(&self.w_x) + &self.b
    }

    /// One step from the projected input `xp` (`[N, 4H]`), the state `h` and the cell `c`:
    /// the next `(h, c)`.
    #[track_caller]
    pub fn step(&self, xp: &Expr, h: &Expr, c: &Expr) -> (Expr, Expr) {
        let gates = xp + &h.matmul(&self.w_h);
        let i = gate(&gates, 0, self.hidden).sigmoid();
        let f = gate(&gates, 1, self.hidden).sigmoid();
        let g = gate(&gates, 2, self.hidden).tanh();
        let o = gate(&gates, 3, self.hidden).sigmoid();
        let c = &f * c + &i * &g;
        (&o * &c.tanh(), c)
    }

    /// One step from the raw input `x` (`[N, D]`).
    #[track_caller]
    pub fn cell(&self, x: &Expr, h: &Expr, c: &Expr) -> (Expr, Expr) {
        self.step(&self.project(x), h, c)
    }

    /// A zero state (or cell) for the batch of sequences `xs`.
    #[track_caller]
    pub fn zero_state(&self, xs: &Expr) -> Expr {
        zeros_for(xs, self.hidden)
    }

    /// The LSTM over the sequences `xs` (`[T, N, D]`) from `(h0, c0)`: the final `h` and `c`
    /// (`states`) and `h` after every step (`outputs[0]`, `[T, N, H]`), by one loop whatever T.
    #[track_caller]
    pub fn scan(&self, xs: &Expr, h0: &Expr, c0: &Expr) -> Result<Looped> {
        let projected = self.project(xs);
        Scan::over(&[&projected]).states(&[h0, c0]).run(|s| {
            let (h, c) = self.step(s.seq(0), s.state(0), s.state(1));
            Ok(StepResult::new().state(&h).state(&c).output(&h))
        })
    }

    /// The final `(h, c)` after the `steps` steps of `xs`, unrolled into the graph.
    #[track_caller]
    pub fn unroll(&self, xs: &Expr, h0: &Expr, c0: &Expr, steps: usize) -> (Expr, Expr) {
        let projected = self.project(xs);
        (0..steps).fold((h0.clone(), c0.clone()), |(h, c), t| {
            let xp = projected
                .slice(0, t as isize, Some(t as isize + 1))
                .squeeze(&[0]);
            self.step(&xp, &h, &c)
        })
    }
}
