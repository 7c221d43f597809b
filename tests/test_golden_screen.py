"""The same screen gives the same ranked lists as before the architecture redesign, save the
deliberate changes listed in ``tests/data/golden_screen/README.md``.

``tests/data/golden_screen/expected`` was written by the code before the redesign and
regenerated where the README says why; this reruns the same command and compares every cell of every ranked CSV and of
``failures.csv``. Numbers are compared to 1e-9 relative (CSV text of floats), the rest exactly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_csv, same_cell

GOLDEN = Path(__file__).parent / "data" / "golden_screen"
ARGS = ["screen", "--hosts", "LiFePO4,TiS2,TiO2-anatase,PBA-MnCr,MoO3,LiCoO2", "--files", "files",
        "--ions", "Mg", "Ca", "Zn", "--neb-top", "1", "--out", "run"]
COMPARED_FILES = ("ranked_Mg.csv", "ranked_Ca.csv", "ranked_Zn.csv", "failures.csv")
#: ``job_id`` is not compared: a job id hashes the step's input document, and since the
#: redesign the candidate document no longer carries the capacity (``capacity_mAh_g``,
#: ``capacity_mAh_cm3``, ``capacity_note``, and for empty hosts ``discharged_formula`` and
#: ``electrons``): capacity is computed from the candidate when its record is built, never
#: written into it. Every BVSE, NEB and candidate-derived job id therefore changed once (a
#: store written before 0.2 is recomputed, not resumed); every other column is compared.
NOT_COMPARED = ("job_id",)
#: columns added after the expected files were written (none since the issue-14 regeneration;
#: see the README there): checked in tests/test_rank_export.py, and must not move the others
ADDED: tuple[str, ...] = ()






@pytest.fixture(scope="module")
def golden_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("golden")
    shutil.copytree(GOLDEN / "files", d / "files")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "ionscreen.workflows", *ARGS], cwd=d, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    return d / "run"


@pytest.mark.parametrize("name", COMPARED_FILES)
def test_ranked_csv_identical_to_before_the_redesign(golden_run, name):
    want, got = read_csv(GOLDEN / "expected" / name), read_csv(golden_run / name)
    assert [c for c in got[0] if c not in ADDED] == list(want[0].keys()), "columns changed"
    assert len(got) == len(want), f"{name}: {len(got)} rows, expected {len(want)}"
    diffs = [(i, col, w[col], g[col]) for i, (w, g) in enumerate(zip(want, got))
             for col in w if col not in NOT_COMPARED and not same_cell(w[col], g[col])]
    assert not diffs, f"{name}: {len(diffs)} cells differ, first: {diffs[:5]}"
