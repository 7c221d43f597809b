"""Hops between true minima: where a relaxed endpoint went (:func:`locate`) and the merging of
consecutive BVSE hops into one band when a BVSE site is no minimum for the calculator
(:func:`resolve`).

A BVSE site can be a saddle for another energy model (16c in spinel λ-MnO2 for Li+ with
CHGNet: 8a→16c→8a). Its endpoint then relaxes onto the other endpoint of the hop, or onto a
neighbouring site; instead of dropping the hop, the hop is joined with the next hop of the
BVSE hop graph through that site (8a→16c + 16c→8a' = one band 8a→8a' through 16c), the
initial band following the joined grid paths, until both ends are distinct minima.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.geometry import find_mic

from ..bvse import BVSEResult, Hop, PreparedHost
from .settings import MergedEndpointsError, NEBSettings
from .setup import HopSetup

#: an ion within this distance (Å) of a BVSE site is on that site
ON_SITE = 0.6
#: at most this many hops are joined into one band
MAX_HOPS = 3

Relax = Callable[[HopSetup], tuple[list[Atoms], dict[str, int], list[str]]]


def locate(pos: np.ndarray, bvse: BVSEResult, within: float = ON_SITE) -> dict[str, Any]:
    """The BVSE site nearest to the Cartesian ``pos`` (any periodic image): its ``site`` index
    (None when none lies ``within`` Å), ``distinct`` class, BVSE ``energy``, ``distance`` and a
    sentence."""
    lattice = np.array(bvse.lattice)
    frac = np.array([s.frac for s in bvse.sites], dtype=float)
    if not len(frac):
        return {"site": None, "distinct": None, "energy": None, "distance": None,
                "text": "no BVSE site in this landscape"}
    _, d = find_mic(frac @ lattice - pos[None, :], lattice, pbc=True)
    k = int(np.argmin(d))
    site = bvse.sites[k]
    if d[k] > within:
        return {"site": None, "distinct": None, "energy": None, "distance": round(float(d[k]), 3),
                "text": f"no BVSE site within {within} Å (nearest: site {k}, class {site.distinct}, "
                        f"{d[k]:.2f} Å away)"}
    return {"site": k, "distinct": site.distinct, "energy": round(site.energy, 4),
            "distance": round(float(d[k]), 3),
            "text": f"site {k} (class {site.distinct}, BVSE {site.energy:.3f} eV), {d[k]:.2f} Å away"}


def _reversed(hop: Hop) -> Hop:
    """The same hop walked from site_j to site_i (its path reversed, not re-wrapped)."""
    return replace(hop, site_i=hop.site_j, site_j=hop.site_i, image=[-x for x in hop.image],
                   path_frac=hop.path_frac[::-1], path_energy=hop.path_energy[::-1])


def _joined(a: Hop, b: Hop, lattice: np.ndarray) -> Hop | None:
    """Hop ``a`` then hop ``b`` (which starts on a's last site), as one hop in a's frame; None
    when b's path does not start on a's end."""
    pa, pb = np.array(a.path_frac, dtype=float), np.array(b.path_frac, dtype=float)
    shift = pa[-1] - pb[0]
    if np.abs(shift - np.round(shift)).max() > 1e-3:
        return None
    path = np.vstack([pa, pb[1:] + np.round(shift)])
    energy = [*a.path_energy, *b.path_energy[1:]]
    ends = np.array([path[0], path[-1]]) @ lattice
    top = a if a.saddle_energy >= b.saddle_energy else b
    e_ends = min(a.saddle_energy - a.barrier, b.saddle_energy - b.barrier)  # the lower end
    return replace(
        a, site_j=b.site_j, image=[int(x) + int(y) for x, y in zip(a.image, b.image)],
        length=round(float(np.linalg.norm(ends[1] - ends[0])), 4),
        barrier=float(max(a.saddle_energy, b.saddle_energy) - e_ends),
        barrier_grid=max(a.barrier_grid, b.barrier_grid), saddle_energy=top.saddle_energy,
        saddle_frac=top.saddle_frac, refined=a.refined and b.refined,
        path_frac=path.round(5).tolist(), path_energy=[round(float(x), 5) for x in energy])


def _continuations(hop: Hop, at_end: bool, bvse: BVSEResult, avoid: np.ndarray, cell: np.ndarray,
                   target: np.ndarray | None, min_dist: float) -> list[tuple[Hop, Hop]]:
    """(joined hop, added hop in the band's direction) for each BVSE hop that continues ``hop`` through its end site
    (``at_end``) or its start site, best first: not back onto ``avoid`` (the kept endpoint,
    Cartesian), onto ``target`` when given, percolating hops first, then the lowest BVSE saddle."""
    lattice = np.array(bvse.lattice)
    base = hop if at_end else _reversed(hop)
    site = base.site_j
    out = []
    for h in bvse.hops:
        for step in ([h] if h.site_i == site else []) + ([_reversed(h)] if h.site_j == site else []):
            j = _joined(base, step, lattice)
            if j is None:
                continue
            far = np.array(j.path_frac[-1]) @ lattice
            if np.linalg.norm(find_mic(far - avoid, cell, pbc=True)[0]) < min_dist:
                continue  # back onto the endpoint that stays
            if target is not None and np.linalg.norm(find_mic(far - target, cell, pbc=True)[0]) > ON_SITE:
                continue
            out.append((j if at_end else _reversed(j), step if at_end else _reversed(step)))
    out.sort(key=lambda c: (c[1].percolation is None, c[0].saddle_energy, c[0].length))
    return out


@dataclass
class Resolved:
    """The band's set-up after merging, its relaxed endpoints and the record of the merge."""

    setup: HopSetup
    hop: Hop
    ends: list[Atoms]
    steps: dict[str, int]
    warnings: list[str]
    merged: dict[str, Any] | None
    endpoints: list[dict[str, Any]]


def _hop_doc(h: Hop) -> dict[str, Any]:
    return {"site_i": h.site_i, "site_j": h.site_j, "image": list(h.image), "distinct": h.distinct,
            "length": h.length, "bvse_barrier": round(h.barrier, 4)}


def _where(setup: HopSetup, ends: list[Atoms], bvse: BVSEResult) -> list[dict[str, Any]]:
    """Per endpoint: the BVSE site it was placed on, how far the ion moved and where it went."""
    n = len(setup.host)
    out = []
    for name, placed, a in zip(("initial", "final"), (setup.start, setup.end), ends):
        moved = float(np.linalg.norm(find_mic(a.positions[n] - placed, setup.host.cell, pbc=True)[0]))
        home, went = locate(placed, bvse), locate(a.positions[n], bvse)
        out.append({"end": name, "bvse_site": home["site"], "moved": round(moved, 3),
                    "relaxed_to": went, "left_site": went["site"] != home["site"]})
    return out


def _needs_merge(setup: HopSetup, ends: list[Atoms], where: list[dict[str, Any]],
                 settings: NEBSettings) -> tuple[bool, str, np.ndarray | None] | None:
    """(merge at the end?, why, target position or None) when the band must be extended."""
    n = len(setup.host)
    sep = float(np.linalg.norm(find_mic(ends[1].positions[n] - ends[0].positions[n],
                                        setup.host.cell, pbc=True)[0]))
    if sep < settings.min_endpoint_distance:
        at_end = where[1]["moved"] >= where[0]["moved"]
        w = where[1 if at_end else 0]
        return at_end, (f"the {w['end']} endpoint (BVSE site {w['bvse_site']}) relaxed onto the other "
                        f"endpoint ({sep:.2f} Å apart): that site is no minimum for this calculator"), None
    for k, w in enumerate(where):
        if w["left_site"] and w["relaxed_to"]["site"] is not None:
            return k == 1, (f"the {w['end']} endpoint relaxed from BVSE site {w['bvse_site']} onto "
                            f"{w['relaxed_to']['text']}"), ends[k].positions[n].copy()
    return None


def resolve(host: PreparedHost, hop: Hop, bvse: BVSEResult, settings: NEBSettings,
            relax: Relax) -> Resolved:
    """The hop's relaxed endpoints, merged with the next hops of the BVSE hop graph while an
    endpoint is no minimum of its own (at most :data:`MAX_HOPS` hops in one band).

    ``relax`` relaxes both endpoints of a set-up (reusing those it relaxed before). Raises
    :class:`MergedEndpointsError` when no merge gives two distinct minima."""
    setup = HopSetup.from_hop(host, hop, bvse, settings)
    ends, steps, warnings = relax(setup)
    parts, reasons, current = [hop], [], hop
    while True:
        where = _where(setup, ends, bvse)
        need = _needs_merge(setup, ends, where, settings)
        if need is None:
            break
        at_end, why, target = need
        if len(parts) >= MAX_HOPS:
            if target is not None:  # two distinct minima all the same: keep the band, flagged
                break
            raise MergedEndpointsError(f"{why}; {len(parts)} hops joined and still no two distinct "
                                       "minima: no band for this hop")
        n = len(setup.host)
        kept = ends[0 if at_end else 1].positions[n]
        cands = _continuations(current, at_end, bvse, kept, setup.host.cell, target,
                               settings.min_endpoint_distance)
        if not cands:
            if target is not None:  # moved onto a site no single hop reaches: say so, keep the band
                break
            raise MergedEndpointsError(f"{why}, and no BVSE hop continues through it to another "
                                       "minimum: no band for this hop")
        current, added = cands[0]
        setup = HopSetup.from_hop(host, current, bvse, settings)
        ends, more, w = relax(setup)
        steps = {**steps, **{f"{k}_merge{len(parts)}": v for k, v in more.items()}}
        warnings += w
        parts.insert(len(parts) if at_end else 0, added)  # in the band's order
        reasons.append(why)
    merged = None
    if len(parts) > 1:
        merged = {"hops": [_hop_doc(h) for h in parts], "band": _hop_doc(current),
                  "reason": "; ".join(reasons)}
    return Resolved(setup, current, ends, steps, warnings, merged, where)
