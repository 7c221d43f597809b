"""Tests of the prototype host library: every entry builds into a sensible crystal.

The expectations below (formulae, bond-length windows, densities) are written down here,
independently of data/prototypes.json, so that a wrong coordinate or setting in the data file
makes a test fail.
"""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from pymatgen.core import Species
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from ionscreen.errors import IonscreenError
from ionscreen.screening.bvse import BVSESettings, compute_landscape
from ionscreen.structures.oxidation import anions, check_charge_balance
from ionscreen.structures.prototypes import (
    Prototype,
    example_hosts,
    get_prototype,
    host_for_ion,
    list_prototypes,
)
from ionscreen.structures.validate import validate_structure

# id -> native reduced formula, empty-host reduced formula,
#       {(cation, anion): (lo, hi)} window for the shortest cation-anion distance (A)
EXPECTED: dict[str, tuple[str, str, dict[tuple[str, str], tuple[float, float]]]] = {
    "LiFePO4": (
        "LiFePO4",
        "FePO4",
        {("Fe", "O"): (2.03, 2.10), ("P", "O"): (1.50, 1.54), ("Li", "O"): (2.05, 2.12)},
    ),
    "MgCr2O4": ("MgCr2O4", "CrO2", {("Mg", "O"): (1.95, 1.99), ("Cr", "O"): (1.98, 2.01)}),
    "LiMn2O4": ("LiMn2O4", "MnO2", {("Li", "O"): (1.94, 2.00), ("Mn", "O"): (1.93, 1.99)}),
    "TiS2": ("TiS2", "TiS2", {("Ti", "S"): (2.40, 2.46)}),
    "V2O5": ("V2O5", "V2O5", {("V", "O"): (1.55, 1.61)}),
    "LiCoO2": ("LiCoO2", "CoO2", {("Co", "O"): (1.89, 1.95), ("Li", "O"): (2.06, 2.12)}),
    "MnO2-beta": ("MnO2", "MnO2", {("Mn", "O"): (1.86, 1.91)}),
    "TiO2-anatase": ("TiO2", "TiO2", {("Ti", "O"): (1.91, 1.96)}),
    "TiO2-rutile": ("TiO2", "TiO2", {("Ti", "O"): (1.93, 1.97)}),
    "Mo6S8": ("Mo3S4", "Mo3S4", {("Mo", "S"): (2.38, 2.46), ("Mo", "Mo"): (2.62, 2.75)}),
    "TiO2-hollandite": ("TiO2", "TiO2", {("Ti", "O"): (1.92, 1.98)}),
    "MnO2-delta": ("MnO2", "MnO2", {("Mn", "O"): (1.82, 1.88)}),
    "MoO3": ("MoO3", "MoO3", {("Mo", "O"): (1.64, 1.70)}),
    "MoS2-3R": ("MoS2", "MoS2", {("Mo", "S"): (2.33, 2.42)}),
    "WO3-hexagonal": ("WO3", "WO3", {("W", "O"): (1.86, 1.91)}),
    "PBA-MnCr": (
        "MnCr(CN)6",
        "MnCr(CN)6",
        {("Mn", "N"): (2.17, 2.23), ("Cr", "C"): (2.03, 2.09), ("C", "N"): (1.10, 1.15)},
    ),
    "NaTi2(PO4)3-NASICON": (
        "NaTi2(PO4)3",
        "NaTi2(PO4)3",
        {("Ti", "O"): (1.90, 1.95), ("P", "O"): (1.51, 1.56), ("Na", "O"): (2.40, 2.55)},
    ),
    "CaMn2O4-marokite": (
        "CaMn2O4",
        "MnO2",
        {("Mn", "O"): (1.86, 1.92), ("Ca", "O"): (2.25, 2.35)},
    ),
    "MnO2-alpha": ("MnO2", "MnO2", {("Mn", "O"): (1.85, 1.91)}),
    "LiTi2(PO4)3-NASICON": (
        "LiTi2(PO4)3",
        "LiTi2(PO4)3",
        {("Ti", "O"): (1.88, 1.92), ("P", "O"): (1.50, 1.53), ("Li", "O"): (2.20, 2.30)},
    ),
    "V2O5-delta": ("LiV2O5", "V2O5", {("V", "O"): (1.57, 1.63), ("Li", "O"): (1.98, 2.06)}),
    # computed structure (CHGNet): windows from typical thiospinel bonds, not from the data file
    "Ti2S4": ("Ti2CuS4", "TiS2", {("Ti", "S"): (2.40, 2.50), ("Cu", "S"): (2.20, 2.35)}),
}

# Atoms closer than 1.2 A mean overlapping or duplicated sites in an ionic framework, with one
# documented exception: short covalent bonds inside a molecular anion. The cyanide C-N triple
# bond of Prussian blue analogues is 1.12-1.16 A. Pairs listed here may be as short as the
# value given; any other pair below 1.2 A fails.
SHORT_COVALENT_BONDS: dict[frozenset[str], float] = {frozenset(("C", "N")): 1.05}
MIN_DISTANCE = 1.2

# In a cyanide the formal charges are written C2+ N3- (CN-); the C end is part of the anion, not
# a framework cation, and metals bond to either end (Cr-C, Mn-N in Mn[Cr(CN)6]). So C is not
# checked as a cation, and C counts as a ligand atom for the cation-anion distance check.
MOLECULAR_ANION_ATOMS = {"C": "N"}  # atom -> partner it must be bonded to


def _elements(s) -> set[str]:
    return {sp.symbol for sp in s.species}


def _molecular_atoms(s) -> set[str]:
    """Atoms of the structure that belong to a molecular anion (C of C-N when both present)."""
    return {a for a, partner in MOLECULAR_ANION_ATOMS.items() if {a, partner} <= _elements(s)}


def _check_short_contacts(s, label) -> None:
    """No pair closer than MIN_DISTANCE, except the listed short covalent bonds."""
    centers, neighbors, _, dists = s.get_neighbor_list(r=MIN_DISTANCE)
    for c, n, d in zip(centers, neighbors, dists):
        pair = frozenset((s[int(c)].specie.symbol, s[int(n)].specie.symbol))
        assert pair in SHORT_COVALENT_BONDS, (label, sorted(pair), d)
        assert d >= SHORT_COVALENT_BONDS[pair], (label, sorted(pair), d)


# Space groups with two origin choices in the International Tables: the data file must name
# the one it uses, since pymatgen's default for the bare symbol is not guaranteed.
TWO_ORIGIN_GROUPS = {48, 50, 59, 68, 70, 85, 86, 88, 125, 126, 129, 130, 133, 134, 137, 138}
TWO_ORIGIN_GROUPS |= {141, 142, 201, 203, 222, 224, 227, 228}

IDS = [p.id for p in list_prototypes()]


def _forms(proto: Prototype) -> list[str | None]:
    """Empty host, cited compound, and every working ion the host can take on its sites."""
    forms: list[str | None] = [None, "native"]
    if proto.ion_sites:
        for ion in ("Li", "Na", "Mg", "Ca", "Zn", "Al"):
            try:
                proto.build(ion)
            except ValueError as exc:
                assert "oxidation state" in str(exc)  # only redox limits may refuse an ion
            else:
                forms.append(ion)
        assert len(forms) > 2, proto.id
    return forms


def _shortest(structure, a: str, b: str) -> float:
    """Shortest a-b distance over all periodic images."""
    centers, neighbors, _, dists = structure.get_neighbor_list(r=4.0)
    best = np.inf
    for c, n, d in zip(centers, neighbors, dists):
        if structure[int(c)].specie.symbol == a and structure[int(n)].specie.symbol == b:
            best = min(best, d)
    return float(best)


def test_library_covers_expectations():
    """A prototype added without expectations here (or removed) must be noticed."""
    assert set(IDS) == set(EXPECTED)
    assert len(IDS) == len(set(IDS))
    assert len(IDS) >= 21


@pytest.mark.parametrize("pid", IDS)
def test_prototype_builds_sane(pid):
    proto = get_prototype(pid)
    native_formula, empty_formula, windows = EXPECTED[pid]
    for form in _forms(proto):
        s = proto.build(form)
        assert len(s) > 0
        assert s.is_ordered, (pid, form)
        assert all(isinstance(sp, Species) for sp in s.species), (pid, form)
        # no atoms closer than 1.2 A (all periodic images), short covalent bonds excepted
        _check_short_contacts(s, (pid, form))
        molecular = _molecular_atoms(s)
        min_allowed = min(
            [SHORT_COVALENT_BONDS[frozenset((a, MOLECULAR_ANION_ATOMS[a]))] for a in molecular]
            + [MIN_DISTANCE]
        )
        validate_structure(s, min_distance=min_allowed)
        check_charge_balance(s)
        assert anions(s), (pid, form)
        # every cation has an anion (or molecular-anion) neighbour at a bonding distance
        ligands = {an.rstrip("+-0123456789.") for an in anions(s)} | molecular
        for cation in {sp.symbol for sp in s.species if sp.oxi_state > 0} - molecular:
            d = min(_shortest(s, cation, lig) for lig in ligands)
            assert 1.4 < d < 2.8, (pid, form, cation, d)
        for atom in molecular:  # the molecular anion is intact: C bonded to its N
            d = _shortest(s, atom, MOLECULAR_ANION_ATOMS[atom])
            assert SHORT_COVALENT_BONDS[frozenset((atom, MOLECULAR_ANION_ATOMS[atom]))] <= d < 1.3
    native = proto.build("native")
    assert len(set(native.labels)) == len(native)  # unique, as CIF requires
    assert native.composition.reduced_formula == native_formula
    assert proto.build(None).composition.reduced_formula == empty_formula
    assert proto.formula == native_formula
    for (a, b), (lo, hi) in windows.items():
        d = _shortest(native, a, b)
        assert lo <= d <= hi, (pid, a, b, d)


@pytest.mark.parametrize("pid", IDS)
def test_prototype_symmetry_and_density(pid):
    proto = get_prototype(pid)
    native = proto.build("native")
    sga = SpacegroupAnalyzer(native, symprec=1e-3)
    assert sga.get_space_group_number() == proto.spacegroup_number
    if proto.spacegroup_number in TWO_ORIGIN_GROUPS:
        assert proto.setting.endswith((":1", ":2")), proto.setting
    assert proto.density is not None
    assert native.density == pytest.approx(proto.density, rel=0.10)
    if not proto.measured:  # a computed cell's density checks nothing: the data must say so
        assert "computed" in proto.structure_origin and "computed" in proto.density_source


def test_computed_structures_say_so_wherever_they_are_used():
    from ionscreen.structures.candidates import from_prototypes, from_substitutions

    ti2s4 = get_prototype("Ti2S4")
    assert not ti2s4.measured and "CHGNet" in ti2s4.structure_origin
    assert get_prototype("LiFePO4").measured
    (c,) = from_prototypes(["Mg"], ["Ti2S4"])
    assert c.state == "discharged" and c.formula == "Mg(TiS2)2"  # MgTi2S4, Mg on 8a
    assert "structure computed, not measured: CHGNet" in c.citation
    assert c.provenance["structure_origin"] == ti2s4.structure_origin
    subs, _ = from_substitutions(["Mg"], ["Ti2S4"], {"Ti": ["V"]}, {})
    assert subs and all("structure computed" in s.citation for s in subs)
    measured = next(iter(from_prototypes(["Mg"], ["LiFePO4"])))
    assert "structure" not in measured.citation and "structure_origin" not in measured.provenance


@pytest.mark.parametrize("pid", IDS)
def test_prototype_citation(pid):
    proto = get_prototype(pid)
    c = proto.citation
    assert c.authors and all(a.strip() for a in c.authors)
    assert c.title and c.journal and c.volume and c.pages
    assert 1900 < c.year <= 2030
    assert c.doi == "citation to verify" or c.doi.startswith("10.")
    assert proto.framework and proto.name
    assert str(c)


def test_lifepo4_olivine():
    proto = get_prototype("LiFePO4")
    assert (proto.spacegroup, proto.spacegroup_number) == ("Pnma", 62)
    s = proto.build("native")
    assert s.lattice.abc == pytest.approx((10.329, 6.0065, 4.6908))
    assert s.composition.element_composition.as_dict() == {"Li": 4, "Fe": 4, "P": 4, "O": 16}
    li = sorted(
        tuple(np.round(site.frac_coords % 1, 6)) for site in s if site.specie.symbol == "Li"
    )
    assert li == sorted([(0, 0, 0), (0, 0.5, 0), (0.5, 0, 0.5), (0.5, 0.5, 0.5)])
    for i, site in enumerate(s):
        el = site.specie.symbol
        if el not in ("Fe", "P"):
            continue
        oxygens = sorted(
            n.nn_distance for n in s.get_neighbors(site, 2.4) if n.specie.symbol == "O"
        )
        if el == "Fe":  # FeO6 octahedron
            assert len(oxygens) == 6, (i, oxygens)
            assert 2.0 <= oxygens[0] and oxygens[-1] <= 2.26
        else:  # PO4 tetrahedron
            assert len(oxygens) == 4, (i, oxygens)
            assert 1.51 <= oxygens[0] and oxygens[-1] <= 1.57
    assert {str(sp) for sp in s.species} == {"Li+", "Fe2+", "P5+", "O2-"}
    assert {"Li_4", "Fe_4", "O3_8"} <= set(s.labels)  # labels keep the Wyckoff site
    empty = proto.build()
    assert {str(sp) for sp in empty.species} == {"Fe3+", "P5+", "O2-"}


def _oxygen_shell(s, site, cutoff):
    return sorted(n.nn_distance for n in s.get_neighbors(site, cutoff) if n.specie.symbol == "O")


def test_nasicon_framework():
    proto = get_prototype("NaTi2(PO4)3-NASICON")
    assert (proto.spacegroup, proto.spacegroup_number, proto.setting) == ("R-3c", 167, "R-3c:H")
    s = proto.build("native")
    assert s.composition.element_composition.as_dict() == {"Na": 6, "Ti": 12, "P": 18, "O": 72}
    assert s.lattice.abc == pytest.approx((8.61677, 8.61677, 22.02154))
    assert s.lattice.angles == pytest.approx((90.0, 90.0, 120.0))
    # Na on M1 (6b) at the origin, between two TiO6 octahedra of a lantern along c
    assert any(np.allclose(site.frac_coords % 1, 0) for site in s if site.specie.symbol == "Na")
    for site in s:
        el = site.specie.symbol
        if el == "Ti":  # TiO6 octahedron, 3 + 3 distances
            d = _oxygen_shell(s, site, 2.3)
            assert len(d) == 6 and 1.90 <= d[0] and d[-1] <= 2.02, d
        elif el == "P":  # PO4 tetrahedron
            d = _oxygen_shell(s, site, 2.0)
            assert len(d) == 4 and 1.51 <= d[0] and d[-1] <= 1.57, d
        elif el == "Na":  # M1: trigonal antiprism of 6 O
            d = _oxygen_shell(s, site, 2.8)
            assert d == pytest.approx([2.478] * 6, abs=0.01)
    # PO4 tetrahedra share corners only with TiO6 octahedra: every O bonds to one P and one Ti
    for site in s:
        if site.specie.symbol == "O":
            near = {n.specie.symbol for n in s.get_neighbors(site, 2.05)}
            assert near == {"P", "Ti"}, near
    assert {str(sp) for sp in s.species} == {"Na+", "Ti4+", "P5+", "O2-"}
    assert proto.build() == s  # M1 Na is framework: the empty host is NaTi2(PO4)3 itself
    assert not proto.ion_sites and proto.native_ion is None
    structure, state = host_for_ion(proto, "Mg")
    assert state == "charged" and structure.composition.reduced_formula == "NaTi2(PO4)3"


def test_marokite_ca_host():
    proto = get_prototype("CaMn2O4-marokite")
    assert (proto.spacegroup, proto.spacegroup_number) == ("Pbcm", 57)
    s = proto.build("native")
    assert s.composition.element_composition.as_dict() == {"Ca": 4, "Mn": 8, "O": 16}
    assert s.lattice.abc == pytest.approx((3.146239, 9.976702, 9.659762))
    assert {str(sp) for sp in s.species} == {"Ca2+", "Mn3+", "O2-"}
    for site in s:
        el = site.specie.symbol
        if el == "Mn":  # Jahn-Teller MnO6: four short, two long
            d = _oxygen_shell(s, site, 2.6)
            assert len(d) == 6
            assert all(1.86 <= x <= 1.98 for x in d[:4]) and all(2.3 <= x <= 2.5 for x in d[4:]), d
        elif el == "Ca":  # eight-coordinate channel site
            d = _oxygen_shell(s, site, 2.8)
            assert len(d) == 8 and d[0] >= 2.25, d
    empty = proto.build()
    assert {str(sp) for sp in empty.species} == {"Mn4+", "O2-"}
    mg = proto.build("Mg")
    assert {str(sp) for sp in mg.species} == {"Mg2+", "Mn3+", "O2-"}
    structure, state = host_for_ion(proto, "Ca")
    assert state == "discharged" and structure.composition.reduced_formula == "CaMn2O4"


def test_alpha_mno2_hollandite():
    proto = get_prototype("MnO2-alpha")
    assert (proto.spacegroup, proto.spacegroup_number) == ("I4/m", 87)
    s = proto.build("native")
    assert s.composition.element_composition.as_dict() == {"Mn": 8, "O": 16}
    assert s.lattice.abc == pytest.approx((9.815, 9.815, 2.847))
    assert {str(sp) for sp in s.species} == {"Mn4+", "O2-"}
    for site in s:
        if site.specie.symbol == "Mn":  # MnO6 octahedra, nearly regular for Mn4+
            d = _oxygen_shell(s, site, 2.3)
            assert len(d) == 6 and 1.86 <= d[0] and d[-1] <= 1.92, d
    # the 2x2 tunnel along c is empty: nothing within 2.5 A of its axis at (0, 0, z)
    for z in (0.0, 0.25, 0.5):
        centre = s.lattice.get_cartesian_coords([0.0, 0.0, z])
        assert min(np.linalg.norm(site.coords - centre) for site in s) > 2.5
    assert not proto.ion_sites and proto.native_ion is None
    structure, state = host_for_ion(proto, "Mg")
    assert state == "charged" and structure.composition.reduced_formula == "MnO2"


def test_delta_v2o5_layers_and_ion_site():
    proto = get_prototype("V2O5-delta")
    assert (proto.spacegroup, proto.spacegroup_number) == ("Cmcm", 63)
    s = proto.build("native")
    assert s.composition.element_composition.as_dict() == {"Li": 4, "V": 8, "O": 20}
    assert s.lattice.abc == pytest.approx((3.6047, 9.9157, 11.2479))
    assert {sp.oxi_state for sp in s.species if sp.symbol == "V"} == {4.5}
    for site in s:
        el = site.specie.symbol
        if el == "V":  # VO5 square pyramid: one vanadyl bond, four basal bonds
            d = _oxygen_shell(s, site, 2.4)
            assert len(d) == 5 and d[0] < 1.65 and all(1.8 <= x <= 2.05 for x in d[1:]), d
        elif el == "Li":  # between the layers, six O neighbours
            d = _oxygen_shell(s, site, 2.6)
            assert len(d) == 6 and d[0] >= 1.98, d
    assert {str(sp) for sp in proto.build().species} == {"V5+", "O2-"}
    mg = proto.build("Mg")
    assert mg.composition.reduced_formula == "MgV2O5"
    assert {str(sp) for sp in mg.species} == {"Mg2+", "V4+", "O2-"}
    structure, state = host_for_ion(proto, "Mg")
    assert state == "discharged" and structure.composition.reduced_formula == "MgV2O5"


def test_mgcr2o4_spinel_origin_choice():
    proto = get_prototype("MgCr2O4")
    s = proto.build("native")
    assert s.composition.element_composition.as_dict() == {"Mg": 8, "Cr": 16, "O": 32}
    assert s.lattice.abc == pytest.approx((8.333,) * 3)
    assert any(np.allclose(site.frac_coords % 1, 0) for site in s if site.specie.symbol == "Mg")
    for site in s:
        el = site.specie.symbol
        if el == "O":
            continue
        oxygens = [n.nn_distance for n in s.get_neighbors(site, 2.3) if n.specie.symbol == "O"]
        if el == "Mg":  # tetrahedral 8a
            assert len(oxygens) == 4
            assert oxygens == pytest.approx([1.966] * 4, abs=0.01)
        else:  # octahedral 16d
            assert len(oxygens) == 6
            assert oxygens == pytest.approx([1.994] * 6, abs=0.01)
    assert SpacegroupAnalyzer(s, symprec=1e-3).get_space_group_number() == 227


def test_with_ion_changes_redox_state():
    spinel = get_prototype("LiMn2O4")
    mg = spinel.build("Mg")
    assert mg.composition.reduced_formula == "MgMn2O4"
    assert {str(sp) for sp in mg.species} == {"Mg2+", "Mn3+", "O2-"}
    assert {str(sp) for sp in spinel.build().species} == {"Mn4+", "O2-"}
    native = spinel.build("native")
    mn = {sp.oxi_state for sp in native.species if sp.symbol == "Mn"}
    assert mn == {3.5}
    check_charge_balance(native)
    # Mg sits on the tetrahedral 8a site: 4 O neighbours
    for site in mg:
        if site.specie.symbol == "Mg":
            assert len([n for n in mg.get_neighbors(site, 2.2) if n.specie.symbol == "O"]) == 4
    # the native ion's symbol is the same as "native"
    assert get_prototype("LiFePO4").build("Li") == get_prototype("LiFePO4").build("native")
    tis2 = get_prototype("TiS2").build("Zn")
    assert tis2.composition.element_composition.as_dict() == {"Zn": 1, "Ti": 1, "S": 2}
    assert {str(sp) for sp in tis2.species} == {"Zn2+", "Ti2+", "S2-"}
    check_charge_balance(tis2)


def test_build_refusals():
    with pytest.raises(ValueError, match="Fe in oxidation state 1"):
        get_prototype("LiFePO4").build("Mg")  # would need Fe+
    with pytest.raises(ValueError, match="no tabulated ion sites"):
        get_prototype("V2O5").build("Mg")
    with pytest.raises(ValueError, match="single-atom working ions"):
        get_prototype("MgCr2O4").build("NH4")
    with pytest.raises(ValueError) as info:
        get_prototype("NoSuchHost")
    assert "NoSuchHost" in str(info.value)
    for pid in IDS:
        assert pid in str(info.value)


def test_build_is_repeatable_and_independent():
    proto = get_prototype("MgCr2O4")
    a = proto.build("native")
    a.remove_species(["Mg"])
    b = proto.build("native")
    assert b.composition["Mg"] == 8


def test_example_hosts():
    hosts = example_hosts()
    assert set(hosts) == {"LiFePO4", "MgCr2O4"}
    assert hosts["LiFePO4"].composition.reduced_formula == "LiFePO4"
    assert hosts["MgCr2O4"].composition.reduced_formula == "MgCr2O4"
    for s in hosts.values():
        check_charge_balance(s)


def test_data_file_is_ordered_and_complete():
    text = resources.files("ionscreen.structures").joinpath("data", "prototypes.json").read_text()
    data = json.loads(text)
    for entry in data["prototypes"]:
        for site in entry["sites"] + entry["ion_sites"]:
            assert site["occupancy"] == 1.0, (entry["id"], site["label"])
            assert len(site["coords"]) == 3
        assert {"id", "name", "framework", "spacegroup", "lattice", "citation"} <= set(entry)
        assert {"symbol", "number"} <= set(entry["spacegroup"])


def test_short_covalent_bond_exception_is_narrow():
    """The cyanide exception admits C-N at 1.12 A but no other short pair."""
    pba = get_prototype("PBA-MnCr").build()
    assert _shortest(pba, "C", "N") == pytest.approx(1.12, abs=0.01)
    with pytest.raises(IonscreenError):  # the plain 1.2 A overlap rule rejects it
        validate_structure(pba, min_distance=MIN_DISTANCE)
    _check_short_contacts(pba, "PBA-MnCr")
    squeezed = get_prototype("MoS2-3R").build()
    squeezed.scale_lattice(squeezed.volume * 0.1)  # Mo-S about 1.1 A
    with pytest.raises(AssertionError):
        _check_short_contacts(squeezed, "squeezed MoS2")


def test_pba_and_birnessite_geometry():
    pba = get_prototype("PBA-MnCr").build()
    for site in pba:
        el = site.specie.symbol
        if el in ("Mn", "Cr"):  # Mn-N6 and Cr-C6 octahedra
            ligand = "N" if el == "Mn" else "C"
            near = [n for n in pba.get_neighbors(site, 2.5)]
            assert len(near) == 6 and {n.specie.symbol for n in near} == {ligand}
    # delta-MnO2: the P-1 cell is the primitive cell of the cited C-1 cell (half its volume)
    bir = get_prototype("MnO2-delta").build()
    assert bir.volume == pytest.approx(103.663 / 2, rel=1e-4)
    assert bir.composition.element_composition.as_dict() == {"Mn": 1, "O": 2}


# Every prototype through the BVSE driver for every working ion, on a coarse grid: the host is
# the discharged form where the ion sites allow it, else the empty host. Each pair computes or
# fails with one of ionscreen's own errors (e.g. no softBV Ca2+-N3- row for the cyanide).
BVSE_IONS = ("Mg", "Ca", "Zn", "Al", "NH4")


@pytest.mark.parametrize("ion", BVSE_IONS)
@pytest.mark.parametrize("pid", IDS)
def test_prototype_through_bvse(pid, ion):
    structure, state = host_for_ion(get_prototype(pid), ion)
    assert state in ("discharged", "charged")
    try:
        result = compute_landscape(structure, ion, settings=BVSESettings(resolution=0.4))
    except IonscreenError as exc:
        assert str(exc).strip(), (pid, ion)
        return
    assert set(result.barriers) == {"1D", "2D", "3D"}
    b1, b2, b3 = (result.barriers[d] for d in ("1D", "2D", "3D"))
    assert 0.0 <= b1 <= b2 <= b3, (pid, ion, result.barriers)


def test_experimental_ti_nasicon_matches_the_dft_one():
    """The neutron-refined Ti-NASICON framework (Dashjav & Tietz) and the DFT-relaxed NaTi2(PO4)3
    are the same structure type: same Ti/P/O topology once M1 is emptied, cells within 6 %."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    exp = get_prototype("LiTi2(PO4)3-NASICON").build("native")
    dft = get_prototype("NaTi2(PO4)3-NASICON").build("native")
    frame = [s.copy() for s in (exp, dft)]
    frame[0].remove_species(["Li+"])
    frame[1].remove_species(["Na+"])
    assert StructureMatcher(scale=True, attempt_supercell=False).fit(*frame)
    assert exp.volume / dft.volume == pytest.approx(1.0, abs=0.10)
    for site in exp:
        if site.specie.symbol == "Li":  # M1: a regular LiO6 antiprism, Li-O 2.25 A
            d = _oxygen_shell(exp, site, 2.6)
            assert len(d) == 6 and d[-1] - d[0] < 0.01, d
