"""The BVSE driver: physics on real hosts, result objects, and clear errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from ionscreen.errors import (
    GridMemoryError,
    IonscreenError,
    MissingParameterError,
    OxidationStateError,
    StructureValidationError,
    UnsupportedIonError,
)
from ionscreen.screening.bvse import (
    BVSEResult,
    BVSESettings,
    Hop,
    PreparedHost,
    Site,
    compute_landscape,
    prepare_host,
)
from ionscreen.structures.prototypes import get_prototype

COARSE = BVSESettings(resolution=0.25)


@pytest.fixture(scope="module")
def lfp() -> Structure:
    return get_prototype("LiFePO4").build(with_ion="native")


@pytest.fixture(scope="module")
def spinel() -> Structure:
    return get_prototype("MgCr2O4").build(with_ion="native")


@pytest.fixture(scope="module")
def lfp_result(lfp) -> BVSEResult:
    return compute_landscape(lfp, "Li", settings=BVSESettings(resolution=0.15))


def _frac_dist(structure: Structure, a, b) -> float:
    d = (np.asarray(a) - np.asarray(b) + 0.5) % 1.0 - 0.5
    return float(np.linalg.norm(d @ structure.lattice.matrix))


def test_olivine_li_is_one_dimensional(lfp_result):
    b = lfp_result.barriers
    # Li in LiFePO4 moves along b; BVSE (bvlain convention) gives 0.44–0.48 eV, the other
    # directions only open above ~3.5 eV (../shared/notes/bvse.md)
    assert 0.38 < b["1D"] < 0.52
    assert b["2D"] > 3.0 and b["3D"] >= b["2D"]
    assert lfp_result.dimensionality == 3  # encut 5 eV: all three appear, 1D far below the rest
    assert "BVSE" in lfp_result.method


def test_olivine_lowest_sites_are_the_li_sites(lfp, lfp_result):
    li = [s.frac_coords for s in lfp if s.specie.symbol == "Li"]
    low = [s for s in lfp_result.sites if s.energy < 1e-6]
    assert len(low) == 4
    for s in low:
        assert min(_frac_dist(lfp, s.frac, x) for x in li) < 0.2
    assert all(s.multiplicity == 4 for s in low)


def test_olivine_rate_limiting_hop_runs_along_b(lfp, lfp_result):
    one_d = [h for h in lfp_result.hops if h.percolation == "1D"]
    assert one_d
    worst = max(h.barrier for h in one_d)
    assert abs(worst - lfp_result.barriers["1D"]) < 0.03  # refined saddle vs grid threshold
    # the 1D path advances along b: the hops' net displacement is along the b axis
    b_axis = lfp.lattice.matrix[1] / np.linalg.norm(lfp.lattice.matrix[1])
    for h in one_d:
        path = np.array(h.path_frac)
        step = (path[-1] - path[0]) @ lfp.lattice.matrix
        assert abs(step @ b_axis) > 0.8 * np.linalg.norm(step)
        assert h.length < 4.0
        assert h.path_energy[0] == pytest.approx(lfp_result.sites[h.site_i].energy_grid, abs=0.05)
        assert max(h.path_energy) == pytest.approx(h.saddle_energy, abs=0.05)


def test_spinel_mg_is_three_dimensional(spinel):
    r = compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=0.2))
    e = r.barriers
    # bvlain: 0.606 (0.2 Å) and 0.625 (0.1 Å), equal in 1D/2D/3D
    assert 0.55 < e["1D"] < 0.68
    assert e["1D"] == pytest.approx(e["3D"], abs=1e-9)
    mg = [s.frac_coords for s in spinel if s.specie.symbol == "Mg"]
    low = [s for s in r.sites if s.energy < 1e-6]
    assert len(low) == 8  # tetrahedral 8a
    assert all(min(_frac_dist(spinel, s.frac, x) for x in mg) < 0.2 for s in low)
    # 8a -> 16c -> 8a: one distinct hop, 1.80 Å = a·√3/8
    assert len(r.distinct_hops) == 1
    assert r.distinct_hops[0].length == pytest.approx(8.333 * math.sqrt(3) / 8, abs=0.05)
    assert sum(s.multiplicity for s in r.distinct_sites) == len(r.sites)


def test_exact_and_table_modes_agree(spinel):
    a = compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=0.3, mode="exact"))
    b = compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=0.3, mode="table"))
    assert np.abs(a.energy - b.energy)[a.energy < a.energy_min + 5].max() < 2e-3
    for d in ("1D", "2D", "3D"):
        assert a.barriers[d] == pytest.approx(b.barriers[d], abs=2e-3)


def test_hop_graph_percolates_at_the_grid_thresholds(lfp_result):
    """The highest grid saddle among the hops of each percolating cluster is that threshold.

    Symmetry-equivalent channels share a label, and the grid samples them a few meV apart.
    """
    lowest = {s.index: s.energy_grid for s in lfp_result.sites}
    dims = ("1D", "2D", "3D")
    for k, d in enumerate(dims):
        used = [h for h in lfp_result.hops if h.percolation in dims[: k + 1]]
        saddle = max(h.barrier_grid + min(lowest[h.site_i], lowest[h.site_j]) for h in used)
        assert saddle == pytest.approx(lfp_result.barriers[d], abs=0.02)


def test_spse_convention_differs_and_is_labelled(spinel):
    a = compute_landscape(spinel, "Mg", settings=COARSE)
    b = compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=0.25, convention="spse"))
    assert "spse" in b.method and "bvlain" in a.method
    assert b.parameters["charge_scale"] != pytest.approx(1.0)
    assert not np.allclose(a.energy, b.energy)


def test_json_round_trip_and_cube(tmp_path, spinel):
    r = compute_landscape(spinel, "Mg", settings=COARSE)
    text = r.to_json(tmp_path / "r.json")
    doc = json.loads(text)
    assert doc["ion"] == "Mg2+" and doc["method"].startswith("BVSE")
    assert set(doc["barriers"]) == {"1D", "2D", "3D"}
    back = BVSEResult.from_dict(doc)
    assert back.barriers == r.barriers
    assert len(back.hops) == len(r.hops) and back.sites[0] == r.sites[0]
    r.write_cube(tmp_path / "r.cube")
    from ase.io.cube import read_cube_data

    data, atoms = read_cube_data(str(tmp_path / "r.cube"))
    assert data.shape == tuple(r.grid_shape)
    assert len(atoms) == len(spinel)
    assert data.min() == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="no grid"):
        back.write_cube(tmp_path / "x.cube")


def _comparable(r: BVSEResult) -> dict:
    d = r.to_dict()
    d.pop("timings")
    return d


def test_prepared_host_gives_the_same_result_as_the_structure(spinel):
    host = prepare_host(spinel, "Mg", COARSE)
    assert isinstance(host, PreparedHost) and host.ion.name == "Mg"
    from_structure = compute_landscape(spinel, "Mg", settings=COARSE)
    from_host = compute_landscape(host, settings=COARSE)
    assert _comparable(from_host) == _comparable(from_structure)
    assert np.array_equal(from_host.energy, from_structure.energy)
    # grid-only settings may differ from the preparation's
    again = compute_landscape(host, "Mg", settings=BVSESettings(resolution=0.3, encut=3.0))
    assert again.settings.resolution == 0.3


@pytest.mark.parametrize("field,value", [("radii", "softbv"), ("convention", "spse"),
                                         ("screening_factor", 0.8), ("derive_nitride", True)])
def test_prepared_host_refuses_other_model_settings(spinel, field, value):
    host = prepare_host(spinel, "Mg", COARSE)
    other = BVSESettings(resolution=0.25, **{field: value})
    with pytest.raises(ValueError, match=field):
        compute_landscape(host, settings=other)


def test_prepared_host_refuses_another_ion_or_preparation_inputs(spinel):
    host = prepare_host(spinel, "Mg", COARSE)
    with pytest.raises(ValueError, match="Zn2\\+"):
        compute_landscape(host, "Zn", settings=COARSE)
    with pytest.raises(ValueError, match="prepare_host"):
        compute_landscape(host, settings=COARSE, oxidation_states={"Mg": 2})
    with pytest.raises(ValueError, match="working ion"):
        compute_landscape(spinel, settings=COARSE)


def test_hop_structures_follow_the_grid_path(lfp, lfp_result):
    host = prepare_host(lfp, "Li", BVSESettings(resolution=0.15))
    fw = host.framework
    hop = next(h for h in lfp_result.distinct_hops if h.percolation == "1D")
    images = hop.get_structures(fw, 7, species="Li+")
    assert len(images) == 7
    assert all(len(s) == len(fw) + 1 and s[-1].species_string == "Li+" for s in images)
    assert all(s.lattice == fw.lattice for s in images)
    ion = [s[-1].frac_coords for s in images]
    # first and last image: the ion on the hop's two sites (the grid minima, within a grid step)
    step = max(lfp_result.grid_step) * np.sqrt(3)
    site_i, site_j = lfp_result.sites[hop.site_i], lfp_result.sites[hop.site_j]
    assert _frac_dist(fw, ion[0], hop.path_frac[0]) < 1e-6
    assert _frac_dist(fw, ion[-1], hop.path_frac[-1]) < 1e-6
    assert _frac_dist(fw, ion[0], site_i.frac) < step
    assert _frac_dist(fw, ion[-1], site_j.frac) < step
    # continuous: equal steps along the path, none longer than the path's length / 6
    path = np.array(hop.path_frac) @ fw.lattice.matrix
    arc = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    steps = [_frac_dist(fw, a, b) for a, b in zip(ion, ion[1:])]
    assert max(steps) <= arc / 6 + 1e-9 and min(steps) > 0
    assert hop.length <= arc + 1e-6
    # from the prepared host: its framework and its ion
    same = hop.get_structures(host, 7)
    assert [s.as_dict() for s in same] == [s.as_dict() for s in images]
    with pytest.raises(ValueError, match="species"):
        hop.get_structures(fw, 5)
    with pytest.raises(ValueError, match="nimages"):
        hop.get_structures(fw, 1, species="Li+")


def test_serialisation_in_pymatgens_manner(spinel):
    from monty.json import MontyDecoder, MontyEncoder

    r = compute_landscape(spinel, "Mg", settings=COARSE)
    assert isinstance(r.settings, BVSESettings)
    doc = r.as_dict()
    assert doc == r.to_dict()  # the old name, for one release
    assert doc["settings"] == dataclasses.asdict(COARSE) and "@class" not in doc
    assert all(isinstance(s, dict) for s in doc["sites"] + doc["hops"])
    stored = json.loads(json.dumps(doc))
    back = BVSEResult.from_dict(stored)
    assert back.settings == r.settings and back.hops == r.hops and back.sites == r.sites
    assert json.loads(json.dumps(back.as_dict())) == stored
    # monty's encoder tags the classes and its decoder rebuilds them
    text = json.dumps(r, cls=MontyEncoder)
    again = json.loads(text, cls=MontyDecoder)
    assert isinstance(again, BVSEResult) and again.barriers == r.barriers
    assert json.loads(json.dumps(again.as_dict())) == stored
    hop = r.hops[0]
    assert Hop.from_dict(hop.as_dict()) == hop and Site.from_dict(r.sites[0].as_dict()) == r.sites[0]
    assert BVSESettings.from_dict(json.loads(COARSE.to_json())) == COARSE


def test_nh4_is_flagged_approximate(spinel):
    r = compute_landscape(spinel, "NH4", settings=BVSESettings(resolution=0.3))
    assert r.approximate and r.ion == "NH4+"
    assert any("approximate" in w for w in r.warnings)
    assert "K+" in r.model


def test_infinite_barrier_serialises_as_null(spinel):
    r = compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=0.3, encut=0.2))
    assert r.barriers["1D"] == math.inf
    doc = json.loads(r.to_json())
    assert doc["barriers"]["1D"] is None
    assert r.dimensionality == 0


# ---------------------------------------------------------------------- bad input


def _rocksalt(a: float = 4.2, species=("Mg", "O")) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), list(species), [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_missing_pair_names_the_pair():
    # Ca2+ has no N3- row in the softBV table
    st = Structure(Lattice.cubic(5.0), ["Mg", "Mg", "Mg", "N", "N"],
                   [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0.25, 0.25, 0.25], [0.75, 0.75, 0.75]])
    with pytest.raises(MissingParameterError, match=r"Ca2\+.N3-"):
        compute_landscape(st, "Ca", settings=COARSE, oxidation_states={"Mg": 2, "N": -3})


def test_rejected_pair_is_refused_not_used():
    st = Structure(Lattice.cubic(5.6), ["Zn", "Se"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    with pytest.raises(MissingParameterError, match="alpha"):
        compute_landscape(st, "Mg", settings=COARSE, oxidation_states={"Zn": 2, "Se": -2})


def test_oxidation_states_that_cannot_be_guessed():
    st = Structure(Lattice.cubic(3.0), ["Fe", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(OxidationStateError, match="--oxi"):
        compute_landscape(st, "Mg", settings=COARSE)


def test_partial_occupancy_is_refused():
    st = Structure(Lattice.cubic(4.2), [{"Mg": 0.5, "Ca": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(StructureValidationError, match="(?i)partial|disorder"):
        compute_landscape(st, "Mg", settings=COARSE, oxidation_states={"Mg": 2, "Ca": 2, "O": -2})


def test_atoms_too_close_are_refused():
    st = Structure(Lattice.cubic(4.0), ["Mg", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.55, 0.5, 0.5]])
    with pytest.raises(StructureValidationError, match="close"):
        compute_landscape(st, "Mg", settings=COARSE, oxidation_states={"Mg": 2, "O": -1})


def test_host_without_anion_is_refused():
    st = Structure(Lattice.cubic(3.0), ["Fe", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(StructureValidationError, match="anion"):
        compute_landscape(st, "Mg", settings=COARSE, oxidation_states={"Fe": 0, "Al": 0})


def test_grid_too_large_is_refused_before_allocating(spinel):
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(GridMemoryError, match="coarser resolution"):
        compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=0.006))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 2**20  # the refusal comes from the estimate, not from a failed allocation


def test_unknown_ion_lists_the_supported_ones(spinel):
    with pytest.raises(UnsupportedIonError, match="Mg"):
        compute_landscape(spinel, "Xx", settings=COARSE)


def test_bad_settings_say_what_to_change(spinel):
    with pytest.raises(ValueError, match="resolution"):
        compute_landscape(spinel, "Mg", settings=BVSESettings(resolution=-1))


def test_every_user_error_is_an_ionscreen_error():
    for exc in (GridMemoryError, MissingParameterError, OxidationStateError, StructureValidationError,
                UnsupportedIonError):
        assert issubclass(exc, IonscreenError)
