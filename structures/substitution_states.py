"""Oxidation states and charge balance for :mod:`.substitution` (its rules 1 and 2).

A substituent keeps the oxidation state of the species it replaces when that state exists;
a state "exists" when it is in pymatgen's ICSD or common oxidation states of the element, or
Shannon (1976) tabulated an ionic radius for it (Shannon's radii come from refined crystal
structures, so e.g. Fe4+, from SrFeO3, exists although it is not in pymatgen's ICSD list). A
fractional (mixed-valence) state, such as Mn3.5+ in LiMn2O4, exists when both neighbouring
integer states exist.

Otherwise the substituent takes its nearest existing states of the same sign (nearest first,
up to three tried), and the combinations of states of all substituents are tried smallest
total change of state first. A combination that leaves a charge is kept if the *redox
elements* can take it up: the transition-metal cations that are not substituted (or the
elements named in ``redox``), whose oxidation state is shifted evenly over their sites, all
redox elements together first, then each one alone, and only to states that exist. If no
combination balances, the substitution is rejected with a reason that names the states tried.
The redox states that were changed are reported under ``"redox_adjustment"``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from pymatgen.core import Element, Species, Structure

from ionscreen._json import clean_number
from ionscreen.errors import OxidationStateError, StructureValidationError

__all__ = ["known_oxidation_states"]

_MAX_STATE_CANDIDATES = 3
_CHARGE_TOL = 1e-6

_Key = tuple[str, float]  # a species: (element, oxidation state)


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


def _require_decorated(structure: Structure) -> None:
    """Refuse a disordered, undecorated or charged host (substitutions start from a neutral,
    oxidation-state decorated one)."""
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
                "ionscreen.structures.oxidation.assign_oxidation_states or "
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


def _species_states(structure: Structure) -> dict[_Key, int]:
    counts: dict[_Key, int] = {}
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
    """The unsubstituted transition-metal cations, in site order."""
    els = []
    for site in structure:
        sym = site.specie.symbol
        if sym in mapping or site.specie.oxi_state <= 0 or sym in els:
            continue
        if Element(sym).is_transition_metal:
            els.append(sym)
    return els


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
