"""The main job end to end: ``ionscreen screen`` on the local engine, killed and resumed,
under MPI, with bad inputs, and ``rank`` / ``export`` on its store."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from ionscreen.structures.prototypes import get_prototype, list_prototypes

SMALL = ["--hosts", "LiFePO4,MgCr2O4,TiS2,TiO2-anatase", "--ions", "Mg", "Li", "--neb-top", "1"]


def _cli(args, cwd, ranks: int | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ionscreen.workflows", *args]
    if ranks:
        from test_neb import _mpiexec

        cmd = [_mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _jobs(run: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{run / 'ionscreen.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT id, step, state, attempts, finished, result FROM jobs ORDER BY id").fetchall()
    finally:
        db.close()


def _ranked(run: Path, ion: str) -> list[tuple]:
    doc = json.loads((run / f"ranked_{ion}.json").read_text())
    return [(r["rank"], r["formula"], r["source"], round(r["barrier_eV"], 6) if r["barrier_eV"] is not None else None,
             r["barrier_tier"]) for r in doc["rows"]]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("screen")
    r = _cli(["screen", *SMALL, "--out", "run"], d)
    assert r.returncode == 0, r.stderr + r.stdout
    return d / "run", r


def test_small_screen_writes_every_export(small_run):
    run, r = small_run
    for name in ("ranked_Mg.csv", "ranked_Mg.json", "ranked_Li.csv", "ranked_Li.json", "failures.csv",
                 "top_cifs.zip", "report.html", "run.log", "ionscreen.sqlite"):
        assert (run / name).exists(), name
    rows = list(csv.DictReader((run / "ranked_Li.csv").open()))
    assert len(rows) == 4 and {row["formula"] for row in rows} >= {"LiFePO4", "LiTiS2"}
    li = _ranked(run, "Li")
    # the funnel: the NEB stage ran on the best BVSE host per ion (--neb-top 1), which alone is
    # ranked, by that tier; the three others stand below it, not promoted
    assert [x[0] for x in li] == [1, None, None, None]
    assert "CI-NEB" in li[0][4] and all(x[4].startswith("BVSE") for x in li[1:])
    with zipfile.ZipFile(run / "top_cifs.zip") as z:
        assert any(n.endswith(".cif") for n in z.namelist())
    html = (run / "report.html").read_text()
    assert "<table" in html and "data:image/png;base64," in html and "LiFePO4" in html
    assert "Mg" in r.stdout and "ranked hosts" in r.stdout
    states = {(s, st) for _, s, st, *_ in _jobs(run)}
    assert states == {("bvse", "done"), ("neb", "done")}


def test_rerun_computes_nothing_and_rank_export_read_the_store(small_run, tmp_path):
    run, _ = small_run
    before = _jobs(run)
    r = _cli(["screen", *SMALL, "--out", str(run)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 done" in r.stdout and "already done" in r.stdout
    assert _jobs(run) == before  # same finished times: nothing recomputed
    rk = _cli(["rank", "--store", str(run)], tmp_path)
    assert rk.returncode == 0 and "LiFePO4" in rk.stdout and "bvse: " in rk.stdout
    ex = _cli(["export", "--store", str(run), "--out", "again", "--no-landscapes"], tmp_path)
    assert ex.returncode == 0, ex.stderr
    assert _ranked(tmp_path / "again", "Li") == _ranked(run, "Li")


def test_a_folder_of_another_screen_is_refused_naming_the_settings(small_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    before = _jobs(run)
    other = [*SMALL[:-1], "0", "--resolution", "0.25"]  # --neb-top 0, another grid step
    r = _cli(["screen", *other, "--out", "run"], tmp_path)
    assert r.returncode == 2 and "other settings" in r.stderr, r.stderr + r.stdout
    assert "neb_top: 1 → 0" in r.stderr and "'resolution': 0.2" in r.stderr, r.stderr
    assert "--force" in r.stderr and _jobs(run) == before  # nothing ran, nothing mixed
    r = _cli(["screen", *other, "--out", "run", "--force"], tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    aside = [p for p in run.glob("ionscreen.*.sqlite")]
    assert len(aside) == 1 and "kept as" in r.stdout
    db = sqlite3.connect(f"file:{aside[0]}?mode=ro", uri=True)  # the old screen, all of it
    assert db.execute("SELECT id, step, state, attempts, finished, result FROM jobs ORDER BY id"
                      ).fetchall() == before
    assert {step for _, step, *_ in _jobs(run)} == {"bvse"}  # the new one alone


def test_mpi_two_ranks_give_the_serial_ranking(small_run, tmp_path):
    run, _ = small_run
    r = _cli(["screen", *SMALL, "--out", "mpi"], tmp_path, ranks=2)
    assert r.returncode == 0, r.stderr + r.stdout
    for ion in ("Mg", "Li"):
        assert _ranked(tmp_path / "mpi", ion) == _ranked(run, ion)
    assert "mpi(2 ranks)" in r.stdout
    workers = {w for (w,) in sqlite3.connect(f"file:{tmp_path / 'mpi' / 'ionscreen.sqlite'}?mode=ro", uri=True)
               .execute("SELECT DISTINCT worker FROM jobs")}
    assert workers and all(w is not None for w in workers)


def test_sigkill_mid_run_then_resume_finishes_every_job_exactly_once(tmp_path):
    args = ["screen", "--ions", "Mg", "Ca", "Zn", "--neb-top", "2", "--out", "run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "ionscreen.workflows", *args], cwd=tmp_path, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "run"
    deadline = time.time() + 300
    done_before: list[tuple] = []
    while time.time() < deadline:
        time.sleep(0.3)
        if (run / "ionscreen.sqlite").exists():
            try:
                done_before = [j for j in _jobs(run) if j[2] == "done"]
            except sqlite3.OperationalError:
                continue
            if len(done_before) >= 12:
                break
    assert p.poll() is None, "the screen finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed = {j[0]: j for j in _jobs(run)}
    n_hosts = len(list_prototypes())  # the built-in hosts: one BVSE job per host and ion
    assert any(j[2] in ("queued", "running") for j in killed.values()) or len(killed) < 3 * n_hosts
    r = _cli(args, tmp_path)
    assert r.returncode == 0, r.stderr
    after = {j[0]: j for j in _jobs(run)}
    assert all(j[2] in ("done", "failed") for j in after.values())
    for jid, j in killed.items():
        if j[2] == "done":  # committed before the kill: kept as it was, not recomputed
            assert after[jid] == j
    assert all(j[3] <= 2 for j in after.values())  # only the job running at the kill ran twice
    assert sum(j[3] == 2 for j in after.values()) <= 1
    assert len(after) == 3 * n_hosts + 3 * 2  # every BVSE job and the NEB jobs, once each (primary key)
    assert "re-run" in r.stdout or "interrupted" in r.stdout


def test_batch_of_good_and_bad_files(tmp_path):
    good = tmp_path / "lfp.cif"
    get_prototype("LiFePO4").build(with_ion="Li").to(filename=str(good))
    (tmp_path / "broken.cif").write_text("data_broken\n_cell_length_a 4\nloop_\n_atom_site_label\n")
    (tmp_path / "unknown.cif").write_text(good.read_text().replace(" Fe ", " Xq ").replace("Fe", "Xq"))
    # a missing path is not in the batch: it stops the command (test_cli, issue 15)
    r = _cli(["screen", "--hosts", "none", "--files", str(good), str(tmp_path / "broken.cif"),
              str(tmp_path / "unknown.cif"), "--ions", "Li",
              "--neb-top", "0", "--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    fails = list(csv.DictReader((tmp_path / "run" / "failures.csv").open()))
    assert len(fails) == 2
    assert all(f["reason"] for f in fails)
    assert {Path(f["source"].split(":", 1)[1]).name for f in fails} == {"broken.cif", "unknown.cif"}
    ranked = _ranked(tmp_path / "run", "Li")
    assert [x[1] for x in ranked] == ["LiFePO4"]
    assert "2 failed" in r.stdout and "unknown.cif" in r.stdout


def test_a_folder_of_odd_files_prints_no_warnings_and_each_failure_once(tmp_path):
    """A 34-file screen printed 55 pymatgen warning lines and each failure twice, and skipped
    a .mcif silently (issue 15). The parser's remarks go into the store, not the terminal."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    folder = tmp_path / "in"
    folder.mkdir()
    spinel = get_prototype("MgCr2O4").build("native")
    text = str(CifWriter(spinel))
    (folder / "spinel.cif").write_text(text)
    magnetic = spinel.copy()
    magnetic.add_site_property("magmom", [3.0 if sp.symbol == "Cr" else 0.0 for sp in spinel.species])
    CifWriter(magnetic, write_magmoms=True).write_file(folder / "spinel.mcif")
    nosym = text.replace("_symmetry_equiv_pos_as_xyz", "_unused_equiv_pos")  # P1 still named
    (folder / "nosym.cif").write_text(nosym)
    (folder / "sum.cif").write_text(text.replace("'Mg8 Cr16 O32'", "'Mg4 Cr16 O32'"))
    (folder / "broken.cif").write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\nnonsense nonsense\n")
    CifWriter(Structure(Lattice.hexagonal(2.82, 14.05), [{"Li": 0.8}, "Co", "O", "O"],
                        [[0, 0, 0.5], [0, 0, 0], [0, 0, 0.26], [0, 0, 0.74]])
              ).write_file(folder / "partial.cif")
    r = _cli(["screen", "--hosts", "none", "--files", "in", "--ions", "Mg", "--neb-top", "0",
              "--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "Warning" not in r.stderr and "warn" not in r.stderr.lower(), r.stderr
    assert r.stdout.count("StructureReadError") == 1 and r.stdout.count("StructureValidationError") == 1
    assert "2 failed" in r.stdout
    sources = {row[2] for row in _ranked(tmp_path / "run", "Mg")}
    assert sources == {f"file:in/{n}" for n in ("spinel.cif", "spinel.mcif", "nosym.cif", "sum.cif")}
    notes = [json.loads(j[5])["provenance"].get("read_notes") for j in _jobs(tmp_path / "run")
             if j[1] == "candidate" and j[2] == "done"]
    assert sum(bool(n) for n in notes) == 3  # nosym, sum and the moments dropped from the .mcif


def test_a_failed_neb_job_is_stored_and_its_row_says_why(tmp_path):
    """The BVFF cannot describe the cyanide PBA (no C2+–N3- row): the NEB job fails once with
    that reason, the BVSE barrier stays, and the ranked row says why it has no NEB barrier."""
    r = _cli(["screen", "--hosts", "PBA-MnCr", "--ions", "Mg", "--neb-top", "1", "--out", "run"], tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    run = tmp_path / "run"
    states = sorted((s, st) for _, s, st, *_ in _jobs(run))
    assert states == [("bvse", "done"), ("neb", "failed")]
    row = json.loads((run / "ranked_Mg.json").read_text())["rows"][0]
    assert row["barrier_tier"].startswith("BVSE") and row["barrier_eV"] is not None
    assert row["note_codes"].count("neb_failed") == 1  # one NEB note, saying the job failed
    note = [n for n in row["notes"].split("; ") if "CI-NEB" in n]
    assert len(note) == 1 and "C2+–N3-" in note[0] and row["neb_converged"] is False
    failures = list(csv.DictReader((run / "failures.csv").open()))
    assert [f["step"] for f in failures] == ["neb"]
    assert "C2+–N3-" in failures[0]["reason"] and "chgnet" in failures[0]["reason"]
    assert "1 failed jobs" in r.stdout and "neb" in r.stdout


@pytest.mark.slow
def test_with_the_mlip_extra_every_promoted_host_gets_a_voltage(tmp_path):
    """Issue 14.2: with CHGNet installed the default screen (no --voltage) runs the ML voltage
    of every host promoted to NEB, empty ones included (delta-MnO2's one-Mn cell is doubled
    for one Mg), and every ranked row has voltage, specific energy and energy density; the
    run stores the calculator it resolved 'auto' to."""
    pytest.importorskip("chgnet")
    env = {k: v for k, v in os.environ.items() if k != "IONSCREEN_VOLTAGE"}
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run([sys.executable, "-m", "ionscreen.workflows", "screen", "--hosts",
                        "TiO2-rutile,MnO2-delta,MoO3", "--ions", "Mg", "--out", "run"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    run = tmp_path / "run"
    steps = {}
    for _id, step, state, *_ in _jobs(run):
        steps.setdefault(step, []).append(state)
    assert steps["insertion"] and steps["insertion"] == ["done"] * len(steps["neb"]), steps
    rows = json.loads((run / "ranked_Mg.json").read_text())["rows"]
    ranked = [x for x in rows if x["rank"] is not None]
    assert ranked
    for row in ranked:
        assert row["voltage_V"] is not None and -1.0 < row["voltage_V"] < 5.0, row
        assert row["specific_energy_Wh_kg"] > 0 and row["energy_density_Wh_L"] > 0, row
        assert "CHGNet" in row["ml_model"], row
    db = sqlite3.connect(f"file:{run / 'ionscreen.sqlite'}?mode=ro", uri=True)
    settings = json.loads(db.execute("SELECT settings FROM runs").fetchone()[0])
    db.close()
    assert settings["spec"]["voltage_calculator"] == "chgnet"
    assert " V " in r.stdout or "Wh/kg" in r.stdout
