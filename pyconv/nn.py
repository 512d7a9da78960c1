"""PyTorch-compatible deep-learning convolutions (channels first).

Every function reads: normalise the arguments (``_normalize_conv`` and the "nn"
helpers of :mod:`pyconv._utils`) -> pick an algorithm -> allocate the output ->
one Cython kernel -> return a new C-contiguous array.

Algorithms (all exact: every output reads exactly its window)

* dense convolutions (any stride, dilation, padding, groups with several channels
  per group): a register-blocked direct kernel over the zero-padded input split
  into stride phases (``_dense_direct``); it measured faster than im2col + GEMM
  on every dense layer of the benchmark suite;
* 1x1 stride-1 unpadded convolutions (pointwise): the same direct kernel reading
  the input in place, a chunk of positions at a time (measured 1.25x faster than
  one OpenBLAS GEMM per tile for 1x1 256->64, float32);
* depthwise and thin-channel grouped convolutions: direct kernels making one
  contiguous pass over the whole output plane per tap;
* transposed convolutions (the input gradient of a convolution): with finite
  weights and dense groups, the direct kernel -- stride 1 as the convolution with
  the flipped kernel, stride s as s^nd output phases, each a stride-1 correlation
  with a sub-kernel (``_transpose_phases``); otherwise GEMM (``W^T x``) then col2im
  (scatter-add);
* weight gradient (``_conv_weight_core``): a register-blocked direct kernel over
  per-thread phase planes (im2col tiles + GEMM beyond the workspace budget), per-thread
  accumulators.

The private ``_normalize_conv``, ``_conv_core``, ``_conv_transpose_core`` and
``_conv_weight_core`` work on already-normalised arguments; :mod:`pyconv.grad`
builds on them.
"""
import functools
from collections import namedtuple

import numpy as np

from pyconv._kernels import nn_direct, nn_gemm
from pyconv._utils import (as_array, as_tuple, blas_single_thread, check_choice, check_int, contiguous,
                           dl_dtype, nn_batched, nn_check_gemm_dims, nn_check_limits, nn_check_pad_modes, nn_check_size,
                           nn_check_span, nn_pad_maps, nn_padding_pairs, num_parts_for, num_threads_for,
                           team_size)
from pyconv.arithmetic import conv_output_size, conv_transpose_output_size

__all__ = ["conv", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "depthwise_conv2d", "pointwise_conv2d", "separable_conv2d", "flattened_conv2d",
           "channel_shuffle", "resize_conv2d", "unfold", "fold"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# Threading of the GEMM path.  We measured (2 cores, float32, OpenBLAS via
# scipy's cython_blas, torch loaded in the same process) two schemes:
# (a) work units in sequence, im2col split over OpenMP threads, one GEMM per
#     tile on OpenBLAS's own threads (tested with small tiles and with one tile
#     = the whole output);
# (b) OpenMP over independent units (sample x group x tile), each thread doing
#     its own im2col + a single-threaded GEMM (BLAS limited to 1 thread around
#     the call with one cached threadpoolctl controller).
# (b) won on every layer of the suite, by 1.4x (1x1 256->64) to over 10x
# (3x3 64->64 batch 8: 41 ms vs 644 ms; conv1d k=9: 47 ms vs 3.5 s): in (a) the
# OpenMP team spins between regions on the very cores OpenBLAS's threads need,
# and every tile pays a fork/join in both runtimes.  So (b) is the default; (a)
# stays selectable (``_BLAS_THREADS = True``) so the measurement can be rerun.
# (Dense and pointwise convolutions, strided transposed ones with >= 8 output
# channels per group and most weight gradients have since moved to the direct
# kernels; the GEMM paths serve thin-output transposed convs / weight gradients,
# non-finite transposed weights and the workspace-bounded fallbacks.)
_BLAS_THREADS = False

# Workspace budget of the im2col tiles: the larger of this and the output size.
_WORKSPACE_BYTES = 64 << 20
# Preferred size of one thread's im2col tile (fits in L2 next to the GEMM's panels).
_TILE_BYTES = 1 << 19
# Pointwise layers on the direct kernel (input read in place), positions per chunk
# shared by all output-channel blocks.  (False: one GEMM per tile, as measured against.)
_PW_DIRECT = True
_PW_CHUNK = 128
# Output positions per work unit of the dense direct kernel (``nn_direct.dense_conv``).
_S1_TILE = 1024
# Largest zero-padded copy of one group's input channels the stride-1 thin-group
# kernel makes per thread (beyond it, the phase-plane / row kernels run).
_DIRECT_PAD_BYTES = 16 << 20


ConvArgs = namedtuple("ConvArgs", ["x", "w", "b", "stride", "pad_pairs", "dilation", "groups",
                                   "padding_mode", "dtype", "unbatched", "nd"])
ConvArgs.__doc__ = """Normalised convolution arguments (see :func:`_normalize_conv`)."""


# --------------------------------------------------------------------------- normalisation

def _spatial_nd(weight, nd, name="weight"):
    """The number of spatial dims: ``nd`` if given, else ``weight.ndim - 2`` (1, 2 or 3)."""
    if nd is None:
        nd = weight.ndim - 2
        if nd not in (1, 2, 3):
            raise ValueError(f"{name} must have 3, 4 or 5 dims (C_out, C_in/groups, *kernel) for a 1-, 2- or "
                             f"3-d convolution; got shape {weight.shape}")
    elif weight.ndim != nd + 2:
        raise ValueError(f"{name} must have {nd + 2} dims (C_out, C_in/groups, *kernel) for conv{nd}d; "
                         f"got shape {weight.shape}")
    return nd


def _check_bias(b, n_out):
    if b is not None and b.shape != (n_out,):
        raise ValueError(f"bias must have shape (C_out,) = ({n_out},); got shape {b.shape}")


def _normalize_conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                    padding_mode="zeros", nd=None):
    """Validate and normalise the arguments of a convolution (as ``torch.nn.functional.convNd``).

    Parameters are those of :func:`conv`; ``nd`` (1, 2, 3 or None = from the weight)
    fixes the number of spatial dims.

    Returns
    -------
    ConvArgs
        ``x``: the input as an array with a batch axis ``(N, C_in, *spatial)`` (not yet
        cast or made contiguous); ``w``, ``b``: arrays (``b`` may be None);
        ``stride``, ``dilation``: ``nd``-tuples; ``pad_pairs``: ``nd`` ``(before, after)``
        pairs ('same'/'valid' resolved); ``groups``: int; ``padding_mode``: str;
        ``dtype``: the compute dtype; ``unbatched``: whether the input had no batch
        axis; ``nd``.
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    nd = _spatial_nd(w, nd)
    dtype = dl_dtype(x, w, b)
    xb, unbatched = nn_batched(x, nd)
    groups = check_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups={groups} must be a positive integer")
    cin = xb.shape[1]
    cout, cg = w.shape[:2]
    if cout < 1:
        raise ValueError(f"weight must have at least one output channel (weight.shape[0] >= 1); "
                         f"got shape {w.shape}")
    if cin % groups:
        raise ValueError(f"groups={groups} must divide in_channels={cin}")
    if cout % groups:
        raise ValueError(f"groups={groups} must divide out_channels={cout} (weight.shape[0])")
    if cg * groups != cin:
        raise ValueError(f"weight.shape[1]={cg} must equal in_channels/groups = {cin}/{groups} = "
                         f"{cin // groups} (weight shape {w.shape}, input shape {x.shape})")
    _check_bias(b, cout)
    stride = nn_check_limits(as_tuple(stride, nd, "stride", minimum=1), "stride")
    dilation = nn_check_limits(as_tuple(dilation, nd, "dilation", minimum=1), "dilation")
    padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES)
    kernel = w.shape[2:]
    if any(k < 1 for k in kernel):
        raise ValueError(f"weight's kernel size {kernel} must be at least 1 in every dim")
    pads = nn_padding_pairs(padding, nd, xb.shape[2:], kernel, stride, dilation)
    nn_check_limits([v for pp in pads for v in pp], "padding")
    nn_check_span(xb.shape[2:], kernel, stride, dilation, pads)
    for i, k, d, (pb, pa) in zip(xb.shape[2:], kernel, dilation, pads):
        if i + pb + pa < d * (k - 1) + 1:
            raise ValueError(f"weight's kernel size {tuple(kernel)} (dilation {dilation}) spans more than the "
                             f"padded input {tuple(i + pb + pa for i, (pb, pa) in zip(xb.shape[2:], pads))}")
    if padding_mode != "zeros":
        nn_check_pad_modes(xb.shape[2:], pads, padding_mode)
    nn_check_size(xb.shape[:1] + (cout,) + tuple((i + pb + pa - d * (k - 1) - 1) // s + 1 for i, k, s, d, (pb, pa)
                                                 in zip(xb.shape[2:], kernel, stride, dilation, pads)),
                  f"padding={padding!r}, stride={stride} and dilation={dilation}")
    return ConvArgs(xb, w, b, stride, pads, dilation, groups, padding_mode, dtype, unbatched, nd)


def _lift3(t, fill):
    """Prefix an nd-tuple with ``fill`` up to 3 entries (1-D/2-D run as 3-D)."""
    return (fill,) * (3 - len(t)) + tuple(t)


def _bias_vec(b, dtype):
    """(contiguous bias vector, has_bias); an empty vector stands in for None."""
    if b is None:
        return np.zeros(0, dtype=dtype), False
    return contiguous(b, dtype), True


# --------------------------------------------------------------------------- padding modes

def _pad(x, pad_pairs, mode):
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
    nn_direct.gather(x4, out.reshape((-1,) + _lift3(out_sp, 1)), maps3[0], maps3[1], maps3[2],
                     num_threads_for(out.size, grain=1 << 17), _affine(maps3[2]))
    return out


# --------------------------------------------------------------------------- cores

def _use_direct(cg, og, kvol, w):
    """True for depthwise / thin-channel groups, which take the per-tap plane kernels.

    With few input and output channels per group neither a GEMM nor the
    8-output register-blocked kernel has enough outputs per group to fill its
    blocks, while one contiguous pass per tap over the output plane stays at
    memory speed (measured: 3x3 depthwise and 128->128 g=32 run 2.5-4x and
    1.4-1.6x faster than PyTorch this way).
    """
    return cg * og <= 16 or (cg <= 2 and og <= 16)


def _gemm_tile(p, kc, n_units, nthreads, itemsize, out_bytes):
    """Positions per im2col tile: about ``_TILE_BYTES`` of workspace per thread, at
    least two units per thread when the batch is small, and the total workspace
    bounded by ``max(_WORKSPACE_BYTES, output size)``."""
    if p == 0:
        return 1
    tile = max(256, _TILE_BYTES // max(1, kc * itemsize))
    want_tiles = -(-2 * nthreads // max(1, n_units)) if n_units < 2 * nthreads else 1
    tile = min(tile, -(-p // want_tiles))
    budget = max(_WORKSPACE_BYTES, out_bytes)
    tile = min(tile, max(1, budget // max(1, nthreads * kc * itemsize)))
    return int(max(1, min(tile, p)))


def _conv_core(x, w, b, stride, pad_pairs, dilation, groups):
    """Zero-padded, batched N-d convolution (1, 2 or 3 spatial dims) on normalised arguments.

    Parameters
    ----------
    x : ndarray (N, C_in, *spatial), C-contiguous, float32 or float64
    w : ndarray (C_out, C_in/groups, *kernel), C-contiguous, same dtype
    b : ndarray (C_out,) of the same dtype, or None
    stride, dilation : tuple of int, one per spatial dim
    pad_pairs : tuple of (before, after) pairs, one per spatial dim
    groups : int

    Returns
    -------
    ndarray (N, C_out, *out_spatial), C-contiguous, of x's dtype.
    """
    dtype = x.dtype
    nd = x.ndim - 2
    n, cin = x.shape[:2]
    cout, cg = w.shape[:2]
    kernel = tuple(w.shape[2:])
    osz = conv_output_size(tuple(x.shape[2:]), kernel, tuple(stride), tuple(pad_pairs), tuple(dilation))
    out = np.empty((n, cout) + tuple(osz), dtype=dtype)
    if out.size == 0:
        return out
    pruned = _prune_taps(x, w, stride, pad_pairs, dilation, osz)
    if pruned is not None:
        x, w, pad_pairs = pruned
        if w is None:           # no tap ever meets the input: every output is the bias
            out[...] = 0 if b is None else b.reshape((cout,) + (1,) * nd)
            return out
        kernel = tuple(w.shape[2:])
    og = cout // groups
    kvol = int(np.prod(kernel))
    p = int(np.prod(osz))
    s3, d3 = _lift3(stride, 1), _lift3(dilation, 1)
    pb3 = _lift3([pp[0] for pp in pad_pairs], 0)
    sp3, k3, o3 = _lift3(x.shape[2:], 1), _lift3(kernel, 1), _lift3(osz, 1)
    bvec, has_b = _bias_vec(b, dtype)
    nthreads = num_threads_for(out.size * max(1, cg * kvol))
    padded = any(pp != (0, 0) for pp in pad_pairs)
    if _use_direct(cg, og, kvol, w):
        pads3 = ((0, 0),) * (3 - nd) + tuple(tuple(pp) for pp in pad_pairs)
        xpad_bytes = cg * int(np.prod([i + a + c for i, (a, c) in zip(sp3, pads3)])) * dtype.itemsize
        if s3[1] == 1 and s3[2] == 1 and xpad_bytes <= _DIRECT_PAD_BYTES:
            # stride 1 in-plane: whole-plane passes over a padded copy of the group's channels
            nn_direct.direct_conv_s1(x.reshape((n, cin) + sp3), w.reshape((cout, cg) + k3), bvec, has_b,
                                     out.reshape((n, cout) + o3), s3[0], d3, pads3, groups, nthreads)
            return out
        if cg * og >= 4 or (padded and not np.isfinite(w).all()):
            # strided: one pass per tap over phase planes, built once per sample and
            # reused by every channel of a group (padding materialised, so
            # 0 * inf = nan exactly like PyTorch's dense path)
            _direct_planes(x, w, bvec, has_b, out, stride, pad_pairs, dilation, groups, nthreads)
        else:
            # strided depthwise: building phase planes would cost as much as the
            # convolution; the row kernel skips padded taps in place instead
            nn_direct.direct_conv(x.reshape((n, cin) + sp3), w.reshape((cout, cg) + k3), bvec, has_b,
                                  out.reshape((n, cout) + o3), s3, d3, pb3, groups, nthreads)
        return out
    pointwise = kvol == 1 and all(s == 1 for s in stride) and not padded
    if pointwise and _PW_DIRECT:
        # the input is its own (single) phase plane: read in place
        layout = (tuple(sp3), np.zeros((1, 3), dtype=np.intp), np.zeros(1, dtype=np.intp))
        _dense_direct(x, w, bvec, has_b, out, (1, 1, 1), ((0, 0),) * 3, groups, nthreads, layout, pointwise=True)
        return out
    if not pointwise:
        # each thread holds one (sample, group)'s padded phase planes; beyond the
        # workspace budget, im2col tiles (bounded workspace) take over
        pads3 = ((0, 0),) * (3 - nd) + tuple(tuple(pp) for pp in pad_pairs)
        layout = _plane_layout(tuple(sp3), tuple(k3), tuple(s3), tuple(d3), pads3)
        plane_bytes = cg * len(layout[1]) * int(np.prod(layout[0])) * dtype.itemsize
        if nthreads * plane_bytes <= max(_WORKSPACE_BYTES, out.nbytes):
            _dense_direct(x, w, bvec, has_b, out, s3, pads3, groups, nthreads, layout)
            return out
    kc = cg * kvol
    nn_check_gemm_dims(p, kc, int(np.prod(x.shape[2:])), og)
    tile = _gemm_tile(p, kc, n * groups, nthreads, dtype.itemsize, out.nbytes)
    geo = tuple(sp3) + tuple(o3) + tuple(k3) + tuple(s3) + tuple(d3) + tuple(pb3)
    with blas_single_thread(nthreads if _BLAS_THREADS else 1):
        nn_gemm.conv_forward(x.reshape(n, cin, -1), w.reshape(cout, -1), bvec, has_b, out.reshape(n, cout, -1),
                             geo, groups, tile, pointwise, _BLAS_THREADS, nthreads)
    return out


def _prune_taps(x, w, stride, pad_pairs, dilation, osz):
    """Drop the kernel taps that only ever read padding, and the padding/input they no longer need.

    Per dim, tap ``a`` reads input ``o*s - p_before + a*d``; the taps between the first
    and the last one that meets the input for some output are kept, the kernel is
    sliced to them and the padding shrunk by what the dropped taps spanned (a
    negative remainder crops input that no kept tap reads).  The result is the same
    convolution with the same output shape, but its padded frame no longer grows
    with padding that only zeros ever see (dilation = padding = 2**20 stays small).
    Exact only when the dropped weights are finite (0 * w = 0): otherwise, and when
    nothing can be dropped, returns None.  Returns ``(x, w, pad_pairs)``, with
    ``w = None`` when no tap meets the input at all.
    """
    keep, changed = [], False
    for i_sz, k, s_, d_, (pb, pa), o_sz in zip(x.shape[2:], w.shape[2:], stride, dilation, pad_pairs, osz):
        hits = []
        for a in range(k):
            first = -(-(pb - a * d_) // s_) if pb - a * d_ > 0 else 0      # first output with index >= 0
            if first < o_sz and first * s_ - pb + a * d_ < i_sz:
                hits.append(a)
        if not hits:
            keep.append(None)
            changed = True
            continue
        keep.append((hits[0], hits[-1]))
        changed |= hits[0] > 0 or hits[-1] < k - 1
    if not changed:
        return None
    if any(kp is None for kp in keep):
        if not np.isfinite(w).all():
            return None
        return x, None, pad_pairs
    sl = (slice(None), slice(None)) + tuple(slice(a0, a1 + 1) for a0, a1 in keep)
    mask = np.ones(w.shape, dtype=bool)
    mask[sl] = False
    if not np.isfinite(w[mask]).all():
        return None
    new_pads, crop = [], []
    for (a0, a1), k, d_, (pb, pa), i_sz in zip(keep, w.shape[2:], dilation, pad_pairs, x.shape[2:]):
        nb, na = pb - a0 * d_, pa - (k - 1 - a1) * d_
        crop.append(slice(max(0, -nb), i_sz - max(0, -na)))
        new_pads.append((max(0, nb), max(0, na)))
    xc = x[(slice(None), slice(None)) + tuple(crop)]
    return np.ascontiguousarray(xc), np.ascontiguousarray(w[sl]), tuple(new_pads)


def _balanced_tile(length, n_units, nthreads):
    """Tile length near ``_S1_TILE`` whose unit count (``n_units`` x tiles) splits evenly
    over the threads when there are few units (static schedule: one straggler
    tile would otherwise idle the other threads)."""
    ntiles = max(1, -(-length // _S1_TILE))
    if nthreads > 1 and n_units * ntiles < 8 * nthreads:
        while (n_units * ntiles) % nthreads:
            ntiles += 1
    return max(1, -(-length // ntiles))


def _phase_layout(sp3, k3, s3, d3, pads3):
    """Phase-plane layout of a (lifted 3-D) convolution's zero-padded input.

    A stride ``s`` is handled by splitting the padded input into its ``s`` phases
    per dim (``xp[..., i*s + r]`` for each residue ``r`` some tap uses): every tap
    then reads its phase plane at a constant flat offset, so the strided
    convolution becomes a stride-1 problem over the phase planes, with no wasted
    taps (stride 1 has the single phase: the padded input itself).

    Returns ``(qshape, S, offs, phase_maps)``: one phase plane's shape, the size of
    one channel's block of phase planes, each tap's flat offset (taps in C order)
    and, per phase, the three source-index maps for ``nn_direct.gather``.
    """
    pshape = tuple(i + a + c for i, (a, c) in zip(sp3, pads3))
    qshape = tuple(-(-p // s) for p, s in zip(pshape, s3))
    taps = [(a, b, e) for a in range(k3[0]) for b in range(k3[1]) for e in range(k3[2])]
    phases = sorted({tuple((k * d) % s for k, d, s in zip(t, d3, s3)) for t in taps})
    index = {ph: i for i, ph in enumerate(phases)}
    plane_q = int(np.prod(qshape))
    offs = np.empty(len(taps), dtype=np.intp)
    for i, t in enumerate(taps):
        sh = [(k * d) // s for k, d, s in zip(t, d3, s3)]
        ph = tuple((k * d) % s for k, d, s in zip(t, d3, s3))
        offs[i] = index[ph] * plane_q + (sh[0] * qshape[1] + sh[1]) * qshape[2] + sh[2]
    pmaps = nn_pad_maps(sp3, pads3, "zeros")
    phase_maps = []
    for ph in phases:
        mm = []
        for m, r, s, q in zip(pmaps, ph, s3, qshape):
            j = np.arange(q) * s + r
            mm.append(np.ascontiguousarray(np.where(j < len(m), m[np.minimum(j, len(m) - 1)], -1), dtype=np.int64))
        phase_maps.append(mm)
    return qshape, len(phases) * plane_q, offs, phase_maps


@functools.lru_cache(maxsize=64)
def _plane_layout(sp3, k3, s3, d3, pads3):
    """Phase-plane layout for the per-thread plane kernels (``nn_direct.dense_conv`` /
    ``dense_weight``): as ``_phase_layout`` but without index maps (the kernels build
    the planes themselves).  Returns ``(qshape, phases, offs)``: one phase plane's
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


def _plane_geo(qshape, s3, pads3):
    return tuple(qshape) + tuple(s3) + tuple(pp[0] for pp in pads3)


def _pack_dense_weight(w, groups, nthreads=1):
    """(C_out, C_in/groups, *kernel) -> flat (groups, ceil(Og/B), C_in/groups, kvol, B) blocks
    of ``nn_direct.dense_conv``, B = ``nn_direct.OBW`` (zero rows past Og)."""
    cout = w.shape[0]
    og = cout // groups
    kc = int(np.prod(w.shape[1:]))
    ob = nn_direct.OBW
    out = np.empty((groups, -(-og // ob), kc, ob), dtype=w.dtype)
    nn_direct.pack_blocks(np.ascontiguousarray(w).reshape(groups, og, kc), out,
                          max(1, min(nthreads, num_threads_for(out.size, grain=1 << 22))))
    return out.reshape(-1)


def _affine(m):
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


def _phase_chunks(x, sp3, qshape, S, phase_maps, budget, nthreads):
    """Yield ``(n0, m, flat)``: samples ``n0:n0+m`` of ``x`` as phase planes
    (``_phase_layout``), ``flat`` of length ``m * C_in * S``; chunks keep the buffer
    within ``budget`` bytes (at least one sample)."""
    n, cin = x.shape[:2]
    per_sample = cin * S * x.dtype.itemsize
    chunk = int(max(1, min(n, budget // max(1, per_sample))))
    buf = np.empty(chunk * cin * S, dtype=x.dtype)
    for n0 in range(0, n, chunk):
        m = min(chunk, n - n0)
        flat = buf[:m * cin * S]
        planes = flat.reshape((m * cin, len(phase_maps)) + tuple(qshape))
        xs = x[n0:n0 + m].reshape((m * cin,) + tuple(sp3))
        for i, mm in enumerate(phase_maps):
            nn_direct.gather(xs, planes[:, i], mm[0], mm[1], mm[2], nthreads, _affine(mm[2]))
        yield n0, m, flat


def _direct_planes(x, w, bvec, has_b, out, stride, pad_pairs, dilation, groups, nthreads):
    """Thin-group convolution over phase planes (into ``out``): one contiguous pass per
    tap over the whole output frame (``nn_direct.thin_taps``), for depthwise / thin
    groups with a stride.  The planes are built a chunk of samples at a time, so the
    workspace stays within ``max(_WORKSPACE_BYTES, output size)``.
    """
    nd = x.ndim - 2
    n, cin = x.shape[:2]
    cout, cg = w.shape[:2]
    pads3 = ((0, 0),) * (3 - nd) + tuple(tuple(pp) for pp in pad_pairs)
    s3, d3 = _lift3(stride, 1), _lift3(dilation, 1)
    sp3, k3 = _lift3(x.shape[2:], 1), _lift3(w.shape[2:], 1)
    qshape, S, offs, phase_maps = _phase_layout(sp3, k3, s3, d3, pads3)
    kvol = len(offs)
    wk = np.ascontiguousarray(w.reshape(cout, cg, kvol))
    o3 = _lift3(out.shape[2:], 1)
    out5 = out.reshape((n, cout) + o3)
    budget = max(_WORKSPACE_BYTES, out.nbytes)
    for n0, m, flat in _phase_chunks(x, sp3, qshape, S, phase_maps, budget, nthreads):
        nn_direct.thin_taps(flat, m, cin, S, wk, offs, bvec, has_b, out5[n0:n0 + m], qshape, groups, nthreads)


def _dense_direct(x, w, bvec, has_b, out, s3, pads3, groups, nthreads, layout, pointwise=False):
    """Dense convolution by the register-blocked direct kernel (``nn_direct.dense_conv``).

    Measured faster than im2col + GEMM on every dense layer of the suite (1.3x to
    2.7x, float32 and float64): no im2col copy, no BLAS packing; each thread builds
    the padded phase planes of the (sample, group) it works on in its own buffer, so
    they are cache-hot and no batch-sized workspace is touched.
    """
    n, cin = x.shape[:2]
    cout = out.shape[1]
    qshape, phases, offs = layout
    sp3, o3 = _lift3(x.shape[2:], 1), _lift3(out.shape[2:], 1)
    sub = np.array([[len(offs), 0, 0, o3[0], o3[1], o3[2], 0, 0, 0, 1, 1, 1]], dtype=np.intp)
    frame_len = ((o3[0] - 1) * qshape[1] + o3[1] - 1) * qshape[2] + o3[2]
    tile = _balanced_tile(frame_len, n * groups, nthreads)
    nn_direct.dense_conv(x.reshape((n, cin) + sp3), _plane_geo(qshape, s3, pads3), phases,
                         _pack_dense_weight(w, groups, nthreads), offs, sub, bvec, has_b, out.reshape((n, cout) + o3),
                         groups, tile, _PW_CHUNK if pointwise else tile, pointwise, nthreads)


def _transpose_phases(x, w, bvec, has_b, out, stride, padding, dilation, groups):
    """Transposed convolution split into its output phases (into ``out``); False (nothing
    done) when one (sample, group)'s padded input per thread exceeds the workspace budget.

    Output ``o = m*s + r`` (per dim) receives ``x[i] w[a]`` for the taps with
    ``i*s - p + a*d = o``, i.e. ``(r + p - a*d) % s == 0`` and ``i = m - delta_a`` with
    ``delta_a = (a*d - r - p) / s``: phase ``r`` is a stride-1 correlation of the
    zero-padded input with the taps of its class.  All phases read one padded copy
    of the input, run by the dense direct kernel (``nn_direct.dense_conv``, one
    sub-problem per phase) and write their outputs with stride ``s``; no column
    matrix, no scatter-add (measured 1.5x faster than GEMM + col2im for 4x4 s2
    64->32, float32, 1 thread).
    """
    nd = x.ndim - 2
    n, cin = x.shape[:2]
    cout = out.shape[1]
    cg, og = cin // groups, cout // groups
    kernel = tuple(w.shape[2:])
    sp3, k3, o3 = _lift3(x.shape[2:], 1), _lift3(kernel, 1), _lift3(out.shape[2:], 1)
    s3, d3, p3 = _lift3(stride, 1), _lift3(dilation, 1), _lift3(padding, 0)
    pshape, pbs, plan = _phase_plan(tuple(sp3), tuple(k3), tuple(s3), tuple(d3), tuple(p3), tuple(o3))
    nthreads = num_threads_for(x.size * og * int(np.prod(kernel)) + out.size)
    if nthreads * cg * int(np.prod(pshape)) * x.dtype.itemsize > max(_WORKSPACE_BYTES, out.nbytes):
        return False
    subs, (offs, taps), frame = plan
    w5 = w.reshape(groups, cg, og, -1)
    obw = nn_direct.OBW
    nob = -(-og // obw)
    wparts = []
    for row in subs:
        idx = taps[row[1]:row[1] + row[0]]
        wr = w5[:, :, :, idx]                                   # (groups, cg, og, ntaps)
        if nob * obw != og:
            wr = np.concatenate([wr, np.zeros(wr.shape[:2] + (nob * obw - og, len(idx)), w.dtype)], axis=2)
        wparts.append(wr.reshape(groups, cg, nob, obw, len(idx)).transpose(0, 2, 1, 4, 3).reshape(-1))
    # each sub-problem's weights start where the previous one's end
    subs = subs.copy()
    subs[:, 2] = np.concatenate([[0], np.cumsum([wp.size for wp in wparts])[:-1]])
    tile = _balanced_tile(frame, n * groups * len(subs), nthreads)
    nn_direct.dense_conv(x.reshape((n, cin) + sp3), pshape + (1, 1, 1) + pbs, np.zeros((1, 3), dtype=np.intp),
                         np.concatenate(wparts), offs, subs, bvec, has_b, out.reshape((n, cout) + o3), groups,
                         tile, tile, False, nthreads)
    return True


@functools.lru_cache(maxsize=64)
def _phase_plan(sp3, k3, s3, d3, p3, o3):
    """Geometry of ``_transpose_phases`` (cached: it depends on shapes only).

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


def _conv_transpose_core(x, w, b, stride, padding, output_padding, groups, dilation):
    """Batched transposed convolution on normalised arguments (direct phases or GEMM + col2im).

    Parameters
    ----------
    x : ndarray (N, C_in, *spatial), C-contiguous, float32 or float64
    w : ndarray (C_in, C_out/groups, *kernel), C-contiguous, same dtype
    b : ndarray (C_out,) or None
    stride, padding, output_padding, dilation : tuple of int per spatial dim
    groups : int

    Returns
    -------
    ndarray (N, C_out, *out_spatial) with
    ``out = (i-1) s - 2 p + d (k-1) + output_padding + 1`` per dim.  This is also the
    input gradient of ``conv(·, w, stride, padding, dilation, groups)``.
    """
    dtype = x.dtype
    n, cin = x.shape[:2]
    og = w.shape[1]
    cout = og * groups
    kernel = tuple(w.shape[2:])
    osz = conv_transpose_output_size(tuple(x.shape[2:]), kernel, tuple(stride), tuple(padding),
                                     tuple(output_padding), tuple(dilation))
    out = np.empty((n, cout) + tuple(osz), dtype=dtype)
    if out.size == 0:
        return out
    cg = cin // groups
    if (all(st == 1 for st in stride) and all(pp <= d * (k - 1) for pp, d, k in zip(padding, dilation, kernel))
            and np.isfinite(w).all()):
        # Stride 1: the transposed convolution is a plain convolution with the kernel
        # flipped and its channel axes swapped, padded by d(k-1) - p (no zeros are
        # inserted: stride 1 has none).  The direct dense kernel then beats GEMM +
        # col2im, whose column matrix is kvol times the input.  (A non-finite weight
        # stays on col2im: its padded zeros would turn inf into nan, which the
        # scatter formulation, like PyTorch, never does.)
        flip = (slice(None), slice(None)) + (slice(None, None, -1),) * len(kernel)
        wc = w[flip].reshape((groups, cg, og) + kernel).swapaxes(1, 2).reshape((cout, cg) + kernel)
        pads = tuple((d * (k - 1) - pp, d * (k - 1) - pp + op)
                     for pp, op, d, k in zip(padding, output_padding, dilation, kernel))
        return _conv_core(x, np.ascontiguousarray(wc), b, (1,) * len(kernel), pads, tuple(dilation), groups)
    kvol = int(np.prod(kernel))
    p = int(np.prod(x.shape[2:]))
    bvec, has_b = _bias_vec(b, dtype)
    if og >= 8 and not _use_direct(cg, og, kvol, w) and np.isfinite(w).all():
        # dense groups: each output phase is a stride-1 correlation with a sub-kernel
        # (finite weights only: the padded zeros would turn inf into nan).  Its
        # register blocks hold 8 output channels: with fewer, GEMM + col2im wins
        # (input grad of 7x7 s2 3->64: 32 vs 20 ms float32, 106 vs 27 float64)
        if _transpose_phases(x, w, bvec, has_b, out, stride, padding, dilation, groups):
            return out
    s3, d3, pb3 = _lift3(stride, 1), _lift3(dilation, 1), _lift3(padding, 0)
    geo = tuple(_lift3(osz, 1)) + tuple(_lift3(x.shape[2:], 1)) + tuple(_lift3(kernel, 1)) + s3 + d3 + pb3
    nthreads = num_threads_for(x.size * og * kvol + out.size)
    isz = dtype.itemsize
    nn_check_gemm_dims(og * kvol, p, cg, og * kvol * groups)
    # channel blocks: enough units for every thread; each unit's columns within budget
    cblk = og
    units = n * groups
    if units < 2 * nthreads:
        cblk = min(cblk, max(1, -(-og // -(-2 * nthreads // units))))
    # columns of one unit: cblk*kvol rows x tile input positions, kept near L2 size
    # (a whole-plane column matrix would stream through memory twice)
    cblk = max(1, min(cblk, max(1, _TILE_BYTES // max(1, kvol * 256 * isz))))
    tile = max(1, min(p, max(256, _TILE_BYTES // max(1, cblk * kvol * isz))))
    with blas_single_thread():
        nn_gemm.conv_transpose_forward(x.reshape(n, cin, -1), w.reshape(cin, -1), bvec, has_b,
                                       out.reshape(n, cout, -1), geo, groups, cblk, tile, nthreads)
    return out


# Output positions per work unit of the direct weight-gradient kernel: its packed
# grad_output tile (positions x output channels) stays in L2.
_WEIGHT_TILE = 512


def _dense_weight(x, grad_out, kernel, stride, pad_pairs, dilation, groups, nparts, nthreads):
    """Weight gradient by the register-blocked direct kernel (``nn_direct.dense_weight``),
    or None when one (sample, group)'s padded phase planes per thread exceed the
    workspace budget or the groups have fewer than 8 output channels.

    The weight gradient is a GEMM ``gw = grad_out . im2col(x)^T`` with the positions
    as its K dimension; here the im2col matrix is never built: its rows (channel,
    tap) are read in place from phase planes, output channels are the vector lanes.
    Measured 1.3-1.5x faster than im2col tiles + OpenBLAS on the suite's dense
    layers a, f, g, j (float32, 1 thread).
    """
    nd = x.ndim - 2
    dtype = x.dtype
    n, cin = x.shape[:2]
    cout = grad_out.shape[1]
    cg, og = cin // groups, cout // groups
    if og < 8:
        # output channels are the vector lanes: with fewer than 8 most lanes idle
        # (depthwise stride 2: 19.5 ms vs 10.9 for GEMM; g32 og=4: 5.9 vs 4.3)
        return None
    pads3 = ((0, 0),) * (3 - nd) + tuple(tuple(pp) for pp in pad_pairs)
    sp3, k3, s3, d3 = _lift3(x.shape[2:], 1), _lift3(kernel, 1), _lift3(stride, 1), _lift3(dilation, 1)
    o3 = _lift3(grad_out.shape[2:], 1)
    qshape, phases, offs = _plane_layout(tuple(sp3), tuple(k3), tuple(s3), tuple(d3), pads3)
    kvol = len(offs)
    vl = 64 // dtype.itemsize
    nv = 4 if og > 2 * vl else (2 if og > vl else 1)
    ogp = -(-og // (nv * vl)) * (nv * vl)
    plane = cg * len(phases) * int(np.prod(qshape))
    rows, ow = o3[0] * o3[1], o3[2]
    # units: rpt whole rows, or (long rows) one row's columns in ncol pieces
    ncol = -(-ow // _WEIGHT_TILE)
    rpt = 1 if ncol > 1 else max(1, min(rows, _WEIGHT_TILE // max(1, ow)))
    if nparts > 1 and n * groups * (-(-rows // rpt)) * ncol < 8 * nparts:
        # few units: make their count a multiple of the parts (equal shares)
        ntile = -(-rows // rpt)
        while (n * groups * ntile * ncol) % nparts and (ntile < rows or ncol < ow):
            if ncol > 1 or ntile >= rows:
                ncol += 1
            else:
                ntile += 1
        rpt = -(-rows // ntile)
    cw = -(-ow // ncol)
    ws = nparts * (plane + rpt * cw * ogp) * dtype.itemsize
    if ws > max(_WORKSPACE_BYTES, cout * cg * kvol * dtype.itemsize):
        return None
    acc = np.zeros((nparts, groups, cg * kvol, ogp), dtype=dtype)
    nn_direct.dense_weight(x.reshape((n, cin) + sp3), _plane_geo(qshape, s3, pads3), phases, offs,
                           grad_out.reshape((n, cout) + o3), acc, groups, nv, rpt, cw, nthreads)
    gw = acc[0] if nparts == 1 else acc.sum(axis=0)
    gw = gw[:, :, :og].transpose(0, 2, 1).reshape((cout, cg) + tuple(kernel))
    return np.ascontiguousarray(gw)


def _conv_weight_core(x, grad_out, kernel_shape, stride, pad_pairs, dilation, groups):
    """Weight gradient of a convolution: the correlation of the input with grad_out.

    Parameters
    ----------
    x : ndarray (N, C_in, *spatial), C-contiguous, float32 or float64
    grad_out : ndarray (N, C_out, *out_spatial), C-contiguous, same dtype; its spatial
        shape must be ``conv_output_size(spatial, kernel_shape, stride, pad_pairs, dilation)``
    kernel_shape : tuple of int (spatial kernel size)
    stride, dilation : tuple of int; pad_pairs : tuple of (before, after) pairs
    groups : int

    Returns
    -------
    ndarray (C_out, C_in/groups, *kernel_shape): ``gw[o, c, k] = sum_{n, p} grad_out[n, o, p]
    x_pad[n, g*C_in/groups + c, p*stride + k*dilation]``, computed by the direct kernel
    (``_dense_weight``) or, pointwise / beyond its workspace budget, as GEMMs on im2col
    tiles; both with per-thread accumulators (reduced over the batch at the end).
    """
    dtype = x.dtype
    n, cin = x.shape[:2]
    cout = grad_out.shape[1]
    kernel = tuple(int(k) for k in kernel_shape)
    osz = conv_output_size(tuple(x.shape[2:]), kernel, tuple(stride), tuple(pad_pairs), tuple(dilation))
    if tuple(grad_out.shape) != (n, cout) + tuple(osz):
        raise ValueError(f"grad_output must have shape {(n, cout) + tuple(osz)}; got {grad_out.shape}")
    cg = cin // groups
    kvol = int(np.prod(kernel))
    kc = cg * kvol
    p = int(np.prod(osz))
    # per-part partial sums: the split (nparts) is fixed by the configuration, the team
    # running the parts (nthreads) may shrink on a busy machine without changing bits
    nparts = num_parts_for(grad_out.size * max(1, kc))
    nthreads = team_size(nparts)
    padded = any(pp != (0, 0) for pp in pad_pairs)
    pointwise = kvol == 1 and all(s == 1 for s in stride) and not padded
    if cout and kc and p and n and not pointwise:
        gw = _dense_weight(x, grad_out, kernel, stride, pad_pairs, dilation, groups, nparts, nthreads)
        if gw is not None:
            return gw
    acc = np.zeros((nparts, cout, kc), dtype=dtype)
    if acc.size and p and n:
        nn_check_gemm_dims(p, kc, int(np.prod(x.shape[2:])), cout)
        sp3, k3, o3 = _lift3(x.shape[2:], 1), _lift3(kernel, 1), _lift3(osz, 1)
        geo = (tuple(sp3) + tuple(o3) + tuple(k3) + _lift3(stride, 1) + _lift3(dilation, 1)
               + _lift3([pp[0] for pp in pad_pairs], 0))
        tile = _gemm_tile(p, kc, n * groups, nparts, dtype.itemsize, acc.nbytes)
        with blas_single_thread():
            nn_gemm.conv_weight(x.reshape(n, cin, -1), grad_out.reshape(n, cout, -1), acc, geo, groups, tile,
                                pointwise, nthreads)
    gw = acc[0] if nparts == 1 else acc.sum(axis=0)
    return np.ascontiguousarray(gw.reshape((cout, cg) + kernel))


# --------------------------------------------------------------------------- convolutions

def _conv_forward(args):
    """Run a normalised convolution (padding mode applied first) and drop the batch axis if needed."""
    dtype = args.dtype
    x = contiguous(args.x, dtype)
    pads = args.pad_pairs
    if args.padding_mode != "zeros" and any(pp != (0, 0) for pp in pads):
        x = _pad(x, pads, args.padding_mode)
        pads = ((0, 0),) * args.nd
    w = contiguous(args.w, dtype)
    b = None if args.b is None else contiguous(args.b, dtype)
    out = _conv_core(x, w, b, args.stride, pads, args.dilation, args.groups)
    return out[0] if args.unbatched else out


def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """N-d convolution (cross-correlation) for 1, 2 or 3 spatial dims, as ``torch.nn.functional.convNd``.

    The number of spatial dims is ``weight.ndim - 2``.

    Parameters
    ----------
    input : array_like, (N, C_in, *spatial) or unbatched (C_in, *spatial)
    weight : array_like, (C_out, C_in/groups, *kernel)
    bias : array_like (C_out,), optional
    stride, dilation : int or tuple of int
    padding : int, tuple of int, tuple of (before, after) pairs, 'same' or 'valid'
        'same' gives ``ceil(i/stride)`` outputs (TensorFlow's rule; with stride 1 this is
        PyTorch's 'same'); the odd unit of padding goes after.
    groups : int
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular'}
        How the input is padded (as ``torch.nn.ConvNd``).

    Returns
    -------
    ndarray (N, C_out, *out_spatial) (no batch axis for an unbatched input), float32
    when all operands are float32 (or float16), else float64.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> nn.conv(x, np.ones((1, 1, 2, 2)))[0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    >>> nn.conv(x, np.ones((2, 1, 3, 3)), padding='same', stride=2).shape
    (1, 2, 2, 2)
    """
    return _conv_forward(_normalize_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """1-d convolution, as ``torch.nn.functional.conv1d``; arguments as :func:`conv`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv1d(np.array([[1., 2., 3., 4.]]), np.array([[[1., 1.]]]), padding=((1, 0),))
    array([[1., 3., 5., 7.]])
    """
    return _conv_forward(_normalize_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, 1))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """2-d convolution, as ``torch.nn.functional.conv2d``; arguments as :func:`conv`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((2, 3, 8, 8), dtype=np.float32)
    >>> y = nn.conv2d(x, np.ones((4, 3, 3, 3), dtype=np.float32), padding=1)
    >>> y.shape, y.dtype, y[0, 0, 0, 0], y[0, 0, 4, 4]
    ((2, 4, 8, 8), dtype('float32'), np.float32(12.0), np.float32(27.0))
    >>> nn.conv2d(x, np.ones((4, 3, 3, 3)), padding=1, padding_mode='replicate')[0, 0, 0, 0]
    np.float64(27.0)
    """
    return _conv_forward(_normalize_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, 2))


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """3-d convolution, as ``torch.nn.functional.conv3d``; arguments as :func:`conv`.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv3d(np.ones((1, 2, 4, 4, 4)), np.ones((3, 2, 2, 2, 2)), stride=2).shape
    (1, 3, 2, 2, 2)
    """
    return _conv_forward(_normalize_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, 3))


# --------------------------------------------------------------------------- transposed

def _normalize_conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd):
    """Validate a transposed convolution (as ``torch.nn.functional.conv_transposeNd``).

    Returns ``(x, w, b, stride, padding, output_padding, groups, dilation, dtype, unbatched)``
    with ``x`` batched and every size argument an ``nd``-tuple of ints.
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    if w.ndim != nd + 2:
        raise ValueError(f"weight must have {nd + 2} dims (C_in, C_out/groups, *kernel) for "
                         f"conv_transpose{nd}d; got shape {w.shape}")
    dtype = dl_dtype(x, w, b)
    xb, unbatched = nn_batched(x, nd)
    groups = check_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups={groups} must be a positive integer")
    cin = xb.shape[1]
    if w.shape[0] < 1:
        raise ValueError(f"weight must have at least one input channel (weight.shape[0] >= 1); got {w.shape}")
    if cin % groups:
        raise ValueError(f"groups={groups} must divide in_channels={cin}")
    if w.shape[0] != cin:
        raise ValueError(f"weight.shape[0]={w.shape[0]} must equal in_channels={cin} "
                         f"(transposed weight is (C_in, C_out/groups, *kernel))")
    if any(k < 1 for k in w.shape[2:]):
        raise ValueError(f"weight's kernel size {w.shape[2:]} must be at least 1 in every dim")
    _check_bias(b, w.shape[1] * groups)
    if isinstance(padding, str):
        raise ValueError(f"padding={padding!r}: string padding is not supported by transposed "
                         f"convolutions; give an int or a tuple of {nd} ints")
    stride = nn_check_limits(as_tuple(stride, nd, "stride", minimum=1), "stride")
    dilation = nn_check_limits(as_tuple(dilation, nd, "dilation", minimum=1), "dilation")
    padding = nn_check_limits(as_tuple(padding, nd, "padding", minimum=0), "padding")
    output_padding = nn_check_limits(as_tuple(output_padding, nd, "output_padding", minimum=0), "output_padding")
    nn_check_span(xb.shape[2:], w.shape[2:], stride, dilation, [(p, p) for p in padding])
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"output_padding={output_padding} must be smaller than either stride={stride} "
                             f"or dilation={dilation} in every dim")
    for i, k, s, p, op, d in zip(xb.shape[2:], w.shape[2:], stride, padding, output_padding, dilation):
        o = (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        if o < 1:
            raise ValueError(f"padding={padding} is too large: the transposed convolution's output size "
                             f"would be {o} (input spatial {xb.shape[2:]}, kernel {w.shape[2:]})")
    nn_check_size(xb.shape[:1] + (w.shape[1] * groups,) + tuple(
        (i - 1) * s - 2 * p + d * (k - 1) + op + 1
        for i, k, s, p, op, d in zip(xb.shape[2:], w.shape[2:], stride, padding, output_padding, dilation)),
        f"stride={stride}, padding={padding}, output_padding={output_padding} and dilation={dilation}")
    return xb, w, b, stride, padding, output_padding, groups, dilation, dtype, unbatched


def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, nd):
    x, w, b, stride, padding, output_padding, groups, dilation, dtype, unbatched = _normalize_conv_transpose(
        input, weight, bias, stride, padding, output_padding, groups, dilation, nd)
    out = _conv_transpose_core(contiguous(x, dtype), contiguous(w, dtype),
                               None if b is None else contiguous(b, dtype),
                               stride, padding, output_padding, groups, dilation)
    return out[0] if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-d transposed convolution, as ``torch.nn.functional.conv_transpose1d``.

    Parameters
    ----------
    input : array_like, (N, C_in, L) or (C_in, L)
    weight : array_like, (C_in, C_out/groups, k)
    bias : array_like (C_out,), optional
    stride, padding, output_padding, groups, dilation : int or 1-tuple
        ``output_padding`` must be smaller than ``stride`` or ``dilation``.

    Returns
    -------
    ndarray (N, C_out, (L-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1)

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv_transpose1d(np.array([[[1., 2.]]]), np.array([[[1., 1., 1.]]]), stride=2)
    array([[[1., 1., 3., 2., 2.]]])
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Computed per output phase by direct loops (or as a GEMM ``W^T x`` followed by
    col2im), never by inserting zeros; arguments as :func:`conv_transpose1d`, per
    spatial dim.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((1, 4, 7, 7), dtype=np.float32)
    >>> nn.conv_transpose2d(x, np.ones((4, 2, 4, 4), dtype=np.float32), stride=2, padding=1).shape
    (1, 2, 14, 14)
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-d transposed convolution, as ``torch.nn.functional.conv_transpose3d``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.conv_transpose3d(np.ones((2, 3, 3, 3)), np.ones((2, 1, 2, 2, 2)), stride=2,
    ...                     output_padding=1).shape
    (1, 7, 7, 7)
    """
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 3)


# --------------------------------------------------------------------------- special convolutions

def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise 2-d convolution: each input channel convolved with its own ``m`` filters.

    Parameters
    ----------
    input : array_like, (N, C, H, W) or (C, H, W)
    weight : array_like, (C*m, 1, kh, kw)
    bias : array_like (C*m,), optional
    stride, padding, dilation : as :func:`conv2d`

    Returns
    -------
    ndarray (N, C*m, H_out, W_out); equals ``conv2d(..., groups=C)``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))])[None]
    >>> nn.depthwise_conv2d(x, np.ones((2, 1, 3, 3)))[0, :, 0, 0]
    array([ 9., 18.])
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    if w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"weight must have shape (C*m, 1, kh, kw) for a depthwise convolution; got {w.shape}")
    if x.ndim not in (3, 4):
        raise ValueError(f"input must have 3 (unbatched) or 4 (batched) dims; got shape {x.shape}")
    c = x.shape[-3]
    if c < 1 or w.shape[0] % c:
        raise ValueError(f"weight.shape[0]={w.shape[0]} must be a positive multiple of the input "
                         f"channels C={c} (weight (C*m, 1, kh, kw))")
    return _conv_forward(_normalize_conv(x, w, bias, stride, padding, dilation, c, "zeros", 2))


def _pointwise_weight(weight, name="weight"):
    """A pointwise weight (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1) as 4-d."""
    w = as_array(weight, name)
    if w.ndim == 2:
        return w.reshape(w.shape + (1, 1))
    if w.ndim == 4 and w.shape[2:] == (1, 1):
        return w
    raise ValueError(f"{name} must have shape (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1); got {w.shape}")


def pointwise_conv2d(input, weight, bias=None, groups=1):
    """1x1 convolution: a matrix product over channels at every pixel (no im2col).

    Parameters
    ----------
    input : array_like, (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, (C_out, C_in/groups) or (C_out, C_in/groups, 1, 1)
    bias : array_like (C_out,), optional
    groups : int
        ``groups > 1`` is ShuffleNet's pointwise group convolution.

    Returns
    -------
    ndarray (N, C_out, H, W)

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.arange(8.0).reshape(1, 2, 2, 2)
    >>> nn.pointwise_conv2d(x, np.array([[1., 1.], [1., -1.]]))[0]
    array([[[ 4.,  6.],
            [ 8., 10.]],
    <BLANKLINE>
           [[-4., -4.],
            [-4., -4.]]])
    """
    w = _pointwise_weight(weight)
    return _conv_forward(_normalize_conv(input, w, bias, 1, 0, 1, groups, "zeros", 2))


def separable_conv2d(input, depthwise_weight, pointwise_weight, bias=None, stride=1, padding=0, dilation=1):
    """Depthwise separable convolution (MobileNet / Xception): depthwise, then pointwise.

    Parameters
    ----------
    input : array_like, (N, C, H, W) or (C, H, W)
    depthwise_weight : array_like, (C*m, 1, kh, kw)
    pointwise_weight : array_like, (C_out, C*m) or (C_out, C*m, 1, 1)
    bias : array_like (C_out,), optional (added by the pointwise step)
    stride, padding, dilation : of the depthwise step, as :func:`conv2d`

    Returns
    -------
    ndarray (N, C_out, H_out, W_out): ``pointwise_conv2d(depthwise_conv2d(input, dw, None,
    stride, padding, dilation), pw, bias)``, computed in the common dtype of all operands.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((1, 3, 5, 5), dtype=np.float32)
    >>> y = nn.separable_conv2d(x, np.ones((3, 1, 3, 3), np.float32), np.ones((8, 3), np.float32), padding=1)
    >>> y.shape, y.dtype, y[0, 0, 2, 2]
    ((1, 8, 5, 5), dtype('float32'), np.float32(27.0))
    """
    x = as_array(input, "input")
    dw = as_array(depthwise_weight, "depthwise_weight")
    pw = _pointwise_weight(pointwise_weight, "pointwise_weight")
    b = None if bias is None else as_array(bias, "bias")
    dtype = dl_dtype(x, dw, pw, b)
    if dw.ndim != 4 or dw.shape[1] != 1:
        raise ValueError(f"depthwise_weight must have shape (C*m, 1, kh, kw); got {dw.shape}")
    if x.ndim not in (3, 4):
        raise ValueError(f"input must have 3 (unbatched) or 4 (batched) dims; got shape {x.shape}")
    c = x.shape[-3]
    if c < 1 or dw.shape[0] % c:
        raise ValueError(f"depthwise_weight.shape[0]={dw.shape[0]} must be a positive multiple of the input "
                         f"channels C={c}")
    if pw.shape[1] != dw.shape[0]:
        raise ValueError(f"pointwise_weight.shape[1]={pw.shape[1]} must equal the depthwise output channels "
                         f"{dw.shape[0]}")
    a = _normalize_conv(x.astype(dtype, copy=False), dw.astype(dtype, copy=False), None, stride, padding,
                        dilation, c, "zeros", 2)
    mid = _conv_forward(a)
    return _conv_forward(_normalize_conv(mid, pw.astype(dtype, copy=False),
                                         None if b is None else b.astype(dtype, copy=False), 1, 0, 1, 1, "zeros", 2))


def flattened_conv2d(input, lateral, vertical, horizontal, bias=None, padding=0):
    """Flattened convolution: a 1x1 lateral step, then per-channel vertical and horizontal 1-d passes.

    Parameters
    ----------
    input : array_like, (N, C_in, H, W) or (C_in, H, W)
    lateral : array_like, (C_out, C_in)
    vertical : array_like, (C_out, kh)
    horizontal : array_like, (C_out, kw)
    bias : array_like (C_out,), optional, added once at the end
    padding : int, tuple, tuple of (before, after) pairs, 'same' or 'valid' (zero padding)

    Returns
    -------
    ndarray (N, C_out, H_out, W_out), equal to ``conv2d(input, w, bias, padding=padding)`` with
    ``w[o, c, i, j] = lateral[o, c] * vertical[o, i] * horizontal[o, j]``, at a cost of
    ``C_in + kh + kw`` instead of ``C_in * kh * kw`` multiplications per output.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.ones((1, 2, 4, 4))
    >>> y = nn.flattened_conv2d(x, np.ones((3, 2)), np.ones((3, 3)), np.ones((3, 3)), padding=1)
    >>> y.shape, y[0, 0, 0, 0], y[0, 0, 1, 1]
    ((1, 3, 4, 4), np.float64(8.0), np.float64(18.0))
    """
    x = as_array(input, "input")
    lat = as_array(lateral, "lateral")
    ver = as_array(vertical, "vertical")
    hor = as_array(horizontal, "horizontal")
    b = None if bias is None else as_array(bias, "bias")
    dtype = dl_dtype(x, lat, ver, hor, b)
    if lat.ndim != 2:
        raise ValueError(f"lateral must have shape (C_out, C_in); got {lat.shape}")
    cout = lat.shape[0]
    if ver.ndim != 2 or ver.shape[0] != cout or ver.shape[1] < 1:
        raise ValueError(f"vertical must have shape (C_out, kh) = ({cout}, kh) with kh >= 1; got {ver.shape}")
    if hor.ndim != 2 or hor.shape[0] != cout or hor.shape[1] < 1:
        raise ValueError(f"horizontal must have shape (C_out, kw) = ({cout}, kw) with kw >= 1; got {hor.shape}")
    xb, unbatched = nn_batched(x, 2)
    if lat.shape[1] != xb.shape[1]:
        raise ValueError(f"lateral.shape[1]={lat.shape[1]} must equal in_channels={xb.shape[1]}")
    if cout < 1:
        raise ValueError(f"lateral must have at least one output channel; got shape {lat.shape}")
    _check_bias(b, cout)
    kh, kw = ver.shape[1], hor.shape[1]
    pads = nn_padding_pairs(padding, 2, xb.shape[2:], (kh, kw), (1, 1), (1, 1))
    for i, k, (pb, pa) in zip(xb.shape[2:], (kh, kw), pads):
        if i + pb + pa < k:
            raise ValueError(f"kernel size ({kh}, {kw}) is larger than the padded input "
                             f"{tuple(i + a + c for i, (a, c) in zip(xb.shape[2:], pads))}")
    x = contiguous(xb, dtype)
    # Padding commutes with the 1x1 lateral step (no bias until the end), so the
    # vertical pass pads rows and the horizontal pass pads columns.
    y = _conv_core(x, contiguous(lat, dtype).reshape(cout, -1, 1, 1), None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    y = _conv_core(y, contiguous(ver, dtype).reshape(cout, 1, kh, 1), None, (1, 1), (pads[0], (0, 0)), (1, 1), cout)
    y = _conv_core(y, contiguous(hor, dtype).reshape(cout, 1, 1, kw), None if b is None else contiguous(b, dtype),
                   (1, 1), ((0, 0), pads[1]), (1, 1), cout)
    return y[0] if unbatched else y


# --------------------------------------------------------------------------- shuffle, resize

def channel_shuffle(input, groups):
    """Channel shuffle (ShuffleNet), as ``torch.nn.functional.channel_shuffle``.

    Parameters
    ----------
    input : array_like, (N, C, *) with at least 3 dims (always batched)
    groups : int, dividing C

    Returns
    -------
    ndarray of the input's shape: output channel ``k*groups + g`` is input channel
    ``g*(C/groups) + k``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.channel_shuffle(np.arange(6.0).reshape(1, 6, 1), 2)[0, :, 0]
    array([0., 3., 1., 4., 2., 5.])
    """
    x = as_array(input, "input")
    if x.ndim < 3:
        raise ValueError(f"input must have at least 3 dims (N, C, *); got shape {x.shape}")
    groups = check_int(groups, "groups")
    if groups < 1:
        raise ValueError(f"groups={groups} must be a positive integer")
    c = x.shape[1]
    if c % groups:
        raise ValueError(f"groups={groups} must divide the number of channels C={c}")
    dtype = dl_dtype(x)
    xc = contiguous(x, dtype)
    out = np.empty(x.shape, dtype=dtype)
    if out.size:
        n = x.shape[0]
        nn_direct.channel_shuffle(xc.reshape(n, c, -1), out.reshape(n, c, -1), groups,
                                  num_threads_for(out.size, grain=1 << 17))
    return out


def _nearest_map(n_in, factor):
    """Source rows of nearest upsampling by an integer factor, as PyTorch computes them."""
    j = np.arange(n_in * factor, dtype=np.int64)
    if factor == 1:
        return j
    if factor == 2:
        return j >> 1
    # PyTorch: floor(dst * float(1/scale)) in float32, clamped to the input
    src = np.floor(j.astype(np.float32) * np.float32(1.0 / factor)).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _bilinear_map(n_in, factor, dtype):
    """(i0, i1, lambda1) of bilinear upsampling with align_corners=False (PyTorch's rule)."""
    scale = dtype.type(1.0 / factor)
    dst = np.arange(n_in * factor).astype(dtype)
    src = scale * (dst + dtype.type(0.5)) - dtype.type(0.5)
    src = np.maximum(src, dtype.type(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0.astype(dtype), 0, 1).astype(dtype)
    i1 = i0 + (i0 < n_in - 1)
    return i0, np.ascontiguousarray(i1), np.ascontiguousarray(lam)


def _upsample(x, factor, mode):
    """Upsample (N, C, H, W) by an integer factor: 'nearest' or 'bilinear' (align_corners=False)."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h * factor, w * factor), dtype=x.dtype)
    if out.size == 0:
        return out
    nthreads = num_threads_for(out.size * 4, grain=1 << 17)
    if mode == "nearest":
        nn_direct.gather(x.reshape(n * c, 1, h, w), out.reshape(n * c, 1, h * factor, w * factor),
                         np.zeros(1, dtype=np.int64), _nearest_map(h, factor), _nearest_map(w, factor), nthreads)
    else:
        h0, h1, hl = _bilinear_map(h, factor, x.dtype)
        w0, w1, wl = _bilinear_map(w, factor, x.dtype)
        nn_direct.bilinear(x.reshape(n * c, h, w), out.reshape(n * c, h * factor, w * factor),
                           h0, h1, hl, w0, w1, wl, nthreads)
    return out


def _normalize_resize(x, w, b, scale_factor, mode):
    """Checked arguments of :func:`resize_conv2d` (shared with its backward pass).

    Returns ``(xb, unbatched, factor, mode)``: ``xb`` is the batched input, C-contiguous
    in the compute dtype of ``(x, w, b)``.
    """
    factor = check_int(scale_factor, "scale_factor")
    if factor < 1:
        raise ValueError(f"scale_factor={factor} must be a positive integer")
    mode = check_choice(mode, "mode", ("nearest", "bilinear"))
    if w.ndim != 4:
        raise ValueError(f"weight must have 4 dims (C_out, C_in, kh, kw); got shape {w.shape}")
    dtype = dl_dtype(x, w, b)
    xb, unbatched = nn_batched(x, 2)
    if xb.shape[1] != w.shape[1]:
        raise ValueError(f"weight.shape[1]={w.shape[1]} must equal in_channels={xb.shape[1]}")
    nn_check_size(xb.shape[:2] + tuple(v * factor for v in xb.shape[2:]), f"scale_factor={factor}")
    return contiguous(xb, dtype), unbatched, factor, mode


def resize_conv2d(input, weight, bias=None, scale_factor=2, mode="nearest", padding="same"):
    """Resize-convolution: upsample by an integer factor, then :func:`conv2d` (stride 1).

    The checkerboard-free alternative to :func:`conv_transpose2d` (Odena et al., 2016).

    Parameters
    ----------
    input : array_like, (N, C_in, H, W) or (C_in, H, W)
    weight : array_like, (C_out, C_in, kh, kw)
    bias : array_like (C_out,), optional
    scale_factor : int >= 1
    mode : {'nearest', 'bilinear'}
        As ``torch.nn.functional.interpolate(..., scale_factor, mode, align_corners=False)``.
    padding : as :func:`conv2d` (default 'same': output ``(H*scale, W*scale)``)

    Returns
    -------
    ndarray (N, C_out, H_out, W_out)

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> x = np.array([[[[1., 2.], [3., 4.]]]])
    >>> nn.resize_conv2d(x, np.ones((1, 1, 1, 1)))[0, 0]
    array([[1., 1., 2., 2.],
           [1., 1., 2., 2.],
           [3., 3., 4., 4.],
           [3., 3., 4., 4.]])
    """
    x = as_array(input, "input")
    w = as_array(weight, "weight")
    b = None if bias is None else as_array(bias, "bias")
    xb, unbatched, factor, mode = _normalize_resize(x, w, b, scale_factor, mode)
    up = _upsample(xb, factor, mode)
    a = _normalize_conv(up, w, b, 1, padding, 1, 1, "zeros", 2)
    out = _conv_forward(a)
    return out[0] if unbatched else out


# --------------------------------------------------------------------------- unfold / fold

def _normalize_fold_args(kernel_size, dilation, padding, stride):
    k = nn_check_limits(as_tuple(kernel_size, 2, "kernel_size", minimum=1), "kernel_size")
    d = nn_check_limits(as_tuple(dilation, 2, "dilation", minimum=1), "dilation")
    p = nn_check_limits(as_tuple(padding, 2, "padding", minimum=0), "padding")
    s = nn_check_limits(as_tuple(stride, 2, "stride", minimum=1), "stride")
    return k, d, p, s


def _blocks(spatial, k, d, p, s, what):
    """Number of sliding blocks per dim; ValueError when a block does not fit."""
    out = []
    for i, kk, dd, pp, ss in zip(spatial, k, d, p, s):
        span = i + 2 * pp - dd * (kk - 1) - 1
        if span < 0:
            raise ValueError(f"{what} spatial size {tuple(spatial)} with kernel_size={k}, dilation={d}, "
                             f"padding={p} gives no sliding block: the kernel is larger than the padded input")
        out.append(span // ss + 1)
    return tuple(out)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Extract sliding blocks (im2col), as ``torch.nn.functional.unfold``.

    Parameters
    ----------
    input : array_like, (N, C, H, W) or (C, H, W)
    kernel_size, dilation, padding, stride : int or pair of int

    Returns
    -------
    ndarray (N, C*kh*kw, L) (or (C*kh*kw, L)), ``L`` the number of blocks; row
    ``(c*kh + i)*kw + j`` holds tap ``(i, j)`` of channel ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.unfold(np.arange(9.0).reshape(1, 1, 3, 3), 2)[0]
    array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]])
    """
    x = as_array(input, "input")
    k, d, p, s = _normalize_fold_args(kernel_size, dilation, padding, stride)
    nn_check_span(x.shape[-2:], k, s, d, [(q, q) for q in p])
    if x.ndim not in (3, 4):
        raise ValueError(f"input must have 3 (unbatched) or 4 (batched) dims (N, C, H, W); got shape {x.shape}")
    dtype = dl_dtype(x)
    xb, unbatched = nn_batched(x, 2)
    nb = _blocks(xb.shape[2:], k, d, p, s, "input")
    n, c = xb.shape[:2]
    L = nb[0] * nb[1]
    out = np.empty((n, c * k[0] * k[1], L), dtype=dtype)
    if out.size:
        xc = contiguous(xb, dtype)
        geo = (1,) + tuple(xb.shape[2:]) + (1,) + nb + (1,) + k + (1,) + s + (1,) + d + (0,) + p
        nn_gemm.unfold(xc.reshape(n, c, -1), out, geo, num_threads_for(out.size, grain=1 << 17))
    return out[0] if unbatched else out


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """Combine sliding blocks into an image, summing overlaps (col2im), as ``torch.nn.functional.fold``.

    Parameters
    ----------
    input : array_like, (N, C*kh*kw, L) or (C*kh*kw, L)
    output_size : int or pair of int, the image's (H, W)
    kernel_size, dilation, padding, stride : int or pair of int

    Returns
    -------
    ndarray (N, C, H, W) (or (C, H, W)); ``fold(unfold(x))`` multiplies each pixel by
    the number of blocks covering it.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv import nn
    >>> nn.fold(np.ones((1, 4, 4)), (3, 3), 2)[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    x = as_array(input, "input")
    osz = as_tuple(output_size, 2, "output_size", minimum=0)
    k, d, p, s = _normalize_fold_args(kernel_size, dilation, padding, stride)
    if x.ndim not in (2, 3):
        raise ValueError(f"input must have 2 (unbatched) or 3 (batched) dims (N, C*kh*kw, L); got shape {x.shape}")
    dtype = dl_dtype(x)
    xb = x[None] if x.ndim == 2 else x
    n, ck, L = xb.shape
    kvol = k[0] * k[1]
    if ck % kvol:
        raise ValueError(f"input.shape[-2]={ck} must be divisible by the kernel size product "
                         f"kh*kw={kvol} (kernel_size={k})")
    nn_check_limits(osz, "output_size")
    nn_check_span(osz, k, s, d, [(q, q) for q in p])
    nb = _blocks(osz, k, d, p, s, "output_size")
    if nb[0] * nb[1] != L:
        raise ValueError(f"input.shape[-1]={L} must equal the number of sliding blocks {nb[0]}*{nb[1]}="
                         f"{nb[0] * nb[1]} for output_size={osz}, kernel_size={k}, dilation={d}, "
                         f"padding={p}, stride={s}")
    c = ck // kvol
    out = np.empty((n, c) + osz, dtype=dtype)
    if out.size:
        xc = contiguous(xb, dtype)
        geo = (1,) + osz + (1,) + nb + (1,) + k + (1,) + s + (1,) + d + (0,) + p
        nn_gemm.fold(xc, out.reshape(n, c, -1), geo, num_threads_for(xb.size, grain=1 << 17))
    return out[0] if x.ndim == 2 else out


# dask arrays go to pyconv.dask (lazy result), never silently into memory
from pyconv._dask_dispatch import route_dask_inputs as _route_dask  # noqa: E402
_route_dask(globals(), __all__, "nn")
