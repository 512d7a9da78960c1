"""Planners and executors of the convolution family: forward, transposed, input and weight gradients.

Each operation has a planner, a pure (cached) function of the geometry, the dtype and
the thread count returning a :class:`~pyconv._engine.plan.Plan`, and an executor
that runs a plan on C-contiguous batched arrays of the plan's dtype.  The executors
hold the array plumbing the kernels need (phase-plane layouts, packed weights,
tiles); the kernels live in ``pyconv/_kernels``.
"""
import collections
import dataclasses
import functools
import math
import time

import numpy as np

from pyconv._engine import calibrate as _calibrate
from pyconv._engine import plan as _plan
from pyconv._engine import tuning as _tuning
from pyconv._engine.geometry import ConvGeometry, conv_geometry, prune, transposed_geometry
from pyconv._engine.plan import Algorithm as A, Plan
from pyconv._kernels import dense_direct, grad_direct, nn_gemm, panel, resampling, thin_direct
from pyconv._threads import (blas_single_thread, first_touch, get_num_threads, num_parts_for, num_threads_for,
                             team_size)
from pyconv._utils import nn_check_gemm_dims, nn_pad_maps

_OBW = dense_direct.OBW
_OBW_NARROW = dense_direct.OBW_NARROW

# Fused-type kernels resolved per dtype once: Cython's run-time dispatch of a fused
# def function costs ~10 us per call.
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_SPEC = {_F32: "float", _F64: "double"}


@functools.lru_cache(maxsize=None)
def kernel(fn, dtype):
    """``fn`` (a fused-type Cython kernel) specialised for ``dtype``."""
    return fn[_SPEC[np.dtype(dtype)]]


def _prod(t):
    return math.prod(t)


# =========================================================================== layouts

def _lift3(t, fill):
    return (fill,) * (3 - len(t)) + tuple(t)


def use_thin(cg, og, t=None, s1=False):
    """Depthwise / thin-channel groups: the thin kernels serve them best (see tuning).
    ``s1``: the stride-1 kernels ('thin_reg', 'thin_s1') would run, whose limit is
    calibrated apart from the strided ones' ('thin_phase', 'thin_row')."""
    t = t or _tuning.active()
    lim = t.thin_s1_max_cg_og if s1 else t.thin_max_cg_og
    return cg * og <= lim or (cg <= t.thin_max_cg and og <= lim)


def thin_reg(g, t=None):
    """Whether the stride-1 thin kernel keeps output rows in registers ('thin_reg') rather
    than passing over whole padded planes ('thin_s1'): rows at least ``thin_reg_min_ow``
    wide (a short row leaves most lanes of its last vector idle, where the plane pass
    runs on across rows; calibrated)."""
    t = t or _tuning.active()
    return g.o3[2] >= t.thin_reg_min_ow


def gemm_tile(p, kc, n_units, nthreads, itemsize, out_bytes, t):
    """Positions per im2col tile: about ``tile_bytes`` of workspace per thread, at least
    two units per thread when the batch is small (several threads), and the total workspace bounded by
    ``max(workspace_bytes, output size)``."""
    if p == 0:
        return 1
    tile = max(256, t.tile_bytes // max(1, kc * itemsize))
    # two units per thread keep a static schedule balanced; one thread needs no split
    want_tiles = -(-2 * nthreads // max(1, n_units)) if 1 < nthreads and n_units < 2 * nthreads else 1
    tile = min(tile, -(-p // want_tiles))
    budget = max(t.workspace_bytes, out_bytes)
    tile = min(tile, max(1, budget // max(1, nthreads * kc * itemsize)))
    return int(max(1, min(tile, p)))


def gemm_row_parts(n_units, og, p, tile, nthreads):
    """Whether a GEMM forward runs its units one after another, each unit's GEMM split by
    output-channel rows over the threads (``row_parts``), instead of whole units of
    position tiles on each thread: where a small batch (fewer than two units, samples x
    groups, per thread) had its ``p`` positions cut into tiles for the threads, and a tile
    is narrower than half the output channels, each tile's GEMM would pack the whole
    weight matrix for a few columns (1x512x7x7 * 512x512x3x3 at 2 threads, AMD EPYC:
    tiles of 13 positions 2.1-2.7 ms; one GEMM of 49 columns takes 0.76-0.94 ms on
    OpenBLAS's 2 threads -- whose bits change with its thread count, which the machine's
    load sets; the parts' do not)."""
    return nthreads > 1 and n_units < 2 * nthreads and tile < p and og > 2 * tile


def gemm_batch(p, n, units_per_block, rows, nthreads, itemsize, budget, t, balance=True):
    """Samples side by side in one GEMM unit on small maps (1 = one sample per unit).

    A sample of ``p`` positions narrower than half an im2col tile would make a GEMM too
    narrow for BLAS's register blocks (32 samples of 3x3 positions: 32 GEMMs of 9 columns);
    ``nb`` samples share a unit instead, as long as every thread keeps two units
    (``units_per_block`` units per block of samples; not when ``balance`` is False: every
    part runs every unit) and the per-thread workspace of ``rows`` x ``nb * p`` stays
    within ``budget``."""
    if p == 0 or n < 2 or units_per_block == 0:
        return 1
    cols = max(256, t.tile_bytes // max(1, rows * itemsize))
    if 2 * p > cols:
        return 1
    nb = min(n, cols // p)
    if balance:
        blocks_min = -(-2 * nthreads // max(1, units_per_block))
        nb = min(nb, max(1, n // blocks_min))
    nb = min(nb, max(1, budget // max(1, nthreads * rows * p * itemsize)))
    return int(nb) if nb > 1 else 1


@functools.lru_cache(maxsize=64)
def gather_table(image, grid, k3, s3, d3, pb3):
    """(kvol, P) offsets into one channel of the unpadded ``image`` read by each (tap,
    output position) of a convolution over ``grid``, -1 where the read falls in the
    padding: the im2col (and col2im) of small maps as one table lookup per element."""
    per = []
    for size, o, k, s, d, p in zip(image, grid, k3, s3, d3, pb3):
        pos = np.arange(k)[:, None] * d + np.arange(o)[None, :] * s - p
        per.append(np.where((pos >= 0) & (pos < size), pos, -1))
    a = per[0][:, None, None, :, None, None]
    b = per[1][None, :, None, None, :, None]
    c = per[2][None, None, :, None, None, :]
    tab = np.where((a >= 0) & (b >= 0) & (c >= 0), (a * image[1] + b) * image[2] + c, -1)
    tab = np.ascontiguousarray(tab.reshape(_prod(k3), _prod(grid)), dtype=np.intp)
    tab.setflags(write=False)           # cached: shared by later calls
    return tab


_NO_TABLE = np.zeros((1, 1), dtype=np.intp)
_NO_TABLE.setflags(write=False)


def _table_of(p):
    """The GEMM plan's cached im2col gather table (a placeholder when it walks rows)."""
    return _NO_TABLE if p.data is None else p.data


def pointwise_panel(reduces, itemsize, t):
    """Whether the packed-panel kernel (plan 'panel') runs a 1x1 layer that reduces the
    channels (``reduces``) or not, in a dtype of ``itemsize`` bytes."""
    if itemsize == 8:
        return t.pointwise_panel_f8 if reduces else t.pointwise_panel_expand_f8
    return t.pointwise_panel if reduces else t.pointwise_panel_expand


def input_matmul(reduces, itemsize, t):
    """Whether the input gradient of a 1x1 layer (stride 1, unpadded, one group) runs one
    BLAS product per sample (else the forward's 1x1 plan on grad_output, channels swapped):
    calibrated per dtype, for layers that reduce the channels and for the others."""
    if itemsize == 8:
        return t.input_matmul_f8 if reduces else t.input_matmul_expand_f8
    return t.input_matmul if reduces else t.input_matmul_expand


def pointwise_direct(reduces, itemsize, t):
    """Whether a 1x1 layer runs the dense kernel in place (else one BLAS product or GEMM
    tiles): calibrated per dtype, for layers that reduce the channels and for the others."""
    if itemsize == 8:
        return t.pointwise_direct_f8 if reduces else t.pointwise_direct_expand_f8
    return t.pointwise_direct if reduces else t.pointwise_direct_expand


def dense_obw(og):
    """Output channels per register block of the dense kernel: 8, or 4 for groups of at
    most 4 output channels (an 8-wide block would spend half its FMAs on zero weights)."""
    return _OBW_NARROW if og <= _OBW_NARROW else _OBW


def dense_cblock(ntaps, itemsize, t, obw=_OBW, deep=False):
    """Input channels per pass of the dense kernel: one block's weights (channels x taps x
    obw) within ``dense_wblock_bytes`` (``dense_wblock_bytes_3d`` for kernels with taps in
    depth, ``deep``), so they stay in L1 across a chunk of positions."""
    wblock = t.dense_wblock_bytes_3d if deep else t.dense_wblock_bytes
    return int(max(1, wblock // max(1, ntaps * obw * itemsize)))


def balanced_tile(length, n_units, nthreads, t):
    """Tile length near ``dense_tile`` whose unit count (``n_units`` x tiles) splits evenly
    over the threads when there are few units (static schedule: one straggler tile
    would otherwise idle the other threads)."""
    ntiles = max(1, -(-length // t.dense_tile))
    if nthreads > 1 and n_units * ntiles < 8 * nthreads:
        while (n_units * ntiles) % nthreads:
            ntiles += 1
    return max(1, -(-length // ntiles))


@functools.lru_cache(maxsize=64)
def plane_layout(sp3, k3, s3, d3, pads3):
    """Phase-plane layout of a (lifted 3-D) convolution's zero-padded input, for the
    per-thread plane kernels (``dense_direct.dense_conv`` / ``dense_weight`` /
    ``thin_phase``, which build the planes themselves).

    A stride ``s`` is handled by splitting the padded input into its ``s`` phases per dim
    (``xp[..., i*s + r]`` for each residue ``r`` some tap uses): every tap then reads its
    phase plane at a constant flat offset, so the strided convolution becomes a stride-1
    problem over the phase planes, with no wasted taps (stride 1 has the single phase:
    the padded input itself).  Returns ``(qshape, phases, offs)``: one phase plane's
    shape, the residues of the phases the taps use ((nph, 3) intp, sorted) and each
    tap's flat offset (taps in C order)."""
    pshape = np.array([i + a + c for i, (a, c) in zip(sp3, pads3)], dtype=np.int64)
    s = np.array(s3, dtype=np.int64)
    qshape = tuple(int(v) for v in -(-pshape // s))
    taps = np.indices(k3).reshape(3, -1).T * np.array(d3, dtype=np.int64)
    res = taps % s
    # one small integer key per residue triple from per-dim ranks (np.unique along an
    # axis is slow; the strides themselves may be huge), lexicographic order kept
    vals, ranks = zip(*(np.unique(res[:, i], return_inverse=True) for i in range(3)))
    keys, inv = np.unique((ranks[0].reshape(-1) * len(vals[1]) + ranks[1].reshape(-1)) * len(vals[2])
                          + ranks[2].reshape(-1), return_inverse=True)
    phases = np.stack([vals[0][keys // (len(vals[1]) * len(vals[2]))], vals[1][keys // len(vals[2]) % len(vals[1])],
                       vals[2][keys % len(vals[2])]], axis=1)
    sh = taps // s
    offs = (inv.reshape(-1) * int(np.prod(qshape)) + (sh[:, 0] * qshape[1] + sh[:, 1]) * qshape[2]
            + sh[:, 2]).astype(np.intp)
    phases = np.ascontiguousarray(phases, dtype=np.intp)
    phases.setflags(write=False)        # cached: shared by later calls
    offs.setflags(write=False)
    return qshape, phases, offs


_ONES, _ZEROS = (1, 1, 1), (0, 0, 0)


@functools.lru_cache(maxsize=1024)
def kernel_geo(image=_ONES, grid=_ONES, kernel=_ONES, stride=_ONES, dilation=_ONES, pad=_ZEROS, plane=_ZEROS):
    """The ``conv_geo_t`` struct of the kernels (``_kernels/_common.pxd``), by field name:
    ``image`` the unpadded volume a convolution reads (a transposed one writes), ``grid`` the
    convolution's output positions, ``pad`` the padding before, ``plane`` the phase-plane
    size of the plane kernels; every argument a 3-tuple.  Memoised (repeated small calls
    rebuild it otherwise): the dict is shared, read only."""
    (D, H, W), (OD, OH, OW), (kd, kh, kw) = image, grid, kernel
    (sd, sh, sw), (dd, dh, dw), (pd, ph, pw), (qd, qh, qw) = stride, dilation, pad, plane
    return dict(D=D, H=H, W=W, OD=OD, OH=OH, OW=OW, kd=kd, kh=kh, kw=kw, sd=sd, sh=sh, sw=sw,
                dd=dd, dh=dh, dw=dw, pd=pd, ph=ph, pw=pw, qd=qd, qh=qh, qw=qw)


def plane_geo(qshape, s3, pads3):
    """The geometry of the plane kernels (``dense_direct.dense_conv`` / ``dense_weight``)."""
    return kernel_geo(stride=s3, pad=tuple(pp[0] for pp in pads3), plane=qshape)


@functools.lru_cache(maxsize=1024)
def gemm_geo(g):
    """The im2col geometry of the forward convolution ``g`` (image = its input)."""
    return kernel_geo(g.sp3, g.o3, g.k3, g.s3, g.d3, g.pb3)


@functools.lru_cache(maxsize=1024)
def scatter_geo(g):
    """The col2im geometry of the transposed convolution ``g`` (image = its output)."""
    return kernel_geo(g.o3, g.sp3, g.k3, g.s3, g.d3, g.pb3)


def affine(m):
    """``(lo, hi, start, step)`` when the index map ``m`` is -1 outside ``[lo, hi)`` and an
    arithmetic progression inside (zero padding, phase planes), else None."""
    valid = np.flatnonzero(m >= 0)
    if valid.size == 0:
        return (0, 0, 0, 1)
    lo, hi = int(valid[0]), int(valid[-1]) + 1
    step = int(m[lo + 1] - m[lo]) if hi - lo > 1 else 1
    if hi - lo != valid.size or step < 1 or not np.array_equal(m[lo:hi], m[lo] + step * np.arange(hi - lo)):
        return None
    return (lo, hi, int(m[lo]), step)


def span_width(length, pieces, align=64):
    """Width of the spans that cut ``range(length)`` into at most ``pieces``: a whole
    multiple of ``align`` (the last span the rest).

    >>> span_width(200, 2)
    128
    """
    per = -(-length // max(1, pieces))
    return max(align, -(-per // align) * align)


def _matmul_span(out, parts):
    """Columns per task of :func:`nn_gemm.matmul_stack` on the stack ``out``: whole
    matrices, or spans of 64-column multiples when there are fewer matrices than twice
    ``parts`` (the plan's thread count, not the team: the bits do not depend on the load)."""
    per = 1 if len(out) >= 2 * parts else -(-2 * parts // max(1, len(out)))
    return span_width(out.shape[-1], per) if per > 1 else 0


def pack_weight_blocks(w, groups, B, nthreads, t):
    """(C_out, C_in/groups, *kernel) -> flat (groups, ceil(Og/B), C_in/groups, kvol, B) blocks
    of the dense kernels (zero rows past Og): B = :func:`dense_obw` for ``dense_conv``, one
    or two vectors for ``dense_oc``; and whether every weight is finite."""
    og = w.shape[0] // groups
    kc = math.prod(w.shape[1:])
    return _packed(dense_direct.pack_blocks, np.ascontiguousarray(w).reshape(groups, og, kc),
                   (groups, -(-og // B), kc, B), nthreads, t)


def _packed(packer, src, shape, nthreads, t):
    """``(flat blocks, all finite)``: the kernel ``packer`` run from ``src`` into a new
    64-byte aligned array of ``shape`` (every weight vector load then stays within one
    cache line)."""
    size = math.prod(shape)
    out = dense_direct.aligned_rows(1, size, src.dtype)[0, :size].reshape(shape)
    finite = kernel(packer, src.dtype)(src, out, max(1, min(nthreads, num_threads_for(size, grain=t.pack_grain))))
    return out.reshape(-1), finite


def _packer(w, groups):
    """The weight blocks of ``w`` as :func:`forward`'s ``pack`` gives them."""
    return lambda B, nthreads: pack_weight_blocks(w, groups, B, nthreads, _tuning.active())


def _flip_conv(p, x, w, b, groups):
    """Run a 'flip_conv' plan ``p`` (a stride-1 transposed convolution or input gradient):
    its forward plan ``p.sub`` on ``x`` with the flipped kernel of ``w`` (:func:`pack_flipped_blocks`),
    or None when a weight is an Inf or a NaN and ``p.nonfinite`` must run instead.  The
    kernels that pack their weights in blocks pack them straight from ``w`` and find
    whether they are finite on the way; the others take a flipped copy."""
    sub = p.sub
    if sub.algorithm in (A.DENSE, A.DENSE_OC) and sub.prune is None:
        B = sub.tile("lanes") if sub.algorithm == A.DENSE_OC else sub.tile("obw", _OBW)
        packed = pack_flipped_blocks(w, groups, B, team_size(sub.threads), _tuning.active())
        if not packed[1] and p.nonfinite is not None:
            return None
        return forward(sub, x, None, b, pack=lambda B, nthreads: packed)
    if p.nonfinite is not None and not _finite(w):
        return None
    a, c, k = w.shape[0] // groups, w.shape[1], w.shape[2:]
    flip = (slice(None),) * 3 + (slice(None, None, -1),) * len(k)
    return forward(sub, x, np.ascontiguousarray(w.reshape((groups, a, c) + k).swapaxes(1, 2)[flip])
                   .reshape((groups * c, a) + k), b)


def pack_flipped_blocks(w, groups, B, nthreads, t):
    """:func:`pack_weight_blocks` of the flipped kernel of ``w`` (A, C/groups, *kernel) --
    per group the two channel axes swapped, the taps reversed, (C, A/groups, *kernel) --
    packed from ``w`` in one pass: the kernel an input gradient (``w`` the forward's
    weights) or a stride-1 transposed convolution (``w`` its own) runs as a convolution."""
    a, c, kvol = w.shape[0] // groups, w.shape[1], math.prod(w.shape[2:])
    return _packed(dense_direct.pack_flipped, np.ascontiguousarray(w).reshape(groups, a, c, kvol),
                   (groups, -(-c // B), a * kvol, B), nthreads, t)


def pad(x, pad_pairs, mode):
    """``x`` (N, C, *spatial) padded with ``mode`` (zeros/reflect/replicate/circular), C-contiguous.

    One gather kernel driven by per-dim index maps (as torch.nn.functional.pad).
    """
    nd = x.ndim - 2
    maps = nn_pad_maps(x.shape[2:], pad_pairs, mode)
    out_sp = tuple(len(m) for m in maps)
    out = np.empty(x.shape[:2] + out_sp, dtype=x.dtype)
    if out.size == 0:
        return out
    sp3 = _lift3(x.shape[2:], 1)
    maps3 = [np.zeros(1, dtype=np.int64)] * (3 - nd) + maps
    x4 = x.reshape((-1,) + sp3)
    kernel(resampling.gather, x.dtype)(x4, out.reshape((-1,) + _lift3(out_sp, 1)), maps3[0], maps3[1], maps3[2],
                                      num_threads_for(out.size, grain=_tuning.active().gather_grain),
                                      affine(maps3[2]))
    return out


# =========================================================================== forward convolution

def _thin_pad_bytes(g, itemsize):
    return g.cg * _prod([i + a + c for i, (a, c) in zip(g.sp3, g.pads3)]) * itemsize


# the 1x1 kernels a timed pointwise forward runs against GEMM (and, in thin groups, the thin
# kernel): 8x64x56^2 1x1 in 16 groups, 1 thread, AMD EPYC: thin_reg 0.41-0.45 ms, matmul
# 0.28; 128->128 in 8 groups on 28^2: panel 0.26-0.42, matmul 0.18
POINTWISE_KERNELS = [A.PANEL, A.POINTWISE, A.MATMUL]


def _thin_work(g, t, image_elems, macs, s1=False):
    """The work a thread split weighs for ``g`` (:func:`~pyconv._threads.num_parts_for`):
    its multiply-adds ``macs``, but for strided thin groups at least kvol per element of the
    image they read or write (``image_elems``: the input, or a transposed convolution's
    output) -- the stride-1 thin kernel's work on the same image, on which the grain was
    calibrated.  Their kernels move every image element into phase planes or frames for a
    quarter or less of its multiply-adds per element (8x576x14^2 depthwise 3x3 stride 2, 2
    threads, AMD EPYC: 2.0M multiply-adds under a grain of 1M ran on one thread, forward 0.48
    ms, weight gradient 0.59; on two 0.29 and 0.32)."""
    if s1 or not (g.cg == 1 or g.og < t.dense_min_og):
        return macs
    return max(macs, image_elems * g.kvol)


def _thin_phase_bytes(g, itemsize):
    """One thread's buffers in 'thin_phase': a group's phase planes and one output frame."""
    qshape, phases, _ = plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
    nph = len(phases)
    o3 = g.o3
    frame = ((o3[0] - 1) * qshape[1] + o3[1] - 1) * qshape[2] + o3[2]
    return (g.cg * nph * _prod(qshape) + frame) * itemsize


@_plan.cached
def plan_forward(g, dtype, allow_prune=True):
    """Plan of the forward convolution with geometry ``g`` computing in ``dtype``."""
    dtype = np.dtype(dtype)
    if _prod(g.out_shape) == 0:
        return Plan("forward", A.FILL, g, dtype)
    pruned = _pruned(g, dtype, "forward", plan_forward, A.FILL) if allow_prune else None
    if pruned is not None:
        return pruned
    t = _tuning.active()
    isz = dtype.itemsize
    cg, og, kvol = g.cg, g.og, g.kvol
    out_elems = _prod(g.out_shape)
    out_bytes = out_elems * isz
    s1 = g.s3[1] == 1 and g.s3[2] == 1
    nthreads = num_parts_for(_thin_work(g, t, _prod(g.x_shape), out_elems * max(1, cg * kvol), s1), t.grain)
    layout = None
    s1_thin = s1 and _thin_pad_bytes(g, isz) <= t.thin_pad_bytes
    thin_kernel = None
    # strided thin groups: per-thread phase planes of one (sample, group) where they fit,
    # else the row kernel reading the input in place
    phase_fits = not s1 and nthreads * _thin_phase_bytes(g, isz) <= max(t.workspace_bytes, out_bytes)
    if use_thin(cg, og, t, s1_thin):
        if s1_thin:
            default = A.THIN_REG if thin_reg(g, t) else A.THIN_S1
        else:
            default = A.THIN_PHASE if phase_fits else A.THIN_ROW
        thin_kernel = default
        if not s1_thin and not g.is_pointwise:
            # strided: the row kernel and the dense kernels compete where the layer is timed
            # (depthwise 3x3 stride 2 8x64x56^2, 1 thread, AMD EPYC: thin_phase 0.50 ms,
            # dense 0.67, thin_row 1.13; stride 3: thin_row 0.61, thin_phase 0.65)
            layout = plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
            timed = _timed("forward", g, dtype, [A.GEMM, A.THIN_ROW] + [A.THIN_PHASE] * phase_fits
                           + [A.DENSE] * _dense_fits(g, layout, isz, nthreads, t)
                           + [A.DENSE_OC] * _oc_fits(g, dtype, nthreads, t))
            default = timed or default
        elif not g.is_pointwise:
            # stride 1: both thin kernels, the dense kernels and GEMM compete where the layer
            # is timed (3->16 7x7 on 112x7 maps, 2 threads, AMD EPYC: thin_s1 0.20 ms,
            # dense_oc 0.09; 16->32 in 4 groups on 4^3 maps: thin_s1 0.39, dense 0.17;
            # depthwise 7^3 on 4x16x8^3 maps, where rows of 8 send the rule to thin_s1: 0.69,
            # thin_reg 0.19)
            layout = plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
            other = A.THIN_S1 if default == A.THIN_REG else A.THIN_REG
            timed = _timed("forward", g, dtype, [A.GEMM, default, other]
                           + [A.DENSE] * _dense_fits(g, layout, isz, nthreads, t)
                           + [A.DENSE_OC] * _oc_fits(g, dtype, nthreads, t))
            default = timed or default
    elif g.is_pointwise:
        default = (A.PANEL if pointwise_panel(og < cg, isz, t) else A.POINTWISE if pointwise_direct(og < cg, isz, t)
                   else A.MATMUL if t.pointwise_matmul else A.GEMM)
    else:
        default = A.GEMM
        oc_fits = _oc_fits(g, dtype, nthreads, t)
        # groups of few channels beyond the calibrated limit: the phase-plane kernel competes
        phase_fits = phase_fits and (cg == 1 or og < t.dense_min_og)
        oc = oc_fits and _prod(g.out) >= min_positions(t, 'dense_oc', g) and cg * kvol <= t.dense_oc_max_k
        layout = plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
        dense_fits = _dense_fits(g, layout, isz, nthreads, t)
        dense = dense_fits and _prod(g.out) >= min_positions(t, 'dense', g) and cg * kvol <= t.dense_max_k
        # the kernels that fit, against im2col + GEMM: timed on large layers
        timed = _timed("forward", g, dtype, [A.GEMM] + [A.DENSE] * dense_fits + [A.DENSE_OC] * oc_fits
                       + [A.THIN_PHASE] * phase_fits)
        if timed is not None:
            default = timed
        elif oc and _oc_preferred(g, dtype, t):
            default = A.DENSE_OC
        elif dense:
            default = A.DENSE
    if g.is_pointwise:
        # 1x1: GEMM, the 1x1 kernels and, on thin groups, the thin kernel the thresholds
        # pick, timed on large layers (the calibrated flags above decide the others)
        default = _timed("forward", g, dtype, [A.GEMM] + [thin_kernel] * (thin_kernel is not None)
                         + POINTWISE_KERNELS) or default
    cands = ([A.THIN_PHASE, A.THIN_ROW, A.DENSE, A.GEMM] + [A.THIN_S1, A.THIN_REG] * s1
             + [A.POINTWISE, A.MATMUL, A.PANEL] * g.is_pointwise + [A.DENSE_OC] * (not g.is_pointwise))
    alg = _plan.pick(default, cands)
    nonfinite = None
    if alg == A.THIN_ROW and g.is_padded:
        # the row kernel skips padded taps: an Inf/NaN weight must meet the padded zeros
        # (0 * inf = nan, as PyTorch's dense path) on the phase planes instead
        nonfinite = _forward_plan(g, dtype, A.THIN_PHASE, nthreads, t, None)
    return dataclasses.replace(_forward_plan(g, dtype, alg, nthreads, t, layout, nonfinite), candidates=tuple(cands))


def min_positions(t, kernel, g):
    """Output positions per sample from which the direct ``kernel`` ('dense', 'dense_oc',
    'weight_dense') is the default over im2col + GEMM: the calibrated crossover of unit
    strides, or of strided layers (``Tuning.<kernel>_min_positions[_strided]``)."""
    return getattr(t, f"{kernel}_min_positions" + ("_strided" if any(s > 1 for s in g.stride) else ""))


def balanced_rows(oh, rows, outer, inner, nthreads, step=1):
    """Rows per work unit, at most ``rows`` and at least a quarter of it: the largest whose
    units split most evenly over ``nthreads`` contiguous parts (``part_lo``: how the kernels
    hand units out).  The units
    are ``outer`` runs of the blocks of ``oh`` rows (the last block cut), each block
    ``inner`` units of equal work; a unit costs its rows plus one (its own set-up and the
    input rows it copies beyond its outputs': one output row a unit would balance any
    team, at three rows copied per row of a 3x3 layer).  Rows in multiples of ``step``
    (``rows`` is one).

    >>> balanced_rows(28, 8, 1, 1, 2)    # 8, 8, 8, 4 rows: 16 and 12 a thread
    7
    >>> balanced_rows(56, 8, 1, 1, 2)    # seven units of 8: 32 and 24
    7
    """
    best, best_load = rows, None
    for r in range(max(step, rows), max(step, rows // 4 // step * step) - 1, -step):
        nrb = -(-oh // r)
        n_units = outer * nrb * inner
        work = np.repeat(np.tile(np.minimum(r, oh - r * np.arange(nrb)) + 1, outer), inner)
        cuts = [p * (n_units // nthreads) + min(p, n_units % nthreads) for p in range(nthreads + 1)]
        load = max(int(work[a:b].sum()) for a, b in zip(cuts, cuts[1:]))
        if best_load is None or load < best_load * 0.99:
            best, best_load = r, load
    return best


def oc_blocking(g, dtype, nthreads, t):
    """``(B, rows, cols, osplit, cblock, workspace bytes)`` of the output-channel kernel
    (``dense_direct.dense_oc``): B output channels per block (two vectors, or one for
    groups of at most one vector's lanes); units of ``rows`` output rows (about
    ``dense_oc_positions`` positions; with fewer than eight units per thread, the rows whose
    units fall most evenly on the threads, :func:`balanced_rows`) or, on rows longer than
    ``dense_oc_max_cols``, of one row's ``cols`` columns, each split into ``osplit``
    shares of the output-channel blocks; ``cblock`` input channels per pass, their weights
    within ``dense_oc_wblock_bytes`` (they stay in L1 while the unit's positions run
    through them)."""
    isz = dtype.itemsize
    lanes = dense_direct.OC_LANES[dtype.name]
    og, cg, kvol = g.og, g.cg, g.kvol
    B = lanes if og <= lanes else 2 * lanes
    nob = -(-og // B)
    od, oh, ow = g.o3
    cols = max(1, min(ow, t.dense_oc_max_cols))
    rows = 1 if cols < ow else max(1, min(oh, t.dense_oc_positions // max(1, ow)))
    wp = (cols - 1) * g.s3[2] + (g.k3[2] - 1) * g.d3[2] + 1

    def units(r):
        return g.n * g.groups * od * -(-oh // r) * -(-ow // cols)

    def rin(r):
        return (r - 1) * g.s3[1] + (g.k3[1] - 1) * g.d3[1] + 1

    # Too few units for the threads (a small batch of small maps): where a group's weights
    # outweigh the input rows a unit copies, the units split by output channels first, so
    # each thread streams only its share of the weights (1x256x14x14 * 256x256x3x3 at 2
    # threads, AMD EPYC: 4 shares of one 14-row unit 1.04-1.10x faster than 4 units of 4, 4,
    # 4 and 2 rows); then the rows per unit are the largest whose units fall evenly on the
    # threads' parts (1x128x28x28 * 128x128x3x3: units of 7 rows or two shares of 14 ran
    # 1.13x faster than halving 16 rows to 8: 16 and 12 rows a thread)
    osplit = 1
    if 1 < nthreads and units(rows) < 2 * nthreads and og * cg * kvol > cg * g.k3[0] * rin(rows) * wp:
        osplit = max(1, min(nob, -(-2 * nthreads // units(rows))))
    if units(rows) * osplit < 8 * nthreads:
        rows = balanced_rows(oh, rows, units(oh), osplit, nthreads)
    cblock = int(max(1, min(cg, t.dense_oc_wblock_bytes // max(1, kvol * B * isz))))
    per = 64 // isz
    packed = g.groups * nob * cg * kvol * B * isz
    ws = nthreads * (cg * (g.k3[0] * rin(rows) * wp + 2 * per) + rows * cols * B + 2 * per) * isz + packed
    return B, int(rows), int(cols), int(osplit), cblock, int(ws)


def _oc_preferred(g, dtype, t):
    """Whether the calibration prefers the output-channel kernel (``dense_direct.dense_oc``)
    to the phase-plane one for this dense layer: on for the dtype (``dense_oc`` /
    ``dense_oc_f8``), groups of more than one vector of output channels (of exactly one where
    ``dense_oc_one`` / ``dense_oc_one_f8``, with a kernel of depth > 1 ``dense_oc_one_3d`` /
    ``dense_oc_one_3d_f8``).  The choice of layers :func:`_timed` does not time."""
    on = t.dense_oc if dtype.itemsize == 4 else t.dense_oc_f8
    lanes = dense_direct.OC_LANES[dtype.name]
    if g.k3[0] > 1:
        one = t.dense_oc_one_3d if dtype.itemsize == 4 else t.dense_oc_one_3d_f8
    else:
        one = t.dense_oc_one if dtype.itemsize == 4 else t.dense_oc_one_f8
    # one vector of outputs per tile: each broadcast feeds a single FMA (calibrated:
    # faster than the phase-plane kernel on some CPUs, not on others)
    return on and (g.og > lanes or (g.og == lanes and one))


def _dense_fits(g, layout, isz, nthreads, t):
    """Whether the phase-plane kernel's planes (``layout``: :func:`plane_layout`) fit the
    workspace budget on ``nthreads`` threads."""
    plane_bytes = g.cg * len(layout[1]) * _prod(layout[0]) * isz
    return nthreads * plane_bytes <= max(t.workspace_bytes, _prod(g.out_shape) * isz)


def _oc_fits(g, dtype, nthreads, t):
    """Whether the output-channel kernel can run this dense (non-1x1) layer within the
    workspace budget (its calibrated positions / K limits, and the untimed choice's groups
    of at least one vector of output channels, are the planner's: timed, it also competes
    on narrower groups, whose blocks it pads with zero channels -- 2x96x8^3 * 8x96x7^3
    stride 3, 2 threads, AMD EPYC: 0.62 ms against GEMM's 2.44)."""
    ws = oc_blocking(g, dtype, nthreads, t)[5]
    return ws <= max(t.workspace_bytes, _prod(g.out_shape) * dtype.itemsize)


# Large layers are timed once on the running machine over the kernels that can run them --
# im2col + GEMM through the BLAS, and the direct kernels whose workspace fits -- and the
# fastest is stored (calibrate's timed choices, as pyconv.signal's close calls): which one
# wins depends on the layer more than the calibrated flags and thresholds can say.  AMD
# EPYC, float32, 1 thread, CPU time, dense time / dense_oc time: 3x3 128->256 stride 2 28^2
# 1.22, 64->64 14^2 1.19, 7^2 1.36, 56^2 1.05; 32^2 0.92, 16^3 (3-D) 0.92, conv1d k9 0.92,
# 3->64 112^2 0.86, 32->48 56^2 0.79 -- while the flag, timed on 64->64 56^2 alone, read a
# tie (1.01).  And at 2 threads GEMM / best direct time: 2x32x8^3 * 64x32x5^3 (K = 4000,
# past the calibrated dense_max_k of 3x3 layers) 4.8 / 2.0 ms; 1x128x100^2 * 4x128x7x7
# dilation 2 (an input gradient: 4 output channels) 21 / 2.4 ms; the weight gradient of
# 8x1x112^2 * 16x1x5x5 thin 0.93 / dense 0.47 (80 MFLOP; 8x64x4x8x24 * 32x64x3x3x5, stride
# 3, 62 MFLOP: GEMM 0.95 / dense_oc 0.34 ms; 2x96x8^3 * 8x96x7^3 stride 3, 8 MFLOP: GEMM
# 2.44 / dense_oc 0.62 ms -- flops do not say how far a kernel is from its peak).  Layers
# below TIMED_MIN_FLOPS (about 10 us of arithmetic, of a call's 10-20 us of overhead) keep
# the calibrated choice: a wrong one costs little there.  The timing runs as many
# samples of the layer as TIMED_BATCH_FLOPS allow, at least min(N, threads), on random
# data (:func:`timed_samples`; TIMED_MAX_FLOPS bounds one such call: a larger layer is timed on
# its leading output rows, :func:`timing_proxy`); one call per kernel
# on min(N, threads) samples, five more on the timing batch for those within TIMED_DROP of
# the fastest, once per machine.
TIMED_MIN_FLOPS = 2e6
TIMED_MAX_FLOPS = 5e9
TIMED_BATCH_FLOPS = 1e9
TIMED_ROUNDS = 5
TIMED_DROP = 4.0


def _timed(op, g, dtype, algs, work=None):
    """The fastest of ``algs`` (the algorithms that can serve ``g``, GEMM first) for the
    operation ``op`` ('forward', 'transposed' or 'weight_grad') as timed on this machine -- read from the
    store, or timed now and stored -- or None: the calibrated choice decides (fewer than two
    algorithms, a small layer, a full store, ``PYCONV_TUNING=off``, an
    :func:`~pyconv._engine.tuning.override` block, or an algorithm forced by
    :func:`~pyconv._engine.plan.force`).  ``work``: the flops of the costliest candidate
    where it computes more than the layer's own (a layer is small when both are)."""
    if len(algs) < 2 or _plan.forced() or _calibrate.timing_off():
        return None
    nt = get_num_threads()
    g2 = dataclasses.replace(g, n=timed_samples(g, nt))
    if max(_flops(g), work or 0) < TIMED_MIN_FLOPS:
        return None
    if _flops(g2) > TIMED_MAX_FLOPS:
        g2 = timing_proxy(g2)
        if g2 is None:
            return None
    names = [a.value for a in algs]
    key = timed_key(op, g2, dtype, nt, names)
    stored = _calibrate.timed_choice(key)
    if stored not in names:         # (none yet, or a foreign entry: timed afresh)
        if not _calibrate.timed_room():
            return None
        timed = _time_algorithms(op, g2, dtype, algs)
        if timed is None:
            return None
        times, ratios, ref = timed
        stored = min(names, key=lambda n: ratios[n])        # (a tie: the first)
        _calibrate.store_timed_choice(key, stored, times,
                                      {"reference": ref, **{f"{n}_ratio": ratios[n] for n in names}})
    return A(stored)


def timing_proxy(g):
    """The layer a forward geometry ``g`` too large to time whole (over TIMED_MAX_FLOPS) is
    timed on: its leading output rows (depth slices in 3-D), as many as TIMED_MAX_FLOPS
    allow, or None when those are fewer than twice the kernel's reach plus one (the padding's
    rows would weigh more than in the layer) or ``g`` is transposed.  (1x128x24^3 -> 16 5^3,
    7 GFLOP a sample, 1 thread, AMD EPYC: untimed, the rule's K ceiling sent it to GEMM, 146
    ms; dense takes 35.)"""
    if g.transposed:
        return None
    keep = int(g.out[0] * TIMED_MAX_FLOPS // _flops(g))
    reach = g.dilation[0] * (g.kernel[0] - 1)
    (pb, pa), s0 = g.pads[0], g.stride[0]
    size = (keep - 1) * s0 + reach + 1 - pb - pa
    if keep < max(1, min(g.out[0], 2 * reach + 1)) or not 1 <= size <= g.spatial[0]:
        return None
    return conv_geometry((g.n, g.cin, size) + tuple(g.spatial[1:]), (g.cout, g.cg) + tuple(g.kernel), g.stride,
                         g.pads, g.dilation, g.groups)


def timed_samples(g, nt):
    """Samples a layer's timing runs on: as many as TIMED_BATCH_FLOPS allow, at least
    min(N, ``nt``) (its kernels gain differently from more samples: a weight gradient's each
    add to one accumulator, GEMM batches samples, a direct kernel streams its weights once
    per unit; AMD EPYC, 2 threads: 3x3 128->256 stride 2 28^2 weight gradient, dense / GEMM
    time 1.11-1.25 on one sample, 0.87-0.90 on eight; forward 3x3 512->512 7^2, dense_oc /
    GEMM 1.00 on two samples, 0.90 on eight)."""
    per_sample = _flops(g) / max(1, g.n)
    return max(min(g.n, nt), min(g.n, int(TIMED_BATCH_FLOPS // max(1.0, per_sample))))


def _flops(g):
    """Multiply-adds x 2 of the convolution ``g``: each output of a convolution sums C_in/groups
    x taps products; a transposed convolution spreads each input value over C_out/groups x
    taps outputs."""
    if g.transposed:
        return 2.0 * g.og * g.kvol * _prod(g.x_shape)
    return 2.0 * g.cg * g.kvol * _prod(g.out_shape)


def timed_key(op, g, dtype, nt, names):
    """The key of a layer's timed choice: operation, dtype, geometry (with the batch the
    timing ran), thread count and the algorithms it chose among."""
    return f"{op} {np.dtype(dtype).name} {g} threads={nt} of {','.join(names)}"


def _time_algorithms(op, g, dtype, algs):
    """``(seconds, ratios, reference)`` of the algorithms ``algs`` running ``op`` on random
    operands of geometry ``g``: one first run of each, on min(N, threads) samples, a second
    for those TIMED_DROP times slower than the fastest; those still as slow are out (their
    faster run stands for their time: a depthwise weight gradient's GEMM ran 10x the thin
    kernel, and on a weight gradient's full timing batch its one run took 90 ms); the
    others, after one untimed run on all of ``g``'s samples where those are more (which
    makes their memory), five runs each, taken in turn, the order reversed every round.
    Seconds: each one's median; ratios: per algorithm the median over the rounds of its time
    over the reference's (the first algorithm left in; the runs of one round see the same
    machine state: a slow spell of the host that spans rounds does not tip it), the
    screening runs' ratio for those out.  None when one of them cannot serve ``g``.  Runs
    the kernels even while :func:`pyconv.explain` records plans: it then shows the choice
    the call will take.  (The least of three runs picked dense_oc for the conv1d k9 64->64
    L4096 layer at 2 threads, AMD EPYC, 1.37 ms against 1.45, where 30 rounds give medians
    1.42 and 1.32; medians of five, in a suite run on a slowed host, picked it at 1 thread,
    1.67 ms against 1.71.)"""
    planner = {"forward": plan_forward, "transposed": plan_transposed}.get(op, plan_weight_grad)
    # uniform values in [-0.5, 0.5), drawn in the dtype itself (normal ones took 120 ms of a
    # depthwise layer's 8-sample timing); fewer samples are the leading ones of these
    rng = np.random.default_rng(0)
    x = rng.random(g.x_shape, dtype=dtype) - dtype.type(0.5)
    w = rng.random(g.w_shape, dtype=dtype) - dtype.type(0.5)
    go = rng.random(g.out_shape, dtype=dtype) - dtype.type(0.5) if op == "weight_grad" else None

    def runner(geo):
        # (plans of every algorithm for ``geo``, a function running one on geo.n samples)
        plans = {}
        for a in algs:
            with _plan.force(a):
                plans[a] = planner(geo, dtype) if op == "transposed" else planner(geo, dtype, False)
            if plans[a].algorithm != a:
                return None, None
            if a == A.FLIP_CONV:
                # its forward as the call will plan it (timed where that is worth it), not the
                # rule's choice a forced plan takes (8x32x18^3 -> 64 5^3 d2 g2's input gradient,
                # 2 threads, AMD EPYC: timed with the forward's GEMM, flip_conv lost to GEMM +
                # col2im, 99 ms, where with its timed dense_oc it takes 35)
                plans[a] = dataclasses.replace(plans[a], sub=plan_forward(flipped_geometry(geo), dtype))
        xs = x[:geo.n]
        if op == "forward":
            return plans, lambda a: forward(plans[a], xs, w, None)
        if op == "transposed":
            return plans, lambda a: transposed(plans[a], xs, w, None)
        gs = go[:geo.n]
        return plans, lambda a: weight_grad(plans[a], xs, gs)

    small = dataclasses.replace(g, n=min(g.n, get_num_threads()))
    plans, run = runner(small)
    if plans is None:
        return None
    first = {}
    runs = {a: [] for a in algs}
    with _plan.live():
        for a in algs:
            t0 = time.perf_counter()
            run(a)
            first[a] = time.perf_counter() - t0
        # one slow first run (one-time costs, a slow spell of the host) must not drop a
        # kernel: those past the line run once more, the faster run counts (a suite run,
        # AMD EPYC: layer b's weight gradient at 1 thread dropped dense on a first run 9.6x
        # GEMM's and kept GEMM, 6.1 ms on eight samples where dense takes 5.0)
        for a in algs:
            if first[a] > TIMED_DROP * min(first.values()):
                t0 = time.perf_counter()
                run(a)
                first[a] = min(first[a], time.perf_counter() - t0)
        kept = [a for a in algs if first[a] <= TIMED_DROP * min(first.values())]
        if small.n < g.n:
            plans, run = runner(g)
            if plans is None:
                return None
            for a in kept:
                run(a)
        for r in range(TIMED_ROUNDS):
            for a in (kept if r % 2 == 0 else kept[::-1]):
                t0 = time.perf_counter()
                run(a)
                runs[a].append(time.perf_counter() - t0)
    ref = kept[0]
    ratios = {a.value: float(np.median([t / t1 for t, t1 in zip(runs[a], runs[ref])])) if a in kept
              else first[a] / first[ref] for a in algs}
    return {a.value: float(np.median(runs[a])) if a in kept else first[a] for a in algs}, ratios, ref.value


def _pruned(g, dtype, op, planner, empty):
    """The plan of ``g`` without the taps that only read padding (:func:`geometry.prune`), or
    None when every tap meets the input somewhere.  ``empty``: the algorithm when no tap does."""
    pr = prune(g)
    if pr is None:
        return None
    if pr.geometry is None:
        return Plan(op, empty, g, dtype, prune=pr)
    return dataclasses.replace(planner(pr.geometry, dtype, False), prune=pr)


def _gradient_trivial(g, dtype, op, planner, allow_prune):
    """A gradient's plan when an operand is empty (zeros) or taps only read padding (pruned)."""
    if _prod(g.x_shape) == 0 or _prod(g.out_shape) == 0 or _prod(g.w_shape) == 0:
        return Plan(op, A.ZEROS, g, dtype)
    return _pruned(g, dtype, op, planner, A.ZEROS) if allow_prune else None


Launch = collections.namedtuple("Launch", ["out_shape", "x_view", "w_view", "out_view", "kernel", "args"])
Launch.__doc__ = """A leaf plan's precomputed kernel call: output shape, the views the kernel takes of
x, w and the output, the kernel specialised for the plan's dtype and its static arguments
(so a repeated call only allocates the output and calls)."""


def _forward_plan(g, dtype, alg, nthreads, t, layout, nonfinite=None):
    isz = dtype.itemsize
    cg, og, kvol = g.cg, g.og, g.kvol
    out_bytes = _prod(g.out_shape) * isz
    tiles, ws, data = (), 0, None
    obw = dense_obw(og)
    packed = g.groups * -(-og // obw) * cg * kvol * obw * isz
    x5, w5, o5 = (g.n, g.cin) + g.sp3, (g.cout, cg) + g.k3, (g.n, g.cout) + g.o3
    if alg in (A.THIN_S1, A.THIN_REG):
        # stride 1 in-plane, over a padded copy of the group's channels: whole-plane passes
        # per tap (thin_s1), or output rows computed in registers and stored once (thin_reg)
        padded = tuple(i + a + c for i, (a, c) in zip(g.sp3, g.pads3))
        ws = nthreads * (_thin_pad_bytes(g, isz) if alg == A.THIN_S1 else
                         thin_direct.reg_scratch_bytes(g.cg * padded[0], padded[1], padded[2], g.pb3[2], isz))
        fn = thin_direct.direct_conv_s1 if alg == A.THIN_S1 else thin_direct.direct_conv_reg
        data = Launch(g.out_shape, x5, w5, o5, kernel(fn, dtype),
                      (kernel_geo(stride=g.s3, dilation=g.d3, pad=g.pb3, plane=padded), g.groups))
    elif alg == A.THIN_ROW:
        # strided depthwise: building phase planes would cost as much as the
        # convolution; the row kernel skips padded taps in place instead
        data = Launch(g.out_shape, x5, w5, o5, kernel(thin_direct.direct_conv, dtype),
                      (kernel_geo(stride=g.s3, dilation=g.d3, pad=g.pb3), g.groups))
    elif alg == A.THIN_PHASE:
        # each thread splits one (sample, group)'s zero-padded channels into their phase
        # planes, where every tap of the strided layer is a contiguous run, and sums the taps
        # over the output frame in registers
        qshape, phases, offs = layout or plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
        ws = nthreads * _thin_phase_bytes(g, isz)
        data = Launch(g.out_shape, x5, (g.cout, cg, kvol), o5, kernel(dense_direct.thin_phase, dtype),
                      (plane_geo(qshape, g.s3, g.pads3), phases, offs, g.groups))
    elif alg in (A.POINTWISE, A.DENSE):
        if alg == A.POINTWISE:
            # the input is its own (single) phase plane: read in place
            qshape, phases, offs = (tuple(g.sp3), np.zeros((1, 3), dtype=np.intp), np.zeros(1, dtype=np.intp))
            frame = _prod(g.o3)
            tile = balanced_tile(frame, g.n * g.groups, nthreads, t)
            tiles, ws = (("tile", tile), ("chunk", t.pointwise_chunk)), packed
            pgeo = plane_geo(qshape, (1, 1, 1), ((0, 0),) * 3)
        else:
            # each thread builds one (sample, group)'s padded phase planes in its own buffer
            qshape, phases, offs = layout or plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
            o3 = g.o3
            frame = ((o3[0] - 1) * qshape[1] + o3[1] - 1) * qshape[2] + o3[2]
            tile = balanced_tile(frame, g.n * g.groups, nthreads, t)
            tiles = (("tile", tile), ("chunk", tile))
            ws = nthreads * cg * len(phases) * _prod(qshape) * isz + packed
            pgeo = plane_geo(qshape, g.s3, g.pads3)
        sub = np.array([[len(offs), 0, 0, g.o3[0], g.o3[1], g.o3[2], 0, 0, 0, 1, 1, 1]], dtype=np.intp)
        sub.setflags(write=False)
        cblock = dense_cblock(len(offs), isz, t, obw, g.k3[0] > 1)
        tiles += (("cblock", cblock),) * (cblock < cg) + (("obw", obw),) * (obw != _OBW)
        data = Launch(g.out_shape, x5, w5, o5, kernel(dense_direct.dense_conv, dtype),
                      (pgeo, phases, offs, sub, g.groups, tile, dict(tiles)["chunk"], cblock, alg == A.POINTWISE, obw))
    elif alg == A.DENSE_OC:
        B, rows, cols, osplit, cblock, ws = oc_blocking(g, dtype, nthreads, t)
        tiles = (("rows", rows), ("cols", cols), ("cblock", cblock), ("lanes", B)) + (("osplit", osplit),) * (osplit > 1)
        data = Launch(g.out_shape, x5, w5, o5, kernel(dense_direct.dense_oc, dtype),
                      (kernel_geo(g.sp3, g.o3, g.k3, g.s3, g.d3, g.pb3), g.groups, B, rows, cols, osplit, cblock))
    elif alg == A.PANEL:
        # 1x1, stride 1, unpadded: per (sample, group, chunk of positions) stripes copied from
        # the input, blocks of panel.MR output channels swept over them
        # panel_chunk positions of float32: the same bytes per row in float64
        nr = panel.NR[dtype.name]
        chunk = max(nr, t.panel_chunk * 4 // isz // nr * nr)
        nthreads = max(1, min(nthreads, g.n * g.groups * -(-_prod(g.o3) // chunk)))
        mr = panel.MR
        ws = nthreads * (cg * chunk + mr * nr) * isz + g.groups * -(-og // mr) * cg * mr * isz
        tiles = (("chunk", chunk), ("mr", mr), ("nr", nr))
        data = Launch(g.out_shape, (g.n, g.cin, -1), w5, (g.n, g.cout, -1), kernel(panel.panel_forward, dtype),
                      (g.groups, chunk))
    elif alg == A.MATMUL:
        # 1x1, stride 1, unpadded: out[n, group] = W[group] x[n, group], one BLAS call
        data = Launch(g.out_shape, (g.n, g.groups, cg, -1), (g.groups, og, cg), (g.n, g.groups, og, -1), None, ())
    elif alg == A.GEMM:
        kc = cg * kvol
        p = _prod(g.out)
        nn_check_gemm_dims(p, kc, _prod(g.spatial), og)
        tile = gemm_tile(p, kc, g.n * g.groups, nthreads, isz, out_bytes, t)
        tiles, ws = (("tile", tile),), nthreads * tile * kc * isz
        nb = gemm_batch(p, g.n, g.groups * (_prod(g.spatial) > 0), kc + og, nthreads, isz,
                        max(t.workspace_bytes, out_bytes), t)
        tab = _NO_TABLE
        blas = t.gemm_blas_threads and nb == 1
        if nb > 1:
            tile = p
            tiles, ws = (("tile", tile), ("samples", nb)), nthreads * (kc + og) * nb * p * isz
            tab = gather_table(g.sp3, g.o3, g.k3, g.s3, g.d3, g.pb3)
        row_parts = 0
        if nb == 1 and not blas and gemm_row_parts(g.n * g.groups, og, p, tile, nthreads):
            row_parts = nthreads
            tile = gemm_tile(p, kc, g.n * g.groups, 1, isz, out_bytes, t)
            tiles, ws = (("tile", tile), ("row_parts", row_parts)), tile * kc * isz
        geo = gemm_geo(g)
        data = Launch(g.out_shape, (g.n, g.cin, -1), (g.cout, -1), (g.n, g.cout, -1),
                      kernel(nn_gemm.conv_forward, dtype),
                      (geo, g.groups, tile, nb, tab, g.is_pointwise, blas, row_parts))
    return Plan("forward", alg, g, dtype, nthreads, ws, tiles, nonfinite=nonfinite, data=data)


_NO_BIAS = {}


def _bias_vec(b, dtype):
    """(contiguous bias vector, has_bias); an empty vector stands in for None."""
    if b is None:
        e = _NO_BIAS.get(dtype)
        if e is None:
            e = _NO_BIAS[dtype] = np.zeros(0, dtype=dtype)
            e.setflags(write=False)
        return e, False
    return np.ascontiguousarray(b, dtype=dtype), True


def _finite(a):
    return bool(np.isfinite(a).all())


def _dropped_finite(w, pr):
    """True when every weight tap ``pr`` drops is finite (so dropping it is exact)."""
    if pr.geometry is None:
        return _finite(w)
    mask = np.ones(w.shape, dtype=bool)
    mask[pr.weight_slices()] = False
    return _finite(w[mask])


def forward(p, x, w, b, pack=None):
    """Run the forward plan ``p`` on batched C-contiguous ``x``, ``w`` (and ``b`` or None).
    ``pack``: for the kernels that pack their weights in blocks (``dense``, ``dense_oc``),
    a function of (block width, threads) giving them (``(flat blocks, all finite)``) in
    place of packing ``w`` (then None): the input gradient's flipped kernel."""
    g = p.geometry
    if p.prune is not None:
        if not _dropped_finite(w, p.prune):
            p = plan_forward(p.prune.full, p.dtype, False)
            return forward(p, x, w, b)
        if p.algorithm != A.FILL:
            x = np.ascontiguousarray(x[p.prune.input_slices()])
            w = np.ascontiguousarray(w[p.prune.weight_slices()])
    if p.nonfinite is not None and not _finite(w):
        p = p.nonfinite
    L = p.data
    out = first_touch(np.empty(g.out_shape if L is None else L.out_shape, dtype=p.dtype), p.threads)
    d = _plan.dry()
    if d is not None:
        d.append(p)
        out[...] = 0
        return out
    alg = p.algorithm
    if alg != A.FILL and out.size == 0:
        return out
    if alg == A.FILL:
        out[...] = 0 if b is None else b.reshape((g.cout,) + (1,) * g.nd)
        return out
    bvec, has_b = _bias_vec(b, p.dtype)
    team = team_size(p.threads)         # the plan's threads, fewer when other processes hold cores
    if (alg is A.THIN_REG or alg is A.THIN_S1 or alg is A.THIN_ROW or alg is A.THIN_PHASE) and not _plan.VERBOSE:
        # the common tiny case without the verbose wrapper
        L.kernel(x.reshape(L.x_view), w.reshape(L.w_view), bvec, has_b, out.reshape(L.out_view), *L.args, team)
    elif alg in (A.THIN_REG, A.THIN_S1, A.THIN_ROW, A.THIN_PHASE):
        _plan.run(p, L.kernel, x.reshape(L.x_view), w.reshape(L.w_view), bvec, has_b, out.reshape(L.out_view),
                  *L.args, team)
    elif alg in (A.DENSE, A.POINTWISE):
        pgeo, phases, offs, sub, groups, tile, chunk, cblock, pw, obw = L.args
        wpk = (pack or _packer(w, groups))(obw, team)[0]
        _plan.run(p, L.kernel, x.reshape(L.x_view), pgeo, phases, wpk,
                  offs, sub, bvec, has_b, out.reshape(L.out_view), groups, tile, chunk, cblock, pw, obw, team)
    elif alg == A.DENSE_OC:
        geo, groups, B, rows, cols, osplit, cblock = L.args
        wpk, finite = (pack or _packer(w, groups))(B, team)
        _plan.run(p, L.kernel, x.reshape(L.x_view), geo, wpk, bvec, has_b, out.reshape(L.out_view), groups, B, rows,
                  cols, osplit, cblock, finite, team)
    elif alg == A.PANEL:
        groups, chunk = L.args
        mr = panel.MR
        bpad = np.zeros((groups, -(-g.og // mr) * mr), dtype=p.dtype)
        if has_b:
            bpad[:, :g.og] = bvec.reshape(groups, g.og)
        _plan.run(p, L.kernel, x.reshape(L.x_view), pack_weight_blocks(w, groups, mr, team, _tuning.active())[0], bpad,
                  has_b, out.reshape(L.out_view), groups, chunk, team)
    elif alg == A.MATMUL:
        o4 = out.reshape(L.out_view)
        # one matrix product per sample and group (or span of its columns), each on BLAS's
        # one thread, on the team (nn_gemm's matrix products: why not BLAS's threads)
        w3, x3, o3 = w.reshape(L.w_view), x.reshape(g.n * g.groups, g.cg, -1), o4.reshape(g.n * g.groups, g.og, -1)
        with blas_single_thread():
            _plan.run(p, kernel(nn_gemm.matmul_stack, p.dtype), w3, False, x3, o3, _matmul_span(o3, p.threads), team)
        if has_b:
            o4 += bvec.reshape(1, g.groups, g.og, 1)
    elif alg == A.GEMM:
        with blas_single_thread(team if L.args[6] else 1):
            _plan.run(p, L.kernel, x.reshape(L.x_view), w.reshape(L.w_view), bvec, has_b, out.reshape(L.out_view),
                      *L.args, team)
    else:
        raise AssertionError(f"forward plan with algorithm {alg}")
    return out


# =========================================================================== transposed convolution

def flipped_geometry(g):
    """The stride-1 transposed convolution ``g`` as a forward convolution: the kernel flipped,
    its channel axes swapped per group, padded by ``d(k-1) - p`` (``+ output_padding`` after)."""
    pads = tuple((d * (k - 1) - pp, d * (k - 1) - pp + op)
                 for (pp, _), op, d, k in zip(g.pads, g.output_padding, g.dilation, g.kernel))
    return conv_geometry(g.x_shape, (g.cout, g.cg) + tuple(g.kernel), (1,) * g.nd, pads, g.dilation, g.groups)


@_plan.cached
def plan_transposed(g, dtype):
    """Plan of the transposed convolution ``g`` (``g.transposed``) computing in ``dtype``."""
    dtype = np.dtype(dtype)
    if _prod(g.out_shape) == 0:
        return Plan("transposed", A.FILL, g, dtype)
    t = _tuning.active()
    isz = dtype.itemsize
    cg, og, kvol = g.cg, g.og, g.kvol
    flip_ok = (all(s == 1 for s in g.stride)
               and all(pp <= d * (k - 1) for (pp, _), d, k in zip(g.pads, g.dilation, g.kernel)))
    nthreads = num_parts_for(_prod(g.x_shape) * og * kvol + _prod(g.out_shape), t.grain)

    @functools.cache
    def phases():
        ph = phase_plan(g.sp3, g.k3, g.s3, g.d3, _lift3([pp[0] for pp in g.pads], 0), g.o3)
        return ph, nthreads * cg * _prod(ph[0]) * isz

    budget = max(t.workspace_bytes, _prod(g.out_shape) * isz)
    oc_fits = not flip_ok and phases_oc_blocking(g, dtype, nthreads, t)[4] <= budget
    phases_fit = not flip_ok and phases()[1] <= budget
    # thin groups (few output channels per group: the dense kernels' register blocks of
    # output channels would stand mostly empty), strided: per-thread frames, phase by phase
    thin_threads = num_parts_for(_thin_work(g, t, _prod(g.out_shape), _prod(g.x_shape) * og * kvol), t.grain)
    thin_fits = (not flip_ok and (cg == 1 or og < t.dense_min_og)
                 and thin_threads * _thin_phase_t_bytes(g, isz) <= budget)
    if flip_ok:
        # Stride 1: a plain convolution with the kernel flipped and its channel axes
        # swapped (no zeros are inserted: stride 1 has none).  The direct dense kernel
        # then beats GEMM + col2im, whose column matrix is kvol times the input -- unless
        # the output is much larger than the input: then most flipped taps meet padding,
        # and the two are timed (8x64x2x2x1 * 64x3x7x7x4, an input gradient, 2 threads,
        # AMD EPYC: flip_conv 0.84 ms computing 77M multiply-adds for 1.2M, GEMM + col2im
        # 0.08; PyTorch 0.18)
        # (the flipped convolution's own flops decide whether that is worth timing: an input
        # gradient of 1.1 MFLOP, 1x3x8^3 * 64x3x7^3, ran 67 MFLOP in flip_conv, 0.89 ms at 1
        # thread, AMD EPYC, against GEMM's 0.055)
        sparse = _prod(g.out) >= 2 * _prod(g.spatial)
        timed = (_timed("transposed", g, dtype, [A.GEMM, A.FLIP_CONV], _flops(flipped_geometry(g)))
                 if sparse else None)
    else:
        # the kernels that fit, against GEMM + col2im: timed on large layers (8x64x500 grouped
        # 16->16 k7 stride 2, an input gradient, 1 thread, AMD EPYC: the rules below gave
        # GEMM, 1.9 ms, where phases_oc takes 0.48 and phases 0.54)
        timed = _timed("transposed", g, dtype, [A.GEMM] + [A.PHASES] * phases_fit + [A.PHASES_OC] * oc_fits
                       + [A.THIN_PHASE] * thin_fits)
    if timed is not None:
        default = timed
    elif flip_ok:
        default = A.FLIP_CONV
    elif thin_fits and use_thin(cg, og, t):
        # the forward's calibrated limit for the same frame sums (the input gradient of a
        # depthwise 3x3 stride 2 8x256x28^2 layer, 1 thread, AMD EPYC: phases 2.0 ms, GEMM
        # 1.4, thin_phase 0.44)
        default = A.THIN_PHASE
    elif ((t.phases_oc if isz == 4 else t.phases_oc_f8) and og > dense_direct.OC_LANES[dtype.name]
          and not use_thin(cg, og, t) and _prod(g.out) >= t.dense_oc_min_positions * _prod(g.stride)
          and phase_k(g) <= t.dense_oc_max_k and oc_fits):
        # groups of more than one vector of output channels: dense_oc's register tiles per
        # output phase, each phase's outputs written in place (no planes, no col2im)
        default = A.PHASES_OC
    elif (og >= t.dense_min_og and not use_thin(cg, og, t)
          and _prod(g.out) >= t.phases_min_positions * _prod(g.stride) and phase_k(g) <= t.phases_max_k
          and phases_fit):
        # dense groups: each output phase is a stride-1 correlation with a sub-kernel;
        # its register blocks hold 8 output channels (with fewer, GEMM + col2im wins) and
        # 32 positions (on small maps or many channels GEMM wins: measured, see tuning)
        default = A.PHASES
    else:
        default = A.GEMM
    cands = (A.PHASES, A.GEMM, A.PHASES_OC) + (A.FLIP_CONV,) * flip_ok + (A.THIN_PHASE,) * (not flip_ok)
    alg = _plan.pick(default, cands)
    try:
        gemm = _transposed_gemm_plan(g, dtype, nthreads, t)
    except ValueError:
        if alg == A.GEMM:
            raise
        gemm = None         # beyond BLAS's 32-bit sizes: no col2im fallback for non-finite weights
    if alg == A.GEMM:
        return dataclasses.replace(gemm, candidates=cands)
    # A non-finite weight stays on col2im: the padded zeros of the other algorithms would
    # turn inf into nan, which the scatter formulation, like PyTorch, never does.
    if alg == A.FLIP_CONV:
        sub = plan_forward(flipped_geometry(g), dtype)
        return Plan("transposed", alg, g, dtype, sub.threads, sub.workspace_bytes, sub=sub, nonfinite=gemm,
                    candidates=cands)
    if alg == A.THIN_PHASE:
        return Plan("transposed", alg, g, dtype, thin_threads, thin_threads * _thin_phase_t_bytes(g, isz),
                    nonfinite=gemm, data=thin_phase_t_layout(g), candidates=cands)
    if alg == A.PHASES_OC:
        B, rows, cols, ctaps, ws = phases_oc_blocking(g, dtype, nthreads, t)
        layout = phases_oc_layout(g.k3, g.s3, g.d3, _lift3([pp[0] for pp in g.pads], 0))
        pb3, mx3, _, toff3, taps = layout
        geo = kernel_geo(g.o3, g.sp3, g.k3, g.s3, g.d3, pb3, mx3)
        return Plan("transposed", alg, g, dtype, nthreads, ws,
                    (("rows", rows), ("cols", cols), ("ctaps", ctaps), ("lanes", B)), nonfinite=gemm,
                    data=(geo, toff3, taps) + _phases_oc_weights(g, layout, B), candidates=cands)
    phase, phase_ws = phases()
    subs, (offs, taps), frame = phase[2]
    tile = balanced_tile(frame, g.n * g.groups * len(subs), nthreads, t)
    cblock = dense_cblock(int(subs[:, 0].max()), isz, t, dense_obw(g.og), g.k3[0] > 1)
    return Plan("transposed", alg, g, dtype, nthreads, phase_ws, (("tile", tile),) + (("cblock", cblock),) * (cblock < cg),
                nonfinite=gemm, data=(phase, _phase_weight_index(g, subs, taps)), candidates=cands)


def _phase_weight_index(g, subs, taps):
    """Where ``dense_conv`` finds each phase's weights: per sub-problem (groups, ceil(og/obw),
    cg, ntaps, obw) blocks, one after the other, as flat indices into the weight
    (C_in, C_out/groups, *kernel) followed by one zero (the rows past og in the last block).
    Returns (indices, subs with their weight starts).  Taken once per plan: gathering the
    blocks with NumPy slicing on every call cost 0.15-0.2 ms (64->32 4x4 stride 2)."""
    obw = dense_obw(g.og)
    nob = -(-g.og // obw)
    kvol = g.kvol
    parts = []
    for nt, t0 in subs[:, :2]:
        tap = np.asarray(taps[t0:t0 + nt], dtype=np.intp)
        gi, ob, c, tt, j = np.ix_(range(g.groups), range(nob), range(g.cg), range(nt), range(obw))
        oo = ob * obw + j
        flat = ((gi * g.cg + c) * g.og + np.minimum(oo, g.og - 1)) * kvol + tap[tt]
        parts.append(np.where(oo < g.og, flat, g.cin * g.og * kvol).reshape(-1))
    subs = subs.copy()
    subs[:, 2] = np.concatenate([[0], np.cumsum([q.size for q in parts])[:-1]])
    return np.concatenate(parts).astype(np.intp), subs


@functools.lru_cache(maxsize=64)
def phases_oc_layout(k3, s3, d3, p3):
    """The output phases of a transposed convolution for ``dense_direct.phases_oc`` (cached:
    shapes only).  Output ``y = m*s + r`` (per dim) receives ``x[m - delta_a] w[a]`` for the
    taps ``a`` of class ``r`` (``(r + p - a*d) % s == 0``, ``delta_a = (a*d - r - p) / s``):
    in the input zero-padded by ``pb = max(0, deltas)`` before, tap ``a`` sits ``pb - delta_a``
    past ``m``.  Returns ``(pb3, mx3, phs, toff3, taps)``: the padding, the largest offset
    per dim, per phase ``(rd*sh + rh)*sw + rw`` (its taps, its first row in ``toff3``, 0),
    each tap's (depth, row, column) offsets and its index in the kernel."""
    dims = []
    for k, s_, d_, p_ in zip(k3, s3, d3, p3):
        cls = [[(a, (a * d_ - r - p_) // s_) for a in range(k) if (r + p_ - a * d_) % s_ == 0] for r in range(s_)]
        pb = max([0] + [dl for taps in cls for _, dl in taps])
        cls = [[(a, pb - dl) for a, dl in taps] for taps in cls]
        dims.append((cls, pb, max([0] + [o for taps in cls for _, o in taps])))
    phs, toff3, taps = [], [], []
    for td in dims[0][0]:
        for th in dims[1][0]:
            for tw in dims[2][0]:
                phs.append([len(td) * len(th) * len(tw), len(toff3), 0])
                for a, oa in td:
                    for b_, ob in th:
                        for e, oe in tw:
                            taps.append((a * k3[1] + b_) * k3[2] + e)
                            toff3.append((oa, ob, oe))
    phs = np.array(phs, dtype=np.intp).reshape(-1, 3)
    toff3 = np.array(toff3, dtype=np.intp).reshape(-1, 3)
    taps = np.array(taps, dtype=np.intp)
    for arr in (phs, toff3, taps):
        arr.setflags(write=False)       # cached: shared by later calls
    return tuple(d[1] for d in dims), tuple(d[2] for d in dims), phs, toff3, taps


@functools.lru_cache(maxsize=256)
def thin_phase_t_layout(g):
    """``(geo, phs, offs, widx)`` of ``dense_direct.thin_phase_t`` on the transposed
    convolution ``g`` (cached: shapes only).  Output phase r (of :func:`phases_oc_layout`)
    reads the input zero-padded by ``pb3`` before, in a frame of ceil(out / s) + the largest
    offset positions per dim (``geo``'s q-shape: every output of every phase reads inside
    it), at its taps' flat frame offsets ``offs`` (phase by phase; ``phs``: (ntaps, first)
    per phase); ``widx``: per output channel the weight's flat indices, per phase (input
    channel, tap) in that order, as ``thin_phase_t`` reads them."""
    pb3, mx3, phs, toff3, taps = phases_oc_layout(g.k3, g.s3, g.d3, _lift3([pp[0] for pp in g.pads], 0))
    q3 = tuple(-(-o // s_) + m for o, s_, m in zip(g.o3, g.s3, mx3))
    offs = ((toff3[:, 0] * q3[1] + toff3[:, 1]) * q3[2] + toff3[:, 2]).astype(np.intp)
    cg, og, kvol = g.cg, g.og, g.kvol
    gi, o = np.divmod(np.arange(g.cout), og)
    widx = np.empty((g.cout, cg * kvol), dtype=np.intp)
    for nt, t0, _ in phs:
        c, j = (a.reshape(-1) for a in np.meshgrid(np.arange(cg), np.arange(nt), indexing="ij"))
        widx[:, cg * t0 + c * nt + j] = ((gi[:, None] * cg + c) * og + o[:, None]) * kvol + taps[t0 + j]
    for arr in (offs, widx):
        arr.setflags(write=False)
    return kernel_geo(g.sp3, g.o3, g.k3, g.s3, g.d3, pb3, q3), phs, offs, widx


def _thin_phase_t_bytes(g, itemsize):
    """One thread's buffers in transposed 'thin_phase': the group's padded frames and one
    output frame per phase (rounded up as the kernel does)."""
    geo, phs, _, _ = thin_phase_t_layout(g)
    per = 64 // itemsize
    frame = (((-(-g.o3[0] // g.s3[0]) - 1) * geo["qh"] + -(-g.o3[1] // g.s3[1]) - 1) * geo["qw"]
             + -(-g.o3[2] // g.s3[2]))
    return (g.cg * (geo["qd"] * geo["qh"] * geo["qw"] + per) + len(phs) * (frame + 2 * per)) * itemsize


def phases_oc_blocking(g, dtype, nthreads, t):
    """``(B, rows, cols, ctaps, workspace bytes)`` of ``dense_direct.phases_oc`` on the
    transposed convolution ``g``: as :func:`oc_blocking` (B output channels per block, units of
    about ``dense_oc_positions`` positions per output phase; for a small batch the rows of
    :func:`balanced_rows`), with unit rows a multiple of the row stride and columns of the column stride (every phase of a unit reads
    one padded copy of the input), ``ctaps`` (input channel, tap) pairs per pass, their
    weights within ``dense_oc_wblock_bytes``."""
    isz = dtype.itemsize
    lanes = dense_direct.OC_LANES[dtype.name]
    og, cg = g.og, g.cg
    (od, oh, ow), (_, sh, sw) = g.o3, g.s3
    B = lanes if og <= lanes else 2 * lanes
    cols = ow if ow <= t.dense_oc_max_cols else max(sw, t.dense_oc_max_cols // sw * sw)
    # (about dense_oc_positions positions per phase: each pass of weights serves them)
    rows = sh if cols < ow else max(sh, min(-(-oh // sh) * sh, t.dense_oc_positions // -(-ow // sw) * sh))

    def units(r):
        return g.n * g.groups * od * -(-oh // r) * -(-ow // cols)

    # a small batch: the rows whose units fall most evenly on the threads, as dense_oc's
    # (1x64x28x28 * 64x32x4x4 stride 2 at 2 threads, AMD EPYC: rows 16 -> 28, 1.07-1.08x;
    # 1x128x14x14 * 128x64x4x4: 8 -> 14, 1.06-1.08x; same bits)
    if units(rows) < 8 * nthreads:
        rows = balanced_rows(oh, rows, units(oh), 1, nthreads, sh)
    pb3, mx3, phs, _, _ = phases_oc_layout(g.k3, g.s3, g.d3, _lift3([pp[0] for pp in g.pads], 0))
    ctaps = int(max(1, t.dense_oc_wblock_bytes // (B * isz)))
    wp = -(-cols // sw) + mx3[2]
    slab = (-(-rows // sh) + mx3[1]) * wp
    per = 64 // isz
    packed = g.groups * -(-og // B) * cg * int(phs[:, 0].sum()) * B * isz
    ws = nthreads * (cg * ((mx3[0] + 1) * slab + 2 * per) + rows * cols * B + 2 * per) * isz + packed
    return B, int(rows), int(cols), ctaps, int(ws)


def _phases_oc_weights(g, layout, B):
    """``(phs, size)``: ``phs`` with the start of each phase's packed weights filled in
    ((groups, ceil(og/B), cg, taps, B) blocks, one phase after the other) and their size."""
    phs = layout[2].copy()
    per = g.groups * -(-g.og // B) * g.cg * B
    phs[:, 2] = np.concatenate([[0], np.cumsum(phs[:, 0] * per)[:-1]])
    phs.setflags(write=False)
    return phs, int(phs[:, 0].sum() * per)


def _phases_oc(p, x, w, bvec, has_b, out):
    """The output-channel kernel per output phase (``dense_direct.phases_oc``)."""
    g = p.geometry
    geo, toff3, taps, phs, size = p.data
    B = p.tile("lanes")
    # 64-byte aligned: every weight vector load stays within one cache line
    wpk = dense_direct.aligned_rows(1, max(1, size), p.dtype)[0]
    t = _tuning.active()
    kernel(dense_direct.pack_phases, p.dtype)(w.reshape(g.cin, g.og, g.kvol), phs, taps, wpk, g.groups, B,
                                           max(1, min(p.threads, num_threads_for(size, grain=t.pack_grain))))
    kernel(dense_direct.phases_oc, p.dtype)(x.reshape((g.n, g.cin) + g.sp3), geo, phs, toff3, wpk, bvec, has_b,
                                         out.reshape((g.n, g.cout) + g.o3), g.groups, B,
                                         p.tile("rows"), p.tile("cols"), p.tile("ctaps"), team_size(p.threads))


def _transposed_gemm_plan(g, dtype, nthreads, t):
    isz = dtype.itemsize
    cg, og, kvol = g.cg, g.og, g.kvol
    p = _prod(g.spatial)
    nn_check_gemm_dims(og * kvol, p, cg, og * kvol * g.groups)
    # channel blocks: enough units for every thread; each unit's columns within budget
    cblk = og
    units = g.n * g.groups
    if units < 2 * nthreads:
        cblk = min(cblk, max(1, -(-og // -(-2 * nthreads // units))))
    # columns of one unit: cblk*kvol rows x tile input positions, kept near L2 size
    # (a whole-plane column matrix would stream through memory twice)
    cblk = max(1, min(cblk, max(1, t.tile_bytes // max(1, kvol * 256 * isz))))
    tile = max(1, min(p, max(256, t.tile_bytes // max(1, cblk * kvol * isz))))
    rows = cblk * kvol + cg
    nb = gemm_batch(p, g.n, g.groups * -(-og // cblk) * (cg > 0), rows, nthreads, isz,
                    max(t.workspace_bytes, _prod(g.out_shape) * isz), t)
    if nb > 1:
        return Plan("transposed", A.GEMM, g, dtype, nthreads, nthreads * rows * nb * p * isz,
                    (("channels", cblk), ("tile", p), ("samples", nb)),
                    data=gather_table(g.o3, g.sp3, g.k3, g.s3, g.d3, g.pb3))
    return Plan("transposed", A.GEMM, g, dtype, nthreads, nthreads * cblk * kvol * tile * isz,
                (("channels", cblk), ("tile", tile)))


def phase_k(g):
    """K of the transposed convolution ``g``'s largest output phase: C_in/groups x the taps
    of that phase (a stride-s transposed convolution splits its kernel over the phases:
    4x4 stride 2 gives each phase 2x2 taps, 3x3 stride 2 gives 2x2, 2x1, 1x2 and 1x1).  The
    dense kernel runs each phase as its own correlation, so this K -- not C_in x kvol --
    is what the register blocks loop over (what ``phases_max_k`` is calibrated on).

    >>> from pyconv._engine.geometry import transposed_geometry
    >>> phase_k(transposed_geometry((8, 64, 28, 28), (64, 32, 4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1))
    256
    """
    taps = 1
    for k, s, d, (p, _) in zip(g.kernel, g.stride, g.dilation, g.pads):
        taps *= max(sum(1 for a in range(k) if (r + p - a * d) % s == 0) for r in range(s))
    return g.cg * taps


@functools.lru_cache(maxsize=64)
def phase_plan(sp3, k3, s3, d3, p3, o3):
    """Geometry of the transposed convolution's output phases (cached: shapes only).

    Output ``o = m*s + r`` (per dim) receives ``x[i] w[a]`` for the taps with
    ``i*s - p + a*d = o``, i.e. ``(r + p - a*d) % s == 0`` and ``i = m - delta_a`` with
    ``delta_a = (a*d - r - p) / s``: phase ``r`` is a stride-1 correlation of the
    zero-padded input with the taps of its class.

    Returns ``(pshape, pad_before, (subs, (offs, taps), frame))``: the padded input
    shape and its padding before, the ``dense_conv`` sub-problem rows (weight starts
    left 0), each tap's flat offset in the padded input and its index in the
    kernel (both in sub-problem order), and the longest sub-problem frame.
    """
    # per dim: for each phase r, its output count and its taps with their delta
    dims = []
    for i_sz, k, s_, d_, p_, o_sz in zip(sp3, k3, s3, d3, p3, o3):
        ph = []
        for r in range(min(s_, o_sz)):
            taps = [(a, (a * d_ - r - p_) // s_) for a in range(k) if (r + p_ - a * d_) % s_ == 0]
            ph.append((r, (o_sz - r + s_ - 1) // s_, taps))
        deltas = [dl for _, _, taps in ph for _, dl in taps]
        pb = max([0] + deltas)
        pa = max([0] + [m - dl - i_sz for _, m, taps in ph for _, dl in taps] + [m - i_sz - pb for _, m, _ in ph])
        dims.append((ph, pb, pa))
    pshape = tuple(i_sz + pb + pa for i_sz, (_, pb, pa) in zip(sp3, dims))
    subs, offs, taps_idx = [], [], []
    for rd, md, td in dims[0][0]:
        for rh, mh, th in dims[1][0]:
            for rw, mw, tw in dims[2][0]:
                n0 = len(offs)
                for a, da in td:
                    for b_, dh in th:
                        for e, dw in tw:
                            taps_idx.append((a * k3[1] + b_) * k3[2] + e)
                            offs.append(((dims[0][1] - da) * pshape[1] + dims[1][1] - dh) * pshape[2]
                                        + dims[2][1] - dw)
                subs.append([len(offs) - n0, n0, 0, md, mh, mw, rd, rh, rw, s3[0], s3[1], s3[2]])
    frame = max(((md - 1) * pshape[1] + mh - 1) * pshape[2] + mw for _, _, _, md, mh, mw, *_ in subs)
    subs = np.array(subs, dtype=np.intp)
    offs = np.array(offs, dtype=np.intp)
    taps_idx = np.array(taps_idx, dtype=np.intp)
    for arr in (subs, offs, taps_idx):
        arr.setflags(write=False)       # cached: shared by later calls
    return pshape, tuple(pb for _, pb, _ in dims), (subs, (offs, taps_idx), frame)


def transposed(p, x, w, b):
    """Run the transposed plan ``p`` on batched C-contiguous ``x``, ``w`` (C_in, C_out/groups, *k)."""
    g = p.geometry
    if p.algorithm == A.FLIP_CONV and _plan.dry() is None:
        out = _flip_conv(p, x, w, b, g.groups)
        return transposed(p.nonfinite, x, w, b) if out is None else out
    if p.nonfinite is not None and not _finite(w):
        p = p.nonfinite
    d = _plan.dry()
    if d is not None:
        d.append(p)
        return np.zeros(g.out_shape, dtype=p.dtype)
    out = first_touch(np.empty(g.out_shape, dtype=p.dtype), p.threads)
    if out.size == 0:
        return out
    bvec, has_b = _bias_vec(b, p.dtype)
    n, cin, cout = g.n, g.cin, g.cout
    if p.algorithm == A.PHASES:
        _plan.run(p, _phases, p, x, w, bvec, has_b, out)
        return out
    if p.algorithm == A.PHASES_OC:
        _plan.run(p, _phases_oc, p, x, w, bvec, has_b, out)
        return out
    if p.algorithm == A.THIN_PHASE:
        geo, phs, offs, widx = p.data
        _plan.run(p, kernel(dense_direct.thin_phase_t, p.dtype), x.reshape((n, cin) + g.sp3),
                  w.reshape(-1).take(widx), bvec, has_b, out.reshape((n, cout) + g.o3), geo, phs, offs, g.groups,
                  team_size(p.threads))
        return out
    # the transposed convolution scatters into the image (its output) from the grid (its input)
    geo = scatter_geo(g)
    with blas_single_thread():
        _plan.run(p, kernel(nn_gemm.conv_transpose_forward, p.dtype), x.reshape(n, cin, -1), w.reshape(cin, -1),
                  bvec, has_b, out.reshape(n, cout, -1), geo, g.groups, p.tile("channels"), p.tile("tile"),
                  p.tile("samples", 1), _table_of(p), team_size(p.threads))
    return out


def _phases(p, x, w, bvec, has_b, out):
    """All output phases of a transposed convolution read one padded copy of the input, run by
    the dense direct kernel (one sub-problem per phase) and write their outputs with stride
    ``s``: no column matrix, no scatter-add (1.5x faster than GEMM + col2im for 4x4 s2
    64->32, float32, 1 thread)."""
    g = p.geometry
    n, cin, cout, cg = g.n, g.cin, g.cout, g.cg
    (pshape, pbs, (_, (offs, _), _)), (widx, subs) = p.data
    # (the index's last entry past the weight reads a zero: rows past og in the last block)
    wflat = np.concatenate([w.reshape(-1), np.zeros(1, w.dtype)]).take(widx)
    tile = p.tile("tile")
    kernel(dense_direct.dense_conv, p.dtype)(x.reshape((n, cin) + g.sp3), kernel_geo(pad=pbs, plane=pshape),
                                          np.zeros((1, 3), dtype=np.intp), wflat, offs, subs, bvec,
                                          has_b, out.reshape((n, cout) + g.o3), g.groups, tile, tile,
                                          p.tile("cblock", cg), False, dense_obw(g.og), team_size(p.threads))


# =========================================================================== weight gradient

def _grad_pointwise(g):
    """1x1, stride 1, unpadded, one group: the gradients are batched matrix products."""
    return g.groups == 1 and g.is_pointwise and tuple(g.spatial) == tuple(g.out)


@_plan.cached
def plan_weight_grad(g, dtype, allow_prune=True):
    """Plan of the weight gradient of the forward convolution ``g`` (the correlation of its
    input with grad_output), computing in ``dtype``."""
    dtype = np.dtype(dtype)
    trivial = _gradient_trivial(g, dtype, "weight_grad", plan_weight_grad, allow_prune)
    if trivial is not None:
        return trivial
    t = _tuning.active()
    isz = dtype.itemsize
    cg, og, kvol = g.cg, g.og, g.kvol
    panel_ok = g.is_pointwise and tuple(g.spatial) == tuple(g.out)
    # strided thin groups: per-thread phase planes ('thin_phase', where they fit)
    s1 = g.s3[1] == 1 and g.s3[2] == 1
    nparts = num_parts_for(_thin_work(g, t, _prod(g.x_shape), _prod(g.out_shape) * max(1, cg * kvol), s1), t.grain)
    phase = (not s1 and (cg == 1 or og < t.dense_min_og)
             and min(nparts, g.groups) * _thin_phase_bytes(g, isz) <= t.workspace_bytes)
    cands = ([A.THIN, A.GEMM] + [A.DENSE, A.DENSE_POS] * (not g.is_pointwise) + [A.MATMUL] * panel_ok
             + [A.PANEL] * panel_ok + [A.THIN_PHASE] * phase)
    dense = None
    # thin groups: grad_direct's kernel (its strided rows run scalar: GEMM wins there)
    thin = g.stride[-1] == 1 and (cg == 1 or og < t.dense_min_og)
    # 1x1: the panel and matrix-product kernels against GEMM and, on thin groups, the thin
    # kernel, timed on large layers (8x64x56^2, 1 thread, AMD EPYC: in 64 groups panel
    # 7.6 ms, thin 0.35; in 16 groups panel 2.3, thin 0.70; in 4 panel 1.4, GEMM 0.62;
    # 256->8 panel 1.1, matmul 0.45; per-group matrix products, OpenBLAS SkylakeX: 8x64x56^2
    # in 16 groups 0.15, thin 0.43; 8x128x28^2 -> 8 in 2 groups 0.053, thin 0.34)
    timed = (_timed("weight_grad", g, dtype, [A.GEMM, A.PANEL, A.MATMUL] + [A.THIN] * thin) if panel_ok else None)
    # panel's output blocks are WEIGHT_TILE[1] vectors wide: a group of few output channels
    # leaves most of their lanes empty (2x8x24^3 1x1 8->4 in 2 groups, untimed at 0.9
    # MFLOP, AMD EPYC: panel 0.21 ms for blocks of 64 lanes holding 2, GEMM 0.024)
    ob = panel.WEIGHT_TILE[1] * panel.LANES[dtype.name]
    panel_full = 2 * og > -(-og // ob) * ob
    if timed is not None:
        default = timed
    elif panel_ok and panel_full and (t.weight_panel_f8 if isz == 8 else t.weight_panel):
        default = A.PANEL
    elif panel_ok:
        # the matrix products, per group (untimed grouped 1x1 layers, 1 thread, AMD EPYC,
        # OpenBLAS SkylakeX: 2x8x24^3 8->4 in 2 groups matmul 0.024 ms, GEMM 0.033, thin
        # 0.073; 4x64x56^2 depthwise matmul 0.082, thin 0.15, GEMM 0.51; 4x8x28^2 -> 128 in 8
        # groups matmul 0.032, thin 0.045, GEMM 0.063)
        default = A.MATMUL
    else:
        nthreads = nparts
        dense = _dense_weight_plan(g, dtype, nthreads, t) if not g.is_pointwise else None
        # vectors along the positions: where output-channel vectors would be partly empty
        # (8x32x16x8x16 * 4x32x5^3 stride 2, 1 thread, AMD EPYC: 'dense' 2.6 ms, PyTorch 1.35)
        vl = 64 // isz
        pos = (dense is not None and og % vl and og < 4 * vl
               and _dense_weight_plan(g, dtype, nthreads, t, pos=True) is not None)
        # the kernels that fit, against im2col + GEMM: timed on large layers
        default = _timed("weight_grad", g, dtype, [A.GEMM] + [A.DENSE] * (dense is not None) + [A.DENSE_POS] * pos
                         + [A.THIN] * thin + [A.THIN_PHASE] * phase)
        if default is None:
            default = (A.THIN if thin else A.THIN_PHASE if phase
                       else A.DENSE if dense is not None and og >= t.dense_min_og
                       and _prod(g.out) >= min_positions(t, 'weight_dense', g)
                       and weight_acc_bytes(g, dtype) <= t.weight_dense_max_acc_bytes
                       else A.GEMM)
    alg = _plan.pick(default, cands)
    return dataclasses.replace(_weight_plan(g, dtype, alg, dense, t), candidates=tuple(cands))


def _weight_plan(g, dtype, alg, dense, t):
    isz = dtype.itemsize
    cg, kvol = g.cg, g.kvol
    if alg == A.PANEL:
        # columns of (group, input-channel tile) split into parts; each part sums its columns
        # over every sample and position (the bits do not depend on the split)
        # chunks of positions whose transposed grad_output (chunk x C_out/groups, padded to
        # whole output blocks) stays within weight_panel_bytes (calibrated)
        nc, nvo = panel.WEIGHT_TILE
        ob = nvo * panel.LANES[dtype.name]
        ogp = -(-g.og // ob) * ob
        cols = g.groups * -(-cg // nc)
        parts = max(1, min(num_parts_for(_prod(g.out_shape) * cg, t.grain), cols))
        chunk = int(max(8, (t.weight_panel_bytes_f8 if isz == 8 else t.weight_panel_bytes) // (ogp * isz)))
        ws = (cols * nc * ogp + parts * chunk * ogp) * isz
        return Plan("weight_grad", alg, g, dtype, parts, ws, (("chunk", chunk), ("tile", (nc, ob))))
    if alg == A.MATMUL:
        tall = t.weight_matmul_tall_f8 if isz == 8 else t.weight_matmul_tall
        return Plan("weight_grad", alg, g, dtype, num_parts_for(_prod(g.out_shape) * cg, t.grain),
                    tiles=(("transposed", 1),) * bool(tall and cg > g.og))
    if alg == A.THIN_PHASE:
        # a group per unit (its rows of the gradient: no partial sums)
        layout = plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
        nthreads = max(1, min(num_parts_for(_thin_work(g, t, _prod(g.x_shape), _prod(g.out_shape) * cg * kvol),
                                            t.grain), g.groups))
        return Plan("weight_grad", alg, g, dtype, nthreads, nthreads * _thin_phase_bytes(g, isz), data=layout)
    if alg == A.THIN:
        nthreads = max(1, min(num_parts_for(_prod(g.out_shape) * cg * kvol, t.grain), g.cin))
        # extent of the input the taps read, per spatial dim (padding made explicit)
        padded = tuple((o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(g.o3, g.s3, g.k3, g.d3))
        if g.s3[2] == 1 and g.d3[2] == 1 and g.og % 4:
            # single output channels (og % 4 of each group) shift their horizontal taps out
            # of aligned vectors (pyconv_tw): rows of whole cache lines (the extra columns are
            # zeros no tap reads) on a 64-byte-aligned scratch start on vector boundaries.
            # (depthwise weight gradient 8x256x56x56 float32, 1 thread, AMD EPYC: 3.9 ms ->
            # 3.2; aligned rows alone 3.8, the shifts alone 4.0)
            per = 64 // isz
            padded = padded[:2] + (-(-padded[2] // per) * per,)
        # each thread's row: the sums the sample-by-sample sweep carries, the padded channel
        row = grad_direct.TW_STATE + g.n * _prod(padded)
        ws = nthreads * row * isz
        launch = Launch(g.w_shape, (g.n, g.cin) + g.sp3, (g.n, g.cout) + g.o3, (g.cout, cg) + g.k3,
                        kernel(grad_direct.direct_weight, dtype),
                        ((nthreads, row),
                         kernel_geo(stride=g.s3, dilation=g.d3, pad=g.pb3, plane=padded), g.groups))
        return Plan("weight_grad", alg, g, dtype, nthreads, ws, (("extent", padded),), data=launch)
    # per-part partial sums: the split (the plan's threads) is fixed by the configuration;
    # the team running the parts may shrink on a busy machine without changing the bits
    nthreads = num_parts_for(_prod(g.out_shape) * max(1, cg * kvol), t.grain)
    if alg == A.DENSE:
        return dense or _dense_weight_plan(g, dtype, nthreads, t, budget=False)
    if alg == A.DENSE_POS:
        return _dense_weight_plan(g, dtype, nthreads, t, budget=False, pos=True)
    kc = cg * kvol
    p = _prod(g.out)
    nn_check_gemm_dims(p, kc, _prod(g.spatial), g.cout)
    if nthreads > 1 and kc >= 2 * nthreads and (g.n * g.groups < 2 * nthreads or g.cout * kc * isz > t.tile_bytes):
        # the parts split the gradient's rows (one accumulator) instead of the units: with
        # few samples, units would be thin position tiles whose every GEMM rewrites all of
        # (C_out, Kc) (layer b's weight gradient, 1 sample, 2 threads: 49-position tiles);
        # with an accumulator larger than an im2col tile, each part's own copy of it, read
        # and written whole by every GEMM, crowds the GEMM's panels out of L2 (layer b, 8
        # samples, 2 threads, Intel Xeon: 6.73 -> 5.01 ms, PyTorch 4.82)
        rp = -(-kc // nthreads)
        # small maps: samples side by side in each GEMM (K = nb x positions), as the units
        # of the other split do; each GEMM rewrites the part's rows of the accumulator once
        # per block of samples instead of once per sample (512<-512 7x7, 4 samples)
        nb = gemm_batch(p, g.n, g.groups * (_prod(g.spatial) > 0), rp + g.og, nthreads, isz,
                        t.workspace_bytes, t, balance=False)
        if nb > 1:
            return Plan("weight_grad", A.GEMM, g, dtype, nthreads,
                        g.cout * kc * isz + nthreads * (rp + g.og) * nb * p * isz,
                        (("tile", p), ("samples", nb), ("row_parts", nthreads)))
        tile = max(1, min(p, t.tile_bytes // max(1, rp * isz)))
        return Plan("weight_grad", A.GEMM, g, dtype, nthreads, g.cout * kc * isz + nthreads * rp * tile * isz,
                    (("tile", tile), ("row_parts", nthreads)))
    acc_bytes = nthreads * g.cout * kc * isz
    tile = gemm_tile(p, kc, g.n * g.groups, nthreads, isz, acc_bytes, t)
    nb = gemm_batch(p, g.n, g.groups * (_prod(g.spatial) > 0), kc + g.og, nthreads, isz,
                    max(t.workspace_bytes, acc_bytes), t)
    if nb > 1:
        return Plan("weight_grad", A.GEMM, g, dtype, nthreads, acc_bytes + nthreads * (kc + g.og) * nb * p * isz,
                    (("tile", p), ("samples", nb)), data=gather_table(g.sp3, g.o3, g.k3, g.s3, g.d3, g.pb3))
    return Plan("weight_grad", A.GEMM, g, dtype, nthreads, acc_bytes + nthreads * tile * kc * isz, (("tile", tile),))


def weight_acc_bytes(g, dtype):
    """Bytes of one part's accumulator in the dense weight-gradient kernel: every (input
    channel, tap) row times the output channels rounded up to its vector blocks."""
    isz = np.dtype(dtype).itemsize
    vl = 64 // isz
    nv = 4 if g.og > 2 * vl else (2 if g.og > vl else 1)
    return g.groups * g.cg * g.kvol * -(-g.og // (nv * vl)) * (nv * vl) * isz


def _dense_weight_plan(g, dtype, nthreads, t, budget=True, pos=False):
    """The dense weight-gradient plan, or None when one (sample, group)'s padded phase planes
    per thread exceed the workspace budget.  Output channels are the kernel's vector lanes;
    the im2col matrix is never built (1.3-1.5x faster than im2col tiles + OpenBLAS on the
    suite's dense layers a, f, g, j; float32, 1 thread).  ``pos``: the 'dense_pos' plan,
    positions in the vector lanes (each output channel's partial sums kept per lane: 64
    bytes of them per (row, channel) in the accumulators, summed by ``weight_reduce``)."""
    isz = dtype.itemsize
    cg, og = g.cg, g.og
    qshape, phases, offs = layout = plane_layout(g.sp3, g.k3, g.s3, g.d3, g.pads3)
    kvol = len(offs)
    vl = 64 // isz
    nv = 0 if pos else 4 if og > 2 * vl else (2 if og > vl else 1)
    ogp = og * vl if pos else -(-og // (nv * vl)) * (nv * vl)
    plane = cg * len(phases) * _prod(qshape)
    o3 = g.o3
    rows, ow = o3[0] * o3[1], o3[2]
    # units: rpt whole rows, or (long rows) one row's columns in ncol pieces
    ncol = -(-ow // t.weight_tile)
    rpt = 1 if ncol > 1 else max(1, min(rows, t.weight_tile // max(1, ow)))
    if nthreads > 1 and g.n * g.groups * (-(-rows // rpt)) * ncol < 8 * nthreads:
        # few units: make their count a multiple of the threads (static schedule)
        ntile = -(-rows // rpt)
        while (g.n * g.groups * ntile * ncol) % nthreads and (ntile < rows or ncol < ow):
            if ncol > 1 or ntile >= rows:
                ncol += 1
            else:
                ntile += 1
        rpt = -(-rows // ntile)
    cw = -(-ow // ncol)
    if pos:
        # grad_output per channel: a unit's rows in runs (frame rows or rows padded to whole
        # vectors), each run padded to whole vectors
        lanes = dense_direct.POS_LANES[dtype.name]
        ws = nthreads * (plane + og * rpt * (max(qshape[2], -(-cw // lanes) * lanes) + lanes)) * isz
    else:
        ws = nthreads * (plane + rpt * cw * ogp) * isz
    if budget and ws > max(t.workspace_bytes, g.cout * cg * kvol * isz):
        return None
    ws += nthreads * g.groups * cg * kvol * ogp * isz          # per-thread accumulators
    return Plan("weight_grad", A.DENSE_POS if pos else A.DENSE, g, dtype, nthreads, ws,
                (("vectors", nv), ("rows", rpt), ("cols", cw)), data=(layout, ogp))


def _pruned_gradient(p, shape, dst, run):
    """A gradient of ``shape`` under :func:`pyconv.explain` (recorded, zeros), or of a pruned
    plan: zeros with ``run(the plan on the pruned geometry)`` written at ``dst``."""
    out = np.zeros(shape, dtype=p.dtype)
    d = _plan.dry()
    if d is not None:
        d.append(p)
    elif p.algorithm != A.ZEROS:
        out[dst] = run(dataclasses.replace(p, prune=None))
    return out


def bias_grad(go, dtype):
    """The bias gradient of a batched convolution: ``go`` (N, C, ...) summed over samples and
    positions, per channel (``grad_direct.bias_sum``: channels split among the threads,
    each summed in one fixed order; float32 in float32 lanes over blocks of at most 4096
    elements, the blocks added in double)."""
    go = np.ascontiguousarray(go, dtype=dtype)
    n, c = go.shape[:2]
    out = np.zeros(c, dtype=dtype)
    if go.size:
        nthreads = max(1, min(num_parts_for(go.size, _tuning.active().grain), c))
        kernel(grad_direct.bias_sum, dtype)(go.reshape(n, c, -1), out, team_size(nthreads))
    return out


def weight_grad(p, x, go):
    """Run the weight-gradient plan ``p``: ``x`` and ``go`` batched C-contiguous; ``go`` may cover
    fewer output positions than the convolution has (a transposed convolution's
    output_padding): the missing ones carry zero gradient."""
    g = p.geometry if p.prune is None else p.prune.full
    dtype = p.dtype
    if p.algorithm == A.THIN and p.prune is None and _plan.dry() is None and go.shape[2:] == g.out:
        L = p.data
        gw = np.zeros(L.out_shape, dtype=dtype)
        ws = dense_direct.aligned_rows(*L.args[0], dtype)
        _plan.run(p, L.kernel, x.reshape(L.x_view), go.reshape(L.w_view), gw.reshape(L.out_view), ws, *L.args[1:],
                  team_size(p.threads))
        return gw
    if go.shape[2:] != tuple(g.out):
        gfull = np.zeros(go.shape[:2] + tuple(g.out), dtype=dtype)
        gfull[(slice(None), slice(None)) + tuple(slice(0, v) for v in go.shape[2:])] = go
        go = gfull
    if p.prune is not None and not _finite(go):
        # dropped taps only ever multiply padding: their gradient is 0 when grad_output is finite
        return weight_grad(plan_weight_grad(g, dtype, False), x, go)
    if p.prune is not None or _plan.dry() is not None:
        return _pruned_gradient(p, g.w_shape, p.prune and p.prune.weight_slices(),
                                lambda q: weight_grad(q, np.ascontiguousarray(x[p.prune.input_slices()]), go))
    alg = p.algorithm
    cout, cg, n, cin = g.cout, g.cg, g.n, g.cin
    if alg == A.ZEROS:
        return np.zeros(g.w_shape, dtype=dtype)
    if alg == A.MATMUL:
        # 1x1, stride 1, unpadded: dW = sum_n dy[n] x[n]^T, or the transpose of sum_n x[n]
        # dy[n]^T ('transposed' tile: Tuning.weight_matmul_tall); spans of the input
        # channels on the team, each on BLAS's one thread (nn_gemm's matrix products: why)
        dy = np.ascontiguousarray(go, dtype=dtype).reshape(n, cout, -1)
        xs = np.ascontiguousarray(x, dtype=dtype).reshape(n, cin, -1)
        gw = np.empty((cout, cg), dtype=dtype)
        with blas_single_thread():
            _plan.run(p, kernel(nn_gemm.matmul_weight, dtype), dy, xs, gw, bool(p.tile("transposed", 0)),
                      span_width(cg, -(-p.threads // g.groups), 16), g.groups, team_size(p.threads))
        return gw.reshape(g.w_shape)
    if alg == A.THIN:
        return weight_grad(p, x, go)
    if alg == A.THIN_PHASE:
        qshape, phases, offs = p.data
        gw = np.zeros((cout, cg, len(offs)), dtype=dtype)
        _plan.run(p, kernel(dense_direct.thin_phase_weight, dtype), x.reshape((n, cin) + g.sp3),
                  go.reshape((n, cout) + g.o3), gw, plane_geo(qshape, g.s3, g.pads3), phases, offs, g.groups,
                  team_size(p.threads))
        return gw.reshape((cout, cg) + tuple(g.kernel))
    if alg == A.PANEL:
        gw = np.empty((g.groups, g.og, cg), dtype=dtype)
        _plan.run(p, kernel(panel.panel_weight, dtype), np.ascontiguousarray(x, dtype=dtype).reshape(n, cin, -1),
                  np.ascontiguousarray(go, dtype=dtype).reshape(n, cout, -1), gw,
                  g.groups, p.tile("chunk"), p.threads, team_size(p.threads))
        return gw.reshape(g.w_shape)
    kernel_shape = tuple(g.kernel)
    if alg in (A.DENSE, A.DENSE_POS):
        (qshape, phases, offs), ogp = p.data
        og = g.og
        # (zeroed by the kernel, each part's by the thread that adds into it)
        acc = np.empty((p.threads, g.groups, cg * len(offs), ogp), dtype=dtype)
        _plan.run(p, kernel(dense_direct.dense_weight, dtype), x.reshape((n, cin) + g.sp3),
                  plane_geo(qshape, g.s3, g.pads3), phases, offs, go.reshape((n, cout) + g.o3), acc, g.groups,
                  p.tile("vectors"), p.tile("rows"), p.tile("cols"), team_size(p.threads))
        gw = np.empty((cout, cg * len(offs)), dtype=dtype)
        kernel(dense_direct.weight_reduce, dtype)(acc, gw, og, ogp // og if alg == A.DENSE_POS else 1,
                                                  team_size(p.threads))
        return gw.reshape((cout, cg) + kernel_shape)
    kc = cg * g.kvol
    row_parts = p.tile("row_parts", 0)
    acc = first_touch(np.zeros((1 if row_parts else p.threads, cout, kc), dtype=dtype), p.threads)
    geo = gemm_geo(g)
    with blas_single_thread():
        _plan.run(p, kernel(nn_gemm.conv_weight, dtype), x.reshape(n, cin, -1), go.reshape(n, cout, -1), acc, geo,
                  g.groups, p.tile("tile"), p.tile("samples", 1), _table_of(p),
                  g.is_pointwise, row_parts, team_size(p.threads))
    gw = acc[0] if acc.shape[0] == 1 else acc.sum(axis=0)
    return np.ascontiguousarray(gw.reshape((cout, cg) + kernel_shape))


# =========================================================================== input gradient

@_plan.cached
def plan_input_grad(g, dtype, allow_prune=True):
    """Plan of the input gradient of the forward convolution ``g`` (the transposed convolution
    of grad_output), computing in ``dtype``."""
    dtype = np.dtype(dtype)
    trivial = _gradient_trivial(g, dtype, "input_grad", plan_input_grad, allow_prune)
    if trivial is not None:
        return trivial
    t = _tuning.active()
    nd = g.nd
    reach = tuple(d * (k - 1) for d, k in zip(g.dilation, g.kernel))
    flip = None
    if all(s == 1 for s in g.stride):
        before = tuple(r - pb for r, (pb, _) in zip(reach, g.pads))
        after = tuple(i - o + pb for i, o, (pb, _) in zip(g.spatial, g.out, g.pads))
        if all(v >= 0 for v in before + after):
            flip = conv_geometry((g.n, g.cout) + tuple(g.out), (g.cin, g.og) + tuple(g.kernel), (1,) * nd,
                                 tuple(zip(before, after)), g.dilation, g.groups)
    full = [(o - 1) * s + r + 1 for o, s, r in zip(g.out, g.stride, reach)]
    sym = None
    if all(pb == pa for pb, pa in g.pads):
        m = tuple(pb for pb, _ in g.pads)
        extra = tuple(i - (f - 2 * mm) for i, f, mm in zip(g.spatial, full, m))
        if all(0 <= e and (e < s or e < d) for e, s, d in zip(extra, g.stride, g.dilation)):
            sym = (m, extra)
    zeros = (0,) * nd

    def transposed_of(m, extra):
        # the transposed convolution of grad_output this gradient is, padding m, extra
        # output positions ``extra`` (the asymmetric case: unpadded, then cropped)
        return transposed_geometry((g.n, g.cout) + tuple(g.out), (g.cout, g.cg) + tuple(g.kernel), g.stride, m, extra,
                                   g.dilation, g.groups)

    if _grad_pointwise(g) and (flip is None or input_matmul(g.og < g.cg, dtype.itemsize, t)):
        default = A.MATMUL
    elif flip is not None:
        # stride 1: the forward's own kernels on grad_output with the flipped kernel
        # (measured faster than GEMM + col2im at 2 threads) -- unless the transposed
        # convolution's plan, where its output (this gradient) is much larger than its
        # input (grad_output), timed GEMM + col2im faster
        default = A.FLIP_CONV
        if _prod(g.spatial) >= 2 * _prod(g.out):
            if plan_transposed(transposed_of(*(sym or (zeros, zeros))), dtype).algorithm == A.GEMM:
                default = A.TRANSPOSED if sym is not None else A.TRANSPOSED_CROP
    elif sym is not None:
        default = A.TRANSPOSED
    else:
        default = A.TRANSPOSED_CROP
    cands = ([A.TRANSPOSED_CROP] + [A.TRANSPOSED] * (sym is not None) + [A.FLIP_CONV] * (flip is not None)
             + [A.MATMUL] * _grad_pointwise(g))
    alg = _plan.pick(default, cands)
    if alg == A.MATMUL:
        return Plan("input_grad", alg, g, dtype, num_parts_for(_prod(g.out_shape) * g.cg, t.grain),
                    candidates=tuple(cands))
    if alg == A.FLIP_CONV:
        # dx = conv(dy, w flipped, in/out channels swapped per group); a non-finite weight
        # takes the transposed convolution (col2im): the flipped kernel's padded zeros would
        # turn inf into nan where the input gradient's sum has no such term
        sub = plan_forward(flip, dtype)
        tg = transposed_of(zeros, zeros)
        try:
            gemm = _transposed_gemm_plan(tg, dtype, num_parts_for(_prod(tg.x_shape) * tg.og * tg.kvol
                                                                  + _prod(tg.out_shape), t.grain), t)
            crop = Plan("input_grad", A.TRANSPOSED_CROP, g, dtype, gemm.threads, gemm.workspace_bytes, sub=gemm)
        except ValueError:
            crop = None     # beyond BLAS's 32-bit sizes: no col2im fallback
        return Plan("input_grad", alg, g, dtype, sub.threads, sub.workspace_bytes, sub=sub, nonfinite=crop,
                    candidates=tuple(cands))
    else:
        sub = plan_transposed(transposed_of(*(sym if alg == A.TRANSPOSED else (zeros, zeros))), dtype)
    return Plan("input_grad", alg, g, dtype, sub.threads, sub.workspace_bytes, sub=sub, candidates=tuple(cands))


def input_grad(p, go, w):
    """Run the input-gradient plan ``p``: ``go`` batched C-contiguous grad_output, ``w`` the
    forward's weight (C_out, C_in/groups, *kernel)."""
    g = p.geometry if p.prune is None else p.prune.full
    dtype = p.dtype
    if p.prune is not None and not _dropped_finite(w, p.prune):
        return input_grad(plan_input_grad(g, dtype, False), go, w)
    if p.prune is not None or _plan.dry() is not None:
        # dropped taps only scatter into padding: the input they never read gets zero gradient
        return _pruned_gradient(p, g.x_shape, p.prune and p.prune.input_slices(),
                                lambda q: input_grad(q, go, np.ascontiguousarray(w[p.prune.weight_slices()])))
    alg = p.algorithm
    if alg == A.ZEROS:
        return np.zeros(g.x_shape, dtype=dtype)
    nd, cout, cg, og = g.nd, g.cout, g.cg, g.og
    k = tuple(g.kernel)
    if alg == A.MATMUL:
        # 1x1, stride 1, unpadded: dx[n] = W^T dy[n], one GEMM per sample (or span of its
        # positions) on the team, each on BLAS's one thread (nn_gemm's matrix products: why)
        gx = first_touch(np.empty((go.shape[0], cg, _prod(g.spatial)), dtype=dtype), p.threads)
        wt = np.ascontiguousarray(w, dtype=dtype).reshape(1, cout, cg)      # W, used transposed
        dy = np.ascontiguousarray(go, dtype=dtype).reshape(go.shape[0], cout, -1)
        with blas_single_thread():
            _plan.run(p, kernel(nn_gemm.matmul_stack, dtype), wt, True, dy, gx, _matmul_span(gx, p.threads),
                      team_size(p.threads))
        return gx.reshape(g.x_shape)
    if alg == A.FLIP_CONV:
        out = _flip_conv(p, go, w, None, g.groups)
        return input_grad(p.nonfinite, go, w) if out is None else out
    buf = transposed(p.sub, go, w, None)
    if alg == A.TRANSPOSED:
        return buf
    # Asymmetric padding: the transposed convolution ran unpadded; crop the input's window
    # (positions past the last window get no gradient: zeros).
    reach = tuple(d * (kk - 1) for d, kk in zip(g.dilation, k))
    full = [(o - 1) * s + r + 1 for o, s, r in zip(g.out, g.stride, reach)]
    gx = np.zeros(g.x_shape, dtype=dtype)
    src = tuple(slice(pb, max(pb, min(pb + i, f))) for (pb, _), i, f in zip(g.pads, g.spatial, full))
    dst = tuple(slice(0, sl.stop - sl.start) for sl in src)
    gx[(slice(None), slice(None)) + dst] = buf[(slice(None), slice(None)) + src]
    return gx
