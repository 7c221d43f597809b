"""Oxidation states of host structures: given, read from the file, or guessed (pymatgen's
BVAnalyzer), checked for range and charge balance; and the anions a host must have."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from pymatgen.core import Element, Structure

from ionscreen._json import clean_number
from ionscreen.errors import (
    OxidationStateError,
    StructureValidationError,
)

from .validate import require_ordered

__all__ = ["OXIDATION_RANGE", "anions", "assign_oxidation_states", "check_charge_balance",
           "first_line", "require_anion"]

_OXI_HOWTO = (
    "Give them explicitly: on the command line with --oxi Fe=2,P=5,O=-2, or in Python with "
    'oxidation_states={"Fe": 2, "P": 5, "O": -2} (one value per element), or read a CIF that '
    "carries _atom_type_oxidation_number."
)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type if it has none)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line:
            return f"{type(exc).__name__}: {line}"
    return type(exc).__name__


# --------------------------------------------------------------------------- oxidation states


def _all_sites_have_oxi(structure: Structure) -> bool:
    return all(
        getattr(sp, "oxi_state", None) is not None for site in structure for sp in site.species
    )


#: Formal oxidation states of real compounds lie in this range (C4- ... Os8+).
OXIDATION_RANGE = (-4.0, 8.0)


def _in_range(structure: Structure) -> Structure:
    """``structure`` if every given oxidation state is a number in OXIDATION_RANGE."""
    low, high = OXIDATION_RANGE
    for sp in sorted({sp for site in structure for sp in site.species}, key=str):
        if not low <= sp.oxi_state <= high:  # NaN fails too
            raise OxidationStateError(
                f"oxidation state {sp.oxi_state:.4g} of {sp.symbol} is outside {low:g}..{high:+g}; "
                "give the right states. " + _OXI_HOWTO
            )
    return structure


#: ``Structure.properties`` key saying where the oxidation states came from: "given",
#: "in the file", "guessed (bond valence)" or "guessed (composition)"
OXI_FROM = "oxidation_states_from"


def _from(structure: Structure, how: str) -> Structure:
    # a new dict: pymatgen's copy() shares the properties dict between copies
    structure.properties = {**structure.properties, OXI_FROM: how}
    return structure


def oxidation_summary(structure: Structure) -> dict[str, float]:
    """Mean oxidation state per element of a decorated structure ({} when undecorated)."""
    tot: dict[str, float] = {}
    cnt: dict[str, float] = {}
    for site in structure:
        for sp, occ in site.species.items():
            q = getattr(sp, "oxi_state", None)
            if q is None:
                return {}
            tot[sp.symbol] = tot.get(sp.symbol, 0.0) + float(q) * occ
            cnt[sp.symbol] = cnt.get(sp.symbol, 0.0) + occ
    return {el: round(tot[el] / cnt[el], 4) for el in tot}


def _has_ch_bond(structure: Structure, cutoff: float = 1.25) -> bool:
    """Whether some H is bonded to a C (within ``cutoff`` Å): an organic ligand, not water or
    hydroxide (a hydrated Prussian-blue analogue has C and H but no C-H bond)."""
    els = {el.symbol for el in structure.composition.elements}
    if not {"C", "H"} <= els:
        return False
    hs = [i for i, site in enumerate(structure) if site.specie.symbol == "H"]
    for nbrs in structure.get_all_neighbors(cutoff, sites=[structure[i] for i in hs]):
        if any(n.specie.symbol == "C" for n in nbrs):
            return True
    return False


def assign_oxidation_states(
    structure: Structure, oxidation_states: Mapping[str, float] | None = None
) -> Structure:
    """Return a copy decorated with oxidation states; the input is not changed.
    ``properties[OXI_FROM]`` of the copy says which source gave them.

    Precedence: an explicit ``oxidation_states`` mapping (element -> state, every element
    present must be given); else the states already on every site; else pymatgen's
    BVAnalyzer (not for an organic framework, with C-H bonds); else the first of
    ``Composition.oxi_state_guesses()``. If all fail, raise
    OxidationStateError explaining how to give them, or StructureValidationError if the
    structure has partial occupancy (what the user has to fix first).
    """
    elements = sorted({el.symbol for el in structure.composition.elements})

    if oxidation_states is not None:
        given: dict[str, float] = {}
        for key, value in oxidation_states.items():
            symbol = str(key).strip()
            try:
                Element(symbol)
            except ValueError:
                raise OxidationStateError(
                    f"oxidation_states has {key!r}, which is not an element symbol. " + _OXI_HOWTO
                ) from None
            try:
                given[symbol] = float(value)
            except (TypeError, ValueError):
                raise OxidationStateError(
                    f"oxidation state for {symbol} is {value!r}, not a number. " + _OXI_HOWTO
                ) from None
        missing = [el for el in elements if el not in given]
        if missing:
            raise OxidationStateError(
                f"oxidation states missing for {', '.join(missing)} (the structure contains "
                f"{', '.join(elements)}; given: {', '.join(given) or 'none'}). " + _OXI_HOWTO
            )
        decorated = structure.copy()
        decorated.remove_oxidation_states()
        decorated.add_oxidation_state_by_element({el: clean_number(given[el], digits=None) for el in elements})
        return _from(_in_range(decorated), "given")

    if _all_sites_have_oxi(structure):
        done = structure.copy()
        return _in_range(done if OXI_FROM in done.properties else _from(done, "in the file"))

    bare = structure.copy()
    bare.remove_oxidation_states()
    reasons: list[str] = []

    from pymatgen.analysis.bond_valence import BVAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _has_ch_bond(bare):
            # an organic framework (a coordination polymer from a database): BVAnalyzer's
            # valence search fails on covalent C-H/C-N bonds, after 20-25 s for a 336-atom cell
            reasons.append("BVAnalyzer: not tried on an organic framework (C-H bonds)")
        else:
            try:
                return _from(BVAnalyzer().get_oxi_state_decorated_structure(bare),
                             "guessed (bond valence)")
            except Exception as exc:  # noqa: BLE001 - fall back to composition guesses
                reasons.append(f"BVAnalyzer: {first_line(exc)}")
        try:
            guesses = bare.composition.oxi_state_guesses(max_sites=-50)
        except Exception as exc:  # noqa: BLE001
            guesses = ()
            reasons.append(f"oxi_state_guesses: {first_line(exc)}")
        else:
            if not guesses:
                reasons.append("oxi_state_guesses: no charge-balanced combination found")
    if guesses:
        bare.add_oxidation_state_by_element({el: clean_number(v, digits=None) for el, v in guesses[0].items()})
        return _from(bare, "guessed (composition)")
    # guesses fail on partial occupancy (Na0.8CoO2); --oxi would only lead to the disorder
    # error next, so that is the one to report
    require_ordered(structure)
    raise OxidationStateError(
        f"cannot determine oxidation states for {bare.composition.reduced_formula} "
        f"({'; '.join(reasons)}). " + _OXI_HOWTO
    )


def _require_oxi(structure: Structure, what: str) -> None:
    if not _all_sites_have_oxi(structure):
        raise OxidationStateError(
            f"{what} needs oxidation states on every site; call assign_oxidation_states first "
            "(or give them explicitly). " + _OXI_HOWTO
        )


def check_charge_balance(structure: Structure, tol: float = 1e-3) -> None:
    """Raise StructureValidationError if the cell's net formal charge exceeds ``tol`` (e)."""
    _require_oxi(structure, "the charge-balance check")
    net = sum(sp.oxi_state * occu for site in structure for sp, occu in site.species.items())
    if abs(net) > tol:
        states = ", ".join(sorted({str(sp) for site in structure for sp in site.species}))
        raise StructureValidationError(
            f"structure {structure.composition.reduced_formula} is not charge balanced: net "
            f"charge {net:+.4g} e per cell with oxidation states {states}. Give oxidation states "
            "that sum to zero (mixed valence can be fractional, e.g. --oxi Fe=2.6667,O=-2), or "
            "fix the composition."
        )


def anions(structure: Structure) -> list[str]:
    """Species strings (e.g. 'O2-') with a negative oxidation state, sorted."""
    _require_oxi(structure, "finding the anions")
    return sorted({str(sp) for site in structure for sp in site.species if sp.oxi_state < 0})


def require_anion(structure: Structure) -> None:
    """Raise StructureValidationError if no species has a negative oxidation state."""
    if anions(structure):
        return
    present = ", ".join(sorted({str(sp) for site in structure for sp in site.species}))
    raise StructureValidationError(
        f"host has no anion (species: {present}); bond-valence screening needs anions such as "
        "O2-, S2- or F-. If the host does contain anions, give their oxidation states "
        "explicitly, e.g. --oxi Fe=2,P=5,O=-2."
    )
