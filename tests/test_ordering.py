"""Disordered hosts (issue 16.2): ``--order N`` screens the N lowest-Ewald orderings of a file
with partial occupancy in the smallest supercell that makes the occupancies whole; each row
says which ordering it is; a file whose supercell exceeds the limit fails with the numbers.
Na0.8CoO2 is Dans_Diffraction's own CIF (not written here); the Li/Fe antisite olivines are
the built-in LiFePO4 with its occupancies changed."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.io.cif import CifWriter

from ionscreen.errors import StructureValidationError
from ionscreen.structures.io import read_structure
from ionscreen.structures.ordering import count_orderings, order_structure, supercell_multiple
from ionscreen.structures.prototypes import get_prototype


def _na08() -> Path:
    spec = importlib.util.find_spec("Dans_Diffraction")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "Structures" / "Na0.8CoO2_P63mmc.cif"


def _antisite_olivine(x: float):
    """LiFePO4 with a fraction x of Li and Fe swapped on both sites (charge stays balanced)."""
    s = get_prototype("LiFePO4").build(with_ion="Li")
    s.remove_oxidation_states()
    for i, site in enumerate(s):
        el = site.specie.symbol
        if el in ("Li", "Fe"):
            other = "Fe" if el == "Li" else "Li"
            s.replace(i, {el: round(1 - x, 4), other: x})
    return s


def test_na08coo2_is_ordered_in_the_smallest_supercell():
    """0.2 and 0.6 Na on two pairs of sites: 5 cells make them whole (2 and 6 Na on 10 sites
    each), C(10,2) x C(10,6) orderings; the 3 kept are distinct, ordered, lowest Ewald first."""
    s = read_structure(_na08())
    assert not s.is_ordered
    assert supercell_multiple(s) == 5 and count_orderings(s, 5) == 45 * 210
    got = order_structure(s, 3)
    assert [o.index for o in got] == [1, 2, 3] and {o.kept for o in got} == {3}
    assert all(o.structure.is_ordered and o.multiple == 5 for o in got)
    assert {o.structure.composition.formula for o in got} == {"Na8 Co10 O20"}
    energies = [o.ewald_eV for o in got]
    assert energies == sorted(energies)
    sm = StructureMatcher()
    assert not any(sm.fit(a.structure, b.structure) for i, a in enumerate(got) for b in got[i + 1:])
    with pytest.raises(StructureValidationError,
                       match=r"5-cell supercell of 50 sites, above the limit of 30.*--order-max-atoms 50"):
        order_structure(s, 3, max_atoms=30)


def test_an_ordered_structure_is_its_own_single_ordering():
    s = get_prototype("LiFePO4").build(with_ion="Li")
    (only,) = order_structure(s, 3)
    assert (only.index, only.kept, only.total, only.multiple) == (1, 1, 1, 1)


@pytest.mark.slow
def test_screen_with_order_flags_every_ordering_and_refuses_a_too_large_one(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    shutil.copyfile(_na08(), files / "Na0.8CoO2_P63mmc.cif")
    CifWriter(_antisite_olivine(0.1)).write_file(files / "olivine_antisite10.cif")
    CifWriter(_antisite_olivine(0.03)).write_file(files / "olivine_antisite3.cif")  # 25 cells
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ionscreen.workflows", "screen", "--hosts", "none",
                        "--files", "files", "--ions", "Na", "--order", "3", "--neb-top", "0",
                        "--out", "run"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    rows = list(csv.DictReader((tmp_path / "run" / "ranked_Na.csv").open()))
    for name in ("Na0.8CoO2_P63mmc.cif", "olivine_antisite10.cif"):
        mine = [row for row in rows if name in row["source"]]
        assert sorted(row["source"].rsplit(" ", 1)[-1] for row in mine) == ["1/3", "2/3", "3/3"], mine
        assert all("ordered" in row["flags"].split(";") for row in mine), mine
        assert all("ordering" in row["notes"] and "Ewald" in row["notes"] for row in mine)
    fails = list(csv.DictReader((tmp_path / "run" / "failures.csv").open()))
    too_big = [f for f in fails if "olivine_antisite3" in f["source"]]
    assert len(too_big) == 1, fails
    assert "25-cell supercell of 700 sites, above the limit of 160" in too_big[0]["reason"]


def test_rounded_occupancies_count_as_their_fractions():
    """CIFs round 1/3 to 0.33 or 0.333: three such sites hold one atom in one cell; 0.03 is
    taken as it is (a 25-cell supercell for 4 sites)."""
    from pymatgen.core import Lattice, Structure

    for occ in (0.33, 0.333, 1 / 3):
        s = Structure(Lattice.cubic(6), [{"Li": occ}] * 3 + ["O"],
                      [[0, 0, 0], [1 / 3, 0, 0], [2 / 3, 0, 0], [0.5, 0.5, 0.5]])
        assert supercell_multiple(s) == 1 and count_orderings(s, 1) == 3
    assert supercell_multiple(_antisite_olivine(0.03)) == 25
