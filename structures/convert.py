"""The one converter between pymatgen ``Structure`` and ASE ``Atoms``.

Calculators (BVFF, ML potentials, any ASE calculator) and ASE's file writers take ``Atoms``;
the rest of ionscreen works on ``Structure``. What crosses over is stated here, in one place:

* always: element symbols (oxidation-state decorations dropped from the species), Cartesian
  positions, the cell, periodic boundary conditions (all True);
* ``magmom`` site property <-> initial magnetic moments (spin-polarised ASE calculators read
  them);
* on request (``charges=True``): oxidation states <-> initial charges, the way the BVFF tells
  Fe2+ from Fe3+;
* on request (``mobile=[...]``): mobile-ion tags (:data:`MOBILE_TAG`) on the listed sites.

Other site properties (the polymer builder's ``role``, ``selective_dynamics`` from a POSCAR,
...) are not carried: no calculator of ionscreen reads them, and constraints are set by the
code that runs the calculation.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms
from pymatgen.core import Lattice, Structure

from ionscreen._json import clean_number
from ionscreen.errors import IonscreenError, StructureValidationError

from .oxidation import assign_oxidation_states

__all__ = ["MOBILE_TAG", "to_atoms", "to_structure"]

#: ASE tag of the mobile working ion (every other atom has tag 0).
MOBILE_TAG = 1


def to_atoms(
    structure: Structure,
    *,
    charges: bool = False,
    mobile: Iterable[int] | None = None,
) -> Atoms:
    """ASE ``Atoms`` of an ordered ``structure`` (a new object; the input is not changed).

    Carries symbols, Cartesian positions, cell, ``pbc`` (all True) and the ``magmom`` site
    property as initial magnetic moments. ``charges=True`` sets the oxidation states as initial
    charges (assigned with :func:`~ionscreen.structures.oxidation.assign_oxidation_states`, i.e.
    guessed, when the structure has none). ``mobile`` lists the site indices tagged
    :data:`MOBILE_TAG`; every other tag is 0.

    Raises :class:`IonscreenError` for something that is not a ``Structure`` and
    :class:`StructureValidationError` for a disordered one (an ASE calculator needs one atom
    per site).
    """
    if not isinstance(structure, Structure):
        raise IonscreenError(f"expected a pymatgen Structure, got {type(structure).__name__}")
    if not structure.is_ordered:
        raise StructureValidationError(
            f"{structure.composition.reduced_formula} has partial occupancies; an ASE "
            "calculator needs an ordered cell (order it first, e.g. with pymatgen's "
            "OrderDisorderedStructureTransformation)"
        )
    atoms = Atoms(
        [site.specie.symbol for site in structure],
        positions=structure.cart_coords,
        cell=structure.lattice.matrix,
        pbc=True,
    )
    magmoms = structure.site_properties.get("magmom")
    if magmoms is not None:
        atoms.set_initial_magnetic_moments(magmoms)
    if charges:
        decorated = assign_oxidation_states(structure)
        atoms.set_initial_charges(
            [float(getattr(site.specie, "oxi_state", 0.0) or 0.0) for site in decorated])
    tags = np.zeros(len(atoms), int)
    if mobile is not None:
        tags[list(mobile)] = MOBILE_TAG
    atoms.set_tags(tags)
    return atoms


def to_structure(atoms: Atoms) -> Structure:
    """A pymatgen ``Structure`` of periodic ``atoms`` (a new object).

    Carries symbols, Cartesian positions and the cell; pymatgen's ``oxi_states`` array (or
    else the initial charges) become oxidation states and initial magnetic moments the
    ``magmom`` site property, each only when some are non-zero. Tags, constraints and the attached calculator are not carried.
    """
    structure = Structure(Lattice(atoms.cell.array), atoms.get_chemical_symbols(),
                          atoms.positions, coords_are_cartesian=True)
    # oxidation states: pymatgen's own array when the Atoms came from pymatgen (extxyz files
    # written by it carry it), else the initial charges
    oxi = atoms.arrays.get("oxi_states")
    charges = np.asarray(oxi, float) if oxi is not None else atoms.get_initial_charges()
    if np.any(charges != 0):
        structure.add_oxidation_state_by_site([clean_number(q, None) for q in charges])
    magmoms = atoms.get_initial_magnetic_moments()
    if magmoms.ndim == 1 and np.any(magmoms != 0):
        structure.add_site_property("magmom", [float(m) for m in magmoms])
    return structure

