"""numpy peer: the workloads with gradients written out by hand."""

import common as C  # first: sets the thread limits
import numpy as np

np.seterr(over="ignore")  # exp overflow in sigmoid gives the right limit, 0


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def rbm_step(rng, v, w, b, c):
    """One CD-1 step, updating w, b, c in place; returns the reconstruction cross-entropy."""
    n = len(v)
    h0 = sigmoid(v @ w + c)
    h0s = (rng.random(h0.shape, dtype=np.float32) < h0).astype(np.float32)
    a1 = h0s @ w.T + b
    v1 = sigmoid(a1)
    h1 = sigmoid(v1 @ w + c)
    cost = np.sum(np.logaddexp(0, a1) - v * a1) / n
    w += (C.RBM_LR / n) * (v.T @ h0 - v1.T @ h1)
    b += C.RBM_LR * np.mean(v - v1, axis=0)
    c += C.RBM_LR * np.mean(h0 - h1, axis=0)
    return cost


def softmax_xent(z, y):
    """Mean cross-entropy of softmax(z) against labels y, and its gradient in z."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = np.mean(np.log(s[:, 0]) - z[rows, y])
    d = e / s
    d[rows, y] -= 1
    return loss, d / len(y)


def bce_logits(z, x):
    """Binary cross-entropy of logits z against x, summed over features, mean over rows."""
    loss = np.sum(np.logaddexp(0, z) - x * z) / len(x)
    return loss, (sigmoid(z) - x) / len(x)


def sgd_step(params, x, head):
    """Forward through the sigmoid net (last layer linear), backprop, SGD update in place."""
    acts = [x]
    for i, (w, b) in enumerate(params):
        a = acts[-1] @ w + b
        acts.append(a if i == len(params) - 1 else sigmoid(a))
    loss, d = head(acts[-1])
    for i in reversed(range(len(params))):
        w, b = params[i]
        if i < len(params) - 1:
            d = d * acts[i + 1] * (1 - acts[i + 1])
        gw, gb = acts[i].T @ d, d.sum(axis=0)
        if i > 0:
            d_prev = d @ w.T
        w -= C.SGD_LR * gw
        b -= C.SGD_LR * gb
        if i > 0:
            d = d_prev
    return loss


def chain_value_and_grad(x, stages):
    """The chain of benches/chain.rs and its gradient, by a forward pass that keeps each
    stage's input and output and a backward pass through them."""
    tape = []
    for i in range(stages):
        k = i % 4
        if k == 0:
            y = np.sin(x) * 1.0001 + x * 0.5
        elif k == 1:
            y = np.tanh(x)
        elif k == 2:
            y = np.exp(-(x * x))
        else:
            y = sigmoid(x)
        tape.append((x, y))
        x = y
    cost = x.sum()
    g = np.ones_like(x)
    for i in reversed(range(stages)):
        x, y = tape[i]
        k = i % 4
        if k == 0:
            g = g * (np.cos(x) * 1.0001 + 0.5)
        elif k == 1:
            g = g * (1 - y * y)
        elif k == 2:
            g = g * (-2 * x * y)
        else:
            g = g * (y * (1 - y))
    return cost, g


def main():
    a = C.args(__doc__)
    x, y = C.batch()
    if "W1" in a.workloads:
        rng = np.random.default_rng(2)
        w, b, c = C.rbm_params()
        C.report("W1", "numpy", C.rate(lambda: rbm_step(rng, x, w, b, c), a))
    if "W2" in a.workloads:
        params = C.layers(C.MLP)
        C.report("W2", "numpy", C.rate(lambda: sgd_step(params, x, lambda z: softmax_xent(z, y)), a))
    if "W3" in a.workloads:
        params = C.layers(C.AUTOENCODER)
        C.report("W3", "numpy", C.rate(lambda: sgd_step(params, x, lambda z: bce_logits(z, x)), a))
    if "W4" in a.workloads:
        v = np.full(C.CHAIN_N, C.CHAIN_X, dtype=C.CHAIN_DTYPE)
        C.report_chain("numpy", a, C.rate(lambda: chain_value_and_grad(v, a.stages), a, a.calls))


if __name__ == "__main__":
    main()
