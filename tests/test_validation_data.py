"""The DFT reference paths of issue 13 (benchmarks/data/dft_neb) and the barrier metrics."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
_spec = importlib.util.spec_from_file_location("dft_neb", BENCH / "dft_neb.py")
dft_neb = importlib.util.module_from_spec(_spec)
sys.modules["dft_neb"] = dft_neb  # dataclasses look their module up there
_spec.loader.exec_module(dft_neb)

# sha256 of the sorted ids of each split, "\n"-joined: a changed split must be deliberate
SPLIT_SHA = {
    "calibration": "be6547b59ec38bf80e9ee66c8389c9ebdb659f89385cac74c23261229a799867",
    "held-out": "40238819968ff0e2efa638ea1772fb4c61cdbecab1a784f7e8fb335c1f4af093",
}
MULTIVALENT = ("Mg", "Ca", "Zn", "Al")

needs_data = pytest.mark.skipif(
    not dft_neb.DATA.exists(),
    reason="benchmarks/data/dft_neb/paths.json.gz is not built (benchmarks/curate_dft_neb.py)")


@pytest.fixture(scope="module")
def paths():
    return dft_neb.load_paths()


@needs_data
def test_enough_multivalent_paths_with_structures(paths):
    mv = [p for p in paths if p.ion in MULTIVALENT]
    assert len(mv) >= 100
    assert all(p.counted for p in mv) and not any(p.counted for p in paths if p.ion not in MULTIVALENT)
    assert all(p.dft_barrier > 0 and p.split in dft_neb.SPLITS for p in paths)
    assert len({p.id for p in paths}) == len(paths)
    assert dft_neb.meta()["commit"] == paths[0].source["commit"]


@needs_data
def test_split_is_stable_disjoint_and_stratified(paths):
    ids = {s: sorted(p.id for p in paths if p.split == s) for s in dft_neb.SPLITS}
    assert not set(ids["calibration"]) & set(ids["held-out"])
    for s, sha in SPLIT_SHA.items():
        assert hashlib.sha256("\n".join(ids[s]).encode()).hexdigest() == sha, s
    for ion in {p.ion for p in paths}:
        n = {s: sum(p.ion == ion and p.split == s for p in paths) for s in dft_neb.SPLITS}
        assert n["calibration"] - n["held-out"] in (0, 1), ion
    held = dft_neb.load_paths("held-out", ions=["Mg"], max_atoms=100)
    assert held and all(p.split == "held-out" and p.ion == "Mg" and p.n_atoms <= 100 for p in held)


@needs_data
def test_endpoints_differ_only_by_the_moving_ion(paths):
    for p in paths:
        a, b = p.initial, p.final
        assert [s.species_string for s in a] == [s.species_string for s in b], p.id
        assert np.allclose(a.lattice.matrix, b.lattice.matrix)
        d = b.frac_coords - a.frac_coords
        d -= np.round(d)
        moved = np.linalg.norm(d @ a.lattice.matrix, axis=1)  # fine for moves under half a cell
        k = p.moving_index
        assert a[k].species_string == p.ion, p.id
        assert 1.5 <= a[k].distance(b[k]) <= 7.0, p.id
        others = np.delete(moved, k)
        assert others.max(initial=0.0) <= 1.0, p.id


def _ref(pid: str, ion: str, barrier: float) -> dft_neb.ReferencePath:
    s = Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return dft_neb.ReferencePath(id=pid, ion=ion, formula="MgO", initial=s, final=s,
                                 moving_index=0, dft_barrier=barrier, split="held-out", source={})


def test_metrics_on_a_hand_example():
    ref = [_ref("a", "Mg", 0.3), _ref("b", "Mg", 0.9), _ref("c", "Ca", 0.5), _ref("d", "Ca", 1.5),
           _ref("e", "Ca", 0.2)]
    pred = {"a": 0.4, "b": 0.8, "c": None, "d": 1.0, "e": float("nan")}  # "e" not found either
    m = dft_neb.metrics(pred, ref, threshold=(0.5, 0.85))
    allm = m["all"]
    assert (allm["n"], allm["found"]) == (5, 3)
    assert allm["spearman"] == pytest.approx(1.0)
    # pearson of (0.4, 0.8, 1.0) with (0.3, 0.9, 1.5): 0.36 / sqrt(0.18667 * 0.72)
    assert allm["pearson"] == pytest.approx(0.36 / math.sqrt(0.56 / 3 * 0.72))
    assert allm["mae"] == pytest.approx(0.7 / 3)
    assert allm["mean_signed_error"] == pytest.approx(-0.5 / 3)
    assert allm["accuracy@0.5"] == pytest.approx(1.0)
    assert allm["accuracy@0.85"] == pytest.approx(2 / 3)  # b: 0.8 called good, DFT 0.9 is not
    ca = m["Ca"]
    assert (ca["n"], ca["found"], ca["spearman"], ca["mae"]) == (3, 1, None, pytest.approx(0.5))
    assert m["Mg"]["mean_signed_error"] == pytest.approx(0.0)
    rows = dft_neb.summary_table({"x": pred, "y": {}}, ref).splitlines()
    assert len(rows) == 4 and rows[2].startswith("| x | 3/5 | 1.000 |")
    assert "| 0.500 (1/3) |" in rows[2] and rows[3].startswith("| y | 0/5 | – |")
    empty = dft_neb.metrics({}, ref[:1])["all"]
    assert empty["found"] == 0 and empty["mae"] is None


def test_merged_barrier_files_keep_no_dft_value_and_keep_what_was_kept(tmp_path):
    """merge_barriers joins parallel runs per tier and path, never stores the DFT barrier and
    keeps a path already kept unless asked to replace it."""
    spec = importlib.util.spec_from_file_location("merge_barriers", BENCH / "merge_barriers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import json

    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps({"results": {"chgnet": {"a": {"barrier": 0.3, "dft_barrier": 0.5}}},
                                "metrics": {"chgnet": {}}}))
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"results": {"chgnet": {"a": {"barrier": 0.9, "dft_barrier": 0.5},
                                                      "b": {"barrier": 0.4, "dft_barrier": 0.6}},
                                           "bvse": {"a": {"barrier": 1.0, "dft_barrier": 0.5}}}}))
    assert mod.main([str(kept), str(run)]) == 0
    doc = json.loads(kept.read_text())
    assert doc["results"]["chgnet"] == {"a": {"barrier": 0.3}, "b": {"barrier": 0.4}}
    assert doc["results"]["bvse"] == {"a": {"barrier": 1.0}} and "metrics" not in doc
    assert "dft_barrier" not in kept.read_text()
    mod.main([str(kept), str(run), "--replace"])
    assert json.loads(kept.read_text())["results"]["chgnet"]["a"] == {"barrier": 0.9}


def _validate_module():
    spec = importlib.util.spec_from_file_location("validate_barriers",
                                                  BENCH / "validate_barriers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _add_results(out: str, who: str, n: int) -> None:
    """One 'run' adding n results to a shared --out file, as validate_barriers.main does."""
    mod = _validate_module()
    import json

    path = Path(out)
    doc = json.loads(path.read_text()) if path.exists() else {"results": {}}
    done, ran = doc["results"].setdefault("chgnet", {}), set()
    for k in range(n):
        done[f"{who}{k}"] = {"barrier": k / 10}
        ran.add(("chgnet", f"{who}{k}"))
        mod._update(path, doc, ran)


def test_a_run_keeps_the_newer_metrics_of_another_runs_tier(tmp_path):
    """A run read the file (with tier Y's metrics) at its start; another run then stored newer
    metrics for Y. Saving the first run's own tables (tier X) must not put the old Y back."""
    import json

    out = tmp_path / "shared.json"
    mod = _validate_module()
    out.write_text(json.dumps({"results": {}, "metrics": {"Y": {"n": 1}}}))
    first = json.loads(out.read_text())  # run 1 reads Y's metrics as they are now
    other = json.loads(out.read_text())
    other["metrics"]["Y"] = {"n": 2}  # run 2 stores newer metrics of its tier Y
    mod._update(out, other, set(), own_metrics=["Y"])
    first["metrics"]["X"] = {"n": 5}
    mod._update(out, first, set(), own_metrics=["X"])
    assert json.loads(out.read_text())["metrics"] == {"X": {"n": 5}, "Y": {"n": 2}}
    assert first["metrics"]["Y"] == {"n": 2}


def test_two_runs_sharing_one_out_file_keep_each_others_results(tmp_path):
    """Each run read the file once at its start; saving its whole document used to drop what
    the other had saved meanwhile (two results lost in a real run). Now both runs' results
    stay, and a result a run only read never overwrites a newer one."""
    import json
    import multiprocessing

    out = tmp_path / "shared.json"
    mod = _validate_module()
    a, b = {"results": {}}, {"results": {}}  # two runs that read the file before either saved
    a["results"]["chgnet"] = {"x": {"barrier": 0.1}}
    mod._update(out, a, {("chgnet", "x")})
    b["results"]["chgnet"] = {"y": {"barrier": 0.2}}
    mod._update(out, b, {("chgnet", "y")})
    assert set(json.loads(out.read_text())["results"]["chgnet"]) == {"x", "y"}
    assert set(b["results"]["chgnet"]) == {"x", "y"}  # the run sees the other's paths too
    # y is deleted and redone by a third run; b, which only read it, must not put it back
    doc = json.loads(out.read_text())
    doc["results"]["chgnet"]["y"] = {"barrier": 0.9}
    mod._update(out, doc, {("chgnet", "y")})
    b["results"]["chgnet"]["z"] = {"barrier": 0.3}
    mod._update(out, b, {("chgnet", "z")})
    got = json.loads(out.read_text())["results"]["chgnet"]
    assert got == {"x": {"barrier": 0.1}, "y": {"barrier": 0.9}, "z": {"barrier": 0.3}}
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add_results, args=(str(out), w, 25)) for w in "pq"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        if p.is_alive():
            p.terminate()
        assert p.exitcode == 0
    got = set(json.loads(out.read_text())["results"]["chgnet"])
    assert got == {"x", "y", "z"} | {f"{w}{k}" for w in "pq" for k in range(25)}
