"""MPI: find the world communicator (the local engine's MPI executor shares the work out).

mpi4py is optional (``pip install "ionscreen[mpi]"``; on a cluster build mpi4py against the
site MPI). Run as ``mpiexec -n N ionscreen ...``. Without mpiexec everything runs serially.
"""

from __future__ import annotations

import os
from typing import Any

from ionscreen.errors import MissingDependencyError


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
