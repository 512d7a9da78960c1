"""Strided input gradients and transposed convolutions before/after plan 'phases_oc': pyconv's
default plan now ('after'), the plan with ``phases_oc`` / ``phases_oc_f8`` switched off in the
same process ('before': the choice the planner made before 'phases_oc' existed) and PyTorch,
timed in turn call by call, medians of ``--reps`` runs, float32 and float64 at 1 and 2 threads.
At 1 thread the clock is the calling thread's CPU time (both libraries then compute on the
calling thread: a shared machine's preemptions do not count), at 2 threads wall time.
Where both settings give the same plan only 'after' is timed.

Layers (issue 10): a = x(8,64,56,56) w(64,64,3,3) p1; b = x(8,128,28,28) w(256,128,3,3) s2 p1;
g = conv_transpose2d x(8,64,28,28) w(64,32,4,4) s2 p1 (its forward); h = conv3d
x(2,16,32,32,32) w(16,16,3,3,3) p1; j = x(4,3,224,224) w(64,3,7,7) s2 p3.  Operations: 'input' /
'weight' (``grad.convNd_input`` / ``convNd_weight`` against
``torch.ops.aten.convolution_backward``), 'fwd' (g only).

Usage: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bgrad_before_after.py
[--reps 9] [--threads 1,2] b:input b:weight g:fwd h:input ...``
"""
import argparse
import time

import numpy as np
import torch

import pyconv
from pyconv import grad, nn
from pyconv._config import _cpu_model
from pyconv._engine import tuning

LAYERS = {"a": ((8, 64, 56, 56), (64, 64, 3, 3), 1, 1), "b": ((8, 128, 28, 28), (256, 128, 3, 3), 2, 1),
          "h": ((2, 16, 32, 32, 32), (16, 16, 3, 3, 3), 1, 1), "j": ((4, 3, 224, 224), (64, 3, 7, 7), 2, 3)}
OFF = dict(phases_oc=False, phases_oc_f8=False)


def fns(name, which, dt):
    """(pyconv call, torch call, explain call) of one layer's operation."""
    rng = np.random.default_rng(0)
    if name == "g":
        x = rng.uniform(-1, 1, (8, 64, 28, 28)).astype(dt)
        w = rng.uniform(-1, 1, (64, 32, 4, 4)).astype(dt)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        return (lambda: nn.conv_transpose2d(x, w, stride=2, padding=1),
                lambda: torch.nn.functional.conv_transpose2d(xt, wt, stride=2, padding=1),
                lambda: pyconv.explain(nn.conv_transpose2d, x, w, stride=2, padding=1))
    xs, ws, s, p = LAYERS[name]
    nd = len(ws) - 2
    x = rng.uniform(-1, 1, xs).astype(dt)
    w = rng.uniform(-1, 1, ws).astype(dt)
    go = rng.uniform(-1, 1, getattr(nn, f"conv{nd}d")(x, w, stride=s, padding=p).shape).astype(dt)
    xt, wt, gt = (torch.from_numpy(a) for a in (x, w, go))
    i = 0 if which == "input" else 1
    mask = [i == 0, i == 1, False]

    def tf():
        return torch.ops.aten.convolution_backward(gt, xt, wt, [ws[0]], [s] * nd, [p] * nd, [1] * nd, False,
                                                   [0] * nd, 1, mask)[i]
    fi, fw = getattr(grad, f"conv{nd}d_input"), getattr(grad, f"conv{nd}d_weight")
    if i == 0:
        return lambda: fi(xs, w, go, s, p), tf, lambda: pyconv.explain(fi, xs, w, go, s, p)
    return lambda: fw(x, ws, go, s, p), tf, lambda: pyconv.explain(fw, x, ws, go, s, p)


def bench(fs, reps, clock):
    res = {n: [] for n in fs}
    for f in fs.values():
        f()
    for _ in range(reps):
        for n, f in fs.items():
            t = clock()
            f()
            res[n].append(clock() - t)
    return {n: float(np.median(v)) * 1e3 for n, v in res.items()}


def plan_name(p):
    """'input_grad transposed(phases_oc)'-like: the plan's words before the shapes."""
    return " ".join(w for w in str(p).split(" ")[:3] if "x" not in w or "(" in w)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("specs", nargs="*", default=["b:input", "g:fwd", "b:weight", "h:input", "h:weight",
                                                 "a:input", "j:input"])
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    print(f"cpu: {_cpu_model()}  isa: {pyconv._kernels.VARIANT}  torch {torch.__version__}  "
          f"pyconv {pyconv.__file__}", flush=True)
    for spec in a.specs:
        name, which = spec.split(":")
        for dt in a.dtypes.split(","):
            pf, tf, ex = fns(name, which, dt)

            def before(pf=pf):
                with tuning.override(**OFF):
                    return pf()
            ref = tf().numpy()
            err = float(np.abs(pf() - ref).max() / max(1.0, float(np.abs(ref).max())))
            for nt in [int(v) for v in a.threads.split(",")]:
                pyconv.set_num_threads(nt)
                torch.set_num_threads(nt)
                now = plan_name(ex())
                with tuning.override(**OFF):
                    old = plan_name(ex())
                fs = {"torch": tf, "after": pf} if old == now else {"torch": tf, "before": before, "after": pf}
                r = bench(fs, a.reps, time.thread_time if nt == 1 else time.perf_counter)
                tb = (f"before {r['before']:7.2f} ({r['torch'] / r['before']:.2f}x)" if "before" in r
                      else "before (same plan)   ")
                print(f"{name} {which:6s} {dt} {nt}T  torch {r['torch']:7.2f}  {tb}  after {r['after']:7.2f} "
                      f"({r['torch'] / r['after']:.2f}x) ms  plan: {now}" + ("" if old == now else f" (before: {old})")
                      + f"  max rel err {err:.1e}", flush=True)


if __name__ == "__main__":
    main()
