"""The FireWorks engine end to end on the mongomock LaunchPad, in this one process:
submit -> rapidfire -> rank / export, a Firework that fizzles and recovers after a rerun,
the Fireworks' specs, ``ionscreen submit``, and the MongoDB result store's contract.

The ``fireworks[mongomock]`` store is single-process: every ``MongoClient`` it makes loads
the JSON file once and writes it back at exit. So everything here shares the one LaunchPad of
each test (the Firetasks reach the store through it: store spec ``"launchpad"``), and no
subprocess touches it.
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid

import pytest

pytest.importorskip("mongomock_persistence")

_MM_DIR = tempfile.mkdtemp(prefix="ionscreen-mongomock-")
_MM_FILE = os.path.join(_MM_DIR, "store.json")
with open(_MM_FILE, "w") as _fh:
    _fh.write("{}")
os.environ["MONGOMOCK_SERVERSTORE_FILE"] = _MM_FILE  # read when fireworks is first imported

import mongomock  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from fireworks import FWorker, LaunchPad  # noqa: E402
from fireworks.core.rocket_launcher import rapidfire  # noqa: E402

from ionscreen.errors import IonscreenError  # noqa: E402
from ionscreen.workflows import plan  # noqa: E402
from ionscreen.workflows.fireworks_engine import (  # noqa: E402
    IonscreenStepTask,
    ScreenWorkflowMaker,
    submit,
)
from ionscreen.workflows.local import LocalEngine  # noqa: E402
from ionscreen.workflows.plan import ScreenSpec, Step  # noqa: E402
from ionscreen.workflows.screen import collect_records, export  # noqa: E402
from ionscreen.workflows.steps import bvse_step  # noqa: E402
from ionscreen.workflows.store import Job, RawJSON  # noqa: E402
from ionscreen.workflows.store_mongo import (  # noqa: E402
    MongoStore,
    open_store,
    split_mongo_uri,
)
from ionscreen.workflows.store_sqlite import SQLiteStore  # noqa: E402


@pytest.fixture
def lp(tmp_path, monkeypatch):
    """A fresh mongomock LaunchPad (own database) per test; rockets run in tmp_path."""
    monkeypatch.chdir(tmp_path)
    pad = LaunchPad(name=f"t{uuid.uuid4().hex[:12]}", strm_lvl="ERROR")
    pad.reset("", require_password=False)
    return pad


def _run(pad: LaunchPad, where) -> None:
    where.mkdir(exist_ok=True)
    rapidfire(pad, FWorker(), m_dir=str(where), strm_lvl="ERROR", sleep_time=0.01, max_loops=1)


def _states(pad: LaunchPad) -> dict[int, tuple[str, str]]:
    return {d["fw_id"]: (d["state"], d["name"])
            for d in pad.fireworks.find({}, {"fw_id": 1, "state": 1, "name": 1})}


def _store(pad: LaunchPad) -> MongoStore:
    return MongoStore(pad.db["ionscreen_jobs"])


# --------------------------------------------------------------------------- end to end

def test_add_rapidfire_rank_export_equals_local_engine(lp, tmp_path):
    screen = ScreenSpec(ions=["Li", "Mg"], hosts="LiFePO4,TiS2", neb_top=1)
    res = submit(lp, ScreenWorkflowMaker(screen=screen))
    assert (res.workflows, res.fireworks, res.candidates, res.new_jobs) == (2, 6, 4, 4)
    store = _store(lp)
    assert store.counts() == {"bvse": {"queued": 4, "running": 0, "done": 0, "failed": 0}}

    _run(lp, tmp_path / "rockets")
    states = _states(lp)
    assert len(states) == 8  # 4 BVSE + 2 select + 2 NEB added by the selects
    assert {s for s, _ in states.values()} == {"COMPLETED"}, states
    assert store.counts() == {"bvse": {"queued": 0, "running": 0, "done": 4, "failed": 0},
                              "neb": {"queued": 0, "running": 0, "done": 2, "failed": 0}}

    # the same screen on the local engine: same jobs (ids: NEB inputs carry the BVSE result
    # without its wall times), same barriers
    local = SQLiteStore(tmp_path / "local.sqlite")
    LocalEngine(local, progress=False).run_stages(screen.stages())
    for step in ("bvse", "neb"):
        fw = {r.id: r.result for r in store.results(step)}
        loc = {r.id: r.result for r in local.results(step)}
        assert fw.keys() == loc.keys() and fw
        for jid in fw:
            a, b = fw[jid]["summary"], loc[jid]["summary"]
            for key in ("E1D", "E2D", "E3D", "barrier"):
                if key in b and b[key] is not None:
                    assert math.isclose(a[key], b[key], rel_tol=1e-9, abs_tol=1e-12), (step, key)
            assert {k: v for k, v in a.items() if k != "seconds"} == \
                {k: v for k, v in b.items() if k != "seconds"}
    rows, fails = collect_records(store)
    lrows, lfails = collect_records(local)
    assert fails == lfails == []
    key = lambda r: (r.working_ion, r.formula)  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, lrows)) and len(rows) == 4
    by = {key(r): r for r in lrows}
    for r in rows:
        assert (r.neb.barrier if r.neb else None) == (by[key(r)].neb.barrier if by[key(r)].neb else None)
    assert sum(r.neb is not None for r in rows) == 2

    def same_physics(d: dict) -> dict:  # a record's document without the BVSE wall time
        return {**d, "bvse": {k: v for k, v in d["bvse"].items() if k != "seconds"}}

    # the two engines give identical records
    for r in rows:
        assert same_physics(r.as_dict()) == same_physics(by[key(r)].as_dict())

    from ionscreen.screening.rank import rank_all

    ranked = rank_all(rows, include_unranked=False)
    lranked = rank_all(lrows, include_unranked=False)
    assert {ion: [(x.record.formula, x.barrier) for x in lst] for ion, lst in ranked.items()} == \
        {ion: [(x.record.formula, x.barrier) for x in lst] for ion, lst in lranked.items()}
    written = export(store, tmp_path / "exports", landscapes=False)
    for name in ("ranked_Li.csv", "ranked_Mg.json", "top_cifs.zip", "report.html"):
        assert (tmp_path / "exports" / name).exists(), (name, written)
    local.close()

    # `ionscreen rank/export --store my_launchpad.yaml` (one process, one mongomock client: the
    # launchpad file resolves to this test's LaunchPad)
    from ionscreen.workflows.cli import app

    lpfile = tmp_path / "my_launchpad.yaml"
    lp.to_file(str(lpfile))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LaunchPad, "from_file", classmethod(lambda cls, f: lp))
        r = CliRunner().invoke(app, ["rank", "--store", str(lpfile), "--top", "5"])
        assert r.exit_code == 0, r.output
        for formula in {x.formula for x in rows}:
            assert formula in r.output
        assert "neb: 2 done" in r.output
        r = CliRunner().invoke(app, ["export", "--store", str(lpfile), "--out",
                                     str(tmp_path / "cli_exports"), "--no-landscapes"])
        assert r.exit_code == 0, r.output
        assert (tmp_path / "cli_exports" / "ranked_Mg.csv").exists()

    # re-submitting finds every job done: nothing is computed again
    submit(lp, ScreenWorkflowMaker(screen=screen))
    _run(lp, tmp_path / "rockets2")
    assert {s for s, _ in _states(lp).values()} == {"COMPLETED"}
    assert {r.attempts for r in store.results(None)} == {1}


_FAIL = {"TiS2": True}


def _status_by_formula(store) -> dict[str, str]:
    done, failed = collect_records(store)
    return {**{r.formula: "done" for r in done}, **{r.formula: "failed" for r in failed}}


def _flaky_bvse(doc):
    if _FAIL.get(doc["candidate"]["formula"].replace("Li", "", 1)):
        raise RuntimeError("node lost (injected)")
    return bvse_step(doc)


def test_fizzled_firework_is_rerun_and_recovers(lp, tmp_path, monkeypatch):
    monkeypatch.setitem(plan.STEPS, "bvse", Step("bvse", _flaky_bvse, plan.STEPS["bvse"].version))
    monkeypatch.setitem(_FAIL, "TiS2", True)
    screen = ScreenSpec(ions=["Li"], hosts="LiFePO4,TiS2", neb_top=1)
    submit(lp, ScreenWorkflowMaker(screen=screen))
    _run(lp, tmp_path / "r1")
    states = _states(lp)
    fizzled = [i for i, (s, _) in states.items() if s == "FIZZLED"]
    assert len(fizzled) == 1 and "LiTiS2" in states[fizzled[0]][1]
    # the batch went on: the select ran with a fizzled parent and NEB ran on LiFePO4
    assert sum(s == "COMPLETED" for s, _ in states.values()) == 3
    store = _store(lp)
    bad = store.failures("bvse")
    assert len(bad) == 1 and bad[0].error == "RuntimeError" and "node lost" in bad[0].reason
    assert bad[0].input["candidate"]["formula"] == "LiTiS2"
    assert _status_by_formula(store) == {"LiFePO4": "done", "LiTiS2": "failed"}
    launch = lp.get_fw_by_id(fizzled[0]).launches[-1]
    assert "node lost" in str(launch.action.stored_data["_exception"])

    _FAIL["TiS2"] = False  # "fixed"
    lp.rerun_fw(fizzled[0])
    _run(lp, tmp_path / "r2")
    states = _states(lp)
    assert {s for s, _ in states.values()} == {"COMPLETED"}, states
    assert len(states) == 4  # the rerun select added no second NEB Firework
    assert store.counts() == {"bvse": {"queued": 0, "running": 0, "done": 2, "failed": 0},
                              "neb": {"queued": 0, "running": 0, "done": 1, "failed": 0}}
    rec = store.get(bad[0].id)
    assert rec.state == "done" and rec.attempts == 2 and rec.reason is None
    assert store.jobs.count_documents({"_id": bad[0].id}) == 1
    assert [r.attempts for r in store.results("neb")] == [1]  # NEB reused, not recomputed
    assert _status_by_formula(store) == {"LiFePO4": "done", "LiTiS2": "done"}


def test_task_refuses_a_changed_input(lp):
    task = IonscreenStepTask(step="bvse", input='{"candidate": {}}', store="launchpad",
                             job_id="0" * 24)
    task.launchpad = lp
    with pytest.raises(IonscreenError, match="job id"):
        task.run_task({})


# --------------------------------------------------------------------------- specs and CLI

def test_categories_queueadapter_priority_and_batches():
    screen = ScreenSpec(ions=["Li", "Mg"], hosts="LiFePO4,TiS2", neb_top=2,
                        neb_calculator="chgnet", voltage_calculator="chgnet")
    maker = ScreenWorkflowMaker(screen=screen, batch_size=1,
                                queueadapter={"ml": {"walltime": "08:00:00"}},
                                priority={"ml": 7})
    wfs = maker.make()
    assert len(wfs) == 4  # 2 ions x 2 candidates, one per workflow; no batch mixes ions
    for wf in wfs:
        ions = {fw.spec["_ionscreen"]["working_ion"] for fw in wf.fws}
        assert len(ions) == 1
        bvse = [fw for fw in wf.fws if fw.spec["_ionscreen"]["step"] == "bvse"]
        select = [fw for fw in wf.fws if fw.spec["_ionscreen"]["step"] == "select"]
        # one expand Firework per dynamic stage (NEB, voltage), each a child of the BVSE
        assert len(bvse) == 1 and len(select) == 2
        assert "_category" not in bvse[0].spec
        assert bvse[0].spec["_queueadapter"]["walltime"] == "00:30:00"
        opts = {}
        for fw in select:
            assert fw.spec["_allow_fizzled_parents"] is True
            assert fw.fw_id in wf.links[bvse[0].fw_id]  # a child of the batch's BVSE
            task = fw.tasks[0]
            assert task["stage"] == fw.spec["_ionscreen"]["stage"]
            assert task["jobs"] == [bvse[0].spec["_ionscreen"]["job_id"]]
            opts[task["stage"]] = task["fw_options"]
        # NEB with an ML calculator and the voltage step go to "ml" workers
        for step in ("neb", "insertion"):
            assert opts[step]["_category"] == "ml" and opts[step]["_priority"] == 7
            assert opts[step]["_queueadapter"]["walltime"] == "08:00:00"
            assert opts[step]["_queueadapter"]["ntasks"] == 1
    bvff = ScreenWorkflowMaker(screen=ScreenSpec(ions=["Li"], hosts="TiS2", neb_top=1))
    opts = bvff.make()[0].fws[-1].tasks[0]["fw_options"]
    assert opts["_category"] == "neb" and opts["_queueadapter"]["walltime"]


@pytest.mark.parametrize("name", ["bvff", "BVFF", " Bvff "])
def test_neb_category_ignores_the_calculator_names_case(name):
    """One definition of "the BVFF": --neb-calculator BVFF routes like bvff (category neb)
    and gets the BVSE's derive_nitride, in both engines (the stage says so)."""
    spec = ScreenSpec(ions=["Li"], hosts="TiS2", neb_top=1, neb_calculator=name,
                      bvse={"derive_nitride": True})
    (neb,) = spec.dynamic_stages()
    assert neb.category == "neb" and spec.neb_settings()["derive_nitride"]
    fws = ScreenWorkflowMaker(screen=spec).make()[0].fws
    assert fws[-1].tasks[0]["fw_options"]["_category"] == "neb"
    ml = ScreenSpec(ions=["Li"], hosts="TiS2", neb_top=1, neb_calculator="chgnet")
    assert ml.dynamic_stages()[0].category == "ml"


def test_user_files_are_read_at_submission_through_the_store(lp, tmp_path):
    """The inline stage (user files) runs at submission: a bad file is stored failed with its
    reason, the good one becomes a BVSE Firework of its ion's batch like a built-in host."""
    from ionscreen.structures.prototypes import get_prototype

    good = tmp_path / "lfp.cif"
    get_prototype("LiFePO4").build(with_ion="Li").to(filename=str(good))
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 3\n")
    screen = ScreenSpec(ions=["Li"], hosts="TiS2", files=[str(good), str(bad)], neb_top=1)
    res = submit(lp, ScreenWorkflowMaker(screen=screen))
    assert (res.workflows, res.fireworks, res.candidates, res.failed_files) == (1, 3, 2, 1)
    store = _store(lp)
    assert store.counts()["candidate"] == {"queued": 0, "running": 0, "done": 1, "failed": 1}
    assert store.failures("candidate")[0].input["path"] == str(bad)
    (wf,) = [lp.get_wf_by_fw_id(i) for i in lp.get_fw_ids()[:1]]
    sources = sorted(fw.spec["_ionscreen"]["formula"] for fw in wf.fws
                     if fw.spec["_ionscreen"]["step"] == "bvse")
    assert sources == ["LiFePO4", "LiTiS2"]
    (select,) = [fw for fw in wf.fws if fw.spec["_ionscreen"]["step"] == "select"]
    assert len(select.tasks[0]["jobs"]) == 2


def test_optimade_pages_are_fetched_at_submission_once_and_run_as_fireworks(lp, tmp_path):
    """`ionscreen submit --optimade URL`: the pages are fetched at submission into the store
    (one `optimade` job each), the entries become BVSE Fireworks in batches; a second
    submission fetches nothing; the Fireworks run and rank with the provider in every row."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from optimade_server import OptimadeServer

    with OptimadeServer(tmp_path / "srv") as srv:
        screen = ScreenSpec(ions=["Mg"], hosts="none", optimade=[srv.url],
                            optimade_filter='elements HAS "O"', optimade_page_size=3, neb_top=1)
        res = submit(lp, ScreenWorkflowMaker(screen=screen, batch_size=3))
        n = len(srv.requests())
        store = _store(lp)
        pages = store.results("optimade")
        assert n == len(pages) >= 2
        assert res.failed_files == 1  # Na0.8CoO2 without --order: a failed candidate job
        assert res.candidates == 6 and res.workflows == 2  # batches of 3 BVSE Fireworks
        again = submit(lp, ScreenWorkflowMaker(screen=screen, batch_size=3))
        assert len(srv.requests()) == n and again.new_jobs == 0
    _run(lp, tmp_path / "launches")
    records, failures = collect_records(_store(lp))
    assert len(records) == 6
    assert all(r.source.startswith(f"optimade:127.0.0.1:{srv.port} ion-") for r in records)
    assert [f.failure.step for f in failures] == ["candidate"]


def test_submit_command(lp, tmp_path, monkeypatch):
    from ionscreen.workflows.cli_fireworks import submit as submit_cmd

    lpfile = tmp_path / "my_launchpad.yaml"
    lp.to_file(str(lpfile))
    # one process, one mongomock client: the command must use this test's LaunchPad
    monkeypatch.setattr(LaunchPad, "from_file", classmethod(lambda cls, f: lp))
    r = CliRunner().invoke(submit_cmd, ["--launchpad", str(lpfile), "--hosts", "TiS2,LiFePO4",
                                        "--ions", "Li", "Mg", "--neb-top", "1",
                                        "--priority", "neb=5"])
    assert r.exit_code == 0, r.output
    assert "added 2 workflows (6 Fireworks" in r.output
    assert len(lp.get_wf_ids()) == 2
    assert _store(lp).counts()["bvse"]["queued"] == 4


# --------------------------------------------------------------------------- store contract

@pytest.fixture(params=["sqlite", "mongo"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "s.sqlite")
    else:
        s = MongoStore(mongomock.MongoClient().db.jobs)
    yield s
    s.close()


def test_store_contract(any_store):
    s = any_store
    jobs = [Job(f"id{i}", "bvse" if i < 3 else "neb", {"candidate": {"id": f"c{i}"}, "x": i})
            for i in range(4)]
    assert s.add_jobs(jobs) == 4
    assert s.add_jobs(jobs + [Job("id9", "neb", {"y": 1})]) == 1  # idempotent
    assert [j.id for j in s.pending()] == ["id0", "id1", "id2", "id3", "id9"]
    assert [j.id for j in s.pending("neb")] == ["id3", "id9"]
    s.mark_running(["id0", "id1"], "w1")
    s.mark_running("id2")
    s.finish("id0", {"summary": {"E1D": 0.5}, "v": [1.5, math.inf]}, 1.0, "w2")
    s.finish("id1", RawJSON('{"a": NaN}'), 0.5)
    s.fail("id2", "ValueError", "bad host", 0.1)
    with pytest.raises(KeyError):
        s.finish("nope", {}, 0.0)
    r0 = s.get("id0")
    assert r0.state == "done" and r0.worker == "w2" and r0.attempts == 1
    assert r0.result == {"summary": {"E1D": 0.5}, "v": [1.5, math.inf]}
    assert r0.input == {"candidate": {"id": "c0"}, "x": 0}
    assert math.isnan(s.get("id1").result["a"]) and s.get("id1").worker == "w1"
    assert s.get("missing") is None
    assert [r.id for r in s.results("bvse")] == ["id0", "id1"]
    assert [(r.id, r.error, r.reason) for r in s.failures()] == [("id2", "ValueError", "bad host")]
    recent, n = s.recent_failures(5)
    assert n == 1 and [(r.id, r.reason) for r in recent] == [("id2", "bad host")]
    assert s.recent_failures(0) == ([], 1)
    assert [r.id for r in s.results(None, None)] == ["id0", "id1", "id2", "id3", "id9"]
    assert s.states(["id0", "id2", "id3", "zz"]) == {"id0": "done", "id2": "failed",
                                                     "id3": "queued"}
    assert s.counts() == {"bvse": {"queued": 0, "running": 0, "done": 2, "failed": 1},
                          "neb": {"queued": 2, "running": 0, "done": 0, "failed": 0}}
    assert s.requeue(["id2", "id0"]) == 1  # a done job stays done
    assert s.get("id2").state == "queued" and s.get("id2").attempts == 1
    s.mark_running(["id2", "id3"])  # id2: 2nd attempt
    s.mark_running("id3")
    s.mark_running("id3")  # id3: 3rd attempt
    assert s.requeue_running(max_attempts=3) == (1, 1)
    assert s.get("id3").state == "failed" and s.get("id3").error == "WorkerDied"
    assert s.get("id2").state == "queued"
    run = s.begin_run(["ionscreen", "test"], {"a": 1})
    s.log("info", "hello")
    s.end_run(run)
    assert s.begin_run([], {}) == run + 1


def test_open_store_and_uris(tmp_path):
    assert split_mongo_uri("mongodb://u:p@h1:27017,h2/screens?collection=jobs&tls=true") == \
        ("mongodb://u:p@h1:27017,h2/screens?tls=true", "screens", "jobs")
    assert split_mongo_uri("mongodb://h") == ("mongodb://h", None, None)
    with pytest.raises(IonscreenError, match="no result store"):
        open_store(tmp_path / "empty")
    s = open_store(tmp_path / "run", readonly=False)
    assert isinstance(s, SQLiteStore) and (tmp_path / "run" / "ionscreen.sqlite").exists()
    s.close()
    ro = open_store(tmp_path / "run")
    assert isinstance(ro, SQLiteStore) and ro.readonly
    ro.close()
    assert open_store(s) is s


def test_unreachable_mongodb_is_a_clear_error():
    with pytest.raises(IonscreenError, match="cannot use the MongoDB store.*Check the host"):
        MongoStore("mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=300")
