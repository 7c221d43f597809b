"""Structures from OPTIMADE databases: provider names, the fields a screen asks for, and the
conversion of one entry to a pymatgen :class:`~pymatgen.core.Structure`.

Fetching (page by page, through the result store) is the workflows layer's
(:mod:`ionscreen.workflows.optimade_fetch`); this module only knows what an entry is. The
well-known providers are those of pymatgen's :class:`~pymatgen.ext.optimade.OptimadeRester`
(``mp``, ``alexandria``, ``oqmd``, ``cod``...); the conversion is the ``optimade`` package's
adapter, with the checks a screen needs (3D periodic, known elements) made first so that an
entry the pipeline cannot use fails with what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pymatgen.core import Element, Structure

from ionscreen.errors import IonscreenError

#: The attributes a screen needs of an entry (``response_fields``: a page stays small).
RESPONSE_FIELDS = ("lattice_vectors", "cartesian_site_positions", "species", "species_at_sites",
                   "dimension_types", "nperiodic_dimensions", "nsites", "chemical_formula_reduced",
                   "chemical_formula_descriptive", "structure_features", "last_modified")


class OptimadeError(IonscreenError):
    """An OPTIMADE provider, query or entry that cannot be used."""


def providers() -> dict[str, str]:
    """Short name -> base URL of the well-known OPTIMADE providers (pymatgen's table)."""
    from pymatgen.ext.optimade import OptimadeRester

    return dict(OptimadeRester.aliases)


def resolve_provider(word: str) -> tuple[str, str]:
    """``"mp"`` or ``"http://host/base"`` -> (name, base URL). A URL is its own name (its host
    and path); a short name is looked up in :func:`providers` (any case). Raises
    :class:`OptimadeError` naming the known short names."""
    text = str(word).strip()
    if text.startswith(("http://", "https://")):
        url = text.rstrip("/")
        return url.split("://", 1)[1], url
    known = providers()
    for name, url in known.items():
        if name.lower() == text.lower():
            return name, url.rstrip("/")
    raise OptimadeError(f"unknown OPTIMADE provider '{word}': give a base URL (http://...) or "
                        f"one of {', '.join(sorted(known))}")


def slim_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an entry a screen keeps: id, type and the :data:`RESPONSE_FIELDS` present
    (a provider may send more than was asked)."""
    attrs = entry.get("attributes") or {}
    return {"id": str(entry.get("id")), "type": entry.get("type", "structures"),
            "attributes": {k: attrs[k] for k in RESPONSE_FIELDS if k in attrs}}


def entry_source(provider: str, entry_id: str) -> str:
    """A candidate's ``source`` for an entry: ``optimade:<provider> <id>``."""
    return f"optimade:{provider} {entry_id}"


def entry_url(base_url: str, entry_id: str) -> str:
    """The URL of one entry at its provider (``<base>/v1/structures/<id>``)."""
    return f"{base_url}/v1/structures/{quote(str(entry_id), safe='')}"


def entry_label(entry: Mapping[str, Any]) -> str:
    """``"<id> (<formula>)"`` of an entry, for messages."""
    attrs = entry.get("attributes") or {}
    formula = attrs.get("chemical_formula_reduced") or attrs.get("chemical_formula_descriptive")
    return f"{entry.get('id')}" + (f" ({formula})" if formula else "")


def entry_structure(entry: Mapping[str, Any]) -> Structure:
    """The pymatgen Structure of one OPTIMADE structure entry (partial occupancies kept, as
    the ``optimade`` adapter gives them; vacancies lower a site's occupancy). Raises
    :class:`OptimadeError` saying what makes the entry unusable: not periodic in three
    dimensions, no positions, an unknown element, assemblies."""
    label = entry_label(entry)
    attrs = entry.get("attributes") or {}
    missing = [k for k in ("lattice_vectors", "cartesian_site_positions", "species_at_sites")
               if not attrs.get(k)]
    if missing:
        raise OptimadeError(f"entry {label} has no {', '.join(missing)}: ionscreen needs a "
                            "periodic cell with positions")
    dims = attrs.get("dimension_types")
    if dims is not None and list(dims) != [1, 1, 1]:
        raise OptimadeError(f"entry {label} is periodic in {sum(map(bool, dims))} dimension(s) "
                            f"(dimension_types {list(dims)}); ionscreen screens bulk (3D) hosts")
    if "assemblies" in (attrs.get("structure_features") or ()):
        raise OptimadeError(f"entry {label} has assemblies (alternative site groups): order it "
                            "first and give the file with --files")
    symbols = {s for sp in attrs.get("species") or () for s in sp.get("chemical_symbols", ())}
    bad = sorted(s for s in symbols if s != "vacancy" and not Element.is_valid_symbol(s))
    if bad:
        raise OptimadeError(f"entry {label} has species that are not elements: {', '.join(bad)}")
    # only what makes the structure goes to the adapter, unvalidated but for the species: a
    # provider's formula, date or other field that does not follow the standard must not
    # lose the entry
    from optimade.adapters.structures.pymatgen import get_pymatgen
    from optimade.models import Species, StructureResource, StructureResourceAttributes

    keep = ("lattice_vectors", "cartesian_site_positions", "species_at_sites",
            "dimension_types", "nperiodic_dimensions", "nsites")
    core = {k: attrs[k] for k in keep if attrs.get(k) is not None}
    core.setdefault("nsites", len(attrs["species_at_sites"]))
    core.setdefault("dimension_types", [1, 1, 1])
    core.setdefault("nperiodic_dimensions", sum(map(bool, core["dimension_types"])))
    try:
        species = [Species(**sp) for sp in attrs.get("species") or ()] or None
        res = StructureResource.model_construct(
            id=str(entry.get("id")), type="structures",
            attributes=StructureResourceAttributes.model_construct(**core, species=species))
        structure = get_pymatgen(res)
    except Exception as exc:  # the adapter's validation names the field
        raise OptimadeError(f"entry {label} could not be read: {exc}") from None
    if not isinstance(structure, Structure):
        raise OptimadeError(f"entry {label} is not a periodic structure")
    if len(structure) == 0:
        raise OptimadeError(f"entry {label} has no sites")
    return structure


__all__ = ["RESPONSE_FIELDS", "OptimadeError", "entry_label", "entry_source", "entry_structure",
           "entry_url", "providers", "resolve_provider", "slim_entry"]
