"""Half the band for a symmetric hop: a symmetry operation of the host that maps the hop onto
its reverse (the start onto the end and back, e.g. an inversion centre, a two-fold axis or a
mirror plane half way) maps image k of a band onto image N-1-k, with energies equal and forces
rotated. Only the first half of the band (and its middle image) is then evaluated and only the
initial endpoint relaxed; the rest is its image under the operation.

The band is held symmetric under the operation. When the minimum-energy path is not (two
equivalent bent paths that the operation swaps), it would be forced onto a symmetric one, so
the operation is the one that maps the initial band (the BVSE grid path, or the IDPP band
between given endpoints) most closely onto its reverse, and none is used when every one moves
the ion by more than ``ION_TOL``.

The optimisers (FIRE, BFGS, ASE's ODE) are equivariant under the operation, so a symmetric band
stays symmetric: the result is the one a whole band reaches from the same symmetric start
while it keeps the symmetry. When the highest images are a symmetric pair (an intermediate
minimum half way), both climb, each to its saddle (a whole ASE band climbs one of them). Only
an odd number of inner images is halved: with an even number the two middle images would be a
mirrored pair that climbs onto one saddle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms

#: host atoms of the two endpoints must map onto each other this closely (Å)
HOST_TOL = 0.1
#: the moving ion: a BVSE site is a grid point, up to about one grid step off its true site (Å)
ION_TOL = 0.3
#: spglib's tolerance on the averaged host (Å)
SYMPREC = 0.05
#: the Cartesian linear part must be orthogonal to this: an operation the cell only nearly has
#: (a strained cell) maps a structure onto a strained one, whose energy is not the same
ORTHO_TOL = 1e-3


@dataclass(frozen=True)
class Mirror:
    """One operation (fractional rotation ``rot``, translation ``trans`` of the cell ``cell``)
    and the permutation it makes of the atoms (atom i goes to ``perm[i]``); an involution."""

    rot: np.ndarray
    trans: np.ndarray
    perm: np.ndarray
    cell: np.ndarray

    @property
    def linear(self) -> np.ndarray:
        """The Cartesian linear part, acting on row vectors (x @ linear)."""
        return np.linalg.inv(self.cell) @ self.rot.T @ self.cell

    def apply(self, positions: np.ndarray, near: np.ndarray) -> np.ndarray:
        """The operation applied to ``positions``, each atom wrapped to the periodic copy
        nearest the same atom of ``near``."""
        inv = np.linalg.inv(self.cell)
        y = np.empty_like(positions)
        y[self.perm] = ((positions @ inv) @ self.rot.T + self.trans) @ self.cell
        return y - np.round((y - near) @ inv) @ self.cell

    def forces(self, forces: np.ndarray) -> np.ndarray:
        """Forces on the mapped configuration."""
        out = np.empty_like(forces)
        out[self.perm] = forces @ self.linear
        return out

    def describe(self) -> str:
        """What kind of operation it is, e.g. "inversion" or "two-fold rotation"."""
        m = self.linear
        det, tr = round(float(np.linalg.det(m))), round(float(np.trace(m)))
        kind = {(-1, -3): "inversion", (1, -1): "two-fold rotation", (-1, 1): "mirror"}.get(
            (det, tr), f"operation (det {det}, trace {tr})")
        return f"{kind} of the host (spglib, {SYMPREC} Å)"


def _cell_mic(d: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Cartesian differences ``d`` to their nearest periodic copy (fractional rounding)."""
    inv = np.linalg.inv(cell)
    f = d @ inv
    return (f - np.round(f)) @ cell


def _match(y: np.ndarray, target: np.ndarray, numbers: np.ndarray, cell: np.ndarray,
           tol: float) -> np.ndarray | None:
    """perm with y[i] ~ target[perm[i]] (same species, within ``tol``), or None."""
    perm = np.empty(len(y), int)
    for z in np.unique(numbers):
        idx = np.flatnonzero(numbers == z)
        d = np.linalg.norm(_cell_mic(y[idx][:, None, :] - target[idx][None, :, :], cell), axis=2)
        j = d.argmin(axis=1)
        if d[np.arange(len(idx)), j].max() > tol or len(set(j.tolist())) != len(idx):
            return None
        perm[idx] = idx[j]
    return perm


def _labels(a: Atoms) -> np.ndarray:
    """One integer per atom for what a calculator may tell apart: element, charge (the BVFF
    reads it), initial magnetic moment and tag."""
    magmoms = np.round(a.get_initial_magnetic_moments().reshape(len(a), -1), 1).sum(axis=1)
    keys = list(zip(a.numbers.tolist(), np.round(a.get_initial_charges(), 2).tolist(),
                    magmoms.tolist(), a.get_tags().tolist()))
    index = {k: i + 1 for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys])


def find_mirrors(a: Atoms, b: Atoms, mobile: int, host_tol: float = HOST_TOL,
                 ion_tol: float = ION_TOL) -> list[Mirror]:
    """Every involution of the host that maps endpoint ``a`` onto endpoint ``b`` (the moving
    ion, atom ``mobile``, to within ``ion_tol`` Å, every other atom to within ``host_tol``)
    and ``b`` back onto ``a``, with a non-trivial rotation (a translation maps a hop onto
    another hop, not onto its reverse).

    There can be several (an inversion centre and two-fold axes half way along a straight
    hop); when the path bends, only some map it onto its reverse, so the caller picks the one
    that maps its band best (:func:`best`). The operations are searched on the host averaged
    over both endpoints, which an operation that swaps them leaves invariant however each
    endpoint is distorted around its ion."""
    if len(a) != len(b) or mobile != len(a) - 1:
        return []
    cell = a.cell.array
    host = np.arange(len(a)) != mobile
    inv = np.linalg.inv(cell)
    mean = a.positions[host] + 0.5 * _cell_mic(b.positions[host] - a.positions[host], cell)
    frac = mean @ inv
    labels = _labels(a)
    if not np.array_equal(labels, _labels(b)):
        return []
    sym = spglib.get_symmetry((cell, frac % 1.0, labels[host]), symprec=SYMPREC)
    if sym is None:
        return []
    fa = a.positions @ inv
    found = []
    for rot, trans in zip(sym["rotations"], sym["translations"]):
        rot = rot.astype(float)
        if np.allclose(rot, np.eye(3)) or not np.allclose(rot @ rot, np.eye(3)):
            continue
        back = rot @ trans + trans
        if np.abs(back - np.round(back)).max() > 1e-3:  # not its own inverse
            continue
        lin = inv @ rot.T @ cell
        if np.abs(lin @ lin.T - np.eye(3)).max() > ORTHO_TOL:
            continue
        y = (fa @ rot.T + trans) @ cell
        ion = _cell_mic(y[mobile] - b.positions[mobile], cell)
        if np.linalg.norm(ion) > ion_tol:
            continue
        perm_host = _match(y[host], b.positions[host], labels[host], cell, host_tol)
        if perm_host is None:
            continue
        perm = np.arange(len(a))
        perm[host] = np.flatnonzero(host)[perm_host]
        if not np.array_equal(perm[perm], np.arange(len(a))):
            continue
        found.append(Mirror(rot, np.asarray(trans, float), perm, cell.copy()))
    return found


def find_mirror(a: Atoms, b: Atoms, mobile: int) -> Mirror | None:
    """The first of :func:`find_mirrors`, or None."""
    found = find_mirrors(a, b, mobile)
    return found[0] if found else None


def best(mirrors: list[Mirror], positions: list[np.ndarray], tol: float = ION_TOL) -> Mirror | None:
    """The operation that maps the band ``positions`` (the moving ion last) most closely onto
    its reverse, None when none does so to within ``tol`` Å."""
    scored = [(symmetrise([p.copy() for p in positions], m), i) for i, m in enumerate(mirrors)]
    if not scored or min(scored)[0] > tol:
        return None
    return mirrors[min(scored)[1]]


def half_band_note(mirror: Mirror, candidates: int = 1) -> str:
    """What a result says when half its band was computed with ``mirror``."""
    what = mirror.describe()
    text = (f"half the band computed: {'an' if what[0] in 'aeiou' else 'a'} {what} maps the hop "
            "onto its reverse; the final endpoint is the image of the relaxed initial one")
    if candidates > 1:
        text += (f" (of {candidates} operations that swap the endpoints, the one that maps the "
                 "initial band best onto its reverse)")
    return text


def symmetrise(positions: list[np.ndarray], mirror: Mirror) -> float:
    """Make a band of positions symmetric in place: image N-1-k becomes the image of k under
    ``mirror`` (k in the first half), the middle image the mean of itself and its image.
    Returns the largest change (Å) made to the moving ion (the last atom)."""
    n = len(positions)
    worst = 0.0
    for k in range(n // 2):
        y = mirror.apply(positions[k], positions[n - 1 - k])
        worst = max(worst, float(np.linalg.norm(y[-1] - positions[n - 1 - k][-1])))
        positions[n - 1 - k][:] = y
    if n % 2:
        m = positions[n // 2]
        y = mirror.apply(m, m)
        worst = max(worst, float(np.linalg.norm(y[-1] - m[-1])) / 2)
        m[:] = 0.5 * (m + y)
    return worst


__all__ = ["Mirror", "best", "find_mirror", "find_mirrors", "half_band_note", "symmetrise"]
