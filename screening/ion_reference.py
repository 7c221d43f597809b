"""Reference chemical potentials μ(ion) of the working ions, computed with an ML potential.

μ(ion) is the energy per ion of the ion's reference state, the zero of the insertion voltage
(:func:`ionscreen.screening.insertion.insertion_voltage`). Each reference is relaxed with the
same model as the host cells it is combined with, cell included, starting from the
experimental room-temperature lattice constants in :data:`METAL_REFERENCES`:

* Li (bcc), Na (bcc), Mg (hcp), Ca (fcc), Sr (fcc), Ba (bcc), Zn (hcp), Al (fcc): energy per
  atom of the bulk metal, i.e. the voltage against the metal anode.
* NH4 (approximate): μ(NH4) = E(NH3) + ½ E(H2), two isolated molecules relaxed in a 15 Å box.
  There is no NH4 metal; this neutral-NH4 reference is a convention so that NH4+ hosts can be
  compared with each other. It is not the potential of a real electrode (aqueous NH4+ cells
  are referenced to a hydrogen or Zn electrode, with solvation), and ML potentials trained on
  crystals are extrapolating for small molecules. Results using it say so.

References are cached per (model identity, ion) in the process, so that a screen computes each
once; a model's reference is never used with another model's energies.
"""

from __future__ import annotations

import math
from typing import Any

from pymatgen.core import Composition

from ionscreen.errors import CalculationError, IonscreenError, UnsupportedIonError
from ionscreen.screening.ion_models import IonModel, ion_model
from ionscreen.screening.mlip import CalculatorFactory, calculator_factory
from ionscreen.screening.relax import relax as _relax

__all__ = [
    "METAL_REFERENCES",
    "NH4_BOX",
    "as_factory",
    "clear_reference_cache",
    "ion_reference",
    "metal_reference_atoms",
    "molecule_reference_atoms",
    "reference_composition",
]

#: Bulk-metal references: ion -> (structure, a [Å], c [Å] or None). Experimental lattice
#: constants near room temperature (Kittel, Introduction to Solid State Physics, 8th ed.;
#: CRC Handbook), used only as starting points: each metal is relaxed with the model.
METAL_REFERENCES: dict[str, tuple[str, float, float | None]] = {
    "Li": ("bcc", 3.51, None),
    "Na": ("bcc", 4.29, None),
    "Mg": ("hcp", 3.209, 5.211),
    "Ca": ("fcc", 5.588, None),
    "Sr": ("fcc", 6.084, None),
    "Ba": ("bcc", 5.028, None),
    "Zn": ("hcp", 2.665, 4.947),
    "Al": ("fcc", 4.050, None),
}

#: Edge (Å) of the cubic box for the NH3 and H2 molecules of the NH4 reference.
NH4_BOX = 15.0

_REFERENCE_FMAX = 0.01  # eV/Å (and scaled stress): the references are small and cheap
_REFERENCE_CACHE: dict[tuple[str, str], tuple[float, str]] = {}


def clear_reference_cache() -> None:
    """Forget the ion references computed in this process."""
    _REFERENCE_CACHE.clear()


def as_factory(factory: CalculatorFactory | str) -> CalculatorFactory:
    """``factory`` itself, or the :class:`CalculatorFactory` of a calculator spec string."""
    if isinstance(factory, CalculatorFactory):
        return factory
    if isinstance(factory, str):
        return calculator_factory(factory)
    raise IonscreenError(
        f"expected a CalculatorFactory or a calculator spec string, got {type(factory).__name__}"
    )


def reference_composition(ion: IonModel) -> Composition:
    """The formula unit that one inserted ``ion`` adds to a host (NH4 for ammonium)."""
    return Composition("NH4") if ion.name == "NH4" else Composition(ion.element)


# -- reference structures --------------------------------------------------------------------


def metal_reference_atoms(name: str) -> Any:
    """The unrelaxed bulk metal of :data:`METAL_REFERENCES` ``name`` (ASE Atoms, one cell)."""
    from ase.build import bulk

    crystal, a, c = METAL_REFERENCES[name]
    return bulk(name, crystal, a=a, c=c) if c else bulk(name, crystal, a=a)


def molecule_reference_atoms(name: str) -> Any:
    """The isolated molecule ``name`` (e.g. ``"NH3"``), centred in a periodic cubic box of
    edge :data:`NH4_BOX` (ASE Atoms)."""
    from ase.build import molecule

    mol = molecule(name)
    mol.set_cell([NH4_BOX] * 3)
    mol.center()
    mol.pbc = True
    return mol


# -- references ------------------------------------------------------------------------------


def _metal_reference(name: str, factory: CalculatorFactory) -> tuple[float, str]:
    """μ = energy per atom of the bulk metal, relaxed with its cell."""
    crystal, a, c = METAL_REFERENCES[name]
    relaxed, converged, _ = _relax(metal_reference_atoms(name), factory(), fmax=_REFERENCE_FMAX,
                                   cell=True, optimizer="BFGS")
    mu = float(relaxed.get_potential_energy()) / len(relaxed)
    lat = f"a={a} Å" + (f", c={c} Å" if c else "")
    desc = (f"μ({name}) = energy per atom of {crystal} {name} metal (started from "
            f"the experimental {lat}; relaxed with cell"
            f"{'' if converged else ', NOT converged'}) with {factory.identity}")
    return mu, desc


def _nh4_reference(factory: CalculatorFactory) -> tuple[float, str]:
    """μ(NH4) = E(NH3) + ½ E(H2), each molecule relaxed in its box (the cell fixed)."""
    energies = {}
    conv = True
    for name in ("NH3", "H2"):
        relaxed, converged, _ = _relax(molecule_reference_atoms(name), factory(),
                                       fmax=_REFERENCE_FMAX, cell=False, optimizer="BFGS")
        energies[name] = float(relaxed.get_potential_energy())
        conv = conv and converged
    mu = energies["NH3"] + 0.5 * energies["H2"]
    desc = (f"μ(NH4) = E(NH3) + ½ E(H2) of isolated molecules in a {NH4_BOX:g} Å box "
            f"(relaxed{'' if conv else ', NOT converged'}) with {factory.identity}; "
            "APPROXIMATE: a neutral-NH4 convention for comparing NH4+ hosts with each "
            "other, not a real electrode potential, and a crystal-trained ML potential "
            "extrapolates for small molecules")
    return mu, desc


def ion_reference(ion: str | IonModel, factory: CalculatorFactory | str) -> tuple[float, str]:
    """The reference chemical potential μ (eV per ion) of ``ion`` with ``factory``'s model.

    Returns ``(mu, description)``; the description names the reference, the model, and for
    NH4 that it is an approximation. Computed once per (model identity, ion) in a process.
    """
    ion = ion_model(ion)
    factory = as_factory(factory)
    key = (factory.identity, ion.name)
    if key in _REFERENCE_CACHE:
        return _REFERENCE_CACHE[key]

    if ion.name in METAL_REFERENCES:
        mu, desc = _metal_reference(ion.name, factory)
    elif ion.name == "NH4":
        mu, desc = _nh4_reference(factory)
    else:  # pragma: no cover - every IonModel is covered above
        raise UnsupportedIonError(f"no reference chemical potential defined for {ion.label()}")
    if not math.isfinite(mu):
        raise CalculationError(f"{factory.identity} gave a non-finite energy for the {ion.name} "
                               "reference")
    _REFERENCE_CACHE[key] = (mu, desc)
    return mu, desc
