"""The screen, described once: its steps, its stages and what feeds each stage.

A :class:`Step` is a named plain function from a JSON document to a JSON document; :data:`STEPS`
is the table of every step with its version (part of every job id). A :class:`Stage` applies
one step to the documents its ``inputs`` give: a constant list (a *static* stage), or a function
of a read-only view of the results so far (a *dynamic* stage, e.g. NEB on the best BVSE
results). :class:`ScreenSpec` says what to screen and how; ``ScreenSpec.stages()`` returns the
stages, which every engine runs:

* the local engine (:mod:`ionscreen.workflows.local`) runs the stages in order on one machine;
* the FireWorks engine (:mod:`ionscreen.workflows.fireworks_engine`) maps static stages to
  Fireworks and each dynamic stage to one generic expand task that calls the same ``inputs``
  on the result store and adds the new Fireworks (jobflow's ``Response(addition=...)``).

``Stage.category`` says what kind of worker a stage needs (``bvse``, ``neb`` for the BVFF NEB,
``ml`` for ML potentials, ``inline`` for work quick enough to run where the screen is
submitted, ``fetch`` for downloads, run by the process that owns the store, never on a compute
node); the FireWorks engine turns it into a Firework's ``_category`` and resources.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ionscreen.structures.ions import ANIONS, SCREEN_DEFAULT
from ionscreen.structures.ordering import MAX_ORDER_ATOMS

from .optimade_fetch import fetched_entries, first_page, next_page, optimade_page_step
from .screen import candidate_docs, candidate_step
from .steps import bvse_for_neb, bvse_step, insertion_step, neb_file_step, neb_step
from .store import Job, JobRecord, job_id

if TYPE_CHECKING:
    from ionscreen.screening.bvse import BVSESettings
    from ionscreen.structures.candidates import Candidate

StepFn = Callable[[dict[str, Any]], Any]

#: Categories of stages (see the module docstring).
INLINE, BVSE, NEB, ML, FETCH = "inline", "bvse", "neb", "ml", "fetch"


# --------------------------------------------------------------------------- steps

@dataclass(frozen=True)
class Step:
    """A named step: ``fn(input_doc) -> result_doc`` (both JSON-serialisable).

    ``version`` and ``settings`` are part of every job id of this step: bump the version when
    the function's results change, and pass in ``settings`` whatever the function was bound
    with (e.g. ``functools.partial(fn, resolution=0.2)``) so that other settings make other
    jobs. ``fn`` must be picklable by reference for the pool and MPI.
    """

    name: str
    fn: StepFn
    version: str = "1"
    settings: Mapping[str, Any] | None = None

    def job_id(self, doc: Mapping[str, Any]) -> str:
        return job_id(self.name, doc, self.settings, self.version)

    def job(self, doc: dict[str, Any]) -> Job:
        return Job(self.job_id(doc), self.name, doc)


STEPS: dict[str, Step] = {
    "optimade": Step("optimade", optimade_page_step, "1"),
    # 2: BVAnalyzer is not tried on organic frameworks (C-H bonds); OPTIMADE entries
    "candidate": Step("candidate", candidate_step, "2"),
    "bvse": Step("bvse", bvse_step, "1"),
    "neb": Step("neb", neb_step, "1"),
    "insertion": Step("insertion", insertion_step, "1"),
    "neb_file": Step("neb_file", neb_file_step, "1"),
}
"""Every step of ionscreen with its version (looked up by name when a job runs, so that a
Firework or a resumed run uses the step of the ionscreen that runs it)."""


# --------------------------------------------------------------------------- stages

class ResultView(Protocol):
    """What an input function may read: results by step and state (a store is one)."""

    def results(self, step: str | None = None, state: str | None = "done") -> list[JobRecord]: ...


class JobsView:
    """A read-only view of some jobs of a store (e.g. one FireWorks batch, or the jobs run at
    submission), so that a stage's inputs see those and not the rest of a shared store."""

    def __init__(self, store: Any, ids: Iterable[str]) -> None:
        self._records = [r for r in (store.get(i) for i in dict.fromkeys(ids)) if r is not None]

    def results(self, step: str | None = None, state: str | None = "done") -> list[JobRecord]:
        return [r for r in self._records
                if (step is None or r.step == step) and (state is None or r.state == state)]


Inputs = Sequence[dict[str, Any]] | Callable[[ResultView], Sequence[dict[str, Any]]]
JobSpec = tuple[Step, dict[str, Any]]


@dataclass(frozen=True)
class Stage:
    """One step applied to the documents ``inputs`` gives.

    ``inputs`` is a list (static) or a function of a :class:`ResultView` (dynamic);
    ``reads`` names the steps whose results that function reads. ``category`` is the kind of
    worker the stage needs (:data:`BVSE`, :data:`NEB`, :data:`ML`, :data:`INLINE`).
    """

    name: str
    step: Step
    inputs: Inputs
    category: str = BVSE
    reads: tuple[str, ...] = ()
    follow: Callable[[dict[str, Any], Any], dict[str, Any] | None] | None = None
    """A chain of jobs (pages of a database query): ``follow(doc, result)`` is the input of the
    job after a done one, or None. The engine runs the chain to its end, one job at a time."""
    retry: bool = False
    """Run this stage's failed jobs again on every run (a page that failed on the network),
    not only with ``retry_failed``."""

    @property
    def dynamic(self) -> bool:
        return callable(self.inputs)

    def docs(self, view: ResultView | None = None) -> list[dict[str, Any]]:
        if callable(self.inputs):
            if view is None:
                raise ValueError(f"stage {self.name} reads earlier results: give it a view")
            return list(self.inputs(view))
        return list(self.inputs)

    def jobs(self, view: ResultView | None = None) -> list[JobSpec]:
        return [(self.step, d) for d in self.docs(view)]


def run_inline(store: Any, stage: Stage, view: ResultView | None = None
               ) -> list[tuple[str, str, Any]]:
    """Run a stage's jobs in this process through ``store`` (``run_job``: a job already done
    is reused), following its chain (``stage.follow``) to the end: how the FireWorks
    engine runs the ``inline`` and ``fetch`` stages at submission. Returns ``(job id,
    "done" | "reused" | "failed", result)`` of every job."""
    from .jobs import run_job

    out = []
    docs = stage.docs(view)
    while docs:
        nxt = []
        for doc in docs:
            jid, state, res = run_job(store, stage.step, doc)
            out.append((jid, state, res))
            if stage.follow is not None and state != "failed":
                after = stage.follow(doc, res)
                if after is not None:
                    nxt.append(after)
        docs = nxt
    return out


# --------------------------------------------------------------------------- selection

def select_top(records: Iterable[JobRecord], n: int, only_discharged: bool = False,
               funnel: bool = False) -> list[JobRecord]:
    """The ``n`` best done BVSE records per working ion (lowest finite percolation barrier,
    ties by candidate id), largest cells first, so that a pool or MPI run does not end waiting
    on one big job.

    ``funnel``: only hosts that pass the BVSE filter
    (:func:`ionscreen.screening.mobility.promote_cutoff` of the ion's charge) and have a
    capacity (a host that cannot take the electrons is not worth a NEB), those whose BVSE
    barrier is plausible first: a site where the ion is under-bonded, or a barrier below the
    floor of its charge (:func:`ionscreen.screening.mobility.plausibility_flags`), is a cavity
    the ion rattles in, promoted only when the plausible hosts leave a place."""
    # imported here: keeps the CLI's start-up light
    from ionscreen.screening.bvse import BVSESummary
    from ionscreen.screening.descriptors import capacity_or_note
    from ionscreen.screening.mobility import plausibility_flags, promote_cutoff
    from ionscreen.structures.candidates import Candidate
    from ionscreen.structures.ions import get_working_ion

    by_ion: dict[str, list] = {}
    for rec in records:
        cand = rec.input["candidate"]
        if only_discharged and cand.get("state") != "discharged":
            continue
        summary = BVSESummary.from_dict(rec.result["summary"])
        b = summary.best_barrier
        if not math.isfinite(b):
            continue
        doubtful = False
        if funnel:
            charge = get_working_ion(cand["working_ion"]).charge
            if (b > promote_cutoff(charge)
                    or capacity_or_note(Candidate.from_dict(dict(cand))).mAh_g == 0):
                continue
            doubtful = bool(plausibility_flags(b, charge, summary.bvs_ratio))
        by_ion.setdefault(cand["working_ion"], []).append((doubtful, b, cand["id"], rec))
    picked = []
    for _ion, lst in sorted(by_ion.items()):
        picked += [t[-1] for t in sorted(lst, key=lambda t: t[:3])[:n]]
    picked.sort(key=lambda rec: (-len(rec.input["candidate"]["structure"]["sites"]), rec.id))
    return picked


def neb_inputs(bvse_records: Iterable[JobRecord], spec: ScreenSpec) -> list[dict[str, Any]]:
    """NEB job inputs: the funnel's promoted hosts, those that pass the BVSE filter, at most
    ``spec.neb_top`` per ion (best BVSE barrier first). The BVSE result goes in without its
    wall times, so that the NEB job id depends on the physics only."""
    settings = spec.neb_settings()
    return [{"candidate": rec.input["candidate"], "bvse": bvse_for_neb(rec.result["result"]),
             "settings": settings, "calculator": spec.neb_calculator}
            for rec in select_top(bvse_records, spec.neb_top, funnel=True)]


def insertion_inputs(bvse_records: Iterable[JobRecord], spec: ScreenSpec
                     ) -> list[dict[str, Any]]:
    """ML voltage job inputs for every promoted host (the funnel's, the same hosts as the NEB
    stage: at most ``spec.neb_top`` per ion): a discharged host as it is, an empty one with its
    BVSE sites (the ions go there, :func:`ionscreen.screening.insertion.fill_sites`)."""
    out = []
    for rec in select_top(bvse_records, spec.neb_top, funnel=True):
        cand = rec.input["candidate"]
        doc = {"candidate": cand, "calculator": spec.voltage_calculator}
        if cand.get("state") != "discharged":
            doc["sites"] = [[s["frac"], s["energy"]] for s in rec.result["result"]["sites"]]
        out.append(doc)
    return out


# --------------------------------------------------------------------------- options

def parse_substitution_rules(words: Sequence[str] | None
                             ) -> tuple[dict[str, list[str]] | None, dict[str, list[str]] | None]:
    """``["default"]`` or ``["Mn:Fe,Co", "O:S,Se"]`` -> (cation options, anion options);
    None for the built-in defaults. Raises ValueError on a word that is not ``OLD:NEW[,NEW]``
    of element symbols."""
    if not words or list(words) == ["default"]:
        return None, None
    from pymatgen.core import Element

    cat: dict[str, list[str]] = {}
    an: dict[str, list[str]] = {}
    for w in words:
        if ":" not in w:
            raise ValueError(f"'{w}' is not OLD:NEW[,NEW] (example: --substitute Mn:Fe,Co O:S)")
        old, new = w.split(":", 1)
        targets = [x for x in new.split(",") if x]
        for el in (old, *targets):
            if not Element.is_valid_symbol(el):
                raise ValueError(f"'{el}' in '{w}' is not an element symbol")
        (an if old in ANIONS else cat)[old] = targets
    return cat, an


def is_bvff(calculator: str | None) -> bool:
    """Whether a calculator name means the bond-valence force field (any case)."""
    return str(calculator or "").strip().lower() == "bvff"


def default_voltage_calculator(value: str | None = "auto") -> str | None:
    """The ``--voltage`` calculator: "auto" means CHGNet when the mlip extra is installed (its
    package and torch can be found), else None (no voltage: the rows say voltage unknown);
    "none" means None; any other value is kept. Resolved once, when the screen is defined, so
    that the run's stored settings name what ran."""
    word = str(value or "none").strip()
    if word.lower() == "none":
        return None
    if word.lower() != "auto":
        return word
    import importlib.util

    have = all(importlib.util.find_spec(m) is not None for m in ("chgnet", "torch"))
    return "chgnet" if have else None


class CandidateSet(NamedTuple):
    candidates: list[Candidate]
    """The candidates, unique ids."""
    rejected: list[dict[str, str]]
    """Substitutions that were not made, with the reason."""
    failures: list[dict[str, str]]
    """User files that could not be read (``{"path", "reason"}``), when files were asked for."""

    @property
    def docs(self) -> list[dict[str, Any]]:
        """The candidates as documents (``Candidate.to_dict()``), as the BVSE jobs take them."""
        return [c.to_dict() for c in self.candidates]


def _screen_bvse(value: BVSESettings | Mapping[str, Any] | None) -> BVSESettings:
    """BVSESettings of a screen: a mapping gets the screen's grid step (0.2 Å) unless it
    gives one."""
    from ionscreen.screening.bvse import BVSESettings

    if isinstance(value, BVSESettings):
        return value
    return BVSESettings(**{"resolution": 0.2, **dict(value or {})})


# --------------------------------------------------------------------------- the screen

@dataclass
class ScreenSpec:
    """What to screen and how; ``stages()`` returns the stages of the run.

    Candidates come from the built-in prototypes (``hosts``), their substitutions
    (``substitute``), coordination polymers (``cps``) and user files (``files``), for every
    working ion of ``ions``. Then: BVSE of every candidate; NEB on the promoted hosts (the
    BVSE filter, at most ``neb_top``) per
    ion; with ``voltage_calculator``, the ML voltage of the same promoted hosts.
    """

    ions: list[str] = field(default_factory=lambda: list(SCREEN_DEFAULT))
    hosts: str = "builtin"
    """"builtin" (all prototypes), "none", or prototype ids separated by commas."""
    substitute: list[str] | None = None
    """None (no substitutions), ["default"], or rules such as ["Mn:Fe,Co", "O:S"]."""
    cps: bool = False
    """Add DI–M–ligand coordination polymers (ordered and ``cp_models`` disordered models)."""
    cp_models: int = 1
    seed: int = 0
    """Seed of the disordered polymer models."""
    files: list[str] = field(default_factory=list)
    """User structure files or folders (each read by a ``candidate`` job)."""
    oxi: dict[str, float] | None = None
    """Oxidation states for ``files`` and OPTIMADE entries (else guessed)."""
    order: int = 0
    """Disordered ``files`` and OPTIMADE entries: screen their N lowest-Ewald orderings (0: a
    disordered file fails with the sites that are disordered)."""
    order_max_atoms: int = MAX_ORDER_ATOMS
    """The largest supercell (sites) ``order`` may build."""
    optimade: list[str] = field(default_factory=list)
    """OPTIMADE providers (short names such as "mp", "alexandria", "oqmd", "cod", or base URLs)
    whose structures matching ``optimade_filter`` are candidates (fetched page by page into the
    store: :mod:`ionscreen.workflows.optimade_fetch`)."""
    optimade_filter: str = ""
    """The OPTIMADE filter, e.g. ``elements HAS ALL "Mn","O" AND nelements<=3``."""
    optimade_max: int = 100
    """The most structures fetched per provider."""
    optimade_page_size: int = 0
    """Structures per page (0: each provider's default)."""
    mobile_sites: str | None = None
    """The working-ion sites of ``files`` and OPTIMADE entries that move (labels, Wyckoff
    positions or indices; None: every one); the others stay in the framework."""
    replace_ions: list[str] = field(default_factory=list)
    """Elements (e.g. ["Li"]) whose ions are removed from ``files`` and OPTIMADE entries so that
    the working ion is screened in the sites they leave (the host's oxidation states are
    guessed again)."""
    bvse: BVSESettings = field(default_factory=lambda: _screen_bvse(None))
    """The BVSE settings (:class:`~ionscreen.screening.bvse.BVSESettings`; a mapping of its
    fields is accepted, with a grid step of 0.2 Å unless it says otherwise)."""
    neb_top: int = 5
    """The funnel: NEB on the hosts that pass the BVSE filter
    (:func:`ionscreen.screening.mobility.promote_cutoff`), at most this many per ion, best BVSE
    barrier first (0: none; the ranking is then a BVSE pre-screen)."""
    neb_calculator: str = "bvff"
    """"bvff", an ML potential ("chgnet", "sevennet"...) or "module:Class"."""
    neb: dict[str, Any] = field(default_factory=lambda: {"images": 5, "steps": 300})
    """NEBSettings fields that differ from its defaults. The NEB job's input holds exactly
    these (they are part of its id), so this stays a mapping; it is checked by NEBSettings.
    300 steps per stage bound the time a band that will not converge takes."""
    voltage_calculator: str | None = None
    """An ML calculator ("chgnet") for the voltage and volume change of every promoted host
    (None: no voltage; the rows say voltage unknown). ``ionscreen screen`` picks CHGNet when
    the mlip extra is installed (:func:`default_voltage_calculator`)."""

    def __post_init__(self) -> None:
        if self.optimade_max < 1 or self.optimade_page_size < 0:
            raise ValueError(f"optimade_max must be at least 1 and optimade_page_size at least 0 "
                             f"(got {self.optimade_max}, {self.optimade_page_size})")
        self.bvse = _screen_bvse(self.bvse)
        self.bvse.validate()
        from ionscreen.screening.neb import NEBSettings

        NEBSettings(**self.neb).validate()

    # ---- serialisation (the FireWorks expand task rebuilds its stage from this)
    def as_dict(self) -> dict[str, Any]:
        return {f.name: (asdict(self.bvse) if f.name == "bvse" else getattr(self, f.name))
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScreenSpec:
        return cls(**dict(d))

    # ---- settings as the jobs see them
    def bvse_settings(self) -> dict[str, Any]:
        """BVSESettings fields of the BVSE jobs (``threads`` is not part of a result's id)."""
        d = asdict(self.bvse)
        d["threads"] = None
        return d

    def neb_settings(self) -> dict[str, Any]:
        """NEBSettings fields of the NEB jobs: ``neb``, plus the BVSE's ``derive_nitride`` for the
        BVFF, so that a host BVSE screened with a derived row is not refused by its NEB."""
        if self.bvse.derive_nitride and is_bvff(self.neb_calculator):
            return {**self.neb, "derive_nitride": True}
        return dict(self.neb)

    # ---- candidates
    def host_ids(self) -> list[str] | None:
        """Prototype ids of ``hosts`` (None: all, []: none)."""
        if self.hosts in ("builtin", "all"):
            return None
        return [] if self.hosts == "none" else [h for h in self.hosts.split(",") if h]

    def candidates(self, files: bool = False) -> CandidateSet:
        """The built-in candidates (prototypes, substitutions, polymers), and with
        ``files=True`` those of the user files too (read here, not as jobs).

        The one candidate generator of ``ionscreen candidates``, ``screen`` and ``submit``.
        Raises ValueError for an unknown prototype id or a bad substitution rule.
        """
        from ionscreen.structures import candidates as cgen

        ids = self.host_ids()
        found: list[Candidate] = []
        rejected: list[dict[str, str]] = []
        failures: list[dict[str, str]] = []
        if ids != []:
            found += list(cgen.from_prototypes(self.ions, ids))
        if self.substitute:
            cat, an = parse_substitution_rules(self.substitute)
            subs, rejected = cgen.from_substitutions(self.ions, ids or None, cat, an)
            found += subs
        if self.cps:
            found += cgen.from_polymers(self.ions, n_disordered=self.cp_models, seed=self.seed)
        if files and self.files:
            from_files, failures = cgen.from_files(self.files, self.ions, self.oxi,
                                                   strip=self.replace_ions, order=self.order,
                                                   order_max_atoms=self.order_max_atoms,
                                                   mobile=self.mobile_sites)
            found += from_files
        return CandidateSet(cgen.unique(found), rejected, failures)

    # ---- stages
    def optimade_pages(self) -> list[dict[str, Any]]:
        """The first-page job input of each OPTIMADE provider (raises
        :class:`~ionscreen.structures.optimade.OptimadeError` for an unknown provider)."""
        return [first_page(w, self.optimade_filter, self.optimade_page_size) for w in self.optimade]

    def optimade_stage(self) -> Stage | None:
        """The fetch: the pages of each provider's query, one ``optimade`` job per page,
        followed until the query ends or ``optimade_max`` structures are stored."""
        if not self.optimade:
            return None
        return Stage("optimade", STEPS["optimade"], self.optimade_pages(), FETCH,
                     follow=partial(next_page, max_entries=self.optimade_max), retry=True)

    def _candidate_extras(self) -> dict[str, Any]:
        # only when asked: the job ids of other screens stay what they were
        return {**({"strip": list(self.replace_ions)} if self.replace_ions else {}),
                **({"order": self.order, "order_max_atoms": self.order_max_atoms}
                   if self.order else {}),
                **({"mobile": self.mobile_sites} if self.mobile_sites else {})}

    def optimade_candidate_docs(self, view: ResultView) -> list[dict[str, Any]]:
        """One ``candidate`` job input per fetched OPTIMADE entry and working ion."""
        extra = self._candidate_extras()
        return [{"optimade": {"provider": name, "base_url": base, "entry": entry}, "ion": ion,
                 "oxi": self.oxi, **extra}
                for name, base, entry in fetched_entries(view.results("optimade"),
                                                         self.optimade_pages(), self.optimade_max)
                for ion in self.ions]

    def file_stage(self) -> Stage | None:
        """The ``candidate`` stage: one job per user file and ion, and one per fetched OPTIMADE
        entry and ion (a bad file or entry fails alone, stored)."""
        if not (self.files or self.optimade):
            return None
        from ionscreen.structures.candidates import iter_structure_files

        extra = self._candidate_extras()
        paths = [str(p) for p in iter_structure_files(self.files)]
        files = [{"path": p, "ion": ion, "oxi": self.oxi, **extra}
                 for p in paths for ion in self.ions]
        if not self.optimade:
            return Stage("candidate", STEPS["candidate"], files, INLINE)
        return Stage("candidate", STEPS["candidate"],
                     lambda view: files + self.optimade_candidate_docs(view), INLINE,
                     reads=("optimade",))

    def bvse_stage(self, candidates: Sequence[dict[str, Any]], with_files: bool = True) -> Stage:
        """BVSE of ``candidates`` (and, with user files, of the candidates their jobs made)."""
        settings = self.bvse_settings()
        fixed = [{"candidate": c, "settings": settings} for c in candidates]
        if not (with_files and (self.files or self.optimade)):
            return Stage("bvse", STEPS["bvse"], fixed, BVSE)

        def inputs(view: ResultView) -> list[dict[str, Any]]:
            return fixed + [{"candidate": doc, "settings": settings}
                            for r in view.results("candidate") for doc in candidate_docs(r.result)]

        return Stage("bvse", STEPS["bvse"], inputs, BVSE, reads=("candidate",))

    def dynamic_stages(self) -> list[Stage]:
        """The stages built from the BVSE results: NEB, and the ML voltage if asked for."""
        out = []
        if self.neb_top > 0:
            out.append(Stage("neb", STEPS["neb"],
                             lambda view: neb_inputs(view.results("bvse"), self),
                             NEB if is_bvff(self.neb_calculator) else ML, reads=("bvse",)))
        if self.voltage_calculator and self.neb_top > 0:
            out.append(Stage("insertion", STEPS["insertion"],
                             lambda view: insertion_inputs(view.results("bvse"), self),
                             ML, reads=("bvse",)))
        return out

    def stage(self, name: str) -> Stage:
        """A dynamic stage by name (what the FireWorks expand task runs)."""
        for st in self.dynamic_stages():
            if st.name == name:
                return st
        raise ValueError(f"this screen has no dynamic stage '{name}'")

    def stages(self, candidates: Sequence[dict[str, Any]] | None = None) -> list[Stage]:
        """[OPTIMADE pages ->] [user files and OPTIMADE entries ->] BVSE -> NEB on the top N
        per ion [-> ML voltage].

        ``candidates`` default to the built-in ones plus those of the user files and OPTIMADE
        entries; given, they are the BVSE stage's candidates and nothing is read or fetched.
        """
        stages: list[Stage] = []
        if candidates is None:
            candidates = self.candidates().docs
            fetch = self.optimade_stage()
            if fetch is not None:
                stages.append(fetch)
            files = self.file_stage()
            if files is not None:
                stages.append(files)
        stages.append(self.bvse_stage(candidates, with_files=bool(stages)))
        return stages + self.dynamic_stages()


"""The earlier name of :class:`ScreenSpec` (it describes the screen; it makes nothing)."""

__all__ = ["BVSE", "FETCH", "INLINE", "ML", "NEB", "STEPS", "CandidateSet", "JobsView",
           "ResultView", "ScreenSpec", "Stage", "Step", "insertion_inputs", "is_bvff",
           "neb_inputs", "parse_substitution_rules", "run_inline", "select_top"]
