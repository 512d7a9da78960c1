"""Calls after a pause: the suite layers' multi-threaded calls, each after ``--gap`` seconds
of sleep, beside the same calls back to back.

OpenMP's workers sleep a few milliseconds after a region.  Waking them costs more than the
suites' back-to-back timings show, and on a virtual machine a worker could be woken onto
its caller's CPU and share it (pyconv_omp.h: pyconv_unstack).  Run it in two source trees
to compare builds (each process measures its own tree):

    PYTHONPATH=/path/to/tree python benchmarks/gap_calls.py --layers a,b,d,g --gap 0.2

Per layer and operation: the median milliseconds back to back and after the pause, and
their ratio.  The machine's CPU is printed with them.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
import suite_grad  # noqa: E402
import suite_nn  # noqa: E402

import pyconv  # noqa: E402


def _median_ms(fn, reps, gap):
    fn()
    fn()
    ts = []
    for _ in range(reps):
        if gap:
            time.sleep(gap)
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="a,b,c,d,e,g", help="nn suite layers by letter")
    ap.add_argument("--ops", default="fwd,weight", help="fwd, input, weight")
    ap.add_argument("--gap", type=float, default=0.2, help="seconds of sleep before each timed call")
    ap.add_argument("--threads", type=int, default=pyconv.get_num_threads())
    ap.add_argument("--reps", type=int, default=9)
    a = ap.parse_args(argv)
    run.fix_malloc()
    pyconv.set_num_threads(a.threads)
    from pyconv._config import _cpu_model
    print(f"cpu: {_cpu_model()}  pyconv: {os.path.dirname(pyconv.__file__)}  threads: {a.threads}  gap: {a.gap} s")
    layers = {layer[0][0]: layer for layer in suite_nn.LAYERS}
    rng = np.random.default_rng(0)
    for key in a.layers.split(","):
        name, kind, xs, ws, kw = layers[key]
        nd = len(ws) - 2
        f = suite_nn._pyconv_fn(kind, nd)
        x = rng.uniform(-1, 1, xs).astype(np.float32)
        w = rng.uniform(-1, 1, ws).astype(np.float32)
        go = rng.uniform(-1, 1, f(x, w, **kw).shape).astype(np.float32)
        fns = dict(suite_grad._pyconv_fns(kind, nd, x, w, go, kw), fwd=lambda: f(x, w, **kw))
        for op in a.ops.split(","):
            warm = _median_ms(fns[op], a.reps, 0.0)
            paused = _median_ms(fns[op], a.reps, a.gap)
            print(f"  {name:34s} {op:6s} back to back {warm:7.2f} ms  after {a.gap * 1e3:.0f} ms "
                  f"{paused:7.2f} ms  ({paused / warm:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
