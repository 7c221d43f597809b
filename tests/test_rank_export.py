"""Ranking (Pareto, weighted score, weights config), sustainability descriptors and exports."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import math
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Composition, Structure
from pymatgen.io.cif import CifParser
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from ionscreen.screening.bvse import BVSESummary
from ionscreen.screening.descriptors import Capacity
from ionscreen.screening.export import COLUMNS, export_run, flat_record
from ionscreen.screening.neb import NEBSummary
from ionscreen.screening.rank import (
    barrier_of,
    is_pre_screen,
    load_weights,
    non_dominated_sort,
    rank,
    rank_all,
    ranked_tier,
    tier_level,
    validate_weights,
)
from ionscreen.screening.records import Failure, HostRecord, host_sustainability, split_failed
from ionscreen.screening.sustainability import (
    CRITICAL_ELEMENTS,
    TOXIC_ELEMENTS,
    Sustainability,
    load_data,
    sustainability,
)
from ionscreen.structures.prototypes import get_prototype

# ----------------------------------------------------------------------------- helpers

_STRUCTS: dict[str, Structure] = {}


def _struct(proto: str) -> Structure:
    if proto not in _STRUCTS:
        _STRUCTS[proto] = get_prototype(proto).build()
    return _STRUCTS[proto]


def make_row(job: str, formula: str, ion: str = "Mg", e1d=0.5, e2d=None, e3d=None, cap=150.0,
             proto: str = "TiS2", neb=None, failure: Failure | None = None,
             site_bvs: float | None = None, ion_charge: int | None = None, **extra) -> HostRecord:
    """A record as ``collect_records`` builds it, with made-up BVSE numbers (stored documents'
    keys, so that NaN and inf become None as they do when a summary is read back)."""
    bars = {"1D": e1d, "2D": e2d, "3D": e3d}
    bvse = BVSESummary.from_dict({
        "barriers": bars, "dimensionality": sum(v is not None for v in bars.values()), "method": "BVSE",
        "model": "Mg2+ with softBV parameters (Chen & Adams 2017)", "approximate": False,
        "n_sites": 4, "n_distinct_sites": 1, "site_energy_spread": 0.0,
        "lowest_hop_barrier": e1d, "grid_step": 0.2, "site_bvs": site_bvs, "ion_charge": ion_charge})
    st = _struct(proto)
    fields = {
        "job_id": job, "candidate_id": f"{job}cand0123456789", "formula": formula, "working_ion": ion,
        "source": f"prototype:{proto}", "citation": f"Cited paper for {proto}", "state": "charged",
        "bvse": bvse, "neb": NEBSummary.from_dict(neb) if neb else None,
        "capacity": Capacity(cap, None if cap is None else cap * 3.2), "density": 3.2,
        "structure": st, "failure": failure,
        "sustainability": None if failure else host_sustainability(st, ion),
    }
    fields.update(extra)
    return HostRecord(**fields)


def bvse_row() -> tuple[HostRecord, object]:
    """A record from a real BVSE run (LiFePO4 with Li, 0.2 Å grid)."""
    from ionscreen.screening.bvse import compute_landscape

    st = get_prototype("LiFePO4").build(with_ion="Li")
    res = compute_landscape(st, "Li", resolution=0.2)
    row = HostRecord(
        job_id="lfpjob", candidate_id="lfp0000011112222", formula=res.formula, working_ion="Li",
        source="prototype:LiFePO4", citation="Padhi et al. 1997", state="discharged",
        bvse=res.summary(), capacity=Capacity(169.9, 607.0), density=3.57, structure=st,
        sustainability=host_sustainability(st, "Li"))
    return row, res


@pytest.fixture(scope="module")
def real():
    return bvse_row()


# ----------------------------------------------------------------------------- sustainability


def test_hhi_matches_pymatgen():
    from pymatgen.analysis.hhi import HHIModel

    hp, hr = HHIModel().get_hhi("LiFePO4")
    s = sustainability("LiFePO4")
    assert s.hhi_production == pytest.approx(hp, abs=0.01)
    assert s.hhi_reserve == pytest.approx(hr, abs=0.01)
    assert s.hhi_coverage == 1.0
    assert s.abundance_min_element == "Li" and s.abundance_min_ppm == 24.0
    assert 0 <= s.score <= 1
    # structure, Composition and dict inputs agree
    st = get_prototype("LiFePO4").build(with_ion="Li")
    assert sustainability(st).hhi_production == s.hhi_production
    assert sustainability(st.as_dict()).hhi_reserve == s.hhi_reserve
    assert sustainability(Composition("LiFePO4")).score == s.score


def test_score_formula_by_hand():
    s = sustainability("MnO2")
    hp, hr = s.hhi_production, s.hhi_reserve
    s_hhi = 1 - (hp + hr) / 2 / 10000
    s_ab = (math.log10(774.0) + 3) / 7
    w_mn = Composition("MnO2").get_wt_fraction("Mn")
    assert s.score == pytest.approx(0.5 * s_hhi + 0.5 * s_ab - 0.2 * w_mn, abs=1e-5)
    assert s.critical_elements == ("Mn",) and not s.toxic


def test_sustainability_of_cds_and_mgo_computed_by_hand():
    """Every number from the tables alone (pymatgen HHI: Cd 1700/1300, S 700/1000, Mg 5300/500,
    O 500/500; crust ppm: Cd 0.09, S 62, Mg 14955, O 461000; Mg is EU-critical, Cd toxic)."""
    cds = sustainability("CdS")  # w_Cd = 112.414 / 144.479 = 0.77806, w_S = 0.22194
    assert cds.hhi_production == pytest.approx(0.77806 * 1700 + 0.22194 * 700, abs=0.01)  # 1478.06
    assert cds.hhi_reserve == pytest.approx(0.77806 * 1300 + 0.22194 * 1000, abs=0.01)  # 1233.42
    assert (cds.abundance_min_element, cds.abundance_min_ppm) == ("Cd", 0.09)
    assert cds.abundance_weighted_ppm == pytest.approx(0.09 ** 0.77806 * 62 ** 0.22194, rel=1e-4)
    # 0.5 (1 - 2711.48 / 20000) + 0.5 (log10 0.09 + 3) / 7 - 0.25 = 0.432213 + 0.139589 - 0.25
    assert cds.score == pytest.approx(0.321802, abs=2e-6)
    assert cds.score_components == {"s_hhi": pytest.approx(0.864426, abs=2e-6),
                                       "s_abundance": pytest.approx(0.279178, abs=2e-6),
                                       "toxic_penalty": 0.25, "critical_penalty": 0.0}
    mgo = sustainability("MgO")  # w_Mg = 24.305 / 40.304 = 0.603036
    assert mgo.hhi_production == pytest.approx(0.603036 * 5300 + 0.396964 * 500, abs=0.01)
    assert mgo.critical_mass_fraction == pytest.approx(0.603036, abs=1e-6)
    # s_abundance = (log10 14955 + 3) / 7 = 1.025, clipped to 1
    # 0.5 (1 - 3894.57 / 20000) + 0.5 * 1 - 0.2 * 0.603036 = 0.402636 + 0.5 - 0.120607
    assert mgo.score == pytest.approx(0.782029, abs=2e-6)
    assert mgo.score_components["s_abundance"] == 1.0


def test_toxic_and_critical_flags():
    assert sustainability("CdS").toxic_elements == ("Cd",)
    assert sustainability("PbO2").toxic is True
    assert sustainability("TiS2").toxic is False
    # Cr only as Cr(VI)
    plain = sustainability("MgCr2O4")
    assert plain.toxic is False and any("Cr(VI)" in n for n in plain.notes)
    assert sustainability(Composition({"Cr6+": 1, "O2-": 3})).toxic_elements == ("Cr",)
    co = sustainability("LiCoO2")
    assert co.critical and {"Co", "Li"} <= set(co.critical_elements)
    assert "cobalt" in co.critical_raw_materials
    assert sustainability("MgO").critical_elements == ("Mg",)
    assert sustainability("Mo3S4").critical is False  # Mo is not on the EU 2023 list
    tox = sustainability("CdS")
    clean = sustainability("ZnS")
    assert tox.score < clean.score


def test_documented_lists():
    data = load_data()
    assert len(data["critical"]["raw_materials"]) == 34
    assert {"Co", "Mg", "Li", "Mn", "Ni", "Cu", "P", "V"} <= set(CRITICAL_ELEMENTS)
    assert "C" not in CRITICAL_ELEMENTS and "Fe" not in CRITICAL_ELEMENTS
    assert {"Cd", "Hg", "Pb", "As", "Tl", "Be"} <= set(TOXIC_ELEMENTS)
    ppm = data["abundance"]["ppm"]
    from pymatgen.core import Element

    noble = {"He", "Ne", "Ar", "Kr", "Xe"}
    for z in range(1, 84):
        sym = Element.from_Z(z).symbol
        if sym not in noble:
            assert sym in ppm or sym in data["abundance"]["no_value"], sym
    assert "Rudnick" in data["abundance"]["source"]


def test_unknown_elements_give_none_not_crash():
    s = sustainability("TcO2")
    assert s.score is None and s.abundance_min_ppm is None
    assert any("Tc" in n for n in s.notes)
    # H has no pymatgen HHI: a polymer (little H by mass) still gets a value, with a note
    p = sustainability("ZnC8H4O4")
    assert p.hhi_production is not None and p.hhi_coverage < 1
    assert any("H" in n and "HHI" in n for n in p.notes)
    # mostly-H: HHI unknown
    assert sustainability("LiH").hhi_production is None
    # dummy species
    from pymatgen.core import DummySpecies

    d = sustainability(Composition({DummySpecies("X"): 1, "O": 1}))
    assert d.score is None and d.notes
    with pytest.raises(ValueError, match="cannot read"):
        sustainability("Qq2!")
    # excluding the working ion
    s = sustainability("MgTiS2", exclude=["Mg"])
    assert s.formula == "TiS2" and "Mg" not in s.critical_elements


_DOC_KEYS = ["formula", "hhi_production", "hhi_reserve", "hhi_method", "hhi_coverage",
             "abundance_min_ppm", "abundance_min_element", "abundance_weighted_ppm",
             "abundance_source", "toxic", "toxic_elements", "critical", "critical_elements",
             "critical_raw_materials", "critical_mass_fraction", "sustainability_score",
             "score_components", "score_formula", "notes"]


def test_sustainability_document_keeps_its_keys_and_round_trips():
    s = sustainability("LiCoO2")
    doc = s.as_dict()
    assert list(doc) == _DOC_KEYS  # the keys (and order) stored before the typed result
    assert doc["sustainability_score"] == s.score and doc["critical_elements"] == list(s.critical_elements)
    assert doc["toxic_elements"] == [] and isinstance(doc["notes"], list)
    assert Sustainability.from_dict(json.loads(json.dumps(doc))) == s
    blank = sustainability(Composition({"O": 1}), exclude=["O"]).as_dict()  # nothing left
    assert list(blank) == _DOC_KEYS and blank["toxic"] is False and blank["score_components"] == {}


def test_unreadable_host_gets_an_unknown_score_with_its_reason():
    s = host_sustainability("Qq2!", "Mg")
    assert isinstance(s, Sustainability) and s.score is None and s.toxic is None
    assert len(s.notes) == 1 and "cannot read" in s.notes[0]
    # a document stored as {"sustainability_score": None, "notes": [...]} reads back the same
    assert Sustainability.from_dict({"sustainability_score": None, "notes": list(s.notes)}) == s
    host = rank([make_row("q", "Qq2", sustainability=s)], "Mg")[0]
    assert host.sustainability_score is None
    assert any(n.code == "sustainability_unknown" and "cannot read" in n.text for n in host.notes)
    row = flat_record(host)
    assert (row["toxic"], row["toxic_elements"], row["critical"], row["hhi_production"]) == (None, "", None, None)


# ----------------------------------------------------------------------------- Pareto


def _brute_front(points):
    def dom(a, b):
        return (a[0] <= b[0] and a[1] >= b[1] and a[2] >= b[2]) and a != b

    return [not any(dom(q, p) for q in points) for p in points]


def test_pareto_against_brute_force():
    rng = random.Random(7)
    for _ in range(40):
        n = rng.randint(1, 30)
        # coarse values so that ties and duplicates happen
        pts = [(rng.randint(0, 6) / 4, rng.randint(0, 6) * 50.0, rng.randint(0, 5) / 5) for _ in range(n)]
        fronts = non_dominated_sort(pts)
        assert [f == 0 for f in fronts] == _brute_front(pts)
        # iterated: rank k is the front of what is left after removing ranks < k
        remaining = list(range(n))
        k = 0
        while remaining:
            sub = [pts[i] for i in remaining]
            front = [i for i, on in zip(remaining, _brute_front(sub)) if on]
            assert sorted(i for i in range(n) if fronts[i] == k) == sorted(front)
            remaining = [i for i in remaining if i not in front]
            k += 1


def test_pareto_flags_in_rank():
    rows = [make_row(f"j{i}", f"F{i}", e1d=b, cap=c) for i, (b, c) in
            enumerate([(0.3, 100), (0.5, 200), (0.6, 150), (0.2, None)])]
    out = {r.record.job_id: r for r in rank(rows, "Mg", {"barrier": 1})}
    # same structure -> same sustainability; front over (barrier, capacity)
    assert out["j0"].pareto and out["j1"].pareto
    assert not out["j2"].pareto and out["j2"].pareto_rank == 1
    assert out["j3"].pareto is False and out["j3"].pareto_rank is None
    assert any(n.code == "no_pareto" and "capacity" in n.text for n in out["j3"].notes)


# ----------------------------------------------------------------------------- score


def test_weighted_score_order_and_values():
    rows = [
        make_row("a", "A", e1d=0.2, cap=100, proto="TiS2"),
        make_row("b", "B", e1d=0.8, cap=300, proto="TiS2"),
        make_row("c", "C", e1d=0.5, cap=200, proto="TiS2"),
    ]
    by_barrier = rank(rows, "Mg", {"barrier": 1.0})
    assert [r.record.job_id for r in by_barrier] == ["a", "c", "b"]
    assert [r.rank for r in by_barrier] == [1, 2, 3]
    assert by_barrier[0].score == pytest.approx(1.0) and by_barrier[-1].score == pytest.approx(0.0)
    by_cap = rank(rows, "Mg", {"capacity": 2.0})
    assert [r.record.job_id for r in by_cap] == ["b", "c", "a"]
    mixed = {r.record.job_id: r for r in rank(rows, "Mg", {"barrier": 1, "capacity": 1})}
    # min-max: a = (1 + 0)/2, b = (0 + 1)/2, c = (0.5 + 0.5)/2 -> all 0.5; ties broken by barrier
    assert all(r.score == pytest.approx(0.5) for r in mixed.values())
    assert [r.record.job_id for r in rank(rows, "Mg", {"barrier": 1, "capacity": 1})] == ["a", "c", "b"]
    assert mixed["c"].score_components == {"barrier": 0.5, "energy": None, "capacity": 0.5,
                                           "sustainability": 1.0}


def test_sustainability_weight_prefers_clean_host():
    rows = [make_row("cd", "CdPS3", e1d=0.5, cap=150, proto="TiS2",
                     sustainability=sustainability("CdPS3")),
            make_row("ti", "TiS2", e1d=0.5, cap=150, proto="TiS2")]
    out = rank(rows, "Mg", {"sustainability": 1})
    assert out[0].record.job_id == "ti" and out[0].record.sustainability.toxic is False
    assert out[1].record.sustainability.toxic is True


def test_missing_and_unranked_rows():
    rows = [make_row("ok", "A", e1d=0.4), make_row("nobar", "B", e1d=None),
            make_row("fail", "C", failure=Failure("bvse", "boom", "bad cell")),
            make_row("ca", "D", ion="Ca", e1d=0.1), make_row("nocap", "E", e1d=0.6, cap=None)]
    # a failed record is never dropped without a word: rank refuses it, and names it
    with pytest.raises(ValueError, match=r"failed record.*C \(Mg, job fail\) failed at step bvse"):
        rank(rows, "Mg")
    with pytest.raises(ValueError, match="failed record"):
        rank_all(rows)
    rows, failed = split_failed(rows)
    assert [r.job_id for r in failed] == ["fail"]
    out = rank(rows, "Mg")
    assert [r.record.job_id for r in out] == ["ok", "nocap"]
    assert any(n.code == "missing_score_part" and "capacity" in n.text and "worst" in n.text
               for n in out[1].notes)
    full = rank(rows, "mg2+", include_unranked=True)
    assert [r.record.job_id for r in full] == ["ok", "nocap", "nobar"]
    assert full[-1].rank is None and any(n.code == "no_barrier" and "not ranked" in n.text
                                         for n in full[-1].notes)
    assert list(rank_all(rows)) == ["Mg", "Ca"]
    # input records untouched
    assert rows[0].notes == () and not hasattr(rows[0], "rank")


# ----------------------------------------------------------------------------- tiers


def test_tier_labels_and_one_tier_per_ranking():
    bvff = {"barrier": 0.35, "converged": True, "calculator": "BVFF softBV (Chen & Adams 2017)",
            "tier": "BVFF", "status": "converged"}
    mlip = {"barrier": 0.41, "converged": True, "calculator": "CHGNet 0.3.0", "tier": "MLIP",
            "status": "converged"}
    unconv = {"barrier": None, "converged": False, "calculator": "CHGNet 0.3.0", "tier": "MLIP",
              "status": "not converged"}
    rows = [make_row("b1", "A", e1d=0.9, e2d=1.2, neb=bvff), make_row("b2", "B", e1d=None, e2d=0.7),
            make_row("b3", "C", e1d=0.6), make_row("m1", "D", e1d=0.8, neb=mlip),
            make_row("u1", "E", e1d=0.55, neb=unconv)]
    full = rank(rows, "Mg", include_unranked=True)
    out = {r.record.job_id: r for r in full}
    assert out["b1"].barrier == 0.35
    assert out["b1"].barrier_tier == "BVFF CI-NEB (BVFF softBV (Chen & Adams 2017))"
    assert out["m1"].barrier_tier == "MLIP CI-NEB (CHGNet 0.3.0)"
    assert out["b2"].barrier == 0.7 and out["b2"].barrier_tier == "BVSE E2D"
    assert out["b3"].barrier_tier == "BVSE E1D"
    assert out["u1"].barrier == 0.55 and out["u1"].barrier_tier == "BVSE E1D"
    assert any(n.code == "neb_not_converged" and n.text.startswith("MLIP CI-NEB (CHGNet 0.3.0)")
               for n in out["u1"].notes)
    # the funnel: one tier ranks (the ML NEB, the highest that ran); the others are listed
    # below it, not promoted, never interleaved
    assert ranked_tier([h for h in full]) == "MLIP CI-NEB (CHGNet 0.3.0)"
    assert [h.record.job_id for h in rank(rows, "Mg")] == ["m1"]
    assert full[0].record.job_id == "m1" and full[0].rank == 1
    assert all(h.rank is None and not h.promoted and "not_promoted" in h.note_codes()
               for h in full[1:])
    assert "its NEB gave no rankable barrier" in str(out["u1"].notes[-1])
    assert "above the 2.5 eV filter" not in str(out["b2"].notes[-1])
    # without any NEB the BVSE tier ranks: a pre-screen
    bvse_only = [make_row("p", "P", e1d=0.9), make_row("q", "Q", e1d=0.6)]
    assert ranked_tier(rank(bvse_only, "Mg")) == "BVSE" and is_pre_screen("BVSE")
    assert is_pre_screen("BVFF CI-NEB (x)") and not is_pre_screen("MLIP CI-NEB (CHGNet 0.3.0)")
    assert tier_level("BVSE") < tier_level("BVFF CI-NEB (x)") < tier_level("committee CI-NEB (y)")
    odd = make_row("x", "X", e1d=float("nan"), e2d=float("inf"), e3d=2.0)
    assert barrier_of(odd)[:2] == (2.0, "BVSE E3D")
    assert barrier_of(dataclasses.replace(odd, bvse=None, neb=None))[0] is None


def test_ranked_no_saddle_row_follows_clean_rows_of_its_class():
    """A ranked no-saddle barrier is a lower bound: after the clean rows of its class, whatever
    its score; refused below 0.65 eV, so the BVSE barrier stands in there."""
    def ml(b, flags=()):
        return {"barrier": b, "converged": True, "calculator": "CHGNet 0.3.0", "tier": "MLIP",
                "status": "converged", "flags": list(flags)}
    no_saddle = [{"code": "no-saddle", "text": "no saddle", "refuses": False}]
    rows = [make_row("ns", "A", e1d=0.9, cap=400.0, neb=ml(0.95, no_saddle)),
            make_row("ok", "B", e1d=0.9, cap=100.0, neb=ml(1.20))]
    out = rank(rows, "Mg")
    assert [h.mobility for h in out] == ["immobile", "immobile"]
    assert out[0].score < out[1].score  # the clean row is first although it scores lower
    assert [h.record.job_id for h in out] == ["ok", "ns"] and "no-saddle" in out[1].flags
    low = [{"code": "no-saddle", "text": "no saddle", "refuses": True}]
    refused = rank([make_row("lo", "C", e1d=0.9, neb=ml(0.40, low))], "Mg", include_unranked=True)
    assert refused[0].barrier_tier.startswith("BVSE")


def test_mixed_ml_models_noted():
    rows = [make_row("x", "A", voltage_V=2.0, ml_model="CHGNet 0.3.0"),
            make_row("y", "B", voltage_V=2.1, ml_model="CHGNet 0.3.0"),
            make_row("z", "C", voltage_V=1.0, ml_model="MACE-MP small")]
    out = {r.record.job_id: r for r in rank(rows, "Mg")}
    assert any(n.code == "ml_model_mismatch" and "MACE-MP small" in n.text for n in out["z"].notes)
    assert "ml_model_mismatch" not in out["x"].note_codes()


def test_real_bvse_row(real):
    row, res = real
    out = rank([row], "Li")[0]
    assert out.barrier == pytest.approx(res.barriers["1D"])
    assert out.barrier_tier == "BVSE E1D" and out.rank == 1 and out.pareto
    assert out.record.sustainability.formula == "FePO4"  # evaluated without the working ion
    rec = flat_record(out)
    assert rec["n_sites"] == len(res.sites) and rec["n_distinct_sites"] == len(res.distinct_sites)
    assert rec["dimensionality"] == res.dimensionality == 3
    assert rec["bvse_model"].startswith(res.method)


# ----------------------------------------------------------------------------- weights config


def test_default_weights():
    w = load_weights()
    assert set(w) == {"barrier", "energy", "capacity", "sustainability"}
    assert sum(w.values()) == pytest.approx(1.0)
    # the barrier first; energy and capacity together (all capacity when no voltage ran) as
    # much as before the energy objective (0.3)
    assert w["barrier"] > w["energy"] + w["capacity"] == pytest.approx(0.3)


def test_weights_from_toml_and_json(tmp_path):
    t = tmp_path / "ranking.toml"
    t.write_text("[weights]\nbarrier = 2\ncapacity = 1\nsustainability = 1\n")
    assert load_weights(t) == {"barrier": 0.5, "energy": 0.0, "capacity": 0.25, "sustainability": 0.25}
    j = tmp_path / "ranking.json"
    j.write_text(json.dumps({"weights": {"capacity": 3}}))
    assert load_weights(j) == {"barrier": 0.0, "energy": 0.0, "capacity": 1.0, "sustainability": 0.0}
    top = tmp_path / "top.toml"
    top.write_text("barrier = 1\n")
    assert load_weights(top)["barrier"] == 1.0
    rows = [make_row("a", "A", e1d=0.2, cap=100), make_row("b", "B", e1d=0.8, cap=300)]
    assert rank(rows, "Mg", weights=j)[0].record.job_id == "b"
    assert rank(rows, "Mg", weights=str(t))[0].record.job_id == "a"


@pytest.mark.parametrize("text, key", [
    ("[weights]\nbarier = 1\n", "barier"),
    ("[weights]\nbarrier = -1\n", "barrier"),
    ("[weights]\ncapacity = 'high'\n", "capacity"),
    ("[weights]\nsustainability = true\n", "sustainability"),
    ("[weights]\nbarrier = inf\n", "barrier"),
])
def test_invalid_weights_name_the_key(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        load_weights(p)


def test_weights_errors(tmp_path):
    with pytest.raises(ValueError, match="all weights are zero"):
        validate_weights({"barrier": 0})
    p = tmp_path / "broken.toml"
    p.write_text("[weights\n")
    with pytest.raises(ValueError, match="cannot parse as TOML"):
        load_weights(p)
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "missing.toml")
    with pytest.raises(ValueError, match="unknown weight key 'speed'"):
        rank([], "Mg", {"speed": 1})


# ----------------------------------------------------------------------------- exports

EVIL = '<script>alert("x")</script>&Mg'


@pytest.fixture(scope="module")
def exported(tmp_path_factory, real):
    lfp_row, res = real
    def bvff(b: float) -> dict:
        return {"barrier": b, "converged": True, "calculator": "BVFF softBV", "tier": "BVFF",
                "status": "converged"}

    rows = [  # the funnel promoted m1-m4 to the BVFF NEB; m6 stopped at BVSE
        make_row("m1", "TiS2", e1d=0.45, cap=240, proto="TiS2", neb=bvff(0.41)),
        make_row("m2", "MnO2", e1d=0.9, e2d=1.1, cap=300, proto="MnO2-beta", neb=bvff(0.83)),
        make_row("m3", "V2O5", e1d=0.7, cap=280, proto="V2O5", neb=bvff(0.52),
                 voltage_V=2.3, volume_change=0.031, ml_model="CHGNet 0.3.0"),
        make_row("m4", EVIL, e1d=0.6, cap=120, proto="TiO2-rutile", citation=EVIL + " & co.",
                 neb=bvff(0.30)),
        make_row("m6", "Nb2O5", e1d=2.9, cap=150, proto="TiO2-anatase"),
        make_row("m5", "MoO3", e1d=None, cap=200, proto="MoO3"),
        make_row("f1", "Bad", failure=Failure("bvse", "OxidationStateError: no Fe oxi",
                                              "oxidation <states> unknown")),
        make_row("z1", "TiO2", ion="Zn", e1d=0.3, cap=330, proto="TiO2-anatase"),
        lfp_row,
    ]
    out = tmp_path_factory.mktemp("export")
    landscapes = {"m1": np.random.default_rng(0).random((20, 16)),
                  "lfpjob": res}  # a BVSEResult with its grid
    done, failed = split_failed(rows)
    written = export_run(done, failed, out, top_n=3, landscapes=landscapes)
    return rows, out, written


def test_written_files(exported):
    _, out, written = exported
    names = {"ranked_Mg.csv", "ranked_Mg.json", "ranked_Zn.csv", "ranked_Zn.json", "ranked_Li.csv",
             "ranked_Li.json", "failures.csv", "top_cifs.zip", "report.html"}
    assert set(written) == names
    for p in written.values():
        assert Path(p).is_file() and Path(p).parent == out


def test_csv_and_json_contents(exported):
    _, out, _ = exported
    with open(out / "ranked_Mg.csv", newline="", encoding="utf-8") as fh:
        recs = list(csv.DictReader(fh))
    assert list(recs[0]) == list(COLUMNS)
    # the funnel: the four NEB rows are ranked; the BVSE row stands below them, not promoted
    # (above the 2.5 eV filter); MoO3 has no barrier at all and comes last
    assert [r["rank"] for r in recs] == ["1", "2", "3", "4", "", ""]
    assert recs[4]["formula"] == "Nb2O5" and "not promoted" in recs[4]["notes"]
    assert "above the 2.5 eV filter" in recs[4]["notes"]
    assert recs[-1]["formula"] == "MoO3" and "not ranked" in recs[-1]["notes"]
    v2o5 = next(r for r in recs if r["formula"] == "V2O5")
    assert v2o5["barrier_eV"] == "0.52" and v2o5["barrier_tier"] == "BVFF CI-NEB (BVFF softBV)"
    assert v2o5["E1D_eV"] == "0.7" and v2o5["neb_calculator"] == "BVFF softBV"
    assert v2o5["voltage_V"] == "2.3" and v2o5["ml_model"] == "CHGNet 0.3.0"
    # energy = voltage × capacity (280 mAh/g × 2.3 V; 896 mAh/cm³ × 2.3 V); unknown without voltage
    assert v2o5["specific_energy_Wh_kg"] == "644.0" and v2o5["energy_density_Wh_L"] == "2060.8"
    tis2 = next(r for r in recs if r["formula"] == "TiS2")
    assert tis2["specific_energy_Wh_kg"] == "" and "voltage unknown" in tis2["notes"]
    assert v2o5["critical"] == "True" and "V" in v2o5["critical_elements"].split()
    evil = next(r for r in recs if r["candidate_id"].startswith("m4"))
    assert evil["formula"] == EVIL  # raw text in CSV
    assert all(r["working_ion"] == "Mg" for r in recs)
    doc = json.loads((out / "ranked_Mg.json").read_text())
    assert doc["meta"]["working_ion"] == "Mg" and doc["meta"]["columns"] == list(COLUMNS)
    assert [r["rank"] for r in doc["rows"]] == [1, 2, 3, 4, None, None]
    # the BVFF NEB ranks barriers weakly against DFT: its ranking is a pre-screen
    assert doc["meta"]["ranked_tier"] == "BVFF CI-NEB (BVFF softBV)" and doc["meta"]["pre_screen"]
    assert doc["rows"][0]["barrier_eV"] is not None and isinstance(doc["rows"][0]["pareto"], bool)
    assert sum(doc["meta"]["weights"].values()) == pytest.approx(1)
    assert "NaN" not in (out / "ranked_Mg.json").read_text()
    li = json.loads((out / "ranked_Li.json").read_text())["rows"]
    assert li[0]["barrier_tier"] == "BVSE E1D" and li[0]["citation"] == "Padhi et al. 1997"
    with open(out / "failures.csv", newline="", encoding="utf-8") as fh:
        fails = list(csv.DictReader(fh))
    assert len(fails) == 1 and fails[0]["reason"] == "oxidation <states> unknown"
    assert fails[0]["error"].startswith("OxidationStateError")


@pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF")
def test_cif_zip(exported):
    _, out, _ = exported
    with zipfile.ZipFile(out / "top_cifs.zip") as zf:
        names = zf.namelist()
        cifs = [n for n in names if n.endswith(".cif")]
        assert "MANIFEST.csv" in names
        assert len([n for n in cifs if n.startswith("Mg/")]) == 3  # top_n
        assert any(n.startswith("Zn/1_TiO2_z1cand01") for n in cifs)
        assert any(n.startswith("Li/1_LiFePO4_lfp00000") for n in cifs)
        for n in cifs:
            assert re.fullmatch(r"[A-Za-z0-9]+/\d+_[A-Za-z0-9()._-]+_[A-Za-z0-9._-]{1,8}\.cif", n), n
            text = zf.read(n).decode()
            st = CifParser.from_str(text).parse_structures(primitive=False)[0]
            assert isinstance(st, Structure) and len(st) > 0
        li = zf.read(next(n for n in cifs if n.startswith("Li/"))).decode()
        st = CifParser.from_str(li).parse_structures(primitive=False)[0]
        assert st.composition.reduced_formula == "LiFePO4"
        # the CIF keeps the symmetry (space group + asymmetric unit), not a P1 list of 28 atoms
        assert "_symmetry_space_group_name_H-M   Pnma" in li and li.count(" Fe2+ ") < 4
        assert SpacegroupAnalyzer(st).get_space_group_symbol() == "Pnma" and len(st) == 28
        manifest = zf.read("MANIFEST.csv").decode()
        assert "Padhi et al. 1997" in manifest


def test_html_report(exported):
    _, out, _ = exported
    text = (out / "report.html").read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    # self-contained: no external resources
    assert not re.search(r"""(src|href)=['"](https?:|//)""", text)
    assert "<style>" in text
    # tables, counts, producers
    assert text.count("<table") >= 4
    for ion in ("Mg", "Zn", "Li"):
        assert f"id='ion-{ion}'" in text
    assert "BVFF CI-NEB (BVFF softBV)" in text and "BVSE E1D" in text and "CHGNet 0.3.0" in text
    assert "oxidation &lt;states&gt; unknown" in text
    # embedded plots: scatter per ion plus the two landscape slices given
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(imgs) >= 5
    import base64

    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "BVSE landscape LiFePO4" in text
    # landscapes missing for other top hosts are said, not left as holes
    assert "No landscape slice given" in text or "No BVSE landscape slices" in text
    # escaping of a malicious formula / citation
    assert "<script>" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;Mg" in text


def test_report_without_landscapes(tmp_path):
    rows = [make_row("a", "TiS2", e1d=0.4), make_row("b", "TiS2x", e1d=0.5, cap=None)]
    written = export_run(rows, [], tmp_path, top_n=5)
    text = written["report.html"].read_text()
    assert "No BVSE landscape slices were given" in text
    assert "without a capacity are not shown" in text
    with pytest.raises(ValueError, match="top_n"):
        export_run(rows, [], tmp_path, top_n=0)


def test_export_brute_pareto_consistency(exported):
    _, out, _ = exported
    doc = json.loads((out / "ranked_Mg.json").read_text())["rows"]
    pts = [(r["barrier_eV"], r["capacity_mAh_g"], r["sustainability_score"]) for r in doc
           if r["pareto_rank"] is not None]
    flags = [r["pareto"] for r in doc if r["pareto_rank"] is not None]
    assert flags == _brute_front(pts)
    for a, b in itertools.combinations([r for r in doc if r["rank"]], 2):
        assert a["score"] >= b["score"]
