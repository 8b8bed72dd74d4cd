//! Deep belief nets at CI size: greedy pretraining, generation, fine-tuning as a classifier
//! that shares the RBMs' variables, and the unrolled deep autoencoder.

use gradus::data::Mnist;
use gradus::models::CdConfig;
use gradus::models::dbn::{Dbn, FineTuneConfig, LayerSchedule, TopUnits};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};

fn digits(n: usize) -> (Array2<f32>, Vec<usize>) {
    let m = Mnist::bundled().unwrap().truncate(n, 0);
    (m.train_images, m.train_labels)
}

/// A DBN whose weights start at N(0, 0.1²), which learns within CI's few updates.
fn dbn(g: &Graph, sizes: &[usize], top: TopUnits, seed: u64) -> Dbn {
    let dbn = Dbn::with_top(g, sizes, top, seed).unwrap();
    dbn.init_weights(0.1, seed).unwrap();
    dbn
}

fn schedule(depth: usize, epochs: usize) -> Vec<LayerSchedule> {
    let cd = CdConfig {
        batch: 20,
        ..CdConfig::default()
    };
    vec![LayerSchedule { epochs, cd }; depth]
}

fn matrix(t: &Tensor) -> Array2<f32> {
    t.as_f32().unwrap().clone().into_dimensionality().unwrap()
}

fn labels(y: &[usize]) -> Tensor {
    Tensor::from(Array1::from_iter(y.iter().map(|&v| v as i64)))
}

#[test]
fn greedy_pretraining_lowers_every_layers_reconstruction_error() {
    let (x, _) = digits(300);
    let g = Graph::new();
    let rng = RandomStream::new(&g, 3);
    let dbn = dbn(&g, &[784, 64, 32], TopUnits::Binary, 3);
    let mut seen = 0;
    let curves = dbn
        .pretrain(&x, &schedule(2, 3), &rng, 3, |p| {
            assert!(p.batch <= p.batches && p.error.is_finite());
            seen += 1;
        })
        .unwrap();
    assert_eq!(seen, 2 * 3 * 15, "one report per minibatch");
    for (l, c) in curves.iter().enumerate() {
        assert_eq!(c.len(), 3);
        assert!(c[2] < 0.85 * c[0], "layer {l}: {c:?}");
    }
    // The second layer was trained on the first one's hidden probabilities: its visible
    // biases start at the logits of their means.
    let h = matrix(
        &dbn.encoder(1)
            .unwrap()
            .call(&[Tensor::from(x.clone())])
            .unwrap()[0],
    );
    assert_eq!(h.dim(), (300, 64));
    assert!(h.iter().all(|p| (0.0..=1.0).contains(p)));

    // Generation: chains in the top RBM, shown through the down pass.
    let generate = dbn.generator(5, &rng).unwrap();
    let start = h.select(Axis(0), &[0, 1, 2]);
    let out = generate.call(&[Tensor::from(start)]).unwrap();
    let (state, image) = (matrix(&out[0]), matrix(&out[1]));
    assert_eq!((state.dim(), image.dim()), ((3, 64), (3, 784)));
    assert!(state.iter().all(|&s| s == 0.0 || s == 1.0));
    assert!(image.iter().all(|p| (0.0..=1.0).contains(p)));
}

#[test]
fn fine_tuning_shares_and_updates_the_rbm_variables_and_lowers_the_loss() {
    let (x, y) = digits(300);
    let g = Graph::new();
    let rng = RandomStream::new(&g, 5);
    let dbn = dbn(&g, &[784, 64, 32], TopUnits::Binary, 5);
    dbn.pretrain(&x, &schedule(2, 2), &rng, 5, |_| {}).unwrap();
    let net = dbn.classifier(10, 5).unwrap();
    assert_eq!(net.layers.len(), 3);
    for (l, rbm) in dbn.rbms.iter().enumerate() {
        assert!(net.layers[l].0.same(&rbm.w) && net.layers[l].1.same(&rbm.hbias));
    }
    let w0 = dbn.rbms[0].w.get_value().unwrap();
    let c1 = dbn.rbms[1].hbias.get_value().unwrap();
    let loss = net.loss().unwrap();
    let (xs, ys) = (Tensor::from(x.clone()), labels(&y));
    let before = loss.call(&[xs.clone(), ys.clone()]).unwrap()[0]
        .item()
        .unwrap();

    let cfg = FineTuneConfig {
        keep_input: 0.8,
        ..FineTuneConfig::default()
    };
    let train = net.trainer(&cfg, &rng).unwrap();
    for _ in 0..5 {
        for chunk in (0..300).collect::<Vec<_>>().chunks(20) {
            let yb: Vec<usize> = chunk.iter().map(|&i| y[i]).collect();
            let feed = [
                Tensor::from(x.select(Axis(0), chunk)),
                labels(&yb),
                0.5f32.into(),
            ];
            train.call(&feed).unwrap();
        }
    }
    let after = loss.call(&[xs, ys]).unwrap()[0].item().unwrap();
    assert!(after < 0.6 * before, "loss {before} -> {after}");
    // Fine-tuning moved the DBN's own weights and biases.
    assert_ne!(dbn.rbms[0].w.get_value().unwrap(), w0);
    assert_ne!(dbn.rbms[1].hbias.get_value().unwrap(), c1);

    // snapshot / restore round-trips every parameter.
    let snap = net.snapshot().unwrap();
    train
        .call(&[
            Tensor::from(x.select(Axis(0), &[0, 1])),
            labels(&y[..2]),
            0.1f32.into(),
        ])
        .unwrap();
    assert_ne!(dbn.rbms[0].w.get_value().unwrap(), snap[0]);
    net.restore(&snap).unwrap();
    assert_eq!(dbn.rbms[0].w.get_value().unwrap(), snap[0]);
}

#[test]
fn unrolled_autoencoder_starts_tied_and_its_reconstruction_loss_falls() {
    let (x, _) = digits(300);
    let g = Graph::new();
    let rng = RandomStream::new(&g, 7);
    let dbn = dbn(&g, &[784, 64, 32, 8], TopUnits::Linear, 7);
    let mut sched = schedule(3, 3);
    sched[2].cd.lr = 0.01;
    let curves = dbn.pretrain(&x, &sched, &rng, 7, |_| {}).unwrap();
    for (l, c) in curves.iter().enumerate() {
        assert!(c[2] < c[0], "layer {l}: {c:?}");
    }
    let ae = dbn.unroll_autoencoder().unwrap();
    // Tied at the start: the decoder's first layer is the top RBM's Wᵀ, but a new variable.
    let top_w = matrix(&dbn.rbms[2].w.get_value().unwrap());
    let dec_w = matrix(&ae.decoder[0].0.get_value().unwrap());
    assert_eq!(dec_w, top_w.t());
    assert!(!ae.decoder[0].0.same(&dbn.rbms[2].w) && ae.encoder[2].0.same(&dbn.rbms[2].w));
    // The code layer is linear: codes leave [0, 1].
    let codes = matrix(
        &ae.coder()
            .unwrap()
            .call(&[Tensor::from(x.clone())])
            .unwrap()[0],
    );
    assert_eq!(codes.ncols(), 8);
    assert!(codes.iter().any(|&c| c < 0.0));

    let evaluate = ae.evaluator().unwrap();
    let xs = Tensor::from(x.clone());
    let first = evaluate.call(std::slice::from_ref(&xs)).unwrap();
    let train = ae.trainer(0.9, 0.0).unwrap();
    for _ in 0..4 {
        for chunk in (0..300).collect::<Vec<_>>().chunks(20) {
            train
                .call(&[Tensor::from(x.select(Axis(0), chunk)), 0.02f32.into()])
                .unwrap();
        }
    }
    let last = evaluate.call(&[xs]).unwrap();
    let (ce0, se0) = (first[0].item().unwrap(), first[1].item().unwrap());
    let (ce1, se1) = (last[0].item().unwrap(), last[1].item().unwrap());
    assert!(ce1 < 0.9 * ce0, "cross-entropy {ce0} -> {ce1}");
    assert!(se1 < se0, "squared error {se0} -> {se1}");
    // Untied after training: the decoder moved away from the encoder's transpose.
    let dec_w = matrix(&ae.decoder[0].0.get_value().unwrap());
    let top_w = matrix(&dbn.rbms[2].w.get_value().unwrap());
    assert_ne!(dec_w, top_w.t());
}

#[test]
fn bad_layer_sizes_and_schedules_are_usage_errors() {
    let g = Graph::new();
    assert!(matches!(
        Dbn::new(&g, &[784], 1),
        Err(gradus::Error::Usage { .. })
    ));
    assert!(matches!(
        Dbn::new(&g, &[784, 0], 1),
        Err(gradus::Error::Usage { .. })
    ));
    let dbn = Dbn::new(&g, &[4, 3, 2], 1).unwrap();
    let rng = RandomStream::new(&g, 1);
    let x = Array2::<f32>::zeros((4, 4));
    assert!(matches!(
        dbn.pretrain(&x, &schedule(1, 1), &rng, 1, |_| {}),
        Err(gradus::Error::Usage { .. })
    ));
    assert_eq!(dbn.sizes(), vec![4, 3, 2]);
}

#[test]
fn a_linear_top_trains_by_pcd_with_real_valued_chains() {
    let (x, _) = digits(100);
    let g = Graph::new();
    let rng = RandomStream::new(&g, 3);
    let dbn = dbn(&g, &[784, 8], TopUnits::Linear, 3);
    let cd = CdConfig {
        persistent: true,
        chains: Some(10),
        lr: 0.01,
        ..CdConfig::default()
    };
    let step = dbn.layer_trainer(0, &cd, &rng).unwrap();
    let chain = g
        .shared_variables()
        .into_iter()
        .find(|v| v.name() == "pcd_chain")
        .expect("the persistent chain");
    let mut errors = Vec::new();
    for b in 0..5 {
        let batch = x.slice(ndarray::s![b * 20..(b + 1) * 20, ..]).to_owned();
        errors.push(step.call(&[batch.into()]).unwrap()[0].item().unwrap());
    }
    // Gaussian hidden states: neither 0 nor 1.
    let h = chain.get_value().unwrap().to_f64_vec();
    assert_eq!(h.len(), 10 * 8);
    assert!(h.iter().all(|&h| h != 0.0 && h != 1.0), "{h:?}");
    assert!(errors.iter().all(|e| e.is_finite()), "{errors:?}");
}
