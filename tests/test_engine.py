"""The local engine and the SQLite result store, with real processes (no mocks).

Serial, process-pool and ``mpiexec -n 2`` runs of a toy step must give identical results; a run
killed with SIGKILL resumes with every job finished exactly once and no committed job computed
again; bad inputs fail alone, with their reason stored and reported.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

HELPERS = Path(__file__).parent / "engine_helpers"
sys.path.insert(0, str(HELPERS))  # before any pool starts: forkserver copies sys.path

import toysteps  # noqa: E402
from helpers import kill_tree  # noqa: E402

from ionscreen.errors import IonscreenError  # noqa: E402
from ionscreen.workflows.local import LocalEngine  # noqa: E402
from ionscreen.workflows.plan import Step  # noqa: E402
from ionscreen.workflows.store import (  # noqa: E402
    Job,
    StoreBusyError,
    canonical_json,
    job_id,
)
from ionscreen.workflows.store_sqlite import SQLiteStore  # noqa: E402

RUN_TOY = str(HELPERS / "run_toy.py")


def expected(n: int) -> dict:
    return {"n": n, "square": n * n, "root": math.sqrt(n), "digits": sum(map(int, str(n)))}


def run_inprocess(tmp_path: Path, name: str, n: int, workers: int = 1, bad: bool = False,
                  sleep: float = 0.05, **kw):
    store = SQLiteStore(tmp_path / f"{name}.sqlite")
    jobs = [(toysteps.TOY, d) for d in toysteps.docs(n, sleep)]
    if bad:
        jobs += [(toysteps.TOY, d) for d in toysteps.bad_docs()]
    eng = LocalEngine(store, workers=workers, progress=False, log_path=tmp_path / f"{name}.log",
                      **kw)
    return store, eng.run(jobs)


def side_counts(path: Path) -> Counter:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)


def ro_snapshot(path: Path) -> dict:
    """{id: (state, attempts, finished, result)} read through a read-only connection."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT id, state, attempts, finished, result, input FROM jobs")
        return {r[0]: {"state": r[1], "attempts": r[2], "finished": r[3], "result": r[4],
                       "n": json.loads(r[5])["n"]} for r in rows}
    finally:
        db.close()


def wait_for_done(path: Path, at_least: int, proc: subprocess.Popen, timeout: float = 30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        if path.exists():
            try:
                ro = SQLiteStore.open_readonly(path)
                done = sum(c["done"] for c in ro.counts().values())
                ro.close()
                if done >= at_least:
                    return done
            except (sqlite3.OperationalError, IonscreenError):
                pass  # the schema is not there yet
        time.sleep(0.02)
    raise AssertionError("the run did not get far enough")


# --------------------------------------------------------------------------- ids and store

def test_job_id_is_canonical():
    doc = {"b": [1.0, 2.5, 1 / 3], "a": {"y": 2, "x": "Mg"}}
    noisy = {"a": {"x": "Mg", "y": 2}, "b": [1.0 + 1e-14, 2.5, 1 / 3 * (1 + 1e-13)]}
    assert job_id("bvse", doc) == job_id("bvse", noisy)
    assert len(job_id("bvse", doc)) == 24
    assert job_id("bvse", doc) != job_id("bvse", doc, version="2")
    assert job_id("bvse", doc) != job_id("bvse", doc, settings={"resolution": 0.2})
    assert job_id("bvse", doc) != job_id("neb", doc)
    assert job_id("bvse", {"x": 0.30000001}) != job_id("bvse", {"x": 0.3})
    np = pytest.importorskip("numpy")
    assert job_id("s", {"v": np.array([0.1, -0.0])}) == job_id("s", {"v": [0.1, 0.0]})
    assert canonical_json({"e": math.inf, "f": -0.0}) == '{"e":"Infinity","f":0.0}'
    assert toysteps.TOY.job_id({"n": 1, "sleep": 0.05}) == job_id("toy", {"n": 1, "sleep": 0.05},
                                                                   None, "1")



@pytest.mark.parametrize("first", ["store", "store_sqlite"])
def test_store_modules_import_in_any_order(first):
    """The store interface and its SQLite implementation import in either order (no cycle)."""
    code = (f"import ionscreen.workflows.{first}\n"
            "from ionscreen.workflows.store import ResultStore, canonical, canonical_json\n"
            "from ionscreen.workflows.store_sqlite import SQLiteStore\n"
            "assert issubclass(SQLiteStore, ResultStore) and canonical_json([canonical(0.5)]) == '[0.5]'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

def test_store_basics(tmp_path):
    s = SQLiteStore(tmp_path / "s.sqlite")
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    jobs = [Job(f"id{i}", "toy", {"n": i}) for i in range(3)]
    assert s.add_jobs(jobs) == 3
    assert s.add_jobs(jobs) == 0  # same ids: nothing happens
    s.mark_running(["id0", "id1"], "w")
    s.finish("id0", {"x": math.inf}, 0.1)
    assert s.get("id0").result == {"x": math.inf} and s.get("id0").state == "done"
    assert [j.id for j in s.pending()] == ["id1", "id2"]  # running leftovers count as pending
    # a run killed twice while id1 was running: the third start is refused
    s.mark_running("id1")
    assert s.requeue_running(max_attempts=3) == (1, 0)
    s.mark_running("id1")
    assert s.requeue_running(max_attempts=3) == (0, 1)
    assert s.get("id1").state == "failed" and s.get("id1").error == "WorkerDied"
    assert s.counts() == {"toy": {"queued": 1, "running": 0, "done": 1, "failed": 1}}
    run = s.begin_run(["x"], {"a": 1})
    other = SQLiteStore(tmp_path / "s.sqlite")
    with pytest.raises(StoreBusyError):
        other.begin_run()
    s.end_run(run)
    other.end_run(other.begin_run())  # free again
    ro = SQLiteStore.open_readonly(tmp_path / "s.sqlite")
    assert ro.get("id0").result == {"x": math.inf}
    with pytest.raises((IonscreenError, sqlite3.OperationalError)):
        ro.log("info", "no")
    for x in (s, other, ro):
        x.close()


# --------------------------------------------------------------------------- runs

def test_serial_run_and_rerun_computes_nothing(tmp_path, monkeypatch):
    side = tmp_path / "side.txt"
    monkeypatch.setenv(toysteps.SIDE_ENV, str(side))
    store, summary = run_inprocess(tmp_path, "serial", 20)
    assert (summary.done, summary.failed, summary.recomputed, summary.total) == (20, 0, 0, 20)
    assert summary.counts == {"toy": {"queued": 0, "running": 0, "done": 20, "failed": 0}}
    got = {r.input["n"]: r.result for r in store.results("toy")}
    assert got == {n: expected(n) for n in range(20)}
    assert all(r.attempts == 1 and r.seconds >= 0.05 for r in store.results())
    log = (tmp_path / "serial.log").read_text()
    assert log.count(" done ") == 20 and "run 1 started" in log and "run 1 ended" in log
    assert 1.0 <= summary.wall_seconds < 10 and summary.jobs_per_hour > 5_000
    # the same jobs again: everything is found, nothing is computed
    t0 = time.perf_counter()
    again = LocalEngine(store, progress=False).run(
        [(toysteps.TOY, d) for d in toysteps.docs(20)])
    assert time.perf_counter() - t0 < 2.0
    assert (again.done, again.failed, again.skipped_already_done, again.recomputed) == (0, 0, 20, 0)
    assert side_counts(side) == Counter(range(20))  # each job computed once in all
    assert [r["id"] for r in store.runs()] == [1, 2]
    store.close()


def test_pool_matches_serial(tmp_path, monkeypatch):
    side = tmp_path / "side.txt"
    monkeypatch.setenv(toysteps.SIDE_ENV, str(side))
    serial, _ = run_inprocess(tmp_path, "serial", 16, sleep=0.02)
    side.unlink()
    pool, summary = run_inprocess(tmp_path, "pool", 16, workers=2, sleep=0.02)
    assert summary.mode == "pool(2 workers)" and (summary.done, summary.recomputed) == (16, 0)
    a = {r.id: r.result for r in serial.results()}
    b = {r.id: r.result for r in pool.results()}
    assert a == b and len(a) == 16
    pids = {int(line.split()[1]) for line in side.read_text().splitlines()}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes did the work
    assert side_counts(side) == Counter(range(16))


def test_mixed_good_and_bad_inputs(tmp_path):
    store, summary = run_inprocess(tmp_path, "mixed", 6, bad=True, sleep=0.01)
    assert (summary.done, summary.failed) == (6, 3)
    fails = {f.reason: f.error for f in summary.failures}
    assert fails == {
        "n must be >= 0, got -3": "IonscreenError",
        "n must be an integer, got 'seven'": "TypeError",
        "the step returned a result that is not JSON: Object of type set is not JSON "
        "serializable": "ResultNotJSON",
    }
    assert all(f.new for f in summary.failures)
    assert {r.error for r in store.failures()} == set(fails.values())
    assert "TypeError: n must be an integer" in str(summary)
    # a traceback for the bug-like error (not for the user error) in the log table and run log
    tb = [m for _, lvl, m in store.log_lines("warn") if "Traceback" in m]
    assert len(tb) == 1 and "toysteps.py" in tb[0]
    assert "Traceback" in (tmp_path / "mixed.log").read_text()
    # a second run reports the earlier failures without rerunning them ...
    jobs = [(toysteps.TOY, d) for d in toysteps.docs(6, 0.01) + toysteps.bad_docs()]
    again = LocalEngine(store, progress=False).run(jobs)
    assert (again.done, again.failed, again.skipped_failed, again.skipped_already_done) == \
        (0, 0, 3, 6)
    assert len(again.failures) == 3 and not any(f.new for f in again.failures)
    # ... unless asked to
    retry = LocalEngine(store, progress=False, retry_failed=True).run(jobs)
    assert (retry.done, retry.failed, retry.skipped_already_done) == (0, 3, 6)
    assert {r.attempts for r in store.failures()} == {2}


def test_pool_survives_a_dying_worker(tmp_path):
    store = SQLiteStore(tmp_path / "crash.sqlite")
    docs = toysteps.docs(8, 0.02) + toysteps.bad_docs() + [{"n": 7, "crash": True}]
    summary = LocalEngine(store, workers=2, progress=False).run([(toysteps.TOY, d) for d in docs])
    assert (summary.done, summary.failed) == (8, 4)
    died = [f for f in summary.failures if f.error == "WorkerDied"]
    assert len(died) == 1 and store.get(died[0].id).input == {"n": 7, "crash": True}
    assert {r.input["n"]: r.result for r in store.results()} == {n: expected(n) for n in range(8)}


def test_stages_build_on_earlier_results(tmp_path):
    store = SQLiteStore(tmp_path / "stages.sqlite")
    stage1 = [(toysteps.TOY, d) for d in toysteps.docs(5, 0.01) + [{"n": -1}]]
    eng = LocalEngine(store, progress=False)
    s1 = eng.run(stage1)  # stage 1 alone first, as if killed before stage 2
    assert (s1.done, s1.failed) == (5, 1)
    both = eng.run_stages([stage1, toysteps.make_double_jobs])
    assert (both.done, both.skipped_already_done, both.skipped_failed) == (5, 5, 1)
    assert sorted(r.result["twice_square"] for r in store.results("double")) == \
        [2 * n * n for n in range(5)]
    third = eng.run_stages([stage1, toysteps.make_double_jobs])
    assert (third.done, third.skipped_already_done, third.recomputed) == (0, 10, 0)
    assert [s["to_run"] for s in third.stages] == [0, 0]


# --------------------------------------------------------------------------- real processes

def _start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, RUN_TOY, *args], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pids_alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.add(pid)
        except ProcessLookupError:
            pass
    return alive


@pytest.mark.parametrize("launch", ["serial", "pool", "mpi"])
def test_sigkill_mid_run_then_resume(tmp_path, launch):
    """Kill a run mid-job, resume it, and check every job finished exactly once.

    serial: SIGKILL to the engine. pool: SIGKILL to the engine only, as an OOM killer would;
    its orphaned workers must end by themselves. mpi: SIGKILL to mpiexec and all its ranks.
    """
    if launch == "mpi":
        if shutil.which("mpiexec") is None:
            pytest.skip("mpiexec not installed")
        pytest.importorskip("mpi4py")
    n = 60
    db, side = tmp_path / "s.sqlite", tmp_path / "side.txt"
    env = {**os.environ, toysteps.SIDE_ENV: str(side)}
    args = ["--store", str(db), "--n", str(n), "--log", str(tmp_path / "run.log")]
    if launch == "pool":
        args += ["--workers", "2"]

    def start() -> subprocess.Popen:
        if launch != "mpi":
            return _start(args, env)
        return subprocess.Popen(["mpiexec", "-n", "3", sys.executable, RUN_TOY, *args], env=env,
                                start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    proc = start()
    try:
        wait_for_done(db, 15, proc)
        time.sleep(0.025)  # land inside a job
        if launch == "pool":
            os.kill(proc.pid, signal.SIGKILL)
        else:
            kill_tree(proc)  # mpiexec and every rank at once, as a batch system does
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        at_kill = ro_snapshot(db)
        if launch == "pool":  # the orphaned workers notice and exit (watchdog, 1 s period)
            workers = {int(line.split()[1]) for line in side.read_text().splitlines()}
            assert len(workers) == 2
            t0 = time.monotonic()
            while _pids_alive(workers) and time.monotonic() - t0 < 5:
                time.sleep(0.1)
            assert not _pids_alive(workers)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done_at_kill = {i: r for i, r in at_kill.items() if r["state"] == "done"}
    running_at_kill = {r["n"] for r in at_kill.values() if r["state"] == "running"}
    assert 15 <= len(done_at_kill) < n and running_at_kill
    assert all(r["attempts"] == 1 for r in done_at_kill.values())

    resume = start()
    out, err = resume.communicate(timeout=60)
    assert resume.returncode == 0, err
    summary = json.loads(out)
    assert summary["skipped_already_done"] == len(done_at_kill)
    assert summary["done"] == n - len(done_at_kill) and summary["failed"] == 0
    assert summary["requeued"] == len(running_at_kill) and summary["recomputed"] == 0

    after = ro_snapshot(db)
    assert len(after) == n and all(r["state"] == "done" for r in after.values())
    assert {r["n"]: json.loads(r["result"]) for r in after.values()} == \
        {i: expected(i) for i in range(n)}
    # committed before the kill: untouched (same commit time, one attempt, computed once)
    counts = side_counts(side)
    for i, r in done_at_kill.items():
        assert after[i]["finished"] == r["finished"] and after[i]["attempts"] == 1
        assert counts[r["n"]] == 1, r["n"]
    # every job computed at least once; twice only if it was running (uncommitted) at the kill
    assert set(counts) == set(range(n))
    assert {k for k, c in counts.items() if c > 1} <= running_at_kill
    assert all(c <= 2 for c in counts.values())
    assert all(after[i]["attempts"] == 2 for i, r in at_kill.items() if r["state"] == "running")
    log = (tmp_path / "run.log").read_text()
    assert "run 2 started" in log and "resume:" in log and "run 2 ended" in log


def test_store_readable_while_a_run_writes(tmp_path):
    db = tmp_path / "s.sqlite"
    proc = _start(["--store", str(db), "--n", "40", "--sleep", "0.02"], dict(os.environ))
    wait_for_done(db, 1, proc)
    ro = SQLiteStore.open_readonly(db)
    seen = []
    while proc.poll() is None:
        results = ro.results("toy")  # full JSON documents, read while the writer commits
        done = len(results)
        assert all(r.result == expected(r.input["n"]) for r in results)
        assert ro.counts()["toy"]["done"] >= done  # (a later snapshot)
        seen.append(done)
        time.sleep(0.01)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["done"] == 40
    assert seen == sorted(seen) and len({x for x in seen if 0 < x < 40}) >= 5
    assert ro.counts()["toy"]["done"] == 40
    ro.close()


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="mpiexec not installed")
@pytest.mark.parametrize("ranks", [2, 3])
def test_mpiexec_matches_serial(tmp_path, ranks):
    pytest.importorskip("mpi4py")
    serial, _ = run_inprocess(tmp_path, "serial", 12, bad=True, sleep=0.02)
    proc = subprocess.run(
        ["mpiexec", "-n", str(ranks), sys.executable, RUN_TOY, "--store", str(tmp_path / "m.sqlite"),
         "--n", "12", "--sleep", "0.02", "--bad", "--out", str(tmp_path / "m.json")],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # printed by rank 0 only
    assert summary["mode"] == f"mpi({ranks} ranks)" and (summary["done"], summary["failed"]) == \
        (12, 3)
    assert json.loads((tmp_path / "m.json").read_text()) == \
        {r.id: r.result for r in serial.results()}
    mpi = SQLiteStore.open_readonly(tmp_path / "m.sqlite")
    assert {(r.id, r.error, r.reason) for r in mpi.failures()} == \
        {(r.id, r.error, r.reason) for r in serial.failures()}
    # the contract, not the scheduling: rank 0 only stores, and at most the ranks-1 others
    # computed (with dynamic hand-out one rank may legitimately take every short job)
    rank0 = [r for r in mpi.runs() if r["id"] == 1][0]
    workers = {r.worker.split(":")[1] for r in mpi.results(None, None)}
    assert 1 <= len(workers) <= ranks - 1
    assert str(rank0["pid"]) not in workers
    mpi.close()


def test_step_must_be_a_plain_function_for_the_pool(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite")
    local = Step("local", lambda doc: {"ok": True})  # a lambda cannot reach a worker process
    summary = LocalEngine(store, workers=2, progress=False).run([(local, {"n": 1})])
    assert summary.failed == 1 and "could not send the job" in summary.failures[0].reason
    serial = LocalEngine(store, progress=False, retry_failed=True).run([(local, {"n": 1})])
    assert serial.done == 1  # fine in the same process


# --------------------------------------------------------------------------- foreign stores

def test_a_corrupted_or_foreign_store_file_is_refused_and_never_overwritten(tmp_path):
    """A file with the store's name that is not an ionscreen store (random bytes, a SQLite
    database of something else, a directory) is refused with a message that says what to do,
    and left exactly as it was; a store written before application ids were set is accepted."""
    import sqlite3

    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(bytes(range(256)) * 20)
    foreign = tmp_path / "foreign.sqlite"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    db.execute("INSERT INTO customers VALUES (1, 'x')")
    db.commit()
    db.close()
    (tmp_path / "dir.sqlite").mkdir()
    for path in (garbage, foreign, tmp_path / "dir.sqlite"):
        before = path.read_bytes() if path.is_file() else None
        for readonly in (False, True):
            with pytest.raises(IonscreenError, match="not an ionscreen result store") as exc:
                SQLiteStore(path, readonly=readonly)
            assert "--out" in str(exc.value)
            if before is not None:
                assert path.read_bytes() == before, path
    assert {r[0] for r in sqlite3.connect(foreign).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")} == {"customers"}
    # an ionscreen store from before application ids: our tables only -> accepted, then marked
    old = tmp_path / "old.sqlite"
    s = SQLiteStore(old)
    s.add_jobs([Job("a", "toy", {"n": 1})])
    s._db.execute("PRAGMA application_id = 0")
    s.close()
    s = SQLiteStore(old)
    assert s.get("a").state == "queued"
    assert s._db.execute("PRAGMA application_id").fetchone()[0] == 0x49534352
    s.close()


# --------------------------------------------------------------------------- progress

def test_plain_progress_lines_when_the_output_is_not_a_terminal(tmp_path):
    """Output redirected: plain lines (no bar) at the start, at every tenth of the jobs, every
    ``progress_interval`` s during a long job, and at the end of each stage."""
    import io

    from rich.console import Console

    from ionscreen.workflows.plan import Stage

    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=100)
    jobs = [(toysteps.TOY, d) for d in toysteps.docs(20, 0.0)] + \
        [(toysteps.TOY, {"n": 99, "sleep": 1.0}), (toysteps.TOY, {"n": -1})]
    eng = LocalEngine(SQLiteStore(tmp_path / "p.sqlite"), console=console,
                      progress_interval=0.3)
    summary = eng.run_stages([Stage("toy", toysteps.TOY, [d for _, d in jobs]),
                              toysteps.make_double_jobs])
    assert (summary.done, summary.failed) == (42, 1)
    lines = out.getvalue().splitlines()
    assert all(line.startswith("progress: stage ") for line in lines), lines
    assert "━" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[0] == "progress: stage 1: toy: 22 jobs to run"
    tenths = [ln for ln in lines if ln.startswith("progress: stage 1: toy: ") and "/22 jobs" in ln]
    assert 10 <= len(tenths) <= 16 and "jobs/h" in tenths[0] and "stage ETA" in tenths[0]
    # the 1 s job: lines every 0.3 s with the same count
    assert len([ln for ln in tenths if ln.startswith("progress: stage 1: toy: 20/22")]) >= 3
    assert lines.index("progress: stage 2: double: 21 jobs to run") > 0
    assert lines[-1].startswith("progress: stage 2: double: 21/21 jobs finished (100%), 0 failed")
    assert any("22/22 jobs finished (100%), 1 failed, in" in ln for ln in lines)
    # the run records its stages (the dashboard's ETA expects their jobs)
    assert eng.store.runs()[-1]["settings"]["stages"] == ["toy"]


def test_a_terminal_keeps_the_rich_bar():
    import io

    from rich.console import Console
    from rich.progress import Progress

    from ionscreen.workflows.progress import PlainProgress, progress_display

    tty = Console(file=io.StringIO(), force_terminal=True)
    pipe = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(progress_display(tty), Progress) and not progress_display(tty).disable
    assert isinstance(progress_display(pipe, interval=5), PlainProgress)
    assert progress_display(pipe, enabled=False).disable
    assert progress_display(tty, enabled=False).disable


@pytest.mark.slow
def test_screen_with_piped_output_prints_progress_before_the_end(tmp_path):
    """``ionscreen screen ... | tee log``: progress lines arrive while the jobs run (there were
    none before the end: the bar was off and nothing replaced it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "IONSCREEN_PROGRESS_INTERVAL": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ionscreen.workflows", "screen", "--hosts", "builtin", "--ions",
         "Mg", "Ca", "--neb-top", "1", "--out", str(tmp_path / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    arrived: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        arrived.append((time.monotonic(), line.rstrip("\n")))
    assert proc.wait(300) == 0, "\n".join(t for _, t in arrived[-30:])
    end = next(t for t, text in arrived if "host–ion pairs screened" in text)
    progress = [(t, text) for t, text in arrived if text.startswith("progress: ")]
    midway = [(t, text) for t, text in progress if " jobs finished (" in text
              and "(100%)" not in text]
    assert any(": bvse: " in text for _, text in midway), progress
    assert any(": neb: " in text for _, text in progress), progress
    # streamed, not flushed at the end: the first BVSE lines came before the NEB stage's 2 s
    assert end - midway[0][0] > 1.0, progress
    assert all("━" not in text for _, text in progress)
    assert all("\x1b" not in text for _, text in arrived)  # no terminal control codes
