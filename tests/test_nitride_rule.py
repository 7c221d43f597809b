"""The nitride transfer rule (``--derive-nitride``): missing ion–N3- rows derived from ion–O2-.

Checked against the rows softBV does have (Li+, Mg2+, Sr2+: leave one out), the D0 closed form
on those rows, the flags every result carries, and the error that points to the option.
"""

from __future__ import annotations

import math

import pytest

from ionscreen.errors import MissingParameterError
from ionscreen.screening.bvse import BVSESettings, compute_landscape
from ionscreen.screening.ion_models import ion_model, mobile_pair
from ionscreen.screening.nitride import NITRIDE_RULE_CATIONS, derived_nitride_pair, nitride_rule
from ionscreen.screening.params import load_table
from ionscreen.structures.prototypes import get_prototype, host_for_ion

TABLE = load_table()


@pytest.mark.parametrize("cation,valence", NITRIDE_RULE_CATIONS)
def test_leave_one_out_reproduces_the_real_row(cation, valence):
    loo = TABLE.copy()
    loo.remove_pair(cation, valence, "N", -3)
    assert not loo.has_pair(cation, valence, "N", -3)
    rule = nitride_rule(loo)
    assert f"{cation}{valence}+" not in rule["fitted_on"] and len(rule["fitted_on"]) == 2
    d = derived_nitride_pair(loo, cation, valence, rule=rule)
    real = TABLE.pair(cation, valence, "N", -3)
    assert abs(d.r_min - real.r_min) < 0.10  # measured: 0.084 (Li), 0.016 (Mg), 0.068 (Sr) Å
    assert d.d0 == pytest.approx(real.d0, rel=0.15)  # measured: 11 %, 8 %, 4 %
    assert d.b == pytest.approx(real.b, rel=0.05)
    assert d.derived_from and "nitride transfer rule" in d.derived_from
    assert not d.validation_errors()


@pytest.mark.parametrize("cation,valence", NITRIDE_RULE_CATIONS)
def test_d0_closed_form_holds_on_the_real_rows(cation, valence):
    """D0 ∝ b²·|V_X|/Rmin (same period for O and N): what the rule uses to scale D0."""
    o, n = TABLE.pair(cation, valence, "O", -2), TABLE.pair(cation, valence, "N", -3)
    predicted = o.d0 * (n.b / o.b) ** 2 * 1.5 * (o.r_min / n.r_min)
    assert n.d0 == pytest.approx(predicted, rel=0.01)


def test_missing_row_error_points_to_the_option():
    with pytest.raises(MissingParameterError, match="--derive-nitride"):
        mobile_pair(TABLE, ion_model("Ca"), "N", -3)
    with pytest.raises(MissingParameterError, match="--derive-nitride"):
        mobile_pair(TABLE, ion_model("NH4"), "N", -3)
    # other missing anions get no such hint
    with pytest.raises(MissingParameterError) as exc:
        mobile_pair(TABLE, ion_model("Mg"), "Se", -2)  # rejected row (alpha <= 0)
    assert "--derive-nitride" not in str(exc.value)


def test_derived_rows_only_where_the_table_has_none():
    real = mobile_pair(TABLE, ion_model("Mg"), "N", -3, derive_nitride=True)
    assert real.derived_from is None and real == TABLE.pair("Mg", 2, "N", -3)
    ca = mobile_pair(TABLE, ion_model("Ca"), "N", -3, derive_nitride=True)
    assert ca.derived_from and ca.key == ("Ca", 2, "N", -3)
    # Ca-N longer than Ca-O by the rule's shift; Al-N shorter than Ca-N (smaller ion)
    assert ca.r_min == pytest.approx(TABLE.pair("Ca", 2, "O", -2).r_min + nitride_rule(TABLE)["delta_r_min"])
    al = mobile_pair(TABLE, ion_model("Al"), "N", -3, derive_nitride=True)
    assert al.r_min < ca.r_min
    # NH4+: the K+ row is derived, then the NH4 radius shift applies on top
    nh4 = mobile_pair(TABLE, ion_model("NH4"), "N", -3, derive_nitride=True)
    k = derived_nitride_pair(TABLE, "K", 1)
    assert nh4.cation == "NH4" and nh4.r_min > k.r_min and nh4.derived_from


def test_bvse_in_a_cyanide_host_with_derived_rows_is_flagged():
    s, _ = host_for_ion(get_prototype("PBA-MnCr"), "Ca")
    with pytest.raises(MissingParameterError):
        compute_landscape(s, "Ca", resolution=0.3, keep_grid=False)
    r = compute_landscape(s, "Ca", settings=BVSESettings(resolution=0.3, derive_nitride=True),
                          keep_grid=False)
    assert r.approximate
    assert "row derived (nitride transfer rule)" in r.model
    assert any(w.startswith("approximate parameters: Ca2+–N3- row derived") for w in r.warnings)
    assert r.parameters["species"]["N3-"]["derived_from"]
    assert math.isfinite(min(r.barriers.values()))
    # a host without N: the option changes nothing
    lfp = get_prototype("LiFePO4").build("native")
    a = compute_landscape(lfp, "Li", resolution=0.3, keep_grid=False)
    b = compute_landscape(lfp, "Li", settings=BVSESettings(resolution=0.3, derive_nitride=True),
                          keep_grid=False)
    assert a.barriers == b.barriers and not b.approximate


def test_screen_settings_carry_the_option():
    from ionscreen.workflows.plan import ScreenSpec

    assert ScreenSpec(ions=["Ca"], bvse={"derive_nitride": True}).bvse_settings()["derive_nitride"]
    assert not ScreenSpec(ions=["Ca"]).bvse_settings()["derive_nitride"]


def _li3n():
    """Li3N (P6/mmm, a = 3.648, c = 3.875 Å): every framework row is real, so only the working
    ion's N3- row decides whether the BVFF can be built."""
    from pymatgen.core import Lattice, Structure

    s = Structure.from_spacegroup("P6/mmm", Lattice.hexagonal(3.648, 3.875), ["Li", "Li", "N"],
                                  [[0, 0, 0.5], [1 / 3, 2 / 3, 0], [0, 0, 0]])
    s.add_oxidation_state_by_element({"Li": 1, "N": -3})
    return s


def test_bvff_model_derives_the_row_only_when_asked():
    from ionscreen.screening.calculators import BVFFModel
    from ionscreen.structures.convert import to_atoms

    atoms = to_atoms(_li3n(), charges=True)
    with pytest.raises(MissingParameterError, match="--derive-nitride"):
        BVFFModel.from_atoms(atoms, "Ca")
    m = BVFFModel.from_atoms(atoms, "Ca", derive_nitride=True)
    assert m.derived == ["Ca2+ (mobile)–N3-"]
    assert "Ca2+ (mobile)–N3- row derived by the nitride transfer rule (approximate)" in m.identity
    row = m.parameters["pairs"]["Ca2+ (mobile)–N3-"]
    ca = mobile_pair(TABLE, ion_model("Ca"), "N", -3, derive_nitride=True)
    assert (row["d0"], row["r_min"]) == (ca.d0, ca.r_min) and row["derived_from"] == ca.derived_from
    # real rows stay real and unlabelled
    mg = BVFFModel.from_atoms(atoms, "Mg", derive_nitride=True)
    assert mg.derived == [] and "derived" not in mg.identity
    # the option is for the working ion only: the PBA's cyanide C2+–N3- pair is still missing
    pba = to_atoms(host_for_ion(get_prototype("PBA-MnCr"), "Ca")[0], charges=True)
    with pytest.raises(MissingParameterError, match="C2\\+–N3-"):
        BVFFModel.from_atoms(pba, "Ca", derive_nitride=True)


def test_neb_with_a_derived_row_is_flagged_approximate():
    from ionscreen.screening.neb import NEBSettings, run_neb

    s = _li3n()
    fast = dict(images=3, steps=60, relax_host=False, fmax=0.2, fmax_pre=0.3)
    seed = compute_landscape(s, "Ca", settings=BVSESettings(resolution=0.2, derive_nitride=True))
    assert seed.approximate
    with pytest.raises(MissingParameterError, match="BVFF NEB not possible.*--derive-nitride"):
        run_neb(s, "Ca", "bvff", settings=NEBSettings(**fast), bvse=seed)
    rep = run_neb(s, "Ca", "bvff", settings=NEBSettings(**fast, derive_nitride=True), bvse=seed)
    assert rep.hops and rep.approximate and all(h.approximate for h in rep.hops)
    assert rep.barrier is not None  # measured 0.483 eV against BVSE 0.478 eV for the hop
    assert "Ca2+ (mobile)–N3- row derived" in rep.calculator
    assert rep.to_dict()["approximate"] is True
    assert "nitride transfer rule" in rep.hops[0].note
    # without a derived row nothing is flagged
    plain = run_neb(s, "Mg", "bvff", settings=NEBSettings(**fast, derive_nitride=True))
    assert not plain.approximate and "derived" not in plain.calculator


def test_screen_passes_the_option_to_the_bvff_neb_only():
    from ionscreen.workflows.plan import ScreenSpec

    assert ScreenSpec(ions=["Ca"], bvse={"derive_nitride": True}).neb_settings()["derive_nitride"]
    assert "derive_nitride" not in ScreenSpec(ions=["Ca"]).neb_settings()
    assert "derive_nitride" not in ScreenSpec(ions=["Ca"], bvse={"derive_nitride": True},
                                               neb_calculator="chgnet").neb_settings()
