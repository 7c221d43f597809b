"""Candidate records: ids, provenance, user files (good and bad) and the built-in hosts."""

from __future__ import annotations

from ase.io import write as ase_write
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from ionscreen.structures.candidates import (
    Candidate,
    candidate_id,
    from_files,
    from_prototypes,
    iter_structure_files,
    path_problems,
    unique,
)
from ionscreen.structures.prototypes import get_prototype, list_prototypes


def _rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_ids_are_deterministic_and_depend_on_structure_and_ion():
    a = get_prototype("MgCr2O4").build("native")
    b = get_prototype("MgCr2O4").build("native")
    assert candidate_id(a, "Mg") == candidate_id(b, "Mg")
    assert candidate_id(a, "Mg") != candidate_id(a, "Ca")
    c = a.copy()
    c.translate_sites([0], [0.01, 0, 0])
    assert candidate_id(c, "Mg") != candidate_id(a, "Mg")
    # site order does not matter
    d = Structure.from_sites(list(reversed(a.sites)))
    assert candidate_id(d, "Mg") == candidate_id(a, "Mg")


def test_prototype_candidates_carry_provenance_and_round_trip():
    cands = list(from_prototypes(["Mg", "Zn"]))
    assert len(cands) == 2 * len(list_prototypes())
    for c in cands:
        assert c.source.startswith("prototype:") and c.citation
        assert c.state in ("charged", "discharged")
        assert c.provenance["prototype"] in c.source
        back = Candidate.from_dict(c.to_dict())
        assert back.id == c.id and back.structure == c.structure
    spinel = next(c for c in cands if c.source == "prototype:MgCr2O4" and c.working_ion == "Mg")
    assert spinel.state == "discharged"
    assert spinel.discharged_formula == "Mg8Cr16O32" and spinel.electrons == 16.0


def test_user_folder_good_and_bad_files(tmp_path):
    good = _rocksalt()
    good.to(filename=str(tmp_path / "MgO.cif"))
    good.to(filename=str(tmp_path / "POSCAR"))
    ase_write(str(tmp_path / "mgo.extxyz"), AseAtomsAdaptor.get_atoms(good))
    (tmp_path / "broken.cif").write_text("data_broken\n_cell_length_a 4.2\nloop_\n_atom_site_label\nzzz\n")
    unknown = tmp_path / "unknown.cif"
    unknown.write_text(
        (tmp_path / "MgO.cif").read_text().replace(" Mg ", " Xq ").replace("Mg1", "Xq1").replace("Mg ", "Xq ")
    )
    Structure(Lattice.cubic(4.2), ["Mg", "Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(tmp_path / "imbalanced.vasp")
    )
    Structure(Lattice.cubic(4.2), [{"Mg": 0.5, "Ca": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(tmp_path / "disordered.cif")
    )
    (tmp_path / "notes.txt").write_text("not a structure")
    files = {p.name for p in iter_structure_files([tmp_path])}
    assert "notes.txt" not in files and "POSCAR" in files
    cands, failures = from_files([tmp_path], ["Mg", "Ca"])
    bad = {f["path"].split("/")[-1]: f["reason"] for f in failures}
    assert set(bad) == {"broken.cif", "unknown.cif", "imbalanced.vasp", "disordered.cif"}
    assert "charge" in bad["imbalanced.vasp"].lower()
    assert "partial" in bad["disordered.cif"].lower() or "disorder" in bad["disordered.cif"].lower()
    for reason in bad.values():
        assert len(reason) > 20
    # the three good files, each for both ions; MgO contains Mg: discharged for Mg
    assert len(cands) == 6
    mg = [c for c in cands if c.working_ion == "Mg"]
    assert all(c.state == "discharged" and c.electrons == 8.0 for c in mg)  # Mg4O4 cell, 2 e- each
    assert len(unique(cands)) == 2  # the same MgO three times, for two ions


def test_missing_path_is_a_failure_not_a_crash(tmp_path):
    cands, failures = from_files([tmp_path / "nope.cif"], ["Mg"])
    assert not cands and "nope.cif" in failures[0]["reason"]


#: The (source, working ion) pairs of the built-in candidates that BVSE cannot compute, and the
#: softBV pair each one misses (derived once from the code; a change here is a change of the
#: parameter table or of the candidate library and must be deliberate).
#: * The Prussian-blue analogue PBA-MnCr and every substitution of it contain cyanide N3-; the
#:   softBV table has no Na+, Ca2+, Ba2+, Zn2+ or Al3+ row with N3-, nor a K+ one (NH4+ is
#:   modelled from K+ rows). Li+, Mg2+ and Sr2+ have N3- rows.
#: * Every O -> Se substitution puts Se2- around Mg2+, whose softBV Mg2+–Se2- row is rejected
#:   (alpha <= 0).
_PBA_SOURCES = ["prototype:PBA-MnCr"] + [
    f"substitution:PBA-MnCr {sub}"
    for sub in ("Cr->Co", "Cr->Fe", "Cr->Mn", "Cr->Ni", "Cr->Ti", "Cr->V",
                "Mn->Cr", "Mn->Fe", "Mn->Ni", "Mn->Ti", "Mn->V")
]
_NO_NITRIDE_ROW = {"Na": "Na+–N3-", "Ca": "Ca2+–N3-", "Ba": "Ba2+–N3-", "Zn": "Zn2+–N3-",
                   "Al": "Al3+–N3-", "NH4": "K+–N3-"}
_SELENIDE_PARENTS = (
    "CaMn2O4-marokite", "LiCoO2", "LiFePO4", "LiMn2O4", "LiTi2(PO4)3-NASICON", "MgCr2O4",
    "MnO2-alpha", "MnO2-beta", "MnO2-delta", "MoO3", "NaTi2(PO4)3-NASICON", "TiO2-anatase",
    "TiO2-hollandite", "TiO2-rutile", "V2O5", "V2O5-delta", "WO3-hexagonal",
)
EXPECTED_BVSE_FAILURES = {
    **{(src, ion): pair for src in _PBA_SOURCES for ion, pair in _NO_NITRIDE_ROW.items()},
    **{(f"substitution:{parent} O->Se", "Mg"): "Mg2+–Se2- are rejected"
       for parent in _SELENIDE_PARENTS},
}


def test_bvse_runs_on_every_builtin_candidate_for_every_ion():
    """Prototypes and their default substitutions × all nine working ions: each job computes
    (E3D finite, or inf when no path percolates within encut) or fails with a
    MissingParameterError naming the missing softBV pair, exactly for the expected pairs.

    A coarse grid (1 Å), no refinement and no symmetry reduction keep this a smoke test of
    every host × ion combination (~1360 jobs); one numba thread, because these tiny grids are
    dominated by thread start-up and contention on shared CI cores.
    """
    import math

    from ionscreen.errors import IonscreenError, MissingParameterError
    from ionscreen.screening.bvse import BVSESettings, compute_landscape
    from ionscreen.structures.candidates import from_substitutions
    from ionscreen.structures.ions import WORKING_IONS

    ions = list(WORKING_IONS)
    cands = unique(list(from_prototypes(ions)) + from_substitutions(ions)[0])
    settings = BVSESettings(resolution=1.0, refine=False, use_symmetry=False, threads=1)
    failed: dict[tuple[str, str], IonscreenError] = {}
    not_computed = []
    for c in cands:
        try:
            res = compute_landscape(c.structure, c.working_ion, settings=settings, keep_grid=False)
        except IonscreenError as exc:
            failed[(c.source, c.working_ion)] = exc
            continue
        e3d = res.barriers["3D"]
        if not (math.isfinite(e3d) or e3d == math.inf):
            not_computed.append((c.source, c.working_ion, e3d))
    assert not_computed == []
    assert set(failed) == set(EXPECTED_BVSE_FAILURES)
    for key, exc in failed.items():
        assert type(exc) is MissingParameterError, (key, exc)
        assert EXPECTED_BVSE_FAILURES[key] in str(exc), (key, str(exc))
    assert len(cands) - len(failed) > 1200  # the rest all computed


def test_polymer_candidates_capacity_and_bvse():
    from ionscreen.screening.bvse import BVSESettings, compute_landscape
    from ionscreen.screening.descriptors import capacity
    from ionscreen.structures.candidates import from_polymers
    from ionscreen.structures.ions import get_working_ion

    cands = from_polymers(["Mg", "Al", "Zn"], metals=["Zn"], n_disordered=1)
    assert {c.working_ion for c in cands} == {"Mg", "Zn"}  # Al is not a DI cation
    assert len(cands) == 4  # (Mg, Zn) x (ordered, disordered)
    for c in cands:
        cap = capacity(c)
        # MgZn(C10H14N4O8S4): M = 24.305 + 65.38 + 10*12.011 + 14*1.008 + 4*14.007 + 8*15.999
        #   + 4*32.06 = 536.21 g/mol; 2 e- -> 2 * 26801.48 / 536.21 = 99.97 mAh/g
        if c.working_ion == "Mg":
            assert abs(cap.mAh_g - 99.97) < 0.05
        assert c.source.startswith("polymer:") and c.provenance["builder"]
    zn = next(c for c in cands if c.working_ion == "Zn" and "ordered" in c.source)
    # the node Zn stays in the framework: only the stored Zn (role DI) is mobile
    mobile = get_working_ion("Zn").mobile_sites(zn.structure)
    assert len(mobile) == int(zn.structure.composition["Zn"]) // 2
    mg = next(c for c in cands if c.working_ion == "Mg" and "ordered" in c.source)
    res = compute_landscape(mg.structure, "Mg", settings=BVSESettings(resolution=0.4))
    assert res.sites and res.barriers["1D"] > 0


def test_magnetic_cif_in_a_folder_is_read_with_its_remarks_kept(tmp_path):
    """A .mcif in a folder was skipped silently; the reader's remarks go to the candidate's
    provenance, not to the terminal."""
    import warnings

    from pymatgen.io.cif import CifWriter

    st = get_prototype("MgCr2O4").build("native")
    st.add_site_property("magmom", [3.0 if sp.symbol == "Cr" else 0.0 for sp in st.species])
    CifWriter(st, write_magmoms=True).write_file(tmp_path / "spinel.mcif")
    assert [p.name for p in iter_structure_files([tmp_path])] == ["spinel.mcif"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may reach the terminal
        cands, failures = from_files([tmp_path], ["Mg"])
    assert failures == [] and len(cands) == 1
    assert cands[0].formula == "MgCr2O4" and cands[0].state == "discharged"
    assert any("magnetic moments" in n for n in cands[0].provenance["read_notes"])


def test_path_problems_name_missing_paths_and_folders_without_structures(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    _rocksalt().to(filename=str(tmp_path / "MgO.cif"))
    assert path_problems([tmp_path, tmp_path / "MgO.cif"]) == []
    problems = path_problems([tmp_path / "nothere.cif", tmp_path / "docs", tmp_path / "empty"])
    assert len(problems) == 3
    assert "nothere.cif" in problems[0] and "no such file" in problems[0]
    assert "docs" in problems[1] and "notes.txt" in problems[1] and "CIF" in problems[1]
    assert "empty" in problems[2] and "POSCAR" in problems[2] and "extxyz" in problems[2]
