"""softBV bond-valence parameters and element data: the pair table.

The table ``data/softbv_params.json`` holds the softBV-derived Morse rows (Chen & Adams,
IUCrJ 4 (2017) 614) and, per element, the principal quantum number n and covalent radii used by
BVSE. It was extracted from the MIT-licensed ``bvlain`` and ``ions`` wheels by
``benchmarks/extract_softbv_table.py``; ``data/README.md`` gives the provenance.

Rows with alpha <= 0 are kept in the file, marked ``"rejected"``, and refused here: they are
physically invalid (the Morse bond term grows with distance instead of binding).

The rows themselves (:class:`PairParams`, :class:`ElementParams`) are defined in
:mod:`ionscreen.screening.param_rows`. Two modules build on the table:
:mod:`ionscreen.screening.nitride` (the X–O2- → X–N3- transfer rule) and
:mod:`ionscreen.screening.ion_models` (how the bond-valence tiers model a working ion, and its
rows), which uses the rule. Imports point one way:
``param_rows`` ← ``params`` ← ``nitride`` ← ``ion_models``; each name has one home, where it
is imported from.

Typical use::

    from ionscreen.screening.ion_models import ion_model, mobile_pair

    table = load_table()
    row = mobile_pair(table, ion_model("Mg2+"), "O", -2)   # PairParams for Mg2+–O2-
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace as _replace
from pathlib import Path
from typing import Any

from ionscreen.errors import IonscreenError, MissingParameterError
from ionscreen.structures.ions import ANIONS, ion_label

from .param_rows import ElementParams, PairKey, PairParams, normalise_symbol, pair_label

#: re-exported name -> module that defines it (imported on first use, see the module docstring)

__all__ = [
    "DEFAULT_TABLE_PATH",
    "ParamTable",
    "load_table",
]

DEFAULT_TABLE_PATH = Path(__file__).resolve().parent / "data" / "softbv_params.json"

# Chemical order used when listing anions in messages: chalcogenides, halides, pnictides, H.
_ANION_ORDER = list(ANIONS)


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
        rejected: Mapping[PairKey, str] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self._pairs: dict[PairKey, PairParams] = {}
        self._rejected: dict[PairKey, str] = dict(rejected or {})
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
        return [(pair_label(*k), reason) for k, reason in sorted(self._rejected.items())]

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
        key = (normalise_symbol(cation), int(cation_valence), normalise_symbol(anion),
               int(anion_valence))
        return key in self._pairs

    # -- look-ups ----------------------------------------------------------------------------

    def pair(self, cation: str, cation_valence: int, anion: str, anion_valence: int) -> PairParams:
        """The usable row for a cation–anion pair.

        Raises :class:`MissingParameterError` naming the pair when there is no row or the row
        is rejected; the message lists the anions the cation does have rows for and what the
        user can do.
        """
        key = (normalise_symbol(cation), int(cation_valence), normalise_symbol(anion),
               int(anion_valence))
        try:
            return self._pairs[key]
        except KeyError:
            pass
        raise MissingParameterError(self._missing_message(key)) from None

    def _missing_message(self, key: PairKey) -> str:
        cat, cv, an, av = key
        label = pair_label(*key)
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
        sym = normalise_symbol(symbol)
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
        cat = normalise_symbol(cation)
        found = [(k[2], k[3]) for k in self._pairs if k[0] == cat and k[1] == int(valence)]
        return sorted(found, key=_anion_sort_key)

    def cations_for(self, anion: str, valence: int) -> list[tuple[str, int]]:
        """``[(cation, cation_valence), ...]`` with usable rows for this anion (coverage for a
        mobile anion; every row serves both roles)."""
        an = normalise_symbol(anion)
        found = [(k[0], k[1]) for k in self._pairs if k[2] == an and k[3] == int(valence)]
        z = {s: e.z for s, e in self._elements.items()}
        return sorted(found, key=lambda cv: (z.get(cv[0], 999), cv[0], cv[1]))

    # -- user rows ---------------------------------------------------------------------------

    def remove_pair(self, cation: str, cation_valence: int, anion: str, anion_valence: int) -> None:
        """Drop a row (e.g. to validate a derivation rule against it); KeyError if absent."""
        key = (normalise_symbol(cation), int(cation_valence), normalise_symbol(anion),
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
    cat, an = normalise_symbol(p.cation), normalise_symbol(p.anion)
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
    rejected: dict[PairKey, str] = {}
    for i, row in enumerate(raw_pairs):
        try:
            alpha = float(row["alpha"]) if "alpha" in row else 1.0 / float(row["b"])
            b = float(row["b"]) if "b" in row else 1.0 / alpha
            p = PairParams(
                cation=normalise_symbol(row["cation"]),
                cation_valence=int(row["cation_valence"]),
                anion=normalise_symbol(row["anion"]),
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
