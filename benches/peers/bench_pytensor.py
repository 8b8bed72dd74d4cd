"""PyTensor peer: each step is one compiled pytensor.function with shared-variable updates.

The default mode compiles to C when a C compiler is found (else it falls back to Python, and
the peer name printed says so). PyTensor caches compiled C modules (see `pytensor.config.compiledir`),
so the W4 compile time is a cold one only the first time a given chain is compiled; to measure
it again, run with PYTENSOR_FLAGS=base_compiledir=/tmp/some-empty-dir."""

import ctypes.util
import os

import common as C  # first: sets the thread limits

# float32 by default; and a pip-installed PyTensor often finds no BLAS by itself (then its C
# matrix products are very slow): link the system OpenBLAS (Debian: libopenblas-dev) if present.
flags = ["floatX=float32"]
if ctypes.util.find_library("openblas") and "blas__ldflags" not in os.environ.get("PYTENSOR_FLAGS", ""):
    flags.append("blas__ldflags=-lopenblas")
os.environ["PYTENSOR_FLAGS"] = ",".join(flags + [os.environ.get("PYTENSOR_FLAGS", "")]).strip(",")

import numpy as np  # noqa: E402
import pytensor  # noqa: E402
import pytensor.tensor as pt  # noqa: E402
from pytensor.tensor.special import log_softmax  # noqa: E402

PEER = "pytensor-C" if pytensor.config.cxx else "pytensor-py"
if not pytensor.config.blas__ldflags:
    PEER += "-noblas"


def shared(name, value):
    return pytensor.shared(value, name=name)


def rbm_step():
    """The compiled CD-1 step: v -> reconstruction cross-entropy, updating W, b, c."""
    w0, b0, c0 = C.rbm_params()
    w, b, c = shared("W", w0), shared("b", b0), shared("c", c0)
    rng = pt.random.shared_rng(seed=2)
    v = pt.matrix("v")
    n = v.shape[0].astype("float32")
    h0 = pt.sigmoid(v @ w + c)
    next_rng, u = rng.uniform(0, 1, size=h0.shape)
    h0s = pt.cast(u < h0, "float32")
    a1 = h0s @ w.T + b
    v1 = pt.sigmoid(a1)
    h1 = pt.sigmoid(v1 @ w + c)
    cost = pt.sum(pt.softplus(a1) - v * a1) / n
    updates = [(w, w + (C.RBM_LR / n) * (v.T @ h0 - v1.T @ h1)),
               (b, b + C.RBM_LR * pt.mean(v - v1, axis=0)),
               (c, c + C.RBM_LR * pt.mean(h0 - h1, axis=0)),
               (rng, next_rng)]
    return pytensor.function([v], cost, updates=updates)


def sgd_step(sizes, loss_of):
    """The compiled SGD step of the sigmoid net (last layer linear) on loss_of(logits, x, y)."""
    x, y = pt.matrix("x"), pt.lvector("y")
    params, h = [], x
    for i, (w0, b0) in enumerate(C.layers(sizes)):
        w, b = shared(f"W{i}", w0), shared(f"b{i}", b0)
        params += [w, b]
        h = h @ w + b
        if i < len(sizes) - 2:
            h = pt.sigmoid(h)
    loss, inputs = loss_of(h, x, y)
    grads = pytensor.grad(loss, params)
    updates = [(p, p - np.float32(C.SGD_LR) * g) for p, g in zip(params, grads)]
    return pytensor.function(inputs, loss, updates=updates)


def mlp_loss(z, x, y):
    return -pt.mean(log_softmax(z, axis=1)[pt.arange(y.shape[0]), y]), [x, y]


def autoencoder_loss(z, x, y):
    return pt.sum(pt.softplus(z) - x * z) / x.shape[0].astype("float32"), [x]


def chain(x, stages):
    """The elementwise chain of benches/chain.rs."""
    for i in range(stages):
        k = i % 4
        if k == 0:
            x = pt.sin(x) * 1.0001 + x * 0.5
        elif k == 1:
            x = pt.tanh(x)
        elif k == 2:
            x = pt.exp(-(x * x))
        else:
            x = pt.sigmoid(x)
    return x


def chain_function(stages):
    """x -> (sum of the chain of benches/chain.rs, its gradient in x)."""
    with pytensor.config.change_flags(floatX=C.CHAIN_DTYPE):  # constants like 1.0001 too
        x0 = pt.vector("x")
        cost = pt.sum(chain(x0, stages))
        return pytensor.function([x0], [cost, pytensor.grad(cost, x0)])


def main():
    a = C.args(__doc__)
    x, y = C.batch()
    if "W1" in a.workloads:
        f = rbm_step()
        C.report("W1", PEER, C.rate(lambda: f(x), a))
    if "W2" in a.workloads:
        f = sgd_step(C.MLP, mlp_loss)
        C.report("W2", PEER, C.rate(lambda: f(x, y), a))
    if "W3" in a.workloads:
        f = sgd_step(C.AUTOENCODER, autoencoder_loss)
        C.report("W3", PEER, C.rate(lambda: f(x), a))
    if "W4" in a.workloads:
        f, compile_s = C.timed(lambda: chain_function(a.stages))  # build + grad + compile
        v = np.full(C.CHAIN_N, C.CHAIN_X, dtype=C.CHAIN_DTYPE)
        C.report_chain(PEER, a, C.rate(lambda: f(v), a, a.calls), compile_s)


if __name__ == "__main__":
    main()
