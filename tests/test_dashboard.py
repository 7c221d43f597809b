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
