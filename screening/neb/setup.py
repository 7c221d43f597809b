"""The set-up of one hop: the supercell, the host atoms and the ion's two endpoints and BVSE
grid path, in the supercell frame (:class:`HopSetup`); the host prepared once
(:func:`as_prepared`) and the calculator factory (:func:`choose_calculator`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.geometry import find_mic
from pymatgen.core import Structure

from ionscreen.errors import CalculationError, IonscreenError, StructureValidationError
from ionscreen.kernels.cells import perpendicular_heights
from ionscreen.structures.convert import MOBILE_TAG, to_atoms

from ..bvse import BVSEResult, BVSESettings, Hop, PreparedHost, prepare_host
from ..calculators import CalculatorFactory, bvff_factory, mobile_symbol
from ..ion_models import IonModel
from .mirror import Mirror, best, find_mirrors
from .settings import NEBSettings

# a host ion this close (Å) to the start site of a dilute-vacancy hop is the one that moves
_ON_SITE = 0.7


def supercell_for(lattice: np.ndarray, min_distance: float) -> list[int]:
    """Smallest diagonal repetition whose perpendicular heights are all >= ``min_distance``.

    Heights bound the distance between periodic images from below, so images of one ion are
    at least that far apart.
    """
    h = perpendicular_heights(np.asarray(lattice, dtype=float))
    return [max(1, math.ceil(min_distance / x - 1e-9)) for x in h]


def path_length(points: np.ndarray) -> np.ndarray:
    """Cumulative length along a polyline (0 at the first point)."""
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])


def resample(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points at equal arc length along a polyline (ends included)."""
    s = path_length(points)
    if s[-1] <= 0:
        return np.repeat(points[:1], n, axis=0)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, points[:, d]) for d in range(3)], axis=1)


def _mic_dist(points: np.ndarray, x: np.ndarray, cell) -> np.ndarray:
    _, d = find_mic(points - x[None, :], cell, pbc=True)
    return np.atleast_1d(d)


@dataclass
class HopSetup:
    """One hop in its supercell: the host atoms (no moving ion) and where the ion goes."""

    ion: IonModel
    host: Atoms  # supercell host (with the other ions in the vacancy limit), no moving ion
    start: np.ndarray  # Cartesian start of the moving ion (supercell frame)
    end: np.ndarray
    grid_path: np.ndarray  # Cartesian BVSE grid path
    grid_energy: np.ndarray
    supercell: list[int]
    ion_distance: float  # Å, smallest distance between periodic images of the moving ion
    mirror: Mirror | None = None  # an operation of the host mapping the hop onto its reverse
    mirror_candidates: int = 0  # how many swapped the endpoints (mirror maps the path best)

    @classmethod
    def from_hop(cls, host: PreparedHost, hop: Hop, bvse: BVSEResult, settings: NEBSettings) -> HopSetup:
        """The supercell of ``host`` for ``hop`` of ``bvse`` (computed for the same cell).

        Raises :class:`StructureValidationError` for a BVSE result of another cell or a
        dilute-vacancy hop without ions on its sites, :class:`CalculationError` for a hop
        without a grid path or with too-close endpoints."""
        lattice = host.framework.lattice.matrix
        if not np.allclose(lattice, np.array(bvse.lattice), atol=1e-6):
            raise StructureValidationError("the BVSE result was computed for another cell than this structure")
        sc = supercell_for(lattice, settings.min_image_distance)
        path = np.array(hop.path_frac, dtype=float) @ lattice
        if len(path) < 2:
            raise CalculationError(f"hop {hop.site_i}->{hop.site_j} has no grid path to start from")
        start, end = path[0], path[-1]
        if np.linalg.norm(end - start) < settings.min_endpoint_distance:
            raise CalculationError(
                f"the endpoints of hop {hop.site_i}->{hop.site_j} are {np.linalg.norm(end - start):.2f} Å "
                f"apart (< {settings.min_endpoint_distance} Å): identical or too-close endpoints make no NEB")
        # the path starts in cell 0 and the supercell is large enough to hold it
        if settings.limit == "dilute-ion":
            atoms = _supercell_atoms(host.framework, sc)
        else:
            atoms = _one_vacancy(host, sc, start, end)
        setup = cls(host.ion, atoms, start, end, path, np.array(hop.path_energy, dtype=float), sc,
                    float(min(perpendicular_heights(atoms.cell.array))))
        if settings.mirror and settings.images % 2:  # the operation mapping the BVSE path best
            a, b = setup.with_ion(start), setup.with_ion(end)
            ion = resample(path, settings.images + 2)  # as initial_band lays it
            band = [a.positions.copy() for _ in ion]
            for p, x in zip(band, ion):
                p[-1] = x
            found = find_mirrors(a, b, len(atoms))
            setup.mirror, setup.mirror_candidates = best(found, band), len(found)
        return setup

    def with_ion(self, pos: np.ndarray) -> Atoms:
        """The host with the moving ion (tagged mobile) appended at ``pos``: it is the last atom."""
        a = self.host.copy()
        extra = Atoms(mobile_symbol(self.ion), positions=[pos], cell=self.host.cell, pbc=True)
        extra.set_initial_charges([float(self.ion.charge)])
        extra.set_tags([MOBILE_TAG])
        a += extra
        return a


def _supercell_atoms(structure: Structure, sc: list[int]) -> Atoms:
    """Atoms of the ``sc`` supercell, oxidation states (already on the sites) as charges."""
    big = structure.copy()
    big.make_supercell(sc)
    return to_atoms(big, charges=True)


def _one_vacancy(host: PreparedHost, sc: list[int], start: np.ndarray, end: np.ndarray) -> Atoms:
    """The full host's supercell without the ion on the start site (it is the one that moves)
    and without the ion on the destination site: the dilute-vacancy limit."""
    ion, base = host.ion, host.structure
    if ion.ion.molecular:
        raise StructureValidationError(
            f"the dilute-vacancy limit moves one atom of the host; {ion.label()} is molecular "
            "(its N and H would have to move together): use the dilute-ion limit")
    # the one rule for which atoms are the ion (role tags keep a polymer's node metal fixed)
    mobile = ion.mobile_sites(base)
    if not mobile:
        raise StructureValidationError(
            f"the dilute-vacancy limit needs a structure that contains {ion.label()} ions "
            f"({base.composition.reduced_formula} has none); use the dilute-ion limit")
    big = base.copy()
    big.add_site_property("mobile", [i in set(mobile) for i in range(len(base))])
    big.make_supercell(sc)
    atoms = to_atoms(big, charges=True)
    ions = np.flatnonzero(big.site_properties["mobile"])
    d_start = _mic_dist(atoms.positions[ions], start, atoms.cell)
    d_end = _mic_dist(atoms.positions[ions], end, atoms.cell)
    if d_start.min() > _ON_SITE:
        raise StructureValidationError(
            f"no {ion.label()} within {_ON_SITE} Å of the start site of the hop; the dilute-vacancy "
            "limit needs the ions on their BVSE sites (use the dilute-ion limit)")
    mover = int(ions[np.argmin(d_start)])
    # one vacancy: the ion on the destination site, or (when the hop ends on an empty
    # intermediate site) the ion nearest to it, the next site along the path
    d_end[ions == mover] = np.inf
    drop = {mover, int(ions[np.argmin(d_end)])}
    tags = np.zeros(len(atoms), int)
    tags[ions] = MOBILE_TAG
    keep = [i for i in range(len(atoms)) if i not in drop]
    atoms = atoms[keep]
    atoms.set_tags(tags[keep])
    return atoms


def as_prepared(host: PreparedHost | Structure, ion: IonModel, settings: BVSESettings,
                oxidation_states: dict[str, float] | None = None) -> PreparedHost:
    """``host`` itself when it is prepared (for ``ion``), else the structure prepared once with
    ``settings`` and ``oxidation_states`` (:func:`~ionscreen.screening.bvse.prepare_host`)."""
    if isinstance(host, PreparedHost):
        if host.ion.name != ion.name:
            raise IonscreenError(f"this host was prepared for {host.ion.label()}, not {ion.label()}; "
                                 f"prepare it with prepare_host(structure, {ion.name!r})")
        return host
    return prepare_host(host, ion, settings, oxidation_states)


def choose_calculator(spec: str | CalculatorFactory | Callable[[], Calculator], template: Atoms | None,
                      ion: IonModel, threads: int = 1, derive_nitride: bool = False) -> CalculatorFactory:
    """The factory of one calculator per image: ``"bvff"`` (built for the species of
    ``template``), an ML potential (``"chgnet"``...), ``"module:Class"``, a
    :class:`CalculatorFactory` (returned as it is) or any zero-argument callable.

    ``derive_nitride`` applies to the BVFF only (an ML potential needs no pair rows)."""
    if isinstance(spec, CalculatorFactory):
        return spec
    if callable(spec):
        return CalculatorFactory(spec=repr(spec), identity=getattr(spec, "identity", repr(spec)),
                                 tier=getattr(spec, "tier", "ASE calculator"), _make=spec)
    if spec.lower() == "bvff":
        return bvff_factory(template, ion, derive_nitride=derive_nitride)
    if ion.name == "NH4":
        raise IonscreenError(
            "NH4+ is modelled as a single pseudo-atom, which only the BVFF understands; use "
            "--calculator bvff for NH4 (an ML NEB would need the explicit N–H molecule)")
    from ..mlip import calculator_factory

    return calculator_factory(spec, threads=threads)
