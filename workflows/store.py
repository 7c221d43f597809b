"""Durable result stores: every finished job is committed at once, so a killed run loses nothing.

A store holds one row per job, keyed by a deterministic id (:func:`job_id`): the step name,
the input document, the result document (or the failure's type and reason), the state
(``queued`` -> ``running`` -> ``done`` | ``failed``), the attempt count, the worker that ran
it and its timings. It also holds a ``runs`` table (one row per engine run) and a ``log``
table (run start/end, resume counts, failures with tracebacks).

:class:`ResultStore` is the interface the engines use; this module holds it with the job
records, their states, the deterministic ids and the store errors. The implementations:
:class:`~ionscreen.workflows.store_sqlite.SQLiteStore`, the embedded default, and :class:`~ionscreen.workflows.store_mongo.MongoStore` for the FireWorks engine.
"""

from __future__ import annotations

import abc
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ionscreen._json import jsonable
from ionscreen.errors import IonscreenError

STATES = ("queued", "running", "done", "failed")
ID_HEX_CHARS = 24  # 96 bits: a collision among 10^9 jobs has probability ~1e-11
FLOAT_DIGITS = 10  # significant digits of floats in the id


class StoreBusyError(IonscreenError):
    """Another run is writing to the same result store."""


class RawJSON(str):
    """A result that is already JSON text (e.g. serialised in a worker process)."""


# --------------------------------------------------------------------------- ids

def _canonical_float(x: float) -> float | str:
    """10 significant digits, -0.0 as 0.0, NaN and infinities as strings."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    r = float(f"{x:.{FLOAT_DIGITS}g}")
    return 0.0 if r == 0 else r


def canonical(obj: Any) -> Any:
    """A JSON-able copy of ``obj`` whose serialisation does not depend on float noise or order."""
    return jsonable(obj, floats=_canonical_float)


def canonical_json(obj: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, floats to 10 significant digits,
    NaN/inf as strings, numpy values as lists. Equal documents give equal text."""
    return json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def job_id(step: str, doc: Any, settings: Any = None, version: str = "") -> str:
    """Deterministic id of running ``step`` (at ``version``) on ``doc`` with ``settings``.

    ``sha256(canonical_json({"step", "version", "input", "settings"}))``, first 24 hex digits.
    Floats are rounded to 10 significant digits first, so the same structure read twice (or
    written by another code with last-digit noise) gives the same id; key order does not
    matter. A changed step version, input or setting gives a new id, hence a new job; an
    unchanged one finds its earlier result.
    """
    key = {"step": step, "version": str(version), "input": doc, "settings": settings}
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()[:ID_HEX_CHARS]


# --------------------------------------------------------------------------- records

@dataclass(frozen=True)
class Job:
    """A unit of work: run step ``step`` on ``input``. ``id`` is :func:`job_id` of both."""

    id: str
    step: str
    input: dict[str, Any]


@dataclass
class JobRecord:
    """One row of the jobs table, JSON columns parsed."""

    id: str
    step: str
    input: dict[str, Any] | None
    state: str
    result: Any
    error: str | None
    reason: str | None
    attempts: int
    worker: str | None
    created: float | None
    started: float | None
    finished: float | None
    seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- interface

class ResultStore(abc.ABC):
    """What an engine needs from a result store. Every write is committed when it returns."""

    # runs and log
    @abc.abstractmethod
    def begin_run(self, argv: Sequence[str] | None = None,
                  settings: Mapping[str, Any] | None = None) -> int:
        """Record a run's start (and claim the store for it); returns the run id."""

    @abc.abstractmethod
    def end_run(self, run_id: int) -> None:
        """Record the run's end and release the store."""

    @abc.abstractmethod
    def log(self, level: str, message: str) -> None:
        """Append a line to the store's log."""

    # jobs
    @abc.abstractmethod
    def add_jobs(self, jobs: Iterable[Job]) -> int:
        """Insert jobs as ``queued``; an id already present is left as it is. Returns how
        many were new."""

    @abc.abstractmethod
    def requeue_running(self, max_attempts: int | None = None) -> tuple[int, int]:
        """Put jobs left ``running`` by a killed run back in the queue. A job that was already
        started ``max_attempts`` times (it may be what kills the process) is marked failed
        instead. Returns (requeued, failed)."""

    @abc.abstractmethod
    def pending(self, step: str | None = None) -> list[Job]:
        """Jobs still to run: ``queued`` ones and ``running`` ones left over by a killed run."""

    @abc.abstractmethod
    def states(self, ids: Iterable[str]) -> dict[str, str]:
        """State of each id present in the store."""

    @abc.abstractmethod
    def mark_running(self, ids: str | Iterable[str], worker: str | None = None) -> None:
        """Mark jobs started (``attempts`` + 1)."""

    @abc.abstractmethod
    def finish(self, id: str, result: Any, seconds: float, worker: str | None = None) -> None:
        """Store a job's result and mark it ``done`` (committed on return)."""

    @abc.abstractmethod
    def fail(self, id: str, error_type: str, reason: str, seconds: float,
             worker: str | None = None) -> None:
        """Store a job's failure and mark it ``failed`` (committed on return)."""

    @abc.abstractmethod
    def requeue(self, ids: Iterable[str]) -> int:
        """Put (failed) jobs back in the queue, keeping their attempt count."""

    @abc.abstractmethod
    def get(self, id: str) -> JobRecord | None:
        """One job, or None."""

    @abc.abstractmethod
    def results(self, step: str | None = None, state: str | None = "done") -> list[JobRecord]:
        """Jobs of a step (all steps if None) in a state (all if None), in insertion order."""

    @abc.abstractmethod
    def counts(self) -> dict[str, dict[str, int]]:
        """``{step: {state: n}}`` for every step and state (zeros included)."""

    def failures(self, step: str | None = None) -> list[JobRecord]:
        """Failed jobs with their error type and reason."""
        return self.results(step, state="failed")

    def recent_failures(self, limit: int) -> tuple[list[JobRecord], int]:
        """The ``limit`` most recently finished failed jobs, latest first, and how many failed
        jobs there are (what a dashboard refreshing every few seconds reads; stores override
        it with a query that does not load every failure)."""
        bad = self.failures()
        bad.sort(key=lambda r: r.finished or 0, reverse=True)
        return bad[:limit], len(bad)

    def close(self) -> None:  # noqa: B027 (optional to override)
        """Release the store's resources."""

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

