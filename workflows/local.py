"""The local engine: run steps on one machine (serially, in a process pool, or over MPI ranks)
and commit every finished job to a result store at once.

A *step* is a plain function from a JSON document to a JSON document (:class:`Step`). A job is
a step applied to one input document; its id is a deterministic hash of the step name and
version, its settings and the input (:func:`ionscreen.workflows.store.job_id`), so a resumed
or re-submitted run finds its earlier results.

``LocalEngine(store, workers=N).run([(step, doc), ...])``:

1. adds the jobs to the store (an id already there is left alone) and puts back in the queue
   the jobs that a killed run left ``running`` (a job that was started ``max_attempts`` times
   without finishing is marked failed instead: it is probably what kills the process);
2. skips jobs already ``done`` (and ``failed`` ones unless ``retry_failed``);
3. runs the rest and commits each result or failure when it arrives. Only one process writes
   the store: the calling process (serial and pool) or MPI rank 0. Pool workers and the other
   ranks compute and send results back; they never open the store.

A step that raises marks its job failed with the exception's type and message (the *reason*);
the run goes on. For exceptions that are not :class:`IonscreenError` (bugs rather than bad
input) a short traceback goes to the run log too.

Kill safety: a job's result is committed before the engine counts it, and a committed job is
never started again, so a kill (SIGKILL, OOM, wall-time limit) at any moment loses at most the
jobs that were running, and those run again once on resume.

``run_stages([stage1, stage2, ...])`` runs dependent stages in order; a stage is a list of
``(step, doc)`` or a callable ``make_jobs(store) -> list`` that builds its jobs from the results
of earlier stages (e.g. NEB jobs for the best BVSE results). Every stage is resumable.

Pool: ``concurrent.futures.ProcessPoolExecutor`` with the *forkserver* start method (spawn
where forkserver does not exist). Forking the engine process itself is avoided: it holds an
open SQLite connection, rich's refresh thread and possibly numba/OpenMP thread pools, which
are not fork-safe. Step functions must therefore be importable (module-level functions or
``functools.partial`` of them), and scripts need the ``if __name__ == "__main__":`` guard.

MPI (``mpiexec -n N``, ``comm`` from :func:`ionscreen.workflows.mpi.world`): all ranks call
``run``/``run_stages`` with the same arguments; rank 0 builds the job lists, owns the store
and hands out jobs dynamically; ranks 1..N-1 compute. With ``mpiexec -n 2`` one rank computes
while rank 0 stores. With one rank the run is serial. Protocol (point-to-point, pickled):

* a computing rank sends READY once, then receives WORK ``(job id, step fn, input)`` and
  answers each with RESULT ``(job id, outcome)``, until it receives STOP (end of the run);
* rank 0 keeps up to ``mpi_prefetch`` (2) jobs queued per rank with non-blocking sends, so the
  next job is already in a rank's mailbox when it finishes one (the round trip and rank 0's
  commits are hidden), marks them ``running``, and commits each RESULT when it arrives;
* waiting ranks poll (``improbe`` bursts, sleeps of up to 1 ms) instead of spinning a core;
* the step function travels with each job, pickled by reference, so the computing ranks need
  no job list; between stages they simply wait for more work.

An error on rank 0 while other ranks compute aborts the MPI job (``MPI_Abort``) after
logging it; their jobs stay ``running`` in the store and run again on resume.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ionscreen.structures.errors import IonscreenError
from ionscreen.workflows.mpi import rank as _rank
from ionscreen.workflows.mpi import size as _size
from ionscreen.workflows.store import Job, RawJSON, ResultStore, SQLiteStore, job_id

StepFn = Callable[[dict[str, Any]], Any]

TAG_READY, TAG_WORK, TAG_RESULT, TAG_STOP = 11, 12, 13, 14


# --------------------------------------------------------------------------- steps

@dataclass(frozen=True)
class Step:
    """A named step: ``fn(input_doc) -> result_doc`` (both JSON-serialisable).

    ``version`` and ``settings`` are part of every job id of this step: bump the version when
    the function's results change, and pass in ``settings`` whatever the function was bound
    with (e.g. ``functools.partial(fn, resolution=0.2)``) so that other settings make other
    jobs. ``fn`` must be picklable by reference for the pool and MPI.
    """

    name: str
    fn: StepFn
    version: str = "1"
    settings: Mapping[str, Any] | None = None

    def job_id(self, doc: Mapping[str, Any]) -> str:
        return job_id(self.name, doc, self.settings, self.version)

    def job(self, doc: dict[str, Any]) -> Job:
        return Job(self.job_id(doc), self.name, doc)


JobSpec = tuple[Step, dict[str, Any]]
Stage = Sequence[JobSpec] | Callable[[ResultStore], Sequence[JobSpec]]


# --------------------------------------------------------------------------- one job

def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _short_traceback(exc: BaseException, frames: int = 6) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__,
                                              limit=-frames)).rstrip()


# (ok, JSON text | (error_type, reason, traceback or None), seconds, worker)
Outcome = tuple[bool, Any, float, str]


def _execute(fn: StepFn, doc: dict[str, Any]) -> Outcome:
    """Run one job anywhere (this process, a pool worker, an MPI rank); never raises
    ``Exception``. The result is serialised here, so a result that is not JSON fails the job
    where it was made, and only text travels back."""
    t0 = time.perf_counter()
    try:
        result = fn(doc)
    except IonscreenError as exc:
        return False, (type(exc).__name__, str(exc) or type(exc).__name__, None), \
            time.perf_counter() - t0, _worker_name()
    except Exception as exc:
        reason = str(exc) or repr(exc)
        return False, (type(exc).__name__, reason, _short_traceback(exc)), \
            time.perf_counter() - t0, _worker_name()
    seconds = time.perf_counter() - t0
    try:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return False, ("ResultNotJSON", f"the step returned a result that is not JSON: {exc}",
                       None), seconds, _worker_name()
    return True, text, seconds, _worker_name()


def _watch_engine(pid: int, every: float = 1.0) -> None:
    """End this pool worker when the engine process is gone (e.g. SIGKILLed): its results
    would have nowhere to go, and an orphan would otherwise wait for work forever."""
    import psutil

    try:
        engine = psutil.Process(pid)
    except psutil.NoSuchProcess:
        os._exit(1)
    while True:
        time.sleep(every)
        try:
            if not engine.is_running() or engine.status() == psutil.STATUS_ZOMBIE:
                os._exit(1)
        except psutil.NoSuchProcess:
            os._exit(1)


def _init_pool_worker(threads: int, engine_pid: int | None = None) -> None:
    """Pool worker start: one (or ``threads``) numba/OpenMP/BLAS thread(s) per process, and a
    watchdog thread that ends the worker if the engine dies."""
    if engine_pid is not None:
        import threading

        threading.Thread(target=_watch_engine, args=(engine_pid,), daemon=True,
                         name="ionscreen-watch-engine").start()
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "numba" in sys.modules:  # imported by the forkserver's preload of __main__
        try:
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        except Exception:
            pass


def _mp_context(name: str | None) -> Any:
    import multiprocessing as mp

    if name is None:
        name = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    return mp.get_context(name)


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

    def lines(self) -> list[str]:
        out = [f"{self.total} jobs ({self.mode}): {self.done} done, {self.failed} failed in this "
               f"run; {self.skipped_already_done} already done, {self.skipped_failed} failed "
               f"earlier (not retried); {self.requeued} interrupted jobs re-run; "
               f"{self.recomputed} recomputed",
               f"wall {self.wall_seconds:.1f} s, {self.jobs_per_hour:.0f} jobs/hour "
               f"({self.compute_seconds:.1f} s of step time)"]
        for f in self.failures:
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
        Show a rich progress bar (bar, done/total, elapsed, ETA) on the writing process when
        stderr is a terminal.
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
        Recorded in the store's ``runs`` table.
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
                 mpi_prefetch: int = 2, mpi_poll: float = 1e-3) -> None:
        self.comm = comm if _size(comm) > 1 else None
        self.is_root = _rank(self.comm) == 0
        if isinstance(store, (str, os.PathLike)):
            store = SQLiteStore(store) if self.is_root else None
        if self.is_root and store is None:
            raise ValueError("the engine needs a result store on rank 0")
        self.store: ResultStore | None = store if self.is_root else None
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.progress = progress
        self.log_path = log_path
        self.retry_failed = retry_failed
        self.max_attempts = max_attempts
        self.threads_per_worker = threads_per_worker
        self.mp_context = mp_context
        self.argv = argv
        self.settings = settings
        self.console = console
        self._pool: Any = None
        self.mpi_prefetch = max(1, mpi_prefetch)
        self.mpi_poll = mpi_poll
        self._ready: set[int] = set()  # MPI ranks that said READY
        self._inflight: dict[int, deque[tuple[Job, Step]]] = {
            r: deque() for r in range(1, _size(self.comm))}
        self._sends: list[Any] = []
        self._log: _RunLog | None = None

    @property
    def mode(self) -> str:
        if self.comm is not None:
            return f"mpi({_size(self.comm)} ranks)"
        return "serial" if self.workers == 1 else f"pool({self.workers} workers)"

    # ---- public
    def run(self, jobs: Stage, *, retry_failed: bool | None = None) -> RunSummary:
        """Run one list of ``(step, doc)`` jobs (or a ``make_jobs(store)`` callable)."""
        return self.run_stages([jobs], retry_failed=retry_failed)

    def run_stages(self, stages: Sequence[Stage], *,
                   retry_failed: bool | None = None) -> RunSummary:
        """Run stages in order; a later stage may be ``make_jobs(store)`` reading earlier
        results. Under MPI every rank calls this; ranks other than 0 compute and return a
        summary with ``role="worker"``."""
        if not self.is_root:
            return self._mpi_worker_loop()
        retry = self.retry_failed if retry_failed is None else retry_failed
        store = self.store
        assert store is not None
        summary = RunSummary(mode=self.mode)
        t_start = time.perf_counter()
        try:
            run_id = store.begin_run(self.argv, {"mode": self.mode, **dict(self.settings or {})})
            log = self._log = _RunLog(self.log_path, store)
        except BaseException:  # e.g. StoreBusyError: let the other ranks go before raising
            self._shutdown(graceful=False)
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
            self._shutdown(graceful=ok)
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
    def _run_stage(self, index: int, stage: Stage, retry: bool, summary: RunSummary,
                   bar: Any) -> None:
        store, log = self.store, self._log
        assert store is not None and log is not None
        specs = stage(store) if callable(stage) else stage
        jobs: dict[str, tuple[Job, Step]] = {}
        for step, doc in specs:
            job = step.job(doc)
            jobs.setdefault(job.id, (job, step))
        store.add_jobs(j for j, _ in jobs.values())
        states = store.states(jobs)
        done_before = {i for i, s in states.items() if s == "done"}
        failed_before = {i for i, s in states.items() if s == "failed"}
        if retry and failed_before:
            store.requeue(failed_before)
        todo = [jobs[i] for i in jobs if i not in done_before and (retry or i not in
                                                                    failed_before)]
        st = {"jobs": len(jobs), "already_done": len(done_before),
              "failed_earlier": len(failed_before) if not retry else 0, "to_run": len(todo)}
        summary.stages.append(st)
        summary.total += len(jobs)
        summary.skipped_already_done += st["already_done"]
        summary.skipped_failed += st["failed_earlier"]
        steps = sorted({s.name for _, s in jobs.values()})
        log("info", f"stage {index} ({', '.join(steps) or 'empty'}): {len(jobs)} jobs, "
                    f"{st['already_done']} already done, {st['failed_earlier']} failed earlier "
                    f"(not retried), {len(todo)} to run", store=True)
        task = bar.add_task(f"stage {index}: {', '.join(steps)}", total=len(todo), failed=0)
        computed: set[str] = set()
        stage_failed = [0]

        def handle(job: Job, outcome: Outcome) -> None:
            ok, payload, seconds, worker = outcome
            if ok:
                store.finish(job.id, RawJSON(payload), seconds, worker)
                summary.done += 1
                log("info", f"done   {job.step} {job.id} {seconds:.3f} s {worker}")
            else:
                etype, reason, tb = payload
                store.fail(job.id, etype, reason, seconds, worker)
                summary.failed += 1
                stage_failed[0] += 1
                log("warn", f"failed {job.step} {job.id} {seconds:.3f} s {worker} "
                            f"{etype}: {reason}", store=tb is not None)
                if tb:
                    log("warn", tb, store=True)
            summary.compute_seconds += seconds
            if job.id in computed or job.id in done_before:
                summary.recomputed += 1
            computed.add(job.id)
            bar.update(task, advance=1, failed=stage_failed[0])

        if todo:
            if self.comm is not None:
                self._run_mpi(todo, handle)
            elif self.workers > 1:
                self._run_pool(todo, handle)
            else:
                self._run_serial(todo, handle)
        failed_ids = {i for i, s in store.states(jobs).items() if s == "failed"}
        if failed_ids:
            for rec in store.failures():
                if rec.id in failed_ids:
                    summary.failures.append(Failure(rec.id, rec.step, rec.error or "",
                                                    rec.reason or "", rec.id in computed))

    # ---- serial
    def _run_serial(self, todo: list[tuple[Job, Step]],
                    handle: Callable[[Job, Outcome], None]) -> None:
        assert self.store is not None
        me = _worker_name()
        for job, step in todo:
            self.store.mark_running(job.id, me)
            handle(job, _execute(step.fn, job.input))

    # ---- process pool
    def _new_pool(self, workers: int) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(self.mp_context),
                                   initializer=_init_pool_worker,
                                   initargs=(self.threads_per_worker, os.getpid()))

    def _run_pool(self, todo: list[tuple[Job, Step]],
                  handle: Callable[[Job, Outcome], None]) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        store = self.store
        assert store is not None
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        window = 2 * self.workers  # jobs in flight: enough to keep workers busy, few to redo
        queue = deque(todo)
        inflight: dict[Any, tuple[Job, Step]] = {}
        while queue or inflight:
            batch = [queue.popleft() for _ in range(min(window - len(inflight), len(queue)))]
            if batch:
                store.mark_running([j.id for j, _ in batch], "pool")
                for job, step in batch:
                    inflight[self._pool.submit(_execute, step.fn, job.input)] = (job, step)
            finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
            suspects: list[tuple[Job, Step]] = []
            for fut in finished:
                job, step = inflight.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    suspects.append((job, step))
                    continue
                except Exception as exc:  # e.g. the step function or input cannot be pickled
                    outcome = (False, (type(exc).__name__, f"could not send the job to a worker "
                                       f"process: {exc}", None), 0.0, "pool")
                handle(job, outcome)
            if suspects:
                # A worker died (segfault, os._exit, OOM kill): every job in flight is lost
                # with it. Rerun each alone in a fresh process to find the one that kills it.
                for fut, js in list(inflight.items()):
                    fut.cancel()
                    suspects.append(js)
                inflight.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                self._quarantine(suspects, handle)
                self._pool = self._new_pool(self.workers)

    def _quarantine(self, suspects: list[tuple[Job, Step]],
                    handle: Callable[[Job, Outcome], None]) -> None:
        from concurrent.futures.process import BrokenProcessPool

        assert self.store is not None and self._log is not None
        self._log("warn", f"a pool worker died; re-running the {len(suspects)} job(s) it may "
                          "have been running one at a time", store=True)
        for job, step in suspects:
            self.store.mark_running(job.id, "pool (isolated)")
            pool = self._new_pool(1)
            try:
                outcome = pool.submit(_execute, step.fn, job.input).result()
            except BrokenProcessPool:
                outcome = (False, ("WorkerDied", "the worker process died while running this "
                                   "job (crash, os._exit, or killed e.g. out of memory)", None),
                           0.0, "pool")
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            handle(job, outcome)

    # ---- MPI
    def _recv(self, source: int, status: Any) -> Any:
        """Receive one message without spinning a core at 100 %: bursts of ``improbe`` (MPI
        progress needs several calls) separated by sleeps growing to ``mpi_poll`` seconds.
        Pending work sends are progressed meanwhile."""
        from mpi4py import MPI

        comm = self.comm
        delay = 5e-5
        while True:
            for _ in range(20):
                msg = comm.improbe(source=source, tag=MPI.ANY_TAG, status=status)
                if msg is not None:
                    return msg.recv()
            if self._sends:
                self._sends = [r for r in self._sends if not r.Test()]
            time.sleep(delay)
            delay = min(2 * delay, self.mpi_poll)

    def _run_mpi(self, todo: list[tuple[Job, Step]],
                 handle: Callable[[Job, Outcome], None]) -> None:
        """Rank 0: hand out jobs to the ranks that asked, up to ``mpi_prefetch`` at a time per
        rank (the next job waits in the rank's mailbox while it computes, which hides the
        round trip), and commit each result as it comes back."""
        from mpi4py import MPI

        comm, store = self.comm, self.store
        assert store is not None
        status = MPI.Status()
        queue = deque(todo)
        inflight = self._inflight
        while queue or any(inflight.values()):
            for depth in range(self.mpi_prefetch):  # breadth first: every rank gets one first
                for r in sorted(self._ready):
                    if not queue or len(inflight[r]) > depth:
                        continue
                    job, step = queue.popleft()
                    try:
                        payload = pickle.dumps((job.id, step.fn, job.input),
                                               protocol=pickle.HIGHEST_PROTOCOL)
                    except Exception as exc:  # the step function or input cannot be pickled
                        handle(job, (False, (type(exc).__name__, "could not send the job to "
                                             f"rank {r}: {exc}", None), 0.0, "rank 0"))
                        continue
                    store.mark_running(job.id, f"rank {r}")
                    self._sends.append(comm.isend(payload, dest=r, tag=TAG_WORK))
                    inflight[r].append((job, step))
            msg = self._recv(MPI.ANY_SOURCE, status)
            src, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_RESULT:
                jid, outcome = msg
                job, _ = inflight[src].popleft()
                assert job.id == jid, (job.id, jid)
                handle(job, outcome)
            elif tag == TAG_READY:
                self._ready.add(src)

    def _mpi_stop_workers(self, graceful: bool) -> None:
        """Wait for every rank's READY, then send STOP to all. After an error on rank 0 with
        jobs still running on other ranks, abort the MPI job (their results would have nowhere
        to go; those jobs are still ``running`` in the store and run again on resume)."""
        from mpi4py import MPI

        comm = self.comm
        workers = set(range(1, _size(comm)))
        status = MPI.Status()
        busy = any(self._inflight.values())
        if not graceful and busy:
            sys.stderr.write("ionscreen: error on rank 0 while other ranks were computing; "
                             "aborting the MPI job (see the run log)\n")
            sys.stderr.flush()
            comm.Abort(1)
        deadline = time.monotonic() + (30.0 if graceful else 5.0)
        while self._ready != workers and time.monotonic() < deadline:
            msg = comm.improbe(source=MPI.ANY_SOURCE, tag=TAG_READY, status=status)
            if msg is None:
                time.sleep(1e-3)
                continue
            msg.recv()
            self._ready.add(status.Get_source())
        if self._ready != workers:
            sys.stderr.write("ionscreen: MPI ranks "
                             f"{sorted(workers - self._ready)} did not start; aborting\n")
            sys.stderr.flush()
            comm.Abort(1)
        for r in sorted(workers):
            self._sends.append(comm.isend(None, dest=r, tag=TAG_STOP))
        MPI.Request.waitall(self._sends)
        self._sends = []
        self._ready = set()

    def _mpi_worker_loop(self) -> RunSummary:
        from mpi4py import MPI

        comm = self.comm
        status = MPI.Status()
        comm.send(None, dest=0, tag=TAG_READY)
        n = 0
        while True:
            msg = self._recv(0, status)
            if status.Get_tag() == TAG_STOP:
                break
            jid, fn, doc = pickle.loads(msg)
            comm.send((jid, _execute(fn, doc)), dest=0, tag=TAG_RESULT)
            n += 1
        return RunSummary(mode=self.mode, role="worker", done=n)

    # ---- plumbing
    def _shutdown(self, graceful: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=graceful, cancel_futures=True)
            self._pool = None
        if self.comm is not None:
            self._mpi_stop_workers(graceful)

    def _progress_bar(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = self.console or Console(stderr=True)
        return Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not (self.progress and console.is_terminal),
            transient=False)


def run_jobs(store: ResultStore | str | os.PathLike[str], jobs: Iterable[JobSpec],
             **engine_kw: Any) -> RunSummary:
    """Shortcut: ``LocalEngine(store, **engine_kw).run(list(jobs))``."""
    return LocalEngine(store, **engine_kw).run(list(jobs))


__all__ = ["Step", "LocalEngine", "RunSummary", "Failure", "run_jobs", "TAG_READY", "TAG_WORK",
           "TAG_RESULT", "TAG_STOP"]
