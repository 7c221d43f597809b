"""Symmetry classes of sites and hops (screening/symmetry.py) against the brute-force
references in tests/naive.py, on random orbits and on the sites and hops of real landscapes."""

from __future__ import annotations

import numpy as np
import pytest
from naive import naive_classify_hops, naive_classify_sites

from ionscreen.screening.bvse import BVSESettings, compute_landscape, prepare_host
from ionscreen.screening.symmetry import classify_hops, classify_sites, rot_trans, symmetry_ops
from ionscreen.structures.prototypes import get_prototype

TOL = 0.3  # Å, as HopGraph uses for a 0.2 Å grid


def _framework_ops(pid: str):
    st = get_prototype(pid).build("native")
    return st, symmetry_ops(st)


def _orbit(x: np.ndarray, ops, lattice: np.ndarray) -> list[np.ndarray]:
    """Distinct images of a fractional point in the cell."""
    out: list[np.ndarray] = []
    for r, t in ops:
        y = (r @ x + t) % 1.0
        if all(np.linalg.norm(((y - z + 0.5) % 1.0 - 0.5) @ lattice) > 1e-3 for z in out):
            out.append(y)
    return out


def _random_sites(ops, lattice, rng, n_orbits: int) -> np.ndarray:
    pts = [p for _ in range(n_orbits) for p in _orbit(rng.random(3), ops, lattice)]
    pts = np.array(pts)
    pts += rng.normal(scale=0.01, size=pts.shape) @ np.linalg.inv(lattice)  # 0.01 Å noise
    return pts[rng.permutation(len(pts))]


def _random_hops(ops, lattice, rng, n_classes: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Hops with images under random operations, random lattice translations and flips."""
    hops = []
    for _ in range(n_classes):
        a = rng.random(3)
        b = a + rng.normal(scale=0.15, size=3)
        for _ in range(4):
            r, t = ops[rng.integers(len(ops))]
            shift = rng.integers(-1, 2, size=3)
            e = (r @ a + t + shift, r @ b + t + shift)
            hops.append(e[::-1] if rng.random() < 0.5 else e)
    return [hops[i] for i in rng.permutation(len(hops))]


@pytest.mark.parametrize("pid", ["LiFePO4", "LiCoO2", "V2O5", "TiO2-anatase"])
@pytest.mark.parametrize("seed", [0, 1])
def test_site_classes_match_naive_on_random_orbits(pid, seed):
    st, ops = _framework_ops(pid)
    lattice = st.lattice.matrix
    frac = _random_sites(ops, lattice, np.random.default_rng(seed), 3)
    got = classify_sites(frac, ops, lattice, TOL)
    want = naive_classify_sites(frac, *rot_trans(ops), lattice, TOL)
    np.testing.assert_array_equal(got, want)
    assert got.max() + 1 <= 3  # at most one class per orbit (two orbits may coincide)


@pytest.mark.parametrize("pid", ["LiFePO4", "LiCoO2", "V2O5"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hop_classes_match_naive_on_random_images(pid, seed):
    st, ops = _framework_ops(pid)
    lattice = st.lattice.matrix
    ends = _random_hops(ops, lattice, np.random.default_rng(seed), 4)
    got = classify_hops(ends, ops, lattice, TOL)
    want = naive_classify_hops(ends, *rot_trans(ops), lattice, TOL)
    np.testing.assert_array_equal(got, want)
    assert got.max() + 1 <= 4


def test_p1_classes_every_site_apart():
    st, _ = _framework_ops("LiFePO4")
    ops = [(np.eye(3), np.zeros(3))]
    frac = np.random.default_rng(3).random((6, 3))
    np.testing.assert_array_equal(classify_sites(frac, ops, st.lattice.matrix, TOL), np.arange(6))
    np.testing.assert_array_equal(naive_classify_sites(frac, *rot_trans(ops), st.lattice.matrix, TOL),
                                  np.arange(6))


@pytest.mark.parametrize("pid,ion", [("LiFePO4", "Li"), ("MgCr2O4", "Mg")])
def test_classes_match_naive_on_real_landscapes(pid, ion):
    st = get_prototype(pid).build("native")
    res = compute_landscape(st, ion, settings=BVSESettings(resolution=0.3))
    ops = symmetry_ops(prepare_host(st, ion).framework)  # as HopGraph.from_basins
    lattice = np.array(res.lattice)
    tol = max(0.5 * max(res.grid_step), 0.05) * 1.5
    frac = np.array([s.frac for s in res.sites])
    np.testing.assert_array_equal(classify_sites(frac, ops, lattice, tol),
                                  naive_classify_sites(frac, *rot_trans(ops), lattice, tol))
    # the result's own classes are those of its sites
    np.testing.assert_array_equal([s.distinct for s in res.sites], classify_sites(frac, ops, lattice, tol))
    ends = [(np.array(h.path_frac[0]), np.array(h.path_frac[-1])) for h in res.hops]
    assert len(ends) > 3
    np.testing.assert_array_equal(classify_hops(ends, ops, lattice, tol),
                                  naive_classify_hops(ends, *rot_trans(ops), lattice, tol))
