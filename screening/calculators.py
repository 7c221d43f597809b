"""The bond-valence force field (BVFF) as an ASE calculator.

The BVSE potential of the mobile ion (softBV Morse to anions, screened Coulomb to cations) plus
the same kinds of terms between framework ions, so that the host can relax around the ion:

* cation–anion pairs: softBV Morse with the pair's own row (Fe2+–O2-, P5+–O2-, ...);
* like charges (cation–cation, anion–anion): 14.4 q_a q_b erfc(r / ρ) / r,
  q = V / √n, ρ = f (r_a + r_b), without charge rescaling, with softBV covalent radii.

Atoms are told apart by symbol, oxidation state (``atoms.get_initial_charges()``) and tag
(tag 1 = the mobile working ion). The NH4+ pseudo-ion is one atom (symbol N, tag 1, charge +1)
with the K+-derived rows of ``ion_models.ION_MODELS["NH4"]``.

Numbers from this calculator are "BVFF" numbers: a bond-valence force field, good for
relative energies along a path in one host, not for absolute energies or voltages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ionscreen.errors import IonscreenError, StructureValidationError
from ionscreen.kernels import bvff as kbvff
from ionscreen.structures.convert import MOBILE_TAG
from ionscreen.structures.ions import ion_label

from .ion_models import IonModel, ion_model, mobile_pair
from .params import ParamTable, load_table

METHOD = "BVFF"


@dataclass(frozen=True)
class BVFFSpecies:
    """One kind of atom of the force field."""

    symbol: str
    valence: float
    mobile: bool

    @property
    def label(self) -> str:
        v = int(round(self.valence)) if abs(self.valence - round(self.valence)) < 1e-6 else self.valence
        lab = ion_label(self.symbol, v) if isinstance(v, int) else f"{self.symbol}{v:+.3g}"
        return lab + " (mobile)" if self.mobile else lab


def _key(symbol: str, charge: float, tag: int) -> tuple[str, float, bool]:
    return symbol, round(float(charge), 4), tag == MOBILE_TAG


@dataclass
class BVFFModel:
    """Species and pair parameters of a BVFF for one host and one working ion."""

    ion: IonModel
    species: list[BVFFSpecies]
    kind: np.ndarray  # (S, S)
    params: np.ndarray  # (S, S, 3)
    cutoff: float
    screening_factor: float
    parameters: dict[str, Any] = field(default_factory=dict)
    radii: str = "softbv"
    derive_nitride: bool = False

    @property
    def derived(self) -> list[str]:
        """Pairs whose Morse row was derived (nitride transfer rule), not tabulated."""
        return [k for k, v in self.parameters.get("pairs", {}).items() if v.get("derived_from")]

    @property
    def neutral(self) -> list[str]:
        """Species without terms (valence 0): covalently bound atoms the BVFF does not describe."""
        return [s.label for s in self.species if s.valence == 0]

    @property
    def identity(self) -> str:
        derived = "".join(f"; {k} row derived by the nitride transfer rule (approximate)"
                          for k in self.derived)
        return (f"BVFF (softBV Morse + screened Coulomb, Chen & Adams 2017 rows; "
                f"cutoff {self.cutoff:g} Å, f = {self.screening_factor:g}{derived})")

    @classmethod
    def build(
        cls,
        species: list[BVFFSpecies],
        ion: str | IonModel,
        table: ParamTable | None = None,
        cutoff: float = 7.0,
        screening_factor: float = 0.74,
        radii: str = "softbv",
        derive_nitride: bool = False,
    ) -> BVFFModel:
        """Pair parameters for every pair of ``species``.

        ``radii="softbv"`` by default, unlike BVSE's bvlain-compatible "ase": with ASE radii the
        anion–anion screening length is so short (O–O: ρ = 0.98 Å) that anions barely repel
        and hosts collapse on relaxation (MgCr2O4: mean displacement 0.28 Å against 0.002 Å).

        Neutral species (valence 0, e.g. the C of organic ligands) get no terms, as in BVSE:
        they feel no force, so keep them fixed (:attr:`neutral` lists them).

        ``derive_nitride``: a missing working-ion–N3- row is derived from the ion's O2- row, as
        in BVSE (:func:`~ionscreen.screening.nitride.derived_nitride_pair`), and :attr:`identity`
        says so.

        Raises :class:`MissingParameterError` naming a cation–anion pair without a softBV row.
        """
        ion = ion_model(ion)
        table = table or load_table()
        if not cutoff > 1.0:
            raise ValueError("BVFF cutoff must be > 1 Å (7 Å is the default)")
        ns = len(species)
        kind = np.zeros((ns, ns), np.int64)
        params = np.zeros((ns, ns, 3))
        charge, radius = [], []
        for sp in species:
            if sp.valence == 0:  # neutral atoms (e.g. ligand C) get no terms, as in BVSE
                charge.append(0.0)
                radius.append(0.0)
            elif sp.mobile:
                charge.append(ion.charge / math.sqrt(ion.period(table)))
                radius.append(ion.covalent_radius(table, radii))
            else:
                el = table.element(sp.symbol)
                charge.append(sp.valence / math.sqrt(el.period))
                radius.append(el.covalent_radius(int(round(sp.valence)), radii))
        used: dict[str, Any] = {}
        for a in range(ns):
            for b in range(a, ns):
                sa, sb = species[a], species[b]
                if sa.valence == 0 or sb.valence == 0:
                    continue
                if sa.valence * sb.valence < 0:
                    cat, an = (sa, sb) if sa.valence > 0 else (sb, sa)
                    av = int(round(an.valence))
                    if cat.mobile:
                        p = mobile_pair(table, ion, an.symbol, av, derive_nitride=derive_nitride)
                    else:
                        p = table.pair(cat.symbol, int(round(cat.valence)), an.symbol, av)
                    kind[a, b] = kbvff.MORSE
                    params[a, b] = (p.d0, p.alpha, p.r_min)
                    used[f"{cat.label}–{an.label}"] = {"term": "Morse", "d0": p.d0, "alpha": p.alpha, "r_min": p.r_min}
                    if p.derived_from:
                        used[f"{cat.label}–{an.label}"]["derived_from"] = p.derived_from
                else:
                    rho = screening_factor * (radius[a] + radius[b])
                    pref = 14.4 * charge[a] * charge[b]
                    kind[a, b] = kbvff.COULOMB
                    params[a, b] = (pref, 1.0 / rho, 0.0)
                    used[f"{sa.label}–{sb.label}"] = {"term": "Coulomb", "prefactor_eV_A": pref, "rho": rho}
                kind[b, a] = kind[a, b]
                params[b, a] = params[a, b]
        fractional = [s.label for s in species if abs(s.valence - round(s.valence)) > 1e-6]
        parameters = {
            "table": "softBV (Chen & Adams, IUCrJ 4 (2017) 614)",
            "convention": f"no charge rescaling; {radii} covalent radii; pair energies shifted to 0 at the cutoff",
            "mobile": ion.as_dict(),
            "pairs": used,
        }
        if fractional:
            parameters["fractional_valences"] = (
                f"{', '.join(fractional)}: Coulomb with the exact charge, Morse with the row of "
                "the nearest integer valence")
        return cls(ion, list(species), kind, params, float(cutoff), float(screening_factor), parameters,
                   radii, bool(derive_nitride))

    def species_indices(self, atoms: Atoms) -> np.ndarray:
        """Species index of every atom (symbol, oxidation state from initial charges, tag)."""
        index = {_key(s.symbol, s.valence, MOBILE_TAG if s.mobile else 0): i for i, s in enumerate(self.species)}
        out = np.empty(len(atoms), np.int64)
        charges = atoms.get_initial_charges()
        tags = atoms.get_tags()
        for i, (sym, q, t) in enumerate(zip(atoms.get_chemical_symbols(), charges, tags)):
            k = _key(sym, q, t)
            if k not in index:
                known = ", ".join(s.label for s in self.species)
                raise StructureValidationError(
                    f"atom {i} ({sym}, charge {q:+g}, tag {t}) is not a species of this BVFF model "
                    f"({known}); build the model from a structure that contains it "
                    "(BVFFModel.from_atoms / from_structure)"
                )
            out[i] = index[k]
        return out

    @classmethod
    def from_atoms(cls, atoms: Atoms, ion: str | IonModel, **kwargs: Any) -> BVFFModel:
        """A model for every species present in ``atoms`` (charges and tags must be set)."""
        seen: dict[tuple[str, float, bool], BVFFSpecies] = {}
        for sym, q, t in zip(atoms.get_chemical_symbols(), atoms.get_initial_charges(), atoms.get_tags()):
            k = _key(sym, q, t)
            seen.setdefault(k, BVFFSpecies(sym, float(q), t == MOBILE_TAG))
        if not any(s.mobile for s in seen.values()):
            # a host without the ion still needs the ion's rows to take one in later
            ion_ = ion_model(ion)
            seen[("ion", 0.0, True)] = BVFFSpecies(mobile_symbol(ion_), float(ion_.charge), True)
        return cls.build(sorted(seen.values(), key=lambda s: (s.mobile, s.symbol, s.valence)), ion, **kwargs)


def mobile_symbol(ion: IonModel) -> str:
    """Chemical symbol used for the mobile atom in ASE Atoms (N for the NH4+ pseudo-ion)."""
    return "N" if ion.name == "NH4" else ion.element


class BVFFCalculator(Calculator):
    """ASE calculator for the bond-valence force field: energy, forces and stress.

    Parameters, as for any ASE calculator (``calc.parameters``, ``calc.todict()``):

    ion: str
        The working ion ("Mg", "NH4", ...): the atoms tagged 1 (:data:`MOBILE_TAG`). Required.
    cutoff: float
        Pair cutoff (Å); pair energies are shifted to 0 there. Default 7.0.
    screening_factor: float
        f in the screening length ρ = f (r_a + r_b) of like-charge Coulomb terms. Default 0.74.
    radii: str
        Covalent radii of the screening lengths, "softbv" (default; see :meth:`BVFFModel.build`).
    derive_nitride: bool
        Derive a missing working-ion–N3- row from the ion's O2- row (approximate). Default False.

    The :class:`BVFFModel` (species and pair rows) is built from the atoms in :meth:`calculate`,
    again whenever their numbers, initial charges (oxidation states) or tags change, as ASE's
    Lennard-Jones calculator rebuilds its neighbour list. :meth:`from_model` wraps a model that
    is already built (shared by the images of a NEB) and keeps it.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    default_parameters: dict[str, Any] = {
        "ion": None,
        "cutoff": 7.0,
        "screening_factor": 0.74,
        "radii": "softbv",
        "derive_nitride": False,
    }
    nolabel = True
    tier = METHOD

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model: BVFFModel | None = None
        self._keep_model = False  # True for a model given to from_model
        self._species: np.ndarray | None = None

    @classmethod
    def from_model(cls, model: BVFFModel, **kwargs: Any) -> BVFFCalculator:
        """A calculator on a built model (its species must cover the atoms it is given)."""
        calc = cls(ion=model.ion.name, cutoff=model.cutoff, screening_factor=model.screening_factor,
                   radii=model.radii, derive_nitride=model.derive_nitride, **kwargs)
        calc.model, calc._keep_model = model, True
        return calc

    def set(self, **kwargs: Any) -> dict[str, Any]:
        changed = super().set(**kwargs)
        if changed:  # another force field: rebuild the model from the next atoms
            self.reset()
            self.model, self._keep_model, self._species = None, False, None
        return changed

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's system changes, plus ``"tags"``: the tag says which atom is the mobile ion."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and not np.array_equal(self.atoms.get_tags(), atoms.get_tags()):
            changes.append("tags")
        return changes

    def _built(self) -> BVFFModel:
        if self.model is None:
            raise IonscreenError(
                "this BVFFCalculator has no model yet: it is built from the atoms on the first "
                "calculation (or use BVFFCalculator.from_model)")
        return self.model

    @property
    def neutral(self) -> list[str]:
        """Species without terms (valence 0), as :attr:`BVFFModel.neutral`."""
        return self._built().neutral

    @property
    def identity(self) -> str:
        return self._built().identity

    def _build_model(self, atoms: Atoms) -> BVFFModel:
        p = self.parameters
        if p.get("ion") is None:
            raise IonscreenError("BVFFCalculator needs the working ion: BVFFCalculator(ion='Mg', ...)")
        return BVFFModel.from_atoms(atoms, p["ion"], cutoff=p["cutoff"],
                                    screening_factor=p["screening_factor"], radii=p["radii"],
                                    derive_nitride=p["derive_nitride"])

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if not atoms.pbc.all():
            raise StructureValidationError("the BVFF needs a periodic cell (atoms.pbc all True)")
        species_changed = bool(_SPECIES_CHANGES.intersection(system_changes))
        if self.model is None or (species_changed and not self._keep_model):
            self.model = self._build_model(atoms)
            self._species = None
        if self._species is None or species_changed:
            self._species = self.model.species_indices(atoms)
        m = self.model
        e, f, stress = kbvff.energy_forces(
            atoms.positions, atoms.cell.array, self._species, m.kind, m.params, m.cutoff
        )
        self.results = {
            "energy": e,
            "free_energy": e,
            "forces": f,
            "stress": full_3x3_to_voigt_6_stress(stress),
        }


# what tells the BVFF's species apart: a change rebuilds the model (or the species indices)
_SPECIES_CHANGES = frozenset(("numbers", "initial_charges", "tags"))


# ----------------------------------------------------------------------------- factories


@dataclass
class CalculatorFactory:
    """Makes ASE calculators for one model; call it for a new calculator (one per NEB image).

    The one factory type of every tier: :func:`bvff_factory` (BVFF) and
    :func:`ionscreen.screening.mlip.calculator_factory` (ML potentials, any ASE calculator)
    return it. Attributes: ``spec`` (as given), ``identity`` (the model, e.g. ``"CHGNet 0.3.0
    (chgnet 0.4.2)"``, shown with every number it produced), ``tier`` (``"BVFF"``, ``"MLIP"``
    or ``"ASE calculator"``), ``note`` (caveats of the model), ``threads``, ``model`` (the
    loaded model the calculators share, if any) and ``approximate`` (an approximate ion model
    or a derived pair row).
    """

    spec: str
    identity: str
    tier: str
    _make: Callable[[], Any] = field(repr=False)
    note: str = ""
    threads: int = 1
    model: Any = field(default=None, repr=False)
    approximate: bool = False
    batch: Callable[[Sequence[Atoms]], tuple[np.ndarray, list[np.ndarray]]] | None = field(
        default=None, repr=False)

    def __call__(self) -> Any:
        """A new ASE calculator (sharing the loaded model where there is one)."""
        return self._make()

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, for result documents."""
        return {
            "spec": self.spec,
            "identity": self.identity,
            "tier": self.tier,
            "note": self.note,
            "threads": self.threads,
            "approximate": self.approximate,
        }


BVFF_NOTE = "bond-valence force field: ranks barriers, not a prediction of absolute values"


def bvff_factory(template: Atoms, ion: str | IonModel, derive_nitride: bool = False,
                 **kwargs: Any) -> CalculatorFactory:
    """A factory of BVFF calculators sharing one :class:`BVFFModel` built from ``template``
    (charges and tags set; the mobile ion may be absent). ``kwargs`` go to
    :meth:`BVFFModel.build` (``cutoff``, ``screening_factor``, ``radii``).

    Raises :class:`MissingParameterError` naming a pair without a softBV row."""
    ion = ion_model(ion)
    model = BVFFModel.from_atoms(template, ion, derive_nitride=derive_nitride, **kwargs)
    note = BVFF_NOTE
    if model.derived:
        note += f"; approximate: {', '.join(model.derived)} row derived by the nitride transfer rule"
    return CalculatorFactory(spec="bvff", identity=model.identity, tier=METHOD,
                             _make=lambda: BVFFCalculator.from_model(model), note=note,
                             model=model, approximate=bool(model.derived) or ion.approximate)
