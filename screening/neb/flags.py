"""What can be wrong with a NEB barrier that converged: structured flags (``{"code", "text"}``).

Codes (:data:`CODES`):

``noise``
    The band is flat within its noise. With a force tolerance ``fmax`` the optimiser cannot
    tell a profile whose force along the path never exceeds ``fmax`` from a flat one; along a
    path of length ``L`` between two minima such a profile rises at most ``fmax · L / 2`` (up
    at slope ``fmax`` for half the path, down for the other half). So a band is noise when no
    inner image rises more than ``NOISE_K · fmax · L`` (:data:`NOISE_K` = 0.5) above the
    lowest image on each side of it and the whole band spans no more than that: a barrier of
    that order, or a band of wiggles.
``no-saddle``
    No inner image rises above the noise on both sides, but the band spans more than the
    noise: its highest point is an endpoint (or a plateau next to one), so the "barrier" is the
    energy difference between the two sites, or the way out of an inner minimum deeper than
    both endpoints. That is a lower bound of the hop's barrier on that potential: it can show
    an ion slow, never fast, so an ML potential's is refused (the flag's ``refuses``) below
    :data:`NO_SADDLE_RANKED` and ranked, flagged, above it; another tier's (the BVFF, whose
    site energies are not trusted that far) is always refused.
``below-floor``
    The barrier is below :data:`FLOORS` for the ion's charge (see there).
``endpoint-moved``
    An endpoint relaxed away from its BVSE site (the result's ``endpoints`` say where to).
``framework-changed``
    A relaxed endpoint changed the host framework: a framework cation lost or gained an anion
    neighbour, or a host atom moved more than :data:`FRAMEWORK_MOVED`.
``merged-hops``
    The band joins consecutive BVSE hops (a BVSE site is no minimum for the calculator).
``fixed-host-fallback``
    The host was kept fixed although a relaxing host was asked for.
``not-converged``
    The band did not converge: no barrier.

``noise`` and ``below-floor`` (:data:`REFUSED`), and ``no-saddle`` below
:data:`NO_SADDLE_RANKED` (:func:`refuses`), make a barrier unfit to rank a host as a fast
conductor; the others say how to read it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.geometry import find_mic, get_distances

from ionscreen.screening.thresholds import NANO
from ionscreen.structures.convert import MOBILE_TAG

CODES = ("noise", "below-floor", "no-saddle", "endpoint-moved", "framework-changed",
         "merged-hops", "fixed-host-fallback", "not-converged")
#: flags that keep a barrier from being ranked as a fast conductor
REFUSED = ("noise", "below-floor")
#: eV: a ``no-saddle`` barrier (a lower bound) below this cannot tell a mobile ion from an
#: immobile one and is refused; above it the ion is slow on this potential either way (it is
#: then classed by barrier ± uncertainty like any other barrier; the nano-particle
#: threshold of Rong et al., Chem. Mater. 2015: :data:`ionscreen.screening.thresholds.NANO`)
NO_SADDLE_RANKED = NANO

#: noise threshold: a band is noise unless one maximum rises more than NOISE_K · fmax · L
NOISE_K = 0.5

#: Barrier floor (eV) by the ion's charge z: 0.05 + 0.10 (z - 1), about half the lowest
#: barriers that DFT-NEB finds for that charge in well-studied hosts. 1+: about 0.2 eV for the
#: fastest Li+ conductors (Li10GeP2S12, Mo, Ong & Ceder, Chem. Mater. 2012), some single Li+
#: hops in bcc-anion frameworks near 0.1 eV, hence a low 0.05 eV. 2+: about 0.35–0.4 eV at
#: best (Mg2+ in the chalcogenide spinels MgSc2Se4/MgSc2S4, Canepa et al., Nat. Commun. 2017;
#: Mg/Ca/Zn in spinel, olivine, layered and delta-V2O5 hosts, Rong et al., Chem. Mater. 2015),
#: hence 0.15 eV. 3+: Al3+ barriers in the same hosts are rarely below 0.5 eV, hence 0.25 eV.
#: The electrostatic part of a barrier grows with the charge. A barrier below the floor is
#: far likelier a softened ML potential (universal potentials underestimate barriers), two
#: split sites or a band that missed the saddle than a discovery: it is flagged, not ranked.
FLOORS = {1: 0.05, 2: 0.15, 3: 0.25}

#: a host atom moving farther than this (Å) on relaxing an endpoint changed the framework
FRAMEWORK_MOVED = 1.0
#: a cation–anion bond is one within BOND_FACTOR × the cation's shortest anion distance in
#: the unrelaxed host; it breaks (forms) when it ends beyond (within) that cutoff by a
#: further factor BOND_HYSTERESIS, so that a bond at the cutoff does not flip on a small move
BOND_FACTOR = 1.25
BOND_HYSTERESIS = 1.1


def flag(code: str, text: str, refuses: bool | None = None) -> dict[str, Any]:
    """One flag; ``code`` must be one of :data:`CODES`. ``refuses`` is given for a flag whose
    refusal depends on the barrier (``no-saddle``)."""
    if code not in CODES:
        raise ValueError(f"unknown NEB flag {code!r}; known: {', '.join(CODES)}")
    return {"code": code, "text": text} | ({} if refuses is None else {"refuses": bool(refuses)})


def refuses(f: dict[str, Any] | str, barrier: float | None = None) -> bool:
    """Whether flag ``f`` (a flag, or its code with the band's ``barrier``) keeps the barrier
    from being ranked: :data:`REFUSED`, and ``no-saddle`` below :data:`NO_SADDLE_RANKED`."""
    code = f if isinstance(f, str) else f.get("code")
    if code in REFUSED:
        return True
    if code != "no-saddle":
        return False
    if not isinstance(f, str) and "refuses" in f:
        return bool(f["refuses"])
    return barrier is None or barrier < NO_SADDLE_RANKED


def floor_for(charge: float) -> float:
    """The barrier floor (eV) of an ion of this charge (:data:`FLOORS`, 0.05 + 0.10 (z - 1))."""
    z = max(1, round(abs(charge)))
    return FLOORS.get(z, round(0.05 + 0.10 * (z - 1), 2))


def noise_flag(energies: np.ndarray, path: np.ndarray, fmax: float,
               ranked: bool = True) -> dict[str, Any] | None:
    """The ``noise`` or ``no-saddle`` flag of a band (energies per image, cumulative ion path
    length in Å), or None when one inner image rises more than NOISE_K · fmax · L above the
    lowest image on each side of it (a saddle). ``ranked=False`` refuses a no-saddle band at
    any height: the BVFF's site energies are not trusted that far (on the held-out DFT-NEB
    paths 13 of its 15 no-saddle bands lay above DFT, 4 of them for DFT barriers < 0.65 eV)."""
    e = np.asarray(energies, dtype=float)
    length = float(path[-1]) if len(path) else 0.0
    delta = NOISE_K * fmax * length
    rise = max((e[k] - max(e[:k].min(), e[k + 1:].min()) for k in range(1, len(e) - 1)),
               default=0.0)
    if rise > delta:
        return None
    barrier = float(e.max() - e.min())
    where = "an endpoint" if int(np.argmax(e)) in (0, len(e) - 1) else "an inner image"
    noise = (f"the largest rise of an inner image is {rise:.3f} eV <= {NOISE_K} x fmax {fmax} eV/Å x "
             f"path {length:.2f} Å = {delta:.3f} eV")
    if barrier <= delta:
        return flag("noise", f"the band is flat within its noise: {noise} and the band spans "
                             f"{barrier:.3f} eV")
    low = barrier < NO_SADDLE_RANKED
    why = ("not ranked for this tier (its site energies are not trusted that far)" if not ranked
           else f"below {NO_SADDLE_RANKED} eV it cannot tell a mobile ion, not ranked" if low
           else f"at least {NO_SADDLE_RANKED} eV, the ion is slow on this potential either way")
    return flag("no-saddle", f"no saddle: {noise}, and the highest point is at {where}, so the "
                             f"barrier {barrier:.3f} eV is an energy difference between sites (or "
                             f"out of an inner minimum), a lower bound of the hop's barrier on "
                             f"this potential: {why}", refuses=low or not ranked)


def floor_flag(barrier: float | None, charge: float, label: str) -> dict[str, str] | None:
    """The ``below-floor`` flag of a barrier of ion ``label`` (charge ``charge``), or None."""
    if barrier is None:
        return None
    floor = floor_for(charge)
    if barrier >= floor:
        return None
    return flag("below-floor", f"barrier {barrier:.3f} eV below the floor {floor:.2f} eV for "
                               f"{label} (charge {round(abs(charge))}+): likelier an artefact than a "
                               "fast conductor")


def _framework(atoms: Atoms, n_host: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the framework cations and anions (charges; stored mobile ions left out)."""
    q = atoms.get_initial_charges()[:n_host]
    tags = atoms.get_tags()[:n_host]
    idx = np.arange(n_host)
    fixed = tags != MOBILE_TAG
    return idx[(q > 0) & fixed], idx[(q < 0) & fixed]


def framework_change(before: Atoms, after: Atoms, n_host: int) -> dict[str, Any]:
    """How the host of a relaxed endpoint differs from the unrelaxed host (the first
    ``n_host`` atoms): the largest host displacement (Å, mean drift removed) and the
    cation–anion bonds broken or formed; ``changed`` says whether the framework changed."""
    vec, _ = find_mic(after.positions[:n_host] - before.positions[:n_host], before.cell, pbc=True)
    vec = vec - vec.mean(axis=0)
    moved = float(np.linalg.norm(vec, axis=1).max()) if n_host else 0.0
    cat, an = _framework(before, n_host)
    broken, formed = [], []
    if len(cat) and len(an):
        _, d0 = get_distances(before.positions[cat], before.positions[an], cell=before.cell, pbc=True)
        _, d1 = get_distances(after.positions[cat], after.positions[an], cell=after.cell, pbc=True)
        cut = BOND_FACTOR * d0.min(axis=1, keepdims=True)
        for c, a in zip(*np.nonzero((d0 <= cut) & (d1 > cut * BOND_HYSTERESIS))):
            broken.append([int(cat[c]), int(an[a])])
        for c, a in zip(*np.nonzero((d0 > cut) & (d1 < cut / BOND_HYSTERESIS))):
            formed.append([int(cat[c]), int(an[a])])
    changed = bool(broken or formed or moved > FRAMEWORK_MOVED)
    return {"max_host_displacement": round(moved, 4), "bonds_broken": broken, "bonds_formed": formed,
            "changed": changed}


def framework_flag(changes: list[tuple[str, dict[str, Any]]]) -> dict[str, str] | None:
    """The ``framework-changed`` flag from (endpoint name, :func:`framework_change`) pairs."""
    parts = []
    for name, c in changes:
        if not c.get("changed"):
            continue
        what = [f"largest host displacement {c['max_host_displacement']:.2f} Å"]
        if c["bonds_broken"]:
            what.append(f"{len(c['bonds_broken'])} cation–anion bond(s) broken")
        if c["bonds_formed"]:
            what.append(f"{len(c['bonds_formed'])} formed")
        parts.append(f"{name} endpoint: {', '.join(what)}")
    if not parts:
        return None
    return flag("framework-changed", "the relaxed host changed its framework (" + "; ".join(parts) + ")")
