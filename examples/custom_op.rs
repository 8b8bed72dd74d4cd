//! Writing your own op: a Bernoulli sampler used in the negative phase of contrastive
//! divergence, implemented through the public `CustomOp` trait.
//!
//! The op takes probabilities `p` and uniform noise `u` (drawn by a `RandomStream`, so the
//! randomness stays reproducible and advances with every call) and returns `1` where `u < p`.
//! Sampling has no gradient; the CD update holds the negative sample constant anyway.
//!
//! `cargo run --release --example custom_op -- [--epochs N] [--seed S]`

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;

use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::{CustomOp, Type};
// gradus re-exports the ndarray it is built on: a custom op computes with the same arrays.
use gradus::ndarray::{Array1, Array2, Zip};

// ANCHOR: op
/// `sample(p, u) = [u < p]`, elementwise, for `f32` and `f64`.
struct BernoulliSample;

impl CustomOp for BernoulliSample {
    fn name(&self) -> &str {
        "bernoulli_sample"
    }

    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        match inputs {
            [p, u] if p == u && p.dtype.is_float() => Ok(p.clone()),
            _ => Err(format!(
                "needs two float tensors of one type, got {inputs:?}"
            )),
        }
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        fn sample<T: gradus::Float>(
            p: &gradus::ndarray::ArrayD<T>,
            u: &gradus::ndarray::ArrayD<T>,
        ) -> gradus::ndarray::ArrayD<T> {
            Zip::from(p)
                .and(u)
                .map_collect(|&p, &u| if u < p { T::one() } else { T::zero() })
        }
        match inputs {
            [Tensor::F32(p), Tensor::F32(u)] => Ok(Tensor::F32(sample(p, u))),
            [Tensor::F64(p), Tensor::F64(u)] => Ok(Tensor::F64(sample(p, u))),
            _ => Err("expected two float tensors of one dtype".into()),
        }
    }
    // A sample carries no gradient on purpose: grad treats the op like stop_gradient. (An op
    // with neither this nor a `vjp` is an error from grad, not a silent zero.)
    fn stops_gradient(&self) -> bool {
        true
    }
}
// ANCHOR_END: op

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = common::Args::parse(5)?;
    let mnist = args.mnist()?;
    let mut rng = args.rng();
    let (n_hidden, lr, batch) = (200, 0.1, 20);

    // ANCHOR: cd
    let g = Graph::new();
    let stream = RandomStream::new(&g, args.seed);
    let sample_op: Arc<dyn CustomOp> = Arc::new(BernoulliSample);
    let sample = |p: &Expr| g.custom(sample_op.clone(), &[p, &stream.uniform(p)]);

    let x = g.input("x", DType::F32, &[None, Some(784)]);
    let w = g.shared("W", common::glorot(784, n_hidden, &mut rng) * 0.1);
    let b = g.shared("b", Array1::<f32>::zeros(784));
    let c = g.shared("c", Array1::<f32>::zeros(n_hidden));
    let free_energy = |v: &Expr| {
        -(v.matmul(&b.expand_dims(&[1])).squeeze(&[1])
            + (v.matmul(&w) + &c).softplus().sum_axes(&[1], false))
    };

    // CD-1: data -> hidden sample -> visible sample (the negative phase, via the custom op).
    let h0 = sample(&(x.matmul(&w) + &c).sigmoid());
    let v1 = sample(&(h0.matmul(&w.t()) + &b).sigmoid());
    let cost = free_energy(&x).mean() - free_energy(&v1.stop_gradient()).mean();
    let grads = grad(&cost, &[&w, &b, &c])?;
    let updates = gradus::optim::Optimizer::sgd(lr).updates(&[&w, &b, &c], &grads)?;
    let recon = (&x - &(((x.matmul(&w) + &c).sigmoid().matmul(&w.t())) + &b).sigmoid())
        .square()
        .sum_axes(&[1], false)
        .mean();
    let train = function(&[&x], &[&recon])
        .updates(&gradus::optim::as_pairs(&updates))
        .compile()?;
    // ANCHOR_END: cd

    for epoch in 1..=args.epochs {
        let batches = common::minibatches(mnist.train_labels.len(), batch, &mut rng);
        let mean = common::epoch(
            &format!("epoch {epoch}"),
            "reconstruction error",
            &batches,
            |idx| train.call(&[common::rows(&mnist.train_images, idx)])?[0].item(),
        )?;
        println!("epoch {epoch}  reconstruction error {mean:.3}");
    }
    let filters: Array2<f32> = w
        .get_value()?
        .as_f32()
        .ok_or("W is f32")?
        .clone()
        .into_dimensionality::<ndarray::Ix2>()?
        .t()
        .to_owned();
    std::fs::create_dir_all(&args.out)?;
    gradus::viz::tile(filters.view(), 28, 28, 20)?.save(args.out.join("custom_op_filters.png"))?;
    println!("wrote {}/custom_op_filters.png", args.out.display());
    Ok(())
}
