"""In-process interleaved medians of the dense forward kernels (branch ocvec): pyconv's default
plan, pyconv forced to dense_oc, to dense (phase planes), to gemm, and torch.

usage: PYTHONPATH=. REPS=21 python benchmarks/ocvec_compare.py THREADS DTYPE a b f j h g s
(results: benchmarks/results/nn-2026-12-03-ocvec-intel.txt)
"""
import sys, os, time, dataclasses, numpy as np, torch, pyconv
from pyconv import nn
from pyconv._engine import plan as _plan, tuning
cases = {'s': ('conv2d', (32,16,6,6),(32,16,3,3),dict(stride=2,padding=1)),
         'a': ('conv2d', (8,64,56,56),(64,64,3,3),dict(padding=1)),
         'b': ('conv2d', (8,128,28,28),(256,128,3,3),dict(stride=2,padding=1)),
         'f': ('conv2d', (8,64,56,56),(64,64,3,3),dict(padding=2,dilation=2)),
         'j': ('conv2d', (4,3,224,224),(64,3,7,7),dict(stride=2,padding=3)),
         'h': ('conv3d', (2,16,32,32,32),(16,16,3,3,3),dict(padding=1)),
         'g': ('conv_transpose2d', (8,64,28,28),(64,32,4,4),dict(stride=2,padding=1))}
thr = int(sys.argv[1]); dt = sys.argv[2]
torch.set_num_threads(thr); pyconv.set_num_threads(thr)
rng = np.random.default_rng(0)
base = tuning.active()
T_NEW = dataclasses.replace(base, dense_oc_min_positions=0, dense_oc_max_k=1 << 62)   # any calibrated limit lifted
def under(t, alg, f):
    def run():
        old = tuning._state.tuning
        tuning._state.tuning = t
        try:
            if alg is None:
                return f()
            with _plan.force(alg):
                return f()
        finally:
            tuning._state.tuning = old
    return run
for name in sys.argv[3:]:
    fn, xs, ws, kw = cases[name]
    x = rng.standard_normal(xs).astype(dt); w = rng.standard_normal(ws).astype(dt)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    pf = getattr(nn, fn); tf = getattr(torch.nn.functional, fn)
    call = lambda: pf(x, w, **kw)
    labels = ['default', 'dense_oc', 'dense', 'gemm', 'torch']
    fns = [call, under(T_NEW, 'dense_oc', call), under(base, 'dense', call), under(base, 'gemm', call),
           lambda: tf(tx, tw, **kw)]
    ys = [f() for f in fns]
    yt = ys[-1].numpy()
    err = max(np.abs(y - yt).max() for y in ys[:-1]) / np.abs(yt).max()
    flops = 2.0 * ys[0].size * ws[1] * np.prod(ws[2:]) if fn != 'conv_transpose2d' else 2.0 * x.size * ws[1] * np.prod(ws[2:])
    n = int(os.environ.get("REPS", 21)) if flops > 1e8 else 300
    ts = [[] for _ in fns]
    for r in range(n):
        for i, f in enumerate(fns):
            t = time.perf_counter(); f(); ts[i].append(time.perf_counter() - t)
    m = [np.median(t) for t in ts]
    p = pyconv.explain(pf, x, w, **kw)
    alg = f"{p.algorithm}" + (f"({p.sub.algorithm})" if getattr(p, 'sub', None) is not None else "")
    # a forced algorithm that cannot serve runs the default: mark it
    served = {}
    for a in ('dense_oc', 'dense', 'gemm'):
        with _plan.force(a):
            q = pyconv.explain(pf, x, w, **kw)
        served[a] = str(q.leaf().algorithm) == a
    cells = "  ".join(f"{l} {mm*1e3:.3f}" + ("" if l not in served or served[l] else "(n/a)") for l, mm in zip(labels, m))
    print(f"{name} {dt} {thr}T default=[{alg}]  {cells} ms | torch/default {m[4]/m[0]:.2f} torch/dense_oc {m[4]/m[1]:.2f} "
          f"torch/dense {m[4]/m[2]:.2f} dense/dense_oc {m[2]/m[1]:.2f} gemm/dense_oc {m[3]/m[1]:.2f} | max rel err {err:.0e}", flush=True)
