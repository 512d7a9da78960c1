"""Calibration (pyconv.tune, pyconv/_engine/calibrate.py): measured on this machine,
cached per machine and version, used by the planners, off with PYCONV_TUNING=off.

No timing is asserted: only that the measurement yields sane values, that they are
stored, read back and used, and that results stay correct whichever algorithm wins.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import calibrate, tuning
from pyconv._engine import plan as _plan


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PYCONV_TUNING", raising=False)
    monkeypatch.setitem(tuning._machine, "tuning", None)
    yield tmp_path
    _plan.clear_caches()


def test_tune_measures_stores_and_installs(cache):
    path = pyconv.tune()
    assert os.path.dirname(path) == str(cache) and os.path.exists(path)
    with open(path) as f:
        data = json.load(f)
    assert set(data["values"]) == set(calibrate.MEASURED)
    v = data["values"]
    assert v["dense_min_positions"] >= 1 and v["weight_dense_min_positions"] >= 1
    assert v["phases_min_positions"] >= 1
    assert all(v[k] in (0, 288, 576, 1152, 2304) for k in ("dense_max_k", "weight_dense_max_k", "phases_max_k"))
    assert 0 < v["direct_ns_f4"] < 100 and 0 < v["direct_ns_f8"] < 100
    assert 0 < v["fft_ns_small"] <= v["fft_ns_large"] < 1000
    t = tuning.active()
    assert t is not tuning.DEFAULT
    assert all(getattr(t, k) == type(getattr(tuning.DEFAULT, k))(v[k]) for k in calibrate.MEASURED)
    assert calibrate.state() == "cached"


def _small_map_call():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    return x, w


@pytest.mark.parametrize("threshold, algorithm", [(10**9, "gemm"), (0, "dense")])
def test_cached_values_drive_the_choice(cache, threshold, algorithm):
    values = dict(calibrate._from_values({}).__dict__)
    values = {k: values[k] for k in calibrate.MEASURED}
    values["dense_min_positions"] = threshold
    calibrate._save(calibrate.cache_path(), values, {})
    x, w = _small_map_call()
    plan = pyconv.explain(nn.conv2d, x, w, stride=2, padding=1)
    assert plan.algorithm == algorithm
    with _plan.force("dense"):
        want = nn.conv2d(x, w, stride=2, padding=1)
    got = nn.conv2d(x, w, stride=2, padding=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)       # float32, 72 products
    np.testing.assert_array_equal(got, nn.conv2d(x, w, stride=2, padding=1))   # same call, same bits


@pytest.mark.parametrize("field, value, op, algorithm", [
    ("dense_max_k", 0, "forward", "gemm"), ("dense_max_k", 144, "forward", "dense"),
    ("weight_dense_max_k", 143, "weight", "gemm"), ("weight_dense_max_k", 10**9, "weight", "dense"),
    ("phases_min_positions", 65, "input", "gemm"), ("phases_min_positions", 64, "input", "phases"),
    ("phases_max_k", 143, "input", "gemm"), ("phases_max_k", 144, "input", "phases")])
def test_channel_and_phase_crossovers_drive_the_choice(cache, field, value, op, algorithm):
    # 16 -> 16 channels, 3x3 (K = 144), stride 2: 8x8 outputs, 64 input positions per phase
    values = dict(calibrate._from_values({}).__dict__)
    values = {k: values[k] for k in calibrate.MEASURED}
    values[field] = value
    calibrate._save(calibrate.cache_path(), values, {})
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 16, 16)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    go = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    kw = dict(stride=2, padding=1)
    call = {"forward": (nn.conv2d, x, w), "weight": (grad.conv2d_weight, x, w.shape, go),
            "input": (grad.conv2d_input, x.shape, w, go)}[op]
    assert pyconv.explain(*call, **kw).leaf().algorithm == algorithm
    got = call[0](*call[1:], **kw)
    with _plan.force("gemm"):
        want = call[0](*call[1:], **kw)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)       # float32, <= 9 * 16 * 128 products


def test_tuning_off_keeps_the_defaults(cache, monkeypatch):
    values = {k: getattr(tuning.DEFAULT, k) for k in calibrate.MEASURED}
    values["dense_min_positions"] = 10**9
    calibrate._save(calibrate.cache_path(), values, {})
    monkeypatch.setenv("PYCONV_TUNING", "off")
    assert calibrate.machine_tuning() is tuning.DEFAULT
    assert calibrate.state() == "off"


def test_first_use_calibrates_once_and_later_processes_read_the_cache(tmp_path):
    env = dict(os.environ, PYCONV_CACHE_DIR=str(tmp_path))
    env.pop("PYCONV_TUNING", None)
    code = textwrap.dedent("""
        import numpy as np, pyconv
        from pyconv import grad, nn
        from pyconv._engine import calibrate
        x = np.ones((2, 4, 8, 8), np.float32); w = np.ones((4, 4, 3, 3), np.float32)
        nn.conv2d(x, w, padding=1)
        print(calibrate.state(), calibrate.cache_path())
    """)
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    state, path = first.stdout.split()
    assert state == "cached" and os.path.exists(path)
    mtime = os.path.getmtime(path)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert os.path.getmtime(path) == mtime            # read, not measured again


def test_a_damaged_cache_is_measured_again(cache):
    path = calibrate.cache_path()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("{not json")
    t = calibrate.machine_tuning()
    assert t is not tuning.DEFAULT
    with open(path) as f:
        assert set(json.load(f)["values"]) == set(calibrate.MEASURED)


def test_a_cache_missing_a_crossover_is_measured_again(cache):
    # a file written before a crossover was calibrated: every field measured anew
    calibrate._save(calibrate.cache_path(), {"dense_min_positions": 7}, {})
    t = calibrate.machine_tuning()
    with open(calibrate.cache_path()) as f:
        values = json.load(f)["values"]
    assert set(values) == set(calibrate.MEASURED)
    assert all(getattr(t, k) == type(getattr(tuning.DEFAULT, k))(values[k]) for k in calibrate.MEASURED)


def test_cache_key_names_the_machine_and_version(cache):
    path = calibrate.cache_path()
    assert os.path.basename(path).startswith(f"tuning-{pyconv.__version__}-")
    assert calibrate.machine_key() == calibrate.machine_key()
    assert "tuning:" in "\n".join(f"{k}:" for k in pyconv._config.config())
