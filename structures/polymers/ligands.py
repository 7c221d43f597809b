"""Chemistry of the DI–M–L family and its ligand templates (``data/ligands.json``).

The storage cations (DI), nodal metals (M) and their target distances; the ligand templates
(:class:`Ligand`, whose sulfonyl groups are :class:`Rotor` s) loaded and checked from the data
file; the 25 (DI, M) compositions and the formula-unit mass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from pymatgen.core import Element

from ionscreen.errors import IonscreenError, UnsupportedIonError

#: Name recorded in every provenance record.
BUILDER = "ionscreen.structures.polymers"
#: Version of the builder (bumped whenever the same inputs would give different structures).
BUILDER_VERSION = "1.0"
#: Electrons stored per DI M L formula unit (one DI²⁺ inserted on reduction of M L).
ELECTRONS_PER_FORMULA_UNIT = 2
#: Storage cations (DI²⁺) the builder knows.
DI_CATIONS: tuple[str, ...] = ("Mg", "Ca", "Sr", "Ba", "Zn")
#: Nodal metals (M²⁺, tetrahedral N4) the builder knows.
NODE_METALS: tuple[str, ...] = ("Zn", "Co", "Ni", "Mn", "Fe")
#: Target DI–O distance (Å) for six-coordinate DI²⁺ bound to sulfonyl O (≈ Shannon radii sums).
DI_O_DISTANCE: dict[str, float] = {"Mg": 2.10, "Zn": 2.10, "Ca": 2.35, "Sr": 2.55, "Ba": 2.75}
#: M–N distance (Å) for tetrahedral M²⁺ bound to deprotonated sulfonamide / amide N
#: (typical values; ≈ 2.0 Å as in the issue).
M_N_DISTANCE: dict[str, float] = {"Zn": 2.00, "Co": 1.98, "Ni": 1.96, "Mn": 2.07, "Fe": 2.03}
#: Number of O around each DI.
DI_COORDINATION = 6

_DATA_FILE = "ligands.json"


class PolymerBuildError(IonscreenError):
    """A coordination-polymer model cannot be built (unknown ligand or metal, failed model)."""


# --------------------------------------------------------------------------- ligands


@dataclass(frozen=True)
class Rotor:
    """A rigid group that turns about ``pivot`` (the donor N); ``anchor`` is the ring C."""

    pivot: int
    anchor: int
    atoms: tuple[int, ...]


@dataclass(frozen=True)
class Ligand:
    """A bridging ligand template (see ``data/ligands.json``)."""

    name: str
    full_name: str
    formula: str
    charge: int
    description: str
    citation: dict[str, str]
    geometry_note: str
    labels: tuple[str, ...]
    symbols: tuple[str, ...]
    coords: tuple[tuple[float, float, float], ...]
    oxidation_states: tuple[float, ...]
    roles: tuple[str, ...]
    bonds: tuple[tuple[int, int], ...]
    metal_binding: tuple[tuple[int, ...], tuple[int, ...]]
    cation_binding: tuple[int, ...]
    rotors: tuple[Rotor, ...]
    packings: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def xyz(self) -> np.ndarray:
        return np.array(self.coords, dtype=float)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def mass(self) -> float:
        """Molar mass of the ligand (g/mol)."""
        return float(sum(Element(s).atomic_mass for s in self.symbols))


def _ligand_from_dict(d: dict[str, Any]) -> Ligand:
    atoms = d["atoms"]
    lig = Ligand(
        name=d["name"],
        full_name=d.get("full_name", d["name"]),
        formula=d["formula"],
        charge=int(d["charge"]),
        description=d.get("description", ""),
        citation=dict(d.get("citation", {})),
        geometry_note=d.get("geometry_note", ""),
        labels=tuple(a["label"] for a in atoms),
        symbols=tuple(a["element"] for a in atoms),
        coords=tuple(tuple(float(x) for x in a["xyz"]) for a in atoms),
        oxidation_states=tuple(float(a["oxidation_state"]) for a in atoms),
        roles=tuple(a.get("role", "") for a in atoms),
        bonds=tuple((int(i), int(j)) for i, j in d["bonds"]),
        metal_binding=(tuple(d["metal_binding"][0]), tuple(d["metal_binding"][1])),
        cation_binding=tuple(int(i) for i in d["cation_binding"]),
        rotors=tuple(
            Rotor(int(r["pivot"]), int(r["anchor"]), tuple(int(i) for i in r["atoms"]))
            for r in d["rotors"]
        ),
        packings={k: dict(v) for k, v in d.get("packings", {}).items()},
    )
    _check_ligand(lig)
    return lig


def _check_ligand(lig: Ligand) -> None:
    """Refuse a template the builder cannot use (a data-file error, not a user error)."""
    if abs(sum(lig.oxidation_states) - lig.charge) > 1e-6:
        raise PolymerBuildError(
            f"ligand {lig.name}: oxidation states sum to {sum(lig.oxidation_states):g}, "
            f"not the charge {lig.charge}; fix data/{_DATA_FILE}"
        )
    if lig.charge != -4:
        raise PolymerBuildError(
            f"ligand {lig.name} has charge {lig.charge}; DI M L needs a tetra-anion (-4)"
        )
    x = lig.xyz
    for side, pair in zip((1, -1), lig.metal_binding):
        if len(pair) != 2:
            raise PolymerBuildError(f"ligand {lig.name}: each metal_binding entry needs 2 atoms")
        mid = x[list(pair)].mean(axis=0)
        if abs(mid[1]) > 1e-3 or abs(mid[2]) > 1e-3 or np.sign(mid[0]) != side:
            raise PolymerBuildError(
                f"ligand {lig.name}: donor pair {pair} must be centred on the {'+' if side > 0 else '-'}x axis"
            )
    if len(lig.rotors) == 0:
        raise PolymerBuildError(f"ligand {lig.name}: no rotors (sulfonyl groups) defined")
    n = len(lig.rotors[0].atoms)
    if any(len(r.atoms) != n for r in lig.rotors):
        raise PolymerBuildError(f"ligand {lig.name}: all rotors must have the same size")
    if any(lig.symbols[i] != "O" for i in lig.cation_binding):
        raise PolymerBuildError(f"ligand {lig.name}: cation_binding atoms must be O")


@lru_cache(maxsize=1)
def _load() -> dict[str, Ligand]:
    text = resources.files("ionscreen.structures").joinpath("data", _DATA_FILE).read_text()
    doc = json.loads(text)
    return {d["name"]: _ligand_from_dict(d) for d in doc["ligands"]}


def list_ligands() -> list[str]:
    """Names of the ligands in the data file (``["PTtSA", ...]``)."""
    return list(_load())


def get_ligand(name: str) -> Ligand:
    """The ligand template called ``name`` (case-insensitive)."""
    table = _load()
    for key, lig in table.items():
        if key.lower() == str(name).lower():
            return lig
    raise PolymerBuildError(
        f"unknown ligand {name!r}; known ligands: {', '.join(table)}. Add a template to "
        f"structures/data/{_DATA_FILE} to use another one."
    )


def polymer_compositions() -> list[tuple[str, str]]:
    """The 25 (DI, M) pairs of the family, DI-major: ``[("Mg", "Zn"), ("Mg", "Co"), ...]``."""
    return [(di, m) for di in DI_CATIONS for m in NODE_METALS]


def _check_di(di: str) -> str:
    if di not in DI_CATIONS:
        raise UnsupportedIonError(
            f"storage cation {di!r} is not one the polymer builder models; choose one of "
            f"{', '.join(DI_CATIONS)}"
        )
    return di


def _check_m(m: str) -> str:
    if m not in NODE_METALS:
        raise PolymerBuildError(
            f"nodal metal {m!r} is not one the polymer builder models; choose one of "
            f"{', '.join(NODE_METALS)}"
        )
    return m


def formula_unit_mass(di: str, m: str, ligand: str = "PTtSA") -> float:
    """Molar mass (g/mol) of one DI M L formula unit, e.g. MgZn(PTtSA) ≈ 536.2."""
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    return float(Element(di).atomic_mass + Element(m).atomic_mass + lig.mass())
