"""Depthwise (d) and grouped (e) layers: pyconv's plan now, the plan before 'thin_reg'
(forced in the same process: 'thin_s1' for d, 'dense' for e, as this machine's
calibration chose them before) and PyTorch, timed in turn (torch, now, before, torch, ...),
medians of ``--reps`` runs, float32 and float64 at 1 and 2 threads.

Layers (issue 10): d = x(8,256,56,56) * w(256,1,3,3), padding 1, groups 256;
e = x(8,128,56,56) * w(128,4,3,3), padding 1, groups 32.  Operations: forward
(``nn.conv2d`` / ``torch.nn.functional.conv2d``), input and weight gradients
(``grad.conv2d_input`` / ``conv2d_weight`` against ``torch.ops.aten.convolution_backward``).

Usage: ``python benchmarks/dw_before_after.py [--reps 9] [--layers de] [--threads 1,2]``
"""
import argparse
import statistics
import time

import numpy as np
import torch

import pyconv
from pyconv import grad, nn
from pyconv._config import _cpu_model
from pyconv._engine import plan as _plan

LAYERS = {"d": ((8, 256, 56, 56), (256, 1, 3, 3), 256, "thin_s1"),
          "e": ((8, 128, 56, 56), (128, 4, 3, 3), 32, "dense")}


def fns(name, dtype):
    xs, ws, g, before = LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    go = rng.standard_normal((xs[0], ws[0]) + xs[2:]).astype(dtype)
    xt, wt, gt = (torch.from_numpy(a) for a in (x, w, go))

    def back(mask, i):
        return lambda: torch.ops.aten.convolution_backward(gt, xt, wt, [ws[0]], [1, 1], [1, 1], [1, 1], False,
                                                           [0, 0], g, mask)[i]
    return before, {
        "forward": (lambda: nn.conv2d(x, w, None, 1, 1, 1, g),
                    lambda: torch.nn.functional.conv2d(xt, wt, None, 1, 1, 1, g)),
        "input": (lambda: grad.conv2d_input(x.shape, w, go, 1, 1, 1, g), back([True, False, False], 0)),
        "weight": (lambda: grad.conv2d_weight(x, w.shape, go, 1, 1, 1, g), back([False, True, False], 1)),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--layers", default="de")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    a = ap.parse_args()
    print(f"cpu: {_cpu_model()}  isa: {pyconv._kernels.VARIANT}  torch {torch.__version__}  "
          f"pyconv {pyconv.__file__}")
    for th in [int(t) for t in a.threads.split(",")]:
        pyconv.set_num_threads(th)
        torch.set_num_threads(th)
        for dt in a.dtypes.split(","):
            for name in a.layers:
                before, ops = fns(name, dt)
                for op, (fp, ft) in ops.items():
                    # the weight gradient's plan did not change ('thin' before and now)
                    forced = (before,) if op != "weight" else ()
                    now_alg = pyconv.explain(fp)
                    with _plan.force(*forced):
                        old_alg = pyconv.explain(fp)

                    def old():
                        with _plan.force(*forced):
                            return fp()
                    ref = ft().numpy()
                    err = max(float(np.abs(f() - ref).max()) for f in (fp, old)) / float(np.abs(ref).max())
                    ts = {"torch": [], "now": [], "before": []}
                    for _ in range(a.reps):
                        for k, f in (("torch", ft), ("now", fp), ("before", old)):
                            t0 = time.perf_counter()
                            f()
                            ts[k].append(time.perf_counter() - t0)
                    m = {k: statistics.median(v) * 1e3 for k, v in ts.items()}
                    print(f"layer={name} op={op:7s} dtype={dt} threads={th} "
                          f"now={m['now']:.2f}ms[{_alg(now_alg)}] before={m['before']:.2f}ms[{_alg(old_alg)}] "
                          f"torch={m['torch']:.2f}ms ratio_now={m['torch'] / m['now']:.2f} "
                          f"ratio_before={m['torch'] / m['before']:.2f} max_rel_err={err:.1e}", flush=True)


def _alg(p):
    s = str(p.algorithm)
    return s + (f"({p.sub.algorithm})" if getattr(p, "sub", None) is not None else "")


if __name__ == "__main__":
    main()
