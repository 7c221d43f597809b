"""Symmetry orbits on the grid: kernel vs a naive reference, and energies vs the full grid."""

from __future__ import annotations

import numpy as np
import pytest
from naive import naive_representatives

from ionscreen.kernels import gridsym
from ionscreen.screening.bvse import BVSESettings, compute_landscape
from ionscreen.screening.symmetry import symmetry_ops
from ionscreen.structures.prototypes import get_prototype


def _ops(pid: str):
    st = get_prototype(pid).build("native")
    ops = symmetry_ops(st, symprec=1e-3)
    return st, np.array([r for r, _ in ops]), np.array([t for _, t in ops])


@pytest.mark.parametrize("pid", ["LiFePO4", "MgCr2O4", "TiS2", "V2O5", "LiCoO2", "TiO2-anatase"])
def test_representatives_match_naive(pid):
    st, rot, tr = _ops(pid)
    shape = gridsym.compatible_shape((11, 13, 9), rot, tr, max_growth=3.0)
    assert shape is not None
    m, t = gridsym.integer_operations(shape, rot, tr)
    rep = gridsym.representatives(shape, m, t)
    ref = naive_representatives(shape, rot, tr)
    assert np.array_equal(rep, ref)
    assert (rep <= np.arange(rep.size)).all()
    # orbit count: every point's representative is its own representative
    assert np.array_equal(rep[rep], rep)


def test_point_group_m3m_on_odd_grid_matches_naive():
    """The 48 operations of m-3m (no translations) on a 7×7×7 grid: orbits of sizes 1 to 48."""
    import itertools

    rot = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            rot.append(np.eye(3)[list(perm)] * np.array(signs)[:, None])
    tr = np.zeros((48, 3))
    shape = (7, 7, 7)
    m, t = gridsym.integer_operations(shape, rot, tr)
    rep = gridsym.representatives(shape, m, t)
    assert np.array_equal(rep, naive_representatives(shape, rot, tr))
    # orbits of m-3m on 7^3 points: (7^3 + ...)/48 by Burnside; count them directly
    assert len(np.unique(rep)) == len({tuple(sorted(np.abs(((np.array(i) + 3) % 7) - 3))) for i in np.ndindex(shape)})


def test_operations_that_are_not_a_group_are_refused():
    rot = [np.eye(3), np.diag([-1, 1, 1])]
    tr = [np.array([0.5, 0, 0]), np.zeros(3)]  # no identity: not a group
    m, t = gridsym.integer_operations((4, 4, 4), rot, tr)
    with pytest.raises(ValueError, match="group"):
        gridsym.representatives((4, 4, 4), m, t)


def test_incompatible_grid_is_detected():
    rot = [np.eye(3), np.eye(3)]
    tr = [np.zeros(3), np.array([0.5, 0.0, 0.0])]
    assert gridsym.integer_operations((7, 4, 4), rot, tr) is None
    assert gridsym.compatible_shape((7, 4, 4), rot, tr) == (8, 4, 4)
    # an irrational translation never fits
    assert gridsym.compatible_shape((7, 4, 4), rot, [np.zeros(3), np.array([0.1234567, 0, 0])]) is None


@pytest.mark.parametrize("pid,ion", [("LiFePO4", "Li"), ("MgCr2O4", "Mg"), ("LiCoO2", "Li")])
def test_symmetric_grid_equals_full_grid(pid, ion):
    st = get_prototype(pid).build("native")
    sym = compute_landscape(st, ion, settings=BVSESettings(resolution=0.3))
    full = compute_landscape(st, ion, settings=BVSESettings(resolution=0.3, use_symmetry=False),
                             shape=tuple(sym.grid_shape))
    assert sym.grid_points_computed < full.grid_points_computed
    # equal to the accuracy of the cell data (hexagonal 1/3 coordinates are stored rounded)
    assert np.abs(sym.energy - full.energy).max() < 1e-6
    assert sym.barriers == pytest.approx(full.barriers, abs=1e-6)
    assert not any("symmetry did not hold" in w for w in sym.warnings)


def test_broken_symmetry_falls_back_to_full_grid():
    """Symmetry found within tolerance but not exact (an atom moved 0.5 mÅ) is not trusted."""
    st = get_prototype("MgCr2O4").build("native")
    st.translate_sites([20], [0.00006, 0.0, 0.0], frac_coords=True)
    assert len(symmetry_ops(st.copy(), symprec=1e-3)) == 192  # spglib still sees Fd-3m
    res = compute_landscape(st, "Mg", settings=BVSESettings(resolution=0.4))
    assert any("symmetry did not hold" in w for w in res.warnings)
    full = compute_landscape(st, "Mg", settings=BVSESettings(resolution=0.4, use_symmetry=False),
                             shape=tuple(res.grid_shape))
    assert np.abs(res.energy - full.energy).max() < 1e-9
