"""NEB tier: BVFF CI-NEB seeded from BVSE, serial and over MPI ranks, and its refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ionscreen.errors import CalculationError, IonscreenError, StructureValidationError
from ionscreen.screening.bvse import BVSESettings, compute_landscape, prepare_host
from ionscreen.screening.ion_models import ion_model
from ionscreen.screening.neb import NEBSettings, neb_hop, percolating_hops, run_neb, supercell_for
from ionscreen.structures.prototypes import get_prototype


@pytest.fixture(scope="module")
def lfp():
    s = get_prototype("LiFePO4").build(with_ion="Li")
    return s, compute_landscape(s, "Li", resolution=0.1)


@pytest.fixture(scope="module")
def lfp_report(lfp):
    s, b = lfp
    return run_neb(s, "Li", bvse=b)


def test_olivine_finds_the_1d_path_along_b(lfp, lfp_report, tmp_path):
    s, b = lfp
    rep = lfp_report
    assert rep.dimension == "1D" and rep.bvse["barrier"] == pytest.approx(b.barriers["1D"])
    assert rep.hops and all(h.converged for h in rep.hops)
    assert rep.barrier == max(h.barrier for h in rep.hops)
    assert 0.05 < rep.barrier < 0.6
    # the hops of the path run along b (olivine's channel): the ion moves mostly along y
    for h in rep.hops:
        d = np.array(h.ion_path[-1]) - np.array(h.ion_path[0])
        assert abs(d[1]) > max(abs(d[0]), abs(d[2]))
        assert h.tier == "BVFF" and "BVFF" in h.calculator
        assert h.ion_image_distance >= 8.0 and h.supercell == supercell_for(s.lattice.matrix, 8.0)
        assert h.energies[0] == 0.0 or min(h.energies) == 0.0
        assert max(h.energies) == pytest.approx(h.barrier)
        assert len(h.energies) == 9 and len(h.images) == 9
    png = tmp_path / "profile.png"
    rep.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    d = json.loads(rep.to_json(with_images=True))
    assert d["barrier_label"].startswith("BVFF CI-NEB") and len(d["hops"][0]["images"]["positions"]) == 9


def test_report_reads_back_and_keeps_its_document(lfp, lfp_report):
    """``as_dict`` is the stored document (``to_dict`` its former name); ``from_dict`` reads it
    back, with the band when it was written; the BVSE settings that seeded it are in it."""
    from ionscreen.screening.neb import NEBReport, NEBResult

    rep = lfp_report
    d = rep.as_dict()
    assert d == rep.to_dict()
    assert set(d) == {"formula", "ion", "calculator", "tier", "barrier", "rate_limiting_hop",
                      "dimension", "hops", "bvse", "failures", "skipped", "note", "approximate", "estimate",
                      "barrier_label", "flags"}
    assert BVSESettings.from_dict(d["bvse"]["settings"]) == lfp[1].settings
    assert d["bvse"]["settings"]["resolution"] == 0.1
    back = NEBReport.from_dict(json.loads(json.dumps(d)))
    assert isinstance(back.hops[0], NEBResult) and back.as_dict() == d
    assert back.summary() == rep.summary()
    assert NEBSettings.from_dict(rep.hops[0].settings) == NEBSettings()
    assert NEBSettings.from_dict(NEBSettings(images=3).as_dict()) == NEBSettings(images=3)
    full = rep.as_dict(with_images=True)
    again = NEBReport.from_dict(full)
    assert len(again.hops[0].images) == 9 and again.as_dict(with_images=True) == full
    np.testing.assert_allclose(again.hops[0].images[4].positions, rep.hops[0].images[4].positions, atol=1e-5)


def test_one_calculator_factory_type_for_bvff_and_ml(lfp):
    from ionscreen.screening.calculators import CalculatorFactory
    from ionscreen.screening.ion_models import ion_model
    from ionscreen.screening.mlip import calculator_factory
    from ionscreen.screening.neb import HopSetup, choose_calculator

    s, b = lfp
    host = prepare_host(s, "Li", BVSESettings())
    setup = HopSetup.from_hop(host, b.distinct_hops[0], b, NEBSettings())
    bvff = choose_calculator("bvff", setup.with_ion(setup.start), ion_model("Li"))
    emt = choose_calculator("ase.calculators.emt:EMT", None, ion_model("Li"))
    assert isinstance(bvff, CalculatorFactory) and isinstance(emt, CalculatorFactory)
    assert isinstance(calculator_factory("ase.calculators.emt:EMT"), CalculatorFactory)
    assert bvff.as_dict()["tier"] == "BVFF" and emt.as_dict()["tier"] == "ASE calculator"
    c1, c2 = bvff(), bvff()
    assert c1 is not c2 and c1.model is c2.model is bvff.model  # one model, one calculator per image
    assert choose_calculator(bvff, None, ion_model("Li")) is bvff


def test_the_host_is_prepared_once_per_neb(lfp, monkeypatch):
    """Oxidation states, validation and the pair model: once for the BVSE seed, the BVFF check
    and every hop together."""
    import ionscreen.screening.bvse as bvse_mod
    import ionscreen.screening.neb.setup as setup_mod

    calls = []

    def counted(*args, **kwargs):
        calls.append(ion_model(args[1]).name)
        return prepare_host(*args, **kwargs)

    monkeypatch.setattr(setup_mod, "prepare_host", counted)
    monkeypatch.setattr(bvse_mod, "prepare_host", counted)
    s, _ = lfp
    rep = run_neb(s, "Li", settings=NEBSettings(images=3, steps=2, relax_host=False))
    assert len(rep.hops) >= 1 and calls == ["Li"]
    assert rep.bvse["settings"] == BVSESettings(resolution=0.1).as_dict()


def test_prepared_host_is_accepted_and_the_seed_settings_are_stated(lfp):
    """A PreparedHost goes in as it is; without a BVSE result, BVSE runs with the caller's
    ``bvse_settings`` (never hidden ones) and the report says which."""
    s, _ = lfp
    host = prepare_host(s, "Li", BVSESettings())
    quick = NEBSettings(images=3, steps=2, relax_host=False)
    rep = run_neb(host, "Li", hop=0, settings=quick, bvse_settings=BVSESettings(resolution=0.25))
    assert rep.bvse["settings"]["resolution"] == 0.25 and rep.hops
    with pytest.raises(IonscreenError, match="prepared for Li"):
        run_neb(host, "Mg", settings=quick)


def test_fixed_host_bvff_neb_reproduces_the_bvse_hop():
    """With the host fixed, the BVFF energy of the ion is the BVSE energy (same radii), so the
    NEB's continuous saddle must match BVSE's refined hop barrier."""
    s = get_prototype("LiFePO4").build(with_ion="Li")
    b = compute_landscape(s, "Li", settings=BVSESettings(resolution=0.1, radii="softbv"))
    dim, hops = percolating_hops(b)
    hop = next(h for h in b.distinct_hops if h.distinct == hops[0])
    r = neb_hop(s, "Li", hop, b, settings=NEBSettings(relax_host=False, nudge=0.0, fmax=0.01))
    assert r.converged
    assert r.barrier == pytest.approx(hop.barrier, abs=0.02)


def test_dilute_vacancy_limit_runs(lfp):
    s, b = lfp
    rep = run_neb(s, "Li", bvse=b, settings=NEBSettings(limit="dilute-vacancy", images=5))
    assert rep.barrier is not None and rep.hops[0].n_atoms == 111  # 112 atoms less one vacancy
    assert rep.hops[0].formula == "Fe16P16O64Li15"


def test_unconverged_band_is_not_a_barrier(lfp):
    s, b = lfp
    rep = run_neb(s, "Li", bvse=b, settings=NEBSettings(steps=2))
    assert rep.barrier is None and rep.rate_limiting_hop is None
    h = rep.hops[0]
    assert not h.converged and h.barrier is None and h.status.startswith("not converged")
    assert "barrier" not in h.status.split(":")[0]


def test_too_close_endpoints_are_refused(lfp):
    s, b = lfp
    hop = b.distinct_hops[0]
    same = replace(hop, path_frac=[hop.path_frac[0], hop.path_frac[0]])
    with pytest.raises(CalculationError, match="too-close endpoints"):
        neb_hop(s, "Li", same, b)
    with pytest.raises(CalculationError, match="too-close endpoints"):
        neb_hop(s, "Li", hop, b, settings=NEBSettings(min_endpoint_distance=5.0))


def test_bad_settings_and_hops(lfp):
    s, b = lfp
    with pytest.raises(ValueError, match="method"):
        NEBSettings(method="nonsense").validate()
    with pytest.raises(IonscreenError, match="hop 999 does not exist"):
        run_neb(s, "Li", hop=999, bvse=b)
    with pytest.raises(StructureValidationError, match="another cell"):
        neb_hop(get_prototype("MgCr2O4").build(), "Li", b.distinct_hops[0], b)


def test_too_many_ranks_are_refused():
    class FakeComm:  # only the size matters to the check, which runs before any MPI call
        def Get_size(self):
            return 4

    from ionscreen.screening.neb import check_ranks

    with pytest.raises(CalculationError, match="4 MPI ranks for 3 inner NEB images"):
        check_ranks(3, FakeComm())
    check_ranks(4, FakeComm())


# ---------------------------------------------------------------------------- MPI, through the CLI


def _mpiexec() -> str:
    exe = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    assert Path(exe).exists(), "mpiexec not found: pip install mpich (the test extra installs it)"
    return exe


def _cli(args, tmp_path, ranks: int | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ionscreen.workflows", "neb", *args]
    if ranks:
        cmd = [_mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def lfp_cif(tmp_path_factory):
    p = tmp_path_factory.mktemp("neb") / "lfp.cif"
    get_prototype("LiFePO4").build(with_ion="Li").to(filename=str(p))
    return p


def test_mpi_two_ranks_gives_the_serial_barrier(lfp_cif, tmp_path):
    serial = _cli([str(lfp_cif), "--ion", "Li", "--images", "4", "--json", "serial.json"], tmp_path)
    assert serial.returncode == 0, serial.stderr
    par = _cli([str(lfp_cif), "--ion", "Li", "--images", "4", "--json", "mpi.json"], tmp_path, ranks=2)
    assert par.returncode == 0, par.stderr + par.stdout
    a = json.loads((tmp_path / "serial.json").read_text())
    b = json.loads((tmp_path / "mpi.json").read_text())
    assert a["barrier"] is not None
    assert b["barrier"] == pytest.approx(a["barrier"], abs=1e-6)
    assert b["hops"][0]["steps"] == a["hops"][0]["steps"]
    assert par.stdout.count("BVFF CI-NEB barrier") == 1  # rank 0 reports, once


def test_mpi_wrong_rank_count_is_refused(lfp_cif, tmp_path):
    r = _cli([str(lfp_cif), "--ion", "Li", "--images", "1"], tmp_path, ranks=2)
    assert r.returncode == 2
    assert "2 MPI ranks for 1 inner NEB images" in r.stderr


def test_mpi_batch_shares_pairs_and_keeps_failures(lfp_cif, tmp_path):
    bad = tmp_path / "broken.cif"
    bad.write_text("data_x\n_cell_length_a 3\n")
    args = [str(lfp_cif), str(bad), "--ion", "Li", "--images", "3", "--out", "batch"]
    r = _cli(args, tmp_path, ranks=2)
    assert r.returncode == 0, r.stderr + r.stdout
    docs = json.loads((tmp_path / "batch" / "neb_results.json").read_text())
    assert [d["status"] for d in docs] == ["done", "failed"]
    assert docs[0]["report"]["barrier"] is not None and docs[1]["error"] == "StructureReadError"
    # the local engine's MPI executor: rank 0 stores, the other rank computed both jobs
    assert "mpi(2 ranks)" in r.stdout and "1 NEB jobs done, 1 failed" in r.stdout
    # each pair's line gives the ranked barrier with its unit and what produced it
    b = docs[0]["report"]["barrier"]
    assert f"BVFF CI-NEB ({docs[0]['report']['calculator']}): {b:.3f} eV" in r.stdout
    from ionscreen.workflows.store_sqlite import SQLiteStore

    ro = SQLiteStore.open_readonly(tmp_path / "batch" / "ionscreen.sqlite")
    root_pid = str(ro.runs()[0]["pid"])
    ro.close()
    assert all(d["worker"] and d["worker"].split(":")[1] != root_pid for d in docs)
    # the batch is stored: run again, it resumes and computes nothing
    again = _cli(args, tmp_path)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "0 done, 0 failed in this run; 1 already done, 1 failed earlier" in again.stdout
    assert json.loads((tmp_path / "batch" / "neb_results.json").read_text()) == docs


def test_cli_unconverged_exit_code_and_message(lfp_cif, tmp_path):
    r = _cli([str(lfp_cif), "--ion", "Li", "--steps", "2"], tmp_path)
    assert r.returncode == 3
    assert "NOT converged" in r.stdout and "no barrier is reported" in r.stdout


# ---------------------------------------------------------------------------- ML tier


@pytest.mark.slow
def test_chgnet_neb_of_mg_in_spinel_runs_offline():
    """CHGNet CI-NEB of Mg in MgMn2O4 (56-atom cubic cell: Mg images 8.2 Å apart), fixed host,
    3 images: runs with the weights from the wheel, converges, and is labelled MLIP."""
    from ionscreen.structures.prototypes import host_for_ion

    s, state = host_for_ion(get_prototype("LiMn2O4"), "Mg")
    assert state == "discharged" and s.composition.reduced_formula == "MgMn2O4"
    rep = run_neb(s, "Mg", calculator="chgnet",
                  settings=NEBSettings(images=3, relax_host=False, fmax=0.1))
    assert rep.tier == "MLIP" and rep.calculator.startswith("CHGNet")
    h = rep.hops[0]
    assert h.converged and h.supercell == [1, 1, 1] and h.n_atoms == 49
    assert 0.1 < rep.barrier < 2.0
    assert "soft" in h.note  # the known softening of universal ML potentials is stated


def test_missing_ml_extra_names_the_extra(lfp, monkeypatch):
    from ionscreen.errors import MissingDependencyError

    s, b = lfp
    monkeypatch.setitem(sys.modules, "chgnet", None)
    monkeypatch.setitem(sys.modules, "chgnet.model", None)
    with pytest.raises(MissingDependencyError, match=r"ionscreen\[mlip\]"):
        run_neb(s, "Li", calculator="chgnet", bvse=b)


def test_nh4_needs_the_bvff(lfp):
    s, b = lfp
    with pytest.raises(IonscreenError, match="only the BVFF"):
        from ionscreen.screening.ion_models import ion_model
        from ionscreen.screening.neb import choose_calculator

        choose_calculator("chgnet", None, ion_model("NH4"))


def test_diverging_band_falls_back_to_a_fixed_host_and_says_so():
    """Layered delta-MnO2 with Mg: with the host relaxing, the BVFF band blows up (forces of
    10+ eV/Å); the hop is redone with the host fixed, and the result says so."""
    from ionscreen.structures.prototypes import host_for_ion

    s, _ = host_for_ion(get_prototype("MnO2-delta"), "Mg")
    rep = run_neb(s, "Mg", settings=NEBSettings(images=5, steps=300))
    assert rep.hops and all(h.converged for h in rep.hops)
    fell_back = [h for h in rep.hops if h.settings.get("fallback_from_relaxed_host")]
    assert fell_back and all("band diverged" in h.warnings[0] for h in fell_back)
    assert all(h.settings["relax_host"] is False for h in fell_back)
    # a hop whose two sites relax into one minimum is skipped with its reason, not a failure
    assert not rep.failures and rep.barrier is not None
    assert all("reason" in k for k in rep.skipped)
    no_fallback = run_neb(s, "Mg", hop=fell_back[0].hop["index"],
                          settings=NEBSettings(images=5, steps=300, fallback_fixed_host=False))
    assert no_fallback.barrier is None and "diverged" in no_fallback.hops[0].status


def test_dilute_vacancy_moves_only_the_stored_ion_not_a_node_of_the_same_element():
    """The dilute-vacancy set-up picks the mover and the vacancy among the working ion's own
    sites (WorkingIon.mobile_sites): a Zn tagged as a framework node ("M") never moves."""
    from ionscreen.screening.bvse import BVSESettings, prepare_host
    from ionscreen.screening.neb.setup import _one_vacancy
    from ionscreen.structures.prototypes import get_prototype

    st = get_prototype("MgCr2O4").build(with_ion="Zn")
    zn = [i for i, s in enumerate(st) if s.specie.symbol == "Zn"]
    nodes = set(zn[:4])  # half the Zn play the node metal, as in ZnZn(PTtSA)
    st.add_site_property("role", ["M" if i in nodes else "DI" for i in range(len(st))])
    host = prepare_host(st, "Zn", BVSESettings())
    assert sorted(host.ion.mobile_sites(host.structure)) == zn[4:]
    # a hop that starts on a node Zn has no stored ion to move (the old rule moved the node)
    with pytest.raises(StructureValidationError, match="start site"):
        _one_vacancy(host, [1, 1, 1], st[zn[0]].coords, st[zn[5]].coords)
    atoms = _one_vacancy(host, [1, 1, 1], st[zn[4]].coords, st[zn[5]].coords)
    syms, tags = atoms.get_chemical_symbols(), atoms.get_tags()
    assert syms.count("Zn") == len(zn) - 2  # the mover and the vacancy, both stored Zn
    assert sum(1 for y, t in zip(syms, tags) if y == "Zn" and t == 0) == len(nodes)  # nodes stay
