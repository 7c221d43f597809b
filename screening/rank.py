"""Ranking of screened hosts per working ion: Pareto front and a weighted score.

Input: descriptor documents ("rows"), one per candidate × working ion, as the pipeline stores
them (``status``, ``bvse``, ``neb``, ``capacity_mAh_g``, ``structure``...). Only rows with
``status == "done"`` and a barrier are ranked.

Barrier (``barrier``, ``barrier_tier``)
    The best tier available: the NEB barrier when the NEB converged (``"BVFF CI-NEB (<calculator>)"``,
    ``"MLIP CI-NEB (<calculator>)"``...), else the BVSE percolation barrier of the lowest
    percolating dimension, min(E1D, E2D, E3D) (``"BVSE E1D"``...). Barriers of different tiers
    are only loosely comparable: rows whose tier differs from the ion's majority get a note.

Sustainability (``sustainability``, ``sustainability_score``)
    :func:`ionscreen.screening.sustainability.sustainability` of the host as screened, **without
    the working ion** (so that a charged and a discharged host of one framework compare alike);
    a row may bring its own ``sustainability`` dict, which is then used as is.

Pareto front (``pareto``, ``pareto_rank``)
    Non-dominated sorting over (barrier ↓, capacity_mAh_g ↑, sustainability_score ↑):
    ``pareto_rank`` 0 is the front, 1 the front once rank 0 is removed, and so on. Rows
    missing capacity or sustainability are on no front (``pareto`` False, ``pareto_rank`` None,
    with a note).

Weighted score (``score``, ``score_components``)
    Each descriptor is min–max normalised per ion over the ranked rows,

        b = (B_max − B) / (B_max − B_min)   (lowest barrier → 1)
        c = (C − C_min) / (C_max − C_min)   (highest capacity → 1)
        s = (S − S_min) / (S_max − S_min)   (highest sustainability score → 1)

    (1 for every row when all values are equal); a missing value counts 0 (worst) and is
    noted. ``score = (w_b b + w_c c + w_s s) / (w_b + w_c + w_s)`` in [0, 1]. It is relative to
    the candidate set: adding a candidate can change the others' scores, not their order by any
    single descriptor. ``rank`` 1 is the highest score; ties are broken by the lower barrier,
    then by formula and candidate id.

Weights come from a config file, TOML or JSON, with a ``weights`` table::

    [weights]
    barrier = 0.5
    capacity = 0.3
    sustainability = 0.2

Missing keys weigh 0; the defaults ship as ``data/ranking_default.json``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from ionscreen.screening.sustainability import sustainability
from ionscreen.structures.ions import DIMS, normalise_ion
from ionscreen.structures.ions import EXPORT_ORDER as ION_ORDER

__all__ = [
    "DIMS",
    "ION_ORDER",
    "WEIGHT_KEYS",
    "barrier_of",
    "default_weights",
    "ions_in",
    "load_weights",
    "non_dominated_sort",
    "normalise_ion",
    "rank",
    "rank_all",
    "validate_weights",
]

WEIGHT_KEYS = ("barrier", "capacity", "sustainability")
SCORE_NORMALISATION = (
    "min-max per working ion over the ranked rows; barrier reversed (lowest = 1); "
    "missing value = 0; score = sum(w_k x_k) / sum(w_k)"
)


# ----------------------------------------------------------------------------- weights


def _default_path() -> Any:
    return resources.files("ionscreen.screening").joinpath("data/ranking_default.json")


def validate_weights(weights: Mapping[str, Any], source: str = "weights") -> dict[str, float]:
    """Check a weights mapping and return it normalised to sum 1 (all three keys present).

    Raises :class:`ValueError` naming the offending key for an unknown key, a value that is not
    a finite number ≥ 0, or weights that are all zero.
    """
    if not isinstance(weights, Mapping):
        raise ValueError(f"{source}: weights must be a table/mapping of {', '.join(WEIGHT_KEYS)} "
                         f"to numbers, got {type(weights).__name__}")
    out = dict.fromkeys(WEIGHT_KEYS, 0.0)
    for key, value in weights.items():
        if key not in WEIGHT_KEYS:
            raise ValueError(f"{source}: unknown weight key {key!r}; allowed keys: "
                             f"{', '.join(WEIGHT_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: weight {key!r} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{source}: weight {key!r} must be finite and >= 0, got {value!r}")
        out[key] = float(value)
    total = sum(out.values())
    if total <= 0:
        raise ValueError(f"{source}: all weights are zero; give at least one of "
                         f"{', '.join(WEIGHT_KEYS)} a positive weight")
    return {k: v / total for k, v in out.items()}


def load_weights(path: str | Path | None = None) -> dict[str, float]:
    """Weights from a TOML (``.toml``) or JSON file, or the packaged defaults for ``None``.

    The file holds a ``weights`` table (or only the weight keys at top level). Returns the
    weights normalised to sum 1. Raises :class:`ValueError` for an unreadable file or invalid
    weights (naming the key), :class:`FileNotFoundError` for a missing file.
    """
    if path is None:
        text, source, is_toml = _default_path().read_text(), "ranking_default.json", False
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"weights file {str(p)!r} does not exist")
        text, source, is_toml = p.read_text(), str(p), p.suffix.lower() == ".toml"
    try:
        if is_toml:
            import tomllib

            doc = tomllib.loads(text)
        else:
            doc = json.loads(text)
    except Exception as exc:
        kind = "TOML" if is_toml else "JSON"
        raise ValueError(f"{source}: cannot parse as {kind} ({exc})") from None
    if not isinstance(doc, Mapping):
        raise ValueError(f"{source}: expected a table with a 'weights' table")
    weights = doc.get("weights", doc)
    if weights is doc:  # top-level keys: tolerate documentation keys only
        weights = {k: v for k, v in doc.items() if k not in ("description", "comment")}
    return validate_weights(weights, source=source)


def default_weights() -> dict[str, float]:
    """The packaged default weights (normalised)."""
    return load_weights(None)


def _resolve_weights(weights: Mapping[str, Any] | str | Path | None) -> dict[str, float]:
    if weights is None:
        return default_weights()
    if isinstance(weights, (str, Path)):
        return load_weights(weights)
    return validate_weights(weights)


# ----------------------------------------------------------------------------- helpers


def _num(x: Any) -> float | None:
    """A finite float or None (NaN, inf, None, non-numbers → None)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def ions_in(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Working ions present in ``rows``, in :data:`ION_ORDER` (others alphabetically after)."""
    found = {normalise_ion(r.get("working_ion")) for r in rows if r.get("working_ion") is not None}
    known = [i for i in ION_ORDER if i in found]
    return known + sorted(found - set(known))


def bvse_barriers(bvse: Mapping[str, Any] | None) -> dict[str, float | None]:
    """E1D/E2D/E3D from a row's ``bvse`` block (also accepts ``barriers: {"1D": ...}``)."""
    out: dict[str, float | None] = {}
    if not bvse:
        return dict.fromkeys(DIMS)
    nested = bvse.get("barriers") or {}
    for d in DIMS:
        v = bvse.get(f"E{d}")
        out[d] = _num(v if v is not None else nested.get(d))
    return out


def clip_words(text: str, n: int, tail: str = " …") -> str:
    """At most ``n`` characters (plus ``tail``), cut at a word boundary, so nothing ends mid-word."""
    if len(text) <= n:
        return text
    return text[:n].rsplit(" ", 1)[0] + tail


def barrier_of(row: Mapping[str, Any]) -> tuple[float | None, str | None, str | None, list[str]]:
    """(barrier eV, tier label, tier key, notes) for one row.

    The tier key groups rows whose barriers share a producer: ``"BVSE"`` or
    ``"<tier> CI-NEB (<calculator>)"``.
    """
    notes: list[str] = []
    neb = row.get("neb") or None
    if neb:
        nb = _num(neb.get("barrier"))
        calc = neb.get("calculator") or "unknown calculator"
        tier = neb.get("tier") or "NEB"
        label = f"{tier} CI-NEB ({calc})"
        if nb is not None and neb.get("converged", True):
            return nb, label, label, notes
        status = str(neb.get("status") or "n/a")
        what = "did not converge" if status.startswith("not converged") else "gave no barrier"
        status = clip_words(status, 200)  # the whole status stays in the NEB record
        notes.append(f"{label} {what} ({status}); barrier from BVSE")
    bars = bvse_barriers(row.get("bvse"))
    finite = [(v, d) for d, v in bars.items() if v is not None]
    if not finite:
        return None, None, None, notes
    v, d = min(finite)
    return v, f"BVSE E{d}", "BVSE", notes


def non_dominated_sort(points: Sequence[Sequence[float]],
                       senses: Sequence[str] = ("min", "max", "max")) -> list[int]:
    """Front index of every point by iterated non-dominated sorting (0 = Pareto front).

    ``senses`` says per objective whether lower (``"min"``) or higher (``"max"``) is better.
    A point dominates another when it is at least as good in every objective and strictly
    better in one; equal points do not dominate each other.
    """
    sign = []
    for s in senses:
        if s not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max', got {s!r}")
        sign.append(1.0 if s == "min" else -1.0)
    pts = [tuple(sg * float(x) for sg, x in zip(sign, p, strict=True)) for p in points]
    n = len(pts)
    dominated_by = [0] * n  # how many points dominate i
    dominates: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            a, b = pts[i], pts[j]
            if all(x <= y for x, y in zip(a, b)) and a != b:
                dominates[i].append(j)
                dominated_by[j] += 1
            elif all(y <= x for x, y in zip(a, b)) and a != b:
                dominates[j].append(i)
                dominated_by[i] += 1
    front_of = [-1] * n
    current = [i for i in range(n) if dominated_by[i] == 0]
    k = 0
    while current:
        nxt = []
        for i in current:
            front_of[i] = k
            for j in dominates[i]:
                dominated_by[j] -= 1
                if dominated_by[j] == 0:
                    nxt.append(j)
        current, k = nxt, k + 1
    return front_of


def _sustainability_for(row: Mapping[str, Any], ion: str) -> dict[str, Any] | None:
    given = row.get("sustainability")
    if isinstance(given, Mapping):
        return dict(given)
    st = row.get("structure")
    source: Any = st if st is not None else row.get("formula")
    if source is None:
        return None
    if hasattr(source, "as_dict") and not hasattr(source, "composition"):
        source = source.as_dict()
    exclude = (ion,) if ion not in ("NH4",) else ()
    try:
        return sustainability(source, exclude=exclude)
    except ValueError as exc:
        return {"sustainability_score": None, "notes": [str(exc)]}


def _minmax(values: list[float | None], reverse: bool = False) -> list[float | None]:
    finite = [v for v in values if v is not None]
    if not finite:
        return [None] * len(values)
    lo, hi = min(finite), max(finite)
    out: list[float | None] = []
    for v in values:
        if v is None:
            out.append(None)
        elif hi == lo:
            out.append(1.0)
        else:
            x = (v - lo) / (hi - lo)
            out.append(1.0 - x if reverse else x)
    return out


def _majority(keys: list[str | None]) -> tuple[str | None, int]:
    c = Counter(k for k in keys if k)
    if not c:
        return None, 0
    key, n = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return key, n


# ----------------------------------------------------------------------------- ranking


def rank(rows: Iterable[Mapping[str, Any]], ion: str,
         weights: Mapping[str, Any] | str | Path | None = None,
         include_unranked: bool = False) -> list[dict[str, Any]]:
    """Rank the finished rows of one working ion (see the module docstring for every rule).

    Returns new dicts (the input rows are not modified), best first, each with ``barrier``,
    ``barrier_tier``, ``barrier_tier_key``, ``sustainability``, ``sustainability_score``,
    ``pareto``, ``pareto_rank``, ``score``, ``score_components``, ``rank`` and ``notes`` added.
    ``include_unranked=True`` appends the done rows without any barrier (``rank`` None, a note
    says why). ``weights``: a mapping, a config file path, or None for the packaged defaults.
    """
    w = _resolve_weights(weights)
    ion = normalise_ion(ion)
    ranked: list[dict[str, Any]] = []
    unranked: list[dict[str, Any]] = []
    for row in rows:
        if normalise_ion(row.get("working_ion")) != ion or row.get("status") != "done":
            continue
        out = dict(row)
        out["notes"] = [str(n) for n in (row.get("notes") or [])]
        b, label, key, notes = barrier_of(row)
        out["notes"].extend(notes)
        out.update(barrier=b, barrier_tier=label, barrier_tier_key=key)
        sus = _sustainability_for(row, ion)
        out["sustainability"] = sus
        out["sustainability_score"] = _num((sus or {}).get("sustainability_score"))
        if out["sustainability_score"] is None:
            why = "; ".join((sus or {}).get("notes") or []) or "no structure or formula"
            out["notes"].append(f"sustainability score unknown ({why})")
        out.update(pareto=False, pareto_rank=None, score=None, score_components=None, rank=None)
        if b is None:
            out["notes"].append("no barrier (no percolating BVSE path below encut and no converged "
                                "NEB): not ranked")
            unranked.append(out)
        else:
            ranked.append(out)

    if ranked:
        # -- loose comparability across tiers and ML models
        major, n_major = _majority([r["barrier_tier_key"] for r in ranked])
        for r in ranked:
            if r["barrier_tier_key"] != major:
                r["notes"].append(
                    f"barrier from {r['barrier_tier']} while most rows of {ion} ({n_major}/"
                    f"{len(ranked)}) use {major}: barriers of different tiers compare only loosely")
        ml_major, n_ml = _majority([r.get("ml_model") for r in ranked
                                    if _num(r.get("voltage_V")) is not None
                                    or _num(r.get("volume_change")) is not None])
        for r in ranked:
            m = r.get("ml_model")
            if m and ml_major and m != ml_major:
                r["notes"].append(f"voltage/volume change from {m} while most rows use {ml_major}: "
                                  "not comparable (energies of different models)")

        # -- Pareto front over rows with all three objectives
        full = [i for i, r in enumerate(ranked)
                if _num(r.get("capacity_mAh_g")) is not None and r["sustainability_score"] is not None]
        fronts = non_dominated_sort(
            [(ranked[i]["barrier"], _num(ranked[i].get("capacity_mAh_g")),
              ranked[i]["sustainability_score"]) for i in full])
        for i, f in zip(full, fronts):
            ranked[i]["pareto_rank"] = f
            ranked[i]["pareto"] = f == 0
        for r in ranked:
            if r["pareto_rank"] is None:
                missing = [name for name, v in (("capacity", _num(r.get("capacity_mAh_g"))),
                                                ("sustainability score", r["sustainability_score"]))
                           if v is None]
                r["notes"].append(f"not on any Pareto front: {' and '.join(missing)} missing")

        # -- weighted score
        bn = _minmax([r["barrier"] for r in ranked], reverse=True)
        cn = _minmax([_num(r.get("capacity_mAh_g")) for r in ranked])
        sn = _minmax([r["sustainability_score"] for r in ranked])
        for r, b, c, s in zip(ranked, bn, cn, sn):
            comps = {"barrier": b, "capacity": c, "sustainability": s}
            missing = [k for k, v in comps.items() if v is None and w[k] > 0]
            if missing:
                r["notes"].append(f"score counts missing {', '.join(missing)} as worst (0)")
            r["score_components"] = {k: (None if v is None else round(v, 6)) for k, v in comps.items()}
            r["score"] = round(sum(w[k] * (v or 0.0) for k, v in comps.items()), 9)
        ranked.sort(key=lambda r: (-r["score"], r["barrier"], str(r.get("formula") or ""),
                                   str(r.get("candidate_id") or r.get("job_id") or "")))
        for k, r in enumerate(ranked, start=1):
            r["rank"] = k
    if include_unranked:
        unranked.sort(key=lambda r: (str(r.get("formula") or ""), str(r.get("candidate_id") or "")))
        return ranked + unranked
    return ranked


def rank_all(rows: Iterable[Mapping[str, Any]],
             weights: Mapping[str, Any] | str | Path | None = None,
             ions: Sequence[str] | None = None,
             include_unranked: bool = False) -> dict[str, list[dict[str, Any]]]:
    """:func:`rank` for every ion in ``rows`` (or in ``ions``), in :data:`ION_ORDER`."""
    rows = list(rows)
    w = _resolve_weights(weights)
    ions = [normalise_ion(i) for i in ions] if ions else ions_in(rows)
    return {ion: rank(rows, ion, w, include_unranked=include_unranked) for ion in ions}
