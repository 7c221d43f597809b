"""Typed records between the stages (screening/records.py) and how a store becomes records.

Also the two defects of issue 12 that live here: a record that did not finish is never dropped
without a word (defect 3), and the voltage step's empty host keeps a polymer's node Zn and
drops only whole NH4 groups (defect 2).
"""

from __future__ import annotations

import csv
import json

import pytest
from pymatgen.core import Composition, Lattice, Structure

from ionscreen._json import jsonable
from ionscreen.errors import StructureValidationError
from ionscreen.screening.bvse import BVSESettings, compute_landscape
from ionscreen.screening.descriptors import Capacity, capacity
from ionscreen.screening.export import export_run
from ionscreen.screening.insertion import hosts_for_voltage
from ionscreen.screening.neb import NEBSummary
from ionscreen.screening.rank import rank
from ionscreen.screening.records import Failure, HostRecord, Note, host_sustainability, split_failed
from ionscreen.structures.candidates import Candidate, from_prototypes, make_candidate
from ionscreen.structures.ions import get_working_ion


@pytest.fixture(scope="module")
def tis2():
    """The TiS2 prototype for Mg (empty host) with a coarse BVSE summary."""
    cand = next(iter(from_prototypes(["Mg"], ["TiS2"])))
    res = compute_landscape(cand.structure, "Mg", settings=BVSESettings(resolution=0.4))
    return cand, res.summary()


def test_from_results_computes_the_descriptors_once_and_leaves_the_candidate(tis2):
    cand, summary = tis2
    before = json.dumps(jsonable(cand.to_dict()), sort_keys=True)
    rec = HostRecord.from_results(cand, summary, job_id="j1")
    assert json.dumps(jsonable(cand.to_dict()), sort_keys=True) == before  # nothing mutated
    assert rec.done and rec.failure is None and rec.job_id == "j1"
    assert rec.candidate_id == cand.id and rec.formula == cand.formula and rec.working_ion == "Mg"
    assert rec.capacity == capacity(cand) and rec.capacity_mAh_g == capacity(cand).mAh_g > 0
    assert rec.density == round(cand.structure.density, 4)
    assert rec.sustainability == host_sustainability(cand.structure, "Mg")
    assert rec.sustainability.formula == "TiS2"
    assert rec.bvse is summary and rec.neb is None and rec.voltage_V is None
    # the capacity basis is the first note, as the exports print it
    assert [n.code for n in rec.notes] == ["capacity_basis"]
    assert rec.notes[0].text == capacity(cand).note and str(rec.notes[0]) == rec.notes[0].text


def test_record_round_trips_through_json(tis2):
    cand, summary = tis2
    neb = NEBSummary.failed("bvff", "no C2+-N3- row")
    ins = {"voltage_V": 1.2, "volume_change": 0.2, "model": "CHGNet 0.3.0", "volume_warning": True,
           "notes": ["relaxation moved the volume by 20 %", "other"]}
    rec = HostRecord.from_results(cand, summary, neb, ins, job_id="j2")
    assert rec.voltage_V == 1.2 and rec.ml_model == "CHGNet 0.3.0"
    assert [n.code for n in rec.notes] == ["capacity_basis", "volume_warning"]
    doc = json.loads(json.dumps(jsonable(rec.as_dict())))
    back = HostRecord.from_dict(doc)
    assert back.as_dict() == rec.as_dict()
    assert back.neb == neb and back.capacity == rec.capacity and back.bvse == summary
    assert back.sustainability == rec.sustainability and back.sustainability.formula == "TiS2"
    assert doc["sustainability"] == rec.sustainability.as_dict()  # stored as the plain document
    assert doc["sustainability"]["sustainability_score"] == rec.sustainability.score
    assert Note.from_dict("a note written before 0.2") == Note("note", "a note written before 0.2")


def test_failed_record_and_capacity_that_cannot_be_computed(tis2):
    cand, summary = tis2
    bad = HostRecord.from_results(cand, None, failure=Failure("bvse", "RuntimeError", "node lost"),
                                  job_id="jf")
    assert not bad.done and bad.failure.step == "bvse" and bad.capacity is None
    assert Failure.from_dict(bad.failure.as_dict()) == bad.failure
    plain = cand.structure.copy()
    plain.remove_oxidation_states()  # no oxidation states: no redox count, so no capacity
    rec = HostRecord.from_results(make_candidate(plain, "Mg", "test"), summary)
    assert rec.capacity == Capacity(None, None, rec.capacity.note)
    assert rec.notes[0].code == "capacity_not_computed"
    assert rec.notes[0].text.startswith("capacity not computed:")


def test_approximate_models_are_noted(tis2):
    import dataclasses

    cand, summary = tis2
    approx = dataclasses.replace(summary, approximate=True, model="NH4+ as K+")
    neb = NEBSummary(barrier=0.4, converged=True, calculator="BVFF x", tier="BVFF",
                     status="converged", approximate=True)
    rec = HostRecord.from_results(cand, approx, neb)
    assert [n.code for n in rec.notes] == ["capacity_basis", "approximate_model", "approximate_neb"]
    assert rec.notes[1].text == "approximate ion model: NH4+ as K+"


# ------------------------------------------------------------------ defect 3: no silent drop


def test_a_failed_record_is_never_dropped_silently(tis2, tmp_path):
    cand, summary = tis2
    good = HostRecord.from_results(cand, summary, job_id="ok")
    bad = HostRecord.from_results(cand, None, failure=Failure("bvse", "RuntimeError", "node lost"),
                                  job_id="bad")
    with pytest.raises(ValueError, match="failed at step bvse"):
        rank([good, bad], "Mg")
    done, failed = split_failed([good, bad])
    assert [r.job_id for r in done] == ["ok"] and [r.job_id for r in failed] == ["bad"]
    written = export_run(done, failed, tmp_path, top_n=1)
    fails = list(csv.DictReader(written["failures.csv"].open()))
    assert [(f["job_id"], f["step"], f["reason"]) for f in fails] == [("bad", "bvse", "node lost")]
    meta = json.loads(written["ranked_Mg.json"].read_text())["meta"]
    assert meta["counts"]["done"] == 1  # the failed candidate is the done one's twin, not new


def test_collect_records_keeps_every_finished_job(tmp_path):
    """A store with a done, a failed and a queued BVSE job, a file that did not load and a
    failed NEB: the done record, and every failure in a separate list; the queued job is not
    finished, so it is in neither."""
    from ionscreen.workflows.screen import collect_records
    from ionscreen.workflows.steps import bvse_step
    from ionscreen.workflows.store import Job, job_id
    from ionscreen.workflows.store_sqlite import SQLiteStore

    cands = [c.to_dict() for c in from_prototypes(["Mg"], ["TiS2", "MoO3", "TiO2-anatase"])]
    settings = {"resolution": 0.5}
    docs = [{"candidate": c, "settings": settings} for c in cands]
    jobs = [Job(job_id("bvse", d), "bvse", d) for d in docs]
    file_doc = {"path": "broken.cif", "ion": "Mg", "oxi": None}
    neb_doc = {"candidate": cands[0], "bvse": {}, "settings": {}, "calculator": "bvff"}
    jobs += [Job(job_id("candidate", file_doc), "candidate", file_doc),
             Job(job_id("neb", neb_doc), "neb", neb_doc)]
    with SQLiteStore(tmp_path / "s.sqlite") as store:
        store.add_jobs(jobs)
        store.finish(jobs[0].id, bvse_step(docs[0]), 0.1)
        store.fail(jobs[1].id, "RuntimeError", "node lost", 0.1)
        store.fail(jobs[3].id, "StructureReadError", "not a CIF", 0.1)
        store.fail(jobs[4].id, "MissingParameterError", "no C2+-N3- row", 0.1)
        done, failed = collect_records(store)
    assert [r.job_id for r in done] == [jobs[0].id]
    assert done[0].neb == NEBSummary.failed("bvff", "no C2+-N3- row")  # says why no NEB barrier
    assert [(r.job_id, r.failure.step) for r in failed] == [
        (jobs[1].id, "bvse"), (jobs[3].id, "candidate"), (jobs[4].id, "neb")]
    assert failed[1].formula == "broken.cif" and failed[1].source == "file:broken.cif"
    assert failed[1].candidate_id is None and failed[2].candidate_id == cands[0]["id"]


def test_candidate_documents_of_older_stores_still_read(tis2):
    cand, _ = tis2
    old = {**cand.to_dict(), "capacity_mAh_g": 1.0, "capacity_mAh_cm3": 2.0, "capacity_note": "x"}
    assert Candidate.from_dict(old).to_dict() == cand.to_dict()


# ------------------------------------------------------------------ defect 2: the empty host


def test_voltage_empty_host_keeps_the_polymer_node_zn():
    from ionscreen.structures import polymers

    # the ordered ZnZn(PTtSA) model as from_polymers makes it (without its disordered models)
    st = polymers.build_ordered("Zn", "Zn", "PTtSA")
    cand = make_candidate(st, "Zn", "polymer:Zn-Zn-PTtSA ordered", state="discharged")
    empty, inserted = hosts_for_voltage(cand)
    assert inserted is cand.structure
    n_zn = inserted.composition["Zn"]
    assert n_zn == 4  # two formula units of ZnZn(PTtSA): 2 stored (DI) + 2 node Zn
    assert empty.composition["Zn"] == 2  # the node Zn stays in the framework
    assert n_zn - empty.composition["Zn"] == get_working_ion("Zn").count(inserted) == 2  # x = 2
    rest = inserted.composition.element_composition - Composition("Zn2")
    assert empty.composition.element_composition == rest


def test_voltage_empty_host_drops_whole_nh4_groups_only():
    # a cyanide-like framework N (no H on it) and one NH4+ in the cage
    h = 1.03 / 3 ** 0.5 / 6.0  # N-H 1.03 Å along the cube diagonals of a 6 Å cell
    species = ["Fe", "C", "N", "N", "H", "H", "H", "H"]
    coords = [[0, 0, 0], [0.32, 0, 0], [0.51, 0, 0], [0.5, 0.5, 0.5],
              [0.5 + h, 0.5 + h, 0.5 + h], [0.5 - h, 0.5 - h, 0.5 + h],
              [0.5 - h, 0.5 + h, 0.5 - h], [0.5 + h, 0.5 - h, 0.5 - h]]
    st = Structure(Lattice.cubic(6.0), species, coords)
    cand = make_candidate(st, "NH4", "test", state="discharged")
    empty, inserted = hosts_for_voltage(cand)
    assert inserted.composition["N"] == 2 and inserted.composition["H"] == 4
    assert empty.composition["N"] == 1 and empty.composition["H"] == 0  # framework N stays
    assert empty.composition.reduced_formula == "FeCN"


def test_voltage_of_an_empty_host_needs_its_bvse_sites(tis2):
    cand, _ = tis2  # an empty host: its ions go onto its BVSE sites, so without any: no voltage
    with pytest.raises(StructureValidationError, match="no BVSE site"):
        hosts_for_voltage(cand)


def test_a_calibrated_ml_barrier_is_ranked_and_exported_with_what_stands_behind_it(tis2, tmp_path):
    """The ranked barrier of an ML NEB is its calibrated value, labelled so; the CSV row keeps
    the raw value, the spread, the uncertainty, the models and the flags beside it."""
    cand, summary = tis2
    neb = NEBSummary(barrier=0.62, converged=True, calculator="committee (a, b)", tier="MLIP",
                     status="converged", raw_barrier=0.41, spread=0.05, uncertainty=0.14,
                     calibrated=True, models=("CHGNet 0.3.0", "CHGNet r2scan"),
                     flags=({"code": "merged-hops", "text": "x", "hop": 0},))
    rec = HostRecord.from_results(cand, summary, neb, job_id="ml")
    host = rank([rec], "Mg")[0]
    assert host.barrier == 0.62 and host.barrier_tier.endswith(", calibrated")
    written = export_run([rec], [], tmp_path, top_n=1)
    row = next(csv.DictReader(written["ranked_Mg.csv"].open()))
    assert (row["neb_barrier_eV"], row["neb_barrier_raw_eV"], row["neb_spread_eV"],
            row["neb_uncertainty_eV"]) == ("0.62", "0.41", "0.05", "0.14")
    assert row["neb_calibrated"] == "True" and row["neb_models"] == "CHGNet 0.3.0; CHGNet r2scan"
    assert row["neb_flag_codes"] == "merged-hops"
    assert NEBSummary.from_dict(neb.as_dict()) == neb


def test_an_uncertain_ml_barrier_is_noted(tis2):
    from ionscreen.screening.rank import UNCERTAIN

    cand, summary = tis2
    neb = NEBSummary(barrier=0.5, converged=True, calculator="committee (a, b)", tier="MLIP",
                     status="converged", raw_barrier=0.5, spread=UNCERTAIN + 0.1,
                     uncertainty=UNCERTAIN + 0.1)
    host = rank([HostRecord.from_results(cand, summary, neb, job_id="u")], "Mg")[0]
    assert host.barrier == 0.5 and "neb_uncertain" in [n.code for n in host.notes]
    sure = NEBSummary(barrier=0.5, converged=True, calculator="c", tier="MLIP", status="converged",
                      uncertainty=0.05)
    host = rank([HostRecord.from_results(cand, summary, sure, job_id="s")], "Mg")[0]
    assert "neb_uncertain" not in [n.code for n in host.notes]
