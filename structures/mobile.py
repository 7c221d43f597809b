"""Which sites of the working ion are mobile (``--mobile-sites``): by default every site of the
ion is; a user can name the mobile ones by site label (``Na2``), Wyckoff position (``6b``) or
site index (0-based, in the file's order), and the others stay as part of the framework.

The rest of the pipeline needs no change: a site of the ion element whose ``role`` property is
not ``"DI"`` is no mobile site (:meth:`ionscreen.structures.ions.WorkingIon.mobile_sites`), so
the BVSE landscape, the NEB, the capacity and the voltage all leave it in the host.
"""

from __future__ import annotations

import re
from typing import Any

from pymatgen.core import Structure

from ionscreen.errors import StructureValidationError

from .ions import get_working_ion

__all__ = ["FIXED", "select_mobile", "site_names"]

FIXED = "fixed"
"""``role`` of a site of the working ion that the user did not name as mobile."""
_WYCKOFF = re.compile(r"^\d+[a-zA-Z]$")


def site_names(structure: Structure, indices: list[int]) -> dict[int, tuple[str, str]]:
    """(label, Wyckoff position) of each of ``indices``, the Wyckoff one from the structure's
    space group (symprec 0.01 Å)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    wyck: dict[int, str] = {}
    try:
        sym = SpacegroupAnalyzer(structure, symprec=0.01).get_symmetrized_structure()
        for group, symbol in zip(sym.equivalent_indices, sym.wyckoff_symbols):
            for i in group:
                wyck[i] = symbol
    except Exception:  # noqa: BLE001 - no symmetry found: labels and indices still work
        pass
    return {i: (str(structure[i].label or structure[i].species_string), wyck.get(i, "?"))
            for i in indices}


def select_mobile(structure: Structure, ion: str, spec: str) -> tuple[Structure, dict[str, Any]]:
    """``structure`` with only the sites of ``ion`` that ``spec`` names mobile (comma- or
    space-separated labels, Wyckoff positions or indices); the others get ``role``
    :data:`FIXED`. Returns the structure and what was chosen (for the provenance). Raises
    :class:`StructureValidationError` naming the choices when a word matches no site of the
    ion or nothing is left mobile."""
    wi = get_working_ion(ion)
    formula = structure.composition.reduced_formula
    if wi.molecular:
        raise StructureValidationError("--mobile-sites names sites of an atomic ion; for NH4+ "
                                       "every ammonium group is mobile")
    heads = wi.mobile_sites(structure)
    if not heads:
        raise StructureValidationError(f"{formula} holds no {wi.label()}: --mobile-sites has no "
                                       "site to choose from")
    names = site_names(structure, heads)
    choices = ", ".join(sorted({f"{lab} ({w})" for lab, w in names.values()}))
    chosen: set[int] = set()
    for word in [w for w in re.split(r"[,\s]+", spec.strip()) if w]:
        if word.isdigit():
            hit = {int(word)} & set(heads)
        elif _WYCKOFF.match(word):
            hit = {i for i, (_lab, w) in names.items() if w.lower() == word.lower()}
        else:
            hit = {i for i, (lab, _w) in names.items() if lab == word}
        if not hit:
            raise StructureValidationError(
                f"--mobile-sites {word!r} matches no {wi.label()} site of {formula}; its "
                f"{wi.element} sites are {choices} (indices {heads[0]}–{heads[-1]})")
        chosen |= hit
    fixed = [i for i in heads if i not in chosen]
    out = structure.copy()
    roles = [site.properties.get("role") for site in out]
    out.add_site_property("role", [FIXED if i in fixed else (r or ("DI" if i in heads else "host"))
                                   for i, r in enumerate(roles)])
    info = {"given": spec, "mobile": len(chosen), "fixed": len(fixed),
            "mobile_sites": sorted({f"{names[i][0]} ({names[i][1]})" for i in chosen}),
            "fixed_sites": sorted({f"{names[i][0]} ({names[i][1]})" for i in fixed})}
    return out, info
