"""The local engine: run a screen's stages on one machine (serially, in a process pool, or over
MPI ranks) and commit every finished job to a result store at once.

A job is a :class:`~ionscreen.workflows.plan.Step` applied to one input document; its id is a
deterministic hash of the step name and version, its settings and the input
(:func:`ionscreen.workflows.store.job_id`), so a resumed or re-submitted run finds its earlier
results.

``LocalEngine(store, workers=N).run([(step, doc), ...])``:

1. adds the jobs to the store (an id already there is left alone) and puts back in the queue
   the jobs that a killed run left ``running`` (a job that was started ``max_attempts`` times
   without finishing is marked failed instead: it is probably what kills the process);
2. skips jobs already ``done`` (and ``failed`` ones unless ``retry_failed``);
3. runs the rest on its executor (:mod:`ionscreen.workflows.executors`: serial, pool or MPI)
   and commits each result or failure when it arrives. Only one process writes the store: the
   calling process (serial and pool) or MPI rank 0.

A step that raises marks its job failed with its reason (:func:`~ionscreen.workflows.jobs.
execute`; bugs bring a traceback to the run log); the run goes on.

Kill safety: a job's result is committed before the engine counts it, and a committed job is
never started again, so a kill (SIGKILL, OOM, wall-time limit) at any moment loses at most the
jobs that were running, and those run again once on resume.

``run_stages([stage1, stage2, ...])`` runs dependent stages in order: the stages of a
:class:`~ionscreen.workflows.plan.ScreenSpec` (``spec.stages()``), whose dynamic stages build
their inputs from the results of earlier ones (e.g. NEB jobs for the best BVSE results), or
plain lists of ``(step, doc)`` and callables ``make_jobs(store) -> list``. Every stage is
resumable.

MPI (``mpiexec -n N``): all ranks call ``run``/``run_stages`` with the same arguments; rank 0
builds the job lists, owns the store and hands out jobs; the others compute.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .executors import Executor, MPIExecutor, PoolExecutor, SerialExecutor
from .jobs import Outcome
from .mpi import rank as _rank
from .mpi import size as _size
from .plan import FETCH, JobSpec, Stage, Step
from .progress import progress_display
from .store import Job, RawJSON, ResultStore
from .store_sqlite import SQLiteStore

StageLike = Stage | Sequence[JobSpec] | Callable[[ResultStore], Sequence[JobSpec]]


# --------------------------------------------------------------------------- summary

@dataclass
class Failure:
    id: str
    step: str
    error: str
    reason: str
    new: bool  # failed in this run (False: failed earlier and not retried)


@dataclass
class RunSummary:
    """What a run did. ``done``/``failed`` count jobs computed by this run; jobs found
    finished are ``skipped_*``; ``recomputed`` counts jobs computed again although a result
    was committed (0 by construction; reported as a check)."""

    mode: str = "serial"
    role: str = "root"  # "worker" on MPI ranks other than 0 (nothing else is filled in)
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped_already_done: int = 0
    skipped_failed: int = 0
    requeued: int = 0
    died: int = 0
    recomputed: int = 0
    wall_seconds: float = 0.0
    compute_seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    stages: list[dict[str, int]] = field(default_factory=list)

    @property
    def computed(self) -> int:
        return self.done + self.failed

    @property
    def jobs_per_hour(self) -> float:
        return 3600.0 * self.computed / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["failures"] = [f.__dict__ for f in self.failures]
        d["computed"] = self.computed
        d["jobs_per_hour"] = self.jobs_per_hour
        return d

    def lines(self, failures: bool = True) -> list[str]:
        """The summary, and with ``failures`` one line per failed job."""
        out = [f"{self.total} jobs ({self.mode}): {self.done} done, {self.failed} failed in this "
               f"run; {self.skipped_already_done} already done, {self.skipped_failed} failed "
               f"earlier (not retried); {self.requeued} interrupted jobs re-run; "
               f"{self.recomputed} recomputed",
               f"wall {self.wall_seconds:.1f} s, {self.jobs_per_hour:.0f} jobs/hour "
               f"({self.compute_seconds:.1f} s of step time)"]
        for f in self.failures if failures else ():
            out.append(f"  failed{'' if f.new else ' earlier'}: {f.step} {f.id}  "
                       f"{f.error}: {f.reason}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def table(self) -> Any:
        """A rich Table of the failures (for the CLI)."""
        from rich.table import Table

        t = Table(title=f"{len(self.failures)} failed jobs")
        for col in ("step", "job id", "error", "reason"):
            t.add_column(col, overflow="fold")
        for f in self.failures:
            t.add_row(f.step, f.id, f.error, f.reason)
        return t


# --------------------------------------------------------------------------- run log

class _RunLog:
    """Plain-text run log (one timestamped line per event) plus the store's log table for the
    events that matter later (start, resume counts, failures, end)."""

    def __init__(self, path: str | os.PathLike[str] | None, store: ResultStore) -> None:
        self.store = store
        self.file: TextIO | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def __call__(self, level: str, message: str, store: bool = False) -> None:
        if self.file is not None:
            stamp = _dt.datetime.now().isoformat(timespec="milliseconds")
            for i, line in enumerate(message.splitlines() or [""]):
                self.file.write(f"{stamp} {level.upper():5s} {'  ' if i else ''}{line}\n")
        if store:
            self.store.log(level, message)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


# --------------------------------------------------------------------------- one stage

class _StageRun:
    """The store bookkeeping of one stage: what its executor reports goes to the store, the
    run log, the summary and the progress bar."""

    def __init__(self, store: ResultStore, log: _RunLog, summary: RunSummary, bar: Any,
                 task: Any, done_before: set[str]) -> None:
        self.store, self.log, self.summary = store, log, summary
        self.bar, self.task = bar, task
        self.done_before = done_before
        self.computed: set[str] = set()
        self.failed = 0

    def started(self, ids: list[str], where: str) -> None:
        self.store.mark_running(ids, where)

    def warn(self, message: str) -> None:
        self.log("warn", message, store=True)

    def finished(self, job: Job, outcome: Outcome) -> None:
        ok, payload, seconds, worker = outcome
        summary = self.summary
        if ok:
            self.store.finish(job.id, RawJSON(payload), seconds, worker)
            summary.done += 1
            self.log("info", f"done   {job.step} {job.id} {seconds:.3f} s {worker}")
        else:
            etype, reason, tb = payload
            self.store.fail(job.id, etype, reason, seconds, worker)
            summary.failed += 1
            self.failed += 1
            self.log("warn", f"failed {job.step} {job.id} {seconds:.3f} s {worker} "
                             f"{etype}: {reason}", store=tb is not None)
            if tb:
                self.log("warn", tb, store=True)
        summary.compute_seconds += seconds
        if job.id in self.computed or job.id in self.done_before:
            summary.recomputed += 1
        self.computed.add(job.id)
        self.bar.update(self.task, advance=1, failed=self.failed)


def _job_specs(stage: StageLike, store: ResultStore) -> Sequence[JobSpec]:
    if isinstance(stage, Stage):
        return stage.jobs(store)
    return stage(store) if callable(stage) else stage


# --------------------------------------------------------------------------- engine

class LocalEngine:
    """Run jobs on this machine and commit each result to ``store`` at once.

    Parameters
    ----------
    store:
        A :class:`ResultStore`, or a path of a SQLite store (opened on rank 0 only).
    workers:
        1: serial in this process; N > 1: a pool of N processes; None: one per CPU.
        Ignored under MPI (one process per rank).
    comm:
        An MPI communicator (:func:`ionscreen.workflows.mpi.world`); None or size 1: no MPI.
    progress:
        Show the progress of each stage on the writing process's ``console`` (default: stderr):
        a rich bar (done/total, failed, elapsed, ETA) on a terminal, else a plain line every
        ``progress_interval`` s and at every tenth of the jobs
        (:func:`~ionscreen.workflows.progress.progress_display`).
    log_path:
        The plain-text run log (e.g. ``run/run.log``), appended to.
    retry_failed:
        Run jobs that failed in an earlier run again (default: report them, do not rerun).
    max_attempts:
        A job left ``running`` by ``max_attempts`` killed runs is marked failed (WorkerDied)
        instead of being started again.
    threads_per_worker:
        numba/OpenMP threads in each pool worker.
    argv, settings:
        Recorded in the store's ``runs`` table, with the mode and the names of the stages
        (``stages``: the dashboard's ETA counts the jobs of the dynamic ones before they exist).
    mpi_prefetch, mpi_poll:
        Jobs handed to an MPI rank ahead (1: strictly one at a time); the longest sleep (s)
        between polls of a waiting rank.
    """

    def __init__(self, store: ResultStore | str | os.PathLike[str] | None, workers: int | None = 1,
                 comm: Any = None, progress: bool = True,
                 log_path: str | os.PathLike[str] | None = None, *, retry_failed: bool = False,
                 max_attempts: int = 3, threads_per_worker: int = 1,
                 mp_context: str | None = None, argv: Sequence[str] | None = None,
                 settings: Mapping[str, Any] | None = None, console: Any = None,
                 mpi_prefetch: int = 2, mpi_poll: float = 1e-3,
                 progress_interval: float | None = None) -> None:
        comm = comm if _size(comm) > 1 else None
        self.is_root = _rank(comm) == 0
        if isinstance(store, (str, os.PathLike)):
            store = SQLiteStore(store) if self.is_root else None
        if self.is_root and store is None:
            raise ValueError("the engine needs a result store on rank 0")
        self.store: ResultStore | None = store if self.is_root else None
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.executor: Executor
        if comm is not None:
            self.executor = MPIExecutor(comm, mpi_prefetch, mpi_poll)
        elif self.workers > 1:
            self.executor = PoolExecutor(self.workers, threads_per_worker, mp_context)
        else:
            self.executor = SerialExecutor()
        self.progress = progress
        self.progress_interval = progress_interval
        self.log_path = log_path
        self.retry_failed = retry_failed
        self.max_attempts = max_attempts
        self.argv = argv
        self.settings = settings
        self.console = console
        self._log: _RunLog | None = None

    @property
    def mode(self) -> str:
        return self.executor.mode

    # ---- public
    def run(self, jobs: StageLike, *, retry_failed: bool | None = None) -> RunSummary:
        """Run one stage: a list of ``(step, doc)`` jobs, a ``make_jobs(store)`` callable or a
        :class:`~ionscreen.workflows.plan.Stage`."""
        return self.run_stages([jobs], retry_failed=retry_failed)

    def run_stages(self, stages: Sequence[StageLike], *,
                   retry_failed: bool | None = None) -> RunSummary:
        """Run stages in order; a later stage may read earlier results. Under MPI every rank
        calls this; ranks other than 0 compute and return a summary with ``role="worker"``."""
        if not self.is_root:
            assert isinstance(self.executor, MPIExecutor)
            return RunSummary(mode=self.mode, role="worker", done=self.executor.serve())
        retry = self.retry_failed if retry_failed is None else retry_failed
        store = self.store
        assert store is not None
        summary = RunSummary(mode=self.mode)
        t_start = time.perf_counter()
        try:
            names = [s.name for s in stages if isinstance(s, Stage)]
            run_id = store.begin_run(self.argv, {"mode": self.mode, "stages": names,
                                                 **dict(self.settings or {})})
            log = self._log = _RunLog(self.log_path, store)
        except BaseException:  # e.g. StoreBusyError: let the other ranks go before raising
            self.executor.close(graceful=False)
            raise
        ok = False
        try:
            log("info", f"run {run_id} started ({self.mode}, pid {os.getpid()} on "
                        f"{socket.gethostname()}), {len(stages)} stage(s)", store=True)
            summary.requeued, summary.died = store.requeue_running(self.max_attempts)
            if summary.requeued or summary.died:
                log("info", f"resume: {summary.requeued} job(s) interrupted by an earlier run "
                            f"re-queued; {summary.died} marked failed after {self.max_attempts} "
                            "interrupted attempts", store=True)
            with self._progress_bar() as bar:
                for i, stage in enumerate(stages, 1):
                    self._run_stage(i, stage, retry, summary, bar)
            ok = True
        except BaseException as exc:
            log("error", f"run {run_id} stopped by {type(exc).__name__}: {exc}", store=True)
            raise
        finally:
            self.executor.close(graceful=ok)
            summary.wall_seconds = time.perf_counter() - t_start
            try:
                summary.counts = store.counts()
                if ok:
                    log("info", f"run {run_id} ended: {summary.lines()[0]}; "
                                f"{summary.lines()[1]}", store=True)
                store.end_run(run_id)
            finally:
                log.close()
                self._log = None
        return summary

    # ---- one stage
    def _add_stage_jobs(self, stage: StageLike, retry: bool
                        ) -> tuple[dict[str, tuple[Job, Step]], set[str], set[str]]:
        """Add a stage's jobs to the store (once per id); returns them with the ids found done
        and failed (failed ones queued again when ``retry``)."""
        store = self.store
        assert store is not None
        jobs: dict[str, tuple[Job, Step]] = {}
        for step, doc in _job_specs(stage, store):
            job = step.job(doc)
            jobs.setdefault(job.id, (job, step))
        store.add_jobs(j for j, _ in jobs.values())
        states = store.states(jobs)
        done_before = {i for i, s in states.items() if s == "done"}
        failed_before = {i for i, s in states.items() if s == "failed"}
        if retry and failed_before:
            store.requeue(failed_before)
        return jobs, done_before, failed_before

    def _run_stage(self, index: int, stage: StageLike, retry: bool, summary: RunSummary,
                   bar: Any) -> None:
        store, log = self.store, self._log
        assert store is not None and log is not None
        staged = isinstance(stage, Stage)
        retry = retry or (staged and stage.retry)
        # a database's pages are fetched here, by the process that owns the store: a compute
        # node (an MPI rank, a pool worker on it) may have no network
        executor = SerialExecutor() if staged and stage.category == FETCH else self.executor
        jobs, done_before, failed_before = self._add_stage_jobs(stage, retry)
        events: _StageRun | None = None
        st = {"jobs": 0, "already_done": 0, "failed_earlier": 0, "to_run": 0}
        summary.stages.append(st)
        while True:
            skip = done_before if retry else done_before | failed_before
            todo = [jobs[i] for i in jobs if i not in skip]
            st["jobs"] += len(jobs)
            st["already_done"] += len(done_before)
            st["failed_earlier"] += len(failed_before) if not retry else 0
            st["to_run"] += len(todo)
            summary.total += len(jobs)
            summary.skipped_already_done += len(done_before)
            summary.skipped_failed += len(failed_before) if not retry else 0
            steps = sorted({s.name for _, s in jobs.values()})
            log("info", f"stage {index} ({', '.join(steps) or 'empty'}): {len(jobs)} jobs, "
                        f"{len(done_before)} already done, "
                        f"{len(failed_before) if not retry else 0} failed earlier (not retried), "
                        f"{len(todo)} to run", store=True)
            if events is None:
                task = bar.add_task(f"stage {index}: {', '.join(steps)}", total=len(todo),
                                    failed=0)
                events = _StageRun(store, log, summary, bar, task, done_before)
            else:  # the next jobs of a chain
                bar.update(events.task, total=st["to_run"])
                events.done_before |= done_before
            if todo:
                executor.run(todo, events)
            failed_ids = {i for i, s in store.states(jobs).items() if s == "failed"}
            summary.failures += [Failure(rec.id, rec.step, rec.error or "", rec.reason or "",
                                         rec.id in events.computed)
                                 for rec in (store.failures() if failed_ids else [])
                                 if rec.id in failed_ids]
            if not (staged and stage.follow):
                break
            # a chain (pages of a query): the jobs after the ones done, until it ends
            nxt = []
            for job, _ in jobs.values():
                rec = store.get(job.id)
                after = stage.follow(job.input, rec.result) \
                    if rec is not None and rec.state == "done" else None
                if after is not None:
                    nxt.append((stage.step, after))
            if not nxt:
                break
            jobs, done_before, failed_before = self._add_stage_jobs(nxt, retry)

    def _progress_bar(self) -> Any:
        from rich.console import Console

        return progress_display(self.console or Console(stderr=True), self.progress,
                                self.progress_interval)


def run_jobs(store: ResultStore | str | os.PathLike[str], jobs: Iterable[JobSpec],
             **engine_kw: Any) -> RunSummary:
    """Shortcut: ``LocalEngine(store, **engine_kw).run(list(jobs))``."""
    return LocalEngine(store, **engine_kw).run(list(jobs))


__all__ = ["LocalEngine", "RunSummary", "Failure", "run_jobs"]
