"""softBV bond-valence parameters, element data and working-ion models.

The table ``data/softbv_params.json`` holds the softBV-derived Morse rows (Chen & Adams,
IUCrJ 4 (2017) 614) and, per element, the principal quantum number n and covalent radii used by
BVSE. It was extracted from the MIT-licensed ``bvlain`` and ``ions`` wheels by
``benchmarks/extract_softbv_table.py``; ``data/README.md`` gives the provenance.

Rows with alpha <= 0 are kept in the file, marked ``"rejected"``, and refused here: they are
physically invalid (the Morse bond term grows with distance instead of binding).

Typical use::

    table = load_table()
    ion = ion_model("Mg2+")
    row = mobile_pair(table, ion, "O", -2)   # PairParams for Mg2+–O2-
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from dataclasses import replace as _replace
from pathlib import Path
from typing import Any

from ionscreen.errors import (
    IonscreenError,
    MissingParameterError,
)
from ionscreen.structures.ions import ANIONS, WORKING_IONS, WorkingIon, get_working_ion, ion_label

__all__ = [
    "DEFAULT_TABLE_PATH",
    "ElementParams",
    "PairParams",
    "ParamTable",
    "ION_MODELS",
    "IonModel",
    "ion_model",
    "load_table",
    "mobile_pair",
    "nitride_rule",
    "derived_nitride_pair",
    "NITRIDE_RULE_CATIONS",
]

DEFAULT_TABLE_PATH = Path(__file__).resolve().parent / "data" / "softbv_params.json"

_PairKey = tuple[str, int, str, int]

# Chemical order used when listing anions in messages: chalcogenides, halides, pnictides, H.
_ANION_ORDER = list(ANIONS)




def _pair_label(cation: str, cation_valence: int, anion: str, anion_valence: int) -> str:
    return f"{ion_label(cation, cation_valence)}–{ion_label(anion, anion_valence)}"


def _normalise_symbol(symbol: str) -> str:
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
    def key(self) -> _PairKey:
        """``(cation, cation_valence, anion, anion_valence)``."""
        return (self.cation, self.cation_valence, self.anion, self.anion_valence)

    def label(self) -> str:
        """``"Mg2+–O2-"``."""
        return _pair_label(*self.key)

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


class ParamTable:
    """The softBV pair table plus element data.

    ``pair`` refuses rejected rows (alpha <= 0) and names the missing pair with the options.
    Tables from :func:`load_table` are independent copies: ``add_pair`` on one never changes
    another.
    """

    def __init__(
        self,
        pairs: Iterable[PairParams],
        elements: Mapping[str, ElementParams],
        rejected: Mapping[_PairKey, str] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self._pairs: dict[_PairKey, PairParams] = {}
        self._rejected: dict[_PairKey, str] = dict(rejected or {})
        self._elements: dict[str, ElementParams] = dict(elements)
        self.provenance: dict = dict(provenance or {})
        self.user_pairs: list[str] = []
        for p in pairs:
            errors = p.validation_errors()
            if errors:
                self._rejected[p.key] = "; ".join(errors)
            else:
                self._pairs[p.key] = p
                self._rejected.pop(p.key, None)

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def rejected(self) -> list[tuple[str, str]]:
        """``[(pair label such as "Mg2+–Se2-", reason), ...]`` for rows the table refuses."""
        return [(_pair_label(*k), reason) for k, reason in sorted(self._rejected.items())]

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[PairParams]:
        return iter(self._pairs.values())

    def __contains__(self, key: object) -> bool:
        return key in self._pairs

    def copy(self) -> ParamTable:
        """An independent copy (rows are immutable and shared)."""
        new = ParamTable([], self._elements, self._rejected, copy.deepcopy(self.provenance))
        new._pairs = dict(self._pairs)
        new.user_pairs = list(self.user_pairs)
        return new

    def has_pair(self, cation: str, cation_valence: int, anion: str, anion_valence: int) -> bool:
        """True when a usable row exists."""
        key = (_normalise_symbol(cation), int(cation_valence), _normalise_symbol(anion),
               int(anion_valence))
        return key in self._pairs

    # -- look-ups ----------------------------------------------------------------------------

    def pair(self, cation: str, cation_valence: int, anion: str, anion_valence: int) -> PairParams:
        """The usable row for a cation–anion pair.

        Raises :class:`MissingParameterError` naming the pair when there is no row or the row
        is rejected; the message lists the anions the cation does have rows for and what the
        user can do.
        """
        key = (_normalise_symbol(cation), int(cation_valence), _normalise_symbol(anion),
               int(anion_valence))
        try:
            return self._pairs[key]
        except KeyError:
            pass
        raise MissingParameterError(self._missing_message(key)) from None

    def _missing_message(self, key: _PairKey) -> str:
        cat, cv, an, av = key
        label = _pair_label(*key)
        cat_label = ion_label(cat, cv)
        if key in self._rejected:
            head = (f"softBV bond-valence parameters for {label} are rejected: "
                    f"{self._rejected[key]}. The row is never used.")
        else:
            head = f"no softBV bond-valence parameters for {label}."
        parts = [head]
        if av > 0 or cv < 0:
            parts.append("(pairs are given as cation with valence > 0, anion with valence < 0.)")
        have = self.anions_for(cat, cv)
        if have:
            listing = ", ".join(ion_label(a, v) for a, v in have)
            parts.append(f"{cat_label} has parameters for: {listing}.")
        else:
            valences = sorted({k[1] for k in self._pairs if k[0] == cat})
            if valences:
                other = ", ".join(ion_label(cat, v) for v in valences)
                parts.append(f"{cat_label} has no rows at all; rows exist for {other} "
                             "(check the oxidation state).")
            else:
                parts.append(f"{cat} has no rows in the table at all.")
        rejected_here = [ion_label(a, v) for a, v in sorted(
            ((k[2], k[3]) for k in self._rejected if k[:2] == (cat, cv) and k != key),
            key=_anion_sort_key)]
        if rejected_here:
            parts.append(f"Rejected rows for {cat_label} (alpha <= 0 or otherwise invalid): "
                         f"{', '.join(rejected_here)}.")
        parts.append(
            "Options: supply a row with ParamTable.add_pair(PairParams(...)) or a custom table "
            "with load_table(path); or screen a different working ion, or hosts without "
            f"{ion_label(an, av)}."
        )
        return " ".join(parts)

    def element(self, symbol: str) -> ElementParams:
        """Period n and covalent radii of an element (``"Mg"``)."""
        sym = _normalise_symbol(symbol)
        try:
            return self._elements[sym]
        except KeyError:
            raise MissingParameterError(
                f"no softBV element data (period n, covalent radius) for {symbol!r}; the table "
                f"covers {len(self._elements)} elements. Supply it with a custom table "
                "(load_table(path)) or remove the element from the host."
            ) from None

    @property
    def elements(self) -> dict[str, ElementParams]:
        """All element rows, by symbol (a copy)."""
        return dict(self._elements)

    def anions_for(self, cation: str, valence: int) -> list[tuple[str, int]]:
        """``[(anion, anion_valence), ...]`` with usable rows for this cation (coverage)."""
        cat = _normalise_symbol(cation)
        found = [(k[2], k[3]) for k in self._pairs if k[0] == cat and k[1] == int(valence)]
        return sorted(found, key=_anion_sort_key)

    def cations_for(self, anion: str, valence: int) -> list[tuple[str, int]]:
        """``[(cation, cation_valence), ...]`` with usable rows for this anion (coverage for a
        mobile anion; every row serves both roles)."""
        an = _normalise_symbol(anion)
        found = [(k[0], k[1]) for k in self._pairs if k[2] == an and k[3] == int(valence)]
        z = {s: e.z for s, e in self._elements.items()}
        return sorted(found, key=lambda cv: (z.get(cv[0], 999), cv[0], cv[1]))

    # -- user rows ---------------------------------------------------------------------------

    def remove_pair(self, cation: str, cation_valence: int, anion: str, anion_valence: int) -> None:
        """Drop a row (e.g. to validate a derivation rule against it); KeyError if absent."""
        key = (_normalise_symbol(cation), int(cation_valence), _normalise_symbol(anion),
               int(anion_valence))
        del self._pairs[key]

    def add_pair(self, params: PairParams, *, replace: bool = False) -> None:
        """Add a user-supplied row (validated: alpha > 0, d0 > 0, r_min > 0, b = 1/alpha).

        A rejected row may be replaced freely; replacing a usable row needs ``replace=True``.
        Raises :class:`MissingParameterError` for an invalid row.
        """
        p = _normalised(params)
        errors = p.validation_errors()
        if errors:
            raise MissingParameterError(
                f"invalid user-supplied parameters for {p.label()}: {'; '.join(errors)}"
            )
        if p.key in self._pairs and not replace:
            raise IonscreenError(
                f"the table already has a row for {p.label()}; pass replace=True to override it"
            )
        self._pairs[p.key] = p
        self._rejected.pop(p.key, None)
        self.user_pairs.append(p.label())


def _normalised(p: PairParams) -> PairParams:
    """The row with element symbols normalised (``"mg"`` -> ``"Mg"``)."""
    cat, an = _normalise_symbol(p.cation), _normalise_symbol(p.anion)
    if (cat, an) == (p.cation, p.anion):
        return p
    return _replace(p, cation=cat, anion=an)


def _anion_sort_key(av: tuple[str, int]) -> tuple[int, str, int]:
    a, v = av
    rank = _ANION_ORDER.index(a) if a in _ANION_ORDER else len(_ANION_ORDER)
    return (rank, a, v)


# -- loading ---------------------------------------------------------------------------------


def _parse_table(doc: Mapping[str, Any], source: str) -> ParamTable:
    try:
        raw_pairs = doc["pairs"]
        raw_elements = doc["elements"]
    except (KeyError, TypeError):
        raise MissingParameterError(
            f"{source}: a parameter table needs 'pairs' and 'elements' (see "
            "screening/data/README.md for the format)"
        ) from None
    elements = {}
    for sym, e in raw_elements.items():
        elements[sym] = ElementParams(
            symbol=sym,
            z=int(e["z"]),
            period=int(e["period"]),
            covalent_radius_softbv={int(v): float(r)
                                    for v, r in e.get("covalent_radius_softbv", {}).items()},
            covalent_radius_ase=float(e["covalent_radius_ase"]),
        )
    pairs = []
    rejected: dict[_PairKey, str] = {}
    for i, row in enumerate(raw_pairs):
        try:
            alpha = float(row["alpha"]) if "alpha" in row else 1.0 / float(row["b"])
            b = float(row["b"]) if "b" in row else 1.0 / alpha
            p = PairParams(
                cation=_normalise_symbol(row["cation"]),
                cation_valence=int(row["cation_valence"]),
                anion=_normalise_symbol(row["anion"]),
                anion_valence=int(row["anion_valence"]),
                r0=float(row["r0"]),
                b=b,
                alpha=alpha,
                d0=float(row["d0"]),
                r_min=float(row["r_min"]),
                r_cutoff=None if row.get("r_cutoff") is None else float(row["r_cutoff"]),
                nc=None if row.get("nc") is None else float(row["nc"]),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise MissingParameterError(
                f"{source}: pair row {i} is incomplete or malformed ({exc!r}): {row!r}"
            ) from None
        if row.get("rejected"):
            rejected[p.key] = str(row["rejected"])
            continue
        errors = p.validation_errors()
        if errors:  # never silently use an invalid row, even if the file does not mark it
            rejected[p.key] = "; ".join(errors)
            continue
        pairs.append(p)
    return ParamTable(pairs, elements, rejected, doc.get("provenance", {"source": source}))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str) -> ParamTable:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingParameterError(f"parameter table {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise MissingParameterError(f"parameter table {path} cannot be read: {exc}") from None
    table = _parse_table(doc, str(p))
    table.provenance.setdefault("path", str(p))
    return table


def load_table(path: str | None = None) -> ParamTable:
    """Load the parameter table (the packaged softBV table by default).

    Parsing is cached per path; each call returns an independent copy, so ``add_pair`` on the
    result never leaks into other callers. A custom JSON file uses the packaged file's format
    ("elements" and "pairs"; see ``screening/data/README.md``).
    """
    resolved = str(Path(path).resolve()) if path is not None else str(DEFAULT_TABLE_PATH)
    return _load_cached(resolved).copy()


# -- working-ion models -----------------------------------------------------------------------


@dataclass(frozen=True)
class IonModel:
    """How the bond-valence tiers model a working ion.

    ``ion`` is the ion itself (:class:`ionscreen.structures.ions.WorkingIon`: name, charge,
    which atoms are mobile). ``element`` names the element whose softBV rows, period and
    covalent radius are used; for the NH4+ pseudo-ion it is the parent element (K). ``model``
    is shown in every result.
    """

    ion: WorkingIon
    element: str
    approximate: bool
    model: str
    r_min_shift: float = 0.0
    radius_override: float | None = None

    @property
    def name(self) -> str:
        return self.ion.name

    @property
    def charge(self) -> int:
        return self.ion.charge

    def label(self) -> str:
        """``"Mg2+"``, ``"NH4+"``."""
        return self.ion.label()

    def mobile_sites(self, structure: Any) -> list[int]:
        """The sites of ``structure`` that are this ion (:meth:`WorkingIon.mobile_sites`)."""
        return self.ion.mobile_sites(structure)

    def covalent_radius(self, table: ParamTable, source: str = "ase") -> float:
        """Covalent radius (Å) for the Coulomb screening length: ``radius_override`` when the
        model sets it, else the element's radius from ``table``."""
        if self.radius_override is not None:
            return self.radius_override
        return table.element(self.element).covalent_radius(self.charge, source)

    def period(self, table: ParamTable) -> int:
        """Principal quantum number n used for q = V/√n (the parent element's for a model)."""
        return table.element(self.element).period

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, for result documents."""
        return {"name": self.name, "element": self.element, "charge": self.charge,
                "approximate": self.approximate, "model": self.model,
                "r_min_shift": self.r_min_shift, "radius_override": self.radius_override,
                "label": self.label()}


# NH4+ pseudo-ion: K+ rows with r_min and r0 shifted by r(NH4+) − r(K+) = 1.48 − 1.38 Å.
# Justification and numbers: screening/data/README.md.
NH4_RADIUS_SHIFT = 0.10
_K_SOFTBV_RADIUS = 2.06  # softBV covalent radius of K+ (Å)


def _softbv_model(name: str) -> IonModel:
    ion = WORKING_IONS[name]
    return IonModel(ion=ion, element=ion.element, approximate=False,
                    model=f"{ion.label()} with softBV parameters (Chen & Adams 2017)")


ION_MODELS: dict[str, IonModel] = {
    name: _softbv_model(name) for name in WORKING_IONS if not WORKING_IONS[name].molecular
}
ION_MODELS["NH4"] = IonModel(
    ion=WORKING_IONS["NH4"],
    element="K",
    approximate=True,
    model=(f"NH4+ as a K+-like pseudo-ion (softBV K+ rows, r_min and r0 "
           f"+{NH4_RADIUS_SHIFT:.2f} Å); approximate: no N–H···X hydrogen bonding, "
           "spherical ion"),
    r_min_shift=NH4_RADIUS_SHIFT,
    radius_override=round(_K_SOFTBV_RADIUS + NH4_RADIUS_SHIFT, 2),
)
ION_MODELS = {name: ION_MODELS[name] for name in WORKING_IONS}  # vocabulary order


def ion_model(name: str | WorkingIon | IonModel) -> IonModel:
    """The bond-valence model of a working ion, from any spelling :func:`get_working_ion`
    reads (``"Mg2+"``, ``"ammonium"``...) or from the ion itself. Raises
    :class:`UnsupportedIonError` listing the supported ions for anything else."""
    if isinstance(name, IonModel):
        return name
    return ION_MODELS[get_working_ion(name).name]


#: s-block cations whose softBV table has both an X–O2- and an X–N3- row: the nitride transfer
#: rule is fitted on them (d- and f-block D0 do not follow the softBV closed form).
NITRIDE_RULE_CATIONS: tuple[tuple[str, int], ...] = (("Li", 1), ("Mg", 2), ("Sr", 2))


def nitride_rule(table: ParamTable, exclude: tuple[str, int] | None = None) -> dict[str, Any]:
    """The X–O2- → X–N3- transfer rule fitted on :data:`NITRIDE_RULE_CATIONS` of ``table``.

    ``delta_r_min`` and ``delta_r0`` are the mean shifts (Å) and ``b_ratio`` the mean ratio
    b(N3-)/b(O2-) over the fit cations (``exclude`` leaves one out, for validation). D0 then
    follows the softBV closed form D0 ∝ b²·|V_X| / (Rmin·√(n_A n_X)) (shared notes, bvse.md).
    """
    pairs = [(table.pair(c, v, "O", -2), table.pair(c, v, "N", -3))
             for c, v in NITRIDE_RULE_CATIONS
             if (c, v) != exclude and table.has_pair(c, v, "O", -2) and table.has_pair(c, v, "N", -3)]
    if not pairs:
        raise MissingParameterError("no cation has both X–O2- and X–N3- rows to fit the nitride "
                                    "transfer rule on")
    n = len(pairs)
    return {
        "delta_r_min": sum(nn.r_min - o.r_min for o, nn in pairs) / n,
        "delta_r0": sum(nn.r0 - o.r0 for o, nn in pairs) / n,
        "b_ratio": sum(nn.b / o.b for o, nn in pairs) / n,
        "fitted_on": [o.cation + f"{o.cation_valence}+" for o, _ in pairs],
    }


def derived_nitride_pair(table: ParamTable, cation: str, valence: int,
                         rule: Mapping[str, Any] | None = None) -> PairParams:
    """An approximate X–N3- row derived from the cation's X–O2- row (see :func:`nitride_rule`).

    softBV has no N3- rows for Ca2+, Zn2+, Al3+, K+ (hence NH4+), Na+ or Ba2+; cyanide frameworks
    (Prussian blue analogues) and sulfonamide polymers bind the working ion to N. The derived row
    is flagged (``derived_from``) and every result that uses it says it is approximate.
    """
    o = table.pair(cation, valence, "O", -2)
    rule = rule or nitride_rule(table)
    b = o.b * rule["b_ratio"]
    r_min = o.r_min + rule["delta_r_min"]
    # closed form: D0 ∝ b²·|V_X|/Rmin (same period n = 2 for O and N)
    d0 = o.d0 * (b / o.b) ** 2 * (3.0 / 2.0) * (o.r_min / r_min)
    note = (f"derived from {o.label()} by the nitride transfer rule (Rmin {rule['delta_r_min']:+.3f} Å, "
            f"b ×{rule['b_ratio']:.3f}, D0 by the softBV closed form; fitted on "
            f"{', '.join(rule['fitted_on'])})")
    return PairParams(
        cation=o.cation, cation_valence=o.cation_valence, anion="N", anion_valence=-3,
        r0=o.r0 + rule["delta_r0"], b=b, alpha=1.0 / b, d0=d0, r_min=r_min,
        r_cutoff=(o.r_cutoff + rule["delta_r_min"]) if o.r_cutoff else None, nc=o.nc,
        derived_from=note,
    )


def mobile_pair(table: ParamTable, ion: IonModel, anion: str, anion_valence: int,
                derive_nitride: bool = False) -> PairParams:
    """The Morse row of the working ion against one anion, with the ion's model applied.

    For a plain ion this is ``table.pair(ion.element, ion.charge, ...)``. For a modelled ion
    (NH4+) the parent element's row is shifted (r_min and r0 by ``r_min_shift``) and relabelled
    with the ion's name. With ``derive_nitride``, a missing X–N3- row is derived from the X–O2-
    row (:func:`derived_nitride_pair`; the row's ``derived_from`` says so).
    """
    nitride = (_normalise_symbol(anion), int(anion_valence)) == ("N", -3)
    try:
        parent = table.pair(ion.element, ion.charge, anion, anion_valence)
    except MissingParameterError as exc:
        if derive_nitride and nitride and table.has_pair(ion.element, ion.charge, "O", -2):
            parent = derived_nitride_pair(table, ion.element, ion.charge)
        else:
            msg = str(exc)
            if nitride:  # the way out first: long reasons are clipped in tables
                head, _, rest = msg.partition(". ")
                msg = (f"{head}. An approximate row can be derived from the {ion_label(ion.element, ion.charge)}"
                       "–O2- row with --derive-nitride (BVSESettings/NEBSettings(derive_nitride=True)); "
                       f"results then say they are approximate. {rest}")
            elif ion.name == ion.element:
                raise
            if ion.name != ion.element:
                msg = (f"{ion.label()} is modelled from {ion_label(ion.element, ion.charge)} rows "
                       f"({ion.model}), and: {msg}")
            raise MissingParameterError(msg) from None
    if ion.name == ion.element and ion.r_min_shift == 0.0:
        return parent
    return _replace(
        parent,
        cation=ion.name,
        r_min=parent.r_min + ion.r_min_shift,
        r0=parent.r0 + ion.r_min_shift,
    )
