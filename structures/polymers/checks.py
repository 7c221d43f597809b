"""Checks of a built model: contacts, DI–O shell and coordination number, charge balance."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from pymatgen.core import Element, Structure

from .geometry import CONTACT_LIMITS, ContactLimits, _neighbour_list, _Topology
from .ligands import BUILDER, DI_COORDINATION, PolymerBuildError, get_ligand


@dataclass(frozen=True)
class PolymerCheck:
    """What :func:`check_polymer` found; ``ok`` when nothing is wrong."""

    problems: tuple[str, ...]
    di_o: tuple[tuple[float, ...], ...]  # the six nearest O distances per DI
    di_coordination: tuple[int, ...]  # O within coordination_shell·r0
    min_contact_ratio: float  # smallest (distance / limit) over checked non-bonded pairs
    density: float

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_geometry(topo: _Topology, x: np.ndarray, lattice: np.ndarray,
                    limits: ContactLimits = CONTACT_LIMITS) -> PolymerCheck:
    t = topo.thresholds["check"] if limits is CONTACT_LIMITS else topo._thresholds(limits)
    i, j, img, d = _neighbour_list(x, lattice, max(4.0, 1.3 * topo.r0))
    problems: list[str] = []
    lim = t[i, j]
    di_o = (np.isin(i, topo.di_index) & topo.o_mask[j]) | (np.isin(j, topo.di_index) & topo.o_mask[i])
    chk = (lim > 0) & ~di_o
    ratio = d[chk] / lim[chk]
    min_ratio = float(ratio.min()) if ratio.size else math.inf
    for n_ in np.where(chk & (d < lim))[0][:10]:
        a, b = int(i[n_]), int(j[n_])
        problems.append(
            f"contact {topo.symbols[a]}{a} ({topo.template_label[a]})–{topo.symbols[b]}{b} "
            f"({topo.template_label[b]}) {d[n_]:.2f} Å < {lim[n_]:.2f} Å")
    r0 = topo.r0
    shells = []
    cns = []
    for k in topo.di_index:
        sel = di_o & ((i == k) | (j == k))
        ds = np.sort(d[sel])
        six = ds[:DI_COORDINATION]
        shells.append(tuple(float(v) for v in six))
        cn = int((ds <= limits.coordination_shell * r0).sum())
        cns.append(cn)
        if len(six) < DI_COORDINATION or np.any(np.abs(six - r0) > limits.di_o_tolerance * r0):
            problems.append(
                f"DI {k}: nearest O at {', '.join(f'{v:.2f}' for v in six)} Å, not all within "
                f"{limits.di_o_tolerance:.0%} of {r0:.2f} Å")
        if cn != DI_COORDINATION:
            problems.append(f"DI {k}: {cn} O within {limits.coordination_shell}·r0, not {DI_COORDINATION}")
    mass = sum(Element(s).atomic_mass for s in topo.symbols)
    density = float(mass / abs(np.linalg.det(lattice)) * 1.66053906660)
    return PolymerCheck(tuple(problems), tuple(shells), tuple(cns), min_ratio, density)


def polymer_bonds(structure: Structure) -> list[tuple[int, int, str]]:
    """Bonds of a built model: ``(i, j, kind)`` with kind "covalent", "M-N" or "DI-O".

    They come from the construction (ligand template graph, chelation, DI assignment), not from
    distances, so they can be used to check distances.
    """
    bonds = (structure.properties or {}).get("bonds")
    if bonds is None:
        raise PolymerBuildError("structure was not made by ionscreen.structures.polymers (no bonds)")
    return [(int(i), int(j), str(k)) for i, j, k in bonds]


def check_polymer(structure: Structure, limits: ContactLimits = CONTACT_LIMITS) -> PolymerCheck:
    """Check a built model: contacts, DI–O shell and coordination number, charge balance."""
    prov = (structure.properties or {}).get("provenance")
    if not prov or prov.get("builder") != BUILDER:
        raise PolymerBuildError("structure was not made by ionscreen.structures.polymers")
    lig = get_ligand(prov["ligand"])
    n_fu = int(structure.properties["formula_units"])
    cells = tuple(prov.get("cells", (1, 1, 1)))
    topo = _Topology(lig, prov["di"], prov["m"], cells)
    if topo.n_atoms != len(structure) or topo.n_lig != n_fu:
        raise PolymerBuildError("structure does not match its provenance (atoms were changed)")
    x = structure.cart_coords
    chk = _check_geometry(topo, x, structure.lattice.matrix, limits)
    net = sum(getattr(sp, "oxi_state", 0.0) * occ for site in structure for sp, occ in site.species.items())
    if abs(net) > 1e-6:
        chk = replace(chk, problems=chk.problems + (f"net charge {net:+.3f} e per cell",))
    return chk
