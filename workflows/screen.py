"""The main job: candidates -> BVSE -> BVFF-NEB on the top N per ion -> descriptors -> rank -> export.

``ScreenMaker(...).make()`` builds the stages (in the manner of atomate2's Makers); any engine
runs them. The local engine commits every finished job to a SQLite store, so a killed screen
resumes where it stopped; ``collect_records`` and ``export`` work on a finished (or running)
store, which is what ``ionscreen rank`` and ``ionscreen export`` do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ionscreen.structures.ions import ANIONS, SCREEN_DEFAULT

from .local import Step
from .steps import (
    STEP_VERSIONS,
    bvse_for_neb,
    bvse_step,
    insertion_step,
    neb_step,
)
from .store import ResultStore

STORE_NAME = "ionscreen.sqlite"


def candidate_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"path", "ion", "oxi"}`` -> one validated candidate from a user file (bad files fail here)."""
    from ionscreen.structures.candidates import make_candidate
    from ionscreen.structures.io import load_host
    from ionscreen.structures.ions import get_working_ion

    path, ion = doc["path"], doc["ion"]
    st = load_host(path, oxidation_states=doc.get("oxi"))
    n = float(get_working_ion(ion).count(st))
    cand = make_candidate(st, ion, f"file:{path}", citation="user structure",
                          state="discharged" if n else "as given", provenance={"path": path},
                          discharged=st if n else None, n_ions=n or None)
    return cand.to_dict()


STEPS = {
    "candidate": Step("candidate", candidate_step, "1"),
    "bvse": Step("bvse", bvse_step, STEP_VERSIONS["bvse"]),
    "neb": Step("neb", neb_step, STEP_VERSIONS["neb"]),
    "insertion": Step("insertion", insertion_step, STEP_VERSIONS["insertion"]),
}


def best_bvse_barrier(summary: dict[str, Any] | None) -> float:
    """Lowest finite percolation barrier (the easiest dimension), inf when none percolates."""
    from ionscreen.screening.bvse import BVSESummary

    return BVSESummary.from_dict(summary).best_barrier if summary else math.inf


@dataclass
class ScreenMaker:
    """What to screen and how; ``make()`` returns the stages of the run."""

    ions: list[str] = field(default_factory=lambda: list(SCREEN_DEFAULT))
    hosts: str = "builtin"
    """"builtin" (all prototypes), "none", or prototype ids separated by commas."""
    substitute: list[str] | None = None
    """None (no substitutions), ["default"], or rules such as ["Mn:Fe,Co", "O:S"]."""
    cps: bool = False
    cp_models: int = 1
    seed: int = 0
    files: list[str] = field(default_factory=list)
    oxi: dict[str, float] | None = None
    resolution: float = 0.2
    bvse: dict[str, Any] = field(default_factory=dict)
    """Other BVSESettings fields (resolution is set above)."""
    neb_top: int = 3
    """BVFF-NEB on this many best BVSE candidates per ion (0: none)."""
    neb_calculator: str = "bvff"
    neb: dict[str, Any] = field(default_factory=lambda: {"images": 5, "steps": 300})
    """NEBSettings fields; 300 steps per stage bound the time a band that will not converge takes."""
    voltage_calculator: str | None = None
    """An ML calculator ("chgnet") for voltage and volume change of the top discharged hosts."""
    voltage_top: int = 3

    # ---- candidates
    def builtin_candidates(self) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """Prototypes, substitutions and polymers as candidate documents (+ rejected substitutions)."""
        from ionscreen.structures import candidates as cgen

        ids = None if self.hosts in ("builtin", "all") else ([] if self.hosts == "none" else
                                                              [h for h in self.hosts.split(",") if h])
        found: list = []
        rejected: list[dict[str, str]] = []
        if ids != []:
            found += list(cgen.from_prototypes(self.ions, ids))
        if self.substitute:
            cat, an = _substitution_rules(self.substitute)
            subs, rejected = cgen.from_substitutions(self.ions, ids or None, cat, an)
            found += subs
        if self.cps:
            found += cgen.from_polymers(self.ions, n_disordered=self.cp_models, seed=self.seed)
        return [c.to_dict() for c in cgen.unique(found)], rejected

    def bvse_settings(self) -> dict[str, Any]:
        from ionscreen.screening.bvse import BVSESettings

        s = BVSESettings(**{**self.bvse, "resolution": self.resolution})
        s.validate()
        d = asdict(s)
        d["threads"] = None  # not part of the result's identity
        return d

    def neb_settings(self) -> dict[str, Any]:
        """NEBSettings fields of the NEB jobs: ``neb``, plus the BVSE's ``derive_nitride`` for the
        BVFF, so that a host BVSE screened with a derived row is not refused by its NEB."""
        if self.bvse.get("derive_nitride") and self.neb_calculator.lower() == "bvff":
            return {**self.neb, "derive_nitride": True}
        return dict(self.neb)

    def make(self) -> list[Any]:
        """Stages: [user files ->] BVSE -> NEB on the top N per ion [-> ML voltage]."""
        from ionscreen.structures.candidates import iter_structure_files

        builtin, _ = self.builtin_candidates()
        settings = self.bvse_settings()
        stages: list[Any] = []
        if self.files:
            paths = [str(p) for p in iter_structure_files(self.files)]
            stages.append([(STEPS["candidate"], {"path": p, "ion": ion, "oxi": self.oxi})
                           for p in paths for ion in self.ions])

        def bvse_jobs(store: ResultStore) -> list:
            cands = list(builtin)
            cands += [r.result for r in store.results("candidate")]
            return [(STEPS["bvse"], {"candidate": c, "settings": settings}) for c in cands]

        stages.append(bvse_jobs)
        if self.neb_top > 0:
            stages.append(self._top_jobs("neb", self.neb_top, lambda job, rec: {
                "candidate": job["candidate"], "bvse": bvse_for_neb(rec.result["result"]),
                "settings": self.neb_settings(), "calculator": self.neb_calculator}))
        if self.voltage_calculator:
            stages.append(self._top_jobs("insertion", self.voltage_top, lambda job, rec: {
                "candidate": job["candidate"], "calculator": self.voltage_calculator},
                only_discharged=True))
        return stages

    def _top_jobs(self, step: str, n: int, doc: Callable[[dict, Any], dict],
                  only_discharged: bool = False) -> Callable[[ResultStore], list]:
        def make_jobs(store: ResultStore) -> list:
            picked = select_top(store.results("bvse"), n, only_discharged)
            return [(STEPS[step], doc(rec.input, rec)) for rec in picked]

        return make_jobs


def select_top(records: Iterable[Any], n: int, only_discharged: bool = False) -> list[Any]:
    """The ``n`` best done BVSE records per working ion (lowest finite percolation barrier,
    ties by candidate id), largest cells first, so that a pool or MPI run does not end waiting
    on one big job. Shared by the local and the FireWorks engine."""
    by_ion: dict[str, list] = {}
    for rec in records:
        cand = rec.input["candidate"]
        if only_discharged and cand.get("state") != "discharged":
            continue
        b = best_bvse_barrier(rec.result["summary"])
        if math.isfinite(b):
            by_ion.setdefault(cand["working_ion"], []).append((b, cand["id"], rec))
    picked = []
    for _ion, lst in sorted(by_ion.items()):
        picked += [rec for _b, _cid, rec in sorted(lst, key=lambda t: (t[0], t[1]))[:n]]
    picked.sort(key=lambda rec: (-len(rec.input["candidate"]["structure"]["sites"]), rec.id))
    return picked


def _substitution_rules(words: list[str]) -> tuple[dict | None, dict | None]:
    if not words or words == ["default"]:
        return None, None
    cat: dict[str, list[str]] = {}
    an: dict[str, list[str]] = {}
    for w in words:
        if ":" not in w:
            raise ValueError(f"'{w}' is not OLD:NEW[,NEW] (example: --substitute Mn:Fe,Co O:S)")
        old, new = w.split(":", 1)
        (an if old in ANIONS else cat)[old] = \
            [x for x in new.split(",") if x]
    return cat, an


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


def landscapes_for(records: list[Any], per_ion: int = 3, resolution: float = 0.2) -> dict[str, Any]:
    """BVSE grids of the best done records per ion (recomputed: grids are not stored), for the report."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.structures.errors import IonscreenError

    out: dict[str, Any] = {}
    by_ion: dict[str, list] = {}
    for r in records:
        if r.done and r.bvse is not None and math.isfinite(r.bvse.best_barrier):
            by_ion.setdefault(r.working_ion, []).append(r)
    for lst in by_ion.values():
        for r in sorted(lst, key=lambda r: r.bvse.best_barrier)[:per_ion]:
            try:
                out[r.job_id] = compute_landscape(r.structure, r.working_ion, resolution=resolution)
            except IonscreenError:
                continue
    return out


def export(store: ResultStore, out_dir: str | Path, top_n: int = 10, weights: Any = None,
           landscapes: bool = True) -> dict[str, Path]:
    """Rank and write every export of a store (ranked CSV/JSON per ion, CIF zip, HTML report)."""
    from ionscreen.screening.export import export_run

    records, failures = collect_records(store)
    lands = landscapes_for(records) if landscapes else None
    return export_run(records, failures, out_dir, top_n=top_n, weights=weights, landscapes=lands)
