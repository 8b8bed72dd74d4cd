//! The replicated softmax model (Salakhutdinov & Hinton 2009) on documents drawn from a known
//! mixture of multinomial topics, one topic per document, so that the generator's own
//! log-probability of a held-out document is exact: `log Σ_t π_t Π_k θ_tk^{v_k}`.
//!
//! It draws the topics (`θ_t = 0.9 Dirichlet(0.1) + 0.1 uniform` over the vocabulary, uniform
//! `π`), training and
//! held-out documents of a fixed length, trains the model by the library's CD, estimates its
//! `log Z` by AIS (checked against the exact sum over the hidden states), and prints the
//! held-out log-probability per word of the model next to the generator's.
//!
//! `cargo run --release --example replicated_softmax -- [--epochs N] [--seed S] [--hidden F] [--k K] [--pcd]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::CdConfig;
use gradus::models::cd::Cd;
use gradus::models::rsm::{Rsm, RsmAis};
use gradus::prelude::*;
use gradus::random::RandomStream;
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma};

const WORDS: usize = 100;
const TOPICS: usize = 5;
const LENGTH: usize = 40;
const TRAIN_DOCS: usize = 5000;
const TEST_DOCS: usize = 1000;
/// The share of each topic spread evenly over the vocabulary, so that no word is impossible.
const BACKGROUND: f64 = 0.1;

/// A mixture of multinomial topics: `θ [TOPICS, WORDS]`, uniform weights.
struct Topics {
    theta: Array2<f64>,
}

impl Topics {
    fn draw(rng: &mut StdRng) -> Result<Topics, Box<dyn std::error::Error>> {
        let gamma = Gamma::new(0.1, 1.0)?;
        let mut theta = Array2::from_shape_fn((TOPICS, WORDS), |_| gamma.sample(rng) + 1e-12);
        for mut row in theta.rows_mut() {
            let s = row.sum();
            row.mapv_inplace(|p| (1.0 - BACKGROUND) * p / s + BACKGROUND / WORDS as f64);
        }
        Ok(Topics { theta })
    }

    /// `n` documents of `LENGTH` words, as counts.
    fn documents(&self, n: usize, rng: &mut StdRng) -> Array2<f64> {
        let mut docs = Array2::zeros((n, WORDS));
        for mut doc in docs.rows_mut() {
            let t = rng.random_range(0..TOPICS);
            for _ in 0..LENGTH {
                let mut u: f64 = rng.random();
                let mut k = 0;
                while k + 1 < WORDS && u >= self.theta[(t, k)] {
                    u -= self.theta[(t, k)];
                    k += 1;
                }
                doc[k] += 1.0;
            }
        }
        docs
    }

    /// The exact log-probability of each document (as a sequence of words).
    fn log_prob(&self, docs: &Array2<f64>) -> Array1<f64> {
        let log_theta = self.theta.mapv(f64::ln);
        let per_topic = docs.dot(&log_theta.t()) - (TOPICS as f64).ln();
        per_topic.map_axis(Axis(1), |r| {
            let m = r.fold(f64::NEG_INFINITY, |m, &x| m.max(x));
            m + r.iter().map(|&x| (x - m).exp()).sum::<f64>().ln()
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(40)?;
    let n_hidden = args.hidden.unwrap_or(10);
    let mut rng = args.rng();
    let topics = Topics::draw(&mut rng)?;
    let train = topics.documents(TRAIN_DOCS, &mut rng);
    let test = topics.documents(TEST_DOCS, &mut rng);
    let cfg = common::cd_config(
        &args,
        CdConfig {
            lr: 0.001,
            momentum: 0.5,
            weight_decay: 0.0,
            batch: 50,
            ..CdConfig::default()
        },
    );
    println!(
        "replicated softmax {WORDS}-{n_hidden} on {TRAIN_DOCS} documents of {LENGTH} words from {TOPICS} topics; {}, {} epochs",
        common::describe_cd(&cfg),
        args.epochs
    );

    // ANCHOR: train
    let g = Graph::new();
    let rsm = Rsm::new(&g, WORDS, n_hidden, LENGTH, args.seed)?;
    rsm.init_visible_bias(&train)?;
    let trainer = Cd::new(&rsm, &cfg, &RandomStream::new(&g, args.seed)).compile()?;
    let data = train.mapv(|c| c as f32);
    let start = Instant::now();
    for epoch in 1..=args.epochs {
        let error = trainer.epoch(&data, &mut rng, |_, _, _| {})?;
        if epoch % 5 == 0 || epoch == 1 {
            println!(
                "  epoch {epoch:3}  reconstruction error {error:8.3}  ({:.1}s)",
                start.elapsed().as_secs_f64()
            );
        }
    }
    // ANCHOR_END: train
    // ANCHOR: evaluate
    // AIS from the base-rate model of the training words, checked against the exact log Z.
    let freq = train.sum_axis(Axis(0)) + 0.5;
    let base = freq.mapv(f64::ln) - freq.sum().ln();
    let ais = RsmAis {
        base_vbias: Some(base),
        ..RsmAis::default()
    };
    let log_z = rsm.ais_log_partition(&ais)?;
    let exact = rsm.exact_log_partition()?;
    let words = (TEST_DOCS * LENGTH) as f64;
    let model = rsm.log_prob(&test, log_z)?.sum() / words;
    let model_exact = rsm.log_prob(&test, exact)?.sum() / words;
    let generator = topics.log_prob(&test).sum() / words;
    // ANCHOR_END: evaluate
    println!(
        "log Z: AIS {log_z:.4} ({} runs, {} temperatures), exact {exact:.4}, difference {:.4}",
        ais.runs,
        ais.steps,
        log_z - exact
    );
    let unigram = {
        let f = train.sum_axis(Axis(0)) + 0.5;
        let lp = f.mapv(f64::ln) - f.sum().ln();
        test.dot(&lp).sum() / words
    };
    let gap = (model - generator) / generator.abs();
    println!(
        "held-out log-probability per word: model {model:.4} by AIS ({model_exact:.4} by the exact log Z), generator {generator:.4} ({:+.2}%), unigram {unigram:.4}",
        100.0 * gap
    );
    println!(
        "within 5% of the generator: {}  ({:.1}s)",
        if gap.abs() <= 0.05 { "yes" } else { "NO" },
        start.elapsed().as_secs_f64()
    );
    if gap.abs() > 0.05 {
        return Err("the model is not within 5% of the generator".into());
    }
    Ok(())
}
