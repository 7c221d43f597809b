"""The shared vocabulary: working ions, anions and percolation dimensions.

One home for what every layer needs to agree on:

* :class:`WorkingIon` — name, element, charge, and whether it is molecular (NH4+), with the
  one rule for which atoms of a structure are the mobile ion (:meth:`WorkingIon.mobile_sites`),
  how many there are (:meth:`~WorkingIon.count`) and the host without them
  (:meth:`~WorkingIon.remove_from`);
* :data:`WORKING_IONS`, :data:`SCREEN_DEFAULT` (the ions a screen runs by default) and
  :data:`EXPORT_ORDER` (the order of ions in tables and exports);
* :func:`get_working_ion`, which reads every spelling a chemist types ("Mg2+", "NH4+",
  "ammonium", Unicode superscripts);
* :data:`ANIONS` and :data:`DIMS`.

How an ion is *modelled* by bond valence (its softBV rows, the NH4+ pseudo-ion) is not here:
that is :class:`ionscreen.screening.ion_models.IonModel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from monty.json import MSONable
from pymatgen.core import Composition, Structure

from ionscreen.errors import UnsupportedIonError

__all__ = [
    "ANIONS",
    "DIMS",
    "EXPORT_ORDER",
    "SCREEN_DEFAULT",
    "WORKING_IONS",
    "WorkingIon",
    "get_working_ion",
    "ion_label",
    "normalise_ion",
]

#: Percolation dimensions, in the order results list them.
DIMS = ("1D", "2D", "3D")
#: Anion elements (chemical order: chalcogenides, halides, pnictides, H); a substitution rule
#: whose old element is one of these is an anion rule.
ANIONS = ("O", "S", "Se", "Te", "F", "Cl", "Br", "I", "N", "P", "As", "Sb", "H")
#: N–H distance (Å) under which an H belongs to an ammonium N.
NH_BOND = 1.25


def ion_label(symbol: str, valence: int) -> str:
    """``"Mg2+"``, ``"Li+"``, ``"O2-"``, ``"F-"`` (``"Ar0"`` for valence 0)."""
    if valence == 0:
        return f"{symbol}0"
    sign = "+" if valence > 0 else "-"
    mag = abs(valence)
    return f"{symbol}{'' if mag == 1 else mag}{sign}"


@dataclass(frozen=True)
class WorkingIon(MSONable):
    """A working (mobile) ion: ``name`` ("Mg", "NH4"), the ``element`` that identifies its
    sites (N for NH4+), its ``charge`` and whether it is ``molecular``."""

    name: str
    element: str
    charge: int
    molecular: bool = False

    def label(self) -> str:
        """``"Mg2+"``, ``"NH4+"``."""
        return ion_label(self.name, self.charge)

    def composition(self) -> Composition:
        """One formula unit of the ion (``Mg``, ``NH4``)."""
        return Composition(self.name)

    def mobile_sites(self, structure: Structure) -> list[int]:
        """Indices of the sites of ``structure`` that are this ion (sorted).

        * NH4+: each N with at least three H within :data:`NH_BOND` Å, with those H;
        * otherwise the sites of ``element`` whose oxidation state, where the structure has
          one, is ``charge``; a builder may tag sites with ``properties["role"]`` ("DI" the
          stored ion, "M" a node of a coordination polymer), and then only "DI" sites count,
          even where the node metal is the same element (ZnZn(PTtSA)).
        """
        if self.molecular:
            out: set[int] = set()
            for i, site in enumerate(structure):
                if site.specie.symbol != self.element:
                    continue
                hs = [n.index for n in structure.get_neighbors(site, NH_BOND)
                      if n.specie.symbol == "H"]
                if len(hs) >= 3:
                    out.update([i, *hs])
            return sorted(out)
        return [
            i for i, s in enumerate(structure)
            if s.specie.symbol == self.element
            and getattr(s.specie, "oxi_state", None) in (None, self.charge)
            and s.properties.get("role", "DI") == "DI"
        ]

    def count(self, structure: Structure) -> int:
        """How many of this ion ``structure`` holds (ammonium groups for NH4+)."""
        sites = self.mobile_sites(structure)
        if self.molecular:
            return sum(1 for i in sites if structure[i].specie.symbol == self.element)
        return len(sites)

    def remove_from(self, structure: Structure) -> Structure:
        """A copy of ``structure`` without this ion (the empty host); every other site, with
        its properties, stays in order."""
        drop = set(self.mobile_sites(structure))
        return Structure.from_sites([s for i, s in enumerate(structure) if i not in drop])

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "element": self.element, "charge": self.charge,
                "molecular": self.molecular, "label": self.label()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorkingIon:
        return cls(d["name"], d["element"], int(d["charge"]), bool(d.get("molecular", False)))


WORKING_IONS: dict[str, WorkingIon] = {
    "Mg": WorkingIon("Mg", "Mg", 2),
    "Ca": WorkingIon("Ca", "Ca", 2),
    "Zn": WorkingIon("Zn", "Zn", 2),
    "Al": WorkingIon("Al", "Al", 3),
    "NH4": WorkingIon("NH4", "N", 1, molecular=True),
    "Sr": WorkingIon("Sr", "Sr", 2),
    "Ba": WorkingIon("Ba", "Ba", 2),
    "Li": WorkingIon("Li", "Li", 1),
    "Na": WorkingIon("Na", "Na", 1),
}
#: The ions a screen runs when none are given.
SCREEN_DEFAULT = ("Mg", "Ca", "Zn", "Al", "NH4")
#: Order of ions in exports and tables (others follow alphabetically).
EXPORT_ORDER = tuple(WORKING_IONS)

_ALIASES = {
    "magnesium": "Mg", "calcium": "Ca", "zinc": "Zn", "aluminium": "Al", "aluminum": "Al",
    "ammonium": "NH4", "strontium": "Sr", "barium": "Ba", "lithium": "Li", "sodium": "Na",
}
_UNICODE = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉⁺⁻−", "0123456789" * 2 + "+--")
_ION_RE = re.compile(r"^(?P<name>[a-z]+?(?:4)?)(?:\^?(?P<num>\d*)(?P<sign>[+-]))?$")


def get_working_ion(name: str | WorkingIon | Any) -> WorkingIon:
    """The working ion for ``"Mg"``, ``"mg"``, ``"Mg2+"``, ``"NH4"``, ``"NH4+"``, ``"ammonium"``...

    Also accepts a :class:`WorkingIon` or anything with a ``name`` attribute naming one (an
    ion model). Raises :class:`UnsupportedIonError` listing the supported ions otherwise (also
    for a charge that is not the one modelled, e.g. ``"Mg+"``).
    """
    if isinstance(name, WorkingIon):
        return name
    if hasattr(name, "name") and not isinstance(name, str):
        name = name.name
    supported = ", ".join(ion.label() for ion in WORKING_IONS.values())
    text = str(name).strip().translate(_UNICODE).replace(" ", "").lower()
    if text.startswith("[") and "]" in text:  # "[NH4]+"
        text = text[1:].replace("]", "", 1)
    m = _ION_RE.match(text)
    key = None
    if m:
        base = m.group("name")
        key = _ALIASES.get(base) or next((k for k in WORKING_IONS if k.lower() == base), None)
    if key is None:
        raise UnsupportedIonError(
            f"unsupported working ion {name!r}; supported: {supported}. Other ions need "
            "softBV rows (check ParamTable.anions_for) and a WorkingIon(...) definition."
        )
    ion = WORKING_IONS[key]
    if m and m.group("sign"):
        charge = int(m.group("num") or 1) * (1 if m.group("sign") == "+" else -1)
        if charge != ion.charge:
            raise UnsupportedIonError(
                f"unsupported working ion {name!r}: ionscreen models {key} as {ion.label()} "
                f"only; supported: {supported}"
            )
    return ion


def normalise_ion(ion: Any) -> str:
    """Canonical working-ion name (``"mg2+"`` → ``"Mg"``); a name that is not a working ion
    is returned as given (tables may list other ions)."""
    try:
        return get_working_ion(ion).name
    except UnsupportedIonError:
        return str(ion)
