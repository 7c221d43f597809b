"""Running one job, shared by every engine: :func:`execute` (anywhere: this process, a pool
worker, an MPI rank, a Firework) and :func:`run_job` (through a result store)."""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
from typing import TYPE_CHECKING, Any, NamedTuple

from ionscreen.errors import IonscreenError

from .store import Job, RawJSON, ResultStore

if TYPE_CHECKING:
    from .plan import Step


class Outcome(NamedTuple):
    """What running a job gave: ``payload`` is the result as JSON text when ``ok``, else
    ``(error type, reason, traceback or None)``. Plain tuples, so it travels between
    processes and MPI ranks."""

    ok: bool
    payload: Any
    seconds: float
    worker: str


def worker_name() -> str:
    """``host:pid`` of this process (recorded with every result)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def short_traceback(exc: BaseException, frames: int = 6) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__,
                                              limit=-frames)).rstrip()


def execute(step: Step, doc: dict[str, Any]) -> Outcome:
    """Run ``step`` on ``doc``; never raises ``Exception``. The result is serialised here, so a
    result that is not JSON fails the job where it was made, and only text travels back.

    A user error (:class:`IonscreenError`) keeps its message as the reason; other exceptions
    (bugs rather than bad input) bring a short traceback along for the run log.
    """
    t0 = time.perf_counter()
    try:
        result = step.fn(doc)
    except IonscreenError as exc:
        return Outcome(False, (type(exc).__name__, str(exc) or type(exc).__name__, None),
                       time.perf_counter() - t0, worker_name())
    except Exception as exc:
        return Outcome(False, (type(exc).__name__, str(exc) or repr(exc), short_traceback(exc)),
                       time.perf_counter() - t0, worker_name())
    seconds = time.perf_counter() - t0
    try:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return Outcome(False, ("ResultNotJSON", f"the step returned a result that is not JSON: "
                               f"{exc}", None), seconds, worker_name())
    return Outcome(True, text, seconds, worker_name())


def failed(error: str, reason: str, worker: str) -> Outcome:
    """The outcome of a job that could not run at all (not sent, worker died)."""
    return Outcome(False, (error, reason, None), 0.0, worker)


def run_job(store: ResultStore, step: Step, doc: dict[str, Any],
            jid: str | None = None) -> tuple[str, str, Any]:
    """Run one job through ``store`` in this process (the Firetasks' core; also how quick
    jobs run at submission).

    Adds the job if missing; a job already ``done`` is not computed again. Returns
    ``(job id, "done" | "reused" | "failed", result or (error, reason))``.
    """
    jid = jid or step.job_id(doc)
    store.add_jobs([Job(jid, step.name, doc)])
    rec = store.get(jid)
    if rec is not None and rec.state == "done":
        return jid, "reused", rec.result
    store.mark_running(jid, worker_name())
    ok, payload, seconds, worker = execute(step, doc)
    if ok:
        store.finish(jid, RawJSON(payload), seconds, worker)
        return jid, "done", json.loads(payload)
    error, reason, tb = payload
    store.fail(jid, error, reason, seconds, worker)
    if tb:
        store.log("error", f"{step.name} {jid} failed on {worker}:\n{tb}")
    return jid, "failed", (error, reason)


__all__ = ["Outcome", "execute", "failed", "run_job", "short_traceback", "worker_name"]
