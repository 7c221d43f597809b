"""Bond-valence force field (BVFF): total energy, forces on every atom and stress.

The same pair terms as the BVSE grid (``kernels.bvse``), now between every pair of atoms so that
the host can relax around the mobile ion:

* ``MORSE`` for cation–anion pairs: ``d0/2 * ((exp(alpha*(r_min - r)) - 1)**2 - 1)``
* ``COULOMB`` for like charges: ``pref * erfc(r / rho) / r``
* ``NONE`` for pairs that do not interact.

Parameters are per pair of species: ``kind[a, b]`` and ``params[a, b] = (p0, p1, p2)`` (symmetric).
Each pair term is shifted by its value at the cutoff (``ecut[a, b]``) so that the energy is
continuous when atoms cross the cutoff, which matters for NEB and MD energy conservation.

Arrays in, arrays out: ``_energy_forces`` does no validation; ``energy_forces`` does.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .bvse import COULOMB, MORSE, NONE, _pair, _pair_derivatives
from .cells import perpendicular_heights

__all__ = ["COULOMB", "MORSE", "NONE", "energy_forces", "lattice_shifts", "cutoff_shifts"]


@nb.njit(cache=True)
def _energy_forces(pos, cell, species, kind, params, ecut, cutoff, shifts):
    """Energy (eV), forces (N, 3, eV/Å) and the virial sum Σ u'(r) d⊗d / r (eV) over pairs.

    ``shifts`` are integer lattice translations covering every image within ``cutoff``; the
    pair (i, j, T) is counted once for i < j and half for i == j (T and −T both appear).
    """
    n = pos.shape[0]
    energy = 0.0
    forces = np.zeros((n, 3))
    virial = np.zeros((3, 3))
    rc2 = cutoff * cutoff
    for s in range(shifts.shape[0]):
        n0, n1, n2 = shifts[s, 0], shifts[s, 1], shifts[s, 2]
        tx = n0 * cell[0, 0] + n1 * cell[1, 0] + n2 * cell[2, 0]
        ty = n0 * cell[0, 1] + n1 * cell[1, 1] + n2 * cell[2, 1]
        tz = n0 * cell[0, 2] + n1 * cell[1, 2] + n2 * cell[2, 2]
        zero = n0 == 0 and n1 == 0 and n2 == 0
        for i in range(n):
            si = species[i]
            j0 = i + 1 if zero else i
            for j in range(j0, n):
                sj = species[j]
                k = kind[si, sj]
                if k == NONE:
                    continue
                dx = pos[j, 0] + tx - pos[i, 0]
                dy = pos[j, 1] + ty - pos[i, 1]
                dz = pos[j, 2] + tz - pos[i, 2]
                r2 = dx * dx + dy * dy + dz * dz
                if r2 >= rc2:
                    continue
                r = math.sqrt(r2)
                e, de, _ = _pair_derivatives(k, params[si, sj, 0], params[si, sj, 1], params[si, sj, 2], r)
                w = 0.5 if i == j else 1.0
                energy += w * (e - ecut[si, sj])
                g = w * de / r
                # dE/dr_j = g d, dE/dr_i = -g d  (forces are minus these)
                forces[i, 0] += g * dx
                forces[i, 1] += g * dy
                forces[i, 2] += g * dz
                forces[j, 0] -= g * dx
                forces[j, 1] -= g * dy
                forces[j, 2] -= g * dz
                virial[0, 0] += g * dx * dx
                virial[0, 1] += g * dx * dy
                virial[0, 2] += g * dx * dz
                virial[1, 1] += g * dy * dy
                virial[1, 2] += g * dy * dz
                virial[2, 2] += g * dz * dz
    virial[1, 0] = virial[0, 1]
    virial[2, 0] = virial[0, 2]
    virial[2, 1] = virial[1, 2]
    return energy, forces, virial


@nb.njit(cache=True)
def _cutoff_energies(kind, params, cutoff):
    ns = kind.shape[0]
    out = np.zeros((ns, ns))
    for a in range(ns):
        for b in range(ns):
            out[a, b] = _pair(kind[a, b], params[a, b, 0], params[a, b, 1], params[a, b, 2], cutoff)
    return out


def lattice_shifts(cell: np.ndarray, cutoff: float) -> np.ndarray:
    """Integer translations n with |f_j − f_i + n| possibly within ``cutoff`` for wrapped f.

    With fractional coordinates in [0, 1) each component of f_j − f_i lies in (−1, 1), and the
    k-th component of a vector of length r is at most r / h_k (perpendicular height).
    """
    h = perpendicular_heights(cell)
    m = np.floor(cutoff / h).astype(np.int64) + 1
    rng = [np.arange(-m[k], m[k] + 1) for k in range(3)]
    return np.stack(np.meshgrid(*rng, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.int64)


def cutoff_shifts(kind: np.ndarray, params: np.ndarray, cutoff: float) -> np.ndarray:
    """Value of each pair term at the cutoff (subtracted so that energies are continuous)."""
    return _cutoff_energies(np.ascontiguousarray(kind, np.int64), np.ascontiguousarray(params, np.float64), float(cutoff))


def energy_forces(
    positions: np.ndarray,
    cell: np.ndarray,
    species: np.ndarray,
    kind: np.ndarray,
    params: np.ndarray,
    cutoff: float,
    shifted: bool = True,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Energy (eV), forces (N, 3) and stress (3, 3, eV/Å³, ASE sign: dE/dε / V) of a periodic cell.

    ``species[i]`` indexes the (S, S) ``kind`` and (S, S, 3) ``params`` matrices, which must be
    symmetric. ``shifted=False`` leaves out the energy shift at the cutoff.
    """
    pos = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    sp = np.ascontiguousarray(species, dtype=np.int64)
    kind = np.ascontiguousarray(kind, dtype=np.int64)
    params = np.ascontiguousarray(params, dtype=np.float64)
    n = pos.shape[0]
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError("positions must have shape (N, 3)")
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError("cell must be a (3, 3) non-singular matrix of lattice vectors (rows)")
    ns = kind.shape[0]
    if kind.shape != (ns, ns) or params.shape != (ns, ns, 3):
        raise ValueError("kind must be (S, S) and params (S, S, 3)")
    if not (np.array_equal(kind, kind.T) and np.allclose(params, params.transpose(1, 0, 2))):
        raise ValueError("kind and params must be symmetric in the two species")
    if not np.isin(kind, (NONE, MORSE, COULOMB)).all():
        raise ValueError("kind values must be NONE, MORSE or COULOMB")
    if sp.shape != (n,) or (n and (sp.min() < 0 or sp.max() >= ns)):
        raise ValueError(f"species must be (N,) integers in [0, {ns})")
    if not (np.isfinite(pos).all() and np.isfinite(params).all()):
        raise ValueError("positions and parameters must be finite")
    if not cutoff > 0:
        raise ValueError("cutoff must be positive")
    # wrap into the cell so that the translation set of lattice_shifts is complete
    frac = np.linalg.solve(cell.T, pos.T).T
    wrapped = np.ascontiguousarray((frac - np.floor(frac)) @ cell)
    ecut = cutoff_shifts(kind, params, cutoff) if shifted else np.zeros((ns, ns))
    e, f, w = _energy_forces(wrapped, cell, sp, kind, params, ecut, float(cutoff), lattice_shifts(cell, cutoff))
    volume = abs(np.linalg.det(cell))
    return float(e), f, w / volume
