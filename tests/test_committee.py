"""The ML committee (combined per path: mean ± spread) and the calibration of the softening
(fitted on calibration paths only)."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from ionscreen.errors import IonscreenError
from ionscreen.screening.committee import (
    Calibration,
    LinearFit,
    combine,
    committee_members,
    fit_linear,
    model_key,
)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_members_are_combined_per_path_with_their_spread():
    c = combine({"CHGNet 0.3.0 (chgnet 0.4.2)": 0.40, "CHGNet r2scan (chgnet 0.4.2)": 0.60,
                 "SevenNet 7net-0 (sevenn 0.13.0)": None}, reasons={"SevenNet 7net-0 (sevenn 0.13.0)": "x"})
    assert c.barrier == pytest.approx(0.5) and c.spread == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert c.found == 2 and c.calibrated is None and "2/3" in c.label and c.reasons
    assert combine({"a": None}).barrier is None


def test_calibration_applies_per_model_and_carries_its_error():
    cal = Calibration({"chgnet:0.3.0": LinearFit(1.5, 0.1, 40, 0.12, 0.15),
                       "chgnet:r2scan": LinearFit(1.2, 0.2, 40, 0.10, 0.13)}, "test")
    c = combine({"CHGNet 0.3.0 (chgnet 0.4.2)": 0.4, "CHGNet r2scan (chgnet 0.4.2)": 0.6}, cal)
    per = [1.5 * 0.4 + 0.1, 1.2 * 0.6 + 0.2]
    assert c.calibrated == pytest.approx(np.mean(per))
    assert c.uncertainty == pytest.approx(np.hypot(np.std(per, ddof=1), np.sqrt((0.15 ** 2 + 0.13 ** 2) / 2)))
    assert c.best == c.calibrated and "calibrated" in c.label
    # a member without a fit leaves the committee uncalibrated (never half-calibrated)
    assert combine({"CHGNet 0.3.0": 0.4, "Other 1": 0.5}, cal).calibrated is None
    assert Calibration.from_dict(json.loads(json.dumps(cal.as_dict()))).fits == cal.fits
    assert LinearFit(1.0, -0.5, 3, 0, 0)(0.2) == 0.0  # never a negative barrier


def test_fit_linear_recovers_a_line_and_cross_validates():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.1, 1.5, 60)
    y = 1.4 * x + 0.12 + rng.normal(0, 0.05, 60)
    f = fit_linear(x, y)
    assert f.slope == pytest.approx(1.4, abs=0.05) and f.intercept == pytest.approx(0.12, abs=0.05)
    assert 0.02 < f.cv_mae < 0.08 and f.cv_rmse >= f.cv_mae and f.n == 60
    with pytest.raises(IonscreenError, match="at least 3"):
        fit_linear([0.1, 0.2], [0.3, 0.4])


def test_model_keys_and_committee_specs():
    assert model_key("CHGNet 0.3.0 (chgnet 0.4.2)") == "chgnet:0.3.0" == model_key("chgnet:0.3.0")
    assert model_key("SevenNet 7net-0 (sevenn 0.13.0)") == "sevennet:7net-0"
    # a multi-fidelity model: identity and spec give one key, the default modal none of its
    # own, and no "@" (that marks a per-ion fit)
    pbe = "SevenNet 7net-mf-0, modal PBE (sevenn 0.13.0)"
    assert model_key(pbe) == model_key("sevennet:7net-mf-0") == "sevennet:7net-mf-0"
    assert model_key("sevennet:7net-mf-0@PBE") == "sevennet:7net-mf-0"
    r2 = "SevenNet 7net-mf-0, modal R2SCAN (sevenn 0.13.0)"
    assert model_key(r2) == model_key("sevennet:7net-mf-0@R2SCAN") == "sevennet:7net-mf-0:r2scan"
    cal = Calibration({"sevennet:7net-mf-0": LinearFit(1.2, 0.0, 30, 0.1, 0.12, ions=("Mg",)),
                       "sevennet:7net-mf-0@Mg": LinearFit(1.3, 0.0, 20, 0.1, 0.12)}, "test")
    assert cal.get(pbe, "Mg").slope == 1.3 and cal.get(pbe).slope == 1.2
    assert cal.get(r2, "Mg") is None  # the r2SCAN modal is another model: not calibrated
    assert committee_members("committee")[:2] == ["chgnet:0.3.0", "chgnet:r2scan"]
    assert committee_members("committee:chgnet, sevennet") == ["chgnet", "sevennet"]
    assert committee_members("chgnet") is None and committee_members(None) is None


@dataclass
class P:
    """A stand-in reference path: what the fit reads of one."""

    id: str
    dft_barrier: float
    split: str
    ion: str = "Mg"


def _fit_module():
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("fit_calibration", BENCH / "fit_calibration.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_fit_sees_calibration_paths_only():
    """Held-out paths with absurd barriers must not move the fit: the split holds."""
    mod = _fit_module()
    paths = {f"c{i}": P(f"c{i}", 0.2 + 0.1 * i, "calibration") for i in range(8)}
    paths.update({f"h{i}": P(f"h{i}", 0.5, "held-out") for i in range(8)})
    res = {pid: {"barrier": p.dft_barrier / 2 if p.split == "calibration" else 9.0}
           for pid, p in paths.items()}
    # a barrier the NEB refused (below the floor, noise) is no barrier: never fitted on
    res["c9"] = {"barrier": 0.01, "ion": "Mg"}
    res["c10"] = {"barrier": 5.0, "extra": {"flags": ["noise"]}}
    paths.update({k: P(k, 1.0, "calibration") for k in ("c9", "c10")})
    cal = mod.fit({"chgnet": res, "bvse": res}, paths, "test", per_ion=False)
    f = cal.get("CHGNet 0.3.0 (chgnet 0.4.2)")
    assert set(cal.fits) == {"chgnet:0.3.0"} and f.n == 8  # BVSE is not calibrated
    assert f.slope == pytest.approx(2.0) and f.intercept == 0.0
    # per ion: Mg softened by half, Ca not at all -> a scale for Mg, "none" (identity) for Ca,
    # each from its own calibration paths; the held-out ones still never enter
    paths.update({f"ca{i}": P(f"ca{i}", 0.3 + 0.1 * i, "calibration", "Ca") for i in range(8)})
    res.update({f"ca{i}": {"barrier": 0.3 + 0.1 * i} for i in range(8)})
    cal = mod.fit({"chgnet": res}, paths, "test")
    assert {"chgnet:0.3.0@Mg", "chgnet:0.3.0@Ca"} <= set(cal.fits)
    assert cal.get("chgnet:0.3.0", "Mg2+").slope == pytest.approx(2.0)
    assert cal.get("chgnet:0.3.0", "Ca").slope == 1.0 and cal.get("chgnet:0.3.0", "Ca").cv_mae == 0
    assert cal.get("chgnet:0.3.0", "Zn") is None  # no Zn among the paths: nothing carried over
    assert cal.fits["chgnet:0.3.0@Mg"].ions == ("Mg",)  # each fit says which ions it saw
    back = mod.Calibration.from_dict(cal.as_dict())
    assert back.get("chgnet:0.3.0", "Mg").slope == pytest.approx(2.0)
    assert back.get("chgnet:0.3.0", "Li") is None  # not fitted on Li+: nothing carried over
    # a model whose raw barriers need no fit is recorded as checked (slope 1, its raw error)
    exact = mod.fit({"chgnet": {k: v for k, v in res.items() if k.startswith("ca")}}, paths, "t",
                    per_ion=False)
    assert exact.get("chgnet:0.3.0", "Ca").slope == 1.0 and exact.fits["chgnet:0.3.0"].n == 8


@pytest.mark.slow
def test_committee_neb_reports_members_and_a_nonzero_spread(tmp_path):
    pytest.importorskip("chgnet")
    from ionscreen.screening.neb import NEBReport, NEBSettings, run_neb
    from ionscreen.structures.prototypes import get_prototype, host_for_ion

    s, _ = host_for_ion(get_prototype("LiMn2O4"), "Mg")
    # fmax 0.05: at 0.1 eV/Å r2scan's 8a->16c band (its top 0.05 eV above the shallow 16c
    # end) is within the noise, flagged no-saddle below 0.65 eV and left out of the committee
    rep = run_neb(s, "Mg", "committee:chgnet:0.3.0,chgnet:r2scan",
                  settings=NEBSettings(images=3, relax_host=False, fmax=0.05))
    est = rep.estimate
    assert len(est["members"]) == 2 and all(v is not None for v in est["members"].values())
    assert est["spread"] > 0.005 and rep.barrier == pytest.approx(np.mean(list(est["members"].values())))
    s_ = rep.summary()
    assert s_.spread == est["spread"] and len(s_.models) == 2 and s_.raw_barrier == rep.barrier
    back = NEBReport.from_dict(json.loads(rep.to_json()))
    assert back.estimate["spread"] == est["spread"]
    assert {h.calculator.split(" ")[1] for h in rep.hops} == {"0.3.0", "r2scan"}


def test_l1_scale_minimises_the_absolute_error_and_resists_one_outlier():
    from ionscreen.screening.committee import l1_scale

    rng = np.random.default_rng(5)
    for _ in range(50):  # sum |s x - y| is piecewise linear: its minimum is at some y_i / x_i
        x = rng.uniform(0.05, 1.5, rng.integers(3, 30))
        y = rng.uniform(0.1, 2.0, len(x))
        cost = np.abs((y / x)[:, None] * x[None, :] - y[None, :]).sum(axis=1)
        s = l1_scale(x, y)
        assert np.abs(s * x - y).sum() <= cost.min() + 1e-12
    # eight paths softened by 1.5 and one whose band found another hop (too high)
    x = np.array([0.26, 0.35, 0.46, 0.61, 0.58, 0.52, 0.53, 0.46, 1.32])
    y = np.r_[1.5 * x[:-1], 0.87]
    assert l1_scale(x, y) == pytest.approx(1.5)
    assert fit_linear(x, y, through_origin=True).slope < 1.3  # least squares is pulled down
    assert l1_scale(np.array([0.0, -0.1]), np.array([0.3, 0.2])) == 1.0
    with pytest.raises(IonscreenError, match="is for a scale"):
        fit_linear(x, y, loss="l1")
    assert fit_linear(x, y, through_origin=True, loss="l1").method == (
        "scale, least absolute deviations")


def test_the_calibration_form_is_chosen_by_cross_validation():
    from ionscreen.screening.committee import choose_fit

    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 1.2, 40)
    f, scores = choose_fit(x, 1.5 * x + rng.normal(0, 0.02, 40))  # a pure softening
    assert f is not None and f.intercept == 0.0 and f.slope == pytest.approx(1.5, abs=0.03)
    f, scores = choose_fit(x, x + rng.normal(0, 0.05, 40))  # already right: keep it raw
    assert f is None and scores["scale"] > 0.9 * scores["none"]  # no real gain: not kept
    f, _ = choose_fit(x, 1.2 * x + 0.3 + rng.normal(0, 0.02, 40), forms=("scale", "line"))
    assert f.intercept == pytest.approx(0.3, abs=0.05)  # a line when asked for and better


def test_a_refit_of_one_model_keeps_the_shipped_fits_of_the_others():
    """fit_calibration --write with SevenNet results only must not drop CHGNet's fits (their
    raw barriers are not at hand), and the source says which run fitted which model."""
    mod = _fit_module()
    f = LinearFit(1.4, 0.0, 19, 0.19, 0.24, ("Ca",))
    # a calibration whose fits carry no source of their own (files before 0.3): its source
    shipped = Calibration({"chgnet:0.3.0@Ca": f, "chgnet:r2scan": f}, "set A, 2026-12-06")
    assert shipped.fits["chgnet:r2scan"].source == "set A, 2026-12-06"
    new = Calibration({"sevennet:7net-0@Ca": replace(f, slope=1.2, source="set A, 2026-12-07")},
                      "set A, 2026-12-07", "inverse-variance")
    out = mod.merged(shipped, new)
    assert set(out.fits) == {"chgnet:0.3.0@Ca", "chgnet:r2scan", "sevennet:7net-0@Ca"}
    assert out.source == ("sevennet:7net-0: set A, 2026-12-07; "
                          "chgnet:0.3.0, chgnet:r2scan: set A, 2026-12-06")
    assert out.weighting == "inverse-variance"
    back = Calibration.from_dict(json.loads(json.dumps(out.as_dict())))
    assert back == out and back.fits["chgnet:0.3.0@Ca"].source == "set A, 2026-12-06"
    # a refit on paths without Ca (only a model-wide fit): the shipped Ca fit stays, with its source
    part = Calibration({"chgnet:0.3.0": replace(f, ions=("Mg",), source="set A, 2026-12-08")}, "x")
    again = mod.merged(back, part)
    assert set(again.fits) == {"chgnet:0.3.0", "chgnet:0.3.0@Ca", "chgnet:r2scan", "sevennet:7net-0@Ca"}
    assert again.get("chgnet:0.3.0", "Ca").source == "set A, 2026-12-06"
    assert again.get("chgnet:0.3.0", "Mg").source == "set A, 2026-12-08"
    assert again.source == ("chgnet:0.3.0: set A, 2026-12-08; sevennet:7net-0: set A, 2026-12-07; "
                            "chgnet:0.3.0@Ca, chgnet:r2scan: set A, 2026-12-06")
    assert mod.merged(None, new) is new
    # a shipped per-ion fit kept beside a new model-wide fit of its model is named with its method
    kept = mod.narrowed(back, again)
    assert kept == ["chgnet:0.3.0@Ca: kept from the shipped file (least squares; set A, "
                    "2026-12-06) beside new fits of its model"]
    assert mod.narrowed(shipped, out) == [] and mod.narrowed(None, out) == []
    # a new model-wide fit on fewer ions replaces the shipped one: the ions it lost are named
    wide = Calibration({"chgnet:r2scan": replace(f, ions=("Mg", "Ca", "Zn", "Al"))}, "x")
    fewer = mod.merged(wide, Calibration({"chgnet:r2scan": replace(f, ions=("Mg", "Ca"))}, "y"))
    assert [w.split(":")[-1].split()[0] for w in mod.narrowed(wide, fewer)] == ["Al", "Zn"]
    # a refit on fewer paths than the shipped fit had is named too
    small = mod.merged(wide, Calibration({"chgnet:r2scan": replace(f, n=4, ions=wide.fits[
        "chgnet:r2scan"].ions)}, "z"))
    assert mod.narrowed(wide, small) == [
        "chgnet:r2scan: refitted on 4 paths, the shipped fit had 19"]


def test_a_bare_committee_is_calibrated_for_the_multivalent_ions():
    """Every default member was checked on the calibration paths (a fit, or "none" with its
    error), so ``--calculator committee`` gives a calibrated barrier for Mg, Ca, Zn and Al;
    nothing is carried over to Li+, which no fit saw."""
    from ionscreen.screening.committee import DEFAULT_MEMBERS

    cal = Calibration.load()
    for ion in ("Mg", "Ca", "Zn", "Al"):
        est = combine({m: 0.5 for m in DEFAULT_MEMBERS}, cal, ion=ion)
        assert est.calibrated is not None and est.uncertainty > 0, (ion, est.label)
    assert combine({m: 0.5 for m in DEFAULT_MEMBERS}, cal, ion="Li").calibrated is None


def test_an_inverse_variance_committee_weights_the_better_member():
    """With ``weighting="inverse-variance"`` a member whose calibration erred half as much
    counts four times as much; "equal" is the plain mean; anything else is refused."""
    fits = {"a": LinearFit(1.0, 0.0, 20, 0.1, 0.1), "b": LinearFit(1.0, 0.0, 20, 0.2, 0.2)}
    eq = combine({"a": 0.4, "b": 0.9}, Calibration(fits, "t"))
    iv = combine({"a": 0.4, "b": 0.9}, Calibration(fits, "t", "inverse-variance"))
    assert eq.calibrated == pytest.approx(0.65) and eq.barrier == iv.barrier == pytest.approx(0.65)
    assert iv.calibrated == pytest.approx((4 * 0.4 + 0.9) / 5) and "1/(CV RMSE)²" in iv.label
    w = np.array([0.8, 0.2])
    spread = np.sqrt(w @ (np.array([0.4, 0.9]) - iv.calibrated) ** 2 * 2)
    assert iv.uncertainty == pytest.approx(np.hypot(spread, np.sqrt(w @ np.array([0.01, 0.04]))))
    back = Calibration.from_dict(json.loads(json.dumps(Calibration(fits, "t", "inverse-variance").as_dict())))
    assert back.weighting == "inverse-variance"
    with pytest.raises(IonscreenError, match="weighting"):
        Calibration(fits, "t", "median")


def test_a_model_without_calibration_paths_keeps_its_shipped_fit_and_weighting_is_chosen():
    """fit_calibration scores with what the product would use: a model given only held-out
    results is not refitted (its shipped fit and the shipped weighting stay), and "auto" picks
    the committee weighting on calibration paths only: there member b is exact and a errs,
    so the weighted mean wins; on the held-out paths it is the other way round, so a held-out
    path entering the choice would flip it."""
    mod = _fit_module()
    paths = {f"c{i}": P(f"c{i}", 0.3 + 0.1 * i, "calibration") for i in range(10)}
    paths.update({f"h{i}": P(f"h{i}", 0.3 + 0.05 * i, "held-out") for i in range(30)})
    rng = np.random.default_rng(0)
    # held-out: a exact on h0-h14, and off by as much as b (both +0.6) on h15-h29
    a = {k: {"barrier": p.dft_barrier + (rng.choice([-0.3, 0.3]) if k[0] == "c" else
                                         0.6 * (int(k[1:]) >= 15))} for k, p in paths.items()}
    b = {k: {"barrier": p.dft_barrier + (0.0 if k[0] == "c" else 0.6)} for k, p in paths.items()}
    held_only = {k: v for k, v in b.items() if k.startswith("h")}
    shipped = Calibration({"chgnet:r2scan": LinearFit(1.7, 0.0, 50, 0.19, 0.25, ("Mg",))}, "old",
                          "inverse-variance")
    cal = mod.calibration({"chgnet": a, "chgnet:r2scan": held_only}, paths, shipped, "new {n}")
    assert cal.fits["chgnet:r2scan"].slope == 1.7 and cal.fits["chgnet:r2scan"].source == "old"
    assert cal.fits["chgnet:0.3.0"].source == "new 10"  # its own count of calibration paths
    assert cal.weighting == "inverse-variance"  # one model on calibration paths: nothing to choose
    cal = mod.calibration({"chgnet": a, "chgnet:r2scan": b}, paths, shipped, "new {n}")
    assert cal.fits["chgnet:r2scan"].slope == 1.0 and cal.weighting == "inverse-variance"
    equal = mod.calibration({"chgnet": a, "chgnet:r2scan": b}, paths, None, "new {n}",
                            weighting="equal")
    assert equal.weighting == "equal"
    # the stated uncertainty of the committee covers DFT on a share of the held-out paths
    est = mod.committee_estimates({"chgnet": a, "chgnet:r2scan": b}, equal, paths)
    held = [p for p in paths.values() if p.split == "held-out"]
    hit, n = mod.coverage(est, held)
    err = [abs(est[p.id].calibrated - p.dft_barrier) <= est[p.id].uncertainty for p in held]
    assert n == 30 and hit == sum(err) == 15  # h15-h29: both members off alike, no spread


def test_an_old_calibration_file_gives_each_fit_its_own_source():
    """Files before 0.3 kept one source for all fits, written "models: source; models:
    source" once merged: each fit gets its model's part, and merging again keeps it."""
    f = LinearFit(1.4, 0.0, 19, 0.19, 0.24, ("Ca",))
    old = Calibration.from_dict({"source": "sevennet:7net-0: run B; chgnet:0.3.0, chgnet:r2scan: run A",
                                 "fits": {k: {**vars(f), "ions": ["Ca"]} | {"source": None}
                                          for k in ("chgnet:0.3.0@Ca", "chgnet:r2scan", "sevennet:7net-0")}})
    assert old.fits["chgnet:r2scan"].source == "run A" and old.fits["sevennet:7net-0"].source == "run B"
    new = Calibration({"chgnet:0.3.0": replace(f, source="run C")}, "run C")
    out = _fit_module().merged(old, new)
    assert out.source == ("chgnet:0.3.0: run C; chgnet:0.3.0@Ca, chgnet:r2scan: run A; "
                          "sevennet:7net-0: run B")
    plain = Calibration({"chgnet:0.3.0": f}, "one run for all")  # not a describe() text
    assert plain.fits["chgnet:0.3.0"].source == "one run for all"


def test_the_parity_figure_is_a_png_with_one_panel_per_tier():
    mod = _fit_module()
    held = [P("a", 0.4, "held-out"), P("b", 1.2, "held-out", "Ca"), P("c", 0.8, "held-out", "Zn")]
    est = {"a": combine({"x": 0.3, "y": 0.5}), "b": combine({"x": 1.0, "y": 1.1}), "c": combine({"x": None})}
    png = mod.parity_figure({"chgnet": {"a": 0.3, "b": 1.0, "c": None},
                             "committee": {k: e.barrier for k, e in est.items()}}, held, est, "committee")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _report(calculator: str, barrier: float, flags: list[dict]) -> object:
    """A one-hop NEB report of ``calculator`` whose band carries ``flags``."""
    from ionscreen.screening.neb.results import NEBReport, NEBResult

    hop = NEBResult("CaMn2O4", "Ca", calculator, "MLIP", "CI-NEB", True, barrier, barrier, 0.0,
                    [0.0, barrier], [0.0, 3.0], [[0, 0, 0], [3, 0, 0]], {}, 0.01, {"index": 0},
                    [1, 1, 1], 40, 9.0, {}, {}, flags=flags)
    return NEBReport("CaMn2O4", "Ca", calculator, "MLIP", barrier, 0, "3D", [hop], {})


def test_a_committee_leaves_out_a_member_whose_own_flags_refuse_its_barrier():
    """A member's no-saddle band below 0.65 eV (or noise, below-floor) is what a single model
    would not rank: the committee takes the other members' mean and says why."""
    from ionscreen.screening.committee import committee_report
    from ionscreen.screening.neb.flags import noise_flag

    low = noise_flag(np.linspace(0.0, 0.3, 9), np.linspace(0.0, 3.0, 9), 0.03)
    high = noise_flag(np.linspace(0.0, 1.2, 9), np.linspace(0.0, 3.0, 9), 0.03)
    assert low["refuses"] and not high["refuses"]
    rep = committee_report([_report("A", 0.8, []), _report("B", 0.3, [low]), _report("C", 1.2, [high])],
                           None)
    assert rep.estimate["members"] == {"A": 0.8, "B": None, "C": 1.2}
    assert rep.barrier == pytest.approx(1.0) and "refused: no-saddle" in rep.estimate["reasons"]["B"]
    # the BVFF's no-saddle band is refused at any height
    assert noise_flag(np.linspace(0.0, 1.2, 9), np.linspace(0.0, 3.0, 9), 0.03, ranked=False)["refuses"]


def test_a_calibrated_report_labels_its_raw_barrier_raw_and_the_batch_line_shows_both():
    """The stored report's ``barrier`` is the raw one: its label must not say "calibrated";
    the line ``ionscreen neb --out`` prints is the ranked (calibrated) number with the raw."""
    from ionscreen.screening.committee import committee_report
    from ionscreen.workflows.cli_neb import _ranked_line

    cal = Calibration({k: LinearFit(1.5, 0.0, 20, 0.1, 0.12, ions=("Ca",)) for k in ("a", "b")},
                      "test")
    d = committee_report([_report("A", 0.4, []), _report("B", 0.6, [])], cal).as_dict()
    assert d["barrier"] == pytest.approx(0.5) and d["estimate"]["calibrated"] == pytest.approx(0.75)
    assert ", raw (the calibrated value" in d["barrier_label"]
    line = _ranked_line(d)
    assert "0.750 ±" in line and "calibrated (raw 0.500 eV)" in line
    raw = committee_report([_report("A", 0.4, [])], None).as_dict()
    assert "raw" not in raw["barrier_label"] and "0.400 eV raw, not calibrated" in _ranked_line(raw)
