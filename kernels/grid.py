"""Walking a periodic 3D grid: neighbour steps, flat indices and the lattice shift of a step.

A grid of shape (na, nb, nc) is stored flat, ``p = (i * nb + j) * nc + k``. A step along a
direction ``d`` (one of the 6 face, 18 face+edge or 26 face+edge+corner neighbours) wraps
periodically; the lattice shift ``s`` it crosses (each component -1, 0 or 1) says which cell
the neighbour's copy lies in. The percolation sweep (``percolation.py``) and the basin and
saddle extraction (``basins.py``) both walk the grid this way.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_DIRS26 = np.array(
    [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)],
    dtype=np.int64,
)
_DIRS18 = np.array([d for d in _DIRS26 if np.abs(d).sum() <= 2], dtype=np.int64)
_DIRS6 = np.array([d for d in _DIRS26 if np.abs(d).sum() == 1], dtype=np.int64)


def neighbour_directions(connectivity: int) -> np.ndarray:
    """Grid steps to the 6, 18 or 26 neighbours of a point."""
    table = {6: _DIRS6, 18: _DIRS18, 26: _DIRS26}
    if connectivity not in table:
        raise ValueError("connectivity must be 6, 18 or 26")
    return table[connectivity]


def half_directions(connectivity: int) -> np.ndarray:
    """One of each +/- pair of directions, so that every grid edge is visited once."""
    dirs = neighbour_directions(connectivity)
    keep = [d for d in dirs if tuple(d) > (0, 0, 0)]
    return np.array(keep, dtype=np.int64)


@nb.njit(cache=True, inline="always")
def _wrap1(x, n):
    """Wrap an index that is at most one period outside [0, n); return (index, shift)."""
    if x < 0:
        return x + n, -1
    if x >= n:
        return x - n, 1
    return x, 0


@nb.njit(cache=True, inline="always")
def _ijk(p, nb_, nc):
    """Grid indices (i, j, k) of flat index ``p``."""
    i = p // (nb_ * nc)
    r = p - i * (nb_ * nc)
    j = r // nc
    return i, j, r - j * nc


@nb.njit(cache=True, inline="always")
def _neighbour(i, j, k, d, na, nb_, nc):
    """Flat index of the neighbour of grid point (i, j, k) along ``d`` and the shift crossed."""
    ii, s0 = _wrap1(i + d[0], na)
    jj, s1 = _wrap1(j + d[1], nb_)
    kk, s2 = _wrap1(k + d[2], nc)
    return (ii * nb_ + jj) * nc + kk, s0, s1, s2


def _check_grid(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a 3D floating-point grid; return it flat (float64, C order) and its shape."""
    energy = np.asarray(energy)
    if energy.ndim != 3 or min(energy.shape) < 1:
        raise ValueError("energy must be a 3D grid")
    if not np.issubdtype(energy.dtype, np.floating):
        raise ValueError("energy must be a floating-point array")
    flat = np.ascontiguousarray(energy, dtype=np.float64).ravel()
    if np.isnan(flat).any():
        raise ValueError("energy grid contains NaN")
    return flat, np.asarray(energy.shape, dtype=np.int64)


def sorted_below(energy: np.ndarray, emax: float = np.inf) -> np.ndarray:
    """Flat indices of the points with energy <= ``emax``, sorted by (energy, index).

    The kernels accept such a truncated order wherever they take one: sorting only the part of
    the grid that can matter is the cheap half of a sort.
    """
    flat = np.asarray(energy, dtype=np.float64).ravel()
    idx = np.flatnonzero(flat <= emax) if np.isfinite(emax) else np.arange(flat.size)
    return idx[np.argsort(flat[idx], kind="stable")]
