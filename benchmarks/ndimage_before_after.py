"""Two builds of pyconv.ndimage and scipy.ndimage timed in turn, in one process.

For the rows of issue 12's speed targets that a kernel change is judged on:

* ``t1``: ``convolve`` 128^3 * 3^3 in every mode, and ``correlate`` 'reflect';
* ``t2``: ``convolve1d`` (k = 13) along each axis of 1024^2 and 128^3, ``gaussian_filter``
  (sigma 1, 3, 8 and 3-D sigma 2), ``uniform_filter`` (3, 15) and ``sobel`` (2-D, 3-D);

float64 and float32, at 1 and 2 threads.  ``--before`` and ``--after`` are source trees
with their kernels built in place (e.g. a worktree of main and the branch); both are
imported side by side, each call is checked bitwise equal between them, and every
repeat times before, after and scipy one after the other, so a slow spell of a shared
machine weighs on all three.  Medians in ms; ratios are scipy time / pyconv time.
``team``: the thread counts the after build's kernels actually ran on in the timed calls
(pyconv's load-aware threading runs fewer than asked when other processes hold cores).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ndimage_before_after.py \\
        --before /path/to/main --after . --targets t1 t2
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
import scipy.ndimage as ndi

MODES = ["reflect", "constant", "nearest", "mirror", "wrap", "grid-constant", "grid-mirror", "grid-wrap"]


def _load(path):
    """``(pyconv, pyconv.ndimage)`` of the tree at ``path``, kept apart from any other copy."""
    path = os.path.abspath(path)
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "pyconv" or k.startswith("pyconv.")}
    sys.path.insert(0, path)
    try:
        import pyconv
        import pyconv.ndimage
        mods = {k: v for k, v in sys.modules.items() if k == "pyconv" or k.startswith("pyconv.")}
    finally:
        sys.path.remove(path)
        for k in mods:
            del sys.modules[k]
        sys.modules.update(saved)
    if not mods["pyconv"].__file__.startswith(path):
        raise SystemExit(f"{path}: imported {mods['pyconv'].__file__} instead")
    return mods["pyconv"], mods["pyconv.ndimage"]


def _rows(targets):
    rng = np.random.default_rng(1)
    w3, w13 = rng.standard_normal((3, 3, 3)), rng.standard_normal(13)
    x3 = {dt: np.random.default_rng(0).standard_normal((128,) * 3).astype(dt) for dt in (np.float64, np.float32)}
    x2 = {dt: np.random.default_rng(0).standard_normal((1024, 1024)).astype(dt) for dt in (np.float64, np.float32)}
    for dt in (np.float64, np.float32):
        if "t1" in targets:
            for m in MODES:
                yield "t1", f"convolve 128^3 k3^3 {m}", dt, "convolve", x3[dt], (w3,), {"mode": m}
            yield "t1", "correlate 128^3 k3^3 reflect", dt, "correlate", x3[dt], (w3,), {"mode": "reflect"}
        if "t2" in targets:
            for ax in (0, 1):
                for m in ("reflect", "wrap"):
                    yield "t2", f"convolve1d 1024^2 k13 axis{ax} {m}", dt, "convolve1d", x2[dt], (w13,), {"axis": ax, "mode": m}
            for ax in (0, 1, 2):
                yield "t2", f"convolve1d 128^3 k13 axis{ax} reflect", dt, "convolve1d", x3[dt], (w13,), {"axis": ax}
            for s in (1, 3, 8):
                for m in ("reflect", "constant"):
                    yield "t2", f"gaussian_filter 1024^2 sigma{s} {m}", dt, "gaussian_filter", x2[dt], (s,), {"mode": m}
            yield "t2", "gaussian_filter 128^3 sigma2 reflect", dt, "gaussian_filter", x3[dt], (2,), {}
            for s in (3, 15):
                for m in ("reflect", "constant"):
                    yield "t2", f"uniform_filter 1024^2 size{s} {m}", dt, "uniform_filter", x2[dt], (s,), {"mode": m}
            yield "t2", "sobel 1024^2 reflect", dt, "sobel", x2[dt], (), {}
            yield "t2", "sobel 128^3 axis0 reflect", dt, "sobel", x3[dt], (), {"axis": 0}


def _spy_teams(mod):
    """Record the team sizes ``mod`` (a pyconv package) grants its kernels, into the list returned."""
    seen = []
    granted = mod._threads.team_size

    def spy(n):
        t = granted(n)
        seen.append(t)
        return t
    mod._threads.team_size = spy
    return seen


def _once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--targets", nargs="+", default=["t1", "t2"], choices=["t1", "t2"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args(argv)
    old, old_nd = _load(a.before)
    new, new_nd = _load(a.after)
    teams = _spy_teams(new)
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"cpu={cpu}  cores={os.cpu_count()}  before={a.before}  after={a.after}  load={os.getloadavg()[0]:.2f}")
    print(f"{'target':6} {'row':40} {'dtype':7} {'thr':>3} {'before':>7} {'after':>7} {'scipy':>7} "
          f"{'x_before':>8} {'x_after':>8} {'after/before':>12} {'team':>5}")
    for tgt, name, dt, fn, x, args, kw in _rows(a.targets):
        fo, fa, fs = getattr(old_nd, fn), getattr(new_nd, fn), getattr(ndi, fn)
        if fo(x, *args, **kw).tobytes() != fa(x, *args, **kw).tobytes():
            raise SystemExit(f"{name} {np.dtype(dt).name}: before and after differ")
        for nt in a.threads:
            times = ([], [], [])
            teams.clear()
            with old.threads(nt), new.threads(nt):
                for f in (fo, fa):
                    f(x, *args, **kw)
                for _ in range(a.repeats):
                    for lst, f in zip(times, (fo, fa, fs)):
                        lst.append(_once(lambda: f(x, *args, **kw)))
            tb, ta, ts = (1e3 * float(np.median(v)) for v in times)
            print(f"{tgt:6} {name:40} {np.dtype(dt).name:7} {nt:>3} {tb:7.2f} {ta:7.2f} {ts:7.2f} {ts / tb:8.2f} "
                  f"{ts / ta:8.2f} {ta / tb:12.2f} {'/'.join(str(t) for t in sorted(set(teams))):>5}", flush=True)
    print(f"load at the end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
