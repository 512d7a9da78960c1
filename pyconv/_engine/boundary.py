"""One boundary index map for every way pyconv extends an array past its edges.

``extend_index(n, before, after, mode)`` gives, for each position ``-before .. n+after-1``
of an axis of length ``n`` extended by ``mode``, the index of the element it copies (-1
for a constant / zero).  It serves pyconv.nn's padding modes (and their adjoints in
pyconv.grad), pyconv.signal's 2-D boundaries (and their gradients), pyconv.ndimage's
boundary modes and the phase planes of the direct kernels.
"""
import numpy as np

# scipy.signal's boundary names and torch.nn's padding modes -> one rule each
_RULES = {"zeros": "const", "fill": "const", "reflect": "reflect", "replicate": "replicate",
          "circular": "wrap", "wrap": "wrap", "symm": "symm", "mirror": "mirror"}


def extend_index(n, before, after, mode):
    """Source index of every position of an axis of length ``n`` extended by ``before`` and
    ``after`` positions (either may be negative: a window inside or across the axis).

    Modes: 'zeros'/'fill' (-1: a constant), 'reflect' (mirror without repeating the edge,
    PyTorch's; one reflection, so pads below ``n``), 'replicate' (the edge element),
    'circular'/'wrap' (periodic), 'symm' (mirror repeating the edge, scipy's; any pad),
    'mirror' (mirror without repeating the edge, periodic: scipy.ndimage's 'mirror'; any pad).

    Examples
    --------
    >>> extend_index(3, 2, 2, 'reflect').tolist(), extend_index(3, 2, 2, 'symm').tolist()
    ([2, 1, 0, 1, 2, 1, 0], [1, 0, 0, 1, 2, 2, 1])
    >>> extend_index(3, 1, 1, 'zeros').tolist(), extend_index(3, 1, 2, 'wrap').tolist()
    ([-1, 0, 1, 2, -1], [2, 0, 1, 2, 0, 1])
    >>> extend_index(3, 4, 4, 'mirror').tolist()
    [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2]
    """
    rule = _RULES[mode]
    j = np.arange(-before, n + after, dtype=np.int64)
    if rule == "const":
        return np.where((j >= 0) & (j < n), j, -1)
    if rule == "reflect":
        m = np.abs(j)
        return np.where(m >= n, 2 * (n - 1) - m, m)
    if rule == "replicate":
        return np.clip(j, 0, max(n - 1, 0))
    if rule == "wrap":
        return j % n if n else j
    if rule == "mirror":
        if n <= 1:
            return np.zeros_like(j) if n else j
        t = j % (2 * n - 2)
        return np.where(t < n, t, 2 * n - 2 - t)
    t = j % (2 * n)
    return np.where(t < n, t, 2 * n - 1 - t)
