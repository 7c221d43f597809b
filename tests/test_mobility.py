"""Mobility classes, D(300 K) and plausibility flags (issue 14, points 3 and 5), alone and in
the ranking."""

from __future__ import annotations

import math

import pytest
from test_rank_export import make_row

from ionscreen.screening.bvse import compute_landscape
from ionscreen.screening.mobility import (
    MICRON,
    NANO,
    diffusivity,
    mobility_class,
    plausibility_flags,
    tier_uncertainty,
)
from ionscreen.screening.rank import rank
from ionscreen.structures.candidates import from_prototypes


def test_classes_carry_the_uncertainty():
    assert mobility_class(0.40, 0.10) == "mobile"  # 0.50 <= 0.525
    assert mobility_class(0.40, 0.20) == "borderline"  # could be 0.60: nano-particles only
    assert mobility_class(MICRON, 0.0) == "mobile" and mobility_class(MICRON + 1e-6, 0) == "borderline"
    assert mobility_class(NANO, 0.0) == "borderline" and mobility_class(NANO + 1e-6, 0) == "immobile"
    assert mobility_class(0.90, 0.20) == "immobile" and mobility_class(0.90, 0.30) == "borderline"
    # BVSE's measured error keeps it from calling anything below ~1.5 eV immobile
    u = tier_uncertainty("BVSE")
    assert u and mobility_class(1.2, u) == "borderline" and mobility_class(0.05, u) == "borderline"
    assert tier_uncertainty("MLIP CI-NEB (chgnet)", own=0.07) == 0.07


def test_diffusivity_by_hand():
    # nu a^2 exp(-E/kT) / (2d): 1e13 * (3e-8)^2 * exp(-0.5 / 0.025852) / 2
    want = 1e13 * 9e-16 * math.exp(-0.5 / (8.617333262e-5 * 300)) / 2
    assert diffusivity(0.5, 3.0, 1) == pytest.approx(want, rel=1e-12)
    assert diffusivity(0.5, 3.0, 3) == pytest.approx(want / 3, rel=1e-12)
    # 0.06 eV more is one decade less at room temperature (kT ln 10 = 0.0595 eV)
    assert diffusivity(0.5595, 3.0) == pytest.approx(diffusivity(0.5, 3.0) / 10, rel=0.01)


def test_plausibility_flags():
    codes = [c for c, _ in plausibility_flags(0.05, 2, 0.30)]
    assert codes == ["under-bonded", "below-floor"]
    assert plausibility_flags(0.40, 2, 0.95) == []
    assert [c for c, _ in plausibility_flags(0.20, 3, None)] == ["below-floor"]  # 3+: 0.25 eV


def test_real_sites_bvs_tells_a_site_from_a_cavity():
    """The ion's bond-valence sum at its lowest BVSE site: Mg in spinel MgCr2O4 is bonded
    (≈ 1.85 for 2+), Mg in the hollandite tunnel of alpha-MnO2 rattles (≈ 0.73)."""
    got = {}
    for c in from_prototypes(["Mg"], ["MgCr2O4", "MnO2-alpha"]):
        s = compute_landscape(c.structure, "Mg", resolution=0.25).summary()
        got[c.source.split(":")[1]] = s.bvs_ratio
    assert 0.8 < got["MgCr2O4"] < 1.1
    assert got["MnO2-alpha"] < 0.5


def test_mobile_before_immobile_whatever_the_capacity():
    rows = [make_row("slow", "A", e1d=2.5, cap=400),  # immobile with any BVSE error
            make_row("fast", "B", e1d=0.3, cap=50, site_bvs=1.9, ion_charge=2)]
    out = rank(rows, "Mg", {"capacity": 1.0})  # capacity alone would put A first
    assert [h.record.job_id for h in out] == ["fast", "slow"]
    assert [h.mobility for h in out] == ["borderline", "immobile"]
    assert out[0].uncertainty == tier_uncertainty("BVSE") and out[0].diffusivity_cm2_s > 0


def test_under_bonded_or_below_floor_bvse_barrier_is_not_ranked():
    rows = [make_row("ok", "A", e1d=0.6),
            make_row("cavity", "B", e1d=0.3, site_bvs=0.6, ion_charge=2),
            make_row("flat", "C", e1d=0.03)]
    out = rank(rows, "Mg", include_unranked=True)
    by = {h.record.job_id: h for h in out}
    assert by["ok"].rank == 1 and by["cavity"].rank is None and by["flat"].rank is None
    assert by["cavity"].flags == ["under-bonded"] and by["flat"].flags == ["below-floor"]
    assert "implausible" in by["cavity"].note_codes() and by["cavity"].mobility is None
    assert [h.record.job_id for h in rank(rows, "Mg")] == ["ok"]


def test_doubtful_rows_follow_the_clean_ones_of_their_class():
    neb = {"barrier": 0.30, "converged": True, "calculator": "BVFF softBV", "tier": "BVFF",
           "status": "converged"}
    rows = [make_row("cage", "A", e1d=0.2, cap=300, site_bvs=0.5, ion_charge=2, neb=neb),
            make_row("site", "B", e1d=0.5, cap=100, site_bvs=1.9, ion_charge=2,
                     neb={**neb, "barrier": 0.35})]
    out = rank(rows, "Mg")
    assert [h.record.job_id for h in out] == ["site", "cage"]  # same class, A is under-bonded
    assert out[1].flags == ["under-bonded"] and "under_bonded_site" in out[1].note_codes()


def test_a_gap_left_by_a_removed_species_is_flagged():
    """delta-MnO2 is birnessite without its interlayer K and water: every row of it says so."""
    from ionscreen.screening.records import HostRecord

    cand = next(from_prototypes(["Mg"], ["MnO2-delta"]))
    assert "water" in cand.provenance["removed_species"]
    s = compute_landscape(cand.structure, "Mg", resolution=0.25).summary()
    (h,) = rank([HostRecord.from_results(cand, s)], "Mg", include_unranked=True)
    assert "empty-gap" in h.flags and "empty_gap" in h.note_codes()
    plain = next(from_prototypes(["Mg"], ["MnO2-beta"]))
    assert "removed_species" not in plain.provenance


def test_energy_objective_ranks_within_a_class_and_falls_back_to_capacity():
    """Issue 14.2/3: specific energy (voltage × capacity) is an objective. A high-voltage host
    beats a high-capacity one on energy; an ion without any voltage scores capacity instead
    (no row is marked missing); a row without a voltage among rows with one is on no front."""
    def rows(volts):
        return [make_row("cap", "A", e1d=0.5, cap=300, site_bvs=1.9, ion_charge=2, voltage_V=volts[0]),
                make_row("volt", "B", e1d=0.5, cap=150, site_bvs=1.9, ion_charge=2, voltage_V=volts[1])]

    out = rank(rows([0.5, 3.0]), "Mg", {"energy": 1.0})
    assert [h.record.job_id for h in out] == ["volt", "cap"]
    assert out[0].specific_energy_Wh_kg == pytest.approx(450.0) and all(h.pareto for h in out)
    out = rank(rows([None, None]), "Mg", {"energy": 1.0})
    assert [h.record.job_id for h in out] == ["cap", "volt"]
    assert not any("missing_score_part" in h.note_codes() for h in out)
    out = rank(rows([None, 3.0]), "Mg", {"energy": 1.0})
    cap = next(h for h in out if h.record.job_id == "cap")
    assert "missing_score_part" in cap.note_codes() and cap.pareto_rank is None
    assert any("specific energy" in n.text for n in cap.notes if n.code == "no_pareto")


def test_the_funnel_promotes_plausible_sites_before_cavities():
    """Issue 14: delta-MnO2's Mg site is under-bonded with a BVSE barrier far below beta-MnO2's;
    with one NEB place the funnel promotes beta-MnO2 (the cavity is no finding), with two both;
    an ion's capacity-less or over-cutoff hosts are never promoted."""
    from ionscreen.workflows.plan import select_top
    from ionscreen.workflows.steps import bvse_step
    from ionscreen.workflows.store import JobRecord

    recs = []
    for proto in ("MnO2-delta", "MnO2-beta"):
        cand = next(from_prototypes(["Mg"], [proto])).to_dict()
        doc = {"candidate": cand, "settings": {"resolution": 0.25}}
        recs.append(JobRecord(id=proto, step="bvse", input=doc, state="done",
                              result=bvse_step(doc), error=None, reason=None, attempts=1,
                              worker=None, created=None, started=None, finished=None,
                              seconds=None))
    delta, beta = (r.result["summary"] for r in recs)
    assert delta["site_bvs"] / 2 < 0.6 <= beta["site_bvs"] / 2  # the cavity, the real site
    assert [r.id for r in select_top(recs, 1)] == ["MnO2-delta"]  # by barrier alone
    assert [r.id for r in select_top(recs, 1, funnel=True)] == ["MnO2-beta"]
    assert {r.id for r in select_top(recs, 2, funnel=True)} == {"MnO2-delta", "MnO2-beta"}
