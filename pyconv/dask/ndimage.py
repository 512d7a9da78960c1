"""scipy.ndimage's convolution filters (:mod:`pyconv.ndimage`) on dask arrays: lazy, chunk by chunk.

Kinds of convolution
--------------------
=====================================  ===============================================
N-d correlation / convolution          :func:`correlate`, :func:`convolve`
1-D along one axis                     :func:`correlate1d`, :func:`convolve1d`
Gaussian (spatially separable)         :func:`gaussian_filter`, :func:`gaussian_filter1d`
box / moving average (separable)       :func:`uniform_filter`, :func:`uniform_filter1d`
derivatives (separable)                :func:`sobel`, :func:`prewitt`
second derivatives                     :func:`laplace`, :func:`gaussian_laplace`
gradient magnitude                     :func:`gaussian_gradient_magnitude`
=====================================  ===============================================

Namespace: this module holds all thirteen.  Eleven of them are also
``pyconv.dask.<name>`` (the same function objects: ``pyconv.dask.sobel is
pyconv.dask.ndimage.sobel``); ``convolve`` and ``correlate`` are not, because
``pyconv.dask.convolve``/``correlate`` are :mod:`pyconv.signal`'s (``mode='full'``,
'same', 'valid'; no ``origin``): ndimage's are only ``pyconv.dask.ndimage.convolve``
and ``pyconv.dask.ndimage.correlate``.

Each function takes the arguments of the :mod:`pyconv.ndimage` function of the same
name; ``input`` is a ``dask.array.Array`` of any chunking (weights stay in memory),
and the result is a lazy array with ``input``'s chunks (those smaller than the
filter's reach are merged with a neighbour first).  A dask array passed to
``pyconv.ndimage.<name>`` comes here.  ``output=`` may name a dtype; an array to
write into is refused (``TypeError``): store the lazy result instead (``da.store``,
``to_zarr``).

Each output chunk reads its chunk plus a halo of the filter's reach
(``pyconv.ndimage._halo``), extended at the array's edges by ``mode`` as in memory
(along a 'constant' axis the block ends at the array's edge and the in-memory
filter pads it with ``cval``), runs the in-memory filter on it and keeps its own
part.  The result is the in-memory result on the computed array, bitwise, except
for the uniform filters on float data: their running sum starts over at each
block, so they agree within its rounding (bitwise on integer data).
"""
import numpy as np

import pyconv.ndimage as _nd
from pyconv.dask import _big, _footprint_map, _small, _whole

__all__ = list(_nd.__all__)      # every pyconv.ndimage function


def _per_axis_modes(name, ndim, kw):
    """The ndimage mode of each input axis (axes a filter leaves alone keep 'reflect': no halo)."""
    mode = kw["mode"]
    if isinstance(mode, str):
        return [mode] * ndim
    if name in ("sobel", "prewitt"):        # one mode per input axis
        return list(mode)
    axes = _nd._check_axes(kw.get("axes"), ndim)
    full = ["reflect"] * ndim
    for ax, m in zip(axes, mode):
        full[ax] = m
    return full


def _add_terms(*terms):
    out = terms[0].copy()
    for t in terms[1:]:
        out += t
    return out


def _magnitude(*terms):
    out = np.multiply(terms[0], terms[0])
    for t in terms[1:]:
        out += np.multiply(t, t)
    np.sqrt(out, out, casting="unsafe")
    return out


def _filter(name, input, kw):
    """The dask version of ``pyconv.ndimage.<name>(input, **kw)``."""
    fn = getattr(_nd, name)
    x = _big(input, "input")
    output = kw.get("output")
    if output is not None and not isinstance(output, (type, np.dtype, str)):
        raise TypeError(f"output= as an array is not supported for a dask input (the result is lazy, it "
                        f"cannot be written in place); got {type(output).__name__}: pass output as a dtype "
                        f"(e.g. output=np.float32) and store the result (dask.array.store, to_zarr)")
    if "weights" in kw:
        kw["weights"] = _small(kw["weights"], "weights")
    # validates every argument as the in-memory function does, and gives the result's dtype
    probe = fn(np.zeros((1,) * x.ndim, x.dtype), **kw)
    if x.ndim == 0 or x.size == 0:           # nothing to split
        return _whole(fn, (x,), kw, np.empty(x.shape, probe.dtype), name)
    halo = _nd._halo(name, x.ndim, **kw)
    before, after = [h[0] for h in halo], [h[1] for h in halo]
    mode = kw["mode"]
    if name in ("gaussian_laplace", "gaussian_gradient_magnitude") and not isinstance(mode, str):
        if len(set(mode)) > 1:
            return _gaussian_terms(name, x, kw, before, after, probe.dtype)
        mode = mode[0] if len(mode) else "reflect"   # one mode for every term: every axis
    modes = _per_axis_modes(name, x.ndim, dict(kw, mode=mode))
    return _footprint_map(fn, x, before, after, modes, kw["cval"], probe.dtype, kw, name)


def _gaussian_terms(name, x, kw, before, after, dtype):
    """gaussian_laplace / gaussian_gradient_magnitude with a different mode per term.

    Term ``i`` (the derivative along ``axes[i]``) extends *every* axis by ``mode[i]``, so
    no single halo holds them all: each term is its own lazy Gaussian filter, and the
    terms are combined per chunk as the in-memory function combines them (in the output
    dtype, in the same order).
    """
    extra = {k: v for k, v in kw.items() if k not in ("sigma", "output", "mode", "cval", "axes")}
    axes = _nd._check_axes(kw.get("axes"), x.ndim)
    sigma = kw["sigma"]
    if name == "gaussian_laplace":
        sig = _nd._normalize_sequence(sigma, len(axes), "sigma")
        sigma = [0] * x.ndim
        for s, ax in zip(sig, axes):
            sigma[ax] = s
    terms = []
    for ax, m in zip(axes, kw["mode"]):
        order = [0] * x.ndim
        order[ax] = 2 if name == "gaussian_laplace" else 1
        tkw = dict(sigma=sigma, order=order, output=dtype, mode=m, cval=kw["cval"], **extra)
        terms.append(_footprint_map(_nd.gaussian_filter, x, before, after, m, kw["cval"], dtype, tkw, name))
    combine = _add_terms if name == "gaussian_laplace" else _magnitude
    return terms[0].map_blocks(combine, *terms[1:], dtype=dtype, meta=np.empty((0,) * x.ndim, dtype))


_INPUT = """    input : dask.array.Array or array_like
        Lazy, of any chunking (an in-memory array becomes one chunk); chunks smaller
        than the filter's reach are merged with a neighbour."""
_OUTPUT = """    output : dtype or None, optional
        The result's dtype (an array to write into raises ``TypeError``)."""
_RETURNS = """    Returns
    -------
    out : dask.array.Array
        Lazy, ``input``'s shape and chunks, the in-memory function's dtype."""


def correlate1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """:func:`pyconv.ndimage.correlate1d` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    weights : array_like
        1-D weights, in memory.
    axis : int, optional
        The axis to filter; only its chunks read halos.
    {output}
    mode : str, optional
        scipy.ndimage's boundary mode, applied at the array's edges. Default 'reflect'.
    cval : scalar, optional
        The constant of 'constant' mode.
    origin : int, optional
        Shift of the filter centre.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([2, 8, 0, 4, 1, 9, 9, 0]), chunks=3)
    >>> pyconv.dask.ndimage.correlate1d(x, [1, 3]).compute()
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    """
    return _filter("correlate1d", input, dict(weights=weights, axis=axis, output=output, mode=mode, cval=cval,
                                              origin=origin))


def convolve1d(input, weights, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """:func:`pyconv.ndimage.convolve1d` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    weights : array_like
        1-D weights, in memory.
    axis : int, optional
        The axis to filter; only its chunks read halos.
    {output}
    mode : str, optional
        scipy.ndimage's boundary mode, applied at the array's edges. Default 'reflect'.
    cval : scalar, optional
        The constant of 'constant' mode.
    origin : int, optional
        Shift of the filter centre (mirrored, as in memory).

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([2, 8, 0, 4, 1, 9, 9, 0]), chunks=3)
    >>> pyconv.dask.ndimage.convolve1d(x, [1, 3]).compute()
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    return _filter("convolve1d", input, dict(weights=weights, axis=axis, output=output, mode=mode, cval=cval,
                                             origin=origin))


def correlate(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """:func:`pyconv.ndimage.correlate` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    weights : array_like
        In memory, ``input.ndim`` dims (or ``len(axes)``).
    {output}
    mode : str, optional
        scipy.ndimage's boundary mode, applied at the array's edges. Default 'reflect'.
    cval : scalar, optional
        The constant of 'constant' mode.
    origin : int or sequence of int, optional
        Shift of the centre per axis.
    axes : tuple of int or None, optional
        The filtered axes; the others read no halo.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.arange(9).reshape(3, 3), chunks=2)
    >>> pyconv.dask.ndimage.correlate(x, np.ones((2, 2)), mode="constant").compute()
    array([[ 0,  1,  3],
           [ 3,  8, 12],
           [ 9, 20, 24]])
    """
    return _filter("correlate", input, dict(weights=weights, output=output, mode=mode, cval=cval, origin=origin,
                                            axes=axes))


def convolve(input, weights, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """:func:`pyconv.ndimage.convolve` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    weights : array_like
        In memory, ``input.ndim`` dims (or ``len(axes)``).
    {output}
    mode : str, optional
        scipy.ndimage's boundary mode, applied at the array's edges. Default 'reflect'.
    cval : scalar, optional
        The constant of 'constant' mode.
    origin : int or sequence of int, optional
        Shift of the centre per axis (mirrored, as in memory).
    axes : tuple of int or None, optional
        The filtered axes; the others read no halo.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.arange(5.0), chunks=2)
    >>> pyconv.dask.ndimage.convolve(x, [1, 2, 1], mode="constant").compute()
    array([ 1.,  4.,  8., 12., 11.])
    """
    return _filter("convolve", input, dict(weights=weights, output=output, mode=mode, cval=cval, origin=origin,
                                           axes=axes))


def gaussian_filter1d(input, sigma, axis=-1, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, *,
                      radius=None):
    """:func:`pyconv.ndimage.gaussian_filter1d` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    sigma : scalar
        Standard deviation of the Gaussian.
    axis : int, optional
        The axis to filter; its chunks read halos of ``int(truncate * sigma + 0.5)``.
    order : int, optional
        Derivative order.
    {output}
    mode : str, optional
        scipy.ndimage's boundary mode, applied at the array's edges. Default 'reflect'.
    cval : scalar, optional
        The constant of 'constant' mode.
    truncate : float, optional
        Reach in standard deviations. Default 4.0.
    radius : int or None, optional
        The reach, overriding ``truncate``.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), chunks=2)
    >>> pyconv.dask.ndimage.gaussian_filter1d(x, 1).compute()
    array([1.42704095, 2.06782203, 3.        , 3.93217797, 4.57295905])
    """
    return _filter("gaussian_filter1d", input, dict(sigma=sigma, axis=axis, order=order, output=output, mode=mode,
                                                    cval=cval, truncate=truncate, radius=radius))


def gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0, *, radius=None,
                    axes=None):
    """:func:`pyconv.ndimage.gaussian_filter` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    sigma : scalar or sequence of scalars
        Standard deviation per filtered axis.
    order : int or sequence of ints, optional
        Derivative order per axis.
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (per axis), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.
    truncate : float, optional
        Reach in standard deviations. Default 4.0.
    radius : int, sequence of int or None, optional
        The reach per axis, overriding ``truncate``.
    axes : tuple of int or None, optional
        The filtered axes; the others read no halo.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.arange(50, step=2).reshape((5, 5)), chunks=2)
    >>> pyconv.dask.ndimage.gaussian_filter(x, sigma=1).compute()
    array([[ 4,  6,  8,  9, 11],
           [10, 12, 14, 15, 17],
           [20, 22, 24, 25, 27],
           [29, 31, 33, 34, 36],
           [35, 37, 39, 40, 42]])
    """
    return _filter("gaussian_filter", input, dict(sigma=sigma, order=order, output=output, mode=mode, cval=cval,
                                                  truncate=truncate, radius=radius, axes=axes))


def uniform_filter1d(input, size, axis=-1, output=None, mode="reflect", cval=0.0, origin=0):
    """:func:`pyconv.ndimage.uniform_filter1d` of a dask ``input`` (lazy).

    On float data equal to the in-memory result within the running sum's rounding
    (it restarts at each block); bitwise on integer data.

    Parameters
    ----------
    {input}
    size : int
        Length of the box.
    axis : int, optional
        The axis to filter; only its chunks read halos.
    {output}
    mode : str, optional
        scipy.ndimage's boundary mode, applied at the array's edges. Default 'reflect'.
    cval : scalar, optional
        The constant of 'constant' mode.
    origin : int, optional
        Shift of the filter centre.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([2, 8, 0, 4, 1, 9, 9, 0]), chunks=3)
    >>> pyconv.dask.ndimage.uniform_filter1d(x, size=3).compute()
    array([4, 3, 4, 1, 4, 6, 6, 3])
    """
    return _filter("uniform_filter1d", input, dict(size=size, axis=axis, output=output, mode=mode, cval=cval,
                                                   origin=origin))


def uniform_filter(input, size=3, output=None, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """:func:`pyconv.ndimage.uniform_filter` of a dask ``input`` (lazy); float data within the
    running sum's rounding, as :func:`uniform_filter1d`.

    Parameters
    ----------
    {input}
    size : int or sequence of ints
        Box size per filtered axis. Default 3.
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (per axis), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.
    origin : int or sequence of int, optional
        Shift of the centre per axis.
    axes : tuple of int or None, optional
        The filtered axes; the others read no halo.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.arange(16).reshape(4, 4), chunks=2)
    >>> pyconv.dask.ndimage.uniform_filter(x, size=3, mode="nearest").compute()
    array([[ 1,  2,  3,  3],
           [ 4,  5,  6,  6],
           [ 8,  9, 10, 10],
           [10, 11, 12, 12]])
    """
    return _filter("uniform_filter", input, dict(size=size, output=output, mode=mode, cval=cval, origin=origin,
                                                 axes=axes))


def sobel(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """:func:`pyconv.ndimage.sobel` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    axis : int, optional
        The derivative's axis (every axis reads a halo of 1).
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (per axis), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]), chunks=2)
    >>> pyconv.dask.ndimage.sobel(x).compute()
    array([[0, 4, 4, 0],
           [0, 4, 4, 0],
           [0, 4, 4, 0]])
    """
    return _filter("sobel", input, dict(axis=axis, output=output, mode=mode, cval=cval))


def prewitt(input, axis=-1, output=None, mode="reflect", cval=0.0):
    """:func:`pyconv.ndimage.prewitt` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    axis : int, optional
        The derivative's axis (every axis reads a halo of 1).
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (per axis), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1]]), chunks=2)
    >>> pyconv.dask.ndimage.prewitt(x).compute()
    array([[0, 3, 3, 0],
           [0, 3, 3, 0],
           [0, 3, 3, 0]])
    """
    return _filter("prewitt", input, dict(axis=axis, output=output, mode=mode, cval=cval))


def laplace(input, output=None, mode="reflect", cval=0.0, *, axes=None):
    """:func:`pyconv.ndimage.laplace` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (per axis), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.
    axes : tuple of int or None, optional
        The filtered axes; the others read no halo.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]]), chunks=2)
    >>> pyconv.dask.ndimage.laplace(x, mode="constant").compute()
    array([[ 0,  1,  0],
           [ 1, -4,  1],
           [ 0,  1,  0]])
    """
    return _filter("laplace", input, dict(output=output, mode=mode, cval=cval, axes=axes))


def gaussian_laplace(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None, **kwargs):
    """:func:`pyconv.ndimage.gaussian_laplace` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    sigma : scalar or sequence of scalars
        Standard deviation per filtered axis.
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (one per term, each term extending every axis by
        its mode, as in memory), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.
    axes : tuple of int or None, optional
        The filtered axes.
    **kwargs
        ``truncate`` and ``radius``, as in memory.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.eye(3), chunks=2)
    >>> pyconv.dask.ndimage.gaussian_laplace(x, 1.0).compute().round(3)
    array([[-0.385,  0.037,  0.348],
           [ 0.037, -0.073,  0.037],
           [ 0.348,  0.037, -0.385]])
    """
    return _filter("gaussian_laplace", input, dict(sigma=sigma, output=output, mode=mode, cval=cval, axes=axes,
                                                   **kwargs))


def gaussian_gradient_magnitude(input, sigma, output=None, mode="reflect", cval=0.0, *, axes=None, **kwargs):
    """:func:`pyconv.ndimage.gaussian_gradient_magnitude` of a dask ``input`` (lazy).

    Parameters
    ----------
    {input}
    sigma : scalar or sequence of scalars
        Standard deviation per axis.
    {output}
    mode : str or sequence of str, optional
        scipy.ndimage's boundary mode (one per term, each term extending every axis by
        its mode, as in memory), applied at the array's edges.
    cval : scalar, optional
        The constant of 'constant' mode.
    axes : tuple of int or None, optional
        The filtered axes.
    **kwargs
        ``truncate`` and ``radius``, as in memory.

    {returns}

    Examples
    --------
    >>> import numpy as np, dask.array as da, pyconv.dask
    >>> x = da.from_array(np.array([0.0, 0, 1, 1]), chunks=3)
    >>> pyconv.dask.ndimage.gaussian_gradient_magnitude(x, 1.0).compute().round(3)
    array([0.108, 0.363, 0.363, 0.108])
    """
    return _filter("gaussian_gradient_magnitude", input, dict(sigma=sigma, output=output, mode=mode, cval=cval,
                                                              axes=axes, **kwargs))


for _f in __all__:
    globals()[_f].__doc__ = globals()[_f].__doc__.format(input=_INPUT.strip(), output=_OUTPUT.strip(),
                                                         returns=_RETURNS.strip())
del _f
