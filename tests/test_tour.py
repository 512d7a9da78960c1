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
    if _importable("dask"):       # the dask steps ran their checks (a skip would print no "ok")
        assert [t for _, t in verdicts][-2:] == [tour.step_dask.__doc__.strip(),
                                                 tour.step_dask_ndimage.__doc__.strip()]
        assert "ok   == scipy.ndimage.gaussian_filter on the whole volume, bitwise" in r.stdout
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
        scatters = [c for c in log if c[0].endswith(".scatter")]
        assert [len(c[1][0]) for c in scatters] == [C.nnz for _, C in panels["conv matrices"]]
    assert names == sorted(expected) and sorted(files) == sorted(written)
    assert all(os.path.exists(p) for p in written)
    shown = [c[1][0] for c in log if c[0].endswith(".imshow")]
    assert len(shown) >= 8 and all(isinstance(a, np.ndarray) and a.ndim in (2, 3) for a in shown)
    titles = [c for c in log if c[0].endswith(".set_title")]
    assert len(titles) == sum(len(f["panels"]) for f in tour.figure_data(panels).values())
    assert all(any(c[0].endswith(f".{label}") for c in log) for label in ("set_xlabel", "set_ylabel", "suptitle"))


# --------------------------------------------------------------------------- the data behind each figure

@pytest.fixture(scope="module")
def figures():
    return tour.figure_data(_panels())


def test_every_figure_has_titles_axis_labels_and_sizes(figures):
    assert sorted(figures) == ["checkerboard.png", "conv_matrix.png", "convolutions.png", "receptive_field.png"]
    for name, fig in figures.items():
        assert fig["title"] and fig["panels"], name
        titles = [p["title"] for p in fig["panels"]]
        assert len(set(titles)) == len(titles), f"{name}: two panels share a title"
        for p in fig["panels"]:
            assert p["title"] and p["xlabel"] and p["ylabel"], (name, p["title"])
            if p["kind"] == "image":
                h, w = p["array"].shape[:2]
                assert f"{h}x{w}" in p["title"] and str(w - 1) in p["xlabel"] and str(h - 1) in p["ylabel"]
            if p["kind"] == "entries":
                assert "x".join(map(str, p["shape"])) in p["title"]


def test_every_figure_has_a_caption_in_the_guide(figures):
    with open(os.path.join(ROOT, "pyconv", "guide.md"), encoding="utf-8") as f:
        guide = f.read()
    table = guide[guide.index("## Figures written by"):]
    for name in figures:
        row = re.search(rf"^\| `{re.escape(name)}` \| (.+) \|$", table, flags=re.M)
        assert row and "see" in row.group(1).lower(), f"{name} has no caption saying what to see"


def test_convolutions_panels_run_input_to_output(figures):
    panels = figures["convolutions.png"]["panels"]
    names = [p["name"] for p in panels]
    assert names[0] == "input image"
    for i, p in enumerate(panels[1:], 1):
        assert p["from"] in names[:i], f"{p['name']!r} is drawn before its input {p['from']!r}"
    assert names.index("volume (middle slice)") < names.index("3-D Sobel along depth (middle slice)")


def test_the_two_sobel_panels_show_the_same_kernel(figures):
    panels = {p["name"]: p["array"] for p in figures["convolutions.png"]["panels"]}
    sobel = [n for n in panels if n.startswith("Sobel")]
    assert len(sobel) == 2
    full, valid = (panels[n] for n in sorted(sobel, key=lambda n: panels[n].shape, reverse=True))
    # 'same' convolve2d and 'valid' sepconvolve2d of one kernel agree inside the border
    np.testing.assert_allclose(valid, full[1:-1, 1:-1], rtol=0, atol=1e-12)
    assert np.ptp(valid) > 1.0          # and there is an edge to see


def test_receptive_field_series_are_distinct_and_correct(figures):
    fig = figures["receptive_field.png"]
    lines = [p for p in fig["panels"] if p["kind"] == "lines"]
    assert len(lines) == 2
    for p in lines:
        labels = [s["label"] for s in p["series"]]
        ys = [tuple(s["y"]) for s in p["series"]]
        assert len(set(labels)) == len(labels)
        for key in ("marker", "linestyle", "color"):        # each series looks different
            assert len({s[key] for s in p["series"]}) == len(labels), key
        # no series lies on another: a legend entry is always a visible line
        assert len(set(ys)) == len(ys), p["title"]
    rf = {s["label"]: s["y"] for s in lines[0]["series"]}
    assert rf["3x3, no dilation"] == [3, 5, 7, 9, 11, 13]
    assert rf["3x3, dilation 2"] == [5, 9, 13, 17, 21, 25]
    assert rf["3x3, dilation 2^(n-1)"] == [2 ** (n + 1) - 1 for n in range(1, 7)]
    size = {s["label"]: s["y"] for s in lines[1]["series"]}
    assert size["3x3, stride 2, padding 1"] == [64, 32, 16, 8, 4, 2]
    impulses = [p for p in fig["panels"] if p["kind"] == "image"]
    assert [f"reaches {r}x{r}" in p["title"] for p, r in zip(impulses, (3, 7, 15))] == [True] * 3
    for p, r in zip(impulses, (3, 7, 15)):
        rows, cols = np.nonzero(p["array"])
        assert np.ptp(rows) + 1 == np.ptp(cols) + 1 == r


def test_conv_matrix_draws_every_stored_entry(figures):
    from pyconv.arithmetic import conv_matrix

    entries = figures["conv_matrix.png"]["panels"]
    assert len(entries) >= 3
    for p in entries:
        assert len(p["rows"]) == len(p["cols"]) == len(p["values"]) == int(p["title"].split(", ")[-1].split()[0])
        assert np.all(p["values"] != 0), "a stored zero would draw as an invisible entry"
        assert sorted(set(p["values"].tolist())) == list(range(1, 10))
    # the banded structure: in the 6x6 -> 4x4 matrix, output row r holds tap t at column
    # (r // 4) * 6 + r % 4 + (t - 1) // 3 * 6 + (t - 1) % 3
    big = entries[-1]
    assert big["shape"] == (16, 36)
    C = conv_matrix((1, 6, 6), np.arange(1.0, 10.0).reshape(1, 1, 3, 3)).toarray()
    dense = np.zeros(big["shape"])
    dense[big["rows"], big["cols"]] = big["values"]
    np.testing.assert_array_equal(dense, C)
    for r in range(16):
        for t in range(1, 10):
            assert dense[r, (r // 4) * 6 + r % 4 + (t - 1) // 3 * 6 + (t - 1) % 3] == t


def test_checkerboard_counts(figures):
    over = [p for p in figures["checkerboard.png"]["panels"] if "copies" in p["title"]]
    assert len(over) == 2
    uneven, even = over[0]["array"], over[1]["array"]
    assert sorted(set(uneven[2:-2, 2:-2].ravel().tolist())) == [1, 2, 4]
    assert set(even[2:, 2:].ravel().tolist()) == {4}


def test_upsampling_line_reads_in_the_transposed_direction():
    import io

    buf = io.StringIO()
    t = tour.Tour(out=buf)
    t.run([tour.step_transposed])
    line = next(ln for ln in buf.getvalue().splitlines() if "x2 upsampling" in ln and "->" in ln)
    assert "(1, 128, 128) -> (1, 256, 256)" in line
    assert line.index("(1, 128, 128)") < line.index("(1, 256, 256)")


# --------------------------------------------------------------------------- --out and --guide

def test_out_rejects_a_file(tmp_path):
    f = tmp_path / "figs.png"
    f.write_text("x")
    for target in (f, f / "sub"):
        r = _run("--out", str(target))
        assert r.returncode == 2, r.stdout + r.stderr
        assert "--out" in r.stderr and "not a directory" in r.stderr and "Traceback" not in r.stderr
        assert "[ 1/" not in r.stdout      # rejected before the tour runs


def test_out_rejects_an_unwritable_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    try:
        if os.access(d, os.W_OK):       # root: a permission bit does not stop it
            target = "/proc/pyconv-figures"     # procfs takes no new files, whoever asks
        else:
            target = str(d / "figs")
        r = _run("--out", target)
        assert r.returncode == 2, r.stdout + r.stderr
        assert "--out" in r.stderr and "cannot write" in r.stderr and "Traceback" not in r.stderr
    finally:
        d.chmod(0o700)


def test_guide_is_printed_from_the_package():
    r = _run("--guide")
    assert r.returncode == 0
    assert r.stdout.startswith("# A guide to the convolutions in pyconv")
    import pyconv
    assert os.path.join("pyconv", "guide.md") in r.stdout.splitlines()[-1]
    assert "python -m pyconv --guide" in pyconv.__doc__ and "python -m pyconv" in pyconv.__doc__


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

    path = os.path.join(ROOT, "pyconv", "guide.md")
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


def test_dask_steps_skip_with_a_note_without_dask(monkeypatch):
    import io
    for name in ("dask", "dask.array"):
        monkeypatch.setitem(sys.modules, name, None)       # `import dask` raises ImportError
    out = io.StringIO()
    t = tour.Tour(out=out)
    assert t.run([tour.step_dask, tour.step_dask_ndimage]) == [
        (tour.step_dask.__doc__.strip(), "SKIP"), (tour.step_dask_ndimage.__doc__.strip(), "SKIP")]
    assert out.getvalue().count("skipped: dask is not installed (pip install 'pyconv[dask]')") == 2
