"""Compiled Cython kernels of pyconv (internal; the public API is pyconv.signal/nn/grad).

Every compute module is built once per instruction-set variant, as
``<name>__<variant>`` (``baseline``: any x86-64 CPU; ``avx2``: x86-64-v3, AVX2 + FMA;
``avx512``: x86-64-v4; ``native``: a ``PYCONV_NATIVE=1`` build for the building
machine).  At import the best variant this CPU runs is loaded under the plain name,
so ``from pyconv._kernels import direct`` gives it.  ``PYCONV_ISA=<variant>`` picks
another one this CPU runs (for comparisons); :func:`load_variant` loads any of them
side by side (the tests compare them).
"""
import importlib
import os
import pkgutil
import sys

from pyconv._kernels import _pyconv_omp

ORDER = ("native", "avx512", "avx2", "baseline")   # best first


def _built():
    """{variant: set of module names} of the variants this installation has."""
    found = {}
    for m in pkgutil.iter_modules(__path__):
        name, sep, variant = m.name.rpartition("__")
        if sep and variant in ORDER:
            found.setdefault(variant, set()).add(name)
    return found


BUILT = _built()
#: the built variants this CPU runs, best first
SUPPORTED = tuple(v for v in ORDER if v in BUILT and _pyconv_omp.cpu_runs(v))


def _choose():
    if not SUPPORTED:
        raise ImportError("pyconv's compiled kernels are missing (build them with `pip install .` or "
                          "`python setup.py build_ext --inplace`)")
    want = os.environ.get("PYCONV_ISA", "").strip()
    if not want:
        return SUPPORTED[0]
    if want not in SUPPORTED:
        raise ImportError(f"PYCONV_ISA={want!r}: this build and CPU offer {', '.join(SUPPORTED)}")
    return want


#: the variant in use
VARIANT = _choose()


def load_variant(variant):
    """{module name: module} of one built variant this CPU runs (imported, not installed
    under the plain names)."""
    if variant not in SUPPORTED:
        raise ValueError(f"variant={variant!r} is not one of the built variants this CPU runs: {SUPPORTED}")
    return {name: importlib.import_module(f"{__name__}.{name}__{variant}") for name in sorted(BUILT[variant])}


for _name, _mod in load_variant(VARIANT).items():
    sys.modules[f"{__name__}.{_name}"] = _mod
    globals()[_name] = _mod
del _name, _mod
