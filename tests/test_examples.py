"""examples/: the digits training script trains (a short run) and its hand-chained
backward pass equals finite differences of its loss."""
import importlib.util
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("sklearn", reason="the training example needs scikit-learn (pip install scikit-learn)")


def _load():
    spec = importlib.util.spec_from_file_location("train_digits", os.path.join(ROOT, "examples", "train_digits.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_two_epochs_learn():
    td = _load()
    lines = []
    model, acc = td.train(epochs=2, out=lines.append)
    assert acc > 0.5
    assert len(lines) == 3 and all(re.match(r"epoch +\d+ +loss \d\.\d{4} +train accuracy 0\.\d{3}", ln)
                                   for ln in lines[:2])
    assert lines[-1] == f"test accuracy {acc:.3f}"
    assert model.conv1.w.dtype == np.float32


def test_script_prints_the_test_accuracy_last():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_digits.py"), "--epochs", "1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"test accuracy [01]\.\d{3}", r.stdout.strip().splitlines()[-1])
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_digits.py"), "--epochs", "0"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "--epochs" in r.stderr


def test_backward_chain_matches_finite_differences():
    td = _load()
    rng = np.random.default_rng(3)
    model = td.Model(seed=1, width=4)
    for layer in (model.conv1, model.conv2):        # float64 for a tight check
        layer.w, layer.b = layer.w.astype(np.float64), rng.standard_normal(layer.b.shape)
    model.w3, model.b3 = model.w3.astype(np.float64), rng.standard_normal(10)
    x = rng.random((5, 1, 8, 8))
    y = rng.integers(0, 10, 5)

    def loss():
        return td.softmax_cross_entropy(model.forward(x), y)[0]

    _, g = td.softmax_cross_entropy(model.forward(x), y)
    model.backward(g)
    analytic = [gp.copy() for _, gp in model.params()]
    eps = 1e-6
    for (p, _), ga in zip(model.params(), analytic):
        for idx in list(np.ndindex(p.shape))[:: max(1, p.size // 7)]:
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            down = loss()
            p[idx] = old
            assert (up - down) / (2 * eps) == pytest.approx(ga[idx], rel=1e-5, abs=1e-8)
