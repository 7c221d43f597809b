"""Percolation thresholds, basins and saddles of a periodic 3D energy grid.

One energy-sorted union-find sweep with periodic offset tracking gives E1D/E2D/E3D exactly to
the grid: every node keeps the lattice vector ``rel`` that takes its copy in cell 0 to the
copy of its root it is connected to. A union of two nodes already sharing a root, whose
offsets disagree, closes a cycle that wraps the crystal: its accumulated lattice vector is a
wrapping vector (Newman & Ziff, PRE 64 (2001) 016706). A cluster's percolation dimension is
the rank of its wrapping vectors (up to 3 independent ones are kept per root).

Basins come from steepest descent on the grid (each point points at its lowest neighbour);
saddles between neighbouring basins are the lowest boundary edges, ``max(E_p, E_q)``, keyed by
the two basins and the lattice vector between their copies. That hop graph percolates at the
same thresholds as the grid (minimax paths cross basin boundaries at those edges).
"""

from __future__ import annotations

from typing import NamedTuple

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


@nb.njit(cache=True)
def _find(parent, rel, x, out):
    """Root of ``x`` with path compression; writes the lattice vector x -> root into ``out``."""
    r = x
    t0 = 0
    t1 = 0
    t2 = 0
    while parent[r] != r:
        t0 += rel[r, 0]
        t1 += rel[r, 1]
        t2 += rel[r, 2]
        r = parent[r]
    out[0], out[1], out[2] = t0, t1, t2
    # compress: every node on the path points at the root with its total offset
    y = x
    while parent[y] != y:
        nxt = parent[y]
        r0, r1, r2 = rel[y, 0], rel[y, 1], rel[y, 2]
        rel[y, 0], rel[y, 1], rel[y, 2] = t0, t1, t2
        parent[y] = r
        t0 -= r0
        t1 -= r1
        t2 -= r2
        y = nxt
    return r


@nb.njit(cache=True)
def _add_wrap(nwrap, wraps, root, w0, w1, w2):
    """Add a wrapping vector to a root's basis if it is independent; return the new rank."""
    n = nwrap[root]
    if w0 == 0 and w1 == 0 and w2 == 0:
        return n
    if n == 0:
        indep = True
    elif n == 1:
        a0, a1, a2 = wraps[root, 0, 0], wraps[root, 0, 1], wraps[root, 0, 2]
        c0 = a1 * w2 - a2 * w1
        c1 = a2 * w0 - a0 * w2
        c2 = a0 * w1 - a1 * w0
        indep = c0 != 0 or c1 != 0 or c2 != 0
    elif n == 2:
        a0, a1, a2 = wraps[root, 0, 0], wraps[root, 0, 1], wraps[root, 0, 2]
        b0, b1, b2 = wraps[root, 1, 0], wraps[root, 1, 1], wraps[root, 1, 2]
        det = a0 * (b1 * w2 - b2 * w1) - a1 * (b0 * w2 - b2 * w0) + a2 * (b0 * w1 - b1 * w0)
        indep = det != 0
    else:
        indep = False
    if indep:
        wraps[root, n, 0] = w0
        wraps[root, n, 1] = w1
        wraps[root, n, 2] = w2
        nwrap[root] = n + 1
    return nwrap[root]


@nb.njit(cache=True)
def _union(parent, rel, size, nwrap, wraps, p, q, s0, s1, s2, tmp_p, tmp_q):
    """Join node ``p`` (cell 0) with node ``q`` in cell ``s``; return the root's rank."""
    ra = _find(parent, rel, p, tmp_p)
    rb = _find(parent, rel, q, tmp_q)
    if ra == rb:
        return _add_wrap(
            nwrap, wraps, ra, s0 + tmp_q[0] - tmp_p[0], s1 + tmp_q[1] - tmp_p[1], s2 + tmp_q[2] - tmp_p[2]
        )
    # (ra, rel_p) ~ (rb, s + rel_q): attach the smaller tree below the larger
    if size[ra] >= size[rb]:
        parent[rb] = ra
        rel[rb, 0] = tmp_p[0] - s0 - tmp_q[0]
        rel[rb, 1] = tmp_p[1] - s1 - tmp_q[1]
        rel[rb, 2] = tmp_p[2] - s2 - tmp_q[2]
        size[ra] += size[rb]
        root, child = ra, rb
    else:
        parent[ra] = rb
        rel[ra, 0] = s0 + tmp_q[0] - tmp_p[0]
        rel[ra, 1] = s1 + tmp_q[1] - tmp_p[1]
        rel[ra, 2] = s2 + tmp_q[2] - tmp_p[2]
        size[rb] += size[ra]
        root, child = rb, ra
    for t in range(nwrap[child]):
        _add_wrap(nwrap, wraps, root, wraps[child, t, 0], wraps[child, t, 1], wraps[child, t, 2])
    return nwrap[root]


@nb.njit(cache=True)
def _percolation_sweep(energy, order, shape, dirs, emax):
    """Energies at which the first 1D, 2D and 3D wrapping clusters appear (inf if none <= emax).

    Union-find nodes are numbered by activation (position in ``order``), so its arrays are
    only as large as the part of the grid that is swept.
    """
    na, nb_, nc = shape[0], shape[1], shape[2]
    n = energy.shape[0]
    m = order.shape[0]
    node = np.full(n, -1, np.int64)  # grid point -> union-find node, -1 while inactive
    parent = np.empty(m, np.int64)
    rel = np.zeros((m, 3), np.int64)
    size = np.ones(m, np.int64)
    nwrap = np.zeros(m, np.int64)
    wraps = np.zeros((m, 3, 3), np.int64)
    tmp_p = np.zeros(3, np.int64)
    tmp_q = np.zeros(3, np.int64)
    thresholds = np.full(3, np.inf)
    best = 0
    for t in range(m):
        p = order[t]
        if energy[p] > emax:
            break
        node[p] = t
        parent[t] = t
        i, j, k = _ijk(p, nb_, nc)
        for d in range(dirs.shape[0]):
            q, s0, s1, s2 = _neighbour(i, j, k, dirs[d], na, nb_, nc)
            nq = node[q]
            if nq >= 0:
                rank = _union(parent, rel, size, nwrap, wraps, t, nq, s0, s1, s2, tmp_p, tmp_q)
                while best < rank:
                    thresholds[best] = energy[p]
                    best += 1
        if best == 3:
            break
    return thresholds


@nb.njit(cache=True)
def _lowest_neighbour(energy, p, na, nb_, nc, dirs, shift_out):
    """Lowest of ``p`` and its neighbours under the strict order (energy, index)."""
    best = p
    be = energy[p]
    shift_out[0] = 0
    shift_out[1] = 0
    shift_out[2] = 0
    i, j, k = _ijk(p, nb_, nc)
    for d in range(dirs.shape[0]):
        q, s0, s1, s2 = _neighbour(i, j, k, dirs[d], na, nb_, nc)
        eq = energy[q]
        # a strict total order so that plateaus cannot form cycles
        if eq < be or (eq == be and q < best):
            best = q
            be = eq
            shift_out[0] = s0
            shift_out[1] = s1
            shift_out[2] = s2
    return best


@nb.njit(cache=True, parallel=True)
def _steepest_descent(energy, shape, dirs, emax):
    """Lowest neighbour of every point up to ``emax`` (itself at a minimum, -1 above ``emax``)."""
    na, nb_, nc = shape[0], shape[1], shape[2]
    n = energy.shape[0]
    down = np.empty(n, np.int64)
    shift = np.zeros((n, 3), np.int64)
    for p in nb.prange(n):
        if energy[p] > emax:
            down[p] = -1
        else:
            down[p] = _lowest_neighbour(energy, p, na, nb_, nc, dirs, shift[p])
    return down, shift


@nb.njit(cache=True)
def _label_basins(order, down, shift):
    """Basin label of every point and the lattice cell of the basin copy it belongs to.

    Points above the energy cap (``down == -1``) get label -1.
    """
    n = down.shape[0]
    label = np.full(n, -1, np.int64)
    cellof = np.zeros((n, 3), np.int64)
    nbasins = 0
    minima = np.empty(n, np.int64)
    for t in range(order.shape[0]):
        p = order[t]  # lower points first, so the point below is already labelled
        q = down[p]
        if q < 0:
            break
        if q == p:
            label[p] = nbasins
            minima[nbasins] = p
            nbasins += 1
        else:
            label[p] = label[q]
            cellof[p, 0] = cellof[q, 0] + shift[p, 0]
            cellof[p, 1] = cellof[q, 1] + shift[p, 1]
            cellof[p, 2] = cellof[q, 2] + shift[p, 2]
    return label, cellof, minima[:nbasins].copy()


@nb.njit(cache=True)
def _boundary_saddles(energy, shape, half_dirs, label, cellof, emax, nbasins):
    """Lowest boundary edge per (basin a, basin b, lattice vector t) with a <= b.

    Returns arrays a, b, t (K, 3), saddle energy, and the edge (p, q, shift p->q) realising it.
    """
    na, nb_, nc = shape[0], shape[1], shape[2]
    n = energy.shape[0]
    index = nb.typed.Dict.empty(nb.types.int64, nb.types.int64)
    cap = 1024
    ka = np.empty(cap, np.int64)
    kb = np.empty(cap, np.int64)
    kt = np.empty((cap, 3), np.int64)
    ke = np.empty(cap, np.float64)
    kp = np.empty(cap, np.int64)
    kq = np.empty(cap, np.int64)
    ks = np.empty((cap, 3), np.int64)
    m = 0
    for p in range(n):
        ep = energy[p]
        if ep > emax:
            continue
        i, j, k = _ijk(p, nb_, nc)
        for d in range(half_dirs.shape[0]):
            q, s0, s1, s2 = _neighbour(i, j, k, half_dirs[d], na, nb_, nc)
            eq = energy[q]
            if eq > emax:
                continue
            a = label[p]
            b = label[q]
            t0 = cellof[q, 0] + s0 - cellof[p, 0]
            t1 = cellof[q, 1] + s1 - cellof[p, 1]
            t2 = cellof[q, 2] + s2 - cellof[p, 2]
            if a == b and t0 == 0 and t1 == 0 and t2 == 0:
                continue
            pp, qq, ss0, ss1, ss2 = p, q, s0, s1, s2
            # canonical orientation: a < b, or a == b with t lexicographically positive
            neg = t0 < 0 or (t0 == 0 and (t1 < 0 or (t1 == 0 and t2 < 0)))
            flip = a > b or (a == b and neg)
            if flip:
                a, b = b, a
                t0, t1, t2 = -t0, -t1, -t2
                pp, qq, ss0, ss1, ss2 = q, p, -s0, -s1, -s2
            if abs(t0) > 30 or abs(t1) > 30 or abs(t2) > 30:
                continue  # cannot happen for sane grids; keeps the key encoding exact
            key = ((a * nbasins + b) * 61 + (t0 + 30)) * 61 * 61 + (t1 + 30) * 61 + (t2 + 30)
            e = max(ep, eq)
            if key in index:
                slot = index[key]
                if e < ke[slot]:
                    ke[slot] = e
                    kp[slot], kq[slot] = pp, qq
                    ks[slot, 0], ks[slot, 1], ks[slot, 2] = ss0, ss1, ss2
            else:
                if m == cap:
                    cap *= 2
                    ka = _grow_i(ka, cap)
                    kb = _grow_i(kb, cap)
                    kp = _grow_i(kp, cap)
                    kq = _grow_i(kq, cap)
                    ke = _grow_f(ke, cap)
                    kt = _grow_i2(kt, cap)
                    ks = _grow_i2(ks, cap)
                index[key] = m
                ka[m], kb[m] = a, b
                kt[m, 0], kt[m, 1], kt[m, 2] = t0, t1, t2
                ke[m] = e
                kp[m], kq[m] = pp, qq
                ks[m, 0], ks[m, 1], ks[m, 2] = ss0, ss1, ss2
                m += 1
    return ka[:m].copy(), kb[:m].copy(), kt[:m].copy(), ke[:m].copy(), kp[:m].copy(), kq[:m].copy(), ks[:m].copy()


@nb.njit(cache=True)
def _grow_i(x, cap):
    y = np.empty(cap, np.int64)
    y[: x.shape[0]] = x
    return y


@nb.njit(cache=True)
def _grow_f(x, cap):
    y = np.empty(cap, np.float64)
    y[: x.shape[0]] = x
    return y


@nb.njit(cache=True)
def _grow_i2(x, cap):
    y = np.empty((cap, 3), np.int64)
    y[: x.shape[0]] = x
    return y


@nb.njit(cache=True)
def _uf_state(n_nodes):
    """Fresh union-find state for ``n_nodes`` singleton clusters (and two scratch vectors)."""
    return (
        np.arange(n_nodes), np.zeros((n_nodes, 3), np.int64), np.ones(n_nodes, np.int64),
        np.zeros(n_nodes, np.int64), np.zeros((n_nodes, 3, 3), np.int64),
        np.zeros(3, np.int64), np.zeros(3, np.int64),
    )


@nb.njit(cache=True)
def _graph_percolation(n_nodes, a, b, t, order):
    """Percolation on an edge list with lattice vectors: the edge index at which rank 1, 2, 3 appear."""
    parent, rel, size, nwrap, wraps, tmp_p, tmp_q = _uf_state(n_nodes)
    at = np.full(3, -1, np.int64)
    best = 0
    for k in range(order.shape[0]):
        e = order[k]
        rank = _union(parent, rel, size, nwrap, wraps, a[e], b[e], t[e, 0], t[e, 1], t[e, 2], tmp_p, tmp_q)
        while best < rank:
            at[best] = e
            best += 1
        if best == 3:
            break
    return at


@nb.njit(cache=True)
def _essential_edges(n_nodes, a, b, t, weight, order, tol):
    """Flag edges that join clusters or add a wrapping direction, given all strictly lower edges.

    Edges of equal weight (within ``tol``) are judged together against the state before the
    group, so symmetry-equivalent hops are kept or dropped together.
    """
    parent, rel, size, nwrap, wraps, tmp_p, tmp_q = _uf_state(n_nodes)
    keep = np.zeros(order.shape[0], np.bool_)
    m = order.shape[0]
    g0 = 0
    while g0 < m:
        g1 = g0
        while g1 < m and weight[order[g1]] - weight[order[g0]] <= tol:
            g1 += 1
        for k in range(g0, g1):
            e = order[k]
            ra = _find(parent, rel, a[e], tmp_p)
            rb = _find(parent, rel, b[e], tmp_q)
            if ra != rb:
                keep[e] = True
            else:
                w0 = t[e, 0] + tmp_q[0] - tmp_p[0]
                w1 = t[e, 1] + tmp_q[1] - tmp_p[1]
                w2 = t[e, 2] + tmp_q[2] - tmp_p[2]
                # independent of the cluster's wrapping vectors?  test on a scratch copy
                n0 = nwrap[ra]
                sw = wraps[ra].copy()
                nw = np.array([n0])
                scratch = np.zeros((1, 3, 3), np.int64)
                scratch[0] = sw
                keep[e] = _add_wrap(nw, scratch, 0, w0, w1, w2) > n0
        for k in range(g0, g1):
            e = order[k]
            _union(parent, rel, size, nwrap, wraps, a[e], b[e], t[e, 0], t[e, 1], t[e, 2], tmp_p, tmp_q)
        g0 = g1
    return keep


@nb.njit(cache=True)
def _graph_components(n_nodes, a, b, t, mask):
    """Root of every node and rank of every root, using the edges where ``mask`` is set."""
    parent, rel, size, nwrap, wraps, tmp_p, tmp_q = _uf_state(n_nodes)
    for e in range(a.shape[0]):
        if mask[e]:
            _union(parent, rel, size, nwrap, wraps, a[e], b[e], t[e, 0], t[e, 1], t[e, 2], tmp_p, tmp_q)
    roots = np.empty(n_nodes, np.int64)
    for x in range(n_nodes):
        roots[x] = _find(parent, rel, x, tmp_p)
    return roots, nwrap


# ---------------------------------------------------------------- public, validating wrappers


def _check_grid(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def percolation_thresholds(
    energy: np.ndarray, connectivity: int = 26, encut: float = np.inf, order: np.ndarray | None = None
) -> np.ndarray:
    """E1D, E2D, E3D relative to the grid minimum (eV); inf where none appears below ``encut``.

    ``order`` (optional) is ``sorted_below(energy, ...)`` or a full stable argsort.
    """
    flat, shape = _check_grid(energy)
    if order is None:
        order = sorted_below(flat, flat.min() + encut)
    emin = flat[order[0]]
    th = _percolation_sweep(flat, order, shape, neighbour_directions(connectivity), emin + encut)
    return th - emin


class Basins(NamedTuple):
    """Steepest-descent basins of a grid (flat point indices; arrays over all N points).

    A point's copy in cell 0 descends, step by step, to one lattice copy of its basin's minimum.
    """

    label: np.ndarray
    """(N,) basin index of each point (-1 above the energy cap)."""
    cell: np.ndarray
    """(N, 3) lattice cell of the copy of the basin minimum that the point descends to."""
    minima: np.ndarray
    """(B,) flat index of each basin's minimum."""
    down: np.ndarray
    """(N,) the lowest neighbour of each point (itself at a minimum, -1 above the cap)."""
    down_shift: np.ndarray
    """(N, 3) lattice shift of the step to ``down`` (the neighbour lies in that cell)."""


class SaddleEdges(NamedTuple):
    """The lowest pass between each pair of neighbouring basin copies (K passes, a <= b)."""

    basin_a: np.ndarray
    """(K,) basin on one side."""
    basin_b: np.ndarray
    """(K,) basin on the other side."""
    shift: np.ndarray
    """(K, 3) lattice cell of basin b's minimum copy relative to basin a's."""
    energy: np.ndarray
    """(K,) saddle energy, max(E_p, E_q), absolute (same zero as the grid)."""
    point_a: np.ndarray
    """(K,) grid point p on a's side of the lowest boundary edge."""
    point_b: np.ndarray
    """(K,) grid point q on b's side of it."""
    step_shift: np.ndarray
    """(K, 3) lattice shift of the grid step p -> q (q's copy lies in that cell)."""

    def take(self, index: np.ndarray) -> SaddleEdges:
        """The passes selected by a mask or index array."""
        return SaddleEdges(*(x[index] for x in self))


def basins(
    energy: np.ndarray, connectivity: int = 26, order: np.ndarray | None = None, emax: float = np.inf
) -> Basins:
    """Steepest-descent basins (:class:`Basins`; unpacks as label, cell, minima, down, down_shift).

    Points above ``emax`` (absolute energy) are left out: label -1, down -1. ``order`` must
    cover at least every point up to ``emax``.
    """
    flat, shape = _check_grid(energy)
    if order is None:
        order = sorted_below(flat, emax)
    down, shift = _steepest_descent(flat, shape, neighbour_directions(connectivity), float(emax))
    label, cellof, minima = _label_basins(order, down, shift)
    return Basins(label, cellof, minima, down, shift)


def boundary_saddles(
    energy: np.ndarray, label: np.ndarray, cellof: np.ndarray, n_basins: int,
    connectivity: int = 26, emax: float = np.inf,
) -> SaddleEdges:
    """Lowest pass between every pair of neighbouring basin copies (see module docstring).

    ``label``, ``cellof`` and ``n_basins`` come from :func:`basins`. Returns
    :class:`SaddleEdges` (unpacks as a, b, shift, energy, p, q, step shift).
    """
    flat, shape = _check_grid(energy)
    if label.shape != flat.shape or cellof.shape != (flat.size, 3):
        raise ValueError("label and cellof must match the grid")
    return SaddleEdges(*_boundary_saddles(
        flat, shape, half_directions(connectivity), np.ascontiguousarray(label, dtype=np.int64),
        np.ascontiguousarray(cellof, dtype=np.int64), float(emax), int(n_basins),
    ))


def graph_percolation(n_nodes: int, a: np.ndarray, b: np.ndarray, t: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Edge indices (in ``a``/``b``/``t``) at which 1D, 2D and 3D percolation appear (-1 if never)."""
    a, b, t = _check_edges(n_nodes, a, b, t)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape != a.shape:
        raise ValueError("weight must have one value per edge")
    order = np.argsort(weight, kind="stable")
    return _graph_percolation(int(n_nodes), a, b, t, order)


def descent_path(p: int, down: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid points from ``p`` down to its basin minimum and the cumulative lattice shift of each."""
    pts = [int(p)]
    cells = [np.zeros(3, dtype=np.int64)]
    while down[pts[-1]] != pts[-1]:
        cells.append(cells[-1] + shift[pts[-1]])
        pts.append(int(down[pts[-1]]))
    return np.array(pts, dtype=np.int64), np.array(cells, dtype=np.int64)


def _check_edges(n_nodes: int, a, b, t):
    a = np.ascontiguousarray(a, dtype=np.int64)
    b = np.ascontiguousarray(b, dtype=np.int64)
    t = np.ascontiguousarray(t, dtype=np.int64).reshape(-1, 3)
    if not (a.shape == b.shape == (t.shape[0],)):
        raise ValueError("edge arrays must have the same length")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_nodes):
        raise ValueError("edge endpoint out of range")
    return a, b, t


def essential_edges(n_nodes: int, a, b, t, weight, tol: float = 1e-9) -> np.ndarray:
    """Mask of edges not made redundant by a path of strictly lower edges (see kernel)."""
    a, b, t = _check_edges(n_nodes, a, b, t)
    weight = np.ascontiguousarray(weight, dtype=np.float64)
    if weight.shape != a.shape:
        raise ValueError("weight must have one value per edge")
    order = np.argsort(weight, kind="stable")
    return _essential_edges(int(n_nodes), a, b, t, weight, order, float(tol))


def graph_components(n_nodes: int, a, b, t, mask) -> tuple[np.ndarray, np.ndarray]:
    """Cluster root of every node and the percolation rank of each root, over the masked edges."""
    a, b, t = _check_edges(n_nodes, a, b, t)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    if mask.shape != a.shape:
        raise ValueError("mask must have one value per edge")
    return _graph_components(int(n_nodes), a, b, t, mask)
