"""How far a run is and when it ends: the local engine's progress display and the estimates of
the dashboard's throughput and ETA.

Display (:func:`progress_display`): on a terminal a rich bar per stage (done/total, failed,
elapsed, ETA); when the output is redirected (a pipe, a file, a batch job's log) plain lines
instead, since a bar then shows nothing until the end::

    progress: stage 1: bvse: 45/110 jobs finished (41%), 2 failed, 23,400 jobs/h, 7 s elapsed, stage ETA 10 s

one when a stage starts, at every tenth of its jobs, every ``interval`` seconds while it runs
(:data:`PLAIN_INTERVAL`, or the environment variable ``IONSCREEN_PROGRESS_INTERVAL``) and when
it ends.

Estimates (:func:`throughput`, :func:`pending_jobs`, :func:`work_eta`): the NEB (and ML voltage)
jobs are added to the store only when the BVSE stage ends, so an ETA over the known jobs is far
too short while BVSE runs; the dashboard's ETA adds the jobs still to come, each at its step's
mean time (:data:`NEB_PER_BVSE` BVSE means until one is done).
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PLAIN_INTERVAL = 10.0
"""Seconds between plain progress lines while a stage runs (output not a terminal)."""
NEB_PER_BVSE = 30.0
"""Until a job of a dynamic stage is done, it is estimated at this many mean BVSE jobs. Measured
once with the BVFF at the default 0.2 Å grid: mean NEB job 1.92 s vs mean BVSE job 0.066 s on
the default screen (29x), 1.91 s vs 0.045 s on a Mg/Ca/Zn screen (42x)."""
DYNAMIC_STAGES = {"neb": "neb_top", "insertion": "neb_top"}
"""Steps whose jobs are queued only when the BVSE stage ends, and the run setting giving how
many hosts per ion each takes: the ML voltage runs on the NEB's promoted hosts."""
STEP_NAMES = {"neb": "NEB", "insertion": "ML voltage"}


# --------------------------------------------------------------------------- display

def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 4 min`` (``—`` for None)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


@dataclass
class _Task:
    description: str
    total: int
    failed: int = 0
    completed: int = 0
    started: float = field(default_factory=time.monotonic)
    next_mark: int = 1  # the next tenth of the jobs that prints a line

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.completed == 0:
            return (f"progress: {self.description}: {self.total} jobs to run"
                    + (f", {duration(elapsed)} elapsed" if elapsed >= 1 else ""))
        text = (f"progress: {self.description}: {self.completed}/{self.total} jobs finished "
                f"({100 * self.completed / self.total:.0f}%), {self.failed} failed")
        if self.completed >= self.total:
            return text + f", in {duration(elapsed)}"
        rate = self.completed / max(elapsed, 1e-9)
        return (text + f", {3600 * rate:,.0f} jobs/h, {duration(elapsed)} elapsed, stage ETA "
                f"{duration((self.total - self.completed) / rate)}")


class PlainProgress:
    """Plain progress lines on ``console`` (the part of rich's ``Progress`` the engine uses:
    ``add_task``, ``update``, a context manager); a thread prints a line every ``interval``
    seconds while a stage runs, so a long job does not leave the log silent."""

    def __init__(self, console: Any, interval: float = PLAIN_INTERVAL) -> None:
        self.console = console
        self.interval = max(0.05, float(interval))
        self.tasks: list[_Task] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last = time.monotonic()
        self._thread: threading.Thread | None = None

    def _print(self, task: _Task) -> None:
        self.console.print(task.line(), markup=False, highlight=False, soft_wrap=True)
        self._last = time.monotonic()

    def add_task(self, description: str, total: int, failed: int = 0) -> int:
        with self._lock:
            task = _Task(description, int(total), failed)
            self.tasks.append(task)
            self._print(task)
            return len(self.tasks) - 1

    def update(self, task_id: int, advance: int = 0, failed: int | None = None,
               total: int | None = None) -> None:
        with self._lock:
            task = self.tasks[task_id]
            if total is not None:  # a chain of jobs (a query's pages) grows as it goes
                task.total = int(total)
            task.completed += advance
            if failed is not None:
                task.failed = failed
            tenths = 10 * task.completed // max(task.total, 1)
            if task.completed >= task.total or tenths >= task.next_mark:
                task.next_mark = tenths + 1
                self._print(task)

    def _tick(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            with self._lock:
                running = [t for t in self.tasks if t.completed < t.total]
                if running and time.monotonic() - self._last >= self.interval:
                    self._print(running[-1])

    def __enter__(self) -> PlainProgress:
        self._thread = threading.Thread(target=self._tick, daemon=True,
                                        name="ionscreen-progress")
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def progress_display(console: Any, enabled: bool = True, interval: float | None = None) -> Any:
    """The engine's progress: rich bars when ``console`` is a terminal, plain lines every
    ``interval`` s (default: ``IONSCREEN_PROGRESS_INTERVAL`` or :data:`PLAIN_INTERVAL`) when it
    is not, nothing when not ``enabled`` (a disabled rich ``Progress``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if enabled and not console.is_terminal:
        if interval is None:
            interval = float(os.environ.get("IONSCREEN_PROGRESS_INTERVAL") or PLAIN_INTERVAL)
        return PlainProgress(console, interval)
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False)


# --------------------------------------------------------------------------- estimates

def throughput(finished: list[float], run_start: float | None, run_end: float | None, state: str,
               remaining: int, now: float) -> tuple[float | None, float | None, float | None]:
    """(jobs per hour, ETA in s, elapsed s) over this run's finished jobs (earlier runs' jobs
    excluded); the ETA is 0 when nothing is left and None when it cannot be estimated."""
    in_run = [t for t in finished if run_start is None or t >= run_start]
    end = run_end if (run_end and state == "finished") else now
    elapsed = (end - run_start) if run_start else None
    rate = (len(in_run) / elapsed * 3600.0) if elapsed and elapsed > 0 and in_run else None
    eta = (remaining / rate * 3600.0) if (rate and remaining and state == "running") else (
        0.0 if remaining == 0 else None)
    return rate, eta, elapsed


def pending_jobs(settings: Mapping[str, Any], counts: Mapping[str, Mapping[str, int]],
                 bvse_by_ion: Mapping[str, int]) -> dict[str, int]:
    """Jobs of the dynamic stages not queued yet, by step. Such a stage takes the top N hosts
    per ion (the run's ``neb_top``: the ML voltage runs on the NEB's promoted hosts), at most that ion's BVSE jobs not failed
    (``bvse_by_ion``); nothing is left to come once the BVSE stage has ended and it has jobs.
    The stages planned are the run's ``stages`` setting (else NEB when ``neb_top`` > 0)."""
    from .plan import ScreenSpec

    planned = settings.get("stages") or (["neb"] if settings.get("neb_top") else [])
    bvse = counts.get("bvse", {})
    bvse_left = bvse.get("queued", 0) + bvse.get("running", 0)
    out = {}
    for step, key in DYNAMIC_STAGES.items():
        top = int(settings.get(key, getattr(ScreenSpec, key, 0)) or 0)
        known = sum(counts.get(step, {}).values())
        if step not in planned or top <= 0 or (known and not bvse_left):
            continue
        expected = sum(min(top, n) for n in bvse_by_ion.values())
        if expected > known:
            out[step] = expected - known
    return out


def work_eta(left: Mapping[str, int], mean_s: Mapping[str, float], run_seconds: float,
             elapsed: float | None) -> float | None:
    """Seconds to the end: the compute time of the jobs ``left`` (step -> jobs queued, running or
    to come), each at its step's mean (``mean_s``; a dynamic step without one at
    :data:`NEB_PER_BVSE` BVSE means), over this run's compute seconds per wall-clock second
    (``run_seconds / elapsed``: about 1 serially, up to N with N workers). None without
    timings."""
    if not elapsed or elapsed <= 0 or run_seconds <= 0 or not mean_s:
        return None
    work = 0.0
    for step, n in left.items():
        mean = mean_s.get(step)
        if mean is None and step in DYNAMIC_STAGES and "bvse" in mean_s:
            mean = mean_s["bvse"] * NEB_PER_BVSE
        work += n * (statistics.fmean(mean_s.values()) if mean is None else mean)
    return work / (run_seconds / elapsed)


def eta_note(pending: Mapping[str, int], mean_s: Mapping[str, float],
             settings: Mapping[str, Any]) -> str | None:
    """What the page says under an ETA that counts jobs not queued yet (None: it does not)."""
    if not pending:
        return None
    parts = [f"{n} {STEP_NAMES[s]} job{'s' if n != 1 else ''} (top "
             f"{settings.get(DYNAMIC_STAGES[s], 3)} per ion)" for s, n in pending.items()]
    guessed = [STEP_NAMES[s] for s in pending if s not in mean_s]
    return ("estimate including " + " and ".join(parts) + " not queued yet (added when the "
            "BVSE stage ends)" + (f"; {' and '.join(guessed)} jobs counted at {NEB_PER_BVSE:g}x "
                                  "the mean BVSE job until one is done" if guessed else ""))


@dataclass
class Timings:
    """What the throughput and ETA need from a store's jobs."""

    finished: list[tuple[float, float]] = field(default_factory=list)
    """(finish time, seconds) of every done or failed job."""
    first_start: float | None = None
    mean_s: dict[str, float] = field(default_factory=dict)
    """Mean seconds of each step's done jobs."""

    def run_seconds(self, run_start: float | None) -> float:
        """Compute seconds of the jobs finished since ``run_start``."""
        return sum(s for t, s in self.finished if run_start is None or t >= run_start)


__all__ = ["DYNAMIC_STAGES", "NEB_PER_BVSE", "PLAIN_INTERVAL", "PlainProgress", "Timings",
           "duration", "eta_note", "pending_jobs", "progress_display", "throughput", "work_eta"]
