"""JAX peer: each step is one jax.jit function, with the parameters donated and returned."""

import functools

import common as C  # first: sets the thread limits and XLA_FLAGS
import jax
import jax.numpy as jnp

sgd_jit = functools.partial(jax.jit, donate_argnums=0)


@sgd_jit
def rbm_step(state, v):
    """One CD-1 step: (new state, reconstruction cross-entropy); state = (w, b, c, key)."""
    w, b, c, key = state
    key, sub = jax.random.split(key)
    n = v.shape[0]
    h0 = jax.nn.sigmoid(v @ w + c)
    h0s = (jax.random.uniform(sub, h0.shape, h0.dtype) < h0).astype(v.dtype)
    a1 = h0s @ w.T + b
    v1 = jax.nn.sigmoid(a1)
    h1 = jax.nn.sigmoid(v1 @ w + c)
    cost = jnp.sum(jax.nn.softplus(a1) - v * a1) / n
    w = w + (C.RBM_LR / n) * (v.T @ h0 - v1.T @ h1)
    b = b + C.RBM_LR * jnp.mean(v - v1, axis=0)
    c = c + C.RBM_LR * jnp.mean(h0 - h1, axis=0)
    return (w, b, c, key), cost


def forward(params, x):
    """Logits of the sigmoid net (last layer linear)."""
    for i, (w, b) in enumerate(params):
        x = x @ w + b
        if i < len(params) - 1:
            x = jax.nn.sigmoid(x)
    return x


def mlp_loss(params, x, y):
    logp = jax.nn.log_softmax(forward(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def autoencoder_loss(params, x):
    z = forward(params, x)
    return jnp.sum(jax.nn.softplus(z) - x * z) / x.shape[0]


def sgd(loss_fn):
    @sgd_jit
    def step(params, *inputs):
        loss, grads = jax.value_and_grad(loss_fn)(params, *inputs)
        return jax.tree.map(lambda p, g: p - C.SGD_LR * g, params, grads), loss

    return step


def chain(x, stages):
    """The elementwise chain of benches/chain.rs, summed."""
    for i in range(stages):
        k = i % 4
        if k == 0:
            x = jnp.sin(x) * 1.0001 + x * 0.5
        elif k == 1:
            x = jnp.tanh(x)
        elif k == 2:
            x = jnp.exp(-(x * x))
        else:
            x = jax.nn.sigmoid(x)
    return jnp.sum(x)


def lstm_loss(params, xs, y):
    """W5: the LSTM over xs (steps, batch, inputs) by lax.scan, a softmax on the last state."""
    w_x, w_h, b, w_out, b_out = params
    h = C.LSTM["hidden"]
    projected = xs @ w_x + b  # every step's inputs at once

    def cell(carry, xp):
        hs, cs = carry
        gates = xp + hs @ w_h
        i = jax.nn.sigmoid(gates[:, :h])
        f = jax.nn.sigmoid(gates[:, h:2 * h])
        g = jnp.tanh(gates[:, 2 * h:3 * h])
        o = jax.nn.sigmoid(gates[:, 3 * h:])
        cs = f * cs + i * g
        return (o * jnp.tanh(cs), cs), None

    zero = jnp.zeros((xs.shape[1], h), xs.dtype)
    (last, _), _ = jax.lax.scan(cell, (zero, zero), projected)
    logp = jax.nn.log_softmax(last @ w_out + b_out)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


@sgd_jit
def lstm_step(params, xs, y):
    loss, grads = jax.value_and_grad(lstm_loss)(params, xs, y)
    return jax.tree.map(lambda p, g: p - C.LSTM_LR * g, params, grads), loss


def convnet_loss(params, x, y):
    """W7: the LeNet-5-like net on NCHW x, mean softmax cross-entropy."""
    w1, b1, w2, b2, w3, b3, w4, b4 = params

    def conv(h, w, b):
        out = jax.lax.conv_general_dilated(h, w, (1, 1), "VALID",
                                           dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jax.nn.relu(out + b[None, :, None, None])

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")

    h = pool(conv(pool(conv(x, w1, b1)), w2, b2)).reshape(x.shape[0], -1)
    h = jax.nn.relu(h @ w3 + b3)
    logp = jax.nn.log_softmax(h @ w4 + b4)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


@sgd_jit
def convnet_step(params, x, y):
    loss, grads = jax.value_and_grad(convnet_loss)(params, x, y)
    return jax.tree.map(lambda p, g: p - C.CONVNET_LR * g, params, grads), loss


def stepper(step, state, *inputs):
    """A closure that runs step on the current state and keeps the new one."""
    def run():
        state[0], out = step(state[0], *inputs)
        return out
    return run


def main():
    a = C.args(__doc__)
    x_np, y_np = C.batch()
    x, y = jnp.asarray(x_np), jnp.asarray(y_np)
    sync = jax.block_until_ready
    if "W1" in a.workloads:
        state = [(*map(jnp.asarray, C.rbm_params()), jax.random.key(2))]
        C.report("W1", "jax.jit", C.rate(stepper(rbm_step, state, x), a, sync=sync))
    for wl, sizes, loss, inputs in (("W2", C.MLP, mlp_loss, (x, y)),
                                    ("W3", C.AUTOENCODER, autoencoder_loss, (x,))):
        if wl in a.workloads:
            params = [tuple(map(jnp.asarray, layer)) for layer in C.layers(sizes)]
            C.report(wl, "jax.jit", C.rate(stepper(sgd(loss), [params], *inputs), a, sync=sync))
    if "W5" in a.workloads:
        xs_np, ys_np = C.lstm_batch()
        xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
        params = tuple(map(jnp.asarray, C.lstm_params()))
        _, compile_s = C.timed(lambda: lstm_step.lower(params, xs, ys).compile())
        steps = C.rate(stepper(lstm_step, [params], xs, ys), a, sync=sync)
        print(f"W5 jax.jit lax.scan {steps:.1f} steps/s (compile {compile_s * 1e3:.0f} ms)",
              flush=True)
    if "W7" in a.workloads:
        params = tuple(map(jnp.asarray, C.convnet_params()))
        images = x.reshape(-1, 1, 28, 28)
        C.report("W7", "jax.jit", C.rate(stepper(convnet_step, [params], images, y), a, sync=sync))
    if "W4" in a.workloads:
        with jax.enable_x64(C.CHAIN_DTYPE == "float64"):
            v = jnp.full(C.CHAIN_N, C.CHAIN_X, dtype=C.CHAIN_DTYPE)
            jitted = jax.jit(jax.value_and_grad(chain), static_argnums=1)
            f, compile_s = C.timed(lambda: jitted.lower(v, a.stages).compile())  # trace + XLA
            C.report_chain("jax.jit", a, C.rate(lambda: f(v), a, a.calls, sync), compile_s)


if __name__ == "__main__":
    main()
