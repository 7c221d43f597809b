"""Bond-valence site energy (BVSE) on a periodic grid and at arbitrary points.

Pair terms between the mobile ion and one framework ion of species ``s``:

* ``kind[s] == MORSE`` (opposite charge): ``d0/2 * ((exp(alpha*(r_min - r)) - 1)**2 - 1)``
* ``kind[s] == COULOMB`` (same charge sign): ``pref * erfc(r / rho) / r``
  with ``pref = 14.4 * q_mobile * q_s`` (eV·Å) and ``p1 = 1 / rho``
* ``kind[s] == NONE``: no interaction

plus an optional hard wall ``wall_energy`` for ``r < wall_radius[s]``. Parameters per species
are packed as ``params[s] = (p0, p1, p2)``: Morse ``(d0, alpha, r_min)``, Coulomb ``(pref,
1/rho, 0)``.

Arrays in, arrays out: the private ``_kernels`` do no validation; the public wrappers check
shapes and types so that a numba typing error never reaches a user.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from .cells import CellList, _gather_candidates, periodic_images

NONE, MORSE, COULOMB = 0, 1, 2
_R2_FLOOR = 1e-12  # a grid point on top of an atom gets a huge but finite energy


@nb.njit(cache=True, inline="always")
def _pair(kind: int, p0: float, p1: float, p2: float, r: float) -> float:
    if kind == MORSE:
        ex = math.exp(p1 * (p2 - r))
        return 0.5 * p0 * (ex * ex - 2.0 * ex)
    if kind == COULOMB:
        return p0 * math.erfc(r * p1) / r
    return 0.0


@nb.njit(cache=True)
def _pair_derivatives(kind: int, p0: float, p1: float, p2: float, r: float):
    """Energy and first two radial derivatives of one pair term."""
    if kind == MORSE:
        ex = math.exp(p1 * (p2 - r))
        e = 0.5 * p0 * (ex * ex - 2.0 * ex)
        d1 = p0 * p1 * (ex - ex * ex)
        d2 = p0 * p1 * p1 * (2.0 * ex * ex - ex)
        return e, d1, d2
    if kind == COULOMB:
        g = math.erfc(r * p1)
        gp = -2.0 / math.sqrt(math.pi) * p1 * math.exp(-(r * p1) ** 2)
        gpp = -2.0 * r * p1 * p1 * gp
        e = p0 * g / r
        d1 = p0 * (gp / r - g / (r * r))
        d2 = p0 * (gpp / r - 2.0 * gp / (r * r) + 2.0 * g / (r * r * r))
        return e, d1, d2
    return 0.0, 0.0, 0.0


@nb.njit(cache=True, parallel=True)
def _grid_energies(
    cell, shape, tile, img_pos, img_sp, kind, params, wall2, wall_energy, cutoff,
    table, table_r2lo, table_inv_dr2, use_table, origin, bin_size, nbins, start, order, mask,
):
    """Energies on the fractional grid ``i/na, j/nb, k/nc`` (C order), tile by tile.

    With a non-empty ``mask`` only points where it is set are computed (the others are 0).
    """
    na, nb_, nc = shape[0], shape[1], shape[2]
    ta, tb, tc = tile[0], tile[1], tile[2]
    nta = (na + ta - 1) // ta
    ntb = (nb_ + tb - 1) // tb
    ntc = (nc + tc - 1) // tc
    out = np.zeros(na * nb_ * nc, np.float64)
    use_mask = mask.shape[0] > 0
    pairs = np.zeros(nta * ntb * ntc, np.int64)  # pair evaluations per tile, for benchmarks
    rc2 = cutoff * cutoff
    ntab = table.shape[1]
    m = img_pos.shape[0]
    for t in nb.prange(nta * ntb * ntc):
        ti = t // (ntb * ntc)
        tj = (t // ntc) % ntb
        tk = t % ntc
        i0, j0, k0 = ti * ta, tj * tb, tk * tc
        i1, j1, k1 = min(i0 + ta, na), min(j0 + tb, nb_), min(k0 + tc, nc)
        if use_mask:
            todo = 0
            for i in range(i0, i1):
                for j in range(j0, j1):
                    for k in range(k0, k1):
                        todo += mask[(i * nb_ + j) * nc + k]
            if todo == 0:
                continue
        # bounding sphere of the tile: centre and farthest corner
        fc = np.empty(3)
        fc[0] = 0.5 * (i0 + i1 - 1) / na
        fc[1] = 0.5 * (j0 + j1 - 1) / nb_
        fc[2] = 0.5 * (k0 + k1 - 1) / nc
        center = np.empty(3)
        for d in range(3):
            center[d] = fc[0] * cell[0, d] + fc[1] * cell[1, d] + fc[2] * cell[2, d]
        rad = 0.0
        for ci in (i0, i1 - 1):
            for cj in (j0, j1 - 1):
                for ck in (k0, k1 - 1):
                    s2 = 0.0
                    for d in range(3):
                        x = (ci / na) * cell[0, d] + (cj / nb_) * cell[1, d] + (ck / nc) * cell[2, d]
                        s2 += (x - center[d]) ** 2
                    rad = max(rad, math.sqrt(s2))
        buf = np.empty(m, np.int64)
        n = _gather_candidates(center, cutoff + rad, origin, bin_size, nbins, start, order, img_pos, buf)
        cx = np.empty(n)
        cy = np.empty(n)
        cz = np.empty(n)
        cs = np.empty(n, np.int64)
        for c in range(n):
            a = buf[c]
            cx[c] = img_pos[a, 0]
            cy[c] = img_pos[a, 1]
            cz[c] = img_pos[a, 2]
            cs[c] = img_sp[a]
        for i in range(i0, i1):
            for j in range(j0, j1):
                for k in range(k0, k1):
                    if use_mask and mask[(i * nb_ + j) * nc + k] == 0:
                        continue
                    fa, fb, fcc = i / na, j / nb_, k / nc
                    px = fa * cell[0, 0] + fb * cell[1, 0] + fcc * cell[2, 0]
                    py = fa * cell[0, 1] + fb * cell[1, 1] + fcc * cell[2, 1]
                    pz = fa * cell[0, 2] + fb * cell[1, 2] + fcc * cell[2, 2]
                    e = 0.0
                    npair = 0
                    for c in range(n):
                        dx = cx[c] - px
                        dy = cy[c] - py
                        dz = cz[c] - pz
                        r2 = dx * dx + dy * dy + dz * dz
                        if r2 < rc2:
                            npair += 1
                            s = cs[c]
                            if use_table:
                                x = (r2 - table_r2lo) * table_inv_dr2
                                if x < 0.0:
                                    x = 0.0
                                idx = int(x)
                                if idx >= ntab - 1:
                                    idx = ntab - 2
                                w = x - idx
                                e += table[s, idx] * (1.0 - w) + table[s, idx + 1] * w
                            else:
                                if r2 < _R2_FLOOR:
                                    r2 = _R2_FLOOR
                                e += _pair(kind[s], params[s, 0], params[s, 1], params[s, 2], math.sqrt(r2))
                            if r2 < wall2[s]:
                                e += wall_energy
                    out[(i * nb_ + j) * nc + k] = e
                    pairs[t] += npair
    return out, pairs.sum()


@nb.njit(cache=True)
def _points_energy(points, img_pos, img_sp, kind, params, wall2, wall_energy, cutoff, want_hess):
    """Energy, gradient and (optionally) Hessian at arbitrary Cartesian points, exact mode."""
    npt = points.shape[0]
    energy = np.zeros(npt)
    grad = np.zeros((npt, 3))
    hess = np.zeros((npt, 3, 3))
    rc2 = cutoff * cutoff
    for p in range(npt):  # serial: called for a few points at a time, thread start-up would dominate
        for a in range(img_pos.shape[0]):
            d0 = img_pos[a, 0] - points[p, 0]
            d1 = img_pos[a, 1] - points[p, 1]
            d2 = img_pos[a, 2] - points[p, 2]
            r2 = d0 * d0 + d1 * d1 + d2 * d2
            if r2 >= rc2:
                continue
            s = img_sp[a]
            if r2 < wall2[s]:
                energy[p] += wall_energy
            if r2 < _R2_FLOOR:
                r2 = _R2_FLOOR
            r = math.sqrt(r2)
            e, de, dde = _pair_derivatives(kind[s], params[s, 0], params[s, 1], params[s, 2], r)
            energy[p] += e
            # the point moves, the atom stays: d r / d x_point = -(atom - point) / r
            u0, u1, u2 = -d0 / r, -d1 / r, -d2 / r
            grad[p, 0] += de * u0
            grad[p, 1] += de * u1
            grad[p, 2] += de * u2
            if want_hess:
                u = (u0, u1, u2)
                for x in range(3):
                    for y in range(3):
                        h = (dde - de / r) * u[x] * u[y]
                        if x == y:
                            h += de / r
                        hess[p, x, y] += h
    return energy, grad, hess


class PairModel:
    """Per-species pair parameters for one mobile ion in one framework (validated arrays)."""

    def __init__(
        self,
        kind: np.ndarray,
        params: np.ndarray,
        wall_radius: np.ndarray | None = None,
        wall_energy: float = 0.0,
    ) -> None:
        self.kind = np.ascontiguousarray(kind, dtype=np.int64)
        self.params = np.ascontiguousarray(params, dtype=np.float64)
        ns = self.kind.shape[0]
        if self.kind.ndim != 1 or self.params.shape != (ns, 3):
            raise ValueError("kind must be (S,) and params (S, 3)")
        if not np.isin(self.kind, (NONE, MORSE, COULOMB)).all():
            raise ValueError("kind values must be NONE, MORSE or COULOMB")
        if not np.isfinite(self.params).all():
            raise ValueError("pair parameters must be finite")
        wr = np.zeros(ns) if wall_radius is None else np.asarray(wall_radius, dtype=np.float64)
        if wr.shape != (ns,):
            raise ValueError("wall_radius must be (S,)")
        self.wall2 = np.ascontiguousarray(wr * wr)
        self.wall_energy = float(wall_energy)

    @property
    def n_species(self) -> int:
        return int(self.kind.shape[0])

    def pair_energy(self, species: int, r: np.ndarray, wall: bool = True) -> np.ndarray:
        """Exact pair energy of one species at distances ``r`` (NumPy, for tables and plots).

        ``wall=False`` leaves out the hard wall (the grid kernel adds it separately).
        """
        r = np.maximum(np.asarray(r, dtype=np.float64), math.sqrt(_R2_FLOOR))
        k = self.kind[species]
        p0, p1, p2 = self.params[species]
        if k == MORSE:
            ex = np.exp(p1 * (p2 - r))
            e = 0.5 * p0 * (ex * ex - 2.0 * ex)
        elif k == COULOMB:
            from scipy.special import erfc

            e = p0 * erfc(r * p1) / r
        else:
            e = np.zeros_like(r)
        if not wall:
            return e
        return e + np.where(r * r < self.wall2[species], self.wall_energy, 0.0)


class Framework:
    """A periodic framework prepared for energy evaluation: images within the cutoff, binned."""

    def __init__(self, cell: np.ndarray, frac: np.ndarray, species: np.ndarray, cutoff: float) -> None:
        cell = np.ascontiguousarray(cell, dtype=np.float64)
        if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-6:
            raise ValueError("cell must be a (3, 3) non-singular matrix of lattice vectors (rows)")
        frac = np.asarray(frac, dtype=np.float64)
        species = np.asarray(species, dtype=np.int64)
        if frac.ndim != 2 or frac.shape[1] != 3 or species.shape != (frac.shape[0],):
            raise ValueError("frac must be (N, 3) and species (N,)")
        if frac.shape[0] == 0:
            raise ValueError("the framework has no atoms")
        if not np.isfinite(frac).all():
            raise ValueError("fractional coordinates must be finite")
        if not cutoff > 0:
            raise ValueError("cutoff must be positive")
        self.cell = cell
        self.cutoff = float(cutoff)
        pos, idx, _ = periodic_images(frac, cell, cutoff)
        self.img_pos = np.ascontiguousarray(pos)
        self.img_species = np.ascontiguousarray(species[idx])
        self.cells = CellList(self.img_pos, bin_size=max(cutoff / 3.0, 0.5))


def make_table(model: PairModel, cutoff: float, n: int = 16384, r_min: float = 0.4):
    """Energy tables on a uniform grid in r² (linear interpolation error ~ n⁻²)."""
    r2 = np.linspace(r_min * r_min, cutoff * cutoff, n)
    r = np.sqrt(r2)
    table = np.empty((model.n_species, n))
    for s in range(model.n_species):
        table[s] = model.pair_energy(s, r, wall=False)
    return np.ascontiguousarray(table), float(r2[0]), float((n - 1) / (r2[-1] - r2[0]))


def tile_shape(cell: np.ndarray, shape: tuple[int, int, int], tile_length: float = 1.0) -> np.ndarray:
    """Grid points per tile so that a tile spans about ``tile_length`` Å along each axis."""
    lengths = np.linalg.norm(cell, axis=1)
    step = lengths / np.asarray(shape)
    return np.maximum(np.round(tile_length / step), 1).astype(np.int64)


def grid_energies(
    framework: Framework,
    model: PairModel,
    shape: tuple[int, int, int],
    mode: str = "exact",
    table_size: int = 16384,
    tile_length: float = 1.0,
    return_pairs: bool = False,
    mask: np.ndarray | None = None,
):
    """BVSE energy (eV) of the mobile ion at every point of a periodic fractional grid.

    The grid has ``shape`` points per axis at ``i / n`` (no duplicated planes). ``mode`` is
    ``"exact"`` (exp/erfc per pair) or ``"table"`` (per-species tables in r², faster).
    Returns an array of ``shape`` (and the number of pair evaluations if ``return_pairs``).
    ``mask`` (bool, same size as the grid) restricts the work to the points where it is set;
    the others are returned as 0.
    """
    shape_arr = np.asarray(shape, dtype=np.int64)
    if shape_arr.shape != (3,) or (shape_arr < 1).any():
        raise ValueError("shape must be three positive integers")
    if model.n_species <= int(framework.img_species.max()):
        raise ValueError("the pair model has fewer species than the framework uses")
    if mode not in ("exact", "table"):
        raise ValueError("mode must be 'exact' or 'table'")
    if mode == "table":
        table, r2lo, inv = make_table(model, framework.cutoff, table_size)
    else:
        table, r2lo, inv = np.zeros((model.n_species, 2)), 0.0, 1.0
    if mask is None:
        mask_arr = np.zeros(0, dtype=np.uint8)
    else:
        mask_arr = np.ascontiguousarray(np.asarray(mask).ravel(), dtype=np.uint8)
        if mask_arr.size != int(np.prod(shape_arr)):
            raise ValueError("mask must have one entry per grid point")
    c = framework.cells
    out, pairs = _grid_energies(
        framework.cell, shape_arr, tile_shape(framework.cell, tuple(shape_arr), tile_length),
        framework.img_pos, framework.img_species, model.kind, model.params, model.wall2,
        model.wall_energy, framework.cutoff, table, r2lo, inv, mode == "table",
        c.origin, c.bin_size, c.nbins, c.start, c.order, mask_arr,
    )
    energy = out.reshape(tuple(shape_arr))
    return (energy, int(pairs)) if return_pairs else energy


def point_energies(
    framework: Framework, model: PairModel, points: np.ndarray, hessian: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact energy (eV), gradient (eV/Å) and Hessian (eV/Å²) at Cartesian ``points`` (P, 3).

    Points anywhere are fine: they are wrapped into the unit cell first.
    """
    pts = np.ascontiguousarray(np.atleast_2d(points), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.isfinite(pts).all():
        raise ValueError("points must be a finite (P, 3) array")
    # wrap into the cell, which the images cover (energies are periodic)
    frac = (pts @ np.linalg.inv(framework.cell)) % 1.0
    pts = np.ascontiguousarray(frac @ framework.cell)
    return _points_energy(
        pts, framework.img_pos, framework.img_species, model.kind, model.params, model.wall2,
        model.wall_energy, framework.cutoff, bool(hessian),
    )
