"""One kernel module, two builds, alternated call by call in one process: how the figures of a
kernel change are measured (a host whose speed moves by 1.5x within minutes leaves nothing
else to compare with).

The module pyconv imports (``pyconv/_kernels/<module>__<variant>``) is "after"; the same
module from another build of the same variant ("before": e.g. a clean checkout of the
previous commit, built with ``PYCONV_VARIANTS=avx512 PYCONV_BUILD_ONLY=<module> python
setup.py build_ext --inplace``) is loaded beside it.  For each suite layer and operation
both are called in turn, each timed on its second call after a swap (the first one plans
again: ``plan.clear_caches``), with PyTorch alongside when it is installed; the two builds
must give the same bits.  At 1 thread the clock is the calling thread's CPU time, at more
wall time; medians of ``--reps`` rounds (which build goes first flips every round), and
the quartiles of the per-round before/after ratios; glibc's malloc pinned as in ``run.py``.
Run it once with the same build on both sides (an A/A run) to see the host's noise.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/ab_kernel.py \\
        --module dense_direct --before /tmp/prev/pyconv/_kernels --layers j,a --ops fwd,weight

A layer is a suite letter, or a convolution written out as ``XSHAPE*WSHAPE[/s/p/d/g]`` (shapes
``x``-separated; stride, padding, dilation, groups as single ints), e.g.
``2x96x8x8x8*16x96x5x5x5/1/2`` for a 3-D layer on 8^3 maps with padding 2.
"""
import argparse
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402
import suite_grad  # noqa: E402
import suite_nn  # noqa: E402

# letter: (name, kind, input shape, weight shape, keyword arguments) -- the nn suite's layers
LAYERS = {layer[0][0]: layer for layer in suite_nn.LAYERS}


def load(module, directory):
    """The kernel module ``module`` of the variant in use, from ``directory``."""
    from pyconv import _kernels
    name = f"{module}__{_kernels.VARIANT}"
    path = [os.path.join(directory, f) for f in os.listdir(directory) if f.startswith(name + ".")]
    if not path:
        raise SystemExit(f"no {name}.* in {directory}")
    spec = importlib.util.spec_from_file_location(f"pyconv._kernels.{name}", path[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def layer_spec(layer):
    """(name, kind, input shape, weight shape, keyword arguments) of a suite letter or of a
    written-out convolution ``XSHAPE*WSHAPE[/s/p/d/g]``."""
    if layer in LAYERS:
        return LAYERS[layer]
    shapes, *params = layer.split("/")
    xs, ws = (tuple(int(v) for v in part.split("x")) for part in shapes.split("*"))
    kw = dict(zip(("stride", "padding", "dilation", "groups"), (int(v) for v in params)))
    return layer, "conv", xs, ws, kw


def calls(layer, op, dtype, rng):
    """(pyconv call, torch call or None) of one layer's operation, built as the nn and grad
    suites build them."""
    name, kind, xs, ws, kw = layer_spec(layer)
    nd = len(ws) - 2
    f = suite_nn._pyconv_fn(kind, nd)
    x = rng.uniform(-1, 1, xs).astype(dtype)
    w = rng.uniform(-1, 1, ws).astype(dtype)
    go = rng.uniform(-1, 1, f(x, w, **kw).shape).astype(dtype)
    try:
        import torch
        torch.set_grad_enabled(False)
    except ImportError:
        torch = None
    if op == "fwd":
        tf = suite_nn._torch_fn(torch, kind, nd) if torch is not None else None
        xt, wt = (torch.from_numpy(a) for a in (x, w)) if torch is not None else (None, None)
        return (lambda: f(x, w, **kw)), (None if tf is None else lambda: tf(xt, wt, **kw))
    theirs = suite_grad._torch_fns(torch, kind, nd, x, w, go, kw)[op] if torch is not None else None
    return suite_grad._pyconv_fns(kind, nd, x, w, go, kw)[op], theirs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--module", required=True, help="kernel module, e.g. dense_direct, panel, grad_direct")
    ap.add_argument("--before", required=True, help="the other build's pyconv/_kernels directory")
    ap.add_argument("--layers", default="a,b,f,j")
    ap.add_argument("--ops", default="fwd")
    ap.add_argument("--dtypes", default="float32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--reordered", action="store_true",
                    help="the change reorders sums: accept results within rounding instead of the same bits")
    a = ap.parse_args(argv)
    run.fix_malloc()
    import pyconv
    from pyconv._config import _cpu_model
    from pyconv._engine import conv, plan
    after, before = getattr(conv, a.module), load(a.module, a.before)

    def use(m):
        setattr(conv, a.module, m)
        plan.clear_caches()

    print(f"cpu: {_cpu_model()}  module: {a.module}  before: {a.before}")
    rng = np.random.default_rng(0)
    try:
        for nt in (int(t) for t in a.threads.split(",")):
            pyconv.set_num_threads(nt)
            try:
                import torch
                torch.set_num_threads(nt)
            except ImportError:
                pass
            clock = time.thread_time if nt == 1 else time.perf_counter
            for dt in a.dtypes.split(","):
                for layer in a.layers.split(","):
                    for op in a.ops.split(","):
                        f, tf = calls(layer, op, dt, rng)
                        use(before)
                        yb = f()
                        use(after)
                        ya = f()
                        if not np.array_equal(yb, ya):
                            # a change of the summation order changes the last bits: allowed
                            # with --reordered, within the dtype's rounding of the sums
                            err = float(np.max(np.abs(yb - ya)) / max(1e-30, float(np.max(np.abs(yb)))))
                            if not a.reordered or err > (1e-5 if dt == "float32" else 1e-13):
                                raise SystemExit(f"{layer} {op} {dt}: the two builds give different bits "
                                                 f"(max error {err:.2e} of the largest value)")
                            print(f"  {layer} {op} {dt}: reordered sums, max error {err:.2e} of the largest value")
                        ts = {"before": [], "after": [], "torch": []}
                        pair = (("before", before), ("after", after))
                        for r in range(a.reps):
                            # the order flips every round: a build timed right after PyTorch's
                            # call ran 1.11-1.13x slower on the memory-bound depthwise layer (the
                            # same build on both sides, Intel Xeon); flipped, such a bias cancels
                            for lab, m in (pair if r % 2 == 0 else pair[::-1]):
                                use(m)
                                f()
                                t = clock()
                                f()
                                ts[lab].append(clock() - t)
                            if tf is not None:
                                # (warmed like the builds: timed cold, right after their calls,
                                # PyTorch's 8x576x14^2 depthwise forward took 0.47 ms, warm 0.22)
                                tf()
                                t = clock()
                                tf()
                                ts["torch"].append(clock() - t)
                        mb, ma = np.median(ts["before"]) * 1e3, np.median(ts["after"]) * 1e3
                        # per round before/after: their spread says how far apart the two
                        # builds must be to be told apart (an A/A run of one build on both
                        # sides read 0.97-1.11x on the depthwise layer at 1 thread)
                        q1, q2, q3 = np.percentile(np.array(ts["before"]) / np.array(ts["after"]), [25, 50, 75])
                        line = (f"{nt}T {dt} {layer} {op}: before {mb:.2f} ms, after {ma:.2f} ms ({mb / ma:.3f}x;"
                                f" per round {q2:.3f}x, quartiles {q1:.3f}-{q3:.3f})")
                        if ts["torch"]:
                            mt = np.median(ts["torch"]) * 1e3
                            line += f"; torch {mt:.2f} ms, ratio {mt / mb:.2f} -> {mt / ma:.2f}"
                        print(line, flush=True)
    finally:
        use(after)


if __name__ == "__main__":
    main()
