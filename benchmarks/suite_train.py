"""train suite: the digits CNN of ``examples/train_digits.py``, pyconv beside PyTorch.

The same network (conv 3x3 1->16, ReLU, conv 3x3 16->32 stride 2, ReLU, global average
pool, linear 32->10), the same initial weights, the same mini-batches (32) and Adam,
float32.  pyconv runs ``pyconv.nn.conv2d`` forwards and ``pyconv.grad`` backwards with
NumPy for the rest (the example's own code); PyTorch runs ``torch.nn`` with autograd and
``torch.optim.Adam``.  Rows: milliseconds per epoch (1437 training images, median of
repeats), the ratio torch-time / pyconv-time (> 1: pyconv is faster), GFLOP/s of the
convolutions (forward, input and weight gradients: 2 x their multiply-adds), at 1 and
all threads; then one full 15-epoch run of each with its test accuracy.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py --suite train
"""
import importlib.util
import os
import time

import numpy as np

from pyconv.arithmetic import conv_cost

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("train_digits", os.path.join(HERE, "..", "examples",
                                                                             "train_digits.py"))
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)

BATCH, LR, EPOCHS = 32, 0.01, 15


def _conv_flops(n_images):
    """2 x multiply-adds of both convolutions, forward + input gradient + weight gradient
    (the first layer's input gradient is not computed)."""
    c1 = conv_cost((1, 8, 8), (16, 1, 3, 3), padding=1).multiplications
    c2 = conv_cost((16, 8, 8), (32, 16, 3, 3), stride=2, padding=1).multiplications
    return 2 * n_images * (2 * c1 + 3 * c2)


def _pyconv_epoch(model, opt, x, y, order):
    for i in range(0, len(order), BATCH):
        idx = order[i:i + BATCH]
        _, g = td.softmax_cross_entropy(model.forward(x[idx]), y[idx])
        model.backward(g)
        opt.step(model.params())


def _torch_model(torch, model):
    """The pyconv model's network and initial weights in torch.nn."""
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))
    with torch.no_grad():
        for layer, (w, b) in zip((net[0], net[2], net[6]), ((model.conv1.w, model.conv1.b),
                                                            (model.conv2.w, model.conv2.b), (model.w3, model.b3))):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))
    return net


def _torch_epoch(torch, net, opt, x, y, order):
    loss_fn = torch.nn.functional.cross_entropy
    # (autograd on whatever an earlier suite of the same run set: the nn and grad suites
    # turn it off process-wide)
    with torch.enable_grad():
        for i in range(0, len(order), BATCH):
            idx = torch.from_numpy(order[i:i + BATCH])
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()


def _torch_accuracy(torch, net, x, y):
    with torch.no_grad():
        return float((net(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def run(h):
    try:
        import torch
    except ImportError:
        torch = None
        print("  note: torch is not installed; its columns are skipped", flush=True)
    x, y, x_test, y_test = td.load_data(0)
    order = np.random.default_rng(1).permutation(len(y))
    flops = _conv_flops(len(y))
    for n in h.thread_counts:
        with h.threads(n):
            model = td.Model(0)
            opt = td.Adam(LR)
            t_py = h.time(lambda: _pyconv_epoch(model, opt, x, y, order), repeats=3 if h.quick else 7, warmup=1)
            row = dict(case=f"1 epoch, batch {BATCH}", threads=n, pyconv_ms=t_py * 1e3)
            if torch is not None:
                net = _torch_model(torch, td.Model(0))
                topt = torch.optim.Adam(net.parameters(), lr=LR)
                xt, yt = torch.from_numpy(x), torch.from_numpy(y)
                t_torch = h.time(lambda: _torch_epoch(torch, net, topt, xt, yt, order),
                                 repeats=3 if h.quick else 7, warmup=1)
                row.update(torch_ms=t_torch * 1e3, ratio=t_torch / t_py)
            row.update(conv_gflops=flops / t_py / 1e9)
            h.record(**row)
    if h.quick:
        return
    n = max(h.thread_counts)
    with h.threads(n):
        t0 = time.perf_counter()
        _, acc = td.train(EPOCHS, BATCH, LR, seed=0, out=lambda line: None)
        row = dict(case=f"{EPOCHS} epochs (examples/train_digits.py)", threads=n,
                   pyconv_s=time.perf_counter() - t0, pyconv_test_accuracy=acc)
        if torch is not None:
            torch.manual_seed(0)
            net = _torch_model(torch, td.Model(0))
            topt = torch.optim.Adam(net.parameters(), lr=LR)
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            rng = np.random.default_rng(1)
            t0 = time.perf_counter()
            for _ in range(EPOCHS):
                _torch_epoch(torch, net, topt, xt, yt, rng.permutation(len(y)))
            row.update(torch_s=time.perf_counter() - t0, torch_test_accuracy=_torch_accuracy(torch, net, x_test, y_test))
        h.record(**row)
