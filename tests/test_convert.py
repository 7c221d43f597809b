"""The one Structure <-> Atoms converter: round trip, oxidation states as charges, mobile tags,
magnetic moments, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from ionscreen.errors import IonscreenError, StructureValidationError
from ionscreen.structures.convert import MOBILE_TAG, to_atoms, to_structure
from ionscreen.structures.prototypes import get_prototype


@pytest.fixture(scope="module")
def lifepo4() -> Structure:
    return get_prototype("LiFePO4").build(with_ion="Li")  # oxidation-state decorated


def test_round_trip_keeps_symbols_positions_and_cell(lifepo4):
    atoms = to_atoms(lifepo4)
    assert atoms.pbc.all()
    assert atoms.get_chemical_symbols() == [site.specie.symbol for site in lifepo4]
    assert np.allclose(atoms.positions, lifepo4.cart_coords)
    assert np.allclose(atoms.cell.array, lifepo4.lattice.matrix)
    assert not atoms.get_initial_charges().any() and not atoms.get_tags().any()
    back = to_structure(atoms)
    assert back.lattice == lifepo4.lattice
    assert [str(sp) for sp in back.species] == [sp.symbol for sp in lifepo4.species]
    assert np.allclose(back.cart_coords, lifepo4.cart_coords)
    assert back.site_properties == {}


def test_the_input_is_not_changed(lifepo4):
    before = lifepo4.copy()
    atoms = to_atoms(lifepo4, charges=True)
    atoms.positions += 1.0
    assert lifepo4 == before


def test_charges_are_the_oxidation_states_and_come_back(lifepo4):
    atoms = to_atoms(lifepo4, charges=True)
    want = {"Li": 1, "Fe": 2, "P": 5, "O": -2}
    assert list(atoms.get_initial_charges()) == [want[s] for s in atoms.get_chemical_symbols()]
    back = to_structure(atoms)
    assert back.species == lifepo4.species  # Li+, Fe2+, P5+, O2- again
    assert str(back[0].specie) in {"Li+", "Fe2+", "P5+", "O2-"}  # ints, not "Fe2.0+"


def test_charges_are_guessed_when_the_structure_has_none(lifepo4):
    bare = lifepo4.copy()
    bare.remove_oxidation_states()
    assert np.array_equal(to_atoms(bare, charges=True).get_initial_charges(),
                          to_atoms(lifepo4, charges=True).get_initial_charges())


def test_mobile_sites_are_tagged(lifepo4):
    li = [i for i, site in enumerate(lifepo4) if site.specie.symbol == "Li"]
    atoms = to_atoms(lifepo4, charges=True, mobile=li)
    tags = atoms.get_tags()
    assert MOBILE_TAG == 1
    assert list(np.nonzero(tags == MOBILE_TAG)[0]) == li
    assert set(tags) == {0, MOBILE_TAG}
    assert not to_atoms(lifepo4, mobile=[]).get_tags().any()


def test_magnetic_moments_cross_both_ways():
    s = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]],
                  site_properties={"magmom": [2.2, -2.2]})
    atoms = to_atoms(s)
    assert list(atoms.get_initial_magnetic_moments()) == [2.2, -2.2]
    assert to_structure(atoms).site_properties["magmom"] == [2.2, -2.2]


def test_other_site_properties_stay_behind():
    s = Structure(Lattice.cubic(4.0), ["Zn", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]],
                  site_properties={"role": ["DI", "host"]})
    atoms = to_atoms(s)
    assert "role" not in atoms.arrays and not atoms.get_tags().any()


def test_refuses_disorder_and_non_structures(lifepo4):
    disordered = Structure(Lattice.cubic(4.0), [{"Mg": 0.5, "Zn": 0.5}, "O"],
                           [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(StructureValidationError, match="partial occupancies"):
        to_atoms(disordered)
    with pytest.raises(IonscreenError, match="pymatgen Structure"):
        to_atoms(to_atoms(lifepo4))  # type: ignore[arg-type]
