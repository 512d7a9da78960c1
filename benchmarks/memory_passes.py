"""What one pass over a layer's memory costs on this machine, at 1 thread: the figures behind
the two gaps the suites leave where pyconv's arithmetic already runs near the FMA peak
(issue 10): the 1x1 layer c at 1 thread and the depthwise layer d.

It compiles a small C program (the compiler that builds pyconv, the flags of the kernel
variant in use, as ``fma_peak.py``) and runs, on 8x256x56x56 float32 (25.7 MB, the input of
layers c and d), rounds that alternate:

* ``pass, stores``: read every value, add 1, store it to a second array with ordinary
  vector stores (each destination line is first read for ownership);
* ``pass, streaming stores``: the same with non-temporal stores (AVX-512 / AVX builds
  only): the destination lines are written without being read;
* ``memcpy``: the C library's copy of the same bytes;
* ``1x1 c: pack + tiles``: the forward of ``panel.pyx`` on layer c (256 -> 64 channels),
  its chunks of 480 positions packed into stripes (``pyconv_pw_pack_f``), then the
  register tiles (``pyconv_pw_mk_f``) of each block of 8 output channels over them;
* ``1x1 c: tiles only``: the same tiles on stripes packed once (no pack per chunk): what
  the layer would take if the pack cost nothing;
* ``1x1 c: pack, source in L2``: the pack alone, every chunk from the same 480 positions
  (its source stays in L2): the copy's own cost, without the trip from memory.

Medians of the rounds (the calling thread's wall time; a shared VM's core speed moves
between rounds, alternating keeps the comparison fair).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/memory_passes.py [rounds]
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fma_peak import build  # noqa: E402

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyconv", "_kernels", "panel_kernels.h")

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stddef.h>
typedef ptrdiff_t Py_ssize_t;
#include "HEADER"
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
enum { N = 8, C = 256, O = 64, P = 3136, CHUNK = 480 };
static float *x, *y, *out, *wpk, *stripes;
static double pass(int streaming) {
    size_t n = (size_t)N * C * P;
    double t = now();
#if defined(__AVX512F__)
    if (streaming) { for (size_t i = 0; i < n; i += 16) _mm512_stream_ps(y + i, _mm512_add_ps(_mm512_load_ps(x + i), _mm512_set1_ps(1))); _mm_sfence(); }
    else for (size_t i = 0; i < n; i += 16) _mm512_store_ps(y + i, _mm512_add_ps(_mm512_load_ps(x + i), _mm512_set1_ps(1)));
#elif defined(__AVX__)
    if (streaming) { for (size_t i = 0; i < n; i += 8) _mm256_stream_ps(y + i, _mm256_add_ps(_mm256_load_ps(x + i), _mm256_set1_ps(1))); _mm_sfence(); }
    else for (size_t i = 0; i < n; i += 8) _mm256_store_ps(y + i, _mm256_add_ps(_mm256_load_ps(x + i), _mm256_set1_ps(1)));
#else
    if (streaming) return 0.0;
    for (size_t i = 0; i < n; i++) y[i] = x[i] + 1;
#endif
    return now() - t;
}
static double copy(void) { double t = now(); memcpy(y, x, sizeof(float) * N * C * P); return now() - t; }
/* mode 0: pack + tiles, 1: tiles on stripes packed once, 2: the pack alone from one chunk */
static double panel(int mode) {
    const int nr = PYCONV_PW_NRF, mr = PYCONV_PW_MR, nob = O / mr, nch = (P + CHUNK - 1) / CHUNK;
    float tmp[PYCONV_PW_MR * PYCONV_PW_NRF];
    double t = now();
    for (int u = 0; u < N * nch; u++) {
        int n = u / nch, p0 = (u % nch) * CHUNK, pn = P - p0 < CHUNK ? P - p0 : CHUNK, ns = (pn + nr - 1) / nr;
        if (mode == 2) { pyconv_pw_pack_f(x, P, C, CHUNK, stripes); continue; }
        if (mode == 0) pyconv_pw_pack_f(x + (size_t)n * C * P + p0, P, C, pn, stripes);
        for (int ob = 0; ob < nob; ob++)
            for (int s = 0; s < ns; s++) {
                int full = pn - s * nr >= nr;
                pyconv_pw_mk_f(wpk + ob * C * mr, stripes + (size_t)s * C * nr, C,
                               full ? out + (size_t)n * O * P + (size_t)ob * mr * P + p0 + s * nr : tmp, full ? P : nr, NULL);
            }
    }
    return now() - t;
}
int main(void) {
    size_t n = (size_t)N * C * P;
    x = aligned_alloc(64, sizeof(float) * n); y = aligned_alloc(64, sizeof(float) * n);
    out = aligned_alloc(64, sizeof(float) * N * O * P); wpk = aligned_alloc(64, sizeof(float) * O * C);
    stripes = aligned_alloc(64, sizeof(float) * (CHUNK + 64) * C);
    for (size_t i = 0; i < n; i++) { x[i] = (float)(i % 7) * 0.1f; y[i] = 0; }
    for (size_t i = 0; i < (size_t)N * O * P; i++) out[i] = 0;
    for (int i = 0; i < O * C; i++) wpk[i] = (float)(i % 5) * 0.01f;
    pyconv_pw_pack_f(x, P, C, CHUNK, stripes);
    double a = pass(0), b = pass(1), c = copy(), d = panel(0), e = panel(1), f = panel(2);
    printf("%.4f %.4f %.4f %.4f %.4f %.4f\n", a * 1e3, b * 1e3, c * 1e3, d * 1e3, e * 1e3, f * 1e3);
    return 0;
}
"""

NAMES = ["pass, stores", "pass, streaming stores", "memcpy", "1x1 c: pack + tiles", "1x1 c: tiles only",
         "1x1 c: pack, source in L2"]


def main(rounds=9):
    from pyconv import _config, _kernels
    variant = _kernels.VARIANT
    exe = build(variant, SOURCE, HEADER)
    rows = np.array([[float(v) for v in subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()]
                     for _ in range(rounds)])
    print(f"cpu: {_config.config().get('cpu')}   variant: {variant}   1 thread, 8x256x56x56 float32 (25.7 MB), "
          f"ms, {rounds} rounds")
    for i, name in enumerate(NAMES):
        if rows[:, i].max() > 0:
            print(f"  {name:28s} median {np.median(rows[:, i]):7.2f}   best {rows[:, i].min():7.2f}")
    gf = 2.0 * 8 * 64 * 256 * 3136 / 1e6
    print(f"  1x1 c GFLOP/s: pack + tiles {gf / np.median(rows[:, 3]):.1f}, tiles only {gf / np.median(rows[:, 4]):.1f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
