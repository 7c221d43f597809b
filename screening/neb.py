"""Climbing-image NEB of one working ion, seeded from the BVSE landscape.

For each hop: a supercell in which periodic images of the mobile ion are at least
``min_image_distance`` apart; endpoints at the two BVSE sites (one ion in the empty host, the
dilute-ion limit, or one vacancy in the full host, the dilute-vacancy limit), nudged off their
symmetric positions and relaxed; an initial band along the BVSE grid path (or IDPP / linear);
a pre-relaxation without climbing, then climbing-image NEB (ASE) to ``fmax``. The barrier is
the highest image minus the lowest (said so when that differs from "highest minus initial").
A band that does not converge is reported as not converged, never as a barrier.

Practice from ../shared/notes/workflows-hpc.md: one calculator per image; explicit NEB method;
the rank/image split is checked here (ASE's own parallel NEB does not check it).

Under MPI (``comm`` with size > 1) the inner images are shared out round-robin: each rank
computes its images, energies and forces are all-gathered, and every rank runs the same
optimiser step, so every rank holds the same band.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms
from ase.mep import NEB
from pymatgen.core import Structure

from ionscreen.kernels.cells import perpendicular_heights
from ionscreen.structures.errors import (
    CalculationError,
    IonscreenError,
    MissingParameterError,
    StructureValidationError,
)

from .bvse import DIMS, BVSEResult, BVSESettings, Hop, compute_landscape, prepare_host
from .calculators import MOBILE_TAG, BVFFCalculator, BVFFModel, mobile_symbol, structure_to_atoms
from .params import IonModel, ion_model
from .relax import make_optimizer, relax

LIMITS = ("dilute-ion", "dilute-vacancy")


class MergedEndpointsError(CalculationError):
    """Both endpoints of a hop relaxed into the same minimum: for this calculator it is no hop."""

PATHS = ("bvse", "idpp", "linear")
METHODS = ("improvedtangent", "aseneb", "eb", "spline", "string")


@dataclass
class NEBSettings:
    """How one NEB is set up and converged (all part of the result)."""

    images: int = 7
    """Inner images (the band has images + 2 endpoints)."""
    method: str = "improvedtangent"
    """ASE NEB tangent/force method, always passed explicitly (ASE's default changed in 3.27)."""
    climb: bool = True
    """Climbing image in the second stage."""
    spring: float = 0.1
    """Spring constant (eV/Å²)."""
    fmax_pre: float = 0.3
    """First stage, without climbing (eV/Å)."""
    fmax: float = 0.05
    """Convergence of the climbing stage (eV/Å)."""
    fmax_endpoints: float = 0.02
    """Convergence of the endpoint relaxations (eV/Å): tighter than the band, so that no
    image relaxes the host below an endpoint."""
    steps: int = 1000
    """Most optimiser steps per stage."""
    optimizer: str = "FIRE"
    """"FIRE" or "BFGS"."""
    relax_host: bool = True
    """Host atoms relax in endpoints and images; False keeps them fixed (only the ion moves)."""
    limit: str = "dilute-ion"
    """"dilute-ion" (one ion in the empty host) or "dilute-vacancy" (one vacancy in the full host)."""
    path: str = "bvse"
    """Initial band: "bvse" (the BVSE grid path of the hop), "idpp" or "linear"."""
    min_image_distance: float = 8.0
    """Smallest distance (Å) between periodic images of the mobile ion (sets the supercell)."""
    nudge: float = 0.1
    """Endpoints are moved this far (Å, seeded direction) before relaxing, off any symmetric saddle."""
    seed: int = 0
    diverge_fmax: float = 5.0
    """A band whose largest force exceeds this (eV/Å) after 10 steps has diverged: stop."""
    fallback_fixed_host: bool = True
    """When the band diverges with the host relaxing, redo the hop with the host fixed (said so)."""
    min_endpoint_distance: float = 0.5
    """Endpoints closer than this (Å, mobile ion) are refused."""
    derive_nitride: bool = False
    """BVFF only: derive a missing ion–N3- row from the ion's O2- row, as BVSE's
    ``--derive-nitride`` does; the calculator label and the result say it is approximate."""

    def validate(self) -> None:
        checks = [
            (self.images >= 1, "images must be >= 1 (7 is typical)"),
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.spring > 0, "spring must be positive"),
            (0 < self.fmax <= self.fmax_pre, "need 0 < fmax <= fmax_pre"),
            (self.fmax_endpoints > 0, "fmax_endpoints must be positive"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.optimizer in ("FIRE", "BFGS"), "optimizer must be FIRE or BFGS"),
            (self.limit in LIMITS, f"limit must be one of {', '.join(LIMITS)}"),
            (self.path in PATHS, f"path must be one of {', '.join(PATHS)}"),
            (self.min_image_distance > 0, "min_image_distance must be positive"),
            (self.nudge >= 0, "nudge must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"invalid NEB setting: {msg}")


# ----------------------------------------------------------------------------- calculators


@dataclass
class CalculatorChoice:
    """A way to make one calculator per image, with what the numbers should be labelled."""

    make: Callable[[], Calculator]
    identity: str
    tier: str
    note: str = ""
    approximate: bool = False


def choose_calculator(spec: str | CalculatorChoice | Callable[[], Calculator], template: Atoms,
                      ion: IonModel, threads: int = 1, derive_nitride: bool = False) -> CalculatorChoice:
    """``"bvff"``, an ML potential (``"chgnet"``...), ``"module:Class"`` or a zero-argument factory.

    ``derive_nitride`` applies to the BVFF only (an ML potential needs no pair rows)."""
    if isinstance(spec, CalculatorChoice):
        return spec
    if callable(spec):
        return CalculatorChoice(spec, getattr(spec, "identity", repr(spec)), getattr(spec, "tier", "ASE calculator"))
    if spec.lower() == "bvff":
        model = BVFFModel.from_atoms(template, ion, derive_nitride=derive_nitride)
        note = "bond-valence force field: ranks barriers, not a prediction of absolute values"
        if model.derived:
            note += f"; approximate: {', '.join(model.derived)} row derived by the nitride transfer rule"
        return CalculatorChoice(lambda: BVFFCalculator(model), model.identity, "BVFF", note,
                                approximate=bool(model.derived) or ion.approximate)
    if ion.name == "NH4":
        raise IonscreenError(
            "NH4+ is modelled as a single pseudo-atom, which only the BVFF understands; use "
            "--calculator bvff for NH4 (an ML NEB would need the explicit N–H molecule)")
    from .mlip import calculator_factory

    f = calculator_factory(spec, threads=threads)
    return CalculatorChoice(f, f.identity, f.tier, getattr(f, "note", ""))


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


class _DistributedNEB(NEB):
    """ASE's serial NEB, with the inner images' energies and forces computed across ranks."""

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


def check_ranks(n_inner: int, comm) -> None:
    """Refuse a rank count that cannot share the inner images (ASE would silently misbehave)."""
    size = 1 if comm is None else comm.Get_size()
    if size > n_inner:
        raise CalculationError(
            f"{size} MPI ranks for {n_inner} inner NEB images: some ranks would have no image. "
            f"Use at most {n_inner} ranks, or --images {size} (or a multiple of {size})."
        )


# ----------------------------------------------------------------------------- results


@dataclass
class NEBResult:
    """One NEB hop: barrier (only when converged), profile, band and what produced it."""

    formula: str
    ion: str
    calculator: str
    tier: str
    method: str
    converged: bool
    barrier: float | None  # eV: highest image minus lowest image; None unless converged
    barrier_forward: float  # eV: highest image minus the initial endpoint (at the last step)
    barrier_reverse: float  # eV: highest image minus the final endpoint
    energies: list[float]  # eV relative to the lowest image
    reaction_coordinate: list[float]  # Å, cumulative path length of the mobile ion
    ion_path: list[list[float]]  # Cartesian positions of the mobile ion, one per image (Å)
    steps: dict[str, int]
    fmax_final: float
    hop: dict[str, Any]
    supercell: list[int]
    n_atoms: int
    ion_image_distance: float
    settings: dict[str, Any]
    timings: dict[str, float]
    status: str = "converged"
    note: str = ""
    warnings: list[str] = field(default_factory=list)
    images: list[Atoms] | None = field(default=None, repr=False)
    approximate: bool = False  # an approximate ion model or a derived pair row (see calculator)

    def to_dict(self, with_images: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "images"}
        if with_images and self.images:
            d["images"] = {
                "symbols": self.images[0].get_chemical_symbols(),
                "cell": self.images[0].cell.array.tolist(),
                "positions": [a.positions.round(5).tolist() for a in self.images],
            }
        return d


@dataclass(frozen=True)
class NEBSummary:
    """The numbers of one NEB report that ranking and exports use.

    ``barrier`` is the rate-limiting converged hop barrier (eV) or None; ``status`` says
    "converged" or why there is no barrier (each reason once). A NEB job that failed before it
    could report is :meth:`failed`. Built by :meth:`NEBReport.summary`; stored as the
    ``summary`` of a NEB job.
    """

    barrier: float | None
    converged: bool
    calculator: str
    tier: str
    status: str
    approximate: bool = False
    dimension: str | None = None
    bvse_barrier: float | None = None
    hops: int = 0
    failures: int = 0

    @property
    def label(self) -> str:
        """What produced the barrier: ``"BVFF CI-NEB (<calculator>)"``."""
        return f"{self.tier} CI-NEB ({self.calculator or 'unknown calculator'})"

    @classmethod
    def failed(cls, calculator: str, reason: str) -> NEBSummary:
        """The summary of a NEB job that failed (``reason`` as stored by the engine)."""
        return cls(barrier=None, converged=False, calculator=calculator,
                   tier=tier_of(calculator), status=f"failed: {reason}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NEBSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def tier_of(calculator: str) -> str:
    """Tier label of a NEB calculator spec when no report says it ("BVFF" or "NEB")."""
    return "BVFF" if str(calculator).lower() == "bvff" else "NEB"


@dataclass
class NEBReport:
    """NEB over the hops of the lowest-barrier percolating path BVSE found (or one chosen hop)."""

    formula: str
    ion: str
    calculator: str
    tier: str
    barrier: float | None  # eV, the highest converged hop barrier (rate-limiting); None if any hop failed
    rate_limiting_hop: int | None  # index into hops
    dimension: str | None  # BVSE percolation dimension the hops belong to
    hops: list[NEBResult]
    bvse: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    approximate: bool = False

    def to_dict(self, with_images: bool = False) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "hops"}
        d["hops"] = [h.to_dict(with_images) for h in self.hops]
        d["barrier_label"] = f"{self.tier} CI-NEB barrier ({self.calculator})"
        return d

    def to_json(self, path: str | Path | None = None, with_images: bool = False) -> str:
        text = json.dumps(_jsonable(self.to_dict(with_images)), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    def summary(self) -> NEBSummary:
        """The numbers ranking and exports use, as a small frozen record."""
        reasons = ([h.status for h in self.hops if not h.converged]
                   or [f["reason"] for f in self.failures])
        status = "converged" if self.barrier is not None else (
            "; ".join(dict.fromkeys(reasons)) or "no hop computed")  # each reason once
        return NEBSummary(
            barrier=self.barrier, converged=self.barrier is not None, calculator=self.calculator,
            tier=self.tier, status=status, approximate=self.approximate, dimension=self.dimension,
            bvse_barrier=self.bvse.get("barrier"), hops=len(self.hops), failures=len(self.failures))

    def summary_text(self) -> str:
        """Lines for a terminal: each hop and the rate-limiting barrier."""
        lines = [f"{self.formula} {self.ion}: {self.tier} CI-NEB ({self.calculator})"]
        for k, h in enumerate(self.hops):
            b = f"{h.barrier:.3f} eV" if h.barrier is not None else f"not converged ({h.status})"
            lines.append(f"  hop {h.hop.get('index', k)} ({h.hop.get('length', float('nan')):.2f} Å, BVSE "
                         f"{h.hop.get('bvse_barrier', float('nan')):.3f} eV): {b}")
        b = "n/a" if self.barrier is None else f"{self.barrier:.3f} eV"
        bv = self.bvse.get("barrier")
        lines.append(f"  barrier (rate-limiting hop): {b}; BVSE {self.dimension or ''} "
                     f"{'n/a' if bv is None else f'{bv:.3f} eV'}")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> None:
        """Energy profile of every hop, NEB points over the BVSE grid path (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = max(1, len(self.hops))
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
        for ax, h in zip(axes[0], self.hops):
            x = np.array(h.reaction_coordinate)
            ax.plot(x, h.energies, "o-", color="C0", label=f"{h.tier} CI-NEB")
            bx, be = h.hop.get("bvse_path_length"), h.hop.get("bvse_path_energy")
            if bx and be:
                bx = np.array(bx) * (x[-1] / bx[-1] if bx[-1] > 0 else 1.0)
                ax.plot(bx, np.array(be) - min(be), "--", color="C1", label="BVSE grid path")
            title = f"hop {h.hop.get('index', '')}: "
            title += f"{h.barrier:.3f} eV" if h.barrier is not None else "not converged"
            ax.set_title(title, fontsize=10)
            ax.set_xlabel(f"{self.ion} path length (Å)")
            ax.set_ylabel("E − E_min (eV)")
            ax.legend(fontsize=8)
        b = "n/a" if self.barrier is None else f"{self.barrier:.3f} eV"
        bv = self.bvse.get("barrier")
        bv = "n/a" if bv is None else f"{bv:.3f} eV"
        fig.suptitle(f"{self.formula}, {self.ion}: {self.tier} CI-NEB {b}; BVSE {self.dimension or ''} {bv}",
                     fontsize=10)
        fig.text(0.01, 0.005, self.calculator, fontsize=6, color="0.4")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return x.item()
    return x


# ----------------------------------------------------------------------------- set-up


def supercell_for(lattice: np.ndarray, min_distance: float) -> list[int]:
    """Smallest diagonal repetition whose perpendicular heights are all >= ``min_distance``.

    Heights bound the distance between periodic images from below, so images of one ion are
    at least that far apart.
    """
    h = perpendicular_heights(np.asarray(lattice, dtype=float))
    return [max(1, math.ceil(min_distance / x - 1e-9)) for x in h]


def _path_length(points: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points at equal arc length along a polyline (ends included)."""
    s = _path_length(points)
    if s[-1] <= 0:
        return np.repeat(points[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, d]) for d in range(3)], axis=1)


def _optimizer(name: str, atoms):
    return make_optimizer(name, atoms)


def _run_band(band: NEB, name: str, fmax: float, steps: int, diverge: float) -> tuple[bool, int, bool]:
    """Optimise the band; stop early when it diverges (max force above ``diverge`` after 10 steps).

    Returns (converged, steps, diverged).
    """
    opt = _optimizer(name, band)
    n = 0
    for converged in opt.irun(fmax=fmax, steps=steps):
        if converged:
            return True, int(opt.nsteps), False
        n += 1
        if n > 10 and float(np.sqrt((band.get_forces() ** 2).sum(axis=1).max())) > diverge:
            return False, int(opt.nsteps), True
    return False, int(opt.nsteps), False


def _relax(atoms: Atoms, calc: Calculator, fmax: float, steps: int, name: str) -> tuple[bool, int]:
    return relax(atoms, calc, fmax=fmax, steps=steps, optimizer=name, in_place=True,
                 wrap_errors=False)[1:]


@dataclass
class _Setup:
    host: Atoms  # supercell host (with the other ions in the vacancy limit), no moving ion
    start: np.ndarray  # Cartesian start of the moving ion (supercell frame)
    end: np.ndarray
    grid_path: np.ndarray  # Cartesian BVSE grid path
    grid_energy: np.ndarray
    supercell: list[int]
    ion_distance: float


def _setup(structure: Structure, ion: IonModel, hop: Hop, bvse: BVSEResult, settings: NEBSettings,
           oxidation_states: dict[str, float] | None) -> _Setup:
    host = prepare_host(structure, ion, BVSESettings(derive_nitride=settings.derive_nitride), oxidation_states)
    lattice = host.framework.lattice.matrix
    if not np.allclose(lattice, np.array(bvse.lattice), atol=1e-6):
        raise StructureValidationError("the BVSE result was computed for another cell than this structure")
    sc = supercell_for(lattice, settings.min_image_distance)
    path = np.array(hop.path_frac, dtype=float) @ lattice
    if len(path) < 2:
        raise CalculationError(f"hop {hop.site_i}->{hop.site_j} has no grid path to start from")
    start, end = path[0], path[-1]
    if np.linalg.norm(end - start) < settings.min_endpoint_distance:
        raise CalculationError(
            f"the endpoints of hop {hop.site_i}->{hop.site_j} are {np.linalg.norm(end - start):.2f} Å apart "
            f"(< {settings.min_endpoint_distance} Å): identical or too-close endpoints make no NEB")
    # keep the path inside the supercell frame: start in cell 0, the supercell is large enough
    if settings.limit == "dilute-ion":
        base = host.framework.copy()
        mobile_idx: list[int] = []
    else:
        base = host.structure.copy()
        mobile_idx = [i for i, s in enumerate(base) if s.specie.symbol == ion.element
                      and getattr(s.specie, "oxi_state", None) == ion.charge]
        if not mobile_idx:
            raise StructureValidationError(
                f"the dilute-vacancy limit needs a structure that contains {ion.label()} ions "
                f"({base.composition.reduced_formula} has none); use the dilute-ion limit")
    big = base.copy()
    big.make_supercell(sc)
    atoms = structure_to_atoms(big)
    tags = np.zeros(len(atoms), int)
    if mobile_idx:
        syms = atoms.get_chemical_symbols()
        q = atoms.get_initial_charges()
        tags[[i for i in range(len(atoms)) if syms[i] == ion.element and abs(q[i] - ion.charge) < 1e-6]] = MOBILE_TAG
        # the moving ion is the one at the start; the destination site must be empty
        cell = atoms.cell
        ions = np.nonzero(tags == MOBILE_TAG)[0]
        d_start = _mic_dist(atoms.positions[ions], start, cell)
        d_end = _mic_dist(atoms.positions[ions], end, cell)
        if d_start.min() > 0.7:
            raise StructureValidationError(
                f"no {ion.label()} within 0.7 Å of the start site of the hop; the dilute-vacancy "
                "limit needs the ions on their BVSE sites (use the dilute-ion limit)")
        mover = int(ions[np.argmin(d_start)])
        # one vacancy: the ion on the destination site, or (when the hop ends on an empty
        # intermediate site) the ion nearest to it, the next site along the path
        d_end[ions == mover] = np.inf
        drop = [mover, int(ions[np.argmin(d_end)])]
        keep = [i for i in range(len(atoms)) if i not in drop]
        tags = tags[keep]
        atoms = atoms[keep]
    atoms.set_tags(tags)
    return _Setup(atoms, start, end, path, np.array(hop.path_energy, dtype=float), sc,
                  float(min(perpendicular_heights(atoms.cell.array))))


def _mic_dist(points: np.ndarray, x: np.ndarray, cell) -> np.ndarray:
    from ase.geometry import find_mic

    _, d = find_mic(points - x[None, :], cell, pbc=True)
    return np.atleast_1d(d)


def _with_ion(host: Atoms, pos: np.ndarray, ion: IonModel) -> Atoms:
    a = host.copy()
    extra = Atoms(mobile_symbol(ion), positions=[pos], cell=host.cell, pbc=True)
    extra.set_initial_charges([float(ion.charge)])
    extra.set_tags([MOBILE_TAG])
    a += extra
    return a


# ----------------------------------------------------------------------------- one hop


def neb_hop(
    structure: Structure,
    ion: str | IonModel,
    hop: Hop,
    bvse: BVSEResult,
    calculator: str | CalculatorChoice | Callable[[], Calculator] = "bvff",
    settings: NEBSettings | None = None,
    comm: Any = None,
    oxidation_states: dict[str, float] | None = None,
    hop_index: int | None = None,
) -> NEBResult:
    """CI-NEB of one BVSE hop. ``comm``: an mpi4py communicator to share the images over."""
    settings = settings or NEBSettings()
    settings.validate()
    ion = ion_model(ion)
    check_ranks(settings.images, comm)
    t0 = time.perf_counter()
    st = _setup(structure, ion, hop, bvse, settings, oxidation_states)
    first = _with_ion(st.host, st.start, ion)
    choice = choose_calculator(calculator, first, ion, derive_nitride=settings.derive_nitride)
    n_ion = len(first) - 1  # the moving ion is the last atom
    fixed = [] if settings.relax_host else list(range(n_ion))
    rng = np.random.default_rng(settings.seed)
    warnings: list[str] = []

    # endpoints: nudge, relax (under MPI the two relaxations run on different ranks)
    kicks = [rng.normal(size=3) for _ in range(2)]
    size, rank = (1, 0) if comm is None else (comm.Get_size(), comm.Get_rank())
    ends = []
    done: dict[int, tuple[np.ndarray, bool, int]] = {}
    for k, pos in enumerate((st.start, st.end)):
        a = _with_ion(st.host, pos, ion)
        if settings.nudge > 0:
            a.positions[n_ion] += settings.nudge * kicks[k] / np.linalg.norm(kicks[k])
        if fixed:
            a.set_constraint(FixAtoms(indices=fixed))
        ends.append(a)
        if k % size == rank:
            ok, n = _relax(a, choice.make(), settings.fmax_endpoints, settings.steps, settings.optimizer)
            done[k] = (a.positions.copy(), ok, n)
    if size > 1:
        for part in comm.allgather(done):
            done.update(part)
    steps: dict[str, int] = {}
    for k, name in enumerate(("initial", "final")):
        pos_k, ok, n = done[k]
        ends[k].positions = pos_k
        steps[f"relax_{name}"] = n
        if not ok:
            warnings.append(f"{name} endpoint not relaxed to fmax {settings.fmax_endpoints} in {n} steps")
        moved = float(np.linalg.norm(pos_k[n_ion] - (st.start, st.end)[k]))
        if moved > 1.0:
            warnings.append(f"{name} endpoint: the ion moved {moved:.2f} Å from its BVSE site on relaxing")
    sep = float(np.linalg.norm(ends[1].positions[n_ion] - ends[0].positions[n_ion]))
    if sep < settings.min_endpoint_distance:
        raise MergedEndpointsError(
            f"after relaxation both endpoints hold the ion within {sep:.2f} Å of each other: the "
            "hop's two sites are the same minimum for this calculator; try another hop or "
            "a fixed host (--fixed-host)")
    t_end = time.perf_counter()

    # initial band
    n = settings.images + 2
    images = [ends[0]]
    for _ in range(settings.images):
        images.append(ends[0].copy())
    images.append(ends[1])
    if settings.path == "bvse":
        g = _resample(st.grid_path, n)
        t = np.linspace(0.0, 1.0, n)
        ion_pos = (g + (1 - t)[:, None] * (ends[0].positions[n_ion] - g[0])
                   + t[:, None] * (ends[1].positions[n_ion] - g[-1]))
        for k in range(1, n - 1):
            w = t[k]
            images[k].positions = (1 - w) * ends[0].positions + w * ends[1].positions
            images[k].positions[n_ion] = ion_pos[k]
    for im in images:
        im.calc = _CachedCalculator(choice.make())
        if fixed:
            im.set_constraint(FixAtoms(indices=fixed))
    distributed = comm is not None and comm.Get_size() > 1
    kw = dict(k=settings.spring, climb=False, method=settings.method)
    band = _DistributedNEB(images, comm, **kw) if distributed else NEB(images, **kw)
    if settings.path in ("linear", "idpp"):
        band.interpolate(method=settings.path, mic=True, apply_constraint=False)

    ok_pre, n_pre, div = _run_band(band, settings.optimizer, settings.fmax_pre, settings.steps,
                                   settings.diverge_fmax)
    steps["pre"] = n_pre
    converged, n_climb = False, 0
    if not div:
        if settings.climb:
            band.climb = True
        converged, n_climb, div = _run_band(band, settings.optimizer, settings.fmax, settings.steps,
                                            settings.diverge_fmax)
    steps["climb" if settings.climb else "final"] = n_climb
    fmax_final = float(np.sqrt((band.get_forces() ** 2).sum(axis=1).max()))
    if div and settings.relax_host and settings.fallback_fixed_host:
        # the force field does not hold this host around the ion: redo the hop with the host fixed
        fixed_settings = NEBSettings(**{**asdict(settings), "relax_host": False})
        res = neb_hop(structure, ion, hop, bvse, choice, fixed_settings, comm, oxidation_states, hop_index)
        res.warnings.insert(0, f"with the host relaxing, the band diverged (fmax {fmax_final:.1f} eV/Å "
                               "after " + f"{n_pre + n_climb} steps): this hop was computed with the host "
                               "fixed (only the ion moves)")
        res.settings["fallback_from_relaxed_host"] = True
        return res
    if not ok_pre and not div:
        warnings.append(f"pre-relaxation did not reach fmax {settings.fmax_pre} in {steps['pre']} steps")
    t_band = time.perf_counter()

    e = np.array([im.get_potential_energy() for im in images])
    ion_path = np.array([im.positions[n_ion] for im in images])
    e_rel = e - e.min()
    barrier = float(e_rel.max())
    fwd = float(e.max() - e[0])
    rev = float(e.max() - e[-1])
    note = "barrier = highest image minus lowest image on the band"
    if abs(barrier - fwd) > 1e-3:
        note += f"; it differs from highest minus initial endpoint ({fwd:.3f} eV)"
    if converged:
        status = "converged"
    elif div:
        status = f"not converged: the band diverged (fmax {fmax_final:.1f} eV/Å)"
    else:
        status = f"not converged: fmax {fmax_final:.3f} > {settings.fmax} eV/Å after {settings.steps} steps"
    bvse_len = _path_length(st.grid_path)
    evals = sum(getattr(im.calc, "evaluations", 0) for im in images)
    return NEBResult(
        formula=first.get_chemical_formula(mode="reduce"),
        ion=ion.label(),
        calculator=choice.identity,
        tier=choice.tier,
        method=f"CI-NEB ({settings.method} tangent, {settings.optimizer}; pre-relaxed to "
               f"{settings.fmax_pre} eV/Å without climbing)",
        converged=converged,
        barrier=barrier if converged else None,
        barrier_forward=fwd,
        barrier_reverse=rev,
        energies=e_rel.round(6).tolist(),
        reaction_coordinate=_path_length(ion_path).round(5).tolist(),
        ion_path=ion_path.round(5).tolist(),
        steps=steps,
        fmax_final=fmax_final,
        hop={
            "index": hop_index, "site_i": hop.site_i, "site_j": hop.site_j, "image": hop.image,
            "distinct": hop.distinct, "multiplicity": hop.multiplicity, "length": hop.length,
            "bvse_barrier": hop.barrier, "percolation": hop.percolation,
            "bvse_path_length": bvse_len.round(4).tolist(), "bvse_path_energy": st.grid_energy.round(5).tolist(),
        },
        supercell=st.supercell,
        n_atoms=len(first),
        ion_image_distance=st.ion_distance,
        settings=asdict(settings),
        timings={"endpoints": t_end - t0, "band": t_band - t_end, "total": t_band - t0,
                 "energy_force_calls": float(evals)},
        status=status,
        note=note + (f". {choice.note}" if choice.note else ""),
        warnings=warnings,
        images=images,
        approximate=choice.approximate,
    )


# ----------------------------------------------------------------------------- the hops of a path


def percolating_hops(bvse: BVSEResult) -> tuple[str | None, list[int]]:
    """The lowest dimension that percolates and the symmetry classes (``Hop.distinct``) of the
    hops of its percolating cluster, lowest BVSE barrier first."""
    for dim in DIMS:
        if math.isfinite(bvse.barriers.get(dim, math.inf)):
            idx = [h.distinct for h in bvse.distinct_hops if h.percolation == dim]
            if idx:
                return dim, idx
    return None, []


def _bvff_precheck(structure: Structure, ion: IonModel, settings: NEBSettings,
                   oxidation_states: dict[str, float] | None) -> tuple[NEBSettings, str | None]:
    """Build the host's BVFF once, so that a missing pair row fails the whole NEB with one
    reason instead of once per hop; a host with neutral (covalently bound) atoms, which the
    BVFF does not hold together, is kept fixed, and the returned warning says so."""
    try:
        host = prepare_host(structure, ion, BVSESettings(derive_nitride=settings.derive_nitride),
                            oxidation_states)
        model = BVFFModel.from_atoms(structure_to_atoms(host.framework), ion,
                                     derive_nitride=settings.derive_nitride)
    except MissingParameterError as exc:
        raise MissingParameterError(
            f"BVFF NEB not possible for this host: {exc} (the BVFF needs a row for every "
            "cation–anion pair of the host; an ML potential needs none: calculator 'chgnet', "
            "--neb-calculator chgnet in a screen)") from None
    if not (model.neutral and settings.relax_host):
        return settings, None
    fixed = NEBSettings(**{**asdict(settings), "relax_host": False})
    return fixed, (f"host kept fixed (only the ion moves): the BVFF has no terms for the neutral "
                   f"{', '.join(model.neutral)} of covalently bound ligands, which would not hold "
                   "together on relaxing; an ML potential relaxes them")


def run_neb(
    structure: Structure,
    ion: str | IonModel,
    calculator: str | CalculatorChoice | Callable[[], Calculator] = "bvff",
    hop: int | None = None,
    settings: NEBSettings | None = None,
    bvse: BVSEResult | None = None,
    comm: Any = None,
    oxidation_states: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> NEBReport:
    """NEB of every symmetry-distinct hop on the lowest-barrier percolating BVSE path (or hop
    ``hop``, a symmetry class ``Hop.distinct`` as listed by ``ionscreen bvse``); the overall
    barrier is the highest of them."""
    settings = settings or NEBSettings()
    settings.validate()
    ion = ion_model(ion)
    check_ranks(settings.images, comm)
    if bvse is None:
        bvse = compute_landscape(structure, ion, settings=BVSESettings(
            resolution=0.1, derive_nitride=settings.derive_nitride), oxidation_states=oxidation_states)
    distinct = {h.distinct: h for h in bvse.distinct_hops}
    if hop is not None:
        if hop not in distinct:
            raise IonscreenError(
                f"hop {hop} does not exist: BVSE found the symmetry-distinct hops "
                f"{sorted(distinct)} (the 'hop' column of `ionscreen bvse` or `ionscreen neb --list-hops`)")
        dim, chosen = distinct[hop].percolation, [hop]
    else:
        dim, chosen = percolating_hops(bvse)
        if not chosen:
            raise CalculationError(
                f"BVSE found no percolating path for {ion.label()} below encut in "
                f"{bvse.formula}; choose a hop with --hop N (see --list-hops)")
    forced: str | None = None
    if isinstance(calculator, str) and calculator.lower() != "bvff":
        # load an ML model once for all hops; a missing extra stops here, not per hop
        calculator = choose_calculator(calculator, None, ion)  # type: ignore[arg-type]
    elif isinstance(calculator, str):
        settings, forced = _bvff_precheck(structure, ion, settings, oxidation_states)
    results: list[NEBResult] = []
    failures: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    if hop is None:
        # split sites (two minima closer than an NEB can resolve) are no hop to compute
        for k in list(chosen):
            if distinct[k].length < settings.min_endpoint_distance:
                chosen.remove(k)
                skipped.append({"hop": k, "length": distinct[k].length, "bvse_barrier": distinct[k].barrier,
                                "reason": f"sites {distinct[k].length:.2f} Å apart (a split site), "
                                          f"below min_endpoint_distance {settings.min_endpoint_distance} Å"})
    for k in chosen:
        if progress:
            progress(f"hop {k}: {distinct[k].length:.2f} Å, BVSE {distinct[k].barrier:.3f} eV")
        try:
            results.append(neb_hop(structure, ion, distinct[k], bvse, calculator, settings, comm,
                                   oxidation_states, hop_index=k))
        except MergedEndpointsError as exc:
            if hop is not None:
                raise
            skipped.append({"hop": k, "length": distinct[k].length, "bvse_barrier": distinct[k].barrier,
                            "reason": str(exc)})
        except IonscreenError as exc:
            failures.append({"hop": k, "error": type(exc).__name__, "reason": str(exc)})
    if forced:
        for r in results:
            r.warnings.insert(0, forced)
    done = [r for r in results if r.barrier is not None]
    ok = bool(done) and len(done) == len(results) and not failures
    worst = max(range(len(results)), key=lambda i: results[i].barrier or -1.0) if done else None
    if results:
        calc_id, tier = results[0].calculator, results[0].tier
    elif isinstance(calculator, CalculatorChoice):
        calc_id, tier = calculator.identity, calculator.tier
    else:  # no hop ran: say which calculator was asked for
        calc_id = str(calculator)
        tier = tier_of(calc_id)
    bv = bvse.barriers.get(dim) if dim else None
    return NEBReport(
        formula=bvse.formula,
        ion=ion.label(),
        calculator=calc_id,
        tier=tier,
        barrier=results[worst].barrier if ok and worst is not None else None,
        rate_limiting_hop=results[worst].hop["index"] if ok and worst is not None else None,
        dimension=dim,
        hops=results,
        bvse={"method": bvse.method, "dimension": dim, "barrier": bv, "barriers": dict(bvse.barriers),
              "hop_barriers": [distinct[k].barrier for k in chosen]},
        failures=failures,
        skipped=skipped,
        note=("overall barrier = the highest hop barrier (the rate-limiting hop); only given when "
              "every hop converged" if hop is None else "one hop, chosen with hop=")
             + (f". {forced}" if forced else ""),
        approximate=any(r.approximate for r in results),
    )
