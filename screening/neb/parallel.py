"""The band over MPI ranks: ASE's serial NEB, with the inner images' energies and forces
computed round-robin across ranks and all-gathered, so that every rank runs the same optimiser
step and holds the same band. The rank/image split is checked (ASE's own parallel NEB does not
check it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.mep import NEB

from ionscreen.errors import CalculationError


class _CachedCalculator(Calculator):
    """Holds energies and forces that another rank computed for exactly these positions."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, inner: Calculator) -> None:
        super().__init__()
        self.inner = inner
        self.cache: tuple[np.ndarray, float, np.ndarray] | None = None
        self.evaluations = 0

    def holds(self, positions: np.ndarray) -> bool:
        c = self.cache
        return c is not None and c[0].shape == positions.shape and np.array_equal(c[0], positions)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        if not self.holds(self.atoms.positions):
            e, f = _evaluate(self.inner, self.atoms)
            self.cache = (self.atoms.positions.copy(), e, f)
            self.evaluations += 1
        _, e, f = self.cache
        self.results = {"energy": e, "free_energy": e, "forces": f}


def _evaluate(calc: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    a = atoms.copy()
    a.set_constraint()
    a.calc = calc
    return float(a.get_potential_energy()), np.array(a.get_forces())


class DistributedNEB(NEB):
    """ASE's serial NEB, with the inner images' energies and forces computed across ranks.

    Every image must carry a :class:`_CachedCalculator`, which the serial band uses too (it
    counts the energy-and-force calls)."""

    def __init__(self, images, comm, **kwargs: Any) -> None:
        super().__init__(images, parallel=False, **kwargs)
        self.comm = comm

    def get_forces(self):
        inner = self.images[1:-1]
        size, rank = self.comm.Get_size(), self.comm.Get_rank()
        # every rank holds the same band, so every rank agrees on which images moved
        todo = [k for k in range(len(inner)) if not inner[k].calc.holds(inner[k].positions)]
        if todo:
            mine = {k: _evaluate(inner[k].calc.inner, inner[k]) for k in todo if k % size == rank}
            for part in self.comm.allgather(mine):
                for k, (e, f) in part.items():
                    inner[k].calc.cache = (inner[k].positions.copy(), e, f)
                    inner[k].calc.evaluations += 1
        return super().get_forces()


def make_band(images: list[Atoms], comm: Any, **kwargs: Any) -> NEB:
    """A :class:`DistributedNEB` over ``comm`` when it has more than one rank, else ASE's NEB."""
    if comm is not None and comm.Get_size() > 1:
        return DistributedNEB(images, comm, **kwargs)
    return NEB(images, **kwargs)


def rank_and_size(comm: Any) -> tuple[int, int]:
    """``(rank, size)`` of an mpi4py communicator, ``(0, 1)`` without one."""
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


def check_ranks(n_inner: int, comm) -> None:
    """Refuse a rank count that cannot share the inner images (ASE would silently misbehave)."""
    size = 1 if comm is None else comm.Get_size()
    if size > n_inner:
        raise CalculationError(
            f"{size} MPI ranks for {n_inner} inner NEB images: some ranks would have no image. "
            f"Use at most {n_inner} ranks, or --images {size} (or a multiple of {size})."
        )
