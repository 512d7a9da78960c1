"""Build the Cython kernels of pyconv, with OpenMP where the compiler has it.

Every ``pyconv/_kernels/*.pyx`` becomes one extension module.  The Cython
directives are set once here.  Environment switches:

* Compute kernels are built per instruction-set level (baseline x86-64, AVX2+FMA,
  AVX-512) and the best one the CPU runs is picked at import, so one build (a wheel)
  runs on any x86-64 CPU at full speed.  ``PYCONV_NATIVE=1`` builds one
  ``-march=native`` variant instead; ``PYCONV_PORTABLE=1`` the baseline alone;
  ``PYCONV_VARIANTS=baseline,avx512`` just the listed ones.
* ``PYCONV_BOUNDSCHECK=1`` turns bounds/wraparound checks back on (debugging).
* ``PYCONV_SANITIZE=1`` builds with AddressSanitizer and UndefinedBehaviorSanitizer
  (run with ``LD_PRELOAD`` of the compiler's libasan; see ``.ci/run``).
* ``PYCONV_NO_OPENMP=1`` forces a serial build.
* ``PYCONV_BUILD_ONLY=direct,gemm`` builds only the named modules (development).
* ``PYCONV_DEBUG=1`` keeps debug info and symbols (release builds carry neither).

A kernel whose in-place binary (``pyconv/_kernels/<name>.*.so``) was built from the
same inputs -- its ``.pyx``, every ``.pxd``/``.h`` beside it, this file, the flags,
the Cython/NumPy/SciPy versions and the CPU for ``-march=native`` -- is reused
instead of rebuilt: a second ``pip install -e .`` (for instance with the ``test``
extra) takes seconds instead of a minute.  The digest of those inputs is kept in
``build/pyconv-stamps/``; ``build_ext --force`` (or deleting that folder) rebuilds anyway.
"""
import glob
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
import Cython
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d\n", n);
    return n > 0 ? 0 : 1;
}
"""


def openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None when it is missing.

    We compile *and run* a tiny ``omp parallel`` program: a compiler that accepts
    ``-fopenmp`` but has no runtime (Apple clang) must fall back to a serial build.
    """
    if os.environ.get("PYCONV_NO_OPENMP"):
        return None
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(_PROBE)
        for flag in ("-fopenmp", "-qopenmp", "/openmp"):
            try:
                r = subprocess.run(cc + [flag, src, "-o", exe], capture_output=True, timeout=120)
                if r.returncode == 0 and subprocess.run([exe], capture_output=True, timeout=60).returncode == 0:
                    return [flag], [flag]
            except (OSError, subprocess.SubprocessError):
                continue
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _accepts(flag):
    """True when the C compiler accepts ``flag`` on an empty program."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        r = subprocess.run(cc + [flag, "-c", src, "-o", os.path.join(tmp, "t.o")], capture_output=True, timeout=60)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Modules without hot loops, built once; every other kernel module is built once per
# instruction-set level (``<name>__<variant>``) and pyconv/_kernels/__init__.py imports
# the best variant the CPU supports under the plain name.
GLUE = {"_pyconv_omp", "_pool"}
# x86-64 levels: v3 = AVX2 + FMA (Haswell, Zen 1 on), v4 = AVX-512 F/BW/CD/DQ/VL
# (Skylake-SP, Ice Lake, Zen 4 on).  The baseline runs on any x86-64 CPU.
X86_VARIANTS = [("avx2", ["-march=x86-64-v3"]), ("avx512", ["-march=x86-64-v4"])]


def isa_variants():
    """[(variant, compiler flags)] to build.

    Default: the baseline plus every x86-64 level the compiler knows (a wheel that
    runs anywhere at full speed).  ``PYCONV_NATIVE=1``: one ``-march=native`` variant
    for the building machine only.  ``PYCONV_PORTABLE=1``: the baseline alone.
    ``PYCONV_VARIANTS=baseline,avx512``: just those (faster development builds).
    """
    if os.environ.get("PYCONV_NATIVE") and sys.platform != "win32" and _accepts("-march=native"):
        return [("native", ["-march=native"])]
    out = [("baseline", [])]
    if (not os.environ.get("PYCONV_PORTABLE") and sys.platform != "win32"
            and platform.machine().lower() in ("x86_64", "amd64")):
        out += [(v, f) for v, f in X86_VARIANTS if _accepts(f[0])]
    pick = {v for v in os.environ.get("PYCONV_VARIANTS", "").split(",") if v}
    return [vf for vf in out if not pick or vf[0] in pick] or out[:1]


def _variant_source(pyx, name, variant):
    """A copy of ``pyx`` named for its variant (Cython names the module after the file),
    under build/; rewritten only when the source changed, so unchanged variants are
    not re-cythonized."""
    d = os.path.join("build", "isa_src")
    os.makedirs(d, exist_ok=True)
    dst = os.path.join(d, f"{name}__{variant}.pyx")
    with open(pyx, "rb") as f:
        src = f.read()
    try:
        with open(dst, "rb") as f:
            same = f.read() == src
    except OSError:
        same = False
    if not same:
        with open(dst, "wb") as f:
            f.write(src)
    return dst


def extensions():
    flags = openmp_flags()
    if flags is None:
        warnings.warn(
            "\n\n*** pyconv: the C compiler has no working OpenMP; building SERIAL kernels. ***\n"
            "*** pyconv.openmp_enabled() will return False and every call runs on 1 thread. ***\n",
            stacklevel=1,
        )
        compile_args, link_args = [], []
    else:
        compile_args, link_args = flags
    opt = ["-O3"] if sys.platform != "win32" else ["/O2"]
    san = []
    if os.environ.get("PYCONV_SANITIZE"):
        # -fno-sanitize-recover: a UBSan finding aborts the run instead of scrolling by
        san = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"]
    link = list(link_args)
    if sys.platform != "win32" and not (os.environ.get("PYCONV_DEBUG") or san):
        # Python's own CFLAGS carry -g: a release build drops the debug info (-g0, last
        # flag wins) and, on Linux, the symbol table (-s): 1/3 of each .so's size.
        opt.append("-g0")
        if sys.platform.startswith("linux"):
            link.append("-s")
    # Per-module extra flags.  ndimage reproduces scipy.ndimage's double arithmetic
    # bit for bit (integer outputs truncate, so one rounding can change a result):
    # no contraction of a*b + c into an FMA there, in any variant.
    extra = {"ndimage": ["-ffp-contract=off"]} if sys.platform != "win32" else {}
    only = {m for m in os.environ.get("PYCONV_BUILD_ONLY", "").split(",") if m}
    common = dict(include_dirs=[np.get_include(), os.path.join("pyconv", "_kernels")],
                  # the C micro-kernels the .pyx files include (a change rebuilds them)
                  depends=sorted(glob.glob(os.path.join("pyconv", "_kernels", "*.h"))),
                  define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("CYTHON_CCOMPLEX", "0")],
                  extra_link_args=link + san)
    exts = []
    for pyx in sorted(glob.glob(os.path.join("pyconv", "_kernels", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        if name in GLUE:
            exts.append(Extension(f"pyconv._kernels.{name}", [pyx], extra_compile_args=opt + compile_args + san,
                                  **common))
            continue
        for variant, flags in isa_variants():
            exts.append(Extension(f"pyconv._kernels.{name}__{variant}", [_variant_source(pyx, name, variant)],
                                  extra_compile_args=opt + flags + compile_args + san + extra.get(name, []),
                                  **common))
    checks = bool(os.environ.get("PYCONV_BOUNDSCHECK"))
    directives = {
        "language_level": 3,
        "boundscheck": checks,
        "wraparound": checks,
        "initializedcheck": checks,
        "cdivision": True,
        "embedsignature": True,
    }
    env = {"PYCONV_OPENMP": flags is not None}
    stale = []
    for ext in exts:
        DIGESTS[ext.name] = _digest(ext, (directives, env))
        if not FORCE and _reusable(ext.name):
            REUSED.add(ext.name)    # not cythonized: build_ext copies the binary instead
        else:
            stale.append(ext)
    # forced: a stale digest may come from flags or directives, which timestamps miss
    built = cythonize(stale, compiler_directives=directives, compile_time_env=env, force=True,
                      nthreads=int(os.environ.get("PYCONV_CYTHON_JOBS", "0")) or None) if stale else []
    return [e for e in exts if e.name in REUSED] + built


# --------------------------------------------------------------------------- reuse of up-to-date binaries

STAMPS = os.path.join("build", "pyconv-stamps")
DIGESTS = {}        # extension name -> digest of everything its binary depends on
REUSED = set()      # extensions whose in-place binary is up to date
FORCE = any(a in ("--force", "-f") for a in sys.argv)     # build_ext --force rebuilds all


def _inplace_path(name):
    return os.path.join(*name.split(".")) + sysconfig.get_config_var("EXT_SUFFIX")


def _cpu():
    # -march=native binaries belong to the CPU that built them
    try:
        with open("/proc/cpuinfo") as f:
            return [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        return platform.processor()


def _version(module):
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def _digest(ext, settings):
    h = hashlib.sha256()
    kernels = os.path.join("pyconv", "_kernels")
    paths = ext.sources + sorted(glob.glob(os.path.join(kernels, "*.pxd")) + glob.glob(os.path.join(kernels, "*.h")))
    for path in paths + ["setup.py"]:
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + f.read() + b"\0")
    h.update(repr((ext.extra_compile_args, ext.extra_link_args, ext.define_macros, settings, Cython.__version__,
                   np.__version__, _version("scipy"), sys.version, sysconfig.get_config_var("EXT_SUFFIX"),
                   os.environ.get("CC"), sysconfig.get_config_var("CC"), _cpu())).encode())
    return h.hexdigest()


def _file_sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _reusable(name):
    """True when the in-place binary of ``name`` was built from exactly today's inputs."""
    binary, stamp = _inplace_path(name), os.path.join(STAMPS, name + ".json")
    try:
        with open(stamp) as f:
            saved = json.load(f)
        return saved["inputs"] == DIGESTS[name] and saved["binary"] == _file_sha(binary)
    except (OSError, ValueError, KeyError):
        return False


class build_ext(_build_ext):
    """setuptools' build_ext, which copies up-to-date in-place binaries instead of
    compiling them, and records the inputs of what it built in place."""

    def build_extension(self, ext):
        if ext.name in REUSED:
            dest = self.get_ext_fullpath(ext.name)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(_inplace_path(ext.name), dest)
            print(f"pyconv: {ext.name} is up to date ({_inplace_path(ext.name)}), not rebuilt")
            return
        super().build_extension(ext)

    def run(self):
        self.force = True       # what reaches the compiler is stale by its digest (see above)
        super().run()
        if self.inplace:        # `build_ext --inplace` and editable installs: remember the inputs
            os.makedirs(STAMPS, exist_ok=True)
            for ext in self.extensions:
                binary = _inplace_path(ext.name)
                if ext.name in DIGESTS and os.path.exists(binary):
                    with open(os.path.join(STAMPS, ext.name + ".json"), "w") as f:
                        json.dump({"inputs": DIGESTS[ext.name], "binary": _file_sha(binary)}, f)


os.chdir(HERE)
# build_ext -j: the variants of the modules compile side by side
setup(ext_modules=extensions(), cmdclass={"build_ext": build_ext},
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
