"""In-process interleaved medians of layer c (1x1 256->64, 8x56x56) on the 1x1 plans (branch pw):
the forward on pyconv's default plan, forced 'panel', 'pointwise' (the previous default) and
'matmul', and PyTorch; the weight gradient on 'panel', 'matmul' and PyTorch.  Wall time,
medians of REPS rounds, every candidate timed once per round in turn.

usage: PYTHONPATH=. REPS=15 [CLOCK=cpu] python benchmarks/panel_compare.py THREADS DTYPE
(CLOCK=cpu: the calling thread's CPU time, for 1 thread on a shared machine: both libraries
then run on the calling thread, and time other processes take is not counted)
(results: benchmarks/results/nn-2026-12-03-pw-intel.txt)
"""
import os
import sys
import time

import numpy as np
import torch

import pyconv
from pyconv import grad, nn
from pyconv._engine import plan as _plan

thr, dt = int(sys.argv[1]), sys.argv[2]
reps = int(os.environ.get("REPS", "15"))
clock = time.thread_time if os.environ.get("CLOCK") == "cpu" else time.perf_counter
torch.set_num_threads(thr)
pyconv.set_num_threads(thr)
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 256, 56, 56)).astype(dt)
w = rng.standard_normal((64, 256, 1, 1)).astype(dt)
go = rng.standard_normal((8, 64, 56, 56)).astype(dt)
tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(go)


def forced(alg, f):
    def run():
        with _plan.force(alg):
            return f()
    return run


fwd = lambda: nn.conv2d(x, w)  # noqa: E731
wgt = lambda: grad.conv2d_weight(x, w.shape, go)  # noqa: E731
cands = {
    "fwd default": fwd, "fwd panel": forced("panel", fwd), "fwd pointwise": forced("pointwise", fwd),
    "fwd matmul": forced("matmul", fwd), "fwd torch": lambda: torch.nn.functional.conv2d(tx, tw),
    "wgt default": wgt, "wgt panel": forced("panel", wgt), "wgt matmul": forced("matmul", wgt),
    "wgt torch": lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg),
}
for f in cands.values():
    f()
times = {k: [] for k in cands}
for _ in range(reps):
    for k, f in cands.items():
        t0 = clock()
        f()
        times[k].append(clock() - t0)
med = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
print(f"threads={thr} dtype={dt} reps={reps} clock={os.environ.get('CLOCK', 'wall')} default fwd={pyconv.explain(nn.conv2d, x, w).algorithm} "
      f"wgt={pyconv.explain(grad.conv2d_weight, x, w.shape, go).algorithm}")
for op in ("fwd", "wgt"):
    t = med[f"{op} torch"]
    print("  " + "  ".join(f"{k[4:]} {v:.2f} ms ({t / v:.2f}x)" for k, v in med.items() if k.startswith(op)))
