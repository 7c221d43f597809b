"""NEB between two given endpoints (``ionscreen neb --endpoints A.vasp B.vasp``): the same
cell, the same atoms in the same order, one ion of the working ion's element moved. Both
endpoints are relaxed with the calculator, the band is laid by IDPP (or linearly) and
optimised as a host-alone NEB is (:func:`~.band.run_band`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.constraints import FixAtoms
from ase.geometry import find_mic
from ase.mep import NEB
from pymatgen.core import Structure

from ionscreen.errors import IonscreenError, StructureValidationError
from ionscreen.kernels.cells import perpendicular_heights
from ionscreen.structures.convert import to_atoms
from ionscreen.structures.oxidation import assign_oxidation_states

from ..calculators import CalculatorFactory
from ..ion_models import IonModel, ion_model
from ..relax import relax
from .band import _MOVED, band_result, optimise_attempt
from .flags import flag, framework_change
from .mirror import Mirror, best, find_mirrors
from .parallel import _CachedCalculator, check_ranks, force_calculator, make_band
from .results import NEBResult
from .settings import MergedEndpointsError, NEBSettings, is_bvff
from .setup import choose_calculator

#: relative tolerance on the two endpoints' cells (a NEB has one cell)
_CELL_RTOL = 1e-3


def moving_ion(initial: Structure, final: Structure, ion: IonModel,
               mobile_index: int | None = None) -> tuple[int, np.ndarray]:
    """The index of the ion that moves between ``initial`` and ``final`` (the working ion's
    atom with the largest minimum-image displacement, or ``mobile_index``) and the
    minimum-image displacement of every atom (Cartesian, Å).

    Raises :class:`StructureValidationError` naming what differs when the two are not two
    endpoints of one hop (other cells, other atoms or order, no ion of the element)."""
    if len(initial) != len(final):
        raise StructureValidationError(
            f"the endpoints have {len(initial)} and {len(final)} atoms: a NEB needs the same "
            "atoms in both (the moving ion at another site)")
    si = [s.specie.symbol for s in initial]
    sf = [s.specie.symbol for s in final]
    if si != sf:
        k = next(i for i, (a, b) in enumerate(zip(si, sf)) if a != b)
        raise StructureValidationError(
            f"atom {k} is {si[k]} in the initial endpoint and {sf[k]} in the final one: write "
            "both endpoints with the atoms in the same order")
    a, b = initial.lattice.matrix, final.lattice.matrix
    if not np.allclose(a, b, rtol=_CELL_RTOL, atol=_CELL_RTOL * np.abs(a).max()):
        raise StructureValidationError(
            "the endpoints have different cells (a NEB runs in one cell): "
            f"{initial.lattice.abc} vs {final.lattice.abc} Å")
    if ion.ion.molecular:
        raise IonscreenError(f"{ion.label()} is molecular: a NEB between given endpoints moves one atom")
    d, _ = find_mic(final.cart_coords - initial.cart_coords, a, pbc=True)
    candidates = [i for i, s in enumerate(si) if s == ion.element]
    if mobile_index is not None:
        if not 0 <= mobile_index < len(si) or si[mobile_index] != ion.element:
            raise IonscreenError(
                f"mobile index {mobile_index} is not a {ion.element} atom of the endpoints "
                f"({ion.element} atoms: {candidates[:20]})")
        return mobile_index, d
    if not candidates:
        raise StructureValidationError(
            f"the endpoints contain no {ion.element}: put the moving {ion.label()} in both")
    k = max(candidates, key=lambda i: float(np.linalg.norm(d[i])))
    return k, d


def endpoint_atoms(initial: Structure, ion: IonModel, mobile: int, displacement: np.ndarray,
                   charges: bool, oxidation_states: dict[str, float] | None = None,
                   ) -> tuple[Atoms, Atoms]:
    """Both endpoints as Atoms in the initial cell, the final one unwrapped (initial positions
    plus the minimum-image displacement, so that a band interpolates without wrapping), the
    moving ion tagged and last (as in a host-alone NEB; the host keeps its order). ``charges`` (the BVFF needs them) sets the host's oxidation states
    (``oxidation_states``, else assigned by the usual rule to the host without the moving
    ion, as a host-alone NEB does) and the ion's charge."""
    order = [i for i in range(len(initial)) if i != mobile] + [mobile]
    a = to_atoms(initial, mobile=[mobile])[order]
    if charges:
        host = initial.copy()
        host.remove_sites([mobile])
        decorated = assign_oxidation_states(host, oxidation_states)
        q = [float(getattr(site.specie, "oxi_state", 0.0) or 0.0) for site in decorated]
        a.set_initial_charges([*q, float(ion.charge)])
    b = a.copy()
    b.positions = a.positions + displacement[order]
    return a, b


def _where(a: Atoms, mobile: int, other: np.ndarray, other_name: str) -> dict[str, Any]:
    """Where the ion of relaxed endpoint ``a`` is: fractional coordinates and how far (minimum
    image) from the other endpoint's given ion position ``other`` (near it: one minimum)."""
    frac = a.cell.scaled_positions(a.positions[mobile:mobile + 1])[0] % 1.0
    to_other = float(find_mic((other - a.positions[mobile])[None], a.cell, pbc=True)[1][0])
    xyz = ", ".join(f"{x:.3f}" for x in frac)
    return {"frac": [round(float(x), 4) for x in frac], "to_other_end": round(to_other, 4),
            "text": f"to ({xyz}) fractional, {to_other:.2f} Å from the {other_name} "
                    "endpoint's given ion position"}


def _relax_ends(ends: list[Atoms], factory: CalculatorFactory, settings: NEBSettings,
                mobile: int, mirror: Mirror | None = None,
                ) -> tuple[dict[str, int], list[str], list[dict[str, Any]]]:
    """Relax both endpoints in place (with a ``mirror``, the initial one, the final one being
    its image): steps, warnings, and per endpoint how far the ion moved from its given
    position and whether the host framework changed (:mod:`.flags`)."""
    steps: dict[str, int] = {}
    warnings: list[str] = []
    info: list[dict[str, Any]] = []
    given = [a.positions[mobile].copy() for a in ends]
    for k, (name, a) in enumerate(zip(("initial", "final"), ends)):
        start = given[k]
        before = a.copy()
        if not settings.relax_host:
            a.set_constraint(FixAtoms(indices=[i for i in range(len(a)) if i != mobile]))
        if k == 1 and mirror is not None:  # as relaxed as the initial one, of which it is the image
            a.positions = mirror.apply(ends[0].positions, near=a.positions)
            n = 0
        else:
            _, ok, n = relax(a, force_calculator(factory), fmax=settings.fmax_endpoints,
                             steps=settings.steps, optimizer=settings.endpoint_optimizer,
                             in_place=True, wrap_errors=False)
        steps[f"relax_{name}"] = n
        moved = float(np.linalg.norm(a.positions[mobile] - start))
        if not ok and n:
            warnings.append(f"{name} endpoint not relaxed to fmax {settings.fmax_endpoints} in {n} steps")
        went = _where(a, mobile, given[1 - k], "final" if k == 0 else "initial")
        if moved > _MOVED:
            warnings.append(f"{name} endpoint: the ion moved {moved:.2f} Å from its given "
                            f"position on relaxing, {went['text']}")
        w = {"end": name, "moved": round(moved, 4), "left_site": moved > _MOVED, "bvse_site": None,
             "relaxed_to": went, "image_of_initial": k == 1 and mirror is not None}
        if settings.relax_host:
            w["framework"] = framework_change(before, a, mobile)
        info.append(w)
    return steps, warnings, info


def _choose_mirror(ends: list[Atoms], settings: NEBSettings, mobile: int,
                   ) -> tuple[Mirror | None, int]:
    """The operation of the host that swaps the two given endpoints and maps their band (laid
    as the NEB will lay it, ``settings.path``, between the unrelaxed endpoints) most closely
    onto its reverse, and how many swap them; (None, n) when the mirror is off, the image
    count even, or no operation maps the band onto its reverse (:mod:`.mirror`)."""
    if not settings.mirror or settings.images % 2 == 0:
        return None, 0
    found = find_mirrors(ends[0], ends[1], mobile)
    if not found:
        return None, 0
    images = [ends[0].copy(), *(ends[0].copy() for _ in range(settings.images)), ends[1].copy()]
    for im in images:
        im.set_constraint()
    band = NEB(images, method=settings.method)
    band.interpolate(method=settings.path, mic=False, apply_constraint=False)
    return best(found, [im.positions for im in images]), len(found)


def neb_between(
    initial: Structure,
    final: Structure,
    ion: str | IonModel,
    calculator: str | CalculatorFactory | Callable[[], Calculator] = "chgnet",
    settings: NEBSettings | None = None,
    mobile_index: int | None = None,
    comm: Any = None,
    oxidation_states: dict[str, float] | None = None,
) -> NEBResult:
    """CI-NEB of one ion between two given endpoints (Structures in one cell, same atoms,
    same order): relaxed, IDPP band (``settings.path`` "linear" for a linear one; "bvse",
    the host-alone default, has no grid path here and means IDPP), the two-stage optimisation
    of :func:`~.band.run_band`. ``oxidation_states`` (element -> state) are the host's, for
    the BVFF (else assigned). Without ``settings``: ``NEBSettings()`` for the BVFF,
    :meth:`NEBSettings.for_ml` for an ML potential. The result's ``hop`` holds the moving
    atom's index and how far it moved; its barrier is None unless the band converged.

    Raises :class:`MergedEndpointsError` when both endpoints relax into one minimum."""
    bvff = is_bvff(calculator)
    settings = settings or NEBSettings.for_calculator(calculator)
    if settings.path == "bvse":
        settings = replace(settings, path="idpp")
    settings.validate()
    ion = ion_model(ion)
    check_ranks(settings.images, comm)
    mobile, disp = moving_ion(initial, final, ion, mobile_index)
    hop_length = float(np.linalg.norm(disp[mobile]))
    if hop_length < settings.min_endpoint_distance:
        raise IonscreenError(
            f"the moving {ion.label()} (atom {mobile}) is {hop_length:.2f} Å from its initial "
            f"position in the final endpoint (< {settings.min_endpoint_distance} Å): no hop")
    # the BVFF needs charges (by name or as a factory); an ML potential needs none
    ends = list(endpoint_atoms(initial, ion, mobile, disp, charges=bvff,
                               oxidation_states=oxidation_states))
    given, mobile = mobile, len(initial) - 1  # the moving ion is last from here on
    factory = choose_calculator(calculator, ends[0], ion, derive_nitride=settings.derive_nitride)
    t0 = time.perf_counter()
    mirror, n_ops = _choose_mirror(ends, settings, mobile)
    steps, warnings, ends_info = _relax_ends(ends, factory, settings, mobile, mirror)
    sep = float(np.linalg.norm(ends[1].positions[mobile] - ends[0].positions[mobile]))
    if sep < settings.min_endpoint_distance:
        where = "; ".join(f"the {w['end']} ion moved {w['moved']:.2f} Å, "
                          f"{w['relaxed_to']['text']}" for w in ends_info)
        raise MergedEndpointsError(
            f"after relaxation both endpoints hold the ion within {sep:.2f} Å of each other: "
            f"for this calculator the two positions are one minimum ({where}). Give endpoints "
            "on two distinct minima of this calculator (relax each alone and check where the "
            "ion stays)")
    t_end = time.perf_counter()
    n = settings.images + 2
    fallback = settings.relax_host and settings.fallback_fixed_host
    fell_back = ""
    for relax_host in ((True, False) if fallback else (settings.relax_host,)):
        attempt = _band(ends, factory, replace(settings, relax_host=relax_host), mobile, comm,
                        dict(steps), list(warnings), t_end - t0, ends_info, mirror, n_ops)
        if not (attempt.run.diverged and relax_host and fallback):
            break
        # as run_neb does: the potential does not hold this host around the moving ion
        fell_back = (f"with the host relaxing, the band diverged (fmax {attempt.run.fmax_final:.1f} "
                     f"eV/Å after {sum(attempt.run.steps.values())} steps): the band was computed "
                     "again with the host fixed (only the ion moves between the relaxed endpoints)")
    hop = {"index": None, "given_endpoints": True, "mobile_atom": given, "length": hop_length,
           "moved_on_relaxing": {w["end"]: w["moved"] for w in ends_info}, "images": n,
           "note": "the band's atoms are the endpoints' with the moving atom put last"}
    result = band_result(attempt, factory, ion, mobile, hop, supercell=[1, 1, 1],
                         ion_image_distance=float(min(perpendicular_heights(ends[0].cell.array))))
    if fell_back:
        result.warnings.insert(0, fell_back)
        result.settings["fallback_from_relaxed_host"] = True
        result.flags.append(flag("fixed-host-fallback", fell_back))
    return result


def _band(ends: list[Atoms], factory: CalculatorFactory, settings: NEBSettings, mobile: int,
          comm: Any, steps: dict[str, int], warnings: list[str], t_ends: float,
          ends_info: list[dict[str, Any]], mirror: Mirror | None = None, n_ops: int = 0) -> Any:
    """The band between the relaxed ``ends`` (copies: a retry starts from the same endpoints),
    interpolated and optimised (:func:`~.band.optimise_attempt`)."""
    images = [ends[0].copy(), *(ends[0].copy() for _ in range(settings.images)), ends[1].copy()]
    for im in images:
        im.set_constraint()
        im.calc = _CachedCalculator(force_calculator(factory))
        if not settings.relax_host:
            im.set_constraint(FixAtoms(indices=[i for i in range(len(im)) if i != mobile]))
    band = make_band(images, comm, batch=factory.batch, mirror=mirror, mirror_candidates=n_ops,
                     k=settings.spring, climb=False, method=settings.method)
    band.interpolate(method=settings.path, mic=False, apply_constraint=False)
    return optimise_attempt(band, settings, steps, warnings, t_ends, endpoints=ends_info)


__all__ = ["endpoint_atoms", "moving_ion", "neb_between"]
