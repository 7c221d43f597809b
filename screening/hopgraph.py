"""Insertion sites and hops of a BVSE landscape: the hop graph.

The sites are the basins of the grid whose minimum lies below encut; the hops are the boundary
saddles between them that no lower path makes redundant. Both are refined off the grid
(Newton on the exact potential) when a :class:`Refiner` is given, labelled with the lowest
dimension whose percolating cluster uses them, and grouped into symmetry classes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from monty.json import MSONable
from pymatgen.core import Species, Structure

from ionscreen.kernels import bvse as kbvse
from ionscreen.kernels import percolation as kperc
from ionscreen.kernels.percolation import Basins, SaddleEdges
from ionscreen.structures.ions import DIMS

from .bvse_model import PreparedHost
from .symmetry import classify_hops, classify_sites, symmetry_ops


class _Record(MSONable):
    """``as_dict``/``from_dict`` of a flat dataclass, as plain dicts (the stored shape)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Inverse of :meth:`as_dict` (monty's ``@module``/``@class`` keys are ignored)."""
        return cls(**{k: v for k, v in d.items() if not k.startswith("@")})


@dataclass
class Site(_Record):
    """An insertion site: a minimum of the landscape."""

    index: int
    frac: list[float]
    energy: float  # eV relative to the lowest site (refined when refinement succeeded)
    energy_grid: float  # eV relative to the grid minimum, at the grid point
    distinct: int  # index of its symmetry class
    multiplicity: int  # number of sites of that class in the unit cell


@dataclass
class Hop(_Record):
    """A hop between two sites (site_j in lattice cell ``image`` relative to site_i)."""

    site_i: int
    site_j: int
    image: list[int]
    length: float  # Å between the two sites
    barrier: float  # eV, max(E_s - E_i, E_s - E_j) with refined energies when available
    barrier_grid: float  # eV, the same from grid values only
    saddle_energy: float  # eV relative to the lowest site
    saddle_frac: list[float]
    refined: bool
    distinct: int
    multiplicity: int
    percolation: str | None  # lowest dimension ("1D"...) whose percolating cluster uses this hop
    path_frac: list[list[float]] = field(default_factory=list)  # grid path site_i -> site_j
    path_energy: list[float] = field(default_factory=list)  # eV along it, relative to lowest site

    def get_structures(
        self, structure: Structure | PreparedHost, nimages: int = 5, species: str | Species | None = None,
    ) -> list[Structure]:
        """The host with the mobile ion at each of ``nimages`` points along the grid path.

        As pymatgen-analysis-diffusion's ``MigrationHop.get_structures``: the points are
        equally spaced in Cartesian arc length along :attr:`path_frac`, the first and last on
        the hop's two sites. ``structure`` must be in the cell the landscape was computed in.
        A :class:`PreparedHost` gives its framework (the host without mobile ions) and its ion
        (``N`` stands in for NH4+, as in the NEB tier); a Structure is used as it is and
        ``species`` (e.g. ``"Mg2+"``) names the ion to place.
        """
        if isinstance(structure, PreparedHost):
            ion = structure.ion
            species = species or Species(ion.ion.element, ion.charge)
            structure = structure.framework
        if species is None:
            raise ValueError("get_structures needs the species of the mobile ion for a Structure "
                             "(e.g. species='Mg2+'), or pass the PreparedHost")
        if nimages < 2:
            raise ValueError("nimages must be at least 2 (the two sites)")
        if len(self.path_frac) < 2:
            raise ValueError(f"hop {self.site_i}->{self.site_j} carries no grid path")
        points = _along_path(np.array(self.path_frac, dtype=float), structure.lattice.matrix, nimages)
        images = []
        for f in points:
            s = structure.copy()
            s.append(species, f % 1.0, coords_are_cartesian=False)
            images.append(s)
        return images


def _along_path(path: np.ndarray, lattice: np.ndarray, n: int) -> np.ndarray:
    """``n`` fractional points equally spaced in Cartesian arc length along a polyline."""
    seg = np.linalg.norm(np.diff(path @ lattice, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] == 0.0:
        return np.repeat(path[:1], n, axis=0)
    targets = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(targets, s, path[:, k]) for k in range(3)], axis=1)


def _wrap(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates in [0, 1), with values a hair below 1 sent to 0."""
    f = np.asarray(frac, dtype=float) % 1.0
    return np.where(f > 1.0 - 1e-7, 0.0, f)


class Refiner:
    """Newton refinement of grid minima and saddles on the exact potential.

    Steps are at most ``0.2 * step`` and the point may move at most ``2 * step`` (``step`` the
    largest grid step, Å); a refinement that goes further or ends with the wrong Hessian index
    gives None and the grid value is kept.
    """

    def __init__(self, framework: kbvse.Framework, model: kbvse.PairModel, step: float):
        self.framework, self.model = framework, model
        self.max_step, self.max_dist = 0.2 * step, 2.0 * step

    def minimum(self, x0: np.ndarray) -> tuple[np.ndarray, float] | None:
        return self._newton(x0, 0)

    def saddle(self, x0: np.ndarray) -> tuple[np.ndarray, float] | None:
        return self._newton(x0, 1)

    def _newton(self, x0: np.ndarray, want_index: int) -> tuple[np.ndarray, float] | None:
        """Newton iterations on the gradient from ``x0``; returns (x, E) or None if it fails.

        ``want_index`` is the number of negative Hessian eigenvalues expected at the end (0 for
        a minimum, 1 for a saddle). Steps are taken in the Hessian eigenbasis with the sign
        needed for that index, so the iteration walks uphill along one mode and downhill along
        the rest.
        """
        x = x0.copy()
        for _ in range(50):
            e, g, h = kbvse.point_energies(self.framework, self.model, x[None, :], hessian=True)
            g, h = g[0], h[0]
            w, v = np.linalg.eigh(h)
            coef = -(v.T @ g) / (np.abs(w) + 1e-6)
            if want_index == 1:
                coef[0] = -coef[0]  # uphill along the softest mode, downhill along the others
            step = v @ coef
            n = np.linalg.norm(step)
            if n > self.max_step:
                step *= self.max_step / n
            x = x + step
            if np.linalg.norm(x - x0) > self.max_dist:
                return None
            if np.linalg.norm(g) < 1e-4 and n < 1e-5:
                break
        e, g, h = kbvse.point_energies(self.framework, self.model, x[None, :], hessian=True)
        w = np.linalg.eigvalsh(h[0])
        if np.linalg.norm(g[0]) > 1e-3 or int((w < 0).sum()) != want_index:
            return None
        return x, float(e[0])


@dataclass
class _Grid:
    """The energy grid with its cell: flat values, minimum, point -> fractional coordinates."""

    energy: np.ndarray
    lattice: np.ndarray
    abc: np.ndarray

    def __post_init__(self) -> None:
        self.flat = self.energy.ravel()
        self.emin = float(self.flat.min())
        self.shape = np.array(self.energy.shape)
        self.step = float(np.max(self.abc / self.shape))

    def frac_of(self, points) -> np.ndarray:
        """(n, 3) fractional coordinates of flat grid indices."""
        return np.array(np.unravel_index(np.asarray(points), tuple(self.shape)), dtype=float).T / self.shape


@dataclass
class _Nodes:
    """The sites as graph nodes: which basin each is, grid and refined positions and energies."""

    node_of: np.ndarray  # basin -> node (-1 for a basin above encut)
    frac_grid: np.ndarray
    energy_grid: np.ndarray  # relative to the grid minimum
    energy: np.ndarray  # refined where that succeeded
    frac: np.ndarray  # refined, wrapped into the cell
    unwrapped: np.ndarray  # refined, next to the grid point (so that hop vectors stay short)


def _nodes(grid: _Grid, minima: np.ndarray, encut: float, refiner: Refiner | None) -> _Nodes:
    keep = grid.flat[minima] - grid.emin <= encut  # the hop graph can only touch these
    node_of = -np.ones(len(minima), dtype=int)
    node_of[keep] = np.arange(int(keep.sum()))
    pts = minima[keep]
    frac = grid.frac_of(pts).reshape(-1, 3)
    eg = grid.flat[pts] - grid.emin
    e = eg.copy()
    x = frac @ grid.lattice
    if refiner is not None:
        for i, x0 in enumerate(x):
            r = refiner.minimum(x0)
            if r is not None and r[1] - grid.emin <= eg[i] + 1e-9:
                x[i] = r[0]
                e[i] = r[1] - grid.emin
    ref = _wrap(x @ np.linalg.inv(grid.lattice))
    return _Nodes(node_of, frac, eg, e, ref, ref + np.round(frac - ref))


def _node_edges(saddles: SaddleEdges, node_of: np.ndarray, n_nodes: int) -> SaddleEdges:
    """Saddles between two sites, renumbered to nodes, without those a lower path makes redundant."""
    a, b = node_of[saddles.basin_a], node_of[saddles.basin_b]
    ok = (a >= 0) & (b >= 0)
    edges = saddles._replace(basin_a=a, basin_b=b).take(ok)  # basin_a/basin_b now hold nodes
    if not len(edges.basin_a):
        return edges
    return edges.take(kperc.essential_edges(n_nodes, edges.basin_a, edges.basin_b, edges.shift,
                                            edges.energy, tol=1e-7))


def _percolation_labels(n_nodes: int, edges: SaddleEdges, barriers: dict[str, float], emin: float):
    """Per edge, the lowest dimension whose percolating cluster uses it (None if none)."""
    a, b, t, es = edges.basin_a, edges.basin_b, edges.shift, edges.energy
    perc: list[str | None] = [None] * len(a)
    for d, name in enumerate(DIMS):
        thr = barriers[name]
        if not math.isfinite(thr) or not len(a):
            continue
        mask = es - emin <= thr + 1e-9
        roots, rank = kperc.graph_components(n_nodes, a, b, t, mask)
        for k in range(len(a)):
            if perc[k] is None and mask[k] and rank[roots[a[k]]] >= d + 1:
                perc[k] = name
    return perc


def _grid_path(grid: _Grid, basins: Basins, edges: SaddleEdges, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Grid path of edge ``k`` from site a to site b, unwrapped, starting in cell 0.

    Descends from both sides of the saddle edge; returns the path (fractional), its energies
    (relative to the grid minimum) and the number of points on a's side.
    """
    pa, ca = kperc.descent_path(int(edges.point_a[k]), basins.down, basins.down_shift)
    pb, cb = kperc.descent_path(int(edges.point_b[k]), basins.down, basins.down_shift)
    fa = grid.frac_of(pa) + ca
    fb = grid.frac_of(pb) + cb + edges.step_shift[k]
    path = np.vstack([fa[::-1], fb])
    path -= np.floor(path[0] + 1e-9)
    energy = np.concatenate([grid.flat[pa[::-1]], grid.flat[pb]]) - grid.emin
    return path, energy, len(pa)


def _saddle(grid: _Grid, nodes: _Nodes, x0: np.ndarray, es_grid: float, i: int, j: int,
            refiner: Refiner | None) -> tuple[np.ndarray, float, bool]:
    """Saddle point and energy (relative to the grid minimum), refined when that is credible."""
    if refiner is not None:
        r = refiner.saddle(x0)
        if r is not None:
            e_r = r[1] - grid.emin
            # the continuous saddle may lie above the grid's minimax value, never below the sites
            if max(nodes.energy[i], nodes.energy[j]) <= e_r + 1e-9 and abs(e_r - es_grid) < 0.1:
                return r[0], e_r, True
    return x0, es_grid, False


@dataclass
class HopGraph:
    """Symmetry-classified sites and hops of one landscape, with what went wrong on the way."""

    sites: list[Site]
    hops: list[Hop]
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_basins(
        cls, basins: Basins, saddles: SaddleEdges, energy: np.ndarray, structure: Structure,
        barriers: dict[str, float], *, encut: float, refiner: Refiner | None = None,
    ) -> HopGraph:
        """The hop graph of a grid from its basins and boundary saddles.

        ``energy`` is the absolute grid of ``structure`` (the framework: its lattice and space
        group), ``barriers`` its percolation thresholds (relative to the grid minimum).
        """
        grid = _Grid(energy, structure.lattice.matrix, np.array(structure.lattice.abc))
        nodes = _nodes(grid, basins.minima, encut, refiner)
        n_nodes = len(nodes.energy)
        edges = _node_edges(saddles, nodes.node_of, n_nodes)
        perc = _percolation_labels(n_nodes, edges, barriers, grid.emin)
        e_lowest = float(nodes.energy.min()) if n_nodes else 0.0
        hops, ends = [], []
        for k in range(len(edges.basin_a)):
            hop, end = _make_hop(grid, basins, edges, k, nodes, refiner, e_lowest)
            hop.percolation = perc[k]
            hops.append(hop)
            ends.append(end)
        ops = symmetry_ops(structure)
        tol = max(0.5 * grid.step, 0.05) * 1.5
        sites = _classified_sites(nodes, ops, grid.lattice, tol, e_lowest)
        if hops:
            _classify_hop_list(hops, classify_hops(ends, ops, grid.lattice, tol))
        warnings = [] if n_nodes else ["no insertion site below encut"]
        return cls(sites, hops, warnings)


def _make_hop(grid: _Grid, basins: Basins, edges: SaddleEdges, k: int, nodes: _Nodes,
              refiner: Refiner | None, e_lowest: float) -> tuple[Hop, tuple[np.ndarray, np.ndarray]]:
    """Hop ``k`` (unclassified) and its two ends in fractional coordinates."""
    i, j, t = int(edges.basin_a[k]), int(edges.basin_b[k]), edges.shift[k]
    path, pe, n_a = _grid_path(grid, basins, edges, k)
    x0 = 0.5 * (path[n_a - 1] + path[n_a]) @ grid.lattice
    es_grid = float(edges.energy[k] - grid.emin)
    saddle_x, es_ref, refined = _saddle(grid, nodes, x0, es_grid, i, j, refiner)
    u = nodes.unwrapped
    length = float(np.linalg.norm((u[j] + t - u[i]) @ grid.lattice))
    e, eg = nodes.energy, nodes.energy_grid
    hop = Hop(
        site_i=i, site_j=j, image=[int(x) for x in t], length=round(length, 4),
        barrier=float(max(es_ref - e[i], es_ref - e[j])),
        barrier_grid=float(max(es_grid - eg[i], es_grid - eg[j])),
        saddle_energy=float(es_ref - e_lowest),
        saddle_frac=_wrap(saddle_x @ np.linalg.inv(grid.lattice)).round(6).tolist(),
        refined=refined, distinct=-1, multiplicity=0, percolation=None,
        path_frac=path.round(5).tolist(), path_energy=(pe - e_lowest).round(5).tolist(),
    )
    return hop, (u[i], u[j] + t)


def _classified_sites(nodes: _Nodes, ops, lattice: np.ndarray, tol: float, e_lowest: float) -> list[Site]:
    n = len(nodes.energy)
    cls = classify_sites(nodes.frac, ops, lattice, tol) if n else np.zeros(0, int)
    mult = np.bincount(cls) if n else np.zeros(0, int)
    return [
        Site(i, nodes.frac[i].round(6).tolist(), float(nodes.energy[i] - e_lowest),
             float(nodes.energy_grid[i]), int(cls[i]), int(mult[cls[i]]))
        for i in range(n)
    ]


def _classify_hop_list(hops: list[Hop], cls: np.ndarray) -> None:
    """Set class and multiplicity; equivalent hops share the lowest percolation label of any.

    The grid samples symmetry-equivalent channels slightly differently, so one copy may join a
    percolating cluster a grid step before another.
    """
    mult = np.bincount(cls)
    best: dict[int, int] = {}
    for h, c in zip(hops, cls):
        h.distinct, h.multiplicity = int(c), int(mult[c])
        if h.percolation is not None:
            best[c] = min(best.get(c, 3), DIMS.index(h.percolation))
    for h in hops:
        if h.distinct in best:
            h.percolation = DIMS[best[h.distinct]]
