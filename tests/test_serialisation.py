"""Every result and settings type round-trips through monty (``dumpfn``/``loadfn``), the way
pymatgen users store objects: MSONable with ``as_dict``/``from_dict``."""

from __future__ import annotations

import pytest
from monty.json import MSONable
from monty.serialization import dumpfn, loadfn

import ionscreen as isc
from ionscreen.screening.bvse import BVSEResult, BVSESettings, BVSESummary
from ionscreen.screening.descriptors import Capacity
from ionscreen.screening.insertion import InsertionResult
from ionscreen.screening.neb import NEBReport, NEBResult, NEBSettings, NEBSummary
from ionscreen.screening.rank import RankedHost
from ionscreen.screening.records import Failure, HostRecord, Note
from ionscreen.screening.sustainability import Sustainability, sustainability
from ionscreen.structures.candidates import Candidate
from ionscreen.structures.ions import WorkingIon


@pytest.fixture(scope="module")
def screened():
    """A small real chain: candidate -> BVSE -> BVFF NEB -> record -> rank."""
    st = isc.get_prototype("TiS2").build()
    cand = isc.make_candidate(st, "Mg", "file:TiS2.cif", citation="test")
    land = isc.compute_landscape(st, "Mg", resolution=0.4)
    rep = isc.run_neb(st, "Mg", "bvff", bvse=land, settings=NEBSettings(images=3, steps=100))
    rec = isc.HostRecord.from_results(cand, land.summary(), rep.summary(), job_id="j1")
    return {"candidate": cand, "landscape": land, "report": rep, "record": rec,
            "ranked": isc.rank([rec], "Mg")[0]}


def _round_trip(obj, tmp_path):
    path = tmp_path / "obj.json"
    dumpfn(obj, path)
    back = loadfn(path)
    assert type(back) is type(obj)
    return back


def test_every_result_type_is_msonable():
    for kind in (BVSESettings, NEBSettings, BVSESummary, NEBSummary, NEBResult, NEBReport,
                 Capacity, Note, Failure, HostRecord, RankedHost, Candidate, WorkingIon,
                 BVSEResult, InsertionResult, Sustainability):
        assert issubclass(kind, MSONable), kind


def test_chain_round_trips_through_monty(screened, tmp_path):
    cand = _round_trip(screened["candidate"], tmp_path)
    assert cand.as_dict() == screened["candidate"].as_dict()
    land = _round_trip(screened["landscape"], tmp_path)
    assert land.barriers == screened["landscape"].barriers
    assert land.summary() == screened["landscape"].summary()
    rep = _round_trip(screened["report"], tmp_path)
    assert rep.as_dict() == screened["report"].as_dict()
    assert rep.summary() == screened["report"].summary()
    rec = _round_trip(screened["record"], tmp_path)
    assert rec.as_dict() == screened["record"].as_dict()
    ranked = _round_trip(screened["ranked"], tmp_path)
    assert ranked.as_dict() == screened["ranked"].as_dict()
    assert ranked.note_codes() == screened["ranked"].note_codes()


def test_small_records_round_trip(tmp_path):
    for obj in (BVSESettings(resolution=0.3), NEBSettings(images=3), Capacity(100.0, 300.0, "n"),
                Note("tier_mismatch", "text"), Failure("neb", "CalculationError", "why"),
                WorkingIon("NH4", "N", 1, molecular=True), isc.get_working_ion("Mg"),
                sustainability("LiFePO4"), Sustainability(notes=("unreadable formula",))):
        assert _round_trip(obj, tmp_path) == obj


def test_failed_record_round_trips(tmp_path):
    rec = HostRecord(job_id="j2", candidate_id=None, formula="bad.cif", working_ion="Mg",
                     source="file:bad.cif", citation="user structure",
                     failure=Failure("candidate", "StructureReadError", "x"))
    back = _round_trip(rec, tmp_path)
    assert back.failure == rec.failure and not back.done
