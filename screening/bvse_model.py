"""The BVSE model of one host: settings, host preparation and the per-species pair model.

:func:`prepare_host` validates the host, assigns oxidation states, removes the mobile ions
and assembles the kernels' :class:`~ionscreen.kernels.bvse.PairModel` (softBV Morse terms to
the anions, screened Coulomb repulsion to the cations); the result is a :class:`PreparedHost`
that the BVSE and NEB drivers take instead of a Structure. :func:`grid_shape` and
:func:`check_memory` size the grid before anything is allocated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pymatgen.core import Structure

from ionscreen.errors import GridMemoryError, StructureValidationError
from ionscreen.kernels import bvse as kbvse
from ionscreen.structures.oxidation import assign_oxidation_states, require_anion
from ionscreen.structures.validate import validate_structure

from .ion_models import IonModel, ion_model, mobile_pair
from .params import ParamTable, load_table
from .typed_settings import TypedSettings

METHOD = "BVSE"
BYTES_PER_POINT = 320  # energies, sort order, union-find state, basins: array layout, rounded up


@dataclass
class BVSESettings(TypedSettings):
    """Settings of one BVSE calculation (all part of the result's identity)."""

    resolution: float = 0.1
    """Largest grid step along each lattice vector (Å)."""
    cutoff: float = 7.0
    """Interaction cutoff (Å); 7 Å is within 0.5 meV of 10–12 Å on LiFePO4 and MgCr2O4."""
    mode: str = "table"
    """"exact" (exp/erfc per pair) or "table" (tabulated in r², ≤ 1e-4 eV from exact)."""
    screening_factor: float = 0.74
    """f in rho = f (r_m + r_i)."""
    radii: str = "ase"
    """Covalent radii for rho: "ase" (bvlain's default) or "softbv"."""
    convention: str = "bvlain"
    """"bvlain" (no charge rescaling) or "spse" (cation charges rescaled to neutrality, hard wall)."""
    hard_wall_energy: float = 100.0
    """Energy added inside a framework cation's covalent radius ("spse" convention only)."""
    connectivity: int = 26
    """Grid neighbours for percolation (26 as in bvlain; 6 or 18 possible)."""
    encut: float = 5.0
    """Energies above minimum + encut are not explored: barriers above it are reported as inf."""
    refine: bool = True
    """Refine site and saddle energies off the grid (Newton on the exact potential)."""
    use_symmetry: bool = True
    """Compute one grid point per symmetry orbit (grid rounded up to fit the space group)."""
    threads: int | None = None
    """Numba threads for the grid (None: numba's default)."""
    memory_fraction: float = 0.5
    """Refuse a grid that would need more than this fraction of the available memory."""
    derive_nitride: bool = False
    """Derive a missing working-ion–N3- row from the ion's X–O2- row (approximate, flagged;
    :func:`~ionscreen.screening.nitride.derived_nitride_pair`) instead of failing."""

    KIND: ClassVar[str] = "BVSE"

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.resolution > 0.005, "resolution must be > 0.005 Å (try 0.1 or 0.2)"),
            (1.0 <= self.cutoff <= 30.0, "cutoff must be between 1 and 30 Å (6–10 is typical)"),
            (self.mode in ("exact", "table"), "mode must be 'exact' or 'table'"),
            (0 < self.screening_factor <= 5, "screening_factor must be in (0, 5]"),
            (self.radii in ("ase", "softbv"), "radii must be 'ase' or 'softbv'"),
            (self.convention in ("bvlain", "spse"), "convention must be 'bvlain' or 'spse'"),
            (self.connectivity in (6, 18, 26), "connectivity must be 6, 18 or 26"),
            (self.encut > 0, "encut must be positive"),
            (0 < self.memory_fraction <= 1, "memory_fraction must be in (0, 1]"),
        ]


@dataclass(frozen=True, eq=False)
class PreparedHost:
    """A host ready for the bond-valence tiers: made once by :func:`prepare_host`, then passed
    to :func:`~ionscreen.screening.bvse.compute_landscape` (and the NEB driver) instead of a
    Structure, so that oxidation states, validation and the pair model are not redone.

    ``settings`` are the BVSE settings it was prepared with; only :attr:`MODEL_FIELDS` of them
    shape the pair model, and a calculation with other values there is refused.
    """

    MODEL_FIELDS: ClassVar[tuple[str, ...]] = (
        "radii", "convention", "screening_factor", "hard_wall_energy", "derive_nitride",
    )

    structure: Structure  # full structure, oxidation-state decorated
    framework: Structure  # without the mobile ions
    ion: IonModel
    species: list[str]  # species labels, index = kernel species id
    model: kbvse.PairModel
    parameters: dict[str, Any]
    settings: BVSESettings

    def check_settings(self, settings: BVSESettings) -> None:
        """Raise ValueError naming the first model field where ``settings`` differ from ours."""
        for name in self.MODEL_FIELDS:
            mine, theirs = getattr(self.settings, name), getattr(settings, name)
            if mine != theirs:
                raise ValueError(
                    f"the PreparedHost was prepared with {name}={mine!r} but the settings ask for "
                    f"{name}={theirs!r}; prepare it again with these settings or pass the Structure"
                )


def prepare_host(
    structure: Structure,
    ion: str | IonModel,
    settings: BVSESettings | None = None,
    oxidation_states: dict[str, float] | None = None,
    table: ParamTable | None = None,
) -> PreparedHost:
    """Validate the host, assign oxidation states and build the per-species pair model."""
    settings = settings or BVSESettings()
    settings.validate()
    ion = ion_model(ion)
    table = table or load_table()
    # validate first: guessing oxidation states runs spglib, which a NaN lattice crashes
    validate_structure(structure)
    structure = assign_oxidation_states(structure, oxidation_states)
    require_anion(structure)
    mobile = set(ion.mobile_sites(structure))
    framework = Structure.from_sites([s for i, s in enumerate(structure) if i not in mobile])
    if len(framework) == 0:
        raise StructureValidationError(
            f"{structure.composition.reduced_formula}: nothing is left once the {ion.label()} ions are removed"
        )
    labels = sorted({str(s.specie) for s in framework})
    pairs = _PairAssembly(ion, table, settings, _charge_scale(structure, table, settings))
    for lab in labels:
        pairs.add(lab, next(s.specie for s in framework if str(s.specie) == lab))
    parameters = {
        "table": "softBV (Chen & Adams, IUCrJ 4 (2017) 614)",
        "convention": settings.convention,
        "charge_scale": pairs.scale,
        "mobile": {"label": ion.label(), "q": pairs.q_m, "covalent_radius": pairs.r_m, "model": ion.model},
        "species": pairs.used,
    }
    return PreparedHost(structure, framework, ion, labels, pairs.model(), parameters, settings)


def _charge_scale(structure: Structure, table: ParamTable, settings: BVSESettings) -> float:
    """The "spse" convention scales cation charges so that q sums to zero over the structure."""
    if settings.convention != "spse":
        return 1.0
    qs = [s.specie.oxi_state / math.sqrt(table.element(s.specie.symbol).period) for s in structure]
    pos = sum(q for q in qs if q > 0)
    neg = -sum(q for q in qs if q < 0)
    return neg / pos if pos > 0 else 1.0


class _PairAssembly:
    """Collects one pair term per framework species: the kernel arrays and what was used."""

    def __init__(self, ion: IonModel, table: ParamTable, settings: BVSESettings, scale: float):
        self.ion, self.table, self.settings, self.scale = ion, table, settings, scale
        self.q_m = ion.charge / math.sqrt(ion.period(table))
        self.r_m = ion.covalent_radius(table, settings.radii)
        self.kind: list[int] = []
        self.params: list[tuple[float, float, float]] = []
        self.wall: list[float] = []
        self.used: dict[str, Any] = {}

    def add(self, label: str, specie: Any) -> None:
        """The term of the mobile ion with ``specie``: Morse to anions, Coulomb to cations."""
        v = specie.oxi_state
        if v * self.ion.charge < 0:
            self._morse(label, specie.symbol, int(round(v)))
        elif v * self.ion.charge > 0:
            self._coulomb(label, specie.symbol, v)
        else:
            self._append(kbvse.NONE, (0.0, 0.0, 0.0), 0.0)
            self.used[label] = {"term": "none (zero oxidation state)"}

    def _append(self, kind: int, params: tuple[float, float, float], wall: float) -> None:
        self.kind.append(kind)
        self.params.append(params)
        self.wall.append(wall)

    def _morse(self, label: str, symbol: str, valence: int) -> None:
        p = mobile_pair(self.table, self.ion, symbol, valence, derive_nitride=self.settings.derive_nitride)
        self._append(kbvse.MORSE, (p.d0, p.alpha, p.r_min), 0.0)
        self.used[label] = {"term": "Morse", "d0": p.d0, "alpha": p.alpha, "r_min": p.r_min, "r0": p.r0}
        if p.derived_from:
            self.used[label]["derived_from"] = p.derived_from

    def _coulomb(self, label: str, symbol: str, v: float) -> None:
        spse = self.settings.convention == "spse"
        el = self.table.element(symbol)
        r_i = el.covalent_radius(int(round(v)), self.settings.radii)
        q_i = v / math.sqrt(el.period)
        pref = 14.4 * self.q_m * q_i * (self.scale * self.scale if spse else 1.0)
        rho = self.settings.screening_factor * (self.r_m + r_i)
        self._append(kbvse.COULOMB, (pref, 1.0 / rho, 0.0), r_i if spse else 0.0)
        self.used[label] = {"term": "Coulomb", "prefactor_eV_A": pref, "rho": rho}

    def model(self) -> kbvse.PairModel:
        wall = self.settings.hard_wall_energy if self.settings.convention == "spse" else 0.0
        return kbvse.PairModel(np.array(self.kind), np.array(self.params), np.array(self.wall), wall)


def grid_shape(structure: Structure, resolution: float) -> tuple[int, int, int]:
    """Points per axis so that the step along each lattice vector is at most ``resolution``."""
    return tuple(max(2, math.ceil(x / resolution - 1e-9)) for x in structure.lattice.abc)  # type: ignore[return-value]


def check_memory(shape: tuple[int, int, int], fraction: float) -> int:
    """Refuse, before allocating, a grid that would not fit; return the estimate in bytes."""
    import psutil

    n = int(np.prod(shape))
    need = n * BYTES_PER_POINT
    avail = psutil.virtual_memory().available
    if need > fraction * avail:
        raise GridMemoryError(
            f"a grid of {shape[0]}×{shape[1]}×{shape[2]} = {n:,} points needs about "
            f"{need / 2**30:.1f} GiB, but only {fraction * avail / 2**30:.1f} GiB may be used "
            f"({fraction:.0%} of {avail / 2**30:.1f} GiB available). Use a coarser resolution "
            f"(--resolution; doubling it needs 8× less memory) or a smaller cell."
        )
    return need
