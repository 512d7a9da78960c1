"""dask suite: pyconv.dask on a 2-worker LocalCluster (processes, 1 thread each).

Rows:
- volume convolution ('same', zero fill), float32 volume of ``size``^3 in 128^3 chunks
  (``PYCONV_DASK_SIZE``, default 512 = 512 MiB; 256 with ``--quick``), 3^3 and 7^3
  kernels: pyconv.dask.convolve against dask_image.ndfilters.convolve on the same
  cluster (target >= 3x) and against in-memory pyconv.signal.convolve in this process
  on all its threads (target >= 0.7x).  Each dask run reduces the result with
  ``.sum()`` (so the output streams through instead of filling the workers; it also
  checks that both dask results agree); the in-memory call is timed right after each
  cluster run (the host's speed drifts within minutes: timed in two separate series, a
  ratio compared different machine states), as the convolution alone (``in_memory_s``)
  and with the same ``.sum()`` (``in_memory_with_sum_s``: the same work on both sides).
  ``graph_floor_s``: the same dask run with each output task's assembly and convolution
  replaced by a one-element result (halo exports, transfers, reduction and scheduling
  left as they are), the cost of the cluster before any convolution.
- ndimage filters on the same volume (mode 'reflect'): gaussian_filter sigma 2 (halo 8)
  and uniform_filter size 7 (halo 3), pyconv.dask.ndimage against
  dask_image.ndfilters on the same cluster and against in-memory pyconv.ndimage on all
  threads (timed in turn, as above); the dask sums must agree, and a 16^3 cube around a
  chunk corner from each dask path is compared with the in-memory result.
- layer a of suite_nn (3x3 64->64 56x56, float32), batch 64 in chunks of 8: conv2d
  forward and conv2d_backward on the cluster (results persisted on the workers) against
  the in-memory calls on all threads (target >= 0.7x), with the input as
  ``from_array(...).persist()`` placed it and with its chunks dealt to the workers in turn
  (``input_chunks_per_worker`` gives both), timed in turn run by run (a cluster
  run, then the in-memory call on all threads, then on 1 thread: the 2-thread speedup
  the two 1-thread workers have to match); the peak is also given in units of one input
  chunk (8x64x56x56 float32; no halo: the spatial axes are whole), with and without the
  persisted results the worker holds at the end (``transient_over_chunk``: the rise less
  those results; the largest over workers and runs).
- the routing check's cost per call of an in-memory function (numpy arguments), before
  and after dask is imported.
- peak worker memory during each volume run: the largest rise of a worker's RSS above
  its level before the run less what pyconv's memory pool held then (those blocks are
  reused by the run: without counting them, a run after the warm-up showed almost no
  rise) (psutil, sampled every 5 ms by a thread in each worker; the
  persisted input is in the baseline, and each run starts once no key has a second copy
  on another worker), reported as a multiple of one chunk plus its halo (target <= 4x):
  the largest over workers and timed runs (``peak_over_chunk_halo``), each worker of each
  run (``..._per_run_worker``, workers in address order) and their median.  It counts
  everything the run adds: the assembled region and the result of the running task,
  kernel temporaries, exported slices, and input chunks the scheduler copies to the other
  worker to balance the queues.  Beside it, dask's own accounting at the moment of the
  largest rise: the managed bytes added since the run began (sizeof of each value held;
  an export that is a view of a held chunk counts there but takes no RSS), how many
  input chunks had a copy fetched to that worker (8 MiB each at 128^3 float32), and the
  halo exports it held then (``halo_exports_at_worst``, ``halo_exports_MiB_at_worst``:
  the pieces cut there and those fetched for outputs that had not run yet).

The volume input is generated on the workers and persisted before timing; the
in-memory peer gets the same volume, computed into this process.

``PYCONV_DASK_ROWS`` (comma-separated, default all) picks row groups: ``volume``,
``ndimage``, ``nn`` (e.g. ``PYCONV_DASK_ROWS=nn`` runs only the layer-a rows).
"""
import functools
import itertools
import os
import time

import numpy as np

import pyconv

MiB = 1 << 20


_SAMPLER = {}


def _managed(dask_worker):
    """{key: bytes} of the keys this worker holds in memory (dask's own accounting: sizeof of
    each value; a view counts its elements, though it takes no memory of its own)."""
    for _ in range(5):          # the event loop may change the dict while this thread reads it
        try:
            return {k: ts.nbytes or 0 for k, ts in list(dask_worker.state.tasks.items()) if ts.state == "memory"}
        except RuntimeError:
            continue
    return {}


def _sampler_start(dask_worker=None):
    """In a worker: sample this process's RSS every 5 ms until stopped; at each new RSS peak,
    also what dask holds there (:func:`_managed`)."""
    import threading

    import psutil
    proc = psutil.Process()
    before = _managed(dask_worker) if dask_worker is not None else {}
    # the blocks pyconv's memory pool holds are in the baseline RSS but serve the run: they
    # count as part of its rise (else a run after a warm-up shows ~0 for what it reuses)
    from pyconv import _memory
    held = _memory.stats()["held"]
    state = {"base": proc.memory_info().rss - held, "peak": 0, "stop": False, "before": before,
             "at_peak": before}

    def loop():
        while not state["stop"]:
            rss = proc.memory_info().rss
            if rss > state["peak"]:
                state["peak"] = rss
                if dask_worker is not None:
                    state["at_peak"] = _managed(dask_worker)
            time.sleep(0.005)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    _SAMPLER["run"] = (state, t)
    return state["base"]


def _sampler_stop(dask_worker=None):
    """``{'rise', 'managed_rise', 'copies', 'halo_pieces', 'halo_bytes'}``: the largest RSS rise
    above the level before the run; dask's managed bytes at that moment less those before the
    run; how many chunks of the arrays held before the run (the persisted input) had a copy
    fetched to this worker then (each one a whole chunk moved to run an output away from its
    data); and pyconv.dask's halo exports held then, their count and dask's bytes (a view cut
    on this worker counts its elements, though it takes no memory of its own)."""
    state, t = _SAMPLER.pop("run")
    state["stop"] = True
    t.join()
    before, at = state["before"], state["at_peak"]
    names = {k[0] if isinstance(k, tuple) else k for k in before}
    copies = sum(1 for k in at if k not in before and (k[0] if isinstance(k, tuple) else k) in names)
    # pyconv.dask's halo exports held then (their keys' names have '-halo-'): the pieces cut
    # here and those fetched for outputs that have not run yet
    halo = [v for k, v in at.items() if k not in before and "-halo-" in str(k[0] if isinstance(k, tuple) else k)]
    return {"rise": state["peak"] - state["base"],
            "managed_rise": sum(at.values()) - sum(before.values()), "copies": copies,
            "halo_pieces": len(halo), "halo_bytes": sum(halo)}


def _rises(stops):
    """{worker: RSS rise} from :func:`_sampler_stop`'s answers."""
    return {a: v["rise"] for a, v in stops.items()}


def _cluster_run(client, fn):
    """Seconds of ``fn()``, what :func:`_sampler_stop` says of each worker meanwhile, and the result."""
    client.run(_sampler_start)
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    stops = client.run(_sampler_stop)
    return dt, stops, result


def _settle(client, timeout=10.0):
    """Wait until no key is held by two workers (a copy fetched by the previous run stays until
    the active memory manager drops it, every 2 s by default): each run's baseline RSS then
    holds the same data, and a copy dropped during a run does not hide part of its rise."""
    count = lambda: client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.replicated_tasks))  # noqa: E731
    t0 = time.perf_counter()
    while count() and time.perf_counter() - t0 < timeout:
        time.sleep(0.1)


def _ntasks(client):
    """Tasks the scheduler holds."""
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def _reset(client, base):
    """Before a run: wait until the scheduler is back to ``base`` tasks (a cancelled result is
    gone: the keys are deterministic, so a held result would make the run a no-op), then
    until the workers settle (:func:`_settle`)."""
    while _ntasks(client) > base:
        time.sleep(0.05)
    _settle(client)


def _median(h, client, fn, repeats, peaks=None, peer=None, peer2=None):
    """Median seconds, largest RSS rise and the last result of ``repeats`` runs of ``fn``.

    Results persisted on the cluster are released before the next run: the keys are
    deterministic, so a held result would make the next run a no-op.  ``peaks`` (a list)
    receives each timed run's :func:`_sampler_stop` answers, worker by worker.  ``peer``
    (a callable and a list): the in-memory peer, timed right after each cluster run (in
    turn, so both see the same machine state: this host's speed drifts by up to 2x within
    minutes), its seconds appended to the list; ``peer2`` likewise, timed after ``peer``.
    """
    base = _ntasks(client)
    times, rises, result = [], [], None
    for i in range(repeats + 1):            # the first run warms the workers up (imports, plans)
        if result is not None:
            client.cancel(result)
            result = None           # (no reference left: the scheduler can forget the keys)
        _reset(client, base)
        dt, stops, result = _cluster_run(client, fn)
        for p in (peer, peer2):
            if p is not None:
                time.sleep(0.005)
                t0 = time.perf_counter()
                p[0]()
                if i:
                    p[1].append(time.perf_counter() - t0)
        if i:
            times.append(dt)
            rises.append(max(_rises(stops).values()))
            if peaks is not None:
                peaks.append(stops)
    times.sort()
    return times[len(times) // 2], max(rises), result


def _on_threads(h, n, fn):
    """``fn`` run on ``n`` threads (a callable for :func:`_median`'s peer)."""
    def run():
        with h.threads(n):
            fn()
    return run


def _stub_body(func, lit, layout, fill, *rest):
    """Stands for an output task's body in :func:`_floor`: a one-element array of the
    output's rank (the layout nests one list level per axis), no assembly, no convolution."""
    node, ndim = layout.value, 0
    while isinstance(node, list):
        node, ndim = node[0], ndim + 1
    return np.zeros((1,) * max(ndim, 1), dtype=np.float32)


def _stub_outputs(on, dask_worker=None):
    """In a worker: pyconv.dask's output tasks run :func:`_stub_body` (``on``) or their own body
    again.  The tasks look the body up in pyconv.dask at run time, so the graph the client
    sends is the very one of the real run."""
    import pyconv.dask as pdk
    if on:
        _SAMPLER["bodies"] = (pdk._run_slabs_body, pdk._run_block_body)
        pdk._run_slabs_body = pdk._run_block_body = _stub_body
    else:
        pdk._run_slabs_body, pdk._run_block_body = _SAMPLER.pop("bodies")


def _floor(h, client, fn, repeats):
    """Median seconds of ``fn`` with every output task's assembly and kernel replaced by a
    one-element result (:func:`_stub_outputs`): the same graph, its halo exports cut and
    sent between the workers, the reduction, the scheduler -- what the cluster costs before
    any convolution."""
    client.run(_stub_outputs, True)
    try:
        return _median(h, client, fn, repeats)[0]
    finally:
        client.run(_stub_outputs, False)


def _forward(client, X, G, w, b):
    """The nn rows' forward: ``conv2d`` of ``X``, persisted on the workers."""
    import distributed

    import pyconv.dask as pdk
    y = pdk.conv2d(X, w, b, padding=1).persist()
    distributed.wait(y)
    return y


def _backward(client, X, G, w, b):
    """The nn rows' backward: the three gradients of ``conv2d_backward``, persisted."""
    import distributed

    import pyconv.dask as pdk
    grads = client.persist(list(pdk.conv2d_backward(G, X, w, b, padding=1)))
    distributed.wait(grads)
    return grads


def _spread(client, a, step):
    """``a`` as a dask array in chunks of ``step`` along axis 0, persisted with the chunks
    dealt to the workers in turn (``from_array(...).persist()`` may leave one worker 5 of 8
    chunks: its share then bounds the run)."""
    import dask
    import dask.array as da
    import distributed
    ws = sorted(client.scheduler_info()["workers"])
    futs = [client.scatter(a[i:i + step], workers=[ws[(i // step) % len(ws)]]) for i in range(0, len(a), step)]
    out = da.concatenate([da.from_delayed(dask.delayed(f), (min(step, len(a) - i),) + a.shape[1:], a.dtype)
                          for i, f in zip(range(0, len(a), step), futs)]).persist()
    distributed.wait(out)
    return out


def _per_worker(client, x):
    """How many of ``x``'s chunks each worker holds (workers in address order; a chunk with a
    copy on both counts on both)."""
    held = {}
    for key, where in client.who_has(x).items():
        for w in where:
            held[w] = held.get(w, 0) + 1
    return [held.get(w, 0) for w in sorted(client.scheduler_info()["workers"])]


def _peak_fields(peaks, halo_bytes):
    """Row fields from the timed runs' :func:`_sampler_stop` answers: per run, each worker's
    RSS rise over (chunk + halo) bytes, the workers in address order; the median and the
    largest over runs and workers; dask's managed rise, the copies of input chunks and the
    halo exports held at the largest one."""
    per_run = [[round(v["rise"] / halo_bytes, 1) for _, v in sorted(stops.items())] for stops in peaks]
    flat = sorted(r for run in per_run for r in run)
    worst = max((v for stops in peaks for v in stops.values()), key=lambda v: v["rise"])
    return dict(peak_over_chunk_halo_per_run_worker=per_run,
                peak_over_chunk_halo_median=flat[len(flat) // 2],
                peak_managed_rise_MiB_at_worst=worst["managed_rise"] / MiB,
                input_chunk_copies_at_worst=worst["copies"],
                halo_exports_at_worst=worst["halo_pieces"], halo_exports_MiB_at_worst=worst["halo_bytes"] / MiB,
                input_chunk_copies_per_run_worker=[[v["copies"] for _, v in sorted(stops.items())]
                                                   for stops in peaks])


def _interleaved(h, client, fn, mem_fn, repeats):
    """Median seconds of ``fn`` on the cluster and of ``mem_fn`` in this process on all threads
    and on 1 thread, called in turn run by run after one warm-up of each; the largest
    ``(rise, transient)`` of the cluster runs (see :func:`_transient`) and the last cluster
    result."""
    ncpu = pyconv.get_num_threads()
    base = _ntasks(client)
    td, tm, t1, rises, result = [], [], [], [], None
    for i in range(repeats + 1):
        if result is not None:
            client.cancel(result)
            result = None           # (no reference left: the scheduler can forget the keys)
        _reset(client, base)
        client.run(_sampler_start)
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        rise = _transient(client, _rises(client.run(_sampler_stop)), result)
        for n, out in ((ncpu, tm), (1, t1)):
            time.sleep(0.005)
            with h.threads(n):
                t0 = time.perf_counter()
                mem_fn()
                out.append(time.perf_counter() - t0)
        if i:
            td.append(dt)
            rises.append(rise)
        else:
            del tm[0], t1[0]
    return (float(np.median(td)), tuple(max(r[i] for r in rises) for i in range(2)), result,
            float(np.median(tm)), float(np.median(t1)))


def _transient(client, rises, result):
    """``(rise, transient)``: the largest worker RSS rise, and the largest rise less the bytes of
    the persisted results that worker holds at the end (what the run needed on the way)."""
    from distributed import futures_of
    keys = [f.key for f in futures_of(result)]

    def holders(dask_scheduler):
        return [([ws.address for ws in dask_scheduler.tasks[k].who_has or ()], dask_scheduler.tasks[k].nbytes)
                for k in keys if k in dask_scheduler.tasks]

    held = {a: 0 for a in rises}
    for addrs, nbytes in client.run_on_scheduler(holders):
        for a in addrs:
            held[a] = held.get(a, 0) + nbytes
    return max(rises.values()), max(r - held.get(a, 0) for a, r in rises.items())


def _routing_overhead(h):
    """Nanoseconds the dask check adds to a call of an in-memory function with numpy arguments."""
    import timeit

    from pyconv._dask_dispatch import _wrap

    def plain(in1, in2, mode="full", method="auto"):
        return None

    plain.__module__ = "pyconv.signal"
    routed = _wrap(plain, "signal", {"__builtins__": __builtins__})
    x, k = np.ones(4), np.ones(2)

    def per_call(fn, n=100000):
        return float(np.median(timeit.repeat(lambda: fn(x, k, "same", "direct"), number=n, repeat=7))) / n * 1e9

    return per_call(routed) - per_call(plain)


def _ndimage_rows(h, client, x, x_mem, size, chunk, repeats, ncpu, ndfilters):
    """gaussian_filter (sigma 2) and uniform_filter (size 7), mode 'reflect', on the persisted volume.

    pyconv.dask.ndimage against dask_image.ndfilters on the same cluster and against the
    in-memory pyconv.ndimage call on all threads.  Agreement: the two dask sums, and the
    cube of 16^3 voxels around the first chunk corner (it reads from 8 chunks) computed by
    both dask paths against the in-memory result (max error relative to max |result|).
    """
    import pyconv.dask as pdk
    import pyconv.ndimage as nd
    corner = (slice(max(0, chunk - 8), chunk + 8),) * 3
    for fname, arg, reach in (("gaussian_filter", 2.0, int(4 * 2.0 + 0.5)), ("uniform_filter", 7, 3)):
        ours = getattr(pdk.ndimage, fname)
        mem, mem_sum = [], []
        t_pc, rise_pc, s_pc = _median(h, client, lambda: ours(x, arg).sum().compute(), repeats,
                                      peer=(_on_threads(h, ncpu, lambda: getattr(nd, fname)(x_mem, arg)), mem),
                                      peer2=(_on_threads(h, ncpu, lambda: getattr(nd, fname)(x_mem, arg).sum()),
                                             mem_sum))
        t_mem, t_mem_sum = float(np.median(mem)), float(np.median(mem_sum))
        ref = getattr(nd, fname)(x_mem[tuple(slice(0, chunk + 8 + reach) for _ in range(3))], arg)[corner]
        scale = float(np.abs(ref).max())
        err = lambda y: float(np.abs(y[corner].compute() - ref).max()) / scale  # noqa: E731
        halo_bytes = 4 * (chunk + 2 * reach) ** 3
        row = dict(case=f"ndimage {fname}({arg}) {size}^3 f32 chunks {chunk}^3 reflect", pyconv_dask_s=t_pc,
                   in_memory_s=t_mem, in_memory_threads=ncpu, ratio_in_memory=t_mem / t_pc,
                   in_memory_with_sum_s=t_mem_sum, ratio_in_memory_with_sum=t_mem_sum / t_pc,
                   gvoxel_per_s_dask=size ** 3 / t_pc / 1e9, max_rel_err_corner=err(ours(x, arg)),
                   peak_worker_rise_MiB=rise_pc / MiB, peak_over_chunk_halo=rise_pc / halo_bytes)
        if ndfilters is not None:
            theirs = getattr(ndfilters, fname)
            t_di, rise_di, s_di = _median(h, client, lambda: theirs(x, arg).sum().compute(), repeats)
            row.update(dask_image_s=t_di, ratio_dask_image=t_di / t_pc, dask_image_peak_rise_MiB=rise_di / MiB,
                       dask_image_max_rel_err_corner=err(theirs(x, arg)),
                       sums_agree=bool(np.isclose(s_pc, s_di, rtol=1e-4, atol=1e-4 * size ** 1.5)))
        h.record(**row)


def run(h):
    import sys
    if "dask" not in sys.modules:
        h.record(case="routing overhead per call, dask not imported (ns)", ns=_routing_overhead(h))
    try:
        import dask.array as da
        import distributed
    except ImportError as e:
        print(f"  skipped: {e} (pip install 'pyconv[dask]')")
        return
    import pyconv.dask as pdk
    h.record(case="routing overhead per call, dask imported, 4 numpy/str arguments (ns)", ns=_routing_overhead(h))
    try:
        from dask_image import ndfilters
    except ImportError:
        ndfilters = None
        print("  note: dask_image missing, its rows are skipped")
    size = int(os.environ.get("PYCONV_DASK_SIZE", 256 if h.quick else 512))
    chunk = min(128, size)
    repeats = 3 if h.quick else min(h.repeats, 5)
    ncpu = pyconv.get_num_threads()
    groups = set(os.environ.get("PYCONV_DASK_ROWS", "volume,ndimage,nn").split(","))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        if groups & {"volume", "ndimage"}:
            rng = da.random.default_rng(0)
            x = rng.standard_normal((size,) * 3, chunks=chunk, dtype=np.float32).persist()
            distributed.wait(x)
            x_mem = x.compute()
            for ksz in ((3, 7) if "volume" in groups else ()):
                k = np.random.default_rng(ksz).standard_normal((ksz,) * 3).astype(np.float32)
                halo_bytes = 4 * (chunk + ksz - 1) ** 3
                peaks, mem = [], []
                mem_sum = []
                t_pc, rise_pc, s_pc = _median(
                    h, client, lambda: pdk.convolve(x, k, "same").sum().compute(), repeats, peaks,
                    peer=(_on_threads(h, ncpu, lambda: pyconv.signal.convolve(x_mem, k, "same")), mem),
                    peer2=(_on_threads(h, ncpu, lambda: pyconv.signal.convolve(x_mem, k, "same").sum()), mem_sum))
                t_mem, t_mem_sum = float(np.median(mem)), float(np.median(mem_sum))
                t_floor = _floor(h, client, lambda: pdk.convolve(x, k, "same").sum().compute(), repeats)
                with h.threads(ncpu):
                    method = pyconv.signal.choose_conv_method(x_mem[:chunk + ksz - 1, :chunk + ksz - 1,
                                                                     :chunk + ksz - 1], k, "valid")
                flops = 2.0 * size ** 3 * ksz ** 3
                row = dict(case=f"volume {size}^3 f32 chunks {chunk}^3 kernel {ksz}^3", chunk_method=method,
                           pyconv_dask_s=t_pc, in_memory_s=t_mem, in_memory_threads=ncpu,
                           ratio_in_memory=t_mem / t_pc, in_memory_with_sum_s=t_mem_sum,
                           ratio_in_memory_with_sum=t_mem_sum / t_pc, graph_floor_s=t_floor,
                           floor_share=t_floor / t_pc, gflops_dask=flops / t_pc / 1e9,
                           peak_worker_rise_MiB=rise_pc / MiB, peak_over_chunk_halo=rise_pc / halo_bytes,
                           **_peak_fields(peaks, halo_bytes))
                if ndfilters is not None:
                    t_di, rise_di, s_di = _median(
                        h, client, lambda: ndfilters.convolve(x, k, mode="constant").sum().compute(), repeats)
                    row.update(dask_image_s=t_di, ratio_dask_image=t_di / t_pc,
                               dask_image_peak_rise_MiB=rise_di / MiB,
                               sums_agree=bool(np.isclose(s_pc, s_di, rtol=1e-3, atol=1e-3 * size ** 1.5)))
                h.record(**row)
            if "ndimage" in groups:
                _ndimage_rows(h, client, x, x_mem, size, chunk, repeats, ncpu, ndfilters)
            del x_mem
            client.cancel(x)

        if "nn" not in groups:
            return
        # layer a of suite_nn, batch 64 in chunks of 8
        rng = np.random.default_rng(1)
        n = 16 if h.quick else 64
        xs = (n, 64, 56, 56)
        xa = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
        b = rng.standard_normal(64).astype(np.float32)
        g = rng.standard_normal(xs).astype(np.float32)
        X = da.from_array(xa, chunks=(8, 64, 56, 56)).persist()
        G = da.from_array(g, chunks=(8, 64, 56, 56)).persist()
        distributed.wait([X, G])
        placements = [("as persisted", X, G), ("spread evenly", _spread(client, xa, 8), _spread(client, g, 8))]
        flops = 2.0 * np.prod(xs) * 64 * 9
        chunk_bytes = 4 * 8 * 64 * 56 * 56
        for (name, fn, mem_fn, fl), (where, X, G) in itertools.product((
                ("conv2d forward", _forward, lambda: pyconv.nn.conv2d(xa, w, b, padding=1), flops),
                ("conv2d_backward", _backward, lambda: pyconv.grad.conv2d_backward(g, xa, w, b, padding=1),
                 2 * flops)), placements):
            fn = functools.partial(fn, client, X, G, w, b)
            held = _per_worker(client, X)
            t_d, (rise, transient), res, t_m, t_1 = _interleaved(h, client, fn, mem_fn, repeats)
            ref = mem_fn()
            got = res.compute() if name == "conv2d forward" else [r.compute() for r in res]
            if name == "conv2d forward":
                err = float(np.abs(got - ref).max() / np.abs(ref).max())
            else:
                err = max(float(np.abs(a - r).max() / np.abs(r).max()) for a, r in zip(got, ref))
            h.record(case=f"layer a 3x3 64->64 56x56 N{n} chunks of 8: {name}, input {where}",
                     input_chunks_per_worker=held, pyconv_dask_s=t_d,
                     in_memory_s=t_m, in_memory_threads=ncpu, ratio_in_memory=t_m / t_d,
                     in_memory_1thread_s=t_1, in_memory_speedup=t_1 / t_m,
                     gflops_dask=fl / t_d / 1e9, max_rel_err=err, peak_worker_rise_MiB=rise / MiB,
                     peak_over_chunk=rise / chunk_bytes, transient_over_chunk=transient / chunk_bytes)
