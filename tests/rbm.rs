//! Short RBM training runs that fit in CI: the reconstruction error falls, for CD-1, CD-3 and
//! PCD-1, and the free energy agrees with its definition.

use gradus::models::{CdConfig, Rbm, unroll};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array2, s};

mod common;
use common::digits;

fn train(cfg: CdConfig) -> (f64, f64) {
    let data = digits(400);
    let g = Graph::new();
    let stream = RandomStream::new(&g, 5);
    let rbm = Rbm::new(&g, 784, 32, 5).unwrap();
    rbm.init_visible_bias(&data).unwrap();
    let step = rbm.trainer(&cfg, &stream).unwrap();
    let epoch = |step: &Function| -> f64 {
        let mut total = 0.0;
        for b in 0..data.nrows() / cfg.batch {
            let x = data
                .slice(s![b * cfg.batch..(b + 1) * cfg.batch, ..])
                .to_owned();
            total += step.call(&[x.into()]).unwrap()[0].item().unwrap();
        }
        total / (data.nrows() / cfg.batch) as f64
    };
    let first = epoch(&step);
    let mut last = first;
    for _ in 0..3 {
        last = epoch(&step);
    }
    (first, last)
}

#[test]
fn cd1_reconstruction_error_falls() {
    let (first, last) = train(CdConfig {
        batch: 20,
        ..CdConfig::default()
    });
    assert!(last < 0.9 * first, "{first} -> {last}");
}

#[test]
fn cd3_reconstruction_error_falls() {
    let (first, last) = train(CdConfig {
        k: 3,
        batch: 20,
        ..CdConfig::default()
    });
    assert!(last < 0.9 * first, "CD-3: {first} -> {last}");
}

/// PCD's reconstruction error is a poor monitor (its chains are not at the data), so check
/// what it optimises: the data become more probable than noise, F(noise) - F(data) grows.
#[test]
fn pcd_makes_the_data_more_probable_than_noise() {
    let data = digits(400);
    let g = Graph::new();
    let stream = RandomStream::new(&g, 5);
    let rbm = Rbm::new(&g, 784, 32, 5).unwrap();
    let cfg = CdConfig {
        persistent: true,
        lr: 0.05,
        momentum: 0.0,
        weight_decay: 0.0,
        batch: 20,
        ..CdConfig::default()
    };
    let step = rbm.trainer(&cfg, &stream).unwrap();
    let v = g.input("v", DType::F32, &[None, Some(784)]);
    let fe = function(&[&v], &[&rbm.free_energy(&v).mean()])
        .compile()
        .unwrap();
    let noise = Array2::from_shape_fn((400, 784), |(i, j)| {
        ((i * 7919 + j * 104_729) % 5 == 0) as u8 as f32
    });
    let gap = || {
        fe.call(&[noise.clone().into()]).unwrap()[0].item().unwrap()
            - fe.call(&[data.clone().into()]).unwrap()[0].item().unwrap()
    };
    let before = gap();
    for _ in 0..2 {
        for b in 0..data.nrows() / cfg.batch {
            step.call(&[data
                .slice(s![b * cfg.batch..(b + 1) * cfg.batch, ..])
                .to_owned()
                .into()])
                .unwrap();
        }
    }
    let after = gap();
    assert!(after > before + 10.0, "free-energy gap {before} -> {after}");
}

#[test]
fn free_energy_matches_its_definition() {
    let g = Graph::new();
    let rbm = Rbm::new(&g, 5, 3, 1).unwrap();
    rbm.vbias
        .set_value(vec![0.1f32, -0.2, 0.3, 0.0, 0.5])
        .unwrap();
    rbm.hbias.set_value(vec![0.2f32, -0.1, 0.05]).unwrap();
    let v = g.input("v", DType::F32, &[None, Some(5)]);
    let f = function(&[&v], &[&rbm.free_energy(&v)]).compile().unwrap();
    let vv = ndarray::arr2(&[[1.0f32, 0.0, 1.0, 1.0, 0.0]]);
    let got = f.call(&[vv.clone().into()]).unwrap()[0].to_f64_vec()[0];
    let w = rbm.w.get_value().unwrap().to_f64_array();
    let (b, c) = (
        rbm.vbias.get_value().unwrap().to_f64_vec(),
        rbm.hbias.get_value().unwrap().to_f64_vec(),
    );
    let vrow: Vec<f64> = vv.iter().map(|x| *x as f64).collect();
    let mut expect = -vrow.iter().zip(&b).map(|(v, b)| v * b).sum::<f64>();
    for j in 0..3 {
        let a = c[j] + (0..5).map(|i| vrow[i] * w[[i, j]]).sum::<f64>();
        expect -= (1.0 + a.exp()).ln();
    }
    assert!((got - expect).abs() < 1e-5, "{got} vs {expect}");
}

#[test]
fn a_25_step_gibbs_chain_compiles_to_one_function_and_advances_the_stream() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 9);
    let rbm = Rbm::new(&g, 784, 16, 9).unwrap();
    let v0 = g.input("v", DType::F32, &[None, Some(784)]);
    let (vp, _) = unroll(25, (v0.clone(), v0.clone()), |(_, v)| {
        rbm.gibbs_vhv(&v, &stream)
    });
    let f = function(&[&v0], &[&vp]).compile().unwrap();
    let start = Tensor::from(digits(4));
    let a = f.call(std::slice::from_ref(&start)).unwrap();
    let b = f.call(&[start]).unwrap();
    assert_ne!(a, b, "each call draws new numbers");
    assert_eq!(
        stream.state().get_value().unwrap().to_f64_vec(),
        vec![9.0, 2.0]
    );
}

/// The reconstruction error after each of `epochs` epochs over 1000 digits, CD-`k` with the
/// chain unrolled (`per_call: false`) or one loop whose `k` is given at each call.
fn curve(k: usize, per_call: bool, epochs: usize) -> Vec<f64> {
    let data = digits(1000);
    let g = Graph::new();
    let stream = RandomStream::new(&g, 5);
    let rbm = Rbm::new(&g, 784, 32, 5).unwrap();
    rbm.init_visible_bias(&data).unwrap();
    let cfg = CdConfig {
        k,
        batch: 20,
        ..CdConfig::default()
    };
    let step = if per_call {
        rbm.trainer_with_steps_per_call(&cfg, &stream).unwrap()
    } else {
        rbm.trainer(&cfg, &stream).unwrap()
    };
    (0..epochs)
        .map(|_| {
            let batches = data.nrows() / cfg.batch;
            let mut total = 0.0;
            for b in 0..batches {
                let x: Tensor = data.slice(s![b * 20..(b + 1) * 20, ..]).to_owned().into();
                let out = if per_call {
                    step.call(&[x, (k as i64).into()])
                } else {
                    step.call(&[x])
                };
                total += out.unwrap()[0].item().unwrap();
            }
            total / batches as f64
        })
        .collect()
}

#[test]
fn cd_k_through_one_loop_follows_the_unrolled_curve() {
    // The draws differ (a loop's step draws with its step's counter, an unrolled step with its
    // node's key), so the curves agree within noise, epoch by epoch.
    let unrolled = curve(3, false, 4);
    let looped = curve(3, true, 4);
    eprintln!("CD-3 reconstruction error per epoch: unrolled {unrolled:?}, one loop {looped:?}");
    for (e, (a, b)) in unrolled.iter().zip(&looped).enumerate() {
        assert!(
            (a - b).abs() <= 0.03 * a,
            "epoch {e}: unrolled {a}, loop {b}"
        );
    }
    assert!(looped[3] < 0.9 * looped[0], "{looped:?}");
}

#[test]
fn one_cd_trainer_takes_any_number_of_steps_per_call() {
    let data = digits(40);
    let g = Graph::new();
    let stream = RandomStream::new(&g, 1);
    let rbm = Rbm::new(&g, 784, 16, 1).unwrap();
    let step = rbm
        .trainer_with_steps_per_call(&CdConfig::default(), &stream)
        .unwrap();
    let before = step.len();
    for k in [1i64, 10, 25, 2] {
        let x: Tensor = data.slice(s![..20, ..]).to_owned().into();
        let err = step.call(&[x, k.into()]).unwrap()[0].item().unwrap();
        assert!(err.is_finite() && err > 0.0, "k = {k}: {err}");
    }
    assert_eq!(step.len(), before);
    // The unrolled trainer grows with k; the loop does not depend on it.
    let unrolled = |k| {
        let cfg = CdConfig {
            k,
            ..CdConfig::default()
        };
        rbm.trainer(&cfg, &stream).unwrap().len()
    };
    assert!(
        unrolled(25) > unrolled(1) + 100,
        "{} vs {}",
        unrolled(25),
        unrolled(1)
    );
    assert!(before < unrolled(5), "{before} vs {}", unrolled(5));
}

#[test]
fn a_pcd_trainer_takes_its_steps_per_call_and_keeps_its_chain() {
    let data = digits(40);
    let g = Graph::new();
    let stream = RandomStream::new(&g, 3);
    let rbm = Rbm::new(&g, 784, 16, 3).unwrap();
    // Parameters held still (no learning): the chain keeps mixing from call to call.
    let cfg = CdConfig {
        persistent: true,
        batch: 20,
        lr: 0.0,
        weight_decay: 0.0,
        ..CdConfig::default()
    };
    let step = rbm.trainer_with_steps_per_call(&cfg, &stream).unwrap();
    let chain = g
        .shared_variables()
        .into_iter()
        .find(|v| v.name() == "pcd_chain")
        .expect("the persistent chain");
    let x: Tensor = data.slice(s![..20, ..]).to_owned().into();
    let mut last = chain.get_value().unwrap();
    for k in [1i64, 5, 15] {
        step.call(&[x.clone(), k.into()]).unwrap();
        let now = chain.get_value().unwrap();
        assert_ne!(now, last, "the chain moves after {k} steps");
        assert!(now.to_f64_vec().iter().all(|&h| h == 0.0 || h == 1.0));
        last = now;
    }
}
