"""Sustainability descriptors of a host composition: supply concentration (HHI), crustal
abundance, toxic and critical elements, and one combined score.

What each number is
-------------------
``hhi_production``, ``hhi_reserve``
    Herfindahl–Hirschman index (0–10 000; higher = supply more concentrated in few countries)
    of the element's production and of its known reserves, from pymatgen's
    :class:`pymatgen.analysis.hhi.HHIModel` table (Gaultois et al., *Chem. Mater.* 25 (2013)
    2911). The compound value is the **weight-fraction-weighted mean** of the element values,
    exactly what ``HHIModel().get_hhi(composition)`` computes. pymatgen has no value for some
    elements (notably H); elements without a value are left out and the mean is taken over the
    rest, renormalised, when they make up at most 5 % of the mass (``hhi_coverage`` is the
    mass fraction covered, and a note names them); above 5 % the HHI is ``None``.
``abundance_min_ppm``, ``abundance_min_element``
    Upper-continental-crust abundance (ppm by mass) of the scarcest element of the composition
    — the supply bottleneck.
``abundance_weighted_ppm``
    Mass-weighted **geometric** mean of the element abundances, exp(Σ wᵢ ln aᵢ): abundances
    span nine orders of magnitude, and an arithmetic mean would only reflect oxygen and silicon.
    Data: Rudnick & Gao (2003), Treatise on Geochemistry vol. 3, Table 1 (upper crust); H, C,
    O, Rh, Te from the CRC Handbook (whole crust). See ``data/sustainability.json`` for the
    table, its sources and the values marked uncertain.
``toxic``, ``toxic_elements``
    Any element of the documented list (Be, Cd, Hg, Pb, As, Tl, Se, Te, Sb, Os and the
    radioactive Tc, Pm, Th, U): their compounds are, as a class, acutely toxic, carcinogenic,
    RoHS-restricted or radioactive. Cr counts only when the composition carries Cr6+ (Cr(VI)
    is the toxic, RoHS-restricted form; a plain formula does not say, and a note says so).
    Ni, Co, V, Mn, Cu compounds carry hazard classes too but are standard battery chemistry
    and are not flagged: read the safety data sheet.
``critical``, ``critical_elements``, ``critical_raw_materials``
    Elements whose raw material is on the EU 2023 list of 34 critical raw materials (Annex II
    of the Critical Raw Materials Act, Regulation (EU) 2024/1252). Mapped per element whatever
    its form in the host (so Si and Ti count although the list names the metals); coking coal
    and natural graphite (C), feldspar and helium are not mapped. The full map is in the data
    file (:data:`CRITICAL_ELEMENTS`).

``sustainability_score`` (:attr:`Sustainability.score`; 0–1, higher = better)::

    s_hhi   = 1 − (HHI_production + HHI_reserve) / 2 / 10 000
    s_abund = clip((log10(abundance_min_ppm) + 3) / 7, 0, 1)     # 1e-3 ppm → 0, 1e4 ppm → 1
    score   = clip(0.5 s_hhi + 0.5 s_abund − 0.25 [toxic] − 0.2 w_critical, 0, 1)

with ``w_critical`` the mass fraction of critical elements. ``None`` (with a note) when the HHI
or an abundance is unknown. Units: HHI dimensionless, abundances ppm (mg/kg).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib import resources
from typing import Any

from monty.json import MSONable
from pymatgen.core import Composition, DummySpecies, Species, Structure

__all__ = [
    "CRITICAL_ELEMENTS",
    "HHI_MAX_MISSING_FRACTION",
    "SCORE_FORMULA",
    "TOXIC_ELEMENTS",
    "Sustainability",
    "abundance_ppm",
    "load_data",
    "sustainability",
]

#: Mass fraction of elements without an HHI value up to which the HHI is still given.
HHI_MAX_MISSING_FRACTION = 0.05
HHI_METHOD = ("pymatgen HHIModel (Gaultois et al., Chem. Mater. 2013), weight-fraction-weighted "
              "mean over elements")
SCORE_FORMULA = (
    "score = clip(0.5*(1 - mean(HHI_production, HHI_reserve)/10000) "
    "+ 0.5*clip((log10(min element crustal abundance in ppm) + 3)/7, 0, 1) "
    "- 0.25*[toxic] - 0.2*(mass fraction of EU-2023-critical elements), 0, 1)"
)
ABUNDANCE_SOURCE = "Rudnick & Gao 2003 upper crust (H, C, O, Rh, Te: CRC Handbook)"
_W_HHI = 0.5
_W_ABUND = 0.5
_TOXIC_PENALTY = 0.25
_CRITICAL_PENALTY = 0.2
_LOG_PPM_LO, _LOG_PPM_HI = -3.0, 4.0


@lru_cache(maxsize=1)
def load_data() -> dict[str, Any]:
    """The packaged element data (``data/sustainability.json``), parsed once."""
    text = resources.files("ionscreen.screening").joinpath("data/sustainability.json").read_text()
    return json.loads(text)


def _abundances() -> dict[str, float]:
    return load_data()["abundance"]["ppm"]


TOXIC_ELEMENTS: dict[str, str] = dict(load_data()["toxic"]["elements"])
CRITICAL_ELEMENTS: dict[str, str] = dict(load_data()["critical"]["element_map"])


def abundance_ppm(symbol: str) -> float | None:
    """Upper-crust abundance of one element in ppm, or ``None`` if the table has none."""
    v = _abundances().get(str(symbol))
    return None if v is None else float(v)


@lru_cache(maxsize=1)
def _hhi_table() -> dict[str, tuple[float, float]]:
    from pymatgen.analysis.hhi import HHIModel

    return dict(HHIModel().symbol_hhip_hhir)


def _to_composition(composition: Any) -> Composition:
    if isinstance(composition, Structure):
        return composition.composition
    if isinstance(composition, Composition):
        return composition
    if isinstance(composition, Mapping) and "lattice" in composition and "sites" in composition:
        return Structure.from_dict(composition).composition
    try:
        return Composition(composition)
    except Exception as exc:  # pymatgen raises several types for bad formulae
        raise ValueError(f"sustainability: cannot read {composition!r} as a composition ({exc}); "
                         "give e.g. 'LiFePO4', a pymatgen Composition or Structure") from None


def _nan_free(x: float | None, ndigits: int | None = None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, ndigits) if ndigits is not None else float(x)


# Document key of a field where the two differ (the stored documents keep their 0.2 keys).
_KEYS = {"score": "sustainability_score"}
_SEQUENCES = ("toxic_elements", "critical_elements", "critical_raw_materials", "notes")


@dataclass(frozen=True)
class Sustainability(MSONable):
    """The sustainability descriptors of one composition (module docstring for definitions);
    ``score`` is the ``sustainability_score``. A value that could not be computed is None and
    ``notes`` say why. ``toxic`` and ``critical`` are None only when the composition was never
    read (no elements were looked at).

    ``as_dict()`` is the document the records store, keyed as the exports name the columns
    (``sustainability_score`` for ``score``); ``from_dict`` reads it back, missing keys as
    unknown.
    """

    formula: str | None = None
    hhi_production: float | None = None
    hhi_reserve: float | None = None
    hhi_method: str = HHI_METHOD
    hhi_coverage: float | None = None
    abundance_min_ppm: float | None = None
    abundance_min_element: str | None = None
    abundance_weighted_ppm: float | None = None
    abundance_source: str = ABUNDANCE_SOURCE
    toxic: bool | None = None
    toxic_elements: tuple[str, ...] = ()
    critical: bool | None = None
    critical_elements: tuple[str, ...] = ()
    critical_raw_materials: tuple[str, ...] = ()
    critical_mass_fraction: float | None = None
    score: float | None = None
    score_components: dict[str, float] = field(default_factory=dict)
    score_formula: str = SCORE_FORMULA
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The JSON-able document (lists for the sequences), in the documented key order."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[_KEYS.get(f.name, f.name)] = list(v) if f.name in _SEQUENCES else (
                dict(v) if f.name == "score_components" else v)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Sustainability:
        """Reads :meth:`as_dict`'s document, or a part of it (absent keys take the defaults)."""
        kw: dict[str, Any] = {}
        for f in fields(cls):
            key = _KEYS.get(f.name, f.name)
            if d.get(key) is not None:
                v = d[key]
                kw[f.name] = tuple(v) if f.name in _SEQUENCES else (
                    dict(v) if f.name == "score_components" else v)
        return cls(**kw)


def _elements(comp: Composition, exclude: Iterable[str], notes: list[str]) -> Composition | None:
    """The element composition to evaluate: ``comp`` without ``exclude``; None (with a note)
    when it holds unknown species or nothing is left."""
    dummies = sorted({str(sp) for sp in comp if isinstance(sp, DummySpecies)})
    if dummies:
        notes.append(f"unknown species {', '.join(dummies)} (no element data): all values None")
        return None
    elem = comp.element_composition
    excluded = {str(e) for e in exclude}
    if excluded & {str(e) for e in elem.elements}:
        elem = Composition({e: n for e, n in elem.items() if str(e) not in excluded})
        notes.append(f"evaluated without {', '.join(sorted(excluded))} (the working ion)")
    if elem.num_atoms <= 0:
        notes.append("nothing left to evaluate (empty composition)")
        return None
    return elem


def _hhi(wt: Mapping[str, float], notes: list[str]) -> dict[str, Any]:
    """HHI of production and reserve: pymatgen's table, weight-fraction-weighted as pymatgen
    does, renormalised over the elements that have a value if they cover enough mass."""
    table = _hhi_table()
    missing = [s for s in wt if s not in table]
    covered = sum(w for s, w in wt.items() if s in table)
    out: dict[str, Any] = {"hhi_coverage": round(covered, 6)}
    if 1.0 - covered <= HHI_MAX_MISSING_FRACTION and covered > 0:
        hp = sum(w * table[s][0] for s, w in wt.items() if s in table) / covered
        hr = sum(w * table[s][1] for s, w in wt.items() if s in table) / covered
        out["hhi_production"], out["hhi_reserve"] = _nan_free(hp, 2), _nan_free(hr, 2)
        if missing:
            notes.append(f"HHI: no pymatgen value for {', '.join(missing)} ({100 * (1 - covered):.1f} "
                         "wt%); mean taken over the other elements")
    else:
        notes.append(f"HHI: no pymatgen value for {', '.join(missing)} ({100 * (1 - covered):.1f} wt% "
                     f"> {100 * HHI_MAX_MISSING_FRACTION:.0f}%): HHI unknown")
    return out


def _abundance(wt: Mapping[str, float], notes: list[str]) -> dict[str, Any]:
    """The scarcest element and its crustal abundance, and the mass-weighted geometric mean
    abundance (nothing when an element has no value)."""
    ab = {s: abundance_ppm(s) for s in wt}
    no_ab = [s for s in wt if ab[s] is None or ab[s] <= 0]
    if no_ab:
        why = load_data()["abundance"].get("no_value", {})
        reasons = "; ".join(f"{s}: {why.get(s, 'not in the table')}" for s in no_ab)
        notes.append(f"crustal abundance unknown for {reasons}")
        return {}
    scarce = min(wt, key=lambda s: ab[s])
    uncertain = load_data()["abundance"].get("uncertain", {})
    if scarce in uncertain:
        notes.append(f"abundance of {scarce} is uncertain: {uncertain[scarce]}")
    return {"abundance_min_ppm": _nan_free(ab[scarce]), "abundance_min_element": scarce,
            "abundance_weighted_ppm": _nan_free(
                math.exp(sum(w * math.log(ab[s]) for s, w in wt.items())), 6)}


def _flags(wt: Mapping[str, float], cr6: bool, notes: list[str]) -> dict[str, Any]:
    """Toxic elements (Cr only as Cr(VI)) and EU-critical elements with their mass fraction."""
    toxic = sorted(s for s in wt if s in TOXIC_ELEMENTS)
    if "Cr" in wt:
        if cr6:
            toxic.append("Cr")
        else:
            notes.append("Cr counted as non-toxic: only Cr(VI) is flagged and no Cr6+ oxidation "
                         "state was given")
    crit = sorted(s for s in wt if s in CRITICAL_ELEMENTS)
    return {"toxic_elements": tuple(toxic), "toxic": bool(toxic), "critical_elements": tuple(crit),
            "critical": bool(crit),
            "critical_raw_materials": tuple(sorted({CRITICAL_ELEMENTS[s] for s in crit})),
            "critical_mass_fraction": round(sum(wt[s] for s in crit), 6)}


def _score(d: Mapping[str, Any], wt: Mapping[str, float], notes: list[str]) -> dict[str, Any]:
    """The combined score (module docstring) from the HHI, abundance and flag values of ``d``
    (keyed by :class:`Sustainability` field) and the mass fractions ``wt``."""
    if d.get("hhi_production") is None or d.get("abundance_min_ppm") is None:
        notes.append("sustainability_score unknown (needs HHI and crustal abundance)")
        return {}
    s_hhi = 1.0 - 0.5 * (d["hhi_production"] + d["hhi_reserve"]) / 10000.0
    s_ab = (math.log10(d["abundance_min_ppm"]) - _LOG_PPM_LO) / (_LOG_PPM_HI - _LOG_PPM_LO)
    s_ab = min(1.0, max(0.0, s_ab))
    penalty_t = _TOXIC_PENALTY if d["toxic"] else 0.0
    penalty_c = _CRITICAL_PENALTY * sum(wt[s] for s in d["critical_elements"])
    score = _W_HHI * s_hhi + _W_ABUND * s_ab - penalty_t - penalty_c
    return {"score": round(min(1.0, max(0.0, score)), 6),
            "score_components": {"s_hhi": round(s_hhi, 6), "s_abundance": round(s_ab, 6),
                                 "toxic_penalty": penalty_t, "critical_penalty": round(penalty_c, 6)}}


def sustainability(composition: Any, exclude: Iterable[str] = ()) -> Sustainability:
    """Sustainability descriptors of a composition (see the module docstring for definitions).

    ``composition``: a formula, :class:`~pymatgen.core.Composition`, :class:`~pymatgen.core.Structure`
    or ``Structure.as_dict()``. ``exclude``: element symbols to leave out first (the ranking
    leaves out the working ion, so that charged and discharged hosts compare alike).

    Values that cannot be computed are ``None`` and ``notes`` says why. Unknown elements never
    raise; an unreadable formula raises :class:`ValueError`.
    """
    comp = _to_composition(composition)
    notes: list[str] = []
    # Cr(VI) must be seen before oxidation states are dropped.
    cr6 = any(isinstance(sp, Species) and sp.symbol == "Cr" and (sp.oxi_state or 0) >= 6
              for sp in comp)
    elem = _elements(comp, exclude, notes)
    if elem is None:
        return Sustainability(toxic=False, critical=False, notes=tuple(notes))
    wt = {str(e): float(elem.get_wt_fraction(e)) for e in elem.elements}  # in element order
    out: dict[str, Any] = {"formula": elem.reduced_formula, **_hhi(wt, notes),
                           **_abundance(wt, notes), **_flags(wt, cr6, notes)}
    out.update(_score(out, wt, notes))
    return Sustainability(**out, notes=tuple(notes))
