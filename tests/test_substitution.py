"""Tests of chemical substitution of host frameworks (structures/substitution.py).

Reference lattice constants are written here, independently of the code: MgCr2S4 a ~ 10.11 A
(the thiospinel made by Wustrow et al. 2018), ZnCr2O4 8.327, ZnCr2S4 9.983, ZnCr2Se4 10.497,
MgV2O4 8.42, MgTi2O4 8.51 A (handbook values).
"""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Species, Structure

from ionscreen.errors import (
    IonscreenError,
    OxidationStateError,
    StructureValidationError,
)
from ionscreen.structures.oxidation import check_charge_balance
from ionscreen.structures.prototypes import get_prototype
from ionscreen.structures.substitution import (
    Substitution,
    SubstitutionRejected,
    apply_substitution,
    enumerate_substitutions,
    known_oxidation_states,
    shannon_radius,
)

# Stated accuracy of the bond-length rescaling rule for oxide -> chalcogenide exchanges (cell
# edge); see the module docstring for the measured errors.
A_TOLERANCE = 0.025


@pytest.fixture(scope="module")
def limn2o4() -> Structure:
    return get_prototype("LiMn2O4").build("native")


@pytest.fixture(scope="module")
def mgcr2o4() -> Structure:
    return get_prototype("MgCr2O4").build("native")


def _net_charge(structure: Structure) -> float:
    return sum(site.specie.oxi_state for site in structure)


def _by_label(results):
    return {sub.label: (new, info) for sub, new, info in results}


# ------------------------------------------------------------------ the Substitution type


def test_substitution_label_hash_and_validation():
    sub = Substitution({"O": "S", "Mn": "Fe"})
    assert sub.label == "Mn->Fe, O->S"
    assert Substitution({"Mn": "Fe"}).label == "Mn->Fe"
    assert hash(sub) == hash(Substitution({"Mn": "Fe", "O": "S"}))
    assert sub == Substitution({"Mn": "Fe", "O": "S"})
    assert sub.as_dict() == {"mapping": {"Mn": "Fe", "O": "S"}, "label": "Mn->Fe, O->S"}
    with pytest.raises(StructureValidationError, match="not an element"):
        Substitution({"Mn": "Xx"})
    with pytest.raises(StructureValidationError, match="itself"):
        Substitution({"Mn": "Mn"})
    with pytest.raises(StructureValidationError):
        Substitution({})


def test_known_states_and_radii():
    # Fe4+ is not in pymatgen's ICSD list but Shannon tabulates it (SrFeO3): it exists.
    assert 4 in known_oxidation_states("Fe")
    assert 1 not in known_oxidation_states("Mg")
    # Shannon: Fe2+ HS VI 0.78, Cr3+ VI 0.615, O2- IV 1.38, S2- only at VI (1.84)
    assert shannon_radius("Fe", 2, 6) == (0.78, 6)
    assert shannon_radius("O", -2, 4) == (1.38, 4)
    assert shannon_radius("S", -2, 4) == (1.84, 6)
    # Mn3.5+: halfway between Mn3+ HS (0.645) and Mn4+ (0.53)
    r, cn = shannon_radius("Mn", 3.5, 6)
    assert cn == 6 and r == pytest.approx((0.645 + 0.53) / 2)


# --------------------------------------------------------------------------- cations


def test_mn_to_fe_in_limn2o4_is_accepted_and_balanced(limn2o4):
    results = enumerate_substitutions(limn2o4, anion_options={})
    found = _by_label(results)
    assert "Mn->Fe" in found
    new, info = found["Mn->Fe"]
    assert new.composition.reduced_formula == "Li(FeO2)2"
    check_charge_balance(new)
    # Fe keeps the Mn3.5+ pattern: mixed valence Fe3+/Fe4+, both known states
    assert {site.specie.oxi_state for site in new if site.specie.symbol == "Fe"} == {3.5}
    assert info["redox_adjustment"] == {}
    assert info["parent_formula"] == "LiMn2O4"
    assert info["substitution"] == "Mn->Fe"
    mm = info["radius_mismatch"][f"{Species('Mn', 3.5)}->{Species('Fe', 3.5)}"]
    # hand: r(Mn3.5+) = (0.645 + 0.53)/2 = 0.5875, r(Fe3.5+) = (0.645 + 0.585)/2 = 0.615
    assert mm["r_from"] == pytest.approx(0.5875)
    assert mm["r_to"] == pytest.approx(0.615)
    assert mm["mismatch"] == pytest.approx((0.615 - 0.5875) / 0.5875, abs=1e-4)
    assert mm["cn"] == 6
    # a larger cation: the cell expands a little, by the rule's factor exactly
    assert 1.0 < info["rescale_factor"] < 1.03
    assert new.lattice.a == pytest.approx(limn2o4.lattice.a * info["rescale_factor"], rel=1e-5)
    assert new.volume == pytest.approx(limn2o4.volume * info["volume_factor"], rel=1e-5)
    # labels keep the Wyckoff naming with the element renamed
    assert any(site.label.startswith("Fe_") for site in new)


def test_cation_exchange_against_known_spinels(mgcr2o4):
    found = _by_label(enumerate_substitutions(mgcr2o4, anion_options={}))
    for label, a_ref in (("Cr->V", 8.42), ("Cr->Ti", 8.51)):
        new, _ = found[label]
        assert new.lattice.a == pytest.approx(a_ref, rel=0.01), label


def test_redox_adjustment_when_substituent_changes_state(limn2o4):
    # Mg (known only as 2+) on the Li+ site: the pattern state Mg+ does not exist, so Mg2+
    # goes in and Mn is reduced from 3.5+ to 3+ (cubic MgMn2O4).
    new, info = apply_substitution(limn2o4, {"Li": "Mg"})
    assert new.composition.reduced_formula == "MgMn2O4"
    assert info["redox_adjustment"] == {str(Species("Mn", 3.5)): "Mn3+"}
    check_charge_balance(new)
    # with no redox element allowed, the same request cannot balance
    with pytest.raises(SubstitutionRejected, match="charge"):
        apply_substitution(limn2o4, {"Li": "Mg"}, redox=[])


def test_charge_that_cannot_be_compensated_is_rejected():
    v2o5 = get_prototype("V2O5").build("native")
    rejected = []
    results = enumerate_substitutions(v2o5, anion_options={}, rejected=rejected)
    labels = {sub.label for sub, _, _ in results}
    reasons = {sub.label: info["reason"] for sub, info in rejected}
    assert "V->Cr" in labels  # Cr5+ exists
    assert "V->Fe" in reasons and "charge" in reasons["V->Fe"]  # no Fe5+, nothing to compensate


# ---------------------------------------------------------------------------- anions


def test_o_to_s_in_mgcr2o4_matches_mgcr2s4(mgcr2o4):
    found = _by_label(enumerate_substitutions(mgcr2o4, cation_options={}))
    assert set(found) == {"O->S", "O->Se"}
    new, info = found["O->S"]
    assert new.composition.reduced_formula == "Mg(CrS2)2"
    check_charge_balance(new)
    a_ref = 10.11  # MgCr2S4
    assert abs(new.lattice.a / a_ref - 1) <= A_TOLERANCE
    # Hand check of the rule: per MgCr2X4 there are 2 x 6 = 12 Cr-X bonds (Cr3+ VI 0.615 A)
    # and 1 x 4 = 4 Mg-X bonds (Mg2+ IV 0.57 A); O2- and S2- are both read at CN 6 (1.40,
    # 1.84 A) since Shannon tabulates S2- at CN 6 only.
    s_hand = (12 * (0.615 + 1.84) + 4 * (0.57 + 1.84)) / (12 * (0.615 + 1.40) + 4 * (0.57 + 1.40))
    assert info["rescale_factor"] == pytest.approx(s_hand, rel=1e-5)
    assert new.lattice.a == pytest.approx(8.333 * s_hand, rel=1e-5)  # 10.163 A, +0.5 %
    # anion mismatch is reported (not filtered by radius_tolerance)
    mm = info["radius_mismatch"]["O2-->S2-"]
    assert mm["mismatch"] == pytest.approx(0.44 / 1.40, abs=1e-4)
    assert mm["cn"] == 4 and mm["radius_cn"] == 6
    assert info["max_anion_mismatch"] > 0.15
    # Se expands more than S
    assert found["O->Se"][0].lattice.a > new.lattice.a


@pytest.mark.parametrize(("anion", "a_ref"), [("S", 9.983), ("Se", 10.497)])
def test_o_to_chalcogen_in_zncr2o4(mgcr2o4, anion, a_ref):
    zn = mgcr2o4.copy()
    zn.replace_species({Species("Mg", 2): Species("Zn", 2)})
    zn.scale_lattice(8.327**3)  # ZnCr2O4
    new, _ = apply_substitution(zn, {"O": anion})
    assert abs(new.lattice.a / a_ref - 1) <= A_TOLERANCE


def test_anion_radius_tolerance_filters_when_given(mgcr2o4):
    rejected = []
    out = enumerate_substitutions(
        mgcr2o4, cation_options={}, anion_radius_tolerance=0.35, rejected=rejected
    )
    assert [sub.label for sub, _, _ in out] == ["O->S"]  # 31 % passes, Se 41 % does not
    assert [sub.label for sub, _ in rejected] == ["O->Se"]
    assert "anion radius mismatch" in rejected[0][1]["reason"]


# ------------------------------------------------------------------ radius tolerance


def test_radius_violation_is_rejected_and_reported():
    lfp = get_prototype("LiFePO4").build("native")
    rejected = []
    out = enumerate_substitutions(
        lfp, cation_options={"Fe": ["Ba", "Mn"]}, anion_options={}, rejected=rejected
    )
    assert [sub.label for sub, _, _ in out] == ["Fe->Mn"]
    (sub, info), = rejected
    assert sub.label == "Fe->Ba"
    assert "radius" in info["reason"]
    # Ba2+ VI 1.35 vs Fe2+ HS VI 0.78
    assert info["radius_mismatch"]["Fe2+->Ba2+"]["mismatch"] == pytest.approx(0.57 / 0.78, abs=1e-4)
    with pytest.raises(SubstitutionRejected, match="radius") as exc:
        apply_substitution(lfp, {"Fe": "Ba"})
    assert isinstance(exc.value, IonscreenError)
    assert exc.value.info["max_cation_mismatch"] > 0.7


def test_tight_tolerance_rejects_mn_to_fe(limn2o4):
    rejected = []
    out = enumerate_substitutions(
        limn2o4, cation_options={"Mn": ["Fe"]}, anion_options={}, radius_tolerance=0.01,
        rejected=rejected,
    )
    assert out == []
    assert rejected[0][0].label == "Mn->Fe"
    assert "4.7%" in rejected[0][1]["reason"]


# ------------------------------------------------------------------- duplicates


def _layered_rocksalt() -> Structure:
    """FeMnO2 rock salt with Fe and Mn in alternating (001) layers (L1_0-type order).

    The translation (1/2, 0, 1/2) maps the Fe layers onto the Mn layers, so exchanging
    Fe->Co, Mn->Ni gives the same structure as Fe->Ni, Mn->Co.
    """
    species = [Species("Fe", 2)] * 2 + [Species("Mn", 2)] * 2 + [Species("O", -2)] * 4
    coords = [
        (0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5),
        (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5), (0.5, 0.5, 0.5),
    ]
    return Structure(Lattice.cubic(4.35), species, coords)


def test_two_routes_to_the_same_structure_counted_once():
    host = _layered_rocksalt()
    rejected = []
    out = enumerate_substitutions(
        host,
        cation_options={"Fe": ["Co", "Ni"], "Mn": ["Co", "Ni"]},
        anion_options={},
        max_simultaneous=2,
        radius_tolerance=0.2,  # Mn2+ 0.83 -> Ni2+ 0.69 A is a 17 % mismatch
        rejected=rejected,
    )
    labels = [sub.label for sub, _, _ in out]
    # 4 single + 4 double exchanges; Fe->Ni, Mn->Co duplicates Fe->Co, Mn->Ni
    assert "Fe->Co, Mn->Ni" in labels
    assert "Fe->Ni, Mn->Co" not in labels
    assert len(labels) == 7
    kept = _by_label(out)["Fe->Co, Mn->Ni"][1]
    assert kept["equivalent_routes"] == ["Fe->Ni, Mn->Co"]
    dup = {sub.label: info["reason"] for sub, info in rejected}
    assert "duplicate of Fe->Co, Mn->Ni" in dup["Fe->Ni, Mn->Co"]


def test_swap_equivalent_to_parent_is_dropped():
    host = _layered_rocksalt()
    rejected = []
    out = enumerate_substitutions(
        host, cation_options={"Fe": ["Mn"], "Mn": ["Fe"]}, anion_options={},
        max_simultaneous=2, rejected=rejected,
    )
    labels = [sub.label for sub, _, _ in out]
    assert labels == ["Fe->Mn", "Mn->Fe"]  # MnO and FeO rock salt
    assert {sub.label: info["reason"] for sub, info in rejected} == {
        "Fe->Mn, Mn->Fe": "equivalent to the parent structure"
    }


# ---------------------------------------------------------- every output is balanced


@pytest.mark.parametrize("pid", ["LiMn2O4", "MgCr2O4", "LiFePO4", "LiCoO2", "TiS2", "V2O5"])
def test_every_output_is_charge_balanced_and_documented(pid):
    host = get_prototype(pid).build("native")
    out = enumerate_substitutions(host, max_simultaneous=2)
    assert out
    for sub, new, info in out:
        assert abs(_net_charge(new)) < 1e-6, sub.label
        assert len(new) == len(host)
        for key in ("substitution", "rescale_factor", "radius_mismatch", "parent_formula"):
            assert key in info
        assert info["substitution"] == sub.label
        assert info["parent_formula"] == host.composition.reduced_formula
        assert 0.8 < info["rescale_factor"] < 1.4
        assert new.volume == pytest.approx(host.volume * info["volume_factor"], rel=1e-5)
        assert new.composition.reduced_formula == info["formula"]


# -------------------------------------------------------------------------- errors


def test_undecorated_input_raises():
    host = get_prototype("LiMn2O4").build("native").remove_oxidation_states()
    with pytest.raises(OxidationStateError, match="oxidation states"):
        enumerate_substitutions(host)
    with pytest.raises(OxidationStateError):
        apply_substitution(host, {"Mn": "Fe"})


def test_bad_requests_raise(limn2o4):
    with pytest.raises(StructureValidationError, match="not an element"):
        enumerate_substitutions(limn2o4, cation_options={"Mn": ["Qq"]})
    with pytest.raises(StructureValidationError, match="not an element"):
        enumerate_substitutions(limn2o4, anion_options={"Oo": ["S"]})
    with pytest.raises(StructureValidationError, match="anion_options"):
        enumerate_substitutions(limn2o4, cation_options={"O": ["S"]})
    with pytest.raises(StructureValidationError, match="max_simultaneous"):
        enumerate_substitutions(limn2o4, max_simultaneous=0)
    with pytest.raises(StructureValidationError, match="radius_tolerance"):
        enumerate_substitutions(limn2o4, radius_tolerance=-0.1)
    with pytest.raises(SubstitutionRejected, match="not in"):
        apply_substitution(limn2o4, {"Co": "Fe"})
    charged = limn2o4.copy()
    charged.replace_species({Species("Li", 1): Species("Mg", 2)})  # Mg2+ with Mn3.5+: +8 e
    with pytest.raises(StructureValidationError, match="not charge balanced"):
        enumerate_substitutions(charged)


def test_options_for_absent_elements_are_skipped(limn2o4):
    # default options name Fe, Co, ... which LiMn2O4 does not contain: only Mn and O options run
    out = enumerate_substitutions(limn2o4)
    assert {sub.label for sub, _, _ in out} == {
        "Mn->Fe", "Mn->Co", "Mn->Ni", "Mn->Cr", "Mn->V", "Mn->Ti", "O->S", "O->Se"
    }
    assert enumerate_substitutions(limn2o4, cation_options={}, anion_options={}) == []
