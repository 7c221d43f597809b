"""Descriptors of candidate hosts that an experimentalist compares with measurements.

Capacity (this module's first descriptor; voltage, volume change and sustainability follow).

Conventions
-----------
* **Gravimetric capacity uses the discharged (ion-containing) formula**: the mass that holds
  the charge is that of the host *with* the working ions in it, e.g. 1 e- per LiFePO4
  (157.76 g/mol) gives 169.9 mAh/g and 4 e- per Mg2Mo6S8 (880.8 g/mol) give 121.7 mAh/g.
  Papers often quote the capacity per mass of the charged host instead (128.8 mAh/g for
  Mo6S8 with 2 Mg); :func:`capacity_for_ion` gives that number too
  (``"gravimetric_mAh_g_charged_basis"``), so that both can be compared with a measurement.
* **Volumetric capacity uses the discharged density** (the discharged cell's volume).
* Units: mAh/g and mAh/cm3. 1 mAh = 3.6 C, so one mole of electrons is
  F / 3.6 = 26801.48 mAh and

      Q_grav [mAh/g] = n_e * F / (3.6 * M) = n_e * 26801.48 / M [g/mol],

  with n_e electrons per formula unit of molar mass M.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from monty.json import MSONable
from pymatgen.core import Composition, DummySpecies, Element, Species, Structure

from ionscreen.errors import (
    IonscreenError,
    OxidationStateError,
    UnsupportedIonError,
)
from ionscreen.structures.candidates import Candidate
from ionscreen.structures.ions import get_working_ion

__all__ = [
    "AVOGADRO",
    "FARADAY",
    "MAH_PER_MOL_ELECTRONS",
    "DescriptorError",
    "Capacity",
    "capacity",
    "capacity_or_note",
    "capacity_for_ion",
    "gravimetric_capacity",
    "max_ions_from_redox",
    "max_ions_removable",
    "one_electron_floor",
    "redox_floor",
    "volumetric_capacity",
]

FARADAY = 96485.33212  # C/mol
AVOGADRO = 6.02214076e23  # 1/mol
#: Charge of one mole of electrons in mAh (1 mAh = 3.6 C).
MAH_PER_MOL_ELECTRONS = FARADAY / 3.6  # 26801.48
_CM3_PER_A3 = 1e-24


class DescriptorError(IonscreenError):
    """A descriptor cannot be computed from what was given (bad formula, negative count...)."""


def _composition(x: Composition | Structure | str, what: str) -> Composition:
    try:
        if isinstance(x, Structure):
            comp = x.composition
        elif isinstance(x, Composition):
            comp = x
        else:
            comp = Composition(x)
    except Exception as exc:  # pymatgen raises several types for bad formulae
        raise DescriptorError(
            f"{what}: cannot read {x!r} as a chemical formula ({exc}); give e.g. 'LiFePO4'"
        ) from None
    if comp.num_atoms <= 0:
        raise DescriptorError(f"{what}: the composition {x!r} is empty")
    unknown = [str(el) for el in comp.elements if isinstance(el, DummySpecies)]
    if unknown:  # pymatgen reads symbols starting with X as dummy species without a mass
        raise DescriptorError(
            f"{what}: {', '.join(unknown)} in {x!r} is not a chemical element; give a chemical "
            "formula such as 'LiFePO4'"
        )
    return comp


def _check_count(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DescriptorError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise DescriptorError(f"{what} must be a finite number >= 0, got {value!r}")
    return v


def _formula(comp: Composition) -> str:
    """``"Li1 Fe1 P1 O4"`` -> ``"LiFePO4"`` (pymatgen's element order, counts as written)."""
    out = []
    for token in comp.formula.split():
        m = re.match(r"([A-Z][a-z]*)(.*)$", token)
        el, amount = (m.group(1), m.group(2)) if m else (token, "")
        out.append(el if amount == "1" else el + amount)
    return "".join(out)


def gravimetric_capacity(discharged: Composition | str, electrons: float) -> float:
    """Gravimetric capacity in mAh/g: ``electrons * F / (3.6 * M)``.

    ``electrons`` are per formula unit of ``discharged`` *as written* (not reduced), and M is
    that formula's molar mass, i.e. the capacity is per gram of the discharged material.
    Example: ``gravimetric_capacity("LiFePO4", 1)`` = 26801.48 / 157.757 = 169.9 mAh/g.
    """
    comp = _composition(discharged, "gravimetric_capacity")
    n = _check_count(electrons, "electrons")
    return n * MAH_PER_MOL_ELECTRONS / float(comp.weight)


def volumetric_capacity(discharged_structure: Structure, electrons_per_cell: float) -> float:
    """Volumetric capacity in mAh/cm3 of the discharged structure.

    One cell stores ``electrons_per_cell`` electrons, i.e. a charge of
    ``electrons_per_cell * e`` coulomb with e = F / N_A, which is
    ``electrons_per_cell * F / (3.6 * N_A)`` mAh, in a volume of ``V * 1e-24`` cm3 (V in Å3):

        Q_vol = electrons_per_cell * F / (3.6 * N_A * V[Å3] * 1e-24)
              = electrons_per_cell * 44504.8 / V[Å3]   mAh/cm3.

    This equals ``gravimetric_capacity(cell composition, electrons_per_cell) * density`` with
    the density ``M_cell / (N_A * V)`` of the same (discharged) cell. Example: olivine LiFePO4,
    4 e- in 291.0 Å3, gives 611.7 mAh/cm3 (= 169.9 mAh/g * 3.60 g/cm3).
    """
    if not isinstance(discharged_structure, Structure):
        raise DescriptorError(
            f"volumetric_capacity needs a pymatgen Structure, got {type(discharged_structure).__name__}"
        )
    n = _check_count(electrons_per_cell, "electrons_per_cell")
    volume_cm3 = float(discharged_structure.volume) * _CM3_PER_A3
    if volume_cm3 <= 0:
        raise DescriptorError("volumetric_capacity: the structure has no volume")
    return n * MAH_PER_MOL_ELECTRONS / (AVOGADRO * volume_cm3)


def _resolve_ion(ion: str, ion_charge: int | None) -> tuple[str, int, Composition]:
    """(formula name, charge, composition) of a working ion such as "Mg", "Mg2+", "NH4+"."""
    try:
        wi = get_working_ion(ion)
    except UnsupportedIonError:
        if ion_charge is None:
            raise
        charge = _check_charge(ion_charge)
        name = str(ion).strip()
        if name.endswith("+"):  # "Cu2+", "K+", "[NH4]+": drop the charge given separately
            name = name[:-1]
            if charge > 1 and name.endswith(str(charge)):
                name = name[: -len(str(charge))]
        name = name.removeprefix("[").removesuffix("]")
        return name, charge, _composition(name, f"ion {ion!r}")
    charge = wi.charge if ion_charge is None else _check_charge(ion_charge)
    return wi.name, charge, _composition(wi.name, f"ion {ion!r}")


def _check_charge(ion_charge: Any) -> int:
    if isinstance(ion_charge, bool) or not isinstance(ion_charge, int) or ion_charge <= 0:
        raise DescriptorError(
            f"ion_charge must be a positive integer (the working ion's charge), got {ion_charge!r}"
        )
    return ion_charge


def capacity_for_ion(
    charged: Structure | Composition,
    ion: str,
    n_ions: float,
    ion_charge: int | None = None,
    density: float | None = None,
) -> dict[str, Any]:
    """Theoretical capacity of a host that takes up ``n_ions`` working ions.

    ``n_ions`` counts ions per cell when ``charged`` is a Structure and per formula unit as
    written when it is a Composition (or formula string). The discharged composition is
    ``charged + n_ions * ion`` (NH4+ adds N and 4 H), the number of electrons
    ``n_ions * ion_charge`` (``ion_charge`` defaults to the working ion's charge: Mg/Ca/Zn
    2, Al 3, NH4/Li/Na 1).

    Gravimetric capacity is per gram of the discharged formula (module convention); the
    number per gram of the charged host is given beside it. Volumetric capacity is the
    gravimetric one times the density of the discharged compound: ``density`` (g/cm3) if
    given, else estimated as the discharged formula mass in the charged structure's volume
    (insertion assumed not to change the volume) when ``charged`` is a Structure; otherwise
    it is None. ``"volumetric_basis"`` says which.
    """
    comp = _composition(charged, "capacity_for_ion")
    n = _check_count(n_ions, "n_ions")
    name, charge, ion_comp = _resolve_ion(ion, ion_charge)
    discharged = comp + ion_comp * n if n > 0 else comp
    electrons = n * charge
    grav = gravimetric_capacity(discharged, electrons)
    grav_charged = electrons * MAH_PER_MOL_ELECTRONS / float(comp.weight)

    if density is not None:
        rho = _check_count(density, "density")
        if rho <= 0:
            raise DescriptorError(f"density must be > 0 g/cm3, got {density!r}")
        basis = "given density of the discharged compound"
    elif isinstance(charged, Structure):
        rho = float(discharged.weight) / (AVOGADRO * float(charged.volume) * _CM3_PER_A3)
        basis = (
            "estimated density: discharged formula mass in the charged structure's volume "
            "(no volume change on insertion assumed)"
        )
    else:
        rho = None
        basis = "unavailable: give density= or a Structure"
    vol = grav * rho if rho is not None else None

    return {
        "ion": f"{name}{'' if charge == 1 else charge}+",
        "ion_charge": charge,
        "n_ions": n,
        "electrons": electrons,
        "per": "cell" if isinstance(charged, Structure) else "formula unit as written",
        "charged_formula": _formula(comp),
        "discharged_formula": _formula(discharged),
        "molar_mass_charged": float(comp.weight),
        "molar_mass_discharged": float(discharged.weight),
        "gravimetric_mAh_g": grav,
        "gravimetric_mAh_g_charged_basis": grav_charged,
        "volumetric_mAh_cm3": vol,
        "density_g_cm3": rho,
        "volumetric_basis": basis,
        "convention": "capacity per mass (and volume) of the discharged, ion-containing compound",
    }


def redox_floor(symbol: str) -> int:
    """Default lowest oxidation state a redox centre is reduced to: its lowest positive state
    in pymatgen's ICSD list (e.g. V 2, Ti 2, Mn 2, Co 1).

    pymatgen's ``common_oxidation_states`` cannot serve here: it lists V as (5,), Ti as (4,)
    and Mo as (4, 6), which would give V2O5 and TiS2 no capacity at all and Mo6S8 a negative
    one. The ICSD floor is a formal upper bound; pass ``floor=`` to
    :func:`max_ions_from_redox` for a tighter, chemistry-specific limit (e.g. ``{"V": 3}``).
    """
    el = Element(symbol)
    states = [s for s in (el.icsd_oxidation_states or el.oxidation_states) if s > 0]
    if not states:
        raise OxidationStateError(f"{symbol} has no known positive oxidation state")
    return min(states)


def max_ions_from_redox(
    charged: Structure,
    ion: str,
    ion_charge: int,
    ion_sites: int | None = None,
    floor: Mapping[str, float] | None = None,
) -> float:
    """How many working ions per cell the redox-active cations can accept (formal limit).

    Sum over the transition-metal cation sites of ``max(0, ox_state - floor) / ion_charge``,
    where ``floor`` is :func:`redox_floor` of the element unless given in ``floor`` (elements
    named there are counted even if they are not transition metals, e.g. ``{"Sn": 2}``).
    Capped at ``ion_sites`` (the number of insertion sites per cell) when given.

    Formal oxidation states only: cluster compounds (Chevrel Mo6S8, Mo 2.33+ -> 1.67+ in
    Mg2Mo6S8) and anion redox are not described; pass ``floor`` for them.
    """
    if not isinstance(charged, Structure):
        raise DescriptorError(f"max_ions_from_redox needs a pymatgen Structure, got {type(charged).__name__}")
    charge = _check_charge(ion_charge)
    if ion_sites is not None:
        ion_sites = _check_count(ion_sites, "ion_sites")
    floors = dict(floor or {})
    total = 0.0
    for site in charged:
        for sp in site.species:
            if not isinstance(sp, Species) or sp.oxi_state is None:
                raise OxidationStateError(
                    f"max_ions_from_redox({ion!r}) needs oxidation states on every site of "
                    f"{charged.composition.reduced_formula}; decorate the structure first "
                    "(ionscreen.structures.oxidation.assign_oxidation_states)"
                )
            q = float(sp.oxi_state)
            sym = sp.symbol
            if q <= 0:
                continue
            if sym in floors:
                lo = float(floors[sym])
            elif Element(sym).is_transition_metal:
                lo = float(redox_floor(sym))
            else:
                continue
            total += max(0.0, q - lo) * site.species[sp]
    n = total / charge
    if ion_sites is not None:
        n = min(n, float(ion_sites))
    return n


def one_electron_floor(charged: Structure) -> dict[str, float]:
    """Redox floors for a one-electron reduction of every transition-metal cation.

    The screening default for empty hosts: each transition metal gives at most one electron
    (Fe3+ -> Fe2+, Mn4+ -> Mn3+, V5+ -> V4+ ...), never below its lowest known state. Fractional
    states (Mn3.5+) go down by one as well.
    """
    floors: dict[str, float] = {}
    for site in charged:
        for sp in site.species:
            q = getattr(sp, "oxi_state", None)
            if q is None or q <= 0 or not Element(sp.symbol).is_transition_metal:
                continue
            lo = max(float(redox_floor(sp.symbol)), float(q) - 1.0)
            floors[sp.symbol] = min(floors.get(sp.symbol, lo), lo)
    return floors


def max_ions_removable(discharged: Structure, ion: str) -> float:
    """How many working ions per cell can leave a discharged host (formal limit): the
    electrons they leave behind must be taken by oxidising the framework's transition metals,
    each by at most one electron and never above its highest known (ICSD) state — the mirror
    of :func:`one_electron_floor`. The working ion's own sites are not framework (Zn in ZnO).
    Capped at the ions present. 0 for ZnO or MgSiO3: no centre can be oxidised."""
    wi = get_working_ion(ion)
    n_ions = float(wi.count(discharged))
    if n_ions <= 0:
        return 0.0
    own = set() if wi.name == "NH4" else {wi.name}
    electrons = 0.0
    for site in discharged:
        for sp, occ in site.species.items():
            q = getattr(sp, "oxi_state", None)
            if q is None:
                raise OxidationStateError(
                    f"the removable-ion count of {discharged.composition.reduced_formula} needs "
                    "oxidation states on every site; give them (--oxi)")
            el = Element(sp.symbol)
            if q <= 0 or sp.symbol in own or not el.is_transition_metal:
                continue
            known = [o for o in (el.icsd_oxidation_states or el.oxidation_states) if o > 0]
            top = max(known) if known else q
            electrons += max(0.0, min(1.0, float(top) - float(q))) * occ
    return min(n_ions, electrons / wi.charge)


@dataclass(frozen=True)
class Capacity(MSONable):
    """Theoretical capacity of a candidate: mAh/g, mAh/cm³ (None where unknown) and how it was
    obtained (``note``), plus the discharged formula and electrons it refers to."""

    mAh_g: float | None
    mAh_cm3: float | None
    note: str = ""
    discharged_formula: str | None = None
    electrons: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Capacity:
        return cls(**{k: d.get(k) for k in ("mAh_g", "mAh_cm3", "discharged_formula", "electrons")},
                   note=d.get("note") or "")


def capacity(candidate: Candidate) -> Capacity:
    """Theoretical capacity of a candidate (nothing is written into the candidate).

    Where the candidate records its discharged formula and electrons (a host built with the
    ion on its sites, a polymer, a user file that contains the ion), those are used with the
    discharged density. For an empty host the ion uptake is the one-electron reduction of its
    transition metals (:func:`one_electron_floor`), with the density estimated from the empty
    host's volume. A host with no redox centre gets 0 and says so. Raises an
    :class:`~ionscreen.errors.IonscreenError` when the numbers cannot be computed (e.g. no
    oxidation states).
    """
    ion = candidate.working_ion
    if candidate.discharged_formula and candidate.electrons:
        electrons, why = candidate.electrons, ""
        if candidate.source.startswith("file:"):
            # a user file's ions count only as far as the framework can be oxidised when they
            # leave (the generators check their hosts when they build them)
            wi = get_working_ion(ion)
            n = max_ions_removable(candidate.structure, ion)
            if n <= 0:
                return Capacity(0.0, 0.0, f"no removable {wi.label()}: no framework centre can be "
                                "oxidised when it leaves (formal); no intercalation capacity")
            if n * wi.charge < electrons - 1e-9:
                why = (f" ({n:g} of {electrons / wi.charge:g} {wi.label()} per cell removable: "
                       "one-electron oxidation of each transition metal)")
                electrons = n * wi.charge  # the discharged formula is the cell's
        grav = gravimetric_capacity(candidate.discharged_formula, electrons)
        return Capacity(
            grav, grav * candidate.discharged_density if candidate.discharged_density else None,
            f"{candidate.discharged_formula} taking {electrons:g} e-{why}; per mass and volume "
            "of the discharged compound", candidate.discharged_formula, electrons)
    wi = get_working_ion(ion)
    n = max_ions_from_redox(candidate.structure, ion, wi.charge, floor=one_electron_floor(candidate.structure))
    if n <= 0:
        return Capacity(0.0, 0.0, "no reducible transition-metal cation: no intercalation capacity (formal)")
    cap = capacity_for_ion(candidate.structure, ion, n)
    return Capacity(
        cap["gravimetric_mAh_g"], cap["volumetric_mAh_cm3"],
        f"empty host: {n:g} {wi.label()} per cell from one-electron reduction of each transition "
        f"metal; {cap['volumetric_basis']}", cap["discharged_formula"], cap["electrons"])


def capacity_or_note(candidate: Candidate) -> Capacity:
    """:func:`capacity`, or no numbers and a note saying why it could not be computed (for
    records and listings, where one host's capacity must not stop the others)."""
    try:
        return capacity(candidate)
    except IonscreenError as exc:
        return Capacity(None, None, f"capacity not computed: {exc}")
