//! The replicated softmax model: its exact log Z against a brute-force sum over every document
//! and hidden state, AIS against the exact log Z, the Gibbs chain's documents, a short CD run on
//! documents of two topics that beats the unigram model on held-out documents, and a user's
//! mistakes as errors.

use gradus::Error;
use gradus::models::CdConfig;
use gradus::models::cd::{Cd, EnergyModel};
use gradus::models::rsm::{Rsm, RsmAis};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A model of `k` words, `f` hidden units and documents of `n` words with random parameters.
fn random_rsm(k: usize, f: usize, n: usize, scale: f32, seed: u64) -> Rsm {
    let g = Graph::new();
    let rsm = Rsm::new(&g, k, f, n, seed).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |len| -> Vec<f32> {
        (0..len)
            .map(|_| scale * rng.random_range(-1.0..1.0))
            .collect()
    };
    rsm.w
        .set_value(Tensor::from(
            Array2::from_shape_vec((k, f), draw(k * f)).unwrap(),
        ))
        .unwrap();
    rsm.vbias.set_value(Tensor::from(draw(k))).unwrap();
    rsm.hbias.set_value(Tensor::from(draw(f))).unwrap();
    rsm
}

#[test]
fn the_exact_log_partition_is_the_sum_over_every_sequence_and_hidden_state() {
    let (k, f, n) = (3, 2, 4);
    let rsm = random_rsm(k, f, n, 1.0, 1);
    // Every sequence of n words, as counts: -F(v) sums out h.
    let mut docs = Vec::new();
    for seq in 0..k.pow(n as u32) {
        let mut v = vec![0.0; k];
        let mut s = seq;
        for _ in 0..n {
            v[s % k] += 1.0;
            s /= k;
        }
        docs.extend(v);
    }
    let docs = Array2::from_shape_vec((k.pow(n as u32), k), docs).unwrap();
    let neg_f = rsm.neg_free_energy(&docs).unwrap();
    let m = neg_f.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let brute = m + neg_f.mapv(|x| (x - m).exp()).sum().ln();
    let exact = rsm.exact_log_partition().unwrap();
    assert!((brute - exact).abs() < 1e-5, "{brute} vs {exact}");
}

#[test]
fn ais_matches_the_exact_log_partition() {
    let rsm = random_rsm(8, 4, 6, 1.0, 2);
    let exact = rsm.exact_log_partition().unwrap();
    let cfg = RsmAis {
        runs: 50,
        steps: 500,
        ..RsmAis::default()
    };
    let ais = rsm.ais_log_partition(&cfg).unwrap();
    assert!((ais - exact).abs() < 0.05, "AIS {ais} vs exact {exact}");
}

#[test]
fn the_chain_draws_documents_of_the_model_length() {
    let rsm = random_rsm(7, 3, 12, 1.0, 3);
    let g = rsm.w.graph().clone();
    let rng = RandomStream::new(&g, 4);
    let h = g.input("h", DType::F32, &[None, Some(3)]);
    let f = function(&[&h], &[&rsm.sample_visible(&h, &rng)])
        .compile()
        .unwrap();
    let v = f
        .call(&[Tensor::full(&[2000, 3], 1.0, DType::F32)])
        .unwrap()[0]
        .to_f64_vec();
    let v = Array2::from_shape_vec((2000, 7), v).unwrap();
    assert!(v.rows().into_iter().all(|r| r.sum() == 12.0));
    // The mean counts are 12 softmax(b + W 1).
    let (w, b, _) = rsm.values().unwrap();
    let logits = &b + &w.sum_axis(Axis(1));
    let p = logits.mapv(f64::exp) / logits.mapv(f64::exp).sum();
    let mean = v.mean_axis(Axis(0)).unwrap();
    for (m, q) in mean.iter().zip(&p) {
        assert!(
            (m - 12.0 * q).abs() < 0.15 + 0.05 * 12.0 * q,
            "{mean} vs {}",
            &p * 12.0
        );
    }
}

/// `n` documents of `len` words, each from one of two topics over disjoint halves of `k` words.
fn two_topic_docs(n: usize, k: usize, len: usize, rng: &mut StdRng) -> Array2<f64> {
    let mut docs = Array2::zeros((n, k));
    for mut d in docs.rows_mut() {
        let half = rng.random_range(0..2) * k / 2;
        for _ in 0..len {
            // 90% of the words from the topic's half, 10% from anywhere.
            let w = if rng.random::<f64>() < 0.9 {
                half + rng.random_range(0..k / 2)
            } else {
                rng.random_range(0..k)
            };
            d[w] += 1.0;
        }
    }
    docs
}

#[test]
fn cd_learns_topics_that_beat_the_unigram_model() {
    let (k, len) = (12, 10);
    let mut rng = StdRng::seed_from_u64(5);
    let train = two_topic_docs(400, k, len, &mut rng);
    let test = two_topic_docs(200, k, len, &mut rng);
    let g = Graph::new();
    let rsm = Rsm::new(&g, k, 4, len, 1).unwrap();
    rsm.init_visible_bias(&train).unwrap();
    let cfg = CdConfig {
        lr: 0.02,
        momentum: 0.5,
        weight_decay: 0.0,
        batch: 20,
        ..CdConfig::default()
    };
    let trainer = Cd::new(&rsm, &cfg, &RandomStream::new(&g, 1))
        .compile()
        .unwrap();
    let data = train.mapv(|c| c as f32);
    let errors: Vec<f64> = (0..20)
        .map(|_| trainer.epoch(&data, &mut rng, |_, _, _| {}).unwrap())
        .collect();
    assert!(
        errors[19] < errors[0],
        "reconstruction error per epoch: {errors:?}"
    );
    let log_z = rsm.exact_log_partition().unwrap();
    let words = (200 * len) as f64;
    let model = rsm.log_prob(&test, log_z).unwrap().sum() / words;
    let freq = train.sum_axis(Axis(0)) / train.sum();
    let unigram = test.dot(&freq.mapv(f64::ln)).sum() / words;
    assert!(model > unigram + 0.1, "model {model} vs unigram {unigram}");
}

#[test]
fn a_users_mistakes_are_errors() {
    let g = Graph::new();
    assert!(matches!(Rsm::new(&g, 0, 3, 4, 1), Err(Error::Usage { .. })));
    assert!(matches!(Rsm::new(&g, 3, 3, 0, 1), Err(Error::Usage { .. })));
    let rsm = Rsm::new(&g, 3, 2, 4, 1).unwrap();
    let wrong_width = Array2::zeros((2, 4));
    assert!(rsm.neg_free_energy(&wrong_width).is_err());
    let fractional = Array2::from_elem((1, 3), 0.5);
    assert!(rsm.init_visible_bias(&fractional).is_err());
    let wrong_length = Array2::from_shape_vec((1, 3), vec![1.0, 1.0, 1.0]).unwrap();
    assert!(rsm.log_prob(&wrong_length, 0.0).is_err());
    let no_runs = RsmAis {
        runs: 0,
        ..RsmAis::default()
    };
    assert!(rsm.ais_log_partition(&no_runs).is_err());
    let bad_base = RsmAis {
        base_vbias: Some(Array1::zeros(5)),
        ..RsmAis::default()
    };
    assert!(rsm.ais_log_partition(&bad_base).is_err());
    assert!(
        Rsm::new(&g, 3, 30, 4, 1)
            .unwrap()
            .exact_log_partition()
            .is_err()
    );
}
