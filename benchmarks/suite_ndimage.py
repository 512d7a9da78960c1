"""ndimage suite: pyconv.ndimage beside scipy.ndimage, in one process.

Per row: case, function, mode, dtype, threads, pyconv ms, scipy.ndimage ms, ratio
(scipy time / pyconv time: > 1 means pyconv is faster), GFLOP/s of both (2 x the
multiply-adds: taps x outputs, summed over the passes of a separable filter), whether
the results agree (float64 bitwise, float32 within 1e-4 relative), and ``extra_mb``:
the largest NumPy allocation beyond the output during one pyconv call (tracemalloc;
the kernels' per-thread row buffers, a few hundred KiB from C malloc, are not in it),
and ``team``: the thread counts pyconv's kernels actually ran on during the timed calls
(pyconv shrinks its team to the cores other processes leave free, so a "2-thread" row
on a loaded machine may have run on 1: read this before judging a 2-thread target).

scipy.ndimage runs on one thread: it is timed once per case and reused at every
thread count.  A summary of the issue's targets follows the rows.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py --suite ndimage
"""
import time
import tracemalloc

import numpy as np
import scipy.ndimage as ndi

import pyconv
from pyconv import _threads
from pyconv import ndimage as pnd

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror", "grid-wrap"]
SLOW = 0.3          # seconds: a peer call slower than this is timed over 3 runs only
TARGET_THREADS = 2


def _cases(quick):
    """(case, function, args(x) -> positional args, kwargs, flops per output, modes, shape)."""
    big2, big3 = ((256, 256), (48, 48, 48)) if quick else ((1024, 1024), (128, 128, 128))
    rng = np.random.default_rng(1)
    out = []
    for k in (3, 7, 15):
        w = rng.standard_normal((k, k))
        out.append((f"2d {big2[0]}^2 k{k}x{k}", "convolve", (w,), {}, k * k, MODES, big2))
        out.append((f"2d {big2[0]}^2 k{k}x{k}", "correlate", (w,), {}, k * k, ["reflect", "constant"], big2))
    for k in (3, 7):
        w = rng.standard_normal((k, k, k))
        out.append((f"3d {big3[0]}^3 k{k}^3", "convolve", (w,), {}, k ** 3, MODES if k == 3 else
                    ["reflect", "constant", "wrap"], big3))
        out.append((f"3d {big3[0]}^3 k{k}^3", "correlate", (w,), {}, k ** 3, ["reflect"], big3))
    w13 = rng.standard_normal(13)
    for ax in (0, 1):
        out.append((f"2d {big2[0]}^2 k13 axis{ax}", "convolve1d", (w13,), {"axis": ax}, 13, ["reflect", "wrap"], big2))
    for ax in (0, 1, 2):
        out.append((f"3d {big3[0]}^3 k13 axis{ax}", "convolve1d", (w13,), {"axis": ax}, 13, ["reflect"], big3))
    for s in (1, 3, 8):
        taps = 2 * (2 * int(4.0 * s + 0.5) + 1)
        out.append((f"2d {big2[0]}^2 sigma{s}", "gaussian_filter", (s,), {}, taps, ["reflect", "constant"], big2))
    out.append((f"3d {big3[0]}^3 sigma2", "gaussian_filter", (2,), {}, 3 * 17, ["reflect"], big3))
    for s in (3, 15):
        out.append((f"2d {big2[0]}^2 size{s}", "uniform_filter", (s,), {}, 2 * 2, ["reflect", "constant"], big2))
    out.append((f"2d {big2[0]}^2", "sobel", (), {}, 6, ["reflect"], big2))
    out.append((f"3d {big3[0]}^3", "sobel", (), {"axis": 0}, 9, ["reflect"], big3))
    return out


def _time(h, fn, slow=False):
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    if first > SLOW or slow:
        ts = [first] + [_once(fn) for _ in range(2)]
        return float(np.median(ts)), out
    return h.time(fn, warmup=max(0, h.warmup - 1)), out


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _agree(a, b, dtype):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if np.dtype(dtype) == np.float64:
        return bool(np.array_equal(a, b))
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a.astype(np.float64) - b))) / scale < 1e-4


def _extra_mb(fn, out_bytes):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return max(0.0, (peak - out_bytes) / 2**20)


def _teams(fn):
    """``fn()`` with the team sizes pyconv's load-aware threading granted recorded."""
    seen = []
    granted = _threads.team_size

    def spy(n):
        t = granted(n)
        seen.append(t)
        return t
    _threads.team_size = spy
    try:
        out = fn()
    finally:
        _threads.team_size = granted
    return out, "/".join(str(t) for t in sorted(set(seen))) or "-"


def run(h):
    start = len(h.rows)
    rng = np.random.default_rng(0)
    print(f"  threads={h.thread_counts}  pyconv.openmp_enabled()={pyconv.openmp_enabled()}", flush=True)
    arrays = {}
    for case, name, args, kwargs, taps, modes, shape in _cases(h.quick):
        for dtype in (np.float32, np.float64):
            key = (shape, np.dtype(dtype).name)
            if key not in arrays:
                arrays.clear()
                arrays[key] = rng.standard_normal(shape).astype(dtype)
            x = arrays[key]
            flops = 2.0 * taps * x.size
            for mode in modes:
                def ours():
                    return getattr(pnd, name)(x, *args, mode=mode, **kwargs)

                def peer():
                    return getattr(ndi, name)(x, *args, mode=mode, **kwargs)

                t_peer, out_peer = _time(h, peer)
                extra = None
                for n in h.thread_counts:
                    with h.threads(n):
                        (t_py, out_py), team = _teams(lambda: _time(h, ours))
                        if extra is None:
                            extra = _extra_mb(ours, out_py.nbytes)
                    h.record(case=case, function=f"ndimage.{name}", mode=mode, dtype=np.dtype(dtype).name,
                             threads=n, team=team, pyconv_ms=1e3 * t_py, scipy_ms=1e3 * t_peer, ratio=t_peer / t_py,
                             pyconv_gflops=flops / t_py / 1e9, scipy_gflops=flops / t_peer / 1e9,
                             agree=_agree(out_py, out_peer, dtype), extra_mb=extra,
                             extra_outputs=extra * 2**20 / max(1, x.nbytes))
                    del out_py
                del out_peer
    _summary(h.rows[start:])


def _summary(rows):
    bad = [r for r in rows if not r["agree"]]
    if bad:
        print(f"\n  WARNING: {len(bad)} rows where pyconv and scipy.ndimage disagree:", flush=True)
        for r in bad:
            print(f"    {r['case']} {r['function']} {r['mode']} {r['dtype']} t={r['threads']}", flush=True)
    print("\n  targets (ratio = scipy.ndimage time / pyconv time):", flush=True)

    def check(title, sel, goal, threads):
        got = [r for r in rows if r["threads"] == threads and sel(r)]
        if not got:
            print(f"  [ n/a ] {title} at {threads} threads: no such rows in this run", flush=True)
            return
        worst = min(got, key=lambda r: r["ratio"])
        med = float(np.median([r["ratio"] for r in got]))
        ok = worst["ratio"] >= goal
        print(f"  [{'MET' if ok else 'NOT MET':^7}] {title} at {threads} threads: median {med:.2f}x, worst "
              f"{worst['ratio']:.2f}x ({worst['case']}, {worst['function']}, {worst['mode']}, {worst['dtype']}); "
              f"goal >= {goal}x over {len(got)} rows", flush=True)

    nd = ("ndimage.convolve", "ndimage.correlate")
    check("convolve/correlate", lambda r: r["function"] in nd, 5.0, TARGET_THREADS)
    check("convolve/correlate", lambda r: r["function"] in nd, 2.5, 1)
    check("convolve1d and separable filters", lambda r: r["function"] not in nd, 3.0, TARGET_THREADS)
    if rows:
        worst = max(rows, key=lambda r: r["extra_outputs"])
        ok = worst["extra_outputs"] <= 1.0
        print(f"  [{'MET' if ok else 'NOT MET':^7}] extra memory <= one output-sized temporary: worst "
              f"{worst['extra_mb']:.2f} MiB = {worst['extra_outputs']:.2f} outputs ({worst['case']}, "
              f"{worst['function']}, {worst['dtype']})", flush=True)
