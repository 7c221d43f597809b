"""A live web page for a running or finished screen: ``ionscreen dashboard --store ...``.

Standard library only (``http.server.ThreadingHTTPServer``) plus matplotlib (Agg) for the
plots. Routes:

* ``/``: the page (inline HTML, CSS and a few lines of JS that fetch ``/api/status`` every
  2 s; nothing is loaded from elsewhere, so it works offline and over an SSH tunnel);
* ``/api/status``: JSON with the job counts by step and state, done/total, throughput (jobs/h)
  and ETA, the recent failures with their reasons, the current top candidates per ion with
  their descriptors and barrier tier, the run's start time and state, and the export links;
* ``/plot/<ion>.png``: barrier vs capacity of that ion's ranked hosts (Pareto front marked);
* ``/exports/<file>``: the exports in the run folder (``ranked_<ion>.csv/.json``,
  ``report.html``, ``top_cifs.zip``, ``failures.csv``), nothing else.

Safe while a run writes: a SQLite store is opened read-only (``mode=ro``, WAL readers never
block the writer) for each request and closed after it; a MongoDB store is one pymongo client
(thread-safe) used with reads only. The ranking is recomputed only when the counts change,
from the BVSE (and NEB) jobs done so far; any error there is shown on the page instead of
breaking it.

Bound to 127.0.0.1 by default; to listen on another address it requires a user name and a
password (HTTP basic auth). Basic auth sends the password base64-encoded, not encrypted: on a
shared network prefer the default loopback binding and an SSH tunnel
(``ssh -L 8050:127.0.0.1:8050 login-node``).
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ionscreen.structures.errors import IonscreenError

from .store import STATES, ResultStore, SQLiteStore

STORE_NAME = "ionscreen.sqlite"
EXPORT_RE = re.compile(r"^(ranked_[A-Za-z0-9]{1,8}\.(csv|json)|report\.html|top_cifs\.zip|"
                       r"failures\.csv)$")
"""The only files ``/exports/`` serves (from the run folder, never below or above it)."""
EXPORT_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json",
                ".html": "text/html; charset=utf-8", ".zip": "application/zip"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
RECENT_FAILURES = 20
DESCRIPTOR_KEYS = ("rank", "formula", "source", "state", "barrier", "barrier_tier", "E1D",
                   "E2D", "E3D", "dimensionality", "capacity_mAh_g", "capacity_mAh_cm3",
                   "voltage_V", "volume_change", "sustainability_score", "score", "pareto",
                   "pareto_rank", "candidate_id", "job_id")


def _top_row(host: Any) -> dict[str, Any]:
    """One ranked host as the page shows it (:data:`DESCRIPTOR_KEYS` plus ``neb_barrier``)."""
    rec = host.record
    bvse, neb = rec.bvse, rec.neb
    bars = bvse.barriers if bvse else {}
    return {
        "rank": host.rank, "formula": rec.formula, "source": rec.source, "state": rec.state,
        "barrier": host.barrier, "barrier_tier": host.barrier_tier,
        "E1D": bars.get("1D"), "E2D": bars.get("2D"), "E3D": bars.get("3D"),
        "dimensionality": bvse.dimensionality if bvse else None,
        "capacity_mAh_g": rec.capacity_mAh_g, "capacity_mAh_cm3": rec.capacity_mAh_cm3,
        "voltage_V": rec.voltage_V, "volume_change": rec.volume_change,
        "sustainability_score": host.sustainability_score, "score": host.score,
        "pareto": host.pareto, "pareto_rank": host.pareto_rank,
        "candidate_id": rec.candidate_id, "job_id": rec.job_id,
        "neb_barrier": neb.barrier if neb else None,
    }


class DashboardError(IonscreenError):
    """The dashboard cannot start as asked (bad store, missing password, ...)."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf become None (browsers' JSON.parse rejects them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return obj


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


# --------------------------------------------------------------------------- data


class Dashboard:
    """What the pages show, computed from a result store.

    ``store`` is a screen's folder or its ``ionscreen.sqlite``, a ``mongodb://`` URI, a
    FireWorks launchpad file, or a :class:`ResultStore` object. ``exports_dir`` is where the
    exports are (default: the SQLite store's folder; none for MongoDB).
    """

    def __init__(self, store: Any, *, top: int = 5, webgui_url: str | None = None,
                 exports_dir: str | os.PathLike[str] | None = None, weights: Any = None) -> None:
        self.top = max(1, int(top))
        self.webgui_url = webgui_url
        self.weights = weights
        self._lock = threading.Lock()  # one computation at a time; caches below
        self._store_obj: ResultStore | None = None
        self._sqlite_path: Path | None = None
        self._kind = "sqlite"
        self._cache_key: Any = None
        self._ranked: dict[str, list[Any]] = {}  # ion -> RankedHost list
        self._rank_error: str | None = None
        self._plots: dict[tuple[Any, str], bytes] = {}
        if isinstance(store, SQLiteStore):
            # a connection cannot cross threads: reopen the file read-only per request
            self._sqlite_path = Path(store.path)
        elif isinstance(store, ResultStore):
            self._store_obj = store
            self._kind = type(store).__name__
        else:
            text = os.fspath(store)
            if text.startswith(("mongodb://", "mongodb+srv://")) or \
                    text.lower().endswith((".yaml", ".yml")):
                try:
                    from .store_mongo import open_store
                except ImportError as exc:
                    raise DashboardError(
                        f"--store {text}: a MongoDB store needs ionscreen.workflows.store_mongo "
                        f"and pymongo (pip install pymongo), which could not be imported: {exc}"
                    ) from exc
                self._store_obj = open_store(text)
                self._kind = "mongodb"
            else:
                p = Path(text)
                if p.is_dir() or p.suffix != ".sqlite":
                    p = p / STORE_NAME
                self._sqlite_path = p
        if exports_dir is not None:
            self.exports_dir: Path | None = Path(exports_dir)
        elif self._sqlite_path is not None:
            self.exports_dir = self._sqlite_path.parent
        else:
            self.exports_dir = None

    @property
    def description(self) -> str:
        if self._sqlite_path is not None:
            return f"SQLite store {self._sqlite_path}"
        return f"{self._kind} store {self._store_obj!r}"

    @property
    def waiting_for(self) -> Path | None:
        """The SQLite store file while it does not exist yet (the run has not started)."""
        if self._sqlite_path is not None and not self._sqlite_path.exists():
            return self._sqlite_path
        return None

    @contextmanager
    def open_store(self) -> Iterator[ResultStore | None]:
        """The store for one request (None while a SQLite store does not exist yet)."""
        if self._store_obj is not None:
            yield self._store_obj
            return
        assert self._sqlite_path is not None
        if not self._sqlite_path.exists():
            yield None
            return
        store = SQLiteStore.open_readonly(self._sqlite_path)
        try:
            yield store
        finally:
            store.close()

    # ---- pieces of the status
    @staticmethod
    def _timings(store: ResultStore) -> tuple[list[float], float | None]:
        """Finish times of the finished jobs, and the earliest start."""
        if isinstance(store, SQLiteStore):
            db = store._db  # one cheap query instead of loading every document
            fin = [r[0] for r in db.execute(
                "SELECT finished FROM jobs WHERE state IN ('done', 'failed') "
                "AND finished IS NOT NULL")]
            first = db.execute("SELECT MIN(started) FROM jobs").fetchone()[0]
            return fin, first
        recs = store.results(None, state=None)
        fin = [r.finished for r in recs if r.state in ("done", "failed") and r.finished]
        starts = [r.started for r in recs if r.started]
        return fin, (min(starts) if starts else None)

    @staticmethod
    def _runs(store: ResultStore) -> list[dict[str, Any]]:
        runs = getattr(store, "runs", None)
        if runs is None:
            return []
        try:
            return list(runs())
        except Exception:  # noqa: BLE001 - a store without a runs table
            return []

    @staticmethod
    def _failure(rec: Any) -> dict[str, Any]:
        doc = rec.input or {}
        cand = doc.get("candidate") or {}
        what = cand.get("formula") or (Path(doc["path"]).name if doc.get("path") else None)
        return {"step": rec.step, "job_id": rec.id, "formula": what,
                "ion": cand.get("working_ion") or doc.get("ion"),
                "source": cand.get("source") or (f"file:{doc['path']}" if doc.get("path") else None),
                "error": rec.error, "reason": rec.reason, "attempts": rec.attempts,
                "finished": rec.finished}

    def _rank(self, store: ResultStore, key: Any) -> None:
        """Recompute the ranking when ``key`` (the counts) changed."""
        if key == self._cache_key:
            return
        from ionscreen.screening.rank import rank_all

        from .screen import collect_records

        try:
            records, _failures = collect_records(store)  # failures: listed from the store itself
            self._ranked = rank_all(records, weights=self.weights, include_unranked=False)
            self._rank_error = None
        except Exception as exc:  # noqa: BLE001 - shown on the page, never fatal
            self._ranked = {}
            self._rank_error = f"{type(exc).__name__}: {exc}"
        self._cache_key = key
        self._plots.clear()

    def _top(self) -> dict[str, list[dict[str, Any]]]:
        return {ion: [_top_row(h) for h in hosts[: self.top]] for ion, hosts in self._ranked.items()}

    def exports(self) -> list[dict[str, Any]]:
        if self.exports_dir is None or not self.exports_dir.is_dir():
            return []
        out = []
        for p in sorted(self.exports_dir.iterdir()):
            if EXPORT_RE.match(p.name) and p.is_file():
                out.append({"name": p.name, "url": f"/exports/{p.name}",
                            "bytes": p.stat().st_size})
        return out

    # ---- the status document
    def status(self) -> dict[str, Any]:
        now = time.time()
        base: dict[str, Any] = {"time": now, "store": self.description, "engine": (
            "local" if self._sqlite_path is not None else "fireworks"),
            "webgui_url": self.webgui_url, "top_n": self.top}
        with self._lock, self.open_store() as store:
            if store is None:
                return _clean({**base, "ready": False, "message":
                               f"waiting for {self._sqlite_path} (the run has not started yet)",
                               "counts": {}, "totals": dict.fromkeys(STATES, 0), "done": 0,
                               "total": 0, "top": {}, "failures": [], "exports": self.exports()})
            counts = store.counts()
            totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in STATES}
            total = sum(totals.values())
            finished = totals["done"] + totals["failed"]
            fin, first_start = self._timings(store)
            runs = self._runs(store)
            last = runs[-1] if runs else None
            run_start = (last or {}).get("started") or first_start
            run_end = (last or {}).get("finished")
            remaining = totals["queued"] + totals["running"]
            if last is not None:
                alive = last.get("finished") is None and (
                    last.get("host") != socket.gethostname() or _pid_alive(last.get("pid")))
                state = "running" if alive else ("finished" if run_end else "stopped")
            else:
                state = "running" if remaining else ("finished" if total else "empty")
            if state == "stopped" and remaining == 0:
                state = "finished"
            # throughput over this run's finished jobs (earlier runs' jobs excluded)
            in_run = [t for t in fin if run_start is None or t >= run_start]
            end = run_end if (run_end and state == "finished") else now
            elapsed = (end - run_start) if run_start else None
            rate = (len(in_run) / elapsed * 3600.0) if elapsed and elapsed > 0 and in_run else None
            eta = (remaining / rate * 3600.0) if (rate and remaining and state == "running") else (
                0.0 if remaining == 0 else None)
            failures = store.failures()
            failures.sort(key=lambda r: r.finished or 0, reverse=True)
            self._rank(store, (counts, total))
            doc = {**base, "ready": True, "state": state, "counts": counts, "totals": totals,
                   "done": finished, "done_ok": totals["done"], "total": total,
                   "remaining": remaining, "fraction": (finished / total) if total else 0.0,
                   "throughput_jobs_per_h": rate, "eta_s": eta, "elapsed_s": elapsed,
                   "run_start": run_start, "run_end": run_end,
                   "run_argv": (last or {}).get("argv"), "n_runs": len(runs),
                   "failures": [self._failure(r) for r in failures[:RECENT_FAILURES]],
                   "n_failures": len(failures), "top": self._top(),
                   "ranking_error": self._rank_error, "exports": self.exports(),
                   "plot_key": abs(hash(json.dumps(counts, sort_keys=True))) % 10**9}
        return _clean(doc)

    def plot_png(self, ion: str) -> bytes | None:
        """Barrier vs capacity of ``ion``'s ranked hosts, Pareto front marked (None: no ion)."""
        with self._lock:
            if ion not in self._ranked:
                return None
            key = (self._cache_key is not None and json.dumps(self._cache_key[0], sort_keys=True), ion)
            if key in self._plots:
                return self._plots[key]
            rows = self._ranked[ion]
            import matplotlib

            matplotlib.use("Agg")
            from matplotlib.figure import Figure

            fig = Figure(figsize=(4.8, 3.4), dpi=100)
            ax = fig.add_subplot()
            pts = [(h.capacity_mAh_g, h.barrier, h.pareto, h.record.formula) for h in rows]
            pts = [p for p in pts if p[0] is not None and p[1] is not None
                   and math.isfinite(p[0]) and math.isfinite(p[1])]
            other = [p for p in pts if not p[2]]
            front = sorted((p for p in pts if p[2]), key=lambda p: p[0])
            if other:
                ax.scatter([p[0] for p in other], [p[1] for p in other], c="#8896a8",
                           label="ranked hosts")
            if front:
                ax.plot([p[0] for p in front], [p[1] for p in front], "o-", c="#c0392b",
                        label="Pareto front")
            for cap, bar, _par, name in pts[:12]:
                ax.annotate(str(name), (cap, bar), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
            ax.set_xlabel("capacity (mAh/g)")
            ax.set_ylabel("barrier (eV)")
            ax.set_title(f"{ion}: barrier vs capacity ({len(pts)} hosts)", fontsize=10)
            if pts:
                ax.legend(fontsize=7, loc="best")
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            self._plots[key] = buf.getvalue()
            return self._plots[key]

    def export_file(self, name: str) -> Path | None:
        """The export called ``name`` in the run folder, or None (unknown name or no file)."""
        if self.exports_dir is None or not EXPORT_RE.match(name) or Path(name).name != name:
            return None
        p = self.exports_dir / name
        try:
            if p.is_file() and p.resolve().parent == self.exports_dir.resolve():
                return p
        except OSError:
            return None
        return None


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "ionscreen-dashboard/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
              ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, code: int, msg: str) -> None:
        self._send(code, (msg + "\n").encode(), "text/plain; charset=utf-8")

    def _authorised(self) -> bool:
        cred = self.server.credentials
        if cred is None:
            return True
        head = self.headers.get("Authorization", "")
        if head.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(head[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = "", ""
            ok_u = hmac.compare_digest(user.encode(), cred[0].encode())
            ok_p = hmac.compare_digest(pw.encode(), cred[1].encode())
            if ok_u and ok_p:
                return True
        self._send(401, b"authentication required\n", "text/plain; charset=utf-8",
                   {"WWW-Authenticate": 'Basic realm="ionscreen dashboard", charset="UTF-8"'})
        return False

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._authorised():
            return
        path = urlsplit(self.path).path
        dash = self.server.dashboard
        try:
            if path in ("/", "/index.html"):
                self._send(200, _page(dash).encode(), "text/html; charset=utf-8")
            elif path == "/api/status":
                body = json.dumps(dash.status(), allow_nan=False).encode()
                self._send(200, body, "application/json")
            elif path.startswith("/plot/") and path.endswith(".png"):
                ion = unquote(path[len("/plot/"):-len(".png")])
                png = dash.plot_png(ion) if re.fullmatch(r"[A-Za-z0-9]{1,8}", ion) else None
                if png is None:
                    self._text(404, f"no ranked hosts for ion {ion!r} yet")
                else:
                    self._send(200, png, "image/png")
            elif path.startswith("/exports/"):
                name = unquote(path[len("/exports/"):])
                p = dash.export_file(name)
                if p is None:
                    self._text(404, "not an export of this run (ranked_<ion>.csv/.json, "
                                    "report.html, top_cifs.zip, failures.csv)")
                else:
                    ctype = EXPORT_TYPES.get(p.suffix, "application/octet-stream")
                    extra = {"Content-Disposition": f'attachment; filename="{p.name}"'} \
                        if p.suffix == ".zip" else None
                    self._send(200, p.read_bytes(), ctype, extra)
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            elif path == "/healthz":
                self._text(200, "ok")
            else:
                self._text(404, "not found")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            try:
                self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            except OSError:
                pass


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8050,
                 user: str | None = None, password: str | None = None,
                 verbose: bool = False) -> None:
        if bool(user) != bool(password):
            raise DashboardError("give both --user and --password (or neither)")
        if not is_loopback(host) and not (user and password):
            raise DashboardError(
                f"refusing to serve the dashboard on {host} without a password: anyone who can "
                f"reach that address would see the run. Give --user and --password (basic "
                f"auth), or keep the default --host 127.0.0.1 and use an SSH tunnel "
                f"(ssh -L 8050:127.0.0.1:8050 <login node>)")
        self.dashboard = dashboard
        self.credentials = (user, password) if user and password else None
        self.verbose = verbose
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(store: Any, host: str = "127.0.0.1", port: int = 8050, *, user: str | None = None,
          password: str | None = None, top: int = 5, webgui_url: str | None = None,
          exports_dir: str | None = None, weights: Any = None) -> DashboardServer:
    """A started-up (not yet serving) dashboard server; call ``serve_forever()`` on it."""
    dash = Dashboard(store, top=top, webgui_url=webgui_url, exports_dir=exports_dir,
                     weights=weights)
    try:
        return DashboardServer(dash, host, port, user=user, password=password)
    except OSError as exc:
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(use another --port, or --port 0 for a free one)") from exc


def serve_in_thread(store: Any, **kwargs: Any) -> tuple[DashboardServer, threading.Thread]:
    """Start a dashboard in a daemon thread (for tests and notebooks); ``server.shutdown()``
    stops it."""
    server = serve(store, **kwargs)
    t = threading.Thread(target=server.serve_forever, name="ionscreen-dashboard", daemon=True)
    t.start()
    return server, t


# --------------------------------------------------------------------------- page


def _page(dash: Dashboard) -> str:
    return _PAGE.replace("__STORE__", _html_escape(dash.description))


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ionscreen dashboard</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f6f9;color:#1d2733}
header{background:#1f3a5f;color:#fff;padding:.7em 1.2em;display:flex;gap:1.5em;align-items:baseline;flex-wrap:wrap}
header h1{font-size:1.25em;margin:0}
header .store{opacity:.8;font-size:.85em}
main{padding:1em 1.2em;display:grid;gap:1em}
section{background:#fff;border-radius:6px;padding:.8em 1em;box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:1.05em;margin:.1em 0 .6em}
table{border-collapse:collapse;font-size:.85em}
th,td{padding:.25em .6em;border-bottom:1px solid #e3e7ec;text-align:left;vertical-align:top}
th{background:#eef2f7}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bar{background:#e3e7ec;border-radius:4px;height:14px;overflow:hidden;max-width:600px}
.bar div{background:#2e7d32;height:100%;transition:width .5s}
.kpis{display:flex;gap:2em;flex-wrap:wrap;margin:.6em 0}
.kpi b{display:block;font-size:1.4em}
.state-running{color:#1565c0}.state-finished{color:#2e7d32}.state-stopped{color:#c62828}
.failed{color:#c62828}
.ions{display:flex;flex-wrap:wrap;gap:1.2em}
.ion{flex:1 1 480px}
.muted{color:#6b7785;font-size:.85em}
a{color:#1f5fa8}
</style></head>
<body>
<header><h1>ionscreen dashboard</h1><span class="store">__STORE__</span>
<span id="run-state" class="muted">connecting…</span><span id="updated" class="muted"></span></header>
<main>
<section id="progress-section"><h2>Progress</h2>
<div class="bar"><div id="progress-bar" style="width:0%"></div></div>
<div class="kpis">
<div class="kpi">jobs finished<b><span id="progress-done">–</span> / <span id="progress-total">–</span></b></div>
<div class="kpi">failed<b id="n-failed">–</b></div>
<div class="kpi">throughput<b id="throughput">–</b></div>
<div class="kpi">ETA<b id="eta">–</b></div>
<div class="kpi">run started<b id="run-start">–</b></div>
</div>
<div id="counts"></div>
<p class="muted">Totals grow during a run: NEB jobs are added once the BVSE jobs of their ion are done; the ETA counts the jobs known so far.</p>
</section>
<section><h2>Top candidates per working ion</h2><div id="ranking-error" class="failed"></div>
<div id="top" class="ions"><p class="muted">no finished BVSE jobs yet</p></div></section>
<section><h2>Recent failures</h2><div id="failures"><p class="muted">none</p></div></section>
<section><h2>Exports and links</h2><div id="exports"><p class="muted">the exports appear when the run ends</p></div>
<div id="links"></div></section>
</main>
<noscript><p>This page needs JavaScript; the data are at <a href="/api/status">/api/status</a>.</p></noscript>
<script>
"use strict";
const $=id=>document.getElementById(id);
const esc=s=>String(s==null?"":s).replace(/[&<>"']/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const num=(x,d)=>x==null?"—":Number(x).toFixed(d);
function dur(s){if(s==null)return"—";s=Math.round(s);if(s<60)return s+" s";if(s<3600)return Math.floor(s/60)+" min "+(s%60)+" s";return Math.floor(s/3600)+" h "+Math.floor(s%3600/60)+" min";}
function table(cols,rows,cls){return '<table class="'+(cls||"")+'"><thead><tr>'+cols.map(c=>"<th>"+esc(c)+"</th>").join("")+"</tr></thead><tbody>"+rows.join("")+"</tbody></table>";}
function render(d){
  $("updated").textContent="updated "+new Date(d.time*1000).toLocaleTimeString();
  if(!d.ready){$("run-state").textContent=d.message;return;}
  const st=$("run-state");st.textContent="run "+d.state+(d.n_runs>1?" ("+d.n_runs+" runs)":"");st.className="state-"+d.state;
  $("progress-done").textContent=d.done;$("progress-total").textContent=d.total;
  $("progress-bar").style.width=(100*d.fraction).toFixed(1)+"%";
  $("n-failed").textContent=d.totals.failed;
  $("throughput").textContent=d.throughput_jobs_per_h==null?"—":Math.round(d.throughput_jobs_per_h)+" jobs/h";
  $("eta").textContent=d.state==="running"?dur(d.eta_s):(d.remaining?"stopped":"done");
  $("run-start").textContent=d.run_start?new Date(d.run_start*1000).toLocaleString():"—";
  const states=["queued","running","done","failed"];
  $("counts").innerHTML=table(["step"].concat(states),Object.entries(d.counts).map(([step,c])=>
    "<tr><td>"+esc(step)+"</td>"+states.map(s=>'<td class="n'+(s==="failed"&&c[s]?" failed":"")+'">'+c[s]+"</td>").join("")+"</tr>"),"counts-table");
  $("ranking-error").textContent=d.ranking_error?"ranking failed: "+d.ranking_error:"";
  const ions=Object.keys(d.top);
  if(ions.length){$("top").innerHTML=ions.map(ion=>'<div class="ion"><h3>'+esc(ion)+"</h3>"+
    table(["rank","formula","source","barrier (eV)","produced by","E1D","E3D","dim","mAh/g","mAh/cm³","sust.","score","Pareto"],
      d.top[ion].map(r=>"<tr><td class=n>"+esc(r.rank)+"</td><td>"+esc(r.formula)+"</td><td>"+esc(r.source)+"</td><td class=n>"+num(r.barrier,3)+
        "</td><td>"+esc(r.barrier_tier)+"</td><td class=n>"+num(r.E1D,2)+"</td><td class=n>"+num(r.E3D,2)+"</td><td class=n>"+esc(r.dimensionality)+
        "</td><td class=n>"+num(r.capacity_mAh_g,0)+"</td><td class=n>"+num(r.capacity_mAh_cm3,0)+"</td><td class=n>"+num(r.sustainability_score,2)+
        "</td><td class=n>"+num(r.score,3)+"</td><td>"+(r.pareto?"yes":"")+"</td></tr>"),"top-table")+
    '<img alt="barrier vs capacity, '+esc(ion)+'" src="/plot/'+encodeURIComponent(ion)+".png?k="+d.plot_key+'" width="480" height="340"></div>').join("");}
  $("failures").innerHTML=d.failures.length?table(["step","host","ion","error","reason"],d.failures.map(f=>
    "<tr><td>"+esc(f.step)+"</td><td>"+esc(f.formula)+"</td><td>"+esc(f.ion)+'</td><td class="failed">'+esc(f.error)+"</td><td>"+esc(f.reason)+"</td></tr>"),"failures-table")+
    (d.n_failures>d.failures.length?'<p class="muted">'+(d.n_failures-d.failures.length)+" more in failures.csv</p>":""):'<p class="muted">none</p>';
  if(d.exports.length)$("exports").innerHTML="<ul>"+d.exports.map(e=>'<li><a class="export" href="'+esc(e.url)+'">'+esc(e.name)+"</a> <span class=muted>("+Math.ceil(e.bytes/1024)+" kB)</span></li>").join("")+"</ul>";
  $("links").innerHTML=d.webgui_url?'<p>Workflow graphs: <a href="'+esc(d.webgui_url)+'">FireWorks web GUI</a></p>':
    (d.engine==="fireworks"?'<p class="muted">Workflow graphs: run <code>lpad -l my_launchpad.yaml webgui -s --host 127.0.0.1 --port 5000</code> and pass <code>--webgui-url http://127.0.0.1:5000/</code>.</p>':"");
}
async function tick(){
  try{const r=await fetch("/api/status",{cache:"no-store"});if(!r.ok)throw new Error(r.status+" "+r.statusText);render(await r.json());}
  catch(e){$("run-state").textContent="cannot reach the dashboard: "+e.message;}
}
tick();setInterval(tick,2000);
</script></body></html>
"""
