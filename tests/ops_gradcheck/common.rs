//! The harness every op test uses: build a fresh graph with inputs of given shapes, fill them
//! with seeded values from a chosen range, apply the op under test and run `GradCheck`; a
//! failure panics naming the op, the shapes and the checker's report.

use gradus::Dim;
use gradus::gradcheck::{GradCheck, Report};
use gradus::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// How a variable's values are drawn.
#[derive(Clone, Copy, Debug)]
pub enum Fill {
    /// Uniform in `[lo, hi)`.
    Uniform(f64, f64),
    /// Magnitude uniform in `[lo, hi)`, random sign: away from zero (abs, relu, div, prod).
    Signed(f64, f64),
    /// Drawn without replacement from one grid shared by every `Distinct` variable of the case:
    /// values `0.1 k + c` with `c` not a multiple of 0.1, so no two are closer than 0.1 and none
    /// is within 0.013 of 0 or of any multiple of 0.1 (no ties for max/min, no kinks at clip
    /// bounds such as +-1, none at 0 for relu/abs).
    Distinct,
}

struct Var {
    declared: Vec<Dim>,
    actual: Vec<usize>,
    fill: Fill,
}

/// One gradient check of `f` at one point.
pub struct Case {
    label: String,
    dtype: DType,
    vars: Vec<Var>,
    fixed: Vec<Tensor>,
    elementwise: bool,
    second_order: bool,
    directions: usize,
    seed: u64,
    tol: Option<(f64, f64)>,
    eps: Option<f64>,
}

/// Start a case named `label` (the op under test) in f64.
pub fn case(label: &str) -> Case {
    Case {
        label: label.to_string(),
        dtype: DType::F64,
        vars: Vec::new(),
        fixed: Vec::new(),
        elementwise: false,
        second_order: false,
        directions: 3,
        seed: 7,
        tol: None,
        eps: None,
    }
}

impl Case {
    /// A variable of static shape `shape` (differentiated).
    pub fn var(self, shape: &[usize], fill: Fill) -> Case {
        let declared = shape.iter().map(|&d| Some(d)).collect::<Vec<_>>();
        self.var_dyn(&declared, shape, fill)
    }

    /// A variable declared with run-time dims (`None`), fed a value of shape `actual`.
    pub fn var_dyn(mut self, declared: &[Dim], actual: &[usize], fill: Fill) -> Case {
        self.vars.push(Var {
            declared: declared.to_vec(),
            actual: actual.to_vec(),
            fill,
        });
        self
    }

    /// A fixed (not differentiated) input fed this value; passed to `f` after the variables.
    pub fn fixed(mut self, value: Tensor) -> Case {
        self.fixed.push(value);
        self
    }

    /// Use this float dtype for the variables.
    pub fn dtype(mut self, dtype: DType) -> Case {
        self.dtype = dtype;
        self
    }

    /// Perturb every element instead of random directions.
    pub fn elementwise(mut self) -> Case {
        self.elementwise = true;
        self
    }

    /// Also check second derivatives.
    pub fn second_order(mut self) -> Case {
        self.second_order = true;
        self
    }

    /// Seed of the values (and of the checker's directions).
    pub fn seed(mut self, seed: u64) -> Case {
        self.seed = seed;
        self
    }

    /// Override the checker's `(atol, rtol)`.
    pub fn tolerance(mut self, atol: f64, rtol: f64) -> Case {
        self.tol = Some((atol, rtol));
        self
    }

    /// Override the finite-difference step.
    pub fn eps(mut self, eps: f64) -> Case {
        self.eps = Some(eps);
        self
    }

    /// Build `f(vars ++ fixed)` in a fresh graph and check its gradient; panics naming the case
    /// when the check fails or cannot run.
    #[track_caller]
    pub fn check(self, f: impl Fn(&[Expr]) -> Expr) -> Report {
        let shapes: Vec<&[usize]> = self.vars.iter().map(|v| v.actual.as_slice()).collect();
        let what = format!("{} at shapes {:?}", self.label, shapes);
        let g = Graph::new();
        let mut rng = StdRng::seed_from_u64(self.seed);
        let values = self.values(&mut rng);
        let xs: Vec<Expr> = self
            .vars
            .iter()
            .enumerate()
            .map(|(i, v)| g.input(&format!("x{i}"), self.dtype, &v.declared))
            .collect();
        let fixed: Vec<Expr> = self
            .fixed
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let dims: Vec<Dim> = t.shape().iter().map(|&d| Some(d)).collect();
                g.input(&format!("fixed{i}"), t.dtype(), &dims)
            })
            .collect();
        let all: Vec<Expr> = xs.iter().chain(&fixed).cloned().collect();
        let y = f(&all);
        let wrt: Vec<&Expr> = xs.iter().collect();
        let feeds: Vec<(&Expr, Tensor)> = fixed.iter().zip(self.fixed.iter().cloned()).collect();
        let mut gc = GradCheck::new(&y, &wrt)
            .at(&values)
            .feed(&feeds)
            .directions(self.directions)
            .seed(self.seed);
        if self.elementwise {
            gc = gc.elementwise();
        }
        if self.second_order {
            gc = gc.second_order();
        }
        if let Some((atol, rtol)) = self.tol {
            gc = gc.tolerance(atol, rtol);
        }
        if let Some(eps) = self.eps {
            gc = gc.eps(eps);
        }
        match gc.run() {
            Ok(report) => {
                assert!(report.comparisons > 0, "{what}: nothing was compared");
                report
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }

    fn values(&self, rng: &mut StdRng) -> Vec<Tensor> {
        let n_distinct: usize = self
            .vars
            .iter()
            .filter(|v| matches!(v.fill, Fill::Distinct))
            .map(|v| v.actual.iter().product::<usize>())
            .sum();
        let mut pool: Vec<f64> = (0..n_distinct)
            .map(|k| 0.1 * k as f64 - 0.05 * n_distinct as f64 + 0.013)
            .collect();
        pool.shuffle(rng);
        self.vars
            .iter()
            .map(|v| {
                let n: usize = v.actual.iter().product();
                let data: Vec<f64> = (0..n)
                    .map(|_| match v.fill {
                        Fill::Uniform(lo, hi) => rng.random_range(lo..hi),
                        Fill::Signed(lo, hi) => {
                            let m = rng.random_range(lo..hi);
                            if rng.random_bool(0.5) { m } else { -m }
                        }
                        Fill::Distinct => pool.pop().expect("pool sized for all distinct vars"),
                    })
                    .collect();
                Tensor::from_f64(&v.actual, data, self.dtype).expect("data fits its shape")
            })
            .collect()
    }
}

/// Seeded uniform values of a shape, as f64.
pub fn uniform(shape: &[usize], lo: f64, hi: f64, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let data = (0..n).map(|_| rng.random_range(lo..hi)).collect();
    Tensor::from_f64(shape, data, DType::F64).expect("data fits its shape")
}

/// The values of a tensor as an f64 array of its shape.
pub fn array(x: &Tensor) -> ndarray::ArrayD<f64> {
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(x.shape()), x.to_f64_vec()).unwrap()
}

/// Largest `|a - b|` over two tensors of one shape; a NaN against a number is infinitely far
/// (`f64::max` would drop it), two NaNs agree.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .map(|(p, q)| match (p.is_nan(), q.is_nan()) {
            (true, true) => 0.0,
            (false, false) if p == &q => 0.0,
            (false, false) => (p - q).abs(),
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}

/// Assert two tensors are equal within `tol` elementwise, naming `what` on failure.
#[track_caller]
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    let d = max_abs_diff(got, want);
    assert!(
        d <= tol,
        "{what}: max |got - want| = {d:e} > {tol:e}\n got  {got}\n want {want}"
    );
}

/// Shapes for unary elementwise ops: scalar, vector, matrix, 3-d.
pub const UNARY_SHAPES: [&[usize]; 4] = [&[], &[5], &[3, 4], &[2, 3, 4]];

/// Operand shape pairs for broadcast binary ops.
pub const BINARY_SHAPES: [(&[usize], &[usize]); 10] = [
    (&[3, 4], &[3, 4]),
    (&[1], &[3, 4]),
    (&[3, 4], &[1, 1]),
    (&[2, 1, 4], &[3, 1]),
    (&[3, 4], &[4]),
    (&[4], &[3, 4]),
    (&[3, 1], &[1, 4]),
    (&[], &[3, 4]),
    (&[3, 4], &[]),
    (&[2, 3, 4], &[3, 1]),
];

/// Is this shape small enough to perturb element by element?
pub fn small(shapes: &[&[usize]]) -> bool {
    shapes
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum::<usize>()
        <= 16
}
