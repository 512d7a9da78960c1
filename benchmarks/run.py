"""pyconv benchmarks: side by side with scipy and PyTorch, in one process.

Usage::

    python benchmarks/run.py                    # every suite
    python benchmarks/run.py --suite signal     # one suite (signal, nn, grad, busy, overhead, train, ndimage, dask)
    python benchmarks/run.py --suite nn --quick # fewer repeats, smaller cases

Each suite lives in ``benchmarks/suite_<name>.py`` and defines ``run(h)``, where
``h`` is the :class:`Harness` below.  Results print as a table and are saved as
JSON in ``benchmarks/results/`` so a run can be compared with an earlier one.
Run with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset (see README.md here).
"""
import argparse
import datetime
import importlib
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pyconv  # noqa: E402
import pyconv._config  # noqa: E402

SUITES = ["signal", "nn", "grad", "busy", "overhead", "train", "ndimage", "dask"]


def settle(gap, longest=0.3):
    """Sleep ``gap`` seconds, then on until no thread of this process outside pyconv's team
    is running (at most ``longest`` seconds in all): the peers' thread pools spin after a
    call, OpenBLAS's for about 0.1 s after a threaded numpy matmul (a 1x1 layer run by
    pyconv through numpy's matmul left PyTorch's next call at 2 threads 3.7x slower than at
    1 thread, Intel Xeon), and the next call timed should find the cores free."""
    from pyconv._threads import _load
    time.sleep(gap)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < longest - gap and _load.foreign_runnable(max(2, pyconv.get_num_threads())):
        time.sleep(0.005)


class Harness:
    """Timing and reporting shared by every suite."""

    def __init__(self, repeats=7, warmup=2, quick=False, threads=None):
        self.repeats = repeats
        self.warmup = warmup
        self.quick = quick
        ncpu = pyconv.get_num_threads()
        self.thread_counts = threads or sorted({1, ncpu})
        self.rows = []

    def time(self, fn, repeats=None, warmup=None, max_seconds=20.0):
        """Median wall time (seconds) of ``fn()`` after warm-up.

        Stops repeating early when the total passes ``max_seconds`` (keeps at least 3).
        """
        repeats = repeats or self.repeats
        for _ in range(self.warmup if warmup is None else warmup):
            fn()
        times = []
        start = time.perf_counter()
        for i in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            if i >= 2 and time.perf_counter() - start > max_seconds:
                break
        return float(np.median(times))

    def time_pair(self, fa, fb, max_seconds=20.0, gap=0.005, paired=False):
        """Median wall times of ``fa()`` and ``fb()``, interleaved call by call after warm-up,
        so both peers see the same machine state (other load, clocks, caches, a host's
        slow spell).  Each call starts ``gap`` seconds after the other one ended, and once
        no other thread of the process runs (:func:`settle`): an OpenMP runtime's threads
        spin for a while after a parallel region, and a peer started at once would share
        the cores with them (PyTorch ran 4-13x slower at 2 threads right after a 1 ms pyconv
        call, batch 1).

        ``paired``: also the median and quartiles of the per-round ratios ``tb / ta`` (each
        round's two calls ran back to back, so a slow spell of the host that takes both
        cancels; the ratio of the two medians can pair a call of one spell with one of
        another: the nn suite's layer a at 1 thread read 1.06 and 0.93 that way in two runs
        of the same kernel)."""
        (ta, tb), (la, lb) = self.time_many([fa, fb], max_seconds=max_seconds, gap=gap, rounds=True)
        if not paired:
            return ta, tb
        r = np.array(lb) / np.array(la)
        return ta, tb, tuple(float(v) for v in np.percentile(r, [50, 25, 75]))

    def time_many(self, fns, max_seconds=20.0, gap=0.005, min_seconds=0.25, rotate=False, rounds=False):
        """Median wall times of every ``f()`` in ``fns``, called in turn round by round
        (see :meth:`time_pair`): the list of medians, in the order of ``fns``.  Short calls
        get more rounds (up to 101, about ``min_seconds`` of calls in all): with 7 rounds
        of a 2 ms call, one slow spell of a shared 2-core machine moved a median by 1.4x
        (the same direct plan timed as 'auto' and as 'direct', 1024x1024 float64 3x3).
        ``rotate``: each round calls them in a new order, a permutation drawn from a
        seeded generator, so every call follows every other about as often (a call after
        one that pushed its operands out of the caches runs slower: see
        benchmarks/suite_signal.py).  Turning the order by one call each round did not:
        of three calls (auto, direct, fft) it put 'auto' after 'fft' in two rounds of
        three and 'direct' in one, and the same direct plan timed 0.782 ms as 'auto'
        against 0.691 ms as 'direct' (1024^2 * 3x3 float32, 1 thread, AMD EPYC; 0.656
        and 0.662 without the FFT among them).  ``rounds``: also every call's times, round
        by round (a list per function)."""
        t0 = time.perf_counter()
        for _ in range(self.warmup):
            for f in fns:
                f()
        per_round = (time.perf_counter() - t0) / max(1, self.warmup)
        nrounds = self.repeats
        if not self.quick and per_round > 0:
            nrounds = max(nrounds, min(101, int(min_seconds / per_round)))
        ts = [[] for _ in fns]
        order = np.random.default_rng(20261205)
        start = time.perf_counter()
        for r in range(nrounds):
            turn = order.permutation(len(fns)) if rotate else range(len(fns))
            for i in turn:
                settle(gap)
                t0 = time.perf_counter()
                fns[i]()
                ts[i].append(time.perf_counter() - t0)
            if r >= 2 and time.perf_counter() - start > len(fns) * max_seconds:
                break
        medians = [float(np.median(t)) for t in ts]
        return (medians, ts) if rounds else medians

    def plan(self, fn):
        """The algorithm pyconv's plan runs for ``fn()`` (:func:`pyconv.explain`, kernels not
        run), at the thread count in force: a saved row says what ran, not only how fast."""
        def name(p):                # as explain prints it: flip_conv(dense_oc)
            return p.algorithm.value + (f"({name(p.sub)})" if p.sub is not None else "")
        try:
            plans = pyconv.explain(fn)
        except ValueError:          # a call that runs no convolution kernel (a bias gradient)
            return ""
        return "+".join(name(p) for p in getattr(plans, "steps", (plans,)))

    def threads(self, n):
        """Context manager limiting pyconv, BLAS, scipy.fft workers and torch to ``n`` threads."""
        return _AllThreads(n)

    def record(self, **row):
        self.rows.append(row)
        cells = []
        for k, v in row.items():
            if isinstance(v, float):
                v = f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
            cells.append(f"{k}={v}")
        print("  " + "  ".join(cells), flush=True)


class _AllThreads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self._ctx = []
        c = pyconv.threads(self.n)
        c.__enter__()
        self._ctx.append(c)
        try:
            import threadpoolctl
            t = threadpoolctl.threadpool_limits(self.n, user_api="blas")
            self._ctx.append(t)
        except ImportError:
            pass
        import scipy.fft
        w = scipy.fft.set_workers(self.n)
        w.__enter__()
        self._ctx.append(w)
        torch = sys.modules.get("torch")
        if torch is not None:
            self._torch_old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        for c in reversed(self._ctx):
            c.__exit__(*exc)
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(self, "_torch_old"):
            torch.set_num_threads(self._torch_old)
        return False


def fix_malloc():
    """Pin glibc's mmap and trim thresholds (1 GiB) for the whole run: what this process frees
    is then reused, not unmapped, so no call pays page faults for memory the previous call
    freed.  Otherwise each peer's time depends on the other's allocation history: glibc
    raises its mmap threshold when a large mapped block is freed, and PyTorch's depthwise
    input gradient (8x256x56x56) took 8.6-10.4 ms in runs where pyconv's frees had raised it
    and 35-47 ms (12500-18800 page faults per call) where they had not, on the same machine
    (AMD EPYC).  Pinned, both peers run from reused memory, as in a warm training loop;
    pyconv's own memory pool (README, Memory) is then neither help nor hindrance.  The
    setting is recorded in each result ('malloc').  Not on other C libraries (musl, macOS)."""
    if not sys.platform.startswith("linux"):
        return "default"
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        # M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (malloc.h)
        ok = libc.mallopt(-1, 1 << 30) == 1 and libc.mallopt(-3, 1 << 30) == 1
    except (OSError, AttributeError):
        ok = False
    return "glibc mmap and trim thresholds pinned at 1 GiB" if ok else "default"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", action="append", choices=SUITES, help="suite to run (repeatable; default all)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="fewer repeats and cases, for a smoke run")
    p.add_argument("--threads", type=int, action="append", help="thread count to measure (repeatable)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for the JSON results")
    p.add_argument("--malloc", choices=("pinned", "default"), default="pinned",
                   help="pin glibc's mmap/trim thresholds for the run (default; see fix_malloc) or leave them")
    args = p.parse_args(argv)
    malloc = fix_malloc() if args.malloc == "pinned" else "default"
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var} is set; it slows NumPy's BLAS. Unset it for this command.", file=sys.stderr)
    h = Harness(repeats=3 if args.quick else args.repeats, quick=args.quick, threads=args.threads)
    suites = args.suite or SUITES
    # where the run happened: CPU model, SIMD variant, compiler, BLAS and its kernel
    # (pyconv.show_config's facts), so results from different machines are told apart
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "threads": h.thread_counts,
            "env OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"), "malloc": malloc,
            **{k: str(v) for k, v in pyconv._config.config().items()}}
    try:
        import torch
        meta["torch"] = torch.__version__
    except ImportError:
        pass
    print("  ".join(f"{k}={meta[k]}" for k in ("cpu", "simd variant", "compiler", "blas", "malloc") if k in meta))
    for name in suites:
        print(f"== suite {name} ==", flush=True)
        mod = importlib.import_module(f"suite_{name}")
        start = len(h.rows)
        mod.run(h)
        os.makedirs(args.out, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = os.path.join(args.out, f"{name}-{stamp}.json")
        with open(path, "w") as f:
            json.dump({"meta": meta, "suite": name, "rows": h.rows[start:]}, f, indent=1)
        print(f"saved {path}")


if __name__ == "__main__":
    main()
