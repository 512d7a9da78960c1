"""grad suite: backward passes of common CNN layers, pyconv.grad beside PyTorch.

For the ten layers of the nn suite, per dtype and thread count: the input gradient,
the weight gradient and the bias gradient, each timed alone.  pyconv runs
``pyconv.grad.convNd_input`` / ``convNd_weight`` (for the transposed layer, the two
halves of ``conv_transpose2d_backward``: a convolution of grad_output with the weight,
and the correlation of grad_output with the input) and the bias reduction of
``convNd_backward``; PyTorch runs ``torch.ops.aten.convolution_backward`` in the same
process with ``output_mask`` selecting one gradient.  Rows give milliseconds, the ratio
torch-time / pyconv-time (> 1: pyconv is faster), GFLOP/s (2 x the multiply-adds of the
direct algorithm; each gradient costs as many as the forward) and the max relative
difference to torch.  A summary checks the project's targets.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py --suite grad
"""
import numpy as np

from pyconv import grad, nn
# the nn suite's ten layers and its FLOP count (each gradient costs as many multiply-adds
# as the forward); run.py puts benchmarks/ on sys.path
from suite_nn import LAYERS, _flops

# targets (torch-time / pyconv-time), float32, per gradient, at 1 thread and at all threads
# (issue 10: every dense layer at least PyTorch's speed, depthwise and grouped 3x; j's input
# gradient keeps its earlier 2x)
DENSE = "abcfghij"
TARGETS = {**{(k, g): 1.0 for k in DENSE for g in ("input", "weight")},
           ("d", "input"): 3.0, ("d", "weight"): 3.0, ("e", "input"): 3.0, ("e", "weight"): 3.0,
           ("j", "input"): 2.0}
F64_TARGET = 1.0
TARGET_THREADS = 2


def _tuple(v, nd):
    return (v,) * nd if np.isscalar(v) else tuple(v)


def _pyconv_fns(kind, nd, x, w, go, kw):
    """Callables computing (input gradient, weight gradient, bias gradient) with pyconv."""
    stride = _tuple(kw.get("stride", 1), nd)
    dil = _tuple(kw.get("dilation", 1), nd)
    pad = _tuple(kw.get("padding", 0), nd)
    groups = kw.get("groups", 1)
    if kind == "transpose":
        # dx is the convolution of dy with w; dw the correlation of dy with x (the two
        # halves of grad.conv_transpose2d_backward, on normalised arguments)
        pairs = tuple((p, p) for p in pad)
        fx = lambda: nn.conv(go, w, None, stride, pad, dil, groups)  # noqa: E731
        fw = lambda: grad._weight_core(go, x, w.shape, stride, pairs, dil, groups)  # noqa: E731
    else:
        fi = getattr(grad, f"conv{nd}d_input")
        fwt = getattr(grad, f"conv{nd}d_weight")
        fx = lambda: fi(x.shape, w, go, stride, pad, dil, groups)  # noqa: E731
        fw = lambda: fwt(x, w.shape, go, stride, pad, dil, groups)  # noqa: E731
    fb = lambda: grad._bias_grad(go, go.dtype)  # noqa: E731
    return {"input": fx, "weight": fw, "bias": fb}


def _torch_fns(torch, kind, nd, x, w, go, kw):
    stride = list(_tuple(kw.get("stride", 1), nd))
    dil = list(_tuple(kw.get("dilation", 1), nd))
    pad = list(_tuple(kw.get("padding", 0), nd))
    groups = kw.get("groups", 1)
    xt, wt, gt = (torch.from_numpy(a) for a in (x, w, go))
    cout = w.shape[1] * groups if kind == "transpose" else w.shape[0]
    transposed = kind == "transpose"

    def make(mask, idx):
        def f():
            return torch.ops.aten.convolution_backward(gt, xt, wt, [cout], stride, pad, dil, transposed,
                                                       [0] * nd, groups, mask)[idx]
        return f
    return {"input": make([True, False, False], 0), "weight": make([False, True, False], 1),
            "bias": make([False, False, True], 2)}


def run(h):
    try:
        import torch
        torch.set_grad_enabled(False)
    except ImportError:
        torch = None
        print("  note: torch is not installed; its columns are skipped", flush=True)
    results = {}
    rng = np.random.default_rng(2)
    for name, kind, xs, ws, kw in LAYERS:
        if h.quick:
            xs = (1,) + tuple(xs[1:])     # smoke run: batch 1, same geometry
        nd = len(ws) - 2
        fwd = getattr(nn, f"conv_transpose{nd}d" if kind == "transpose" else f"conv{nd}d")
        for dtype in (np.float32, np.float64):
            x = rng.uniform(-1, 1, xs).astype(dtype)
            w = rng.uniform(-1, 1, ws).astype(dtype)
            out_shape = fwd(x, w, **kw).shape
            go = rng.uniform(-1, 1, out_shape).astype(dtype)
            flops = _flops(kind, xs, ws, out_shape)
            ours = _pyconv_fns(kind, nd, x, w, go, kw)
            theirs = _torch_fns(torch, kind, nd, x, w, go, kw) if torch is not None else {}
            for n in h.thread_counts:
                for which in ("input", "weight", "bias"):
                    row = dict(layer=name, grad=which, dtype=np.dtype(dtype).name, threads=n)
                    with h.threads(n):
                        try:
                            res = ours[which]()
                            if which in theirs:
                                # in turn, call by call: both peers see the same machine state
                                t_py, t_torch, rq = h.time_pair(ours[which], theirs[which], paired=True)
                            else:
                                t_py, t_torch = h.time(ours[which]), None
                        except Exception as e:  # a failing layer must not hide the others
                            h.record(**row, error=f"{type(e).__name__}: {e}")
                            continue
                        err = None
                        if which in theirs:
                            ref = theirs[which]().numpy()
                            err = float(np.max(np.abs(res - ref)) / max(1.0, float(np.max(np.abs(ref)))))
                        plan = h.plan(ours[which])
                    row.update(plan=plan, pyconv_ms=t_py * 1e3)
                    if t_torch is not None:
                        # the median of the per-round ratios (see suite_nn)
                        row.update(torch_ms=t_torch * 1e3, ratio=rq[0], ratio_q1=rq[1], ratio_q3=rq[2],
                                   ratio_of_medians=t_torch / t_py)
                    if which != "bias":
                        row.update(pyconv_gflops=flops / t_py / 1e9)
                        if t_torch is not None:
                            row.update(torch_gflops=flops / t_torch / 1e9)
                    if err is not None:
                        row.update(max_rel_err=err)
                    h.record(**row)
                    results[(name[0], which, row["dtype"], n)] = row
    _summary(h, results, torch is not None)


def _summary(h, results, have_torch):
    print("  -- targets (ratio = torch-time / pyconv-time) --", flush=True)
    if not have_torch:
        print("  note: no torch, no ratios to check", flush=True)
        return
    if h.quick:
        print("  note: --quick runs batch 1 and fewer repeats; judge targets on a full run", flush=True)
    nt = TARGET_THREADS if TARGET_THREADS in h.thread_counts else max(h.thread_counts)
    met = []
    for (layer, which), goal in sorted(TARGETS.items()):
        for n in sorted(set(h.thread_counts) | {nt}):
            r = results.get((layer, which, "float32", n), {}).get("ratio")
            ok = r is not None and r >= goal
            met.append(ok)
            h.record(target=f"{layer} {which} float32 {n} threads", measured=r if r is not None else float("nan"),
                     goal=goal, met=ok)
    for (layer, which, dt, n), row in sorted(results.items()):
        if dt == "float64" and which != "bias" and "ratio" in row:
            ok = row["ratio"] >= F64_TARGET
            met.append(ok)
            if not ok:
                h.record(target=f"{layer} {which} float64 {n} threads", measured=row["ratio"], goal=F64_TARGET,
                         met=False)
    h.record(target="all", met=f"{sum(met)}/{len(met)}")
