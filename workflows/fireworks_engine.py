"""The FireWorks engine: a screen's stages (:mod:`ionscreen.workflows.plan`) as FireWorks
Workflows, one per candidate batch.

Each job runs in an :class:`IonscreenStepTask` (``STEPS[step]`` through
:func:`~ionscreen.workflows.jobs.run_job`), which writes its result (or its failure with the
reason) through the result-store interface and raises on failure, so that the Firework
FIZZLES and FireWorks shows it. Job ids are those of the local engine: a re-submitted or rerun
job finds its earlier result in the store, and both engines fill the same kind of store,
which ``collect_records`` / ``export`` / ``ionscreen rank`` read.

:class:`ScreenWorkflowMaker` lays the stages out:

* ``inline`` stages (reading the user files) and ``fetch`` stages (an OPTIMADE query's pages)
  run at submission, through the store: a bad file is stored failed with its reason, as with
  the local engine, and the pages fetched are not fetched again;
* static stages, and dynamic stages that read only inline results, are evaluated at
  submission and become one Firework per job (the BVSE stage), in batches of one working ion;
* each dynamic stage (NEB, ML voltage) becomes one generic :class:`ExpandStageTask` Firework
  per batch, child of the batch's Fireworks (``_allow_fizzled_parents``: a candidate that
  fails does not stop its batch). It calls the stage's own ``inputs`` on the batch's results
  in the store and adds one Firework per new job with ``FWAction(additions=...)``, as jobflow's
  ``Response(addition=...)``. If it runs again (a parent was rerun), it adds only the
  Fireworks that its workflow does not hold yet.

NEB top-N selection is per batch: batches never mix working ions, and with ``batch_size`` at
least the number of candidates of an ion (or 0: one batch per ion) the selection is exactly
the local engine's.

Every Firework's spec carries ``_queueadapter`` (resources for ``qlaunch``, per category,
overridable), ``_category`` from the stage's category (NEB: ``"neb"`` for the BVFF, ``"ml"``
with an ML calculator; ML voltage: ``"ml"``), ``_priority`` if given, and ``_ionscreen``
(step, job id, candidate) for queries and dashboards. The expand Fireworks have the category
``select``.

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

from ionscreen.errors import IonscreenError

from .jobs import run_job
from .plan import FETCH, INLINE, STEPS, JobsView, ScreenSpec, Stage, run_inline
from .store import Job, ResultStore, canonical_json
from .store_mongo import DEFAULT_COLLECTION, MongoStore
from .store_sqlite import SQLiteStore

DEFAULT_STORE = "launchpad"
SELECT = "select"
"""The category of the expand Fireworks (quick: they read the store and add Fireworks)."""

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
        return json.loads(canonical_json(value))
    raise IonscreenError(f"a step input must be a JSON text or a dict, not {type(value).__name__}")


def _text(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


# --------------------------------------------------------------------------- Firetasks

@explicit_serialize
class IonscreenStepTask(FiretaskBase):
    """Run one ionscreen step (``STEPS[step]``) on ``input`` and store the outcome in ``store``.

    Parameters: ``step`` (name in ``plan.STEPS``), ``input`` (the input document as JSON
    text, or a dict), ``store`` (store spec, see the module docstring); optional ``job_id``
    (checked against the input: a mismatch means the step version or the input changed).
    A failure is stored with its reason and then raised: the Firework FIZZLES.
    """

    required_params = ["step", "input", "store"]
    optional_params = ["job_id"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
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
class ExpandStageTask(FiretaskBase):
    """Add the Fireworks of one dynamic stage of a screen: the stage's ``inputs`` on the
    results of the parent jobs, one new Firework per job (jobflow's ``Response(addition=...)``).

    Parameters: ``stage`` (its name), ``screen`` (the :class:`ScreenSpec` as JSON text),
    ``jobs`` (ids of the parent jobs whose results the stage reads), ``store``; optional
    ``fw_options`` (``_category``, ``_queueadapter``, ``_priority`` of the new Fireworks) and
    ``name`` (prefix of their names).
    """

    required_params = ["stage", "screen", "jobs", "store"]
    optional_params = ["fw_options", "name"]

    def run_task(self, fw_spec: dict[str, Any]) -> FWAction:
        stage = ScreenSpec.from_dict(_load_input(self["screen"])).stage(self["stage"])
        store, owned = resolve_store(self["store"], getattr(self, "launchpad", None))
        try:
            view = JobsView(store, self["jobs"])
            docs = stage.docs(view)
        finally:
            if owned:
                store.close()
        present = self._jobs_in_workflow()
        fws, picked = [], []
        for doc in docs:
            jid = stage.step.job_id(doc)
            picked.append(jid)
            if jid not in present:
                fws.append(step_firework(stage.step.name, doc, self["store"],
                                         self.get("fw_options"),
                                         name=self.get("name", "ionscreen"), jid=jid))
        return FWAction(additions=[Workflow([fw]) for fw in fws],
                        stored_data={"stage": stage.name, "picked": picked, "added": len(fws),
                                     "parents_done": len(view.results()),
                                     "parents_total": len(self["jobs"])})

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
    jid = jid or STEPS[step].job_id(doc)
    cand = doc.get("candidate") or {}
    spec: dict[str, Any] = {"_add_launchpad_and_fw_id": True,
                            "_ionscreen": {"step": step, "job_id": jid,
                                           "candidate_id": cand.get("id"),
                                           "working_ion": cand.get("working_ion"),
                                           "formula": cand.get("formula")}}
    spec.update({k: v for k, v in (options or {}).items() if v is not None})
    task = IonscreenStepTask(step=step, input=_text(doc), store=store, job_id=jid)
    label = cand.get("formula") or doc.get("path", "")
    return Firework([task], spec=spec, name=f"{name} {step} {label} {cand.get('working_ion', '')}"
                    .strip(), parents=parents, fw_id=fw_id)


# --------------------------------------------------------------------------- the Maker

@dataclass
class Layout:
    """A screen laid out as Workflows: the Workflows, the jobs of their Fireworks at
    submission (registered ``queued`` in the store), and the inline jobs run at submission."""

    workflows: list[Workflow]
    jobs: list[Job]
    inline_failed: int = 0


@dataclass
class ScreenWorkflowMaker:
    """Lay a screen out as FireWorks Workflows (see the module docstring).

    ``screen`` says what to compute (ions, hosts, BVSE/NEB settings, ``neb_top``,
    ``voltage_calculator``...); this Maker only decides how its stages become Fireworks.
    """

    screen: ScreenSpec | None = None
    """What to screen (default: ``ScreenSpec()``)."""
    store: str = DEFAULT_STORE
    """Store spec written into every task (``launchpad[:collection]``, ``mongodb://``, path)."""
    batch_size: int = 50
    """Candidates per Workflow (batches never mix working ions); 0: one Workflow per ion."""
    categories: dict[str, str | None] = field(default_factory=lambda: {
        "bvse": None, SELECT: None, "neb": "neb", "ml": "ml"})
    """``_category`` per stage category (None: any worker)."""
    queueadapter: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Overrides of :data:`DEFAULT_QUEUEADAPTER` per category, merged key by key."""
    priority: dict[str, int] = field(default_factory=dict)
    """``_priority`` per category (e.g. ``{"neb": 10}``), optional."""
    name: str = "ionscreen"

    def __post_init__(self) -> None:
        if self.screen is None:
            self.screen = ScreenSpec()
        if self.batch_size < 0:
            raise ValueError("batch_size must be >= 0 (0: one workflow per working ion)")

    def options(self, category: str) -> dict[str, Any]:
        """``_category``, ``_queueadapter`` and ``_priority`` of a category's Fireworks."""
        qa = {**DEFAULT_QUEUEADAPTER.get(category, {}), **self.queueadapter.get(category, {})}
        return {"_category": self.categories.get(category), "_queueadapter": qa or None,
                "_priority": self.priority.get(category)}

    def batches(self, entries: Sequence[tuple[Stage, dict[str, Any]]]
                ) -> list[list[tuple[Stage, dict[str, Any]]]]:
        """Jobs in batches of at most ``batch_size`` candidates of one working ion."""
        by_ion: dict[str, list[tuple[Stage, dict[str, Any]]]] = {}
        for st, doc in entries:
            by_ion.setdefault(doc["candidate"]["working_ion"], []).append((st, doc))
        out = []
        for lst in by_ion.values():
            n = self.batch_size or len(lst)
            out += [lst[i:i + n] for i in range(0, len(lst), n)]
        return out

    def make(self, candidates: Sequence[dict[str, Any]] | None = None,
             store: ResultStore | None = None) -> list[Workflow]:
        """One Workflow per batch; ``candidates`` default to the screen's (built-in ones, and
        those of its files, which need ``store``)."""
        return self.layout(candidates, store).workflows

    def layout(self, candidates: Sequence[dict[str, Any]] | None = None,
               store: ResultStore | None = None) -> Layout:
        assert self.screen is not None
        here: dict[str, list[str]] = {}  # inline stage -> its job ids (run now)
        entries: list[tuple[Stage, dict[str, Any]]] = []  # Firework jobs of the static stages
        expand: list[Stage] = []
        failed = 0
        for st in self.screen.stages(candidates):
            if st.category in (INLINE, FETCH):
                if store is None:
                    raise ValueError(f"stage {st.name} runs at submission: give a result store")
                view = JobsView(store, [i for ids in here.values() for i in ids]) \
                    if st.dynamic else None
                ran = run_inline(store, st, view)
                here[st.step.name] = [jid for jid, _, _ in ran]
                failed += sum(state == "failed" for _, state, _ in ran)
            elif not st.dynamic or set(st.reads) <= set(here):
                view = JobsView(store, [i for ids in here.values() for i in ids]) \
                    if st.dynamic else None
                entries += [(st, doc) for doc in st.docs(view)]
            elif set(st.reads) <= {s.step.name for s, _ in entries} | set(here):
                expand.append(st)
            else:
                raise IonscreenError(f"stage {st.name} reads {', '.join(st.reads)}, which the "
                                     "FireWorks engine cannot lay out before it")
        batches = self.batches(entries)
        wfs = [self._workflow(k, len(batches), batch, expand)
               for k, batch in enumerate(batches, 1)]
        return Layout(wfs, [st.step.job(doc) for st, doc in entries], failed)

    def _workflow(self, k: int, n: int, batch: list[tuple[Stage, dict[str, Any]]],
                  expand: list[Stage]) -> Workflow:
        assert self.screen is not None
        ion = batch[0][1]["candidate"]["working_ion"]
        label = f"{self.name} {ion} batch {k}/{n}"
        fws: list[Firework] = []
        ids: list[tuple[str, str]] = []  # (step, job id) of this batch's Fireworks
        for st, doc in batch:
            jid = st.step.job_id(doc)
            ids.append((st.step.name, jid))
            fws.append(step_firework(st.step.name, doc, self.store, self.options(st.category),
                                     name=self.name, jid=jid))
        screen = _text(self.screen.as_dict())
        for st in expand:
            parents = [fw for fw, (step, _) in zip(fws[:len(batch)], ids) if step in st.reads]
            task = ExpandStageTask(stage=st.name, screen=screen, store=self.store,
                                   jobs=[j for step, j in ids if step in st.reads],
                                   fw_options=self.options(st.category), name=self.name)
            spec = {"_add_launchpad_and_fw_id": True, "_allow_fizzled_parents": True,
                    "_ionscreen": {"step": SELECT, "stage": st.name, "batch": k,
                                   "working_ion": ion}}
            spec.update({key: v for key, v in self.options(SELECT).items() if v is not None})
            fws.append(Firework([task], spec=spec, name=f"{label} {SELECT} {st.name}",
                                parents=parents))
        return Workflow(fws, name=label, metadata={"ionscreen": {
            "working_ion": ion, "batch": k, "batches": n, "candidates": len(batch)}})


# --------------------------------------------------------------------------- submission

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
    """Add the screen's workflows to ``launchpad`` and register the jobs of their Fireworks in
    the store (``queued``, so that ``ionscreen rank`` sees them before they run).
    ``candidates`` default to the built-in ones plus those of the screen's files (read here,
    through the store's ``candidate`` jobs)."""
    own = store is None
    if store is None:
        store, own = resolve_store(maker.store, launchpad)
    try:
        lay = maker.layout(candidates, store)
        new = store.add_jobs(lay.jobs)
        for wf in lay.workflows:
            launchpad.add_wf(wf)
        return Submission(len(lay.workflows), sum(len(wf.fws) for wf in lay.workflows),
                          len(lay.jobs), new, lay.inline_failed)
    finally:
        if own:
            store.close()


__all__ = ["DEFAULT_QUEUEADAPTER", "DEFAULT_STORE", "ExpandStageTask", "IonscreenStepTask",
           "Layout", "ScreenWorkflowMaker", "StepFailed", "Submission", "resolve_store",
           "step_firework", "submit"]
