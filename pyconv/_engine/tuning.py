"""Every threshold the planners use, in one place, each with the measurement behind it.

A :class:`Tuning` is a frozen set of values; :func:`active` returns the set the
planners read: this machine's calibration (pyconv/_engine/calibrate.py: the fields
under "measured on the running machine" timed where the code runs and cached per
machine and pyconv version; ``PYCONV_TUNING=off`` keeps :data:`DEFAULT`, whose
figures below come from the project's 2-core AMD EPYC machine) -- the planners never
read a module global.  Tests and benchmarks use
:func:`override` to run a block under other values (e.g. a tiny workspace budget).

Compile-time constants of the C kernels (they cannot change at run time) are
listed at the end for reference.
"""
import contextlib
import dataclasses
import threading


@dataclasses.dataclass(frozen=True, eq=False)
class Tuning:
    """Thresholds of the algorithm choice (see each field's comment for the measurement).

    Compared and hashed by identity (cheap as part of a plan-cache key).
    """

    # --- workspace ------------------------------------------------------------------
    # Budget of any algorithm's scratch memory: the larger of this and the output size.
    # Chosen, not measured: 64 MiB keeps the largest suite layer (3x3 64->64, batch 8)
    # on the fast paths while a pathological geometry falls back to bounded tiles.
    workspace_bytes: int = 64 << 20
    # One thread's im2col tile of the GEMM path (fits in L2 beside the GEMM panels).
    tile_bytes: int = 1 << 19

    # --- forward convolution -----------------------------------------------------------
    # Depthwise / thin groups take the per-tap plane kernels when cg*og <= thin_max_cg_og
    # or (cg <= thin_max_cg and og <= thin_max_cg_og): neither GEMM nor the 8-output
    # register blocks fill with so few channels, while one pass per tap stays at memory
    # speed (3x3 depthwise and 128->128 g=32: 2.5-4x and 1.4-1.6x faster than PyTorch).
    # Calibrated against the dense kernel, whose 4-wide blocks serve 4 outputs per group:
    # Intel Xeon, 2026-12-03, 128->128 g=32 56x56 float32, 1 thread: dense 7.2 ms, thin
    # 10.1, PyTorch 14.8.
    # ``thin_max_cg_og`` is the strided layers' limit ('thin_phase' / 'thin_row' against
    # 'dense', 3x3 stride 2); ``thin_s1_max_cg_og`` the stride-1 one ('thin_reg' / 'thin_s1'
    # against 'dense'): on an Intel Xeon, 1 thread, 4x128x56x56 with 4 in / 4 out per group,
    # stride 2 ran 6.5 ms thin_phase, 3.4 dense; stride 1 4.6 thin_reg, 7.7 dense.
    thin_max_cg_og: int = 16
    thin_s1_max_cg_og: int = 16
    thin_max_cg: int = 2
    # Stride-1 thin groups keep output rows in vector registers ('thin_reg', every output
    # stored once) on rows at least this wide; narrower rows take the whole-plane passes
    # of 'thin_s1' (a short row leaves most lanes of its last vector idle).  Calibrated
    # (depthwise 3x3 on square maps); the default is one AVX-512 vector of float32.
    thin_reg_min_ow: int = 16
    # Largest zero-padded copy of one group's channels (per thread) that the stride-1
    # thin kernel makes; beyond it the phase-plane / row kernels run.
    thin_pad_bytes: int = 16 << 20
    # 1x1 stride-1 unpadded layers: the register-blocked direct kernel reading the input
    # in place (1.25x faster than one OpenBLAS GEMM per tile for 1x1 256->64, float32, AMD
    # EPYC), ``pointwise_chunk`` positions at a time through every output-channel block.
    # Calibrated separately for layers that reduce the channels (og < cg: this field) and
    # that keep or expand them (``pointwise_direct_expand``), and for float64 (``_f8``):
    # the in-place kernel won 256->64 (18.6 vs 21.6 ms for MATMUL) but lost 64->256 (22.0
    # vs 16.0) and float64 256->64 (29.1 vs 23.1; Intel Xeon, 2026-12-03, 8x56x56, 1 thread).
    pointwise_direct: bool = True
    pointwise_direct_expand: bool = True
    pointwise_direct_f8: bool = True
    pointwise_direct_expand_f8: bool = True
    # Before both: the packed-panel kernel (plan 'panel', panel.panel_forward): a chunk of
    # positions of every input channel copied into contiguous stripes, 8 outputs x 3
    # vectors of positions per register tile (AVX-512).  Intel Xeon, 2026-12-03, 8x256->64
    # 56x56 float32, 1 thread, interleaved: panel 10.6-13.3 ms, pointwise 12.2-20.5,
    # PyTorch 8.9-12.3 (float64 21.6-29.7 vs 21.5-29.6).  Calibrated per dtype and for
    # layers that reduce / keep or expand the channels, against the two choices below.
    pointwise_panel: bool = True
    pointwise_panel_expand: bool = True
    pointwise_panel_f8: bool = True
    pointwise_panel_expand_f8: bool = True
    # Float32 positions per work unit of the panel kernel (float64: half as many, the same
    # bytes per row; the stripes stay in L2 while every block of output channels runs over
    # them).  Layer above, 1 thread, CPU time: 256 / 512 / 1024 positions 13.8 / 12.9 /
    # 14.0 ms float32; float64 256 / 512 / 1024: 21.6 / 22.1 / 28.2.  Calibrated among
    # 256, 512 and 1024 (float32, one sample).
    panel_chunk: int = 512
    # The 1x1 weight gradient by the panel kernel (panel.panel_weight: per chunk of positions
    # grad_output transposed into [position][output] rows, tiles of 6 input channels x 4
    # vectors of outputs, input rows read in place, sums in registers over the chunk).
    # Intel Xeon, 2026-12-03, 8x256->64 56x56, 1 thread, CPU time: float32 panel 14.0-14.4
    # ms, MATMUL 17.4-19.7, PyTorch 14.1-15.1; float64 22.5 / 25.1 / 19.2.  Calibrated per
    # dtype against MATMUL in its calibrated orientation.
    weight_panel: bool = True
    weight_panel_f8: bool = True
    # Bytes of one chunk's transposed grad_output (positions x outputs), calibrated per dtype
    # among 128 KiB, 512 KiB and 2 MiB (a whole 56x56 map of 64 float32 outputs is 800 KiB).
    weight_panel_bytes: int = 512 << 10
    weight_panel_bytes_f8: int = 512 << 10
    # Otherwise: one BLAS matrix product per sample and group (MATMUL) or im2col-free GEMM
    # tiles (GEMM).  Intel Xeon, 2026-12-02, float32, 1 thread: 256->64 56x56 MATMUL 1.52
    # ms, GEMM tiles 2.30, PyTorch 1.35; 8x256->64 14x14: 0.60, 1.06, 0.52.  Calibrated.
    pointwise_matmul: bool = True
    # The 1x1 weight gradient's BLAS products dW = sum_n dy[n] x[n]^T: formed as the
    # transpose of x[n] dy[n]^T when C_in/groups > C_out (the product with more rows
    # than columns).  OpenBLAS's SkylakeX kernel, Intel Xeon 2026-12-03, 256->64 56x56,
    # medians of 21: float32 8 samples 18.8 -> 16.0 ms at 1 thread, 11.4 -> 10.1 at 2
    # (1.09-1.18x for 1, 2 and 8 samples); float64 0.92-1.01x; 1024->64 14x14 float32
    # 6.1 -> 4.8 ms, while the orientation already tall won 64->256 (16.1 vs 19.4).
    # Calibrated per dtype at the default thread count.
    weight_matmul_tall: bool = False
    weight_matmul_tall_f8: bool = False
    # The 1x1 input gradient dx[n] = W^T dy[n]: one BLAS product per sample (MATMUL), else
    # the forward's own 1x1 plan on grad_output with the channels swapped (FLIP_CONV: the
    # panel kernel where the forward takes it).  Per dtype, for layers that reduce the
    # channels (their gradient expands them) and for the others.  AMD EPYC, 2026-12-07,
    # 8x256->64 56x56 float32 after a PyTorch call: MATMUL 5.0 ms at 1 thread, 3.7-4.3 at
    # 2; FLIP_CONV(panel) 4.8 and 4.3-4.9.  Calibrated at the default thread count.
    input_matmul: bool = True
    input_matmul_expand: bool = True
    input_matmul_f8: bool = True
    input_matmul_expand_f8: bool = True
    # Positions per chunk of the in-place 1x1 kernel (calibrated among 128, 256, 512).
    pointwise_chunk: int = 128
    # Output positions per work unit of the dense direct kernel.
    dense_tile: int = 1024
    # Input channels per pass of the dense forward kernel: one pass's weights (channels x
    # taps x 8 output channels) within this many bytes stay in L1 while they serve a chunk
    # of positions.  Without the split a 3x3 256->256 layer streamed 73 KB of weights per
    # 32 positions from L2 and ran 1.4-1.8x slower than im2col + GEMM (Intel Xeon, 48 KB
    # L1d, float32, 1 thread, 2026-12-02); the bits do not depend on it.  Calibrated among
    # 4, 8 and 16 KiB: the block's weights share L1 with the input rows it reads (3x3
    # 64->64 56x56, Intel Xeon, medians of 41: 8 KiB 1.09x faster than 16 KiB).
    dense_wblock_bytes: int = 16 << 10
    # The same for kernels with taps in depth (3-D), calibrated among 8, 16 and 32 KiB on
    # 3x3x3 VL->VL 24^3: a pass's channels there serve 27 taps each, and the conv3d layer h
    # (16->16 32^3) ran its forward and input gradient 1.5-4% faster with 16-32 KiB than
    # with the 8 KiB the 2-D layer chose (AMD EPYC).
    dense_wblock_bytes_3d: int = 16 << 10
    # Output channels per group from which the dense register-blocked kernels (forward
    # phases of a transposed convolution, weight gradient) fill their 8 lanes
    # (dense_direct.OBW).  Below it: transposed 7x7 s2 3->64 input gradient 32 vs 20 ms
    # (float32, GEMM + col2im wins); weight gradient depthwise s2 19.5 vs 10.9 ms and
    # g32 og=4 5.9 vs 4.3 (GEMM wins); and the thin direct weight kernel of
    # grad_direct.pyx takes over (depthwise 3x3 0.7 vs 2.0 ms; conv3d 16->16 with 16
    # per group: 10.9 ms on the dense kernel vs 23.9 on the thin one).
    dense_min_og: int = 8
    # The dense forward with vectors along the output channels (dense_direct.dense_oc,
    # plan 'dense_oc'): the default for dense layers with more than one vector of output
    # channels per group, per dtype.  It reads the input by broadcasts straight from
    # zero-padded row copies (no phase planes): on an Intel Xeon (AVX-512, 1 thread,
    # 2026-12-03) float32 layers a/b/f/j 1.1-1.2x/1.5x/1.1-1.2x/1.1x the phase-plane
    # kernel, float64 1.1-1.5x (benchmarks/results/nn-2026-12-03-ocvec-intel.txt).
    # Calibrated per dtype against the phase-plane kernel on 3x3 64->64 56x56.
    dense_oc: bool = True
    dense_oc_f8: bool = True
    # ... and for groups of exactly one vector of output channels (16 float32, 8 float64),
    # where each broadcast feeds a single FMA: a CPU-dependent choice, calibrated per dtype
    # on 3x3 VL->VL 56x56.  Intel Xeon: conv3d 16->16 float32 ran 0.93x the phase-plane
    # kernel; AMD EPYC (2026-12-04, 1 thread): 16->16 1.05-1.07x, float64 8->8 1.15-1.18x.
    # (Groups of less than a vector stay with the phase-plane kernel: 0.55-0.78x there.)
    dense_oc_one: bool = False
    dense_oc_one_f8: bool = False
    # ... the same for 3-D kernels (depth > 1), calibrated on 3x3x3 VL->VL 24^3: a unit's
    # rows are copied once per depth tap, and the choice differs from the 2-D one (Intel
    # Xeon, 1 thread, best of 6: 16->16 56x56 dense_oc 1.6-1.7x faster than the phase-plane
    # kernel, 24^3 0.83x, layer h (2x16x32^3) 0.82-0.87x)
    dense_oc_one_3d: bool = False
    dense_oc_one_3d_f8: bool = False
    # Output positions per work unit (whole rows: the copied input rows serve them all,
    # and a pass's weights serve all of them) and the longest row a unit covers at once.
    # Layer a (8 rows of 56) 1.05x faster than with 224 positions, f 1.06x, j 1.05x.
    dense_oc_positions: int = 448
    dense_oc_max_cols: int = 512
    # Weights of one pass of input channels (channels x taps x 32 output channels);
    # calibrated among 10, 20 and 40 KiB.
    dense_oc_wblock_bytes: int = 20 << 10
    # Positions / K limits against im2col + GEMM (as dense_min_positions / dense_max_k;
    # calibrated).  On 3x3 maps GEMM with samples side by side still wins: 32x16x6x6 *
    # 32x16x3x3 stride 2, float32, 1 thread: dense_oc 0.34 ms, GEMM 0.23-0.28 (the
    # calibration's 32->32 sweep put the crossover at 9 or 36 positions on the Xeon).
    dense_oc_min_positions: int = 36
    dense_oc_max_k: int = 1 << 62
    # Output positions per work unit of the dense weight-gradient kernel (its packed
    # grad_output tile stays in L2); calibrated among 512, 1024 and 2048.
    weight_tile: int = 512

    # --- GEMM threading ---------------------------------------------------------------
    # OpenMP over independent units, each a single-threaded GEMM, beat one GEMM on
    # OpenBLAS's threads by 1.4x (1x1 256->64) to >10x (3x3 64->64 batch 8: 41 vs 644 ms)
    # on 2 cores: False keeps that scheme; True re-runs the losing one for measurement.
    gemm_blas_threads: bool = False

    # --- thread grains (least work worth a thread of its own) ---------------------------
    # multiply-adds per thread of a pyconv.nn call (measured: calibrate._measure_grain)
    grain: int = 1 << 15
    # memory-bound gathers (padding modes, upsampling, shuffles, unfold/fold)
    gather_grain: int = 1 << 17
    # weight packing stays on one thread below 4M elements (0.05 ms; a 2-thread region
    # costs more than that on a busy machine)
    pack_grain: int = 1 << 22

    # --- measured on the running machine (pyconv/_engine/calibrate.py) ------------------
    # These defaults hold under PYCONV_TUNING=off; otherwise pyconv.tune() (or the same
    # calibration at first use) measures them where the code runs and caches them.
    # Forward: the dense register-blocked kernel builds phase planes per (sample, group);
    # on small maps that costs more than im2col + GEMM (32x16x6x6 * 32x16x3x3 stride 2, 3x3
    # outputs: 590 us dense vs 33 us GEMM, float32, 1 thread, AMD EPYC, 2026-12-02).  DENSE
    # runs only when a sample has at least this many output positions.  The calibration's
    # 32->32 3x3 layer (batch 8, 1 thread, AMD EPYC, 2026-12-02): dense/GEMM 0.56/0.16 ms
    # on 3x3 maps, 0.11/0.30 on 6x6, 0.20/0.70 on 12x12: the crossover is 36 positions.
    dense_min_positions: int = 36
    # The same crossover for the dense weight-gradient kernel against im2col + GEMM (on an
    # Intel Xeon the dense weight kernel ran at 0.3x PyTorch where GEMM would be faster).
    # Same calibration: dense/GEMM 0.12/0.20 ms on 3x3 maps, 0.16/0.35 on 6x6: 9.
    weight_dense_min_positions: int = 9
    # The three positions crossovers (dense_min_positions, dense_oc_min_positions,
    # weight_dense_min_positions) for strided layers, measured by the same sweep at stride
    # 2: a strided layer costs the direct kernels more per output than GEMM (phase planes,
    # wider input rows).  Intel Xeon, 1 thread, 2026-12-03, 3x3 outputs of the 32->32
    # layer: weight gradient dense 77 us / GEMM 72 at stride 1 but 101 / 66 at stride 2
    # (the digits CNN's 32x16x6x6 stride-2 layer: 174 / 125); 6x6 outputs level, 8x8
    # dense 1.3x faster (dense_oc 1.45x); the phase-plane forward from 12x12.
    dense_min_positions_strided: int = 144
    dense_oc_min_positions_strided: int = 64
    weight_dense_min_positions_strided: int = 64
    # As the channels grow the GEMM through the CPU's BLAS overtakes the dense kernels: the
    # dense forward / weight kernels run only while K = C_in/groups x kernel volume is at
    # most these.  The calibration times a 3x3 layer on 16x16 outputs with 32 to 256
    # channels.  Measured on a 2-core Intel Xeon (AVX-512, 2026-12-02, float32, 1 thread),
    # stride 2, 8x8 outputs: GEMM/dense time 0.91 at 128 channels (K = 1152) and 0.57 at
    # 256 for the forward, 0.53 at 256 for the weight gradient (layer b of the nn suite,
    # 128->256: GEMM 1.52 ms vs dense 1.69 forward).  No limit under PYCONV_TUNING=off.
    dense_max_k: int = 1 << 62
    # The dense weight kernel keeps one accumulator of (C_in/groups x taps) rows by the
    # output channels per part, swept once per tile of positions: its limit is that
    # accumulator's size in bytes (layer b, 1152 x 256 float32 = 1.18 MB per part: 2.0-6.1
    # ms dense against 1.1-1.2 ms GEMM at 2 threads, Intel Xeon, 2026-12-02).  Calibrated
    # on the same sweep (36 KB to 2.4 MB), at the default thread count.
    weight_dense_max_acc_bytes: int = 1 << 62
    # Strided transposed convolutions (and strided input gradients): the dense kernel per
    # output phase (PHASES) against GEMM + col2im, by output positions per phase and the K
    # of the largest phase (C_in/groups x that phase's taps: conv.phase_k).
    # On small maps the dense kernel's 32-position register blocks run mostly empty:
    # 32x16x6x6 * 32x16x3x3 stride 2 input gradient, 3x3 positions per phase: PHASES 0.93
    # ms vs GEMM 0.17 ms (Intel Xeon, float32, 1 thread, 2026-12-02); the default is the
    # forward's crossover.  Calibrated like the forward's.
    phases_min_positions: int = 36
    phases_max_k: int = 1 << 62
    # The output-channel kernel per output phase (dense_direct.phases_oc, plan 'phases_oc':
    # dense_oc's register tiles with vectors along the transposed convolution's output
    # channels, each phase's outputs written in place: no planes, no col2im) is the
    # default for strided transposed convolutions with groups of more than one vector of
    # output channels, per dtype, when it beat both PHASES and GEMM in the calibration (a
    # 64->32 3x3 stride-2 input gradient, 28x28 per phase); it runs within dense_oc's
    # positions / K limits against GEMM (the same register tiles: positions per phase
    # against dense_oc_min_positions, the largest phase's K against dense_oc_max_k).
    # Layer b's input gradient (256->128 3x3 stride 2 transposed), Intel Xeon, 1 thread,
    # CPU time: see benchmarks/results/grad-2026-12-03-bgrad-intel.txt.
    phases_oc: bool = True
    phases_oc_f8: bool = True
    # pyconv.signal's cost model (method='auto', choose_conv_method): ns per multiply-add
    # of the direct kernel (complex x4, int64 x2.2 of these), and ns per FFT point x log2 of
    # the transform size below 2**19.5 points and from 2**21.5 on (linear between).
    # Defaults from timings on the 2-core AMD development VM (see pyconv/signal.py).
    direct_ns_f4: float = 0.05
    direct_ns_f8: float = 0.09
    fft_ns_small: float = 0.25
    fft_ns_large: float = 0.55
    # The 1-D direct kernel (one long row swept in blocks of 16 KiB, by the lane-strided
    # sweep from 16 taps on) costs less per multiply-add than rows of an N-d one: 0.024
    # vs 0.052 ns float32, 0.044 vs 0.10 float64 (Intel Xeon, 1 thread, 2026-12-03,
    # calibrated on 65536 * 1025 against 64 x 1024 * 9 x 9; 65536 * 257 measured 0.038
    # and 0.073 before the lane sweep, 0.027 and 0.042 with it).
    # The defaults (the N-d figures) keep the model as it was under PYCONV_TUNING=off.
    direct_ns_1d_f4: float = 0.05
    direct_ns_1d_f8: float = 0.09
    # 'same' mode on short rows (2-D/3-D images): runs of rows are swept as one flat
    # block and the border columns of every row are redone tap by tap; ns per (row, tap)
    # of that redo with a 4-column border, x (1 + border / 8) per row in general (Intel
    # Xeon, float32, 1 thread: 64^3 * 5^3 4.2 ns, 96^3 * 7^3 6.1, 1024 x 64 * 9 x 9 6.8).
    direct_border_ns: float = 3.0
    # The merged sweep itself (runs of short rows as one flat block, 2-D/3-D 'same' and
    # 'valid') per multiply-add, as a multiple of long rows' direct_ns_*: its blocks are
    # long and its kernels have many taps, so a tile of outputs loaded and stored once
    # serves more of them (Intel Xeon, float32, 1 thread: 128^3 * 7^3 'same' on padded
    # rows 0.043 ns, 1024^2 * 9x9 rows 0.065).  Calibrated ('valid', no border); the
    # default keeps the model as it was.
    direct_merged_factor: float = 1.0
    # The other way to get those borders: a copy of the input with zeros around its rows
    # (signal_plan.row_padding), after which the merged sweep needs no redo; ns per
    # element of the padded copy (allocation and first touch included: ~1.5-2.2 ns on an
    # Intel Xeon VM for 8-64 MiB volumes).  Taken where the model says the copy costs
    # less than the redo (128^3 * 7^3 'same' float32, 1 thread: 110 -> 65 ms; 256^3 * 3^3
    # 66 -> 102 ms had it been taken).  The default never pads: the model as it was.
    direct_pad_ns: float = 1e9
    # ...and ns per call of that copy, whatever its size: the call into the copy kernel, a
    # new array, the check of the weights for a plan that has a non-finite twin.  Priced
    # per element alone, a 10x10 * 3x3 'same' correlation took the copy and ran in 7.7 us
    # where the redo runs in 4.9 (scipy 3.5; AMD EPYC, 1 thread).  Calibrated.
    direct_pad_call_ns: float = 0.0
    # FFT costs of 1-D transforms, as multiples of the N-d ns per point x log2 above: one
    # full transform of a long signal runs on one thread with poorer locality (x2.1 on the
    # Xeon at 1e5 points), and overlap-add pays for its padding, block copies and adds.
    fft_1d_factor: float = 1.0
    fft_oa_factor: float = 1.3
    # Single precision (float32/complex64) FFTs as a multiple of the double ones: N-d, and
    # 1-D (one full transform or overlap-add).  The N-d transforms gain more from the
    # narrower type than a 1-D one (Intel Xeon, 1 thread, 'same': 2-D 512^2-1536^2 * 9x9
    # 0.30-0.56, 3-D 64^3-128^3 * 5^3 0.36-0.52; 1-D 2**15-2**19 * 257 0.73-0.98).
    # Calibrated; the defaults keep the model as it was.
    fft_single_factor: float = 0.6
    fft_1d_single_factor: float = 0.6
    # Transforms over three or more axes as a multiple of the 2-D figures above (the
    # calibration's large transform is 2-D): the 3-D passes stride further through memory.
    # AMD EPYC, 1 thread, 'same', 2026-12-04: 64^3-160^3 * 5^3..7^3 ran 1.24-1.32x the 2-D
    # model in float64 and 1.29-1.66x in float32, and the model sent 128^3 * 7^3 float32 at
    # 2 threads to the FFT (20.5 ms) over direct (14.4).  Calibrated on 96^3 * 5^3 float64;
    # the default keeps the model as it was.
    fft_3d_factor: float = 1.0
    # Bookkeeping per (row, block, tap) of the direct kernel (collecting the taps of a
    # row, one sweep per group of 8): ~2 ns on the AMD VM; calibrated, as it weighs on
    # short rows swept one by one ('full'/'valid' in 2-D/3-D): 13-23 ns on the Intel Xeon
    # (64^3 * 7^3 'full', 1 thread, 2026-12-02: 31 ms measured, 10.5 modelled at 2 ns).
    direct_tap_ns: float = 2.0
    # The rest of that model (pyconv/_engine/signal_plan.py), not calibrated: the fixed
    # cost of a call besides the arithmetic (checks, allocation, plan): ~5 us direct,
    # ~40 us FFT (its plans, padding and copies); fitted with the figures above on the VM.
    direct_overhead_s: float = 5e-6
    fft_overhead_s: float = 40e-6
    # scipy.fft's workers: the calling thread alone below this many points (the padded
    # transform x the broadcast batch), where handing work to a second worker costs more
    # than it saves (Intel Xeon, 2 threads: 64^2 * 17^2 'same' 0.25 -> 0.39 ms with two
    # workers, 256^2 * 17^2 1.27 -> 1.87, 512^2 * 31^2 6.1 -> 4.2).  Calibrated.
    fft_workers_min_points: int = 1 << 17
    # What each thread past the first adds to the speed of the work it shares (1.0: a
    # second thread halves the time).  The direct kernel's rows split evenly but share
    # the memory bus; scipy.fft's workers split only the other axes' transforms, and the
    # pointwise product, padding and crop around them run on the calling thread.  At 2
    # threads on a 2-core Intel Xeon (2026-12-03), 'same': direct 128^3 * 7^3 float32
    # 84 -> 55 ms (+0.53), FFT 79 -> 67 ms (+0.18); 1024^2 * 9^2 float64 FFT 68 -> 49 ms
    # (+0.39).  The defaults keep the model as it was (the FFT's 1.6x at 2); calibrated
    # at the default thread count (the FFT's on 1024^2 * 9x9: smaller transforms split
    # worse, 512^2 ran level).
    direct_thread_gain: float = 1.0
    fft_thread_gain: float = 0.6

    # --- memory -------------------------------------------------------------------------
    # A new output of at least 4 MiB (NumPy asks for transparent huge pages there) that a
    # team of threads writes next gets its huge pages faulted by the calling thread first,
    # one store each (pyconv._threads.first_touch), where the calibration finds fresh
    # memory faulted about as fast that way as by the team (within 1.25x; new 40 MiB
    # arrays, medians of 5).  An AMD EPYC KVM guest with 2 vCPUs (2026-12-04), 40 MiB: by
    # 2 threads 3-7 ms (46 in one calibration), after one store per huge page 1.8-2.9;
    # right after PyTorch calls had returned memory to the system, 2 threads took 25-70 ms
    # for 25 MiB where one took 2.5-3.5 (the depthwise layer's 2-thread forward and input
    # gradient ran 26-30 ms instead of 3 in 3-4 of 8 processes, in none with the stores
    # first).  Where the team faults faster (more cores, no hypervisor in the way), the
    # team keeps its faults.
    first_touch_serial: bool = False

    # --- plan cache -----------------------------------------------------------------------
    # Plans kept per operation (LRU); a layer stack of a network has far fewer signatures.
    plan_cache_size: int = 512


DEFAULT = Tuning()

class _State(threading.local):
    tuning = None           # class default: no AttributeError (slow) on a thread's first read


_state = _State()


_machine = {"tuning": None}


def active():
    """The :class:`Tuning` the planners use now: an :func:`override` block's, else this
    machine's calibration (loaded from the cache, or measured at first use; the built-in
    :data:`DEFAULT` under ``PYCONV_TUNING=off``)."""
    t = _state.tuning or _machine["tuning"]
    if t is None:
        from pyconv._engine import calibrate
        t = _machine["tuning"] = calibrate.machine_tuning()
    return t


def overridden():
    """The :class:`Tuning` of the :func:`override` block in force in this thread, or None."""
    return _state.tuning


def install(t):
    """Make ``t`` the machine's tuning (what :func:`pyconv.tune` does after measuring)."""
    _machine["tuning"] = t


@contextlib.contextmanager
def override(**values):
    """Run a block with some thresholds replaced (per Python thread).

    Plans are keyed by the tuning in force, so a block never reuses a plan made under
    other values.

    Examples
    --------
    >>> from pyconv._engine import tuning
    >>> with tuning.override(workspace_bytes=1):
    ...     tuning.active().workspace_bytes
    1
    >>> tuning.active().workspace_bytes == tuning.DEFAULT.workspace_bytes
    True
    """
    old = _state.tuning
    # on the machine's tuning once it is known; never triggers a calibration (which
    # itself measures under overrides)
    _state.tuning = dataclasses.replace(_state.tuning or _machine["tuning"] or DEFAULT, **values)
    try:
        yield _state.tuning
    finally:
        _state.tuning = old


@contextlib.contextmanager
def using(t):
    """Run a block under the Tuning ``t`` (one an :func:`override` block made, kept to be
    reused: plans are keyed by the Tuning object, so the same object finds its plans
    again where a new override would plan every call anew)."""
    old = _state.tuning
    _state.tuning = t
    try:
        yield t
    finally:
        _state.tuning = old


# Compile-time constants of the kernels (for reference; changing them means a rebuild):
# - dense_direct.OBW = 8 (PYCONV_OBW): output channels per register block of the dense
#   kernels; 12-wide blocks measured 3-12% slower (1 thread, float32: 19.2 vs 21.5 ms,
#   12.1 vs 12.5, 12.2 vs 13.2 on suite layers a, b, c).  ``dense_min_og`` equals it.
# - signal direct kernel: ~16 KiB of outputs per work item (pyconv._engine.signal_plan.block_len).
