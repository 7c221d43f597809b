"""Periodic images and cell lists that stay correct for strongly triclinic cells.

No minimum-image shortcut: every periodic image of every atom that can lie within ``cutoff``
of any point of the unit cell is made explicit, then binned in Cartesian space. The number of
images per axis comes from the perpendicular heights of the cell, which is what makes skewed
cells safe.
"""

from __future__ import annotations

import numba as nb
import numpy as np


def perpendicular_heights(cell: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell (rows of ``cell`` are lattice vectors)."""
    cell = np.asarray(cell, dtype=np.float64)
    volume = abs(np.linalg.det(cell))
    a, b, c = cell
    return volume / np.array(
        [np.linalg.norm(np.cross(b, c)), np.linalg.norm(np.cross(c, a)), np.linalg.norm(np.cross(a, b))]
    )


def periodic_images(
    frac: np.ndarray, cell: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All images of the atoms that may lie within ``cutoff`` of a point in the unit cell.

    Returns Cartesian positions (M, 3), the index of the original atom (M,) and the integer
    lattice shift of each image (M, 3). A superset is returned: the filter uses the distance to
    each pair of cell faces, a lower bound of the true distance to the cell.
    """
    frac = np.asarray(frac, dtype=np.float64) % 1.0
    cell = np.asarray(cell, dtype=np.float64)
    if frac.ndim != 2 or frac.shape[1] != 3:
        raise ValueError("frac must have shape (N, 3)")
    if cutoff <= 0:
        raise ValueError("cutoff must be positive")
    h = perpendicular_heights(cell)
    n = np.ceil(cutoff / h).astype(np.int64)
    rng = [np.arange(-n[i], n[i] + 1) for i in range(3)]
    shifts = np.stack(np.meshgrid(*rng, indexing="ij"), axis=-1).reshape(-1, 3)
    u = frac[None, :, :] + shifts[:, None, :]  # (S, N, 3) fractional coordinates of images
    excess = np.maximum(np.maximum(u - 1.0, -u), 0.0) * h  # distance beyond each face pair
    keep = np.all(excess <= cutoff, axis=2)
    s_idx, a_idx = np.nonzero(keep)
    img_frac = u[s_idx, a_idx]
    return img_frac @ cell, a_idx.astype(np.int64), shifts[s_idx].astype(np.int64)


class CellList:
    """Cartesian bins of image atoms in CSR form, for neighbour queries around a region."""

    def __init__(self, positions: np.ndarray, bin_size: float) -> None:
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.origin = positions.min(axis=0) - 1e-9
        span = positions.max(axis=0) - self.origin
        self.bin_size = float(bin_size)
        self.nbins = np.maximum(np.ceil(span / bin_size).astype(np.int64), 1)
        ijk = np.minimum(((positions - self.origin) / bin_size).astype(np.int64), self.nbins - 1)
        flat = (ijk[:, 0] * self.nbins[1] + ijk[:, 1]) * self.nbins[2] + ijk[:, 2]
        self.order = np.argsort(flat, kind="stable").astype(np.int64)
        counts = np.bincount(flat, minlength=int(np.prod(self.nbins)))
        self.start = np.zeros(counts.size + 1, dtype=np.int64)
        np.cumsum(counts, out=self.start[1:])
        self.positions = positions


@nb.njit(cache=True)
def _gather_candidates(
    center: np.ndarray,
    radius: float,
    origin: np.ndarray,
    bin_size: float,
    nbins: np.ndarray,
    start: np.ndarray,
    order: np.ndarray,
    positions: np.ndarray,
    out: np.ndarray,
) -> int:
    """Write into ``out`` the indices of atoms within ``radius`` of ``center``; return count."""
    r2 = radius * radius
    lo = np.empty(3, np.int64)
    hi = np.empty(3, np.int64)
    for d in range(3):
        lo[d] = max(int(np.floor((center[d] - radius - origin[d]) / bin_size)), 0)
        hi[d] = min(int(np.floor((center[d] + radius - origin[d]) / bin_size)), nbins[d] - 1)
    n = 0
    for bx in range(lo[0], hi[0] + 1):
        for by in range(lo[1], hi[1] + 1):
            for bz in range(lo[2], hi[2] + 1):
                b = (bx * nbins[1] + by) * nbins[2] + bz
                for s in range(start[b], start[b + 1]):
                    a = order[s]
                    dx = positions[a, 0] - center[0]
                    dy = positions[a, 1] - center[1]
                    dz = positions[a, 2] - center[2]
                    if dx * dx + dy * dy + dz * dz <= r2:
                        out[n] = a
                        n += 1
    return n


def neighbours_within(cells: CellList, center: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the binned atoms within ``radius`` of ``center`` (validating wrapper)."""
    center = np.ascontiguousarray(center, dtype=np.float64)
    if center.shape != (3,):
        raise ValueError("center must have shape (3,)")
    out = np.empty(cells.positions.shape[0], dtype=np.int64)
    n = _gather_candidates(
        center, float(radius), cells.origin, cells.bin_size, cells.nbins, cells.start,
        cells.order, cells.positions, out,
    )
    return np.sort(out[:n])
