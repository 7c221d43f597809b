"""Average insertion voltage and volume change from the ML-potential tier.

For a host that takes up x working ions of charge z per cell,

    V = −[E(host + x ion) − E(host) − x·μ(ion)] / (z·x)          (volts; energies in eV)

with E the total energies of the two cells, each relaxed (positions and cell) with the same
model, and μ(ion) the ion's reference chemical potential computed with that same model
(:func:`ion_reference`). The relative volume change is (V_inserted − V_empty) / V_empty of the
relaxed cells (positive: the host swells when the ions go in).

μ(ion) is the energy per ion of the bulk metal (Li, Na, Mg, Ca, Sr, Ba, Zn, Al: the voltage
against the metal anode) or, for NH4, the approximate neutral-NH4 convention E(NH3) + ½ E(H2);
see :mod:`ionscreen.screening.ion_reference`, where they are computed and their provenance is
given. Its public names are re-exported here.

The voltage is the average between the two given compositions: intermediate phases, ion
ordering and entropy are not included. Universal ML potentials also run soft (see
:mod:`ionscreen.screening.mlip`); every number here is labelled with the model that made it,
and a model's numbers are never combined with another model's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from monty.json import MSONable
from pymatgen.core import Structure

from ionscreen.errors import (
    CalculationError,
    IonscreenError,
    StructureValidationError,
)
from ionscreen.screening.ion_models import IonModel, ion_model
from ionscreen.screening.ion_reference import (
    METAL_REFERENCES,
    NH4_BOX,
    as_factory,
    clear_reference_cache,
    ion_reference,
    reference_composition,
)
from ionscreen.screening.mlip import CalculatorFactory
from ionscreen.screening.relax import relax as _relax
from ionscreen.structures.convert import to_atoms, to_structure

__all__ = [
    "METAL_REFERENCES",  # re-exported from ion_reference
    "NH4_BOX",  # re-exported from ion_reference
    "SWELLING_WARNING",
    "InsertionResult",
    "RelaxedCell",
    "clear_reference_cache",  # re-exported from ion_reference
    "empty_host_cell",
    "fill_sites",
    "hosts_for_voltage",
    "insertion_voltage",
    "insertion_voltage_at_sites",
    "ion_reference",  # re-exported from ion_reference
    "relax_pair",
    "relaxed_cell",
    "voltage_from_energies",
]

#: A relaxed cell whose volume moved by more than this fraction is flagged in the result.
SWELLING_WARNING = 0.15


# -- composition -----------------------------------------------------------------------------


def _ions_inserted(empty: Structure, inserted: Structure, ion: IonModel) -> float:
    """x: how many ions ``inserted`` has over ``empty``; refuse if anything else differs."""
    before = empty.composition.element_composition
    after = inserted.composition.element_composition
    unit = reference_composition(ion)
    lead = next(iter(unit.elements))
    x = (after[lead] - before[lead]) / unit[lead]
    elements = set(before.elements) | set(after.elements)
    diff = {str(el): after[el] - before[el] for el in elements}
    bad = {el: d for el, d in diff.items()
           if abs(d - x * unit[el]) > 1e-6}  # unit[el] is 0 for framework elements
    if bad:
        shown = ", ".join(f"{el} {d:+g}" for el, d in sorted(diff.items()) if abs(d) > 1e-9)
        raise StructureValidationError(
            f"the frameworks differ: inserted ({after.formula}) minus empty ({before.formula}) "
            f"is {shown or 'nothing'}, not x × {unit.formula.replace(' ', '')} for the working "
            f"ion {ion.label()}. Give the same framework cell with and without the ions (build "
            "supercells of the same size, e.g. Prototype.build() and Prototype.build(with_ion=...))"
        )
    if x <= 1e-9:
        raise StructureValidationError(
            f"the inserted host ({after.formula}) has no more {ion.label()} than the empty host "
            f"({before.formula}) (x = {x:g}); pass the ion-containing cell as 'inserted'"
        )
    return float(x)


# -- result ----------------------------------------------------------------------------------


@dataclass
class InsertionResult(MSONable):
    """Average insertion voltage and volume change of one host–ion pair with one model.

    Energies in eV (per cell), volumes in Å³ (per cell), voltage in V, all from ``model``.
    ``volume_change`` is relative ((V_inserted − V_empty) / V_empty of the relaxed cells).
    """

    ion: str
    ion_charge: int
    x: float
    formula_empty: str
    formula_inserted: str
    voltage_V: float
    energy_empty_eV: float
    energy_inserted_eV: float
    mu_ion_eV: float
    mu_reference: str
    reference_approximate: bool
    volume_empty_A3: float
    volume_inserted_A3: float
    volume_empty_initial_A3: float
    volume_inserted_initial_A3: float
    volume_change: float
    volume_warning: bool
    relaxed: bool
    converged_empty: bool
    converged_inserted: bool
    steps_empty: int
    steps_inserted: int
    fmax: float
    model: str
    tier: str
    notes: list[str] = field(default_factory=list)
    empty_structure: Structure | None = field(default=None, repr=False)
    inserted_structure: Structure | None = field(default=None, repr=False)

    @property
    def converged(self) -> bool:
        return self.converged_empty and self.converged_inserted

    @property
    def volume_change_percent(self) -> float:
        return 100.0 * self.volume_change

    def summary_text(self) -> str:
        """One line, with the model that produced the numbers."""
        flag = "" if self.converged or not self.relaxed else " (relaxation NOT converged)"
        if self.volume_warning:
            flag += " (a cell changed volume by > 15 % on relaxation: see notes)"
        approx = " (approximate ion reference)" if self.reference_approximate else ""
        return (f"{self.ion} in {self.formula_empty} → {self.formula_inserted}: "
                f"V = {self.voltage_V:.3f} V{approx}, ΔV/V = {self.volume_change_percent:+.2f} % "
                f"[{self.model}, {self.tier} tier]{flag}")

    def as_dict(self, structures: bool = False) -> dict[str, Any]:
        """JSON-serialisable document (pymatgen's MSONable form, with ``@module``/``@class``);
        ``structures=True`` adds the relaxed cells. ``produced_by``, ``volume_change_percent``,
        ``formula`` and ``units`` are for readers of the document."""
        d: dict[str, Any] = {"@module": type(self).__module__, "@class": type(self).__name__,
                             "produced_by": f"{self.model} ({self.tier} tier)"}
        for f in fields(self):
            if f.name not in _CELLS:
                d[_DOC_KEYS.get(f.name, f.name)] = getattr(self, f.name)
        d["notes"] = list(self.notes)
        d["volume_change_percent"] = self.volume_change_percent
        d["formula"] = "V = -[E(host + x ion) - E(host) - x*mu(ion)] / (z*x)"
        d["units"] = {"energy": "eV per cell", "volume": "Å^3 per cell", "voltage": "V",
                      "volume_change": "relative (inserted - empty) / empty"}
        if structures:
            for key in _CELLS:
                cell = getattr(self, key)
                d[key] = cell.as_dict() if cell is not None else None
        return d

    #: Deprecated alias of :meth:`as_dict`, kept for one release.
    to_dict = as_dict

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InsertionResult:
        """The result back from :meth:`as_dict` (the cells too, when the document has them)."""
        kwargs = {f.name: d[_DOC_KEYS.get(f.name, f.name)] for f in fields(cls)
                  if f.name not in _CELLS}
        kwargs["notes"] = list(kwargs["notes"])
        for key in _CELLS:
            kwargs[key] = Structure.from_dict(d[key]) if d.get(key) else None
        return cls(**kwargs)


_CELLS = ("empty_structure", "inserted_structure")
_DOC_KEYS = {"fmax": "fmax_eV_A"}  # field -> document key, where they differ


# -- the calculation -------------------------------------------------------------------------


def _energy(atoms: Any, calc: Any, what: str) -> float:
    if calc is not None:  # else: use the calculator (and cached results) the atoms carry
        atoms = atoms.copy()
        atoms.calc = calc
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
            e = float(atoms.get_potential_energy())
    except Exception as err:  # a third-party calculator can raise anything
        raise CalculationError(f"energy of the {what} failed in the calculator: "
                               f"{type(err).__name__}: {err}") from err
    return e


class RelaxedCell(NamedTuple):
    """One cell of an insertion pair, as :func:`relax_pair` leaves it."""

    atoms: Any
    """The final geometry (relaxed, or as given)."""
    energy: float
    """Total energy, eV per cell."""
    converged: bool
    steps: int
    volume_initial: float
    """Volume before relaxation, Å³."""

    @property
    def volume(self) -> float:
        """Final volume, Å³."""
        return float(self.atoms.get_volume())

    @property
    def swelling(self) -> float:
        """Relative volume change on relaxation (positive: the cell grew)."""
        return self.volume / self.volume_initial - 1.0


#: The relaxation options of an insertion voltage and their defaults (see
#: :func:`insertion_voltage`).
RELAX_DEFAULTS: dict[str, Any] = {"relax": True, "fmax": 0.05, "steps": 500, "optimizer": "BFGS",
                                  "smax": 5e-4, "rattle": 0.02, "strict": False}

#: Relaxed cells of this process by model, cell and settings, at most _CACHE_SIZE: the empty
#: host of a screen is one cell for every working ion, so it relaxes once. A relaxation is
#: deterministic (seeded rattle), so a cached cell is the one a new relaxation would give.
_RELAXED: dict[tuple, RelaxedCell] = {}
_CACHE_SIZE = 32


def _cell_key(atoms: Any) -> tuple:
    """The cell as a hashable value (symbols, positions and cell to 1e-6 Å)."""
    import numpy as np

    return (tuple(atoms.get_chemical_symbols()),
            np.round(atoms.get_positions(), 6).tobytes(), np.round(atoms.cell[:], 6).tobytes())


def relaxed_cell(atoms: Any, factory: CalculatorFactory, what: str, *, relax: bool = True,
                 fmax: float = 0.05, steps: int = 500, optimizer: str = "BFGS",
                 smax: float | None = 5e-4, rattle: float = 0.02,
                 strict: bool = False) -> RelaxedCell:
    """One cell relaxed (positions and cell) with a calculator from ``factory``, with its
    energy (``relax=False``: the energy of the given geometry); ``what`` names it in errors.
    A cell already relaxed in this process with the same model and settings is taken from
    the cache. Not converged: :class:`CalculationError` when ``strict``, else flagged."""
    key = (factory.identity, _cell_key(atoms), relax, fmax, steps, optimizer, smax, rattle)
    cell = _RELAXED.get(key)
    if cell is None:
        volume = float(atoms.get_volume())
        if not relax:
            cell = RelaxedCell(atoms, _energy(atoms, factory(), what), True, 0, volume)
        else:
            done, converged, nsteps = _relax(atoms, factory(), fmax=fmax, steps=steps,
                                             cell=True, optimizer=optimizer, smax=smax,
                                             rattle=rattle)
            cell = RelaxedCell(done, _energy(done, None, what), converged, nsteps, volume)
        if len(_RELAXED) >= _CACHE_SIZE:
            _RELAXED.pop(next(iter(_RELAXED)))
        _RELAXED[key] = cell
    if relax and not cell.converged and strict:
        raise CalculationError(_not_converged(what, cell.atoms, fmax, cell.steps)
                               + f" with {factory.identity}")
    return cell._replace(atoms=cell.atoms.copy())  # the caller may change its atoms


def relax_pair(
    empty: Structure,
    inserted: Structure,
    factory: CalculatorFactory | str,
    *,
    relax: bool = True,
    fmax: float = 0.05,
    steps: int = 500,
    optimizer: str = "BFGS",
    smax: float | None = 5e-4,
    rattle: float = 0.02,
    strict: bool = False,
) -> tuple[RelaxedCell, RelaxedCell]:
    """The empty and the inserted cell, each relaxed (positions and cell) with a calculator
    from ``factory``, with their energies; ``relax=False`` takes the energies of the given
    geometries. The arguments are those of :func:`insertion_voltage`; a relaxation that does
    not converge raises :class:`CalculationError` when ``strict``, else it is flagged in the
    returned :class:`RelaxedCell`.
    """
    factory = as_factory(factory)
    opts = {"relax": relax, "fmax": fmax, "steps": steps, "optimizer": optimizer, "smax": smax,
            "rattle": rattle, "strict": strict}
    return (relaxed_cell(to_atoms(empty), factory, "empty host", **opts),
            relaxed_cell(to_atoms(inserted), factory, "inserted host", **opts))


def _not_converged(what: str, atoms: Any, fmax: float, nsteps: int) -> str:
    return (f"relaxation of the {what} ({atoms.get_chemical_formula()}) did not reach "
            f"fmax={fmax} eV/Å in {nsteps} steps")


def voltage_from_energies(e_inserted: float, e_empty: float, mu: float, x: float,
                          z: int) -> float:
    """V = −[E(host + x ion) − E(host) − x·μ(ion)] / (z·x), in volts from energies in eV
    (per cell for the two hosts, per ion for μ)."""
    if not x > 0 or z == 0:
        raise IonscreenError(f"need x > 0 ions and a charge z != 0 (got x={x}, z={z})")
    return -(e_inserted - e_empty - x * mu) / (z * x)


def _notes(cells: dict[str, RelaxedCell], ion: IonModel, x: float, relaxed: bool,
           fmax: float, factory: CalculatorFactory) -> tuple[list[str], bool]:
    """The result's notes, and whether a cell's volume moved by more than SWELLING_WARNING."""
    notes = [f"Average voltage between the two cells (x = {x:g} {ion.label()} per cell, "
             "against the ion reference below); intermediate phases, ion ordering and "
             "entropy are not included."]
    notes += [_not_converged(what, c.atoms, fmax, c.steps)
              + "; its energy and volume are less reliable"
              for what, c in cells.items() if relaxed and not c.converged]
    volume_warning = False
    for what, cell in cells.items():
        if abs(cell.swelling) > SWELLING_WARNING:
            volume_warning = True
            notes.append(
                f"The {what}'s volume changed by {100 * cell.swelling:+.1f} % on relaxation; "
                "check the relaxed cell: in a layered host this usually means the model, which "
                "has no dispersion (van der Waals) binding, lets the layers drift apart, and "
                "the volume change is then unreliable (the voltage much less so); in a 3D "
                "framework it is a large strain that the host may not survive.")
    if not relaxed:
        notes.append("Unrelaxed: energies and volumes of the given geometries.")
    if ion.approximate or ion.name == "NH4":
        notes.append("The NH4 reference μ(NH4) = E(NH3) + ½E(H2) is an approximation: compare "
                     "NH4+ voltages between hosts, not with a measured cell voltage.")
    notes.append(factory.note)
    return notes, volume_warning


def insertion_voltage(
    empty: Structure,
    inserted: Structure,
    ion: str | IonModel,
    factory: CalculatorFactory | str,
    relax: bool = True,
    fmax: float = 0.05,
    steps: int = 500,
    optimizer: str = "BFGS",
    smax: float | None = 5e-4,
    rattle: float = 0.02,
    strict: bool = False,
) -> InsertionResult:
    """Average insertion voltage and relative volume change of ``ion`` in a host.

    ``empty`` and ``inserted`` are the same framework cell without and with the ions (e.g.
    ``proto.build()`` and ``proto.build(with_ion="Mg")``); x is the difference in ion count.
    With ``relax=True`` both are relaxed (positions and cell, ``fmax`` eV/Å, at most ``steps``
    steps) with a calculator from ``factory`` (a :class:`CalculatorFactory` or a spec such as
    ``"chgnet"``), the stress to about ``smax`` eV/Å³ (5e-4 ≈ 0.08 GPa; ``None``: ASE's looser
    default), after a seeded random displacement of ``rattle`` Å so that a symmetric starting
    point that is a saddle of the model can relax (see
    :func:`ionscreen.screening.relax.relax`); with ``relax=False`` the given geometries are used
    as they are. A cell whose volume moves by more than 15 % is flagged
    (``volume_warning``). μ(ion) comes from :func:`ion_reference` with the same model. A relaxation that does not converge is
    flagged in the result (``converged_*`` and a note), or raises :class:`CalculationError`
    when ``strict``. Frameworks that differ, or x ≤ 0, raise
    :class:`StructureValidationError`.

    The composition of :func:`relax_pair`, :func:`ion_reference` and
    :func:`voltage_from_energies`.
    """
    ion = ion_model(ion)
    factory = as_factory(factory)
    _ions_inserted(empty, inserted, ion)  # refuse different frameworks before any relaxation
    cell_e, cell_i = relax_pair(empty, inserted, factory, relax=relax, fmax=fmax, steps=steps,
                                optimizer=optimizer, smax=smax, rattle=rattle, strict=strict)
    return _voltage_result(empty, inserted, ion, factory, cell_e, cell_i, relax, fmax)


def insertion_voltage_at_sites(
    empty: Structure,
    ion: str | IonModel,
    sites: list[tuple[list[float], float]],
    n: int,
    factory: CalculatorFactory | str,
    **options: Any,
) -> InsertionResult:
    """:func:`insertion_voltage` of an empty host that takes ``n`` ions per cell on its BVSE
    ``sites`` (``(frac, energy)`` pairs, :func:`fill_sites`); ``options`` are the relaxation
    options of :func:`insertion_voltage` (``relax``, ``fmax``, ``steps``, ``optimizer``,
    ``smax``, ``rattle``, ``strict``), with its defaults.

    The empty host relaxes first; the ions go onto the sites of the relaxed cell (the same
    fractional coordinates), and that cell relaxes: it starts near its minimum, and the empty
    host's relaxation is shared by every working ion of a screen (:func:`relaxed_cell`).
    """
    unknown = sorted(set(options) - set(RELAX_DEFAULTS))
    if unknown:
        raise IonscreenError(f"unknown relaxation option(s) {unknown}; accepted: "
                             f"{', '.join(RELAX_DEFAULTS)}")
    opts = {**RELAX_DEFAULTS, **options}
    ion = ion_model(ion)
    factory = as_factory(factory)
    cell_e = relaxed_cell(to_atoms(empty), factory, "empty host", **opts)
    start = to_structure(cell_e.atoms) if opts["relax"] else empty.copy()
    if "magmom" in start.site_properties:  # the new ions would have none
        start.remove_site_property("magmom")
    inserted = fill_sites(start, ion, sites, n)
    cell_i = relaxed_cell(to_atoms(inserted), factory, "inserted host", **opts)
    return _voltage_result(empty, inserted, ion, factory, cell_e, cell_i, opts["relax"],
                           opts["fmax"])


def _voltage_result(empty: Structure, inserted: Structure, ion: IonModel,
                    factory: CalculatorFactory, cell_e: RelaxedCell, cell_i: RelaxedCell,
                    relax: bool, fmax: float) -> InsertionResult:
    """The :class:`InsertionResult` of two relaxed cells of one framework."""
    x = _ions_inserted(empty, inserted, ion)
    mu, mu_desc = ion_reference(ion, factory)
    voltage = voltage_from_energies(cell_i.energy, cell_e.energy, mu, x, ion.charge)
    vol_e, vol_i = cell_e.volume, cell_i.volume
    if not all(math.isfinite(v) for v in (voltage, vol_e, vol_i)):
        raise CalculationError(f"{factory.identity} gave a non-finite voltage or volume")
    notes, volume_warning = _notes({"empty host": cell_e, "inserted host": cell_i}, ion, x,
                                   relax, fmax, factory)
    return InsertionResult(
        ion=ion.label(),
        ion_charge=ion.charge,
        x=x,
        formula_empty=empty.composition.element_composition.formula.replace(" ", ""),
        formula_inserted=inserted.composition.element_composition.formula.replace(" ", ""),
        voltage_V=float(voltage),
        energy_empty_eV=cell_e.energy,
        energy_inserted_eV=cell_i.energy,
        mu_ion_eV=mu,
        mu_reference=mu_desc,
        reference_approximate=ion.name == "NH4",
        volume_empty_A3=vol_e,
        volume_inserted_A3=vol_i,
        volume_empty_initial_A3=cell_e.volume_initial,
        volume_inserted_initial_A3=cell_i.volume_initial,
        volume_change=(vol_i - vol_e) / vol_e,
        volume_warning=volume_warning,
        relaxed=relax,
        converged_empty=cell_e.converged,
        converged_inserted=cell_i.converged,
        steps_empty=cell_e.steps,
        steps_inserted=cell_i.steps,
        fmax=fmax,
        model=factory.identity,
        tier=factory.tier,
        notes=notes,
        empty_structure=to_structure(cell_e.atoms),
        inserted_structure=to_structure(cell_i.atoms),
    )


#: Å: two inserted ions are never closer than this (a cation–cation contact in real hosts
#: is ≥ 2.9 Å for Li–Li in LixC6 and ≥ 3 Å for the divalent ions)
MIN_ION_SEPARATION = 2.9
#: Å: N–N of two NH4 groups placed on sites (≈ 3.9–4.2 Å in ammonium salts; below about 3.5 Å
#: two groups' hydrogens would touch)
MIN_NH4_SEPARATION = 3.6
#: Å: the N–H bond of a placed NH4 group (1.03 Å in ammonium salts)
NH4_NH = 1.03
_TETRAHEDRON = [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]


def _nh4_hydrogens(host: Structure, centre: Any, tries: int = 24) -> Any:
    """Cartesian positions of the 4 H of an NH4 group on ``centre``: the orientation (the ideal
    tetrahedron, then seeded random rotations) whose H stay farthest from the host's atoms.
    The ML relaxation that follows settles the orientation and the hydrogen bonds."""
    import numpy as np
    from scipy.spatial.transform import Rotation

    tet = np.array(_TETRAHEDRON, float) / math.sqrt(3.0) * NH4_NH
    rots = [np.eye(3)] + list(Rotation.random(tries, random_state=0).as_matrix())
    best, best_d = None, -1.0
    for r in rots:
        h = centre + tet @ r.T
        fr = host.lattice.get_fractional_coords(h)
        d = float(host.lattice.get_all_distances(fr, host.frac_coords).min()) if len(host) else 9.9
        if d > best_d:
            best, best_d = h, d
    return best


def fill_sites(empty: Structure, ion: str | IonModel, sites: list[tuple[list[float], float]],
               n: int, min_separation: float | None = None) -> Structure:
    """``empty`` with up to ``n`` ions on its BVSE sites (``(frac, energy)`` pairs), lowest
    energy first, each at least ``min_separation`` from those already placed
    (:data:`MIN_ION_SEPARATION`, :data:`MIN_NH4_SEPARATION` between NH4 groups): the discharged
    cell of an empty host. An NH4 group is N on the site and four H at 1.03 Å, turned to keep
    them farthest from the host. Raises :class:`StructureValidationError` when no site is
    given or the host can take no ion (``n`` < 1)."""
    ion = ion_model(ion)
    nh4 = ion.name == "NH4"
    if min_separation is None:
        min_separation = MIN_NH4_SEPARATION if nh4 else MIN_ION_SEPARATION
    formula = empty.composition.reduced_formula
    if n < 1:
        raise StructureValidationError(f"{formula}: its reducible centres take less than one "
                                       f"{ion.label()} per cell, so there is no voltage to compute")
    if not sites:
        raise StructureValidationError(f"{formula}: no BVSE site to place the {ion.label()} on")
    placed: list[list[float]] = []
    lat = empty.lattice
    for frac, _e in sorted(sites, key=lambda t: t[1]):
        if len(placed) >= n:
            break
        if placed:
            d = lat.get_all_distances([frac], placed)[0]
            if float(d.min()) < min_separation:
                continue
        placed.append(list(frac))
    inserted = empty.copy()
    inserted.remove_oxidation_states()  # the ML potentials take none; states would be stale
    for f in placed:
        if nh4:
            centre = lat.get_cartesian_coords(f)
            hydrogens = _nh4_hydrogens(inserted, centre)
            inserted.append("N", f)
            for h in hydrogens:
                inserted.append("H", h, coords_are_cartesian=True)
        else:
            inserted.append(ion.element, f)
    return inserted


def hosts_for_voltage(candidate: Any, sites: list[tuple[list[float], float]] | None = None
                      ) -> tuple[Structure, Structure]:
    """(empty, inserted) cells of a candidate for :func:`insertion_voltage`.

    A discharged candidate: the empty host drops only the working ion's mobile sites (the one
    rule of :meth:`~ionscreen.structures.ions.WorkingIon.remove_from`): a polymer's node Zn in
    ZnZn(PTtSA) stays, and an NH4 host loses its whole NH4 groups. An empty (charged) host:
    the ions go onto its BVSE ``sites`` (:func:`fill_sites`) of :func:`empty_host_cell`.
    Raises :class:`StructureValidationError` for an empty host without sites.
    """
    from ionscreen.structures.ions import get_working_ion

    wi = get_working_ion(candidate.working_ion)
    if candidate.state == "discharged":
        inserted = candidate.structure
        return wi.remove_from(inserted), inserted
    empty, cell_sites, n = empty_host_cell(candidate, sites or [])
    return empty, fill_sites(empty, wi.name, cell_sites, n)


def empty_host_cell(candidate: Any, sites: list[tuple[list[float], float]]
                    ) -> tuple[Structure, list[tuple[list[float], float]], int]:
    """(cell, its sites, ions it takes) of an empty candidate for the voltage: as many ions as
    its one-electron reduction takes (the capacity's electrons over the ion's charge). A cell
    too small for one ion (δ-MnO₂'s one Mn for Mg²⁺) is repeated along its shortest axis
    until it takes one, its sites with it. Raises :class:`StructureValidationError` for a host
    with no reducible centre."""
    from ionscreen.screening.descriptors import capacity
    from ionscreen.structures.ions import get_working_ion

    charge = get_working_ion(candidate.working_ion).charge
    electrons = float(capacity(candidate).electrons or 0.0)
    structure = candidate.structure
    if electrons <= 1e-9:
        raise StructureValidationError(
            f"{structure.composition.reduced_formula}: no reducible centre, so no "
            f"{candidate.working_ion} goes in and there is no voltage to compute")
    repeat = max(1, math.ceil(charge / electrons - 1e-9))
    if repeat > 1:
        axis = int(min(range(3), key=lambda i: structure.lattice.abc[i]))
        scale = [1, 1, 1]
        scale[axis] = repeat
        structure = structure * scale
        shift = [0.0, 0.0, 0.0]
        grown = []
        for k in range(repeat):
            shift[axis] = float(k)
            grown += [([(f + t) / m for f, t, m in zip(frac, shift, scale)], e)
                      for frac, e in sites]
        sites = grown
    return structure, sites, int(math.floor(electrons * repeat / charge + 1e-9))

