"""The committed slice of public DFT-NEB paths: it loads, its endpoints are one hop apart, and
the BVSE tier gives every path it has parameters for a finite barrier."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from dft_slice import slice_data, slice_paths

from ionscreen.errors import MissingParameterError
from ionscreen.screening.bvse import BVSESettings, compute_landscape, prepare_host

MULTIVALENT = {"Mg", "Ca", "Zn", "Al"}
# softBV has no usable Mg2+–Se2- row (alpha <= 0 in the source table), so the BVSE tier must
# refuse this selenide rather than invent a number
NO_BVSE_PARAMS = {"pmb-test-21"}
COARSE = BVSESettings(resolution=0.3)


@pytest.fixture(scope="module")
def paths() -> list[dict]:
    return slice_paths()


def test_slice_loads_with_provenance(paths):
    meta = slice_data()["meta"]
    assert meta["source_repo"] == "sai-mat-group/predicting-migration-barriers"
    assert meta["licence"] == "MIT" and meta["copyright"] in meta["licence_text"]
    assert any("2508.06459" in c for c in meta["citations"])
    assert len(meta["source_commit"]) == 40 and int(meta["source_commit"], 16) >= 0
    assert sum(p["ion"] in MULTIVALENT for p in paths) >= 6
    assert len({p["id"] for p in paths}) == len(paths)
    for p in paths:
        assert p["moving_index"] == 0 and str(p["initial"][0].specie) == p["ion"]
        assert 0.0 < p["dft_barrier"] < 5.0
        # the source formula counts the ion's 5 images: 4 more ion rows than the initial cell
        formula = Counter({t.rstrip("0123456789"): int(t[len(t.rstrip("0123456789")):])
                           for t in p["formula"].split()})
        formula[p["ion"]] -= 4
        assert Counter(str(s.specie) for s in p["initial"]) == +formula, p["id"]


def test_endpoints_differ_only_by_the_moving_ion(paths):
    for p in paths:
        ini, fin, k = p["initial"], p["final"], p["moving_index"]
        assert len(ini) == len(fin) and ini.lattice == fin.lattice
        assert [str(s.specie) for s in ini] == [str(s.specie) for s in fin]
        hop = ini.lattice.get_distance_and_image(ini[k].frac_coords, fin[k].frac_coords)[0]
        assert 1.5 <= hop <= 7.0, (p["id"], hop)
        others = np.delete(np.arange(len(ini)), k)
        assert np.array_equal(ini.frac_coords[others], fin.frac_coords[others]), p["id"]
        # the final site is empty in the initial cell: no atom within 1 Å of it
        dists = ini.lattice.get_all_distances(fin[k].frac_coords, ini.frac_coords[others])
        assert dists.min() > 1.0, (p["id"], float(dists.min()))


def _host(p: dict):
    host = p["initial"].copy()
    host.remove_sites([p["moving_index"]])
    return host


def test_bvse_gives_a_finite_barrier_for_each_path(paths):
    for p in paths:
        host = _host(p)
        if p["id"] in NO_BVSE_PARAMS:
            with pytest.raises(MissingParameterError):
                prepare_host(host, p["ion"], COARSE, oxidation_states=p["oxidation_states"])
            continue
        prepared = prepare_host(host, p["ion"], COARSE, oxidation_states=p["oxidation_states"])
        result = compute_landscape(prepared)
        barrier = result.barriers["1D"]
        assert math.isfinite(barrier) and 0.0 <= barrier < 5.0, (p["id"], result.barriers)
        assert result.barriers["1D"] <= result.barriers["2D"] <= result.barriers["3D"]


def test_stored_oxidation_states_are_needed_and_neutral(paths):
    """The stored states make the filled or the initial cell charge-neutral (how they were found)."""
    for p in paths:
        oxi = p["oxidation_states"]
        assert oxi is not None, p["id"]
        charge = sum(oxi[str(s.specie)] for s in p["initial"])
        filled = charge + oxi[p["ion"]]
        assert min(abs(charge), abs(filled)) < 1e-6, (p["id"], charge, filled)
