"""The band evaluated together: ASE's serial NEB, with the inner images' energies and forces
computed in one batch call of the model and/or round-robin across MPI ranks and all-gathered,
so that every rank runs the same optimiser step and holds the same band. The rank/image split is checked (ASE's own parallel NEB does not
check it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.mep import NEB

from ionscreen.errors import CalculationError

from .mirror import Mirror, best, half_band_note, symmetrise


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


class BatchCalculator(Calculator):
    """Energy and forces of one structure through a factory's ``batch`` evaluator: no stress
    or magnetic moments, which a NEB never reads (CHGNet's own calculator computes stress on
    every call, about 1.6x the cost of energy and forces alone)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, batch: Any) -> None:
        super().__init__()
        self.batch = batch

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.set_constraint()
        energies, forces = self.batch([a])
        e = float(energies[0])
        self.results = {"energy": e, "free_energy": e, "forces": np.asarray(forces[0], dtype=float)}


def force_calculator(factory: Any) -> Calculator:
    """The calculator a NEB relaxes endpoints with: energies and forces only, through the
    factory's ``batch`` evaluator when it has one, else the factory's own calculator."""
    batch = getattr(factory, "batch", None)
    return BatchCalculator(batch) if batch is not None else factory()


def _evaluate(calc: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    a = atoms.copy()
    a.set_constraint()
    a.calc = calc
    return float(a.get_potential_energy()), np.array(a.get_forces())


def _evaluate_many(images: list[Atoms], batch: Any) -> list[tuple[float, np.ndarray]]:
    """Energies and forces of ``images``: in one ``batch`` call of the model when there is one
    (constraints do not apply to the raw forces), else one image calculator after another."""
    if not images:
        return []
    if batch is None:
        return [_evaluate(im.calc.inner, im) for im in images]
    copies = []
    for im in images:
        a = im.copy()
        a.set_constraint()
        copies.append(a)
    energies, forces = batch(copies)
    return [(float(e), np.asarray(f, dtype=float)) for e, f in zip(energies, forces)]


class BandNEB(NEB):
    """ASE's serial NEB whose moved inner images are evaluated together: in one batch call of
    the model (``batch``, e.g. CHGNet's graph batching) and/or shared round-robin over the
    ranks of ``comm`` and all-gathered, so that every rank runs the same optimiser step and
    holds the same band.

    Every image must carry a :class:`_CachedCalculator`, which the serial band uses too (it
    counts the energy-and-force calls)."""

    def __init__(self, images, comm: Any = None, batch: Any = None,
                 mirror: Mirror | list[Mirror] | None = None, mirror_candidates: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(images, parallel=False, **kwargs)
        self.comm = comm
        self.batch = batch
        self.batch_calls = 0
        # one operation, or candidates of which the first force call picks one (mirror.best)
        self.mirror: Mirror | None = None
        self._candidates = list(mirror) if isinstance(mirror, list) else [mirror] if mirror else []
        self.mirror_note = ""  # what the mirror did, for the result ("" when not used)
        # how many operations swapped the endpoints (the note says, when more than one)
        self.candidates_total = mirror_candidates or len(self._candidates)
        self._mirror_checked = False

    def _use_mirror(self) -> int:
        """Symmetrise the band under ``mirror`` and fill the second half's caches from the
        first's; returns how many inner images to evaluate (all when there is no mirror)."""
        n_inner = len(self.images) - 2
        if not self._mirror_checked:
            self._mirror_checked = True
            # none when every operation maps this band onto another path, not its reverse, and
            # none for an even image count (the two middle images would climb onto one saddle)
            if n_inner % 2:
                self.mirror = best(self._candidates, [im.positions for im in self.images])
            if self.mirror is not None:
                self.mirror_note = half_band_note(self.mirror, self.candidates_total)
        if self.mirror is None:
            return n_inner
        pos = [im.positions.copy() for im in self.images]
        symmetrise(pos, self.mirror)
        for im, p in zip(self.images, pos):
            # rounding alone must not make an image "moved" (and evaluated again)
            if np.abs(im.positions - p).max() > 1e-9:
                im.positions = p
        first, last = self.images[0], self.images[-1]
        if not last.calc.holds(last.positions) and isinstance(first.calc, _CachedCalculator):
            first.get_potential_energy()
            _, e, f = first.calc.cache
            last.calc.cache = (last.positions.copy(), e, self.mirror.forces(f))
        return (n_inner + 1) // 2

    def _mirror_rest(self, own: int) -> None:
        """Energies and forces of the second half of the band from their images in the first."""
        inner = self.images[1:-1]
        for k in range(own, len(inner)):
            _, e, f = inner[len(inner) - 1 - k].calc.cache
            inner[k].calc.cache = (inner[k].positions.copy(), e, self.mirror.forces(f))

    def _mirror_neb_forces(self, forces: np.ndarray) -> np.ndarray:
        """The NEB forces of one half mapped onto the other, from the half that holds the
        climbing image: when the highest images are a symmetric pair (an intermediate minimum
        half way) both climb, each to its saddle, and the band stays symmetric."""
        n = len(self.images) - 2
        f = forces.reshape(n, -1, 3)
        climbing = self.climb and self.imax - 1 > (n - 1) / 2
        for k in range(n // 2):
            src, dst = (n - 1 - k, k) if climbing else (k, n - 1 - k)
            f[dst] = self.mirror.forces(f[src])
        m = n // 2  # the middle image: its force made exactly symmetric (noise, other tangents)
        f[m] = 0.5 * (f[m] + self.mirror.forces(f[m]))
        # ASE's residuals (the ODE optimiser's convergence): its measure, without the climbers
        skip = {self.imax - 1, n - self.imax} if self.climb else set()
        self.residuals = [float(np.abs(f[k]).max()) for k in range(n) if k not in skip]
        return f.reshape(-1, 3)

    def get_forces(self):
        inner = self.images[1:-1]
        if not all(isinstance(im.calc, _CachedCalculator) for im in inner):
            return super().get_forces()  # ASE's IDPP interpolation optimises a copy of this band
        rank, size = rank_and_size(self.comm)
        own = self._use_mirror()
        # every rank holds the same band, so every rank agrees on which images moved
        todo = [k for k in range(own) if not inner[k].calc.holds(inner[k].positions)]
        if todo:
            mine = [k for k in todo if k % size == rank]
            got = dict(zip(mine, _evaluate_many([inner[k] for k in mine], self.batch)))
            self.batch_calls += self.batch is not None and bool(mine)
            if size > 1:
                for part in self.comm.allgather(got):
                    got.update(part)
            for k, (e, f) in got.items():
                inner[k].calc.cache = (inner[k].positions.copy(), e, f)
                inner[k].calc.evaluations += 1
        if self.mirror is None:
            return super().get_forces()
        self._mirror_rest(own)
        return self._mirror_neb_forces(super().get_forces())


def make_band(images: list[Atoms], comm: Any, batch: Any = None,
              mirror: Mirror | list[Mirror] | None = None, mirror_candidates: int = 0,
              **kwargs: Any) -> NEB:
    """A :class:`BandNEB` when the images are evaluated together (more than one rank in
    ``comm``, or a ``batch`` evaluator) or half of them stand for the rest (``mirror``, see
    :mod:`.mirror`), else ASE's NEB."""
    if batch is not None or mirror or (comm is not None and comm.Get_size() > 1):
        return BandNEB(images, comm, batch=batch, mirror=mirror,
                       mirror_candidates=mirror_candidates, **kwargs)
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
