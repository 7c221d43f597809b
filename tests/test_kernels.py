"""The numba kernels against the naive NumPy references in tests/naive.py.

Random inputs (cubic, acute, obtuse, 60°-sheared, one-very-short-vector and random triclinic
cells; random, smoothed and tied energy grids) and a real input (spinel MgCr2O4 in its cubic
cell and in a strongly skewed primitive basis). Every comparison asserts values computed
independently, so a wrong kernel makes a test fail.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest
from naive import (
    COULOMB,
    MORSE,
    canonical_key,
    component_ranks,
    graph_clusters,
    grid_points,
    heights,
    naive_basins,
    naive_energy,
    naive_essential_edges,
    naive_gradient,
    naive_graph_percolation,
    naive_hessian,
    naive_images,
    naive_percolation,
    naive_saddles,
    sublevel_components,
    translation_block,
)
from scipy.ndimage import gaussian_filter

from ionscreen.kernels import bvse
from ionscreen.kernels import percolation as perc
from ionscreen.kernels.cells import CellList, neighbours_within, periodic_images

# ============================================================================ cells


def cell_from_parameters(a, b, c, alpha, beta, gamma) -> np.ndarray:
    """Lattice vectors (rows) from lengths (Å) and angles (degrees)."""
    ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
    sg = np.sin(np.radians(gamma))
    cx = c * cb
    cy = c * (ca - cb * cg) / sg
    cz2 = c * c - cx * cx - cy * cy
    if cz2 <= 0:
        raise ValueError("angles do not form a cell")
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [cx, cy, np.sqrt(cz2)]])


def random_triclinic(seed: int, min_fraction: float = 0.25, max_fraction: float = 0.7) -> np.ndarray:
    """Lengths 4.5–7.5 Å, all three angles uniform in 30–150°, volume / (abc) in the range."""
    rng = np.random.default_rng(seed)
    while True:
        lengths = rng.uniform(4.5, 7.5, 3)
        angles = rng.uniform(30.0, 150.0, 3)
        try:
            cell = cell_from_parameters(*lengths, *angles)
        except ValueError:
            continue
        if min_fraction <= abs(np.linalg.det(cell)) / np.prod(lengths) <= max_fraction:
            return cell


CELLS = {
    "cubic": np.diag([5.5, 5.5, 5.5]),
    "acute": cell_from_parameters(5.5, 6.0, 6.5, 32.0, 38.0, 45.0),
    "obtuse": cell_from_parameters(6.0, 6.0, 6.0, 140.0, 120.0, 95.0),
    "sheared60": np.array([[6.0, 0.0, 0.0], [3.0, 5.196, 0.0], [5.0, 3.0, 3.5]]),
    "short": np.array([[2.1, 0.0, 0.0], [0.7, 5.5, 0.0], [-1.2, 2.0, 6.0]]),
    "triclinic1": random_triclinic(1),
    "triclinic2": random_triclinic(7),
}


def test_cells_are_what_they_claim():
    """Guard the test inputs themselves: the skewed cells really are skewed."""
    for name in ("acute", "obtuse", "triclinic1", "triclinic2"):
        c = CELLS[name]
        lengths = np.linalg.norm(c, axis=1)
        assert abs(np.linalg.det(c)) / np.prod(lengths) < 0.75, name
    c = CELLS["sheared60"]
    cosg = c[0] @ c[1] / np.linalg.norm(c[0]) / np.linalg.norm(c[1])
    assert abs(np.degrees(np.arccos(cosg)) - 60.0) < 1e-3
    assert np.linalg.norm(CELLS["short"], axis=1).min() < 2.2
    assert heights(CELLS["short"]).min() < 2.1


def min_image_distance(cell, f1, f2) -> float:
    """Shortest distance between f1 and the images of f2 (other than f1 itself)."""
    shifts = translation_block(cell, f2, f1, 3.0)
    d = (f2[None, :] + shifts - f1[None, :]) @ cell
    r = np.sqrt((d * d).sum(axis=1))
    return float(r[r > 1e-9].min())


def random_atoms(rng, cell, n, min_dist=1.2) -> np.ndarray:
    """Random fractional positions kept more than ``min_dist`` apart (all images)."""
    atoms: list[np.ndarray] = []
    tries = 0
    while len(atoms) < n:
        tries += 1
        assert tries < 20000, "could not place atoms"
        f = rng.random(3)
        if min_image_distance(cell, f, f) < min_dist:  # the atom and its own images
            continue
        if all(min_image_distance(cell, f, g) > min_dist for g in atoms):
            atoms.append(f)
    return np.array(atoms)


def random_model(rng, n_species: int, wall: bool) -> bvse.PairModel:
    """Species 0 Morse, species 1 Coulomb, the rest random; plausible softBV-like numbers."""
    kind = np.array([MORSE, COULOMB] + list(rng.choice([MORSE, COULOMB], n_species - 2)))
    params = np.zeros((n_species, 3))
    for s, k in enumerate(kind):
        if k == MORSE:
            params[s] = rng.uniform(0.5, 2.0), rng.uniform(1.5, 2.5), rng.uniform(1.8, 2.6)
        else:
            params[s] = rng.uniform(5.0, 30.0), rng.uniform(0.3, 0.7), 0.0
    if wall:
        return bvse.PairModel(kind, params, rng.uniform(1.3, 1.8, n_species), 25.0)
    return bvse.PairModel(kind, params)


@dataclass
class Case:
    cell: np.ndarray
    frac: np.ndarray
    species: np.ndarray
    model: bvse.PairModel
    cutoff: float
    shape: tuple[int, int, int]

    def framework(self, frac=None) -> bvse.Framework:
        return bvse.Framework(self.cell, self.frac if frac is None else frac, self.species, self.cutoff)

    def naive(self, points, **kw):
        m = self.model
        return naive_energy(
            self.cell, self.frac, self.species, m.kind, m.params, m.wall2, m.wall_energy,
            self.cutoff, points, **kw,
        )


@functools.cache
def make_case(name: str, wall: bool) -> Case:
    seed = sorted(CELLS).index(name) * 10 + int(wall)
    rng = np.random.default_rng(1000 + seed)
    cell = CELLS[name]
    n_atoms = int(np.clip(abs(np.linalg.det(cell)) / 16.0, 3, 7))
    frac = random_atoms(rng, cell, n_atoms)
    n_species = 3
    species = rng.permutation(np.arange(n_atoms) % n_species)
    model = random_model(rng, n_species, wall)
    cutoff = float(rng.uniform(5.0, 6.0))
    shape = tuple(int(x) for x in np.clip(np.round(np.linalg.norm(cell, axis=1) / 0.75), 3, 9))
    return Case(cell, frac, species, model, cutoff, shape)


@functools.cache
def naive_grid(name: str, wall: bool):
    case = make_case(name, wall)
    return case.naive(grid_points(case.cell, case.shape), return_pairs=True)


CELL_NAMES = sorted(CELLS)

# ============================================================================ cells.py


@pytest.mark.parametrize("name", CELL_NAMES)
def test_periodic_images_contain_every_neighbour(name):
    cell = CELLS[name]
    rng = np.random.default_rng(sorted(CELLS).index(name))
    frac = rng.random((5, 3))
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float)
    faces = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 1.0], [0.0, 0.5, 0.5], [1.0, 0.5, 0.5],
                      [0.5, 0.0, 0.5], [0.5, 1.0, 0.5], [1.0, 1.0, 0.5], [0.0, 1.0, 1.0]])
    pts_frac = np.vstack([rng.random((40, 3)), corners, faces, rng.random((10, 3)) * 1e-9])
    points = pts_frac @ cell
    for cutoff in (2.5, 6.0, 9.0):
        pos, idx, shifts = periodic_images(frac, cell, cutoff)
        got = {(int(a), *map(int, s)) for a, s in zip(idx, shifts)}
        assert len(got) == len(idx), "duplicate images"
        np.testing.assert_allclose(pos, (frac[idx] + shifts) @ cell, atol=1e-12)
        want = naive_images(frac, cell, points, cutoff)
        assert want, "the brute force found no neighbours: a vacuous test"
        missing = want - got
        assert not missing, f"{name}, cutoff {cutoff}: images missed {sorted(missing)[:5]}"
        # unwrapped coordinates describe the same crystal: same images
        shifted = frac + rng.integers(-3, 4, frac.shape)
        _, idx2, sh2 = periodic_images(shifted, cell, cutoff)
        assert {(int(a), *map(int, s)) for a, s in zip(idx2, sh2)} == got


@pytest.mark.parametrize("name", ["cubic", "obtuse", "short"])
def test_neighbours_within_matches_brute_force(name):
    cell = CELLS[name]
    rng = np.random.default_rng(5)
    pos, _, _ = periodic_images(rng.random((6, 3)), cell, 5.0)
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    centres = np.vstack([rng.uniform(lo, hi, (30, 3)), rng.uniform(lo - 3, hi + 3, (10, 3)), pos[:5]])
    for bin_size in (0.7, 1.9, 5.0):
        cl = CellList(pos, bin_size)
        for c in centres:
            for radius in (0.5, 2.5, 4.5):
                got = neighbours_within(cl, c, radius)
                want = np.flatnonzero(((pos - c) ** 2).sum(axis=1) <= radius * radius)
                np.testing.assert_array_equal(got, want)


# ============================================================================ bvse.py


@pytest.mark.parametrize("wall", [False, True])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_grid_energies_exact_match_naive(name, wall):
    case = make_case(name, wall)
    ref, ref_pairs = naive_grid(name, wall)
    e, pairs = bvse.grid_energies(case.framework(), case.model, case.shape, return_pairs=True)
    assert e.shape == case.shape
    np.testing.assert_allclose(e.ravel(), ref, rtol=1e-9, atol=1e-9)
    assert pairs == ref_pairs
    # unwrapped fractional coordinates: the same crystal, the same energies
    rng = np.random.default_rng(3)
    moved = case.frac + rng.integers(-2, 3, case.frac.shape)
    e2 = bvse.grid_energies(case.framework(moved), case.model, case.shape)
    np.testing.assert_allclose(e2, e, rtol=1e-9, atol=1e-9)
    if wall:
        m = case.model
        no_wall = naive_energy(case.cell, case.frac, case.species, m.kind, m.params, m.wall2, 0.0,
                               case.cutoff, grid_points(case.cell, case.shape))
        assert (ref - no_wall > 1.0).any(), "no grid point inside a wall: a vacuous test"


@pytest.mark.parametrize("wall", [False, True])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_grid_energies_table_close_to_naive(name, wall):
    case = make_case(name, wall)
    ref, _ = naive_grid(name, wall)
    e = bvse.grid_energies(case.framework(), case.model, case.shape, mode="table").ravel()
    low = ref < ref.min() + 5.0
    assert low.sum() >= 5
    err = np.abs(e[low] - ref[low])
    assert err.max() <= 2e-3, f"table error {err.max():.2e} eV"
    # linear interpolation in r²: the error falls as n⁻² (16x for 4x the entries; 4x would
    # mean a wrongly placed or rounded table index)
    coarse = bvse.grid_energies(case.framework(), case.model, case.shape, mode="table",
                                table_size=4096).ravel()
    err_coarse = np.abs(coarse[low] - ref[low]).max()
    assert err_coarse / err.max() > 8.0, (err_coarse, err.max())


def test_grid_point_on_an_atom_is_huge_but_finite():
    cell = np.array([[5.0, 0.0, 0.0], [1.5, 4.8, 0.0], [0.7, -1.1, 5.2]])
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.25, 0.75, 0.0]])
    species = np.array([1, 0, 0])
    model = bvse.PairModel(np.array([MORSE, COULOMB]), np.array([[1.2, 2.0, 2.1], [20.0, 0.5, 0.0]]))
    fw = bvse.Framework(cell, frac, species, 4.6)  # no image exactly at the cutoff
    e = bvse.grid_energies(fw, model, (4, 4, 4))
    ref = naive_energy(cell, frac, species, model.kind, model.params, model.wall2, 0.0, 4.6,
                       grid_points(cell, (4, 4, 4)))
    assert np.isfinite(e).all()
    assert e[0, 0, 0] > 1e6  # 20 eV·Å / 1e-6 Å
    np.testing.assert_allclose(e.ravel(), ref, rtol=1e-9, atol=1e-9)
    pe, pg, _ = bvse.point_energies(fw, model, frac @ cell)
    np.testing.assert_allclose(pe, [e[0, 0, 0], e[2, 2, 2], e[1, 3, 0]], rtol=1e-9)
    assert np.isfinite(pg).all()


@pytest.mark.parametrize("name", ["acute", "short", "triclinic2"])
def test_tile_length_does_not_change_results(name):
    case = make_case(name, True)
    fw = case.framework()
    shape = tuple(s + 2 for s in case.shape)  # other sizes, ragged last tiles
    results = []
    for tile in (0.5, 1.0, 3.0):
        for mode in ("exact", "table"):
            e, pairs = bvse.grid_energies(fw, case.model, shape, mode=mode, tile_length=tile,
                                          return_pairs=True)
            results.append((mode, e, pairs))
    for mode, e, pairs in results:
        same = next(r for r in results if r[0] == mode)
        assert np.abs(e - same[1]).max() <= 1e-12 * max(1.0, np.abs(e).max())
        assert pairs == same[2]
    assert results[0][2] == case.naive(grid_points(case.cell, shape), return_pairs=True)[1]


def clear_points(case: Case, points, min_dist: float, clearance: float) -> np.ndarray:
    """Points at least ``min_dist`` from every atom and ``clearance`` from every discontinuity
    of the energy (the cutoff sphere and the wall spheres), so that finite differences hold."""
    g = points @ np.linalg.inv(case.cell)
    shifts = translation_block(case.cell, case.frac, g, case.cutoff + 1.0)
    img = ((case.frac[None] + shifts[:, None]).reshape(-1, 3)) @ case.cell
    sp = np.tile(case.species, shifts.shape[0])
    r = np.sqrt(((img[None] - points[:, None]) ** 2).sum(axis=2))
    ok = (r.min(axis=1) > min_dist) & (np.abs(r - case.cutoff).min(axis=1) > clearance)
    wall_r = np.sqrt(case.model.wall2)[sp]
    ok &= (np.abs(r - wall_r[None]) > clearance).all(axis=1)
    return points[ok]


@pytest.mark.parametrize("wall", [False, True])
@pytest.mark.parametrize("name", ["cubic", "acute", "sheared60", "short", "triclinic1"])
def test_point_energies_gradient_hessian(name, wall):
    case = make_case(name, wall)
    fw = case.framework()
    # energy at the grid points is the grid energy
    pts = grid_points(case.cell, case.shape)
    e, _, _ = bvse.point_energies(fw, case.model, pts)
    grid = bvse.grid_energies(fw, case.model, case.shape).ravel()
    np.testing.assert_allclose(e, grid, rtol=1e-10, atol=1e-10)
    # anywhere in space (outside the cell too): energies, gradient and Hessian
    rng = np.random.default_rng(11)
    cand = rng.uniform(-1.5, 2.5, (80, 3)) @ case.cell
    pts = clear_points(case, cand, 1.0, 5e-3)[:20]
    assert len(pts) >= 10
    e, g, h = bvse.point_energies(fw, case.model, pts, hessian=True)
    np.testing.assert_allclose(e, case.naive(pts), rtol=1e-9, atol=1e-9)
    ref_g = naive_gradient(case.naive, pts, 1e-4)
    ref_h = naive_hessian(case.naive, pts, 1e-3)
    for i in range(len(pts)):
        sg = max(1.0, np.abs(ref_g[i]).max())
        sh = max(1.0, np.abs(ref_h[i]).max())
        np.testing.assert_allclose(g[i], ref_g[i], rtol=0, atol=1e-5 * sg)
        np.testing.assert_allclose(h[i], ref_h[i], rtol=0, atol=2e-5 * sh)
    # periodicity: a lattice translation changes nothing
    t = np.array([2, -3, 1]) @ case.cell
    e2, g2, h2 = bvse.point_energies(fw, case.model, pts + t, hessian=True)
    np.testing.assert_allclose(e2, e, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(g2, g, rtol=1e-7, atol=1e-7 * max(1.0, np.abs(g).max()))
    # without the Hessian flag the Hessian is not computed but energy and gradient are the same
    e3, g3, _ = bvse.point_energies(fw, case.model, pts)
    np.testing.assert_array_equal(e3, e)
    np.testing.assert_array_equal(g3, g)


# ============================================================================ percolation.py


def random_grid(shape, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.random(shape)
    if kind == "smooth":
        return gaussian_filter(rng.standard_normal(shape), 1.0, mode="wrap")
    if kind == "levels":  # many exact ties: plateaus and equal saddles
        return rng.integers(0, 8, shape).astype(float)
    raise ValueError(kind)


def frac_grid(shape):
    return np.meshgrid(*(np.arange(n) / n for n in shape), indexing="ij")


def cos_landscape(shape=(8, 10, 12)):
    x, y, z = frac_grid(shape)
    return np.cos(2 * np.pi * x) + 2 * np.cos(2 * np.pi * y) + 3 * np.cos(2 * np.pi * z)


def diagonal_channel(shape=(8, 8, 8)):
    """Low along x = y, z = 0: a 1D channel along (1,1,0), modulated with barrier 1.0."""
    x, y, z = frac_grid(shape)
    return (
        (1 - np.cos(2 * np.pi * (x - y)))
        + 0.5 * (1 - np.cos(2 * np.pi * (x + y)))
        + 2 * (1 - np.cos(2 * np.pi * z))
    )


PERC_GRIDS = [
    (shape, kind, seed)
    for shape in [(5, 6, 7), (8, 8, 8), (3, 4, 9)]
    for kind in ("random", "smooth", "levels")
    for seed in (0, 1)
]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("shape,kind,seed", PERC_GRIDS)
def test_percolation_thresholds_match_naive(shape, kind, seed, connectivity):
    energy = random_grid(shape, kind, seed)
    got = perc.percolation_thresholds(energy, connectivity)
    want = naive_percolation(energy, connectivity)
    np.testing.assert_array_equal(got, want)
    # an energy cutoff (half-way between two grid levels) hides exactly the thresholds above it
    levels = np.unique(energy) - energy.min()
    j = int(np.searchsorted(levels, want[1]))
    if j + 1 < levels.size:
        encut = 0.5 * (levels[j] + levels[j + 1])
        got_cut = perc.percolation_thresholds(energy, connectivity, encut=encut)
        np.testing.assert_array_equal(got_cut, np.where(want <= encut, want, np.inf))


@pytest.mark.parametrize("shape", [(1, 5, 6), (2, 5, 4), (2, 2, 3)])
@pytest.mark.parametrize("connectivity", [6, 26])
def test_percolation_thresholds_thin_grids(shape, connectivity):
    """One or two points along an axis: a neighbour may be the point itself, or the same point
    reached through two different lattice shifts."""
    for seed in range(3):
        energy = random_grid(shape, "random", seed)
        np.testing.assert_array_equal(
            perc.percolation_thresholds(energy, connectivity), naive_percolation(energy, connectivity)
        )


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_percolation_cos_landscape(connectivity):
    energy = cos_landscape()
    np.testing.assert_array_equal(perc.percolation_thresholds(energy, connectivity), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(naive_percolation(energy, connectivity), [2.0, 4.0, 6.0])
    # nothing percolates below encut: inf
    np.testing.assert_array_equal(
        perc.percolation_thresholds(energy, connectivity, encut=1.9), [np.inf] * 3
    )
    np.testing.assert_array_equal(
        perc.percolation_thresholds(energy, connectivity, encut=3.0), [2.0, np.inf, np.inf]
    )
    np.testing.assert_array_equal(
        perc.percolation_thresholds(energy, connectivity, encut=4.0), [2.0, 4.0, np.inf]
    )


def test_percolation_diagonal_channel():
    energy = diagonal_channel()
    got = perc.percolation_thresholds(energy, 26)
    np.testing.assert_array_equal(got, naive_percolation(energy, 26))
    assert got[0] == 1.0  # along the channel, over the modulation maximum 0.5 * 2
    assert got[1] > got[0] + 0.5
    got6 = perc.percolation_thresholds(energy, 6)
    np.testing.assert_array_equal(got6, naive_percolation(energy, 6))
    assert got6[0] > got[0]  # 6-connectivity has to leave the diagonal channel
    # isolated wells: the energy never percolates below encut
    x, y, z = frac_grid((6, 6, 6))
    wells = -np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2 + (z - 0.5) ** 2) / 0.01)
    assert (perc.percolation_thresholds(wells, 26, encut=0.5) == np.inf).all()
    want = naive_percolation(wells, 26)
    assert (want > 0.5).all() and np.isfinite(want).all()
    np.testing.assert_array_equal(perc.percolation_thresholds(wells, 26), want)


def kernel_basins(energy, connectivity):
    label, cellof, minima, down, shift = perc.basins(energy, connectivity)
    return label, cellof, minima, down, shift


BASIN_GRIDS = [
    (shape, kind, seed)
    for shape in [(5, 6, 7), (8, 8, 8)]
    for kind in ("random", "smooth", "levels")
    for seed in (0, 1)
]


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("shape,kind,seed", BASIN_GRIDS)
def test_basins_and_saddles_match_naive(shape, kind, seed, connectivity):
    energy = random_grid(shape, kind, seed)
    flat = energy.ravel()
    label, cellof, minima, down, shift = kernel_basins(energy, connectivity)
    n_down, n_shift, n_min, n_cell, n_minima = naive_basins(energy, connectivity)
    np.testing.assert_array_equal(down, n_down)
    np.testing.assert_array_equal(shift, n_shift)
    np.testing.assert_array_equal(np.sort(minima), n_minima)
    # labels up to renaming: name each basin by its minimum
    np.testing.assert_array_equal(minima[label], n_min)
    np.testing.assert_array_equal(cellof, n_cell)
    assert len(minima) > 1 or kind == "levels"

    for emax in (np.inf, float(np.median(flat))):
        ka, kb, kt, ke, kp, kq, ks = perc.boundary_saddles(
            energy, label, cellof, len(minima), connectivity, emax=emax
        )
        got = {}
        for a, b, t, e in zip(ka, kb, kt, ke):
            key = canonical_key(minima[a], minima[b], t)
            assert key not in got, f"duplicate saddle key {key}"
            got[key] = e
        want = naive_saddles(energy, connectivity, emax=emax)
        assert got == want
        # the edge reported with each saddle realises it
        for a, b, t, e, p, q, s in zip(ka, kb, kt, ke, kp, kq, ks):
            assert max(flat[p], flat[q]) == e
            assert label[p] == a and label[q] == b
            np.testing.assert_array_equal(cellof[q] + s - cellof[p], t)
            d = np.array(np.unravel_index(q, shape)) + s * shape - np.array(np.unravel_index(p, shape))
            assert 0 < np.abs(d).sum() and np.abs(d).max() == 1
            assert connectivity == 26 or np.abs(d).sum() == 1


def test_basins_and_saddles_are_named():
    energy = random_grid((5, 6, 7), "smooth", 0)
    b = perc.basins(energy, 26)
    assert isinstance(b, perc.Basins)
    assert b.label is b[0] and b.cell is b[1] and b.minima is b[2] and b.down is b[3] and b.down_shift is b[4]
    s = perc.boundary_saddles(energy, b.label, b.cell, len(b.minima), 26)
    assert isinstance(s, perc.SaddleEdges) and len(s) == 7
    assert s.basin_a is s[0] and s.shift is s[2] and s.energy is s[3] and s.step_shift is s[6]
    low = s.take(s.energy <= np.median(s.energy))
    assert isinstance(low, perc.SaddleEdges) and 0 < len(low.basin_a) < len(s.basin_a)
    assert all(len(x) == len(low.basin_a) for x in low)


def saddle_graph(energy, connectivity):
    label, cellof, minima, down, shift = kernel_basins(energy, connectivity)
    ka, kb, kt, ke, *_ = perc.boundary_saddles(energy, label, cellof, len(minima), connectivity)
    return len(minima), ka, kb, kt, ke, minima


def graph_thresholds(n, a, b, t, w, emin):
    at = perc.graph_percolation(n, a, b, t, w)
    return np.array([w[i] - emin if i >= 0 else np.inf for i in at])


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("shape,kind,seed", BASIN_GRIDS)
def test_graph_percolation_on_saddles_equals_grid(shape, kind, seed, connectivity):
    energy = random_grid(shape, kind, seed)
    n, a, b, t, w, minima = saddle_graph(energy, connectivity)
    emin = energy.min()
    got = graph_thresholds(n, a, b, t, w, emin)
    grid = perc.percolation_thresholds(energy, connectivity)
    np.testing.assert_array_equal(got, grid)
    np.testing.assert_array_equal(naive_graph_percolation(n, a, b, t, w) - emin, grid)


@pytest.mark.parametrize("connectivity", [6, 26])
@pytest.mark.parametrize("shape,kind,seed", BASIN_GRIDS[:8])
def test_essential_edges_and_components(shape, kind, seed, connectivity):
    energy = random_grid(shape, kind, seed)
    n, a, b, t, w, minima = saddle_graph(energy, connectivity)
    emin = energy.min()
    full = graph_thresholds(n, a, b, t, w, emin)
    for tol in (0.0, 1e-9, 0.05):
        keep = perc.essential_edges(n, a, b, t, w, tol=tol)
        if tol < 1e-6:  # groups of (numerically) equal weights: the definition is exact
            np.testing.assert_array_equal(keep, naive_essential_edges(n, a, b, t, w, tol))
        # dropping the inessential edges moves no threshold (by more than the grouping width)
        sub = graph_thresholds(n, a[keep], b[keep], t[keep], w[keep], emin)
        np.testing.assert_allclose(sub, full, rtol=0, atol=tol)
    # components of the saddle graph at a few levels = sublevel components of the grid
    flat = energy.ravel()
    for thr in np.quantile(flat, [0.2, 0.5, 0.8]):
        mask = w <= thr
        roots, nwrap = perc.graph_components(n, a, b, t, mask)
        comp, ranks, _ = graph_clusters(n, a, b, t, mask)
        # same partition of the basins
        pairs = set(zip(roots.tolist(), comp.tolist()))
        assert len(pairs) == len(set(roots.tolist())) == len(set(comp.tolist()))
        np.testing.assert_array_equal(nwrap[roots], ranks[comp])
        active = flat[minima] <= thr
        # on the unit torus (m = 1) the sublevel components of the minima are the same clusters
        lab1, _ = sublevel_components(energy, connectivity, thr, 1)
        lab1 = lab1.ravel()[minima]
        grid_pairs = set(zip(roots[active].tolist(), lab1[active].tolist()))
        assert len(grid_pairs) == len(set(lab1[active].tolist())) == len(set(roots[active].tolist()))
        # and the rank of each cluster is the rank of the grid component of its minimum
        grid_rank = np.maximum(
            component_ranks(energy, connectivity, thr, 2), component_ranks(energy, connectivity, thr, 3)
        )[minima]
        np.testing.assert_array_equal(nwrap[roots][active], grid_rank[active])


def test_essential_edges_cos_landscape():
    energy = cos_landscape()
    n, a, b, t, w, minima = saddle_graph(energy, 26)
    assert n == 1 and len(a) > 3
    m0 = int(minima[0])
    assert {canonical_key(m0, m0, v) for v in t} == set(naive_saddles(energy, 26))
    keep = perc.essential_edges(n, a, b, t, w)
    kept = sorted(tuple(int(x) for x in v) for v in t[keep])
    assert kept == [(0, 0, 1), (0, 1, 0), (1, 0, 0)]
    np.testing.assert_array_equal(np.sort(w[keep]) - energy.min(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(graph_thresholds(n, a, b, t, w, energy.min()), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(
        graph_thresholds(n, a[keep], b[keep], t[keep], w[keep], energy.min()), [2.0, 4.0, 6.0]
    )


@pytest.mark.parametrize("connectivity", [6, 26])
def test_descent_path(connectivity):
    energy = random_grid((8, 8, 8), "smooth", 3)
    flat = energy.ravel()
    label, cellof, minima, down, shift = kernel_basins(energy, connectivity)
    rng = np.random.default_rng(0)
    lengths = []
    for p in rng.choice(flat.size, 40, replace=False):
        pts, cells = perc.descent_path(int(p), down, shift)
        assert pts[0] == p and down[pts[-1]] == pts[-1] and pts[-1] in minima
        assert pts[-1] == minima[label[p]]
        np.testing.assert_array_equal(cells[-1], cellof[p])
        e = flat[pts]
        assert (np.diff(e) <= 0).all()
        assert len(set(pts.tolist())) == len(pts)
        for x, y, cx, cy in zip(pts[:-1], pts[1:], cells[:-1], cells[1:]):
            d = (np.array(np.unravel_index(y, energy.shape)) + (cy - cx) * energy.shape
                 - np.array(np.unravel_index(x, energy.shape)))
            assert np.abs(d).max() == 1 and (connectivity == 26 or np.abs(d).sum() == 1)
        lengths.append(len(pts))
    assert max(lengths) > 2


# ============================================================================ a real crystal

SPINEL_A = 8.333
MG_O = (1.575539, 1.953125, 1.956265)  # softBV Morse row Mg2+–O2-: d0, alpha, r_min
CR_PREF = 14.4 * (2 / np.sqrt(3)) * (3 / np.sqrt(4))  # q_Mg q_Cr, q = V / sqrt(n)
CR_INV_RHO = 1 / (0.74 * (1.41 + 1.39))


@functools.cache
def spinel():
    """MgCr2O4 built by hand; returns (cell, frac, symbols) of the conventional cubic cell."""
    from pymatgen.core import Lattice, Structure

    settings = {
        "origin 1": [[0, 0, 0], [0.625] * 3, [0.3862] * 3],
        "origin 2": [[0.125] * 3, [0.5] * 3, [0.2612] * 3],
    }
    for coords in settings.values():
        s = Structure.from_spacegroup("Fd-3m", Lattice.cubic(SPINEL_A), ["Mg", "Cr", "O"], coords)
        counts = s.composition.get_el_amt_dict()
        if counts == {"Mg": 8, "Cr": 16, "O": 32}:
            break
    else:
        raise AssertionError("no setting of Fd-3m gave Mg8 Cr16 O32")
    sym = np.array([site.specie.symbol for site in s])
    dm = s.distance_matrix
    assert abs(dm[np.ix_(sym == "Mg", sym == "O")].min() - 1.97) < 0.01
    assert abs(dm[np.ix_(sym == "Cr", sym == "O")].min() - 1.99) < 0.01
    return np.array(s.lattice.matrix), np.array(s.frac_coords), sym


def spinel_framework_arrays(cell, frac, sym):
    keep = sym != "Mg"
    species = np.where(sym[keep] == "O", 0, 1)
    return cell, frac[keep], species


def skewed_primitive(cell, frac, sym):
    """The same crystal in a strongly triclinic primitive basis (angles 19°, 24°, 41°)."""
    prim = SPINEL_A / 2 * np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])
    new = np.array([[1, 0, 0], [2, 1, 0], [1, 2, 1]]) @ prim
    f = (frac @ cell @ np.linalg.inv(new)) % 1.0
    f = np.where(f > 1 - 1e-9, 0.0, f)
    _, first = np.unique(np.round(f, 6), axis=0, return_index=True)
    first = np.sort(first)
    return new, f[first], sym[first]


SPINEL_MODEL = bvse.PairModel(
    np.array([MORSE, COULOMB]), np.array([MG_O, (CR_PREF, CR_INV_RHO, 0.0)])
)
SPINEL_CUTOFF = 7.0


def spinel_naive(cell, frac, species, points):
    m = SPINEL_MODEL
    return naive_energy(cell, frac, species, m.kind, m.params, m.wall2, m.wall_energy,
                        SPINEL_CUTOFF, points)


@functools.cache
def spinel_grid():
    cell, frac, species = spinel_framework_arrays(*spinel())
    fw = bvse.Framework(cell, frac, species, SPINEL_CUTOFF)
    e = bvse.grid_energies(fw, SPINEL_MODEL, (12, 12, 12))
    return e, spinel_naive(cell, frac, species, grid_points(cell, (12, 12, 12)))


def test_spinel_grid_exact_and_table():
    e, ref = spinel_grid()
    np.testing.assert_allclose(e.ravel(), ref, rtol=1e-9, atol=1e-9)
    cell, frac, species = spinel_framework_arrays(*spinel())
    fw = bvse.Framework(cell, frac, species, SPINEL_CUTOFF)
    tab = bvse.grid_energies(fw, SPINEL_MODEL, (12, 12, 12), mode="table").ravel()
    low = ref < ref.min() + 5.0
    assert low.sum() > 20
    assert np.abs(tab[low] - ref[low]).max() <= 2e-3


def test_spinel_skewed_cell_same_energies():
    full_cell, full_frac, sym = spinel()
    cell, frac, species = spinel_framework_arrays(full_cell, full_frac, sym)
    scell, sfrac, ssym = skewed_primitive(full_cell, full_frac, sym)
    assert sorted(ssym.tolist()) == sorted(["Mg"] * 2 + ["Cr"] * 4 + ["O"] * 8)
    assert heights(scell).min() < 1.2  # strongly triclinic
    scell, sfrac, sspecies = spinel_framework_arrays(scell, sfrac, ssym)
    fw = bvse.Framework(cell, frac, species, SPINEL_CUTOFF)
    sfw = bvse.Framework(scell, sfrac, sspecies, SPINEL_CUTOFF)

    rng = np.random.default_rng(2)
    pts = rng.uniform(-4.0, 12.0, (30, 3))
    ref = spinel_naive(cell, frac, species, pts)
    np.testing.assert_allclose(spinel_naive(scell, sfrac, sspecies, pts), ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bvse.point_energies(fw, SPINEL_MODEL, pts)[0], ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(bvse.point_energies(sfw, SPINEL_MODEL, pts)[0], ref, rtol=1e-9, atol=1e-9)

    # the grid of the skewed cell, checked against the cubic cell at the same Cartesian points
    shape = (6, 14, 17)
    e = bvse.grid_energies(sfw, SPINEL_MODEL, shape)
    ref_grid = spinel_naive(cell, frac, species, grid_points(scell, shape))
    np.testing.assert_allclose(e.ravel(), ref_grid, rtol=1e-9, atol=1e-9)

    # the eight Mg (8a) sites are symmetry-equivalent: one energy, in both cells
    mg = full_frac[sym == "Mg"] @ full_cell
    e_mg = bvse.point_energies(fw, SPINEL_MODEL, mg)[0]
    e_mg_s = bvse.point_energies(sfw, SPINEL_MODEL, mg)[0]
    np.testing.assert_allclose(e_mg, e_mg[0], rtol=1e-9)
    np.testing.assert_allclose(e_mg_s, e_mg, rtol=1e-9)
    assert e_mg[0] < 0.0  # a bound site
    g = bvse.point_energies(fw, SPINEL_MODEL, mg)[1]
    assert np.abs(g).max() < 1e-8  # and a stationary point (site symmetry -43m)


def test_spinel_percolation():
    e, _ = spinel_grid()
    got = perc.percolation_thresholds(e, 26)
    np.testing.assert_array_equal(got, naive_percolation(e, 26))
    assert np.isfinite(got).all()
    # cubic: the first channel network is 3D at once (symmetry-equivalent grid points differ
    # in the last bits only)
    np.testing.assert_allclose(got, got[0], rtol=0, atol=1e-9)
    assert 0.2 < got[0] < 1.5
