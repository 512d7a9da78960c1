"""Backward passes of pyconv.ndimage's linear filters (``pyconv.grad.ndimage``).

Every filter is a linear map of its input, ``y = A x + c`` (``c`` from ``cval``,
a constant), built from correlations with a boundary extension: ``E = P x`` pads
each axis through the mode's index map (``-1`` entries give ``cval``), and
``y = valid_correlate(E, w)``.  Its adjoint is therefore

    A^T g = P^T full_convolve(g, w)

the full convolution spreads each output's gradient over its window in the
extended domain, and ``P^T`` folds the padded positions back onto the input
samples they copy (reflect/mirror/wrap/nearest add them to their source;
constant drops them).  The weights' gradient is ``valid_correlate(E, g)``.
Separable filters chain 1-D passes, so their adjoint runs the passes' adjoints
in reverse order; Laplacians sum their per-axis terms.

Each ``<name>_backward(grad_output, input, ...)`` takes the forward's own
arguments after ``grad_output`` (not ``output=``) and returns a tuple: the
gradient with respect to ``input`` (and ``weights`` for ``convolve``,
``correlate``, ``convolve1d``, ``correlate1d``), in the input's float dtype
(float32 stays float32, anything else computes in float64).  Integer rounding
of the forward is not differentiated: this is the gradient of the exact linear map.

Examples
--------
>>> import numpy as np
>>> from pyconv.grad import ndimage as gnd
>>> g = np.ones(4)
>>> gnd.correlate1d_backward(g, np.arange(4.0), [1.0, 2.0], mode="nearest")
(array([4., 3., 3., 2.]), array([3., 6.]))
"""
import numpy as np

from pyconv import ndimage as _nd
from pyconv import signal as _signal

__all__ = ["convolve_backward", "correlate_backward", "convolve1d_backward", "correlate1d_backward",
           "gaussian_filter_backward", "gaussian_filter1d_backward", "uniform_filter_backward",
           "uniform_filter1d_backward", "sobel_backward", "prewitt_backward", "laplace_backward",
           "gaussian_laplace_backward"]


# --------------------------------------------------------------------------- the adjoint of one correlation

def _float_dtype(x):
    return np.dtype(np.float32) if x.dtype == np.float32 else np.dtype(np.float64)


def _operands(grad_output, input):
    x = np.asarray(input)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"input must be a real array (bool, integer or float) to differentiate; got dtype "
                        f"{x.dtype}")
    dt = _float_dtype(x)
    g = np.asarray(grad_output)
    if g.shape != x.shape:
        raise ValueError(f"grad_output must have the forward output's shape {x.shape}; got {g.shape}")
    if g.dtype.kind not in "biuf":
        raise TypeError(f"grad_output must be a real array; got dtype {g.dtype}")
    return g.astype(dt, copy=False), x, dt


def _maps(shape, w_shape, origins, mode):
    befores = [k // 2 + o for k, o in zip(w_shape, origins)]
    return befores, [_nd._index_map(n, b, k - 1 - b, mode) for n, k, b in zip(shape, w_shape, befores)]


def _fold(ge, maps, befores, shape):
    """``P^T``: add every padded position's gradient onto the sample it copies."""
    for ax, (m, b, n) in enumerate(zip(maps, befores, shape)):
        ge = np.moveaxis(ge, ax, 0)
        res = ge[b:b + n].copy()
        for q in list(range(b)) + list(range(b + n, len(m))):
            if m[q] >= 0:
                res[m[q]] += ge[q]
        ge = np.moveaxis(res, 0, ax)
    return np.ascontiguousarray(ge)


def _extend(x, maps, cval, dt):
    """``E = P x``: the input extended through the maps (``cval`` where a map is -1)."""
    e = x.astype(dt, copy=False)
    for ax, m in enumerate(maps):
        e = np.take(e, np.clip(m, 0, None), axis=ax)
        if (m < 0).any():
            idx = [slice(None)] * e.ndim
            idx[ax] = m < 0
            e[tuple(idx)] = cval
    return e


def _corr_adjoint(g, w, mode, origins, dt):
    """``A^T g`` for ``A = correlate(., w, mode, origin=origins)``, ``w`` of ``g.ndim`` dims."""
    if g.size == 0:
        return np.zeros(g.shape, dt)
    befores, maps = _maps(g.shape, w.shape, origins, mode)
    ge = _signal.convolve(g, w.astype(dt), mode="full", method="direct")
    return _fold(ge, maps, befores, g.shape)


def _corr_weight_grad(g, x, w, mode, cval, origins, dt):
    """``d/dw`` of ``sum(g * correlate(x, w))``: the valid correlation of ``E`` with ``g``."""
    if g.size == 0:
        return np.zeros(w.shape, dt)
    befores, maps = _maps(x.shape, w.shape, origins, mode)
    e = _extend(x, maps, cval, dt)
    return _signal.correlate(e, g, mode="valid", method="direct").astype(dt, copy=False)


def _axis_weights(w, axis, ndim):
    shape = [1] * ndim
    shape[axis] = len(w)
    return np.asarray(w, dtype=np.float64).reshape(shape)


def _pass_adjoint(g, w1, axis, mode, origin, dt):
    """Adjoint of one 1-D pass (correlation weights ``w1`` along ``axis``)."""
    origins = [0] * g.ndim
    origins[axis] = origin
    return _corr_adjoint(g, _axis_weights(w1, axis, g.ndim), mode, origins, dt)


def _chain_adjoint(g, passes, dt):
    """Adjoint of a chain of 1-D passes ``(axis, weights, mode, origin)``, applied in order."""
    for axis, w1, mode, origin in reversed(passes):
        g = _pass_adjoint(g, w1, axis, mode, origin, dt)
    return g.astype(dt, copy=False)


# --------------------------------------------------------------------------- correlations with weights

def _nd_geometry(x, weights, mode, origin, convolution, axes):
    """The forward's effective correlation: (weights float64 of x.ndim dims, origins, mode name)."""
    w = np.asarray(weights)
    if w.dtype.kind == "c":
        raise TypeError("weights must be real to differentiate; got a complex array")
    axes = _nd._check_axes(axes, x.ndim)
    w = np.asarray(w, dtype=np.float64)
    if len(axes) < x.ndim:
        if w.ndim != len(axes):
            raise RuntimeError(f"weights.ndim ({w.ndim}) must match len(axes) ({len(axes)})")
        w = np.expand_dims(w, tuple(ax for ax in range(x.ndim) if ax not in axes))
    origins = _nd._normalize_sequence(origin, len(axes), "origin")
    if len(axes) < x.ndim:
        full = [0] * x.ndim
        for o, ax in zip(origins, axes):
            full[ax] = o
        origins = full
    if w.ndim != x.ndim or 0 in w.shape:
        raise RuntimeError(f"weights.ndim ({w.ndim}) must match len(axes) ({len(axes)})")
    if convolution:
        w = w[(slice(None, None, -1),) * w.ndim]
        origins = [-o - (0 if k & 1 else 1) for o, k in zip(origins, w.shape)]
    for o, k in zip(origins, w.shape):
        if _nd._invalid_origin(o, k):
            raise ValueError(f"Invalid origin; origin must satisfy -(weights.shape[k] // 2) <= origin[k] <= "
                             f"(weights.shape[k]-1) // 2; got origin={origin!r}")
    return w, [_nd._index(o, "origin") for o in origins], _nd._mode(mode), axes


def _nd_backward(grad_output, input, weights, mode, cval, origin, convolution, axes):
    g, x, dt = _operands(grad_output, input)
    w_user = np.asarray(weights)
    w, origins, mode, axes = _nd_geometry(x, weights, mode, origin, convolution, axes)
    cval = _nd._real_cval(cval)
    if x.ndim == 0:
        return (np.asarray(g * w.reshape(()), dtype=dt), np.asarray(g * x, dtype=dt).reshape(w_user.shape))
    gx = _corr_adjoint(g, w, mode, origins, dt)
    gw = _corr_weight_grad(g, x, w, mode, cval, origins, dt)
    if convolution:
        gw = gw[(slice(None, None, -1),) * gw.ndim]
    return gx, np.ascontiguousarray(gw.reshape(w_user.shape))


def correlate_backward(grad_output, input, weights, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Gradients of :func:`pyconv.ndimage.correlate` with respect to ``input`` and ``weights``.

    Returns
    -------
    (grad_input, grad_weights) : tuple of ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import correlate_backward
    >>> gx, gw = correlate_backward(np.ones((2, 2)), np.ones((2, 2)), np.ones((1, 1)))
    >>> gx, gw
    (array([[1., 1.],
           [1., 1.]]), array([[4.]]))
    """
    return _nd_backward(grad_output, input, weights, mode, cval, origin, False, axes)


def convolve_backward(grad_output, input, weights, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Gradients of :func:`pyconv.ndimage.convolve` with respect to ``input`` and ``weights``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import convolve_backward
    >>> gx, gw = convolve_backward(np.array([1.0, 0, 0]), np.array([1.0, 2, 3]), [1.0, 0, 0], mode="constant")
    >>> gx, gw
    (array([0., 1., 0.]), array([2., 1., 0.]))
    """
    return _nd_backward(grad_output, input, weights, mode, cval, origin, True, axes)


def _1d_backward(grad_output, input, weights, axis, mode, cval, origin, convolution):
    g, x, dt = _operands(grad_output, input)
    w = np.asarray(weights)
    if w.dtype.kind == "c":
        raise TypeError("weights must be real to differentiate; got a complex array")
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] < 1:
        raise RuntimeError(f"no filter weights given: weights must be a non-empty 1-D sequence, got shape "
                           f"{w.shape}")
    axis = _nd._normalize_axis(axis, x.ndim)
    if convolution:
        w = w[::-1]
        origin = -origin - (0 if len(w) & 1 else 1)
    if _nd._invalid_origin(origin, len(w)):
        raise ValueError(f"Invalid origin; origin must satisfy -(len(weights) // 2) <= origin <= "
                         f"(len(weights)-1) // 2; got origin={origin!r}")
    origin = _nd._index(origin, "origin")
    mode = _nd._mode(mode)
    cval = _nd._real_cval(cval)
    origins = [0] * x.ndim
    origins[axis] = origin
    wn = _axis_weights(w, axis, x.ndim)
    gx = _corr_adjoint(g, wn, mode, origins, dt)
    gw = _corr_weight_grad(g, x, wn, mode, cval, origins, dt).reshape(-1)
    if convolution:
        gw = gw[::-1]
    return gx, np.ascontiguousarray(gw)


def correlate1d_backward(grad_output, input, weights, axis=-1, mode="reflect", cval=0.0, origin=0):
    """Gradients of :func:`pyconv.ndimage.correlate1d` with respect to ``input`` and ``weights``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import correlate1d_backward
    >>> correlate1d_backward(np.array([0.0, 1, 0]), np.array([1.0, 2, 3]), [1.0, 1, 1], mode="wrap")
    (array([1., 1., 1.]), array([1., 2., 3.]))
    """
    return _1d_backward(grad_output, input, weights, axis, mode, cval, origin, False)


def convolve1d_backward(grad_output, input, weights, axis=-1, mode="reflect", cval=0.0, origin=0):
    """Gradients of :func:`pyconv.ndimage.convolve1d` with respect to ``input`` and ``weights``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import convolve1d_backward
    >>> convolve1d_backward(np.array([0.0, 1, 0]), np.array([1.0, 2, 3]), [1.0, 2, 3], mode="constant")
    (array([3., 2., 1.]), array([3., 2., 1.]))
    """
    return _1d_backward(grad_output, input, weights, axis, mode, cval, origin, True)


# --------------------------------------------------------------------------- separable filters

def _gauss_passes(ndim, sigma, order, mode, truncate, radius, axes):
    axes = _nd._check_axes(axes, ndim)
    n = len(axes)
    orders = _nd._normalize_sequence(order, n, "order")
    sigmas = _nd._normalize_sequence(sigma, n, "sigma")
    modes = _nd._normalize_sequence(mode, n, "mode")
    radii = _nd._normalize_sequence(radius, n, "radius")
    passes = []
    for ax, s, o, m, r in zip(axes, sigmas, orders, modes, radii):
        if s > 1e-15:
            lw = _nd._gauss_radius(s, truncate, r)
            passes.append((ax, _nd._gaussian_kernel1d(s, o, lw)[::-1], _nd._mode(m), 0))
    return passes


def gaussian_filter1d_backward(grad_output, input, sigma, axis=-1, order=0, mode="reflect", cval=0.0,
                               truncate=4.0, *, radius=None):
    """Gradient of :func:`pyconv.ndimage.gaussian_filter1d` with respect to ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import gaussian_filter1d_backward
    >>> gaussian_filter1d_backward(np.ones(5), np.zeros(5), 1.0, mode="wrap")[0]
    array([1., 1., 1., 1., 1.])
    """
    g, x, dt = _operands(grad_output, input)
    axis = _nd._normalize_axis(axis, x.ndim)
    lw = _nd._gauss_radius(sigma, truncate, radius)
    w = _nd._gaussian_kernel1d(sigma, order, lw)[::-1]
    return (_chain_adjoint(g, [(axis, w, _nd._mode(mode), 0)], dt),)


def gaussian_filter_backward(grad_output, input, sigma, order=0, mode="reflect", cval=0.0, truncate=4.0, *,
                             radius=None, axes=None):
    """Gradient of :func:`pyconv.ndimage.gaussian_filter` with respect to ``input``: the
    adjoints of its 1-D passes in reverse order.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import gaussian_filter_backward
    >>> gaussian_filter_backward(np.ones((3, 3)), np.zeros((3, 3)), 1.0)[0].round(6)
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]])
    """
    g, x, dt = _operands(grad_output, input)
    return (_chain_adjoint(g, _gauss_passes(x.ndim, sigma, order, mode, truncate, radius, axes), dt),)


def uniform_filter1d_backward(grad_output, input, size, axis=-1, mode="reflect", cval=0.0, origin=0):
    """Gradient of :func:`pyconv.ndimage.uniform_filter1d` with respect to ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import uniform_filter1d_backward
    >>> uniform_filter1d_backward(np.array([0.0, 0, 3, 0]), np.zeros(4), 3, mode="constant")
    (array([0., 1., 1., 1.]),)
    """
    g, x, dt = _operands(grad_output, input)
    axis = _nd._normalize_axis(axis, x.ndim)
    if size < 1:
        raise RuntimeError(f"incorrect filter size: size={size!r} must be >= 1")
    if size // 2 + origin < 0 or size // 2 + origin >= size:
        raise ValueError(f"invalid origin: origin={origin!r} for size={size!r}")
    size = _nd._index(size, "size")
    return (_chain_adjoint(g, [(axis, np.full(size, 1.0 / size), _nd._mode(mode), _nd._index(origin, "origin"))],
                           dt),)


def uniform_filter_backward(grad_output, input, size=3, mode="reflect", cval=0.0, origin=0, *, axes=None):
    """Gradient of :func:`pyconv.ndimage.uniform_filter` with respect to ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import uniform_filter_backward
    >>> uniform_filter_backward(np.ones((2, 2)), np.zeros((2, 2)), 2, mode="wrap")[0]
    array([[1., 1.],
           [1., 1.]])
    """
    g, x, dt = _operands(grad_output, input)
    axes = _nd._check_axes(axes, x.ndim)
    n = len(axes)
    sizes = _nd._normalize_sequence(size, n, "size")
    origins = _nd._normalize_sequence(origin, n, "origin")
    modes = _nd._normalize_sequence(mode, n, "mode")
    passes = []
    for ax, s, o, m in zip(axes, sizes, origins, modes):
        if s > 1:
            s = int(s)
            if s // 2 + o < 0 or s // 2 + o >= s:
                raise ValueError(f"invalid origin: origin={o!r} for size={s!r}")
            passes.append((ax, np.full(s, 1.0 / s), _nd._mode(m), _nd._index(o, "origin")))
    return (_chain_adjoint(g, passes, dt),)


def _edge_backward(grad_output, input, axis, mode, smooth):
    g, x, dt = _operands(grad_output, input)
    axis = _nd._normalize_axis(axis, x.ndim)
    modes = _nd._normalize_sequence(mode, x.ndim, "mode")
    passes = [(axis, np.array([-1.0, 0.0, 1.0]), _nd._mode(modes[axis]), 0)]
    passes += [(ax, np.asarray(smooth, dtype=np.float64), _nd._mode(modes[ax]), 0)
               for ax in range(x.ndim) if ax != axis]
    return (_chain_adjoint(g, passes, dt),)


def sobel_backward(grad_output, input, axis=-1, mode="reflect", cval=0.0):
    """Gradient of :func:`pyconv.ndimage.sobel` with respect to ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import sobel_backward
    >>> sobel_backward(np.array([0.0, 1, 0, 0]), np.zeros(4), mode="constant")
    (array([-1.,  0.,  1.,  0.]),)
    """
    return _edge_backward(grad_output, input, axis, mode, [1.0, 2.0, 1.0])


def prewitt_backward(grad_output, input, axis=-1, mode="reflect", cval=0.0):
    """Gradient of :func:`pyconv.ndimage.prewitt` with respect to ``input``.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import prewitt_backward
    >>> prewitt_backward(np.array([0.0, 1, 0, 0]), np.zeros(4), mode="constant")
    (array([-1.,  0.,  1.,  0.]),)
    """
    return _edge_backward(grad_output, input, axis, mode, [1.0, 1.0, 1.0])


def laplace_backward(grad_output, input, mode="reflect", cval=0.0, *, axes=None):
    """Gradient of :func:`pyconv.ndimage.laplace` with respect to ``input``: the sum of
    the per-axis second differences' adjoints.

    Examples
    --------
    >>> import numpy as np
    >>> from pyconv.grad.ndimage import laplace_backward
    >>> laplace_backward(np.array([0.0, 1, 0, 0]), np.zeros(4), mode="constant")
    (array([ 1., -2.,  1.,  0.]),)
    """
    g, x, dt = _operands(grad_output, input)
    axes = _nd._check_axes(axes, x.ndim)
    if not axes:
        return (g.copy(),)
    modes = _nd._normalize_sequence(mode, len(axes), "mode")
    w = np.array([1.0, -2.0, 1.0])
    gx = sum(_chain_adjoint(g, [(ax, w, _nd._mode(m), 0)], dt) for ax, m in zip(axes, modes))
    return (np.asarray(gx, dtype=dt),)


def gaussian_laplace_backward(grad_output, input, sigma, mode="reflect", cval=0.0, *, axes=None, **kwargs):
    """Gradient of :func:`pyconv.ndimage.gaussian_laplace` with respect to ``input``.

    ``kwargs``: ``truncate`` and ``radius`` as in the forward.

    Examples
    --------
    With 'wrap' the symmetric kernel's map is self-adjoint: the gradient is the filter itself.

    >>> import numpy as np
    >>> from pyconv import ndimage
    >>> from pyconv.grad.ndimage import gaussian_laplace_backward
    >>> g = np.random.default_rng(0).standard_normal(8)
    >>> gx, = gaussian_laplace_backward(g, np.zeros(8), 1.0, mode="wrap")
    >>> np.allclose(gx, ndimage.gaussian_laplace(g, 1.0, mode="wrap"))
    True
    """
    g, x, dt = _operands(grad_output, input)
    unknown = set(kwargs) - {"truncate", "radius"}
    if unknown:
        raise TypeError(f"gaussian_laplace_backward got unexpected keyword arguments {sorted(unknown)}")
    axes = _nd._check_axes(axes, x.ndim)
    if not axes:
        return (g.copy(),)
    sig = _nd._normalize_sequence(sigma, len(axes), "sigma")
    if len(axes) < x.ndim:
        full = [0] * x.ndim
        for s, ax in zip(sig, axes):
            full[ax] = s
        sig = full
    modes = _nd._normalize_sequence(mode, len(axes), "mode")
    gx = None
    for ax, m in zip(axes, modes):
        order = [0] * x.ndim
        order[ax] = 2
        passes = _gauss_passes(x.ndim, sig, order, m, kwargs.get("truncate", 4.0), kwargs.get("radius"), None)
        term = _chain_adjoint(g, passes, dt)
        gx = term if gx is None else gx + term
    return (np.asarray(gx, dtype=dt),)


# ``pyconv.grad.ndimage`` is this module (grad.py imports it under that name); registering
# it lets ``from pyconv.grad.ndimage import sobel_backward`` work like a submodule import.
import sys as _sys  # noqa: E402

_sys.modules.setdefault("pyconv.grad.ndimage", _sys.modules[__name__])
