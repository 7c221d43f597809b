"""Ranking of screened hosts per working ion: Pareto front and a weighted score.

Input: done :class:`~ionscreen.screening.records.HostRecord` objects, one per candidate ×
working ion; output: :class:`RankedHost` objects (the record plus the numbers below and
structured :class:`~ionscreen.screening.records.Note` s). A failed record is refused with a
:class:`ValueError` (failures travel as a separate list), so none is dropped unseen.

Barrier (``barrier``, ``barrier_tier``)
    The best tier available: the NEB barrier when the NEB converged (``"BVFF CI-NEB (<calculator>)"``,
    ``"MLIP CI-NEB (<calculator>)"``...) and is not refused by a flag (``noise``, ``below-floor``,
    ``no-saddle`` below 0.65 eV; such
    a barrier is no evidence of a fast conductor: note ``neb_flagged``; an ML barrier whose
    uncertainty — committee spread and calibration error — exceeds :data:`UNCERTAIN` eV is
    ranked with note ``neb_uncertain``), else the BVSE
    percolation barrier of the lowest percolating dimension, min(E1D, E2D, E3D) (``"BVSE E1D"``...).

One tier per ranking (the funnel; ``promoted``)
    BVSE filters: the hosts that pass it (:func:`ionscreen.screening.mobility.promote_cutoff`,
    at most ``--neb-top`` per ion) go on to the NEB tier. The ranking uses one tier only,
    :func:`ranked_tier`: the highest that gave a plausible barrier (ML or committee NEB above
    BVFF NEB above BVSE). Hosts whose barrier came from a lower tier (not promoted, or their
    NEB failed or was refused) are listed below the ranked ones with ``rank`` None and note
    ``not_promoted``, never interleaved. When the ranked tier is BVSE or the BVFF NEB the list
    is a pre-screen (:func:`is_pre_screen`): neither ranks barriers like DFT.

Mobility (``mobility``, ``uncertainty``, ``diffusivity_cm2_s``, ``flags``)
    :mod:`ionscreen.screening.mobility`: the barrier ± the tier's uncertainty against 0.525 eV
    (micron particles at C/2) and 0.65 eV (nano-particles): ``mobile``, ``borderline`` or
    ``immobile``, with D(300 K) beside it. A BVSE barrier at an under-bonded site or below the
    per-charge floor is implausible (note ``implausible``): no class, not ranked.

Sustainability (``sustainability_score``)
    The score of the record's ``sustainability``, computed once when the record was built
    (:func:`ionscreen.screening.records.host_sustainability`: the host as screened **without the
    working ion**, so that a charged and a discharged host of one framework compare alike).

Pareto front (``pareto``, ``pareto_rank``)
    Non-dominated sorting over (barrier ↓, capacity_mAh_g ↑, specific energy ↑,
    sustainability_score ↑), the energy only for an ion where some ranked host has a voltage:
    ``pareto_rank`` 0 is the front, 1 the front once rank 0 is removed, and so on. Rows
    missing one of them are on no front (``pareto`` False, ``pareto_rank`` None, with a note).

Weighted score (``score``, ``score_components``)
    Each descriptor is min–max normalised per ion over the ranked rows,

        b = (B_max − B) / (B_max − B_min)   (lowest barrier → 1)
        e = (E − E_min) / (E_max − E_min)   (highest specific energy, Wh/kg → 1)
        c = (C − C_min) / (C_max − C_min)   (highest capacity → 1)
        s = (S − S_min) / (S_max − S_min)   (highest sustainability score → 1)

    (1 for every row when all values are equal); a missing value counts 0 (worst) and is
    noted. ``score = (w_b b + w_e e + w_c c + w_s s) / (w_b + w_e + w_c + w_s)`` in [0, 1];
    for an ion where no ranked host has a voltage, ``w_e`` goes to ``w_c``. It is relative to
    the candidate set: adding a candidate can change the others' scores, not their order by any
    single descriptor.

Order (``rank``)
    By mobility class first (every mobile host before every borderline one, every borderline
    one before the immobile), then the rows without a :data:`DOUBTFUL` flag (under-bonded site,
    framework changed, empty gap, a band without a saddle) before those with one, then by
    score; ties are broken by the lower barrier, then by formula and candidate id. A high
    capacity never lifts an immobile host above a mobile one.

Not ranked: a host without any barrier, and one whose capacity is formally zero (no
reducible centre for an empty host, no removable ion for a discharged file: note
``no_capacity``); ``include_unranked`` lists them after the ranked ones.

Weights: :mod:`ionscreen.screening.weights` (a TOML or JSON ``[weights]`` table, or the
packaged defaults).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monty.json import MSONable

from ionscreen._json import finite_or_none
from ionscreen.screening.mobility import (
    CLASSES,
    diffusivity,
    mobility_class,
    plausibility_flags,
    promote_cutoff,
    tier_uncertainty,
)
from ionscreen.screening.records import HostRecord, Note
from ionscreen.screening.weights import (
    WEIGHT_KEYS,
    default_weights,
    load_weights,
    resolve_weights,
    validate_weights,
)
from ionscreen.structures.ions import DIMS, get_working_ion, normalise_ion
from ionscreen.structures.ions import EXPORT_ORDER as ION_ORDER

__all__ = [
    "DIMS",
    "ION_ORDER",
    "WEIGHT_KEYS",
    "RankedHost",
    "barrier_of",
    "default_weights",
    "ions_in",
    "load_weights",
    "non_dominated_sort",
    "normalise_ion",
    "rank",
    "rank_all",
    "is_pre_screen",
    "pre_screen_text",
    "ranked_tier",
    "tier_level",
    "validate_weights",
]

SCORE_NORMALISATION = (
    "min-max per working ion over the ranked rows; barrier reversed (lowest = 1); "
    "missing value = 0; score = sum(w_k x_k) / sum(w_k); energy = specific energy (Wh/kg), "
    "its weight goes to capacity for an ion where no ranked host has a voltage"
)


# ----------------------------------------------------------------------------- helpers



def ions_in(records: Iterable[HostRecord]) -> list[str]:
    """Working ions present in ``records``, in :data:`ION_ORDER` (others alphabetically after)."""
    found = {normalise_ion(r.working_ion) for r in records if r.working_ion is not None}
    known = [i for i in ION_ORDER if i in found]
    return known + sorted(found - set(known))


def clip_words(text: str, n: int, tail: str = " …") -> str:
    """At most ``n`` characters (plus ``tail``), cut at a word boundary, so nothing ends mid-word."""
    if len(text) <= n:
        return text
    return text[:n].rsplit(" ", 1)[0] + tail


def _neb_refusal(neb: Any, barrier: float | None) -> Note:
    """Why a NEB gives no ranked barrier: flagged (noise, below-floor, a low no-saddle), not
    converged, failed."""
    if barrier is not None and neb.converged:  # a flagged barrier is no evidence of a fast conductor
        why = clip_words("; ".join(f"{f['code']}: {f['text']}" for f in neb.refused), 300)
        return Note("neb_flagged", f"{neb.label} barrier {barrier:.3f} eV not ranked ({why}); "
                                   "barrier from BVSE")
    status = str(neb.status or "n/a")
    if status.startswith("not converged"):
        code, what = "neb_not_converged", "did not converge"
    else:  # the job failed (its reason stored), or the band gave no barrier
        code, what = ("neb_failed" if status.startswith("failed:") else "neb_no_barrier",
                      "gave no barrier")
    status = clip_words(status, 200)  # the whole status stays in the NEB record
    return Note(code, f"{neb.label} {what} ({status}); barrier from BVSE")


#: an ML barrier more uncertain than this (eV) is noted: that is the width between a host that
#: cycles at room temperature and one that does not (Em ≈ 0.5 vs 0.75 eV)
UNCERTAIN = 0.25


def barrier_of(record: HostRecord) -> tuple[float | None, str | None, str | None, list[Note]]:
    """(barrier eV, tier label, tier key, notes) for one record.

    The tier key groups records whose barriers share a producer: ``"BVSE"`` or
    ``"<tier> CI-NEB (<calculator>)"``. A NEB barrier refused by a flag (noise, below-floor, a
    no-saddle below 0.65 eV: :func:`ionscreen.screening.neb.flags.refuses`) is not ranked: the BVSE barrier stands in,
    with a ``neb_flagged`` note.
    """
    notes: list[Note] = []
    neb = record.neb
    if neb is not None:
        nb = finite_or_none(neb.barrier)
        if nb is not None and neb.converged and not neb.refused:
            if neb.uncertainty is not None and neb.uncertainty > UNCERTAIN:
                notes.append(Note("neb_uncertain", (
                    f"{neb.label} barrier {nb:.3f} ± {neb.uncertainty:.3f} eV: the models disagree "
                    "or the calibration is loose for it; its place in the list is uncertain")))
            return nb, neb.label, neb.label, notes
        notes.append(_neb_refusal(neb, nb))
    bvse = record.bvse
    if bvse is None or bvse.best_dimension is None:
        return None, None, None, notes
    return bvse.best_barrier, f"BVSE E{bvse.best_dimension}", "BVSE", notes


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


@dataclass
class RankedHost(MSONable):
    """A done :class:`HostRecord` with its place in the ranking of its working ion.

    ``barrier`` / ``barrier_tier`` / ``barrier_tier_key``: see :func:`barrier_of`;
    ``rank`` 1 is the best, None for a host without any barrier (listed with
    ``include_unranked``); ``notes`` are the record's notes followed by the ranking's.
    """

    record: HostRecord
    barrier: float | None
    barrier_tier: str | None
    barrier_tier_key: str | None
    sustainability_score: float | None
    notes: list[Note]
    pareto: bool = False
    pareto_rank: int | None = None
    score: float | None = None
    score_components: dict[str, float | None] | None = None
    rank: int | None = None
    uncertainty: float | None = None
    mobility: str | None = None
    diffusivity_cm2_s: float | None = None
    flags: list[str] = field(default_factory=list)
    promoted: bool = True

    @property
    def capacity_mAh_g(self) -> float | None:
        return finite_or_none(self.record.capacity_mAh_g)

    @property
    def specific_energy_Wh_kg(self) -> float | None:
        """Voltage × gravimetric capacity (mAh/g × V = Wh/kg); None when either is unknown."""
        v, c = finite_or_none(self.record.voltage_V), self.capacity_mAh_g
        return None if v is None or c is None else v * c

    @property
    def energy_density_Wh_L(self) -> float | None:
        """Voltage × volumetric capacity (mAh/cm³ × V = Wh/L); None when either is unknown."""
        v, c = finite_or_none(self.record.voltage_V), finite_or_none(self.record.capacity_mAh_cm3)
        return None if v is None or c is None else v * c

    def note_codes(self) -> list[str]:
        return [n.code for n in self.notes]

    def as_dict(self) -> dict[str, Any]:
        """The ranked host as a document: the record's, plus the ranking's fields."""
        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "record": self.record.as_dict(), "barrier": self.barrier,
                "barrier_tier": self.barrier_tier, "barrier_tier_key": self.barrier_tier_key,
                "sustainability_score": self.sustainability_score,
                "notes": [n.as_dict() for n in self.notes], "pareto": self.pareto,
                "pareto_rank": self.pareto_rank, "score": self.score,
                "score_components": self.score_components, "rank": self.rank,
                "uncertainty": self.uncertainty, "mobility": self.mobility,
                "diffusivity_cm2_s": self.diffusivity_cm2_s, "flags": list(self.flags),
                "promoted": self.promoted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RankedHost:
        return cls(record=HostRecord.from_dict(d["record"]), barrier=d.get("barrier"),
                   barrier_tier=d.get("barrier_tier"), barrier_tier_key=d.get("barrier_tier_key"),
                   sustainability_score=d.get("sustainability_score"),
                   notes=[Note.from_dict(n) for n in d.get("notes") or ()],
                   pareto=bool(d.get("pareto")), pareto_rank=d.get("pareto_rank"),
                   score=d.get("score"), score_components=d.get("score_components"),
                   rank=d.get("rank"), uncertainty=d.get("uncertainty"),
                   mobility=d.get("mobility"), diffusivity_cm2_s=d.get("diffusivity_cm2_s"),
                   flags=list(d.get("flags") or ()), promoted=d.get("promoted", True))


def _check_done(records: Iterable[HostRecord]) -> list[HostRecord]:
    out = list(records)
    failed = [r for r in out if not r.done]
    if failed:
        f = failed[0]
        raise ValueError(
            f"rank takes done records only; {len(failed)} failed record(s) given, e.g. {f.formula} "
            f"({f.working_ion}, job {f.job_id}) failed at step {f.failure.step}: pass failed records "  # type: ignore[union-attr]
            "separately (export_run(records, failures, ...); records.split_failed splits a list)")
    return out


def _start(record: HostRecord) -> RankedHost:
    """Barrier, sustainability score and their notes of one record (not yet ranked)."""
    b, label, key, notes = barrier_of(record)
    sus = record.sustainability
    score = finite_or_none(sus.score) if sus else None
    host = RankedHost(record, b, label, key, score, [*record.notes, *notes])
    if score is None:
        why = "; ".join(sus.notes if sus else ()) or "no structure or formula"
        host.notes.append(Note("sustainability_unknown", f"sustainability score unknown ({why})"))
    if b is None:
        host.notes.append(Note("no_barrier", "no barrier (no percolating BVSE path below encut and no "
                                             "converged NEB): not ranked"))
    _mobility(host)
    if finite_or_none(record.voltage_V) is None and host.mobility is not None:
        host.notes.append(Note("voltage_unknown", "voltage unknown: no ML voltage ran for this host "
                                                  "(--voltage chgnet with the mlip extra); specific "
                                                  "energy and energy density unknown"))
    if host.capacity_mAh_g == 0:  # a fast path into a host that cannot take the electrons
        cap = record.capacity
        host.notes.append(Note("no_capacity", f"no intercalation capacity ({cap.note if cap else ''}): "
                                              "not ranked"))
    return host


def _mobility(host: RankedHost) -> None:
    """Flags, uncertainty, mobility class and D(300 K) of the host's barrier
    (:mod:`ionscreen.screening.mobility`). A BVSE barrier at an under-bonded site or below the
    floor is implausible: no class, not ranked (note ``implausible``)."""
    rec, b = host.record, host.barrier
    charge = get_working_ion(rec.working_ion).charge
    bvse = rec.bvse
    is_bvse = host.barrier_tier_key == "BVSE"
    flags = plausibility_flags(b if is_bvse else None, charge, bvse.bvs_ratio if bvse else None)
    if not is_bvse and rec.neb is not None:
        flags += [(f["code"], f["text"]) for f in rec.neb.flags if f["code"] != "not-converged"]
    if any(n.code == "empty_gap" for n in rec.notes):  # the note says what was removed
        flags.append(("empty-gap", "a gap left by a species removed from the cited structure"))
    if any(n.code == "ordered" for n in rec.notes):  # the note says which ordering
        flags.append(("ordered", "one ordering of a disordered file"))
    host.flags = list(dict.fromkeys(code for code, _ in flags))
    if b is None:
        return
    refusing = [f for f in flags if f[0] in ("under-bonded", "below-floor")]
    if is_bvse and refusing:
        host.notes.append(Note("implausible", "BVSE barrier not ranked: " + "; ".join(
            f"{code}: {text}" for code, text in refusing)))
        return
    for code, text in flags:
        if code == "under-bonded":  # the NEB relaxed the site: shown, not refused
            host.notes.append(Note("under_bonded_site", f"BVSE site {text}; the NEB barrier "
                                   "stands on relaxed endpoints"))
    own = rec.neb.uncertainty if (rec.neb is not None and not is_bvse) else None
    host.uncertainty = tier_uncertainty(host.barrier_tier_key, own)
    host.mobility = mobility_class(b, host.uncertainty)
    dims = int(bvse.best_dimension[0]) if is_bvse and bvse and bvse.best_dimension else 1
    host.diffusivity_cm2_s = float(f"{diffusivity(b, bvse.hop_length if bvse else None, dims):.3g}")


def tier_level(key: str | None) -> int:
    """Order of the tiers of the funnel: BVSE 0 < BVFF NEB 1 < any other calculator's NEB 2
    (an ML potential, the committee); -1 for no barrier."""
    if not key:
        return -1
    if key == "BVSE":
        return 0
    return 1 if key.startswith("BVFF") else 2


def is_pre_screen(tier: str | None) -> bool:
    """A ranking by BVSE or by the BVFF NEB is a pre-screen: neither ranks barriers like DFT
    (held-out Spearman 0.44 and 0.27, ``benchmarks/RESULTS.md``); an ML NEB tier ranks."""
    return tier_level(tier) < 2


def pre_screen_text(tier: str | None) -> str:
    """Why a list is a pre-screen, for the report and the terminal ("" when it is not one)."""
    if tier is None or not is_pre_screen(tier):
        return ""
    if tier_level(tier) <= 0:
        return ("ranked by BVSE only (no NEB tier ran): BVSE filters hosts, its barriers are not "
                "migration barriers")
    return ("ranked by the bond-valence force field NEB, which ranks barriers weakly against DFT; "
            "an ML NEB (the mlip extra, --neb-calculator chgnet or committee) ranks them")


def ranked_tier(hosts: Sequence[RankedHost]) -> str | None:
    """The tier that ranks an ion's hosts: the highest tier any plausible barrier came from
    (the most common producer at that level when several ran). Hosts whose barrier came from
    another tier are listed below the ranking, not promoted. ``"BVSE"``: a pre-screen."""
    keys = [h.barrier_tier_key for h in hosts if _rankable(h)]
    if not keys:
        return None
    top = max(tier_level(k) for k in keys)
    key, _ = _majority([k for k in keys if tier_level(k) == top])
    return key


def _not_promoted(h: RankedHost, tier: str | None) -> Note:
    """Why a host with a plausible barrier stands below the ranking."""
    rec = h.record
    if rec.neb is not None and tier_level(h.barrier_tier_key) < tier_level(tier):
        why = "its NEB gave no rankable barrier (see the NEB note)"
    elif tier_level(h.barrier_tier_key) < tier_level(tier):
        cut = promote_cutoff(get_working_ion(rec.working_ion).charge)
        why = (f"BVSE {h.barrier:.2f} eV is above the {cut:.1f} eV filter" if h.barrier > cut
               else "beyond the --neb-top cap of hosts promoted to NEB, or a capacity of zero")
    else:
        why = f"another NEB producer than the ranking's ({tier})"
    return Note("not_promoted", f"not promoted: barrier from {h.barrier_tier}, {why}; listed below "
                                f"the hosts ranked by {tier}, not among them")


def _rankable(h: RankedHost) -> bool:
    """A plausible barrier, and a capacity that is not formally zero (unknown capacity is
    ranked, noted)."""
    return h.barrier is not None and h.mobility is not None and h.capacity_mAh_g != 0


def _tier_notes(ranked: list[RankedHost], ion: str) -> None:
    """Voltages of different ML models compare only loosely (the barriers of a ranking share
    one tier: :func:`ranked_tier`)."""
    ml_major, _ = _majority([h.record.ml_model for h in ranked
                             if finite_or_none(h.record.voltage_V) is not None
                             or finite_or_none(h.record.volume_change) is not None])
    for h in ranked:
        m = h.record.ml_model
        if m and ml_major and m != ml_major:
            h.notes.append(Note("ml_model_mismatch", f"voltage/volume change from {m} while most rows "
                                f"use {ml_major}: not comparable (energies of different models)"))


def _energy_known(ranked: list[RankedHost]) -> bool:
    """Whether the energy objective counts for this ion: some ranked host has a voltage."""
    return any(h.specific_energy_Wh_kg is not None for h in ranked)


def _pareto(ranked: list[RankedHost]) -> None:
    """Pareto fronts over (barrier ↓, capacity ↑[, specific energy ↑], sustainability ↑) of the
    hosts that have all of them; the energy counts when some host of the ion has a voltage."""
    energy = _energy_known(ranked)
    parts: list[tuple[str, Any]] = [("capacity", lambda h: h.capacity_mAh_g)]
    if energy:
        parts.append(("specific energy (no voltage)", lambda h: h.specific_energy_Wh_kg))
    parts.append(("sustainability score", lambda h: h.sustainability_score))
    full = [h for h in ranked if all(get(h) is not None for _, get in parts)]
    fronts = non_dominated_sort([(h.barrier, *(get(h) for _, get in parts)) for h in full],
                                ("min",) + ("max",) * len(parts))
    for h, f in zip(full, fronts):
        h.pareto_rank, h.pareto = f, f == 0
    for h in ranked:
        if h.pareto_rank is None:
            missing = [name for name, get in parts if get(h) is None]
            h.notes.append(Note("no_pareto", f"not on any Pareto front: {' and '.join(missing)} missing"))


def _score(ranked: list[RankedHost], w: Mapping[str, float]) -> None:
    """Weighted score of min-max normalised descriptors (a missing one counts 0, with a note).
    Without any voltage for the ion, the energy weight goes to capacity."""
    w = dict(w)
    if not _energy_known(ranked):
        w["capacity"] = w.get("capacity", 0.0) + w.get("energy", 0.0)
        w["energy"] = 0.0
    norm = {"barrier": _minmax([h.barrier for h in ranked], reverse=True),
            "energy": _minmax([h.specific_energy_Wh_kg for h in ranked]),
            "capacity": _minmax([h.capacity_mAh_g for h in ranked]),
            "sustainability": _minmax([h.sustainability_score for h in ranked])}
    for i, h in enumerate(ranked):
        comps = {k: v[i] for k, v in norm.items()}
        missing = [k for k, v in comps.items() if v is None and w.get(k, 0.0) > 0]
        if missing:
            h.notes.append(Note("missing_score_part",
                                f"score counts missing {', '.join(missing)} as worst (0)"))
        h.score_components = {k: (None if v is None else round(v, 6)) for k, v in comps.items()}
        h.score = round(sum(w.get(k, 0.0) * (v or 0.0) for k, v in comps.items()), 9)


#: flags that put a row after the unflagged rows of its mobility class: the barrier stands on an
#: under-bonded site or a host that changed its framework, or is a band without a saddle (a
#: lower bound, ranked only from flags.NO_SADDLE_RANKED up), so it is the less certain finding
DOUBTFUL = ("under-bonded", "framework-changed", "empty-gap", "no-saddle")


def _order_key(h: RankedHost) -> tuple:
    r = h.record
    return (CLASSES.index(h.mobility) if h.mobility in CLASSES else len(CLASSES),
            any(f in DOUBTFUL for f in h.flags),
            -(h.score or 0.0), h.barrier, str(r.formula or ""), str(r.candidate_id or r.job_id or ""))


def rank(records: Iterable[HostRecord], ion: str,
         weights: Mapping[str, Any] | str | Path | None = None,
         include_unranked: bool = False) -> list[RankedHost]:
    """Rank the done records of one working ion (see the module docstring for every rule).

    Records of other ions are left out. A failed record raises :class:`ValueError`: failures
    are never dropped without a word, they travel as a separate list (see
    :func:`ionscreen.screening.records.split_failed`). Returns :class:`RankedHost` objects, best
    first (the records are not modified). ``include_unranked=True`` appends the hosts without
    any barrier or with no capacity, after the hosts that stopped at a lower tier (not
    promoted; ``rank`` None, a note says why). ``weights``: a mapping, a config file path,
    or None for the packaged defaults.
    """
    w = resolve_weights(weights)
    ion = normalise_ion(ion)
    hosts = [_start(r) for r in _check_done(records) if normalise_ion(r.working_ion) == ion]
    tier = ranked_tier(hosts)
    for h in hosts:
        if _rankable(h) and h.barrier_tier_key != tier:
            h.promoted = False
            h.notes.append(_not_promoted(h, tier))
    ranked = [h for h in hosts if _rankable(h) and h.promoted]
    if ranked:
        _tier_notes(ranked, ion)
        _pareto(ranked)
        _score(ranked, w)
        ranked.sort(key=_order_key)
        for k, h in enumerate(ranked, start=1):
            h.rank = k
    if not include_unranked:
        return ranked
    below = sorted((h for h in hosts if _rankable(h) and not h.promoted), key=_order_key)
    unranked = sorted((h for h in hosts if not _rankable(h)),
                      key=lambda h: (str(h.record.formula or ""), str(h.record.candidate_id or "")))
    return ranked + below + unranked


def rank_all(records: Iterable[HostRecord],
             weights: Mapping[str, Any] | str | Path | None = None,
             ions: Sequence[str] | None = None,
             include_unranked: bool = False) -> dict[str, list[RankedHost]]:
    """:func:`rank` for every ion in ``records`` (or in ``ions``), in :data:`ION_ORDER`."""
    records = _check_done(records)
    w = resolve_weights(weights)
    ion_list = [normalise_ion(i) for i in ions] if ions else ions_in(records)
    return {ion: rank(records, ion, w, include_unranked=include_unranked) for ion in ion_list}
