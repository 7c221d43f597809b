"""Space-group symmetry for the BVSE tier: the operations of a framework, the symmetry classes
of sites and hops, and a grid that the group maps onto itself.

Operations are (rotation, translation) pairs in fractional coordinates, as pymatgen's
``SpacegroupAnalyzer`` gives them. Two sites are equivalent when an operation maps one onto a
lattice translate of the other (Cartesian distance below ``tol``); two hops when one
operation and one lattice translation map both ends of one onto the ends of the other, in
either orientation. ``tests/naive.py`` holds a brute-force reference of both.
"""

from __future__ import annotations

import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from ionscreen.kernels import bvse as kbvse
from ionscreen.kernels import gridsym

from .bvse_model import check_memory

Operations = list[tuple[np.ndarray, np.ndarray]]


def symmetry_ops(framework: Structure, symprec: float = 0.01) -> Operations:
    """Fractional (rotation, translation) of the space group; the identity alone if spglib fails."""
    try:
        sga = SpacegroupAnalyzer(framework, symprec=symprec)
        ops = sga.get_symmetry_operations(cartesian=False)
        return [(op.rotation_matrix, op.translation_vector) for op in ops]
    except Exception:  # symmetry is a convenience: an unanalysable cell is treated as P1
        return [(np.eye(3), np.zeros(3))]


def rot_trans(ops: Operations) -> tuple[np.ndarray, np.ndarray]:
    """Operations as stacked arrays: rotations (n, 3, 3) and translations (n, 3)."""
    return np.array([r for r, _ in ops]), np.array([t for _, t in ops])


_CHUNK = 1 << 18  # (op, site or hop) pairs per vectorised block: a supercell's group holds
# every lattice translation, and thousands of ops times thousands of sites at once is gigabytes


def _cart_err(d: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Cartesian length of fractional differences after removing whole lattice vectors."""
    return np.linalg.norm((d - np.round(d)) @ lattice, axis=-1)


def classify_sites(frac: np.ndarray, ops: Operations, lattice: np.ndarray, tol: float) -> np.ndarray:
    """Symmetry class of each site: images of a representative under every op, vectorised."""
    rot, tr = rot_trans(ops)
    cls = -np.ones(len(frac), dtype=int)
    c = 0
    for i in range(len(frac)):
        if cls[i] >= 0:
            continue
        images = np.einsum("oij,j->oi", rot, frac[i]) + tr  # (ops, 3)
        step = max(1, _CHUNK // len(frac))  # ops in chunks, as in classify_hops
        err = np.min([_cart_err(images[o:o + step, None, :] - frac[None, :, :], lattice).min(axis=0)
                      for o in range(0, len(images), step)], axis=0)
        cls[(err < tol) & (cls < 0)] = c
        cls[i] = c
        c += 1
    return cls


def _hop_match(ia: np.ndarray, ib: np.ndarray, x: np.ndarray, y: np.ndarray, lattice: np.ndarray,
               tol: float) -> np.ndarray:
    """Hops (x, y) that some op maps (ia, ib) onto, up to one lattice translation."""
    d1 = ia[:, None, :] - x[None, :, :]
    shift = np.round(d1)
    ok1 = np.linalg.norm((d1 - shift) @ lattice, axis=-1) < tol
    ok2 = np.linalg.norm((ib[:, None, :] - shift - y[None, :, :]) @ lattice, axis=-1) < tol
    return (ok1 & ok2).any(axis=0)


def classify_hops(
    ends: list[tuple[np.ndarray, np.ndarray]], ops: Operations, lattice: np.ndarray, tol: float
) -> np.ndarray:
    """Hops (a, b) in fractional coordinates, equal under a symmetry op + one lattice translation."""
    rot, tr = rot_trans(ops)
    a = np.array([e[0] for e in ends])
    b = np.array([e[1] for e in ends])
    cls = -np.ones(len(ends), dtype=int)
    c = 0
    for i in range(len(ends)):
        if cls[i] >= 0:
            continue
        ia = np.einsum("oij,j->oi", rot, a[i]) + tr
        ib = np.einsum("oij,j->oi", rot, b[i]) + tr
        match = np.zeros(len(ends), dtype=bool)
        step = max(1, _CHUNK // max(1, len(ends)))
        for o in range(0, len(ia), step):
            for x, y in ((a, b), (b, a)):  # both orientations of the candidate hop
                match |= _hop_match(ia[o:o + step], ib[o:o + step], x, y, lattice, tol)
        cls[match & (cls < 0)] = c
        cls[i] = c
        c += 1
    return cls


def symmetric_grid(
    fw: Structure, shape: tuple[int, int, int], explicit: bool, memory_fraction: float
) -> tuple[tuple[int, int, int], np.ndarray | None]:
    """A grid that the space group maps onto itself, and each point's orbit representative.

    An explicit shape is kept (symmetry used only if it already fits); otherwise the grid is
    rounded up to the nearest fitting one. Returns (shape, rep or None).
    """
    ops = symmetry_ops(fw, symprec=1e-3)
    if len(ops) <= 1:
        return shape, None
    rot, tr = rot_trans(ops)
    new = shape if explicit else gridsym.compatible_shape(shape, rot, tr)
    if new is None:
        return shape, None
    ints = gridsym.integer_operations(new, rot, tr)
    if ints is None:
        return shape, None
    check_memory(new, memory_fraction)  # the rounded-up grid, before anything is allocated
    return new, gridsym.representatives(new, *ints)


def orbit_energies(
    framework: kbvse.Framework, model: kbvse.PairModel, shape: tuple[int, int, int], mode: str,
    rep: np.ndarray | None,
) -> tuple[np.ndarray, int, str]:
    """Grid energies, on orbit representatives when ``rep`` is given, checked on a sample.

    Returns the energies, the pair evaluations and a note when the full grid had to be computed.
    """
    if rep is None:
        energy, pairs = kbvse.grid_energies(framework, model, shape, mode=mode, return_pairs=True)
        return energy, pairs, ""
    idx = np.arange(rep.size)
    is_rep = rep == idx
    energy, pairs = kbvse.grid_energies(framework, model, shape, mode=mode, return_pairs=True, mask=is_rep)
    flat = energy.ravel()
    flat[:] = flat[rep]
    # a direct check on a sample of copied points guards against a symmetry that is not exact
    others = idx[~is_rep]
    if others.size:
        sample = np.random.default_rng(0).choice(others, size=min(64, others.size), replace=False)
        mask = np.zeros(rep.size, dtype=bool)
        mask[sample] = True
        check = kbvse.grid_energies(framework, model, shape, mode=mode, mask=mask).ravel()
        if np.max(np.abs(check[sample] - flat[sample])) > 1e-6:
            energy, pairs = kbvse.grid_energies(framework, model, shape, mode=mode, return_pairs=True)
            return energy, pairs, "symmetry did not hold on the grid to 1e-6 eV; the full grid was computed"
    return energy, pairs, ""
