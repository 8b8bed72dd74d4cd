//! Concurrent calls of one function behave as if they ran one after another: each reads one
//! consistent snapshot of the shared variables, its updates are applied together, and every call
//! gets its own random draws. Calls that write nothing still run side by side.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use gradus::prelude::*;
use gradus::random::RandomStream;
use gradus::{CustomOp, Type};

/// What one call saw: the count, the accumulator and the draws.
type Seen = (f64, Vec<f64>, Vec<f64>);

#[test]
fn eight_threads_of_updates_lose_nothing_and_draw_apart() {
    let g = Graph::new();
    let stream = RandomStream::new(&g, 11);
    let count = g.shared("count", 0.0f64);
    let acc = g.shared("acc", vec![0.0f64; 3]);
    let step = g.constant(vec![1.0f64, 2.0, 3.0]);
    let draws = stream.uniform(&acc.broadcast_to(&[4, 3]));
    let f = function(&[], &[&count, &acc, &draws])
        .updates(&[(&count, &(&count + 1.0)), (&acc, &(&acc + &step))])
        .compile()
        .unwrap();
    // A reader at the same time: it must never see one update without the other.
    let reader = function(&[], &[&count, &acc]).compile().unwrap();
    let (threads, calls) = (8, 250);
    let start = Barrier::new(threads + 1);
    let writing = AtomicUsize::new(threads);
    let seen: Vec<Vec<Seen>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let seen = (0..calls)
                        .map(|_| {
                            let out = f.call(&[]).unwrap();
                            let c = out[0].item().unwrap();
                            (c, out[1].to_f64_vec(), out[2].to_f64_vec())
                        })
                        .collect::<Vec<_>>();
                    writing.fetch_sub(1, Ordering::SeqCst);
                    seen
                })
            })
            .collect();
        let reads = s.spawn(|| {
            start.wait();
            for _ in 0..500 {
                let out = reader.call(&[]).unwrap();
                let c = out[0].item().unwrap();
                assert_eq!(
                    out[1].to_f64_vec(),
                    vec![c, 2.0 * c, 3.0 * c],
                    "a torn read"
                );
            }
        });
        reads.join().unwrap();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let total = (threads * calls) as f64;
    assert_eq!(count.get_value().unwrap().item().unwrap(), total);
    assert_eq!(
        acc.get_value().unwrap().to_f64_vec(),
        vec![total, 2.0 * total, 3.0 * total]
    );
    // Each call saw its own count, and the accumulator that goes with it.
    let mut counts: Vec<u64> = Vec::new();
    let mut draws_seen: HashSet<Vec<u64>> = HashSet::new();
    for (c, a, d) in seen.iter().flatten() {
        assert_eq!(a, &vec![*c, 2.0 * c, 3.0 * c], "the snapshot at count {c}");
        counts.push(*c as u64);
        assert!(
            draws_seen.insert(d.iter().map(|v| v.to_bits()).collect()),
            "two calls drew the same numbers"
        );
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (0..threads as u64 * calls as u64).collect::<Vec<_>>()
    );
}

/// `y = x`, whose forward waits (up to two seconds) until another forward is in flight, and
/// counts the calls that found company.
struct Rendezvous {
    in_flight: AtomicUsize,
    met: AtomicUsize,
}

impl CustomOp for Rendezvous {
    fn name(&self) -> &str {
        "rendezvous"
    }
    fn infer(&self, inputs: &[Type]) -> Result<Type, String> {
        Ok(inputs[0].clone())
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Tensor, String> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.in_flight.load(Ordering::SeqCst) > 1 {
                self.met.fetch_add(1, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Stay a moment, so that the other call finds this one too.
        std::thread::sleep(Duration::from_millis(20));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(inputs[0].clone())
    }
    fn stops_gradient(&self) -> bool {
        true
    }
}

/// How many of two concurrent calls of `f` found the other one running.
fn overlapping_calls(f: &Function, op: &Rendezvous) -> usize {
    op.met.store(0, Ordering::SeqCst);
    let start = Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                start.wait();
                f.call(&[vec![1.0f64].into()]).unwrap();
            });
        }
    });
    op.met.load(Ordering::SeqCst)
}

#[test]
fn calls_that_write_nothing_run_side_by_side_and_writers_take_turns() {
    let g = Graph::new();
    let x = g.vector("x", DType::F64);
    let w = g.shared("w", vec![2.0f64]);
    let op = Arc::new(Rendezvous {
        in_flight: AtomicUsize::new(0),
        met: AtomicUsize::new(0),
    });
    let y = g.custom(op.clone(), &[&(&x * &w)]);
    let pure = function(&[&x], &[&y]).compile().unwrap();
    assert_eq!(
        overlapping_calls(&pure, &op),
        2,
        "pure calls ran one at a time"
    );
    let writer = function(&[&x], &[&y])
        .updates(&[(&w, &(&w + 1.0))])
        .compile()
        .unwrap();
    assert_eq!(
        overlapping_calls(&writer, &op),
        0,
        "two calls updated w at once"
    );
    assert_eq!(w.get_value().unwrap().to_f64_vec(), vec![4.0]);
}

#[test]
fn a_reader_never_sees_half_of_a_calls_updates() {
    // Many variables updated together, so that a reader between two of the assignments would
    // see some advanced and some not.
    let g = Graph::new();
    let vars: Vec<Expr> = (0..64)
        .map(|k| g.shared(&format!("v{k}"), 0.0f64))
        .collect();
    let refs: Vec<&Expr> = vars.iter().collect();
    let next: Vec<Expr> = vars.iter().map(|v| v + 1.0).collect();
    let pairs: Vec<(&Expr, &Expr)> = vars.iter().zip(&next).collect();
    let bump = function(&[], &[]).updates(&pairs).compile().unwrap();
    let read = function(&[], &refs).compile().unwrap();
    let done = AtomicUsize::new(0);
    let torn = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..2000 {
                bump.call(&[]).unwrap();
            }
            done.store(1, Ordering::SeqCst);
        });
        s.spawn(|| {
            while done.load(Ordering::SeqCst) == 0 {
                let values: Vec<f64> = read
                    .call(&[])
                    .unwrap()
                    .iter()
                    .map(|t| t.item().unwrap())
                    .collect();
                if values.iter().any(|v| *v != values[0]) {
                    torn.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    });
    assert_eq!(
        torn.load(Ordering::SeqCst),
        0,
        "reads saw half of an update"
    );
    assert_eq!(vars[63].get_value().unwrap().item().unwrap(), 2000.0);
}
