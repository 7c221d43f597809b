"""Bond-valence force field: kernel against the naive reference, the ASE calculator against
finite differences, energy conservation in NVE, invariances and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from naive import naive_bvff_energy, naive_bvff_forces, naive_bvff_stress
from test_kernels import CELLS, random_atoms

from ionscreen.errors import MissingParameterError, StructureValidationError
from ionscreen.kernels import bvff
from ionscreen.screening.calculators import (
    BVFFCalculator,
    BVFFModel,
    BVFFSpecies,
)
from ionscreen.structures.convert import to_atoms
from ionscreen.structures.prototypes import get_prototype

MORSE, COULOMB, NONE = bvff.MORSE, bvff.COULOMB, bvff.NONE


def random_ff(rng) -> tuple[np.ndarray, np.ndarray]:
    """Species 0, 1 cations, 2 anion: Morse cation–anion, Coulomb like charges, one pair off."""
    kind = np.array([[COULOMB, NONE, MORSE], [NONE, COULOMB, MORSE], [MORSE, MORSE, COULOMB]])
    params = np.zeros((3, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            if kind[a, b] == MORSE:
                p = (rng.uniform(0.5, 2.0), rng.uniform(1.5, 2.5), rng.uniform(1.8, 2.4))
            elif kind[a, b] == COULOMB:
                p = (rng.uniform(5.0, 30.0), rng.uniform(0.4, 0.8), 0.0)
            else:
                p = (0.0, 0.0, 0.0)
            params[a, b] = params[b, a] = p
    return kind, params


def random_case(name: str, seed: int):
    rng = np.random.default_rng(seed)
    cell = CELLS[name]
    n = int(np.clip(abs(np.linalg.det(cell)) / 25.0, 3, 6))
    frac = random_atoms(rng, cell, n, min_dist=1.4)
    pos = frac @ cell + rng.integers(-2, 3, (n, 3)) @ cell  # unwrapped on purpose
    species = rng.permutation(np.arange(n) % 3)
    kind, params = random_ff(rng)
    return cell, pos, species, kind, params, float(rng.uniform(4.0, 5.5))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_kernel_matches_naive_on_random_cells(name):
    cell, pos, sp, kind, params, rc = random_case(name, sorted(CELLS).index(name))
    e, f, s = bvff.energy_forces(pos, cell, sp, kind, params, rc)
    assert e == pytest.approx(naive_bvff_energy(cell, pos, sp, kind, params, rc), abs=1e-9, rel=1e-10)
    np.testing.assert_allclose(f, naive_bvff_forces(cell, pos, sp, kind, params, rc), atol=2e-6)
    np.testing.assert_allclose(s, naive_bvff_stress(cell, pos, sp, kind, params, rc), atol=2e-6)
    e0, *_ = bvff.energy_forces(pos, cell, sp, kind, params, rc, shifted=False)
    assert e0 == pytest.approx(naive_bvff_energy(cell, pos, sp, kind, params, rc, shifted=False), abs=1e-9)


def test_forces_sum_to_zero_and_energy_is_translation_invariant():
    cell, pos, sp, kind, params, rc = random_case("triclinic1", 5)
    e, f, _ = bvff.energy_forces(pos, cell, sp, kind, params, rc)
    np.testing.assert_allclose(f.sum(axis=0), 0.0, atol=1e-10)
    e2, f2, _ = bvff.energy_forces(pos + np.array([0.37, -1.2, 2.9]), cell, sp, kind, params, rc)
    assert e2 == pytest.approx(e, abs=1e-10)
    np.testing.assert_allclose(f2, f, atol=1e-10)


def test_supercell_energy_is_extensive():
    cell, pos, sp, kind, params, rc = random_case("acute", 3)
    e, f, s = bvff.energy_forces(pos, cell, sp, kind, params, rc)
    big = np.vstack([pos, pos + cell[0]])
    e2, f2, s2 = bvff.energy_forces(big, cell * np.array([[2], [1], [1]]), np.tile(sp, 2), kind, params, rc)
    assert e2 == pytest.approx(2 * e, abs=1e-9)
    np.testing.assert_allclose(f2[: len(pos)], f, atol=1e-10)
    np.testing.assert_allclose(s2, s, atol=1e-10)


def test_energy_is_continuous_at_the_cutoff():
    cell = np.diag([30.0, 30.0, 30.0])
    kind = np.array([[NONE, MORSE], [MORSE, NONE]])
    params = np.zeros((2, 2, 3))
    params[0, 1] = params[1, 0] = (1.0, 2.0, 2.0)
    rc = 5.0
    es = [bvff.energy_forces(np.array([[0, 0, 0], [rc + d, 0, 0]]), cell, np.array([0, 1]), kind, params, rc)[0]
          for d in (-1e-9, 1e-9)]
    assert abs(es[0] - es[1]) < 1e-9


# ---------------------------------------------------------------------------- real hosts


@pytest.fixture(scope="module")
def lifepo4_atoms():
    s = get_prototype("LiFePO4").build(with_ion="Li")
    atoms = to_atoms(s, charges=True, mobile=[i for i, x in enumerate(s) if x.specie.symbol == "Li"])
    atoms.calc = BVFFCalculator.from_model(BVFFModel.from_atoms(atoms, "Li"))
    return atoms


def test_real_host_matches_naive(lifepo4_atoms):
    atoms = lifepo4_atoms.copy()
    calc = lifepo4_atoms.calc
    atoms.calc = calc
    rng = np.random.default_rng(0)
    atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    m = calc.model
    sp = m.species_indices(atoms)
    e = atoms.get_potential_energy()
    assert e == pytest.approx(naive_bvff_energy(atoms.cell.array, atoms.positions, sp, m.kind, m.params, m.cutoff), abs=1e-8)
    # forces on a few atoms against finite differences through the ASE interface
    num = calculate_numerical_forces(atoms, eps=1e-4)
    np.testing.assert_allclose(atoms.get_forces(), num, atol=1e-5)
    np.testing.assert_allclose(atoms.get_stress(), calculate_numerical_stress(atoms, eps=1e-5), atol=1e-5)


def test_nve_conserves_energy(lifepo4_atoms):
    """Velocity Verlet, 1 fs, 300 steps from 600 K: total energy stays put while the kinetic
    energy swings; wrong forces (a sign, a missed image) would make it drift by eV."""
    atoms = lifepo4_atoms.copy()
    atoms.calc = lifepo4_atoms.calc
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(1))
    dyn = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    etot, ekin = [], []
    for _ in range(30):
        dyn.run(10)
        etot.append(atoms.get_total_energy())
        ekin.append(atoms.get_kinetic_energy())
    etot, ekin = np.array(etot), np.array(ekin)
    assert np.ptp(ekin) > 0.2  # the test has something to conserve
    assert np.ptp(etot) < 0.02 * np.ptp(ekin)
    assert np.ptp(etot) < 5e-3 * len(atoms)


def test_species_are_told_apart_by_charge_and_tag(lifepo4_atoms):
    m = lifepo4_atoms.calc.model
    labels = [s.label for s in m.species]
    assert labels == ["Fe2+", "O2-", "P5+", "Li+ (mobile)"]
    li = next(i for i, s in enumerate(m.species) if s.mobile)
    o = next(i for i, s in enumerate(m.species) if s.symbol == "O")
    fe = next(i for i, s in enumerate(m.species) if s.symbol == "Fe")
    assert m.kind[li, o] == MORSE and m.kind[fe, li] == COULOMB and m.kind[o, o] == COULOMB
    atoms = lifepo4_atoms.copy()
    atoms.set_tags(0)  # Li not tagged mobile: no such species in this model
    with pytest.raises(StructureValidationError, match="not a species of this BVFF model"):
        m.species_indices(atoms)


def test_host_with_bvff_radii_stays_close_to_experiment():
    """softBV radii give the anion–anion repulsion that holds a host together: relaxing the
    MgCr2O4 spinel moves no atom by more than 0.05 Å."""
    from ase.optimize import FIRE

    s = get_prototype("MgCr2O4").build()
    atoms = to_atoms(s, charges=True, mobile=[i for i, x in enumerate(s) if x.specie.symbol == "Mg"])
    atoms.calc = BVFFCalculator.from_model(BVFFModel.from_atoms(atoms, "Mg"))
    p0 = atoms.positions.copy()
    FIRE(atoms, logfile=None).run(fmax=0.01, steps=500)
    assert np.linalg.norm(atoms.positions - p0, axis=1).max() < 0.05


def test_missing_pair_is_a_clear_error():
    with pytest.raises(MissingParameterError, match="Ca2\\+–N3-|Ca2\\+"):
        BVFFModel.build([BVFFSpecies("Ca", 2, True), BVFFSpecies("N", -3, False)], "Ca")


def test_non_periodic_atoms_are_refused(lifepo4_atoms):
    atoms = lifepo4_atoms.copy()
    atoms.pbc = False
    atoms.calc = BVFFCalculator.from_model(lifepo4_atoms.calc.model)
    with pytest.raises(StructureValidationError, match="periodic"):
        atoms.get_potential_energy()


def test_wrapper_validates_inputs():
    cell = np.eye(3) * 5
    kind = np.array([[MORSE]])
    params = np.ones((1, 1, 3))
    with pytest.raises(ValueError, match="species"):
        bvff.energy_forces(np.zeros((2, 3)), cell, np.array([0, 1]), kind, params, 4.0)
    with pytest.raises(ValueError, match="symmetric"):
        bvff.energy_forces(np.zeros((1, 3)), cell, np.array([0]), np.array([[1, 2], [0, 1]]), np.ones((2, 2, 3)), 4.0)
    with pytest.raises(ValueError, match="cell"):
        bvff.energy_forces(np.zeros((1, 3)), np.zeros((3, 3)), np.array([0]), kind, params, 4.0)


def test_calculator_reports_only_what_it_implements():
    atoms = Atoms("Li", cell=[5, 5, 5], pbc=True)
    assert "magmom" not in BVFFCalculator.implemented_properties
    atoms.set_initial_charges([1.0])
    atoms.set_tags([1])
    with pytest.raises(PropertyNotImplementedError):
        m = BVFFModel.build([BVFFSpecies("Li", 1, True)], "Li")
        atoms.calc = BVFFCalculator.from_model(m)
        atoms.calc.get_property("magmom", atoms)


def test_bvff_neb_refuses_a_host_without_rows_once_and_keeps_neutral_atoms_fixed():
    """A missing framework row stops the whole NEB with one reason naming it and the way out;
    neutral atoms get no BVFF terms, so a host with them is kept fixed and the result says so."""
    from pymatgen.core import Lattice, Structure

    from ionscreen.errors import MissingParameterError
    from ionscreen.screening.neb import NEBSettings, run_neb
    from ionscreen.structures.prototypes import get_prototype, host_for_ion

    pba, _ = host_for_ion(get_prototype("PBA-MnCr"), "Mg")
    with pytest.raises(MissingParameterError, match=r"BVFF NEB not possible.*C2\+–N3-.*chgnet"):
        run_neb(pba, "Mg", "bvff", settings=NEBSettings(images=3, steps=20))

    li3n = Structure.from_spacegroup("P6/mmm", Lattice.hexagonal(3.648, 3.875), ["Li", "Li", "N"],
                                     [[0, 0, 0.5], [1 / 3, 2 / 3, 0], [0, 0, 0]])
    li3n.add_oxidation_state_by_element({"Li": 1, "N": -3})
    with_c = li3n.copy()
    with_c.append("C", [0.5, 0.5, 0.5])  # a neutral atom: no BVFF (or BVSE) terms
    with_c.add_oxidation_state_by_element({"Li": 1, "N": -3, "C": 0})
    settings = NEBSettings(images=3, steps=60, fmax=0.2, fmax_pre=0.3)
    model = BVFFModel.from_atoms(to_atoms(with_c, charges=True), "Mg")
    assert model.neutral == ["C0"]
    rep = run_neb(with_c, "Mg", "bvff", settings=settings)
    assert rep.hops and all(not h.settings["relax_host"] for h in rep.hops)
    assert all(h.warnings[0].startswith("host kept fixed") for h in rep.hops)
    assert "neutral C0" in rep.note
    plain = run_neb(li3n, "Mg", "bvff", settings=settings)
    # without neutral atoms the host relaxes: a hop is fixed only by the divergence fallback
    # (since hops through a non-minimum site are merged, Li3N's merged hop diverges and falls back)
    assert all(h.settings["relax_host"] or h.settings.get("fallback_from_relaxed_host")
               for h in plain.hops) and "kept fixed" not in plain.note
    assert not any(w.startswith("host kept fixed") for h in plain.hops for w in h.warnings)


# ---------------------------------------------------------------------------- ASE parameters


def test_calculator_takes_parameters_and_builds_its_model_from_the_atoms(lifepo4_atoms):
    """``BVFFCalculator(ion=...)`` builds the model lazily and gives the numbers of a model
    built by hand; ``todict()`` names the force field, so a trajectory can say what made it."""
    atoms = lifepo4_atoms.copy()
    atoms.calc = BVFFCalculator(ion="Li")
    assert atoms.calc.model is None
    e = atoms.get_potential_energy()
    assert e == pytest.approx(lifepo4_atoms.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), lifepo4_atoms.get_stress(), atol=1e-12)
    assert atoms.calc.todict() == {"ion": "Li"}
    assert atoms.calc.todict(skip_default=False) == {
        "ion": "Li", "cutoff": 7.0, "screening_factor": 0.74, "radii": "softbv", "derive_nitride": False}
    assert BVFFCalculator.from_model(lifepo4_atoms.calc.model).todict() == {"ion": "Li"}
    assert BVFFCalculator(ion="Mg", cutoff=6.0).todict() == {"ion": "Mg", "cutoff": 6.0}


def test_model_is_rebuilt_when_species_or_parameters_change(lifepo4_atoms):
    atoms = lifepo4_atoms.copy()
    calc = BVFFCalculator(ion="Li")
    atoms.calc = calc
    atoms.get_potential_energy()
    first = calc.model
    atoms.positions[0] += 0.01
    atoms.get_potential_energy()
    assert calc.model is first  # positions only: same model
    atoms.set_tags(0)  # no mobile Li any more: the Li+ atoms are framework ions now
    e_untagged = atoms.get_potential_energy()
    assert calc.model is not first and "Li+" in [s.label for s in calc.model.species]
    assert np.isfinite(e_untagged)
    second = calc.model
    calc.set(cutoff=6.0)
    atoms.get_potential_energy()
    assert calc.model is not second and calc.model.cutoff == 6.0


def test_a_given_model_is_kept_and_refuses_unknown_species(lifepo4_atoms):
    atoms = lifepo4_atoms.copy()
    atoms.calc = BVFFCalculator.from_model(lifepo4_atoms.calc.model)
    atoms.set_tags(0)
    with pytest.raises(StructureValidationError, match="not a species of this BVFF model"):
        atoms.get_potential_energy()


def test_calculator_needs_the_ion():
    from ionscreen.errors import IonscreenError

    atoms = Atoms("Li", cell=[5, 5, 5], pbc=True)
    atoms.calc = BVFFCalculator()
    with pytest.raises(IonscreenError, match="needs the working ion"):
        atoms.get_potential_energy()


def test_neutral_delegates_to_the_model(lifepo4_atoms):
    """The issue's defect 1: ``BVFFCalculator.neutral`` read a missing attribute and raised."""
    from pymatgen.core import Lattice, Structure

    from ionscreen.errors import IonscreenError

    assert BVFFCalculator.from_model(lifepo4_atoms.calc.model).neutral == []
    with pytest.raises(IonscreenError, match="no model yet"):
        _ = BVFFCalculator(ion="Mg").neutral
    s = Structure(Lattice.cubic(6.0), ["Li", "N", "C"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]])
    s.add_oxidation_state_by_element({"Li": 1, "N": -3, "C": 0})
    atoms = to_atoms(s, charges=True)
    atoms.calc = BVFFCalculator(ion="Mg")
    atoms.get_potential_energy()
    assert atoms.calc.neutral == ["C0"] == atoms.calc.model.neutral
