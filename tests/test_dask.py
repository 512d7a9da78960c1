"""pyconv.dask against the in-memory functions on the computed arrays.

Oracles: pyconv.signal / pyconv.nn / pyconv.grad on the numpy array (themselves
tested against scipy and PyTorch), and scipy.signal for the boundary rules.
Tolerances: ``method='direct'`` convolve/correlate are bitwise; everything else
float64 rtol/atol 1e-10, float32 1e-4 (summation order of FFTs and of the
per-chunk weight gradients, tree-summed).

Engines: dask's synchronous and threaded schedulers, and a real
``distributed.LocalCluster`` (2 worker processes of 1 thread on loopback) started
once for the session.  Every lazy result is checked chunk by chunk: each computed
block has the shape its ``chunks`` announce and the announced dtype.
"""
import itertools
import math
import os
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import pyconv  # noqa: E402
import pyconv.dask as pdk  # noqa: E402
import pyconv.grad  # noqa: E402
import pyconv.nn  # noqa: E402
import scipy.signal as ss  # noqa: E402

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


@pytest.fixture(scope="session")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(params=["sync", "threads", "distributed"])
def engine(request):
    """A compute(*arrays) function on one of the three engines."""
    if request.param == "distributed":
        client = request.getfixturevalue("cluster_client")
        run = lambda *arrays: tuple(client.compute(list(arrays), sync=True))  # noqa: E731
    else:
        run = lambda *arrays: dask.compute(*arrays, scheduler=request.param)  # noqa: E731
    # the cluster runs a third of each grid: its per-task cost (pickling, messages) is 10x a thread's
    run.share = 3 if request.param == "distributed" else 1
    return run


def _block_checker(dtype):
    # a closure, so a distributed worker receives it by value (the test module is not importable there)
    def check(block, block_info=None):
        want = tuple(block_info[None]["chunk-shape"])
        assert block.shape == want, (block.shape, want)
        assert block.dtype == dtype, (block.dtype, dtype)
        return block
    return check


def checked(y):
    """``y`` with every block's shape and dtype asserted against its announced chunks at compute time."""
    assert isinstance(y, da.Array)
    assert isinstance(y._meta, np.ndarray) and y._meta.dtype == y.dtype
    return y.map_blocks(_block_checker(y.dtype), dtype=y.dtype, meta=y._meta)


def assert_same(got, ref, exact=False):
    assert got.shape == ref.shape and got.dtype == ref.dtype, (got.shape, ref.shape, got.dtype, ref.dtype)
    if exact or ref.dtype.kind in "biu":
        np.testing.assert_array_equal(got, ref)
    else:
        tol = TOL.get(np.dtype(ref.dtype), TOL[np.dtype(np.float32)] if ref.dtype == np.complex64 else 1e-10)
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * max(1.0, float(np.abs(ref).max(initial=0))))


def _chunking(rng, shape):
    """Uneven chunks, size-1 chunks, one chunk: a chunk tuple per axis."""
    out = []
    ones = True                   # size-1 chunks along one axis at most (tasks multiply across axes)
    for n in shape:
        kind = rng.integers(0, 4)
        if kind == 0 or n <= 1:
            out.append((n,))
        elif kind == 1 and ones:
            out.append((1,) * n)
            ones = False
        else:
            cuts = sorted(set(rng.integers(1, n, size=rng.integers(1, min(n, 4))).tolist()))
            out.append(tuple(np.diff([0, *cuts, n]).tolist()))
    return tuple(out)


# --------------------------------------------------------------------------- signal

def _signal_cases(seed, count):
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        nd = int(rng.integers(1, 4))
        shape = tuple(int(s) for s in rng.integers(1, 11 if nd < 3 else 7, nd))
        # even kernels, and kernels larger than the input along some axis
        kshape = tuple(int(s) for s in rng.integers(1, 7 if nd < 3 else 5, nd))
        cases.append((shape, kshape, _chunking(rng, shape), int(rng.integers(1 << 30))))
    return cases


@pytest.mark.parametrize("fname", ["convolve", "correlate"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.complex128, np.bool_])
def test_convolve_correlate_direct_bitwise(engine, fname, dtype):
    lazies, refs = [], []
    for shape, kshape, chunks, seed in _signal_cases(zlib.crc32(f"{fname}{np.dtype(dtype).str}".encode()), 12 // engine.share):
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal(shape) * 4).astype(dtype)
        k = (rng.standard_normal(kshape) * 4).astype(dtype)
        if dtype == np.complex128:
            x = x + 1j * rng.standard_normal(shape)
        X = da.from_array(x, chunks=chunks)
        for mode in ("full", "same", "valid"):
            try:
                ref = getattr(pyconv.signal, fname)(x, k, mode, method="direct")
            except ValueError:
                with pytest.raises(ValueError, match="valid"):
                    getattr(pdk, fname)(X, k, mode, method="direct")
                continue
            y = getattr(pdk, fname)(X, k, mode, method="direct")
            assert y.shape == ref.shape and y.dtype == ref.dtype
            lazies.append(checked(y))
            refs.append(ref)
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref, exact=True)


@pytest.mark.parametrize("fname", ["fftconvolve", "oaconvolve", "convolve-auto"])
def test_fft_methods(engine, fname, float_dtype=np.float32):
    lazies, refs = [], []
    for i, (shape, kshape, chunks, seed) in enumerate(_signal_cases(7, 10 // engine.share)):
        rng = np.random.default_rng(seed)
        dtype = (np.float32, np.float64)[i % 2]
        x = rng.standard_normal(shape).astype(dtype)
        k = rng.standard_normal(kshape).astype(dtype)
        X = da.from_array(x, chunks=chunks)
        for mode in ("full", "same", "valid"):
            if fname == "convolve-auto":
                fn, dfn, kw = pyconv.signal.convolve, pdk.convolve, {"method": "fft"}
            else:
                fn, dfn, kw = getattr(pyconv.signal, fname), getattr(pdk, fname), {}
            try:
                ref = fn(x, k, mode, **kw)
            except ValueError:
                continue
            lazies.append(checked(dfn(X, k, mode, **kw)))
            refs.append(ref)
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref)


@pytest.mark.parametrize("axes", [1, [-1], [0, 1], None])
def test_fftconvolve_axes_broadcast(axes):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 23))
    for kshape in [(5, 4), (1, 6), (5, 1)]:
        k = rng.standard_normal(kshape)
        for xin in (x, x[:1]):
            X = da.from_array(xin, chunks=(2, 6))
            for mode in ("full", "same", "valid"):
                for name in ("fftconvolve", "oaconvolve"):
                    try:
                        ref = getattr(ss, name)(xin, k, mode, axes=axes)
                    except ValueError:
                        with pytest.raises(ValueError):
                            getattr(pdk, name)(X, k, mode, axes=axes)
                        continue
                    got = checked(getattr(pdk, name)(X, k, mode, axes=axes)).compute(scheduler="sync")
                    assert_same(got, ref)


@pytest.mark.parametrize("fname", ["convolve2d", "correlate2d"])
def test_convolve2d_boundaries_vs_scipy(engine, fname):
    rng = np.random.default_rng(11)
    lazies, refs = [], []
    for _ in range(9 // engine.share):
        shape = tuple(int(s) for s in rng.integers(1, 13, 2))
        kshape = tuple(int(s) for s in rng.integers(1, 8, 2))     # even, and larger than in1
        x = rng.standard_normal(shape)
        k = rng.standard_normal(kshape)
        X = da.from_array(x, chunks=_chunking(rng, shape))
        for mode in ("full", "same", "valid"):
            for boundary, fv in (("fill", 0), ("fill", -2.5), ("wrap", 0), ("symm", 0)):
                try:
                    ref = getattr(ss, fname)(x, k, mode, boundary, fv)
                except ValueError:
                    continue
                lazies.append(checked(getattr(pdk, fname)(X, k, mode, boundary, fv)))
                refs.append(ref)
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref)


def test_convolve2d_integer_fillvalue_and_sep():
    rng = np.random.default_rng(5)
    x = rng.integers(-50, 50, (17, 9)).astype(np.int8)
    k = rng.integers(-3, 4, (4, 3)).astype(np.int8)
    X = da.from_array(x, chunks=(5, 2))
    for mode in ("full", "same", "valid"):
        got = checked(pdk.convolve2d(X, k, mode, fillvalue=7)).compute(scheduler="sync")
        assert_same(got, ss.convolve2d(x, k, mode, fillvalue=7))
        col, row = rng.standard_normal(5), rng.standard_normal(2)
        got = checked(pdk.sepconvolve2d(X.astype(np.float64), col, row, mode)).compute(scheduler="sync")
        assert_same(got, ss.convolve2d(x.astype(np.float64), np.outer(col, row), mode))


def test_nonfinite_reaches_its_windows_only():
    x = np.zeros((12, 12))
    x[5, 5] = np.inf
    X = da.from_array(x, chunks=4)
    got = pdk.convolve(X, np.ones((3, 3)), "same", method="direct").compute(scheduler="sync")
    assert_same(got, pyconv.signal.convolve(x, np.ones((3, 3)), "same", method="direct"), exact=True)
    assert np.isinf(got).sum() == 9
    # a NaN/Inf in the kernel: the in-memory direct kernel skips the taps outside in1
    # (no 0 * Inf = NaN at the borders), and so does every chunk
    rng = np.random.default_rng(6)
    lazies, refs = [], []
    for i, (shape, kshape, chunks, seed) in enumerate(_signal_cases(66, 8)):
        x = np.random.default_rng(seed).standard_normal(shape)
        k = np.random.default_rng(seed + 1).standard_normal(kshape)
        k.flat[rng.integers(k.size)] = (np.inf, -np.inf, np.nan)[i % 3]
        for fname in ("convolve", "correlate"):
            for mode in ("full", "same", "valid"):
                try:
                    ref = getattr(pyconv.signal, fname)(x, k, mode, method="direct")
                except ValueError:
                    continue
                lazies.append(checked(getattr(pdk, fname)(da.from_array(x, chunks=chunks), k, mode, method="direct")))
                refs.append(ref)
    for got, ref in zip(dask.compute(*lazies, scheduler="sync"), refs):
        assert got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)          # NaN where NaN, Inf where Inf, bitwise elsewhere


def test_empty_and_scalar_inputs():
    for shape, kshape, mode in [((0, 4), (2, 2), "same"), ((3, 0), (2, 1), "full"), ((5,), (0,), "valid")]:
        x, k = np.zeros(shape), np.ones(kshape)
        try:
            ref = pyconv.signal.convolve(x, k, mode)
        except ValueError:
            with pytest.raises(ValueError):
                pdk.convolve(da.from_array(x), k, mode).compute()
            continue
        assert_same(pdk.convolve(da.from_array(x), k, mode).compute(), ref)
    assert_same(pdk.correlate(da.from_array(np.array(2.0)), np.array(3.0)).compute(), np.array(6.0))


def test_lazy_chunks_follow_the_input():
    X = da.ones((100, 60), chunks=(30, 25), dtype=np.float32)
    k = np.ones((5, 4), np.float32)
    assert pdk.convolve(X, k, "same").chunks == X.chunks
    assert pdk.convolve(X, k, "full").chunks == ((30, 30, 30, 14), (25, 25, 13))
    assert pdk.convolve(X, k, "valid").chunks == ((30, 30, 30, 6), (25, 25, 7))
    assert pdk.convolve(X, k, "same").dtype == np.float32
    # chunks smaller than the halo are merged first
    y = pdk.convolve(da.ones(20, chunks=2), np.ones(7), "same")
    assert min(y.chunks[0]) >= 6


# --------------------------------------------------------------------------- nn

def _nn_cases(seed, count):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        nd = int(rng.integers(1, 4))
        groups = int(rng.integers(1, 3))
        cg, og = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        sp = tuple(int(s) for s in rng.integers(3, 12 if nd < 3 else 7, nd))
        ks = tuple(int(s) for s in rng.integers(1, 5 if nd < 3 else 4, nd))
        stride, dil = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        pm = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
        pad = [0, 1, 2, "same", "valid",
               tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (nd, 2)))][int(rng.integers(0, 6))]
        n = int(rng.integers(1, 4))
        chunks = ((int(rng.integers(1, 3)),), (cg * int(rng.integers(1, groups + 1)),)) + _chunking(rng, sp)
        yield nd, groups, cg, og, sp, ks, stride, dil, pm, pad, n, chunks, int(rng.integers(1 << 30))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_and_transpose(engine, dtype):
    lazies, refs = [], []
    for nd, groups, cg, og, sp, ks, stride, dil, pm, pad, n, chunks, seed in _nn_cases(21, 12 // engine.share):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, cg * groups) + sp).astype(dtype)
        w = rng.standard_normal((og * groups, cg) + ks).astype(dtype)
        b = rng.standard_normal(og * groups).astype(dtype)
        X = da.from_array(x, chunks=tuple(c[0] if len(c) == 1 else c for c in chunks))
        f, fd = getattr(pyconv.nn, f"conv{nd}d"), getattr(pdk, f"conv{nd}d")
        kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups, padding_mode=pm)
        try:
            ref = f(x, w, b, **kw)
        except ValueError as e:
            with pytest.raises(ValueError, match=str(e).split()[0]):
                fd(X, w, b, **kw)
            continue
        lazies += [checked(fd(X, w, b, **kw)), checked(fd(X[0], w, b, **kw))]
        refs += [ref, f(x[0], w, b, **kw)]
        wt = rng.standard_normal((cg * groups, og) + ks).astype(dtype)
        op = int(rng.integers(0, stride)) if stride > 1 else 0
        kt = dict(stride=stride, padding=int(rng.integers(0, 2)), output_padding=op, groups=groups, dilation=dil)
        try:
            ref = getattr(pyconv.nn, f"conv_transpose{nd}d")(x, wt, b, **kt)
        except ValueError:
            continue
        lazies.append(checked(getattr(pdk, f"conv_transpose{nd}d")(X, wt, b, **kt)))
        refs.append(ref)
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref)


def test_depthwise_separable_pointwise(engine):
    rng = np.random.default_rng(8)
    lazies, refs = [], []
    for _ in range(6 // engine.share):
        c, m = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        sp = tuple(int(s) for s in rng.integers(4, 12, 2))
        ks = tuple(int(s) for s in rng.integers(1, 5, 2))
        stride, dil, pad = int(rng.integers(1, 3)), int(rng.integers(1, 3)), ["same", 1, "valid"][int(rng.integers(3))]
        x = rng.standard_normal((2, c) + sp).astype(np.float32)
        wd = rng.standard_normal((c * m, 1) + ks).astype(np.float32)
        bd = rng.standard_normal(c * m).astype(np.float32)
        spc = _chunking(rng, sp)
        try:
            ref = pyconv.nn.depthwise_conv2d(x, wd, bd, stride, pad, dil)
        except ValueError:
            continue
        lazies.append(checked(pdk.depthwise_conv2d(da.from_array(x, chunks=((1, 1), (1,) * c) + spc),
                                                   wd, bd, stride, pad, dil)))
        refs.append(ref)
        pw = rng.standard_normal((3, c * m, 1, 1)).astype(np.float32)
        lazies.append(checked(pdk.separable_conv2d(da.from_array(x, chunks=((2,), (c,)) + spc),
                                                   wd, pw, None, stride, pad, dil)))
        refs.append(pyconv.nn.separable_conv2d(x, wd, pw, None, stride, pad, dil))
        wp = rng.standard_normal((4, c)).astype(np.float32)
        lazies.append(checked(pdk.pointwise_conv2d(da.from_array(x, chunks=(1, c) + spc), wp, None)))
        refs.append(pyconv.nn.pointwise_conv2d(x, wp))
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref)


def test_channel_chunks():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    X = da.from_array(x, chunks=(1, 3, 5, 9))
    y = pdk.conv2d(X, w, groups=2, padding=1)            # a chunk holds one whole group
    assert y.chunks[1] == (2, 2)
    assert_same(y.compute(), pyconv.nn.conv2d(x, w, groups=2, padding=1))
    with pytest.raises(ValueError, match=r"groups of 3 input channels.*rechunk"):
        pdk.conv2d(da.from_array(x, chunks=(1, 2, 9, 9)), w, groups=2)
    with pytest.raises(ValueError, match=r"reads all input channels.*input.rechunk\(\{1: -1\}\)"):
        pdk.conv2d(X, rng.standard_normal((4, 6, 3, 3)))
    with pytest.raises(ValueError, match=r"reads all input channels"):
        pdk.separable_conv2d(X, np.ones((6, 1, 3, 3)), np.ones((2, 6, 1, 1)))


def test_strided_halos_are_aligned():
    # chunks not multiples of the stride, a chunk smaller than the dilated kernel
    x = np.random.default_rng(4).standard_normal((1, 1, 37))
    w = np.random.default_rng(5).standard_normal((1, 1, 4))
    for chunks in [(5, 7, 1, 11, 13), (1,) * 37, (36, 1)]:
        X = da.from_array(x, chunks=(1, 1, chunks))
        for stride in (1, 2, 3, 5):
            for pad in (0, 3, "same"):
                kw = dict(stride=stride, padding=pad, dilation=2)
                assert_same(checked(pdk.conv1d(X, w, **kw)).compute(scheduler="sync"),
                            pyconv.nn.conv1d(x, w, **kw))
                kt = dict(stride=stride, padding=1, dilation=2)
                assert_same(checked(pdk.conv_transpose1d(X, w, **kt)).compute(scheduler="sync"),
                            pyconv.nn.conv_transpose1d(x, w, **kt))


# --------------------------------------------------------------------------- grad

def test_backward_data_parallel(engine):
    lazies, refs = [], []
    for nd, groups, cg, og, sp, ks, stride, dil, pm, pad, n, chunks, seed in _nn_cases(33, 10 // engine.share):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(1, 7))
        x = rng.standard_normal((n, cg * groups) + sp)
        w = rng.standard_normal((og * groups, cg) + ks)
        b = rng.standard_normal(og * groups) if seed % 2 else None
        kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups, padding_mode=pm)
        try:
            out = getattr(pyconv.nn, f"conv{nd}d")(x, w, b, **kw)
        except ValueError:
            continue
        g = rng.standard_normal(out.shape)
        ref = getattr(pyconv.grad, f"conv{nd}d_backward")(g, x, w, b, **kw)
        X = da.from_array(x, chunks=(int(rng.integers(1, 3)),) + x.shape[1:])
        gx, gw, gb = getattr(pdk, f"conv{nd}d_backward")(da.from_array(g, chunks=2), X, w, b, **kw)
        assert gx.chunks == X.chunks and all(len(c) == 1 for c in gw.chunks)
        assert (gb is None) == (b is None)
        lazies += [checked(gx), checked(gw)] + ([checked(gb)] if b is not None else [])
        refs += [r for r in ref if r is not None]
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref)


def test_backward_float32_batch_64_in_chunks_of_8():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal((64, 8, 12, 12)).astype(np.float32)
    X = da.from_array(x, chunks=(8, 3, 12, 12))
    got = dask.compute(*pdk.conv2d_backward(g, X, w, b, padding=1), scheduler="threads")
    for a, r in zip(got, pyconv.grad.conv2d_backward(g, x, w, b, padding=1)):
        assert_same(a, r)
    with pytest.raises(ValueError, match=r"cannot split the channels.*input.rechunk\(\{1: -1\}\)"):
        pdk.conv2d_backward(g, X.rechunk((8, 1, 12, 12)), w, b, padding=1)
    with pytest.raises(ValueError, match=r"padding_mode='zeros' only.*input.rechunk\(\{2: -1, 3: -1\}\)"):
        pdk.conv2d_backward(g, X.rechunk((8, 3, 6, 12)), w, b, padding=1, padding_mode="reflect")


def test_backward_spatial_chunks(engine):
    """Spatially chunked input (zeros padding): grad_input from grad_output halos with a
    padding per chunk, weight/bias rows from input halos; every stride, dilation, padding
    form and group count of the random nn cases, uneven and size-1 chunks."""
    lazies, refs = [], []
    for nd, groups, cg, og, sp, ks, stride, dil, pm, pad, n, chunks, seed in _nn_cases(47, 18 // engine.share):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, cg * groups) + sp)
        w = rng.standard_normal((og * groups, cg) + ks)
        b = rng.standard_normal(og * groups) if seed % 2 else None
        kw = dict(stride=stride, padding=pad, dilation=dil, groups=groups)
        try:
            out = getattr(pyconv.nn, f"conv{nd}d")(x, w, b, **kw)
        except ValueError:
            continue
        g = rng.standard_normal(out.shape)
        ref = getattr(pyconv.grad, f"conv{nd}d_backward")(g, x, w, b, **kw)
        X = da.from_array(x, chunks=(chunks[0][0], -1) + chunks[2:])
        G = da.from_array(g, chunks=(1, 1) + _chunking(rng, g.shape[2:]))
        gx, gw, gb = getattr(pdk, f"conv{nd}d_backward")(G, X, w, b, **kw)
        assert gx.chunks == X.chunks and all(len(c) == 1 for c in gw.chunks)
        lazies += [checked(gx), checked(gw)] + ([checked(gb)] if b is not None else [])
        refs += [r for r in ref if r is not None]
    assert len(refs) > 6
    for got, ref in zip(engine(*lazies), refs):
        assert_same(got, ref)
    # float32, 3x3 padding 1 in 2x2 spatial chunks; unbatched
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 3, 12, 12)).astype(np.float32)
    w, b = rng.standard_normal((8, 3, 3, 3)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    for a, r in zip(engine(*pdk.conv2d_backward(g, da.from_array(x, chunks=(2, 3, 6, 6)), w, b, padding=1)),
                    pyconv.grad.conv2d_backward(g, x, w, b, padding=1)):
        assert_same(a, r)
    g1 = rng.standard_normal(pyconv.nn.conv2d(x[0], w, stride=2).shape).astype(np.float32)
    gx, gw, gb = pdk.conv2d_backward(g1, da.from_array(x[0], chunks=(3, 5, 7)), w, None, stride=2)
    assert gb is None and gx.chunks == ((3,), (5, 5, 2), (7, 5))
    for a, r in zip(engine(gx, gw), pyconv.grad.conv2d_backward(g1, x[0], w, None, stride=2)):
        assert_same(a, r)



def test_shared_operands_inline_when_small_else_one_key_each(monkeypatch):
    """Kernels and weights every task shares ride in the tasks' own specs while they are small
    together (no key to wait for), and sit under one key each (in the graph once) when large;
    the two forms of one graph have different keys (a cluster never sees one key with two
    task specs)."""
    from pyconv.dask import _INLINE_CONST_BYTES
    x = da.random.default_rng(3).standard_normal((64, 60), chunks=(16, 30))
    n = int((_INLINE_CONST_BYTES // 8) ** 0.5) + 1          # float64 n x n: just over the limit
    for k, inline in ((np.ones((3, 3)), True), (np.ones((n, n)), False)):
        y = pdk.convolve(x, k, "same", method="direct")
        dsk = dict(y.__dask_graph__())
        const = [key for key in dsk if "-const" in str(key[0] if isinstance(key, tuple) else key)]
        outs = [v for key, v in dsk.items() if isinstance(key, tuple) and key[0] == y.name]
        assert len(const) == (0 if inline else 1)
        carried = [any(a is k for a in task if isinstance(a, np.ndarray)) for task in outs]
        assert carried == [inline] * len(outs)
        if inline:
            assert_same(y.compute(scheduler="sync"),
                        pyconv.signal.convolve(x.compute(), k, "same", method="direct"), exact=True)
    # the batch-chunked backward's weight and bias alike
    X = da.random.default_rng(1).standard_normal((4, 3, 6, 6), chunks=(2, 3, 6, 6))
    G = da.random.default_rng(2).standard_normal((4, 5, 6, 6), chunks=(2, 5, 6, 6))
    w, b = np.ones((5, 3, 3, 3)), np.ones(5)
    gx, gw, gb = pdk.conv2d_backward(G, X, w, b, padding=1)
    assert not [key for key in dict(gw.__dask_graph__()) if "-const" in str(key[0])]
    y = pdk.convolve(x, np.ones((3, 3)), "same", method="direct")
    monkeypatch.setattr(pdk, "_INLINE_CONST_BYTES", -1)
    keyed = pdk.conv2d_backward(G, X, w, b, padding=1)
    assert [key for key in dict(keyed[1].__dask_graph__()) if "-const" in str(key[0])]
    assert keyed[0].name != gx.name and keyed[1].name != gw.name
    assert pdk.convolve(x, np.ones((3, 3)), "same", method="direct").name != y.name
    for a, r in zip(dask.compute(gx, gw, gb, scheduler="sync"),
                    pyconv.grad.conv2d_backward(G.compute(), X.compute(), w, b, padding=1)):
        assert_same(a, r)


def _deps(dsk, key):
    from dask.core import get_dependencies
    return get_dependencies(dsk, key)


@pytest.mark.parametrize("shape, chunk, ksz, split", [
    ((40, 40, 40), 10, 3, True),     # an inner chunk's pieces: 5.8 KB of an 8 KB chunk
    ((256, 256), 64, 3, False),      # 2.1 KB of 32 KB: one shared export per chunk
    ((256, 256), 64, 9, True)])      # 8.7 KB of 32 KB
def test_halo_graph_is_one_task_per_chunk_plus_its_exports(shape, chunk, ksz, split):
    """One output task per chunk reading one input chunk whole (its own) and its neighbours
    only through their export tasks, each export reading one chunk.  A chunk's pieces go
    in one shared export, or, when a chunk's pieces make an eighth of it or more, every
    chunk's go in one export per axis (the faces across it, read by the neighbours apart
    along that axis alone) and one for the diagonal neighbours."""
    x = da.random.default_rng(3).standard_normal(shape, chunks=chunk)
    k = np.random.default_rng(4).standard_normal((ksz,) * len(shape))
    y = pdk.convolve(x, k, "same", method="direct")
    dsk = dict(y.__dask_graph__())
    inputs = set(dict(x.__dask_graph__()))
    outs = [key for key in dsk if isinstance(key, tuple) and key[0] == y.name]
    exports = [key for key in dsk if isinstance(key, tuple) and "-halo-" in str(key[0])]
    halo = f"{y.name.rsplit('-', 1)[0]}-halo-{y.name.rsplit('-', 1)[1]}"
    grid = [n // chunk for n in shape]
    h = (ksz - 1) // 2

    def neighbours(c):
        return [nb for nb in itertools.product(*[range(max(0, i - 1), min(g, i + 2)) for i, g in zip(c, grid)])
                if nb != c]

    def pieces(c):
        # what the outputs reading chunk c read of it: its whole extent along the axes where
        # they sit level with it, the halo depth across the others
        return sum(math.prod(chunk if a == b else h for a, b in zip(nb, c)) for nb in neighbours(c))

    chunks = list(itertools.product(*map(range, grid)))
    assert any(8 * pieces(c) >= chunk ** len(shape) for c in chunks) == split
    assert len(outs) == len(chunks)
    assert len(dsk) == len(inputs) + len(outs) + len(exports)    # the small kernel rides in each task
    want_exports = set()
    for key in outs:
        deps = _deps(dsk, key)
        assert [d for d in deps if d in inputs] == [(x.name,) + key[1:]]
        want = set()
        for nb in neighbours(key[1:]):
            apart = [d for d in range(len(shape)) if nb[d] != key[1 + d]]
            want.add((halo + (str(apart[0]) if split and len(apart) == 1 else ""),) + nb)
        assert {d for d in deps if d in exports} == want
        want_exports |= want
    assert set(exports) == want_exports
    for key in exports:
        assert _deps(dsk, key) == {(x.name,) + key[1:]}
    assert_same(y.compute(scheduler="sync"),
                pyconv.signal.convolve(x.compute(), k, "same", method="direct"), exact=True)


def _halo_cases(X2, x2, k2, X3, x3, k3):
    """(lazy, in-memory) pairs: convolve2d of the 2-D pair in every mode and boundary, and
    direct correlate of the 3-D pair in every mode."""
    cases = []
    for mode in ("same", "full", "valid"):
        for boundary in ("fill", "wrap", "symm"):
            cases.append((pdk.convolve2d(X2, k2, mode, boundary, 1.5),
                          pyconv.signal.convolve2d(x2, k2, mode, boundary, 1.5)))
        cases.append((pdk.correlate(X3, k3, mode, method="direct"),
                      pyconv.signal.correlate(x3, k3, mode, method="direct")))
    return cases


@pytest.mark.parametrize("threshold", [0, 1, 10 ** 9])
def test_face_exports_cut_per_output(engine, monkeypatch, threshold):
    """Pieces of at least ``_OWN_EXPORT_BYTES`` for one output get an export task cut for that
    output alone (read by it only); the rest share one export per input chunk.  Threshold 0:
    every neighbour's pieces are own exports; 1e9: none are.  Results stay bitwise the
    in-memory direct ones, every boundary and mode, uneven chunks, one chunk smaller
    than the halo."""
    import pyconv.dask as pdk_mod
    monkeypatch.setattr(pdk_mod, "_OWN_EXPORT_BYTES", threshold)
    rng = np.random.default_rng(11)
    x2 = rng.standard_normal((23, 19))
    k2 = rng.standard_normal((5, 4))
    X2 = da.from_array(x2, chunks=((7, 9, 2, 5), (6, 6, 7)))
    x3 = rng.standard_normal((14, 12, 10)).astype(np.float32)
    k3 = rng.standard_normal((3, 5, 3)).astype(np.float32)
    X3 = da.from_array(x3, chunks=((5, 5, 4), (4, 8), (3, 3, 4)))
    cases = _halo_cases(X2, x2, k2, X3, x3, k3)
    got = engine(*[checked(y) for y, _ in cases])
    for g, (y, ref) in zip(got, cases):
        assert_same(g, ref, exact=True)
    y = cases[0][0]
    dsk = dict(y.__dask_graph__())
    own = [key for key in dsk if isinstance(key, tuple) and str(key[0]).endswith("-to")]
    outs = [key for key in dsk if isinstance(key, tuple) and key[0] == y.name]
    readers = {key: [o for o in outs if key in _deps(dsk, o)] for key in own}
    assert all(len(r) == 1 and r[0][1:] == key[3:] for key, r in readers.items())   # (name, src.., dst..)
    assert bool(own) == (threshold < 10 ** 9)


def _export_tasks(y):
    dsk = dict(y.__dask_graph__())
    return [v for k, v in dsk.items() if isinstance(k, tuple) and "-halo-" in str(k[0])]


def test_exports_of_a_persisted_input_are_views(cluster_client):
    """A persisted input (futures on the cluster; arrays after a local persist) is held anyway:
    its halo exports are views of its chunks (no memory on the worker holding the chunk; a
    view sent to the other worker arrives as a copy of its own elements; ``da.from_array`` of
    an in-memory array counts too: its graph holds the chunks).  A computed input's exports
    are copies (a view would keep alive a chunk that is otherwise freed).  Results
    stay bitwise the in-memory direct ones: convolve2d with every boundary (mirrored and
    periodic halos, read through index arrays) and a 3-d correlate, on the cluster and on
    the synchronous scheduler."""
    from pyconv.dask import _cut, _Lit
    rng = np.random.default_rng(5)
    x2 = rng.standard_normal((23, 19))
    k2 = rng.standard_normal((5, 4))
    x3 = rng.standard_normal((14, 12, 10)).astype(np.float32)
    k3 = rng.standard_normal((3, 5, 3)).astype(np.float32)
    # computed chunks (not slices of an array in the graph), none smaller than the halo (a
    # rechunked input is a new lazy array)
    lazy2 = da.from_array(x2, chunks=((7, 9, 7), (6, 6, 7))) + 0.0
    lazy3 = da.from_array(x3, chunks=((5, 5, 4), (4, 8), (3, 3, 4))) + np.float32(0)
    on_cluster = cluster_client.persist([lazy2, lazy3])
    cluster_client.gather([f for a in on_cluster for f in dict(a.__dask_graph__()).values()])
    local = [a.persist(scheduler="sync") for a in (lazy2, lazy3)]
    for (X2, X3), run in (((lazy2, lazy3), lambda ys: dask.compute(*ys, scheduler="sync")),
                          (tuple(local), lambda ys: dask.compute(*ys, scheduler="sync")),
                          (tuple(on_cluster), lambda ys: cluster_client.compute(list(ys), sync=True))):
        cases = _halo_cases(X2, x2, k2, X3, x3, k3)
        flags = {t[-1] for y, _ in cases for t in _export_tasks(y)}
        assert flags == {X2 is not lazy2}, flags
        for g, (_, ref) in zip(run([checked(y) for y, _ in cases]), cases):
            assert_same(g, ref, exact=True)
    # the cut itself: views of the block when asked (index arrays, a mirrored halo, are copies)
    block = np.arange(60.0).reshape(6, 10)
    pieces = (slice(0, 2), slice(None)), (slice(None), slice(7, 10)), (slice(None), np.array([2, 1, 0]))
    views, copies = _cut(block, _Lit(pieces), True), _cut(block, _Lit(pieces))
    assert [np.shares_memory(v, block) for v in views] == [True, True, False]
    assert not any(np.shares_memory(c, block) for c in copies)
    for v, c, index in zip(views, copies, pieces):
        np.testing.assert_array_equal(v, c)
        np.testing.assert_array_equal(c, block[index[0]][:, index[1]])


def test_a_moved_output_leaves_no_copy_of_a_persisted_chunk(cluster_client):
    """An output of a persisted input reads its own chunk through a task handing on the
    held array (``_same``), never under the input's key: run on another worker (as the
    scheduler does to balance queues), it fetches that task's result, which goes once the
    output has run; fetched under the input's key, the copy would stay until the active
    memory manager drops replicas.  Here every output is made to run on the worker that
    does not hold the input: afterwards no chunk of the input is on that worker, and the
    results are the in-memory ones.  A lazy input's outputs read its chunks directly."""
    import distributed
    workers = sorted(cluster_client.scheduler_info()["workers"])
    holder, other = workers[0], workers[1]
    rng = np.random.default_rng(23)
    x = rng.standard_normal((12, 10, 9)).astype(np.float32)
    k = rng.standard_normal((3, 4, 3)).astype(np.float32)
    lazy = da.from_array(x, chunks=(6, 5, 9)) + np.float32(0)
    X = cluster_client.persist(lazy, workers=[holder])
    futures = list(dict(X.__dask_graph__()).values())
    cluster_client.gather(futures)

    def outputs_elsewhere(key):
        name = key[0] if isinstance(key, tuple) else key
        return [holder] if ("-hold-" in name or "-halo-" in name) else [other]

    with dask.annotate(workers=outputs_elsewhere, allow_other_workers=False):
        y = pdk.correlate(X, k, "same", method="direct")
    dsk = dict(y.__dask_graph__())
    outs = [key for key in dsk if isinstance(key, tuple) and key[0] == y.name]
    deps = {d for o in outs for d in _deps(dsk, o)}
    assert not any(isinstance(d, tuple) and d[0] == X.name for d in deps)
    assert all(any(isinstance(d, tuple) and "-hold-" in d[0] for d in _deps(dsk, o)) for o in outs)
    # (not optimised: the graph's low-level fusion drops the layer's annotations)
    got = cluster_client.compute(y, sync=True, optimize_graph=False)
    assert_same(got, pyconv.signal.correlate(x, k, "same", method="direct"), exact=True)
    who = cluster_client.who_has(futures)
    assert all(set(v) == {holder} for v in who.values()), who
    # a lazy input is not held: its outputs depend on its chunks (no hand-on task)
    y = pdk.correlate(lazy, k, "same", method="direct")
    dsk = dict(y.__dask_graph__())
    assert not any(isinstance(key, tuple) and "-hold-" in str(key[0]) for key in dsk)
    cluster_client.cancel(futures)


def test_tasks_allocate_from_the_memory_pool(monkeypatch):
    """A chunk's task runs in pyconv's memory pool, for the arrays it makes itself too: the
    slab-wise output of a direct chunk (assembled outside pyconv's functions) comes from
    the pool, and its values are the in-memory ones; with the pool off, from NumPy."""
    from numpy._core.multiarray import get_handler_name

    import pyconv.dask as pdk_mod
    from pyconv import _memory
    from pyconv._kernels import _pool
    monkeypatch.setattr(pdk_mod, "_SLAB_BYTES", 64 << 10)      # a 384 KiB chunk in 8+ slabs
    rng = np.random.default_rng(29)
    x = rng.standard_normal((40, 40, 120)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3)).astype(np.float32)
    X = da.from_array(x, chunks=(40, 40, 60))
    ref = pyconv.signal.convolve(x, k, "same", method="direct")
    before = _memory.stats()["budget"]
    try:
        for budget, pooled in ((64 << 20, True), (0, False)):
            _memory.configure(budget)
            y = pdk.convolve(X, k, "same", method="direct")
            block = dask.get(dict(y.__dask_graph__()), (y.name, 0, 0, 1))     # the task's own result
            assert (get_handler_name(block) == _pool.NAME) == pooled
            np.testing.assert_array_equal(block, ref[:, :, 60:])
    finally:
        _memory.configure(before)


@pytest.mark.parametrize("slab_bytes", [1, 700])
def test_chunks_run_in_slabs_of_rows(engine, monkeypatch, slab_bytes):
    """Direct convolutions run a chunk in slabs of output rows, each slab's region (at most
    ``_SLAB_BYTES``, at least one row) assembled alone: bitwise the in-memory result, every
    mode and boundary, fill values, halos from every neighbour and mirrored ones, uneven
    chunks; 1 byte: one output row per slab.  The FFT path and sepconvolve2d run whole chunks."""
    import pyconv.dask as pdk_mod
    monkeypatch.setattr(pdk_mod, "_SLAB_BYTES", slab_bytes)
    rng = np.random.default_rng(17)
    x2 = rng.standard_normal((29, 23))
    k2 = rng.standard_normal((6, 3))
    X2 = da.from_array(x2, chunks=((11, 9, 9), (8, 15)))
    x3 = rng.standard_normal((17, 12, 10)).astype(np.float32)
    k3 = rng.standard_normal((4, 3, 5)).astype(np.float32)
    X3 = da.from_array(x3, chunks=((9, 8), (5, 7), (6, 4)))
    cases = []
    for mode in ("same", "full", "valid"):
        for boundary in ("fill", "wrap", "symm"):
            cases.append((pdk.correlate2d(X2, k2, mode, boundary, -0.5),
                          pyconv.signal.correlate2d(x2, k2, mode, boundary, -0.5)))
        cases.append((pdk.convolve(X3, k3, mode, method="direct"),
                      pyconv.signal.convolve(x3, k3, mode, method="direct")))
    for y, _ in cases:
        names = {t[0].__name__ for t in dict(y.__dask_graph__()).values()
                 if isinstance(t, tuple) and callable(t[0]) and t[0].__name__.startswith("_run_")}
        assert names == {"_run_slabs"}, names
    got = engine(*[checked(y) for y, _ in cases])
    for g, (_, ref) in zip(got, cases):
        assert_same(g, ref, exact=True)
    for y in (pdk.convolve(X3, k3, "same", method="fft"), pdk.sepconvolve2d(X2, k2[:, 0], k2[0], "same")):
        names = {t[0].__name__ for t in dict(y.__dask_graph__()).values()
                 if isinstance(t, tuple) and callable(t[0]) and t[0].__name__.startswith("_run_")}
        assert names == {"_run_block"}, names


@pytest.mark.parametrize("slab_bytes", [1, 900, 1 << 21])
def test_slabs_written_into_the_output_or_copied_are_bitwise(engine, monkeypatch, slab_bytes, request):
    """A direct chunk's slabs are written straight into its output where the result is
    float or complex and summed in its own dtype (float32/64, complex64/128), and copied
    there otherwise (float16, integers): both bitwise the in-memory result, the region's
    buffer taking the dtype the pieces and a wider fill constant give (an integer in1
    with a float fillvalue), one slab and many."""
    import pyconv.dask as pdk_mod
    monkeypatch.setattr(pdk_mod, "_SLAB_BYTES", slab_bytes)
    rng = np.random.default_rng(41)
    calls = []
    real = pyconv.signal._valid_into
    monkeypatch.setattr(pyconv.signal, "_valid_into", lambda *a: calls.append(a[2].dtype) or real(*a))
    cases = []
    for xdt, kdt in ((np.float32, np.float32), (np.float64, np.float32), (np.complex64, np.complex64),
                     (np.float16, np.float16), (np.int16, np.int32)):
        x = (rng.standard_normal((19, 14, 11)) * 8).astype(xdt)
        k = (rng.standard_normal((3, 4, 2)) * 3).astype(kdt)
        if np.dtype(xdt).kind == "c":
            x = x + 1j * rng.standard_normal(x.shape).astype(xdt)
        X = da.from_array(x, chunks=((7, 12), (5, 9), (6, 5)))
        for fn in ("convolve", "correlate"):
            for mode in ("same", "full", "valid"):
                cases.append((getattr(pdk, fn)(X, k, mode, method="direct"),
                              getattr(pyconv.signal, fn)(x, k, mode, method="direct")))
    xi = rng.integers(-50, 50, (23, 17)).astype(np.int32)
    ki = rng.standard_normal((4, 3))
    Xi = da.from_array(xi, chunks=((9, 14), (8, 9)))
    for boundary in ("fill", "symm"):
        cases.append((pdk.convolve2d(Xi, ki, "same", boundary, 2.5),
                      pyconv.signal.convolve2d(xi, ki, "same", boundary, 2.5)))
    got = engine(*[checked(y) for y, _ in cases])
    for g, (_, ref) in zip(got, cases):
        assert_same(g, ref, exact=True)
    if request.node.callspec.params["engine"] != "distributed":     # (a worker's calls are not seen here)
        assert {np.dtype(d) for d in calls} == {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.complex64)}


def test_direct_blocks_with_short_rows_are_bitwise(engine):
    """A direct block's 'valid' call has short rows, which the kernel sweeps merged (into a
    scratch of the region's row length): bitwise the in-memory result for convolve/correlate
    (real, complex: the conjugate), convolve2d/correlate2d with every boundary, an integer
    in1, uneven chunks; the blocks keep their announced shapes and dtypes."""
    rng = np.random.default_rng(21)
    x3 = rng.standard_normal((30, 26, 41)).astype(np.float32)
    k3 = rng.standard_normal((3, 4, 5)).astype(np.float32)
    X3 = da.from_array(x3, chunks=((11, 9, 10), (13, 13), (20, 21)))
    xc = (rng.standard_normal((33, 40)) + 1j * rng.standard_normal((33, 40))).astype(np.complex128)
    kc = (rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3))).astype(np.complex128)
    XC = da.from_array(xc, chunks=(12, (17, 23)))
    xi = rng.integers(-50, 50, (28, 36)).astype(np.int16)
    ki = rng.standard_normal((3, 3)).astype(np.float32)
    XI = da.from_array(xi, chunks=(10, 18))
    cases = []
    for mode in ("same", "full", "valid"):
        for fname in ("convolve", "correlate"):
            cases.append((getattr(pdk, fname)(X3, k3, mode, method="direct"),
                          getattr(pyconv.signal, fname)(x3, k3, mode, method="direct")))
            cases.append((getattr(pdk, fname)(XC, kc, mode, method="direct"),
                          getattr(pyconv.signal, fname)(xc, kc, mode, method="direct")))
        for boundary in ("fill", "wrap", "symm"):
            cases.append((pdk.correlate2d(XC, kc, mode, boundary, 0.5 - 1j),
                          pyconv.signal.correlate2d(xc, kc, mode, boundary, 0.5 - 1j)))
            cases.append((pdk.convolve2d(XI, ki, mode, boundary, 3),
                          pyconv.signal.convolve2d(xi, ki, mode, boundary, 3)))
    got = engine(*[checked(y) for y, _ in cases[::engine.share]])
    for g, (y, ref) in zip(got, cases[::engine.share]):
        assert_same(g, ref, exact=True)


def test_auto_method_chosen_once_for_the_whole_array(monkeypatch):
    """method='auto' is resolved once, on the whole array's shape (as the in-memory call
    resolves it), and every chunk runs that method: bitwise the in-memory result when it
    is 'direct'; 'fft' forced through the chooser gives the FFT result on every chunk."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((30, 26, 22)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3)).astype(np.float32)
    X = da.from_array(x, chunks=(11, 9, 8))
    assert pyconv.signal.choose_conv_method(x, k, "same") == "direct"
    assert_same(pdk.convolve(X, k, "same").compute(scheduler="sync"),
                pyconv.signal.convolve(x, k, "same"), exact=True)
    seen = []

    def chooser(in1, in2, mode="full", measure=False):
        seen.append((in1.shape, in2.shape, mode))
        return "fft"

    monkeypatch.setattr(pyconv.signal, "choose_conv_method", chooser)
    y = pdk.correlate(X, k, "full")
    assert seen == [(x.shape, k.shape, "full")]
    got = y.compute(scheduler="sync")
    assert_same(got, pyconv.signal.correlate(x, k, "full", method="fft"))
    assert not np.array_equal(got, pyconv.signal.correlate(x, k, "full", method="direct"))


def test_backward_graph_moves_only_weight_rows():
    """Per batch chunk an input-gradient task reading only that chunk's grad_output (so it
    runs where grad_output lives: the input chunk never travels for it) and one packed
    weight+bias row reading both chunks; the rows alone are summed by a tree of fan-in 4
    and unpacked by one task per gradient.  Computing grad_weight alone runs no
    input-gradient task."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((36, 3, 6, 6))
    w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal((36, 4, 6, 6))
    X, G = da.from_array(x, chunks=(4, 3, 6, 6)), da.from_array(g, chunks=(4, 4, 6, 6))
    gx, gw, gb = pdk.conv2d_backward(G, X, w, b, padding=1)
    dsk = dict(gx.__dask_graph__())
    from dask.core import flatten
    gx_keys = list(flatten(gx.__dask_keys__()))
    for key in gx_keys:
        deps = _deps(dsk, key)
        assert deps == {(G.name,) + key[1:]}          # (the small weight and bias ride inline)
        assert not any(isinstance(d, tuple) and d and d[0] == X.name for d in deps)
    wdsk = dict(gw.__dask_graph__())
    rows = [key for key in wdsk if isinstance(key, tuple) and "-gwb-" in str(key[0])]
    assert len(rows) == 9 and not any(key[0] == gx.name for key in wdsk)
    for key in rows:
        assert {(G.name,) + (key[1], 0, 0, 0), (X.name,) + (key[1], 0, 0, 0)} <= set(_deps(wdsk, key))
    sums = [key for key in wdsk if isinstance(key, tuple) and "-gwbsum-" in str(key[0])]
    # 9 rows -> partial sums of 4, 4 and the single row passed through -> the two unpacking
    # tasks add those 3 themselves
    assert sorted(len(_deps(wdsk, key)) for key in sums) == [4, 4]
    (wkey,) = flatten(gw.__dask_keys__())
    roots = _deps(wdsk, wkey)
    assert len(roots) == 3 and set(sums) < roots
    (bkey,) = flatten(gb.__dask_keys__())
    assert _deps(dict(gb.__dask_graph__()), bkey) == roots
    for got, ref in zip(dask.compute(gx, gw, gb, scheduler="sync"), pyconv.grad.conv2d_backward(g, x, w, b, padding=1)):
        assert_same(got, ref)
    # one chunk, and 4: no sum node, the rows are unpacked directly
    for n in (36, 9):
        gx1, gw1, gb1 = pdk.conv2d_backward(G.rechunk((n, 4, 6, 6)), X.rechunk((n, 3, 6, 6)), w, b, padding=1)
        wdsk = dict(gw1.__dask_graph__())
        assert not any("-gwbsum-" in str(key) for key in wdsk)
        assert len(_deps(wdsk, next(iter(flatten(gw1.__dask_keys__()))))) == 36 // n
        for got, ref in zip(dask.compute(gx1, gw1, gb1, scheduler="sync"),
                            pyconv.grad.conv2d_backward(g, x, w, b, padding=1)):
            assert_same(got, ref)


def test_footprint_helper_for_ndimage_filters():
    """The helper pyconv.dask's ndimage functions are built on, checked with scipy.ndimage's own
    functions as the per-chunk filter: every ndimage mode, origins, chunks smaller than the radius."""
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(12)
    for _ in range(6):
        shape = tuple(int(s) for s in rng.integers(3, 14, 2))
        x = rng.standard_normal(shape)
        X = da.from_array(x, chunks=tuple(int(c) for c in rng.integers(1, 6, 2)))
        size = tuple(int(s) for s in rng.integers(1, 6, 2))
        origin = tuple(int(rng.integers(-(s // 2), (s - 1) // 2 + 1)) for s in size)
        before = [s // 2 + o for s, o in zip(size, origin)]
        after = [s - 1 - b for s, b in zip(size, before)]
        w = rng.standard_normal(size)
        for mode in ("reflect", "mirror", "nearest", "wrap", "constant", "grid-wrap", "grid-mirror"):
            kw = dict(weights=w, mode=mode, cval=1.5, origin=origin)
            y = pdk._footprint_map(ndi.correlate, X, before, after, mode, 1.5, x.dtype, kw, "corr")
            assert y.shape == X.shape       # chunks follow X's, those smaller than the radius merged
            assert_same(checked(y).compute(scheduler="sync"), ndi.correlate(x, **kw))
        r = int(4 * 1.5 + 0.5)
        y = pdk._footprint_map(ndi.gaussian_filter, X, [r, r], [r, r], "reflect", 0, x.dtype, {"sigma": 1.5}, "g")
        assert_same(y.compute(scheduler="sync"), ndi.gaussian_filter(x, 1.5))


# --------------------------------------------------------------------------- ndimage

NDI_MODES = ("reflect", "mirror", "nearest", "wrap", "constant", "grid-wrap", "grid-mirror", "grid-constant")


def _ndimage_call(name, ndim, rng):
    """Random arguments of pyconv.ndimage.<name> for an ``ndim``-d input: even and odd sizes,
    origins, axes subsets, per-axis modes, reaches beyond small arrays."""
    mode = NDI_MODES[rng.integers(len(NDI_MODES))]
    kw = {"mode": mode, "cval": float(rng.choice([0.0, 1.5, -2.0]))}
    axes = None
    if rng.integers(3) == 0 and ndim > 1:
        axes = tuple(int(a) for a in sorted(rng.choice(ndim, int(rng.integers(1, ndim)), replace=False)))
    nax = ndim if axes is None else len(axes)
    seq_modes = lambda n: [NDI_MODES[i] for i in rng.integers(len(NDI_MODES), size=n)]  # noqa: E731
    if name in ("correlate", "convolve"):
        ks = tuple(int(k) for k in rng.integers(1, 6, nax))
        kw.update(weights=rng.standard_normal(ks), origin=[int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in ks],
                  axes=axes)
    elif name in ("correlate1d", "convolve1d", "uniform_filter1d"):
        k = int(rng.integers(1, 7))
        kw.update(axis=int(rng.integers(-ndim, ndim)), origin=int(rng.integers(-(k // 2), (k - 1) // 2 + 1)))
        kw.update({"size": k} if name == "uniform_filter1d" else {"weights": rng.standard_normal(k)})
    elif name == "gaussian_filter1d":
        kw.update(sigma=float(rng.uniform(0.3, 2.5)), axis=int(rng.integers(ndim)), order=int(rng.integers(3)))
    elif name == "gaussian_filter":
        kw.update(sigma=[float(s) for s in rng.uniform(0, 2, nax)], order=[int(o) for o in rng.integers(0, 3, nax)],
                  axes=axes, truncate=float(rng.uniform(1, 4)))
        if rng.integers(2):
            kw["mode"] = seq_modes(nax)
    elif name == "uniform_filter":
        sizes = [int(k) for k in rng.integers(1, 6, nax)]
        kw.update(size=sizes, origin=[int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in sizes], axes=axes)
        if rng.integers(2):
            kw["mode"] = seq_modes(nax)
    elif name in ("sobel", "prewitt"):
        kw["axis"] = int(rng.integers(ndim))
        if rng.integers(2):
            kw["mode"] = seq_modes(ndim)
    else:                          # laplace, gaussian_laplace, gaussian_gradient_magnitude
        kw["axes"] = axes
        if rng.integers(2):
            kw["mode"] = seq_modes(nax)       # gaussian_*: mixed modes take the per-term path
        if name != "laplace":
            kw.update(sigma=float(rng.uniform(0.4, 1.5)), truncate=float(rng.uniform(1.5, 4)))
    return kw


NDI_NAMES = ("convolve", "correlate", "convolve1d", "correlate1d", "gaussian_filter", "gaussian_filter1d",
             "uniform_filter", "uniform_filter1d", "sobel", "prewitt", "laplace", "gaussian_laplace",
             "gaussian_gradient_magnitude")


@pytest.mark.parametrize("scheduler", ["sync", "threads"])
def test_ndimage_filters_equal_in_memory(scheduler):
    """Every pyconv.ndimage function, random arguments, every mode (per axis too), origins,
    axes=, uneven chunks and chunks smaller than the reach (merged), reaches beyond the
    array: float64 bitwise (the uniform filters within 1e-12: their running sum restarts
    at each block), int16 bitwise, float32 output bitwise."""
    import pyconv.ndimage as nd
    assert sorted(NDI_NAMES) == sorted(nd.__all__) == sorted(pdk.ndimage.__all__)
    rng = np.random.default_rng(2024 if scheduler == "sync" else 7)
    lazies, refs, exact = [], [], []
    for name in NDI_NAMES:
        for i in range(4):
            ndim = int(rng.integers(1, 4))
            shape = tuple(int(s) for s in rng.integers(1, 12 if ndim < 3 else 7, ndim))
            dtype = (np.float64, np.float64, np.int16, np.float32)[i]
            x = (rng.standard_normal(shape) * 50).astype(dtype)
            kw = _ndimage_call(name, ndim, rng)
            if i == 1:
                kw["output"] = np.float32
            X = da.from_array(x, chunks=_chunking(rng, shape))
            ref = getattr(nd, name)(x, **kw)
            y = getattr(pdk.ndimage, name)(X, **kw)
            assert y.shape == ref.shape and y.dtype == ref.dtype, (name, kw)
            lazies.append(checked(y))
            refs.append((ref, name, kw, X.chunks))
            exact.append(not name.startswith("uniform") or ref.dtype.kind in "iu")
    for got, (ref, name, kw, chunks), ex in zip(dask.compute(*lazies, scheduler=scheduler), refs, exact):
        if ex:
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} {kw} {chunks}")
        else:
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * float(np.abs(ref).max(initial=1)),
                                       err_msg=f"{name} {kw} {chunks}")


def test_ndimage_every_mode_with_small_chunks_and_wide_reach():
    """Each mode on chunks of 1 and 2 with reaches wider than the array (wrap/reflect read
    around it several times); separable filters with a nonzero cval (the 'constant' halo is
    the filter's own padding, not a filled region filtered by the other axes' passes)."""
    import pyconv.ndimage as nd
    x = np.random.default_rng(3).standard_normal((5, 7))
    lazies, refs = [], []
    for mode in NDI_MODES:
        for chunks in ((1, 2), (2, (3, 1, 3))):
            X = da.from_array(x, chunks=chunks)
            for name, kw in (("gaussian_filter", dict(sigma=(3.0, 0.7))), ("sobel", {}), ("prewitt", {"axis": 0}),
                             ("correlate", dict(weights=np.arange(12.0).reshape(3, 4) - 5, origin=(1, -2))),
                             ("gaussian_laplace", dict(sigma=1.0)), ("laplace", {}),
                             ("gaussian_gradient_magnitude", dict(sigma=2.0)), ("convolve1d", dict(weights=np.ones(9)))):
                kw = dict(kw, mode=mode, cval=1.5)
                lazies.append(getattr(pdk.ndimage, name)(X, **kw))
                refs.append((getattr(nd, name)(x, **kw), name, mode, chunks))
    for got, (ref, *what) in zip(dask.compute(*lazies, scheduler="sync"), refs):
        np.testing.assert_array_equal(got, ref, err_msg=str(what))


def test_ndimage_routing_output_and_errors():
    import pyconv.ndimage as nd
    x = np.arange(432.0).reshape(24, 18) % 7
    X = da.from_array(x, chunks=6)
    y = nd.gaussian_filter(X, 1.0, mode="wrap")           # routed: lazy, not computed into memory
    assert isinstance(y, da.Array) and y.chunks == X.chunks
    assert_same(y.compute(), nd.gaussian_filter(x, 1.0, mode="wrap"), exact=True)
    assert isinstance(nd.convolve(X, np.ones((2, 2))), da.Array)          # ndimage's, not signal's convolve
    assert_same(nd.convolve(X, np.ones((2, 2))).compute(), nd.convolve(x, np.ones((2, 2))), exact=True)
    assert isinstance(nd.sobel(x), np.ndarray)
    # output= a dtype works (name or type); an array cannot be written by a lazy result
    assert pdk.ndimage.uniform_filter(X, 3, output="float32").dtype == np.float32
    assert nd.laplace(X, output=np.int32).dtype == np.int32
    with pytest.raises(TypeError, match="output= as an array is not supported.*dtype"):
        pdk.ndimage.sobel(X, output=np.empty(x.shape))
    with pytest.raises(TypeError, match="output"):
        nd.correlate1d(X, [1.0, 2.0], output=np.empty(x.shape))
    # the in-memory function's own argument errors, raised at graph construction
    with pytest.raises(RuntimeError, match="boundary mode not supported"):
        pdk.ndimage.gaussian_filter(X, 1.0, mode="bogus")
    with pytest.raises(ValueError, match="Invalid origin"):
        pdk.ndimage.correlate(X, np.ones((3, 3)), origin=2)
    with pytest.raises(ValueError, match="weights is a dask collection with 4 chunks"):
        nd.correlate(X, da.ones((4, 4), chunks=2))
    assert_same(pdk.ndimage.correlate(X, da.ones((3, 3), chunks=3)).compute(), nd.correlate(x, np.ones((3, 3))),
                exact=True)
    # zero-size and 0-d inputs: one task
    assert_same(pdk.ndimage.gaussian_filter(da.zeros((0, 4)), 1.0).compute(), np.zeros((0, 4)))
    assert_same(pdk.ndimage.correlate(da.from_array(np.array(2.0)), np.array(3.0)).compute(),
                nd.correlate(np.array(2.0), np.array(3.0)))
    # complex data through real and imaginary parts, as in memory
    z = x + 1j * x[::-1]
    assert_same(pdk.ndimage.correlate(da.from_array(z, chunks=3), np.ones((2, 3))).compute(),
                nd.correlate(z, np.ones((2, 3))), exact=True)


# --------------------------------------------------------------------------- operands, errors

def test_dask_kernels():
    X = da.ones((10, 10), chunks=4)
    k = np.arange(9.0).reshape(3, 3)
    assert_same(pdk.convolve(X, da.from_array(k), "same").compute(), pyconv.signal.convolve(np.ones((10, 10)), k, "same"))
    with pytest.raises(ValueError, match="in2 is a dask collection with 4 chunks"):
        pdk.convolve(X, da.from_array(k, chunks=2))
    with pytest.raises(ValueError, match="weight is a dask collection"):
        pdk.conv1d(da.ones((1, 1, 5)), da.ones((1, 1, 3), chunks=(1, 1, 1)))
    with pytest.raises(ValueError, match="pointwise_weight"):
        pdk.separable_conv2d(da.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), da.ones((2, 1, 1, 1), chunks=1))
    with pytest.raises(ValueError, match="mode must be one of"):
        pdk.convolve(X, k, "middle")
    with pytest.raises(ValueError, match="boundary must be one of"):
        pdk.convolve2d(X, k, boundary="mirror")
    with pytest.raises(ValueError, match="same dimensionality"):
        pdk.convolve(X, np.ones(3))
    with pytest.raises(ValueError, match="input must be 3-D"):
        pdk.conv2d(X, np.ones((1, 1, 3, 3)))
    # kernels as lists, as the in-memory functions take them
    assert_same(pdk.conv1d(da.ones((1, 1, 5)), [[[1.0, 2.0]]]).compute(),
                pyconv.nn.conv1d(np.ones((1, 1, 5)), [[[1.0, 2.0]]]))
    assert_same(pdk.convolve(X, [[1, 2], [3, 4]]).compute(), pyconv.signal.convolve(np.ones((10, 10)), [[1, 2], [3, 4]]))
    Xu = da.from_array(np.arange(10.0), chunks=3)
    with pytest.raises(ValueError, match=r"unknown chunk sizes.*compute_chunk_sizes"):
        pdk.convolve(Xu[Xu > 2], np.ones(2))


def test_routing_from_in_memory_modules():
    X = da.from_array(np.arange(24.0).reshape(4, 6), chunks=(2, 3))
    k = np.ones((2, 2))
    for fn in (pyconv.convolve, pyconv.signal.convolve, pyconv.signal.convolve2d, pyconv.signal.fftconvolve):
        y = fn(X, k, "same")
        assert isinstance(y, da.Array)
        assert_same(y.compute(), fn(X.compute(), k, "same"))
    y = pyconv.nn.conv2d(X[None, None], k[None, None], padding=1)
    assert isinstance(y, da.Array)
    gx, gw, gb = pyconv.grad.conv2d_backward(da.ones((1, 1, 5, 7)), X[None, None].rechunk(-1), k[None, None],
                                             np.zeros(1), padding=1)
    assert isinstance(gx, da.Array) and isinstance(gw, da.Array)
    # the wrapper keeps the in-memory function's identity
    assert pyconv.signal.convolve.__name__ == "convolve"
    assert pyconv.nn.conv2d.__doc__.startswith(pyconv.nn.conv2d.__wrapped__.__doc__[:40])
    import inspect
    assert list(inspect.signature(pyconv.nn.conv2d).parameters)[:3] == ["input", "weight", "bias"]
    # functions without a dask version refuse instead of computing
    with pytest.raises(TypeError, match=r"pyconv.nn.unfold has no dask version.*compute\(\)"):
        pyconv.nn.unfold(X[None, None], 2)
    with pytest.raises(TypeError, match="pyconv.signal.choose_conv_method has no dask version"):
        pyconv.signal.choose_conv_method(X, k)


def test_no_dask_import_for_numpy_inputs():
    code = ("import sys, numpy as np, pyconv, pyconv.nn, pyconv.grad\n"
            "pyconv.convolve([1., 2.], [1., 1.]); pyconv.nn.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)))\n"
            "pyconv.grad.conv1d_backward(np.ones((1, 1, 3)), np.ones((1, 1, 4)), np.ones((1, 1, 2)))\n"
            "assert 'dask' not in sys.modules, 'dask imported'\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, env=env)


# --------------------------------------------------------------------------- threads, engines

def test_task_threads_per_engine(engine, request):
    cpus = pyconv._threads._available_cpus()
    got = engine(da.from_delayed(dask.delayed(lambda: np.array([pdk.task_threads()]))(), (1,), int))[0][0]
    name = request.node.callspec.params["engine"]
    if name == "sync":
        assert got == pyconv.get_num_threads()
    elif name == "threads":
        assert got == max(1, min(pyconv.get_num_threads(), cpus // dask.system.CPU_COUNT))
    else:      # 1 thread per worker, and the nanny's OMP_NUM_THREADS=1
        assert got == 1


def test_task_threads_in_process_cluster():
    # two workers of one thread in this very process share its CPUs: 1 thread per task here
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,  # inproc:// comms
                                  dashboard_address=":0") as cluster, distributed.Client(cluster, set_as_default=False) as c:
        got = c.gather([c.submit(pdk.task_threads, pure=False) for _ in range(4)])
    cpus = pyconv._threads._available_cpus()
    assert set(got) == {max(1, min(pyconv.get_num_threads(), cpus // 2))}


# --------------------------------------------------------------------------- out of core

def _zarr_convolve_peak(zarr, path, length, k):
    """Peak traced memory (numpy buffers included) of zarr -> pyconv.dask.convolve -> zarr."""
    shape, chunks = (length, 48, 48), (16, 48, 48)            # slabs of 144 KiB
    src = zarr.open(str(path / f"in{length}.zarr"), mode="w", shape=shape, chunks=chunks, dtype="f4")
    rng = np.random.default_rng(length)
    for i in range(0, length, 64):
        src[i:i + 64] = rng.standard_normal((64,) + shape[1:]).astype(np.float32)
    y = pdk.convolve(da.from_zarr(str(path / f"in{length}.zarr")), k, "same", method="direct")
    with dask.config.set(scheduler="sync"):
        y[:1].to_zarr(str(path / "warm.zarr"), overwrite=True)      # imports and caches outside the count
        tracemalloc.start()
        try:
            y.to_zarr(str(path / f"out{length}.zarr"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return src, zarr.open(str(path / f"out{length}.zarr"), mode="r"), peak


def test_out_of_core_zarr(tmp_path):
    zarr = pytest.importorskip("zarr")
    k = np.random.default_rng(1).standard_normal((5, 5, 5)).astype(np.float32)
    peaks = {}
    for length in (256, 1024):             # 2.25 MiB and 9 MiB volumes in 16-slice chunks
        src, out, peaks[length] = _zarr_convolve_peak(zarr, tmp_path, length, k)
        assert_same(out[...], pyconv.signal.convolve(src[...], k, "same", method="direct"), exact=True)
    chunk_halo = 4 * (16 + 4) * 52 * 52
    print(f"\nout-of-core peak traced memory: {peaks[256] / 2**20:.2f} MiB (256 slices), "
          f"{peaks[1024] / 2**20:.2f} MiB (1024 slices) = {peaks[1024] / chunk_halo:.1f}x (chunk+halo)")
    # chunks stream through: 4x the volume costs well under 2x the memory (the rest is the
    # scheduler's bookkeeping per task), and never a third of the volume
    assert peaks[1024] < 2 * peaks[256]
    assert peaks[1024] < 4 * 1024 * 48 * 48 / 3


# --------------------------------------------------------------------------- ndimage at the top level, on a cluster

NDI_TOP = ("correlate1d", "convolve1d", "gaussian_filter", "gaussian_filter1d", "uniform_filter", "uniform_filter1d",
           "sobel", "prewitt", "laplace", "gaussian_laplace", "gaussian_gradient_magnitude")


def test_ndimage_names_at_the_top_level():
    """Eleven ndimage filters are also pyconv.dask.<name>, as the same objects; convolve and
    correlate stay signal's there (the names collide) and ndimage's under pyconv.dask.ndimage."""
    import pyconv.ndimage as nd
    assert set(NDI_TOP) == set(nd.__all__) - {"convolve", "correlate"}
    for name in NDI_TOP:
        assert getattr(pdk, name) is getattr(pdk.ndimage, name), name
        assert name in pdk.__all__
    star = {}
    exec("from pyconv.dask import *", star)
    assert all(star[n] is getattr(pdk.ndimage, n) for n in NDI_TOP)
    assert star["convolve"] is pdk.convolve and star["ndimage"] is pdk.ndimage
    for name in ("convolve", "correlate"):
        assert getattr(pdk, name) is not getattr(pdk.ndimage, name)
        assert getattr(pdk, name).__module__ == "pyconv.dask"            # the signal one
        assert getattr(pdk.ndimage, name).__module__ == "pyconv.dask.ndimage"
    x = np.random.default_rng(5).standard_normal((13, 11))
    X = da.from_array(x, chunks=(4, 5))
    w = np.arange(6.0).reshape(2, 3)
    assert pdk.convolve(X, w).shape == (14, 13)                        # signal's 'full' mode
    assert_same(pdk.convolve(X, w).compute(scheduler="sync"), pyconv.signal.convolve(x, w), exact=True)
    assert_same(pdk.ndimage.convolve(X, w).compute(scheduler="sync"), nd.convolve(x, w), exact=True)
    # each top-level name computes what pyconv.ndimage computes in memory (bitwise; the uniform
    # filters' running sum restarts at each block: float64 within 8 eps of the largest |input|)
    args = {"correlate1d": ([1.0, -2.0, 0.5],), "convolve1d": ([1.0, -2.0, 0.5, 3.0],), "gaussian_filter": (1.3,),
            "gaussian_filter1d": (2.0,), "uniform_filter": (4,), "uniform_filter1d": (5,), "sobel": (),
            "prewitt": (), "laplace": (), "gaussian_laplace": (1.0,), "gaussian_gradient_magnitude": (0.8,)}
    lazies = [getattr(pdk, name)(X, *args[name], mode="mirror") for name in NDI_TOP]
    for name, got in zip(NDI_TOP, dask.compute(*lazies, scheduler="sync")):
        ref = getattr(nd, name)(x, *args[name], mode="mirror")
        if name.startswith("uniform"):
            np.testing.assert_allclose(got, ref, rtol=0, atol=8 * np.finfo(np.float64).eps * np.abs(x).max())
        else:
            np.testing.assert_array_equal(got, ref, err_msg=name)


def _cluster_ndimage_cases(rng):
    """(name, input, chunks, kwargs): each of the 13 filters at least once, all 8 modes (per axis
    too), float64/float32/int16 data, chunks smaller than the filter's reach (merged), uneven chunks."""
    x2 = rng.standard_normal((29, 34)) * 40
    x3 = rng.standard_normal((18, 21, 16)) * 40
    i2 = rng.integers(-300, 300, (29, 34)).astype(np.int16)
    f32 = x2.astype(np.float32)
    w = rng.standard_normal((5, 6))
    w9 = rng.standard_normal(9)
    small = (3, (5, 4, 9, 2, 7, 7))                 # reach 4..8 against chunks of 2..9
    return [
        ("correlate", x2, small, dict(weights=w, mode="reflect", origin=(1, -2))),
        ("correlate", i2, small, dict(weights=np.ones((3, 7)), mode="constant", cval=7, origin=(0, 3))),
        ("convolve", x2, (6, 5), dict(weights=w, mode="wrap")),
        ("convolve", f32, small, dict(weights=w.astype(np.float32), mode="grid-mirror", origin=(-2, 0))),
        ("correlate1d", x2, (4, 34), dict(weights=w9, axis=0, mode="mirror", origin=-3)),
        ("convolve1d", i2, (29, 3), dict(weights=[1, -2, 3, 0, 1, 1, -1], axis=1, mode="grid-constant", cval=5)),
        ("gaussian_filter", x3.astype(np.float32), (5, (8, 6, 7), 4), dict(sigma=2.0, mode="nearest")),
        ("gaussian_filter", x2, small, dict(sigma=(1.0, 3.0), order=(0, 1), mode=["constant", "grid-wrap"], cval=-2.0)),
        ("gaussian_filter", x3, (6, 7, 5), dict(sigma=1.5, axes=(0, 2), truncate=3.0, mode="wrap")),
        ("gaussian_filter1d", x2, (2, 34), dict(sigma=1.5, axis=0, order=2, mode="grid-mirror")),
        ("gaussian_filter1d", i2, small, dict(sigma=2.5, axis=1, mode="reflect", output=np.float32)),
        ("uniform_filter", f32, small, dict(size=7, mode="reflect")),
        ("uniform_filter", i2, (7, 6), dict(size=(5, 8), mode="constant", cval=3)),
        ("uniform_filter", x3, (4, 5, 6), dict(size=(3, 6, 4), mode=["wrap", "mirror", "nearest"])),
        ("uniform_filter1d", x2, (29, 4), dict(size=6, axis=1, mode="wrap", origin=2)),
        ("sobel", i2, small, dict(axis=0, mode="constant", cval=1.0)),
        ("sobel", x3, (3, 7, 2), dict(axis=2, mode=["reflect", "grid-wrap", "mirror"])),
        ("prewitt", f32, (4, 4), dict(axis=1, mode="mirror")),
        ("laplace", x2, (5, 3), dict(mode="grid-wrap")),
        ("laplace", i2, small, dict(mode="grid-constant", cval=-4)),
        ("gaussian_laplace", f32, small, dict(sigma=1.2, mode="nearest")),
        ("gaussian_laplace", x2, (7, 5), dict(sigma=1.0, mode=["reflect", "wrap"])),     # a term per mode
        ("gaussian_gradient_magnitude", x3, (5, 4, 6), dict(sigma=1.5, mode="constant", cval=0.5)),
        ("gaussian_gradient_magnitude", f32, small, dict(sigma=(0.8, 2.0), mode=["mirror", "grid-constant"])),
    ]


def test_ndimage_on_the_cluster(cluster_client):
    """Every pyconv.dask.ndimage function computed on the 2-process LocalCluster equals
    pyconv.ndimage on the computed array, and so scipy.ndimage.

    Against pyconv.ndimage: bitwise (each chunk runs the in-memory filter on its region),
    except the uniform filters, whose running sum (in double) restarts at each block:
    float64 within 8 eps * max|input| (measured <= 0.4 eps), float32 within one float32
    ulp of max|output| (measured bitwise: the double sum is rounded to float32 once),
    integer bitwise.  Against scipy.ndimage: float64 and integer bitwise for every filter
    but the float64 uniform ones (same bound as above), float32 (computed in float32 by
    pyconv, in double by scipy) within tests/reference.py's tolerance for the taps summed.
    """
    import scipy.ndimage as sn
    from reference import tolerance

    import pyconv.ndimage as nd
    cases = _cluster_ndimage_cases(np.random.default_rng(11))
    assert {c[0] for c in cases} == set(nd.__all__)
    lazies = []
    for name, x, chunks, kw in cases:
        y = getattr(pdk.ndimage, name)(da.from_array(x, chunks=chunks), **kw)
        lazies.append(checked(y))
    got = cluster_client.compute(lazies, sync=True)
    for (name, x, chunks, kw), g in zip(cases, got):
        what = f"{name} {x.dtype} {x.shape} chunks {chunks} {kw.get('mode')}"
        ref = getattr(nd, name)(x, **kw)
        assert g.shape == ref.shape and g.dtype == ref.dtype, what
        if name.startswith("uniform") and ref.dtype.kind == "f":
            eps = np.finfo(ref.dtype).eps
            atol = 8 * eps * np.abs(x).max() if ref.dtype == np.float64 else eps * np.abs(ref).max()
            np.testing.assert_allclose(g, ref, rtol=0, atol=atol, err_msg=what)
        else:
            np.testing.assert_array_equal(g, ref, err_msg=what)
        sref = getattr(sn, name)(x, **kw)
        if ref.dtype == np.float32:
            taps = np.size(kw["weights"]) if "weights" in kw else 64
            rtol, atol = tolerance(np.float32, taps)
            np.testing.assert_allclose(g, sref, rtol=rtol, atol=atol * max(1.0, float(np.abs(sref).max())),
                                       err_msg=what)
        elif name.startswith("uniform") and ref.dtype == np.float64:
            np.testing.assert_allclose(g, sref, rtol=0, atol=8 * np.finfo(np.float64).eps * np.abs(x).max(),
                                       err_msg=what)
        else:
            np.testing.assert_array_equal(g, sref, err_msg=what)

# --------------------------------------------------------------------------- explain

def test_explain_says_what_the_dask_path_runs():
    # pyconv.explain of a dask call describes the per-chunk plan (the first block's,
    # halo included) and the chunking, not the in-memory probe the dask path validates with
    rng = np.random.default_rng(40)
    xn = rng.standard_normal((64, 64))
    x = da.from_array(xn, chunks=32)
    k = rng.standard_normal((5, 5))
    p = pyconv.explain(pyconv.convolve, x, k, mode="same", method="direct")
    assert isinstance(p, pyconv._engine.explain.DaskPlan)
    assert p.algorithm == "direct" and p.blocks == 4
    assert p.shape == (64, 64) and p.chunks == x.chunks and p.input_chunks == x.chunks
    # a chunk and its 2-sample halo, run in 'valid' mode
    assert p.geometry.out == (32, 32) and p.geometry.shape1 == (36, 36)
    assert str(p).startswith("dask: 4 blocks of up to 32x32") and "signal direct 36x36 * 5x5 -> 32x32" in str(p)
    # the block plan is the in-memory direct plan of those shapes
    from pyconv._engine import signal_plan
    assert str(p.block) == str(signal_plan.plan_direct((36, 36), (5, 5), (32, 32), (0, 0), np.dtype(np.float64)))
    # the arguments are checked as the call checks them
    with pytest.raises(ValueError, match="mode"):
        pyconv.explain(pyconv.convolve, x, k, mode="bad")

    xb = da.from_array(rng.standard_normal((8, 3, 12, 12)).astype(np.float32), chunks=(4, 3, 12, 12))
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    f = pyconv.explain(pyconv.nn.conv2d, xb, w, padding=1)
    assert f.blocks == 2 and f.geometry.x_shape == (4, 3, 12, 12)
    assert f.algorithm == pyconv.explain(pyconv.nn.conv2d, xb[:4].compute(), w, padding=1).algorithm
    go = da.from_array(rng.standard_normal((8, 4, 12, 12)).astype(np.float32), chunks=(4, 4, 12, 12))
    b = pyconv.explain(pyconv.grad.conv2d_backward, go, xb, w, padding=1)
    ops = [s.op for s in b.block]
    assert "input_grad" in ops and "weight_grad" in ops and b.blocks == 2
