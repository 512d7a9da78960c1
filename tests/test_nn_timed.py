"""Large dense layers: the kernels that can run them (im2col + GEMM, the phase-plane 'dense',
the output-channel 'dense_oc'; for weight gradients GEMM, 'dense' and, on thin groups,
'thin') timed once on the running machine, the fastest stored (pyconv._engine.calibrate's
timed choices) and taken by every later call and process.
References: the same call with the stored kernel forced (bitwise: the call must return
exactly what the kernel it took returns), and the float64 NumPy definition of the layer
(tests/reference.py, test_dense_weight.weight_ref; float32 within 1e-5 relative to the
largest output, float64 within 1e-12)."""
import json
import time

import numpy as np
import pytest

import pyconv
from pyconv import grad, nn
from pyconv._engine import calibrate, conv, plan, tuning
from pyconv._kernels import dense_direct

from reference import conv_nd, conv_transpose_nd
from test_dense_weight import weight_ref

RNG = np.random.default_rng(11)
FORWARD = ("gemm", "dense", "dense_oc")
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _layer(dtype, n=3, stride=1, nd=2, cin=None, cout=None, groups=1):
    """A layer every forward kernel serves (and at stride 1 its input gradient too), in 1, 2
    or 3 spatial dims: by default two vectors of input and output channels, kernel 3,
    padding 1 (at stride 2 enough positions for 'dense')."""
    c = 2 * dense_direct.OC_LANES[np.dtype(dtype).name]
    cin, cout = cin or c, cout or c
    spatial = {1: (400,), 2: (25, 27), 3: (7, 13, 12)}[nd]
    x = RNG.standard_normal((n, cin) + spatial).astype(dtype)
    w = RNG.standard_normal((cout, cin // groups) + (3,) * nd).astype(dtype)
    return x, w, dict(stride=stride, padding=1, groups=groups)


def _forget():
    """This process's memory of choices and plans (a later process starts so)."""
    calibrate._timed.update(path=None, table=None)
    plan.clear_caches()
    nn._CALLS.clear()


@pytest.fixture
def timed(monkeypatch, tmp_path):
    """Tuning on, its files in ``tmp_path``, the built-in thresholds (no calibration runs),
    layers from 1e5 flops timed; ``runs``: (operation, geometry, algorithms) of every timing."""
    monkeypatch.setenv("PYCONV_TUNING", "on")
    monkeypatch.setenv("PYCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(tuning._machine, "tuning", tuning.DEFAULT)
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e5)
    runs = []
    real = conv._time_algorithms

    def spy(op, g, dtype, algs):
        runs.append((op, g, tuple(a.value for a in algs)))
        return real(op, g, dtype, algs)
    monkeypatch.setattr(conv, "_time_algorithms", spy)
    _forget()
    yield runs
    _forget()


def _stored():
    with open(calibrate.timed_path()) as f:
        return json.load(f)["choices"]


def _forced(alg, fn, *args, **kw):
    with plan.force(alg):
        return fn(*args, **kw)


def _entry(run, dtype):
    op, g, names = run
    return _stored()[conv.timed_key(op, g, np.dtype(dtype), pyconv.get_num_threads(), names)]


def _key(x, w, kw):
    """The timed-choice key of the float32 forward layer (geometry from a forced plan: not
    timed)."""
    g = _forced("dense", pyconv.explain, nn.conv2d, x, w, **kw).geometry
    nt = pyconv.get_num_threads()
    return conv.timed_key("forward", conv.dataclasses.replace(g, n=conv.timed_samples(g, nt)), np.dtype(x.dtype), nt,
                          FORWARD)


def _fastest(entry, names):
    """The choice the stored ratios give: the least median time ratio to the reference."""
    assert entry["reference"] in names and entry[f"{entry['reference']}_ratio"] == 1.0
    return min(names, key=lambda n: entry[f"{n}_ratio"])


def _timed_once(runs, dtype, op, names, ref, fn, *args, **kw):
    """Call ``fn(*args, **kw)`` -- each of ``names`` serves it when forced (else no choice is
    tested) -- which must time them once for ``op``; the median of the rounds' time ratios
    decides (each round under one machine state), the result is the stored choice's bitwise
    and ``ref``'s within TOL, and later calls, and a later process reading the file, take
    the choice without timing.  Returns (result, choice, the timed geometry)."""
    for alg in names:
        assert _forced(alg, pyconv.explain, fn, *args, **kw).algorithm == alg
    out = fn(*args, **kw)
    assert len(runs) == 1 and runs[0][0] == op and runs[0][2] == tuple(names)
    entry = _entry(runs[0], dtype)
    choice = entry["choice"]
    assert choice == _fastest(entry, names) and all(entry[f"{n}_s"] > 0 for n in names)
    np.testing.assert_array_equal(out, _forced(choice, fn, *args, **kw))
    np.testing.assert_allclose(out, ref, rtol=0, atol=TOL[dtype] * np.abs(ref).max())
    assert pyconv.explain(fn, *args, **kw).algorithm == choice
    np.testing.assert_array_equal(fn(*args, **kw), out)
    _forget()
    assert pyconv.explain(fn, *args, **kw).algorithm == choice
    np.testing.assert_array_equal(fn(*args, **kw), out)
    assert len(runs) == 1
    return out, choice, runs[0][1]


def test_every_kernel_serves_the_test_layers():
    # (else the tests below would not test a choice)
    for dtype, stride in [(np.float32, 1), (np.float64, 1), (np.float32, 2), (np.float64, 2)]:
        x, w, kw = _layer(dtype, stride=stride)
        for alg in FORWARD:
            assert _forced(alg, pyconv.explain, nn.conv2d, x, w, **kw).algorithm == alg


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_layer_is_timed_once_and_stored(timed, dtype, stride, nd):
    x, w, kw = _layer(dtype, n=3 if nd == 2 else 2, stride=stride, nd=nd)
    out, choice, g = _timed_once(timed, dtype, "forward", FORWARD, conv_nd(x, w, **kw), getattr(nn, f"conv{nd}d"), x, w,
                                 **kw)
    assert g.n == x.shape[0]      # (a small layer: its whole batch)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thin_groups_time_their_kernel_against_gemm_and_the_dense_ones(timed, dtype):
    # groups of a few channels (4 in, 4 out): the thin kernel the thresholds pick competes
    # with the other stride-1 thin kernel, GEMM and the dense kernels; depthwise layers too
    runs = timed
    x, w, kw = _layer(dtype, cin=16, cout=16, groups=4)
    with tuning.override():         # (no timing inside a block: the untimed choice)
        thin = pyconv.explain(nn.conv2d, x, w, **kw).algorithm
    assert thin.value.startswith("thin")
    out = nn.conv2d(x, w, **kw)
    assert len(runs) == 1 and runs[0][0] == "forward"
    names = runs[0][2]
    other = "thin_s1" if thin.value == "thin_reg" else "thin_reg"
    assert names[:3] == ("gemm", thin.value, other) and set(names[3:]) <= {"dense", "dense_oc"}
    entry = _entry(runs[0], dtype)
    assert entry["choice"] == _fastest(entry, names)
    np.testing.assert_array_equal(out, _forced(entry["choice"], nn.conv2d, x, w, **kw))
    ref = conv_nd(x, w, **kw)
    np.testing.assert_allclose(out, ref, rtol=0, atol=TOL[dtype] * np.abs(ref).max())
    xd = RNG.standard_normal((2, 16, 30, 30)).astype(dtype)
    wd = RNG.standard_normal((32, 1, 3, 3)).astype(dtype)
    outd = nn.conv2d(xd, wd, padding=1, groups=16)
    assert len(runs) == 2 and {"thin_s1", "thin_reg", "gemm"} <= set(runs[1][2])
    choice = _entry(runs[1], dtype)["choice"]
    np.testing.assert_array_equal(outd, _forced(choice, nn.conv2d, xd, wd, padding=1, groups=16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", ["dense", "thin"])
def test_weight_gradient_is_timed_once_and_stored(timed, dtype, layer):
    # GEMM and the dense weight kernel; on thin groups (fewer than dense_min_og output
    # channels per group) also the position-vector kernel (output-channel vectors would be
    # partly empty) and grad_direct's thin kernel
    kw_layer = dict(cin=8, cout=8, groups=4) if layer == "thin" else {}
    x, w, kw = _layer(dtype, **kw_layer)
    names = ("gemm", "dense") + (("dense_pos", "thin") if layer == "thin" else ())
    go = RNG.standard_normal((x.shape[0], w.shape[0]) + x.shape[2:]).astype(dtype)
    _, _, g = _timed_once(timed, dtype, "weight_grad", names, weight_ref(x, w.shape, go, **kw), grad.conv2d_weight,
                          x, w.shape, go, **kw)
    assert g.n == x.shape[0]           # (a small layer: timed on its whole batch)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups,names", [(1, ("gemm", "panel", "matmul")), (8, ("gemm", "panel", "matmul", "thin"))])
def test_pointwise_weight_gradient_is_timed_once_and_stored(timed, dtype, groups, names):
    # 1x1: GEMM, the panel kernel and the matrix products (per group); in thin groups (2
    # channels each here) the thin kernel too
    x = RNG.standard_normal((2, 16, 30, 31)).astype(dtype)
    ws = (16, 16 // groups, 1, 1)
    go = RNG.standard_normal((2, 16, 30, 31)).astype(dtype)
    _timed_once(timed, dtype, "weight_grad", names, weight_ref(x, ws, go, groups=groups), grad.conv2d_weight, x, ws,
                go, groups=groups)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups", [1, 8])
def test_pointwise_forward_is_timed_once_and_stored(timed, dtype, groups):
    # 1x1: GEMM against the panel, pointwise and matrix-product kernels (in thin groups
    # also the thin kernel the thresholds pick, the untimed choice)
    x = RNG.standard_normal((2, 16, 30, 31)).astype(dtype)
    w = RNG.standard_normal((16, 16 // groups, 1, 1)).astype(dtype)
    with tuning.override():
        untimed = pyconv.explain(nn.conv2d, x, w, groups=groups).algorithm
    assert (groups > 1) == untimed.value.startswith("thin")
    names = ("gemm",) + (untimed.value,) * (groups > 1) + ("panel", "pointwise", "matmul")
    _timed_once(timed, dtype, "forward", names, conv_nd(x, w, groups=groups), nn.conv2d, x, w, groups=groups)


@pytest.mark.parametrize("op", ["weight_grad", "forward"])
def test_timing_batch_follows_the_flops_budget(timed, monkeypatch, op):
    # a layer is timed on as many samples as TIMED_BATCH_FLOPS allow, at least min(N, threads)
    runs = timed
    x, w, kw = _layer(np.float32, n=5)
    go = RNG.standard_normal((x.shape[0], w.shape[0]) + x.shape[2:]).astype(np.float32)
    per_sample = 2.0 * w[0].size * go[0].size
    call = ((lambda n: nn.conv2d(x[:n], w, **kw)) if op == "forward"
            else (lambda n: grad.conv2d_weight(x[:n], w.shape, go[:n], **kw)))
    monkeypatch.setattr(conv, "TIMED_BATCH_FLOPS", 3.5 * per_sample)
    call(5)
    nt = pyconv.get_num_threads()
    assert len(runs) == 1 and runs[0][0] == op and runs[0][1].n == max(3, min(5, nt))
    monkeypatch.setattr(conv, "TIMED_BATCH_FLOPS", 0.0)
    call(4)
    assert len(runs) == 2 and runs[1][1].n == min(4, nt)


def _slowed_forward(monkeypatch, alg, calls, first_only):
    """conv.forward recording the algorithm of every call, 0.3 s slower on ``alg`` (on its
    first call only, or on every call): past TIMED_DROP times any kernel of the test layers.
    Every call also takes 20 ms more, so the kernels' own speeds stay within TIMED_DROP of
    each other (a sanitizer build ran 'dense' more than 4x slower than BLAS's GEMM, which it
    does not instrument, and dropped it after its one slowed run)."""
    real = conv.forward

    def forward(p, *a):
        calls.append(p.algorithm.value)
        time.sleep(0.02)
        if p.algorithm.value == alg and (not first_only or calls.count(alg) == 1):
            time.sleep(0.3)
        return real(p, *a)
    monkeypatch.setattr(conv, "forward", forward)


@pytest.mark.parametrize("first_only", [False, True])
def test_a_kernel_slow_on_its_first_run_runs_once_more(timed, monkeypatch, first_only):
    # a kernel TIMED_DROP times slower than the fastest on its first run runs once more: slow
    # again, it drops out (its faster run stands for it); slowed once (one-time costs, the
    # host), the second run counts and it stays in for the rounds
    runs, calls = timed, []
    _slowed_forward(monkeypatch, "dense", calls, first_only=first_only)
    x, w, kw = _layer(np.float32)
    out = nn.conv2d(x, w, **kw)
    entry = _entry(runs[0], np.float32)
    timing = calls[:-1]                 # (the last: the call itself)
    assert sorted(timing[:len(FORWARD)]) == sorted(FORWARD)
    # each kernel: its first run, a second if past the line (another kernel's first run
    # may be slow too: GEMM's first BLAS call), if kept an untimed run on the whole timing
    # batch where the first runs took fewer samples, then the rounds
    warm = int(min(x.shape[0], pyconv.get_num_threads()) < runs[0][1].n)
    counts = {n: timing.count(n) for n in FORWARD}
    kept = {n for n, c in counts.items() if c > 2}
    assert all(c - 1 - (warm + conv.TIMED_ROUNDS) * (n in kept) in (0, 1) for n, c in counts.items())
    assert counts["dense"] == (2 + warm + conv.TIMED_ROUNDS if first_only else 2)
    assert entry["reference"] in kept and entry["choice"] in kept
    if first_only:
        assert entry["dense_s"] < 0.3 and entry["dense_ratio"] < conv.TIMED_DROP
    else:
        assert entry["dense_s"] >= 0.3 and entry["dense_ratio"] >= conv.TIMED_DROP
    np.testing.assert_array_equal(out, _forced(entry["choice"], nn.conv2d, x, w, **kw))


def test_weight_gradient_first_runs_screen_on_fewer_samples(timed, monkeypatch):
    # the first run of each kernel (which decides who drops out) takes min(N, threads)
    # samples; the kernels left in then run on the whole timing batch
    runs = timed
    calls = []
    real = conv.weight_grad
    monkeypatch.setattr(conv, "weight_grad", lambda p, x, go: calls.append((p.algorithm.value, x.shape[0]))
                        or real(p, x, go))
    x, w, kw = _layer(np.float32, n=5, cin=8, cout=8, groups=4)
    go = RNG.standard_normal((x.shape[0], w.shape[0]) + x.shape[2:]).astype(np.float32)
    gw = grad.conv2d_weight(x, w.shape, go, **kw)
    names = runs[0][2]
    nt = pyconv.get_num_threads()
    assert len(runs) == 1 and runs[0][1].n == 5
    assert [n for _, n in calls[:len(names)]] == [min(5, nt)] * len(names)
    entry = _entry(runs[0], np.float32)
    # screening: each kernel once, those past the line once more; then the kept ones on 5
    # samples; last the call itself
    start = [n for _, n in calls].index(5)
    screen, timing = calls[:start], calls[start:-1]
    assert calls[-1] == (entry["choice"], 5)
    kept = {a for a, _ in timing}
    assert all(n == min(5, nt) for _, n in screen) and {a for a, _ in screen} == set(names)
    assert len(screen) <= 2 * len(names) and entry["reference"] in kept and entry["choice"] in kept
    assert len(timing) == len(kept) * (1 + conv.TIMED_ROUNDS) and all(n == 5 for _, n in timing)
    np.testing.assert_array_equal(gw, _forced(entry["choice"], grad.conv2d_weight, x, w.shape, go, **kw))


@pytest.mark.parametrize("stored", FORWARD)
def test_stored_choice_is_taken(timed, stored):
    runs = timed
    x, w, kw = _layer(np.float32)
    calibrate.store_timed_choice(_key(x, w, kw), stored, {n: 1.0 for n in FORWARD})
    _forget()
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == stored
    np.testing.assert_array_equal(nn.conv2d(x, w, **kw), _forced(stored, nn.conv2d, x, w, **kw))
    assert runs == []


def test_gemm_is_a_candidate_where_no_threshold_lets_a_direct_kernel_run(timed, monkeypatch):
    # past the calibrated K limits the untimed default is GEMM; timed, the direct kernels
    # still compete (a 3-D 5^3 layer, an input gradient of 4 output channels: 2.4-9x faster
    # direct, AMD EPYC), and the call returns the forced kernel's result
    runs = timed
    x, w, kw = _layer(np.float32)
    limits = dict(dense_max_k=8, dense_oc_max_k=8)
    with tuning.override(**limits):             # (no timing inside a block)
        assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "gemm"
    monkeypatch.setitem(tuning._machine, "tuning", conv.dataclasses.replace(tuning.DEFAULT, **limits))
    _forget()
    out = nn.conv2d(x, w, **kw)
    assert len(runs) == 1 and runs[0][2] == FORWARD
    choice = _entry(runs[0], np.float32)["choice"]
    np.testing.assert_array_equal(out, _forced(choice, nn.conv2d, x, w, **kw))


def test_batches_share_one_timing(timed, monkeypatch):
    # the timing runs its batch of samples (here min(N, threads)): every batch of at least
    # that many reads it
    runs = timed
    monkeypatch.setattr(conv, "TIMED_BATCH_FLOPS", 0.0)
    x, w, kw = _layer(np.float32, n=5)
    nn.conv2d(x, w, **kw)
    nn.conv2d(x[:4], w, **kw)
    nn.conv2d(np.concatenate([x, x]), w, **kw)
    nt = pyconv.get_num_threads()
    assert len(runs) == 1 and runs[0][1].n == min(5, nt)


def test_input_gradient_takes_the_timed_kernel(timed):
    # the stride-1 input gradient is a forward convolution (flip_conv): timed the same way
    runs = timed
    x, w, kw = _layer(np.float32)
    go = RNG.standard_normal((x.shape[0], w.shape[0]) + x.shape[2:]).astype(np.float32)
    gx = grad.conv2d_input(x.shape, w, go, **kw)
    assert len(runs) == 1 and runs[0][0] == "forward"
    p = pyconv.explain(grad.conv2d_input, x.shape, w, go, **kw)
    choice = _entry(runs[0], np.float32)["choice"]
    assert p.algorithm == "flip_conv" and p.sub.algorithm == choice
    np.testing.assert_array_equal(gx, _forced(choice, grad.conv2d_input, x.shape, w, go, **kw))


TRANSPOSED = ("gemm", "phases", "phases_oc")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nd", [1, 2])
def test_strided_transposed_convolution_is_timed_once_and_stored(timed, dtype, nd):
    # stride 2: GEMM + col2im against the phase kernels ('phases', 'phases_oc'); the
    # stride-2 input gradient is the same transposed convolution and takes the same choice
    c = dense_direct.OC_LANES[np.dtype(dtype).name]
    spatial = {1: (300,), 2: (19, 21)}[nd]
    x = RNG.standard_normal((2, 2 * c) + spatial).astype(dtype)
    w = RNG.standard_normal((2 * c, c) + (4,) * nd).astype(dtype)
    kw = dict(stride=2, padding=1, groups=2)
    out, choice, g = _timed_once(timed, dtype, "transposed", TRANSPOSED, conv_transpose_nd(x, w, **kw),
                                 getattr(nn, f"conv_transpose{nd}d"), x, w, **kw)
    assert g.transposed and g.n == x.shape[0]
    # the input gradient of the forward convolution whose transpose this is: the same layer
    xs = (2, 2 * c) + tuple(o for o in out.shape[2:])
    gx = getattr(grad, f"conv{nd}d_input")(xs, w, x, **kw)
    p = pyconv.explain(getattr(grad, f"conv{nd}d_input"), xs, w, x, **kw)
    assert len(timed) == 1 and p.sub.algorithm == choice
    np.testing.assert_array_equal(gx, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stride1_input_gradient_much_larger_than_grad_output_times_col2im(timed, dtype):
    # stride 1, an input 9x the output: the flipped forward would compute every input
    # position from kvol taps, most of them on padding; GEMM + col2im is timed against it
    # (the transposed convolution's plan), and the input gradient takes its choice
    runs = timed
    x = RNG.standard_normal((3, 4, 12, 12)).astype(dtype)
    w = RNG.standard_normal((32, 4, 9, 9)).astype(dtype)
    go = RNG.standard_normal((3, 32, 4, 4)).astype(dtype)
    gx = grad.conv2d_input(x.shape, w, go)
    # the transposed convolution timed once; flip_conv's forward inside it planned as a call
    # plans it (timed itself where it can be)
    op, g, names = runs[0]
    assert op == "transposed" and names == ("gemm", "flip_conv") and g.transposed
    flipped = conv.flipped_geometry(g)
    assert len(runs) >= 2
    assert all(r[0] == "forward" and r[1] == conv.dataclasses.replace(flipped, n=r[1].n) for r in runs[1:])
    nruns = len(runs)
    choice = _entry(runs[0], dtype)["choice"]
    assert choice == _fastest(_entry(runs[0], dtype), names)
    p = pyconv.explain(grad.conv2d_input, x.shape, w, go)
    if choice == "gemm":
        assert p.algorithm == "transposed" and p.sub.algorithm == "gemm"
    else:
        assert p.algorithm == "flip_conv"
    ref = conv_transpose_nd(go, w)
    np.testing.assert_allclose(gx, ref, rtol=0, atol=TOL[dtype] * np.abs(ref).max())
    # the transposed convolution of the same operands: the same stored choice
    assert pyconv.explain(nn.conv_transpose2d, go, w).algorithm == choice
    np.testing.assert_array_equal(nn.conv_transpose2d(go, w), gx)
    assert len(runs) == nruns


def test_sparse_stride1_input_gradient_timed_by_the_flipped_flops(timed, monkeypatch):
    # a layer of few flops whose flipped forward computes many more (most of its taps on
    # padding) is timed all the same: the flipped convolution's flops count
    runs = timed
    x_shape, w = (1, 4, 12, 12), RNG.standard_normal((32, 4, 9, 9)).astype(np.float32)
    go = RNG.standard_normal((1, 32, 4, 4)).astype(np.float32)
    g = _forced("flip_conv", pyconv.explain, grad.conv2d_input, x_shape, w, go).geometry
    flipped = conv._flops(conv.flipped_geometry(conv.transposed_geometry(
        (1, 32, 4, 4), (32, 4, 9, 9), (1, 1), (0, 0), (0, 0), (1, 1), 1)))
    assert conv._flops(g) < 1e6 <= flipped
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 10 * flipped)
    grad.conv2d_input(x_shape, w, go)
    assert runs == []
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e6)
    _forget()
    gx = grad.conv2d_input(x_shape, w, go)
    assert runs[0][0] == "transposed" and runs[0][2] == ("gemm", "flip_conv")
    assert all(r[0] == "forward" for r in runs[1:])
    ref = conv_transpose_nd(go, w)
    np.testing.assert_allclose(gx, ref, rtol=0, atol=TOL[np.float32] * np.abs(ref).max())


@pytest.mark.parametrize("op", ["forward", "weight_grad"])
def test_a_layer_too_large_to_time_whole_is_timed_on_its_leading_rows(timed, monkeypatch, op):
    # past TIMED_MAX_FLOPS on its timing batch, a layer is timed on a proxy of its leading
    # output rows (the same channels, kernel, columns; as many rows as the bound allows),
    # and the full layer takes the proxy's choice
    runs = timed
    x, w, kw = _layer(np.float32, n=1)
    g = _forced("dense", pyconv.explain, nn.conv2d, x, w, **kw).geometry
    monkeypatch.setattr(conv, "TIMED_MAX_FLOPS", conv._flops(g) // 3)
    proxy = conv.timing_proxy(g)
    assert proxy.spatial[1:] == g.spatial[1:] and proxy.spatial[0] < g.spatial[0]
    assert (proxy.cin, proxy.cout, proxy.kernel, proxy.pads) == (g.cin, g.cout, g.kernel, g.pads)
    assert proxy.out[0] == g.out[0] // 3 and conv._flops(proxy) <= conv.TIMED_MAX_FLOPS
    if op == "forward":
        out = nn.conv2d(x, w, **kw)
        ref = conv_nd(x, w, **kw)
    else:
        go = RNG.standard_normal(g.out_shape).astype(np.float32)
        out = grad.conv2d_weight(x, w.shape, go, **kw)
        ref = weight_ref(x, w.shape, go, **kw)
    assert len(runs) == 1 and runs[0][0] == op and runs[0][1] == proxy
    choice = _entry(runs[0], np.float32)["choice"]
    fn, args = (nn.conv2d, (x, w)) if op == "forward" else (grad.conv2d_weight, (x, w.shape, go))
    assert pyconv.explain(fn, *args, **kw).algorithm == choice
    np.testing.assert_allclose(out, ref, rtol=0, atol=TOL[np.float32] * np.abs(ref).max())
    # too few rows for the bound (fewer than twice the kernel's reach plus one), or a
    # transposed geometry: no proxy, the rule decides
    monkeypatch.setattr(conv, "TIMED_MAX_FLOPS", conv._flops(g) // 10)
    assert conv.timing_proxy(g) is None
    assert conv.timing_proxy(conv.transposed_geometry((1, 4, 9, 9), (4, 4, 3, 3), (2, 2), (1, 1), (0, 0),
                                                      (1, 1), 1)) is None


def test_explain_times_and_shows_the_choice(timed):
    # explain shows the kernel the call will take: it times a layer not yet timed
    runs = timed
    x, w, kw = _layer(np.float32)
    p = pyconv.explain(nn.conv2d, x, w, **kw)
    assert len(runs) == 1
    assert p.algorithm == _entry(runs[0], np.float32)["choice"]
    nn.conv2d(x, w, **kw)
    assert len(runs) == 1


def test_threads_are_part_of_the_key(timed):
    runs = timed
    x, w, kw = _layer(np.float32)
    with pyconv.threads(1):
        nn.conv2d(x, w, **kw)
    assert len(runs) == 1 and runs[0][1].n == x.shape[0]
    if pyconv.get_num_threads() > 1:
        nn.conv2d(x, w, **kw)
        assert len(runs) == 2
        assert len(_stored()) == 2


def test_small_layers_keep_the_flag(timed, monkeypatch):
    runs = timed
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e12)
    x, w, kw = _layer(np.float32)
    # the built-in flag: the output-channel kernel for two vectors of output channels
    assert tuning.DEFAULT.dense_oc
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense_oc"
    nn.conv2d(x, w, **kw)
    assert runs == [] and calibrate.timed_count() == 0


def test_flag_decides_untimed_layers(timed, monkeypatch):
    runs = timed
    monkeypatch.setattr(conv, "TIMED_MIN_FLOPS", 1e12)
    x, w, kw = _layer(np.float32)
    with tuning.override(dense_oc=False):
        assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense"
    assert runs == []


def test_off_neither_times_nor_reads(timed, monkeypatch):
    runs = timed
    x, w, kw = _layer(np.float32)
    calibrate.store_timed_choice(_key(x, w, kw), "dense", {"gemm": 1.0, "dense": 0.5, "dense_oc": 1.0})
    monkeypatch.setenv("PYCONV_TUNING", "off")
    _forget()
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense_oc"     # the built-in flag
    nn.conv2d(x, w, **kw)
    assert runs == [] and calibrate.timed_count() == 0


def test_override_and_force_do_not_time(timed):
    runs = timed
    x, w, kw = _layer(np.float32)
    with tuning.override(dense_oc=True):
        nn.conv2d(x, w, **kw)
    for alg in FORWARD:
        p = _forced(alg, pyconv.explain, nn.conv2d, x, w, **kw)
        assert p.algorithm == alg
        _forced(alg, nn.conv2d, x, w, **kw)
    assert runs == [] and calibrate.timed_count() == 0


def test_full_store_keeps_the_flag(timed, monkeypatch):
    runs = timed
    monkeypatch.setattr(calibrate, "TIMED_MAX", 0)
    x, w, kw = _layer(np.float32)
    assert pyconv.explain(nn.conv2d, x, w, **kw).algorithm == "dense_oc"
    assert runs == []


@pytest.mark.parametrize("foreign", ["thin", "fft", "no-such-kernel"])
def test_a_foreign_stored_choice_is_timed_again(timed, foreign):
    # an entry naming no kernel this layer chose among (damaged, or another operation's) is
    # not taken: the layer is timed again and the entry replaced
    runs = timed
    x, w, kw = _layer(np.float32)
    key = _key(x, w, kw)
    with open(calibrate.timed_path(), "w") as f:
        json.dump({"choices": {key: {"choice": foreign}}}, f)
    _forget()
    nn.conv2d(x, w, **kw)
    assert len(runs) == 1 and _stored()[key]["choice"] in FORWARD
