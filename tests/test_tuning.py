"""Calibration (pyconv.tune, pyconv/_engine/calibrate.py): measured on this machine,
cached per machine and version, used by the planners, off with PYCONV_TUNING=off.

No timing is asserted: only that the measurement yields sane values, that they are
stored, read back and used, and that results stay correct whichever algorithm wins.
"""
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyconv
from pyconv import _threads, grad, nn
from pyconv._engine import calibrate, conv, tuning
from pyconv._engine import plan as _plan


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PYCONV_TUNING", raising=False)
    monkeypatch.setitem(tuning._machine, "tuning", None)
    # the calibrated values decide every layer here: none is timed (the timed choice of
    # large layers is tests/test_nn_timed.py's)
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", math.inf)
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
    # (1 << 62: the direct kernel still won at the largest K measured, no ceiling found)
    assert v["dense_max_k"] in (0, 288, 576, 1152, 1 << 62) and v["dense_oc_max_k"] in (0, 288, 576, 1152, 1 << 62)
    assert v["phases_max_k"] in (0, 128, 256, 1 << 62)      # 3x3 stride 2: 2x2 taps in the largest phase
    assert v["weight_dense_max_acc_bytes"] in (0,) + tuple(36 * c * c for c in (32, 64, 128, 256))
    assert v["thin_max_cg_og"] in (0, 1, 4, 16, 64) and v["thin_s1_max_cg_og"] in (0, 1, 4, 16, 64)
    assert v["thin_reg_min_ow"] in (12, 24, 48, 1 << 62)
    assert v["pointwise_chunk"] in (128, 256, 512)
    assert v["dense_wblock_bytes"] in (4096, 8192, 16384)
    assert v["dense_wblock_bytes_3d"] in (8192, 16384, 32768)
    assert v["dense_oc_wblock_bytes"] in (10 << 10, 20 << 10, 40 << 10) and v["weight_tile"] in (512, 1024, 2048)
    pts = data["measurements"].get("fft_points", [])
    assert v["fft_workers_min_points"] in set(pts) | {2 * max(pts, default=0), tuning.DEFAULT.fft_workers_min_points}
    assert all(isinstance(v[k], bool) for k in ("pointwise_direct", "pointwise_direct_expand", "pointwise_direct_f8",
                                                "pointwise_direct_expand_f8", "pointwise_matmul",
                                                "weight_matmul_tall", "weight_matmul_tall_f8", "input_matmul",
                                                "input_matmul_expand", "input_matmul_f8", "input_matmul_expand_f8", "dense_oc",
                                                "dense_oc_f8"))
    assert 0 < v["direct_ns_f4"] < 100 and 0 < v["direct_ns_f8"] < 100
    assert 0 < v["fft_ns_small"] <= v["fft_ns_large"] < 1000
    assert 0 < v["direct_ns_1d_f4"] < 100 and 0 < v["direct_ns_1d_f8"] < 100
    assert 0 <= v["direct_border_ns"] < 1e4
    assert 0 < v["direct_pad_ns"] < 1e3
    assert 0 <= v["direct_pad_call_ns"] < 1e6
    assert 0 < v["fft_1d_factor"] < 1e3 and 0 < v["fft_oa_factor"] < 1e3
    assert 0.0 <= v["direct_thread_gain"] <= 1.0 and 0.0 <= v["fft_thread_gain"] <= 1.0
    assert 0 < v["fft_single_factor"] < 1e3 and 0 < v["fft_1d_single_factor"] < 1e3
    assert 0 < v["direct_merged_factor"] < 1e3
    meas = data["measurements"]
    nt = _threads._default_threads()        # (the count the calibration measures at)
    if nt > 1:
        assert v["grain"] == calibrate.grain_from(meas["grain_works"], [meas["grain_dense_oc_s"],
                                                                        meas["grain_thin_reg_s"]], nt)
    else:
        assert v["grain"] == tuning.DEFAULT.grain
    t = tuning.active()
    assert t is not tuning.DEFAULT
    assert all(getattr(t, k) == type(getattr(tuning.DEFAULT, k))(v[k]) for k in calibrate.MEASURED)
    assert calibrate.state() == ("cached, busy" if data["busy"] else "cached")


def _measured_defaults():
    """The calibrated fields at their built-in defaults, to change and save as a machine's cache."""
    return {k: getattr(tuning.DEFAULT, k) for k in calibrate.MEASURED}


def _small_map_call():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    return x, w


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("threshold, algorithm", [(10**9, "gemm"), (0, "dense")])
def test_cached_values_drive_the_choice(cache, threshold, algorithm, stride):
    # the positions crossover of the layer's stride class decides; the other one does not
    values = _measured_defaults()
    mine, other = ("dense_min_positions", "dense_min_positions_strided")[::1 if stride == 1 else -1]
    values[mine], values[other] = threshold, 10**9 - threshold
    calibrate._save(calibrate.cache_path(), values, {})
    x, w = _small_map_call()
    plan = pyconv.explain(nn.conv2d, x, w, stride=stride, padding=1)
    assert plan.algorithm == algorithm
    with _plan.force("dense"):
        want = nn.conv2d(x, w, stride=stride, padding=1)
    got = nn.conv2d(x, w, stride=stride, padding=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)       # float32, 72 products
    np.testing.assert_array_equal(got, nn.conv2d(x, w, stride=stride, padding=1))   # same call, same bits


@pytest.mark.parametrize("kernel, op", [("dense_oc", "forward"), ("weight_dense", "weight")])
def test_strided_positions_crossovers(cache, kernel, op):
    # 32 -> 32 3x3 on 6x6 maps: 36 outputs at stride 1, 9 at stride 2 (the digits CNN's
    # second layer); each stride class reads its own crossover
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 32, 6, 6)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    direct = {"forward": "dense_oc", "weight": "dense"}[op]
    for s1, s2, want1, want2 in ((9, 10, True, False), (37, 9, False, True)):
        values = _measured_defaults()
        values[f"{kernel}_min_positions"], values[f"{kernel}_min_positions_strided"] = s1, s2
        calibrate._save(calibrate.cache_path(), values, {})
        tuning._machine["tuning"] = None
        _plan.clear_caches()
        for stride, want in ((1, want1), (2, want2)):
            go = rng.standard_normal((4, 32, 6 // stride, 6 // stride)).astype(np.float32)
            call = {"forward": (nn.conv2d, x, w), "weight": (grad.conv2d_weight, x, w.shape, go)}[op]
            alg = pyconv.explain(*call, stride=stride, padding=1).leaf().algorithm
            assert (alg == direct) == want, (s1, s2, stride, alg)


@pytest.mark.parametrize("field, value, op, algorithm", [
    ("dense_max_k", 0, "forward", "gemm"), ("dense_max_k", 144, "forward", "dense"),
    ("weight_dense_max_acc_bytes", 144 * 16 * 4 - 1, "weight", "gemm"),
    ("weight_dense_max_acc_bytes", 144 * 16 * 4, "weight", "dense"),
    ("phases_min_positions", 65, "input", "gemm"), ("phases_min_positions", 64, "input", "phases"),
    ("phases_max_k", 63, "input", "gemm"), ("phases_max_k", 64, "input", "phases")])
def test_channel_and_phase_crossovers_drive_the_choice(cache, field, value, op, algorithm):
    # 16 -> 16 channels, 3x3 (K = 144; 16 x 2x2 taps = 64 in the largest output phase of
    # the input gradient), stride 2: 8x8 outputs, 64 input positions per phase
    values = _measured_defaults()
    values["dense_min_positions_strided"] = values["weight_dense_min_positions_strided"] = 64
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("one", [False, True])
def test_one_vector_of_outputs_follows_its_calibrated_flag(cache, dtype, one):
    # groups of exactly one vector of output channels take the output-channel kernel only
    # where the calibration found it faster; half a vector never does, two always do
    flag = "dense_oc_one" if dtype == np.float32 else "dense_oc_one_f8"
    lanes = 16 if dtype == np.float32 else 8
    values = _measured_defaults()
    values.update(dense_oc=True, dense_oc_f8=True, dense_min_positions=0, dense_oc_min_positions=0)
    values[flag] = one
    calibrate._save(calibrate.cache_path(), values, {})
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, lanes, 12, 12)).astype(dtype)
    for og, want in ((lanes // 2, False), (lanes, one), (2 * lanes, True)):
        w = rng.standard_normal((og, lanes, 3, 3)).astype(dtype)
        alg = pyconv.explain(nn.conv2d, x, w, padding=1).leaf().algorithm
        assert (alg == "dense_oc") == want, (og, alg)
        with _plan.force("gemm"):
            ref = nn.conv2d(x, w, padding=1)
        tol = 1e-4 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(nn.conv2d(x, w, padding=1), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("one2, one3", [(False, True), (True, False)])
def test_one_vector_of_outputs_in_3d_follows_its_own_flag(cache, dtype, one2, one3):
    # kernels of depth > 1 follow the 3-D flag (calibrated apart: the choice differs from
    # the 2-D one), a 3-D layer with a kernel of depth 1 and 2-D layers the 2-D one
    sfx = "" if dtype == np.float32 else "_f8"
    lanes = 16 if dtype == np.float32 else 8
    values = _measured_defaults()
    values.update(dense_oc=True, dense_oc_f8=True, dense_min_positions=0, dense_oc_min_positions=0)
    values["dense_oc_one" + sfx], values["dense_oc_one_3d" + sfx] = one2, one3
    calibrate._save(calibrate.cache_path(), values, {})
    rng = np.random.default_rng(10)
    x3 = rng.standard_normal((1, lanes, 6, 7, 8)).astype(dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for fn, x, kshape, want in ((nn.conv3d, x3, (3, 3, 3), one3), (nn.conv3d, x3, (1, 3, 3), one2),
                                (nn.conv2d, x3[:, :, 0], (3, 3), one2)):
        w = rng.standard_normal((lanes, lanes) + kshape).astype(dtype)
        alg = pyconv.explain(fn, x, w, padding=1).leaf().algorithm
        assert (alg == "dense_oc") == want, (kshape, alg)
        with _plan.force("gemm"):
            ref = fn(x, w, padding=1)
        np.testing.assert_allclose(fn(x, w, padding=1), ref, rtol=tol, atol=tol)


def test_tuning_off_keeps_the_defaults(cache, monkeypatch):
    values = _measured_defaults()
    values["dense_min_positions"] = 10**9
    calibrate._save(calibrate.cache_path(), values, {})
    monkeypatch.setenv("PYCONV_TUNING", "off")
    assert calibrate.machine_tuning() is tuning.DEFAULT
    assert calibrate.state() == "off"


def test_first_use_calibrates_once_and_later_processes_read_the_cache(tmp_path):
    # (load awareness off: a first calibration that found the machine busy would be
    # measured again by the second process if it found it quiet)
    env = dict(os.environ, PYCONV_CACHE_DIR=str(tmp_path), PYCONV_LOAD_AWARE="0")
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


def test_a_calibration_on_a_busy_machine_is_flagged_and_measured_again_when_quiet(cache, monkeypatch):
    # two busy loops in other processes (this machine's cores or more) while pyconv.tune()
    # measures: it warns, and the file says so
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(2, os.cpu_count() or 1))]
    try:
        import time
        time.sleep(0.3)
        with pytest.warns(RuntimeWarning, match="cores busy"):
            path = pyconv.tune()
    finally:
        for p in spin:
            p.kill()
            p.wait()
    with open(path) as f:
        data = json.load(f)
    assert data["busy"] and data["retries"] == 0
    assert data["measurements"]["others_busy_cores_mean"] > calibrate.BUSY_CORES
    assert calibrate.state() == "cached, busy"

    calls = []
    measure = calibrate.measure

    def counted():
        calls.append(1)
        return measure()
    monkeypatch.setattr(calibrate, "measure", counted)
    # a first use that finds the machine busy keeps the busy calibration
    monkeypatch.setattr(calibrate, "_quiet_now", lambda: False)
    got, want = calibrate.machine_tuning(), calibrate._from_values(data["values"])
    assert all(getattr(got, k) == getattr(want, k) for k in calibrate.MEASURED) and not calls
    # one that finds it quiet measures again, and counts the retry
    monkeypatch.setattr(calibrate, "_quiet_now", lambda: True)
    calibrate.machine_tuning()
    with open(path) as f:
        again = json.load(f)
    assert calls == [1] and again["retries"] == 1
    assert again["busy"] == (again["measurements"]["others_busy_cores_mean"] > calibrate.BUSY_CORES)
    # retries stop after BUSY_RETRIES; a quiet calibration is never measured again
    for busy, retries, measured in ((True, calibrate.BUSY_RETRIES, False), (False, 0, False),
                                    (True, calibrate.BUSY_RETRIES - 1, True)):
        calls.clear()
        data.update(busy=busy, retries=retries)
        with open(path, "w") as f:
            json.dump(data, f)
        calibrate.machine_tuning()
        assert calls == ([1] if measured else [])


def test_a_calibration_started_by_explain_times_real_calls(cache):
    # explain dry-runs the call; the first-use calibration it triggers must not: it would
    # time kernels that never run and cache that, and its plans would join the explanation
    x = np.ones((2, 4, 8, 8), np.float32)
    w = np.ones((4, 4, 3, 3), np.float32)
    text = str(pyconv.explain(nn.conv2d, x, w, padding=1))
    assert calibrate.state() in ("cached", "cached, busy")
    assert text.count("forward") == 1 and "weight_grad" not in text and "signal" not in text
    with open(calibrate.cache_path()) as f:
        m = json.load(f)["measurements"]
    # 8x32x24x24 * 32x32x3x3 is 2x10.6 M multiply-adds: far from a no-op's microseconds
    assert min(m["forward_dense_s"][-1], m["forward_gemm_s"][-1]) > 2e-4


@pytest.mark.parametrize("shape, kshape", [((64, 64), (17, 17)), ((3, 200, 90), (1, 9, 9)), ((40000,), (301,))])
def test_fft_workers_do_not_change_the_result(shape, kshape):
    # small transforms stay on the calling thread (Tuning.fft_workers_min_points); either
    # way the transforms are the same, bit for bit, and equal scipy's within FFT rounding
    import scipy.signal
    rng = np.random.default_rng(5)
    a, k = rng.standard_normal(shape), rng.standard_normal(kshape)
    runs = []
    with pyconv.threads(2):
        for limit in (0, 1 << 62):
            with tuning.override(fft_workers_min_points=limit):
                runs.append((signal_fft(a, k), pyconv.signal.oaconvolve(a, k, "same")))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    ref = scipy.signal.fftconvolve(a, k, "same")
    np.testing.assert_allclose(runs[0][0], ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def signal_fft(a, k):
    return pyconv.signal.fftconvolve(a, k, "same")


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


def test_cache_key_follows_the_default_thread_count(cache, monkeypatch):
    # choices timed at the default thread count: a dask worker (OMP_NUM_THREADS=1, set by its
    # nanny) and its 2-thread client keep a calibration each
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    one = calibrate.machine_key(), calibrate.cache_path()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    two = calibrate.machine_key(), calibrate.cache_path()
    assert one[0] != two[0] and one[1] != two[1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert (calibrate.machine_key(), calibrate.cache_path()) == one


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_first_touch_is_measured_with_a_team_at_one_default_thread(monkeypatch):
    # the first-touch choice serves calls with more threads than the default: measured with
    # a team of every available CPU even where the default is one thread
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    values, m = {}, {}
    calibrate._measure_first_touch(values, m)
    assert len(m["first_touch_s"]) == 2 and all(t > 0 for t in m["first_touch_s"])
    assert isinstance(values["first_touch_serial"], bool)


def test_cache_key_follows_the_kernel_build(cache, monkeypatch):
    # the same version on the same machine with other compiled kernels (or engine code
    # reading the values another way) is measured again
    digest = calibrate._code_digest()
    assert len(digest) == 16 and digest == calibrate._code_digest()
    key, path = calibrate.machine_key(), calibrate.cache_path()
    monkeypatch.setattr(calibrate, "_code_digest", lambda: "rebuilt-kernels")
    assert calibrate.machine_key() != key and calibrate.cache_path() != path


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("cout, cin", [(6, 21), (21, 6), (8, 8)])
def test_pointwise_weight_gradient_orientations(dtype, tol, cout, cin):
    # The 1x1 weight gradient as dW = sum_n dy[n] x[n]^T or as the transpose of
    # sum_n x[n] dy[n]^T (Tuning.weight_matmul_tall, taken only when C_in > C_out): both
    # equal the float64 definition, on a Fortran-ordered input and a strided grad_output.
    rng = np.random.default_rng(cout * 100 + cin)
    x = np.asfortranarray(rng.standard_normal((3, cin, 5, 7)).astype(dtype))
    go = rng.standard_normal((3, cout, 5, 14)).astype(dtype)[..., ::2]
    want = np.einsum("nohw,nchw->oc", go.astype(np.float64), x.astype(np.float64))[:, :, None, None]
    scale = np.abs(want).max()
    for tall in (False, True):
        with tuning.override(weight_matmul_tall=tall, weight_matmul_tall_f8=tall, weight_panel=False,
                             weight_panel_f8=False):
            got = pyconv.grad.conv2d_weight(x, (cout, cin, 1, 1), go)
            plan = pyconv.explain(pyconv.grad.conv2d_weight, x, (cout, cin, 1, 1), go)
        assert plan.algorithm == "matmul" and dict(plan.tiles).get("transposed", 0) == int(tall and cin > cout)
        assert got.dtype == dtype and got.shape == (cout, cin, 1, 1) and got.flags.c_contiguous
        assert np.abs(got - want).max() <= tol * scale


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("cout, cin", [(6, 21), (21, 6)])
def test_pointwise_input_gradient_follows_its_calibrated_choice(dtype, tol, cout, cin):
    # The 1x1 input gradient runs one BLAS product per sample or the forward's 1x1 plan with
    # the channels swapped, as the Tuning field of its dtype and orientation says (the other
    # orientation's field set the other way must not count); both equal the float64
    # definition, on a strided grad_output.
    rng = np.random.default_rng(cout * 100 + cin)
    w = rng.standard_normal((cout, cin, 1, 1)).astype(dtype)
    go = rng.standard_normal((3, cout, 5, 14)).astype(dtype)[..., ::2]
    want = np.einsum("oc,nohw->nchw", w[:, :, 0, 0].astype(np.float64), go.astype(np.float64))
    scale = np.abs(want).max()
    field = "input_matmul" + ("" if cout < cin else "_expand") + ("_f8" if dtype == np.float64 else "")
    others = [f for f in ("input_matmul", "input_matmul_expand", "input_matmul_f8", "input_matmul_expand_f8")
              if f != field]
    for matmul in (False, True):
        with tuning.override(**{field: matmul}, **{f: not matmul for f in others}):
            got = pyconv.grad.conv2d_input((3, cin, 5, 7), w, go)
            plan = pyconv.explain(pyconv.grad.conv2d_input, (3, cin, 5, 7), w, go)
        assert plan.algorithm == ("matmul" if matmul else "flip_conv")
        assert got.dtype == dtype and got.shape == (3, cin, 5, 7) and got.flags.c_contiguous
        assert np.abs(got - want).max() <= tol * scale


def test_pointwise_flags_take_the_fastest_reachable_algorithm():
    # whatever the calibration's times, each 1x1 layer kind runs the fastest of the
    # algorithms its plan can reach (the panel, the in-place kernel, the BLAS path float32
    # chose); a path it cannot reach (MATMUL when GEMM was chosen) decides nothing
    from pyconv._engine.calibrate import pointwise_flags
    rng = np.random.default_rng(7)
    for _ in range(300):
        pw = {(4, r): list(rng.uniform(0.5, 1.5, 4)) for r in (True, False)}
        pw.update({(8, r): list(rng.uniform(0.5, 1.5, 3)) for r in (True, False)})
        matmul = bool(rng.integers(2))
        flags = pointwise_flags(pw, matmul)
        for (isz, reduces), ts in pw.items():
            suffix = ("" if reduces else "_expand") + ("_f8" if isz == 8 else "")
            blas = ts[(1 if matmul else 2) if isz == 4 else 1]
            if flags["pointwise_panel" + suffix]:
                ran = ts[-1]
            elif flags["pointwise_direct" + suffix]:
                ran = ts[0]
            else:
                ran = blas
            assert ran == min(ts[0], blas, ts[-1]), (isz, reduces, ts, matmul, flags)


# --------------------------------------------------------------------------- signal cost model

# The signal constants as calibrated on a 2-core Intel Xeon (AVX-512, 2026-12-02): the
# choices below are those the measurements there called for (each by >= 1.3x).
XEON = dict(direct_ns_f4=0.047, direct_ns_f8=0.083, direct_ns_1d_f4=0.039, direct_ns_1d_f8=0.076,
            direct_border_ns=3.1, fft_ns_small=0.54, fft_ns_large=0.68, fft_1d_factor=1.2,
            fft_oa_factor=1.56, direct_tap_ns=2.0, direct_overhead_s=5e-6, fft_overhead_s=40e-6)


def _pick(s1, s2, dtype, mode="same", nt=2, **values):
    from pyconv._engine import signal_plan as sp
    a = np.broadcast_to(np.zeros((), dtype), s1)        # the model reads shapes and dtypes only
    b = np.broadcast_to(np.zeros((), dtype), s2)
    with tuning.override(**{**XEON, **values}):
        return sp.choose_model(a, b, mode, nt)


@pytest.mark.parametrize("s1, s2, dtype, mode, want", [
    # 1-D: the long-row kernel beats overlap-add up to a few hundred taps
    ((65536,), (257,), np.float32, "same", "direct"),      # direct 0.64 ms vs OA 0.78 (1 thread)
    ((65536,), (257,), np.float64, "same", "direct"),      # 1.23 vs 1.39
    ((100000,), (65,), np.float64, "full", "direct"),
    ((1000000,), (17,), np.float32, "valid", "direct"),
    ((100000,), (1025,), np.float64, "same", "fft"),       # direct 11.6 vs OA 3.2
    ((1000000,), (1025,), np.float32, "same", "fft"),
    ((1, 65536), (1, 257), np.float32, "same", "direct"),  # a row vector runs the 1-D kernel
    # 2-D: issue 10's 512^2 images, 9x9..17x17 direct, 31x31 FFT
    ((512, 512), (9, 9), np.float32, "same", "direct"),
    ((512, 512), (17, 17), np.float32, "same", "direct"),
    ((512, 512), (31, 31), np.float32, "same", "fft"),
    ((2048, 2048), (17, 17), np.float64, "same", "direct"),
    ((256, 256), (31, 31), np.float64, "same", "fft"),
    # 3-D: short merged rows pay their borders
    ((128, 128, 128), (5, 5, 5), np.float32, "same", "direct"),
    ((128, 128, 128), (9, 9, 9), np.float64, "same", "fft"),
    ((32, 32, 32), (9, 9, 9), np.float32, "same", "fft"),
    ((64, 64, 64), (3, 3, 3), np.float64, "same", "direct"),
])
def test_signal_cost_model_picks(s1, s2, dtype, mode, want):
    assert _pick(s1, s2, dtype, mode) == want
    assert _pick(s1, s2, dtype, mode) == want        # a pure function of shapes, dtypes, tuning


def test_signal_thread_gains_weigh_only_beyond_one_thread():
    # What a second thread adds, direct kernel and FFT workers apart: with the default
    # gains (1.0 and 0.6) 128^3 * 7^3 float32 goes to the FFT at 2 threads; with the gains
    # measured on the Xeon (direct 84 -> 55 ms: +0.53, FFT 79 -> 67 ms: +0.18) to direct.
    from pyconv._engine import signal_plan as sp
    vol, k7 = (128, 128, 128), (7, 7, 7)
    measured = dict(direct_thread_gain=0.53, fft_thread_gain=0.18)
    assert _pick(vol, k7, np.float32) == "fft"
    assert _pick(vol, k7, np.float32, **measured) == "direct"
    for gains in ({}, measured, dict(direct_thread_gain=0.0, fft_thread_gain=1.0)):
        assert _pick(vol, k7, np.float32, nt=1, **gains) == "fft"      # 1 thread: no gain applies
    with tuning.override(**XEON):
        one = sp.direct_cost(vol, k7, "same", "f4", 1) - XEON["direct_overhead_s"]
        for gain in (0.0, 0.53, 1.0):
            with tuning.override(direct_thread_gain=gain):
                two = sp.direct_cost(vol, k7, "same", "f4", 2) - XEON["direct_overhead_s"]
            assert two == pytest.approx(one / (1.0 + gain))
        f1 = sp.fft_cost(vol, k7, False, True, 1) - XEON["fft_overhead_s"]
        with tuning.override(fft_thread_gain=0.18):
            f2 = sp.fft_cost(vol, k7, False, True, 2) - XEON["fft_overhead_s"]
        assert f2 == pytest.approx(f1 / 1.18)


def test_signal_1d_direct_constant_drives_only_1d():
    # the 1-D figure decides 1-D calls (row vectors included) and nothing else
    assert _pick((65536,), (257,), np.float32, direct_ns_1d_f4=0.2) == "fft"
    assert _pick((1, 65536), (1, 257), np.float32, direct_ns_1d_f4=0.2) == "fft"
    assert _pick((65536,), (257,), np.float32, direct_ns_1d_f4=0.02) == "direct"
    for ns in (0.001, 10.0):
        assert _pick((512, 512), (31, 31), np.float32, direct_ns_1d_f4=ns) == "fft"
        assert _pick((512, 512), (9, 9), np.float32, direct_ns_1d_f4=ns) == "direct"


def test_signal_fft_factors_and_border_cost():
    from pyconv._engine import signal_plan as sp
    with tuning.override(**XEON):
        plain, oa = sp.fft_costs((65536,), (257,), False, False, 1)
        plain2d = sp.fft_costs((512, 512), (9, 9), False, False, 1)[0]
        merged = sp.direct_cost((64, 64, 64), (7, 7, 7), "same", "f4", 1)
        long_rows = sp.direct_cost((64, 64, 64), (7, 7, 7), "full", "f4", 1)
    with tuning.override(**{**XEON, "fft_oa_factor": 2 * XEON["fft_oa_factor"],
                            "fft_1d_factor": 2 * XEON["fft_1d_factor"], "direct_border_ns": 0.0}):
        plain_b, oa_b = sp.fft_costs((65536,), (257,), False, False, 1)
        assert sp.fft_costs((512, 512), (9, 9), False, False, 1)[0] == plain2d
        assert sp.direct_cost((64, 64, 64), (7, 7, 7), "same", "f4", 1) < merged
        assert sp.direct_cost((64, 64, 64), (7, 7, 7), "full", "f4", 1) == long_rows
    over = XEON["fft_overhead_s"]
    assert (plain_b - over) == pytest.approx(2 * (plain - over))
    assert oa_b > 1.9 * (oa - over)
    # overlap-add's factor moves the 1-D choice: one 4096-tap kernel on 1e6 samples
    assert _pick((1000000,), (4097,), np.float64) == "fft"
    assert _pick((1000000,), (4097,), np.float64, fft_oa_factor=1e3, fft_1d_factor=1e3) == "direct"


def test_overlap_add_threads_speed_up_only_its_transforms_and_only_with_workers():
    # the overlap-add's transforms run on scipy.fft's workers, from fft_workers_min_points
    # on; its padding, products and overlap adds (the fft_oa_factor part) on one thread
    from pyconv._engine import signal_plan as sp
    shapes = ((1000000,), (1001,))
    with tuning.override(**{**XEON, "fft_thread_gain": 1.0, "fft_workers_min_points": 1 << 40}):
        assert sp.fft_costs(*shapes, False, False, 2)[1] == sp.fft_costs(*shapes, False, False, 1)[1]
    for factor in (1.0, 1.5, 3.0):
        with tuning.override(**{**XEON, "fft_thread_gain": 1.0, "fft_workers_min_points": 0,
                                "fft_oa_factor": factor, "fft_overhead_s": 0.0}):
            one, two = sp.fft_costs(*shapes, False, False, 1)[1], sp.fft_costs(*shapes, False, False, 2)[1]
            blocks = one - two          # what the second worker saves: half the transforms' time
            assert blocks > 0
            # (less the blocks' set-up, 0.1 us each: ~20 us here)
            assert (one - 2 * blocks) == pytest.approx(one * (1 - 1 / factor), rel=0.05, abs=5e-5)


@pytest.mark.parametrize("field, shape, kshape, value", [
    ("direct_ns_1d_f4", (16384,), (257,), 0.037),
    ("direct_ns_f8", (32, 1024), (9, 9), 0.09),
    ("direct_border_ns", (32, 32, 32), (5, 5, 5), 4.5),
])
def test_calibration_solves_the_model_for_a_timing(field, shape, kshape, value):
    # calibrate._linear inverts the (linear) model: the time the model gives for a value
    # yields that value back
    from pyconv._engine import signal_plan as sp
    ck = "f4" if field.endswith(("f4", "border_ns")) else "f8"

    def cost():
        return sp.direct_cost(shape, kshape, "same", ck, 1)

    with tuning.override(**{**XEON, field: value}):
        t = cost()
    assert calibrate._linear(t, cost, dict(XEON), field, 0.0) == pytest.approx(value, rel=1e-9)


def test_calibrated_signal_constants_reproduce_the_timings_they_were_solved_from():
    # The signal model's constants are solved from real timings, each of the plan the
    # defaults pick (no padded rows).  Priced by the model for those plans, the solved
    # constants must give back the times measured -- the 'same' volume's border redo
    # included: solved with the padded copy in the model (min(redo, copy), linear in
    # direct_border_ns only up to the copy's price), it came out 7-10x too large and
    # sent every 2-D image to the padded copy.
    from pyconv._engine import signal_plan as sp
    from pyconv._threads import threads
    values, m = {}, {}
    with _plan.live(), threads(1), tuning.override():
        calibrate._measure_signal(calibrate._Pool(), values, m)
    fields = {k: v for k, v in values.items() if k in calibrate.SIGNAL_FIELDS}
    with tuning.override(**{**fields, "direct_pad_ns": tuning.DEFAULT.direct_pad_ns}):
        for shape, kshape, mode, dt in [((32, 32, 32), (5, 5, 5), "same", "float32"),
                                        ((32, 1024), (9, 9), "full", "float64"),
                                        ((38, 38, 134), (7, 7, 7), "valid", "float32")]:
            t = m[f"direct_{dt}_{'x'.join(map(str, shape))}_{mode}_s"]
            ck = "f4" if dt == "float32" else "f8"
            assert sp.direct_cost(shape, kshape, mode, ck, 1) == pytest.approx(t, rel=0.05)
    assert values["direct_pad_ns"] > 0
    # the copy's fixed price: what a tiny copy (and the kernel's check) took beyond its
    # price per element
    assert values["direct_pad_call_ns"] == pytest.approx(
        max(0.0, m["pad_call_s"] * 1e9 - 144 * values["direct_pad_ns"]))
    assert 0.0 < m["pad_call_s"] < 1e-3


def test_crossover_and_ceiling_rules():
    # the positions crossover: least size from which A wins at every larger size; with a
    # margin, A must win by it (a tie stays with B, the GEMM floor)
    sizes = [9, 36, 144, 576]
    a, b = [1.0, 2.0, 3.0, 4.0], [1.02, 1.5, 3.6, 4.8]
    assert calibrate._crossover(a, b, sizes) == 144
    assert calibrate._crossover([1.0, 1.0, 3.0, 4.0], [1.02, 1.5, 3.6, 4.8], sizes) == 9
    assert calibrate._crossover([1.0, 1.0, 3.0, 4.0], [1.02, 1.5, 3.6, 4.8], sizes, margin=1.1) == 36
    assert calibrate._crossover([2.0] * 4, [1.0] * 4, sizes) == 1 << 62
    # the ceiling: largest size at which A is within the slack of B
    assert calibrate._ceiling([1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 2.0], sizes) == 36
    assert calibrate._ceiling([1.0, 1.0, 2.0, 2.1], [1.0, 1.0, 1.0, 2.0], sizes) == 576
    assert calibrate._ceiling([2.0] * 4, [1.0] * 4, sizes) == 0
    # open-ended (the direct kernels' K limits): A winning at the largest size sets none
    assert calibrate._ceiling([1.0, 1.0, 2.0, 2.1], [1.0, 1.0, 1.0, 2.0], sizes, open_ended=True) == 1 << 62
    assert calibrate._ceiling([1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 2.0], sizes, open_ended=True) == 36
    assert calibrate._ceiling([2.0] * 4, [1.0] * 4, sizes, open_ended=True) == 0


def test_signal_single_precision_factors_weigh_only_on_their_transforms():
    # fft_single_factor prices float32 N-d transforms, fft_1d_single_factor float32 1-D ones
    # (full and overlap-add); float64 keeps its cost
    from pyconv._engine import signal_plan as sp
    over = XEON["fft_overhead_s"]

    def costs(**values):
        with tuning.override(**{**XEON, **values}):
            return (sp.fft_costs((512, 512), (31, 31), False, True, 1)[0],
                    sp.fft_costs((512, 512), (31, 31), False, False, 1)[0],
                    sp.fft_costs((65536,), (257,), False, True, 1), sp.fft_costs((65536,), (257,), False, False, 1))
    nd4, nd8, (p4, oa4), f8 = costs(fft_single_factor=0.5, fft_1d_single_factor=0.5)
    nd4b, nd8b, (p4b, oa4b), f8b = costs(fft_single_factor=1.0, fft_1d_single_factor=0.5)
    assert (nd4b - over) == pytest.approx(2 * (nd4 - over)) and (p4b, oa4b) == (p4, oa4) and nd8b == nd8
    nd4c, nd8c, (p4c, oa4c), f8c = costs(fft_single_factor=0.5, fft_1d_single_factor=1.0)
    assert nd4c == nd4 and nd8c == nd8 and f8c == f8
    assert (p4c - over) == pytest.approx(2 * (p4 - over)) and oa4c > 1.9 * (oa4 - over)
    # and they move the choice of their own calls only
    assert _pick((512, 512), (31, 31), np.float32, fft_single_factor=0.6) == "fft"
    assert _pick((512, 512), (31, 31), np.float32, fft_single_factor=2.0) == "direct"
    assert _pick((512, 512), (31, 31), np.float64, fft_single_factor=2.0) == "fft"
    assert _pick((100000,), (1025,), np.float32, fft_single_factor=5.0) == "fft"
    assert _pick((100000,), (1025,), np.float32, fft_1d_single_factor=5.0) == "direct"
    assert _pick((100000,), (1025,), np.float64, fft_1d_single_factor=5.0) == "fft"


def test_signal_fft_cost_counts_the_batch():
    # a stack of rows (a dim where one operand has size 1: broadcast, not transformed) costs
    # each row's transforms (before, the
    # model priced one row: (64, 65536) * (1, 257) float32 went to the FFT at 74 ms, for
    # 47 ms direct on an Intel Xeon at 1 thread)
    from pyconv._engine import signal_plan as sp
    over = XEON["fft_overhead_s"]
    flat = dict(XEON, fft_ns_large=XEON["fft_ns_small"])       # one ns per point: exact ratios
    with tuning.override(**flat):
        one = sp.fft_costs((1, 65536), (1, 257), False, True, 1)[0] - over
        for b in (2, 8, 64):
            many = sp.fft_costs((b, 65536), (1, 257), False, True, 1)[0] - over
            assert many == pytest.approx(one * (2 * b + 1) / 3)          # in1 and the inverse per row
            rows2 = sp.fft_costs((1, 65536), (b, 257), False, True, 1)[0] - over
            assert rows2 == pytest.approx(one * (2 * b + 1) / 3)         # in2's rows and the inverse
    assert _pick((64, 65536), (1, 257), np.float32) == "direct"
    assert _pick((256, 8192), (1, 129), np.float64) == "direct"


def test_signal_overlap_add_blocks_cost_as_small_transforms():
    # each overlap-add block is one small transform, in cache however many blocks a long
    # signal has: the large transforms' figure (memory-bound) must not price them.  On an
    # AMD EPYC (2026-12-04) the calibration put fft_ns_large at 4x fft_ns_small; 1e6 * 1001
    # float32 in 11000-point blocks was modelled at 24 ms against 5.7 measured, and 'auto'
    # ran the direct kernel (21 ms).
    from pyconv._engine import signal_plan as sp
    big = dict(XEON, fft_ns_small=0.29, fft_ns_large=1.16)
    with tuning.override(**big):
        plain, oa = sp.fft_costs((1000000,), (1001,), False, True, 1)
    with tuning.override(**dict(big, fft_ns_large=big["fft_ns_small"])):
        plain_flat, oa_flat = sp.fft_costs((1000000,), (1001,), False, True, 1)
    assert oa == oa_flat                      # the blocks: the small regime only
    assert plain > 1.5 * plain_flat           # one full 1e6-point transform: the large one
    assert _pick((1000000,), (1001,), np.float32, "full", 1, fft_ns_small=0.29, fft_ns_large=1.16,
                 direct_ns_1d_f4=0.021) == "fft"


def test_signal_3d_factor_weighs_only_on_3d_transforms():
    # fft_3d_factor prices transforms over three or more axes, not 2-D or 1-D ones (nor a
    # stack of 2-D planes: two transformed axes)
    from pyconv._engine import signal_plan as sp

    def cost(s1, s2, factor):
        with tuning.override(**{**XEON, "fft_3d_factor": factor, "fft_overhead_s": 0.0}):
            return sp.fft_costs(s1, s2, False, False, 1)[0]
    assert cost((96,) * 3, (5,) * 3, 1.3) == pytest.approx(1.3 * cost((96,) * 3, (5,) * 3, 1.0))
    for other in (((1024, 1024), (9, 9)), ((65536,), (257,)), ((16, 256, 256), (1, 9, 9))):
        assert cost(*other, 1.3) == cost(*other, 1.0)
    # and it moves issue 10's 3-D row: 128^3 * 7^3 float32 at 2 threads (AMD EPYC constants:
    # direct 14.4 ms, FFT 20.5 measured)
    amd = dict(direct_ns_f4=0.0355, direct_merged_factor=0.92, direct_border_ns=18.8, direct_tap_ns=4.0,
               direct_pad_ns=0.20, fft_ns_small=0.31, fft_ns_large=0.37, fft_single_factor=0.42,
               fft_thread_gain=0.5, direct_thread_gain=0.94)
    assert _pick((128,) * 3, (7,) * 3, np.float32, **amd) == "fft"
    assert _pick((128,) * 3, (7,) * 3, np.float32, **amd, fft_3d_factor=1.27) == "direct"


def test_signal_merged_factor_weighs_only_on_merged_rows():
    # direct_merged_factor prices the flat sweep of merged rows ('same'/'valid' images and
    # volumes, rows of any length), not 'full' mode or 1-D signals
    from pyconv._engine import signal_plan as sp

    def cost(s1, s2, mode, factor):
        with tuning.override(**{**XEON, "direct_merged_factor": factor, "direct_tap_ns": 0.0,
                                "direct_overhead_s": 0.0, "direct_border_ns": 0.0}):
            return sp.direct_cost(s1, s2, mode, "f4", 1)
    for merged in (((38, 38, 134), (7, 7, 7), "valid"), ((1024, 1024), (15, 15), "valid"),
                   ((1024, 1024), (15, 15), "same")):
        assert cost(*merged, 0.5) == pytest.approx(0.5 * cost(*merged, 1.0))
    for other in (((1024, 1024), (15, 15), "full"), ((65536,), (257,), "same"), ((64, 64, 64), (7, 7, 7), "full")):
        assert cost(*other, 0.5) == cost(*other, 1.0)
    # and it moves the 3-D choice: 128^3 * 9^3 float64 at 2 threads
    assert _pick((128,) * 3, (9,) * 3, np.float64, direct_merged_factor=1.0) == "fft"
    assert _pick((128,) * 3, (9,) * 3, np.float64, direct_merged_factor=0.4) == "direct"


@pytest.mark.parametrize("field, single, shape, kshape, which, value", [
    ("fft_single_factor", True, (1024, 1024), (9, 9), 0, 0.41),
    ("fft_1d_single_factor", True, (65536,), (257,), 1, 0.8),
    ("fft_oa_factor", False, (65536,), (257,), 1, 1.4),
    ("fft_3d_factor", False, (96, 96, 96), (5, 5, 5), 0, 1.3),
])
def test_calibration_solves_the_fft_model_for_a_timing(field, single, shape, kshape, which, value):
    from pyconv._engine import signal_plan as sp

    def cost():
        return sp.fft_costs(shape, kshape, False, single, 1)[which]

    with tuning.override(**{**XEON, field: value}):
        t = cost()
    assert calibrate._linear(t, cost, dict(XEON), field, 0.0) == pytest.approx(value, rel=1e-9)


def test_calibration_solves_the_merged_factor():
    from pyconv._engine import signal_plan as sp

    def cost():
        return sp.direct_cost((38, 38, 134), (7, 7, 7), "valid", "f4", 1)

    with tuning.override(**{**XEON, "direct_merged_factor": 0.7}):
        t = cost()
    assert calibrate._linear(t, cost, dict(XEON), "direct_merged_factor", 0.0) == pytest.approx(0.7, rel=1e-9)


def test_gain_samples_keep_the_pair_whose_team_gained_most():
    # each sample is a (1-thread, team) pair timed back to back; the least time of each over
    # the samples would pair one spell's fast 1-thread call with another's slow team
    keep = calibrate._faster_team
    first = keep([math.inf, math.inf], [4.0, 2.5])
    assert first == [4.0, 2.5]
    assert keep(first, [2.7, 2.4]) == [4.0, 2.5]          # 1.6x kept over 1.125x
    assert keep(first, [4.4, 2.2]) == [4.4, 2.2]          # 2x replaces 1.6x
    assert keep([4.4, 2.2], [2.2, 1.1]) == [4.4, 2.2]     # a tie keeps the first


def test_signal_calibration_takes_the_large_transform_from_the_gain_samples():
    # with more than one thread the float64 1024^2 transform's one-worker time is timed by
    # the gain samples (CPU seconds, right after a call with every worker); the signal
    # calibration solves from it instead of timing the transform again
    from pyconv._threads import threads

    class Samples:
        fft_cpu = 0.0123
    values, m = {}, {}
    with _plan.live(), threads(1), tuning.override():
        calibrate._measure_signal(calibrate._Pool(), values, m, Samples())
    assert m["fft_1024_s"] == 0.0123
    assert m["fft_1024_float32_s"] > 0
    values2, m2 = {}, {}
    with _plan.live(), threads(1), tuning.override():
        calibrate._measure_signal(calibrate._Pool(), values2, m2)
    assert m2["fft_1024_s"] != 0.0123 and m2["fft_1024_s"] > 0


def test_forced_timings_reuse_one_tuning_across_calls():
    # calibrate._forced builds the Tuning of its values once and reuses it: plans are keyed
    # by the Tuning object, and a new one per call planned (and timed) every call again
    from pyconv._engine.plan import Algorithm
    seen = []
    run = calibrate._forced(Algorithm.GEMM, lambda: seen.append(tuning.active()), weight_panel=False)
    run()
    run()
    run()
    assert seen[0] is seen[1] is seen[2]
    assert seen[0].weight_panel is False and tuning.active() is not seen[0]


@pytest.mark.parametrize("weight_tile, wblock", [(512, 10 << 10), (2048, 40 << 10)])
def test_cached_cache_blocks_reach_the_plans(cache, weight_tile, wblock):
    # the calibrated positions per unit of the dense weight gradient and the weights per
    # pass of dense_oc set the plans' tiles; the results do not depend on them
    values = _measured_defaults()
    values["weight_tile"], values["dense_oc_wblock_bytes"] = weight_tile, wblock
    calibrate._save(calibrate.cache_path(), values, {})
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 64, 64, 24)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    go = rng.standard_normal((2, 64, 64, 24)).astype(np.float32)
    with pyconv.threads(1):          # (more threads may cut the units finer)
        with _plan.force("dense"):
            pw = pyconv.explain(grad.conv2d_weight, x, w.shape, go, padding=1).leaf()
            gw = grad.conv2d_weight(x, w.shape, go, padding=1)
        with _plan.force("dense_oc"):
            pf = pyconv.explain(nn.conv2d, x, w, padding=1).leaf()
            y = nn.conv2d(x, w, padding=1)
    assert pw.tile("rows") == min(64, weight_tile // 24)         # rows of 24 positions
    # weights of one pass: input channels x 9 taps x the plan's lanes (float32)
    assert pf.tile("cblock") == min(64, wblock // (9 * pf.tile("lanes") * 4))
    with _plan.force("gemm"):
        np.testing.assert_allclose(gw, grad.conv2d_weight(x, w.shape, go, padding=1), rtol=2e-4, atol=5e-3)
        np.testing.assert_allclose(y, nn.conv2d(x, w, padding=1), rtol=2e-5, atol=2e-4)


def test_timing_operands_come_in_separate_read_only_pieces():
    # calibrate._Pool: consecutive pieces never overlap (the operands of one timed call stay
    # apart in the caches), a piece that does not fit starts the buffer again, values are
    # in [-0.5, 0.5), and nothing writes them
    pool = calibrate._Pool(nbytes=1 << 12)             # 512 float64
    pieces = [pool((3, 7)), pool(100), pool((2, 50)), pool((10, 10)), pool(5)]
    for a, b in zip(pieces, pieces[1:]):
        assert not np.shares_memory(a, b)
    assert [p.shape for p in pieces] == [(3, 7), (100,), (2, 50), (10, 10), (5,)]
    assert all(p.dtype == np.float64 and not p.flags.writeable for p in pieces)
    assert all(p.min() >= -0.5 and p.max() < 0.5 for p in pieces)
    big = pool((40, 40), np.float32)                   # its own dtype's buffer, twice the piece
    assert big.dtype == np.float32 and not np.shares_memory(big, pieces[-1])
    again = pool((40, 40), np.float32)
    assert not np.shares_memory(big, again)
    with pytest.raises(ValueError):
        pieces[0][0, 0] = 1.0


def test_least_behind_weighs_every_layer():
    # the candidate whose times, each over its layer's best, sum least
    assert calibrate._least_behind([[1.0, 1.02, 1.3], [2.0, 1.9, 1.9]]) == 1     # 1.02+1.0 < 1.0+1.053
    assert calibrate._least_behind([[1.0, 1.1, 1.3], [2.0, 1.9, 1.9]]) == 0      # 1.0+1.053 < 1.1+1.0
    assert calibrate._least_behind([[1.0, 1.5], [10.0, 9.0]]) == 0      # 1.0+1.11 < 1.5+1.0


def test_kernels_with_taps_in_depth_take_their_own_weight_block():
    # dense_wblock_bytes_3d sets the input channels per pass of 3-D kernels (27 taps x 8
    # outputs x 4 bytes = 864 B per channel here), dense_wblock_bytes those of 2-D ones (288 B)
    rng = np.random.default_rng(7)
    x3 = rng.standard_normal((1, 16, 6, 7, 8)).astype(np.float32)
    w3 = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32)
    x2, w2 = x3[:, :, 0], w3[:, :, 0]
    got = {}
    for wb, wb3 in ((4096, 8192), (4096, 32768), (8192, 8192)):
        with tuning.override(dense_wblock_bytes=wb, dense_wblock_bytes_3d=wb3), _plan.force("dense"):
            p3 = pyconv.explain(nn.conv3d, x3, w3, padding=1).leaf()
            p2 = pyconv.explain(nn.conv2d, x2, w2, padding=1).leaf()
            got[wb, wb3] = (p3.tile("cblock", 16), p2.tile("cblock", 16), nn.conv3d(x3, w3, padding=1))
    assert [v[:2] for v in got.values()] == [(9, 14), (16, 14), (9, 16)]
    for _, _, y in got.values():
        np.testing.assert_array_equal(y, got[4096, 8192][2])         # same sums, same order


@pytest.mark.parametrize("grain", [1, 1 << 14, 1 << 20, 1 << 40])
def test_thread_grain_sets_the_threads_of_nn_calls(grain):
    # a dense layer of W multiply-adds runs on min(threads, W // grain) threads (at least 1)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    work = 2 * 32 * 400 * 16 * 9
    with tuning.override(grain=grain):
        p = pyconv.explain(nn.conv2d, x, w, padding=1)
        y = nn.conv2d(x, w, padding=1)
    assert p.threads == max(1, min(pyconv.get_num_threads(), work // grain))
    np.testing.assert_allclose(y, nn.conv2d(x, w, padding=1), rtol=1e-5, atol=1e-4)
