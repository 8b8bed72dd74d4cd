//! Sparse coding: ISTA and FISTA against lassos whose solutions are known (an orthonormal
//! dictionary, where the solution is soft-thresholding; a scaled one; the optimality conditions
//! of an overcomplete one), the power iteration against the largest eigenvalue, a short run of
//! dictionary learning on digit patches whose objective falls every epoch with unit-norm atoms,
//! and a user's mistakes as errors.

mod common;

use gradus::Error;
use gradus::eval;
use gradus::models::sparse_coding::{ScConfig, Solver, SparseCoding};
use gradus::prelude::*;
use ndarray::{Array1, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

/// A random orthonormal `n x n` matrix, by Gram-Schmidt.
fn orthonormal(n: usize, seed: u64) -> Array2<f64> {
    let mut q = random(n, n, seed);
    for i in 0..n {
        for j in 0..i {
            let p = q.row(i).dot(&q.row(j));
            let qj = q.row(j).to_owned();
            q.row_mut(i).scaled_add(-p, &qj);
        }
        let norm = q.row(i).dot(&q.row(i)).sqrt();
        q.row_mut(i).mapv_inplace(|v| v / norm);
    }
    q
}

fn soft(v: f64, t: f64) -> f64 {
    v.signum() * (v.abs() - t).max(0.0)
}

/// The codes of `x` in the constant dictionary `d` by `cfg`.
fn codes(d: &Array2<f64>, x: &Array2<f64>, cfg: &ScConfig) -> Array2<f64> {
    let g = Graph::new();
    let sc = SparseCoding::from_dictionary(&g.constant(d.clone())).unwrap();
    let xin = g.input("x", DType::F64, &[None, Some(d.ncols())]);
    let z = sc.encode(&xin, cfg).unwrap();
    let out = eval(&[&z], &[(&xin, x.clone().into())]).unwrap();
    let v = out[0].to_f64_vec();
    Array2::from_shape_vec((x.nrows(), d.nrows()), v).unwrap()
}

fn max_diff(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).iter().fold(0.0, |m, v| m.max(v.abs()))
}

const SOLVERS: [Solver; 2] = [Solver::Ista, Solver::Fista];

#[test]
fn with_an_orthonormal_dictionary_the_codes_are_soft_thresholded_projections() {
    let (d, x, lambda) = (orthonormal(6, 1), random(5, 6, 2), 0.3);
    let expected = x.dot(&d.t()).mapv(|v| soft(v, lambda));
    for solver in SOLVERS {
        let cfg = ScConfig {
            lambda,
            solver,
            steps: 20,
            ..ScConfig::default()
        };
        let z = codes(&d, &x, &cfg);
        assert!(
            max_diff(&z, &expected) < 1e-10,
            "{solver:?}: {z} vs {expected}"
        );
        assert!(z.iter().any(|&v| v == 0.0) && z.iter().any(|&v| v != 0.0));
    }
}

#[test]
fn with_scaled_atoms_the_solvers_reach_the_closed_form_in_many_steps() {
    // Atom i is s_i e_i: the lasso separates, z_i = soft(s_i x_i, λ) / s_i², and the step
    // size 1/L = 1/max s_i² is too short for the small atoms to get there in one step.
    let scales = [2.0, 1.0, 0.5, 0.3, 1.5];
    let d = Array2::from_diag(&Array1::from(scales.to_vec()));
    let (x, lambda) = (random(4, 5, 3) * 2.0, 0.2);
    let expected = Array2::from_shape_fn(x.dim(), |(r, i)| {
        soft(scales[i] * x[(r, i)], lambda) / (scales[i] * scales[i])
    });
    for (solver, steps) in [(Solver::Ista, 2000), (Solver::Fista, 2000)] {
        let cfg = ScConfig {
            lambda,
            solver,
            steps,
            power_steps: 200,
            ..ScConfig::default()
        };
        let z = codes(&d, &x, &cfg);
        assert!(
            max_diff(&z, &expected) < 1e-8,
            "{solver:?}: {z}\nvs\n{expected}"
        );
    }
}

#[test]
fn overcomplete_codes_meet_the_lasso_optimality_conditions() {
    // At the solution g = (x - zD)Dᵀ is λ sign(z_i) where z_i ≠ 0 and within [-λ, λ] where
    // z_i = 0. A while loop runs until the codes stop moving.
    let mut d = random(12, 6, 4);
    for mut row in d.rows_mut() {
        let n = row.dot(&row).sqrt();
        row.mapv_inplace(|v| v / n);
    }
    let (x, lambda) = (random(3, 6, 5), 0.1);
    for solver in SOLVERS {
        let cfg = ScConfig {
            lambda,
            solver,
            steps: 20_000,
            tolerance: Some(1e-12),
            power_steps: 300,
        };
        let z = codes(&d, &x, &cfg);
        let g = (&x - &z.dot(&d)).dot(&d.t());
        let mut active = 0;
        for (zi, gi) in z.iter().zip(g.iter()) {
            if *zi != 0.0 {
                active += 1;
                assert!(
                    (gi - lambda * zi.signum()).abs() < 1e-7,
                    "{solver:?}: {gi} at {zi}"
                );
            } else {
                assert!(
                    gi.abs() <= lambda + 1e-9,
                    "{solver:?}: |{gi}| > {lambda} at 0"
                );
            }
        }
        assert!(
            active > 0 && active < z.len(),
            "{solver:?}: {active} active"
        );
    }
}

#[test]
fn ista_lowers_the_objective_at_every_step() {
    let d = random(10, 6, 6);
    let x = random(4, 6, 7);
    let g = Graph::new();
    let sc = SparseCoding::from_dictionary(&g.constant(d)).unwrap();
    let xin = g.input("x", DType::F64, &[None, Some(6)]);
    let mut last = f64::INFINITY;
    for steps in 1..=15 {
        let cfg = ScConfig {
            lambda: 0.1,
            solver: Solver::Ista,
            steps,
            power_steps: 100,
            ..ScConfig::default()
        };
        let z = sc.encode(&xin, &cfg).unwrap();
        let e = sc.objective(&xin, &z, 0.1);
        let v = eval(&[&e], &[(&xin, x.clone().into())]).unwrap()[0]
            .item()
            .unwrap();
        assert!(v < last, "step {steps}: {v} after {last}");
        last = v;
    }
}

#[test]
fn the_power_iteration_finds_the_largest_eigenvalue() {
    let d = random(9, 7, 8);
    // The host's own power iteration, run long, is the reference.
    let gram = d.t().dot(&d);
    let mut v = Array1::from_elem(7, 1.0);
    for _ in 0..2000 {
        v = gram.dot(&v);
        v /= v.dot(&v).sqrt();
    }
    let expected = v.dot(&gram.dot(&v));
    let g = Graph::new();
    let sc = SparseCoding::from_dictionary(&g.constant(d)).unwrap();
    let l = eval(&[&sc.lipschitz(200).unwrap()], &[]).unwrap()[0]
        .item()
        .unwrap();
    assert!((l - expected).abs() < 1e-9 * expected, "{l} vs {expected}");
}

/// 8x8 patches with ink, at every 4th place of the first bundled digits.
fn digit_patches(n: usize) -> Array2<f32> {
    let digits = common::digits(200);
    let mut rows = Vec::new();
    'all: for img in digits.rows() {
        for r0 in (0..=20).step_by(4) {
            for c0 in (0..=20).step_by(4) {
                let p: Vec<f32> = (0..64)
                    .map(|i| img[(r0 + i / 8) * 28 + c0 + i % 8])
                    .collect();
                if p.iter().sum::<f32>() >= 3.0 {
                    rows.extend(p);
                    if rows.len() == n * 64 {
                        break 'all;
                    }
                }
            }
        }
    }
    Array2::from_shape_vec((n, 64), rows).unwrap()
}

#[test]
fn dictionary_learning_on_digit_patches_lowers_the_objective_every_epoch() {
    let patches = digit_patches(500);
    let (train, test) = (
        patches.slice(ndarray::s![..400, ..]).to_owned(),
        Tensor::from(patches.slice(ndarray::s![400.., ..]).to_owned()),
    );
    let g = Graph::new();
    let sc = SparseCoding::new(&g, 64, 48, 3).unwrap();
    sc.set_atoms(&patches.slice(ndarray::s![..240;5, ..]).to_owned())
        .unwrap();
    let cfg = ScConfig {
        lambda: 0.5,
        steps: 20,
        ..ScConfig::default()
    };
    let step = sc.trainer(&cfg).unwrap();
    let measure = sc.measure(&cfg).unwrap();
    let mut curve = vec![measure.call(&test).unwrap()];
    for epoch in 0..4 {
        for b in 0..4 {
            let batch = train
                .slice(ndarray::s![b * 100..(b + 1) * 100, ..])
                .to_owned();
            step.step(&batch.into(), 0.2 / (1.0 + epoch as f64 / 2.0))
                .unwrap();
        }
        curve.push(measure.call(&test).unwrap());
    }
    let objective: Vec<f64> = curve.iter().map(|s| s.objective).collect();
    assert!(
        objective.windows(2).all(|w| w[1] < w[0]),
        "objective per epoch: {objective:?}"
    );
    let last = curve.last().unwrap();
    assert!(last.nonzeros > 0.5 && last.nonzeros < 24.0, "{last:?}");
    assert!(last.squared_error < curve[0].squared_error, "{curve:?}");
    let atoms = sc.atoms().unwrap();
    for row in atoms.rows() {
        let norm = row.dot(&row).sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "an atom of norm {norm}");
    }
}

#[test]
fn a_users_mistakes_are_errors() {
    let g = Graph::new();
    let sc = SparseCoding::new(&g, 4, 6, 1).unwrap();
    let x = g.input("x", DType::F32, &[None, Some(4)]);
    let bad = [
        ScConfig {
            lambda: -1.0,
            ..ScConfig::default()
        },
        ScConfig {
            lambda: f64::NAN,
            ..ScConfig::default()
        },
        ScConfig {
            steps: 0,
            ..ScConfig::default()
        },
        ScConfig {
            tolerance: Some(0.0),
            ..ScConfig::default()
        },
    ];
    for cfg in &bad {
        let line = line!() + 1;
        let err = sc.encode(&x, cfg).unwrap_err();
        assert!(matches!(err, Error::Usage { .. }), "{err}");
        common::assert_built_at(&err, line);
        assert!(sc.trainer(cfg).is_err());
    }
    // An input of the wrong width.
    let wide = g.input("wide", DType::F32, &[None, Some(5)]);
    assert!(matches!(
        sc.encode(&wide, &ScConfig::default()),
        Err(Error::Shape { .. })
    ));
    // A dictionary that is not a shared variable codes, but cannot learn.
    let fixed = SparseCoding::from_dictionary(&g.constant(Array2::<f32>::eye(3))).unwrap();
    assert!(
        fixed
            .encode(
                &g.input("y", DType::F32, &[None, Some(3)]),
                &ScConfig::default()
            )
            .is_ok()
    );
    assert!(matches!(
        fixed.trainer(&ScConfig::default()),
        Err(Error::Usage { .. })
    ));
    // Dictionaries that are not float matrices of known shape, and empty ones.
    let vector = g.input("v", DType::F32, &[Some(3)]);
    assert!(SparseCoding::from_dictionary(&vector).is_err());
    let ints = g.input("i", DType::I64, &[Some(2), Some(3)]);
    assert!(SparseCoding::from_dictionary(&ints).is_err());
    assert!(SparseCoding::new(&g, 0, 3, 1).is_err());
    assert!(SparseCoding::new_with_dtype(&g, 3, 3, DType::I64, 1).is_err());
    assert!(sc.set_atoms(&Array2::zeros((2, 2))).is_err());
}
