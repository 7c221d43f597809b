"""What a NEB produces: one hop (:class:`NEBResult`), the hops of a path (:class:`NEBReport`)
and the numbers ranking uses (:class:`NEBSummary`). Each is written with ``as_dict()`` and read
back with ``from_dict()``, in pymatgen's manner (``to_dict`` is the former name)."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ase import Atoms
from monty.json import MSONable

from ionscreen._json import jsonable

from .flags import refuses


def _plain_fields(obj: Any, skip: str) -> dict[str, Any]:
    """The dataclass fields of ``obj`` but ``skip``, deep-copied (as ``asdict`` would)."""
    return {f.name: copy.deepcopy(getattr(obj, f.name)) for f in fields(obj) if f.name != skip}


def _known(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class NEBResult(MSONable):
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
    flags: list[dict[str, str]] = field(default_factory=list)  # {"code", "text"}, see .flags
    endpoints: list[dict[str, Any]] = field(default_factory=list)  # where each relaxed end went
    merged: dict[str, Any] | None = None  # the BVSE hops joined into this band, and why

    def as_dict(self, with_images: bool = False) -> dict[str, Any]:
        """The result as a document; ``with_images`` adds the band (symbols, cell, positions)."""
        d = _plain_fields(self, "images")
        if with_images and self.images:
            d["images"] = {
                "symbols": self.images[0].get_chemical_symbols(),
                "cell": self.images[0].cell.array.tolist(),
                "positions": [a.positions.round(5).tolist() for a in self.images],
            }
        return d

    to_dict = as_dict

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NEBResult:
        """A result from :meth:`as_dict` (the band as plain Atoms when it was written)."""
        band = d.get("images")
        images = None
        if band:
            images = [Atoms(band["symbols"], positions=p, cell=band["cell"], pbc=True)
                      for p in band["positions"]]
        return cls(**{**_known(cls, d), "images": images})


def tier_of(calculator: str) -> str:
    """Tier label of a NEB calculator spec when no report says it ("BVFF" or "NEB")."""
    return "BVFF" if str(calculator).lower() == "bvff" else "NEB"


@dataclass(frozen=True)
class NEBSummary(MSONable):
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
    flags: tuple[dict[str, Any], ...] = ()  # NEBReport.barrier_flags(): {"code", "text", "hop"}
    raw_barrier: float | None = None  # eV, as the model(s) computed it (committee: the mean)
    spread: float | None = None  # eV, standard deviation over committee members (0 for one)
    uncertainty: float | None = None  # eV, of ``barrier``: spread and calibration error
    calibrated: bool = False  # ``barrier`` is the calibrated value (raw_barrier beside it)
    models: tuple[str, ...] = ()  # the model(s) behind the barrier

    @property
    def refused(self) -> list[dict[str, Any]]:
        """The flags that keep this barrier from being ranked (noise, below-floor, a low
        no-saddle: :func:`.flags.refuses`)."""
        return [f for f in self.flags if refuses(f)]

    @property
    def label(self) -> str:
        """What produced the barrier: ``"BVFF CI-NEB (<calculator>)"``, with ", calibrated"
        when the barrier is the calibrated value of an ML tier."""
        return (f"{self.tier} CI-NEB ({self.calculator or 'unknown calculator'})"
                + (", calibrated" if self.calibrated else ""))

    @classmethod
    def failed(cls, calculator: str, reason: str) -> NEBSummary:
        """The summary of a NEB job that failed (``reason`` as stored by the engine)."""
        return cls(barrier=None, converged=False, calculator=calculator,
                   tier=tier_of(calculator), status=f"failed: {reason}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NEBSummary:
        kw = _known(cls, d)
        kw["flags"] = tuple(dict(f) for f in kw.get("flags") or ())
        kw["models"] = tuple(kw.get("models") or ())
        return cls(**kw)


@dataclass
class NEBReport(MSONable):
    """NEB over the hops of the lowest-barrier percolating path BVSE found (or one chosen hop).

    ``bvse`` says what seeded it: the BVSE method, the dimension and barrier of the path, the
    BVSE barriers of its hops and the BVSE ``settings``.
    """

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
    estimate: dict[str, Any] | None = None
    """ML tier: the barrier as a :class:`~ionscreen.screening.committee.CommitteeBarrier`
    document (members, raw mean ± spread, calibrated ± uncertainty, label)."""

    @property
    def barrier_label(self) -> str:
        """What the document's ``barrier`` is: always the raw NEB barrier; when the ML tier
        has a calibrated value it is in ``estimate`` (and ranked), and the label says so."""
        est = self.estimate or {}
        return f"{self.tier} CI-NEB barrier ({self.calculator})" + (
            ", raw (the calibrated value, the one ranked, is estimate.calibrated)"
            if est.get("calibrated") is not None else "")

    @property
    def flags(self) -> list[dict[str, Any]]:
        """Every hop's flags, each with its ``hop`` (index), in hop order."""
        return [{**f, "hop": h.hop.get("index", k)} for k, h in enumerate(self.hops) for f in h.flags]

    def barrier_flags(self) -> list[dict[str, Any]]:
        """The flags that bear on the reported barrier: the refusing ones (noise,
        below-floor, a low no-saddle) of the rate-limiting hop (another hop's noise does not
        change the highest barrier), every other flag of any hop."""
        return [f for f in self.flags
                if not refuses(f) or (self.barrier is not None and f["hop"] == self.rate_limiting_hop)]

    def as_dict(self, with_images: bool = False) -> dict[str, Any]:
        """The report as a document (the stored NEB report); :meth:`from_dict` reads it back."""
        d = _plain_fields(self, "hops")
        d["hops"] = [h.as_dict(with_images) for h in self.hops]
        d["barrier_label"] = self.barrier_label
        d["flags"] = self.flags
        return d

    to_dict = as_dict

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NEBReport:
        """A report from :meth:`as_dict` (or a stored NEB report document)."""
        hops = [NEBResult.from_dict(h) for h in d.get("hops", [])]
        return cls(**{**_known(cls, d), "hops": hops})

    def to_json(self, path: str | Path | None = None, with_images: bool = False) -> str:
        text = json.dumps(jsonable(self.as_dict(with_images)), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    def summary(self) -> NEBSummary:
        """The numbers ranking and exports use, as a small frozen record."""
        reasons = ([h.status for h in self.hops if not h.converged]
                   or [f["reason"] for f in self.failures])
        status = "converged" if self.barrier is not None else (
            "; ".join(dict.fromkeys(reasons)) or "no hop computed")  # each reason once
        est = self.estimate or {}
        cal = est.get("calibrated") if self.barrier is not None else None
        return NEBSummary(
            barrier=cal if cal is not None else self.barrier, converged=self.barrier is not None,
            calculator=self.calculator, tier=self.tier, status=status, approximate=self.approximate,
            dimension=self.dimension, bvse_barrier=self.bvse.get("barrier"), hops=len(self.hops),
            failures=len(self.failures), flags=tuple(self.barrier_flags()), raw_barrier=self.barrier,
            spread=est.get("spread"),
            uncertainty=est.get("uncertainty") if cal is not None else est.get("spread"),
            calibrated=cal is not None, models=tuple(est.get("members") or (self.calculator,)))

    def summary_text(self) -> str:
        """Lines for a terminal: each hop and the rate-limiting barrier."""
        lines = [f"{self.formula} {self.ion}: {self.tier} CI-NEB ({self.calculator})"]
        for k, h in enumerate(self.hops):
            b = f"{h.barrier:.3f} eV" if h.barrier is not None else f"not converged ({h.status})"
            lines.append(f"  hop {h.hop.get('index', k)} ({h.hop.get('length', float('nan')):.2f} Å, BVSE "
                         f"{h.hop.get('bvse_barrier', float('nan')):.3f} eV): {b}")
            lines += [f"    [{f['code']}] {f['text']}" for f in h.flags]
        b = "n/a" if self.barrier is None else f"{self.barrier:.3f} eV"
        est = self.estimate or {}
        if self.barrier is not None and est.get("calibrated") is not None:
            b += f" raw; calibrated {est['calibrated']:.3f} ± {est['uncertainty']:.3f} eV"
        elif self.barrier is not None and est.get("spread"):
            b += f" ± {est['spread']:.3f} eV (committee spread)"
        bv = self.bvse.get("barrier")
        lines.append(f"  barrier (rate-limiting hop): {b}; BVSE {self.dimension or ''} "
                     f"{'n/a' if bv is None else f'{bv:.3f} eV'}")
        return "\n".join(lines)

    def plot(self, path: str | Path) -> None:
        """Energy profile of every hop, NEB points over the BVSE grid path (PNG)."""
        from .plots import plot_report

        plot_report(self, path)
