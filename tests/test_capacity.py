"""Capacity descriptors (screening/descriptors.py) against hand arithmetic.

Convention under test: capacity per mass of the discharged (ion-containing) formula,
Q = n_e * F / (3.6 * M) = n_e * 26801.48 / M mAh/g, and volumetric capacity from the
discharged density. Atomic masses used by hand (g/mol, as in pymatgen): Li 6.941,
Fe 55.845, P 30.973762, O 15.9994, Mg 24.305, Mn 54.938045, Mo 95.94, S 32.065, Zn 65.409,
C 12.0107, H 1.00794, N 14.0067, V 50.9415.
"""

from __future__ import annotations

import pytest
from pymatgen.core import Composition

from ionscreen.errors import IonscreenError, OxidationStateError, UnsupportedIonError
from ionscreen.screening.descriptors import (
    AVOGADRO,
    FARADAY,
    MAH_PER_MOL_ELECTRONS,
    DescriptorError,
    capacity_for_ion,
    gravimetric_capacity,
    max_ions_from_redox,
    redox_floor,
    volumetric_capacity,
)
from ionscreen.structures.prototypes import get_prototype

LI, FE, P, OX = 6.941, 55.845, 30.973762, 15.9994
MG, MN, MO, S = 24.305, 54.938045, 95.94, 32.065
ZN, C, H, N, V = 65.409, 12.0107, 1.00794, 14.0067, 50.9415

MAH_PER_MOL = 96485.33212 / 3.6  # 26801.48 mAh per mole of electrons


def test_constants():
    assert FARADAY == 96485.33212
    assert MAH_PER_MOL_ELECTRONS == pytest.approx(26801.48, abs=0.01)
    # e = F / N_A
    assert FARADAY / AVOGADRO == pytest.approx(1.602176634e-19, rel=1e-9)


def test_lifepo4_gravimetric():
    m = LI + FE + P + 4 * OX  # 157.757 g/mol
    assert m == pytest.approx(157.757, abs=1e-3)
    hand = 1 * MAH_PER_MOL / m  # 169.9 mAh/g
    assert hand == pytest.approx(169.9, abs=0.05)
    assert gravimetric_capacity("LiFePO4", 1) == pytest.approx(hand, rel=1e-6)
    assert gravimetric_capacity(Composition("LiFePO4"), 1) == pytest.approx(169.9, abs=0.05)
    # per formula unit as written: 2 e- per Li2Fe2P2O8 is the same number
    assert gravimetric_capacity("Li2Fe2P2O8", 2) == pytest.approx(hand, rel=1e-9)


def test_mgmn2o4_gravimetric():
    # Mg into lambda-MnO2: 2 e- per MgMn2O4 (Mn4+ -> Mn3+)
    m = MG + 2 * MN + 4 * OX  # 198.18 g/mol
    assert m == pytest.approx(198.18, abs=0.01)
    hand = 2 * MAH_PER_MOL / m  # 270.5 mAh/g
    assert hand == pytest.approx(270.5, abs=0.05)
    assert gravimetric_capacity("MgMn2O4", 2) == pytest.approx(hand, rel=1e-6)


def test_chevrel_mg2mo6s8_discharged_vs_charged_basis():
    # 2 Mg2+ = 4 e- per Mo6S8. Discharged convention: M(Mg2Mo6S8) = 880.77 g/mol -> 121.7 mAh/g.
    # The often-quoted 128.8 mAh/g is per mass of the charged Mo6S8 (832.16 g/mol).
    m_dis = 2 * MG + 6 * MO + 8 * S
    m_chg = 6 * MO + 8 * S
    assert m_dis == pytest.approx(880.77, abs=0.01)
    assert 4 * MAH_PER_MOL / m_dis == pytest.approx(121.7, abs=0.05)
    assert 4 * MAH_PER_MOL / m_chg == pytest.approx(128.8, abs=0.05)
    assert gravimetric_capacity("Mg2Mo6S8", 4) == pytest.approx(4 * MAH_PER_MOL / m_dis, rel=1e-6)

    cap = capacity_for_ion("Mo6S8", "Mg", 2)
    assert cap["discharged_formula"] == "Mg2Mo6S8"
    assert cap["electrons"] == 4
    assert cap["ion"] == "Mg2+"
    assert cap["gravimetric_mAh_g"] == pytest.approx(121.7, abs=0.05)
    assert cap["gravimetric_mAh_g_charged_basis"] == pytest.approx(128.8, abs=0.05)
    assert cap["volumetric_mAh_cm3"] is None
    assert cap["volumetric_basis"].startswith("unavailable")


def test_coordination_polymer_formula():
    # MgZn(C10H14N4O8S4), 2 e- (one Mg2+ per formula)
    m = MG + ZN + 10 * C + 14 * H + 4 * N + 8 * OX + 4 * S
    # = 24.305 + 65.409 + 120.107 + 14.11116 + 56.0268 + 127.9952 + 128.26 = 536.214 g/mol
    assert m == pytest.approx(536.214, abs=1e-3)
    hand = 2 * MAH_PER_MOL / m  # 99.97 mAh/g
    assert hand == pytest.approx(99.97, abs=0.01)
    assert gravimetric_capacity("MgZn(C10H14N4O8S4)", 2) == pytest.approx(hand, rel=1e-6)
    cap = capacity_for_ion("Zn(C10H14N4O8S4)", "Mg2+", 1)
    assert cap["gravimetric_mAh_g"] == pytest.approx(hand, rel=1e-6)


def test_nh4_adds_n_and_h():
    # NH4+ into V2O5: NH4V2O5, 1 e-; M = 14.0067 + 4*1.00794 + 2*50.9415 + 5*15.9994 = 199.93
    m = N + 4 * H + 2 * V + 5 * OX
    cap = capacity_for_ion("V2O5", "NH4+", 1)
    assert cap["ion_charge"] == 1
    assert cap["molar_mass_discharged"] == pytest.approx(m, rel=1e-6)
    assert cap["gravimetric_mAh_g"] == pytest.approx(MAH_PER_MOL / m, rel=1e-6)


def test_volumetric_lifepo4_with_density():
    # 169.9 mAh/g * 3.6 g/cm3 = 611.6 mAh/cm3
    cap = capacity_for_ion("FePO4", "Li", 1, density=3.6)
    assert cap["discharged_formula"] == "LiFePO4"
    assert cap["gravimetric_mAh_g"] == pytest.approx(169.9, abs=0.05)
    assert cap["volumetric_mAh_cm3"] == pytest.approx(169.89 * 3.6, abs=0.5)
    assert cap["volumetric_mAh_cm3"] == pytest.approx(612, abs=1)
    assert cap["volumetric_basis"] == "given density of the discharged compound"


def test_volumetric_from_structure_matches_gravimetric_times_density():
    lfp = get_prototype("LiFePO4").build("native")  # Li4Fe4P4O16, a b c = 10.329 6.0065 4.6908
    volume = 10.329 * 6.0065 * 4.6908  # 291.02 A3
    assert lfp.volume == pytest.approx(volume, rel=1e-6)
    # density by hand: 4 formula units in the cell
    density = 4 * (LI + FE + P + 4 * OX) / (6.02214076e23 * volume * 1e-24)  # 3.601 g/cm3
    assert density == pytest.approx(3.60, abs=0.01)
    q_vol = volumetric_capacity(lfp, 4)
    assert q_vol == pytest.approx(gravimetric_capacity("LiFePO4", 1) * density, rel=1e-6)
    # closed form: n_e * 44504.8 / V[A3]
    assert q_vol == pytest.approx(4 * 44504.8 / volume, rel=1e-5)
    assert q_vol == pytest.approx(611.7, abs=0.1)


def test_capacity_for_ion_structure_estimates_density():
    # lambda-MnO2 (empty spinel, Mn16O32 per cell) + 8 Mg on the 8a sites = 8 MgMn2O4
    host = get_prototype("LiMn2O4").build(None)
    assert host.composition.reduced_formula == "MnO2"
    cap = capacity_for_ion(host, "Mg", 8)
    assert cap["per"] == "cell"
    assert cap["electrons"] == 16
    assert Composition(cap["discharged_formula"]).reduced_formula == "MgMn2O4"
    assert cap["gravimetric_mAh_g"] == pytest.approx(270.5, abs=0.05)
    # estimated: discharged mass in the charged volume
    rho = 8 * (MG + 2 * MN + 4 * OX) / (6.02214076e23 * host.volume * 1e-24)
    assert cap["density_g_cm3"] == pytest.approx(rho, rel=1e-6)
    assert cap["volumetric_mAh_cm3"] == pytest.approx(cap["gravimetric_mAh_g"] * rho, rel=1e-9)
    assert "estimated" in cap["volumetric_basis"]
    # same number as volumetric_capacity of the charged cell with 16 e-
    assert cap["volumetric_mAh_cm3"] == pytest.approx(volumetric_capacity(host, 16), rel=1e-9)


def test_max_ions_from_redox():
    # lambda-MnO2: 16 Mn4+ -> Mn2+ (ICSD floor) = 32 e- = 16 Mg2+; only 8 tetrahedral sites
    lmo = get_prototype("LiMn2O4").build(None)
    assert redox_floor("Mn") == 2
    assert max_ions_from_redox(lmo, "Mg", 2) == pytest.approx(16)
    assert max_ions_from_redox(lmo, "Mg", 2, ion_sites=8) == pytest.approx(8)
    # stopping at Mn3+: 16 e- = 8 Mg
    assert max_ions_from_redox(lmo, "Mg", 2, floor={"Mn": 3}) == pytest.approx(8)
    # FePO4: 4 Fe3+ -> Fe2+ = 4 Li per cell
    fp = get_prototype("LiFePO4").build(None)
    assert max_ions_from_redox(fp, "Li", 1) == pytest.approx(4)
    # LiMn2O4 (Mn3.5+): 16 * 1.5 / 2 = 12 Mg formally
    assert max_ions_from_redox(get_prototype("LiMn2O4").build("native"), "Mg", 2) == pytest.approx(12)
    # V2O5 (2 formula units per cell): common_oxidation_states would say V only 5+; the ICSD
    # floor is V2+ (4 V * 3 / 2 = 6 Mg), V3+ gives 4
    v2o5 = get_prototype("V2O5").build(None)
    assert max_ions_from_redox(v2o5, "Mg", 2) == pytest.approx(6)
    assert max_ions_from_redox(v2o5, "Mg", 2, floor={"V": 3}) == pytest.approx(4)


def test_errors():
    with pytest.raises(DescriptorError, match="chemical formula"):
        gravimetric_capacity("Xq2O", 1)
    with pytest.raises(DescriptorError, match="electrons"):
        gravimetric_capacity("LiFePO4", -1)
    with pytest.raises(DescriptorError, match="ion_charge"):
        capacity_for_ion("FePO4", "Li", 1, ion_charge=0)
    with pytest.raises(UnsupportedIonError):
        capacity_for_ion("FePO4", "Cu", 1)  # not a working ion, and no charge given
    cap = capacity_for_ion("FePO4", "Cu+", 1, ion_charge=1)  # explicit charge: any ion
    assert Composition(cap["discharged_formula"]) == Composition("CuFePO4")
    with pytest.raises(DescriptorError, match="density"):
        capacity_for_ion("FePO4", "Li", 1, density=0.0)
    host = get_prototype("LiMn2O4").build(None).remove_oxidation_states()
    with pytest.raises(OxidationStateError):
        max_ions_from_redox(host, "Mg", 2)
    assert issubclass(DescriptorError, IonscreenError)


def test_capacity_of_a_candidate_is_pure():
    """capacity(candidate): the discharged facts when the candidate has them, else the
    one-electron reduction of an empty host; the candidate is not modified."""
    from ionscreen.screening.descriptors import Capacity, capacity
    from ionscreen.structures.candidates import from_prototypes

    spinel = next(iter(from_prototypes(["Mg"], ["MgCr2O4"])))  # discharged: Mg on its sites
    before = spinel.to_dict()
    cap = capacity(spinel)
    assert spinel.to_dict() == before
    assert cap.mAh_g == pytest.approx(gravimetric_capacity(spinel.discharged_formula, spinel.electrons))
    assert cap.mAh_cm3 == pytest.approx(cap.mAh_g * spinel.discharged_density)
    assert cap.discharged_formula == "Mg8Cr16O32" and "taking 16 e-" in cap.note
    empty = next(iter(from_prototypes(["Mg"], ["TiS2"])))  # charged: Ti4+ -> Ti3+
    cap = capacity(empty)
    assert empty.discharged_formula is None and cap.note.startswith("empty host:")
    assert Composition(cap.discharged_formula) == Composition("Mg0.5TiS2")
    assert cap.mAh_g == pytest.approx(gravimetric_capacity(cap.discharged_formula, cap.electrons))
    assert Capacity.from_dict(cap.as_dict()) == cap
