"""What the live dashboard of a screen shows: :class:`Dashboard`, computed from a result store.

The status document (``/api/status``: job counts by step and state, done/total, throughput
(jobs/h) and ETA (an estimate that includes the NEB and voltage jobs not queued yet, see
:mod:`ionscreen.workflows.progress`), the recent failures with their reasons, the current top
candidates per ion with their descriptors and barrier tier, the run's start time and state,
the export links), the barrier-vs-capacity plot of each ion's ranked hosts (the report's figure,
:func:`ionscreen.screening.plots.barrier_capacity_figure`) and the exports in the run folder.
The web server around it (``ionscreen dashboard --store ...``) is
:mod:`ionscreen.workflows.dashboard_server`.

Safe while a run writes: a SQLite store is opened read-only (``mode=ro``, WAL readers never
block the writer) for each request and closed after it; a MongoDB store is one pymongo client
(thread-safe) used with reads only. The ranking is recomputed only when the counts change,
from the BVSE (and NEB) jobs done so far; any error there is shown on the page instead of
breaking it. A store that does not exist yet, has no tables yet or cannot be read is a
status document saying so (``ready: false``), never an HTTP error.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ionscreen._json import jsonable
from ionscreen.errors import IonscreenError
from ionscreen.screening.export import flat_record
from ionscreen.screening.plots import barrier_capacity_figure

from .progress import Timings, eta_note, pending_jobs, throughput, work_eta
from .store import STATES, ResultStore
from .store_sqlite import STORE_NAME, SQLiteStore

EXPORT_RE = re.compile(r"^(ranked_[A-Za-z0-9]{1,8}\.(csv|json)|report\.html|top_cifs\.zip|"
                       r"failures\.csv)$")
"""The only files ``/exports/`` serves (from the run folder, never below or above it)."""
RECENT_FAILURES = 20
PLOT_SIZE = (4.8, 3.4)
"""Inches of the barrier-vs-capacity plot (the page shows it at 480 x 340 px)."""


class DashboardError(IonscreenError):
    """The dashboard cannot start as asked (bad store, missing password, ...)."""


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


def run_state(last: dict[str, Any] | None, remaining: int, total: int) -> str:
    """"running", "finished", "stopped" or "empty", from the last run's record (None: a store
    without a runs table) and the jobs left."""
    if last is not None:
        alive = last.get("finished") is None and (
            last.get("host") != socket.gethostname() or _pid_alive(last.get("pid")))
        state = "running" if alive else ("finished" if last.get("finished") else "stopped")
    else:
        state = "running" if remaining else ("finished" if total else "empty")
    return "finished" if state == "stopped" and remaining == 0 else state


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
        self._bvse_key: Any = None
        self._bvse_ions: dict[str, int] = {}
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
        """The store for one request (None while a SQLite store or its tables do not exist yet)."""
        if self._store_obj is not None:
            yield self._store_obj
            return
        assert self._sqlite_path is not None
        if not self._sqlite_path.exists():
            yield None
            return
        store = SQLiteStore.open_readonly(self._sqlite_path)
        try:
            # the run creates the file a moment before its tables (written in one transaction
            # that sets user_version last): until then there is nothing to read
            ready = store._db.execute("PRAGMA user_version").fetchone()[0] > 0
            yield store if ready else None
        finally:
            store.close()

    # ---- pieces of the status
    @staticmethod
    def _timings(store: ResultStore) -> Timings:
        """Finish times and seconds of the finished jobs, the earliest start, step means."""
        if isinstance(store, SQLiteStore):
            db = store._db  # a few cheap queries instead of loading every document
            fin = db.execute("SELECT finished, COALESCE(seconds, 0) FROM jobs WHERE state IN "
                             "('done', 'failed') AND finished IS NOT NULL").fetchall()
            first = db.execute("SELECT MIN(started) FROM jobs").fetchone()[0]
            means = db.execute("SELECT step, AVG(seconds) FROM jobs WHERE state = 'done' AND "
                               "seconds IS NOT NULL GROUP BY step").fetchall()
            return Timings([tuple(r) for r in fin], first, dict(means))
        recs = store.results(None, state=None)
        fin = [(r.finished, r.seconds or 0.0) for r in recs
               if r.state in ("done", "failed") and r.finished]
        starts = [r.started for r in recs if r.started]
        by_step: dict[str, list[float]] = {}
        for r in recs:
            if r.state == "done" and r.seconds is not None:
                by_step.setdefault(r.step, []).append(r.seconds)
        return Timings(fin, min(starts) if starts else None,
                       {k: statistics.fmean(v) for k, v in by_step.items()})

    def _bvse_by_ion(self, store: ResultStore, counts: dict[str, dict[str, int]]
                     ) -> dict[str, int]:
        """BVSE jobs not failed per working ion (cached until BVSE jobs are added or fail)."""
        bvse = counts.get("bvse", {})
        key = (sum(bvse.values()), bvse.get("failed", 0))
        if key != self._bvse_key:
            if isinstance(store, SQLiteStore):
                rows = store._db.execute(
                    "SELECT json_extract(input, '$.candidate.working_ion'), COUNT(*) FROM jobs "
                    "WHERE step = 'bvse' AND state != 'failed' GROUP BY 1").fetchall()
                self._bvse_ions = {str(ion): n for ion, n in rows}
            else:
                ions = [((r.input or {}).get("candidate") or {}).get("working_ion")
                        for r in store.results("bvse", state=None) if r.state != "failed"]
                self._bvse_ions = {str(i): ions.count(i) for i in set(ions)}
            self._bvse_key = key
        return self._bvse_ions

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
        from .screen import origin

        o = origin(rec.step, rec.input or {})
        return {"step": rec.step, "job_id": rec.id, "formula": o["formula"], "ion": o["ion"],
                "source": o["source"], "error": rec.error, "reason": rec.reason,
                "attempts": rec.attempts, "finished": rec.finished}

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
        return {ion: [flat_record(h) for h in hosts[: self.top]] for ion, hosts in self._ranked.items()}

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
    def _waiting(self, problem: str | None = None) -> dict[str, Any]:
        """The status part while a SQLite store or its tables do not exist yet, or while it
        cannot be read (``problem`` says why)."""
        msg = f"{problem} (polling again)" if problem else (
            f"waiting for {self._sqlite_path} (the run has not started yet)")
        return {"ready": False, "state": "unreadable" if problem else "waiting", "message": msg,
                "counts": {}, "totals": dict.fromkeys(STATES, 0), "done": 0, "total": 0,
                "remaining": 0, "top": {}, "failures": [], "n_failures": 0,
                "exports": self.exports()}

    def _progress(self, store: ResultStore, counts: dict[str, dict[str, int]], now: float
                  ) -> dict[str, Any]:
        """Job totals, the run's state and start/end, throughput and ETA (with the jobs of the
        dynamic stages still to come while the run is running)."""
        totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in STATES}
        total = sum(totals.values())
        finished = totals["done"] + totals["failed"]
        remaining = totals["queued"] + totals["running"]
        timings = self._timings(store)
        runs = self._runs(store)
        last = runs[-1] if runs else None
        run_start = (last or {}).get("started") or timings.first_start
        run_end = (last or {}).get("finished")
        settings = (last or {}).get("settings") or {}
        state = run_state(last, remaining, total)
        rate, eta, elapsed = throughput([t for t, _ in timings.finished], run_start, run_end,
                                        state, remaining, now)
        pending: dict[str, int] = {}
        if state == "running":
            pending = pending_jobs(settings, counts, self._bvse_by_ion(store, counts))
            left = {step: c.get("queued", 0) + c.get("running", 0) for step, c in counts.items()}
            for step, n in pending.items():
                left[step] = left.get(step, 0) + n
            est = work_eta(left, timings.mean_s, timings.run_seconds(run_start),
                           elapsed)
            eta = eta if est is None else est
        return {"state": state, "counts": counts, "totals": totals, "done": finished,
                "done_ok": totals["done"], "total": total, "remaining": remaining,
                "pending": sum(pending.values()), "pending_by_step": pending,
                "fraction": (finished / total) if total else 0.0, "throughput_jobs_per_h": rate,
                "eta_s": eta, "eta_note": eta_note(pending, timings.mean_s, settings),
                "elapsed_s": elapsed, "run_start": run_start, "run_end": run_end,
                "run_argv": (last or {}).get("argv"), "n_runs": len(runs)}

    def _failures(self, store: ResultStore) -> dict[str, Any]:
        """The most recent failures first, and how many there are."""
        recent, n = store.recent_failures(RECENT_FAILURES)
        return {"failures": [self._failure(r) for r in recent], "n_failures": n}

    def status(self) -> dict[str, Any]:
        """The ``/api/status`` document (plain JSON, no NaN)."""
        now = time.time()
        doc: dict[str, Any] = {"time": now, "store": self.description, "engine": (
            "local" if self._sqlite_path is not None else "fireworks"),
            "webgui_url": self.webgui_url, "top_n": self.top}
        try:
            with self._lock, self.open_store() as store:
                if store is None:
                    return jsonable({**doc, **self._waiting()})
                counts = store.counts()
                doc.update(ready=True, **self._progress(store, counts, now),
                           **self._failures(store))
                self._rank(store, (counts, doc["total"]))
                doc.update(top=self._top(), ranking_error=self._rank_error,
                           exports=self.exports(),
                           plot_key=abs(hash(json.dumps(counts, sort_keys=True))) % 10**9)
        except (sqlite3.Error, IonscreenError) as exc:  # not (yet) a store: say so, poll again
            if self._sqlite_path is None:
                raise
            problem = str(exc) if isinstance(exc, IonscreenError) else (
                f"cannot read {self._sqlite_path}: {type(exc).__name__}: {exc}")
            return jsonable({**doc, **self._waiting(problem)})
        return jsonable(doc)

    def plot_png(self, ion: str) -> bytes | None:
        """Barrier vs capacity of ``ion``'s ranked hosts, Pareto front marked (None: no ion)."""
        with self._lock:
            if ion not in self._ranked:
                return None
            key = (self._cache_key is not None and json.dumps(self._cache_key[0], sort_keys=True), ion)
            if key not in self._plots:
                hosts = self._ranked[ion]
                self._plots[key] = barrier_capacity_figure(
                    ion, [h.record.formula for h in hosts], [h.barrier for h in hosts],
                    [h.capacity_mAh_g for h in hosts], [h.barrier_tier for h in hosts],
                    [h.pareto for h in hosts], [h.sustainability_score for h in hosts],
                    figsize=PLOT_SIZE)
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
