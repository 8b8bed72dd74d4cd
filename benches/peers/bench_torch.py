"""torch peer: eager mode and torch.compile (default inductor backend).

torch.compile of the W4 chain takes minutes at 2000 stages; use --stages to shorten it.
--no-eager or --no-compile leaves that mode out."""

import common as C  # first: sets the thread limits
import torch
import torch.nn.functional as F

torch.set_num_threads(C.THREADS)
torch.manual_seed(0)


def rbm_step(v, w, b, c):
    """One CD-1 step, updating w, b, c in place; returns the reconstruction cross-entropy."""
    n = v.shape[0]
    h0 = torch.sigmoid(v @ w + c)
    h0s = (torch.rand_like(h0) < h0).to(v.dtype)
    a1 = h0s @ w.T + b
    v1 = torch.sigmoid(a1)
    h1 = torch.sigmoid(v1 @ w + c)
    cost = (F.softplus(a1) - v * a1).sum() / n
    w.add_(v.T @ h0 - v1.T @ h1, alpha=C.RBM_LR / n)
    b.add_((v - v1).mean(0), alpha=C.RBM_LR)
    c.add_((h0 - h1).mean(0), alpha=C.RBM_LR)
    return cost


def forward(params, x):
    """Logits of the sigmoid net (last layer linear)."""
    for i, (w, b) in enumerate(params):
        x = torch.addmm(b, x, w)
        if i < len(params) - 1:
            x = torch.sigmoid(x)
    return x


def mlp_loss(params, x, y):
    return F.cross_entropy(forward(params, x), y)


def autoencoder_loss(params, x):
    z = forward(params, x)
    return F.binary_cross_entropy_with_logits(z, x, reduction="sum") / x.shape[0]


def sgd_stepper(params, loss_fn, *inputs):
    flat = [p for layer in params for p in layer]
    opt = torch.optim.SGD(flat, lr=C.SGD_LR)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(params, *inputs)
        loss.backward()
        opt.step()
        return loss

    return step


def chain(x, stages):
    """The elementwise chain of benches/chain.rs, summed."""
    for i in range(stages):
        k = i % 4
        if k == 0:
            x = torch.sin(x) * 1.0001 + x * 0.5
        elif k == 1:
            x = torch.tanh(x)
        elif k == 2:
            x = torch.exp(-(x * x))
        else:
            x = torch.sigmoid(x)
    return x.sum()


def chain_value_and_grad(f, x, stages):
    cost = f(x, stages)
    (g,) = torch.autograd.grad(cost, x)
    return cost, g


def lstm_stepper():
    """W5: one SGD step of nn.LSTM (28 steps of 28 inputs, 128 units) and a softmax on the last
    state, from the same initial parameters as the other peers."""
    w_x, w_h, b, w_out, b_out = map(torch.from_numpy, C.lstm_params())
    lstm = torch.nn.LSTM(C.LSTM["inputs"], C.LSTM["hidden"])
    out = torch.nn.Linear(C.LSTM["hidden"], 10)
    with torch.no_grad():
        # torch keeps (4H x inputs) matrices with the gates in the order i, f, g, o.
        lstm.weight_ih_l0.copy_(w_x.T)
        lstm.weight_hh_l0.copy_(w_h.T)
        lstm.bias_ih_l0.copy_(b)
        lstm.bias_hh_l0.zero_()
        out.weight.copy_(w_out.T)
        out.bias.copy_(b_out)
    x_np, y_np = C.lstm_batch()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    opt = torch.optim.SGD(list(lstm.parameters()) + list(out.parameters()), lr=C.LSTM_LR)

    def step():
        opt.zero_grad(set_to_none=True)
        _, (h, _) = lstm(x)
        loss = F.cross_entropy(out(h[0]), y)
        loss.backward()
        opt.step()
        return loss

    return step


def convnet_stepper():
    """W7: one SGD step of the LeNet-5-like net (conv 5x5x20, max-pool 2, conv 5x5x50, max-pool
    2, 500 ReLU, softmax) on a batch of 100 digits."""
    params = [torch.from_numpy(p).requires_grad_() for p in C.convnet_params()]
    w1, b1, w2, b2, w3, b3, w4, b4 = params
    x_np, y_np = C.batch()
    x = torch.from_numpy(x_np).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(y_np)
    opt = torch.optim.SGD(params, lr=C.CONVNET_LR)

    def step():
        opt.zero_grad(set_to_none=True)
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, w2, b2)), 2).reshape(x.shape[0], -1)
        h = F.relu(torch.addmm(b3, h, w3))
        loss = F.cross_entropy(torch.addmm(b4, h, w4), y)
        loss.backward()
        opt.step()
        return loss

    return step


def main():
    a = C.args(__doc__, "--no-eager", "--no-compile")
    modes = ["torch"] * (not a.no_eager) + ["torch.compile"] * (not a.no_compile)
    x_np, y_np = C.batch()
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    for mode in modes:
        wrap = torch.compile if mode == "torch.compile" else (lambda f: f)
        if "W1" in a.workloads:
            w, b, c = map(torch.from_numpy, C.rbm_params())
            step = wrap(rbm_step)
            with torch.no_grad():
                C.report("W1", mode, C.rate(lambda: step(x, w, b, c), a))
        for wl, sizes, loss, inputs in (("W2", C.MLP, mlp_loss, (x, y)),
                                        ("W3", C.AUTOENCODER, autoencoder_loss, (x,))):
            if wl in a.workloads:
                params = [(torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_())
                          for w, b in C.layers(sizes)]
                C.report(wl, mode, C.rate(sgd_stepper(params, wrap(loss), *inputs), a))
        if "W5" in a.workloads and mode == "torch":
            C.report("W5", "torch nn.LSTM", C.rate(lstm_stepper(), a))
        if "W7" in a.workloads and mode == "torch":
            C.report("W7", "torch conv2d", C.rate(convnet_stepper(), a))
        if "W4" in a.workloads:
            v = torch.full((C.CHAIN_N,), C.CHAIN_X, dtype=getattr(torch, C.CHAIN_DTYPE),
                           requires_grad=True)
            f = wrap(chain)
            _, compile_s = C.timed(lambda: chain_value_and_grad(f, v, a.stages))
            calls = C.rate(lambda: chain_value_and_grad(f, v, a.stages), a, a.calls)
            C.report_chain(mode, a, calls, compile_s if mode == "torch.compile" else None)


if __name__ == "__main__":
    main()
