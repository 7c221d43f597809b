"""The FireWorks engine: the screen's steps as Firetasks, one Workflow per candidate batch.

Each step of :data:`ionscreen.workflows.screen.STEPS` runs in a :class:`IonscreenStepTask`,
which writes its result (or its failure with the reason) through the result-store interface
and raises on failure, so that the Firework FIZZLES and FireWorks shows it. Job ids are those of
the local engine (``STEPS[step].job_id(input)``): a re-submitted or rerun job finds its earlier
result in the store and is not computed again, and both engines fill the same kind of store,
which ``collect_records`` / ``export`` / ``ionscreen rank`` read.

:class:`ScreenWorkflowMaker` (``make(candidates) -> list[Workflow]``) builds, per batch of
candidates of one working ion:

* one BVSE Firework per candidate;
* a *select* Firework, child of all of them (``_allow_fizzled_parents``: a candidate that fails
  does not stop its batch), which reads the batch's BVSE results from the store, picks the
  ``neb_top`` best per ion (lowest percolation barrier, ties by candidate id: the local
  engine's rule) and adds their NEB Fireworks as its children with ``FWAction(additions=...)``
  (and the ML voltage Fireworks of the best discharged hosts when ``voltage_calculator`` is
  set). If the select runs again (a parent was rerun), it adds only the Fireworks that its
  workflow does not hold yet.

NEB top-N selection is per batch: batches never mix working ions, and with ``batch_size`` at
least the number of candidates of an ion (or 0: one batch per ion) the selection is exactly
the local engine's.

Every Firework's spec carries ``_queueadapter`` (resources for ``qlaunch``, per step,
overridable), ``_category`` on the NEB (``"neb"``, or ``"ml"`` with an ML calculator) and ML
voltage (``"ml"``) Fireworks, ``_priority`` if given, and ``_ionscreen`` (step, job id,
candidate) for queries and dashboards.

Store specs written into the tasks (``store`` parameter):

* ``"launchpad"`` / ``"launchpad:<collection>"`` (default, collection ``ionscreen_jobs``):
  a :class:`MongoStore` on the database of the LaunchPad that runs the Firework (FireWorks
  hands the task its LaunchPad through ``spec._add_launchpad_and_fw_id``); no credentials are
  written into the workflows, and it works with the mongomock LaunchPad in one process;
* ``"mongodb://..."``: a :class:`MongoStore` on that server (credentials in the URI are
  stored in the Fireworks' specs: prefer the default);
* a file path: a :class:`SQLiteStore` (single-machine use only: WAL needs one host).

Task inputs are stored as JSON text (``input``), because FireWorks would otherwise turn the
structures' ``@module``/``@class`` dicts into pymatgen objects (and date-like strings into
datetimes) when it loads the spec, which would change the job ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fireworks import Firework, FWAction, LaunchPad, Workflow
from fireworks.core.firework import FiretaskBase
from fireworks.utilities.fw_utilities import explicit_serialize

from ionscreen.structures.errors import IonscreenError

from .local import Step, _execute, _worker_name
from .screen import select_top
from .steps import bvse_for_neb
from .store import Job, RawJSON, ResultStore, SQLiteStore
from .store_mongo import DEFAULT_COLLECTION, MongoStore

DEFAULT_STORE = "launchpad"

DEFAULT_QUEUEADAPTER: dict[str, dict[str, Any]] = {
    # "nodes" is the SLURM template's key, "nnodes" the PBS one; CommonAdapter ignores the other
    "bvse": {"nodes": 1, "nnodes": 1, "ntasks": 1, "walltime": "00:30:00"},
    "select": {"nodes": 1, "nnodes": 1, "ntasks": 1, "walltime": "00:10:00"},
    "neb": {"nodes": 1, "nnodes": 1, "ntasks": 1, "walltime": "02:00:00"},
    "ml": {"nodes": 1, "nnodes": 1, "ntasks": 1, "cpus_per_task": 4, "mem": "16G",
           "walltime": "04:00:00"},
}
"""Default ``spec._queueadapter`` per category (``bvse``, ``select``, ``neb``, ``ml``)."""


class StepFailed(IonscreenError):
    """A step failed; raised by the Firetask so that FireWorks marks the Firework FIZZLED."""


# --------------------------------------------------------------------------- stores

def resolve_store(spec: Any, launchpad: LaunchPad | None = None) -> tuple[ResultStore, bool]:
    """A store from a task's ``store`` parameter; returns (store, whether to close it)."""
    if isinstance(spec, ResultStore):
        return spec, False
    text = str(spec)
    if text == "launchpad" or text.startswith("launchpad:"):
        coll = text.partition(":")[2] or DEFAULT_COLLECTION
        lp = launchpad if launchpad is not None else LaunchPad.auto_load()
        return MongoStore(lp.db[coll]), False
    if text.startswith(("mongodb://", "mongodb+srv://")):
        return MongoStore(text, collection=DEFAULT_COLLECTION), True
    return SQLiteStore(text), True


def _load_input(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value)
    if isinstance(value, Mapping):  # written by hand: undo FireWorks' object decoding
        from .store import _canonical

        return json.loads(json.dumps(_canonical(value)))
    raise IonscreenError(f"a step input must be a JSON text or a dict, not {type(value).__name__}")


def run_job(store: ResultStore, step: Step, doc: dict[str, Any],
            jid: str | None = None) -> tuple[str, str, Any]:
    """Run one job through ``store`` (the Firetasks' core, usable without FireWorks).

    Adds the job if missing; a job already ``done`` is not computed again. Returns
    ``(job id, "done" | "reused" | "failed", result or (error, reason))``.
    """
    jid = jid or step.job_id(doc)
    store.add_jobs([Job(jid, step.name, doc)])
    rec = store.get(jid)
    if rec is not None and rec.state == "done":
        return jid, "reused", rec.result
    store.mark_running(jid, _worker_name())
    ok, payload, seconds, worker = _execute(step.fn, doc)
    if ok:
        store.finish(jid, RawJSON(payload), seconds, worker)
        return jid, "done", json.loads(payload)
    error, reason, tb = payload
    store.fail(jid, error, reason, seconds, worker)
    if tb:
        store.log("error", f"{step.name} {jid} failed on {worker}:\n{tb}")
    return jid, "failed", (error, reason)


# --------------------------------------------------------------------------- Firetasks

@explicit_serialize
class IonscreenStepTask(FiretaskBase):
    """Run one ionscreen step (``STEPS[step]``) on ``input`` and store the outcome in ``store``.

    Parameters: ``step`` (name in ``screen.STEPS``), ``input`` (the input document as JSON
    text, or a dict), ``store`` (store spec, see the module docstring); optional ``job_id``
    (checked against the input: a mismatch means the step version or the input changed).
    A failure is stored with its reason and then raised: the Firework FIZZLES.
    """

    required_params = ["step", "input", "store"]
    optional_params = ["job_id"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        from .screen import STEPS

        name = self["step"]
        if name not in STEPS:
            raise IonscreenError(f"unknown ionscreen step '{name}' (known: {', '.join(STEPS)})")
        step = STEPS[name]
        doc = _load_input(self["input"])
        jid = step.job_id(doc)
        if self.get("job_id") and self["job_id"] != jid:
            raise IonscreenError(
                f"{name}: the job id of this input is {jid}, the workflow says {self['job_id']}: "
                "the step's version or this ionscreen differs from the one that submitted it; "
                "submit again")
        store, owned = resolve_store(self["store"], getattr(self, "launchpad", None))
        try:
            jid, state, out = run_job(store, step, doc, jid)
        finally:
            if owned:
                store.close()
        if state == "failed":
            raise StepFailed(f"{name} job {jid} failed: {out[0]}: {out[1]}")
        data: dict[str, Any] = {"job_id": jid, "step": name, "state": "done",
                                "reused": state == "reused"}
        if isinstance(out, dict) and isinstance(out.get("summary"), dict):
            data["summary"] = out["summary"]
        return FWAction(stored_data=data)


@explicit_serialize
class IonscreenSelectTask(FiretaskBase):
    """Pick the best BVSE results of a batch and add their NEB (and ML voltage) Fireworks.

    Parameters: ``store``, ``bvse_jobs`` (the batch's BVSE job ids), ``neb`` (``{"top",
    "settings", "calculator"}`` or None), ``insertion`` (``{"top", "calculator"}`` or None),
    ``fw_options`` (``{step: {"_category", "_queueadapter", "_priority"}}`` for the new
    Fireworks), ``name`` (prefix of their names).
    """

    required_params = ["store", "bvse_jobs"]
    optional_params = ["neb", "insertion", "fw_options", "name"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        from .screen import STEPS

        store, owned = resolve_store(self["store"], getattr(self, "launchpad", None))
        try:
            recs = [store.get(i) for i in self["bvse_jobs"]]
        finally:
            if owned:
                store.close()
        done = [r for r in recs if r is not None and r.state == "done"]
        opts = self.get("fw_options") or {}
        new: list[tuple[str, dict[str, Any]]] = []
        neb = self.get("neb")
        if neb and int(neb.get("top", 0)) > 0:
            for rec in select_top(done, int(neb["top"])):
                new.append(("neb", {"candidate": rec.input["candidate"],
                                    "bvse": bvse_for_neb(rec.result["result"]),
                                    "settings": neb.get("settings") or {},
                                    "calculator": neb.get("calculator", "bvff")}))
        ins = self.get("insertion")
        if ins and ins.get("calculator") and int(ins.get("top", 0)) > 0:
            for rec in select_top(done, int(ins["top"]), only_discharged=True):
                new.append(("insertion", {"candidate": rec.input["candidate"],
                                          "calculator": ins["calculator"]}))
        present = self._jobs_in_workflow()
        fws = []
        picked = []
        for step_name, doc in new:
            jid = STEPS[step_name].job_id(doc)
            picked.append(jid)
            if jid in present:
                continue
            fws.append(step_firework(step_name, doc, self["store"], opts.get(step_name),
                                     name=self.get("name", "ionscreen"), jid=jid))
        return FWAction(additions=[Workflow([fw]) for fw in fws],
                        stored_data={"picked": picked, "added": len(fws),
                                     "bvse_done": len(done), "bvse_total": len(recs)})

    def _jobs_in_workflow(self) -> set[str]:
        lp = getattr(self, "launchpad", None)
        fw_id = getattr(self, "fw_id", None)
        if lp is None or fw_id is None:
            return set()
        wf = lp.workflows.find_one({"nodes": fw_id}, {"nodes": 1})
        if not wf:
            return set()
        found = lp.fireworks.find({"fw_id": {"$in": wf["nodes"]},
                                   "spec._ionscreen.job_id": {"$exists": True}},
                                  {"spec._ionscreen": 1})
        return {d["spec"]["_ionscreen"]["job_id"] for d in found}


def step_firework(step: str, doc: dict[str, Any], store: str, options: Mapping[str, Any] | None
                  = None, *, name: str = "ionscreen", jid: str | None = None,
                  parents: Sequence[Firework] | None = None, fw_id: int | None = None
                  ) -> Firework:
    """One Firework running step ``step`` on ``doc``; ``options`` holds ``_category``,
    ``_queueadapter``, ``_priority`` (None values are left out)."""
    from .screen import STEPS

    jid = jid or STEPS[step].job_id(doc)
    cand = doc.get("candidate") or {}
    spec: dict[str, Any] = {"_add_launchpad_and_fw_id": True,
                            "_ionscreen": {"step": step, "job_id": jid,
                                           "candidate_id": cand.get("id"),
                                           "working_ion": cand.get("working_ion"),
                                           "formula": cand.get("formula")}}
    for k, v in (options or {}).items():
        if v is not None:
            spec[k] = v
    task = IonscreenStepTask(step=step, input=json.dumps(doc, separators=(",", ":")),
                             store=store, job_id=jid)
    label = cand.get("formula") or doc.get("path", "")
    return Firework([task], spec=spec, name=f"{name} {step} {label} {cand.get('working_ion', '')}"
                    .strip(), parents=parents, fw_id=fw_id)


# --------------------------------------------------------------------------- the Maker

@dataclass
class ScreenWorkflowMaker:
    """Build FireWorks Workflows of a screen (see the module docstring).

    ``screen`` holds what to compute (ions, hosts, BVSE/NEB settings, ``neb_top``,
    ``voltage_calculator``...); this Maker only decides how it is laid out as Fireworks.
    """

    screen: Any = None
    """A :class:`~ionscreen.workflows.screen.ScreenMaker` (default: ``ScreenMaker()``)."""
    store: str = DEFAULT_STORE
    """Store spec written into every task (``launchpad[:collection]``, ``mongodb://``, path)."""
    batch_size: int = 50
    """Candidates per Workflow (batches never mix working ions); 0: one Workflow per ion."""
    categories: dict[str, str | None] = field(default_factory=lambda: {
        "bvse": None, "select": None, "neb": "neb", "ml": "ml"})
    """``_category`` per kind of Firework (None: any worker). NEB with an ML calculator and
    the ML voltage step use ``"ml"``."""
    queueadapter: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides of :data:`DEFAULT_QUEUEADAPTER` per category, merged key by key."""
    priority: dict[str, int] = field(default_factory=dict)
    """``_priority`` per category (e.g. ``{"neb": 10}``), optional."""
    name: str = "ionscreen"

    def __post_init__(self) -> None:
        if self.screen is None:
            from .screen import ScreenMaker

            self.screen = ScreenMaker()
        if self.batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0: one workflow per working ion)")

    # ---- per-Firework options
    def kind(self, step: str) -> str:
        if step == "neb":
            return "neb" if self.screen.neb_calculator == "bvff" else "ml"
        if step == "insertion":
            return "ml"
        return step

    def options(self, step: str) -> dict[str, Any]:
        kind = self.kind(step)
        qa = {**DEFAULT_QUEUEADAPTER.get(kind, {}), **self.queueadapter.get(kind, {})}
        return {"_category": self.categories.get(kind), "_queueadapter": qa or None,
                "_priority": self.priority.get(kind)}

    # ---- jobs and batches
    def bvse_doc(self, candidate: dict[str, Any], settings: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        return {"candidate": candidate, "settings": settings or self.screen.bvse_settings()}

    def batches(self, candidates: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        by_ion: dict[str, list[dict[str, Any]]] = {}
        for c in candidates:
            by_ion.setdefault(c["working_ion"], []).append(c)
        out = []
        for lst in by_ion.values():
            n = self.batch_size or len(lst)
            out += [lst[i:i + n] for i in range(0, len(lst), n)]
        return out

    def make(self, candidates: Sequence[dict[str, Any]] | None = None) -> list[Workflow]:
        """One Workflow per batch; ``candidates`` default to the screen's built-in ones."""
        from .screen import STEPS

        if candidates is None:
            candidates, _ = self.screen.builtin_candidates()
        settings = self.screen.bvse_settings()
        batches = self.batches(candidates)
        wfs = []
        for k, batch in enumerate(batches, 1):
            ion = batch[0]["working_ion"]
            label = f"{self.name} {ion} batch {k}/{len(batches)}"
            fws, ids = [], []
            for c in batch:
                doc = self.bvse_doc(c, settings)
                jid = STEPS["bvse"].job_id(doc)
                ids.append(jid)
                fws.append(step_firework("bvse", doc, self.store, self.options("bvse"),
                                         name=self.name, jid=jid))
            sc = self.screen
            neb = {"top": sc.neb_top, "settings": sc.neb_settings(), "calculator": sc.neb_calculator} \
                if sc.neb_top > 0 else None
            ins = {"top": sc.voltage_top, "calculator": sc.voltage_calculator} \
                if sc.voltage_calculator else None
            if neb or ins:
                task = IonscreenSelectTask(
                    store=self.store, bvse_jobs=ids, neb=neb, insertion=ins, name=self.name,
                    fw_options={s: self.options(s) for s in ("neb", "insertion")})
                spec = {"_add_launchpad_and_fw_id": True, "_allow_fizzled_parents": True,
                        "_ionscreen": {"step": "select", "batch": k, "working_ion": ion}}
                spec.update({k2: v for k2, v in self.options("select").items() if v is not None})
                fws.append(Firework([task], spec=spec, name=f"{label} select", parents=fws[:]))
            wfs.append(Workflow(fws, name=label,
                                metadata={"ionscreen": {"working_ion": ion, "batch": k,
                                                        "batches": len(batches),
                                                        "candidates": len(batch)}}))
        return wfs

    def jobs(self, candidates: Sequence[dict[str, Any]]) -> list[Job]:
        """The BVSE jobs of ``candidates`` (to register them ``queued`` at submission)."""
        from .screen import STEPS

        settings = self.screen.bvse_settings()
        return [STEPS["bvse"].job(self.bvse_doc(c, settings)) for c in candidates]


# --------------------------------------------------------------------------- submission

def file_candidates(screen: Any, store: ResultStore) -> list[dict[str, Any]]:
    """Candidates from the screen's user files, built here (reading a file is quick) through
    the store's ``candidate`` jobs: a bad file is stored failed with its reason, as with the
    local engine, and the others go on."""
    from ionscreen.structures.candidates import iter_structure_files

    from .screen import STEPS

    out = []
    for p in iter_structure_files(screen.files):
        for ion in screen.ions:
            _, state, res = run_job(store, STEPS["candidate"],
                                    {"path": str(p), "ion": ion, "oxi": screen.oxi})
            if state != "failed":
                out.append(res)
    return out


@dataclass
class Submission:
    workflows: int
    fireworks: int
    candidates: int
    new_jobs: int
    failed_files: int = 0


def submit(launchpad: LaunchPad, maker: ScreenWorkflowMaker,
           candidates: Sequence[dict[str, Any]] | None = None,
           store: ResultStore | None = None) -> Submission:
    """Add the screen's workflows to ``launchpad`` and register their BVSE jobs in the store
    (``queued``, so that ``ionscreen rank`` sees them before they run). ``candidates``
    default to the built-in ones plus those of the screen's files."""
    own = store is None
    if store is None:
        store, own = resolve_store(maker.store, launchpad)
    try:
        failed_files = 0
        if candidates is None:
            candidates, _ = maker.screen.builtin_candidates()
            if maker.screen.files:
                before = len(store.failures("candidate"))
                candidates = list(candidates) + file_candidates(maker.screen, store)
                failed_files = len(store.failures("candidate")) - before
        wfs = maker.make(candidates)
        new = store.add_jobs(maker.jobs(candidates))
        for wf in wfs:
            launchpad.add_wf(wf)
        return Submission(len(wfs), sum(len(wf.fws) for wf in wfs), len(candidates), new,
                          failed_files)
    finally:
        if own:
            store.close()


__all__ = ["IonscreenStepTask", "IonscreenSelectTask", "ScreenWorkflowMaker", "StepFailed",
           "DEFAULT_QUEUEADAPTER", "DEFAULT_STORE", "resolve_store", "run_job", "select_top",
           "step_firework", "file_candidates", "submit", "Submission"]
