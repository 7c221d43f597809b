"""Chemical substitutions of host frameworks (new candidate hosts from known ones).

A substitution replaces *every* site of one element by another element, e.g. all Mn by Fe
(``{"Mn": "Fe"}``) or all O by S (``{"O": "S"}``); up to ``max_simultaneous`` such element
exchanges are combined (``{"Mn": "Fe", "O": "S"}``). Partial (site-by-site) substitution is
not done here.

Every candidate is built from an oxidation-state decorated, charge-balanced host and is
accepted only if

1. **the substituent exists in the oxidation state it would take.** It keeps the state of the
   species it replaces (the oxidation-state pattern of the host). A state "exists" when it is
   in pymatgen's ICSD or common oxidation states of the element, or Shannon (1976) tabulated an
   ionic radius for it (Shannon's radii come from refined crystal structures, so e.g. Fe4+,
   from SrFeO3, exists although it is not in pymatgen's ICSD list). A fractional (mixed-valence)
   state, such as Mn3.5+ in LiMn2O4, exists when both neighbouring integer states exist.
2. **the cell stays charge balanced.** When the substituent does not exist in the pattern
   state, it takes its nearest existing state of the same sign (nearest first, up to three
   tried) and the charge difference is taken up by the *redox elements*: the transition-metal
   cations that are not substituted (or the elements named in ``redox``), whose oxidation
   state is shifted evenly over their sites (all redox elements together first, then each one
   alone), and only to states that exist in the sense of 1. If nothing works the substitution
   is rejected. Which states were changed is reported under ``"redox_adjustment"``.
3. **the ionic radii match.** For every substituted cation species,
   ``|r_new - r_old| / r_old <= radius_tolerance`` with Shannon ionic radii at the site's
   coordination number (see "Radii" below). Anion substitutions (O -> S: +31 %) change the
   whole anion sublattice, which is what the lattice rescaling accounts for, so they are not
   filtered by ``radius_tolerance``: their mismatch is reported, and filtered only if
   ``anion_radius_tolerance`` is given.

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

Duplicates
    Results are compared with pymatgen's ``StructureMatcher`` (species with oxidation states,
    volumes scaled): equivalent structures reached by different routes are kept once (the
    first in enumeration order; the others are listed under ``"equivalent_routes"``), and a
    result equivalent to the parent (e.g. a swap ``{"Fe": "Mn", "Mn": "Fe"}`` of symmetry
    related sublattices) is dropped.

Site properties (magnetic moments etc.) are not carried over. Labels keep the parent's Wyckoff
naming with the element renamed (``Mn_3`` -> ``Fe_3``, ``O1_2`` -> ``S1_2``).
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Element, Lattice, Species, Structure

from ionscreen._json import clean_number
from ionscreen.structures.errors import OxidationStateError, StructureValidationError

__all__ = [
    "DEFAULT_ANION_OPTIONS",
    "DEFAULT_CATION_OPTIONS",
    "FRAMEWORK_CATIONS",
    "RESCALE_RULE",
    "Substitution",
    "SubstitutionRejected",
    "apply_substitution",
    "enumerate_substitutions",
    "known_oxidation_states",
    "shannon_radius",
]

#: The framework transition metals interchanged by default.
FRAMEWORK_CATIONS: tuple[str, ...] = ("Mn", "Fe", "Co", "Ni", "Cr", "V", "Ti")
#: Default cation options: each framework transition metal by each of the others.
DEFAULT_CATION_OPTIONS: dict[str, list[str]] = {
    el: [o for o in FRAMEWORK_CATIONS if o != el] for el in FRAMEWORK_CATIONS
}
#: Default anion options: oxide -> sulfide, selenide.
DEFAULT_ANION_OPTIONS: dict[str, list[str]] = {"O": ["S", "Se"]}
#: Name of the lattice-rescaling rule, recorded in every info dict.
RESCALE_RULE = "bond-length ratio (sum of Shannon r_cation + r_anion over all cation-anion bonds)"

_BOND_FACTOR = 1.25  # bonded if d <= 1.25 (r_i + r_j), CN-VI Shannon radii
#: Ions read as low spin (as in LiCoO2, LiNiO2 and most oxides); all others high spin.
_LOW_SPIN = {("Co", 3), ("Ni", 3)}
_MAX_STATE_CANDIDATES = 3
_CHARGE_TOL = 1e-6
_ROMAN = {
    "I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9,
    "X": 10, "XI": 11, "XII": 12, "XIV": 14,
}


class SubstitutionRejected(StructureValidationError):
    """A requested substitution cannot give a sensible host; ``info["reason"]`` says why."""

    def __init__(self, message: str, info: dict[str, Any] | None = None):
        super().__init__(message)
        self.info = info or {}


def _check_symbol(symbol: Any, what: str) -> str:
    if not isinstance(symbol, str) or not Element.is_valid_symbol(symbol):
        raise StructureValidationError(
            f"{what}: {symbol!r} is not an element symbol; use symbols such as 'Fe', 'S'."
        )
    return symbol


@dataclass(frozen=True)
class Substitution:
    """Element exchanges applied together, e.g. ``{"Mn": "Fe"}`` or ``{"Mn": "Fe", "O": "S"}``."""

    mapping: dict[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.mapping, Mapping) or not self.mapping:
            raise StructureValidationError(
                f"a Substitution needs a non-empty mapping old -> new element, got {self.mapping!r}"
            )
        clean: dict[str, str] = {}
        for old, new in sorted(self.mapping.items()):
            _check_symbol(old, "substitution source")
            _check_symbol(new, f"substitution target of {old}")
            if old == new:
                raise StructureValidationError(f"substitution maps {old} to itself")
            clean[old] = new
        object.__setattr__(self, "mapping", clean)

    def __hash__(self) -> int:
        return hash(tuple(self.mapping.items()))

    @property
    def label(self) -> str:
        """``"Mn->Fe"``; several exchanges joined by ", " in order of the source element."""
        return ", ".join(f"{old}->{new}" for old, new in self.mapping.items())

    def __str__(self) -> str:
        return self.label

    def as_dict(self) -> dict[str, Any]:
        return {"mapping": dict(self.mapping), "label": self.label}


# --------------------------------------------------------------------- oxidation states


@cache
def known_oxidation_states(symbol: str) -> tuple[int, ...]:
    """Integer oxidation states in which ``symbol`` is known to exist in solids.

    The union of pymatgen's ICSD and common oxidation states and the states for which Shannon
    (1976) tabulated an ionic radius.
    """
    el = Element(symbol)
    states = set(el.icsd_oxidation_states or ()) | set(el.common_oxidation_states or ())
    shannon = el.data.get("Shannon radii") or {}
    states |= {int(k) for k in shannon}
    return tuple(sorted(int(s) for s in states))


def _state_exists(symbol: str, q: float) -> bool:
    known = known_oxidation_states(symbol)
    lo, hi = math.floor(q + 1e-9), math.ceil(q - 1e-9)
    return lo in known and hi in known


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


# ---------------------------------------------------------------------- application


def _require_decorated(structure: Structure) -> None:
    if not structure.is_ordered:
        raise StructureValidationError(
            f"{structure.composition.reduced_formula}: substitution needs an ordered structure "
            "(one species per site, no partial occupancy)"
        )
    for site in structure:
        if not isinstance(site.specie, Species) or site.specie.oxi_state is None:
            raise OxidationStateError(
                f"{structure.composition.reduced_formula}: substitution needs oxidation states "
                "on every site (site {0} is {1}); decorate the structure first, e.g. with "
                "ionscreen.structures.io.assign_oxidation_states or "
                "structure.add_oxidation_state_by_element({{'Fe': 2, 'O': -2, ...}})".format(
                    structure.index(site), site.specie
                )
            )
    net = sum(float(site.specie.oxi_state) for site in structure)
    if abs(net) > 1e-3:
        raise StructureValidationError(
            f"{structure.composition.reduced_formula} is not charge balanced (net charge "
            f"{net:+.4g} e per cell); substitutions start from a neutral host"
        )


def _species_states(structure: Structure) -> dict[tuple[str, float], int]:
    counts: dict[tuple[str, float], int] = {}
    for site in structure:
        key = (site.specie.symbol, float(site.specie.oxi_state))
        counts[key] = counts.get(key, 0) + 1
    return counts


def _state_candidates(new: str, q: float) -> list[float]:
    """States for the substituent: the pattern state if it exists, else the nearest ones."""
    if _state_exists(new, q):
        return [q]
    sign = 1 if q > 0 else -1
    same_sign = [s for s in known_oxidation_states(new) if s * sign > 0]
    same_sign.sort(key=lambda s: (abs(s - q), s))
    return [float(s) for s in same_sign[:_MAX_STATE_CANDIDATES]]


def _default_redox(structure: Structure, mapping: Mapping[str, str]) -> list[str]:
    els = []
    for site in structure:
        sym = site.specie.symbol
        if sym in mapping or site.specie.oxi_state <= 0 or sym in els:
            continue
        if Element(sym).is_transition_metal:
            els.append(sym)
    return els


_Key = tuple[str, float]  # a species: (element, oxidation state)


def _substituent_options(
    counts: Mapping[_Key, int], mapping: Mapping[str, str]
) -> tuple[list[_Key], list[list[float]]] | str:
    """The substituted species and the states each substituent may take, or a rejection."""
    subs = [k for k in counts if k[0] in mapping]
    options = []
    for el, q in subs:
        cands = _state_candidates(mapping[el], q)
        if not cands:
            return f"{mapping[el]} has no known oxidation state of the sign of {el}{q:+g}"
        options.append(cands)
    return subs, options


def _redox_groups(redox_keys: list[_Key], redox_els: list[str]) -> list[list[_Key]]:
    """Species that may take up a charge: all redox species together first, then each
    redox element alone."""
    if not redox_keys:
        return []
    groups = [redox_keys]
    for el in redox_els:
        one = [k for k in redox_keys if k[0] == el]
        if one and one != redox_keys:
            groups.append(one)
    return groups


def _compensate(
    groups: list[list[_Key]], counts: Mapping[_Key, int], dq: float
) -> dict[_Key, _Key] | None:
    """The first group whose states, shifted evenly to cancel ``dq``, all exist; else None."""
    for group in groups:
        shift = -dq / sum(counts[k] for k in group)
        moved = {k: (k[0], float(clean_number(k[1] + shift))) for k in group}
        if all(_state_exists(*v) for v in moved.values()):
            return moved
    return None


def _species_label(key: _Key) -> str:
    return str(Species(key[0], clean_number(key[1])))


def _unbalanced_reason(
    subs: list[_Key], mapping: Mapping[str, str], tried: list[str], redox_els: list[str]
) -> str:
    pattern = ", ".join(f"{mapping[k[0]]}{clean_number(k[1]):+g}" for k in subs)
    return (
        f"no charge-balanced assignment: the pattern needs {pattern}, which is not a known "
        f"state; the nearest known states ({'; '.join(tried)}) leave a charge that "
        + (
            f"the redox elements ({', '.join(redox_els)}) cannot take within their known states"
            if redox_els else "no redox element is left to compensate"
        )
    )


def _assign_states(
    structure: Structure, mapping: Mapping[str, str], redox: Iterable[str] | None
) -> tuple[dict[_Key, _Key], dict[str, Any]] | str:
    """Old species -> new species for every species in the cell, or a rejection reason.

    Substituent state combinations are tried smallest total change of state first; one that
    leaves a charge is kept if a redox group (:func:`_redox_groups`) can take it up.
    """
    counts = _species_states(structure)
    options = _substituent_options(counts, mapping)
    if isinstance(options, str):
        return options
    subs, choices = options
    redox_els = (
        [e for e in redox if e not in mapping] if redox is not None
        else _default_redox(structure, mapping)
    )
    groups = _redox_groups([k for k in counts if k[0] in redox_els and k[1] > 0], redox_els)
    combos = sorted(  # smallest total change of state first
        itertools.product(*choices),
        key=lambda states: sum(abs(s - k[1]) * counts[k] for k, s in zip(subs, states)),
    )
    tried = []
    for states in combos:
        assignment = {k: (mapping[k[0]], s) for k, s in zip(subs, states)}
        dq = sum((s - k[1]) * counts[k] for k, s in zip(subs, states))
        if abs(dq) < _CHARGE_TOL:
            return assignment, {}
        moved = _compensate(groups, counts, dq)
        if moved is not None:
            adjustment = {_species_label(k): _species_label(v) for k, v in moved.items()}
            return {**assignment, **moved}, adjustment
        tried.append(", ".join(f"{mapping[k[0]]}{clean_number(s):+g}" for k, s in zip(subs, states)))
    return _unbalanced_reason(subs, mapping, tried, redox_els)


def _relabel(label: str | None, old: str, new: str, species: Species) -> str:
    if label and label.startswith(old) and not label[len(old):len(old) + 1].islower():
        return new + label[len(old):]
    return str(species)


def _apply(
    structure: Structure,
    substitution: Substitution,
    geometry: _Geometry,
    radius_tolerance: float,
    anion_radius_tolerance: float | None,
    redox: Iterable[str] | None,
) -> tuple[Structure | None, dict[str, Any]]:
    mapping = substitution.mapping
    info: dict[str, Any] = {
        "substitution": substitution.label,
        "mapping": dict(mapping),
        "parent_formula": structure.composition.reduced_formula,
    }
    present = {site.specie.symbol for site in structure}
    missing = [el for el in mapping if el not in present]
    if missing:
        info["reason"] = f"{', '.join(missing)} not in {info['parent_formula']}"
        return None, info

    assigned = _assign_states(structure, mapping, redox)
    if isinstance(assigned, str):
        info["reason"] = assigned
        return None, info
    change, adjustment = assigned
    info["redox_adjustment"] = adjustment

    # radii of every changed site: old and new species at a common CN
    old_r = np.empty(len(structure))
    new_r = np.empty(len(structure))
    mismatch: dict[str, dict[str, Any]] = {}
    worst = {"cation": 0.0, "anion": 0.0}
    new_species: list[Species] = []
    for i, site in enumerate(structure):
        key = (site.specie.symbol, float(site.specie.oxi_state))
        cn = geometry.cn[i] or 6
        if key in change:
            target = change[key]
            r_o, r_n, c, source = _pair_radii(key, target, cn)
            sp_new = Species(target[0], clean_number(target[1]))
            if key[0] in mapping:
                name = f"{site.specie}->{sp_new}"
                rel = abs(r_n - r_o) / r_o
                entry = {
                    "from": str(site.specie), "to": str(sp_new), "cn": cn, "radius_cn": c,
                    "r_from": round(r_o, 4), "r_to": round(r_n, 4), "mismatch": round(rel, 4),
                    "source": source, "kind": "cation" if key[1] > 0 else "anion",
                }
                if name in mismatch and mismatch[name]["cn"] != cn:
                    name = f"{name} (CN {cn})"
                mismatch.setdefault(name, entry)
                kind = "cation" if key[1] > 0 else "anion"
                worst[kind] = max(worst[kind], rel)
        else:
            r_o, _ = shannon_radius(key[0], key[1], cn)
            r_n = r_o
            sp_new = site.specie
        old_r[i], new_r[i] = r_o, r_n
        new_species.append(sp_new)
    info["radius_mismatch"] = mismatch
    info["max_cation_mismatch"] = round(worst["cation"], 4)
    info["max_anion_mismatch"] = round(worst["anion"], 4)
    if worst["cation"] > radius_tolerance + 1e-12:
        bad = [
            k for k, v in mismatch.items()
            if v["kind"] == "cation" and v["mismatch"] > radius_tolerance
        ]
        info["reason"] = (
            f"ionic radius mismatch {worst['cation']:.1%} > radius_tolerance "
            f"{radius_tolerance:.1%} ({', '.join(bad)})"
        )
        return None, info
    if anion_radius_tolerance is not None and worst["anion"] > anion_radius_tolerance + 1e-12:
        info["reason"] = (
            f"anion radius mismatch {worst['anion']:.1%} > anion_radius_tolerance "
            f"{anion_radius_tolerance:.1%}"
        )
        return None, info

    # lattice rescaling: ratio of summed predicted bond lengths
    if geometry.bonds:
        b = np.asarray(geometry.bonds)
        s = float((new_r[b[:, 0]] + new_r[b[:, 1]]).sum() / (old_r[b[:, 0]] + old_r[b[:, 1]]).sum())
    else:
        s = 1.0
    info["rescale_factor"] = round(s, 6)
    info["volume_factor"] = round(s**3, 6)
    info["rescale_rule"] = RESCALE_RULE

    labels = []
    for site, sp in zip(structure, new_species):
        old_el = site.specie.symbol
        labels.append(_relabel(site.label, old_el, sp.symbol, sp) if sp.symbol != old_el else site.label)
    new = Structure(
        Lattice(structure.lattice.matrix * s),
        new_species,
        structure.frac_coords,
        labels=labels,
    )
    charge = sum(float(sp.oxi_state) for sp in new_species)
    if abs(charge) > 1e-4:  # guard: _assign_states balances by construction
        info["reason"] = f"internal error: net charge {charge:+.4g} after substitution"
        return None, info
    info["charge"] = round(charge, 9) + 0.0
    info["formula"] = new.composition.reduced_formula
    info["oxidation_states"] = sorted({str(sp) for sp in new_species})
    return new, info


def _check_tolerances(radius_tolerance: float, anion_radius_tolerance: float | None) -> None:
    if not radius_tolerance >= 0:
        raise StructureValidationError(f"radius_tolerance must be >= 0, got {radius_tolerance!r}")
    if anion_radius_tolerance is not None and not anion_radius_tolerance >= 0:
        raise StructureValidationError(
            f"anion_radius_tolerance must be >= 0 or None, got {anion_radius_tolerance!r}"
        )


def apply_substitution(
    structure: Structure,
    substitution: Substitution | Mapping[str, str],
    radius_tolerance: float = 0.15,
    *,
    anion_radius_tolerance: float | None = None,
    redox: Iterable[str] | None = None,
) -> tuple[Structure, dict[str, Any]]:
    """Apply one substitution; raise :class:`SubstitutionRejected` (with ``.info``) if it fails.

    The rules (oxidation states, charge balance, radius tolerance, lattice rescaling) are those
    of the module docstring. Returns the new structure and its info dict.
    """
    if not isinstance(substitution, Substitution):
        substitution = Substitution(dict(substitution))
    _check_tolerances(radius_tolerance, anion_radius_tolerance)
    _require_decorated(structure)
    new, info = _apply(
        structure, substitution, _geometry(structure), radius_tolerance,
        anion_radius_tolerance, redox,
    )
    if new is None:
        raise SubstitutionRejected(
            f"substitution {substitution.label} of {info['parent_formula']} rejected: "
            f"{info['reason']}",
            info,
        )
    return new, info


def _singles(
    structure: Structure, options: Mapping[str, list[str]], sign: int, what: str
) -> list[tuple[str, str]]:
    present: dict[str, set[int]] = {}
    for site in structure:
        present.setdefault(site.specie.symbol, set()).add(int(np.sign(site.specie.oxi_state)))
    out: list[tuple[str, str]] = []
    for old, news in options.items():
        _check_symbol(old, f"{what} key")
        if isinstance(news, str):
            news = [news]
        for new in news:
            _check_symbol(new, f"{what}[{old!r}]")
        if old not in present:
            continue
        if sign not in present[old]:
            kind = "cation" if sign > 0 else "anion"
            raise StructureValidationError(
                f"{what} names {old}, which is not a{'n' if kind == 'anion' else ''} {kind} in "
                f"{structure.composition.reduced_formula}; put it under "
                f"{'anion_options' if kind == 'cation' else 'cation_options'}"
            )
        for new in news:
            if new != old and (old, new) not in out:
                out.append((old, new))
    return out


def enumerate_substitutions(
    structure: Structure,
    cation_options: dict[str, list[str]] | None = None,
    anion_options: dict[str, list[str]] | None = None,
    radius_tolerance: float = 0.15,
    max_simultaneous: int = 1,
    *,
    anion_radius_tolerance: float | None = None,
    redox: Iterable[str] | None = None,
    rejected: list[tuple[Substitution, dict[str, Any]]] | None = None,
) -> list[tuple[Substitution, Structure, dict[str, Any]]]:
    """All accepted substitutions of an oxidation-state decorated host, duplicates removed.

    ``cation_options`` / ``anion_options`` map an element of the host to the elements that may
    replace it (``None``: :data:`DEFAULT_CATION_OPTIONS` / :data:`DEFAULT_ANION_OPTIONS`;
    ``{}``: none). Options for elements absent from the host are skipped. Up to
    ``max_simultaneous`` element exchanges (with distinct source elements) are combined.
    ``redox`` overrides the elements allowed to change oxidation state for charge balance
    (default: the unsubstituted transition-metal cations). If ``rejected`` is a list, every
    rejected or duplicate substitution is appended to it with its info dict (``"reason"``).

    Returns ``(Substitution, structure, info)`` in enumeration order (single exchanges first).
    Info keys: ``substitution`` (label), ``mapping``, ``parent_formula``, ``formula``,
    ``rescale_factor`` (linear), ``volume_factor``, ``rescale_rule``, ``radius_mismatch`` (per
    substituted species: radii, CN, relative mismatch, source), ``max_cation_mismatch``,
    ``max_anion_mismatch``, ``redox_adjustment``, ``oxidation_states``, ``charge``,
    ``equivalent_routes``.

    Raises :class:`OxidationStateError` if a site has no oxidation state and
    :class:`StructureValidationError` for an unknown element symbol, an option naming a cation
    as an anion (or vice versa), a disordered or charged host, or bad tolerances.
    """
    _require_decorated(structure)
    _check_tolerances(radius_tolerance, anion_radius_tolerance)
    if not isinstance(max_simultaneous, int) or max_simultaneous < 1:
        raise StructureValidationError(f"max_simultaneous must be an int >= 1, got {max_simultaneous!r}")
    cat = DEFAULT_CATION_OPTIONS if cation_options is None else cation_options
    an = DEFAULT_ANION_OPTIONS if anion_options is None else anion_options
    singles = _singles(structure, cat, 1, "cation_options") + _singles(structure, an, -1, "anion_options")

    subs: list[Substitution] = []
    for k in range(1, max_simultaneous + 1):
        for combo in itertools.combinations(singles, k):
            sources = [old for old, _ in combo]
            if len(set(sources)) == k:
                subs.append(Substitution(dict(combo)))

    geometry = _geometry(structure)
    accepted: list[tuple[Substitution, Structure, dict[str, Any]]] = []
    for sub in subs:
        new, info = _apply(structure, sub, geometry, radius_tolerance, anion_radius_tolerance, redox)
        if new is None:
            if rejected is not None:
                rejected.append((sub, info))
            continue
        info["equivalent_routes"] = []
        accepted.append((sub, new, info))
    return _deduplicate(structure, accepted, rejected)


def _deduplicate(
    parent: Structure,
    accepted: list[tuple[Substitution, Structure, dict[str, Any]]],
    rejected: list[tuple[Substitution, dict[str, Any]]] | None,
) -> list[tuple[Substitution, Structure, dict[str, Any]]]:
    if not accepted:
        return []
    matcher = StructureMatcher()  # species compared with oxidation states; volume scaled
    kept: list[tuple[Substitution, Structure, dict[str, Any]]] = []
    parent_comp = parent.composition
    for sub, new, info in accepted:
        reason = None
        if new.composition.reduced_composition == parent_comp.reduced_composition and matcher.fit(parent, new):
            reason = "equivalent to the parent structure"
        else:
            for k_sub, k_new, k_info in kept:
                if (
                    k_new.composition.reduced_composition == new.composition.reduced_composition
                    and matcher.fit(k_new, new)
                ):
                    k_info["equivalent_routes"].append(sub.label)
                    reason = f"duplicate of {k_sub.label} (StructureMatcher)"
                    break
        if reason is None:
            kept.append((sub, new, info))
        elif rejected is not None:
            info = dict(info)
            info["reason"] = reason
            rejected.append((sub, info))
    return kept
