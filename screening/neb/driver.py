"""NEB of the hops of a migration path: :func:`run_neb` seeds from BVSE (given, or computed
here with stated settings), prepares the host once, runs every symmetry-distinct hop of the
lowest-barrier percolating path and reports the rate-limiting barrier."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ase.calculators.calculator import Calculator
from pymatgen.core import Structure

from ionscreen.errors import CalculationError, IonscreenError, MissingParameterError
from ionscreen.structures.convert import to_atoms

from ..bvse import DIMS, BVSEResult, BVSESettings, Hop, PreparedHost, compute_landscape
from ..calculators import BVFFModel, CalculatorFactory
from ..committee import (
    Calibration,
    committee_members,
    committee_report,
    run_members,
    single_estimate,
)
from ..ion_models import IonModel, ion_model
from .band import neb_hop
from .flags import flag
from .parallel import check_ranks
from .results import NEBReport, NEBResult, tier_of
from .settings import MergedEndpointsError, NEBSettings
from .setup import as_prepared, choose_calculator

#: Grid step (Å) of the BVSE that seeds a NEB when neither ``bvse`` nor ``bvse_settings`` is given.
SEED_RESOLUTION = 0.1


def seed_settings(settings: NEBSettings) -> BVSESettings:
    """The BVSE settings of a seed computed by :func:`run_neb` when none are given:
    ``BVSESettings(resolution=SEED_RESOLUTION)`` with the NEB's ``derive_nitride``."""
    return BVSESettings(resolution=SEED_RESOLUTION, derive_nitride=settings.derive_nitride)


def percolating_hops(bvse: BVSEResult) -> tuple[str | None, list[int]]:
    """The lowest dimension that percolates and the symmetry classes (``Hop.distinct``) of the
    hops of its percolating cluster, lowest BVSE barrier first."""
    for dim in DIMS:
        if math.isfinite(bvse.barriers.get(dim, math.inf)):
            idx = [h.distinct for h in bvse.distinct_hops if h.percolation == dim]
            if idx:
                return dim, idx
    return None, []


def _seed(host: PreparedHost | Structure, ion: IonModel, settings: NEBSettings, bvse: BVSEResult | None,
          bvse_settings: BVSESettings | None, oxidation_states: dict[str, float] | None,
          ) -> tuple[PreparedHost, BVSEResult, BVSESettings]:
    """The host prepared once and the BVSE that seeds the NEB, with the settings of that BVSE:
    those of ``bvse``, else ``bvse_settings``, else those a PreparedHost was prepared with, else
    :func:`seed_settings`."""
    if bvse is not None:
        used = bvse.settings
    elif bvse_settings is not None:
        used = bvse_settings
    else:
        used = host.settings if isinstance(host, PreparedHost) else seed_settings(settings)
    prepared = as_prepared(host, ion, used, oxidation_states)
    if bvse is None:
        bvse = compute_landscape(prepared, settings=used)
    return prepared, bvse, used


def _chosen_hops(bvse: BVSEResult, distinct: dict[int, Hop], hop: int | None, ion: IonModel,
                 settings: NEBSettings) -> tuple[str | None, list[int], list[dict[str, Any]]]:
    """(dimension, hop classes to compute, hops skipped with their reason)."""
    if hop is not None:
        if hop not in distinct:
            raise IonscreenError(
                f"hop {hop} does not exist: BVSE found the symmetry-distinct hops "
                f"{sorted(distinct)} (the 'hop' column of `ionscreen bvse` or `ionscreen neb --list-hops`)")
        return distinct[hop].percolation, [hop], []
    dim, chosen = percolating_hops(bvse)
    if not chosen:
        raise CalculationError(
            f"BVSE found no percolating path for {ion.label()} below encut in "
            f"{bvse.formula}; choose a hop with --hop N (see --list-hops)")
    # split sites (two minima closer than an NEB can resolve) are no hop to compute
    split = [k for k in chosen if distinct[k].length < settings.min_endpoint_distance]
    skipped = [_skip(distinct[k], f"sites {distinct[k].length:.2f} Å apart (a split site), below "
                                  f"min_endpoint_distance {settings.min_endpoint_distance} Å")
               for k in split]
    return dim, [k for k in chosen if k not in split], skipped


def _skip(hop: Hop, reason: str) -> dict[str, Any]:
    return {"hop": hop.distinct, "length": hop.length, "bvse_barrier": hop.barrier, "reason": reason}


def _bvff_precheck(host: PreparedHost, settings: NEBSettings) -> tuple[NEBSettings, str | None]:
    """Build the host's BVFF once, so that a missing pair row fails the whole NEB with one
    reason instead of once per hop; a host with neutral (covalently bound) atoms, which the
    BVFF does not hold together, is kept fixed, and the returned warning says so."""
    try:
        model = BVFFModel.from_atoms(to_atoms(host.framework, charges=True), host.ion,
                                     derive_nitride=settings.derive_nitride)
    except MissingParameterError as exc:
        raise MissingParameterError(
            f"BVFF NEB not possible for this host: {exc} (the BVFF needs a row for every "
            "cation–anion pair of the host; an ML potential needs none: calculator 'chgnet', "
            "--neb-calculator chgnet in a screen)") from None
    if not (model.neutral and settings.relax_host):
        return settings, None
    return settings.with_fixed_host(), (
        f"host kept fixed (only the ion moves): the BVFF has no terms for the neutral "
        f"{', '.join(model.neutral)} of covalently bound ligands, which would not hold "
        "together on relaxing; an ML potential relaxes them")


def _run_hops(host: PreparedHost, bvse: BVSEResult, distinct: dict[int, Hop], chosen: list[int],
              calculator: Any, settings: NEBSettings, comm: Any, one_hop: bool,
              progress: Callable[[str], None] | None,
              ) -> tuple[list[NEBResult], list[dict[str, Any]], list[dict[str, Any]]]:
    """NEB of each chosen hop: (results, failures, hops skipped). A hop whose site is no
    minimum is merged with the next hops (:mod:`.merge`); a later hop of a class already inside
    a merged band is skipped, and so is a hop no merge gives two distinct minima."""
    results: list[NEBResult] = []
    failures: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    covered: dict[int, int] = {}  # hop class -> the hop whose merged band holds it
    known: dict[bool, dict] = {}  # endpoints relaxed so far: a site shared by hops relaxes once
    for k in chosen:
        if k in covered:
            skipped.append(_skip(distinct[k], f"inside the merged band of hop {covered[k]}"))
            continue
        if progress:
            progress(f"hop {k}: {distinct[k].length:.2f} Å, BVSE {distinct[k].barrier:.3f} eV")
        try:
            r = neb_hop(host, host.ion, distinct[k], bvse, calculator, settings, comm, hop_index=k,
                        known=known)
        except MergedEndpointsError as exc:
            if one_hop:
                raise
            skipped.append(_skip(distinct[k], str(exc)))
            continue
        except IonscreenError as exc:
            failures.append({"hop": k, "error": type(exc).__name__, "reason": str(exc)})
            continue
        results.append(r)
        for part in (r.merged or {}).get("hops", []):
            covered.setdefault(part["distinct"], k)
    return results, failures, skipped


def run_neb(
    host: PreparedHost | Structure,
    ion: str | IonModel,
    calculator: str | CalculatorFactory | Callable[[], Calculator] = "bvff",
    hop: int | None = None,
    settings: NEBSettings | None = None,
    bvse: BVSEResult | None = None,
    bvse_settings: BVSESettings | None = None,
    comm: Any = None,
    oxidation_states: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> NEBReport:
    """NEB of every symmetry-distinct hop on the lowest-barrier percolating BVSE path (or hop
    ``hop``, a symmetry class ``Hop.distinct`` as listed by ``ionscreen bvse``); the overall
    barrier is the highest of them.

    ``host`` is a Structure (prepared here once, with ``oxidation_states``) or a
    :class:`~ionscreen.screening.bvse.PreparedHost`. ``bvse`` seeds the path; without it BVSE
    is computed here on the prepared host with ``bvse_settings`` (default: the settings a
    PreparedHost was prepared with, or :func:`seed_settings` for a Structure: a 0.1 Å grid).
    The report's ``bvse["settings"]`` says which BVSE settings seeded it.
    """
    members = committee_members(calculator)
    if members:
        # each member runs the same path from the same BVSE seed; combined per path
        prepared, bvse, _ = _seed(host, ion_model(ion), settings or NEBSettings.for_ml(), bvse,
                                  bvse_settings, oxidation_states)
        done, reasons = run_members(lambda spec: run_neb(
            prepared, ion, spec, hop, settings, bvse=bvse, comm=comm, progress=progress), members)
        return committee_report(done, Calibration.load(), reasons)
    settings = settings or NEBSettings.for_calculator(calculator)
    settings.validate()
    ion = ion_model(ion)
    check_ranks(settings.images, comm)
    prepared, bvse, used = _seed(host, ion, settings, bvse, bvse_settings, oxidation_states)
    distinct = {h.distinct: h for h in bvse.distinct_hops}
    dim, chosen, skipped = _chosen_hops(bvse, distinct, hop, ion, settings)
    forced: str | None = None
    if isinstance(calculator, str) and calculator.lower() != "bvff":
        # load an ML model once for all hops; a missing extra stops here, not per hop
        calculator = choose_calculator(calculator, None, ion)
    elif isinstance(calculator, str):
        settings, forced = _bvff_precheck(prepared, settings)
    results, failures, merged = _run_hops(prepared, bvse, distinct, chosen, calculator, settings, comm,
                                          hop is not None, progress)
    if forced:
        for r in results:
            r.warnings.insert(0, forced)
            r.flags.append(flag("fixed-host-fallback", forced))
    note = ("overall barrier = the highest hop barrier (the rate-limiting hop); only given when "
            "every hop converged" if hop is None else "one hop, chosen with hop=")
    seed = {"method": bvse.method, "dimension": dim, "barrier": bvse.barriers.get(dim) if dim else None,
            "barriers": dict(bvse.barriers), "hop_barriers": [distinct[k].barrier for k in chosen],
            "settings": used.as_dict()}
    rep = _report(bvse.formula, ion, calculator, dim, seed, results, failures, skipped + merged,
                  note + (f". {forced}" if forced else ""))
    rep.estimate = single_estimate(rep.calculator, rep.tier, rep.barrier, Calibration.load(),
                                   ion=rep.ion)
    return rep


def _report(formula: str, ion: IonModel, calculator: Any, dim: str | None, seed: dict[str, Any],
            results: list[NEBResult], failures: list[dict[str, Any]], skipped: list[dict[str, Any]],
            note: str) -> NEBReport:
    """The report of a path: its barrier is the highest hop barrier when every hop converged;
    ``seed`` says what BVSE found and with which settings."""
    ok = bool(results) and all(r.barrier is not None for r in results) and not failures
    worst = max(results, key=lambda r: r.barrier) if ok else None
    if results:
        calc_id, tier = results[0].calculator, results[0].tier
    elif isinstance(calculator, CalculatorFactory):
        calc_id, tier = calculator.identity, calculator.tier
    else:  # no hop ran: say which calculator was asked for
        calc_id = str(calculator)
        tier = tier_of(calc_id)
    return NEBReport(
        formula=formula,
        ion=ion.label(),
        calculator=calc_id,
        tier=tier,
        barrier=worst.barrier if worst else None,
        rate_limiting_hop=worst.hop["index"] if worst else None,
        dimension=dim,
        hops=results,
        bvse=seed,
        failures=failures,
        skipped=skipped,
        note=note,
        approximate=any(r.approximate for r in results),
    )
