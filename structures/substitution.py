"""Chemical substitutions of host frameworks (new candidate hosts from known ones).

A substitution replaces *every* site of one element by another element, e.g. all Mn by Fe
(``{"Mn": "Fe"}``) or all O by S (``{"O": "S"}``); up to ``max_simultaneous`` such element
exchanges are combined (``{"Mn": "Fe", "O": "S"}``). Partial (site-by-site) substitution is
not done here.

Every candidate is built from an oxidation-state decorated, charge-balanced host and is
accepted only if

1. **the substituent exists in the oxidation state it would take.** It keeps the state of the
   species it replaces (the oxidation-state pattern of the host) if that state exists in
   solids, else it takes its nearest existing states of the same sign.
2. **the cell stays charge balanced.** A charge left by rule 1 is taken up by the *redox
   elements* (the unsubstituted transition-metal cations, or the elements named in
   ``redox``), shifted evenly to states that exist; if nothing works the substitution is
   rejected. Which states were changed is reported under ``"redox_adjustment"``. What
   "exists" means and the order in which states are tried: :mod:`.substitution_states`.
3. **the ionic radii match.** For every substituted cation species,
   ``|r_new - r_old| / r_old <= radius_tolerance`` with Shannon ionic radii at the site's
   coordination number. Anion substitutions (O -> S: +31 %) change the whole anion
   sublattice, which is what the lattice rescaling accounts for, so they are not filtered by
   ``radius_tolerance``: their mismatch is reported, and filtered only if
   ``anion_radius_tolerance`` is given.

The cell of an accepted candidate is rescaled isotropically by the ratio of its summed
cation-anion bond lengths predicted from Shannon radii after and before (:data:`RESCALE_RULE`).
How coordination numbers and radii are read, and the rule with its measured accuracy on real
oxide / chalcogenide pairs: :mod:`.substitution_radii`.

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Element, Lattice, Species, Structure

from ionscreen._json import clean_number
from ionscreen.errors import StructureValidationError
from ionscreen.structures.substitution_radii import (
    RESCALE_RULE,
    _Geometry,
    _geometry,
    _rescale_factor,
    _site_radii,
    _SiteRadii,
    shannon_radius,
)
from ionscreen.structures.substitution_states import (
    _assign_states,
    _require_decorated,
    known_oxidation_states,
)

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


def _relabel(label: str | None, old: str, new: str, species: Species) -> str:
    if label and label.startswith(old) and not label[len(old):len(old) + 1].islower():
        return new + label[len(old):]
    return str(species)


def _radius_rejection(
    radii: _SiteRadii, radius_tolerance: float, anion_radius_tolerance: float | None
) -> str | None:
    """Why the radii fail rule 3, or None."""
    worst = radii.worst
    if worst["cation"] > radius_tolerance + 1e-12:
        bad = [
            k for k, v in radii.mismatch.items()
            if v["kind"] == "cation" and v["mismatch"] > radius_tolerance
        ]
        return (
            f"ionic radius mismatch {worst['cation']:.1%} > radius_tolerance "
            f"{radius_tolerance:.1%} ({', '.join(bad)})"
        )
    if anion_radius_tolerance is not None and worst["anion"] > anion_radius_tolerance + 1e-12:
        return (
            f"anion radius mismatch {worst['anion']:.1%} > anion_radius_tolerance "
            f"{anion_radius_tolerance:.1%}"
        )
    return None


def _rebuild(
    structure: Structure, change: Mapping[tuple[str, float], tuple[str, float]], scale: float
) -> Structure:
    """``structure`` with its species changed as in ``change`` (the element renamed in the
    site labels) and its lattice scaled by ``scale`` (fractional coordinates kept)."""
    species: list[Species] = []
    labels: list[str | None] = []
    for site in structure:
        key = (site.specie.symbol, float(site.specie.oxi_state))
        sp = Species(change[key][0], clean_number(change[key][1])) if key in change else site.specie
        species.append(sp)
        labels.append(_relabel(site.label, key[0], sp.symbol, sp) if sp.symbol != key[0] else site.label)
    return Structure(
        Lattice(structure.lattice.matrix * scale), species, structure.frac_coords, labels=labels
    )


def _apply(
    structure: Structure,
    substitution: Substitution,
    geometry: _Geometry,
    radius_tolerance: float,
    anion_radius_tolerance: float | None,
    redox: Iterable[str] | None,
) -> tuple[Structure | None, dict[str, Any]]:
    """The substituted structure and its info dict, or None and the info with a ``"reason"``."""
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
    change, info["redox_adjustment"] = assigned

    radii = _site_radii(structure, change, mapping, geometry)
    info["radius_mismatch"] = radii.mismatch
    info["max_cation_mismatch"] = round(radii.worst["cation"], 4)
    info["max_anion_mismatch"] = round(radii.worst["anion"], 4)
    reason = _radius_rejection(radii, radius_tolerance, anion_radius_tolerance)
    if reason is not None:
        info["reason"] = reason
        return None, info

    s = _rescale_factor(geometry, radii)
    info["rescale_factor"] = round(s, 6)
    info["volume_factor"] = round(s**3, 6)
    info["rescale_rule"] = RESCALE_RULE

    new = _rebuild(structure, change, s)
    charge = sum(float(site.specie.oxi_state) for site in new)
    if abs(charge) > 1e-4:  # guard: _assign_states balances by construction
        info["reason"] = f"internal error: net charge {charge:+.4g} after substitution"
        return None, info
    info["charge"] = round(charge, 9) + 0.0
    info["formula"] = new.composition.reduced_formula
    info["oxidation_states"] = sorted({str(site.specie) for site in new})
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

