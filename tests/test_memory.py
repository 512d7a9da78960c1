"""pyconv's memory pool (pyconv/_memory.py, pyconv/_kernels/pyconv_pool.h): the arrays a
public call allocates come from it, freed large ones are reused (and, for np.zeros,
zeroed again), the budget bounds what it keeps, and results do not depend on it."""
import os
import subprocess
import sys

import numpy as np
import pytest

from numpy._core.multiarray import get_handler_name

from pyconv import _memory, grad, nn, signal
from pyconv._kernels import _pool
from reference import assert_close, conv_nd

BUDGET = 64 << 20


@pytest.fixture
def pool():
    """A known, empty pool for the test; the configured budget afterwards."""
    before = _memory.stats()["budget"]
    _memory.configure(BUDGET)
    yield
    _memory.configure(before)


def _layer(rng, dt=np.float32):
    x = rng.standard_normal((4, 16, 40, 40)).astype(dt)      # output 400 KiB: kept
    w = rng.standard_normal((16, 16, 3, 3)).astype(dt)
    return x, w


def test_outputs_come_from_the_pool_and_are_reused(pool):
    rng = np.random.default_rng(0)
    x, w = _layer(rng)
    y = nn.conv2d(x, w, padding=1)
    assert get_handler_name(y) == _pool.NAME
    assert get_handler_name(x) != _pool.NAME     # the caller's own arrays are untouched
    ref = y.copy()
    addr = y.ctypes.data
    del y
    s0 = _memory.stats()
    assert s0["blocks"] >= 1 and 0 < s0["held"] <= BUDGET
    y2 = nn.conv2d(x, w, padding=1)
    assert _memory.stats()["hits"] > s0["hits"]
    # the kept block serves the same request again, and the result is the same
    assert y2.ctypes.data == addr
    np.testing.assert_array_equal(y2, ref)


def test_reused_memory_is_zeroed_where_numpy_asks_for_zeros(pool):
    """np.zeros under the pool (its calloc) sees zeros in a block last used by NaNs."""
    old = _memory.enter()
    try:
        junk = np.full(100_000, np.nan)
        assert get_handler_name(junk) == _pool.NAME
        addr = junk.ctypes.data
        del junk
        z = np.zeros(90_000)
        assert z.ctypes.data == addr and not z.any()
    finally:
        _memory.leave(old)


def test_weight_gradient_after_a_block_of_nans(pool):
    """The weight gradient's zeroed accumulators (590 KiB here) taken from a block a NaN
    array left: the result is still the reference's."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 64, 12, 12))
    w = rng.standard_normal((64, 64, 3, 3))
    go = rng.standard_normal((2, 64, 12, 12))
    ref = conv_nd(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), np.ascontiguousarray(go.transpose(1, 0, 2, 3)),
                  padding=1).transpose(1, 0, 2, 3)
    for _ in range(3):
        junk = signal.convolve(np.full((300, 300), np.nan), np.ones((1, 1)), method="direct")
        assert get_handler_name(junk) == _pool.NAME
        del junk                                   # 703 KiB of NaN back to the pool
        gw = grad.conv2d_weight(x, w.shape, go, padding=1)
        assert np.isfinite(gw).all()
        assert_close(gw, ref, n_reduce=2 * 12 * 12)


def test_sizes_far_from_a_kept_block_get_their_own(pool):
    big = signal.convolve(np.zeros((600, 600)), np.ones((1, 1)), method="direct")   # 2.7 MiB
    addr = big.ctypes.data
    del big
    hits = _memory.stats()["hits"]
    small = signal.convolve(np.zeros((300, 300)), np.ones((1, 1)), method="direct")  # 703 KiB
    assert small.ctypes.data != addr and _memory.stats()["hits"] == hits
    del small
    # a request of at least 3/4 of a kept block takes it
    near = signal.convolve(np.zeros((560, 560)), np.ones((1, 1)), method="direct")
    assert near.ctypes.data == addr


def test_the_budget_bounds_what_is_kept(pool):
    _memory.configure(3 << 20)
    arrays = [signal.convolve(np.zeros((400, 400 + i)), np.ones((1, 1)), method="direct") for i in range(12)]
    del arrays
    s = _memory.stats()
    assert s["held"] <= 3 << 20 and 1 <= s["blocks"] <= _pool.SLOTS
    _memory.configure(BUDGET)
    assert _memory.stats()["held"] == 0 and _memory.stats()["blocks"] == 0
    # more blocks than slots: the oldest go back to the C library first
    arrays = [signal.convolve(np.zeros((300, 300 + i)), np.ones((1, 1)), method="direct") for i in range(_pool.SLOTS + 4)]
    del arrays
    assert _memory.stats()["blocks"] == _pool.SLOTS


def test_pool_off_leaves_numpy_allocator(pool):
    _memory.configure(0)
    y = nn.conv2d(*_layer(np.random.default_rng(2)), padding=1)
    assert get_handler_name(y) != _pool.NAME
    assert _memory.stats()["held"] == 0


def test_pool_arrays_resize_and_outlive_a_reconfiguration(pool):
    y = signal.convolve(np.arange(200 * 200, dtype=np.float64).reshape(200, 200), np.ones((1, 1)), method="direct")
    assert get_handler_name(y) == _pool.NAME
    flat = y.reshape(-1).copy()
    y.resize((300 * 300,), refcheck=False)          # the handler's realloc
    np.testing.assert_array_equal(y[:flat.size], flat)
    _memory.configure(0)                            # freed after the pool is off: straight to libc
    del y
    assert _memory.stats()["held"] == 0


@pytest.mark.parametrize("value, expected", [("0", 0), ("off", 0), ("512M", 512 << 20), ("1G", 1 << 30),
                                             ("512MB", 512 << 20), ("64MiB", 64 << 20), ("1.5k", 1536),
                                             ("300000", 300000), ("", None), (None, None)])
def test_budget_from_the_environment(value, expected):
    got = _memory.budget_from_env(value)
    assert got == (_memory.default_budget() if expected is None else expected)


@pytest.mark.parametrize("value", ["lots", "inf", "nan", "-5M", "M", "B"])
def test_bad_budget_value_warns_and_keeps_the_default(value):
    with pytest.warns(RuntimeWarning, match="PYCONV_ALLOC_CACHE"):
        assert _memory.budget_from_env(value) == _memory.default_budget()


def test_environment_switches_the_pool_off_in_a_new_process():
    code = ("import numpy as np, pyconv; from pyconv import _memory; "
            "from numpy._core.multiarray import get_handler_name; "
            "y = pyconv.convolve(np.zeros((300, 300)), np.ones((2, 2))); "
            "print(_memory.stats()['budget'], get_handler_name(y))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYCONV_ALLOC_CACHE="0"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    budget, name = out.stdout.split()
    assert budget == "0" and name != _pool.NAME


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_allocates_from_the_pool(pool):
    """A child forked while the pool holds blocks takes and returns them as its own."""
    y = signal.convolve(np.ones((300, 300)), np.ones((1, 1)), method="direct")
    del y
    assert _memory.stats()["blocks"] >= 1
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            y = signal.convolve(np.ones((300, 300)), np.ones((1, 1)), method="direct")
            code = 0 if y.sum() == 90000 and _memory.stats()["hits"] > 0 else 2
            del y
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
