"""What every peer benchmark shares: the thread limit, the data, the timing and the report.

Import this module before numpy, torch, jax or pytensor: the thread limits are environment
variables that those libraries read once, when they load.
"""

import argparse
import os
import statistics
import time

THREADS = 2
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(THREADS)
os.environ.setdefault(
    "XLA_FLAGS",
    f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={THREADS}",
)
# On a machine with more cores, also keep the process itself on two of them.
if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > THREADS:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:THREADS])

import numpy as np  # noqa: E402  (after the thread variables)

BATCH = 100
RBM = (784, 500)
MLP = (784, 500, 500, 10)
AUTOENCODER = (784, 1000, 500, 250, 30, 250, 500, 1000, 784)
RBM_LR = 0.1
SGD_LR = 0.01
CHAIN_N = 1000
CHAIN_X = 0.5  # benches/chain.rs calls the chain on a vector of 0.5s
CHAIN_DTYPE = "float64"  # benches/chain.rs builds the chain in F64
CALLS = 5  # W4 chain calls per timed repeat
LSTM = dict(steps=28, batch=64, inputs=28, hidden=128)  # W5
LSTM_LR = 0.01
CONVNET = dict(batch=100, c1=20, c2=50, hidden=500)  # W7: LeNet-5-like, 5x5 filters
CONVNET_LR = 0.01


def convnet_params(seed=0):
    """W7: conv filters (O, I, 5, 5) uniform in +-sqrt(6 / (fan_in + fan_out / 4)), zero biases,
    then the 800-500 and 500-10 layers (Glorot); float32."""
    rng = np.random.default_rng(seed)
    c1, c2, h = CONVNET["c1"], CONVNET["c2"], CONVNET["hidden"]

    def filters(o, i):
        s = np.sqrt(6.0 / (i * 25 + o * 25 / 4))
        return rng.uniform(-s, s, (o, i, 5, 5)).astype(np.float32)

    w1, w2 = filters(c1, 1), filters(c2, c1)
    (w3, b3), (w4, b4) = layers((c2 * 16, h, 10), seed + 1)
    return (w1, np.zeros(c1, np.float32), w2, np.zeros(c2, np.float32), w3, b3, w4, b4)


def lstm_batch():
    """W5's sequences, uniform in [0, 1), shape (steps, batch, inputs), and labels i % 10."""
    rng = np.random.default_rng(2)
    x = rng.random((LSTM["steps"], LSTM["batch"], LSTM["inputs"]), dtype=np.float32)
    y = np.arange(LSTM["batch"], dtype=np.int64) % 10
    return x, y


def lstm_params(seed=0):
    """W_x (inputs x 4H), W_h (H x 4H), b (4H; gates i, f, g, o; forget bias 1), W_out (H x 10),
    b_out: uniform in +-1/sqrt(H) for the cell, Glorot for the output layer; float32."""
    rng = np.random.default_rng(seed)
    d, h = LSTM["inputs"], LSTM["hidden"]
    s = 1.0 / np.sqrt(h)
    w_x = rng.uniform(-s, s, (d, 4 * h)).astype(np.float32)
    w_h = rng.uniform(-s, s, (h, 4 * h)).astype(np.float32)
    b = np.zeros(4 * h, np.float32)
    b[h:2 * h] = 1.0
    g = np.sqrt(6.0 / (h + 10))
    w_out = rng.uniform(-g, g, (h, 10)).astype(np.float32)
    return w_x, w_h, b, w_out, np.zeros(10, np.float32)


def batch():
    """The input minibatch, uniform in [0, 1), and its labels i % 10."""
    rng = np.random.default_rng(1)
    x = rng.random((BATCH, RBM[0]), dtype=np.float32)
    y = np.arange(BATCH, dtype=np.int64) % 10
    return x, y


def layers(sizes, seed=0):
    """(W, b) per layer: W uniform in +-sqrt(6 / (fan_in + fan_out)), b zero; float32."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        s = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-s, s, (n_in, n_out)).astype(np.float32)
        params.append((w, np.zeros(n_out, np.float32)))
    return params


def rbm_params():
    """W (visible x hidden), visible bias b, hidden bias c."""
    (w, c), = layers(RBM)
    return w, np.zeros(RBM[0], np.float32), c


def args(description, *flags):
    """The command line: which workloads, how long to time them, and any `flags` (switches)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--workloads", default="W1,W2,W3,W4,W5,W7",
                   help="comma-separated subset of W1,W2,W3,W4,W5,W7")
    p.add_argument("--repeats", type=int, default=20, help="timed repeats (median reported)")
    p.add_argument("--steps", type=int, default=50, help="steps per timed repeat")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--stages", type=int, default=2000, help="W4 chain length")
    p.add_argument("--calls", type=int, default=CALLS, help="W4 calls per timed repeat")
    for flag in flags:
        p.add_argument(flag, action="store_true")
    a = p.parse_args()
    a.workloads = set(a.workloads.upper().split(","))
    return a


def rate(step, a, steps=None, sync=lambda out: out):
    """Median steps per second of `step()` over `a.repeats` repeats of `steps` calls.

    `sync` is applied to the last output of each repeat, to wait for asynchronous work."""
    steps = steps or a.steps
    for _ in range(a.warmup):
        sync(step())
    rates = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        for _ in range(steps):
            out = step()
        sync(out)
        rates.append(steps / (time.perf_counter() - t))
    return statistics.median(rates)


def timed(f):
    """(result of f(), seconds it took)."""
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def report(workload, peer, steps_per_s):
    print(f"{workload} {peer} {steps_per_s:.1f} steps/s", flush=True)


def report_chain(peer, a, calls_per_s, compile_s=None):
    extra = "" if compile_s is None else f" (compile {compile_s:.2f} s)"
    print(f"W4 {peer} {1000.0 / calls_per_s:.2f} ms/call{extra} [{a.stages} stages]", flush=True)
