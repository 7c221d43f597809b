"""The embedded result store: :class:`SQLiteStore`, one SQLite file per screen.

It implements :class:`~ionscreen.workflows.store.ResultStore` (jobs, runs and log tables;
see :mod:`ionscreen.workflows.store` for the records and ids).

SQLite settings and why
-----------------------
* ``journal_mode=WAL``: a commit appends the transaction to the ``-wal`` file; readers (a
  dashboard, ``ionscreen status``) see the last committed state without blocking the writer.
* ``synchronous=NORMAL`` (default) or ``FULL`` (``durable=True``). In WAL mode a committed
  transaction has been written to the WAL file by ``write()`` before ``COMMIT`` returns, so a
  SIGKILL, an out-of-memory kill, a segfault or a SLURM time-limit kill of the process loses
  nothing committed with either level: the data are in the operating system's page cache
  and reach the disk without the process. NORMAL only skips the ``fsync`` of each commit; the
  last commits before an *operating-system crash or power cut* may then roll back (the file
  is never corrupted). FULL adds one fsync per commit, which costs 1-20 ms on local disks and
  more on network file systems, as much as a whole BVSE job at 0.2 Å. A job rolled back that
  way is simply queued again and recomputed on resume, so NORMAL is the default.
* WAL needs every process that opens the file to be on the same machine (shared memory).
  Keep the store on a local or node-shared file system and open it from one node (under MPI
  only rank 0 opens it); read-only readers on that node are fine.
* ``busy_timeout=30 s``: another short-lived writer (e.g. ``ionscreen status --retry``)
  waits instead of failing.

Only one engine run may write to a store at a time: :meth:`SQLiteStore.begin_run` takes an
advisory ``flock`` on ``<store>.lock`` that the kernel releases when the process dies, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ionscreen.errors import IonscreenError

from .store import STATES, Job, JobRecord, RawJSON, ResultStore, StoreBusyError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id       TEXT PRIMARY KEY,
    step     TEXT NOT NULL,
    input    TEXT,
    state    TEXT NOT NULL DEFAULT 'queued'
             CHECK (state IN ('queued', 'running', 'done', 'failed')),
    result   TEXT,
    error    TEXT,
    reason   TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker   TEXT,
    created  REAL,
    started  REAL,
    finished REAL,
    seconds  REAL
);
CREATE INDEX IF NOT EXISTS jobs_step_state ON jobs (step, state);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS runs (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    started  REAL,
    finished REAL,
    argv     TEXT,
    host     TEXT,
    pid      INTEGER,
    settings TEXT
);
CREATE TABLE IF NOT EXISTS log (
    time    REAL,
    level   TEXT,
    message TEXT
);
"""
_SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of an ionscreen store ("ISCR"): tells it from other SQLite files.
APPLICATION_ID = 0x49534352
_OUR_TABLES = {"jobs", "runs", "log", "sqlite_sequence"}
_SQLITE_HEADER = b"SQLite format 3\x00"
_COLS = "id, step, input, state, result, error, reason, attempts, worker, created, started, " \
        "finished, seconds"


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps_result(result: Any) -> str:
    if isinstance(result, RawJSON):
        return str(result)
    # NaN/inf are allowed (e.g. an infinite percolation barrier); Python reads them back.
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)


#: File name of the store in a run folder (``ionscreen screen --out DIR``).
STORE_NAME = "ionscreen.sqlite"


def _not_ours(path: Path, what: str) -> IonscreenError:
    return IonscreenError(
        f"{path} is not an ionscreen result store ({what}); ionscreen will not write into it or "
        "overwrite it. Move it away, or give the run another folder (--out DIR).")


def _refuse_foreign_file(path: Path) -> None:
    """A file that is not SQLite at all (corrupted, or something else with the store's name)."""
    if path.is_dir():
        raise _not_ours(path, "a directory")
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
        if head != _SQLITE_HEADER:
            raise _not_ours(path, "not a SQLite database file: corrupted, or another kind of file")


def _refuse_foreign_database(db: sqlite3.Connection, path: Path) -> None:
    """A SQLite database of something else (other tables, another application id), or one
    too damaged to read: refused before anything is written."""
    try:
        app = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _not_ours(path, f"SQLite cannot read it: {exc}") from None
    if app not in (0, APPLICATION_ID) or not tables <= _OUR_TABLES:
        other = ", ".join(sorted(tables - _OUR_TABLES)) or f"application id {app:#x}"
        raise _not_ours(path, f"a SQLite database of something else: {other}")


def lock_store(path: str | os.PathLike[str]) -> int:
    """Take the writer's lock of the store at ``path`` (``<path>.lock``, flock): its file
    descriptor, held until closed. Raises :class:`StoreBusyError` when another run holds it."""
    import fcntl

    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreBusyError(
            f"another run is writing to {path} (lock {path}.lock is held); "
            "wait for it to end or use another --store") from None
    return fd


class SQLiteStore(ResultStore):
    """The embedded result store: one SQLite file in WAL mode (see the module docstring).

    ``SQLiteStore(path)`` opens (and creates) it for writing; ``SQLiteStore(path,
    readonly=True)`` or :meth:`open_readonly` opens an existing store read-only
    (``file:...?mode=ro``), safe while a run writes. One connection per process; every
    method is a short transaction, committed before it returns.
    """

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False,
                 durable: bool = False, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fd: int | None = None
        _refuse_foreign_file(self.path)
        if readonly:
            if not self.path.exists():
                raise IonscreenError(f"no result store at {self.path}")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            _refuse_foreign_database(self._db, self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit; a single statement is its own transaction, and
        # several statements are grouped explicitly with BEGIN IMMEDIATE ... COMMIT.
        self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        _refuse_foreign_database(db, self.path)
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise IonscreenError(f"{self.path}: the file system does not allow SQLite WAL mode "
                                 f"(got {mode}); put the result store on a local disk")
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        db.execute("PRAGMA foreign_keys = ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise IonscreenError(f"{self.path} was written by a newer ionscreen "
                                 f"(store schema {version} > {_SCHEMA_VERSION}); upgrade")
        with self._transaction():
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> SQLiteStore:
        return cls(path, readonly=True)

    # ---- plumbing
    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type: Any, *rest: Any) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _transaction(self) -> SQLiteStore._Tx:
        if self.readonly:
            raise IonscreenError(f"{self.path} was opened read-only")
        return SQLiteStore._Tx(self._db)

    def _write(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        if self.readonly:
            raise IonscreenError(f"{self.path} was opened read-only")
        return self._db.execute(sql, params)  # autocommit: committed on return

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if getattr(self, "_db", None) is not None:
            self._db.close()
            self._db = None  # type: ignore[assignment]

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ---- runs and log
    def begin_run(self, argv: Sequence[str] | None = None,
                  settings: Mapping[str, Any] | None = None) -> int:
        if self._lock_fd is None:
            self._lock_fd = lock_store(self.path)
        cur = self._write(
            "INSERT INTO runs (started, argv, host, pid, settings) VALUES (?, ?, ?, ?, ?)",
            (time.time(), json.dumps(list(argv if argv is not None else sys.argv)),
             socket.gethostname(), os.getpid(),
             json.dumps(dict(settings or {}), default=str)))
        return int(cur.lastrowid)

    def end_run(self, run_id: int) -> None:
        self._write("UPDATE runs SET finished = ? WHERE id = ?", (time.time(), run_id))
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def runs(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, started, finished, argv, host, pid, settings FROM runs ORDER BY id")
        return [{"id": r[0], "started": r[1], "finished": r[2], "argv": _loads(r[3]),
                 "host": r[4], "pid": r[5], "settings": _loads(r[6])} for r in rows]

    def log(self, level: str, message: str) -> None:
        self._write("INSERT INTO log (time, level, message) VALUES (?, ?, ?)",
                    (time.time(), level.upper(), message))

    def log_lines(self, level: str | None = None) -> list[tuple[float, str, str]]:
        if level is None:
            return list(self._db.execute("SELECT time, level, message FROM log ORDER BY rowid"))
        return list(self._db.execute(
            "SELECT time, level, message FROM log WHERE level = ? ORDER BY rowid",
            (level.upper(),)))

    # ---- jobs
    def add_jobs(self, jobs: Iterable[Job]) -> int:
        now = time.time()
        rows = [(j.id, j.step, json.dumps(j.input, separators=(",", ":"), ensure_ascii=False),
                 now) for j in jobs]
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO jobs (id, step, input, state, created) "
                           "VALUES (?, ?, ?, 'queued', ?)", rows)
            return db.total_changes - before

    def requeue_running(self, max_attempts: int | None = None) -> tuple[int, int]:
        with self._transaction() as db:
            failed = 0
            if max_attempts is not None:
                failed = db.execute(
                    "UPDATE jobs SET state = 'failed', error = 'WorkerDied', reason = "
                    "'the process running this job died ' || attempts || ' times (killed, out "
                    "of memory or crashed); not started again (retry with --retry-failed)', "
                    "finished = ? WHERE state = 'running' AND attempts >= ?",
                    (time.time(), max_attempts)).rowcount
            requeued = db.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL WHERE state = 'running'"
            ).rowcount
        return requeued, failed

    def pending(self, step: str | None = None) -> list[Job]:
        sql = "SELECT id, step, input FROM jobs WHERE state IN ('queued', 'running')"
        params: tuple[Any, ...] = ()
        if step is not None:
            sql += " AND step = ?"
            params = (step,)
        return [Job(r[0], r[1], _loads(r[2])) for r in self._db.execute(sql + " ORDER BY rowid",
                                                                          params)]

    def states(self, ids: Iterable[str]) -> dict[str, str]:
        ids = list(ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = f"SELECT id, state FROM jobs WHERE id IN ({','.join('?' * len(chunk))})"
            out.update(self._db.execute(q, chunk).fetchall())
        return out

    def mark_running(self, ids: str | Iterable[str], worker: str | None = None) -> None:
        now = time.time()
        sql = ("UPDATE jobs SET state = 'running', started = ?, worker = ?, "
               "attempts = attempts + 1 WHERE id = ?")
        if isinstance(ids, str):
            self._write(sql, (now, worker, ids))
            return
        ids = list(ids)
        with self._transaction() as db:
            db.executemany(sql, [(now, worker, i) for i in ids])

    def finish(self, id: str, result: Any, seconds: float, worker: str | None = None) -> None:
        cur = self._write(
            "UPDATE jobs SET state = 'done', result = ?, error = NULL, reason = NULL, "
            "finished = ?, seconds = ?, worker = COALESCE(?, worker) WHERE id = ?",
            (_dumps_result(result), time.time(), seconds, worker, id))
        if cur.rowcount != 1:
            raise KeyError(f"no job {id} in {self.path}")

    def fail(self, id: str, error_type: str, reason: str, seconds: float,
             worker: str | None = None) -> None:
        cur = self._write(
            "UPDATE jobs SET state = 'failed', result = NULL, error = ?, reason = ?, "
            "finished = ?, seconds = ?, worker = COALESCE(?, worker) WHERE id = ?",
            (error_type, reason, time.time(), seconds, worker, id))
        if cur.rowcount != 1:
            raise KeyError(f"no job {id} in {self.path}")

    def requeue(self, ids: Iterable[str]) -> int:
        with self._transaction() as db:
            return db.executemany(
                "UPDATE jobs SET state = 'queued', error = NULL, reason = NULL WHERE id = ? "
                "AND state != 'done'", [(i,) for i in ids]).rowcount

    @staticmethod
    def _record(r: Sequence[Any]) -> JobRecord:
        return JobRecord(r[0], r[1], _loads(r[2]), r[3], _loads(r[4]), r[5], r[6], r[7], r[8],
                         r[9], r[10], r[11], r[12])

    def get(self, id: str) -> JobRecord | None:
        r = self._db.execute(f"SELECT {_COLS} FROM jobs WHERE id = ?", (id,)).fetchone()
        return None if r is None else self._record(r)

    def results(self, step: str | None = None, state: str | None = "done") -> list[JobRecord]:
        where, params = [], []
        if step is not None:
            where.append("step = ?")
            params.append(step)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        sql = f"SELECT {_COLS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [self._record(r) for r in self._db.execute(sql + " ORDER BY rowid", params)]

    def recent_failures(self, limit: int) -> tuple[list[JobRecord], int]:
        rows = self._db.execute(f"SELECT {_COLS} FROM jobs WHERE state = 'failed' ORDER BY "
                                "COALESCE(finished, 0) DESC, rowid DESC LIMIT ?", (int(limit),))
        n = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'failed'").fetchone()[0]
        return [self._record(r) for r in rows], int(n)

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for step, state, n in self._db.execute(
                "SELECT step, state, COUNT(*) FROM jobs GROUP BY step, state ORDER BY step"):
            out.setdefault(step, dict.fromkeys(STATES, 0))[state] = n
        return out
