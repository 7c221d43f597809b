"""A result store on a MongoDB collection (the FireWorks engine's store), and ``open_store``.

:class:`MongoStore` implements :class:`~ionscreen.workflows.store.ResultStore` on a pymongo
collection: one document per job,

``{_id: job id, step, input, state, result, error, reason, attempts, worker, created,
started, finished, seconds, seq, candidate_id, working_ion, formula, summary}``

(``input`` and ``result`` are the JSON documents of the job, stored as BSON; ``seq`` gives the
insertion order; ``candidate_id`` / ``working_ion`` / ``formula`` / ``summary`` are copies for
queries and dashboards). Runs, the log and counters live in ``<collection>_runs``,
``<collection>_log`` and ``<collection>_meta`` of the same database.

Every method is one or a few single-document atomic writes, acknowledged before it returns,
so any number of FireWorks workers may write at once (unlike SQLite, there is no run lock:
``begin_run`` records the run but claims nothing). It accepts a ``mongodb://`` /
``mongodb+srv://`` URI (``MongoStore("mongodb://host/db?collection=jobs")``; the ``collection``
query parameter is ionscreen's and is removed before pymongo sees the URI) or a collection
object: a pymongo one, a LaunchPad's (``lp.db["ionscreen_jobs"]``), or a mongomock one in tests.

:func:`open_store` turns what a user passes as ``--store`` into a store: a screen's folder or
its ``ionscreen.sqlite`` (SQLite), a ``mongodb://`` URI, or a FireWorks launchpad file
(``my_launchpad.yaml``: the ``ionscreen_jobs`` collection of the launchpad's database).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ionscreen.errors import IonscreenError

from .store import STATES, Job, JobRecord, RawJSON, ResultStore
from .store_sqlite import STORE_NAME, SQLiteStore

DEFAULT_COLLECTION = "ionscreen_jobs"
"""Collection of the launchpad's database used by ``ionscreen submit`` by default."""

_FIELDS = ("_id", "step", "input", "state", "result", "error", "reason", "attempts", "worker",
           "created", "started", "finished", "seconds")


def split_mongo_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``mongodb://h/db?collection=c&x=1`` -> (``mongodb://h/db?x=1``, ``"db"``, ``"c"``)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    coll = None
    kept = []
    for k, v in query:
        if k == "collection":
            coll = v
        else:
            kept.append((k, v))
    db = parts.path.lstrip("/") or None
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))
    return clean, db, coll


# Not ionscreen._json.jsonable: this must accept and refuse exactly what SQLiteStore's json.dumps
# does (a set or a numpy array is an error in both stores), and keep NaN.
def _plain(result: Any) -> Any:
    """The JSON document of a result (RawJSON text parsed; tuples, numpy scalars... normalised
    as ``json`` does). NaN and infinities survive (BSON doubles hold them)."""
    if isinstance(result, RawJSON):
        return json.loads(str(result))
    return json.loads(json.dumps(result, separators=(",", ":"), ensure_ascii=False))


class MongoStore(ResultStore):
    """The :class:`ResultStore` interface on a MongoDB collection (see the module docstring).

    Parameters
    ----------
    uri_or_collection:
        A ``mongodb://`` or ``mongodb+srv://`` URI (a database in its path and a
        ``collection=`` query parameter override ``database`` / ``collection``), or a
        collection object (pymongo or mongomock), used as it is.
    database, collection:
        Names used with a URI that does not give them.
    client_kwargs:
        Extra keyword arguments of ``pymongo.MongoClient`` (TLS, timeouts ...).
    """

    def __init__(self, uri_or_collection: Any, database: str = "ionscreen",
                 collection: str = "jobs", *, client_kwargs: Mapping[str, Any] | None = None
                 ) -> None:
        self._client = None
        if isinstance(uri_or_collection, str):
            if not uri_or_collection.startswith(("mongodb://", "mongodb+srv://")):
                raise IonscreenError(f"'{uri_or_collection}' is not a MongoDB URI "
                                     "(mongodb://host[:port]/database?collection=name)")
            import pymongo

            uri, db_name, coll_name = split_mongo_uri(uri_or_collection)
            kwargs = dict(client_kwargs or {})
            if "serverselectiontimeoutms" not in uri.lower():
                # an unreachable server is said within 10 s, not pymongo's 30 s
                kwargs.setdefault("serverSelectionTimeoutMS", 10_000)
            self._client = pymongo.MongoClient(uri, **kwargs)
            coll = self._client[db_name or database][coll_name or collection]
            self.where = f"{uri_or_collection.split('@')[-1].split('?')[0]} " \
                         f"collection {coll_name or collection}"
        else:
            coll = uri_or_collection
            self.where = f"{coll.database.name}.{coll.name}"
        self.jobs = coll
        db = coll.database
        self._runs = db[f"{coll.name}_runs"]
        self._log = db[f"{coll.name}_log"]
        self._meta = db[f"{coll.name}_meta"]
        try:  # the first round trip: an unreachable or refusing server is said here, clearly
            self.jobs.create_index([("step", 1), ("state", 1)])
            self.jobs.create_index([("state", 1)])
            self.jobs.create_index([("seq", 1)])
        except Exception as exc:
            if not type(exc).__module__.startswith("pymongo"):
                raise
            self.close()
            first = str(exc).split(" (configured timeouts", 1)[0].split(", Timeout:", 1)[0]
            raise IonscreenError(
                f"cannot use the MongoDB store {self.where}: {type(exc).__name__}: {first}. Check "
                "the host, port, user and password of the URI or launchpad file, that the server "
                "runs, and that this node reaches it (on a cluster, often only through an SSH "
                "tunnel or from the login node)") from exc

    def __repr__(self) -> str:
        return f"MongoStore({self.where})"

    # ---- plumbing
    def _next(self, counter: str, n: int = 1) -> int:
        """Atomically reserve ``n`` numbers of a counter; returns the last one."""
        from pymongo import ReturnDocument

        doc = self._meta.find_one_and_update({"_id": counter}, {"$inc": {"n": n}}, upsert=True,
                                             return_document=ReturnDocument.AFTER)
        return int(doc["n"])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- runs and log
    def begin_run(self, argv: Sequence[str] | None = None,
                  settings: Mapping[str, Any] | None = None) -> int:
        import socket
        import sys

        run_id = self._next("runs")
        self._runs.insert_one({"_id": run_id, "started": time.time(), "finished": None,
                               "argv": list(argv if argv is not None else sys.argv),
                               "host": socket.gethostname(), "pid": os.getpid(),
                               "settings": json.loads(json.dumps(dict(settings or {}),
                                                                 default=str))})
        return run_id

    def end_run(self, run_id: int) -> None:
        self._runs.update_one({"_id": run_id}, {"$set": {"finished": time.time()}})

    def runs(self) -> list[dict[str, Any]]:
        return [{"id": d.pop("_id"), **d} for d in self._runs.find().sort("_id", 1)]

    def log(self, level: str, message: str) -> None:
        self._log.insert_one({"time": time.time(), "level": level.upper(), "message": message})

    def log_lines(self, level: str | None = None) -> list[tuple[float, str, str]]:
        q = {} if level is None else {"level": level.upper()}
        return [(d["time"], d["level"], d["message"])
                for d in self._log.find(q).sort([("time", 1), ("_id", 1)])]

    # ---- jobs
    def add_jobs(self, jobs: Iterable[Job]) -> int:
        from pymongo.errors import BulkWriteError

        unique: dict[str, Job] = {}
        for j in jobs:
            unique.setdefault(j.id, j)
        if not unique:
            return 0
        last = self._next("seq", len(unique))
        now = time.time()
        docs = []
        for k, j in enumerate(unique.values()):
            doc = {"_id": j.id, "step": j.step, "input": _plain(j.input), "state": "queued", "result": None,
                   "error": None, "reason": None, "attempts": 0, "worker": None,
                   "created": now, "started": None, "finished": None, "seconds": None,
                   "seq": last - len(unique) + 1 + k}
            cand = j.input.get("candidate") if isinstance(j.input, Mapping) else None
            if isinstance(cand, Mapping):
                doc.update(candidate_id=cand.get("id"), working_ion=cand.get("working_ion"),
                           formula=cand.get("formula"))
            docs.append(doc)
        # unordered insert: ids already present fail with a duplicate-key error and are left
        # as they are, the others are inserted
        try:
            return len(self.jobs.insert_many(docs, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            other = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
            if other:
                raise
            return int(exc.details.get("nInserted", 0))

    def requeue_running(self, max_attempts: int | None = None) -> tuple[int, int]:
        failed = 0
        if max_attempts is not None:
            for d in self.jobs.find({"state": "running", "attempts": {"$gte": max_attempts}},
                                    {"attempts": 1}):
                r = self.jobs.update_one(
                    {"_id": d["_id"], "state": "running"},
                    {"$set": {"state": "failed", "error": "WorkerDied", "finished": time.time(),
                              "reason": f"the process running this job died {d['attempts']} "
                                        "times (killed, out of memory or crashed); not started "
                                        "again (retry with --retry-failed)"}})
                failed += r.modified_count
        requeued = self.jobs.update_many({"state": "running"},
                                         {"$set": {"state": "queued", "worker": None}})
        return int(requeued.modified_count), failed

    def pending(self, step: str | None = None) -> list[Job]:
        q: dict[str, Any] = {"state": {"$in": ["queued", "running"]}}
        if step is not None:
            q["step"] = step
        return [Job(d["_id"], d["step"], d["input"])
                for d in self.jobs.find(q, {"step": 1, "input": 1}).sort("seq", 1)]

    def states(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 1000):
            for d in self.jobs.find({"_id": {"$in": ids[i:i + 1000]}}, {"state": 1}):
                out[d["_id"]] = d["state"]
        return out

    def mark_running(self, ids: str | Iterable[str], worker: str | None = None) -> None:
        ids = [ids] if isinstance(ids, str) else list(ids)
        self.jobs.update_many({"_id": {"$in": ids}},
                              {"$set": {"state": "running", "started": time.time(),
                                        "worker": worker},
                               "$inc": {"attempts": 1}})

    def finish(self, id: str, result: Any, seconds: float, worker: str | None = None) -> None:
        doc = _plain(result)
        upd: dict[str, Any] = {"state": "done", "result": doc, "error": None, "reason": None,
                               "finished": time.time(), "seconds": seconds}
        if isinstance(doc, dict) and isinstance(doc.get("summary"), dict):
            upd["summary"] = doc["summary"]
        if worker is not None:
            upd["worker"] = worker
        if self.jobs.update_one({"_id": id}, {"$set": upd}).matched_count != 1:
            raise KeyError(f"no job {id} in {self.where}")

    def fail(self, id: str, error_type: str, reason: str, seconds: float,
             worker: str | None = None) -> None:
        upd: dict[str, Any] = {"state": "failed", "result": None, "error": error_type,
                               "reason": reason, "finished": time.time(), "seconds": seconds}
        if worker is not None:
            upd["worker"] = worker
        if self.jobs.update_one({"_id": id}, {"$set": upd}).matched_count != 1:
            raise KeyError(f"no job {id} in {self.where}")

    def requeue(self, ids: Iterable[str]) -> int:
        r = self.jobs.update_many({"_id": {"$in": list(ids)}, "state": {"$ne": "done"}},
                                  {"$set": {"state": "queued", "error": None, "reason": None}})
        return int(r.modified_count)

    @staticmethod
    def _record(d: Mapping[str, Any]) -> JobRecord:
        return JobRecord(*(d.get(f) for f in _FIELDS[:7]), int(d.get("attempts") or 0),
                         *(d.get(f) for f in _FIELDS[8:]))

    def get(self, id: str) -> JobRecord | None:
        d = self.jobs.find_one({"_id": id})
        return None if d is None else self._record(d)

    def results(self, step: str | None = None, state: str | None = "done") -> list[JobRecord]:
        q: dict[str, Any] = {}
        if step is not None:
            q["step"] = step
        if state is not None:
            q["state"] = state
        return [self._record(d) for d in self.jobs.find(q).sort("seq", 1)]

    def recent_failures(self, limit: int) -> tuple[list[JobRecord], int]:
        q = {"state": "failed"}
        n = int(self.jobs.count_documents(q))
        if limit <= 0:  # Mongo's limit(0) means no limit
            return [], n
        docs = self.jobs.find(q).sort([("finished", -1), ("seq", -1)]).limit(int(limit))
        return [self._record(d) for d in docs], n

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        groups = self.jobs.aggregate([{"$group": {"_id": {"step": "$step", "state": "$state"},
                                                  "n": {"$sum": 1}}}])
        for g in sorted(groups, key=lambda g: (g["_id"]["step"], g["_id"]["state"])):
            out.setdefault(g["_id"]["step"], dict.fromkeys(STATES, 0))[g["_id"]["state"]] = \
                int(g["n"])
        return dict(sorted(out.items()))


def _launchpad_collection(path: str | os.PathLike[str], collection: str = DEFAULT_COLLECTION
                          ) -> Any:
    try:
        from fireworks import LaunchPad
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise IonscreenError("a launchpad file needs FireWorks: pip install fireworks") from exc
    return LaunchPad.from_file(str(path)).db[collection]


def open_store(spec: Any, *, readonly: bool = True, collection: str | None = None
               ) -> ResultStore:
    """A result store from what a user passes as ``--store``.

    * a :class:`ResultStore`: returned as it is;
    * ``mongodb://...`` / ``mongodb+srv://...``: :class:`MongoStore` (database from the URI's
      path, else ``ionscreen``; collection from ``?collection=``, else ``collection`` or
      ``ionscreen_jobs``);
    * a FireWorks launchpad file (``*.yaml`` / ``*.yml``): :class:`MongoStore` on the
      ``ionscreen_jobs`` collection of the launchpad's database (what ``ionscreen submit``
      writes to by default);
    * a screen's output folder or its ``ionscreen.sqlite``: :class:`SQLiteStore`, read-only
      unless ``readonly=False`` (then created if missing).
    """
    if isinstance(spec, ResultStore):
        return spec
    text = os.fspath(spec)
    coll = collection or DEFAULT_COLLECTION
    if text.startswith(("mongodb://", "mongodb+srv://")):
        return MongoStore(text, collection=coll)
    p = Path(text)
    if p.suffix.lower() in (".yaml", ".yml"):
        if not p.is_file():
            raise IonscreenError(f"no launchpad file at {p}")
        return MongoStore(_launchpad_collection(p, coll))
    if p.is_dir() or (not p.suffix and not p.exists()):
        p = p / STORE_NAME
    if readonly:
        if not p.exists():
            raise IonscreenError(f"no result store at {p} (run `ionscreen screen --out DIR` "
                                 "first, or pass a mongodb:// URI or a launchpad file)")
        return SQLiteStore.open_readonly(p)
    return SQLiteStore(p)


__all__ = ["MongoStore", "open_store", "split_mongo_uri", "DEFAULT_COLLECTION"]
