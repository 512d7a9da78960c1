"""Dense forward layers that both direct kernels serve (the phase-plane 'dense' and the
output-channel 'dense_oc'): timed once on the running machine, the faster stored
(pyconv._engine.calibrate's timed choices) and taken by every later call and process.
References: the same call with the stored kernel forced (bitwise: the call must return
exactly what the kernel it took returns), and the float64 NumPy definition of the layer
(tests/reference.py; float32 within 1e-5 relative to the largest output, float64 within 1e-12)."""
import json

import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import calibrate, conv, plan, tuning
from pyconv._kernels import dense_direct

from reference import conv_nd

RNG = np.random.default_rng(11)
KERNELS = ("dense", "dense_oc")


def _layer(dtype, n=3, stride=1, nd=2):
    """A layer both kernels serve (and at stride 1 its input gradient too), in 1, 2 or 3
    spatial dims: two vectors of input and output channels, kernel 3, padding 1 (at stride
    2 enough positions for 'dense')."""
    c = 2 * dense_direct.OC_LANES[np.dtype(dtype).name]
    spatial = {1: (400,), 2: (25, 27), 3: (7, 13, 12)}[nd]
    x = RNG.standard_normal((n, c) + spatial).astype(dtype)
    w = RNG.standard_normal((c, c) + (3,) * nd).astype(dtype)
    return x, w, dict(stride=stride, padding=1)


def _forget():
    """This process's memory of choices and plans (a later process starts so)."""
    calibrate._timed.update(path=None, table=None)
    plan.clear_caches()
    nn._CALLS.clear()


@pytest.fixture
def timed(monkeypatch, tmp_path):
    """Tuning on, its files in ``tmp_path``, the built-in thresholds (no calibration runs),
    layers from 1e5 flops timed; ``runs``: the geometry of every timing of both kernels."""
    monkeypatch.setenv("PYCONV_TUNING", "on")
    monkeypatch.setenv("PYCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(tuning._machine, "tuning", tuning.DEFAULT)
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e5)
    runs = []
    real = conv._time_forward

    def spy(g, dtype, algs):
        runs.append(g)
        return real(g, dtype, algs)
    monkeypatch.setattr(conv, "_time_forward", spy)
    _forget()
    yield runs
    _forget()


def _stored():
    with open(calibrate.timed_path()) as f:
        return json.load(f)["choices"]


def _forced(alg, fn, *args, **kw):
    with plan.force(alg):
        return fn(*args, **kw)


def _key(x, w, kw):
    """The timed-choice key of the float32 layer (geometry from a forced plan: not timed)."""
    g = _forced("dense", pyconv.explain, nn.conv2d, x, w, **kw).geometry
    nt = pyconv.get_num_threads()
    return conv.timed_key(conv.dataclasses.replace(g, n=min(g.n, nt)), np.dtype(x.dtype), nt)


def test_both_kernels_serve_the_test_layers():
    # (else the tests below would not test a choice)
    for dtype, stride in [(np.float32, 1), (np.float64, 1), (np.float32, 2), (np.float64, 2)]:
        x, w, kw = _layer(dtype, stride=stride)
        for alg in KERNELS:
            assert _forced(alg, pyconv.explain, nn.conv2d, x, w, **kw).algorithm == alg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_layer_is_timed_once_and_stored(timed, dtype, stride, nd):
    runs = timed
    x, w, kw = _layer(dtype, n=3 if nd == 2 else 2, stride=stride, nd=nd)
    conv_nd = getattr(nn, f"conv{nd}d")
    for alg in KERNELS:         # (both serve it: else no choice is tested)
        assert _forced(alg, pyconv.explain, conv_nd, x, w, **kw).algorithm == alg
    out = conv_nd(x, w, **kw)
    assert len(runs) == 1
    nt = pyconv.get_num_threads()
    assert runs[0].n == min(x.shape[0], nt)
    entry = _stored()[conv.timed_key(runs[0], np.dtype(dtype), nt)]
    choice = entry["choice"]
    assert choice in KERNELS and entry["dense_s"] > 0 and entry["dense_oc_s"] > 0
    # the median of the rounds' time ratios decides (each round's pair under one machine state)
    assert choice == ("dense_oc" if entry["dense_per_dense_oc"] > 1 else "dense")
    np.testing.assert_array_equal(out, _forced(choice, conv_nd, x, w, **kw))
    ref = conv_nd(x, w, **kw)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref, rtol=0, atol=tol * np.abs(ref).max())
    assert pyconv.explain(conv_nd, x, w, **kw).algorithm == choice
    # later calls, and a later process reading the file, take it without timing
    np.testing.assert_array_equal(conv_nd(x, w, **kw), out)
    _forget()
    assert pyconv.explain(conv_nd, x, w, **kw).algorithm == choice
    np.testing.assert_array_equal(conv_nd(x, w, **kw), out)
    assert len(runs) == 1


@pytest.mark.parametrize("stored", KERNELS)
def test_stored_choice_is_taken(timed, stored):
    runs = timed
    x, w, kw = _layer(np.float32)
    calibrate.store_timed_choice(_key(x, w, kw), stored, {"dense": 1.0, "dense_oc": 1.0})
    _forget()
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == stored
    np.testing.assert_array_equal(nn.conv2d(x, w, **kw), _forced(stored, nn.conv2d, x, w, **kw))
    assert runs == []


def test_batches_share_one_timing(timed):
    # the timing runs min(N, threads) samples: every batch of at least that many reads it
    runs = timed
    x, w, kw = _layer(np.float32, n=5)
    nn.conv2d(x, w, **kw)
    nn.conv2d(x[:4], w, **kw)
    nn.conv2d(np.concatenate([x, x]), w, **kw)
    nt = pyconv.get_num_threads()
    assert len(runs) == 1 and runs[0].n == min(5, nt)


def test_input_gradient_takes_the_timed_kernel(timed):
    # the stride-1 input gradient is a forward convolution (flip_conv): timed the same way
    runs = timed
    x, w, kw = _layer(np.float32)
    go = RNG.standard_normal((x.shape[0], w.shape[0]) + x.shape[2:]).astype(np.float32)
    gx = grad.conv2d_input(x.shape, w, go, **kw)
    assert len(runs) == 1
    p = pyconv.explain(grad.conv2d_input, x.shape, w, go, **kw)
    choice = _stored()[conv.timed_key(runs[0], np.dtype(np.float32), pyconv.get_num_threads())]["choice"]
    assert p.algorithm == "flip_conv" and p.sub.algorithm == choice
    np.testing.assert_array_equal(gx, _forced(choice, grad.conv2d_input, x.shape, w, go, **kw))


def test_explain_times_and_shows_the_choice(timed):
    # explain shows the kernel the call will take: it times a layer not yet timed
    runs = timed
    x, w, kw = _layer(np.float32)
    p = pyconv.explain(nn.conv2d, x, w, **kw)
    assert len(runs) == 1
    assert p.algorithm == _stored()[conv.timed_key(runs[0], np.dtype(np.float32), pyconv.get_num_threads())]["choice"]
    nn.conv2d(x, w, **kw)
    assert len(runs) == 1


def test_threads_are_part_of_the_key(timed):
    runs = timed
    x, w, kw = _layer(np.float32)
    with pyconv.threads(1):
        nn.conv2d(x, w, **kw)
    assert len(runs) == 1 and runs[0].n == 1
    if pyconv.get_num_threads() > 1:
        nn.conv2d(x, w, **kw)
        assert len(runs) == 2
        assert len(_stored()) == 2


def test_small_layers_keep_the_flag(timed, monkeypatch):
    runs = timed
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e12)
    x, w, kw = _layer(np.float32)
    # the built-in flag: the output-channel kernel for two vectors of output channels
    assert tuning.DEFAULT.dense_oc
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense_oc"
    nn.conv2d(x, w, **kw)
    assert runs == [] and calibrate.timed_count() == 0


def test_flag_decides_untimed_layers(timed, monkeypatch):
    runs = timed
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e12)
    x, w, kw = _layer(np.float32)
    with tuning.override(dense_oc=False):
        assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense"
    assert runs == []


def test_off_neither_times_nor_reads(timed, monkeypatch):
    runs = timed
    x, w, kw = _layer(np.float32)
    calibrate.store_timed_choice(_key(x, w, kw), "dense", {"dense": 0.5, "dense_oc": 1.0})
    monkeypatch.setenv("PYCONV_TUNING", "off")
    _forget()
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense_oc"     # the built-in flag
    nn.conv2d(x, w, **kw)
    assert runs == [] and calibrate.timed_count() == 0


def test_override_and_force_do_not_time(timed):
    runs = timed
    x, w, kw = _layer(np.float32)
    with tuning.override(dense_oc=True):
        nn.conv2d(x, w, **kw)
    for alg in ("gemm",) + KERNELS:
        p = _forced(alg, pyconv.explain, nn.conv2d, x, w, **kw)
        assert p.algorithm == alg
        _forced(alg, nn.conv2d, x, w, **kw)
    assert runs == [] and calibrate.timed_count() == 0


def test_full_store_keeps_the_flag(timed, monkeypatch):
    runs = timed
    monkeypatch.setattr(calibrate, "TIMED_MAX", 0)
    x, w, kw = _layer(np.float32)
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense_oc"
    assert runs == []


def test_an_unknown_stored_choice_is_ignored(timed):
    # a damaged or foreign entry is not taken: the layer is timed again
    runs = timed
    x, w, kw = _layer(np.float32)
    key = _key(x, w, kw)
    with open(calibrate.timed_path(), "w") as f:
        json.dump({"choices": {key: {"choice": "gemm"}}}, f)
    _forget()
    nn.conv2d(x, w, **kw)
    assert len(runs) == 1 and _stored()[key]["choice"] in KERNELS
