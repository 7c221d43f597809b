"""Naive NumPy / SciPy reference implementations of the numba kernels (slow, obviously correct).

Nothing here imports numba or reuses kernel code: the formulas are written again from the
docstrings of ``kernels/bvse.py`` and ``kernels/percolation.py`` in the most direct way, so
that a test comparing a kernel with its reference here can catch a wrong formula, a missed
periodic image, a wrong lattice shift or a wrong union-find offset.

* Energies: brute force over a block of lattice translations that is computed from the
  cutoff, the perpendicular heights of the cell and the spread of the fractional coordinates
  (with a margin), so no image can be missed, whatever the cell shape.
* Gradients and Hessians: central finite differences of the naive energy.
* Percolation: explicit sublevel sets labelled with ``scipy.sparse.csgraph`` on periodic tori
  of m x m x m copies of the grid; a cluster whose wrapping lattice has rank k contains m**k
  copies of each of its points (for prime m; we take the max over m = 2 and 3).
* Basins and saddles: lowest neighbour by (energy, flat index), pointer chasing in Python.
* Grid symmetry orbits: every operation applied to every grid point in fractional
  coordinates; a point's representative is the lowest index among its images.
* Symmetry classes of sites and hops: every pair of sites (hops) tested against every
  operation, the lattice translation found by trying the corners of the cell around the
  difference, then the transitive closure; classes numbered in order of first appearance.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import erfc

# the kind codes are part of the kernels' interface (kernels/bvse.py docstring)
NONE, MORSE, COULOMB = 0, 1, 2
R2_FLOOR = 1e-12  # documented: a point on top of an atom gets a huge but finite energy


# ----------------------------------------------------------------------------- geometry


def heights(cell: np.ndarray) -> np.ndarray:
    """Perpendicular heights of the cell: 1 / |reciprocal vector| (rows are lattice vectors)."""
    recip = np.linalg.inv(np.asarray(cell, dtype=float))  # columns are reciprocal vectors
    return 1.0 / np.linalg.norm(recip, axis=0)


def translation_block(cell, frac_atoms, frac_points, reach) -> np.ndarray:
    """Every lattice shift s that can put an atom f + s within ``reach`` of a point g.

    Along axis i, |(f + s - g)_i| * h_i <= |f + s - g| must hold, so s_i lies in
    [g_i - f_i - reach/h_i, g_i - f_i + reach/h_i]; we take the union over all atoms and
    points and add one more shift on each side.
    """
    h = heights(cell)
    f = np.atleast_2d(frac_atoms)
    g = np.atleast_2d(frac_points)
    lo = np.floor(g.min(axis=0) - f.max(axis=0) - reach / h).astype(int) - 1
    hi = np.ceil(g.max(axis=0) - f.min(axis=0) + reach / h).astype(int) + 1
    ranges = [np.arange(lo[i], hi[i] + 1) for i in range(3)]
    return np.array(list(itertools.product(*ranges)), dtype=np.int64)


def naive_images(frac, cell, points_cart, cutoff) -> set[tuple[int, int, int, int]]:
    """Set of (atom index, s0, s1, s2) whose image (frac % 1 + s) @ cell lies strictly within
    ``cutoff`` of at least one of ``points_cart``."""
    cell = np.asarray(cell, dtype=float)
    f = np.asarray(frac, dtype=float) % 1.0
    pts = np.atleast_2d(np.asarray(points_cart, dtype=float))
    g = pts @ np.linalg.inv(cell)
    shifts = translation_block(cell, f, g, cutoff)
    found = set()
    for a in range(f.shape[0]):
        pos = (f[a][None, :] + shifts) @ cell  # (S, 3)
        d2 = ((pos[:, None, :] - pts[None, :, :]) ** 2).sum(axis=2)  # (S, P)
        for s in np.nonzero((d2 < cutoff * cutoff).any(axis=1))[0]:
            found.add((a, int(shifts[s, 0]), int(shifts[s, 1]), int(shifts[s, 2])))
    return found


def pair_terms(kind: int, p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """One species' pair energy at distances r, written from the softBV formulas."""
    if kind == MORSE:
        d0, alpha, r_min = p
        return 0.5 * d0 * ((np.exp(alpha * (r_min - r)) - 1.0) ** 2 - 1.0)
    if kind == COULOMB:
        pref, inv_rho = p[0], p[1]
        return pref * erfc(r * inv_rho) / r
    return np.zeros_like(r)


def _all_images(cell, frac, species, frac_points, cutoff):
    shifts = translation_block(cell, frac, frac_points, cutoff)
    img_frac = (np.asarray(frac, float)[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    img_sp = np.tile(np.asarray(species, dtype=np.int64), shifts.shape[0])
    return img_frac @ cell, img_sp


def naive_energy(
    cell, frac, species, model_kind, model_params, wall2, wall_energy, cutoff, points_cart,
    chunk: int = 32, return_pairs: bool = False,
):
    """Energy of the mobile ion at Cartesian points: sum over every atom image with r < cutoff.

    No wrapping of atoms or points is needed: the translation block covers all of them.
    The hard wall adds ``wall_energy`` for each image with r² < wall2[species] (and r < cutoff).
    """
    cell = np.asarray(cell, dtype=float)
    pts = np.atleast_2d(np.asarray(points_cart, dtype=float))
    kinds = np.asarray(model_kind)
    params = np.asarray(model_params, dtype=float)
    wall2 = np.asarray(wall2, dtype=float)
    g = pts @ np.linalg.inv(cell)
    img_pos, img_sp = _all_images(cell, frac, species, g, cutoff)
    out = np.zeros(pts.shape[0])
    npairs = 0
    rc2 = cutoff * cutoff
    for c0 in range(0, pts.shape[0], chunk):
        p = pts[c0 : c0 + chunk]
        d2 = ((img_pos[None, :, :] - p[:, None, :]) ** 2).sum(axis=2)  # (P, M)
        inside = d2 < rc2
        npairs += int(inside.sum())
        e = np.zeros_like(d2)
        for s in range(kinds.shape[0]):
            m = inside & (img_sp[None, :] == s)
            if not m.any():
                continue
            r = np.sqrt(np.maximum(d2[m], R2_FLOOR))
            e[m] = pair_terms(int(kinds[s]), params[s], r)
            e[m] += np.where(d2[m] < wall2[s], wall_energy, 0.0)
        out[c0 : c0 + chunk] = e.sum(axis=1)
    return (out, npairs) if return_pairs else out


def grid_points(cell, shape) -> np.ndarray:
    """Cartesian points of the fractional grid i/na, j/nb, k/nc in C order."""
    na, nb, nc = shape
    f = np.stack(
        np.meshgrid(np.arange(na) / na, np.arange(nb) / nb, np.arange(nc) / nc, indexing="ij"), axis=-1
    ).reshape(-1, 3)
    return f @ np.asarray(cell, dtype=float)


def naive_gradient(energy_fn, points, h: float = 1e-4) -> np.ndarray:
    """Central differences: (E(x + h e_i) - E(x - h e_i)) / 2h."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    grad = np.zeros_like(pts)
    for i in range(3):
        step = np.zeros(3)
        step[i] = h
        grad[:, i] = (energy_fn(pts + step) - energy_fn(pts - step)) / (2 * h)
    return grad


def naive_hessian(energy_fn, points, h: float = 1e-3) -> np.ndarray:
    """Central second differences of the energy (4-point formula off the diagonal)."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    hess = np.zeros((pts.shape[0], 3, 3))
    e0 = energy_fn(pts)
    eye = np.eye(3) * h
    for i in range(3):
        hess[:, i, i] = (energy_fn(pts + eye[i]) - 2 * e0 + energy_fn(pts - eye[i])) / (h * h)
        for j in range(i + 1, 3):
            v = (
                energy_fn(pts + eye[i] + eye[j]) - energy_fn(pts + eye[i] - eye[j])
                - energy_fn(pts - eye[i] + eye[j]) + energy_fn(pts - eye[i] - eye[j])
            ) / (4 * h * h)
            hess[:, i, j] = v
            hess[:, j, i] = v
    return hess


# ----------------------------------------------------------------------------- grids


def directions(connectivity: int) -> list[tuple[int, int, int]]:
    """All steps in {-1,0,1}^3 minus 0 with 1 (6), <= 2 (18) or <= 3 (26) non-zero components."""
    limit = {6: 1, 18: 2, 26: 3}[connectivity]
    return [
        d for d in itertools.product((-1, 0, 1), repeat=3) if 0 < sum(map(abs, d)) <= limit
    ]


def _neighbour(shape, i, j, k, d):
    """Neighbour (flat index) of point (i, j, k) along d, and the lattice shift crossed."""
    na, nb, nc = shape
    ii, jj, kk = i + d[0], j + d[1], k + d[2]
    shift = (ii // na, jj // nb, kk // nc)
    q = ((ii % na) * nb + (jj % nb)) * nc + (kk % nc)
    return q, shift


def sublevel_components(energy, connectivity, threshold, m):
    """Label {E <= threshold} on a periodic torus of m x m x m copies of the grid.

    Returns (labels of the big grid, -1 where inactive; count of copies of each unit-cell point
    per component, as an array indexed by component).
    """
    energy = np.asarray(energy, dtype=float)
    shape = energy.shape
    big = np.tile(energy <= threshold, (m, m, m))
    size = big.size
    idx = np.arange(size).reshape(big.shape)
    rows, cols = [], []
    for d in directions(connectivity):
        if d < (0, 0, 0):
            continue  # the graph is undirected: one of each +/- pair of steps is enough
        # nbr[I] = idx[I + d] and act_nbr[I] = big[I + d] on the big torus
        nbr = np.roll(idx, shift=(-d[0], -d[1], -d[2]), axis=(0, 1, 2))
        act_nbr = np.roll(big, shift=(-d[0], -d[1], -d[2]), axis=(0, 1, 2))
        both = big & act_nbr
        rows.append(idx[both])
        cols.append(nbr[both])
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    graph = coo_matrix((np.ones(rows.size), (rows, cols)), shape=(size, size)).tocsr()
    _, lab = connected_components(graph, directed=False)
    lab = np.where(big.ravel(), lab, -1)
    # unit-cell point of every node of the big grid
    ii, jj, kk = np.indices(big.shape)
    cellpt = (((ii % shape[0]) * shape[1] + (jj % shape[1])) * shape[2] + (kk % shape[2])).ravel()
    act = lab >= 0
    # relabel components 0..n-1
    uniq, comp = np.unique(lab[act], return_inverse=True)
    ncomp = uniq.size
    counts = np.zeros(ncomp, dtype=np.int64)
    if ncomp:
        # sorted keys, so the pairs of one component are contiguous and in component order
        pairs, pair_count = np.unique(comp * energy.size + cellpt[act], return_counts=True)
        owner = pairs // energy.size
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        lo = np.minimum.reduceat(pair_count, starts)
        hi = np.maximum.reduceat(pair_count, starts)
        # every point of a component has the same number of copies in it (translations)
        assert (lo == hi).all(), "inconsistent copy counts"
        counts[owner[starts]] = lo
    full = np.full(size, -1, dtype=np.int64)
    full[act] = comp
    return full.reshape(big.shape), counts


def _rank_from_count(count: int, m: int) -> int:
    k = int(round(math.log(count) / math.log(m)))
    assert m**k == count, f"{count} copies is not a power of {m}"
    return k


def component_ranks(energy, connectivity, threshold, m):
    """Percolation rank (seen on the m-torus) of the component of every unit-cell point in cell
    0, -1 for inactive points; flat array over the unit grid."""
    labels, counts = sublevel_components(energy, connectivity, threshold, m)
    na, nb, nc = np.asarray(energy).shape
    lab0 = labels[:na, :nb, :nc].ravel()
    ranks = np.array([_rank_from_count(int(c), m) for c in counts], dtype=np.int64)
    out = np.full(lab0.size, -1, dtype=np.int64)
    out[lab0 >= 0] = ranks[lab0[lab0 >= 0]]
    return out


def max_rank(energy, connectivity, threshold) -> int:
    """Largest percolation dimension of the sublevel set {E <= threshold} (max over m = 2, 3)."""
    best = 0
    for m in (2, 3):
        _, counts = sublevel_components(energy, connectivity, threshold, m)
        for c in np.unique(counts):
            best = max(best, _rank_from_count(int(c), m))
    return best


def naive_percolation(energy, connectivity, encut: float = np.inf) -> np.ndarray:
    """E1D, E2D, E3D relative to the grid minimum; inf if the rank is never reached (or only
    above ``encut``). Bisection over the sorted unique energies (the rank is monotone)."""
    energy = np.asarray(energy, dtype=float)
    levels = np.unique(energy)
    emin = levels[0]
    memo: dict[int, int] = {}

    def rank(i: int) -> int:
        if i not in memo:
            memo[i] = max_rank(energy, connectivity, levels[i])
        return memo[i]

    out = np.full(3, np.inf)
    for k in (1, 2, 3):
        if rank(levels.size - 1) < k:
            continue
        lo, hi = -1, levels.size - 1  # rank(lo) < k (virtual), rank(hi) >= k
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if rank(mid) >= k:
                hi = mid
            else:
                lo = mid
        if levels[hi] <= emin + encut:
            out[k - 1] = levels[hi] - emin
    return out


def naive_basins(energy, connectivity):
    """Steepest descent by the strict order (energy, flat index), over the point and its
    neighbours. Returns (down, shift, minimum, cell, minima):

    down[p], shift[p]: lowest of p and its neighbours and the lattice shift crossed to it;
    minimum[p]: flat index of the minimum that p descends to; cell[p]: lattice cell of that
    minimum's copy (sum of the shifts along the descent); minima: sorted minimum indices.
    Assumes every grid dimension is >= 3, so that the 26 neighbours are distinct points.
    """
    energy = np.asarray(energy, dtype=float)
    shape = energy.shape
    flat = energy.ravel()
    n = flat.size
    dirs = directions(connectivity)
    down = np.empty(n, dtype=np.int64)
    shift = np.zeros((n, 3), dtype=np.int64)
    for p in range(n):
        i, j, k = np.unravel_index(p, shape)
        best, bshift = p, (0, 0, 0)
        for d in dirs:
            q, s = _neighbour(shape, i, j, k, d)
            if (flat[q], q) < (flat[best], best):
                best, bshift = q, s
        down[p] = best
        shift[p] = bshift
    minimum = np.empty(n, dtype=np.int64)
    cell = np.zeros((n, 3), dtype=np.int64)
    for p in range(n):
        x = p
        acc = np.zeros(3, dtype=np.int64)
        steps = 0
        while down[x] != x:
            acc += shift[x]
            x = down[x]
            steps += 1
            assert steps <= n, "descent cycle"
        minimum[p] = x
        cell[p] = acc
    minima = np.array(sorted(set(minimum.tolist())), dtype=np.int64)
    return down, shift, minimum, cell, minima


def canonical_key(a: int, b: int, t) -> tuple[int, int, int, int, int]:
    """(a, b, t) and (b, a, -t) are the same hop: keep a < b, or a == b with t > 0 (lex)."""
    t = tuple(int(x) for x in t)
    if a > b or (a == b and t < (0, 0, 0)):
        a, b, t = b, a, tuple(-x for x in t)
    return (int(a), int(b), *t)


def naive_saddles(energy, connectivity, emax: float = np.inf) -> dict:
    """{canonical (basin a, basin b, t): lowest max(E_p, E_q) over edges between the copies}.

    Basins are named by the flat index of their minimum; t is the lattice vector from the
    copy of a to the copy of b. Every edge is visited from both ends (all directions).
    """
    energy = np.asarray(energy, dtype=float)
    shape = energy.shape
    flat = energy.ravel()
    _, _, minimum, cell, _ = naive_basins(energy, connectivity)
    out: dict = {}
    for p in range(flat.size):
        if flat[p] > emax:
            continue
        i, j, k = np.unravel_index(p, shape)
        for d in directions(connectivity):
            q, s = _neighbour(shape, i, j, k, d)
            if flat[q] > emax:
                continue
            t = cell[q] + np.asarray(s) - cell[p]
            a, b = minimum[p], minimum[q]
            if a == b and not t.any():
                continue
            key = canonical_key(a, b, t)
            e = max(flat[p], flat[q])
            if key not in out or e < out[key]:
                out[key] = e
    return out


# ----------------------------------------------------------------------------- periodic graphs


def graph_clusters(n_nodes: int, a, b, t, mask=None):
    """Clusters of a periodic graph (edge e joins node a[e] in cell 0 to node b[e] in cell t[e]).

    Breadth-first search gives every node the cell of the copy reached from its cluster's
    seed; every edge that closes a cycle contributes the lattice vector of that cycle, and a
    cluster's percolation rank is the rank of those vectors. Returns (component of every node,
    rank of every component, cell of every node).
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64).reshape(-1, 3)
    use = np.ones(a.size, bool) if mask is None else np.asarray(mask, bool)
    adj: list[list[tuple[int, np.ndarray]]] = [[] for _ in range(n_nodes)]
    for e in np.flatnonzero(use):
        adj[a[e]].append((int(b[e]), t[e]))
        adj[b[e]].append((int(a[e]), -t[e]))
    comp = np.full(n_nodes, -1, dtype=np.int64)
    pos = np.zeros((n_nodes, 3), dtype=np.int64)
    ranks = []
    for seed in range(n_nodes):
        if comp[seed] >= 0:
            continue
        c = len(ranks)
        comp[seed] = c
        queue = [seed]
        cycles = []
        while queue:
            x = queue.pop()
            for y, ty in adj[x]:
                target = pos[x] + ty
                if comp[y] < 0:
                    comp[y] = c
                    pos[y] = target
                    queue.append(y)
                elif (target != pos[y]).any():
                    cycles.append(target - pos[y])
        ranks.append(int(np.linalg.matrix_rank(np.array(cycles, float))) if cycles else 0)
    return comp, np.array(ranks, dtype=np.int64), pos


def naive_graph_percolation(n_nodes: int, a, b, t, weight) -> np.ndarray:
    """Lowest weight w at which the edges of weight <= w give rank 1, 2, 3 (inf if never)."""
    weight = np.asarray(weight, dtype=float)
    out = np.full(3, np.inf)
    for w in np.unique(weight):
        _, ranks, _ = graph_clusters(n_nodes, a, b, t, weight <= w)
        r = int(ranks.max()) if ranks.size else 0
        for k in range(r):
            out[k] = min(out[k], w)
    return out


def naive_essential_edges(n_nodes: int, a, b, t, weight, tol: float) -> np.ndarray:
    """An edge is essential if, with only the edges lighter than weight - tol, its ends are in
    different clusters or its cycle adds a new independent wrapping vector."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    t = np.asarray(t, dtype=np.int64).reshape(-1, 3)
    weight = np.asarray(weight, dtype=float)
    keep = np.zeros(a.size, bool)
    for e in range(a.size):
        lower = weight < weight[e] - tol
        comp, _, pos = graph_clusters(n_nodes, a, b, t, lower)
        if comp[a[e]] != comp[b[e]]:
            keep[e] = True
            continue
        # wrapping vectors of the cluster with the lighter edges, then with this edge added
        members = [x for x in range(a.size) if lower[x] and comp[a[x]] == comp[a[e]]]
        cyc = [pos[a[x]] + t[x] - pos[b[x]] for x in members]
        base = np.array(cyc, float).reshape(-1, 3)
        new = np.vstack([base, pos[a[e]] + t[e] - pos[b[e]]])
        keep[e] = np.linalg.matrix_rank(new) > (np.linalg.matrix_rank(base) if base.size else 0)
    return keep


# ----------------------------------------------------------------------------- force field


def naive_bvff_energy(cell, positions, species, kind, params, cutoff, shifted=True) -> float:
    """Total pair energy of a periodic cell, by brute force over a block of translations.

    E = ½ Σ_i Σ_(j, T) ≠ (i, 0), r < cutoff  [u_ij(r) − u_ij(cutoff) if shifted], with the pair
    kind and parameters of the two species (kernels/bvff.py docstring).
    """
    cell = np.asarray(cell, dtype=float)
    pos = np.asarray(positions, dtype=float)
    species = np.asarray(species)
    frac = pos @ np.linalg.inv(cell)
    shifts = translation_block(cell, frac, frac, cutoff)
    total = 0.0
    for i in range(pos.shape[0]):
        for j in range(pos.shape[0]):
            k = int(kind[species[i], species[j]])
            if k == NONE:
                continue
            p = np.asarray(params[species[i], species[j]], dtype=float)
            d = pos[j][None, :] + shifts @ cell - pos[i][None, :]
            r = np.sqrt((d * d).sum(axis=1))
            r = r[(r < cutoff) & (r > 1e-9)]
            e = pair_terms(k, p, r)
            if shifted:
                e = e - pair_terms(k, p, np.array([cutoff]))[0]
            total += 0.5 * e.sum()
    return total


def naive_bvff_forces(cell, positions, species, kind, params, cutoff, h=1e-5) -> np.ndarray:
    """Forces as central finite differences of the naive energy."""
    pos = np.asarray(positions, dtype=float)
    out = np.zeros_like(pos)
    for i in range(pos.shape[0]):
        for x in range(3):
            p1, p2 = pos.copy(), pos.copy()
            p1[i, x] += h
            p2[i, x] -= h
            e1 = naive_bvff_energy(cell, p1, species, kind, params, cutoff)
            e2 = naive_bvff_energy(cell, p2, species, kind, params, cutoff)
            out[i, x] = -(e1 - e2) / (2 * h)
    return out


def naive_bvff_stress(cell, positions, species, kind, params, cutoff, h=1e-5) -> np.ndarray:
    """Stress (1/V) dE/dε by central differences of a symmetric strain of cell and atoms."""
    cell = np.asarray(cell, dtype=float)
    pos = np.asarray(positions, dtype=float)
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] += 0.5 * h
            eps[b, a] += 0.5 * h
            es = []
            for sign in (1, -1):
                m = np.eye(3) + sign * eps
                es.append(naive_bvff_energy(cell @ m, pos @ m, species, kind, params, cutoff))
            out[a, b] = (es[0] - es[1]) / (2 * h) / abs(np.linalg.det(cell))
    return out


# ----------------------------------------------------------------------------- symmetry


def naive_representatives(shape, rotations, translations) -> np.ndarray:
    """Orbit minimum of every grid point by applying every operation in fractional coordinates."""
    n = np.array(shape)
    idx = np.indices(shape).reshape(3, -1).T  # (N, 3) grid indices
    frac = idx / n
    rep = np.arange(len(idx))
    for r, t in zip(rotations, translations):
        x = (frac @ np.asarray(r).T + t) * n
        assert np.abs(x - np.round(x)).max() < 1e-6  # the operation maps grid points to grid points
        g = np.round(x).astype(int) % n
        rep = np.minimum(rep, np.ravel_multi_index(g.T, shape))
    return rep  # the images of a point under a group are its whole orbit


_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))


def _lattice_translations(d, lattice, tol):
    """For fractional differences ``d`` (O, 3): the 8 integer L per row that can bring d + L
    within ``tol`` of the origin, and which of them do (Cartesian length < tol).

    Such an L takes ``d`` to within tol of the origin, so -L is a corner of the unit cube
    around ``d``: floor(d) + c with c in {0, 1}^3 (tol below the cell's perpendicular heights).
    Returns L (8, O, 3) and the mask (8, O).
    """
    L = -(np.floor(d)[None, :, :] + _CORNERS[:, None, :])
    return L, np.linalg.norm((d[None] + L) @ lattice, axis=-1) < tol


def _closure_labels(equivalent: np.ndarray) -> np.ndarray:
    """Classes of the transitive closure of a relation, numbered in order of first member."""
    n = len(equivalent)
    _, comp = connected_components(coo_matrix(equivalent.astype(int)), directed=False)
    labels = -np.ones(n, dtype=int)
    seen: dict[int, int] = {}
    for i in range(n):
        labels[i] = seen.setdefault(int(comp[i]), len(seen))
    return labels


def naive_classify_sites(frac, rotations, translations, lattice, tol) -> np.ndarray:
    """Site i ~ site j when an operation maps i onto a lattice translate of j (within ``tol`` Å)."""
    frac = np.asarray(frac, dtype=float)
    lattice = np.asarray(lattice, dtype=float)
    rot, tr = np.asarray(rotations, dtype=float), np.asarray(translations, dtype=float)
    n = len(frac)
    eq = np.zeros((n, n), dtype=bool)
    for i in range(n):
        images = np.einsum("oij,j->oi", rot, frac[i]) + tr  # site i under every operation
        for j in range(n):
            eq[i, j] = _lattice_translations(images - frac[j], lattice, tol)[1].any()
    return _closure_labels(eq)


def naive_classify_hops(ends, rotations, translations, lattice, tol) -> np.ndarray:
    """Hop k ~ hop m when one operation and one lattice translation map both ends of k onto the
    ends of m, in either orientation (within ``tol`` Å)."""
    lattice = np.asarray(lattice, dtype=float)
    rot, tr = np.asarray(rotations, dtype=float), np.asarray(translations, dtype=float)
    ends = [(np.asarray(a, dtype=float), np.asarray(b, dtype=float)) for a, b in ends]
    n = len(ends)
    eq = np.zeros((n, n), dtype=bool)
    for k, (a, b) in enumerate(ends):
        ga = np.einsum("oij,j->oi", rot, a) + tr  # both ends under every operation
        gb = np.einsum("oij,j->oi", rot, b) + tr
        for m, (x, y) in enumerate(ends):
            for p, q in ((x, y), (y, x)):
                L, first = _lattice_translations(ga - p, lattice, tol)  # L that puts a onto p
                second = np.linalg.norm((gb[None] + L - q) @ lattice, axis=-1) < tol  # same L, b onto q
                eq[k, m] |= bool((first & second).any())
    return _closure_labels(eq)
