"""Building models: stored packings and their search, ordered and disordered builds.

An ordered build polishes the stored packing of the ligand and DI for the chosen M; a
disordered build draws random moves on a stretched supercell of it, relaxes the sulfonyl
groups and DIs, and keeps only models that pass the checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Species, Structure

from .checks import _check_geometry
from .geometry import _DEG, _geometry, _neighbour_list, _rot, _State, _Topology
from .ligands import (
    BUILDER,
    BUILDER_VERSION,
    DI_COORDINATION,
    Ligand,
    PolymerBuildError,
    _check_di,
    _check_m,
    get_ligand,
)
from .penalty import _PSI_MAX, _TAU_MAX, _lattice_from, _relax

# --------------------------------------------------------------------------- packings


def _state_from_packing(topo: _Topology, packing: dict[str, Any]) -> _State:
    """The one-chain ordered state from stored packing parameters (degrees, Å)."""
    lat = _lattice_from(topo.a, np.array([packing["b"], packing["s_b"], packing["t_b"],
                                          packing["c"], packing["s_c"], packing["u_c"]], float))
    ang = np.array(packing["angles"], float) * _DEG  # (2, nr, 3)
    st = _State(lattice=lat, origin=np.zeros((1, 3)), omega=np.array([packing["omega"] * _DEG]),
                angles=ang.reshape(2, topo.n_rot, 3).copy(), di=np.zeros((2, 3)))
    off = np.array(packing["di"], float)
    st.di = np.array([off[0], off[1] + [2.0 * topo.xm, 0.0, 0.0]])
    return st


def _packing_from_state(topo: _Topology, st: _State) -> dict[str, Any]:
    L = st.lattice
    return {
        "b": round(float(L[1, 1]), 4), "s_b": round(float(L[1, 0]), 4),
        "t_b": round(float(L[1, 2]), 4), "c": round(float(L[2, 2]), 4),
        "s_c": round(float(L[2, 0]), 4), "u_c": round(float(L[2, 1]), 4),
        "omega": round(float(st.omega[0] / _DEG), 3),
        "angles": np.round(st.angles / _DEG, 3).tolist(),
        "di": np.round(np.array([st.di[0], st.di[1] - [2.0 * topo.xm, 0.0, 0.0]]), 4).tolist(),
    }


_W_VOLUME = 0.004


def _random_start(topo: _Topology, rng: np.random.Generator) -> _State:
    b, c = rng.uniform(8.5, 11.0, 2)
    sb, sc = rng.uniform(-4.0, 4.0, 2)
    tb, uc = rng.normal(0.0, 1.0, 2)
    lat = _lattice_from(topo.a, np.array([b, sb, tb, c, sc, uc]))
    ang = np.zeros((2, topo.n_rot, 3))
    ang[..., 0] = rng.uniform(-10, 10, (2, topo.n_rot)) * _DEG
    ang[..., 1] = rng.uniform(-25, 25, (2, topo.n_rot)) * _DEG
    ang[..., 2] = rng.uniform(-math.pi, math.pi, (2, topo.n_rot))
    di = np.array([lat[1] / 2.0, lat[2] / 2.0 + [2.0 * topo.xm, 0.0, 0.0]]) + rng.normal(0, 0.5, (2, 3))
    return _State(lat, np.zeros((1, 3)), np.array([rng.uniform(-45, 45) * _DEG]), ang, di)


def search_packing(di: str, ligand: str = "PTtSA", m: str = "Zn", n_starts: int = 40,
                   seed: int = 0) -> dict[str, Any]:
    """Search an ordered packing from random starts; returns the best as stored in the data file.

    This is how the ``packings`` entries of ``data/ligands.json`` were made (``m="Zn"``,
    ``n_starts=40``; each entry's ``search`` record names the seed that gave it; Zn as DI
    reuses the Mg search, same r₀). :func:`build_ordered` polishes the stored entry for the
    chosen M, and falls back to this search (20 starts, slow) for a ligand without one.
    The result carries its penalty and density.
    """
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    topo = _Topology(lig, di, m)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_starts):
        st = _random_start(topo, rng)
        st, _e = _relax(topo, st, True, False, w_volume=_W_VOLUME, outer=4, maxiter=300)
        st, e = _relax(topo, st, True, False, w_volume=_W_VOLUME, outer=6, maxiter=600)
        x, _ = _geometry(topo, st)
        chk = _check_geometry(topo, x, st.lattice)
        score = (len(chk.problems), e)
        if best is None or score < best[0]:
            best = (score, st, chk)
    assert best is not None
    (_n, e), st, chk = best
    out = _packing_from_state(topo, st)
    out["penalty"] = round(float(e), 5)
    out["density_g_cm3"] = round(chk.density, 4)
    out["search"] = {"m": m, "n_starts": n_starts, "seed": seed, "problems": len(chk.problems)}
    return out


# --------------------------------------------------------------------------- building


def _ordered_state(lig: Ligand, di: str, m: str) -> tuple[_Topology, _State]:
    topo = _Topology(lig, di, m)
    packing = lig.packings.get(di)
    if packing is None:
        packing = search_packing(di, lig.name, m, n_starts=20)
    st = _state_from_packing(topo, packing)
    st, _e = _relax(topo, st, True, False, w_volume=_W_VOLUME, outer=6, maxiter=600)
    return topo, st


@lru_cache(maxsize=128)
def _ordered_cached(ligand: str, di: str, m: str) -> tuple[_Topology, _State]:
    return _ordered_state(get_ligand(ligand), di, m)


def provenance(kind: str, ligand: str, di: str, m: str, seed: int | None = None,
               model_index: int | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance record attached to every built structure (``structure.properties``)."""
    rec = {"builder": BUILDER, "version": BUILDER_VERSION, "kind": kind, "ligand": ligand,
           "di": di, "m": m, "seed": seed, "model_index": model_index}
    rec.update(extra)
    return rec


def _to_structure(topo: _Topology, x: np.ndarray, lattice: np.ndarray,
                  prov: dict[str, Any]) -> Structure:
    species = [Species(s, float(o) if o != int(o) else int(o)) for s, o in zip(topo.symbols, topo.oxi)]
    latt = Lattice(lattice)
    struct = Structure(latt, species, x, coords_are_cartesian=True,
                       site_properties={
                           "role": topo.role.tolist(),
                           "ligand_index": topo.lig_index.tolist(),
                           "template_label": list(topo.template_label),
                       })
    # DI–O bonds: the six nearest O of each DI in the final model
    i, j, img, d = _neighbour_list(x, lattice, 1.5 * topo.r0)
    bonds = [[int(a), int(b), kind] for a, b, kind in topo.bonds]
    for k in topo.di_index:
        sel = ((i == k) & topo.o_mask[j]) | ((j == k) & topo.o_mask[i])
        other = np.where(i[sel] == k, j[sel], i[sel])
        for o in other[np.argsort(d[sel])][:DI_COORDINATION]:
            bonds.append([int(k), int(o), "DI-O"])
    chk = _check_geometry(topo, x, lattice)
    struct.properties = {
        "provenance": prov,
        "bonds": bonds,
        "formula_units": int(topo.n_lig),
        "density_g_cm3": round(chk.density, 4),
    }
    return struct


def build_ordered(di: str, m: str, ligand: str = "PTtSA") -> Structure:
    """Ordered periodic model of DI M L (two formula units, one chain per cell).

    Every site carries its oxidation state; site properties ``role`` ("DI", "M", "L"),
    ``ligand_index`` and ``template_label``; ``structure.properties`` holds ``provenance``,
    ``bonds`` (covalent graph from the ligand template, M–N and DI–O bonds of the
    construction), ``formula_units`` and ``density_g_cm3``.
    """
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    topo, st = _ordered_cached(lig.name, di, m)
    x, _ = _geometry(topo, st)
    chk = _check_geometry(topo, x, st.lattice)
    if not chk.ok:
        raise PolymerBuildError(
            f"ordered {di}{m}({lig.name}) model fails its checks: {chk.problems[0]}"
            f"{f' (+{len(chk.problems) - 1} more)' if len(chk.problems) > 1 else ''}; "
            "re-run search_packing for this ligand and cation and store the result")
    prov = provenance("ordered", lig.name, di, m, cells=[1, 1, 1])
    return _to_structure(topo, x, st.lattice, prov)


def _supercell_state(topo_s: _Topology, st1: _State) -> _State:
    n1, n2, n3 = topo_s.cells
    lat1 = st1.lattice
    lat = np.array([lat1[0] * n1, lat1[1] * n2, lat1[2] * n3])
    origins = np.array([i2 * lat1[1] + i3 * lat1[2] for i2, i3 in topo_s.chain_cell])
    omega = np.full(topo_s.n_chains, st1.omega[0])
    per_chain = 2 * n1
    angles = np.array([st1.angles[k % 2] for _c in range(topo_s.n_chains) for k in range(per_chain)])
    di = []
    for c in range(topo_s.n_chains):
        for k in range(per_chain):
            shift = origins[c] + (k // 2) * lat1[0]
            di.append(st1.di[k % 2] + shift)
    return _State(lat, origins, omega, angles, np.array(di))


def _pocket_mirror(topo_s: _Topology, st: _State, d: int) -> np.ndarray:
    """The alternative site of DI ``d``: its position mirrored through its pocket's x-plane."""
    li = d  # DI d belongs to ligand d (one per ligand)
    centre = st.origin[topo_s.lig_chain[li]] + [2.0 * topo_s.lig_slot[li] * topo_s.xm, 0.0, 0.0]
    p = st.di[d].copy()
    p[0] = 2.0 * centre[0] - p[0]
    return p


def _expand(topo: _Topology, st: _State, expansion: float) -> _State:
    """Scale a2 and a3 by 1 + expansion; chains (and their DIs) move with the cell."""
    st = st.copy()
    lat = st.lattice.copy()
    frac = st.origin @ np.linalg.inv(lat)
    lat[1] *= 1.0 + expansion
    lat[2] *= 1.0 + expansion
    origin = frac @ lat
    st.di = st.di + (origin - st.origin)[topo.lig_chain]
    st.origin, st.lattice = origin, lat
    return st


def _draw(topo: _Topology, base: _State, rng: np.random.Generator, scale: float,
          amp: dict[str, float]) -> _State:
    """One random disordered start: chain moves, sulfonyl moves, DI placement."""
    st = base.copy()
    nc = topo.n_chains
    st.omega += rng.uniform(-1.0, 1.0, nc) * amp["rotation"] * scale * _DEG
    st.origin[:, 0] += rng.uniform(-1.0, 1.0, nc) * amp["shift"] * scale
    st.origin[:, 1:] += rng.uniform(-1.0, 1.0, (nc, 2)) * amp["lateral"] * scale
    x_axis = np.array([1.0, 0.0, 0.0])
    for d in range(topo.n_lig):  # each DI first follows its chain
        c = topo.lig_chain[d]
        turn = _rot(x_axis, np.array(st.omega[c] - base.omega[c]))
        st.di[d] = st.origin[c] + turn @ (base.di[d] - base.origin[c])
    shape = st.angles[..., 2].shape
    st.angles[..., 2] += rng.uniform(-1.0, 1.0, shape) * amp["torsion"] * scale * _DEG
    st.angles[..., :2] += rng.uniform(-1.0, 1.0, shape + (2,)) * amp["swing"] * scale * _DEG
    st.angles[..., 0] = np.clip(st.angles[..., 0], -_PSI_MAX, _PSI_MAX)
    st.angles[..., 1] = np.clip(st.angles[..., 1], -_TAU_MAX, _TAU_MAX)
    flips = rng.random(topo.n_lig) < amp["site_flip"] * scale
    for d in np.where(flips)[0]:
        st.di[d] = _pocket_mirror(topo, st, int(d))
    st.di += rng.normal(0.0, amp["di"] * scale, st.di.shape)
    return st


_W_RESTRAIN = 200.0


def build_disordered(di: str, m: str, ligand: str = "PTtSA", n_models: int = 4, seed: int = 0,
                     cells: Sequence[int] = (1, 2, 2), max_rotation: float = 10.0,
                     max_shift: float = 0.4, max_lateral: float = 0.2,
                     max_torsion: float = 25.0, max_swing: float = 5.0,
                     di_displacement: float = 0.25, site_flip_probability: float = 0.0,
                     expansion: float = 0.02, max_tries: int = 12) -> list[Structure]:
    """An ensemble of ``n_models`` disordered ("amorphous") models, reproducible from ``seed``.

    Each model is a ``cells`` supercell of the ordered model (default 1×2×2: four chains,
    eight formula units) whose a2 and a3 are stretched by ``expansion`` (an amorphous solid is
    a little less dense than its crystal; 0.02 → −4 % density). Random moves, drawn uniformly
    within the amplitudes: per chain a rotation about its axis (±``max_rotation``°), a shift
    along it (±``max_shift`` Å) and sideways (±``max_lateral`` Å); per sulfonyl group a
    torsion about N–S (±``max_torsion``°) and swing / tilt about N (±``max_swing``°); per DI a
    Gaussian displacement (σ = ``di_displacement`` Å) and, with ``site_flip_probability``,
    a jump to the mirror site of its pocket. The sulfonyl groups and DIs are then relaxed
    with the builder's penalty while springs hold the chains near their drawn positions, at
    fixed cell. A model is kept only if it passes :func:`check_polymer` (contacts, six O at
    r₀ ± 10 % around every DI, no seventh O within 1.15·r₀); otherwise the draw is rejected
    and redrawn (amplitudes halved after ``max_tries`` // 2 rejections).

    Site flips are off by default: in the ordered packing every pocket holds one DI, and a
    DI moved to the mirror site of its pocket is rejected most of the time.
    """
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    if n_models < 1:
        raise PolymerBuildError(f"n_models must be at least 1 (got {n_models})")
    cells_t = tuple(int(c) for c in cells)
    if len(cells_t) != 3 or min(cells_t) < 1:
        raise PolymerBuildError(f"cells must be three positive integers (got {cells!r})")
    amp = {"rotation": max_rotation, "shift": max_shift, "lateral": max_lateral,
           "torsion": max_torsion, "swing": max_swing, "di": di_displacement,
           "site_flip": site_flip_probability}
    _topo1, st1 = _ordered_cached(lig.name, di, m)
    topo = _Topology(lig, di, m, cells_t)
    base = _expand(topo, _supercell_state(topo, st1), expansion)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**63 - 1, n_models)
    out: list[Structure] = []
    for index in range(n_models):
        model_rng = np.random.default_rng(seeds[index])
        accepted = None
        last = ""
        for attempt in range(max_tries):
            scale = 1.0 if attempt < max_tries // 2 else 0.5
            drawn = _draw(topo, base, model_rng, scale, amp)
            st, _e = _relax(topo, drawn, False, True, outer=5, maxiter=300,
                            restrain=drawn, w_restrain=_W_RESTRAIN)
            x, _ = _geometry(topo, st)
            chk = _check_geometry(topo, x, st.lattice)
            if chk.ok:
                accepted = (st, x, attempt)
                break
            last = chk.problems[0]
        if accepted is None:
            raise PolymerBuildError(
                f"no acceptable disordered {di}{m}({lig.name}) model after {max_tries} draws "
                f"(last problem: {last}); use smaller amplitudes (max_rotation, max_shift, "
                "max_torsion, ...) or a larger max_tries")
        st, x, attempt = accepted
        prov = provenance(
            "disordered", lig.name, di, m, seed=seed, model_index=index, cells=list(cells_t),
            draws=attempt + 1,
            amplitudes={"max_rotation_deg": max_rotation, "max_shift_A": max_shift,
                        "max_lateral_A": max_lateral, "max_torsion_deg": max_torsion,
                        "max_swing_deg": max_swing, "di_displacement_A": di_displacement,
                        "site_flip_probability": site_flip_probability,
                        "expansion": expansion})
        out.append(_to_structure(topo, x, st.lattice, prov))
    return out
