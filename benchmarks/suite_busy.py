"""busy suite: multi-threaded calls on a quiet machine and beside busy processes.

The suite starts 0, 1 and 2 busy-looping processes of its own (ended when it ends) and
times each case at 1 thread and at all threads, with pyconv's load-aware team size on
(the default) and off (``PYCONV_LOAD_AWARE=0`` behaviour, i.e. the team always has every
configured thread).  Per row: case, busy processes, threads, load_aware, pyconv ms,
``vs_1t`` (this time / the 1-thread time in the same conditions: the project's target
is <= 1.5 with two busy processes) and the others' load pyconv measured.  On the quiet
rows PyTorch is timed too, where installed (ratio = torch time / pyconv time).

    python benchmarks/run.py --suite busy
"""
import subprocess
import sys
import time

import numpy as np

import pyconv
from pyconv import _threads, grad, nn


def _cases():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((512, 512), dtype=np.float32)
    k = rng.standard_normal((3, 3), dtype=np.float32)
    x = rng.standard_normal((8, 16, 32, 32), dtype=np.float32)
    w = rng.standard_normal((32, 16, 3, 3), dtype=np.float32)
    g = np.ones((8, 32, 32, 32), dtype=np.float32)
    torch = sys.modules.get("torch")
    cases = [
        ("convolve2d 512^2 k3x3 f32", lambda: pyconv.convolve2d(img, k, "same"), None),
        ("conv2d (8,16,32,32)*(32,16,3,3) f32", lambda: nn.conv2d(x, w, padding=1),
         (lambda tx=None: torch.nn.functional.conv2d(tx[0], tx[1], padding=1)) if torch else None),
        ("conv2d_backward same layer f32", lambda: grad.conv2d_backward(g, x, w, None, padding=1), None),
    ]
    tx = (torch.from_numpy(x), torch.from_numpy(w)) if torch else None
    return cases, tx


def _median_ms(fn, n):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def run(h):
    try:
        import torch  # noqa: F401
    except ImportError:
        print("  note: PyTorch not installed; its column is skipped")
    cases, tx = _cases()
    nall = max(h.thread_counts)
    reps = 15 if h.quick else 60
    saved = _threads._load.enabled
    for busy in (0, 1, 2):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(0.5)
            for name, fn, peer in cases:
                for aware in (True, False):
                    _threads._load.enabled = aware and saved
                    t1 = None
                    for nt in sorted({1, nall}):
                        with h.threads(nt):
                            ms = _median_ms(fn, reps)
                            row = dict(case=name, busy=busy, threads=nt, load_aware=aware, ms=ms)
                            if nt == 1:
                                t1 = ms
                            row["vs_1t"] = ms / t1
                            row["others_load"] = _threads._load.others
                            if peer is not None and busy == 0 and aware:
                                pt = _median_ms(lambda: peer(tx), reps)
                                row.update(torch_ms=pt, ratio=pt / ms)
                            h.record(**row)
        finally:
            _threads._load.enabled = saved
            for p in hogs:
                p.kill()
                p.wait()
    rows = [r for r in h.rows if "vs_1t" in r and r["threads"] == nall and nall > 1]
    if rows:
        print(f"\n  {nall}-thread time / 1-thread time (target <= 1.5 with two busy processes)")
        print(f"  {'case':38s} {'busy':>4s} {'aware':>6s} {'off':>6s}")
        for name, _, _ in cases:
            for busy in (0, 1, 2):
                on = [r["vs_1t"] for r in rows if r["case"] == name and r["busy"] == busy and r["load_aware"]]
                off = [r["vs_1t"] for r in rows if r["case"] == name and r["busy"] == busy and not r["load_aware"]]
                if on and off:
                    print(f"  {name:38s} {busy:4d} {on[0]:6.2f} {off[0]:6.2f}")
