"""Insertion voltage without an ML potential: the formula by hand, the result document both
ways, the relaxed pair and an ion reference with EMT (fast, not physical)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pymatgen.core import Composition, Lattice, Structure

from ionscreen.errors import IonscreenError, StructureValidationError
from ionscreen.screening.insertion import (
    InsertionResult,
    RelaxedCell,
    insertion_voltage,
    relax_pair,
    voltage_from_energies,
)

EMT = "ase.calculators.emt:EMT"


def test_voltage_by_hand():
    # Mg2+, x = 2: V = -(-100 - (-90) - 2 * (-1.5)) / (2 * 2) = -(-7) / 4
    assert voltage_from_energies(-100.0, -90.0, -1.5, 2, 2) == pytest.approx(1.75)
    # Li+, x = 3: V = -(-50 - (-38) - 3 * (-2)) / 3 = -(-6) / 3
    assert voltage_from_energies(-50.0, -38.0, -2.0, 3, 1) == pytest.approx(2.0)
    # inserting costs energy against the reference: a negative voltage
    assert voltage_from_energies(-10.0, -10.0, -1.0, 1, 1) == pytest.approx(-1.0)
    with pytest.raises(IonscreenError, match="x > 0"):
        voltage_from_energies(-1.0, -1.0, -1.0, 0, 2)


def _cells() -> tuple[Structure, Structure]:
    empty = Structure(Lattice.cubic(3.7), ["Cu"] * 4,
                      [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    inserted = Structure(empty.lattice, ["Cu"] * 4 + ["Al"],
                         list(empty.frac_coords) + [[0.5, 0.5, 0.5]])
    return empty, inserted


def test_relax_pair_gives_energies_volumes_and_steps():
    empty, inserted = _cells()
    cell_e, cell_i = relax_pair(empty, inserted, EMT, fmax=0.05, steps=200)
    for cell, start in ((cell_e, empty), (cell_i, inserted)):
        assert isinstance(cell, RelaxedCell) and math.isfinite(cell.energy)
        assert cell.converged and 0 < cell.steps <= 200
        assert cell.volume_initial == pytest.approx(start.volume)
        assert cell.swelling == pytest.approx(cell.volume / start.volume - 1)
    fixed_e, fixed_i = relax_pair(empty, inserted, EMT, relax=False)
    assert fixed_e.steps == fixed_i.steps == 0 and fixed_i.swelling == 0.0
    assert fixed_e.energy > cell_e.energy  # relaxing lowers the energy


def test_result_document_round_trip():
    empty, inserted = _cells()
    res = insertion_voltage(empty, inserted, "Al", EMT, steps=200)
    assert res.voltage_V == pytest.approx(voltage_from_energies(
        res.energy_inserted_eV, res.energy_empty_eV, res.mu_ion_eV, res.x, res.ion_charge))
    doc = json.loads(json.dumps(res.as_dict(structures=True)))
    assert doc["@class"] == "InsertionResult"
    assert doc["@module"] == "ionscreen.screening.insertion"
    assert doc["fmax_eV_A"] == res.fmax and doc["produced_by"].startswith(res.model)
    back = InsertionResult.from_dict(doc)
    assert back == res
    assert back.inserted_structure == res.inserted_structure
    # without the cells, everything else comes back
    light = InsertionResult.from_dict(json.loads(json.dumps(res.as_dict())))
    assert light.empty_structure is None and light.voltage_V == res.voltage_V
    assert light.notes == res.notes and light.summary_text() == res.summary_text()
    # the deprecated name gives the same document
    assert res.to_dict(structures=True) == res.as_dict(structures=True)


def test_ion_reference_module_and_reexports():
    from ionscreen.screening import insertion, ion_reference
    from ionscreen.screening.ion_models import ion_model

    for name in ("METAL_REFERENCES", "NH4_BOX", "clear_reference_cache", "ion_reference"):
        assert getattr(insertion, name) is getattr(ion_reference, name)
    assert ion_reference.reference_composition(ion_model("NH4")) == Composition("NH4")
    assert ion_reference.reference_composition(ion_model("Mg")) == Composition("Mg")
    mg = ion_reference.metal_reference_atoms("Mg")
    assert mg.get_chemical_formula() == "Mg2" and mg.cell.cellpar()[2] == pytest.approx(5.211)
    nh3 = ion_reference.molecule_reference_atoms("NH3")
    assert all(nh3.pbc) and list(nh3.cell.lengths()) == [ion_reference.NH4_BOX] * 3

    ion_reference.clear_reference_cache()
    mu, desc = ion_reference.ion_reference("Al", EMT)
    assert math.isfinite(mu) and "fcc Al metal" in desc
    assert ion_reference.ion_reference("Al3+", EMT) == (mu, desc)  # cached per model and ion


def test_an_empty_host_is_filled_on_its_bvse_sites():
    """Voltage of an empty host (issue 14.2): the ions go onto its lowest BVSE sites, as many as
    the one-electron reduction takes (beta-MnO2, Mn4+ -> Mn3+: MgMn2O4), never closer than
    MIN_ION_SEPARATION to each other."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.screening.insertion import MIN_ION_SEPARATION, fill_sites, hosts_for_voltage
    from ionscreen.structures.candidates import from_prototypes

    cand = next(from_prototypes(["Mg"], ["MnO2-beta"]))
    assert cand.state == "charged"
    res = compute_landscape(cand.structure, "Mg", resolution=0.25)
    sites = [(s.frac, s.energy) for s in res.sites]
    empty, full = hosts_for_voltage(cand, sites)
    assert empty is cand.structure and full.composition.reduced_formula == "MgMn2O4"
    # in a 2x2x2 cell: eight Mg, none closer than MIN_ION_SEPARATION to another
    big = empty * (2, 2, 2)
    many = fill_sites(big, "Mg", [(list((np.array(f) + [i, j, k]) / 2), e) for f, e in sites
                                  for i in (0, 1) for j in (0, 1) for k in (0, 1)], 8)
    mg = [s for s in many if s.specie.symbol == "Mg"]
    d = many.lattice.get_all_distances([s.frac_coords for s in mg], [s.frac_coords for s in mg])
    assert len(mg) == 8 and d[~np.eye(len(mg), dtype=bool)].min() >= MIN_ION_SEPARATION - 1e-9
    # lowest first, and the separation keeps a close pair out
    two = fill_sites(empty, "Mg", [([0, 0, 0], 0.5), ([0.05, 0, 0], 0.0), ([0.5, 0.5, 0.5], 0.2)], 2)
    got = sorted(tuple(round(x, 2) for x in s.frac_coords) for s in two if s.specie.symbol == "Mg")
    assert got == [(0.05, 0.0, 0.0), (0.5, 0.5, 0.5)]
    with pytest.raises(StructureValidationError, match="no BVSE site"):
        hosts_for_voltage(cand, [])


def test_a_cell_too_small_for_one_ion_is_repeated_with_its_sites():
    """delta-MnO2's cell has one Mn: one electron, half a Mg2+. The voltage cell is doubled
    along its shortest axis, the BVSE sites with it, so that it takes one Mg (issue 14.2)."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.screening.insertion import empty_host_cell, fill_sites
    from ionscreen.structures.candidates import from_prototypes

    cand = next(from_prototypes(["Mg"], ["MnO2-delta"]))
    res = compute_landscape(cand.structure, "Mg", resolution=0.25)
    sites = [(s.frac, s.energy) for s in res.sites]
    cell, cell_sites, n = empty_host_cell(cand, sites)
    assert len(cand.structure) * 2 == len(cell) and n == 1 and len(cell_sites) == 2 * len(sites)
    # every repeated site is the same Cartesian environment: its energy is unchanged and it
    # maps back onto an original site
    orig = {round(e, 9) for _, e in sites}
    assert {round(e, 9) for _, e in cell_sites} == orig
    full = fill_sites(cell, "Mg", cell_sites, n)
    assert full.composition.reduced_formula == "MgMn2O4"
    al = next(from_prototypes(["Al"], ["MnO2-delta"]))
    assert empty_host_cell(al, sites)[2] == 1 and len(empty_host_cell(al, sites)[0]) == 9


def test_nh4_groups_go_on_sites_as_tetrahedra_away_from_the_host():
    """NH4+ in an empty host: N on the site, four H at 1.03 Å in a tetrahedron turned away
    from the host's atoms; two groups keep MIN_NH4_SEPARATION."""
    from ionscreen.screening.insertion import MIN_NH4_SEPARATION, NH4_NH, fill_sites

    host = Structure(Lattice.cubic(8.0), ["O"], [[0.0, 0.0, 0.0]])
    sites = [([0.5, 0.5, 0.5], 0.0), ([0.5, 0.5, 0.9], 0.1), ([0.5, 0.0, 0.5], 0.2)]
    full = fill_sites(host, "NH4", sites, 2)
    assert full.composition.formula.replace(" ", "") == "H8N2O1"
    n_idx = [i for i, s in enumerate(full) if s.specie.symbol == "N"]
    h_idx = [i for i, s in enumerate(full) if s.specie.symbol == "H"]
    dm = full.distance_matrix
    assert dm[n_idx[0], n_idx[1]] >= MIN_NH4_SEPARATION  # the site 3.2 Å away was skipped
    for n in n_idx:
        near = sorted(dm[n, h_idx])[:4]
        assert np.allclose(near, NH4_NH, atol=1e-6)
    # the H keep farther from the O than the N-H length in any orientation
    assert dm[0, h_idx].min() > 1.5


def test_the_empty_host_relaxes_once_for_every_ion():
    """relaxed_cell caches by model, cell and settings: the second call is the first's result
    (a copy), with no new force call; other settings relax again."""
    from ase.calculators.emt import EMT as EMTCalc

    from ionscreen.screening.calculators import CalculatorFactory
    from ionscreen.screening.insertion import _RELAXED, relaxed_cell
    from ionscreen.structures.convert import to_atoms

    made = []

    def make():
        made.append(1)
        return EMTCalc()

    factory = CalculatorFactory(spec="emt", identity="EMT-cache-test", tier="test", _make=make)
    empty, _ = _cells()
    _RELAXED.clear()
    a = relaxed_cell(to_atoms(empty), factory, "empty host", steps=100)
    calls = len(made)
    b = relaxed_cell(to_atoms(empty), factory, "empty host", steps=100)
    assert len(made) == calls and a.energy == b.energy and a.atoms is not b.atoms
    assert np.allclose(a.atoms.positions, b.atoms.positions)
    relaxed_cell(to_atoms(empty), factory, "empty host", steps=100, fmax=0.02)
    assert len(made) > calls
