"""What one core of this machine can do: its measured FMA peak, pyconv's dense_oc register
tile on data in L1, and OpenBLAS SGEMM, side by side.

The percentages the nn suite prints are against SGEMM measured in the same run; this
script says how SGEMM and pyconv's own micro-kernel stand against the FMA units.  It
compiles a small C program (the C compiler that builds pyconv) with the flags of the
kernel variant in use and runs it:

* ``fma peak``: 8, 12 and 16 independent FMA chains on registers (inline assembly, so the
  compiler cannot merge them; vector width of the variant: zmm for avx512, ymm for avx2).
  A peak derived from the core count and a datasheet assumes two 512-bit FMA units per
  core; this measures what the core runs.
* ``dense_oc tile``: ``pyconv_oc_rowp_f`` of ``pyconv/_kernels/dense_kernels.h`` (the
  forward's register tile, P positions x 2 vectors of output channels) over one row of
  56 positions, 3x3 taps, ``nc`` input channels whose weights and rows stay in L1/L2.
* ``sgemm``: numpy.matmul 2048^3 float32 at 1 thread.

Rounds alternate the three, medians and best are printed: on a shared 2-core VM the
speed of a core moves by up to 1.4x within seconds (another guest on the same core).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/fma_peak.py
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "pyconv", "_kernels", "dense_kernels.h")
FLAGS = {"avx512": ["-march=x86-64-v4"], "avx2": ["-march=x86-64-v3"], "native": ["-march=native"], "baseline": []}

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
typedef long Py_ssize_t;
#include "HEADER"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#if defined(__AVX512F__)
#define R "zmm"
#define LANES 16
#elif defined(__AVX2__)
#define R "ymm"
#define LANES 8
#endif
#ifdef R
#define F(i) "vfmadd231ps %%" R "30, %%" R "31, %%" R #i "\n\t"
static double chains(int k) {
    long n = 20000000; double t;
    __asm__ volatile("vxorps %%xmm0, %%xmm0, %%xmm0\n\t" ::: "memory");
#define Z(i) __asm__ volatile("vxorps %%xmm" #i ", %%xmm" #i ", %%xmm" #i "\n\t" ::: "memory");
    Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(12) Z(13) Z(14) Z(15) Z(30) Z(31)
    t = now();
    if (k == 8) for (long i = 0; i < n; i++) __asm__ volatile(F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) ::: "memory");
    else if (k == 12) for (long i = 0; i < n; i++)
        __asm__ volatile(F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) ::: "memory");
    else for (long i = 0; i < n; i++)
        __asm__ volatile(F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) F(12) F(13) F(14) F(15) ::: "memory");
    t = now() - t;
    return 2.0 * LANES * k * n / t / 1e9;
}
#else
static double chains(int k) { (void)k; return 0.0; }
#endif
static double tile(long nc) {
    long ntaps = 9, W = 58, cs = 3 * W + 16, reps = 400;
    float *x = aligned_alloc(64, (nc * cs + 64) * 4), *w = aligned_alloc(64, nc * ntaps * 64 * 4);
    float *o = aligned_alloc(64, 64 * 64 * 4);
    for (long i = 0; i < nc * cs + 64; i++) x[i] = (float)(i % 7) * 0.1f;
    for (long i = 0; i < nc * ntaps * 64; i++) w[i] = (float)(i % 5) * 0.01f;
    Py_ssize_t toffs[9];
    for (int a = 0; a < 3; a++) for (int b = 0; b < 3; b++) toffs[a * 3 + b] = a * W + b;
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t = now();
        for (long k = 0; k < reps; k++)
            pyconv_oc_rowp_f(x, cs, 1, 0, toffs, ntaps, nc, w, ntaps * 2 * PYCONV_OC_VLF, o, 2 * PYCONV_OC_VLF, 0, 56,
                             1, 1, 0, NULL, 0, 0);
        t = now() - t;
        if (t < best) best = t;
    }
    double gf = 2.0 * 56 * 2 * PYCONV_OC_VLF * nc * ntaps * reps / best / 1e9;
    free(x); free(w); free(o);
    return gf;
}
int main(void) {
    printf("%.2f %.2f %.2f %.2f %.2f\n", chains(8), chains(12), chains(16), tile(8), tile(17));
    return 0;
}
"""


def build(variant, source=SOURCE, header=HEADER):
    """Compile ``source`` (its ``HEADER`` replaced by the path of ``header``) with the flags
    of the kernel variant ``variant``; the executable's path."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if not shutil.which(cc):
        cc = "cc"
    d = tempfile.mkdtemp()
    src, exe = os.path.join(d, "peak.c"), os.path.join(d, "peak")
    with open(src, "w") as f:
        f.write(source.replace("HEADER", os.path.abspath(header)))
    subprocess.run([cc, "-O3", *FLAGS.get(variant, []), src, "-o", exe], check=True)
    return exe


def sgemm_gflops():
    from threadpoolctl import threadpool_limits
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    with threadpool_limits(1, "blas"):
        a @ a
        t = time.perf_counter()
        a @ a
        return 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9


def main(rounds=7):
    from pyconv import _config, _kernels
    variant = _kernels.VARIANT
    exe = build(variant)
    rows = []
    for _ in range(rounds):
        vals = [float(v) for v in subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split()]
        rows.append(vals + [sgemm_gflops()])
    rows = np.array(rows)
    names = ["fma peak, 8 chains", "fma peak, 12 chains", "fma peak, 16 chains",
             "dense_oc tile, 8 channels", "dense_oc tile, 17 channels", "OpenBLAS SGEMM 2048^3"]
    print(f"cpu: {_config.config().get('cpu')}   variant: {variant}   1 thread, GFLOP/s float32, {rounds} rounds")
    peak = np.median(rows[:, :3].max(axis=1))
    for i, name in enumerate(names):
        med, best = np.median(rows[:, i]), rows[:, i].max()
        share = f"  {100 * med / peak:5.1f}% of the fma peak" if peak > 0 and i >= 3 else ""
        print(f"  {name:28s} median {med:7.1f}   best {best:7.1f}{share}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
