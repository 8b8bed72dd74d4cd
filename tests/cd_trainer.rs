//! The open CD trainer: a model written outside the crate trains by it, models of either float
//! type train alike, and the persistent chains are their own setting, readable and resettable.

use gradus::models::cd::{Cd, Chains};
use gradus::models::gbrbm::GbRbm;
use gradus::models::{CdConfig, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array2, s};
use rand::SeedableRng;

mod common;
use common::digits;

#[path = "../examples/rbm_bipolar.rs"]
#[allow(dead_code)]
mod bipolar;

#[test]
fn a_user_defined_rbm_trains_by_the_library_cd() {
    let curve = bipolar::train(&digits(400), 32, 4, 3).unwrap();
    let (first, last) = (curve[0], curve[curve.len() - 1]);
    assert!(last < 0.8 * first, "bipolar RBM: {curve:?}");
    // The trainer samples with the model's own hidden units: PCD's chains hold ±1.
    let g = Graph::new();
    let rbm = bipolar::BipolarRbm::new(&g, 784, 16, 1).unwrap();
    let cfg = CdConfig {
        persistent: true,
        chains: Some(5),
        ..CdConfig::default()
    };
    let trainer = Cd::new(&rbm, &cfg, &RandomStream::new(&g, 1))
        .compile()
        .unwrap();
    trainer.step().call(&[digits(20).into()]).unwrap();
    let h = trainer.chains().unwrap().value().unwrap().to_f64_vec();
    assert!(h.iter().all(|&h| h == -1.0 || h == 1.0), "{h:?}");
    assert!(h.contains(&-1.0) && h.contains(&1.0), "{h:?}");
}

/// `epochs` passes of CD-1 over 200 digits, minibatches of 20, the parameters afterwards.
fn train_in(dtype: DType, epochs: usize) -> (Vec<f64>, Vec<f64>) {
    let data = digits(200);
    let g = Graph::new();
    let rbm = Rbm::new_with_dtype(&g, 784, 16, dtype, 7).unwrap();
    rbm.init_visible_bias(&data).unwrap();
    let step = rbm
        .trainer(&CdConfig::default(), &RandomStream::new(&g, 7))
        .unwrap();
    let mut errors = Vec::new();
    for _ in 0..epochs {
        for b in 0..10 {
            let x = Tensor::from(data.slice(s![b * 20..(b + 1) * 20, ..]).to_owned()).cast(dtype);
            errors.push(step.call(&[x]).unwrap()[0].item().unwrap());
        }
    }
    assert_eq!(rbm.w.get_value().unwrap().dtype(), dtype);
    (errors, rbm.w.get_value().unwrap().to_f64_vec())
}

#[test]
fn f32_and_f64_models_from_one_seed_agree() {
    let (e32, w32) = train_in(DType::F32, 2);
    let (e64, w64) = train_in(DType::F64, 2);
    let worst = w32
        .iter()
        .zip(&w64)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "weights differ by up to {worst}");
    for (a, b) in e32.iter().zip(&e64) {
        assert!(
            (a - b).abs() < 1e-5 * b.abs(),
            "monitor {a} (f32) vs {b} (f64)"
        );
    }
    // Both learned: the weights moved from their N(0, 0.01²) start.
    assert!(w64.iter().any(|w| w.abs() > 0.05));
}

#[test]
fn a_model_of_an_integer_type_is_an_error() {
    let g = Graph::new();
    let err = Rbm::new_with_dtype(&g, 4, 3, DType::I64, 1).unwrap_err();
    assert!(err.to_string().contains("f32 or f64"), "{err}");
    assert!(GbRbm::new_with_dtype(&g, 4, 3, DType::Bool, 1).is_err());
}

fn all_zero(chains: &Chains) -> bool {
    chains
        .value()
        .unwrap()
        .to_f64_vec()
        .iter()
        .all(|&h| h == 0.0)
}

#[test]
fn the_number_of_persistent_chains_is_its_own_setting() {
    let data = digits(40);
    let g = Graph::new();
    let rbm = Rbm::new(&g, 784, 16, 3).unwrap();
    rbm.init_visible_bias(&data).unwrap();
    let stream = RandomStream::new(&g, 3);
    for steps_per_call in [false, true] {
        let cfg = CdConfig {
            persistent: true,
            batch: 20,
            chains: Some(7),
            ..CdConfig::default()
        };
        let cd = Cd::new(&rbm, &cfg, &stream);
        let cd = if steps_per_call {
            cd.steps_per_call()
        } else {
            cd
        };
        let trainer = cd.compile().unwrap();
        let chains = trainer.chains().expect("PCD has chains");
        assert_eq!(chains.len(), 7);
        assert_eq!(chains.value().unwrap().shape(), &[7, 16]);
        // Start at zero, move when trained on a minibatch of another size.
        assert!(all_zero(chains));
        let x = Tensor::from(data.slice(s![..20, ..]).to_owned());
        let inputs = if steps_per_call {
            vec![x, 3i64.into()]
        } else {
            vec![x]
        };
        trainer.step().call(&inputs).unwrap();
        let mut order = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen = Vec::new();
        let epoch = trainer.epoch(&data, &mut order, |done, of, mean| {
            seen.push((done, of, mean))
        });
        if steps_per_call {
            let err = epoch.unwrap_err();
            assert!(err.to_string().contains("steps per call"), "{err}");
        } else {
            // 40 rows in minibatches of 20: two reports, the last one the epoch's mean.
            let mean = epoch.unwrap();
            assert_eq!(
                (seen.len(), seen[1].0, seen[1].1, seen[1].2),
                (2, 2, 2, mean)
            );
        }
        let h = chains.value().unwrap().to_f64_vec();
        assert!(h.iter().all(|&h| h == 0.0 || h == 1.0));
        assert!(h.contains(&1.0), "the chains moved");
        // Reset, set, and a wrong shape refused.
        chains.reset().unwrap();
        assert!(all_zero(chains));
        chains.set(Array2::<f64>::ones((7, 16))).unwrap();
        assert_eq!(
            chains.value().unwrap(),
            Tensor::full(&[7, 16], 1.0, DType::F32)
        );
        let err = chains.set(Array2::<f32>::ones((20, 16))).unwrap_err();
        assert!(err.to_string().contains("[7, 16]"), "{err}");
    }
    // CD has no chains; the default keeps one per minibatch row.
    let cd = Cd::new(&rbm, &CdConfig::default(), &stream)
        .compile()
        .unwrap();
    assert!(cd.chains().is_none());
    let pcd = CdConfig {
        persistent: true,
        batch: 12,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&rbm, &pcd, &stream).compile().unwrap();
    assert_eq!(trainer.chains().unwrap().len(), 12);
}

#[test]
fn impossible_settings_are_errors() {
    let g = Graph::new();
    let rbm = GbRbm::new(&g, 6, 4, 1).unwrap();
    let stream = RandomStream::new(&g, 1);
    let none = CdConfig {
        persistent: true,
        chains: Some(0),
        ..CdConfig::default()
    };
    let err = Cd::new(&rbm, &none, &stream).compile().err().unwrap();
    assert!(err.to_string().contains("persistent chain"), "{err}");
    let k0 = CdConfig {
        k: 0,
        ..CdConfig::default()
    };
    let err = Cd::new(&rbm, &k0, &stream).compile().err().unwrap();
    assert!(err.to_string().contains("k = 0"), "{err}");
}
