"""pyconv.explain: the plan a call would run, without running its kernels."""
from pyconv._engine import plan as _plan


def explain(func, *args, **kwargs):
    """Return the plan ``func(*args, **kwargs)`` would run, without running its kernels.

    ``func`` is any convolution of :mod:`pyconv.signal`, :mod:`pyconv.nn` or
    :mod:`pyconv.grad`.  The call's arguments are checked exactly as a real call checks
    them (the same errors are raised); then, instead of each kernel, its plan is
    recorded.  Setting ``PYCONV_VERBOSE=1`` in the environment logs the plans of the
    calls that do run, one line per kernel on stderr, with their time.

    Parameters
    ----------
    func : callable
        A public function of :mod:`pyconv.signal`, :mod:`pyconv.nn` or :mod:`pyconv.grad`.
    *args, **kwargs
        The arguments of the call to explain, exactly as ``func`` takes them.

    Returns
    -------
    Plan
        With ``.algorithm`` (a short name: 'dense', 'gemm', 'thin_s1', 'phases', 'direct',
        'fft', 'oa', ...), ``.threads``, ``.workspace_bytes`` (scratch memory beyond the
        output), ``.geometry`` (shapes, stride, padding, dilation, groups) and a one-line
        ``str()``.  A call that runs several kernels (a backward pass: input and weight
        gradients; a separable layer) returns a ``Plans`` sequence with the same
        attributes (``.algorithm`` joins the steps' names with '+').

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> from pyconv import nn
    >>> p = pyconv.explain(nn.conv2d, np.ones((1, 16, 32, 32), np.float32),
    ...                    np.ones((32, 16, 3, 3), np.float32), padding=1)
    >>> str(p.algorithm), p.algorithm == 'dense', p.threads >= 1
    ('dense', True, True)
    >>> print(pyconv.explain(pyconv.convolve, np.ones(10), np.ones(3), method='direct'))
    signal direct 10 * 3 -> 12 float64 threads=1
    """
    if not callable(func):
        raise TypeError(f"func must be a pyconv function; got {func!r}")
    with _plan.dry_run() as plans:
        func(*args, **kwargs)
    if not plans:
        raise ValueError(f"{getattr(func, '__name__', func)!r} ran no convolution kernel for these arguments "
                         "(not a pyconv convolution, or a trivial case such as an empty or 0-d input)")
    return plans[0] if len(plans) == 1 else _plan.Plans(tuple(plans))
