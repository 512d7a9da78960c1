"""Route dask arrays given to pyconv's in-memory functions to :mod:`pyconv.dask`.

Without this, ``pyconv.convolve(dask_volume, k)`` would pass the dask array to
``numpy.asarray`` and silently compute the whole volume into the caller's memory.
Each public module ends with one call, :func:`route_dask_inputs`, which wraps its
public functions: a wrapped function returns the lazy ``pyconv.dask`` result when
one of its arguments is a dask collection, raises a ``TypeError`` naming what to do
when pyconv.dask has no version of it, and otherwise calls the function unchanged.

The check costs one dict lookup when dask has not been imported (``"dask" in
sys.modules``): a non-dask caller never imports dask.  When dask is loaded it also
looks up the type of each argument in a set of known non-dask types.  Measured on the
2-core AMD EPYC (shared, medians): the wrapper adds 0.2-0.4 us per call without dask imported and
0.6-0.7 us with dask imported and four numpy/str arguments.
"""
import functools
import importlib
import sys
import types

from pyconv import _memory

__all__ = ["route_dask_inputs", "dask_argument", "ROUTES"]

# public module -> {function name -> name in pyconv.dask}.  A function of these
# modules that is missing here has no dask version: a dask argument makes it raise.
# pyconv.ndimage's entries go under "ndimage" with targets "ndimage.<name>"
# (pyconv.dask.ndimage.<name>: ndimage's convolve/correlate differ from signal's).
ROUTES = {
    "signal": {n: n for n in ("convolve", "correlate", "convolve2d", "correlate2d", "fftconvolve",
                              "oaconvolve", "sepconvolve2d")},
    "nn": {n: n for n in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                          "conv_transpose3d", "depthwise_conv2d", "separable_conv2d", "pointwise_conv2d")},
    "grad": {n: n for n in ("conv1d_backward", "conv2d_backward", "conv3d_backward")},
    "ndimage": {n: f"ndimage.{n}" for n in (
        "convolve", "correlate", "convolve1d", "correlate1d", "gaussian_filter", "gaussian_filter1d",
        "uniform_filter", "uniform_filter1d", "sobel", "prewitt", "laplace", "gaussian_laplace",
        "gaussian_gradient_magnitude")},
}


# Types seen without dask's collection protocol (numpy arrays, lists, str, numbers):
# one set lookup per argument instead of a failing attribute lookup (~0.5 us each).
_PLAIN_TYPES = set()


def dask_argument(args, kwargs):
    """The first argument that is a dask collection, else None."""
    for group in (args, kwargs.values()):
        for a in group:
            t = type(a)
            if t in _PLAIN_TYPES:
                continue
            if getattr(t, "__dask_graph__", None) is None:
                if len(_PLAIN_TYPES) < 256:
                    _PLAIN_TYPES.add(t)
                continue
            from dask import is_dask_collection
            if is_dask_collection(a):
                return a
    return None


def _target(module, name):
    dotted = ROUTES.get(module, {}).get(name)
    if dotted is None:
        return None
    obj = importlib.import_module("pyconv.dask")
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _wrap(func, module, namespace):
    name = func.__name__
    modules = sys.modules
    find, target_of, dask_error = dask_argument, _target, _no_dask_version
    pooled = _memory.call

    def wrapper(*args, **kwargs):
        if "dask" in modules and find(args, kwargs) is not None:
            target = target_of(module, name)
            if target is None:
                raise dask_error(module, name)
            return target(*args, **kwargs)
        # the call's arrays come from pyconv's memory pool (pyconv/_memory.py)
        return pooled(func, args, kwargs)

    # The wrapper is rebuilt with the wrapped module's globals (it reads only its
    # closure) and the function's name on its code, so doctest, inspect, tracebacks and
    # the verbose log (which names the outermost public frame) see that module's function.
    code = wrapper.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=name)
    routed = types.FunctionType(code, namespace, name, None, wrapper.__closure__)
    functools.update_wrapper(routed, func)
    routed.__dask_routed__ = True
    return routed


def _no_dask_version(module, name):
    return TypeError(
        f"pyconv.{module}.{name} has no dask version and will not compute a dask array into "
        f"memory silently: pass numpy arrays (e.g. x.compute() when it fits in memory); "
        f"pyconv.dask provides {', '.join(sorted(ROUTES.get(module, {}))) or 'nothing'} "
        f"for pyconv.{module}")


def route_dask_inputs(namespace, names, module):
    """Wrap the functions ``names`` of a module's ``namespace`` (its ``globals()``) in place.

    ``module`` is the public module's short name (``'signal'``, ``'nn'``, ``'grad'``, ``'ndimage'``).
    Names, docstrings and signatures are kept (``functools.wraps``).
    """
    for name in names:
        func = namespace.get(name)
        if callable(func) and getattr(func, "__module__", None) == f"pyconv.{module}" \
                and not getattr(func, "__dask_routed__", False):
            namespace[name] = _wrap(func, module, namespace)
