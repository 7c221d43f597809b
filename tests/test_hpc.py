"""hpc/: FireWorks templates render and submit (fake sbatch/qsub), batch scripts run locally."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

HPC = Path(__file__).resolve().parents[1] / "hpc"
QADAPTERS = {"SLURM": HPC / "my_qadapter_slurm.yaml", "PBS": HPC / "my_qadapter_pbs.yaml"}


# --------------------------------------------------------------------------- YAML templates


@pytest.mark.parametrize("name", ["my_launchpad.yaml", "my_fworker.yaml", "my_fworker_bvse.yaml",
                                  "my_fworker_neb.yaml", "my_fworker_ml.yaml",
                                  "my_qadapter_slurm.yaml", "my_qadapter_pbs.yaml"])
def test_yaml_loads_with_required_keys(name):
    doc = yaml.safe_load((HPC / name).read_text())
    assert isinstance(doc, dict)
    required = {"my_launchpad": {"host", "port", "name", "username", "password"},
                "my_fworker": {"name", "category", "query"},
                "my_qadapter": {"_fw_name", "_fw_q_type", "rocket_launch", "walltime", "queue",
                                "account"}}
    key = next(k for k in required if name.startswith(k))
    assert required[key] <= set(doc), f"{name} lacks {required[key] - set(doc)}"
    if key == "my_qadapter":
        assert doc["_fw_name"] == "CommonAdapter"
        assert "rlaunch" in doc["rocket_launch"]


def test_launchpad_template_makes_a_launchpad():
    fireworks = pytest.importorskip("fireworks")
    lp = fireworks.LaunchPad.from_file(str(HPC / "my_launchpad.yaml"))  # no connection made
    assert lp.name == "ionscreen_fw" and lp.port == 27017


def test_fworker_categories_select_the_right_fireworks():
    """Each worker file picks the Fireworks ionscreen labels for it (FireWorks' own query)."""
    pytest.importorskip("fireworks")
    mongomock = pytest.importorskip("mongomock")
    from fireworks import FWorker

    coll = mongomock.MongoClient().db.fws
    coll.insert_many([{"kind": "bvse", "spec": {}}, {"kind": "select", "spec": {}},
                      {"kind": "neb", "spec": {"_category": "neb"}},
                      {"kind": "ml", "spec": {"_category": "ml"}}])
    expect = {"my_fworker.yaml": {"bvse", "select", "neb", "ml"},
              "my_fworker_bvse.yaml": {"bvse", "select"},
              "my_fworker_neb.yaml": {"neb"}, "my_fworker_ml.yaml": {"ml"}}
    for name, kinds in expect.items():
        fw = FWorker.from_file(str(HPC / name))
        got = {d["kind"] for d in coll.find(fw.query)}
        assert got == kinds, name


def _adapter(q_type: str, **resources):
    pytest.importorskip("fireworks")
    from fireworks.user_objects.queue_adapters.common_adapter import CommonAdapter
    from fireworks.utilities.fw_serializers import load_object_from_file

    qa = load_object_from_file(str(QADAPTERS[q_type]))
    assert isinstance(qa, CommonAdapter) and qa.q_type == q_type
    qa.update({"queue": "short", "account": "proj42"})
    qa.update(resources)  # what qlaunch does with a Firework's spec._queueadapter
    return qa


def test_slurm_qadapter_renders_per_job_resources(tmp_path):
    from ionscreen.workflows.fireworks_engine import DEFAULT_QUEUEADAPTER

    # the ML category's resources as `ionscreen submit` writes them into spec._queueadapter
    res = {k: v for k, v in DEFAULT_QUEUEADAPTER["ml"].items() if k != "nnodes"}
    qa = _adapter("SLURM", **res, job_name="ionscreen_neb_MgMn2O4")
    script = qa.get_script_str(str(tmp_path))
    lines = script.splitlines()
    assert lines[0].startswith("#!/bin/bash")
    for d in ("--nodes=1", "--ntasks=1", "--cpus-per-task=4", "--mem=16G", "--time=04:00:00",
              "--partition=short", "--account=proj42", "--job-name=ionscreen_neb_MgMn2O4"):
        assert f"#SBATCH {d}" in lines, d
    assert "$$" not in script  # every placeholder filled or its line dropped
    assert f"cd {tmp_path}" in lines
    rl = next(x for x in lines if x.startswith("rlaunch "))
    assert "singleshot" in rl and "my_fworker.yaml" in rl
    # every #SBATCH line comes before the first command (sbatch stops reading there)
    first_cmd = next(i for i, x in enumerate(lines[1:], 1) if x and not x.startswith("#"))
    assert all(i < first_cmd for i, x in enumerate(lines) if x.startswith("#SBATCH"))
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_pbs_qadapter_renders_per_job_resources(tmp_path):
    qa = _adapter("PBS", nnodes=2, ppnode=4, walltime="02:00:00")
    script = qa.get_script_str(str(tmp_path))
    lines = script.splitlines()
    for d in ("-l nodes=2:ppn=4", "-l walltime=02:00:00", "-q short", "-A proj42"):
        assert f"#PBS {d}" in lines, d
    assert "$$" not in script and any(x.startswith("rlaunch ") for x in lines)
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


FAKE = {"sbatch": 'echo "Submitted batch job 4242"', "qsub": 'echo "4243.pbs-server"'}


@pytest.mark.parametrize("q_type,cmd,job", [("SLURM", "sbatch", "4242"), ("PBS", "qsub", "4243")])
def test_submit_through_fake_scheduler(tmp_path, monkeypatch, q_type, cmd, job):
    """CommonAdapter.submit_to_queue calls sbatch/qsub with the rendered script."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls.json"
    fake = bindir / cmd
    fake.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        python3 -c 'import json,sys; json.dump({{"argv": sys.argv[1:], "script": open(sys.argv[-1]).read()}}, open("{calls}", "w"))' "$@"
        {FAKE[cmd]}
        """))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    qa = _adapter(q_type, walltime="00:30:00")
    launch = tmp_path / "launch"
    launch.mkdir()
    script = qa.get_script_str(str(launch))
    path = launch / "FW_submit.script"
    path.write_text(script)
    monkeypatch.chdir(launch)
    assert qa.submit_to_queue(str(path)) == job
    seen = json.loads(calls.read_text())
    assert seen["argv"] == [str(path)]
    assert seen["script"] == script
    assert ("#SBATCH --time=00:30:00" if q_type == "SLURM" else "#PBS -l walltime=00:30:00") \
        in seen["script"].splitlines()


# --------------------------------------------------------------------------- batch scripts


@pytest.mark.parametrize("script", sorted(p.name for p in HPC.glob("*.sh")))
def test_batch_scripts_parse(script):
    text = (HPC / script).read_text()
    assert text.startswith("#!/bin/bash")
    assert ("#SBATCH" in text) == script.startswith("slurm")
    assert ("#PBS" in text) == script.startswith("pbs")
    assert subprocess.run(["bash", "-n", str(HPC / script)]).returncode == 0


def _mpi_ready() -> bool:
    if shutil.which("mpiexec") is None or shutil.which("ionscreen") is None:
        return False
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("script,env", [
    ("slurm_local_mpi.sh", {"SLURM_NTASKS": "2", "MPI_LAUNCHER": "mpiexec"}),
    ("pbs_local_mpi.sh", {"PBS_NP": "2"}),
])
def test_local_mpi_batch_script_runs(tmp_path, script, env):
    """The guide's one-node step: the batch script, run with bash, does an MPI screen."""
    if not _mpi_ready():
        if os.environ.get("CI") == "true":
            pytest.fail("mpiexec, mpi4py and the ionscreen command are needed in CI")
        pytest.skip("needs mpiexec, mpi4py and the ionscreen command")
    out = tmp_path / "run"
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("SLURM_", "PBS_", "PMI_", "OMPI_"))}
    full.update(env, IONSCREEN_HOSTS="TiS2,V2O5", IONSCREEN_IONS="Mg Li",
                IONSCREEN_OUT=str(out), IONSCREEN_NEB_TOP="1",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(["bash", str(HPC / script)], cwd=tmp_path, env=full, text=True,
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "2 ranks via mpiexec" in r.stdout
    for f in ("ionscreen.sqlite", "ranked_Mg.csv", "ranked_Li.json", "report.html",
              "top_cifs.zip", "failures.csv"):
        assert (out / f).is_file(), f
    from ionscreen.workflows.store_sqlite import SQLiteStore

    store = SQLiteStore.open_readonly(out / "ionscreen.sqlite")
    try:
        counts = store.counts()
        assert counts["bvse"]["done"] == 4 and counts["neb"]["done"] >= 1
        assert store.runs()[-1]["settings"]["mode"] == "mpi(2 ranks)"
        n_jobs = sum(sum(c.values()) for c in counts.values())
    finally:
        store.close()
    # resume after a wall-time kill = run the same script again: nothing is recomputed
    r2 = subprocess.run(["bash", str(HPC / script)], cwd=tmp_path, env=full, text=True,
                        capture_output=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    store = SQLiteStore.open_readonly(out / "ionscreen.sqlite")
    try:
        assert len(store.runs()) == 2
        recs = store.results(None, state=None)
        assert len(recs) == n_jobs and all(r.attempts == 1 for r in recs)  # none computed twice
    finally:
        store.close()
