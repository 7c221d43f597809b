"""The one relaxation helper: an ASE optimiser on atoms (and optionally the cell) with any
calculator, for the ML tier (hosts, ion references) and the NEB endpoints."""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

from ionscreen.errors import CalculationError, IonscreenError

__all__ = ["OPTIMIZERS", "RelaxResult", "make_optimizer", "relax"]

#: Optimisers by name: BFGS takes the fewest steps from a near-equilibrium (e.g. experimental)
#: structure, FIRE is more robust from a rough start (and the NEB default).
OPTIMIZERS = ("BFGS", "FIRE")

# CHGNet's harmless torch warning on every call, and FrechetCellFilter's matrix logarithm,
# which warns at round-off level (~1e-13)
_QUIET = ("Converting a tensor with requires_grad=True to a scalar",
          "logm result may be inaccurate")


class RelaxResult(NamedTuple):
    """What :func:`relax` returns; unpacks as ``atoms, converged, steps``."""

    atoms: Any
    """The relaxed atoms, carrying the calculator."""
    converged: bool
    steps: int
    """Optimiser steps taken, all stages together."""


def _optimizer_class(name: str) -> type:
    from ase.optimize import BFGS, FIRE

    cls = {"BFGS": BFGS, "FIRE": FIRE}.get(str(name).upper())
    if cls is None:
        raise IonscreenError(f"unknown optimizer {name!r}; accepted: {', '.join(OPTIMIZERS)}")
    return cls


def make_optimizer(name: str, target: Any) -> Any:
    """An ASE optimiser ``name`` (see :data:`OPTIMIZERS`, any case) on ``target`` (atoms, a
    cell filter or a NEB band), without a log file."""
    return _optimizer_class(name)(target, logfile=None)


def relax(
    atoms: Any,
    calc: Any,
    *,
    fmax: float = 0.05,
    steps: int = 500,
    optimizer: str = "BFGS",
    cell: bool = False,
    smax: float | None = None,
    rattle: float = 0.0,
    seed: int = 0,
    in_place: bool = False,
    wrap_errors: bool = True,
) -> RelaxResult:
    """Relax ``atoms`` (a copy unless ``in_place``) with ``calc``.

    ``fmax`` is in eV/Å and ``steps`` bounds the total over the stages. ``optimizer`` is one of
    :data:`OPTIMIZERS`. Constraints on ``atoms`` are kept.

    ``cell=True`` relaxes the cell too, through ``ase.filters.FrechetCellFilter`` (the
    calculator must give stress). ASE's cell criterion alone is |stress| ≲ fmax·N/V, loose for
    small cells (0.7 GPa for 9-atom LiCoO2 at fmax 0.05); with ``smax`` (eV/Å³; 0.0006 eV/Å³ ≈
    0.1 GPa) a second stage tightens the force criterion to fmax·min(1, smax·V/(N·fmax)) until
    the stress is below about ``smax`` (the filter keeps its default, well-conditioned cell
    scaling).

    ``rattle`` (Å) displaces the atoms randomly (seeded by ``seed``) first, so that a
    high-symmetry starting point that is a saddle of the model is left.

    A calculator that fails raises :class:`CalculationError` (ionscreen's own errors pass
    unchanged); ``wrap_errors=False`` lets the calculator's exception through as it is.
    """
    if fmax <= 0 or steps < 0:
        raise IonscreenError(f"fmax must be > 0 and steps >= 0 (got fmax={fmax}, steps={steps})")
    if smax is not None and smax <= 0:
        raise IonscreenError(f"smax must be > 0 eV/Å³ (got {smax})")
    _optimizer_class(optimizer)  # an unknown name fails before any work
    work = atoms if in_place else atoms.copy()
    if rattle > 0:
        work.rattle(stdev=rattle, seed=seed)
    work.calc = calc
    try:
        with warnings.catch_warnings():
            for message in _QUIET:
                warnings.filterwarnings("ignore", message=message)
            converged, done = _stages(work, fmax, steps, optimizer, cell, smax)
    except (IonscreenError, MemoryError):
        raise
    except Exception as err:  # a third-party calculator can raise anything
        if not wrap_errors:
            raise
        raise CalculationError(
            f"relaxation of {work.get_chemical_formula()} failed: {type(err).__name__}: {err}"
        ) from err
    return RelaxResult(work, converged, done)


def _stages(work: Any, fmax: float, steps: int, optimizer: str, cell: bool,
            smax: float | None) -> tuple[bool, int]:
    """The first stage to ``fmax``; with a cell and ``smax``, a second one to the stress."""

    def stage(f: float, budget: int) -> tuple[bool, int]:
        if cell:
            from ase.filters import FrechetCellFilter

            opt = make_optimizer(optimizer, FrechetCellFilter(work))
        else:
            opt = make_optimizer(optimizer, work)
        return bool(opt.run(fmax=f, steps=budget)), int(opt.nsteps)

    converged, done = stage(fmax, steps)
    if cell and smax is not None and converged:
        # The filter's cell "forces" are virial / N, i.e. |stress| <~ fmax * N / V.
        fmax2 = min(fmax, smax * work.get_volume() / len(work))
        if fmax2 < fmax and abs(work.get_stress()).max() > smax:
            converged, more = stage(fmax2, max(steps - done, 0))
            done += more
    return converged, done
