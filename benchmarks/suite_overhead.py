"""overhead suite: the per-call cost of tiny calls repeated with one signature.

What a training loop or a per-patch filter pays per call when the arithmetic is
negligible: argument checks, the plan (cached per call signature after the first call),
allocation and one kernel call.  Each row: case, pyconv microseconds, peer name, peer
microseconds, ratio (peer / pyconv: > 1 means pyconv is cheaper), the target, and
whether it is met.  Times are medians of ``repeats`` blocks of ``number`` calls, all
peers timed in the same run (their time is the reference: on a busy machine both grow).

Targets (issue 9): nn.conv2d (1,1,4,4)*(1,1,3,3) <= 10 us; grad.conv2d_backward on it
<= 25 us; signal.convolve2d 10x10*3x3 and direct signal.convolve of 10 elements <= 1.2x
scipy's time.  pyconv.ndimage's small filters: <= 1.5x scipy.ndimage's (this suite's bar).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py --suite overhead
"""
import timeit

import numpy as np
import scipy.ndimage as snd
import scipy.signal as ss

from pyconv import grad, nn
from pyconv import ndimage as pn
from pyconv import signal as ps


def _us(fn, number, repeats):
    fn()                                    # the first call plans; later ones hit the cache
    return float(np.median(timeit.repeat(fn, number=number, repeat=repeats))) / number * 1e6


def _cases():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((1, 1, 3, 3))
    go = rng.standard_normal((1, 1, 2, 2))
    a, k = rng.standard_normal((10, 10)), rng.standard_normal((3, 3))
    a1, k1 = rng.standard_normal(10), rng.standard_normal(3)
    xf, wf = x.astype(np.float32), w.astype(np.float32)
    torch = None
    try:
        import torch
    except ImportError:
        pass
    cases = []
    tx = tw = tg = None
    if torch is not None:
        tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(go)
    cases.append(("nn.conv2d (1,1,4,4)*(1,1,3,3) f64", lambda: nn.conv2d(x, w),
                  "torch", (lambda: torch.nn.functional.conv2d(tx, tw)) if torch else None, ("us", 10.0)))
    cases.append(("nn.conv2d (1,1,4,4)*(1,1,3,3) f32", lambda: nn.conv2d(xf, wf), None, None, ("us", 10.0)))

    def torch_backward():
        # (under enable_grad: the nn and grad suites turn autograd off process-wide)
        with torch.enable_grad():
            xx = tx.clone().requires_grad_(True)
            ww = tw.clone().requires_grad_(True)
            torch.nn.functional.conv2d(xx, ww).backward(tg)
    cases.append(("grad.conv2d_backward (1,1,4,4)*(1,1,3,3)", lambda: grad.conv2d_backward(go, x, w),
                  "torch autograd", torch_backward if torch else None, ("us", 25.0)))
    cases.append(("signal.convolve2d 10x10*3x3", lambda: ps.convolve2d(a, k),
                  "scipy", lambda: ss.convolve2d(a, k), ("ratio", 1.2)))
    cases.append(("signal.correlate2d 10x10*3x3 same", lambda: ps.correlate2d(a, k, mode="same"),
                  "scipy", lambda: ss.correlate2d(a, k, mode="same"), ("ratio", 1.2)))
    cases.append(("signal.convolve 10*3 direct", lambda: ps.convolve(a1, k1, method="direct"),
                  "scipy", lambda: ss.convolve(a1, k1, method="direct"), ("ratio", 1.2)))
    cases.append(("signal.convolve 10*3 auto", lambda: ps.convolve(a1, k1),
                  "scipy", lambda: ss.convolve(a1, k1), ("ratio", 1.2)))
    # pyconv.ndimage's small filters beside scipy.ndimage's (a per-patch loop); no
    # target set by an issue: 1.5x scipy's time is this suite's bar for them
    a50 = rng.standard_normal(50)
    cases.append(("ndimage.convolve 10x10*3x3", lambda: pn.convolve(a, k),
                  "scipy.ndimage", lambda: snd.convolve(a, k), ("ratio", 1.5)))
    cases.append(("ndimage.correlate1d 50*3", lambda: pn.correlate1d(a50, k1),
                  "scipy.ndimage", lambda: snd.correlate1d(a50, k1), ("ratio", 1.5)))
    cases.append(("ndimage.gaussian_filter 10x10 s1", lambda: pn.gaussian_filter(a, 1.0),
                  "scipy.ndimage", lambda: snd.gaussian_filter(a, 1.0), ("ratio", 1.5)))
    cases.append(("ndimage.uniform_filter 10x10 s3", lambda: pn.uniform_filter(a, 3),
                  "scipy.ndimage", lambda: snd.uniform_filter(a, 3), ("ratio", 1.5)))
    return cases


def run(h):
    number = 200 if h.quick else 2000
    repeats = max(5, h.repeats)
    summary = []
    for name, fn, peer, peer_fn, (kind, target) in _cases():
        with h.threads(1):
            t = _us(fn, number, repeats)
            tp = _us(peer_fn, number, repeats) if peer_fn is not None else None
        ratio = tp / t if tp else None
        if kind == "us":
            met = t <= target
            goal = f"<= {target:g} us"
        else:
            met = tp is not None and t <= target * tp
            goal = f"<= {target:g}x {peer}"
        h.record(case=name, pyconv_us=t, peer=peer or "-", peer_us=tp if tp is not None else float("nan"),
                 ratio=ratio if ratio is not None else float("nan"), target=goal, met=met)
        summary.append((name, t, tp, goal, met))
    print("\n  summary (median us per call, 1 thread):")
    for name, t, tp, goal, met in summary:
        peer = f"{tp:7.2f}" if tp is not None else "      -"
        print(f"  {name:42s} {t:7.2f}  peer {peer}  target {goal:18s} {'met' if met else 'NOT met'}")
