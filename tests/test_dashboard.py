"""The dashboard: API during a running screen, auth, exports, and a headless-Chromium check."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from ionscreen.workflows.dashboard import Dashboard, DashboardError
from ionscreen.workflows.dashboard_server import serve, serve_in_thread

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _get(url: str, auth: tuple[str, str] | None = None, timeout: float = 30):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(
            f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.headers, r.read()


def _status(url: str) -> dict:
    return json.loads(_get(url + "api/status")[2])


def _start_screen(tmp_path: Path, ions: list[str], hosts: str = "builtin") -> tuple[subprocess.Popen, Path]:
    """A screen in a subprocess, with a broken user file so that some jobs fail."""
    bad = tmp_path / "inputs" / "broken.cif"
    bad.parent.mkdir()
    bad.write_text("this is not a CIF file\n")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ionscreen.workflows", "screen", "--hosts", hosts,
           "--files", str(bad), "--ions", *ions, "--neb-top", "1", "--out", str(out)]
    log = open(tmp_path / "screen.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    return proc, out


def _wait(pred, timeout: float, what: str, proc: subprocess.Popen | None = None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() not in (None, 0):
            raise AssertionError(f"the screen stopped (exit {proc.returncode}) before {what}")
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def screen_run(tmp_path):
    proc, out = _start_screen(tmp_path, ["Mg", "Ca", "Zn"])
    yield proc, out
    if proc.poll() is None:
        proc.terminate()
        proc.wait(30)


# --------------------------------------------------------------------------- API


@pytest.mark.slow
def test_api_during_and_after_a_running_screen(screen_run, tmp_path):
    proc, out = screen_run
    server, _ = serve_in_thread(out, port=0, top=3)
    try:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        first = _status(url)  # before the store exists: a waiting page, not an error
        assert "counts" in first
        # progress: done counts increase while the run writes
        s1 = _wait(lambda: (lambda s: s if s.get("ready") and s["done"] >= 1 else None)(
            _status(url)), 120, "the first finished job", proc)
        s2 = _wait(lambda: (lambda s: s if s["done"] > s1["done"] else None)(_status(url)),
                   120, "progress", proc)
        assert s2["done"] > s1["done"] and s2["total"] >= s1["total"]
        seen_running = s1["state"] == "running" or s2["state"] == "running"
        assert seen_running
        assert s2["throughput_jobs_per_h"] is None or s2["throughput_jobs_per_h"] > 0
        assert set(s2["counts"]["bvse"]) == {"queued", "running", "done", "failed"}
        # the broken file fails its candidate jobs at once, with the reason
        s3 = _wait(lambda: (lambda s: s if s["failures"] and s["top"] else None)(_status(url)),
                   120, "failures and top candidates", proc)
        f = s3["failures"][0]
        assert f["error"] and f["reason"] and f["step"] in ("candidate", "bvse")
        assert any("broken.cif" in str(x["formula"]) for x in s3["failures"])
        ion, rows = next(iter(s3["top"].items()))
        assert 1 <= len(rows) <= 3
        # the rows of the ranked exports (ionscreen.screening.export.flat_record)
        assert {"rank", "formula", "barrier_eV", "barrier_tier", "capacity_mAh_g",
                "sustainability_score", "pareto", "E1D_eV"} <= set(rows[0])
        assert rows[0]["rank"] == 1
        code, headers, png = _get(f"{url}plot/{ion}.png")
        assert code == 200 and headers["Content-Type"] == "image/png"
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        # the page itself: inline, no external resources
        _, _, page = _get(url)
        html = page.decode()
        assert "/api/status" in html and "progress-done" in html
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing external
        assert "<script src" not in html and "<link" not in html
        # after the end: finished, nothing left, export links served
        assert proc.wait(300) == 0, (tmp_path / "screen.log").read_text()[-3000:]
        end = _status(url)
        assert end["state"] == "finished" and end["remaining"] == 0 and end["eta_s"] == 0
        assert end["done"] == end["total"]
        names = {e["name"] for e in end["exports"]}
        assert {"report.html", "top_cifs.zip", "failures.csv", "ranked_Mg.csv",
                "ranked_Mg.json"} <= names
        for e in end["exports"]:
            code, _, body = _get(url + e["url"].lstrip("/"))
            assert code == 200 and len(body) == e["bytes"]
        # nothing else of the run folder, and no way out of it
        for bad in ("exports/ionscreen.sqlite", "exports/run.log", "exports/../ionscreen.sqlite",
                    "exports/%2e%2e/ionscreen.sqlite", "exports/..%2fionscreen.sqlite",
                    "exports/%2Fetc%2Fpasswd", "exports/ranked_Mg.csv%00.txt",
                    "plot/..%2f..%2fetc.png", "../../etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as ei:
                _get(url + bad)
            assert ei.value.code in (400, 404), bad
    finally:
        server.shutdown()
        server.server_close()


def test_basic_auth_and_binding(tmp_path):
    (tmp_path / "ionscreen.sqlite").touch()
    with pytest.raises(DashboardError, match="--user and --password"):
        serve(tmp_path, host="0.0.0.0", port=0)
    with pytest.raises(DashboardError, match="both"):
        serve(tmp_path, port=0, user="me")
    server, _ = serve_in_thread(tmp_path / "missing-run", host="0.0.0.0", port=0, user="ana",
                                password="s3cret")
    try:
        port = server.server_address[1]
        url = f"http://127.0.0.1:{port}/"
        for auth in (None, ("ana", "wrong"), ("bob", "s3cret")):
            with pytest.raises(urllib.error.HTTPError) as ei:
                _get(url + "api/status", auth)
            assert ei.value.code == 401
            assert "Basic" in ei.value.headers["WWW-Authenticate"]
        code, _, body = _get(url + "api/status", ("ana", "s3cret"))
        doc = json.loads(body)
        assert code == 200 and doc["ready"] is False and "waiting" in doc["message"]
        assert _get(url, ("ana", "s3cret"))[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_cli_refuses_open_binding_without_password(tmp_path):
    from click.testing import CliRunner

    from ionscreen.workflows.cli_dashboard import dashboard

    r = CliRunner().invoke(dashboard, ["--store", str(tmp_path), "--host", "0.0.0.0",
                                       "--port", "0"])
    assert r.exit_code == 2 and "--user and --password" in r.output


def test_mongodb_store_needs_store_mongo(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name.endswith("store_mongo") or (a and a[2] and "store_mongo" in (a[2] or ())):
            raise ImportError("no pymongo")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(DashboardError, match="MongoDB store needs"):
        Dashboard("mongodb://localhost:1/db")


def test_status_with_a_store_object_from_mongomock():
    """The FireWorks engine's store (MongoStore) works as a store object."""
    mongomock = pytest.importorskip("mongomock")
    try:
        from ionscreen.workflows.store_mongo import MongoStore
    except ImportError:
        pytest.skip("store_mongo not available")
    from ionscreen.workflows.store import Job

    store = MongoStore(mongomock.MongoClient().db.jobs)
    store.add_jobs([Job("a" * 24, "bvse", {"candidate": {"formula": "X", "working_ion": "Mg"}})])
    store.fail("a" * 24, "MissingParameterError", "no parameters for Mg-N", 0.1)
    d = Dashboard(store, webgui_url="http://127.0.0.1:5000/")
    s = d.status()
    assert s["engine"] == "fireworks" and s["webgui_url"] == "http://127.0.0.1:5000/"
    assert s["totals"]["failed"] == 1 and s["failures"][0]["reason"] == "no parameters for Mg-N"
    json.dumps(s, allow_nan=False)


# --------------------------------------------------------------------------- browser


def _chromium() -> tuple[str, str | None] | None:
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser")
                    if shutil.which(b)), None)
    if browser is None:
        return None
    return browser, shutil.which("chromedriver")


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1800"]


@pytest.mark.slow
def test_browser_shows_progress_and_top_candidates(screen_run, tmp_path):
    found = _chromium()
    if found is None or found[1] is None:
        msg = "headless browser test needs Debian's chromium and chromium-driver (.ci/install-browser)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    browser, driver_path = found
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        if IN_CI:
            pytest.fail("the browser test needs selenium (pip install selenium)")
        pytest.skip("needs selenium")
    proc, out = screen_run
    server, _ = serve_in_thread(out, port=0, top=5)
    url = server.url
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        # wait until the run has finished a job and still has work queued
        _wait(lambda: (lambda s: s.get("ready") and s["done"] >= 1 and s["remaining"] > 3)(
            _status(url)), 120, "a started run", proc)

        def shown_done(d) -> int | None:
            t = d.find_element(By.ID, "progress-done").text.strip()
            return int(t) if t.isdigit() else None

        drv.get(url)
        first = WebDriverWait(drv, 30, 0.2).until(shown_done)
        time.sleep(3)
        drv.get(url)  # a second load
        second = WebDriverWait(drv, 30, 0.2).until(
            lambda d: (n := shown_done(d)) is not None and n > first and n)
        assert second > first
        # the top-candidate table appears (auto-refresh, without reloading)
        WebDriverWait(drv, 120, 0.5).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "table.top-table tbody tr"))
        rows = drv.find_elements(By.CSS_SELECTOR, "table.top-table tbody tr")
        assert rows and rows[0].find_elements(By.TAG_NAME, "td")[0].text == "1"
        assert "running" in drv.find_element(By.ID, "run-state").text or proc.poll() is not None
        WebDriverWait(drv, 30, 0.5).until(lambda d: d.execute_script(
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        drv.save_screenshot(str(shot))
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 10000
        logs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    finally:
        drv.quit()
        server.shutdown()
        server.server_close()


def test_run_state_and_throughput():
    from ionscreen.workflows.dashboard import run_state, throughput

    assert run_state(None, remaining=3, total=5) == "running"
    assert run_state(None, remaining=0, total=5) == "finished"
    assert run_state(None, remaining=0, total=0) == "empty"
    ended = {"started": 100.0, "finished": 200.0, "host": "elsewhere", "pid": 1}
    assert run_state(ended, remaining=0, total=4) == "finished"
    assert run_state({**ended, "finished": None, "host": socket.gethostname(), "pid": 2**22 + 7},
                     remaining=2, total=4) == "stopped"  # its process is gone
    # 4 jobs of this run in 100 s (one from an earlier run left out): 144 jobs/h, 2 left -> 50 s
    assert throughput([50.0, 120.0, 150.0, 180.0, 200.0], 100.0, None, "running", 2, now=200.0) \
        == (144.0, 50.0, 100.0)
    assert throughput([150.0], 100.0, 300.0, "finished", 0, now=900.0) == (18.0, 0.0, 200.0)
    assert throughput([], None, None, "stopped", 3, now=5.0) == (None, None, None)


@pytest.mark.parametrize("first", ["dashboard", "dashboard_server"])
def test_dashboard_modules_import_in_any_order(first):
    """The model and the web server import in either order (no cycle), each name in one home."""
    code = (f"import ionscreen.workflows.{first}\n"
            "import ionscreen.workflows.dashboard as d, ionscreen.workflows.dashboard_server as s\n"
            "assert s.Dashboard is d.Dashboard and s.is_loopback('127.0.0.2')\n"
            "assert not hasattr(d, 'serve')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------- fresh stores

def _get_code(url: str) -> tuple[int, bytes]:
    """(HTTP status, body), error statuses included."""
    try:
        code, _, body = _get(url, timeout=60)
        return code, body
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _check_all_routes(url: str) -> dict:
    """``/``, ``/api/status`` and a plot: never a server error, the status always JSON that
    the page can show (``ready`` and, when not ready, a ``message``)."""
    code, page = _get_code(url)
    assert code == 200 and b"/api/status" in page
    code, body = _get_code(url + "api/status")
    assert code == 200, body
    doc = json.loads(body)
    assert isinstance(doc["ready"], bool) and "counts" in doc and "totals" in doc
    assert doc["ready"] or (doc["message"] and doc["state"] in ("waiting", "unreadable"))
    code, body = _get_code(url + "plot/Mg.png")
    assert code in (200, 404), body
    return doc


def _no_tables(path: Path, other: bool = False) -> None:
    """A SQLite file in WAL mode without the store's tables (what a run creates first), or
    with the tables of something else (``other``)."""
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    if other:
        db.execute("CREATE TABLE customers (x)")
    db.commit()
    db.close()


@pytest.mark.parametrize("case", ["no store", "empty file", "no tables", "not sqlite",
                                  "other database"])
def test_status_of_a_store_that_is_not_ready(tmp_path, case):
    """Polled before the run has made its store, the dashboard answers a JSON state (it
    answered 500, "no such table: jobs", on 3 of 4 fresh screens)."""
    path = tmp_path / "ionscreen.sqlite"
    if case == "empty file":
        path.touch()
    elif case == "no tables":
        _no_tables(path)
    elif case == "not sqlite":
        path.write_bytes(b"this is no database\n" * 300)
    elif case == "other database":
        _no_tables(path, other=True)
    server, _ = serve_in_thread(tmp_path, port=0)
    try:
        doc = _check_all_routes(server.url)
        assert doc["ready"] is False and doc["done"] == doc["total"] == 0
        if case in ("not sqlite", "other database"):
            assert doc["state"] == "unreadable" and "not an ionscreen result store" in \
                doc["message"]
        else:
            assert doc["state"] == "waiting" and "waiting for" in doc["message"]
        json.dumps(doc, allow_nan=False)
    finally:
        server.shutdown()
        server.server_close()


def test_status_while_stores_are_being_created(tmp_path):
    """Polls racing the creation of 30 stores (file, WAL, tables, run, jobs): every answer is
    a status document, never an exception."""
    import threading

    from ionscreen.workflows.store import Job
    from ionscreen.workflows.store_sqlite import SQLiteStore

    seen: Counter = Counter()
    for i in range(30):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        dash = Dashboard(folder)
        stop = threading.Event()

        def poll(dash=dash, stop=stop) -> None:
            while not stop.is_set():
                try:
                    seen[dash.status()["ready"]] += 1
                except Exception as exc:  # noqa: BLE001 - counted, the test fails below
                    seen[f"{type(exc).__name__}: {exc}"] += 1

        t = threading.Thread(target=poll)
        t.start()
        time.sleep(0.005 * (i % 4))
        store = SQLiteStore(folder / "ionscreen.sqlite")
        run = store.begin_run(["test"], {"neb_top": 1})
        store.add_jobs([Job(f"{k:024x}", "bvse", {"candidate": {"working_ion": "Mg"}})
                        for k in range(3)])
        time.sleep(0.01)
        stop.set()
        t.join()
        store.end_run(run)
        store.close()
    assert set(seen) <= {True, False}, seen
    assert seen[True] and seen[False]


@pytest.mark.slow
def test_routes_while_a_screen_creates_its_store(tmp_path):
    """/, /api/status and a plot polled from before a real screen starts until its first job
    is done: 200 (404 for a plot not drawn yet), never 500."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ionscreen.workflows", "screen", "--hosts", "builtin", "--ions",
         "Mg", "--neb-top", "0", "--out", str(out)], stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    server, _ = serve_in_thread(out, port=0)
    states: list[str] = []
    try:
        t0 = time.time()
        while time.time() - t0 < 180:
            doc = _check_all_routes(server.url)
            states.append(doc.get("state") if doc["ready"] else "waiting")
            if doc["ready"] and doc["done"] >= 1:
                break
            assert proc.poll() in (None, 0)
        else:
            raise AssertionError(f"no finished job after 180 s: {states[-5:]}")
        assert states[0] == "waiting" and states[-1] in ("running", "finished")
    finally:
        proc.kill()
        proc.wait(30)
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- ETA

def _fake_store(folder: Path, settings: dict, jobs: list[tuple], run_start: float):
    """A store written by hand, its run "running" (this process holds it): ``jobs`` are
    (id, step, ion, state, started, finished, seconds)."""
    from ionscreen.workflows.store_sqlite import SQLiteStore

    store = SQLiteStore(folder / "ionscreen.sqlite")
    run = store.begin_run(["ionscreen", "screen"], settings)
    _write_jobs(store, jobs)
    store._db.execute("UPDATE runs SET started = ? WHERE id = ?", (run_start, run))
    return store


def _write_jobs(store, jobs: list[tuple]) -> None:
    from ionscreen.workflows.store import Job

    store.add_jobs([Job(j[0], j[1], {"candidate": {"working_ion": j[2]}}) for j in jobs])
    for jid, _step, _ion, state, started, finished, seconds in jobs:
        store._db.execute("UPDATE jobs SET state = ?, started = ?, finished = ?, seconds = ? "
                          "WHERE id = ?", (state, started, finished, seconds, jid))


def test_eta_includes_the_neb_jobs_not_queued_yet(tmp_path):
    """While BVSE runs the NEB jobs are not in the store; the ETA counts them (neb_top per ion,
    at most the ion's BVSE jobs not failed) at 30 BVSE means each until a NEB job is done."""
    from ionscreen.workflows.progress import NEB_PER_BVSE

    now = time.time()
    t0 = now - 10.0  # the run started 10 s ago; 4 BVSE s computed since: 0.4 s per wall s
    done = [(f"{i:024x}", "bvse", ion, "done", t0 + i, t0 + i + 1, 1.0)
            for i, ion in enumerate(["Mg", "Mg", "Ca", "Zn"])]
    jobs = done + [("f" * 24, "bvse", "Zn", "failed", t0 + 5, t0 + 5, 0.0),
                   ("e" * 24, "bvse", "Mg", "queued", None, None, None),
                   ("d" * 24, "bvse", "Mg", "queued", None, None, None)]
    settings = {"ions": ["Mg", "Ca", "Zn"], "neb_top": 2, "stages": ["bvse", "neb"]}
    store = _fake_store(tmp_path, settings, jobs, t0)
    try:
        s = Dashboard(tmp_path).status()
        # NEB to come: Mg min(2, 4) + Ca min(2, 1) + Zn min(2, 1) (its failed job excluded)
        assert s["state"] == "running" and s["remaining"] == 2
        assert s["pending"] == 4 and s["pending_by_step"] == {"neb": 4}
        work = 2 * 1.0 + 4 * NEB_PER_BVSE * 1.0
        elapsed = s["elapsed_s"]
        assert elapsed == pytest.approx(10.0, abs=1.0)
        assert s["eta_s"] == pytest.approx(work / (4.0 / elapsed), rel=1e-6)
        assert s["eta_s"] > 250  # the known jobs alone: 2 left at 5 per 10 s, 4 s
        assert "4 NEB jobs" in s["eta_note"] and "not queued yet" in s["eta_note"]
        assert "30x the mean BVSE job" in s["eta_note"]
        # BVSE ended, its NEB stage queued (3 jobs: one ion had no finite barrier), one done
        # in 6 s: nothing to come, the NEB mean is the measured one
        _write_jobs(store, [("e" * 24, "bvse", "Mg", "done", t0 + 6, t0 + 7, 1.0),
                            ("d" * 24, "bvse", "Mg", "done", t0 + 7, t0 + 8, 1.0),
                            ("a" * 24, "neb", "Mg", "done", t0 + 8, t0 + 9, 6.0),
                            ("b" * 24, "neb", "Ca", "queued", None, None, None),
                            ("c" * 24, "neb", "Zn", "running", now, None, None)])
        s = Dashboard(tmp_path).status()
        assert s["pending"] == 0 and s["eta_note"] is None and s["remaining"] == 2
        assert s["eta_s"] == pytest.approx(2 * 6.0 / (12.0 / s["elapsed_s"]), rel=1e-6)
    finally:
        store.close()


def test_pending_jobs_rules():
    from ionscreen.workflows.progress import pending_jobs, work_eta

    running = {"bvse": {"queued": 5, "running": 1, "done": 3, "failed": 0}}
    ions = {"Mg": 5, "Ca": 2, "Zn": 2}
    assert pending_jobs({"neb_top": 3}, running, ions) == {"neb": 7}  # no stage list recorded
    assert pending_jobs({"neb_top": 0}, running, ions) == {}
    assert pending_jobs({"neb_top": 3, "stages": ["bvse"]}, running, ions) == {}
    # the ML voltage runs on the NEB's promoted hosts: as many jobs to come as the NEB's
    assert pending_jobs({"neb_top": 1, "stages": ["bvse", "neb", "insertion"]}, running,
                        ions) == {"neb": 3, "insertion": 3}
    # resumed with more hosts: earlier NEB jobs count against the expected ones
    assert pending_jobs({"neb_top": 3}, {**running, "neb": {"done": 6}}, ions) == {"neb": 1}
    # the BVSE stage over and the NEB jobs queued: nothing more to come
    over = {"bvse": {"done": 9}, "neb": {"queued": 2}}
    assert pending_jobs({"neb_top": 3}, over, ions) == {}
    assert work_eta({"bvse": 2, "neb": 1}, {"bvse": 0.5}, 10.0, 5.0) == \
        pytest.approx((2 * 0.5 + 15.0) / 2.0)
    assert work_eta({"bvse": 2}, {}, 10.0, 5.0) is None


def _browser():
    """A headless Chromium driver, or skip (fail in CI)."""
    found = _chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        found = None
    if found is None or found[1] is None:
        msg = "the browser tests need chromium, chromium-driver and selenium"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for f in CHROME_FLAGS:
        opts.add_argument(f)
    return webdriver.Chrome(service=Service(executable_path=found[1]), options=opts)


def test_browser_shows_waiting_and_the_eta_estimate(tmp_path):
    """The page before the store has tables says it waits; with a running fake store it shows
    the ETA and says it includes the NEB jobs not queued yet."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _no_tables(tmp_path / "ionscreen.sqlite")
    server, _ = serve_in_thread(tmp_path, port=0)
    drv = _browser()
    store = None
    try:
        drv.get(server.url)
        WebDriverWait(drv, 30, 0.2).until(
            lambda d: "waiting for" in d.find_element(By.ID, "run-state").text)
        t0 = time.time() - 10.0  # the run makes its tables in that file
        store = _fake_store(tmp_path, {"neb_top": 3, "stages": ["bvse", "neb"]},
                            [("a" * 24, "bvse", "Mg", "done", t0, t0 + 1, 1.0),
                             ("b" * 24, "bvse", "Mg", "queued", None, None, None)], t0)
        WebDriverWait(drv, 30, 0.2).until(
            lambda d: "not queued yet" in d.find_element(By.ID, "eta-note").text)
        assert "2 NEB jobs" in drv.find_element(By.ID, "eta-note").text
        assert "min" in drv.find_element(By.ID, "eta").text  # (1 + 60 s) / 0.1 per s
        logs = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        assert not logs, logs
    finally:
        drv.quit()
        if store is not None:
            store.close()
        server.shutdown()
        server.server_close()
