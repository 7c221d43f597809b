"""MPI distribution: find the world communicator, share work out, gather results on rank 0.

mpi4py is optional (``pip install "ionscreen[mpi]"``; on a cluster build mpi4py against the
site MPI). Run as ``mpiexec -n N ionscreen ...``. Without mpiexec everything runs serially.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ionscreen.structures.errors import MissingDependencyError

T = TypeVar("T")
R = TypeVar("R")



def launched_under_mpi() -> bool:
    """True when an MPI launcher started this process with more than one rank."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(var, "1").isdigit() and int(os.environ.get(var, "1")) > 1:
            return True
    return "PMIX_RANK" in os.environ and "OMPI_COMM_WORLD_SIZE" not in os.environ


def world() -> Any:
    """``MPI.COMM_WORLD`` when run under an MPI launcher, else None (serial).

    Under a launcher without mpi4py, every rank would silently redo the whole job; refuse.
    Each rank then uses one numba thread (several ranks share the cores).
    """
    if not launched_under_mpi():
        return None
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MissingDependencyError(
            "started under mpiexec, but mpi4py is not installed: every rank would run the whole "
            'job. Install it with pip install "ionscreen[mpi]" (or, on a cluster, pip install '
            "mpi4py built against the site MPI)."
        ) from exc
    comm = MPI.COMM_WORLD
    if comm.Get_size() > 1:
        import numba

        numba.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        return comm
    return None


def rank(comm: Any) -> int:
    return 0 if comm is None else comm.Get_rank()


def size(comm: Any) -> int:
    return 1 if comm is None else comm.Get_size()


def map_over_ranks(fn: Callable[[T], R], items: Sequence[T], comm: Any,
                   on_done: Callable[[int, R], None] | None = None) -> list[R] | None:
    """Apply ``fn`` to ``items`` shared round-robin over the ranks.

    Returns the results in the order of ``items`` on rank 0 and None on the other ranks.
    ``fn`` must not raise: return the failure as a result so that the batch goes on.
    ``on_done(index, result)`` is called on the rank that computed the item.
    """
    n, r = size(comm), rank(comm)
    mine: dict[int, R] = {}
    for i in range(r, len(items), n):
        mine[i] = fn(items[i])
        if on_done:
            on_done(i, mine[i])
    if comm is None:
        return [mine[i] for i in range(len(items))]
    parts = comm.gather(mine, root=0)
    if r != 0:
        return None
    merged: dict[int, R] = {}
    for p in parts:
        merged.update(p)
    return [merged[i] for i in range(len(items))]
