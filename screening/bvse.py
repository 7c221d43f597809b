"""BVSE driver: host structure + working ion -> energy landscape, percolation barriers, sites, hops.

The physics (softBV convention, as in bvlain and CAVD/SPSE):

    E(x) = sum_anions D0/2 [(exp(alpha (Rmin - R)) - 1)^2 - 1]
         + sum_cations 14.4 q_m q_i erfc(R / rho) / R,   q = V / sqrt(n),  rho = f (r_m + r_i)

Every number this module returns is a BVSE number: it ranks and filters hosts, it does not
predict absolute barriers (see ../shared/notes/bvse.md, "Accuracy"). Results say so.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numba
import numpy as np
from pymatgen.core import Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from ionscreen.kernels import bvse as kbvse
from ionscreen.kernels import gridsym
from ionscreen.kernels import percolation as kperc
from ionscreen.structures.errors import GridMemoryError, StructureValidationError
from ionscreen.structures.io import assign_oxidation_states, require_anion, validate_structure
from ionscreen.structures.ions import DIMS

from .params import IonModel, ParamTable, ion_model, load_table, mobile_pair

METHOD = "BVSE"
KB_EV = 8.617333262e-5
BYTES_PER_POINT = 320  # energies, sort order, union-find state, basins: array layout, rounded up


@dataclass
class BVSESettings:
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
    :func:`~ionscreen.screening.params.derived_nitride_pair`) instead of failing."""

    def validate(self) -> None:
        checks = [
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
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"invalid BVSE setting: {msg}")


@dataclass
class Site:
    """An insertion site: a minimum of the landscape."""

    index: int
    frac: list[float]
    energy: float  # eV relative to the lowest site (refined when refinement succeeded)
    energy_grid: float  # eV relative to the grid minimum, at the grid point
    distinct: int  # index of its symmetry class
    multiplicity: int  # number of sites of that class in the unit cell


@dataclass
class Hop:
    """A hop between two sites (site_j in lattice cell ``image`` relative to site_i)."""

    site_i: int
    site_j: int
    image: list[int]
    length: float  # Å between the two sites
    barrier: float  # eV, max(E_s - E_i, E_s - E_j) with refined energies when available
    barrier_grid: float  # eV, the same from grid values only
    saddle_energy: float  # eV relative to the lowest site
    saddle_frac: list[float]
    refined: bool
    distinct: int
    multiplicity: int
    percolation: str | None  # lowest dimension ("1D"...) whose percolating cluster uses this hop
    path_frac: list[list[float]] = field(default_factory=list)  # grid path site_i -> site_j
    path_energy: list[float] = field(default_factory=list)  # eV along it, relative to lowest site


def _finite(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass(frozen=True)
class BVSESummary:
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


@dataclass
class BVSEResult:
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
    settings: dict[str, Any]
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
        hops = [h for h in self.hops if h.percolation is not None and DIMS.index(h.percolation) <= DIMS.index(dim)]
        if not math.isfinite(e) or not hops:
            return 0.0
        a = float(np.mean([h.length for h in hops])) * 1e-8  # Å -> cm
        d = DIMS.index(dim) + 1
        return attempt_hz * a * a * math.exp(-e / (KB_EV * temperature)) / (2 * d)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("energy")
        d.pop("structure")
        d["barriers"] = {k: (None if not math.isfinite(v) else v) for k, v in self.barriers.items()}
        d["dimensionality"] = self.dimensionality
        d["diffusivity_300K_cm2_s"] = {
            k: self.diffusivity(k) for k in DIMS if math.isfinite(self.barriers[k])
        }
        d["diffusivity_note"] = "BVSE estimate: nu = 1e13 Hz, mean percolating hop length, T = 300 K"
        if self.structure is not None:
            d["structure"] = self.structure.as_dict()
        return d

    def to_json(self, path: str | Path | None = None, indent: int | None = 1) -> str:
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BVSEResult:
        d = dict(d)
        d.pop("dimensionality", None)
        d.pop("diffusivity_300K_cm2_s", None)
        d.pop("diffusivity_note", None)
        st = d.pop("structure", None)
        d["barriers"] = {k: (math.inf if v is None else v) for k, v in d["barriers"].items()}
        d["sites"] = [Site(**s) for s in d["sites"]]
        d["hops"] = [Hop(**h) for h in d["hops"]]
        res = cls(**d)
        if st is not None:
            res.structure = Structure.from_dict(st)
        return res

    def write_cube(self, path: str | Path) -> None:
        """Gaussian cube file of the landscape (eV relative to the minimum) for VESTA/OVITO."""
        if self.energy is None or self.structure is None:
            raise ValueError("this result carries no grid (it was loaded from JSON); recompute it")
        from ase.io.cube import write_cube

        from ionscreen.structures.convert import to_atoms

        atoms = to_atoms(self.structure)
        data = np.minimum(self.energy - self.energy_min, 1e3)
        with open(path, "w") as fh:
            write_cube(fh, atoms, data=data, comment=f"{METHOD} landscape of {self.ion} in {self.formula}, eV")

    def plot(self, path: str | Path, max_hops: int = 6) -> None:
        """PNG: energy profile along the distinct hops, and a slice of the landscape.

        The slice is the grid plane (constant third index) through the lowest site, energies
        clipped at E3D (or encut) so that the channels stand out.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lattice = np.array(self.lattice)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
        for h in self.distinct_hops[:max_hops]:
            pts = np.array(h.path_frac) @ lattice
            x = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
            ax1.plot(x, h.path_energy, marker=".", ms=3,
                     label=f"hop {h.distinct}: {h.length:.2f} Å, {h.barrier:.2f} eV ({h.percolation or '—'})")
        ax1.set_xlabel("distance along grid path (Å)")
        ax1.set_ylabel("energy above lowest site (eV)")
        ax1.set_title(f"{self.ion} in {self.formula}: hop profiles ({METHOD})")
        ax1.legend(fontsize=7)
        if self.energy is not None and self.sites:
            low = min(self.sites, key=lambda s: s.energy)
            k = int(round(low.frac[2] * self.grid_shape[2])) % self.grid_shape[2]
            cap = next((v for v in reversed(list(self.barriers.values())) if math.isfinite(v)), 2.0)
            data = np.minimum(self.energy[:, :, k] - self.energy_min, cap + 0.5).T
            im = ax2.imshow(data, origin="lower", extent=(0, 1, 0, 1), aspect="auto", cmap="viridis")
            fig.colorbar(im, ax=ax2, label="eV above minimum")
            for s in self.sites:
                if abs(((s.frac[2] - low.frac[2] + 0.5) % 1.0) - 0.5) < 0.5 / self.grid_shape[2]:
                    ax2.plot(s.frac[0], s.frac[1], "w+" if s.distinct == low.distinct else "wx", ms=8)
            ax2.set_xlabel("a (fractional)")
            ax2.set_ylabel("b (fractional)")
            ax2.set_title(f"slice c = {k / self.grid_shape[2]:.3f} (sites: + lowest, x other)")
        else:
            ax2.set_axis_off()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

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
        )

    def summary_text(self) -> str:
        """One line for a terminal."""
        b = ", ".join(f"E{k}={'inf' if not math.isfinite(v) else f'{v:.3f}'}" for k, v in self.barriers.items())
        return (
            f"{self.formula} {self.ion} [{self.method}]: {b} eV; {len(self.distinct_sites)} distinct "
            f"sites, {len(self.distinct_hops)} distinct hops"
        )


def _wrap(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates in [0, 1), with values a hair below 1 sent to 0."""
    f = np.asarray(frac, dtype=float) % 1.0
    return np.where(f > 1.0 - 1e-7, 0.0, f)


# ---------------------------------------------------------------------- preparation


@dataclass(frozen=True, eq=False)
class PreparedHost:
    """A host ready for the bond-valence tiers: made once by :func:`prepare_host`, then passed
    to :func:`compute_landscape` (and the NEB driver) instead of a Structure, so that oxidation
    states, validation and the pair model are not redone.

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
    structure = assign_oxidation_states(structure, oxidation_states)
    validate_structure(structure)
    require_anion(structure)
    mobile = set(ion.mobile_sites(structure))
    framework = Structure.from_sites([s for i, s in enumerate(structure) if i not in mobile])
    if len(framework) == 0:
        raise StructureValidationError(
            f"{structure.composition.reduced_formula}: nothing is left once the {ion.label()} ions are removed"
        )
    labels = sorted({str(s.specie) for s in framework})
    q_m = ion.charge / math.sqrt(ion.period(table))
    r_m = ion.covalent_radius(table, settings.radii)
    # the "spse" convention scales cation charges so that q sums to zero over the input structure
    scale = 1.0
    if settings.convention == "spse":
        qs = [
            s.specie.oxi_state / math.sqrt(table.element(s.specie.symbol).period) for s in structure
        ]
        pos = sum(q for q in qs if q > 0)
        neg = -sum(q for q in qs if q < 0)
        scale = neg / pos if pos > 0 else 1.0
    kind, params, wall = [], [], []
    used: dict[str, Any] = {}
    for lab in labels:
        sp = next(s.specie for s in framework if str(s.specie) == lab)
        v = sp.oxi_state
        if v * ion.charge < 0:
            p = mobile_pair(table, ion, sp.symbol, int(round(v)), derive_nitride=settings.derive_nitride)
            kind.append(kbvse.MORSE)
            params.append((p.d0, p.alpha, p.r_min))
            wall.append(0.0)
            used[lab] = {"term": "Morse", "d0": p.d0, "alpha": p.alpha, "r_min": p.r_min, "r0": p.r0}
            if p.derived_from:
                used[lab]["derived_from"] = p.derived_from
        elif v * ion.charge > 0:
            el = table.element(sp.symbol)
            r_i = el.covalent_radius(int(round(v)), settings.radii)
            q_i = v / math.sqrt(el.period)
            pref = 14.4 * q_m * q_i * (scale * scale if settings.convention == "spse" else 1.0)
            rho = settings.screening_factor * (r_m + r_i)
            kind.append(kbvse.COULOMB)
            params.append((pref, 1.0 / rho, 0.0))
            wall.append(r_i if settings.convention == "spse" else 0.0)
            used[lab] = {"term": "Coulomb", "prefactor_eV_A": pref, "rho": rho}
        else:
            kind.append(kbvse.NONE)
            params.append((0.0, 0.0, 0.0))
            wall.append(0.0)
            used[lab] = {"term": "none (zero oxidation state)"}
    model = kbvse.PairModel(
        np.array(kind), np.array(params), np.array(wall),
        settings.hard_wall_energy if settings.convention == "spse" else 0.0,
    )
    parameters = {
        "table": "softBV (Chen & Adams, IUCrJ 4 (2017) 614)",
        "convention": settings.convention,
        "charge_scale": scale,
        "mobile": {"label": ion.label(), "q": q_m, "covalent_radius": r_m, "model": ion.model},
        "species": used,
    }
    return PreparedHost(structure, framework, ion, labels, model, parameters, settings)


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


# ---------------------------------------------------------------------- refinement


def _newton(framework, model, x0: np.ndarray, want_index: int, max_step: float, max_dist: float):
    """Newton iterations on the gradient from ``x0``; returns (x, E) or None if it fails.

    ``want_index`` is the number of negative Hessian eigenvalues expected at the end (0 for a
    minimum, 1 for a saddle). Steps are taken in the Hessian eigenbasis with the sign needed
    for that index, so the iteration walks uphill along one mode and downhill along the rest.
    """
    x = x0.copy()
    for _ in range(50):
        e, g, h = kbvse.point_energies(framework, model, x[None, :], hessian=True)
        g, h = g[0], h[0]
        w, v = np.linalg.eigh(h)
        coef = -(v.T @ g) / (np.abs(w) + 1e-6)
        if want_index == 1:
            coef[0] = -coef[0]  # uphill along the softest mode, downhill along the others
        step = v @ coef
        n = np.linalg.norm(step)
        if n > max_step:
            step *= max_step / n
        x = x + step
        if np.linalg.norm(x - x0) > max_dist:
            return None
        if np.linalg.norm(g) < 1e-4 and n < 1e-5:
            break
    e, g, h = kbvse.point_energies(framework, model, x[None, :], hessian=True)
    w = np.linalg.eigvalsh(h[0])
    if np.linalg.norm(g[0]) > 1e-3 or int((w < 0).sum()) != want_index:
        return None
    return x, float(e[0])


# ---------------------------------------------------------------------- symmetry


def _symmetry_ops(framework: Structure, symprec: float = 0.01) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        sga = SpacegroupAnalyzer(framework, symprec=symprec)
        ops = sga.get_symmetry_operations(cartesian=False)
        return [(op.rotation_matrix, op.translation_vector) for op in ops]
    except Exception:  # symmetry is a convenience: an unanalysable cell is treated as P1
        return [(np.eye(3), np.zeros(3))]


def _rot_trans(ops) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r for r, _ in ops]), np.array([t for _, t in ops])


def _cart_err(d: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Cartesian length of fractional differences after removing whole lattice vectors."""
    return np.linalg.norm((d - np.round(d)) @ lattice, axis=-1)


def _classify_sites(frac: np.ndarray, ops, lattice: np.ndarray, tol: float) -> np.ndarray:
    """Symmetry class of each site: images of a representative under every op, vectorised."""
    rot, tr = _rot_trans(ops)
    cls = -np.ones(len(frac), dtype=int)
    c = 0
    for i in range(len(frac)):
        if cls[i] >= 0:
            continue
        images = np.einsum("oij,j->oi", rot, frac[i]) + tr  # (ops, 3)
        err = _cart_err(images[:, None, :] - frac[None, :, :], lattice).min(axis=0)
        cls[(err < tol) & (cls < 0)] = c
        cls[i] = c
        c += 1
    return cls


def _classify_hops(ends: list[tuple[np.ndarray, np.ndarray]], ops, lattice, tol) -> np.ndarray:
    """Hops (a, b) in fractional coordinates, equal under a symmetry op + one lattice translation."""
    rot, tr = _rot_trans(ops)
    a = np.array([e[0] for e in ends])
    b = np.array([e[1] for e in ends])
    cls = -np.ones(len(ends), dtype=int)
    c = 0
    for i in range(len(ends)):
        if cls[i] >= 0:
            continue
        ia = np.einsum("oij,j->oi", rot, a[i]) + tr
        ib = np.einsum("oij,j->oi", rot, b[i]) + tr
        match = np.zeros(len(ends), dtype=bool)
        for x, y in ((a, b), (b, a)):  # both orientations of the candidate hop
            d1 = ia[:, None, :] - x[None, :, :]
            shift = np.round(d1)
            ok1 = np.linalg.norm((d1 - shift) @ lattice, axis=-1) < tol
            ok2 = np.linalg.norm((ib[:, None, :] - shift - y[None, :, :]) @ lattice, axis=-1) < tol
            match |= (ok1 & ok2).any(axis=0)
        cls[match & (cls < 0)] = c
        cls[i] = c
        c += 1
    return cls


# ---------------------------------------------------------------------- the calculation


def _symmetric_grid(fw: Structure, shape: tuple[int, int, int], explicit: bool, memory_fraction: float):
    """A grid that the space group maps onto itself, and each point's orbit representative.

    An explicit shape is kept (symmetry used only if it already fits); otherwise the grid is
    rounded up to the nearest fitting one. Returns (shape, rep or None).
    """
    ops = _symmetry_ops(fw, symprec=1e-3)
    if len(ops) <= 1:
        return shape, None
    rot, tr = _rot_trans(ops)
    new = shape if explicit else gridsym.compatible_shape(shape, rot, tr)
    if new is None:
        return shape, None
    ints = gridsym.integer_operations(new, rot, tr)
    if ints is None:
        return shape, None
    check_memory(new, memory_fraction)  # the rounded-up grid, before anything is allocated
    return new, gridsym.representatives(new, *ints)


def _grid(framework, model, shape, mode: str, rep: np.ndarray | None):
    """Grid energies, on orbit representatives when ``rep`` is given, checked on a sample."""
    if rep is None:
        energy, pairs = kbvse.grid_energies(framework, model, shape, mode=mode, return_pairs=True)
        return energy, pairs, ""
    idx = np.arange(rep.size)
    is_rep = rep == idx
    energy, pairs = kbvse.grid_energies(framework, model, shape, mode=mode, return_pairs=True, mask=is_rep)
    flat = energy.ravel()
    flat[:] = flat[rep]
    # a direct check on a sample of copied points guards against a symmetry that is not exact
    others = idx[~is_rep]
    if others.size:
        sample = np.random.default_rng(0).choice(others, size=min(64, others.size), replace=False)
        mask = np.zeros(rep.size, dtype=bool)
        mask[sample] = True
        check = kbvse.grid_energies(framework, model, shape, mode=mode, mask=mask).ravel()
        if np.max(np.abs(check[sample] - flat[sample])) > 1e-6:
            energy, pairs = kbvse.grid_energies(framework, model, shape, mode=mode, return_pairs=True)
            return energy, pairs, "symmetry did not hold on the grid to 1e-6 eV; the full grid was computed"
    return energy, pairs, ""


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
    must have been prepared with the same model settings (:attr:`PreparedHost.MODEL_FIELDS`),
    ``ion`` may be left out, and ``oxidation_states``/``table`` must be. Ions of the
    working-ion species already in the structure are removed from the framework. ``shape``
    overrides the grid from ``resolution``. Raises an
    :class:`~ionscreen.structures.errors.IonscreenError` subclass for anything the user can fix.
    """
    settings = settings or BVSESettings()
    if resolution is not None:
        settings = BVSESettings(**{**asdict(settings), "resolution": float(resolution)})
    settings.validate()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    host = _host_for(structure, ion, settings, oxidation_states, table)
    fw = host.framework
    lattice = fw.lattice.matrix
    explicit = shape is not None
    shape = tuple(int(x) for x in shape) if explicit else grid_shape(fw, settings.resolution)
    check_memory(shape, settings.memory_fraction)
    rep = None
    if settings.use_symmetry:
        # exact symmetry only (tight symprec): energies are copied between orbit members
        shape, rep = _symmetric_grid(fw, shape, explicit, settings.memory_fraction)
    sp_index = {lab: i for i, lab in enumerate(host.species)}
    species = np.array([sp_index[str(s.specie)] for s in fw])
    framework = kbvse.Framework(lattice, fw.frac_coords, species, settings.cutoff)
    timings["prepare"] = time.perf_counter() - t0

    old_threads = numba.get_num_threads()
    if settings.threads:
        numba.set_num_threads(min(settings.threads, numba.config.NUMBA_NUM_THREADS))
    try:
        t = time.perf_counter()
        energy, pairs, grid_note = _grid(framework, host.model, shape, settings.mode, rep)
        timings["grid"] = time.perf_counter() - t

        t = time.perf_counter()
        flat = energy.ravel()
        emin = float(flat.min())
        order = kperc.sorted_below(flat, emin + settings.encut)
        thresholds = kperc.percolation_thresholds(energy, settings.connectivity, settings.encut, order)
        barriers = {d: float(v) for d, v in zip(DIMS, thresholds)}
        timings["percolation"] = time.perf_counter() - t

        t = time.perf_counter()
        emax = emin + settings.encut
        label, cellof, minima, down, dshift = kperc.basins(energy, settings.connectivity, order, emax)
        ea, eb, et, es, ep, eq, eshift = kperc.boundary_saddles(
            energy, label, cellof, len(minima), settings.connectivity, emax
        )
        timings["basins"] = time.perf_counter() - t
    finally:
        numba.set_num_threads(old_threads)

    t = time.perf_counter()
    sites, hops, warnings = _sites_and_hops(
        framework, host.model, fw, energy, shape, emin, minima, ea, eb, et, es, ep, eq, eshift,
        down, dshift, barriers, settings,
    )
    if grid_note:
        warnings.append(grid_note)
    timings["sites_hops"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    if host.ion.approximate:
        warnings.insert(0, f"approximate ion model: {host.ion.model}")
    derived = {lab: t["derived_from"] for lab, t in host.parameters["species"].items()
               if t.get("derived_from")}
    model = host.ion.model
    for lab, note in derived.items():
        warnings.insert(0, f"approximate parameters: {host.ion.label()}–{lab} row {note}")
        model += f"; {host.ion.label()}–{lab} row derived (nitride transfer rule)"
    method = f"{METHOD} (softBV, {settings.convention} convention, {settings.mode} mode)"
    return BVSEResult(
        formula=host.structure.composition.reduced_formula,
        ion=host.ion.label(),
        method=method,
        model=model,
        approximate=host.ion.approximate or bool(derived),
        barriers=barriers,
        sites=sites,
        hops=hops,
        grid_shape=list(shape),
        grid_step=[float(x) for x in np.array(fw.lattice.abc) / np.array(shape)],
        lattice=lattice.tolist(),
        energy_min=emin,
        settings=asdict(settings),
        timings=timings,
        pair_evaluations=pairs,
        grid_points_computed=int(np.prod(shape)) if rep is None or grid_note else int((rep == np.arange(rep.size)).sum()),
        parameters=host.parameters,
        warnings=warnings,
        energy=energy if keep_grid else None,
        structure=host.structure,
    )


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


def _sites_and_hops(
    framework, model, fw: Structure, energy, shape, emin, minima, ea, eb, et, es, ep, eq, eshift,
    down, dshift, barriers, settings: BVSESettings,
):
    """Turn basins and boundary saddles into symmetry-classified sites and hops."""
    warnings: list[str] = []
    flat = energy.ravel()
    shape_a = np.array(shape)
    lattice = fw.lattice.matrix
    step = float(np.max(np.array(fw.lattice.abc) / shape_a))

    def frac_of(p: int) -> np.ndarray:
        return np.array(np.unravel_index(p, shape), dtype=float) / shape_a

    # sites: basins whose minimum lies below encut; the hop graph can only touch those
    keep_basin = flat[minima] - emin <= settings.encut
    node_of = -np.ones(len(minima), dtype=int)
    node_of[keep_basin] = np.arange(int(keep_basin.sum()))
    site_pts = minima[keep_basin]
    site_frac = np.array([frac_of(p) for p in site_pts]).reshape(-1, 3)
    site_eg = flat[site_pts] - emin
    site_e = site_eg.copy()
    site_x = site_frac @ lattice
    if settings.refine:
        for i, x0 in enumerate(site_x):
            r = _newton(framework, model, x0, 0, 0.2 * step, 2.0 * step)
            if r is not None and r[1] - emin <= site_eg[i] + 1e-9:
                site_x[i] = r[0]
                site_e[i] = r[1] - emin
    site_frac_ref = _wrap(site_x @ np.linalg.inv(lattice))
    # refined positions unwrapped next to their grid points, so that hop vectors stay short
    site_u = site_frac_ref + np.round(site_frac - site_frac_ref)

    # hop graph: drop edges made redundant by lower paths, classify the rest
    a, b = node_of[ea], node_of[eb]
    ok = (a >= 0) & (b >= 0)
    a, b, et, es, ep, eq, eshift = a[ok], b[ok], et[ok], es[ok], ep[ok], eq[ok], eshift[ok]
    n_nodes = len(site_pts)
    if len(a):
        ess = kperc.essential_edges(n_nodes, a, b, et, es, tol=1e-7)
        a, b, et, es, ep, eq, eshift = a[ess], b[ess], et[ess], es[ess], ep[ess], eq[ess], eshift[ess]
    # which percolating cluster uses each hop (lowest dimension first)
    perc = [None] * len(a)
    for d, name in enumerate(DIMS):
        thr = barriers[name]
        if not math.isfinite(thr) or not len(a):
            continue
        mask = es - emin <= thr + 1e-9
        roots, rank = kperc.graph_components(n_nodes, a, b, et, mask)
        for k in range(len(a)):
            if perc[k] is None and mask[k] and rank[roots[a[k]]] >= d + 1:
                perc[k] = name

    ops = _symmetry_ops(fw)
    tol = max(0.5 * step, 0.05) * 1.5
    site_cls = _classify_sites(site_frac_ref, ops, lattice, tol) if n_nodes else np.zeros(0, int)
    e_lowest = float(site_e.min()) if n_nodes else 0.0
    site_mult = np.bincount(site_cls) if n_nodes else np.zeros(0, int)
    sites = [
        Site(i, site_frac_ref[i].round(6).tolist(), float(site_e[i] - e_lowest), float(site_eg[i]),
             int(site_cls[i]), int(site_mult[site_cls[i]]))
        for i in range(n_nodes)
    ]

    hops: list[Hop] = []
    ends = []
    for k in range(len(a)):
        i, j = int(a[k]), int(b[k])
        t = et[k]
        # grid path: descend from both sides of the saddle edge, unwrapped across cells
        pa, ca = kperc.descent_path(int(ep[k]), down, dshift)
        pb, cb = kperc.descent_path(int(eq[k]), down, dshift)
        fa = np.array([frac_of(p) for p in pa]) + ca
        fb = np.array([frac_of(p) for p in pb]) + cb + eshift[k]
        path = np.vstack([fa[::-1], fb])
        path -= np.floor(path[0] + 1e-9)  # start in cell 0
        pe = np.concatenate([flat[pa[::-1]], flat[pb]]) - emin
        saddle_x = 0.5 * (path[len(pa) - 1] + path[len(pa)]) @ lattice
        es_grid = float(es[k] - emin)
        es_ref = es_grid
        refined = False
        if settings.refine:
            r = _newton(framework, model, saddle_x, 1, 0.2 * step, 2.0 * step)
            if r is not None:
                e_r = r[1] - emin
                # the continuous saddle may lie above the grid's minimax value, never below the sites
                if max(site_e[i], site_e[j]) <= e_r + 1e-9 and abs(e_r - es_grid) < 0.1:
                    saddle_x, es_ref, refined = r[0], e_r, True
        length = float(np.linalg.norm((site_u[j] + t - site_u[i]) @ lattice))
        barrier = max(es_ref - site_e[i], es_ref - site_e[j])
        barrier_grid = max(es_grid - site_eg[i], es_grid - site_eg[j])
        ends.append((site_u[i], site_u[j] + t))
        hops.append(Hop(
            site_i=i, site_j=j, image=[int(x) for x in t], length=round(length, 4),
            barrier=float(barrier), barrier_grid=float(barrier_grid),
            saddle_energy=float(es_ref - e_lowest),
            saddle_frac=_wrap(saddle_x @ np.linalg.inv(lattice)).round(6).tolist(),
            refined=refined, distinct=-1, multiplicity=0, percolation=perc[k],
            path_frac=path.round(5).tolist(), path_energy=(pe - e_lowest).round(5).tolist(),
        ))
    if hops:
        hop_cls = _classify_hops(ends, ops, lattice, tol)
        mult = np.bincount(hop_cls)
        # symmetry-equivalent hops share the label of the lowest percolating dimension any of
        # them reaches: the grid samples equivalent channels slightly differently
        best: dict[int, int] = {}
        for h, c in zip(hops, hop_cls):
            h.distinct, h.multiplicity = int(c), int(mult[c])
            if h.percolation is not None:
                best[c] = min(best.get(c, 3), DIMS.index(h.percolation))
        for h in hops:
            if h.distinct in best:
                h.percolation = DIMS[best[h.distinct]]
    if n_nodes == 0:
        warnings.append("no insertion site below encut")
    return sites, hops, warnings
