"""The tour ``python -m pyconv``: it runs, every step passes, a failure is reported,
and the figure code works (with matplotlib if installed, else against a stand-in
that follows matplotlib's calling conventions)."""
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import pyconv.__main__ as tour

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    return subprocess.run([sys.executable, "-m", "pyconv", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def _importable(name):
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def test_tour_runs_and_every_step_passes(tmp_path):
    out_dir = tmp_path / "figs"
    r = _run("--out", str(out_dir))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    headers = re.findall(r"^\[\s*(\d+)/(\d+)\] (.+)$", r.stdout, flags=re.M)
    verdicts = re.findall(r"^    -> (PASS|FAIL|SKIP)  (.+?)  \(", r.stdout, flags=re.M)
    assert len(headers) == len(tour.STEPS) == int(headers[0][1]) >= 16
    assert [h[2] for h in headers] == [v[1] for v in verdicts]
    # a step may only be skipped when a whole pyconv layer is genuinely missing
    # (dask is an optional extra: its step is skipped without it)
    missing = [m for m in ("pyconv.signal", "pyconv.nn", "pyconv.grad", "dask") if not _importable(m)]
    for status, title in verdicts:
        if status == "SKIP":
            assert missing, f"step {title!r} skipped although every layer imports"
        else:
            assert status == "PASS", f"step {title!r}: {status}\n{r.stdout}"
    if not missing:
        assert all(s == "PASS" for s, _ in verdicts)
    assert not re.search(r"^    FAIL ", r.stdout, flags=re.M)      # no failed check inside a step
    assert re.search(rf"{len(headers)} steps: \d+ PASS, 0 FAIL", r.stdout)
    # the arithmetic the tour promises is printed
    for text in ("86,400", "10,275", "81 vs 45 + 27 = 72", "[(3, 1), (7, 1), (15, 1)]",
                 "[[12, 12, 17], [10, 17, 19], [9, 6, 14]]", "multiplications"):
        assert text in r.stdout
    if HAVE_MPL:
        assert sorted(os.listdir(out_dir)) == ["checkerboard.png", "conv_matrix.png", "convolutions.png",
                                               "receptive_field.png"]
    else:
        assert "matplotlib is not installed" in r.stdout
        assert not out_dir.exists()


def test_tour_help():
    r = _run("--help")
    assert r.returncode == 0
    assert "--out DIR" in r.stdout and "matplotlib" in r.stdout and "--threads" in r.stdout


def test_tour_rejects_bad_threads():
    r = _run("--threads", "0")
    assert r.returncode == 2 and "--threads" in r.stderr


def test_a_failing_check_fails_the_tour(monkeypatch, capsys):
    def step_wrong(t):
        """A deliberately wrong check"""
        t.close("1 == 2", np.array([1.0]), np.array([2.0]))

    def step_raises(t):
        """A step that raises"""
        raise RuntimeError("boom")

    monkeypatch.setattr(tour, "STEPS", [step_wrong, step_raises])
    assert tour.main([]) == 1
    text = capsys.readouterr().out
    assert "-> FAIL  A deliberately wrong check" in text
    assert "-> FAIL  A step that raises" in text and "RuntimeError: boom" in text
    assert "2 steps: 0 PASS, 2 FAIL" in text


def test_shipped_data():
    img, vol = tour.load_image(), tour.load_volume()
    assert img.shape == (3, 128, 128) and img.dtype == np.float64
    assert vol.shape == (32, 32, 32) and vol.dtype == np.float64
    assert 0 <= img.min() < 0.1 and 0.9 < img.max() <= 1
    assert len(np.unique(vol)) > 10
    data = os.path.join(ROOT, "pyconv", "data")
    assert sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)) < 400_000


def test_shipped_data_is_what_make_data_makes():
    spec = importlib.util.spec_from_file_location("make_data", os.path.join(ROOT, "tools", "make_data.py"))
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    np.testing.assert_array_equal(make_data.make_image(), tour._load_npz("image.npz", "image"))
    np.testing.assert_array_equal(make_data.make_volume(), tour._load_npz("volume.npz", "volume"))


# --------------------------------------------------------------------------- figures

class _Recorder:
    """Accepts any call or attribute, like a matplotlib Figure or Axes would."""

    def __init__(self, log, name):
        self._log, self._name = log, name

    def __getattr__(self, attr):
        return _Recorder(self._log, f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        self._log.append((self._name, args, kwargs))
        return _Recorder(self._log, f"{self._name}()")


def _fake_matplotlib(log, files):
    """matplotlib and matplotlib.pyplot stand-ins with subplots' shape/squeeze semantics."""
    mpl = types.ModuleType("matplotlib")
    mpl.use = lambda backend: log.append(("use", (backend,), {}))
    plt = types.ModuleType("matplotlib.pyplot")

    def subplots(nrows=1, ncols=1, squeeze=True, **kwargs):
        fig = _Recorder(log, "fig")
        fig.savefig = lambda path, **kw: (files.append(path), open(path, "wb").close())
        axes = np.empty((nrows, ncols), dtype=object)
        for idx in np.ndindex(nrows, ncols):
            axes[idx] = _Recorder(log, f"ax{idx}")
        if squeeze:
            axes = axes.squeeze()
            if axes.ndim == 0:
                axes = axes.item()
        return fig, axes

    plt.subplots = subplots
    plt.close = lambda fig: log.append(("close", (), {}))
    mpl.pyplot = plt
    return mpl, plt


def _panels():
    t = tour.Tour(out=open(os.devnull, "w"))
    results = t.run(tour.STEPS)
    assert all(s != "FAIL" for _, s in results)
    return t.panels


def test_figures_against_matplotlib_stand_in(monkeypatch, tmp_path):
    log, files = [], []
    mpl, plt = _fake_matplotlib(log, files)
    monkeypatch.setitem(sys.modules, "matplotlib", mpl)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", plt)
    panels = _panels()
    written = tour.write_figures(str(tmp_path), panels, out=open(os.devnull, "w"))
    assert ("use", ("Agg",), {}) in log
    names = sorted(os.path.basename(p) for p in written)
    expected = ["convolutions.png"]
    if any(k.startswith("overlap") for k in panels):
        expected.append("checkerboard.png")
    if "receptive fields" in panels:
        expected.append("receptive_field.png")
    if "conv matrices" in panels:
        expected.append("conv_matrix.png")
        spies = [c for c in log if c[0].endswith(".spy")]
        assert spies and all(hasattr(c[1][0], "tocoo") for c in spies)
    assert names == sorted(expected) and sorted(files) == sorted(written)
    assert all(os.path.exists(p) for p in written)
    shown = [c[1][0] for c in log if c[0].endswith(".imshow")]
    assert len(shown) >= 8 and all(isinstance(a, np.ndarray) and a.ndim in (2, 3) for a in shown)


@pytest.mark.skipif(HAVE_MPL, reason="matplotlib is installed")
def test_figures_skipped_without_matplotlib(tmp_path, capsys):
    assert tour.write_figures(str(tmp_path / "f"), {}) == []
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "f").exists()


# --------------------------------------------------------------------------- the guide

def test_guide_examples_run():
    """docs/guide.md's examples are doctests; the gradients section's skip only while
    pyconv.grad is missing."""
    import doctest

    path = os.path.join(ROOT, "docs", "guide.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    test = doctest.DocTestParser().get_doctest(text, {}, "guide.md", path, 0)
    assert len(test.examples) > 40
    if not _importable("pyconv.grad"):
        skipping = False        # the gradients section is the last with examples
        for ex in test.examples:
            skipping = skipping or "import grad" in ex.source
            if skipping:
                ex.options[doctest.SKIP] = True
    if not _importable("dask"):
        skipping = False        # the dask section (an optional extra) is the last
        for ex in test.examples:
            skipping = skipping or "dask.array" in ex.source
            if skipping:
                ex.options[doctest.SKIP] = True
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    out = []
    result = runner.run(test, out=out.append)
    assert result.failed == 0, "".join(out)
