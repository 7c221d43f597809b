"""The rows of the softBV parameter table: one cation–anion Morse row, one element.

:class:`PairParams` is a softBV Morse row (Chen & Adams, IUCrJ 4 (2017) 614) with the checks
that make a row usable (alpha > 0, d0 > 0, r_min > 0, b = 1/alpha); :class:`ElementParams` is
what a framework ion needs, the period n and covalent radii (softBV, Chen, Wong & Adams 2019;
ASE). The table that holds them, and loads them from ``data/softbv_params.json``, is
:mod:`ionscreen.screening.params`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ionscreen.errors import MissingParameterError
from ionscreen.structures.ions import ion_label

__all__ = ["ElementParams", "PairKey", "PairParams", "normalise_symbol", "pair_label"]

#: ``(cation, cation_valence, anion, anion_valence)``, how the table keys its rows
PairKey = tuple[str, int, str, int]


def pair_label(cation: str, cation_valence: int, anion: str, anion_valence: int) -> str:
    """``"Mg2+–O2-"``."""
    return f"{ion_label(cation, cation_valence)}–{ion_label(anion, anion_valence)}"


def normalise_symbol(symbol: str) -> str:
    """Element symbol as the table spells it (``" mg"`` -> ``"Mg"``)."""
    s = symbol.strip()
    return s[:1].upper() + s[1:].lower()


@dataclass(frozen=True)
class PairParams:
    """One softBV Morse row for a cation–anion pair.

    Energy of the pair at distance R: ``(d0/2)·[(exp(alpha·(r_min − R)) − 1)² − 1]`` (eV, Å).
    ``b = 1/alpha`` is the bond-valence softness; ``r0`` the bond-valence R0.
    """

    cation: str
    cation_valence: int
    anion: str
    anion_valence: int
    r0: float
    b: float
    alpha: float
    d0: float
    r_min: float
    r_cutoff: float | None = None
    nc: float | None = None
    derived_from: str | None = None
    """Set on rows that are not in the table but derived by a documented rule (approximate)."""

    @property
    def key(self) -> PairKey:
        """``(cation, cation_valence, anion, anion_valence)``."""
        return (self.cation, self.cation_valence, self.anion, self.anion_valence)

    def label(self) -> str:
        """``"Mg2+–O2-"``."""
        return pair_label(*self.key)

    def validation_errors(self) -> list[str]:
        """Reasons the row is unusable (empty when it is valid)."""
        errors = []
        if self.cation_valence <= 0:
            errors.append(f"cation_valence must be > 0 (got {self.cation_valence})")
        if self.anion_valence >= 0:
            errors.append(f"anion_valence must be < 0 (got {self.anion_valence})")
        for name in ("r0", "b", "alpha", "d0", "r_min"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                errors.append(f"{name} must be a finite number (got {value!r})")
        if errors:
            return errors
        if self.alpha <= 0:
            errors.append(f"alpha <= 0 (alpha = {self.alpha}): physically invalid, the Morse "
                          "bond term would grow with distance instead of binding")
        if self.d0 <= 0:
            errors.append(f"d0 must be > 0 (got {self.d0})")
        if self.r_min <= 0:
            errors.append(f"r_min must be > 0 (got {self.r_min})")
        if self.alpha > 0 and abs(self.b * self.alpha - 1.0) > 1e-3:
            errors.append(f"b must equal 1/alpha (b = {self.b}, 1/alpha = {1.0 / self.alpha:.6f})")
        if self.r_cutoff is not None and not self.r_cutoff > 0:
            errors.append(f"r_cutoff must be > 0 when given (got {self.r_cutoff})")
        if self.nc is not None and not self.nc > 0:
            errors.append(f"nc must be > 0 when given (got {self.nc})")
        return errors

    def morse(self, r: float) -> float:
        """Bond (Morse) energy in eV at distance ``r`` (Å)."""
        return 0.5 * self.d0 * ((math.exp(self.alpha * (self.r_min - r)) - 1.0) ** 2 - 1.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable row (optional fields only when set)."""
        d = asdict(self)
        for name in ("r_cutoff", "nc", "derived_from"):
            if d[name] is None:
                del d[name]
        return d


@dataclass(frozen=True)
class ElementParams:
    """What a framework ion needs: period n (principal quantum number), covalent radii.

    ``covalent_radius_softbv`` is keyed by valence (softBV, Chen, Wong & Adams 2019);
    ``covalent_radius_ase`` is ``ase.data.covalent_radii`` (bvlain's default).
    """

    symbol: str
    z: int
    period: int
    covalent_radius_softbv: dict[int, float] = field(hash=False)
    covalent_radius_ase: float

    def covalent_radius(self, valence: int, source: str = "ase") -> float:
        """Covalent radius (Å) for the Coulomb screening length.

        ``source="ase"`` (bvlain's default) ignores the valence; ``source="softbv"`` needs a
        softBV radius for that valence and raises :class:`MissingParameterError` otherwise.
        """
        if source == "ase":
            return self.covalent_radius_ase
        if source == "softbv":
            try:
                return self.covalent_radius_softbv[valence]
            except KeyError:
                have = ", ".join(ion_label(self.symbol, v)
                                 for v in sorted(self.covalent_radius_softbv)) or "none"
                raise MissingParameterError(
                    f"no softBV covalent radius for {ion_label(self.symbol, valence)} "
                    f"(softBV radii exist for: {have}); use source=\"ase\" (ASE covalent "
                    f"radius {self.covalent_radius_ase} Å) or check the oxidation state"
                ) from None
        raise ValueError(f"unknown covalent-radius source {source!r}; use 'ase' or 'softbv'")
