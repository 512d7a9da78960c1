"""Train a small CNN on scikit-learn's digits with pyconv: ``python examples/train_digits.py``.

The network, for 8x8 grey digits::

    conv 3x3, 1 -> 16, padding 1        (16, 8, 8)
    ReLU
    conv 3x3, 16 -> 32, stride 2, pad 1 (32, 4, 4)
    ReLU
    global average pool                 (32,)
    linear 32 -> 10                     logits

Forward passes are ``pyconv.nn.conv2d``, backward passes ``pyconv.grad``; the rest
(ReLU, pooling, the linear layer, softmax cross-entropy, Adam) is plain NumPy, written
out below.  The data is ``sklearn.datasets.load_digits`` (1797 images, shipped with
scikit-learn: nothing is downloaded), split 80/20 with a fixed seed.  Each epoch
prints one line; the last line is ``test accuracy 0.NNN``.  ``--epochs 2`` is the
quick run the tests use.

How the backward calls chain: each layer's backward takes the gradient of its output
and returns the gradient of its input, which is the next call's ``grad_output``, from
the loss back to the first layer.  :class:`Conv` keeps a layer's forward keywords
(``stride``, ``padding``, ...) in one place, so ``conv2d`` and ``conv2d_backward``
always receive the same ones.
"""
import argparse
import time

import numpy as np

from pyconv import grad, nn


class Conv:
    """A 2-D convolution layer: weights, forward keywords and the input it last saw.

    ``forward(x)`` is ``nn.conv2d(x, w, b, **kw)``; ``backward(g)`` returns the gradient
    of the input (``None`` when ``need_input_grad`` is False: the first layer's input
    is the data) and stores the weight and bias gradients in ``gw`` and ``gb``.
    """

    def __init__(self, c_in, c_out, k, rng, need_input_grad=True, **kw):
        fan_in = c_in * k * k
        self.w = (rng.standard_normal((c_out, c_in, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.b = np.zeros(c_out, np.float32)
        self.kw = kw
        self.need_input_grad = need_input_grad

    def forward(self, x):
        self.x = x
        return nn.conv2d(x, self.w, self.b, **self.kw)

    def backward(self, g):
        if self.need_input_grad:
            gx, self.gw, self.gb = grad.conv2d_backward(g, self.x, self.w, self.b, **self.kw)
            return gx
        # only the weight's gradient, as torch.nn.grad.conv2d_weight
        self.gw = grad.conv2d_weight(self.x, self.w.shape, g, **self.kw)
        self.gb = g.sum(axis=(0, 2, 3))
        return None

    def params(self):
        return [(self.w, self.gw), (self.b, self.gb)]


class Model:
    def __init__(self, seed=0, width=16):
        rng = np.random.default_rng(seed)
        self.conv1 = Conv(1, width, 3, rng, need_input_grad=False, padding=1)
        self.conv2 = Conv(width, 2 * width, 3, rng, stride=2, padding=1)
        self.w3 = (rng.standard_normal((10, 2 * width)) * np.sqrt(1.0 / (2 * width))).astype(np.float32)
        self.b3 = np.zeros(10, np.float32)

    def forward(self, x):
        self.y1 = self.conv1.forward(x)
        a1 = np.maximum(self.y1, 0)
        self.y2 = self.conv2.forward(a1)
        a2 = np.maximum(self.y2, 0)
        self.pooled = a2.mean(axis=(2, 3))
        return self.pooled @ self.w3.T + self.b3

    def backward(self, g_logits):
        """Chain the gradient from the logits back to the first layer's weights."""
        self.gw3 = g_logits.T @ self.pooled
        self.gb3 = g_logits.sum(axis=0)
        g_pooled = g_logits @ self.w3
        h, w = self.y2.shape[2:]
        g_a2 = np.broadcast_to(g_pooled[:, :, None, None] / (h * w), self.y2.shape)
        g_y2 = g_a2 * (self.y2 > 0)                 # ReLU's backward
        g_a1 = self.conv2.backward(g_y2)            # -> gradient of conv2's input
        g_y1 = g_a1 * (self.y1 > 0)
        self.conv1.backward(g_y1)                   # weights only: the input is the data

    def params(self):
        return self.conv1.params() + self.conv2.params() + [(self.w3, self.gw3), (self.b3, self.gb3)]


class Adam:
    def __init__(self, lr=0.01, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps, self.t, self.state = lr, betas, eps, 0, {}

    def step(self, params):
        self.t += 1
        b1, b2 = self.betas
        for i, (p, g) in enumerate(params):
            m, v = self.state.get(i, (np.zeros_like(p), np.zeros_like(p)))
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            self.state[i] = (m, v)
            m_hat = m / (1 - b1 ** self.t)
            v_hat = v / (1 - b2 ** self.t)
            p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n = len(labels)
    loss = -np.log(p[np.arange(n), labels] + 1e-12).mean()
    p[np.arange(n), labels] -= 1
    return float(loss), (p / n).astype(logits.dtype)


def load_data(seed=0, test_fraction=0.2):
    """Digits as float32 ``(N, 1, 8, 8)`` in [0, 1], split into train and test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def accuracy(model, x, y, batch=256):
    hits = 0
    for i in range(0, len(y), batch):
        hits += int((model.forward(x[i:i + batch]).argmax(axis=1) == y[i:i + batch]).sum())
    return hits / len(y)


def train(epochs=15, batch=32, lr=0.01, seed=0, out=print):
    """Train and return ``(model, test accuracy)``; ``out`` receives one line per epoch."""
    x_train, y_train, x_test, y_test = load_data(seed)
    model = Model(seed)
    opt = Adam(lr)
    rng = np.random.default_rng(seed + 1)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss, g = softmax_cross_entropy(model.forward(x_train[idx]), y_train[idx])
            model.backward(g)
            opt.step(model.params())
            total += loss * len(idx)
        out(f"epoch {epoch:2d}  loss {total / len(order):.4f}  train accuracy {accuracy(model, x_train, y_train):.3f}"
            f"  ({time.perf_counter() - t0:.1f} s)")
    acc = accuracy(model, x_test, y_test)
    out(f"test accuracy {acc:.3f}")
    return model, acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch < 1 or not args.lr > 0:
        ap.error("--epochs and --batch must be positive integers and --lr a positive number")
    train(args.epochs, args.batch, args.lr, args.seed)


if __name__ == "__main__":
    main()
