"""How one NEB is set up and converged (:class:`NEBSettings`), and the refusal of a hop whose
endpoints relax into one minimum."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ionscreen.errors import CalculationError

from ..typed_settings import TypedSettings

LIMITS = ("dilute-ion", "dilute-vacancy")
PATHS = ("bvse", "idpp", "linear")
OPTIMIZERS = ("FIRE", "BFGS", "ODE")
METHODS = ("improvedtangent", "aseneb", "eb", "spline", "string")


def is_bvff(calculator: object) -> bool:
    """Whether ``calculator`` is the bond-valence force field: the name "bvff" (any case) or
    a factory of tier "BVFF"."""
    tier = getattr(calculator, "tier", None)
    return str(calculator or "").strip().lower() == "bvff" if tier is None else tier == "BVFF"


class MergedEndpointsError(CalculationError):
    """Both endpoints of a hop relaxed into the same minimum: for this calculator it is no hop."""


@dataclass
class NEBSettings(TypedSettings):
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
    """Band optimiser: "FIRE", "BFGS" or "ODE" (ASE's adaptive ODE NEB optimiser); the
    endpoints relax with FIRE or BFGS ("ODE" relaxes them with FIRE)."""
    relax_optimizer: str = ""
    """Optimiser of the endpoint relaxations, "FIRE" or "BFGS"; "" = the band's (FIRE for an
    ODE band). BFGS needs fewer force calls near a minimum (the ML default)."""
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
    mirror: bool = False
    """When a symmetry operation of the host maps the hop onto its reverse, relax one endpoint
    and evaluate half the band, the rest being its image (:mod:`.mirror`); the ML default."""
    derive_nitride: bool = False
    """BVFF only: derive a missing ion–N3- row from the ion's O2- row, as BVSE's
    ``--derive-nitride`` does; the calculator label and the result say it is approximate."""

    KIND: ClassVar[str] = "NEB"

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.images >= 1, "images must be >= 1 (7 is typical)"),
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.spring > 0, "spring must be positive"),
            (0 < self.fmax <= self.fmax_pre, "need 0 < fmax <= fmax_pre"),
            (self.fmax_endpoints > 0, "fmax_endpoints must be positive"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.relax_optimizer in ("", "FIRE", "BFGS"), "relax_optimizer must be '', FIRE or BFGS"),
            (self.limit in LIMITS, f"limit must be one of {', '.join(LIMITS)}"),
            (self.path in PATHS, f"path must be one of {', '.join(PATHS)}"),
            (self.min_image_distance > 0, "min_image_distance must be positive"),
            (self.nudge >= 0, "nudge must be >= 0"),
        ]

    @classmethod
    def for_ml(cls, **changes: object) -> NEBSettings:
        """The defaults of the ML tier, where one energy-and-force call costs ~0.1–1 s instead
        of the BVFF's ~1 ms: 5 inner images (the climbing image finds the saddle of a
        one-saddle hop with 5 as with 7), the climbing stage to 0.03 eV/Å (at 0.05 the host
        around the saddle is left visibly unrelaxed and barriers come out too high),
        endpoints to 0.02 eV/Å with BFGS (fewer calls than FIRE near a minimum), at most 400
        optimiser steps per stage (a band that needs more is not converging), half the band
        for a symmetric hop (``mirror``)."""
        return cls(**{"images": 5, "fmax": 0.03, "fmax_endpoints": 0.02, "relax_optimizer": "BFGS",
                      "steps": 400, "mirror": True, **changes})  # type: ignore[arg-type]

    @classmethod
    def for_calculator(cls, calculator: object, **changes: object) -> NEBSettings:
        """``NEBSettings(**changes)`` for the BVFF (by name "bvff" or a factory of tier "BVFF"),
        :meth:`for_ml` with ``changes`` for anything else (an ML potential, a committee)."""
        return cls(**changes) if is_bvff(calculator) else cls.for_ml(**changes)  # type: ignore[arg-type]

    @property
    def endpoint_optimizer(self) -> str:
        """The optimiser of the endpoint relaxations: ``relax_optimizer``, else the band's
        (FIRE for an ODE band)."""
        return self.relax_optimizer or ("FIRE" if self.optimizer == "ODE" else self.optimizer)

    def with_fixed_host(self) -> NEBSettings:
        """The same settings with the host atoms fixed (only the ion moves)."""
        return replace(self, relax_host=False)
