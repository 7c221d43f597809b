"""Space-group symmetry on a periodic fractional grid: compute each orbit of points once.

A symmetry operation x' = R x + t maps the grid ``i/n`` onto itself when, in grid units,
``i'_a = sum_b M_ab i_b + T_a`` with integer ``M_ab = R_ab n_a / n_b`` and ``T_a = t_a n_a``.
For such operations every grid point has a representative (the smallest flat index of its
orbit); energies are computed at representatives only and copied to the rest. A spinel
(Fd-3m, 192 operations) then needs ~1/150 of the energy evaluations, an olivine (Pnma) ~1/8.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def _representatives(shape, m, t):
    """Smallest flat index in the orbit of every grid point under the integer operations.

    Points are visited in index order; the first point of an unseen orbit is its smallest
    member and labels the whole orbit, so each orbit is expanded once (work ~ grid size).
    """
    na, nb_, nc = shape[0], shape[1], shape[2]
    n = na * nb_ * nc
    rep = np.full(n, -1, np.int64)
    for p in range(n):
        if rep[p] >= 0:
            continue
        i = p // (nb_ * nc)
        r = p - i * (nb_ * nc)
        j = r // nc
        k = r - j * nc
        for o in range(m.shape[0]):
            ii = (m[o, 0, 0] * i + m[o, 0, 1] * j + m[o, 0, 2] * k + t[o, 0]) % na
            jj = (m[o, 1, 0] * i + m[o, 1, 1] * j + m[o, 1, 2] * k + t[o, 1]) % nb_
            kk = (m[o, 2, 0] * i + m[o, 2, 1] * j + m[o, 2, 2] * k + t[o, 2]) % nc
            rep[(ii * nb_ + jj) * nc + kk] = p
    return rep


def integer_operations(
    shape: tuple[int, int, int], rotations: np.ndarray, translations: np.ndarray, tol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray] | None:
    """Operations in grid units, or None if any operation does not map the grid onto itself."""
    n = np.asarray(shape, dtype=np.float64)
    rot = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    tr = np.asarray(translations, dtype=np.float64).reshape(-1, 3)
    if rot.shape[0] != tr.shape[0]:
        raise ValueError("one translation per rotation")
    m = rot * n[None, :, None] / n[None, None, :]
    t = tr * n[None, :]
    if np.abs(m - np.round(m)).max(initial=0.0) > tol or np.abs(t - np.round(t)).max(initial=0.0) > tol:
        return None
    return np.round(m).astype(np.int64), np.round(t).astype(np.int64)


def representatives(shape: tuple[int, int, int], m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Flat index of the orbit representative of every grid point (validating wrapper)."""
    shape_arr = np.asarray(shape, dtype=np.int64)
    if shape_arr.shape != (3,) or (shape_arr < 1).any():
        raise ValueError("shape must be three positive integers")
    m = np.ascontiguousarray(m, dtype=np.int64).reshape(-1, 3, 3)
    t = np.ascontiguousarray(t, dtype=np.int64).reshape(-1, 3)
    if m.shape[0] != t.shape[0] or m.shape[0] == 0:
        raise ValueError("need at least one operation and one translation per operation")
    rep = _representatives(shape_arr, m, t)
    if (rep < 0).any() or (rep > np.arange(rep.size)).any():
        raise ValueError("the operations do not form a group (identity missing or not closed)")
    return rep


def compatible_shape(
    shape: tuple[int, int, int], rotations: np.ndarray, translations: np.ndarray, max_growth: float = 1.25
) -> tuple[int, int, int] | None:
    """The smallest grid >= ``shape`` that the operations map onto itself, or None.

    Each axis becomes a multiple of the denominators of the translations along it (1/2, 1/3,
    1/4, 1/6, 1/8, 1/12 ...); axes that rotations mix get the same count. None if that would
    grow an axis by more than ``max_growth`` or no such grid exists.
    """
    tr = np.asarray(translations, dtype=np.float64).reshape(-1, 3) % 1.0
    rot = np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    step = np.ones(3, dtype=np.int64)
    for a in range(3):
        for x in tr[:, a]:
            for den in (1, 2, 3, 4, 6, 8, 12, 16, 24):
                if abs(x * den - round(x * den)) < 1e-6:
                    step[a] = np.lcm(step[a], den)
                    break
            else:
                return None
    n = [int(-(-shape[a] // step[a]) * step[a]) for a in range(3)]
    # axes coupled by a rotation need counts with an integer ratio: make them equal
    coupled = (np.abs(rot) > 1e-6).any(axis=0)
    for _ in range(3):
        for a in range(3):
            for b in range(3):
                if a != b and coupled[a, b] and n[a] != n[b]:
                    big = max(n[a], n[b])
                    n[a] = n[b] = int(np.lcm.reduce([step[a], step[b]]) * -(-big // np.lcm.reduce([step[a], step[b]])))
    if any(n[a] > max_growth * shape[a] + 1 for a in range(3)):
        return None
    out = (n[0], n[1], n[2])
    return out if integer_operations(out, rot, tr) is not None else None
