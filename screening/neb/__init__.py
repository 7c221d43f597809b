"""Climbing-image NEB of one working ion, seeded from the BVSE landscape.

For each hop: a supercell in which periodic images of the mobile ion are at least
``min_image_distance`` apart; endpoints at the two BVSE sites (one ion in the empty host, the
dilute-ion limit, or one vacancy in the full host, the dilute-vacancy limit), nudged off their
symmetric positions and relaxed; an initial band along the BVSE grid path (or IDPP / linear);
a pre-relaxation without climbing, then climbing-image NEB (ASE) to ``fmax``. The barrier is
the highest image minus the lowest (said so when that differs from "highest minus initial").
A band that does not converge is reported as not converged, never as a barrier.

A BVSE site that is no minimum for the calculator (its endpoint relaxes onto the other one,
or onto a neighbouring site) is not dropped: the hop is joined with the next hops of the BVSE
hop graph into one band between true minima (:mod:`.merge`). Every hop says where its relaxed
endpoints went and carries structured ``flags`` (:mod:`.flags`: noise, below-floor,
no-saddle, endpoint-moved, framework-changed, merged-hops, fixed-host-fallback,
not-converged); ranking refuses a barrier flagged noise or below-floor, or no-saddle (a lower
bound) below 0.65 eV.

Practice from HPC NEB work: one calculator per image; explicit NEB method; the rank/image split
is checked (ASE's own parallel NEB does not check it). Under MPI (``comm`` with size > 1) the
inner images are shared out round-robin: each rank computes its images, energies and forces
are all-gathered, and every rank runs the same optimiser step, so every rank holds the same
band.

Modules: :mod:`.settings` (NEBSettings), :mod:`.setup` (one hop in its supercell, the host
prepared once, the calculator factory), :mod:`.band` (endpoints, initial band, optimisation,
:func:`neb_hop`), :mod:`.merge` (hops joined through a site that is no minimum; where an endpoint went),
:mod:`.flags` (what can be wrong with a barrier), :mod:`.parallel` (the band over MPI ranks), :mod:`.results` (NEBResult,
NEBReport, NEBSummary), :mod:`.driver` (:func:`run_neb` over the hops of a path),
:mod:`.plots`.
"""

from ..calculators import CalculatorFactory
from .band import BandRun, initial_band, neb_hop, relax_endpoints, run_band
from .driver import SEED_RESOLUTION, percolating_hops, run_neb, seed_settings
from .endpoints import moving_ion, neb_between
from .flags import CODES as FLAG_CODES
from .flags import FLOORS, NOISE_K, REFUSED
from .merge import locate
from .parallel import BandNEB, check_ranks
from .results import NEBReport, NEBResult, NEBSummary, tier_of
from .settings import LIMITS, METHODS, PATHS, MergedEndpointsError, NEBSettings
from .setup import HopSetup, as_prepared, choose_calculator, supercell_for

__all__ = [
    "FLAG_CODES",
    "FLOORS",
    "LIMITS",
    "METHODS",
    "NOISE_K",
    "PATHS",
    "REFUSED",
    "SEED_RESOLUTION",
    "BandRun",
    "CalculatorFactory",
    "BandNEB",
    "HopSetup",
    "MergedEndpointsError",
    "NEBReport",
    "NEBResult",
    "NEBSettings",
    "NEBSummary",
    "as_prepared",
    "check_ranks",
    "choose_calculator",
    "initial_band",
    "locate",
    "neb_between",
    "neb_hop",
    "moving_ion",
    "percolating_hops",
    "relax_endpoints",
    "run_band",
    "run_neb",
    "seed_settings",
    "supercell_for",
    "tier_of",
]
