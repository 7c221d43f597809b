"""BVSE driver: host structure + working ion -> energy landscape, percolation barriers, sites, hops.

The physics (softBV convention, as in bvlain and CAVD/SPSE):

    E(x) = sum_anions D0/2 [(exp(alpha (Rmin - R)) - 1)^2 - 1]
         + sum_cations 14.4 q_m q_i erfc(R / rho) / R,   q = V / sqrt(n),  rho = f (r_m + r_i)

Every number this module returns is a BVSE number: it ranks and filters hosts, it does not
predict absolute barriers. Results say so.

This module holds the driver (:func:`compute_landscape`) and its result; the parts live in
``bvse_model`` (settings, host preparation, pair model, grid size), ``symmetry``,
``hopgraph`` (sites and hops) and ``bvse_plots``. Their public names are re-exported here.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numba
import numpy as np
from monty.json import MSONable
from pymatgen.core import Structure

from ionscreen.kernels import bvse as kbvse
from ionscreen.kernels import percolation as kperc
from ionscreen.structures.ions import DIMS

from . import bvse_plots
from .bvse_model import (
    BYTES_PER_POINT,
    METHOD,
    BVSESettings,
    PreparedHost,
    check_memory,
    grid_shape,
    prepare_host,
)
from .hopgraph import Hop, HopGraph, Refiner, Site
from .ion_models import IonModel, ion_model
from .params import ParamTable
from .symmetry import orbit_energies, symmetric_grid

__all__ = [
    "BYTES_PER_POINT", "DIMS", "KB_EV", "diffusion_coefficient", "METHOD", "BVSEResult", "BVSESettings", "BVSESummary", "Hop",
    "HopGraph", "PreparedHost", "Site", "check_memory", "compute_landscape", "grid_shape", "prepare_host",
]

KB_EV = 8.617333262e-5


def _finite(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class BVSESummary(MSONable):
    """The numbers of one BVSE landscape that ranking, exports and the dashboard use.

    ``barriers`` holds the percolation thresholds per dimension ("1D", "2D", "3D"; None where
    nothing percolates below encut). Built by :meth:`BVSEResult.summary`; stored as the
    ``summary`` of a BVSE job.
    """

    barriers: dict[str, float | None]
    dimensionality: int
    method: str
    model: str
    approximate: bool
    n_sites: int
    n_distinct_sites: int
    site_energy_spread: float | None
    lowest_hop_barrier: float | None
    grid_step: float | None
    warnings: tuple[str, ...] = ()
    seconds: float | None = None
    site_bvs: float | None = None
    """Bond-valence sum of the working ion at its lowest site (softBV r0 and b to the anions
    within :data:`BVS_RADIUS`); near the ion's charge for a real site, far below it for an ion
    rattling in a cavity (None for summaries stored before 0.2.1)."""
    ion_charge: int | None = None
    hop_length: float | None = None
    """Mean length (Å) of the hops of the lowest percolating cluster: the ``a`` of D ≈ ν a²
    exp(−E/kT) / (2d)."""

    @property
    def bvs_ratio(self) -> float | None:
        """site_bvs over the ion's charge (1 for an ideally bonded ion)."""
        if self.site_bvs is None or not self.ion_charge:
            return None
        return self.site_bvs / self.ion_charge

    @property
    def best_barrier(self) -> float:
        """Lowest percolation barrier (the easiest dimension); inf when none percolates."""
        vals = [v for v in self.barriers.values() if v is not None]
        return min(vals) if vals else math.inf

    @property
    def best_dimension(self) -> str | None:
        """The dimension of :attr:`best_barrier` (the lowest one on ties), None if none."""
        vals = [(v, d) for d, v in self.barriers.items() if v is not None]
        return min(vals)[1] if vals else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BVSESummary:
        """Also reads the summaries of stores written before 0.2 (``E1D``/``E2D``/``E3D`` keys)."""
        d = dict(d)
        bars = d.pop("barriers", None) or {k: d.get(f"E{k}") for k in DIMS}
        for k in DIMS:
            d.pop(f"E{k}", None)
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["warnings"] = tuple(kw.get("warnings") or ())
        return cls(barriers={k: _finite(bars.get(k)) for k in DIMS}, **kw)


def diffusion_coefficient(barrier: float, hop_length: float, dimensions: int = 1,
                          temperature: float = 300.0, attempt_hz: float = 1e13) -> float:
    """D (cm²/s) = ν a² exp(−E/kT) / (2d), ``hop_length`` a in Å: an order of magnitude to
    compare with a measurement, not a prediction."""
    a = hop_length * 1e-8  # Å -> cm
    return attempt_hz * a * a * math.exp(-barrier / (KB_EV * temperature)) / (2 * max(1, int(dimensions)))


BVS_RADIUS = 6.0  # Å: exp((r0 - r)/b) is below 1e-3 v.u. beyond it for every softBV row


def lowest_site_bvs(result: BVSEResult) -> float | None:
    """Bond-valence sum (valence units) of the working ion at the lowest BVSE site: softBV
    ``r0`` and ``b = 1/alpha`` of each anion (the Morse terms of the model), summed over the
    anions within :data:`BVS_RADIUS`. None without sites or structure."""
    if not result.sites or result.structure is None:
        return None
    terms = {lab: t for lab, t in result.parameters.get("species", {}).items()
             if t.get("term") == "Morse" and t.get("alpha")}
    if not terms:
        return None
    site = min(result.sites, key=lambda x: x.energy)
    st = result.structure
    cart = st.lattice.get_cartesian_coords(site.frac)
    total = 0.0
    for nb in st.get_sites_in_sphere(cart, BVS_RADIUS):
        t = terms.get(str(nb.specie))
        if t is not None and nb.nn_distance > 0.1:
            total += math.exp((t["r0"] - nb.nn_distance) * t["alpha"])
    return round(total, 4)


_DERIVED_KEYS = ("dimensionality", "diffusivity_300K_cm2_s", "diffusivity_note")


@dataclass
class BVSEResult(MSONable):
    """Energy landscape of one working ion in one host, with what produced it."""

    formula: str
    ion: str
    method: str
    model: str
    approximate: bool
    barriers: dict[str, float]
    sites: list[Site]
    hops: list[Hop]
    grid_shape: list[int]
    grid_step: list[float]
    lattice: list[list[float]]
    energy_min: float  # absolute minimum of the grid (eV) — other energies are relative to it
    settings: BVSESettings
    timings: dict[str, float]
    pair_evaluations: int
    grid_points_computed: int  # fewer than the grid when symmetry orbits were used
    parameters: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    energy: np.ndarray | None = field(default=None, repr=False)
    structure: Structure | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ derived views
    @property
    def distinct_sites(self) -> list[Site]:
        seen: dict[int, Site] = {}
        for s in self.sites:
            seen.setdefault(s.distinct, s)
        return list(seen.values())

    @property
    def distinct_hops(self) -> list[Hop]:
        seen: dict[int, Hop] = {}
        for h in self.hops:
            seen.setdefault(h.distinct, h)
        return sorted(seen.values(), key=lambda h: h.barrier)

    @property
    def dimensionality(self) -> int:
        """Highest dimension that percolates below encut (0 if none)."""
        return sum(math.isfinite(self.barriers[d]) for d in DIMS)

    def diffusivity(self, dim: str = "1D", temperature: float = 300.0, attempt_hz: float = 1e13) -> float:
        """Order-of-magnitude D (cm²/s) from the percolation barrier: D = ν a² exp(-E/kT) / (2d).

        ``a`` is the mean length of the hops that make up the percolating cluster. A BVSE
        estimate to compare with measurements, not a prediction.
        """
        e = self.barriers[dim]
        a = self.hop_length(dim)
        if not math.isfinite(e) or a is None:
            return 0.0
        return diffusion_coefficient(e, a, DIMS.index(dim) + 1, temperature, attempt_hz)

    def hop_length(self, dim: str) -> float | None:
        """Mean length (Å) of the hops of the cluster percolating in ``dim`` (or a lower
        dimension); None when no hop percolates there."""
        hops = [h.length for h in self.hops
                if h.percolation is not None and DIMS.index(h.percolation) <= DIMS.index(dim)]
        return float(np.mean(hops)) if hops else None

    # ------------------------------------------------------------------ serialisation
    def as_dict(self) -> dict[str, Any]:
        """The result document: plain JSON types, settings as a plain dict, no grid.

        Stored documents keep this shape (job ids hash it), so monty's ``@module``/``@class``
        keys are left to ``MontyEncoder``, which adds them.
        """
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("energy", "structure"):
                continue
            d[f.name] = copy.deepcopy(getattr(self, f.name))
        d["sites"] = [s.as_dict() for s in self.sites]
        d["hops"] = [h.as_dict() for h in self.hops]
        d["settings"] = self.settings.as_dict()
        d["barriers"] = {k: _finite(v) for k, v in self.barriers.items()}
        d["dimensionality"] = self.dimensionality
        d["diffusivity_300K_cm2_s"] = {
            k: self.diffusivity(k) for k in DIMS if math.isfinite(self.barriers[k])
        }
        d["diffusivity_note"] = "BVSE estimate: nu = 1e13 Hz, mean percolating hop length, T = 300 K"
        if self.structure is not None:
            d["structure"] = self.structure.as_dict()
        return d

    to_dict = as_dict  # the pre-0.2 name, kept for one release

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        text = json.dumps(self.as_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BVSEResult:
        d = {k: v for k, v in d.items() if not k.startswith("@") and k not in _DERIVED_KEYS}
        st = d.pop("structure", None)
        d["barriers"] = {k: (math.inf if v is None else v) for k, v in d["barriers"].items()}
        d["sites"] = [Site.from_dict(s) for s in d["sites"]]
        d["hops"] = [Hop.from_dict(h) for h in d["hops"]]
        d["settings"] = BVSESettings.from_dict(d["settings"])
        res = cls(**d)
        if st is not None:
            res.structure = Structure.from_dict(st)
        return res

    # ------------------------------------------------------------------ pictures
    def write_cube(self, path: str | Path) -> None:
        """Gaussian cube file of the landscape (:func:`bvse_plots.write_cube`)."""
        bvse_plots.write_cube(self, path)

    def plot(self, path: str | Path, max_hops: int = 6) -> None:
        """PNG of the hop profiles and a slice of the landscape (:func:`bvse_plots.plot`)."""
        bvse_plots.plot(self, path, max_hops)

    # ------------------------------------------------------------------ summaries
    def summary(self) -> BVSESummary:
        """The numbers ranking and exports use, as a small frozen record."""
        sites = self.distinct_sites
        energies = [s.energy for s in sites]
        hops = self.distinct_hops
        return BVSESummary(
            barriers={d: _finite(self.barriers[d]) for d in DIMS},
            dimensionality=self.dimensionality, method=self.method, model=self.model,
            approximate=self.approximate, n_sites=len(self.sites), n_distinct_sites=len(sites),
            site_energy_spread=(max(energies) - min(energies)) if energies else None,
            lowest_hop_barrier=_finite(hops[0].barrier) if hops else None,
            grid_step=max(self.grid_step) if self.grid_step else None,
            warnings=tuple(self.warnings), seconds=self.timings.get("total"),
            site_bvs=lowest_site_bvs(self), ion_charge=ion_model(self.ion).charge,
            hop_length=self._best_hop_length(),
        )

    def _best_hop_length(self) -> float | None:
        """:meth:`hop_length` of the easiest percolating dimension (rounded), None if none."""
        dims = [d for d in DIMS if math.isfinite(self.barriers[d])]
        if not dims:
            return None
        a = self.hop_length(min(dims, key=lambda d: (self.barriers[d], DIMS.index(d))))
        return None if a is None else round(a, 4)

    def summary_text(self) -> str:
        """One line for a terminal."""
        b = ", ".join(f"E{k}={'inf' if not math.isfinite(v) else f'{v:.3f}'}" for k, v in self.barriers.items())
        return (
            f"{self.formula} {self.ion} [{self.method}]: {b} eV; {len(self.distinct_sites)} distinct "
            f"sites, {len(self.distinct_hops)} distinct hops"
        )


# ---------------------------------------------------------------------- the calculation


def _host_for(
    structure: Structure | PreparedHost, ion: str | IonModel | None, settings: BVSESettings,
    oxidation_states: dict[str, float] | None, table: ParamTable | None,
) -> PreparedHost:
    """``structure`` prepared for ``settings``: a PreparedHost is checked, a Structure prepared."""
    if not isinstance(structure, PreparedHost):
        if ion is None:
            raise ValueError("compute_landscape needs the working ion for a Structure (e.g. ion='Mg')")
        return prepare_host(structure, ion, settings, oxidation_states, table)
    host = structure
    if oxidation_states is not None or table is not None:
        raise ValueError("oxidation_states and table are fixed when the host is prepared; "
                         "pass them to prepare_host, not with a PreparedHost")
    if ion is not None and ion_model(ion).name != host.ion.name:
        raise ValueError(f"the PreparedHost was prepared for {host.ion.label()}, not for "
                         f"{ion_model(ion).label()}")
    host.check_settings(settings)
    return host


def _grid_plan(fw: Structure, settings: BVSESettings, shape: tuple[int, int, int] | None):
    """Grid shape (rounded up to fit the space group when allowed) and orbit representatives."""
    explicit = shape is not None
    shape = tuple(int(x) for x in shape) if explicit else grid_shape(fw, settings.resolution)  # type: ignore[union-attr]
    check_memory(shape, settings.memory_fraction)
    if not settings.use_symmetry:
        return shape, None
    # exact symmetry only (tight symprec): energies are copied between orbit members
    return symmetric_grid(fw, shape, explicit, settings.memory_fraction)


@contextmanager
def _numba_threads(n: int | None) -> Iterator[None]:
    old = numba.get_num_threads()
    if n:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _model_label(host: PreparedHost) -> tuple[str, bool, list[str]]:
    """Model text, whether it is approximate, and the warnings that say why."""
    notes: list[str] = []
    if host.ion.approximate:
        notes.insert(0, f"approximate ion model: {host.ion.model}")
    derived = {lab: t["derived_from"] for lab, t in host.parameters["species"].items()
               if t.get("derived_from")}
    model = host.ion.model
    for lab, note in derived.items():
        notes.insert(0, f"approximate parameters: {host.ion.label()}–{lab} row {note}")
        model += f"; {host.ion.label()}–{lab} row derived (nitride transfer rule)"
    return model, host.ion.approximate or bool(derived), notes


def compute_landscape(
    structure: Structure | PreparedHost,
    ion: str | IonModel | None = None,
    resolution: float | None = None,
    settings: BVSESettings | None = None,
    oxidation_states: dict[str, float] | None = None,
    table: ParamTable | None = None,
    keep_grid: bool = True,
    shape: tuple[int, int, int] | None = None,
) -> BVSEResult:
    """BVSE landscape of ``ion`` in ``structure``: barriers, insertion sites and hops.

    ``structure`` is a pymatgen Structure or a :class:`PreparedHost`. A Structure may carry
    oxidation states; otherwise ``oxidation_states`` (element -> state) or pymatgen's
    BVAnalyzer supply them, and it is prepared once here. A PreparedHost is used as it is: it
    must have been prepared with the same model settings (:attr:`PreparedHost.MODEL_FIELDS`;
    without ``settings``, its own are used), ``ion`` may be left out, and ``oxidation_states``/``table`` must be. Ions of the
    working-ion species already in the structure are removed from the framework. ``shape``
    overrides the grid from ``resolution``. Raises an
    :class:`~ionscreen.errors.IonscreenError` subclass for anything the user can fix.
    """
    if settings is None:  # a PreparedHost brings the settings it was prepared with
        settings = structure.settings if isinstance(structure, PreparedHost) else BVSESettings()
    settings = replace(settings)
    if resolution is not None:
        settings.resolution = float(resolution)
    settings.validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    host = _host_for(structure, ion, settings, oxidation_states, table)
    fw = host.framework
    shape, rep = _grid_plan(fw, settings, shape)
    sp_index = {lab: i for i, lab in enumerate(host.species)}
    species = np.array([sp_index[str(s.specie)] for s in fw])
    framework = kbvse.Framework(fw.lattice.matrix, fw.frac_coords, species, settings.cutoff)
    timings["prepare"] = time.perf_counter() - t0

    with _numba_threads(settings.threads):
        t = time.perf_counter()
        energy, pairs, grid_note = orbit_energies(framework, host.model, shape, settings.mode, rep)
        timings["grid"] = time.perf_counter() - t

        t = time.perf_counter()
        emin = float(energy.min())
        order = kperc.sorted_below(energy, emin + settings.encut)
        thresholds = kperc.percolation_thresholds(energy, settings.connectivity, settings.encut, order)
        barriers = {d: float(v) for d, v in zip(DIMS, thresholds)}
        timings["percolation"] = time.perf_counter() - t

        t = time.perf_counter()
        emax = emin + settings.encut
        basins = kperc.basins(energy, settings.connectivity, order, emax)
        saddles = kperc.boundary_saddles(energy, basins.label, basins.cell, len(basins.minima),
                                         settings.connectivity, emax)
        timings["basins"] = time.perf_counter() - t

    t = time.perf_counter()
    grid_step = [float(x) for x in np.array(fw.lattice.abc) / np.array(shape)]
    refiner = Refiner(framework, host.model, max(grid_step)) if settings.refine else None
    graph = HopGraph.from_basins(basins, saddles, energy, fw, barriers, encut=settings.encut, refiner=refiner)
    warnings = graph.warnings + ([grid_note] if grid_note else [])
    timings["sites_hops"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    model, approximate, notes = _model_label(host)
    return BVSEResult(
        formula=host.structure.composition.reduced_formula,
        ion=host.ion.label(),
        method=f"{METHOD} (softBV, {settings.convention} convention, {settings.mode} mode)",
        model=model,
        approximate=approximate,
        barriers=barriers,
        sites=graph.sites,
        hops=graph.hops,
        grid_shape=list(shape),
        grid_step=grid_step,
        lattice=fw.lattice.matrix.tolist(),
        energy_min=emin,
        settings=settings,
        timings=timings,
        pair_evaluations=pairs,
        grid_points_computed=int(np.prod(shape)) if rep is None or grid_note else int((rep == np.arange(rep.size)).sum()),
        parameters=host.parameters,
        warnings=notes + warnings,
        energy=energy if keep_grid else None,
        structure=host.structure,
    )
