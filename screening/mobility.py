"""Mobility as physics: a barrier's class against stated thresholds, with the tier's uncertainty
carried into it, the diffusion coefficient it implies, and the plausibility flags that keep a
number from being ranked as a finding.

Thresholds (:data:`MICRON`, :data:`NANO`, from :mod:`ionscreen.screening.thresholds`)
    Rong, Malik, Canepa, Sai Gautam, Liu, Persson, Ceder, *Chem. Mater.* 27 (2015) 6016: for
    an electrode to (dis)charge at about C/2, the ion must cross the particle within about two
    hours; with D ≈ a²ν exp(−Em/kT) this needs Em ≲ 525 meV for micron-sized particles and
    Em ≲ 650 meV for nano-sized ones (tens of nm).

Classes (:func:`mobility_class`)
    ``mobile``: Em + u ≤ 0.525 eV, mobile in micron particles even at the upper end of the
    tier's uncertainty ``u``; ``immobile``: Em − u > 0.65 eV, too slow even for nano-particles
    at the lower end; ``borderline``: everything between (nano-particles only, or the tier
    cannot tell). A tier with a large uncertainty (BVSE) therefore classes few hosts as mobile:
    that is what it knows.

Uncertainty of a tier (:func:`tier_uncertainty`)
    An ML NEB barrier carries its own (committee spread and calibration error,
    :mod:`ionscreen.screening.committee`); a single model without a committee, the BVFF NEB and
    BVSE carry the mean absolute error measured against DFT-NEB barriers of Mg/Ca/Zn/Al on the
    held-out paths (``benchmarks/validate_barriers.py``, ``benchmarks/RESULTS.md``).

Plausibility (:func:`plausibility_flags`)
    ``under-bonded``: the ion's bond-valence sum at its lowest BVSE site is below
    :data:`UNDER_BONDED` × its charge: it rattles in a cavity the host does not bond, and the
    flat bottom of that cavity reads as a tiny barrier (Ca²⁺ in hollandite). ``below-floor``:
    the ranked barrier is below the floor for the ion's charge
    (:data:`ionscreen.screening.neb.flags.FLOORS`). A BVSE barrier with either flag is not
    ranked; an NEB barrier stands on relaxed endpoints, so the BVSE site's flag is shown beside
    it without refusing it. ``empty-gap`` (added by the ranking from the record's note): a
    built-in host made without a species of its cited structure, whose gap nothing holds open.
"""

from __future__ import annotations

import math

from ionscreen.screening.bvse import diffusion_coefficient
from ionscreen.screening.neb.flags import FLOORS
from ionscreen.screening.thresholds import MICRON, NANO

__all__ = ["CLASSES", "MICRON", "NANO", "PROMOTE_CUTOFF", "TIER_MAE", "UNDER_BONDED",
           "diffusivity", "mobility_class", "plausibility_flags", "promote_cutoff",
           "tier_uncertainty"]

CLASSES = ("mobile", "borderline", "immobile")

#: the ion's BVS at its site below this fraction of its charge: under-bonded
UNDER_BONDED = 0.6

#: mean absolute error (eV) against DFT-NEB on the held-out Mg/Ca/Zn/Al paths, by tier key
#: prefix (benchmarks/RESULTS.md, "Barriers against DFT-NEB"): BVSE on 110 held-out paths of
#: any size, BVFF and an ML potential (CHGNet 0.3.0 raw) on the 70 of ≤ 60 atoms; used where a
#: barrier carries no uncertainty of its own
TIER_MAE = {"BVSE": 0.84, "BVFF": 0.46, "MLIP": 0.24}

#: The BVSE filter of the funnel (eV, by the ion's charge): a host whose BVSE percolation
#: barrier is at most this goes on to the NEB tier. BVSE ranks barriers weakly (Spearman 0.45
#: on 110 held-out DFT-NEB paths), so the filter is loose: for 2+ ions 2.5 eV keeps 33 of the 34
#: paths that BVSE finds among those DFT calls mobile (≤ 0.65 eV) and drops 12 of 56 immobile
#: ones (chosen on an earlier BVSE and 138 paths: 40 of 44, 15 of 72); for Al3+ the one mobile
#: path has BVSE 2.69 eV, hence 3.0; 1+ ions were not measured here (their barriers are
#: lower), 1.5 eV.
PROMOTE_CUTOFF = {1: 1.5, 2: 2.5, 3: 3.0}


def promote_cutoff(charge: int) -> float:
    """The BVSE barrier (eV) up to which a host of an ion of ``charge`` is promoted to NEB."""
    return PROMOTE_CUTOFF.get(int(charge), PROMOTE_CUTOFF[max(PROMOTE_CUTOFF)])


DEFAULT_HOP = 3.0  # Å, where the landscape gives no hop length


def tier_uncertainty(tier_key: str | None, own: float | None = None) -> float | None:
    """The barrier's own uncertainty when it has one, else the tier's measured MAE."""
    if own is not None and math.isfinite(own):
        return float(own)
    if not tier_key:
        return None
    for prefix, mae in TIER_MAE.items():
        if tier_key.startswith(prefix):
            return mae
    return None


def mobility_class(barrier: float, uncertainty: float | None) -> str:
    """``mobile`` / ``borderline`` / ``immobile`` (module docstring) of a barrier ± uncertainty."""
    u = uncertainty or 0.0
    if barrier + u <= MICRON:
        return "mobile"
    if barrier - u > NANO:
        return "immobile"
    return "borderline"


def diffusivity(barrier: float, hop_length: float | None = None, dimensions: int = 1,
                temperature: float = 300.0) -> float:
    """D (cm²/s) ≈ ν a² exp(−E/kT) / (2d) with ν = 10¹³ Hz
    (:func:`ionscreen.screening.bvse.diffusion_coefficient`), a = :data:`DEFAULT_HOP` where the
    landscape gives no hop length: an order of magnitude to compare with a measurement
    (PITT/GITT), not a prediction."""
    return diffusion_coefficient(barrier, hop_length or DEFAULT_HOP, dimensions, temperature)


def plausibility_flags(barrier: float | None, charge: int, bvs_ratio: float | None
                       ) -> list[tuple[str, str]]:
    """(code, text) for an under-bonded site and a barrier below the floor of ``charge``."""
    flags: list[tuple[str, str]] = []
    if bvs_ratio is not None and bvs_ratio < UNDER_BONDED:
        flags.append(("under-bonded", (
            f"the ion's bond-valence sum at its lowest site is {bvs_ratio * charge:.2f} for a "
            f"charge of {charge} ({bvs_ratio:.0%}, below {UNDER_BONDED:.0%}): it rattles in a "
            "cavity the host does not bond")))
    floor = FLOORS.get(charge, FLOORS[max(FLOORS)])
    if barrier is not None and barrier < floor:
        flags.append(("below-floor", f"barrier {barrier:.3f} eV is below the {floor:.2f} eV floor "
                                     f"for a {charge}+ ion: likelier an artefact than a finding"))
    return flags
