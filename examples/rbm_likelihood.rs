//! How good is an RBM, in nats? Trains a 784-16 RBM by CD-1 and by PCD-1 on MNIST digits
//! binarized at 0.5, then measures each by its exact log-likelihood (summing over all 2^16
//! hidden states) and checks an AIS estimate of log Z against the exact value.
//!
//! Both trainers use plain SGD: learning rate 0.05 (decaying linearly to zero over the last
//! fifth of the epochs), no momentum, no weight decay, batches of 100. On the bundled subset
//! PCD-1 should beat CD-1 by about 20 nats while their reconstruction errors barely differ:
//! `out/rbm_likelihood_curve.png` draws both reconstruction errors per epoch, the test
//! log-likelihoods in the legend.
//!
//! `--centered` compares PCD-1 on the plain RBM with PCD-1 on a centered one
//! ([`CenteredRbm`], Melchior et al. 2016: offsets sliding by 0.01 towards the data's means),
//! both under the same settings; the centered model is evaluated as its equivalent plain RBM.
//! The curve goes to `out/rbm_likelihood_centered_curve.png`.
//!
//! `cargo run --release --example rbm_likelihood -- [--centered] [--lr X] [--data DIR]
//! [--epochs N] [--seed S] [--hidden N] [--out DIR]`

#[path = "common/mod.rs"]
mod common;

use std::time::Instant;

use gradus::models::cd::Cd;
use gradus::models::rbm_eval::{self, AisConfig, Binarize, RbmParams, binarize};
use gradus::models::{CdConfig, CenteredRbm, Rbm};
use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::viz::Plot;

/// The example's own options, removed before the common ones are parsed.
struct Own {
    centered: bool,
    lr: f64,
}

fn own_options(argv: &mut Vec<String>) -> Result<Own, String> {
    let centered = match argv.iter().position(|a| a == "--centered") {
        Some(at) => {
            argv.remove(at);
            true
        }
        None => false,
    };
    let lr = match argv.iter().position(|a| a == "--lr") {
        Some(at) if at + 1 < argv.len() => {
            let v = argv.remove(at + 1);
            argv.remove(at);
            v.parse().map_err(|e| format!("--lr: {e}"))?
        }
        Some(_) => return Err("--lr needs a value".into()),
        None => 0.05,
    };
    Ok(Own { centered, lr })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let own = own_options(&mut argv)?;
    let args = common::Args::parse_from(argv.into_iter(), 50)?;
    let mnist = args.mnist()?;
    let n_hidden = args.hidden.unwrap_or(16);
    let train_x = binarize(&mnist.train_images, 0.5);
    let test_x = binarize(&mnist.test_images, 0.5);
    let train32 = train_x.mapv(|x| x as f32);
    let decay_epochs = (args.epochs / 5).max(1);
    println!(
        "RBM 784-{n_hidden}, {} epochs, lr {} (decaying over the last {decay_epochs}), \
         no momentum, no weight decay, batch 100; digits binarized at 0.5",
        args.epochs, own.lr
    );

    let mut curves = Vec::new();
    // (name, persistent, centered)
    let runs = if own.centered {
        [("PCD-1", true, false), ("centered PCD-1", true, true)]
    } else {
        [("CD-1", false, false), ("PCD-1", true, false)]
    };
    for (name, persistent, centered) in runs {
        let cfg = CdConfig {
            k: 1,
            persistent,
            lr: own.lr,
            momentum: 0.0,
            weight_decay: 0.0,
            batch: 100,
            chains: None,
        };

        let g = Graph::new();
        // ANCHOR: centered
        let model = if centered {
            let rbm = CenteredRbm::new(&g, 784, n_hidden, args.seed)?;
            rbm.init_from_data(&train32)?; // μ at the data's mean, b at its logit
            Model::Centered(rbm)
        } else {
            let rbm = Rbm::new(&g, 784, n_hidden, args.seed)?;
            rbm.init_visible_bias(&train32)?;
            Model::Plain(rbm)
        };
        let lr = g.shared("lr", cfg.lr);
        let rng = RandomStream::new(&g, args.seed);
        let step = match &model {
            Model::Plain(rbm) => rbm.trainer_with_learning_rate(&cfg, &rng, &lr)?,
            // The same trainer: the centered energy's gradient is the centered one, and the
            // model moves its offsets in each step.
            Model::Centered(rbm) => Cd::new(rbm, &cfg, &rng)
                .learning_rate(&lr)
                .compile()?
                .into_step(),
        };
        // ANCHOR_END: centered
        let mut rng = args.rng();
        let per_epoch = train32.nrows().div_ceil(cfg.batch);
        let (total, decay) = (args.epochs * per_epoch, decay_epochs * per_epoch);
        let start = Instant::now();
        let mut t = 0;
        let mut recon = 0.0;
        let mut curve = Vec::new();
        let bar = common::progress(args.epochs * per_epoch, name);
        for epoch in 1..=args.epochs {
            recon = 0.0;
            bar.set_message(format!("epoch {epoch}"));
            for idx in common::minibatches(train32.nrows(), cfg.batch, &mut rng) {
                bar.inc(1);
                let left = (total - t) as f64 / decay as f64;
                lr.set_value(cfg.lr * left.min(1.0))?;
                recon += step.call(&[common::rows(&train32, &idx)])?[0].item()? / per_epoch as f64;
                t += 1;
            }
            curve.push(recon);
        }
        bar.finish_and_clear();
        let train_s = start.elapsed().as_secs_f64();

        // A centered RBM is measured as its equivalent plain one.
        let params = match &model {
            Model::Plain(rbm) => RbmParams::of(rbm)?,
            Model::Centered(rbm) => rbm.plain_params()?,
        };
        let start = Instant::now();
        let exact = (n_hidden <= rbm_eval::MAX_ENUMERATED_UNITS)
            .then(|| params.exact_log_partition())
            .transpose()?;
        let exact_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let ais = params.ais_log_partition(&AisConfig::default().with_base_rate(&train_x))?;
        let ais_s = start.elapsed().as_secs_f64();

        println!("\n{name}: trained in {train_s:.1}s, last-epoch reconstruction error {recon:.2}");
        println!(
            "  AIS log Z     {:9.3}  [{:.3}, {:.3}]  (100 runs, 14,501 betas, {ais_s:.1}s)",
            ais.log_z, ais.log_z_lower, ais.log_z_upper
        );
        let log_z = match exact {
            Some(z) => {
                println!(
                    "  exact log Z   {z:9.3}  (2^{n_hidden} states, {exact_s:.2}s); AIS - exact = \
                     {:+.3}",
                    ais.log_z - z
                );
                z
            }
            None => ais.log_z,
        };
        let which = if exact.is_some() { "exact" } else { "AIS" };
        let test_ll = params.log_likelihood(&test_x, log_z)?;
        println!(
            "  {which} test log-likelihood {test_ll:.2} nats, train {:.2}",
            params.log_likelihood(&train_x, log_z)?
        );
        curves.push((
            format!("{name}: test log-likelihood {test_ll:.1} nats"),
            curve,
        ));
        println!(
            "  test log pseudo-likelihood {:.2}",
            params.pseudo_log_likelihood(&test_x, Binarize::No)?
        );
    }

    let (title, file) = if own.centered {
        (
            "PCD-1, plain and centered",
            "rbm_likelihood_centered_curve.png",
        )
    } else {
        ("CD-1 and PCD-1", "rbm_likelihood_curve.png")
    };
    let mut plot = Plot::new(format!("RBM 784-{n_hidden}: {title}"))
        .with_x_label("epoch")
        .with_y_label("squared reconstruction error per digit");
    for (name, curve) in &curves {
        plot = plot.with_series(name, curve);
    }
    let path = args.out.join(file);
    plot.save(&path)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// The model a run trained.
enum Model {
    Plain(Rbm),
    Centered(CenteredRbm),
}
