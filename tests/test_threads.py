"""The thread runtime (pyconv/_threads.py): pyconv's own count, per-thread overrides,
threadpoolctl, other libraries' settings, fork, BLAS settings after concurrent calls,
and the load-aware team size (results never depend on it).

Busy-machine *speed* is measured by ``benchmarks/run.py busy``, not here.
"""
import contextlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pyconv
from pyconv import _threads, grad, nn

from forking import child_says, held_by_another_thread


def _run(code, **env):
    """Run ``code`` in a fresh interpreter (a state no other test touched); return stdout."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=dict(os.environ, **env),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_openmp_required_in_ci():
    if os.environ.get("PYCONV_REQUIRE_OPENMP") == "1":
        assert pyconv.openmp_enabled() is True
    assert isinstance(pyconv.openmp_enabled(), bool)


def test_set_get_and_context():
    old = pyconv.get_num_threads()
    try:
        pyconv.set_num_threads(1)
        assert pyconv.get_num_threads() == 1
        with pyconv.threads(3):
            assert pyconv.get_num_threads() == 3
            with pyconv.threads(2):
                assert pyconv.get_num_threads() == 2
            assert pyconv.get_num_threads() == 3
        assert pyconv.get_num_threads() == 1
    finally:
        pyconv.set_num_threads(old)
    assert pyconv.get_num_threads() == old


def test_context_restores_on_error():
    old = pyconv.get_num_threads()
    with pytest.raises(RuntimeError):
        with pyconv.threads(1):
            raise RuntimeError("boom")
    assert pyconv.get_num_threads() == old


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_counts(bad):
    with pytest.raises(ValueError, match="n="):
        pyconv.set_num_threads(bad)
    with pytest.raises(ValueError, match="n="):
        with pyconv.threads(bad):
            pass


@pytest.mark.parametrize("bad", [1.5, "2", None, True])
def test_bad_types(bad):
    with pytest.raises(TypeError, match="n must be an integer"):
        pyconv.set_num_threads(bad)
    with pytest.raises(TypeError, match="n must be an integer"):
        with pyconv.threads(bad):
            pass


def test_overlapping_contexts_in_two_python_threads():
    # A enters threads(1), B enters threads(3), A leaves, B leaves: each thread sees its
    # own count throughout, and the process-wide count is untouched at the end.
    old = pyconv.get_num_threads()
    steps = [threading.Event() for _ in range(4)]
    seen = {}

    def a():
        with pyconv.threads(1):
            steps[0].set()
            steps[1].wait(10)
            seen["a_inside"] = pyconv.get_num_threads()
        steps[2].set()
        seen["a_after"] = pyconv.get_num_threads()

    def b():
        steps[0].wait(10)
        with pyconv.threads(3):
            steps[1].set()
            steps[2].wait(10)
            seen["b_inside"] = pyconv.get_num_threads()
        seen["b_after"] = pyconv.get_num_threads()

    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    assert seen == {"a_inside": 1, "a_after": old, "b_inside": 3, "b_after": old}
    assert pyconv.get_num_threads() == old


def test_threadpoolctl_limits_every_python_thread():
    # (from a count of 2 at least: a limit at or above the count is no cap, by design)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = pyconv.get_num_threads()
    pyconv.set_num_threads(max(2, before))
    try:
        _check_threadpoolctl_limits(threadpoolctl)
    finally:
        pyconv.set_num_threads(before)


def _check_threadpoolctl_limits(threadpoolctl):
    old = pyconv.get_num_threads()
    for api in (None, "openmp"):
        with threadpoolctl.threadpool_limits(1, user_api=api):
            assert pyconv.get_num_threads() == 1
            other = []
            t = threading.Thread(target=lambda: other.append(pyconv.get_num_threads()))
            t.start()
            t.join()
            assert other == [1]
            with pyconv.threads(2):      # the limit caps an override too
                assert pyconv.get_num_threads() == 1
        assert pyconv.get_num_threads() == old
    info = [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "pyconv"]
    assert len(info) == 1 and info[0]["user_api"] == "openmp" and info[0]["num_threads"] == old


def test_omp_num_threads_env_default():
    assert _run("import pyconv; print(pyconv.get_num_threads())", OMP_NUM_THREADS="1") == "1"
    assert _run("import pyconv; print(pyconv.get_num_threads())", OMP_NUM_THREADS="3") == "3"


def test_other_libraries_settings_do_not_change_pyconvs_count():
    pytest.importorskip("torch")
    out = _run("""
        import torch, pyconv
        n0 = pyconv.get_num_threads()
        torch.set_num_threads(1)
        pyconv.set_num_threads(2)
        a = pyconv.get_num_threads()
        torch.set_num_threads(4)
        pyconv.set_num_threads(n0)
        print(a, pyconv.get_num_threads() == n0)
    """)
    assert out == "2 True"


def test_openmp_runtime_setting_does_not_change_pyconvs_count():
    # omp_set_num_threads on the shared runtime (what threadpoolctl's OpenMP controller and
    # other libraries call) is not read back by pyconv.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    old = pyconv.get_num_threads()
    ctl = threadpoolctl.ThreadpoolController().select(internal_api="openmp")
    for lib in ctl.lib_controllers:
        saved = lib.num_threads
        lib.set_num_threads(1)
        try:
            assert pyconv.get_num_threads() == old
        finally:
            lib.set_num_threads(saved)


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 40, 40))
    w = rng.standard_normal((16, 8, 3, 3))
    return x, w


def _fork_child(conn):
    x, w = _data()
    conn.send(nn.conv2d(x, w, padding=1))
    conn.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_after_multithreaded_call():
    x, w = _data()
    with pyconv.threads(2):
        want = nn.conv2d(x, w, padding=1)          # starts the OpenMP pool
        # child: must not hang, same result
        got = child_says(lambda: int(pyconv.get_num_threads() == 1
                                      and np.array_equal(nn.conv2d(x, w, padding=1), want)), timeout=120)
    assert got == "1", "forked child hung or computed a different result"


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork start method")
def test_multiprocessing_fork_pool_after_multithreaded_call():
    x, w = _data()
    with pyconv.threads(2):
        want = nn.conv2d(x, w, padding=1)
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_fork_child, args=(child,))
    p.start()
    assert parent.poll(120), "child of multiprocessing 'fork' hung"
    got = parent.recv()
    p.join(30)
    assert p.exitcode == 0
    np.testing.assert_array_equal(got, want)


def test_blas_settings_unchanged_after_concurrent_calls():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401  (scipy's BLAS loaded, as a user has it)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 8, 12, 12))
    w = rng.standard_normal((8, 8, 3, 3))
    y = nn.conv2d(x, w, stride=2)
    wt = rng.standard_normal((8, 4, 4, 4))

    def before():
        return [(i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "blas"]

    start = before()
    errors = []

    def work(i):
        try:
            for _ in range(5):
                grad.conv2d_backward(np.ones_like(y), x, w, None, stride=2)
                nn.conv_transpose2d(x, wt, stride=2)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert before() == start


def test_blas_limit_nests_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401

    def counts():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    start = counts()
    with _threads.blas_single_thread():
        with _threads.blas_single_thread():
            assert all(c == 1 for c in counts())
        assert all(c == 1 for c in counts())
    assert counts() == start


# ------------------------------------------------------------------ load-aware team size

@contextlib.contextmanager
def _busy_thread():
    """A thread of this process at work for the block: numpy sorts, in C with the GIL
    released (runnable most of the time), as a BLAS library's spinning worker would be."""
    import time
    stop = threading.Event()
    a = np.random.default_rng(0).standard_normal(1 << 20)

    def spin():
        while not stop.is_set():
            np.sort(a)

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        yield
    finally:
        stop.set()
        t.join()


def test_team_size_follows_other_processes_load(monkeypatch):
    ncpu = len(_threads._load.cpus) if _threads._load.cpus else _threads._available_cpus()
    if ncpu < 2:
        pytest.skip("needs two CPUs: with one, no load leaves less than one core free")
    monkeypatch.setattr(_threads._load, "foreign_runnable", lambda n: 0)
    monkeypatch.setattr(_threads._load, "others_busy", lambda: 0.0)
    assert _threads.team_size(4) == 4 and _threads.team_size(1) == 1
    monkeypatch.setattr(_threads._load, "others_busy", lambda: float(ncpu))
    assert _threads.team_size(4) == 1
    monkeypatch.setattr(_threads._load, "others_busy", lambda: ncpu - 1.0)
    assert _threads.team_size(4) == 1
    monkeypatch.setattr(_threads._load, "others_busy", lambda: 0.1)    # light background load
    assert _threads.team_size(ncpu) == ncpu


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layer", [
    # (x shape, w shape, kwargs): the direct weight kernel and the im2col + GEMM one
    ((3, 8, 21, 19), (16, 8, 3, 3), dict(padding=1)),
    ((5, 6, 17, 17), (12, 6, 3, 3), dict(stride=2, padding=1)),
    ((2, 4, 9, 11), (6, 2, 1, 1), dict(groups=2)),
    ((3, 6, 15, 13), (4, 6, 3, 3), dict(padding=1)),
])
def test_weight_gradient_bits_do_not_depend_on_load(monkeypatch, dtype, layer):
    xs, ws, kw = layer
    rng = np.random.default_rng(2)
    x = rng.standard_normal(xs).astype(dtype)
    y = nn.conv2d(x, rng.standard_normal(ws).astype(dtype), **kw)
    g = rng.standard_normal(y.shape).astype(dtype)
    monkeypatch.setattr(_threads._load, "foreign_runnable", lambda n: 0)
    with pyconv.threads(2):
        monkeypatch.setattr(_threads._load, "others_busy", lambda: 0.0)
        quiet = grad.conv2d_weight(x, ws, g, **kw)
        monkeypatch.setattr(_threads._load, "others_busy", lambda: 64.0)   # every core busy
        assert _threads.num_threads_for(1 << 30) == 1 and _threads.num_parts_for(1 << 30) == 2
        busy = grad.conv2d_weight(x, ws, g, **kw)
    assert quiet.dtype == busy.dtype == dtype
    np.testing.assert_array_equal(quiet, busy)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc")
def test_load_monitor_does_not_count_this_process_threads(monkeypatch):
    # the instantaneous count (no recent window) is of *other* processes' runnable tasks:
    # a busy thread of this process (a worker still spinning) is not one.  The machine's
    # count is taken as this process's own (no other process runnable), so the test does
    # not depend on what else the machine runs.
    monitor = _threads._LoadMonitor
    monkeypatch.setattr(monitor, "_runnable_tasks", staticmethod(lambda: monitor._own_runnable()))
    with _busy_thread():
        own = [monitor._own_runnable() for _ in range(20)]
        others = [monitor._runnable_others() for _ in range(7)]
    assert max(own) >= 2                            # the caller and the spinning thread
    assert sorted(others)[len(others) // 2] < 1.0   # neither counted as another process


@pytest.mark.skipif(not os.path.exists("/proc/self/task") or not pyconv.openmp_enabled(),
                    reason="needs /proc and OpenMP")
def test_team_size_leaves_the_cores_of_this_process_other_busy_threads(monkeypatch):
    # a thread of this process outside pyconv's team, at work in C (a BLAS library's worker
    # spinning after its call, another Python thread's numpy work) holds a core: the team
    # leaves it.  pyconv's own team, still spinning just after a region, is not counted.
    # Other processes' load is stubbed out: the test does not depend on the machine's.
    import time
    mon = _threads._load
    monkeypatch.setattr(mon, "others_busy", lambda: 0.0)
    monkeypatch.setattr(mon, "_runnable_now", lambda: 64)     # past the fast paths
    ncpu = len(mon.cpus) if mon.cpus else _threads._available_cpus()
    if ncpu < 2:
        pytest.skip("needs two CPUs: with one, a team of one thread leaves nothing to count")
    ids = _threads._pyconv_omp.team_thread_ids(2)
    assert ids[0] == threading.get_native_id() and len(set(ids)) == len(ids) == 2
    x = np.random.default_rng(3).standard_normal((4, 8, 40, 40))
    w = np.random.default_rng(4).standard_normal((8, 8, 3, 3))
    t0 = time.monotonic()
    while mon.foreign_runnable(2) and time.monotonic() - t0 < 2.0:
        time.sleep(0.02)                # an earlier test's BLAS workers wind down (~0.1 s)
    attempts = []
    with pyconv.threads(2):
        nn.conv2d(x, w, padding=1)
        # what else of this process runs meanwhile (0 on a quiet machine; a crowded one keeps
        # an earlier test's idle threads waiting for a CPU longer, and an in-process dask
        # scheduler left by an earlier test wakes now and then): the busy thread adds one.
        # Up to three tries, each its own baseline: a burst of another thread during one
        # window and not the other reads as one thread too many or too few.
        for _ in range(3):
            base = sorted(mon.foreign_runnable(2) for _ in range(15))[7]
            with _busy_thread():
                seen = sorted(mon.foreign_runnable(2) for _ in range(15))[7]
                team = sorted(_threads.team_size(ncpu) for _ in range(15))[7]
            attempts.append((base, seen, team))
            if seen == base + 1 and team == max(1, ncpu - base - 1):
                break
    assert any(seen == base + 1 and team == max(1, ncpu - base - 1) for base, seen, team in attempts), attempts
    monkeypatch.undo()
    monkeypatch.setattr(mon, "enabled", False)          # PYCONV_LOAD_AWARE=0: nothing counted
    assert mon.foreign_runnable(2) == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/task") or not pyconv.openmp_enabled(),
                    reason="needs /proc and OpenMP")
def test_own_team_is_not_counted_right_after_a_region():
    # pyconv's OpenMP workers spin a moment after each region: they are pyconv's, not
    # another library's.  In a fresh interpreter, so that no thread an earlier test left
    # can be runnable at the instant of the samples.
    out = _run("""
        import numpy as np, pyconv
        from pyconv import _threads, nn
        mon = _threads._load
        mon._runnable_now = lambda: 64          # always scan
        x = np.random.default_rng(3).standard_normal((4, 8, 40, 40))
        w = np.random.default_rng(4).standard_normal((8, 8, 3, 3))
        seen = []
        with pyconv.threads(2):
            for _ in range(5):
                nn.conv2d(x, w, padding=1)
                seen.append(mon.foreign_runnable(2))
        print(sorted(seen)[2])
    """)
    assert out == "0"


def test_foreign_runnable_lists_the_threads_only_when_more_than_the_team_runs(monkeypatch):
    # the machine's runnable tasks (/proc/loadavg) all accounted for by the caller and its
    # team's workers (still spinning after the last region): no foreign thread, and no
    # listing of the process's threads; one more runnable task: the listing decides
    mon = _threads._load
    if not mon.enabled:
        pytest.skip("load monitor off here")
    calls = []

    def scan(skip=frozenset()):
        calls.append(skip)
        return 1
    monkeypatch.setattr(_threads._task_states, "runnable", scan)
    monkeypatch.setattr(mon, "teams", {threading.get_native_id(): (2, frozenset({threading.get_native_id(), -7}),
                                                                  (-7,))})
    for total, workers_running, want, scanned in [(1, 0, 0, 0), (2, 1, 0, 0), (3, 1, 1, 1), (2, 0, 1, 1)]:
        calls.clear()
        monkeypatch.setattr(mon, "_runnable_now", lambda total=total: total)
        monkeypatch.setattr(_threads._task_states, "runnable_of",
                            lambda tids, k=workers_running: k if tuple(tids) == (-7,) else pytest.fail(tids))
        assert mon.foreign_runnable(2) == want, (total, workers_running)
        assert len(calls) == scanned, (total, workers_running)


def _states_read_afresh(skip=frozenset()):
    """Reference: each thread's state read from a freshly opened /proc/self/task/<tid>/stat."""
    n = 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) in skip:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        n += stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] == b"R"
    return n


@contextlib.contextmanager
def _spinning_thread():
    """A thread that keeps running (its kernel thread id: ``.native_id``): pyconv's direct
    kernel in a loop on one thread, the GIL released nearly all the time (a Python loop
    spends part of its time waiting for the GIL, asleep, while the scans hold it)."""
    from pyconv import signal
    stop = threading.Event()
    vol = np.random.default_rng(5).standard_normal((48, 48, 48)).astype(np.float32)
    k = np.ones((5, 5, 5), np.float32)

    def spin():
        with pyconv.threads(1):
            while not stop.is_set():
                signal.correlate(vol, k, "same", method="direct")
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        yield spinner
    finally:
        stop.set()
        spinner.join()


def _other_threads(*mine):
    """Kernel ids of this process's threads but ``mine``: an earlier test's threads (a dask
    scheduler, BLAS workers) run in bursts that are not the test's, so counts skip them."""
    return frozenset(int(t) for t in os.listdir("/proc/self/task")) - set(mine)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc/self/task")
@pytest.mark.parametrize("max_open", [64, 0])
def test_thread_states_read_through_open_files_match_fresh_reads(monkeypatch, max_open):
    # the scan keeps each thread's stat file open between calls (max_open 0: opened and
    # closed per scan); it counts what fresh reads count, skips the ids it is given, and
    # closes the file of a thread that ended
    states = _threads._TaskStates()
    monkeypatch.setattr(states, "max_open", max_open)
    with _spinning_thread() as spinner:
        me, tid = threading.get_native_id(), spinner.native_id
        others = _other_threads(me, tid)
        for skip, want in ((others, 2), (others | {me}, 1), (others | {me, tid}, 0)):
            # (each count reads the states at one instant: the most of several counts)
            got = max(states.runnable(skip) for _ in range(20))
            ref = max(_states_read_afresh(skip) for _ in range(20))
            assert got == ref == want, (skip, got, ref, want)
        assert (tid in states.fds) == (max_open > 0)
    import time
    t0 = time.monotonic()                   # (the OS thread outlives join() a moment)
    while str(tid) in os.listdir("/proc/self/task") and time.monotonic() - t0 < 5.0:
        time.sleep(0.001)
    states.runnable()
    assert tid not in states.fds
    assert len(states.fds) <= max_open
    states.close()


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/task"),
                    reason="needs fork and /proc/self/task")
def test_thread_states_in_a_forked_child_are_the_childs():
    # a forked child has one thread: the parent's files (one of a spinning thread) must
    # not count for it
    states = _threads._TaskStates()

    def in_child():
        # (threads a library's at-fork handler starts in the child are the child's own, and
        # may run: they are skipped, the forking thread is counted)
        return states.runnable(_other_threads(threading.get_native_id()))
    with _spinning_thread() as spinner:
        others = _other_threads(threading.get_native_id(), spinner.native_id)
        assert max(states.runnable(others) for _ in range(20)) == 2
        assert spinner.native_id in states.fds
        got = child_says(in_child)
    states.close()
    assert got == "1"


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/task"),
                    reason="needs fork and /proc/self/task")
def test_thread_states_scan_in_a_child_forked_while_another_thread_scans():
    # the scan's lock, held by another thread at the fork, must not block the child
    states = _threads._task_states
    states.runnable()
    with held_by_another_thread(states.lock):
        got = child_says(lambda: states.runnable(_other_threads(threading.get_native_id())))
    assert got == "1"


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")
def test_load_monitor_sees_a_busy_process():
    # the hog holds one core (at least half of one on a crowded machine).  Up to three
    # windows, each with its own monitor: the window's average is capped by the other
    # processes' tasks runnable at the instant of the second reading, the machine's count
    # less this process's, read a moment apart -- in the full suite a thread an earlier
    # test left woke between the two once and the cap read 0 (still fails every time if
    # the monitor does not see the hog)
    import time
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    seen = []
    try:
        for _ in range(3):
            mon = _threads._LoadMonitor()
            mon.others_busy()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.6:      # sleep: this process uses no CPU meanwhile
                time.sleep(0.05)
            seen.append(mon.others_busy())
            if seen[-1] >= 0.5:
                break
    finally:
        hog.kill()
        hog.wait()
    assert max(seen) >= 0.5, seen


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")
def test_load_monitor_forgets_a_burst_that_has_ended(monkeypatch):
    # a process busy for most of the window and gone before the next call: the window's
    # average says over a quarter of a core, but nothing else is runnable now, so the next
    # call gets the whole team (a dask cluster's workers just after their tasks).  What is
    # runnable now is stubbed as a whole (no other task, then one): the test does not depend
    # on what else the machine runs, nor on two reads of this process's own threads agreeing
    # (a thread left by an earlier test may change state between them); ``stale`` is raised
    # so that a slow start of the hog on a crowded machine cannot age the window out.
    import time
    monitor = _threads._LoadMonitor
    extra = [0]
    monkeypatch.setattr(monitor, "_runnable_others", classmethod(lambda cls: float(extra[0])))
    monkeypatch.setattr(monitor, "stale", 60.0)
    for n in (0, 1):
        extra[0] = n
        mon = monitor()
        mon.others_busy()
        hog = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.4: pass"])
        hog.wait()
        time.sleep(0.15)
        window = ((mon._busy_seconds() - mon.busy) - (time.process_time() - mon.own)) / (time.monotonic() - mon.t)
        others = mon.others_busy()
        assert window >= 0.25, window                  # the hog's 0.4 s is in the window
        assert others == pytest.approx(min(window, n), abs=0.1), (n, window, others)


@pytest.fixture
def serial_first_touch():
    from pyconv._engine import tuning
    with tuning.override(first_touch_serial=True):
        yield


def test_first_touch_writes_one_byte_per_huge_page_of_large_new_arrays(serial_first_touch):
    # where the calibration asks for it, the calling thread faults a new output's huge
    # pages before a team writes it: one zero byte per huge page and the last byte, nothing
    # else; small arrays, one-thread calls and strided views are left alone
    hp = _threads.HUGE_PAGE
    a = np.full(3 * hp + 1000, 7, dtype=np.uint8)
    assert _threads.first_touch(a, 2) is a
    touched = np.flatnonzero(a != 7)
    np.testing.assert_array_equal(touched, [0, hp, 2 * hp, 3 * hp, a.size - 1])
    b = np.full(6 * hp, 7, dtype=np.uint8).view(np.float32).reshape(2, -1)     # a 2-d float32 array
    _threads.first_touch(b, 2)
    assert np.count_nonzero(b.view(np.uint8) != 7) == 6 + 1
    for arr, team in ((np.full(hp, 7, dtype=np.uint8), 2),           # under 4 MiB
                      (np.full(3 * hp, 7, dtype=np.uint8), 1),        # one thread
                      (np.full((3 * hp, 2), 7, dtype=np.uint8)[:, 0], 2)):   # not contiguous
        _threads.first_touch(arr, team)
        assert (arr == 7).all()
    from pyconv._engine import tuning
    c = np.full(3 * hp, 7, dtype=np.uint8)
    with tuning.override(first_touch_serial=False):       # the team faults faster here
        _threads.first_touch(c, 2)
    assert (c == 7).all()


@pytest.mark.parametrize("op", ["forward", "input"])
def test_outputs_on_fresh_memory_equal_the_one_thread_result(op, serial_first_touch):
    # outputs of several MiB (first_touch runs before the team writes them) hold the
    # kernel's values everywhere, the touched bytes included
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 128, 48, 48)).astype(np.float32)     # 4.5 MiB in and out
    w = rng.standard_normal((128, 128, 3, 3)).astype(np.float32)
    go = rng.standard_normal((4, 128, 48, 48)).astype(np.float32)
    call = (lambda: nn.conv2d(x, w, padding=1)) if op == "forward" else \
        (lambda: grad.conv2d_input(x.shape, w, go, padding=1))
    with pyconv.threads(1):
        one = call()
    with pyconv.threads(2):
        two = call()
    assert one.nbytes >= 4 << 20
    np.testing.assert_array_equal(one, two)


def test_blas_single_thread_restores_the_count_after_nested_and_failing_blocks():
    # the kernels' matrix products run on BLAS's one thread; BLAS's own count is back
    # afterwards, after nested blocks and after an error inside one
    import threadpoolctl

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        assert before and max(before) == 2
        with _threads.blas_single_thread():
            assert max(blas_threads()) == 1
            with _threads.blas_single_thread():
                assert max(blas_threads()) == 1
            assert max(blas_threads()) == 1
        assert blas_threads() == before
        with pytest.raises(RuntimeError):
            with _threads.blas_single_thread():
                raise RuntimeError("task failed")
        assert blas_threads() == before


@pytest.mark.skipif(not os.path.exists("/proc/self/task") or not pyconv.openmp_enabled(),
                    reason="needs /proc and OpenMP")
def test_matmul_plans_leave_no_blas_thread_running(monkeypatch):
    # the 1x1 plans' matrix products run on pyconv's team with BLAS on one thread: no BLAS
    # worker is left spinning after the call (OpenBLAS's spin ~0.1 s after a threaded one)
    import time
    from pyconv._engine import plan as _plan
    from pyconv._engine.plan import Algorithm as A
    mon = _threads._load
    monkeypatch.setattr(mon, "_runnable_now", lambda: 64)     # always scan
    monkeypatch.setattr(mon, "others_busy", lambda: 0.0)      # two threads, however busy the machine
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 256, 48, 48))
    w = rng.standard_normal((64, 256, 1, 1))
    g = rng.standard_normal((2, 64, 48, 48))
    # and the resize convolution's gradient, whose upsampling adjoint is two matrix products
    # per plane (with a 1x1 kernel, so the forced plan serves its convolution too)
    xr, wr = rng.standard_normal((2, 16, 64, 64)), rng.standard_normal((16, 16, 1, 1))
    gr = rng.standard_normal((2, 16, 128, 128))
    calls = [lambda: nn.conv2d(x, w), lambda: grad.conv2d_input(x.shape, w, g),
             lambda: grad.conv2d_weight(x, w.shape, g),
             lambda: grad.resize_conv2d_backward(gr, xr, wr, mode="bilinear")]
    a = rng.standard_normal((1024, 1024))
    with pyconv.threads(2):
        a @ a                           # numpy's own threaded product: OpenBLAS's workers spin
        if not mon.foreign_runnable(2):
            pytest.skip("numpy's BLAS leaves no worker running after a threaded product here")
        for call in calls:
            t0 = time.monotonic()
            while mon.foreign_runnable(2) and time.monotonic() - t0 < 2.0:
                time.sleep(0.02)
            with _plan.force(A.MATMUL):
                call()
            # a BLAS worker spins ~0.1 s: runnable in every sample over 10 ms (a helper
            # thread still on its way back to its queue, on a crowded machine, is not)
            seen = []
            for _ in range(5):
                seen.append(mon.foreign_runnable(2))
                time.sleep(0.002)
            assert min(seen) == 0, seen


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_resize_conv_gradient_bits_do_not_depend_on_threads(mode):
    # the upsampling adjoint's planes are split over the team whole: the same bits at 1 and 2
    # threads, equal to the products written out (mh^T g mw per plane) within rounding
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5, 24, 20)).astype(np.float32)
    w = rng.standard_normal((4, 5, 3, 3)).astype(np.float32)
    g = rng.standard_normal((3, 4, 48, 40)).astype(np.float32)
    outs = []
    for n in (1, 2):
        with pyconv.threads(n):
            outs.append(grad.resize_conv2d_backward(g, x, w, mode=mode)[0])
    np.testing.assert_array_equal(outs[0], outs[1])
    gu = grad.conv2d_input((3, 5, 48, 40), w, g, padding=1)
    mh = grad._upsample_matrix(24, 2, mode, np.float64)
    mw = grad._upsample_matrix(20, 2, mode, np.float64)
    ref = np.einsum("hi,ncij,jw->nchw", mh.T, gu.astype(np.float64), mw)
    np.testing.assert_allclose(outs[0], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_plan_bits_do_not_depend_on_load(monkeypatch, dtype):
    from pyconv._engine import plan as _plan
    from pyconv._engine.plan import Algorithm as A
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 40, 13, 17)).astype(dtype)      # one sample: spans of columns
    w = rng.standard_normal((24, 40, 1, 1)).astype(dtype)
    g = rng.standard_normal((1, 24, 13, 17)).astype(dtype)
    monkeypatch.setattr(_threads._load, "foreign_runnable", lambda n: 0)
    out = []
    for busy in (0.0, 64.0):
        monkeypatch.setattr(_threads._load, "others_busy", lambda busy=busy: busy)
        with pyconv.threads(2), _plan.force(A.MATMUL):
            out.append((nn.conv2d(x, w), grad.conv2d_input(x.shape, w, g), grad.conv2d_weight(x, w.shape, g)))
    for quiet, loaded in zip(*out):
        assert quiet.dtype == loaded.dtype == dtype
        np.testing.assert_array_equal(quiet, loaded)
    want = np.einsum("oc,nchw->nohw", w[:, :, 0, 0].astype(np.float64), x.astype(np.float64))
    np.testing.assert_allclose(out[0][0], want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


needs_two_cpus = pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                                    reason="needs Linux and two CPUs")


@needs_two_cpus
def test_move_off_leaves_the_cpu_and_keeps_the_affinity_mask():
    # the C helper every kernel region's workers call (pyconv_omp.h: pyconv_move_off): on
    # the CPU given it moves elsewhere, its mask unchanged; elsewhere it does nothing; with
    # that CPU the only one allowed it stays
    from pyconv._kernels import _pyconv_omp
    mask = os.sched_getaffinity(0)
    try:
        cpu = _pyconv_omp.current_cpu()
        assert cpu in mask
        # once the mask is back the scheduler may move the thread back at any moment (it did
        # in a CI run, the other CPU busy): a move seen elsewhere in one of a few tries shows
        # move_off moves; every try leaves the mask as it was
        seen = False
        for _ in range(50):
            os.sched_setaffinity(0, {cpu})            # now on it, whatever the scheduler did meanwhile
            os.sched_setaffinity(0, mask)
            moved = _pyconv_omp.move_off(cpu)
            assert moved in (0, 1) and os.sched_getaffinity(0) == mask
            if moved == 1 and _pyconv_omp.current_cpu() != cpu:
                seen = True
                break
        assert seen
        # elsewhere it does nothing (pinned there, so the scheduler cannot move it meanwhile)
        here = _pyconv_omp.current_cpu()
        other = next(c for c in mask if c != here)
        os.sched_setaffinity(0, {here})
        assert _pyconv_omp.move_off(other) == 0 and os.sched_getaffinity(0) == {here}
        assert _pyconv_omp.move_off(here) == -1 and os.sched_getaffinity(0) == {here}
        assert _pyconv_omp.move_off(-1) == 0
    finally:
        os.sched_setaffinity(0, mask)


@needs_two_cpus
def test_workers_sharing_the_callers_cpu_keep_their_masks_and_the_bits():
    # every worker of the team pinned to the caller's CPU (where the regions' check finds it
    # and cannot move it: no other CPU allowed), then allowed everywhere again while on it
    # (where the check moves it): each time the same bits as the free team, and every
    # thread's mask as it was.  In a fresh interpreter: the pins outlive nothing else.
    out = _run("""
        import os, numpy as np, pyconv
        from pyconv import grad, nn
        from pyconv._kernels import _pyconv_omp
        rng = np.random.default_rng(5)
        x = rng.standard_normal((4, 32, 20, 20)).astype(np.float32)
        w = rng.standard_normal((48, 32, 3, 3)).astype(np.float32)
        go = rng.standard_normal((4, 48, 10, 10)).astype(np.float32)
        def calls():
            return [nn.conv2d(x, w, stride=2, padding=1), grad.conv2d_input(x.shape, w, go, stride=2, padding=1),
                    grad.conv2d_weight(x, w.shape, go, stride=2, padding=1), nn.conv2d(x, w[:32, :1], groups=32)]
        with pyconv.threads(2):
            want = calls()
            ids = _pyconv_omp.team_thread_ids(2)
            masks = {t: os.sched_getaffinity(t) for t in ids}
            me = _pyconv_omp.current_cpu()
            for t in ids:
                os.sched_setaffinity(t, {me})
            pinned = calls()
            for t in ids:
                os.sched_setaffinity(t, masks[t])
            freed = calls()
            same = all(np.array_equal(a, b) for got in (pinned, freed) for a, b in zip(got, want))
            kept = all(os.sched_getaffinity(t) == masks[t] for t in ids)
        print(len(ids), same, kept)
    """)
    assert out == "2 True True"
