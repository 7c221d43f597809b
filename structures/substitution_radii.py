"""Shannon ionic radii, coordination and lattice rescaling for :mod:`.substitution`.

Radii
    Coordination numbers come from a simple cutoff: cation i and anion j are bonded when
    ``d_ij <= 1.25 * (r_i + r_j)`` with Shannon CN-VI ionic radii (this keeps the V=O...V
    2.79 A contact of V2O5 out and all cation-anion bonds of olivine, spinel, layered oxides
    and TiS2 in). A radius is Shannon's ionic radius at that CN; where Shannon lists both
    spins, low spin for Co3+ and Ni3+ (as in LiCoO2 / LiNiO2) and high spin otherwise; a
    fractional state is interpolated linearly between its two integer states.
    The old and new species of a site are read at the same CN: the site's own CN when both are
    tabulated there, otherwise the tabulated CN nearest to it that both share (e.g. O2- (CN 4
    in spinel) and S2- (tabulated at CN 6 only) are both read at CN 6), otherwise each at its
    own nearest CN. Species without Shannon data fall back to pymatgen's ``ionic_radius``
    (then for both species of the pair, so that the pair is on one scale). The CN used and the
    source are in the info dict.

Lattice rescaling (the documented rule)
    The cell is scaled isotropically (fractional coordinates kept) by the linear factor

        s = sum_bonds (r'_cation + r'_anion) / sum_bonds (r_cation + r_anion),

    the ratio of the summed cation-anion bond lengths predicted from Shannon radii after and
    before the substitution, over every cation-anion bond of the cell (found as above); the
    volume scales by s**3. This is the ionic-model bond length (Shannon's radii are fitted so
    that r_cation + r_anion reproduces mean bond lengths), weighted by how many bonds of each
    kind hold the framework together, so an exchange on a minority sublattice moves the cell
    less than one on the anion sublattice. Measured against real pairs (see
    ``tests/test_substitution.py``):

    * MgCr2O4 (a = 8.333 A) -> MgCr2S4: predicted a = 10.16 A, measured a ~ 10.11 A (Wustrow
      et al., Inorg. Chem. 57 (2018) 8634; citation to verify): +0.5 % in a, +1.6 % in volume.
    * ZnCr2O4 (a = 8.327 A) -> ZnCr2S4 (a = 9.983 A): predicted 10.15 A, +1.7 % in a;
      -> ZnCr2Se4 (a = 10.497 A): predicted 10.73 A, +2.2 % in a (handbook lattice constants).

    * MgCr2O4 -> MgV2O4 (a = 8.42 A): predicted 8.41 A; -> MgTi2O4 (a = 8.51 A): predicted
      8.51 A (cation exchanges, handbook lattice constants).

    So expect the cell edge of an oxide -> chalcogenide exchange to be overestimated by about
    0.5-2.5 % (volume 1.5-7 %); cation exchanges move the cell by a few per cent at most.

    The two rules also considered did worse on MgCr2O4 -> MgCr2S4. Scaling the volume by the
    ratio of the summed cubed ionic radii gives a = 10.84-10.98 A (+7-9 %, O2- read at CN 6 or
    4), because it treats the ions as space-filling spheres although the cell is set by the
    cation-anion contacts. Scaling lengths by the ratio of the bond-valence R0 (Brese &
    O'Keeffe 1991: Cr-S/Cr-O 2.162/1.724, Mg-S/Mg-O 2.180/1.693, same bond weights) gives
    a = 10.52 A (+4 %), because R0 is the length of a bond of valence 1 and exaggerates the
    anion's effect on the real (valence 1/2) bonds. The rule ignores changes of internal
    coordinates and of c/a; relax the structure (NEB tier) before trusting bond lengths.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from pymatgen.core import Element, Species, Structure

from ionscreen._json import clean_number
from ionscreen.errors import StructureValidationError

__all__ = ["RESCALE_RULE", "shannon_radius"]

#: Name of the lattice-rescaling rule, recorded in every info dict.
RESCALE_RULE = "bond-length ratio (sum of Shannon r_cation + r_anion over all cation-anion bonds)"

_BOND_FACTOR = 1.25  # bonded if d <= 1.25 (r_i + r_j), CN-VI Shannon radii
#: Ions read as low spin (as in LiCoO2, LiNiO2 and most oxides); all others high spin.
_LOW_SPIN = {("Co", 3), ("Ni", 3)}
_ROMAN = {
    "I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9,
    "X": 10, "XI": 11, "XII": 12, "XIV": 14,
}

_Key = tuple[str, float]  # a species: (element, oxidation state)


# --------------------------------------------------------------------------- radii


def _cn_of(key: str) -> int | None:
    base = key.rstrip("SQPY") if key not in _ROMAN else key
    return _ROMAN.get(base)


@cache
def _shannon_table(symbol: str, q: int) -> dict[int, float]:
    """CN -> Shannon ionic radius (high spin preferred; plain CN preferred over SQ/PY)."""
    data = (Element(symbol).data.get("Shannon radii") or {}).get(str(int(q)), {})
    table: dict[int, float] = {}
    for key in sorted(data, key=lambda k: (k not in _ROMAN, k)):  # plain keys first
        cn = _cn_of(key)
        if cn is None or cn in table:
            continue
        spins = data[key]
        first = "Low Spin" if (symbol, int(q)) in _LOW_SPIN else "High Spin"
        entry = spins.get(first) or spins.get("") or next(iter(spins.values()))
        table[cn] = float(entry["ionic_radius"])
    return table


def _tabulated(symbol: str, q: float) -> dict[int, float]:
    """CN -> radius for a possibly fractional state (linear between the integer states)."""
    lo, hi = math.floor(q + 1e-9), math.ceil(q - 1e-9)
    t_lo, t_hi = _shannon_table(symbol, lo), _shannon_table(symbol, hi)
    if lo == hi:
        return dict(t_lo)
    w = q - lo
    return {cn: (1 - w) * t_lo[cn] + w * t_hi[cn] for cn in t_lo if cn in t_hi}


def _nearest_cn(cns: Iterable[int], cn: int) -> int:
    return min(cns, key=lambda c: (abs(c - cn), -c))  # tie: the larger CN


def _fallback_radius(symbol: str, q: float) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = Species(symbol, q).ionic_radius
    except Exception:  # pymatgen raises various errors for odd species
        r = None
    if r is None:
        r = Element(symbol).atomic_radius
    if r is None:
        raise StructureValidationError(f"no ionic radius known for {symbol}{q:+g}")
    return float(r)


def shannon_radius(symbol: str, oxidation_state: float, cn: int = 6) -> tuple[float, int | None]:
    """Shannon ionic radius (Å) at the tabulated CN nearest to ``cn`` and that CN.

    High spin where both spins are tabulated; fractional states interpolated. Falls back to
    pymatgen's ``ionic_radius`` (returned CN ``None``) when Shannon lists nothing.
    """
    table = _tabulated(symbol, oxidation_state)
    if not table:
        return _fallback_radius(symbol, oxidation_state), None
    c = _nearest_cn(table, cn)
    return table[c], c


def _pair_radii(
    old: tuple[str, float], new: tuple[str, float], cn: int
) -> tuple[float, float, int | None, str]:
    """Radii of the old and new species of one site, read at a common CN where possible."""
    t_old, t_new = _tabulated(*old), _tabulated(*new)
    common = set(t_old) & set(t_new)
    if common:
        c = _nearest_cn(common, cn)
        return t_old[c], t_new[c], c, "shannon" if c == cn else f"shannon (CN {c} for CN {cn})"
    if t_old and t_new:
        r_old, c_old = shannon_radius(*old, cn)
        r_new, c_new = shannon_radius(*new, cn)
        return r_old, r_new, c_new, f"shannon (CN {c_old} / CN {c_new}, no common CN)"
    return _fallback_radius(*old), _fallback_radius(*new), None, "pymatgen ionic_radius"


# ------------------------------------------------------------------------ geometry


@dataclass
class _Geometry:
    cn: list[int]
    bonds: list[tuple[int, int]]  # (cation index, anion index), one entry per bond


def _geometry(structure: Structure) -> _Geometry:
    q = [float(site.specie.oxi_state) for site in structure]
    r6 = [shannon_radius(site.specie.symbol, qi, 6)[0] for site, qi in zip(structure, q)]
    cutoff = _BOND_FACTOR * (max(r6) * 2 if r6 else 3.0)
    cutoff = max(cutoff, 1.0)
    cn = [0] * len(structure)
    bonds: list[tuple[int, int]] = []
    for i, neighbours in enumerate(structure.get_all_neighbors(cutoff)):
        if q[i] <= 0:
            continue
        for nb in neighbours:
            j = nb.index
            if q[j] >= 0 or nb.nn_distance > _BOND_FACTOR * (r6[i] + r6[j]):
                continue
            bonds.append((i, j))
            cn[i] += 1
            cn[j] += 1
    return _Geometry(cn=cn, bonds=bonds)


# ---------------------------------------------------------- site radii and rescaling


@dataclass
class _SiteRadii:
    """Radii of every site before and after, and the mismatch of each substituted species."""

    old: np.ndarray
    new: np.ndarray
    mismatch: dict[str, dict[str, Any]]  # "Mn3+->Fe3+" -> radii, CN, relative mismatch, source
    worst: dict[str, float]  # "cation" / "anion" -> largest relative mismatch


def _site_radii(
    structure: Structure,
    change: Mapping[_Key, _Key],
    substituted: Iterable[str],
    geometry: _Geometry,
) -> _SiteRadii:
    """Old and new radius of every site (changed sites at a common CN, :func:`_pair_radii`);
    a mismatch entry for every species of a ``substituted`` element (not for redox shifts)."""
    substituted = set(substituted)
    out = _SiteRadii(np.empty(len(structure)), np.empty(len(structure)), {}, {"cation": 0.0, "anion": 0.0})
    for i, site in enumerate(structure):
        key = (site.specie.symbol, float(site.specie.oxi_state))
        cn = geometry.cn[i] or 6
        if key not in change:
            out.old[i] = out.new[i] = shannon_radius(key[0], key[1], cn)[0]
            continue
        target = change[key]
        r_o, r_n, c, source = _pair_radii(key, target, cn)
        out.old[i], out.new[i] = r_o, r_n
        if key[0] not in substituted:
            continue
        sp_new = Species(target[0], clean_number(target[1]))
        name = f"{site.specie}->{sp_new}"
        rel = abs(r_n - r_o) / r_o
        kind = "cation" if key[1] > 0 else "anion"
        entry = {
            "from": str(site.specie), "to": str(sp_new), "cn": cn, "radius_cn": c,
            "r_from": round(r_o, 4), "r_to": round(r_n, 4), "mismatch": round(rel, 4),
            "source": source, "kind": kind,
        }
        if name in out.mismatch and out.mismatch[name]["cn"] != cn:
            name = f"{name} (CN {cn})"
        out.mismatch.setdefault(name, entry)
        out.worst[kind] = max(out.worst[kind], rel)
    return out


def _rescale_factor(geometry: _Geometry, radii: _SiteRadii) -> float:
    """The linear factor ``s`` of the documented rule (1 for a cell without bonds)."""
    if not geometry.bonds:
        return 1.0
    b = np.asarray(geometry.bonds)
    return float((radii.new[b[:, 0]] + radii.new[b[:, 1]]).sum() / (radii.old[b[:, 0]] + radii.old[b[:, 1]]).sum())
