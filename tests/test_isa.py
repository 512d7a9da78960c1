"""Every SIMD variant of the kernels this CPU runs gives the same results (up to the
rounding FMA contraction changes), and the dispatch picks the best one.

Each variant runs in its own interpreter (``PYCONV_ISA=<variant>``), so the whole
public path (plans, tiles, kernels) is compared, not just one kernel call.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyconv
from pyconv import _kernels

CASES = textwrap.dedent("""
    import sys, numpy as np, pyconv
    from pyconv import nn, grad, _kernels
    from pyconv._engine import plan as _plan, tuning
    assert _kernels.VARIANT == sys.argv[2], (_kernels.VARIANT, sys.argv[2])
    rng = np.random.default_rng(0)
    out = {}
    for dt in (np.float32, np.float64):
        s = dt.__name__
        img, k = rng.standard_normal((67, 45)).astype(dt), rng.standard_normal((5, 4)).astype(dt)
        out["convolve2d_" + s] = pyconv.convolve2d(img, k, "same", boundary="symm")
        out["convolve_nd_" + s] = pyconv.convolve(rng.standard_normal((9, 11, 13)).astype(dt),
                                                   rng.standard_normal((3, 2, 4)).astype(dt), method="direct")
        x = rng.standard_normal((2, 16, 19, 23)).astype(dt)
        w = rng.standard_normal((24, 16, 3, 3)).astype(dt)
        out["conv2d_dense_" + s] = nn.conv2d(x, w, padding=1)
        out["conv2d_s2_" + s] = nn.conv2d(x, w, stride=2, padding=1)
        out["depthwise_" + s] = nn.conv2d(x, rng.standard_normal((16, 1, 3, 3)).astype(dt), padding=1, groups=16)
        out["pointwise_" + s] = nn.conv2d(x, rng.standard_normal((8, 16, 1, 1)).astype(dt))
        out["transposed_" + s] = nn.conv_transpose2d(x, rng.standard_normal((16, 8, 4, 4)).astype(dt), stride=2)
        y = nn.conv2d(x, w, padding=1)
        g = rng.standard_normal(y.shape).astype(dt)
        for i, a in enumerate(grad.conv2d_backward(g, x, w, None, padding=1)[:2]):
            out[f"backward{i}_" + s] = a
        out["depthwise_weight_" + s] = grad.conv2d_weight(x, (16, 1, 3, 3), x, padding=1, groups=16)
        # the phase-plane kernels, whichever plan the variant's calibration prefers: 8- and
        # 4-channel blocks (groups of 4), stride 2, channel blocks continued, the weight tile
        with _plan.force("dense"), tuning.override(dense_wblock_bytes=4096):
            out["dense_forced_" + s] = nn.conv2d(x, w, padding=1)
            out["dense_forced_s2_" + s] = nn.conv2d(x, w, stride=2, padding=1)
            out["dense_forced_grouped_" + s] = nn.conv2d(x, w[:16, :4], padding=1, groups=4)
            out["dense_forced_weight_" + s] = grad.conv2d_weight(x, w.shape, g, padding=1)
        # strided depthwise over per-thread phase planes (frames of every length class)
        with _plan.force("thin_phase"):
            out["thin_phase_" + s] = nn.conv2d(x, rng.standard_normal((16, 1, 3, 3)).astype(dt), stride=2,
                                               padding=1, groups=16)
            g2 = rng.standard_normal((2, 16, 10, 12)).astype(dt)
            out["thin_phase_weight_" + s] = grad.conv2d_weight(x, (16, 1, 3, 3), g2, stride=2, padding=1, groups=16)
            # its transposed form: the input gradient, output rows interleaved from two phases
            out["thin_phase_input_" + s] = grad.conv2d_input(x.shape, rng.standard_normal((16, 1, 3, 3)).astype(dt),
                                                             g2, stride=2, padding=1, groups=16)
        # the output-channel-vector forward with one vector of channels (rows run in pairs)
        # on rows of 11 positions (tiles of every variant's widths)
        with _plan.force("dense_oc"):
            out["dense_oc_narrow_" + s] = nn.conv2d(x[..., :11], w[:7], padding=1)
        # the position-vector weight kernel: 6 output channels (a last partial block of them),
        # rows of 23 positions (a masked last vector in every variant)
        with _plan.force("dense_pos"):
            out["dense_pos_weight_" + s] = grad.conv2d_weight(x, (6, 16, 3, 3), g[:, :6], padding=1)
    np.savez(sys.argv[1], **out)
""")


def test_dispatch_picks_the_best_variant_the_cpu_runs():
    assert _kernels.SUPPORTED, "no kernel variant this CPU runs"
    assert _kernels.SUPPORTED[0] == _kernels.VARIANT or os.environ.get("PYCONV_ISA")
    assert list(_kernels.SUPPORTED) == sorted(_kernels.SUPPORTED, key=_kernels.ORDER.index)
    from pyconv._kernels import direct
    assert direct.__name__.endswith("__" + _kernels.VARIANT)
    with pytest.raises(ValueError, match="variant="):
        _kernels.load_variant("sse9")


def test_show_config_names_the_variant(capsys):
    pyconv.show_config()
    out = capsys.readouterr().out
    assert f"simd variant: {_kernels.VARIANT}" in out
    assert "compiler:" in out and "openmp:" in out
    cfg = pyconv._config.config()
    assert cfg["simd variant"] == _kernels.VARIANT


def test_unknown_isa_request_is_refused():
    out = subprocess.run([sys.executable, "-c", "import pyconv"], env=dict(os.environ, PYCONV_ISA="sse9"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "PYCONV_ISA='sse9'" in out.stderr


@pytest.mark.skipif(len(_kernels.SUPPORTED) < 2, reason="only one kernel variant is built or runs here")
def test_every_variant_agrees(tmp_path):
    results = {}
    for variant in _kernels.SUPPORTED:
        path = tmp_path / f"{variant}.npz"
        run = subprocess.run([sys.executable, "-c", CASES, str(path), variant],
                             env=dict(os.environ, PYCONV_ISA=variant), capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        with np.load(path) as f:
            results[variant] = {k: f[k] for k in f.files}
    base = results[_kernels.SUPPORTED[-1]]
    for variant, res in results.items():
        assert res.keys() == base.keys()
        for k, v in res.items():
            ref = base[k]
            assert v.dtype == ref.dtype and v.shape == ref.shape, (variant, k)
            # float32: rtol ~1e-5 of the largest value (sums of up to 144 products,
            # FMA or not); float64: 1e-12
            tol = 2e-5 if v.dtype == np.float32 else 1e-12
            scale = float(np.max(np.abs(ref))) if ref.size else 1.0
            assert np.max(np.abs(v.astype(np.float64) - ref)) <= tol * scale, (variant, k)


@pytest.mark.skipif(not _kernels.BUILT.get("baseline") or not __import__("shutil").which("objdump"),
                    reason="needs the baseline variant and objdump")
def test_baseline_variant_and_glue_use_no_avx_registers():
    # what makes one build run on any x86-64 CPU: the code loaded before the CPU check
    # (the glue module) and the fallback variant never touch ymm/zmm registers
    import glob
    here = os.path.dirname(_kernels.__file__)
    files = glob.glob(os.path.join(here, "*__baseline.*")) + glob.glob(os.path.join(here, "_pyconv_omp.*"))
    files = [f for f in files if f.endswith((".so", ".pyd"))]
    assert files
    for f in files:
        dis = subprocess.run(["objdump", "-d", f], capture_output=True, text=True, check=True).stdout
        assert "%ymm" not in dis and "%zmm" not in dis, f
