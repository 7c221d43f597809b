"""The ``ionscreen`` command line, run as a user would (subprocess for the entry point)."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from ionscreen.structures.prototypes import get_prototype
from ionscreen.workflows.cli import app
from ionscreen.workflows.cli_common import parse_oxi


@pytest.fixture()
def spinel_cif(tmp_path):
    path = tmp_path / "MgCr2O4.cif"
    get_prototype("MgCr2O4").build("native").to(filename=str(path))
    return path


def test_bvse_command_writes_json_and_cube(tmp_path, spinel_cif):
    out = tmp_path / "r.json"
    cube = tmp_path / "r.cube"
    png = tmp_path / "r.png"
    res = CliRunner().invoke(
        app, ["bvse", str(spinel_cif), "--ion", "Mg", "--resolution", "0.3", "--json", str(out), "--cube", str(cube),
              "--plot", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert "BVSE" in res.output and "E1D" in res.output
    doc = json.loads(out.read_text())
    assert doc["ion"] == "Mg2+" and 0.5 < doc["barriers"]["1D"] < 0.75
    assert cube.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_bvse_command_bad_file_is_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\nnonsense nonsense\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ionscreen.workflows.cli", "bvse", str(bad), "--ion", "Mg"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "error" in proc.stderr.lower() and "broken.cif" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bvse_command_missing_file(tmp_path):
    res = CliRunner().invoke(app, ["bvse", str(tmp_path / "nope.cif"), "--ion", "Mg"])
    assert res.exit_code == 2
    assert "nope.cif" in res.output


def test_bvse_command_unknown_ion(spinel_cif):
    res = CliRunner().invoke(app, ["bvse", str(spinel_cif), "--ion", "Xe"])
    assert res.exit_code == 2
    assert "Mg" in res.output  # lists the supported ions


def test_oxi_flag_parsing():
    assert parse_oxi("Fe=2, P=5,O=-2") == {"Fe": 2.0, "P": 5.0, "O": -2.0}
    assert parse_oxi(None) is None
    with pytest.raises(Exception, match="ELEMENT=STATE"):
        parse_oxi("Fe2")


def test_candidates_screen_and_submit_share_the_screen_options():
    """One option set (cli_common.screen_options): the same names and defaults in the three
    commands (--cp-models was 2 in candidates and 1 in the others)."""
    from ionscreen.workflows.cli_candidates import candidates
    from ionscreen.workflows.cli_screen import screen

    def options(cmd):
        return {p.name: (p.default, p.multiple, p.is_flag, tuple(p.opts)) for p in cmd.params
                if isinstance(p, click.Option)}

    cands, scr = options(candidates), options(screen)
    shared = {"hosts", "substitute", "cps", "cp_models", "seed", "files", "oxi", "ions"}
    assert shared <= cands.keys() and shared <= scr.keys()
    assert {k: cands[k] for k in shared} == {k: scr[k] for k in shared}
    assert cands["cp_models"][0] == 1
    stages = {"resolution", "derive_nitride", "neb_top", "neb_calculator", "voltage_calc"}
    assert stages <= scr.keys() and not stages & cands.keys()
    pytest.importorskip("fireworks")
    from ionscreen.workflows.cli_fireworks import submit

    sub = options(submit)
    assert {k: sub[k] for k in shared | stages} == {k: scr[k] for k in shared | stages}


def test_screen_options_make_one_spec():
    from ionscreen.workflows.cli_common import spec_from_options

    spec = spec_from_options(ions=("mg, Ca",), substitute=("Mn:Fe,Co", "O:S"), cps=True,
                             derive_nitride=True, resolution=0.3, neb_calculator="BVFF")
    assert spec.ions == ["Mg", "Ca"] and spec.substitute == ["Mn:Fe,Co", "O:S"]
    assert spec.bvse.resolution == 0.3 and spec.bvse.derive_nitride and spec.cp_models == 1
    assert spec.neb_settings()["derive_nitride"]  # BVFF in any case is the BVFF
    for bad in ({"substitute": ("Mn",)}, {"substitute": ("Mn:Qq",)}, {"ions": ("Xe",)},
                {"oxi": "Fe2"}, {"resolution": 0.0}):
        with pytest.raises(click.BadParameter):
            spec_from_options(**bad)


def test_candidates_command_writes_the_built_in_and_file_candidates(tmp_path, spinel_cif):
    out = tmp_path / "c.json"
    res = CliRunner().invoke(app, ["candidates", "--hosts", "TiS2", "--files", str(spinel_cif),
                                   "--ions", "Mg", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert sorted(c["source"].split(":")[0] for c in doc["candidates"]) == ["file", "prototype"]
    assert all(c["capacity_mAh_g"] is not None for c in doc["candidates"])
    # the user file's oxidation states and where they came from: printed and stored
    f = next(c for c in doc["candidates"] if c["source"].startswith("file:"))
    assert f["provenance"]["oxidation_states"] and f["provenance"]["oxidation_states_from"]
    assert "oxidation states used" in res.output and f["provenance"]["oxidation_states_from"] in res.output
    given = CliRunner().invoke(app, ["candidates", "--hosts", "none", "--files", str(spinel_cif),
                                     "--ions", "Mg", "--oxi", "Mg=2,Cr=3,O=-2", "--out", str(out)])
    assert given.exit_code == 0, given.output
    assert json.loads(out.read_text())["candidates"][0]["provenance"]["oxidation_states_from"] == "given"
    bad = CliRunner().invoke(app, ["candidates", "--hosts", "NoSuchHost", "--out", str(out)])
    assert bad.exit_code == 2 and "NoSuchHost" in bad.output


# --------------------------------------------------------------------------- faults of issue 15

_BAD_WEIGHTS = {
    "typo.toml": ("[weights]\nbarier = 1\n", "unknown weight key 'barier'"),
    "word.json": ('{"weights": {"barrier": "high"}}', "must be a number"),
    "broken.toml": ("[weights\nbarrier = 1\n", "cannot parse as TOML"),
    "nothere.toml": (None, "does not exist"),
}


@pytest.mark.parametrize("name", sorted(_BAD_WEIGHTS))
def test_bad_weights_stop_every_command_before_any_job(tmp_path, name):
    """A typo in --weights was a 37-line traceback after the whole screen had run."""
    text, words = _BAD_WEIGHTS[name]
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    run = tmp_path / "run"
    for args in (["screen", "--hosts", "TiS2", "--ions", "Mg", "--neb-top", "0",
                  "--out", str(run)],
                 ["rank", "--store", str(run)], ["export", "--store", str(run), "--out", str(run)]):
        res = CliRunner().invoke(app, [*args, "--weights", str(path)])
        assert res.exit_code == 2, res.output
        assert "--weights" in res.output and words in res.output and name in res.output
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
        assert not run.exists()  # nothing ran, nothing was written


def test_missing_files_stop_the_screen_before_any_job(tmp_path, spinel_cif):
    """`screen --files nothere.cif` exited 0 with "0 pairs screened" and empty exports; with
    built-in hosts too, the missing path is still an error the user must fix."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("no structures here")
    run = tmp_path / "run"
    for hosts, files, named in (("none", [str(tmp_path / "nothere.cif")], "nothere.cif"),
                                ("TiS2", [str(spinel_cif), str(tmp_path / "nothere.cif")],
                                 "nothere.cif"),
                                ("none", [str(tmp_path / "docs")], "readme.txt")):
        for cmd in ("screen", "candidates"):
            res = CliRunner().invoke(app, [cmd, "--hosts", hosts, "--files", *files, "--ions",
                                           "Mg", "--out", str(run)])
            assert res.exit_code == 2, res.output
            out = " ".join(res.output.split())  # the message may wrap
            assert "--files" in out and named in out
            assert "CIF" in out or "no such file" in out
            assert not run.exists()


def test_bvse_partial_occupancy_is_the_first_message(tmp_path):
    """Na0.8CoO2-like host: the user was asked for --oxi, then told about partial occupancy."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    st = Structure(Lattice.hexagonal(2.82, 14.05), [{"Li": 0.8}, "Co", "O", "O"],
                   [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.26], [0, 0, 0.74]])
    path = tmp_path / "Li0.8CoO2.cif"
    CifWriter(st).write_file(path)
    res = CliRunner().invoke(app, ["bvse", str(path), "--ion", "Li"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())
    assert "partial occupancy" in out and "--oxi" not in out


def test_voltage_auto_and_the_promotion_default():
    """--voltage auto is CHGNet exactly when the mlip extra can be imported; with a voltage
    the funnel promotes 2 hosts per ion by default (5 without), and --neb-top overrides it."""
    import importlib.util

    from ionscreen.workflows.cli_common import NEB_TOP, NEB_TOP_WITH_VOLTAGE, spec_from_options
    from ionscreen.workflows.plan import default_voltage_calculator

    have = all(importlib.util.find_spec(m) is not None for m in ("chgnet", "torch"))
    assert default_voltage_calculator("auto") == ("chgnet" if have else None)
    assert default_voltage_calculator("None") is None and default_voltage_calculator(None) is None
    assert default_voltage_calculator("sevennet:7net-0") == "sevennet:7net-0"
    off = spec_from_options(voltage_calc="none")
    on = spec_from_options(voltage_calc="chgnet")
    assert (off.neb_top, off.voltage_calculator) == (NEB_TOP, None)
    assert (on.neb_top, on.voltage_calculator) == (NEB_TOP_WITH_VOLTAGE, "chgnet")
    assert spec_from_options(voltage_calc="chgnet", neb_top=4).neb_top == 4
    assert [s.name for s in on.dynamic_stages()] == ["neb", "insertion"]
    assert [s.name for s in off.dynamic_stages()] == ["neb"]


def test_a_store_made_before_a_setting_existed_still_resumes():
    """A run folder made before --order (or after voltage_top was dropped) holds a spec
    without that key: it counts at its default, so the same screen resumes; a real change is
    still named."""
    from ionscreen.workflows.plan import ScreenSpec
    from ionscreen.workflows.screen import settings_conflicts

    now = ScreenSpec(ions=["Mg"], hosts="TiS2").as_dict()
    old = {k: v for k, v in now.items() if k not in ("order", "order_max_atoms", "mobile_sites")}
    old["voltage_top"] = 3  # a setting that no longer exists
    assert settings_conflicts([{"settings": {"spec": old}}], now) == []
    changed = ScreenSpec(ions=["Mg"], hosts="TiS2", order=2).as_dict()
    assert settings_conflicts([{"settings": {"spec": old}}], changed) == ["order: 0 → 2"]
