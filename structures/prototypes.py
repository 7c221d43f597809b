"""Library of known host crystal structures, built from published crystallography.

The numbers live in ``data/prototypes.json`` (one entry per host, with its citation) so that
they can be reviewed and extended without touching code. Each entry is expanded from its
Wyckoff sites as pymatgen's ``Structure.from_spacegroup`` does (the same
``SpaceGroup.get_orbit``, with the space group cached), in an explicitly named setting
(origin choice, hexagonal axes), because the default setting of a bare Hermann-Mauguin symbol
differs between groups and between pymatgen versions.

A host exists in two forms: empty (charged, mobile ions removed) and with a working ion on its
tabulated ion sites (discharged). The redox-active framework element(s) change oxidation state
so that every built structure is charge balanced.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import numpy as np
from pymatgen.core import Element, Lattice, Species, Structure
from pymatgen.symmetry.groups import SpaceGroup

from ionscreen._json import clean_number

from .ions import WORKING_IONS

__all__ = [
    "WORKING_ION_OXIDATION_STATES",
    "Citation",
    "IonSite",
    "Prototype",
    "WyckoffSite",
    "example_hosts",
    "get_prototype",
    "list_prototypes",
]

#: Formal oxidation state of each single-atom ion that can be put on ion sites: the
#: single-atom working ions (:data:`ionscreen.structures.ions.WORKING_IONS`) and K+, which
#: occupies the tunnels of some cited compounds.
WORKING_ION_OXIDATION_STATES: dict[str, int] = {
    **{name: ion.charge for name, ion in WORKING_IONS.items() if not ion.molecular}, "K": 1}

_DATA_FILE = "prototypes.json"


@dataclass(frozen=True)
class Citation:
    """Where a prototype's numbers come from; ``doi`` may read "citation to verify"."""

    authors: tuple[str, ...]
    title: str
    journal: str
    volume: str
    pages: str
    year: int
    doi: str

    def __str__(self) -> str:
        authors = ", ".join(self.authors)
        return f"{authors}, {self.journal} {self.volume} ({self.year}) {self.pages}"


@dataclass(frozen=True)
class WyckoffSite:
    """One framework Wyckoff position (fractional coordinates in the entry's setting)."""

    label: str
    wyckoff: str
    element: str
    oxidation_state: float
    coords: tuple[float, float, float]
    occupancy: float = 1.0


@dataclass(frozen=True)
class IonSite:
    """One working-ion Wyckoff position; which ion sits there is chosen at build time."""

    label: str
    wyckoff: str
    coords: tuple[float, float, float]
    occupancy: float = 1.0


@dataclass(frozen=True)
class Prototype:
    """A host crystal structure from the literature, with the data needed to rebuild it."""

    id: str
    name: str
    framework: str
    spacegroup: str
    spacegroup_number: int
    setting: str
    lattice: tuple[float, float, float, float, float, float]
    sites: tuple[WyckoffSite, ...]
    ion_sites: tuple[IonSite, ...]
    native_ion: str | None
    native_ion_oxidation_state: float | None
    redox: tuple[str, ...]
    citation: Citation
    density: float | None = None
    density_source: str = ""
    data_note: str = ""
    example: bool = False
    structure_origin: str = "experimental"
    removed_species: str = ""
    """What the cited structure holds that this host was built without (birnessite's
    interlayer K and water, hollandite's tunnel Cs): the gap is held open by nothing here."""
    """"experimental" (a published refinement), else what computed the coordinates."""

    @property
    def measured(self) -> bool:
        """True when lattice and coordinates come from a published refinement."""
        return self.structure_origin == "experimental"

    def provenance_text(self) -> str:
        """The citation, plus how the structure was obtained when it was not measured."""
        return str(self.citation) + ("" if self.measured else f"; structure {self.structure_origin}")

    def build(self, with_ion: str | None = None) -> Structure:
        """Build the oxidation-state decorated host.

        ``with_ion=None`` gives the empty (charged) host; ``"native"`` (or the native ion's
        symbol) gives the cited compound, e.g. LiFePO4; any other working ion (``"Mg"``) fills
        every ion site with that ion. The redox element's oxidation state is shifted evenly so
        that the cell stays neutral; a ValueError is raised if that needs an oxidation state
        the element is not known in (ICSD range; e.g. Mg2+ on every Li site of LiFePO4 would
        need Fe+).
        """
        ion, ion_oxi = self._resolve_ion(with_ion)
        lattice = Lattice.from_parameters(*self.lattice)
        framework = _from_spacegroup(
            self.setting,
            lattice,
            [Species(s.element, s.oxidation_state) for s in self.sites],
            [s.coords for s in self.sites],
            [s.label for s in self.sites],
        )
        n_ion_sites = 0
        ion_structure = None
        if self.ion_sites:
            # Build the ion sites with a placeholder element just to count and place them.
            ion_structure = _from_spacegroup(
                self.setting,
                lattice,
                [Species(ion or "Li", ion_oxi or 1) for _ in self.ion_sites],
                [s.coords for s in self.ion_sites],
                self._ion_labels(ion),
            )
            n_ion_sites = len(ion_structure)

        native_charge = n_ion_sites * (self.native_ion_oxidation_state or 0.0)
        new_charge = n_ion_sites * ion_oxi if ion else 0.0
        n_redox = sum(1 for site in framework if site.specie.symbol in self.redox)
        if n_redox == 0 and abs(native_charge - new_charge) > 1e-12:
            raise ValueError(f"prototype {self.id!r} names no redox element present in the cell")
        shift = (native_charge - new_charge) / n_redox if n_redox else 0.0
        species: list[Species] = []
        for site in framework:
            sp = site.specie
            if sp.symbol in self.redox and abs(shift) > 1e-12:
                new_oxi = clean_number(sp.oxi_state + shift)
                _check_oxidation_state(self.id, sp.symbol, new_oxi, with_ion)
                sp = Species(sp.symbol, new_oxi)
            species.append(sp)
        coords = [site.frac_coords for site in framework]
        labels = [site.label for site in framework]
        if ion and ion_structure is not None:
            species += [Species(ion, clean_number(ion_oxi))] * len(ion_structure)
            coords += [site.frac_coords for site in ion_structure]
            labels += [site.label for site in ion_structure]
        return Structure(lattice, species, coords, labels=labels)

    def _ion_labels(self, ion: str | None) -> list[str]:
        """Keep the cited labels for the native ion; name other ions after themselves."""
        if ion is None or ion == self.native_ion:
            return [s.label for s in self.ion_sites]
        if len(self.ion_sites) == 1:
            return [ion]
        return [f"{ion}{k + 1}" for k in range(len(self.ion_sites))]

    def _resolve_ion(self, with_ion: str | None) -> tuple[str | None, float]:
        """Turn the ``with_ion`` argument into (element or None, oxidation state)."""
        if with_ion is None:
            return None, 0.0
        if with_ion == "native" or (self.native_ion is not None and with_ion == self.native_ion):
            if self.native_ion is None:
                return None, 0.0
            return self.native_ion, float(self.native_ion_oxidation_state or 0.0)
        if with_ion not in WORKING_ION_OXIDATION_STATES:
            known = ", ".join(sorted(WORKING_ION_OXIDATION_STATES))
            raise ValueError(
                f"with_ion={with_ion!r}: prototypes place single-atom working ions only "
                f"({known}), or 'native' for the cited compound. Molecular ions such as NH4+ "
                "need a separate model."
            )
        if not self.ion_sites:
            raise ValueError(
                f"prototype {self.id!r} has no tabulated ion sites, so {with_ion} cannot be "
                "placed; use the empty host (with_ion=None) and locate insertion sites with BVSE."
            )
        return with_ion, float(WORKING_ION_OXIDATION_STATES[with_ion])

    @property
    def formula(self) -> str:
        """Reduced formula of the cited (native) compound."""
        return self.build("native").composition.reduced_formula


def _check_oxidation_state(proto_id: str, element: str, oxi: float, with_ion: str | None) -> None:
    """Refuse a redox state outside the range seen in real compounds (ICSD list, else all)."""
    el = Element(element)
    known = [o for o in (el.icsd_oxidation_states or el.oxidation_states) if o > 0]
    if not known or oxi < min(known) - 1e-9 or oxi > max(known) + 1e-9:
        what = "the empty host" if with_ion is None else f"{with_ion} on every ion site"
        span = f"{min(known)}..{max(known)}" if known else "(none known)"
        raise ValueError(
            f"prototype {proto_id!r}: {what} would need {element} in oxidation state {oxi:g}, "
            f"outside its known range {span}; "
            "screen the empty host (with_ion=None), choose another working ion, or build a "
            "partially filled supercell yourself."
        )


@cache
def _space_group(setting: str) -> SpaceGroup:
    """pymatgen SpaceGroup for an explicit setting; cached since Fd-3m takes ~1 s to set up."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns when it falls back to the short symbol
        return SpaceGroup(setting)


def _from_spacegroup(
    setting: str,
    lattice: Lattice,
    species: list[Species],
    coords: list[tuple[float, float, float]],
    labels: list[str],
) -> Structure:
    """Expand Wyckoff sites as ``Structure.from_spacegroup`` does, with a cached space group."""
    spg = _space_group(setting)
    if not spg.is_compatible(lattice):
        raise ValueError(f"lattice {lattice.parameters} is incompatible with space group {setting}")
    all_species: list[Species] = []
    all_coords: list[np.ndarray] = []
    all_labels: list[str] = []
    for sp, c, label in zip(species, coords, labels):
        orbit = spg.get_orbit(np.asarray(c, dtype=float), tol=1e-5)
        all_species += [sp] * len(orbit)
        all_coords += orbit
        # unique labels (CIF needs them) that still name the Wyckoff site: O3_1 ... O3_8
        all_labels += [f"{label}_{k + 1}" for k in range(len(orbit))]
    return Structure(lattice, all_species, all_coords, labels=all_labels)


def _parse_entry(raw: dict[str, Any]) -> Prototype:
    """Turn one JSON entry into a Prototype, refusing disordered or incomplete data."""
    pid = raw.get("id", "<no id>")
    try:
        sites = tuple(
            WyckoffSite(
                label=s["label"],
                wyckoff=s["wyckoff"],
                element=s["element"],
                oxidation_state=s["oxidation_state"],
                coords=tuple(float(c) for c in s["coords"]),
                occupancy=float(s.get("occupancy", 1.0)),
            )
            for s in raw["sites"]
        )
        ion_sites = tuple(
            IonSite(
                label=s["label"],
                wyckoff=s["wyckoff"],
                coords=tuple(float(c) for c in s["coords"]),
                occupancy=float(s.get("occupancy", 1.0)),
            )
            for s in raw.get("ion_sites", [])
        )
        lat = raw["lattice"]
        native = raw.get("native_ion")
        cit = raw["citation"]
        proto = Prototype(
            id=raw["id"],
            name=raw["name"],
            framework=raw["framework"],
            spacegroup=raw["spacegroup"]["symbol"],
            spacegroup_number=int(raw["spacegroup"]["number"]),
            setting=raw["spacegroup"].get("setting", raw["spacegroup"]["symbol"]),
            lattice=(lat["a"], lat["b"], lat["c"], lat["alpha"], lat["beta"], lat["gamma"]),
            sites=sites,
            ion_sites=ion_sites,
            native_ion=native["element"] if native else None,
            native_ion_oxidation_state=native["oxidation_state"] if native else None,
            redox=tuple(raw["redox"]),
            citation=Citation(
                authors=tuple(cit["authors"]),
                title=cit["title"],
                journal=cit["journal"],
                volume=str(cit["volume"]),
                pages=str(cit["pages"]),
                year=int(cit["year"]),
                doi=cit.get("doi") or "citation to verify",
            ),
            density=raw.get("density_g_cm3"),
            density_source=raw.get("density_source", ""),
            data_note=raw.get("data_note", ""),
            example=bool(raw.get("example", False)),
            structure_origin=raw.get("structure_origin", "experimental"),
            removed_species=raw.get("removed_species", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{_DATA_FILE}: entry {pid!r} is malformed ({exc!r})") from exc
    bad = [s.label for s in (*proto.sites, *proto.ion_sites) if s.occupancy != 1.0]
    if bad:
        raise ValueError(f"{_DATA_FILE}: entry {pid!r} has partially occupied sites {bad}")
    return proto


@lru_cache(maxsize=1)
def _load() -> dict[str, Prototype]:
    """Read the data file once per process."""
    text = resources.files("ionscreen.structures").joinpath("data", _DATA_FILE).read_text()
    entries = json.loads(text)["prototypes"]
    protos: dict[str, Prototype] = {}
    for raw in entries:
        proto = _parse_entry(raw)
        if proto.id in protos:
            raise ValueError(f"{_DATA_FILE}: duplicate prototype id {proto.id!r}")
        protos[proto.id] = proto
    return protos


def list_prototypes() -> list[Prototype]:
    """All prototypes in the library, in data-file order."""
    return list(_load().values())


def get_prototype(id: str) -> Prototype:
    """The prototype with this id; a ValueError lists the known ids if there is none."""
    protos = _load()
    try:
        return protos[id]
    except KeyError:
        raise ValueError(
            f"unknown prototype {id!r}; known prototypes: {', '.join(protos)}"
        ) from None


def example_hosts() -> dict[str, Structure]:
    """The hosts used by the ``ionscreen bvse`` quick start, as their cited (native) compounds.

    These are the two benchmark hosts (olivine LiFePO4 with Li, spinel MgCr2O4 with Mg), for
    which bvlain's numbers are known, so a first run can be compared side by side.
    """
    return {p.id: p.build("native") for p in list_prototypes() if p.example}


def _mean_oxidation_states(structure: Structure) -> dict[str, float]:
    tot: dict[str, float] = {}
    cnt: dict[str, float] = {}
    for site in structure:
        for sp, occ in site.species.items():
            tot[sp.symbol] = tot.get(sp.symbol, 0.0) + float(sp.oxi_state) * occ
            cnt[sp.symbol] = cnt.get(sp.symbol, 0.0) + occ
    return {el: tot[el] / cnt[el] for el in tot}


def host_for_ion(prototype: Prototype, ion: str, max_reduction: float = 1.0) -> tuple[Structure, str]:
    """The structure to screen ``ion`` in: discharged where that is chemically sensible, else empty.

    Returns the structure and its state: ``"discharged"`` (the ion on every one of its known
    sites, the framework reduced accordingly) when that reduces no framework element by more
    than ``max_reduction`` (one electron per redox centre by default: MgMn2O4 from λ-MnO2 is
    fine, "MgTiS2" with Ti2+ is not), else ``"charged"`` (the empty host). Also the empty host
    when the prototype lists no ion sites or filling them needs an impossible oxidation state.
    """
    charged = prototype.build(None)
    try:
        discharged = prototype.build(ion)
    except ValueError:
        return charged, "charged"
    before = _mean_oxidation_states(charged)
    after = _mean_oxidation_states(discharged)
    drop = max((before[el] - after[el] for el in before if el in after), default=0.0)
    if drop > max_reduction + 1e-6:
        return charged, "charged"
    return discharged, "discharged"
