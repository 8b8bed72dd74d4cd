//! The autoencoder family: the contractive penalty's gradient against finite differences and its
//! closed form, a short training run of every variant on bundled digits, parameter counts, and
//! greedy pretraining then fine-tuning of a stacked denoising autoencoder.

use gradus::data::Mnist;
use gradus::eval;
use gradus::models::StackedAutoencoder;
use gradus::models::autoencoder::{AeConfig, Autoencoder, Corruption, Jacobian, Variant, Weights};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A 5-3 autoencoder over symbolic f64 inputs, with values to feed them.
struct Tiny {
    ae: Autoencoder,
    x: Expr,
    w: Expr,
    hbias: Expr,
    values: [Tensor; 3],
}

fn tiny(seed: u64) -> Tiny {
    let (d, h, n) = (5, 3, 4);
    let g = Graph::new();
    let w = g.input("W", DType::F64, &[Some(d), Some(h)]);
    let hbias = g.input("hbias", DType::F64, &[Some(h)]);
    let vbias = g.input("vbias", DType::F64, &[Some(d)]);
    let x = g.input("x", DType::F64, &[None, Some(d)]);
    let ae = Autoencoder::from_params(&w, &hbias, &vbias, None).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let values = [
        Tensor::from(Array2::from_shape_fn((d, h), |_| {
            rng.random_range(-1.5..1.5)
        })),
        Tensor::from(Array1::from_shape_fn(h, |_| rng.random_range(-0.5..0.5))),
        Tensor::from(Array2::from_shape_fn((n, d), |_| {
            rng.random_range(0.0..1.0)
        })),
    ];
    Tiny {
        ae,
        x,
        w,
        hbias,
        values,
    }
}

/// DLT's `cA.py` divides the penalty with `//`, whose gradient is zero, and silently trains a
/// plain autoencoder. The grad-built penalty must have a real gradient, equal to finite
/// differences.
#[test]
fn contractive_penalty_gradient_matches_finite_differences() {
    let t = tiny(3);
    let penalty = t.ae.contractive_penalty(&t.x).unwrap();
    let [w, c, x] = t.values.clone();
    let report = GradCheck::new(&penalty, &[&t.w, &t.hbias])
        .at(&[w.clone(), c.clone()])
        .feed(&[(&t.x, x.clone())])
        .elementwise()
        .run()
        .unwrap();
    assert_eq!(report.comparisons, 5 * 3 + 3);

    let gw = grad(&penalty, &[&t.w]).unwrap().remove(0);
    let feeds = [(&t.w, w), (&t.hbias, c), (&t.x, x)];
    let gw = eval(&[&gw], &feeds).unwrap().remove(0).to_f64_vec();
    let norm = gw.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(norm > 1e-2, "|d penalty / dW| = {norm}");
}

#[test]
fn grad_built_penalty_equals_the_closed_form_with_the_same_gradient() {
    for seed in 0..3 {
        let t = tiny(seed);
        let built = t.ae.contractive_penalty(&t.x).unwrap();
        let closed = t.ae.contractive_penalty_closed_form(&t.x);
        let gb = grad(&built, &[&t.w, &t.hbias]).unwrap();
        let gc = grad(&closed, &[&t.w, &t.hbias]).unwrap();
        let [w, c, x] = t.values.clone();
        let feeds = [(&t.w, w), (&t.hbias, c), (&t.x, x)];
        let out = eval(&[&built, &closed, &gb[0], &gc[0], &gb[1], &gc[1]], &feeds).unwrap();
        let (b, c) = (out[0].item().unwrap(), out[1].item().unwrap());
        assert!(
            b > 0.0 && (b - c).abs() < 1e-12 * c,
            "seed {seed}: {b} vs {c}"
        );
        for pair in [(&out[2], &out[3]), (&out[4], &out[5])] {
            for (a, b) in pair.0.to_f64_vec().iter().zip(pair.1.to_f64_vec()) {
                assert!((a - b).abs() < 1e-12, "seed {seed}: gradient {a} vs {b}");
            }
        }
    }
}

/// The whole objective of each deterministic variant, differentiated with respect to every
/// parameter of an untied model, against finite differences.
#[test]
fn every_deterministic_loss_passes_gradcheck() {
    let (d, h) = (5, 3);
    let g = Graph::new();
    let params: Vec<Expr> = [
        ("W", vec![d, h]),
        ("W_dec", vec![h, d]),
        ("c", vec![h]),
        ("b", vec![d]),
    ]
    .iter()
    .map(|(n, s)| {
        g.input(
            n,
            DType::F64,
            &s.iter().map(|&k| Some(k)).collect::<Vec<_>>(),
        )
    })
    .collect();
    let x = g.input("x", DType::F64, &[None, Some(d)]);
    let rng = RandomStream::new(&g, 0);
    let mut r = StdRng::seed_from_u64(9);
    let mut values: Vec<Tensor> = params
        .iter()
        .map(|p| {
            let shape: Vec<usize> = p.shape().dims().iter().map(|k| k.unwrap()).collect();
            let n = shape.iter().product();
            Tensor::from_f64(
                &shape,
                (0..n).map(|_| r.random_range(-1.0..1.0)).collect(),
                DType::F64,
            )
            .unwrap()
        })
        .collect();
    let xv = Tensor::from(Array2::from_shape_fn((4, d), |_| r.random_range(0.0..1.0)));
    values.truncate(4);
    for variant in [
        Variant::Plain,
        Variant::Sparse {
            rho: 0.1,
            beta: 3.0,
        },
        Variant::Contractive {
            lambda: 0.5,
            jacobian: Jacobian::Grad,
        },
    ] {
        let ae = Autoencoder::from_params(&params[0], &params[2], &params[3], Some(&params[1]))
            .unwrap()
            .with_variant(variant);
        let loss = ae.loss(&x, &rng).unwrap();
        let wrt: Vec<&Expr> = params.iter().collect();
        let report = GradCheck::new(&loss, &wrt)
            .at(&values)
            .feed(&[(&x, xv.clone())])
            .directions(6)
            .run();
        assert!(report.is_ok(), "{}: {report:?}", variant.name());
    }
}

#[test]
fn tied_and_untied_parameter_counts() {
    let g = Graph::new();
    let tied = Autoencoder::new(&g, 784, 500, Weights::Tied, 0);
    let untied = Autoencoder::new(&g, 784, 500, Weights::Untied, 0);
    assert_eq!(tied.params().len(), 3);
    assert_eq!(untied.params().len(), 4);
    assert_eq!(tied.n_params(), 784 * 500 + 500 + 784);
    assert_eq!(untied.n_params(), 2 * 784 * 500 + 500 + 784);
    assert_eq!(
        untied.w_dec.as_ref().unwrap().shape().dims(),
        vec![Some(500), Some(784)]
    );
}

fn digits() -> (Array2<f32>, Array2<f32>) {
    let m = Mnist::bundled().unwrap().truncate(1000, 200);
    (m.train_images, m.test_images)
}

/// Train one variant on 1000 digits; return the held-out cross-entropy before and after, and
/// the training loss of each minibatch.
fn train(variant: Variant, weights: Weights, hidden: usize, epochs: usize) -> ([f64; 2], Vec<f64>) {
    let (train, test) = digits();
    let g = Graph::new();
    let rng = RandomStream::new(&g, 5);
    let ae = Autoencoder::new(&g, 784, hidden, weights, 5).with_variant(variant);
    let cfg = AeConfig::default();
    let step = ae.trainer(&cfg, &rng).unwrap();
    let evaluate = ae.evaluator().unwrap();
    let held_out = || {
        evaluate.call(&[Tensor::from(test.clone())]).unwrap()[0]
            .item()
            .unwrap()
    };
    let before = held_out();
    let mut order: Vec<usize> = (0..train.nrows()).collect();
    let mut shuffle = StdRng::seed_from_u64(1);
    let mut losses = Vec::new();
    for _ in 0..epochs {
        order.shuffle(&mut shuffle);
        for idx in order.chunks(cfg.batch) {
            let batch = Tensor::from(train.select(Axis(0), idx));
            losses.push(step.call(&[batch]).unwrap()[0].item().unwrap());
        }
    }
    ([before, held_out()], losses)
}

/// The training loss falls from the first quarter of the run to the last, and the clean
/// reconstruction of held-out digits improves.
fn assert_learns(variant: Variant, weights: Weights, hidden: usize, epochs: usize) {
    let t = std::time::Instant::now();
    let ([before, after], losses) = train(variant, weights, hidden, epochs);
    let q = losses.len() / 4;
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len() as f64;
    let (first, last) = (mean(&losses[..q]), mean(&losses[losses.len() - q..]));
    eprintln!(
        "{} {weights:?}: loss {first:.1} -> {last:.1}, held-out cross-entropy {before:.1} -> {after:.1} ({:.1}s)",
        variant.name(),
        t.elapsed().as_secs_f64()
    );
    assert!(losses.iter().all(|l| l.is_finite()));
    assert!(last < 0.9 * first, "{}: {first} -> {last}", variant.name());
    assert!(
        after < 0.8 * before,
        "{}: {before} -> {after}",
        variant.name()
    );
}

#[test]
fn plain_learns() {
    assert_learns(Variant::Plain, Weights::Untied, 16, 2);
}

#[test]
fn denoising_with_masking_noise_learns() {
    assert_learns(
        Variant::Denoising(Corruption::Masking(0.3)),
        Weights::Tied,
        16,
        2,
    );
}

#[test]
fn denoising_with_gaussian_noise_learns() {
    assert_learns(
        Variant::Denoising(Corruption::Gaussian(0.3)),
        Weights::Tied,
        16,
        2,
    );
}

#[test]
fn sparse_learns() {
    assert_learns(
        Variant::Sparse {
            rho: 0.05,
            beta: 0.5,
        },
        Weights::Tied,
        16,
        2,
    );
}

#[test]
fn contractive_learns() {
    assert_learns(
        Variant::Contractive {
            lambda: 0.1,
            jacobian: Jacobian::Grad,
        },
        Weights::Tied,
        8,
        1,
    );
}

/// Greedy pretraining touches only the layer being trained; fine-tuning reaches every encoder
/// and classifies held-out digits far better than chance.
#[test]
fn stacked_denoising_autoencoder_pretrains_layer_by_layer_then_classifies() {
    let m = Mnist::bundled().unwrap().truncate(500, 200);
    let g = Graph::new();
    let rng = RandomStream::new(&g, 2);
    let sda = StackedAutoencoder::new(
        &g,
        &[784, 24, 24],
        10,
        &[Corruption::Masking(0.1), Corruption::Masking(0.2)],
        2,
    )
    .unwrap();
    let cfg = AeConfig::default();
    let value = |e: &Expr| e.get_value().unwrap().to_f64_vec();
    let mut shuffle = StdRng::seed_from_u64(3);
    let mut order: Vec<usize> = (0..m.train_labels.len()).collect();
    for k in 0..2 {
        let step = sda.pretrainer(k, &cfg, &rng).unwrap();
        let others: Vec<Vec<f64>> = sda.params().iter().map(|p| value(p)).collect();
        let mut losses = Vec::new();
        for _ in 0..3 {
            order.shuffle(&mut shuffle);
            for idx in order.chunks(cfg.batch) {
                let batch = Tensor::from(m.train_images.select(Axis(0), idx));
                losses.push(step.call(&[batch]).unwrap()[0].item().unwrap());
            }
        }
        let n = losses.len() / 4;
        let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len() as f64;
        assert!(
            mean(&losses[losses.len() - n..]) < mean(&losses[..n]),
            "layer {k}: {losses:?}"
        );
        for (i, (p, before)) in sda.params().iter().zip(&others).enumerate() {
            let changed = value(p) != *before;
            assert_eq!(
                changed,
                i / 2 == k,
                "pretraining layer {k} changed parameter {i}"
            );
        }
    }

    let encoder_before = value(&sda.layers[0].w);
    let finetune = sda
        .finetuner(&AeConfig {
            lr: 0.2,
            momentum: 0.9,
            ..cfg
        })
        .unwrap();
    let predict = sda.predictor().unwrap();
    for _ in 0..8 {
        order.shuffle(&mut shuffle);
        for idx in order.chunks(cfg.batch) {
            let x = Tensor::from(m.train_images.select(Axis(0), idx));
            let y = Tensor::from(Array1::from_iter(
                idx.iter().map(|&i| m.train_labels[i] as i64),
            ));
            finetune.call(&[x, y]).unwrap();
        }
    }
    assert_ne!(value(&sda.layers[0].w), encoder_before);
    let pred = predict
        .call(&[Tensor::from(m.test_images.clone())])
        .unwrap()[0]
        .to_f64_vec();
    let wrong = pred
        .iter()
        .zip(&m.test_labels)
        .filter(|(p, l)| **p as usize != **l)
        .count();
    let error = wrong as f64 / pred.len() as f64;
    eprintln!(
        "stacked 784-24-24-10 on 500 digits: test error {:.1}%",
        100.0 * error
    );
    assert!(error < 0.3, "test error {error}");
}
