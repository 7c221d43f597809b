"""One hop: relax the two endpoints, lay the initial band, optimise it (pre-relaxation, then
climbing image), and the per-hop driver :func:`neb_hop` with its fixed-host fallback."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.constraints import FixAtoms
from ase.mep import NEB
from ase.mep.neb import NEBOptimizer
from pymatgen.core import Structure

from ..bvse import BVSEResult, Hop, PreparedHost
from ..calculators import CalculatorFactory
from ..ion_models import IonModel, ion_model
from ..relax import make_optimizer, relax
from .flags import flag, floor_flag, framework_change, framework_flag, noise_flag
from .merge import resolve
from .parallel import _CachedCalculator, check_ranks, force_calculator, make_band, rank_and_size
from .results import NEBResult
from .settings import MergedEndpointsError, NEBSettings
from .setup import HopSetup, as_prepared, choose_calculator, path_length, resample

_ENDS = ("initial", "final")
# the mobile ion moving farther than this (Å) from its BVSE site on relaxing is worth a warning
_MOVED = 1.0
#: a relaxed endpoint: positions, converged, steps, relaxed on into its hop from a saddle
Relaxed = tuple[np.ndarray, bool, int, bool]
# a band is judged diverging only after this many optimiser steps
_DIVERGE_AFTER = 10
# a relaxed endpoint is probed this far (Å) into the hop; an energy drop larger than
# _PROBE_DROP (eV) there means it sits on a saddle of the path, not in a minimum
_PROBE = 0.25
_PROBE_DROP = 1e-3


def _fix_host(atoms: Atoms, settings: NEBSettings, n_host: int) -> None:
    if not settings.relax_host:
        atoms.set_constraint(FixAtoms(indices=list(range(n_host))))


def _energy(atoms: Atoms, factory: CalculatorFactory) -> float:
    a = atoms.copy()
    a.calc = force_calculator(factory)
    return float(a.get_potential_energy())


def _inward(setup: HopSetup, k: int) -> np.ndarray:
    """Unit vector from endpoint ``k`` into the hop, along its BVSE grid path."""
    path = setup.grid_path if k == 0 else setup.grid_path[::-1]
    g = resample(path, max(2, int(np.ceil(path_length(path)[-1] / _PROBE)) + 1))
    d = g[1] - g[0]
    n = np.linalg.norm(d)
    return d / n if n > 0 else d


def _relax_end(a: Atoms, setup: HopSetup, k: int, factory: CalculatorFactory,
               settings: NEBSettings, reused: Relaxed | None = None) -> Relaxed:
    """Relax one endpoint in place (or take ``reused``, relaxed for another hop); when the ion
    then sits on a saddle of this path (moving it ``_PROBE`` Å into the hop lowers the
    energy), relax again from there. Returns (positions, converged, steps, probed: whether it
    was relaxed on into this hop)."""
    n_ion = len(setup.host)
    if reused is None:
        _, ok, n = relax(a, force_calculator(factory), fmax=settings.fmax_endpoints,
                         steps=settings.steps, optimizer=settings.endpoint_optimizer,
                         in_place=True, wrap_errors=False)
    else:  # a minimum along the other hop may be a saddle along this one: probed again
        a.positions, ok, n = reused[0].copy(), reused[1], 0
    probe = a.copy()
    probe.positions[n_ion] += _PROBE * _inward(setup, k)
    probed = _energy(probe, factory) < _energy(a, factory) - _PROBE_DROP
    if probed:
        _, ok, m = relax(probe, force_calculator(factory), fmax=settings.fmax_endpoints,
                         steps=settings.steps, optimizer=settings.endpoint_optimizer, in_place=True,
                         wrap_errors=False)
        a.positions = probe.positions
        n += m
    return a.positions.copy(), ok, n, probed


def relax_endpoints(setup: HopSetup, factory: CalculatorFactory, settings: NEBSettings,
                    comm: Any = None, known: dict[tuple, Relaxed] | None = None,
                    check: bool = True) -> tuple[list[Atoms], dict[str, int], list[str]]:
    """The two endpoints, nudged off their BVSE sites (seeded) and relaxed; an endpoint that
    is a saddle along the hop is relaxed on from a point ``_PROBE`` Å into the hop. Under MPI
    the two relaxations run on different ranks. ``known`` holds endpoints relaxed before (by
    the ion's start position), reused and filled. With ``setup.mirror`` only the initial
    endpoint is relaxed, the final one is its image. Returns (endpoints, steps, warnings).

    Raises :class:`MergedEndpointsError` when both relax into one minimum (unless ``check``
    is False: :func:`~.merge.resolve` merges hops instead)."""
    n_ion = len(setup.host)  # the moving ion is the last atom
    rng = np.random.default_rng(settings.seed)
    kicks = [rng.normal(size=3) for _ in range(2)]
    rank, size = rank_and_size(comm)
    known = {} if known is None else known
    # by the ion's start and the host (a dilute-vacancy host differs from hop to hop)
    host_key = hash(setup.host.positions.round(4).tobytes() + setup.host.numbers.tobytes())
    keys = [(host_key, *np.round(p, 3)) for p in (setup.start, setup.end)]
    ends = []
    done: dict[int, Relaxed] = {}
    for k, pos in enumerate((setup.start, setup.end)):
        a = setup.with_ion(pos)
        if settings.nudge > 0:
            a.positions[n_ion] += settings.nudge * kicks[k] / np.linalg.norm(kicks[k])
        _fix_host(a, settings, n_ion)
        ends.append(a)
        if k == 1 and setup.mirror is not None:
            continue  # the image of the initial endpoint (below), so that the band is symmetric
        if keys[k] in known:
            done[k] = _relax_end(a, setup, k, factory, settings, reused=known[keys[k]])
        elif k % size == rank:
            done[k] = _relax_end(a, setup, k, factory, settings)
    if size > 1:
        for part in comm.allgather(done):
            done.update(part)
    if 1 not in done:  # the final endpoint is the image of the relaxed initial one
        pos = setup.mirror.apply(done[0][0], near=ends[1].positions)
        done[1] = (pos, done[0][1], 0, done[0][3])
    steps: dict[str, int] = {}
    warnings: list[str] = []
    for k, name in enumerate(_ENDS):
        pos_k, ok, n, _ = done[k]
        known.setdefault(keys[k], done[k])
        ends[k].positions = pos_k
        steps[f"relax_{name}"] = n
        if not ok and n:  # (a reused endpoint or the initial one's image: said where it was made)
            warnings.append(f"{name} endpoint not relaxed to fmax {settings.fmax_endpoints} in {n} steps")
        elif not ok and not (k == 1 and setup.mirror is not None):
            warnings.append(f"{name} endpoint (reused from an earlier relaxation) not relaxed to "
                            f"fmax {settings.fmax_endpoints}")
        moved = float(np.linalg.norm(pos_k[n_ion] - (setup.start, setup.end)[k]))
        if moved > _MOVED:
            warnings.append(f"{name} endpoint: the ion moved {moved:.2f} Å from its BVSE site on relaxing")
    sep = float(np.linalg.norm(ends[1].positions[n_ion] - ends[0].positions[n_ion]))
    if check and sep < settings.min_endpoint_distance:
        raise MergedEndpointsError(
            f"after relaxation both endpoints hold the ion within {sep:.2f} Å of each other: the "
            "hop's two sites are the same minimum for this calculator; try another hop or "
            "a fixed host (--fixed-host)")
    return ends, steps, warnings


def initial_band(setup: HopSetup, ends: list[Atoms], factory: CalculatorFactory,
                 settings: NEBSettings, comm: Any = None) -> NEB:
    """The band between relaxed endpoints: the ion along the BVSE grid path (shifted to the
    relaxed endpoints) and the host interpolated linearly, or ASE's IDPP / linear band."""
    n_ion = len(setup.host)
    n = settings.images + 2
    images = [ends[0], *(ends[0].copy() for _ in range(settings.images)), ends[1]]
    if settings.path == "bvse":
        g = resample(setup.grid_path, n)
        t = np.linspace(0.0, 1.0, n)
        ion_pos = (g + (1 - t)[:, None] * (ends[0].positions[n_ion] - g[0])
                   + t[:, None] * (ends[1].positions[n_ion] - g[-1]))
        for k in range(1, n - 1):
            images[k].positions = (1 - t[k]) * ends[0].positions + t[k] * ends[1].positions
            images[k].positions[n_ion] = ion_pos[k]
    for im in images:
        im.calc = _CachedCalculator(force_calculator(factory))
        _fix_host(im, settings, n_ion)
    band = make_band(images, comm, batch=factory.batch, mirror=setup.mirror,
                     mirror_candidates=setup.mirror_candidates, k=settings.spring, climb=False,
                     method=settings.method)
    if settings.path in ("linear", "idpp"):
        band.interpolate(method=settings.path, mic=True, apply_constraint=False)
    return band


def _max_force(band: NEB) -> float:
    return float(np.sqrt((band.get_forces() ** 2).sum(axis=1).max()))


class _Diverged(Exception):
    """Raised from an optimiser observer to stop a band that diverges."""


def _optimise(band: NEB, name: str, fmax: float, steps: int, diverge: float) -> tuple[bool, int, bool]:
    """Optimise the band; stop early when it diverges (max force above ``diverge`` after 10 steps).

    ``name`` is a step optimiser ("FIRE", "BFGS") or "ODE", ASE's adaptive ODE solver for
    NEB (:class:`ase.mep.neb.NEBOptimizer`), which needs fewer force calls on smooth (ML)
    surfaces. Returns (converged, steps, diverged).
    """
    if name == "ODE":
        opt = NEBOptimizer(band, method="ode", logfile=None)

        def watch() -> None:
            if opt.nsteps > _DIVERGE_AFTER and _max_force(band) > diverge:
                raise _Diverged

        opt.attach(watch)
        try:
            converged = bool(opt.run(fmax=fmax, steps=steps))
        except _Diverged:
            return False, int(opt.nsteps), True
        return converged, int(opt.nsteps), False
    opt = make_optimizer(name, band)
    n = 0
    for converged in opt.irun(fmax=fmax, steps=steps):
        if converged:
            return True, int(opt.nsteps), False
        n += 1
        if n > _DIVERGE_AFTER and _max_force(band) > diverge:
            return False, int(opt.nsteps), True
    return False, int(opt.nsteps), False


@dataclass
class BandRun:
    """How the optimisation of a band ended."""

    converged: bool
    diverged: bool
    pre_converged: bool
    steps: dict[str, int]
    fmax_final: float  # eV/Å, largest force on the band at the end


def run_band(band: NEB, settings: NEBSettings) -> BandRun:
    """Pre-relax the band without climbing to ``fmax_pre``, then (climbing) to ``fmax``."""
    ok_pre, n_pre, div = _optimise(band, settings.optimizer, settings.fmax_pre, settings.steps,
                                   settings.diverge_fmax)
    converged, n_climb = False, 0
    if not div:
        if settings.climb:
            band.climb = True
        converged, n_climb, div = _optimise(band, settings.optimizer, settings.fmax, settings.steps,
                                            settings.diverge_fmax)
    steps = {"pre": n_pre, "climb" if settings.climb else "final": n_climb}
    return BandRun(converged, div, ok_pre, steps, _max_force(band))


@dataclass
class _Attempt:
    """One NEB of a hop with one set of settings (``setup``/``hop``: the band's, merged or not)."""

    settings: NEBSettings
    images: list[Atoms]
    run: BandRun
    steps: dict[str, int]
    warnings: list[str]
    timings: dict[str, float]
    setup: HopSetup | None = None  # None for given endpoints (no BVSE hop)
    hop: Hop | None = None
    merged: dict[str, Any] | None = None
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    mirror: str = ""  # what half the band computed (:mod:`.mirror`), "" for a whole band


def _attempt(host: PreparedHost, hop: Hop, bvse: BVSEResult, factory: CalculatorFactory,
             settings: NEBSettings, comm: Any, shared: dict[tuple, Relaxed] | None = None,
             ) -> _Attempt:
    """One NEB of ``hop``. ``shared``: endpoints relaxed by earlier hops, reused here and
    filled with this hop's, except one relaxed on into this hop from a saddle (another hop
    leaves that site in another direction)."""
    t0 = time.perf_counter()
    known = dict(shared or {})
    ends_of = resolve(host, hop, bvse, settings,
                      lambda st: relax_endpoints(st, factory, settings, comm, known, check=False))
    if shared is not None:
        shared.update({k: v for k, v in known.items() if not v[3] and k not in shared})
    setup, steps, warnings = ends_of.setup, ends_of.steps, ends_of.warnings
    endpoints = ends_of.endpoints
    if settings.relax_host:
        for w, a in zip(endpoints, ends_of.ends):
            w["framework"] = framework_change(setup.host, a, len(setup.host))
    t_end = time.perf_counter()
    band = initial_band(setup, ends_of.ends, factory, settings, comm)
    return optimise_attempt(band, settings, steps, warnings, t_end - t0, setup=setup,
                            hop=ends_of.hop, merged=ends_of.merged, endpoints=endpoints)


def optimise_attempt(band: NEB, settings: NEBSettings, steps: dict[str, int], warnings: list[str],
                     endpoint_seconds: float, **about: Any) -> _Attempt:
    """Optimise ``band`` (:func:`run_band`) and gather the attempt: steps, warnings, timings
    (``endpoint_seconds`` spent before) and ``about`` (set-up, hop, merged, endpoints)."""
    t0 = time.perf_counter()
    run = run_band(band, settings)
    steps.update(run.steps)
    if not run.pre_converged and not run.diverged:
        warnings.append(f"pre-relaxation did not reach fmax {settings.fmax_pre} in {steps['pre']} steps")
    t_band = time.perf_counter() - t0
    evals = sum(getattr(im.calc, "evaluations", 0) for im in band.images)
    return _Attempt(settings, band.images, run, steps, warnings,
                    {"endpoints": endpoint_seconds, "band": t_band, "total": endpoint_seconds + t_band,
                     "energy_force_calls": float(evals),
                     "batch_calls": float(getattr(band, "batch_calls", 0))},
                    mirror=getattr(band, "mirror_note", ""), **about)


def neb_hop(
    host: PreparedHost | Structure,
    ion: str | IonModel,
    hop: Hop,
    bvse: BVSEResult,
    calculator: str | CalculatorFactory | Callable[[], Calculator] = "bvff",
    settings: NEBSettings | None = None,
    comm: Any = None,
    oxidation_states: dict[str, float] | None = None,
    hop_index: int | None = None,
    known: dict[bool, dict[tuple, Relaxed]] | None = None,
) -> NEBResult:
    """CI-NEB of one BVSE hop. ``host``: a :class:`PreparedHost` or a Structure (then prepared
    here, with ``oxidation_states`` and the settings of ``bvse``). ``comm``: an mpi4py
    communicator to share the images over. ``known``: endpoints relaxed by earlier hops of
    this host with this calculator (per ``relax_host``), reused and filled.

    When the band diverges with the host relaxing (and ``fallback_fixed_host``), the hop is
    computed again with the host fixed, and the result says so."""
    settings = settings or NEBSettings()
    settings.validate()
    ion = ion_model(ion)
    check_ranks(settings.images, comm)
    host = as_prepared(host, ion, bvse.settings, oxidation_states)
    setup = HopSetup.from_hop(host, hop, bvse, settings)
    factory = choose_calculator(calculator, setup.with_ion(setup.start), ion,
                                derive_nitride=settings.derive_nitride)
    fallback = settings.relax_host and settings.fallback_fixed_host
    fell_back = ""
    for relax_host in ((True, False) if fallback else (settings.relax_host,)):
        attempt = _attempt(host, hop, bvse, factory, replace(settings, relax_host=relax_host), comm,
                           None if known is None else known.setdefault(relax_host, {}))
        if not (attempt.run.diverged and relax_host and fallback):
            break
        # the force field does not hold this host around the ion: redo the hop with the host fixed
        fell_back = (f"with the host relaxing, the band diverged (fmax {attempt.run.fmax_final:.1f} eV/Å "
                     f"after {sum(attempt.run.steps.values())} steps): this hop was computed with the "
                     "host fixed (only the ion moves)")
    result = hop_result(setup, hop, hop_index, factory, attempt)
    if fell_back:
        result.warnings.insert(0, fell_back)
        result.settings["fallback_from_relaxed_host"] = True
        result.flags.append(flag("fixed-host-fallback", fell_back))
    return result


def hop_result(setup: HopSetup, hop: Hop, hop_index: int | None, factory: CalculatorFactory,
               attempt: _Attempt) -> NEBResult:
    """The result of one hop from its band (the barrier only when the band converged).

    ``hop`` is the BVSE hop asked for; the band is ``attempt.hop`` (hops merged into one when
    a site was no minimum), its set-up ``attempt.setup``."""
    setup, band_hop = attempt.setup, attempt.hop
    return band_result(
        attempt, factory, setup.ion, mobile=len(setup.host),
        hop={
            "index": hop_index, "site_i": band_hop.site_i, "site_j": band_hop.site_j,
            "image": band_hop.image, "distinct": hop.distinct, "multiplicity": hop.multiplicity,
            "length": band_hop.length, "bvse_barrier": band_hop.barrier, "percolation": hop.percolation,
            "bvse_path_length": path_length(setup.grid_path).round(4).tolist(),
            "bvse_path_energy": setup.grid_energy.round(5).tolist(),
        },
        supercell=setup.supercell, ion_image_distance=setup.ion_distance)


def band_result(attempt: _Attempt, factory: CalculatorFactory, ion: IonModel, mobile: int,
                hop: dict[str, Any], supercell: list[int], ion_image_distance: float) -> NEBResult:
    """The result of a band whose moving ion is atom ``mobile`` (the barrier only when the band
    converged), with its flags; ``hop`` says which hop it is."""
    settings, run, images = attempt.settings, attempt.run, attempt.images
    e = np.array([im.get_potential_energy() for im in images])
    ion_path = np.array([im.positions[mobile] for im in images])
    e_rel = e - e.min()
    barrier = float(e_rel.max())
    fwd = float(e.max() - e[0])
    note = "barrier = highest image minus lowest image on the band"
    if abs(barrier - fwd) > 1e-3:
        note += f"; it differs from highest minus initial endpoint ({fwd:.3f} eV)"
    if attempt.mirror:
        note += f"; {attempt.mirror}"
    if run.converged:
        status = "converged"
    elif run.diverged:
        status = f"not converged: the band diverged (fmax {run.fmax_final:.1f} eV/Å)"
    else:
        status = (f"not converged: fmax {run.fmax_final:.3f} > {settings.fmax} eV/Å after "
                  f"{settings.steps} steps")
    return NEBResult(
        formula=images[0].get_chemical_formula(mode="reduce"),
        ion=ion.label(),
        calculator=factory.identity,
        tier=factory.tier,
        method=f"CI-NEB ({settings.method} tangent, {settings.optimizer}; pre-relaxed to "
               f"{settings.fmax_pre} eV/Å without climbing)",
        converged=run.converged,
        barrier=barrier if run.converged else None,
        barrier_forward=fwd,
        barrier_reverse=float(e.max() - e[-1]),
        energies=e_rel.round(6).tolist(),
        reaction_coordinate=path_length(ion_path).round(5).tolist(),
        ion_path=ion_path.round(5).tolist(),
        steps=attempt.steps,
        fmax_final=run.fmax_final,
        hop=hop,
        supercell=supercell,
        n_atoms=len(images[0]),
        ion_image_distance=ion_image_distance,
        settings={**settings.as_dict(), "half_band_used": bool(attempt.mirror)},
        timings=attempt.timings,
        status=status,
        note=note + (f". {factory.note}" if factory.note else ""),
        warnings=attempt.warnings,
        images=images,
        approximate=factory.approximate,
        flags=_flags(attempt, ion, e_rel, path_length(ion_path),
                     barrier if run.converged else None, status, ml=factory.tier == "MLIP"),
        endpoints=attempt.endpoints,
        merged=attempt.merged,
    )


def _flags(attempt: _Attempt, ion: IonModel, e_rel: np.ndarray, s: np.ndarray,
           barrier: float | None, status: str, ml: bool = True) -> list[dict[str, Any]]:
    """The flags of one band (:mod:`.flags`); ``ml``: an ML potential's band (a no-saddle
    band of any other tier is refused whatever its height, see :func:`.flags.noise_flag`)."""
    out: list[dict[str, Any] | None] = []
    if barrier is None:
        out.append(flag("not-converged", status))
    else:
        out += [noise_flag(e_rel, s, attempt.settings.fmax, ranked=ml),
                floor_flag(barrier, ion.charge, ion.label())]
    if attempt.merged:
        joined = " + ".join(f"{h['site_i']}->{h['site_j']}" for h in attempt.merged["hops"])
        out.append(flag("merged-hops", f"the band joins the BVSE hops {joined}: {attempt.merged['reason']}"))
    moved = [(f"{w['end']} endpoint moved {w['moved']:.2f} Å from BVSE site {w['bvse_site']} to "
              f"{w['relaxed_to']['text']}") if w.get("bvse_site") is not None else
             (f"{w['end']} endpoint: the ion moved {w['moved']:.2f} Å from its given position, "
              f"{w['relaxed_to']['text']}")
             for w in attempt.endpoints if w["left_site"] or w["moved"] > _MOVED]
    if moved:
        out.append(flag("endpoint-moved", "; ".join(moved)))
    out.append(framework_flag([(w["end"], w["framework"]) for w in attempt.endpoints if "framework" in w]))
    return [f for f in out if f is not None]
