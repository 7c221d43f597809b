"""Records of a screen's store: the user-file candidate step, the best BVSE barrier, and the
records, failures and exports that ranking reads from a finished (or running) store.

The screen itself (steps, stages, settings) is described in :mod:`ionscreen.workflows.plan`;
``collect_records`` and ``export`` work on the store any engine filled, which is what
``ionscreen rank`` and ``ionscreen export`` do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .store import ResultStore


def candidate_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"path", "ion", "oxi"[, "strip"][, "order", "order_max_atoms"][, "mobile"]}`` -> one validated
    candidate from a user file (bad files fail here); with ``order``, ``{"candidates": [...]}``:
    the file's lowest-Ewald orderings (:func:`candidate_docs` reads both). With
    ``{"optimade": {"provider", "base_url", "entry"}, ...}`` instead of ``path``: the
    candidates of one OPTIMADE entry."""
    from ionscreen.structures.candidates import from_file, from_file_ordered, from_optimade

    strip, mobile = doc.get("strip") or (), doc.get("mobile")
    if "optimade" in doc:
        src = doc["optimade"]
        return {"candidates": [c.to_dict() for c in from_optimade(
            src["entry"], src["provider"], src["base_url"], doc["ion"], doc.get("oxi"), strip,
            int(doc.get("order") or 0), doc.get("order_max_atoms"), mobile)]}
    if doc.get("order"):
        return {"candidates": [c.to_dict() for c in from_file_ordered(
            doc["path"], doc["ion"], int(doc["order"]), doc.get("oxi"), strip,
            doc.get("order_max_atoms"), mobile)]}
    return from_file(doc["path"], doc["ion"], doc.get("oxi"), strip=strip, mobile=mobile).to_dict()


def candidate_docs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidate documents of a ``candidate`` job's result (one, or the orderings)."""
    return list(result["candidates"]) if "candidates" in result else [result]


# --------------------------------------------------------------------------- records from a store


def _failure(rec: Any) -> Any:
    from ionscreen.screening.records import Failure

    return Failure(rec.step, rec.error, rec.reason)


def _neb_summaries(store: ResultStore) -> dict[str, Any]:
    """The NEB summary of each candidate: its done job's, else that of its failed job (so the
    record says why it has no NEB barrier)."""
    from ionscreen.screening.neb import NEBSummary

    nebs: dict[str, Any] = {}
    for rec in store.results("neb", state=None):
        cid = rec.input["candidate"]["id"]
        if rec.state == "done":
            nebs[cid] = NEBSummary.from_dict(rec.result["summary"])
        elif rec.state == "failed" and cid not in nebs:
            nebs[cid] = NEBSummary.failed(str(rec.input.get("calculator", "bvff")), rec.reason)
    return nebs


def origin(step: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a job's input is about, for a failure's row: ``{"formula", "ion", "source",
    "citation"}`` of its candidate, user file, OPTIMADE entry or OPTIMADE page (a page is of
    no one ion: ``ion`` None)."""
    cand = doc.get("candidate")
    if cand:
        return {"formula": cand.get("formula"), "ion": cand.get("working_ion"),
                "source": cand.get("source"), "citation": cand.get("citation", "")}
    if step == "optimade":
        return {"formula": "(fetch)", "ion": None, "citation": str(doc.get("url", "")),
                "source": f"optimade:{doc.get('provider')} page {int(doc.get('page', 0)) + 1}"}
    if "optimade" in doc:
        from ionscreen.structures.optimade import entry_source, entry_url

        src, entry = doc["optimade"], doc["optimade"]["entry"]
        attrs = entry.get("attributes") or {}
        return {"formula": str(attrs.get("chemical_formula_reduced") or entry["id"]),
                "ion": doc.get("ion"), "source": entry_source(src["provider"], entry["id"]),
                "citation": entry_url(src["base_url"], entry["id"])}
    path = doc.get("path")
    return {"formula": Path(path).name if path else None, "ion": doc.get("ion"),
            "source": f"file:{path}" if path else None, "citation": "user structure"}


def _failed_input(rec: Any) -> Any:
    """The record of a user file, an OPTIMADE entry or page that made no candidate."""
    from ionscreen.screening.records import HostRecord

    o = origin(rec.step, rec.input or {})
    return HostRecord(job_id=rec.id, candidate_id=None, formula=str(o["formula"]),
                      working_ion=o["ion"], source=str(o["source"]), citation=o["citation"],
                      failure=_failure(rec))


def collect_records(store: ResultStore) -> tuple[list[Any], list[Any]]:
    """(done records, failed records) of a store: one
    :class:`~ionscreen.screening.records.HostRecord` per finished BVSE job, and as failures
    every failed BVSE job, user file that did not load, NEB and voltage job (the candidates of
    the last two keep their done records). Queued and running jobs are not finished: left out."""
    from ionscreen.screening.bvse import BVSESummary
    from ionscreen.screening.records import HostRecord
    from ionscreen.structures.candidates import Candidate

    nebs = _neb_summaries(store)
    ins = {rec.input["candidate"]["id"]: rec.result for rec in store.results("insertion")}
    done, failed = [], []
    for rec in store.results("bvse", state=None):
        if rec.state not in ("done", "failed"):
            continue
        cand = Candidate.from_dict(rec.input["candidate"])
        if rec.state == "failed":
            failed.append(HostRecord.from_results(cand, None, failure=_failure(rec), job_id=rec.id))
            continue
        done.append(HostRecord.from_results(
            cand, BVSESummary.from_dict(rec.result["summary"]), nebs.get(cand.id), ins.get(cand.id),
            job_id=rec.id))
    # an OPTIMADE page holds hosts for every ion: no ion of its own (no ranked_<ion> file)
    for step in ("optimade", "candidate"):
        failed += [_failed_input(rec) for rec in store.results(step, state="failed")]
    for step in ("neb", "insertion"):
        for rec in store.results(step, state="failed"):
            cand = Candidate.from_dict(rec.input["candidate"])
            failed.append(HostRecord.from_results(cand, None, failure=_failure(rec), job_id=rec.id))
    return done, failed


def landscapes_for(records: list[Any], settings: Mapping[str, Mapping[str, Any]],
                   per_ion: int = 3) -> dict[str, Any]:
    """BVSE grids of the best done records per ion, for the report: recomputed (grids are not
    stored) with the settings of each record's own BVSE job (``settings``: job id -> the
    BVSESettings fields of its input), so the slice shows the landscape that was ranked."""
    from ionscreen.errors import IonscreenError
    from ionscreen.screening.bvse import BVSESettings, compute_landscape

    out: dict[str, Any] = {}
    by_ion: dict[str, list] = {}
    for r in records:
        if r.done and r.bvse is not None and math.isfinite(r.bvse.best_barrier):
            by_ion.setdefault(r.working_ion, []).append(r)
    for lst in by_ion.values():
        for r in sorted(lst, key=lambda r: r.bvse.best_barrier)[:per_ion]:
            try:
                out[r.job_id] = compute_landscape(r.structure, r.working_ion, settings=BVSESettings.
                                                  from_dict(settings.get(r.job_id) or {}))
            except IonscreenError:
                continue
    return out


def export(store: ResultStore, out_dir: str | Path, top_n: int = 10, weights: Any = None,
           landscapes: bool = True) -> dict[str, Path]:
    """Rank and write every export of a store (ranked CSV/JSON per ion, CIF zip, HTML report)."""
    from ionscreen.screening.export import export_run

    records, failures = collect_records(store)
    lands = None
    if landscapes:
        settings = {rec.id: rec.input.get("settings") or {} for rec in store.results("bvse")}
        lands = landscapes_for(records, settings)
    return export_run(records, failures, out_dir, top_n=top_n, weights=weights, landscapes=lands)


# --------------------------------------------------------------------------- a run folder's settings

#: settings a folder's screen may change and resume: a larger --max fetches on from the
#: stored pages (a smaller one screens fewer of them)
IN_PLACE = frozenset({"optimade_max"})

#: the run settings of stores written before the whole spec was recorded (0.2)
_LEGACY_KEYS = ("ions", "hosts", "resolution", "neb_top")


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


def settings_conflicts(runs: list[Mapping[str, Any]], spec: Mapping[str, Any]) -> list[str]:
    """What ``spec`` (a :meth:`ScreenSpec.as_dict`) changes against the last screen recorded in
    ``runs`` (a store's :meth:`~ionscreen.workflows.store.ResultStore.runs`): one
    ``"name: stored → now"`` line per differing setting, [] when they agree or no screen ran.

    A folder holds one screen: jobs of two specs in one store would be ranked and exported
    together (every host twice, at two resolutions, say)."""
    import json

    spec = json.loads(json.dumps(dict(spec), default=str))  # as the store holds it
    for run in reversed(runs):
        stored = (run.get("settings") or {})
        if "spec" in stored:
            # a setting added since the store was made counts at its default there; one
            # removed since (voltage_top) no longer means anything
            from .plan import ScreenSpec

            defaults = json.loads(json.dumps(ScreenSpec().as_dict(), default=str))
            old = {**{k: defaults.get(k) for k in spec}, **stored["spec"]}
            return [f"{k}: {_short(old.get(k))} → {_short(spec.get(k))}"
                    for k in sorted(spec) if old.get(k) != spec.get(k) and k not in IN_PLACE]
        if any(k in stored for k in _LEGACY_KEYS):  # a store from before 0.2.1
            now = {"ions": spec.get("ions"), "hosts": spec.get("hosts"),
                   "resolution": (spec.get("bvse") or {}).get("resolution"),
                   "neb_top": spec.get("neb_top")}
            return [f"{k}: {_short(stored.get(k))} → {_short(now[k])}" for k in _LEGACY_KEYS
                    if k in stored and stored.get(k) != now[k]]
    return []


def set_aside(store_path: Path) -> Path | None:
    """Rename a store (and its WAL/SHM/lock files) to ``<name>.<time>.sqlite`` beside it, so a
    new screen starts empty and nothing computed is lost. Returns the new path (None: no store)."""
    import os
    import time

    from .store_sqlite import lock_store

    if not store_path.exists():
        return None
    os.close(lock_store(store_path))  # refuses while a run writes to it
    stamp = time.strftime("%Y%m%d-%H%M%S")
    new = store_path.with_name(f"{store_path.stem}.{stamp}{store_path.suffix}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(store_path) + suffix)
        if src.exists():
            src.rename(str(new) + suffix)
    Path(str(store_path) + ".lock").unlink(missing_ok=True)
    return new
