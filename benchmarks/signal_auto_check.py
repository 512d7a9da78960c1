"""Where does pyconv.signal's method='auto' go wrong?  Per case: pyconv 'auto' against the
forced methods (direct, one full FFT, overlap-add where it applies, method='fft') and
scipy.signal.convolve (auto), timed interleaved in one process, medians.  Also prints the
cost model's figures (direct, full FFT, overlap-add seconds) so a mis-costed term shows.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python benchmarks/signal_auto_check.py \
        [--dims 1,2,3] [--modes same,full,valid] [--dtypes f4,f8] [--reps 5] [--json out.json]

Columns: ms of each method, the model's figures and choice, 'auto' / the best of direct, fft and
oa ('!' past 1.15).
"""
import argparse
import json
import time

import numpy as np
import scipy.signal as ss

import pyconv
from pyconv import signal as ps
from pyconv._engine import signal_plan as sp
from pyconv._threads import get_num_threads
from pyconv._utils import sig_valid_swap


def cases(dims):
    out = []
    if 1 in dims:
        for n in (1000, 10_000, 100_000, 1_000_000):
            for k in (3, 17, 65, 257, 1025):
                if k <= n:
                    out.append(((n,), (k,)))
    if 2 in dims:
        for n in (64, 256, 512, 2048):
            for k in (3, 9, 17, 31):
                out.append(((n, n), (k, k)))
    if 3 in dims:
        for n in (32, 64, 128):
            for k in (3, 5, 7, 9):
                out.append(((n, n, n), (k, k, k)))
    return out


def methods(x, k, mode):
    a, b = (k, x) if sig_valid_swap(mode, x.shape, k.shape) else (x, k)
    ax = [d for d in range(a.ndim) if a.shape[d] != 1 and b.shape[d] != 1]
    fns = {"auto": lambda: ps.convolve(x, k, mode),
           "direct": lambda: ps.convolve(x, k, mode, method="direct"),
           "fft": lambda: ps.convolve(x, k, mode, method="fft"),
           "plain": lambda: ps._fft_core(a, b, mode, ax)}
    if sp.oa_plan(a.shape, b.shape, ax):
        fns["oa"] = lambda: ps.oaconvolve(x, k, mode)
    fns["scipy"] = lambda: ss.convolve(x, k, mode)
    return fns


def timeit(fns, reps, budget, rng):
    """Rounds in a shuffled order (no method always follows the same one: after a
    threaded FFT the OpenMP team may be asleep); each timed call follows an untimed one
    of the same method unless that method is slow, and a method past ``budget`` seconds
    in all stops after 2 rounds.  Medians."""
    times = {m: [] for m in fns}
    for m, f in fns.items():
        f()                                   # warm up (plans, FFT caches)
    names = list(fns)
    for r in range(reps):
        for i in rng.permutation(len(names)):
            m = names[i]
            if r >= 2 and sum(times[m]) > budget:
                continue
            if not times[m] or times[m][-1] < 5e-3:
                fns[m]()
            t0 = time.perf_counter()
            fns[m]()
            times[m].append(time.perf_counter() - t0)
    return {m: float(np.median(v)) for m, v in times.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dims", default="1,2,3")
    p.add_argument("--modes", default="same,full,valid")
    p.add_argument("--dtypes", default="f4,f8")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--budget", type=float, default=0.5)
    p.add_argument("--json")
    a = p.parse_args()
    dims = [int(d) for d in a.dims.split(",")]
    t = pyconv._engine.tuning.active()
    print("tuning:", {f: round(getattr(t, f), 7) for f in
                      ("direct_ns_f4", "direct_ns_f8", "direct_ns_1d_f4", "direct_ns_1d_f8",
                       "direct_border_ns", "direct_merged_factor", "direct_pad_ns", "fft_ns_small",
                       "fft_ns_large", "fft_1d_factor", "fft_oa_factor", "fft_single_factor",
                       "fft_1d_single_factor", "direct_tap_ns", "direct_thread_gain", "fft_thread_gain",
                       "direct_overhead_s", "fft_overhead_s")
                      if hasattr(t, f)},
          "threads", get_num_threads(), flush=True)
    rng = np.random.default_rng(0)
    rows, bad = [], 0
    hdr = f"{'case':<24}{'dt':<4}{'mode':<6}" + "".join(f"{m:>9}" for m in
                                                       ("auto", "direct", "fft", "plain", "oa", "scipy"))
    print(hdr + "   model(dir/fft/oa ms)  pick  auto/best")
    for dt in a.dtypes.split(","):
        dtype = {"f4": np.float32, "f8": np.float64}[dt]
        for xs, ks in cases(dims):
            x = rng.standard_normal(xs).astype(dtype)
            k = rng.standard_normal(ks).astype(dtype)
            for mode in a.modes.split(","):
                fns = methods(x, k, mode)
                med = timeit(fns, a.reps, a.budget, rng)
                pick = sp.choose_model(x, k, mode, get_num_threads())
                s1, s2 = (k.shape, x.shape) if sig_valid_swap(mode, x.shape, k.shape) else (x.shape, k.shape)
                md = sp.direct_cost(s1, s2, mode, dt, get_num_threads())
                mp, mo = sp.fft_costs(s1, s2, False, dtype == np.float32, get_num_threads())
                # best of what a user can call (method='direct', 'fft', oaconvolve); 'plain'
                # (the bare FFT core, no result conversion) is shown for reference
                best = min(v for m, v in med.items() if m in ("direct", "fft", "oa"))
                ratio = med["auto"] / best
                bad += ratio > 1.15
                case = f"{'x'.join(map(str, xs))}*{'x'.join(map(str, ks))}"
                cells = "".join(f"{1e3 * med[m]:9.3f}" if m in med else f"{'-':>9}"
                                for m in ("auto", "direct", "fft", "plain", "oa", "scipy"))
                print(f"{case:<24}{dt:<4}{mode:<6}{cells}   {1e3 * md:7.3f}/{1e3 * mp:7.3f}/"
                      f"{1e3 * mo:7.3f}  {pick:<6} {ratio:5.2f}{' !' if ratio > 1.15 else ''}", flush=True)
                rows.append(dict(x=xs, k=ks, dtype=dt, mode=mode, times=med, pick=pick,
                                 model=dict(direct=md, plain=mp, oa=mo if np.isfinite(mo) else None)))
    print(f"auto more than 15% slower than the best method: {bad} of {len(rows)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=0)


if __name__ == "__main__":
    main()
