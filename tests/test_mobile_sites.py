"""Which sites are mobile (issue 16.3): by default every site of the working ion; with
``--mobile-sites`` only those named (label, Wyckoff position or index), the others stay in the
framework for the BVSE, the NEB, the capacity and the voltage. The file is Dans_Diffraction's
NaCoO2 stripe supercell, not written here: its CIF labels Na1 (6 sites) and Na2 (18) do not
follow the orbits of its own space group (Na on 2c: 8 sites, on 4g: 16), so a label and a
Wyckoff position select different sets."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ionscreen.errors import StructureValidationError
from ionscreen.structures.candidates import from_file
from ionscreen.structures.ions import get_working_ion


def _stripe() -> Path:
    spec = importlib.util.find_spec("Dans_Diffraction")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "Structures" / "NaCoO2_stripe_supercell.cif"


def _na_sites(cand) -> tuple[int, int]:
    """(mobile, fixed) Na sites of a candidate."""
    st = cand.structure
    mobile = len(get_working_ion("Na").mobile_sites(st))
    return mobile, int(st.composition["Na"]) - mobile


def test_every_site_of_the_ion_is_mobile_by_default_and_the_user_can_choose():
    path = _stripe()
    everything = from_file(path, "Na")
    n_na = int(everything.structure.composition["Na"])
    assert _na_sites(everything) == (n_na, 0) and "mobile_sites" not in everything.provenance
    by_label = from_file(path, "Na", mobile="Na2")
    by_wyckoff = from_file(path, "Na", mobile="4g")
    mob, fixed = _na_sites(by_label)
    assert (mob, fixed) == (18, 6) and n_na == 24
    assert _na_sites(by_wyckoff) == (16, 8)
    assert by_label.provenance["mobile_sites"]["mobile_sites"] == ["Na2 (2c)", "Na2 (4g)"]
    assert by_label.provenance["mobile_sites"]["fixed_sites"] == ["Na1 (2c)", "Na1 (4g)"]
    assert _na_sites(from_file(path, "Na", mobile="Na2, 2c")) == (20, 4)  # a union
    # the capacity counts the mobile ions only; another selection is another candidate
    assert by_label.electrons == pytest.approx(mob) and everything.electrons == pytest.approx(n_na)
    assert len({by_label.id, by_wyckoff.id, everything.id}) == 3
    # the fixed Na stay in the empty host
    empty = get_working_ion("Na").remove_from(by_label.structure)
    assert int(empty.composition["Na"]) == fixed
    first = get_working_ion("Na").mobile_sites(everything.structure)[0]
    assert _na_sites(from_file(path, "Na", mobile=str(first)))[0] == 1
    with pytest.raises(StructureValidationError, match=r"'Na9' matches no Na\+ site.*Na1 \(2c\)"):
        from_file(path, "Na", mobile="Na9")


def test_the_option_reaches_the_candidates_of_the_cli(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ionscreen.workflows", "candidates", "--hosts",
                        "none", "--files", str(_stripe()), "--ions", "Na", "--mobile-sites",
                        "Na2", "--out", "cands"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]
    r = subprocess.run([sys.executable, "-m", "ionscreen.workflows", "candidates", "--hosts",
                        "none", "--files", str(_stripe()), "--ions", "Na", "--mobile-sites",
                        "Na7", "--out", "cands2"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    text = " ".join((r.stdout + r.stderr).replace("│", " ").split())  # the table folds lines
    assert "0 candidates" in text and "'Na7' matches no Na+ site" in text and "Na1 (2c)" in text
