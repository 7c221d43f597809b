"""Percolation thresholds of a periodic 3D energy grid and of a periodic graph, by union-find.

One energy-sorted union-find sweep with periodic offset tracking gives E1D/E2D/E3D exactly to
the grid: every node keeps the lattice vector ``rel`` that takes its copy in cell 0 to the
copy of its root it is connected to. A union of two nodes already sharing a root, whose
offsets disagree, closes a cycle that wraps the crystal: its accumulated lattice vector is a
wrapping vector (Newman & Ziff, PRE 64 (2001) 016706). A cluster's percolation dimension is
the rank of its wrapping vectors (up to 3 independent ones are kept per root).

The same union-find runs on an edge list with lattice vectors (the hop graph of basins and
saddles): the edge at which each rank first appears, the edges that a path of strictly lower
edges does not make redundant, and the clusters with their ranks.

Basins and saddles live in ``basins.py`` and grid walking in ``grid.py``; their public names
are re-exported here so that ``percolation.basins(...)`` and older imports keep working.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .basins import Basins, SaddleEdges, basins, boundary_saddles, descent_path
from .grid import _check_grid, _ijk, _neighbour, half_directions, neighbour_directions, sorted_below

__all__ = [
    "Basins", "SaddleEdges", "basins", "boundary_saddles", "descent_path", "essential_edges",
    "graph_components", "graph_percolation", "half_directions", "neighbour_directions",
    "percolation_thresholds", "sorted_below",
]


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


def graph_percolation(n_nodes: int, a: np.ndarray, b: np.ndarray, t: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Edge indices (in ``a``/``b``/``t``) at which 1D, 2D and 3D percolation appear (-1 if never)."""
    a, b, t = _check_edges(n_nodes, a, b, t)
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape != a.shape:
        raise ValueError("weight must have one value per edge")
    order = np.argsort(weight, kind="stable")
    return _graph_percolation(int(n_nodes), a, b, t, order)


def _check_edges(n_nodes: int, a, b, t):
    """Validate an edge list (endpoints in [0, n_nodes), one lattice vector each); return int64 arrays."""
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
