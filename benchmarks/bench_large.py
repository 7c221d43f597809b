"""A database-scale screen (issue 16.4): more than 1,000 host–ion candidates on the local engine.

Run: ``python3 benchmarks/bench_large.py [--workers 2]``. The candidates are the built-in hosts,
their default substitutions and the coordination polymers (2 disordered models each) for nine
ions (Mg Ca Zn Al NH4 Sr Ba Li Na); the screen is ``ionscreen screen`` with the BVFF NEB on the
best host per ion and no voltage. Measured, in one run:

* wall time per stage (from the store's job timestamps) and of the whole command;
* the resident memory of the command and its workers, sampled every 0.5 s, at each quarter of
  the BVSE stage (flat memory: the last quarter is not larger than the first by more than the
  pool's start-up);
* the store's size;
* per 1,000 records: committing them to a fresh store (one job each, as the engine does),
  collecting and ranking them, exporting them, and a dashboard page (``/`` and its
  ``/api/status`` JSON) served from the finished store;
* the FireWorks engine's batches: how many workflows ``ScreenWorkflowMaker`` makes of the
  candidates (batch size 50) and how long that takes.

``--source optimade``: the same distinct host structures (542 of them: built-in hosts,
substitutions, polymers, every discharged variant) served as OPTIMADE entries by the
``optimade[server]`` reference implementation on 127.0.0.1, and the screen is ``ionscreen
screen --optimade <url> --hosts none`` for Mg Ca Zn Al (2,168 host–ion candidates); the fetch
is timed per page from the store. Then the same screen is submitted with ``ionscreen submit``
to a LaunchPad on a real MongoDB-wire server (SecantusDB), in batches of 50, its pages fetched
once more into that store, and a worker (``rlaunch rapidfire``) runs the first 100 Fireworks.

Writes ``benchmarks/out/large.json`` (``large_optimade.json`` with ``--source optimade``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
from machine import cpu_model, usable_cores

OUT = Path(__file__).parent / "out"
IONS = ["Mg", "Ca", "Zn", "Al", "NH4", "Sr", "Ba", "Li", "Na"]
ARGS = ["--substitute", "default", "--cps", "--cp-models", "2", "--ions", *IONS,
        "--neb-top", "1", "--voltage", "none"]


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


OPT_IONS = ["Mg", "Ca", "Zn", "Al"]


def optimade_args(url: str) -> list[str]:
    return ["--optimade", url, "--max", "5000", "--page-size", "100", "--hosts", "none",
            "--ions", *OPT_IONS, "--neb-top", "1", "--voltage", "none"]


def optimade_entries() -> list[dict]:
    """The distinct host structures of the default candidate set, as OPTIMADE entries."""
    from optimade_server import as_entry

    from ionscreen.structures.candidates import structure_fingerprint
    from ionscreen.workflows.plan import ScreenSpec

    found: dict[str, object] = {}
    for c in ScreenSpec(ions=IONS, substitute=["default"], cps=True, cp_models=2
                        ).candidates().candidates:
        s = c.structure.copy()
        s.remove_oxidation_states()
        found.setdefault(structure_fingerprint(s), s)
    return [as_entry(f"bench-{k:04d}", s) for k, s in enumerate(found.values())]


def run_screen(d: Path, workers: int, args: list[str] | None = None) -> dict:
    """The screen, with the memory of its process tree sampled against the BVSE progress."""
    args = ARGS if args is None else args
    cmd = [sys.executable, "-m", "ionscreen.workflows", "screen", *args, "--workers",
           str(workers), "--out", "run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    proc = psutil.Process(p.pid)
    samples: list[tuple[float, int, int]] = []  # (t, rss, bvse jobs finished)
    db_path = d / "run" / "ionscreen.sqlite"
    while p.poll() is None:
        done = 0
        if db_path.exists():
            try:
                db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
                done = db.execute("SELECT count(*) FROM jobs WHERE step='bvse' AND state IN "
                                  "('done','failed')").fetchone()[0]
                db.close()
            except sqlite3.Error:
                pass
        samples.append((time.perf_counter() - t0, _tree_rss(proc), done))
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(p.stderr.read()[-3000:])
    db = sqlite3.connect(db_path)
    stages = {step: {"jobs": n, "wall_s": round(hi - lo, 1), "job_s": round(s or 0, 1)}
              for step, n, lo, hi, s in db.execute(
                  "SELECT step, count(*), min(started), max(finished), sum(seconds) FROM jobs "
                  "GROUP BY step")}
    states = dict(db.execute("SELECT step || ':' || state, count(*) FROM jobs GROUP BY step, state"))
    db.close()
    total = stages.get("bvse", {}).get("jobs", 0)
    quarters = []  # peak memory while the k-th quarter of the BVSE jobs finished
    for q in (0.25, 0.5, 0.75, 1.0):
        during = [s for s in samples if (q - 0.25) * total <= s[2] < q * total]
        quarters.append(round(max((s[1] for s in during), default=0) / 2**20))
    after = [s[1] for s in samples if s[2] >= total]
    return {"command": " ".join(["ionscreen", "screen", *args, "--workers", str(workers)]),
            "wall_s": round(wall, 1), "stages": stages, "jobs": states,
            "peak_rss_MB_by_bvse_quarter": quarters,
            "peak_rss_MB_after_bvse": round(max(after, default=0) / 2**20),
            "peak_rss_MB": round(max(s[1] for s in samples) / 2**20),
            "store_MB": round(db_path.stat().st_size / 2**20, 1)}


def per_thousand(run: Path) -> dict:
    """Store commit, rank, export and a dashboard page, per 1,000 records."""
    from ionscreen.screening.export import export_run
    from ionscreen.screening.rank import rank_all
    from ionscreen.workflows.dashboard_server import serve_in_thread
    from ionscreen.workflows.screen import collect_records
    from ionscreen.workflows.store import Job, job_id
    from ionscreen.workflows.store_sqlite import SQLiteStore

    store = SQLiteStore(run / "ionscreen.sqlite")
    t = time.perf_counter()
    records, failures = collect_records(store)
    t_collect = time.perf_counter() - t
    n = len(records) + len(failures)
    t = time.perf_counter()
    rank_all(records, include_unranked=True)
    t_rank = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        export_run(records, failures, out)
        t_export = time.perf_counter() - t
    # commit: the BVSE results again, one job each, into a fresh store
    bvse = list(store.results("bvse"))
    with tempfile.TemporaryDirectory() as tmp:
        fresh = SQLiteStore(Path(tmp) / "s.sqlite")
        jobs = [Job(job_id("bvse", rec.input), "bvse", rec.input) for rec in bvse]
        fresh.add_jobs(jobs)
        t = time.perf_counter()
        for job, rec in zip(jobs, bvse):
            fresh.finish(job.id, rec.result, rec.seconds or 0.0)
        t_commit = time.perf_counter() - t
        fresh.close()
    server, _ = serve_in_thread(run, port=0)
    port = server.server_address[1]
    pages = {}
    for path in ("/", "/api/status"):
        times = []
        for _ in range(4):  # the first /api/status ranks the store; the next are the refreshes
            t = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=300) as r:
                r.read()
            times.append(time.perf_counter() - t)
        pages[path] = times[0]
        pages[f"{path} refresh"] = sum(times[1:]) / 3
    server.shutdown()
    scale = 1000.0 / n
    return {"records": n, "committed": len(bvse),
            "s_per_1000": {"store_commit": round(t_commit * 1000.0 / len(bvse), 2),
                           "collect_records": round(t_collect * scale, 2),
                           "rank": round(t_rank * scale, 2),
                           "export": round(t_export * scale, 2),
                           **{f"dashboard {p}": round(s * scale, 2) for p, s in pages.items()}},
            "dashboard_page_s": {p: round(s, 2) for p, s in pages.items()}}


def fireworks_batches() -> dict:
    from ionscreen.workflows.fireworks_engine import ScreenWorkflowMaker
    from ionscreen.workflows.plan import ScreenSpec

    spec = ScreenSpec(ions=IONS, substitute=["default"], cps=True, cp_models=2, neb_top=1)
    t = time.perf_counter()
    wfs = ScreenWorkflowMaker(screen=spec, batch_size=50).make()
    return {"workflows": len(wfs), "fireworks": sum(len(w.fws) for w in wfs),
            "make_s": round(time.perf_counter() - t, 1)}


def fireworks_submit(url: str, where: Path, n_run: int = 100) -> dict:
    """``ionscreen submit --optimade`` to a LaunchPad on SecantusDB (batches of 50), then one
    ``rlaunch rapidfire`` worker runs ``n_run`` Fireworks; the store is read back."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from test_fireworks_server import ENV, Secantus

    bin_dir = Path(sys.executable).parent
    srv = Secantus(where / "secantus")
    srv.root.mkdir(parents=True)
    srv.start()
    try:
        pad = srv.launchpad_file(where, "bench")
        subprocess.run([str(bin_dir / "lpad"), "-l", str(pad), "reset", "--password",
                        time.strftime("%Y-%m-%d")], cwd=where, env=ENV, check=True,
                       capture_output=True)
        t = time.perf_counter()
        r = subprocess.run([str(bin_dir / "ionscreen"), "submit", "--launchpad", str(pad),
                            *optimade_args(url), "--batch-size", "50"], cwd=where, env=ENV,
                           capture_output=True, text=True)
        t_submit = time.perf_counter() - t
        if r.returncode:
            raise SystemExit(r.stdout[-2000:] + r.stderr[-2000:])
        db = srv.client()["bench"]
        n_wf, n_fw = db.workflows.count_documents({}), db.fireworks.count_documents({})
        t = time.perf_counter()
        subprocess.run([str(bin_dir / "rlaunch"), "-l", str(pad), "rapidfire", "--nlaunches",
                        str(n_run), "--sleep", "0"], cwd=where, env=ENV, check=True,
                       capture_output=True)
        t_run = time.perf_counter() - t
        states = {s: db.fireworks.count_documents({"state": s})
                  for s in ("COMPLETED", "FIZZLED", "READY", "WAITING")}
        jobs = db.ionscreen_jobs
        counts = {f"{st}:{state}": jobs.count_documents({"step": st, "state": state})
                  for st in ("optimade", "candidate", "bvse") for state in ("done", "failed",
                                                                             "queued")}
    finally:
        srv.kill()
    return {"command": "ionscreen submit " + " ".join(optimade_args(url)) + " --batch-size 50",
            "submit_s": round(t_submit, 1), "workflows": n_wf, "fireworks_at_submission": n_fw,
            "stdout": r.stdout.strip()[-600:], "rlaunch_fireworks": n_run,
            "rlaunch_s": round(t_run, 1), "fireworks_states_after": states, "store": counts}


def main_optimade(workers: int) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from optimade_server import OptimadeServer

    res = {"machine": {"cpu": cpu_model(), "cores": usable_cores(),
                       "load_1min_at_start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        data = optimade_entries()
        res["entries"] = {"n": len(data), "build_s": round(time.perf_counter() - t, 1)}
        with OptimadeServer(Path(d) / "server", data=data) as srv:
            res["screen"] = run_screen(Path(d), workers, optimade_args(srv.url))
            print(json.dumps(res["screen"], indent=1), flush=True)
            res["per_1000"] = per_thousand(Path(d) / "run")
            print(json.dumps(res["per_1000"], indent=1), flush=True)
            res["fireworks"] = fireworks_submit(srv.url, Path(d) / "fw")
            print(json.dumps(res["fireworks"], indent=1), flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "large_optimade.json").write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--source", choices=("builtin", "optimade"), default="builtin")
    args = ap.parse_args()
    if args.source == "optimade":
        return main_optimade(args.workers)
    res = {"machine": {"cpu": cpu_model(), "cores": usable_cores(),
                       "load_1min_at_start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory() as d:
        res["screen"] = run_screen(Path(d), args.workers)
        print(json.dumps(res["screen"], indent=1), flush=True)
        res["per_1000"] = per_thousand(Path(d) / "run")
        print(json.dumps(res["per_1000"], indent=1), flush=True)
    res["fireworks"] = fireworks_batches()
    print(json.dumps(res["fireworks"], indent=1))
    OUT.mkdir(exist_ok=True)
    (OUT / "large.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    threading.excepthook = lambda a: None  # the dashboard thread's shutdown noise
    main()
