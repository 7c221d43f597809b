"""Typed records between the stages: one host × working ion as ranking and exports see it.

A :class:`HostRecord` is built once, by :meth:`HostRecord.from_results`, from a
:class:`~ionscreen.structures.candidates.Candidate` and the summaries of the steps that ran on
it (:class:`~ionscreen.screening.bvse.BVSESummary`, :class:`~ionscreen.screening.neb.NEBSummary`,
an insertion result) or the :class:`Failure` of the step that stopped it. Capacity, density and
sustainability are computed there, once, by pure functions; nothing mutates the candidate.
:func:`ionscreen.screening.rank.rank` turns done records into ranked hosts, and
:mod:`ionscreen.screening.export` writes them; failed records travel as a separate list.

Records serialise in pymatgen's manner (``as_dict`` / ``from_dict``); the screening layer
never sees a result store (``ionscreen.workflows.screen.collect_records`` builds records from
one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monty.json import MSONable
from pymatgen.core import Structure

from ionscreen.screening.bvse import BVSESummary
from ionscreen.screening.descriptors import Capacity, capacity_or_note
from ionscreen.screening.neb import NEBSummary
from ionscreen.screening.sustainability import Sustainability, sustainability
from ionscreen.structures.candidates import Candidate
from ionscreen.structures.oxidation import OXI_FROM, oxidation_summary

__all__ = ["Failure", "HostRecord", "Note", "host_sustainability", "split_failed"]


@dataclass(frozen=True)
class Note(MSONable):
    """A remark on a record or a ranked host: a stable ``code`` for programs and tests, and
    the ``text`` the exports print (``str(note)`` is the text)."""

    code: str
    text: str

    def __str__(self) -> str:
        return self.text

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | str) -> Note:
        """Also reads a plain string (the text of a note written before 0.2)."""
        if isinstance(d, str):
            return cls("note", d)
        return cls(str(d["code"]), str(d["text"]))


@dataclass(frozen=True)
class Failure(MSONable):
    """Why a job did not finish: the ``step`` ("candidate", "bvse", "neb", "insertion"), the
    exception type (``error``) and the message (``reason``) as the engine stored them."""

    step: str
    error: str | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "error": self.error, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Failure:
        return cls(str(d["step"]), d.get("error"), d.get("reason"))


def host_sustainability(source: Structure | Mapping[str, Any] | str, ion: str) -> Sustainability:
    """Sustainability of the host **without the working ion** (so that a charged and a
    discharged host of one framework compare alike; NH4's N and H stay, as they are not a
    separate element of the host). A formula that cannot be read gives a score of None with
    the reason in ``notes``."""
    exclude = (ion,) if ion != "NH4" else ()
    try:
        return sustainability(source, exclude=exclude)
    except ValueError as exc:
        return Sustainability(notes=(str(exc),))


#: where the oxidation states of a generated host come from (by its source's kind)
_BUILT_BY = {"prototype": "prototype data", "substitution": "substitution rule",
             "polymer": "polymer builder"}


def _insertion_doc(insertion: Any) -> dict[str, Any] | None:
    """An insertion result (object or its stored document) as a document."""
    if insertion is None:
        return None
    return dict(insertion) if isinstance(insertion, Mapping) else insertion.as_dict()


def _ion_notes(candidate: Candidate) -> list[Note]:
    """Ions other than the working one left in a user's host, or removed from it on request."""
    prov = candidate.provenance
    notes = []
    if prov.get("removed_ions"):
        what = ", ".join(f"{n:g} {el}" for el, n in prov["removed_ions"].items())
        notes.append(Note("ions_removed", f"{what} per cell removed before screening "
                                          f"(--replace-ion); oxidation states "
                                          f"{prov.get(OXI_FROM, 'guessed again')}"))
    if prov.get("removed_species"):
        notes.append(Note("empty_gap", f"built without {prov['removed_species']}: the gap they fill "
                                       "is held open by nothing in this model; a real host may "
                                       "collapse there, or keep water or cations in it"))
    if prov.get("ordering"):
        o = prov["ordering"]
        notes.append(Note("ordered", f"ordered from a disordered file: ordering {o['ordering']} "
                                     f"of the {o['kept']} lowest by Ewald energy "
                                     f"({o['ewald_eV']:.3f} eV per {o['supercell']}-cell "
                                     f"supercell; {o['total']} orderings counted before "
                                     "symmetry); another ordering can give another barrier"))
    if prov.get("mobile_sites"):
        m = prov["mobile_sites"]
        notes.append(Note("mobile_sites", f"mobile: {', '.join(m['mobile_sites'])} "
                                          f"({m['mobile']} per cell); kept in the framework: "
                                          f"{', '.join(m['fixed_sites']) or 'none'} "
                                          f"({m['fixed']}; --mobile-sites {m['given']})"))
    if prov.get("other_ions"):
        what = ", ".join(f"{n:g} {el}" for el, n in prov["other_ions"].items())
        els = ",".join(prov["other_ions"])
        notes.append(Note("other_ions", f"the host holds {what} per cell, screened as framework "
                                        f"(they block their own sites); --replace-ion {els} removes "
                                        f"them and screens {candidate.working_ion} in their sites"))
    return notes


def _result_notes(cap: Capacity | None, bvse: BVSESummary | None, neb: NEBSummary | None,
                  ins: Mapping[str, Any] | None) -> list[Note]:
    """The record's own notes, in the order the exports print them."""
    notes: list[Note] = []
    if cap is not None and cap.note:
        notes.append(Note("capacity_not_computed" if cap.mAh_g is None else "capacity_basis", cap.note))
    if bvse is not None and bvse.approximate:
        notes.append(Note("approximate_model", f"approximate ion model: {bvse.model}"))
    if neb is not None and neb.approximate and neb.converged:
        notes.append(Note("approximate_neb", f"approximate NEB: {neb.calculator}"))
    if ins and ins.get("volume_warning"):
        notes += [Note("volume_warning", f"{ins.get('model')}: {n}")
                  for n in ins.get("notes", []) if "volume" in n.lower()][:1]
    return notes


@dataclass(frozen=True)
class HostRecord(MSONable):
    """One candidate × working ion with everything ranking and exports use.

    ``failure`` is None for a record whose BVSE finished (a *done* record); a failed NEB keeps
    its record done, with :meth:`NEBSummary.failed` as ``neb``. ``capacity``, ``density``
    (g/cm³ of the structure as screened) and ``sustainability`` (of the host without the ion)
    are None for failed records. ``oxidation_states`` (mean per element) and ``oxidation_from``
    (given, in the file, guessed..., or the generator that built the host) say what the
    capacity and the bond valences stand on.
    """

    job_id: str
    candidate_id: str | None
    formula: str
    working_ion: str
    source: str
    citation: str = ""
    state: str | None = None
    bvse: BVSESummary | None = None
    neb: NEBSummary | None = None
    capacity: Capacity | None = None
    density: float | None = None
    voltage_V: float | None = None
    volume_change: float | None = None
    ml_model: str | None = None
    structure: Structure | None = field(default=None, repr=False)
    notes: tuple[Note, ...] = ()
    failure: Failure | None = None
    sustainability: Sustainability | None = field(default=None, repr=False)
    oxidation_states: dict[str, float] | None = None
    oxidation_from: str | None = None

    # ------------------------------------------------------------------ views
    @property
    def done(self) -> bool:
        return self.failure is None

    @property
    def capacity_mAh_g(self) -> float | None:
        return self.capacity.mAh_g if self.capacity else None

    @property
    def capacity_mAh_cm3(self) -> float | None:
        return self.capacity.mAh_cm3 if self.capacity else None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_results(cls, candidate: Candidate, bvse: BVSESummary | None,
                     neb: NEBSummary | None = None, insertion: Any = None,
                     failure: Failure | None = None, job_id: str = "") -> HostRecord:
        """The record of ``candidate`` from its step summaries, or from the ``failure`` that
        stopped it. ``insertion``: an :class:`~ionscreen.screening.insertion.InsertionResult`
        or its document. ``job_id``: the id of the BVSE job (or of the failed job)."""
        ident = {"job_id": job_id, "candidate_id": candidate.id, "formula": candidate.formula,
                 "working_ion": candidate.working_ion, "source": candidate.source,
                 "citation": candidate.citation or "", "state": candidate.state,
                 "structure": candidate.structure}
        if failure is not None:
            return cls(**ident, bvse=bvse, neb=neb, failure=failure)
        ins = _insertion_doc(insertion)
        cap = capacity_or_note(candidate)
        oxi = oxidation_summary(candidate.structure) or None
        oxi_from = candidate.provenance.get(OXI_FROM) or _BUILT_BY.get(
            candidate.source.split(":", 1)[0], "as built")
        return cls(
            **ident, bvse=bvse, neb=neb, capacity=cap,
            density=round(float(candidate.structure.density), 4),
            voltage_V=ins.get("voltage_V") if ins else None,
            volume_change=ins.get("volume_change") if ins else None,
            ml_model=ins.get("model") if ins else None,
            notes=tuple(_ion_notes(candidate) + _result_notes(cap, bvse, neb, ins)),
            sustainability=host_sustainability(candidate.structure, candidate.working_ion),
            oxidation_states=oxi, oxidation_from=oxi_from if oxi else None,
        )

    # ------------------------------------------------------------------ serialisation
    def as_dict(self) -> dict[str, Any]:
        """A JSON-able document (structure as pymatgen's dict)."""
        return {
            "@module": type(self).__module__, "@class": type(self).__name__,
            "job_id": self.job_id, "candidate_id": self.candidate_id, "formula": self.formula,
            "working_ion": self.working_ion, "source": self.source, "citation": self.citation,
            "state": self.state,
            "bvse": self.bvse.as_dict() if self.bvse else None,
            "neb": self.neb.as_dict() if self.neb else None,
            "capacity": self.capacity.as_dict() if self.capacity else None,
            "density": self.density, "voltage_V": self.voltage_V,
            "volume_change": self.volume_change, "ml_model": self.ml_model,
            "structure": self.structure.as_dict() if self.structure is not None else None,
            "notes": [n.as_dict() for n in self.notes],
            "failure": self.failure.as_dict() if self.failure else None,
            "sustainability": self.sustainability.as_dict() if self.sustainability else None,
            "oxidation_states": self.oxidation_states, "oxidation_from": self.oxidation_from,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HostRecord:
        def opt(key: str, kind: Any) -> Any:
            return kind.from_dict(d[key]) if d.get(key) else None

        st = d.get("structure")
        return cls(
            job_id=d["job_id"], candidate_id=d.get("candidate_id"), formula=d["formula"],
            working_ion=d["working_ion"], source=d["source"], citation=d.get("citation") or "",
            state=d.get("state"), bvse=opt("bvse", BVSESummary), neb=opt("neb", NEBSummary),
            capacity=opt("capacity", Capacity), density=d.get("density"),
            voltage_V=d.get("voltage_V"), volume_change=d.get("volume_change"),
            ml_model=d.get("ml_model"),
            structure=Structure.from_dict(st) if isinstance(st, Mapping) else st,
            notes=tuple(Note.from_dict(n) for n in d.get("notes") or ()),
            failure=opt("failure", Failure), sustainability=opt("sustainability", Sustainability),
            oxidation_states=d.get("oxidation_states"), oxidation_from=d.get("oxidation_from"),
        )


def split_failed(records: Iterable[HostRecord]) -> tuple[list[HostRecord], list[HostRecord]]:
    """(done records, failed records), each in the given order."""
    done: list[HostRecord] = []
    failed: list[HostRecord] = []
    for r in records:
        (done if r.done else failed).append(r)
    return done, failed
