"""The ``ionscreen`` command line, run as a user would (subprocess for the entry point)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ionscreen.structures.prototypes import get_prototype
from ionscreen.workflows.cli import _parse_oxi, app


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
    assert _parse_oxi("Fe=2, P=5,O=-2") == {"Fe": 2.0, "P": 5.0, "O": -2.0}
    assert _parse_oxi(None) is None
    with pytest.raises(Exception, match="ELEMENT=STATE"):
        _parse_oxi("Fe2")
