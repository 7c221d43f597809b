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
    """``{"path", "ion", "oxi"}`` -> one validated candidate from a user file (bad files fail here)."""
    from ionscreen.structures.candidates import from_file

    return from_file(doc["path"], doc["ion"], doc.get("oxi")).to_dict()


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
    for rec in store.results("candidate", state="failed"):
        failed.append(HostRecord.failed_file(rec.input["path"], rec.input["ion"], _failure(rec),
                                             job_id=rec.id))
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
