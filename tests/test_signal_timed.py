"""method='auto' of pyconv.signal where the cost model's two figures are close: both methods
timed once on the running machine, the faster stored (pyconv._engine.calibrate's timed
choices) and taken by every later call and process.  Reference: the same call with the
method forced (bitwise: 'auto' must return exactly what the method it took returns)."""
import json
import os

import numpy as np
import pytest

import pyconv
from pyconv import signal
from pyconv._engine import calibrate, plan, signal_plan as sp, tuning

from forking import child_says, held_by_another_thread

RNG = np.random.default_rng(7)
A = RNG.standard_normal((48, 40))
B = RNG.standard_normal((7, 9))


def _forget():
    """This process's memory of choices and call plans (a later process starts so)."""
    calibrate._timed.update(path=None, table=None)
    sp._CHOICES.clear()
    plan.clear_caches()


@pytest.fixture
def timed(monkeypatch, tmp_path):
    """Tuning on, its files in ``tmp_path``, the built-in thresholds in use (no calibration
    runs); the model's figures ``figures['v']`` = (direct, fft) seconds for every call;
    ``runs``: one entry per timing of both methods."""
    monkeypatch.setenv("PYCONV_TUNING", "on")
    monkeypatch.setenv("PYCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(tuning._machine, "tuning", tuning.DEFAULT)
    figures = {"v": (2e-3, 3e-3)}
    monkeypatch.setattr(sp, "model_costs", lambda in1, in2, mode, nt: figures["v"])
    runs = []
    real = signal._time_methods

    def spy(*args):
        runs.append(args[2])
        return real(*args)
    monkeypatch.setattr(signal, "_time_methods", spy)
    _forget()
    yield figures, runs
    _forget()


def _stored():
    with open(calibrate.timed_path()) as f:
        return json.load(f)["choices"]


def test_methods_differ_in_bits():
    # (else the checks below could not tell which method 'auto' ran)
    assert not np.array_equal(signal.convolve(A, B, method="direct"), signal.convolve(A, B, method="fft"))


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_close_call_is_timed_once_and_stored(timed, mode):
    figures, runs = timed
    out = signal.convolve(A, B, mode)
    assert runs == [mode]
    key = sp.timed_key(A, B, mode, pyconv.get_num_threads())
    entry = _stored()[key]
    choice = entry["choice"]
    assert choice in ("direct", "fft") and entry["direct_s"] > 0 and entry["fft_s"] > 0
    assert choice == ("fft" if entry["fft_s"] < entry["direct_s"] else "direct")
    np.testing.assert_array_equal(out, signal.convolve(A, B, mode, method=choice))
    # later calls, and a later process reading the file, take it without timing
    np.testing.assert_array_equal(signal.convolve(A, B, mode), out)
    assert signal.choose_conv_method(A, B, mode) == choice
    _forget()
    np.testing.assert_array_equal(signal.convolve(A, B, mode), out)
    assert runs == [mode]


@pytest.mark.parametrize("stored", ["direct", "fft"])
def test_stored_choice_overrules_the_model(timed, stored):
    figures, runs = timed
    figures["v"] = (3e-3, 2e-3) if stored == "direct" else (2e-3, 3e-3)      # the model says the other
    calibrate.store_timed_choice(sp.timed_key(A, B, "same", pyconv.get_num_threads()), stored,
                                 {"direct": 1.0, "fft": 1.0})
    _forget()
    np.testing.assert_array_equal(signal.convolve(A, B, "same"), signal.convolve(A, B, "same", method=stored))
    np.testing.assert_array_equal(signal.correlate(A, B, "same"), signal.correlate(A, B, "same", method=stored))
    assert signal.choose_conv_method(A, B, "same") == stored
    assert runs == []


def test_correlate_returns_the_timed_run(timed):
    figures, runs = timed
    out = signal.correlate(A, B, "full")
    choice = _stored()[sp.timed_key(A, B, "full", pyconv.get_num_threads())]["choice"]
    np.testing.assert_array_equal(out, signal.correlate(A, B, "full", method=choice))
    assert len(runs) == 1


@pytest.mark.parametrize("figs", [(1e-3, 2.5e-3), (2.5e-3, 1e-3), (1e-4, 1.5e-4)],
                         ids=["direct-far-ahead", "fft-far-ahead", "too-small-to-time"])
def test_clear_or_small_calls_keep_the_model(timed, figs):
    figures, runs = timed
    figures["v"] = figs
    model = "fft" if figs[1] < figs[0] else "direct"
    np.testing.assert_array_equal(signal.convolve(A, B), signal.convolve(A, B, method=model))
    assert runs == [] and calibrate.timed_count() == 0


def test_off_neither_times_nor_reads(timed, monkeypatch):
    figures, runs = timed
    calibrate.store_timed_choice(sp.timed_key(A, B, "full", pyconv.get_num_threads()), "fft",
                                 {"direct": 1.0, "fft": 0.5})
    monkeypatch.setenv("PYCONV_TUNING", "off")
    _forget()
    np.testing.assert_array_equal(signal.convolve(A, B), signal.convolve(A, B, method="direct"))
    assert signal.choose_conv_method(A, B) == "direct"
    assert runs == [] and calibrate.timed_count() == 0


def test_override_block_keeps_the_model(timed):
    figures, runs = timed
    with tuning.override(direct_tap_ns=1.0):
        np.testing.assert_array_equal(signal.convolve(A, B), signal.convolve(A, B, method="direct"))
    assert runs == []


def test_explain_does_not_time(timed):
    figures, runs = timed
    p = pyconv.explain(signal.convolve, A, B)
    assert p.algorithm == "direct" and runs == [] and calibrate.timed_count() == 0
    # ... and shows a stored choice
    calibrate.store_timed_choice(sp.timed_key(A, B, "full", pyconv.get_num_threads()), "fft",
                                 {"direct": 1.0, "fft": 0.5})
    _forget()
    assert pyconv.explain(signal.convolve, A, B).algorithm == "fft" and runs == []


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_integer_operands_are_not_timed(timed, dtype):
    # (their choice depends on their values: the exact sums must fit float64)
    figures, runs = timed
    a, b = (A * 10).astype(dtype), (B * 10).astype(dtype)
    np.testing.assert_array_equal(signal.convolve(a, b), signal.convolve(a, b, method="direct"))
    assert runs == []


def test_full_store_keeps_the_model(timed, monkeypatch):
    figures, runs = timed
    monkeypatch.setattr(calibrate, "TIMED_MAX", 0)
    np.testing.assert_array_equal(signal.convolve(A, B), signal.convolve(A, B, method="direct"))
    assert runs == []


def test_damaged_file_is_replaced(timed):
    figures, runs = timed
    path = calibrate.timed_path()
    with open(path, "w") as f:
        f.write("{not json")
    _forget()
    signal.convolve(A, B)
    assert len(runs) == 1 and sp.timed_key(A, B, "full", pyconv.get_num_threads()) in _stored()


def test_unwritable_cache_keeps_the_choice_in_process(timed, monkeypatch, tmp_path):
    figures, runs = timed
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("PYCONV_CACHE_DIR", str(blocker / "sub"))     # cannot be made
    _forget()
    out = signal.convolve(A, B)
    assert len(runs) == 1 and calibrate.timed_count() == 1
    np.testing.assert_array_equal(signal.convolve(A, B), out)
    assert len(runs) == 1


def test_other_entries_in_the_file_are_kept(timed):
    figures, runs = timed
    nt = pyconv.get_num_threads()
    calibrate.store_timed_choice("other process's key", "fft", {"direct": 2.0, "fft": 1.0})
    _forget()
    signal.convolve(A, B)
    stored = _stored()
    assert stored["other process's key"]["choice"] == "fft" and sp.timed_key(A, B, "full", nt) in stored


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_the_store_is_locked(timed):
    # a child forked while another thread holds the store's lock still reads and times
    figures, runs = timed
    with held_by_another_thread(calibrate._timed_lock):
        got = child_says(lambda: int(np.array_equal(
            signal.convolve(A, B), signal.convolve(A, B, method=signal.choose_conv_method(A, B)))), timeout=30)
    assert got == "1", "the forked child hung on the timed-choice store's lock, or took another method"
