"""Where the local engine's jobs run: serially, in a process pool, or over MPI ranks.

Every executor has the same small interface: ``run(todo, events)`` computes the jobs of
``todo`` (pairs of :class:`~ionscreen.workflows.store.Job` and its step) and reports through
``events`` (:class:`Events`): ``started(ids, where)`` before a job is handed out,
``finished(job, outcome)`` when its outcome is back, ``warn(message)`` for the run log.
``close(graceful)`` ends it (the pool's processes, the MPI ranks' loops). The engine that owns
the store is the only caller of ``events``: pool workers and other ranks never see the store.

Pool: ``concurrent.futures.ProcessPoolExecutor`` with the *forkserver* start method (spawn
where forkserver does not exist). Forking the engine process itself is avoided: it holds an
open SQLite connection, rich's refresh thread and possibly numba/OpenMP thread pools, which
are not fork-safe. Step functions must therefore be importable (module-level functions or
``functools.partial`` of them), and scripts need the ``if __name__ == "__main__":`` guard.

MPI (``mpiexec -n N``): rank 0 hands out jobs dynamically; ranks 1..N-1 compute
(:meth:`MPIExecutor.serve`). With ``mpiexec -n 2`` one rank computes while rank 0 stores.
Protocol (point-to-point, pickled):

* a computing rank sends READY once, then receives WORK ``(job id, step, input)`` and
  answers each with RESULT ``(job id, outcome)``, until it receives STOP (end of the run);
* rank 0 keeps up to ``prefetch`` (2) jobs queued per rank with non-blocking sends, so the
  next job is already in a rank's mailbox when it finishes one (the round trip and rank 0's
  commits are hidden), and reports each RESULT when it arrives;
* waiting ranks poll (``improbe`` bursts, sleeps of up to ``poll`` s) instead of spinning a
  core;
* the step travels with each job, its function pickled by reference, so the computing ranks
  need no job list; between stages they simply wait for more work.

An error on rank 0 while other ranks compute aborts the MPI job (``MPI_Abort``); their jobs
stay ``running`` in the store and run again on resume.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .jobs import Outcome, execute, failed, worker_name
from .mpi import size as _size

if TYPE_CHECKING:
    from .plan import Step
    from .store import Job

Todo = tuple["Job", "Step"]

TAG_READY, TAG_WORK, TAG_RESULT, TAG_STOP = 11, 12, 13, 14


class Events(Protocol):
    """What an executor reports to the engine that owns the store."""

    def started(self, ids: list[str], where: str) -> None: ...

    def finished(self, job: Job, outcome: Outcome) -> None: ...

    def warn(self, message: str) -> None: ...


class Executor(Protocol):
    mode: str

    def run(self, todo: Sequence[Todo], events: Events) -> None: ...

    def close(self, graceful: bool) -> None: ...


# --------------------------------------------------------------------------- serial

class SerialExecutor:
    """Every job in this process, one after the other."""

    mode = "serial"

    def run(self, todo: Sequence[Todo], events: Events) -> None:
        me = worker_name()
        for job, step in todo:
            events.started([job.id], me)
            events.finished(job, execute(step, job.input))

    def close(self, graceful: bool) -> None:
        return None


# --------------------------------------------------------------------------- pool

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


class PoolExecutor:
    """A pool of ``workers`` processes with ``threads`` numba/OpenMP threads each. A worker
    that dies (segfault, ``os._exit``, OOM kill) takes the jobs in flight with it: those are
    rerun one at a time in fresh processes to find the one that kills it."""

    def __init__(self, workers: int, threads: int = 1, mp_context: str | None = None) -> None:
        self.workers = workers
        self.threads = threads
        self.mp_context = mp_context
        self.mode = f"pool({workers} workers)"
        self._pool: Any = None

    def _new_pool(self, workers: int) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(self.mp_context),
                                   initializer=_init_pool_worker,
                                   initargs=(self.threads, os.getpid()))

    def run(self, todo: Sequence[Todo], events: Events) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        window = 2 * self.workers  # jobs in flight: enough to keep workers busy, few to redo
        queue = deque(todo)
        inflight: dict[Any, Todo] = {}
        while queue or inflight:
            batch = [queue.popleft() for _ in range(min(window - len(inflight), len(queue)))]
            if batch:
                events.started([j.id for j, _ in batch], "pool")
                for job, step in batch:
                    inflight[self._pool.submit(execute, step, job.input)] = (job, step)
            finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
            suspects: list[Todo] = []
            for fut in finished:
                job, step = inflight.pop(fut)
                try:
                    outcome = fut.result()
                except BrokenProcessPool:
                    suspects.append((job, step))
                    continue
                except Exception as exc:  # e.g. the step function or input cannot be pickled
                    outcome = failed(type(exc).__name__,
                                     f"could not send the job to a worker process: {exc}", "pool")
                events.finished(job, outcome)
            if suspects:
                suspects += inflight.values()
                for fut in inflight:
                    fut.cancel()
                inflight.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                self._quarantine(suspects, events)
                self._pool = self._new_pool(self.workers)

    def _quarantine(self, suspects: list[Todo], events: Events) -> None:
        from concurrent.futures.process import BrokenProcessPool

        events.warn(f"a pool worker died; re-running the {len(suspects)} job(s) it may have "
                    "been running one at a time")
        for job, step in suspects:
            events.started([job.id], "pool (isolated)")
            pool = self._new_pool(1)
            try:
                outcome = pool.submit(execute, step, job.input).result()
            except BrokenProcessPool:
                outcome = failed("WorkerDied", "the worker process died while running this job "
                                 "(crash, os._exit, or killed e.g. out of memory)", "pool")
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            events.finished(job, outcome)

    def close(self, graceful: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=graceful, cancel_futures=True)
            self._pool = None


# --------------------------------------------------------------------------- MPI

class MPIExecutor:
    """Rank 0 hands out jobs to the other ranks of ``comm`` and gets their outcomes back;
    the other ranks call :meth:`serve`."""

    def __init__(self, comm: Any, prefetch: int = 2, poll: float = 1e-3) -> None:
        self.comm = comm
        self.prefetch = max(1, prefetch)
        self.poll = poll
        self.mode = f"mpi({_size(comm)} ranks)"
        self._ready: set[int] = set()  # ranks that said READY
        self._inflight: dict[int, deque[Todo]] = {r: deque() for r in range(1, _size(comm))}
        self._sends: list[Any] = []

    def _recv(self, source: int, status: Any) -> Any:
        """Receive one message without spinning a core at 100 %: bursts of ``improbe`` (MPI
        progress needs several calls) separated by sleeps growing to ``poll`` seconds.
        Pending work sends are progressed meanwhile."""
        from mpi4py import MPI

        delay = 5e-5
        while True:
            for _ in range(20):
                msg = self.comm.improbe(source=source, tag=MPI.ANY_TAG, status=status)
                if msg is not None:
                    return msg.recv()
            if self._sends:
                self._sends = [r for r in self._sends if not r.Test()]
            time.sleep(delay)
            delay = min(2 * delay, self.poll)

    def _hand_out(self, queue: deque[Todo], events: Events) -> None:
        """Top up every ready rank to ``prefetch`` jobs, breadth first (every rank gets one
        before any gets a second)."""
        for depth in range(self.prefetch):
            for r in sorted(self._ready):
                if not queue or len(self._inflight[r]) > depth:
                    continue
                job, step = queue.popleft()
                try:
                    payload = pickle.dumps((job.id, step, job.input),
                                           protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # the step function or input cannot be pickled
                    events.finished(job, failed(type(exc).__name__, "could not send the job to "
                                                f"rank {r}: {exc}", "rank 0"))
                    continue
                events.started([job.id], f"rank {r}")
                self._sends.append(self.comm.isend(payload, dest=r, tag=TAG_WORK))
                self._inflight[r].append((job, step))

    def run(self, todo: Sequence[Todo], events: Events) -> None:
        """Rank 0: hand out jobs to the ranks that asked, and report each outcome as it
        comes back."""
        from mpi4py import MPI

        status = MPI.Status()
        queue = deque(todo)
        while queue or any(self._inflight.values()):
            self._hand_out(queue, events)
            msg = self._recv(MPI.ANY_SOURCE, status)
            src, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_RESULT:
                jid, outcome = msg
                job, _ = self._inflight[src].popleft()
                assert job.id == jid, (job.id, jid)
                events.finished(job, outcome)
            elif tag == TAG_READY:
                self._ready.add(src)

    def close(self, graceful: bool) -> None:
        """Wait for every rank's READY, then send STOP to all. After an error on rank 0 with
        jobs still running on other ranks, abort the MPI job (their results would have nowhere
        to go; those jobs are still ``running`` in the store and run again on resume)."""
        from mpi4py import MPI

        comm = self.comm
        workers = set(range(1, _size(comm)))
        status = MPI.Status()
        if not graceful and any(self._inflight.values()):
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

    def serve(self) -> int:
        """Ranks 1..N-1: compute the jobs rank 0 sends until it says STOP; returns how many."""
        from mpi4py import MPI

        status = MPI.Status()
        self.comm.send(None, dest=0, tag=TAG_READY)
        n = 0
        while True:
            msg = self._recv(0, status)
            if status.Get_tag() == TAG_STOP:
                return n
            jid, step, doc = pickle.loads(msg)
            self.comm.send((jid, execute(step, doc)), dest=0, tag=TAG_RESULT)
            n += 1


__all__ = ["Events", "Executor", "MPIExecutor", "PoolExecutor", "SerialExecutor", "TAG_READY",
           "TAG_RESULT", "TAG_STOP", "TAG_WORK"]
