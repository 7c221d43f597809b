"""A screen of real structure files as a new user would run it (issue 14): the built-in hosts and
a folder of real CIFs shipped as package data by Dans_Diffraction (ZnO, LiCoO2, Na0.8CoO2,
ruby...), pyxtal (MgSiO3 akimotoite, NbO2, BaTiO3, MgPb2WO6...) and ASE (COD minerals). None is
written for the test; many are metals or odd files that must fail with a reason."""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

#: inorganic pyxtal files (its folder also holds molecular crystals, which are no hosts)
PYXTAL = ("R-3", "NbO2", "BTO", "BTO-Amm2", "MPWO", "PPO", "PVO", "Al2SiO5_mp-4753_symmetrized",
          "GeF2", "NaSb3F10", "NaCl", "lt_quartz", "NiS-Cm", "ht_KNbBO", "lt_KNbBO")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # located, not imported
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(list(spec.submodule_search_locations)[0])


def real_cifs(dest: Path) -> list[Path]:
    """Copy the real CIFs into ``dest``; returns the copies."""
    dest.mkdir(parents=True, exist_ok=True)
    sources = [*sorted((_package_dir("Dans_Diffraction") / "Structures").glob("*.cif")),
               *sorted((_package_dir("ase") / "test" / "testdata" / "minerals").glob("*.cif")),
               *[_package_dir("pyxtal") / "database" / "cifs" / f"{n}.cif" for n in PYXTAL]]
    out = []
    for p in sources:
        q = dest / (f"pyxtal_{p.name}" if p.parent.name == "cifs" else p.name)
        shutil.copyfile(p, q)
        out.append(q)
    return out


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("real")
    files = real_cifs(d / "files")
    assert len(files) >= 20
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ionscreen.workflows", "screen", "--files", "files",
                        "--ions", "Mg", "Zn", "--workers", "2", "--out", "run"],
                       cwd=d, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    return d / "run"


def _rows(run: Path, ion: str) -> list[dict[str, str]]:
    return list(csv.DictReader((run / f"ranked_{ion}.csv").open()))


def test_no_capacity_where_no_redox(real_run):
    """ZnO holds Zn that cannot leave (nothing to oxidise) and takes no Zn either; MgSiO3 the same
    for Mg: no capacity, not ranked."""
    zn = {r["source"].rsplit("/", 1)[-1]: r for r in _rows(real_run, "Zn")}
    mg = {r["source"].rsplit("/", 1)[-1]: r for r in _rows(real_run, "Mg")}
    for row in (zn["ZnO.cif"], mg["pyxtal_R-3.cif"]):
        assert float(row["capacity_mAh_g"]) == 0 and row["rank"] == "", row
        assert "no_capacity" in row["notes"] or "no intercalation capacity" in row["notes"]
    # where the redox is there the capacity is counted, and the states it stands on are shown
    lco = mg["LiCoO2.cif"]
    assert float(lco["capacity_mAh_g"]) > 100 and "Co+3" in lco["oxidation_states"]
    assert lco["oxidation_from"].startswith("guessed")


def test_flagged_rows_are_never_ranked_mobile(real_run):
    seen_flags = set()
    for ion in ("Mg", "Zn"):
        for r in _rows(real_run, ion):
            flags = set(filter(None, (r["flags"] or "").split(";")))
            seen_flags |= flags
            if flags & {"noise", "under-bonded", "below-floor"} and r["rank"]:
                assert r["mobility"] != "mobile", r
    assert "under-bonded" in seen_flags  # the real files do hold such a site (Al2SiO5, P2Pb3O8)


def test_ranked_rows_ordered_by_mobility_class(real_run):
    for ion in ("Mg", "Zn"):
        order = {"mobile": 0, "borderline": 1, "immobile": 2}
        classes = [order[r["mobility"]] for r in _rows(real_run, ion) if r["rank"]]
        assert classes == sorted(classes) and classes


def test_failures_name_the_reason(real_run):
    fails = list(csv.DictReader((real_run / "failures.csv").open()))
    metals = [f for f in fails if f["source"].endswith(("Gold.cif", "Iron.cif", "Silicon.cif"))]
    assert metals and all("no anion" in f["reason"] for f in metals)


def test_leftover_ions_are_listed_and_replace_ion_removes_them(tmp_path):
    from ionscreen.errors import IonscreenError
    from ionscreen.screening.records import HostRecord
    from ionscreen.structures.candidates import from_file

    files = {p.name: p for p in real_cifs(tmp_path)}
    kept = from_file(files["LiCoO2.cif"], "Mg")
    assert kept.provenance["other_ions"] == {"Li": 3.0} and kept.formula == "LiCoO2"
    rec = HostRecord.from_results(kept, None)
    assert "other_ions" in [n.code for n in rec.notes] and "--replace-ion Li" in str(rec.notes[0])
    gone = from_file(files["LiCoO2.cif"], "Mg", strip=["Li"])
    assert gone.formula == "CoO2" and gone.provenance["removed_ions"] == {"Li": 3.0}
    assert gone.provenance["oxidation_states"] == {"Co": 4.0, "O": -2.0}  # Co3+ -> Co4+
    assert gone.provenance["oxidation_states_from"].endswith("after removing Li")
    assert from_file(files["LiCoO2.cif"], "Li", strip=["Li"]).formula == "LiCoO2"  # never the working ion
    with pytest.raises(IonscreenError, match="removing K from KCl leaves no charge-balanced host"):
        from_file(files["KCl.cif"], "Mg", strip=["K"])


def test_report_first_screen_per_ion_fits_1400px(real_run):
    """Headless Chromium at 1400 px: each ion's first screen (its banner and ranked table with
    tier, barrier ± uncertainty, class, voltage, capacity, energy and flags) is in view without
    horizontal scrolling. Screenshots go to tests/artifacts/report_<ion>.png."""
    from selenium.webdriver.common.by import By
    from test_dashboard import _browser

    drv = _browser()
    art = Path(__file__).parent / "artifacts"
    art.mkdir(exist_ok=True)
    try:
        drv.set_window_size(1400, 900)
        for ion in ("Mg", "Zn"):
            drv.get((real_run / "report.html").resolve().as_uri() + f"#ion-{ion}")
            width = drv.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1], f"{ion}: page {width[0]} px wide in a {width[1]} px window"
            section = drv.find_element(By.ID, f"ion-{ion}").find_element(By.XPATH, "..")
            table = section.find_element(By.CSS_SELECTOR, "table.first")
            box = drv.execute_script("const r = arguments[0].getBoundingClientRect();"
                                     "return [r.top, r.right, window.innerHeight];", table)
            assert 0 <= box[0] < box[2] and box[1] <= width[1], (ion, box)
            heads = [th.text for th in table.find_elements(By.TAG_NAME, "th")]
            for want in ("tier", "barrier ± u (eV)", "mobility", "voltage (V)", "capacity (mAh/g)",
                         "energy (Wh/kg)", "flags"):
                assert want in heads, (ion, heads)
            first = table.find_elements(By.CSS_SELECTOR, "tbody tr")[0].text
            assert "±" in first and any(c in first for c in ("mobile", "borderline", "immobile"))
            drv.save_screenshot(str(art / f"report_{ion}.png"))
    finally:
        drv.quit()


def test_the_ranked_column_holds_one_tier(real_run):
    import json

    for ion in ("Mg", "Zn"):
        rows = _rows(real_run, ion)
        tiers = {r["barrier_tier"] for r in rows if r["rank"]}
        meta = json.loads((real_run / f"ranked_{ion}.json").read_text())["meta"]
        assert tiers == {meta["ranked_tier"]} and "CI-NEB" in meta["ranked_tier"], tiers
        assert meta["pre_screen"]  # the BVFF NEB ranks: still a pre-screen (no ML tier)
        # the others are below the ranked rows, never interleaved
        ranks = [bool(r["rank"]) for r in rows]
        assert ranks == sorted(ranks, reverse=True)
        assert any("not promoted" in r["notes"] for r in rows if not r["rank"])
