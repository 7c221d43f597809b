"""Tests of the softBV parameter table, element data and working-ion models (screening.params,
param_rows and ion_models; the re-exports of params and the one-way imports of the split)."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from ase.data import atomic_numbers, chemical_symbols
from ase.data import covalent_radii as ase_covalent_radii

from ionscreen.errors import (
    IonscreenError,
    MissingParameterError,
    UnsupportedIonError,
)
from ionscreen.screening.ion_models import ION_MODELS, ion_model, mobile_pair
from ionscreen.screening.param_rows import PairParams
from ionscreen.screening.params import DEFAULT_TABLE_PATH, ParamTable, load_table
from ionscreen.structures.ions import WORKING_IONS, get_working_ion, ion_label


@pytest.fixture()
def table() -> ParamTable:
    return load_table()


@pytest.fixture(scope="module")
def raw() -> dict:
    return json.loads(Path(DEFAULT_TABLE_PATH).read_text(encoding="utf-8"))


# -- the data file -------------------------------------------------------------------------


def test_row_counts(table, raw):
    assert len(raw["pairs"]) == 591
    assert sum(1 for r in raw["pairs"] if "rejected" in r) == 34
    assert len(table) == 557
    assert len(table.rejected) == 34
    assert raw["provenance"]["counts"] == {
        "pairs": 591, "usable": 557, "rejected": 34, "elements": len(raw["elements"]),
    }


def test_rows_unique_and_well_formed(raw):
    keys = [(r["cation"], r["cation_valence"], r["anion"], r["anion_valence"])
            for r in raw["pairs"]]
    assert len(keys) == len(set(keys))
    for r in raw["pairs"]:
        assert r["cation_valence"] > 0 > r["anion_valence"]
        assert r["b"] == pytest.approx(1.0 / r["alpha"], rel=1e-5)
        assert r["sources"], r
        # rejected exactly when alpha <= 0; the usable rows are exactly the ions wheel's rows
        assert ("rejected" in r) == (r["alpha"] <= 0)
        assert ("ions-0.5.1" in r["sources"]) == (r["alpha"] > 0)


def test_provenance(raw):
    prov = raw["provenance"]
    names = {s["name"]: s for s in prov["sources"]}
    assert names["bvlain"]["version"] == "0.25.1"
    assert names["ions"]["version"] == "0.5.1"
    assert all(s["license"] == "MIT" and len(s["sha256"]) == 64 for s in prov["sources"])
    assert any("IUCrJ 4 (2017) 614" in c["text"] for c in prov["citations"])
    assert prov["generated_by"] == "benchmarks/extract_softbv_table.py"


@pytest.mark.parametrize(
    ("cation", "cv", "anion", "av", "r0", "alpha", "d0", "r_min"),
    [
        # values as they are in bvlain-0.25.1 cation.pkl and ions-0.5.1 bvse_data.json
        ("Mg", 2, "O", -2, 1.48398, 1.953125, 1.575539, 1.956265),
        ("Li", 1, "O", -2, 1.17096, 1.937984, 0.98816, 1.940013),
        ("Mg", 2, "N", -3, 1.63729, 1.663894, 2.874771, 2.215919),
        ("Ag", 1, "Br", -1, 2.03699, 2.12766, 0.384726, 2.614612),
        ("K", 1, "O", -2, 1.94117, 2.293578, 0.34985, 2.766359),
    ],
)
def test_spot_values(table, cation, cv, anion, av, r0, alpha, d0, r_min):
    p = table.pair(cation, cv, anion, av)
    assert (p.r0, p.alpha, p.d0, p.r_min) == (r0, alpha, d0, r_min)
    assert p.b == pytest.approx(1.0 / alpha, rel=1e-6)
    assert p.nc is None and p.r_cutoff is None  # neither source gives Nc / cutoff


def test_d0_closed_form_s_p_block(table):
    """D0 = (b²/2)·14.4·|V_A V_X| / (Rmin·√(n_A n_X)) holds for every s/p-block cation row."""
    from pymatgen.core import Element

    checked = 0
    for p in table:
        if Element(p.cation).block not in ("s", "p"):
            continue
        n_a, n_x = table.element(p.cation).period, table.element(p.anion).period
        d0 = (p.b**2 / 2) * 14.4 * abs(p.cation_valence * p.anion_valence) / (
            p.r_min * math.sqrt(n_a * n_x))
        assert d0 == pytest.approx(p.d0, rel=5e-5), p.label()
        checked += 1
    assert checked == 209


def test_rmin_closed_form(table):
    """Rmin = (0.9185 + 0.2285·|σ_A − σ_X|)·R0 − b·ln(V_A/N_A) needs softness σ and Nc."""
    rows = [p for p in table if p.nc is not None]
    if not rows or not hasattr(table.element("Li"), "softness"):
        pytest.skip("bond softness sigma and reference Nc are in neither source wheel")
    for p in rows:  # pragma: no cover - runs once the data carries sigma and Nc
        s_a = table.element(p.cation).softness
        s_x = table.element(p.anion).softness
        expect = (0.9185 + 0.2285 * abs(s_a - s_x)) * p.r0 - p.b * math.log(
            p.cation_valence / p.nc)
        assert p.r_min == pytest.approx(expect, abs=2e-3), p.label()


_WHEELS = os.environ.get("IONSCREEN_SOFTBV_WHEELS")  # a dir holding unpacked bvlain/ and ions/


@pytest.mark.skipif(not _WHEELS, reason="set IONSCREEN_SOFTBV_WHEELS to the unpacked wheels")
def test_every_row_matches_source_wheels(raw):
    root = Path(_WHEELS)
    with open(root / "bvlain" / "bvlain" / "data" / "cation.pkl", "rb") as f:
        cation = pickle.load(f)  # noqa: S301 - the pinned wheel, checked by the extractor
    flat = {}
    for z1, a in cation.items():
        for v1, b in a.items():
            for z2, c in b.items():
                for v2, vals in c.items():
                    flat[(chemical_symbols[int(z1)], int(v1), chemical_symbols[int(z2)],
                          int(v2))] = {k: float(x) for k, x in vals.items()}
    ions = json.loads((root / "ions" / "ions" / "data" / "bvse_data.json").read_text())
    n_ions = sum(len(d) for e in ions.values() for v in e.values() for d in v.values())
    assert len(flat) == 591 and n_ions == 557
    for r in raw["pairs"]:
        src = flat[(r["cation"], r["cation_valence"], r["anion"], r["anion_valence"])]
        assert {k: r[k] for k in ("r0", "alpha", "d0", "r_min")} == src
        if "rejected" not in r:
            assert ions[r["cation"]][str(r["cation_valence"])][r["anion"]][
                str(r["anion_valence"])] == src


# -- rejected rows ---------------------------------------------------------------------------


def test_alpha_nonpositive_rows_are_rejected(table, raw):
    labels = dict(table.rejected)
    for label in ("Mg2+–Se2-", "Mg2+–Te2-", "Mg2+–I-", "Ca2+–I-", "Ca2+–Br-", "Dy3+–F-"):
        assert label in labels
        assert "alpha" in labels[label]
    assert all(p.alpha > 0 and p.d0 > 0 and p.r_min > 0 for p in table)
    # the reason for rejecting: Mg–Se would be strongly repulsive at a bonding distance
    row = next(r for r in raw["pairs"] if (r["cation"], r["anion"]) == ("Mg", "Se"))
    e = 0.5 * row["d0"] * ((math.exp(row["alpha"] * (row["r_min"] - 2.7)) - 1) ** 2 - 1)
    assert e == pytest.approx(340, abs=1)


@pytest.mark.parametrize(("anion", "av"), [("Se", -2), ("I", -1), ("Te", -2)])
def test_pair_refuses_rejected_row(table, anion, av):
    with pytest.raises(MissingParameterError) as exc:
        table.pair("Mg", 2, anion, av)
    msg = str(exc.value)
    assert f"Mg2+–{ion_label(anion, av)}" in msg
    assert "rejected" in msg and "alpha" in msg
    assert not table.has_pair("Mg", 2, anion, av)


def test_loader_rejects_unmarked_invalid_row(tmp_path, raw):
    doc = {"elements": raw["elements"], "pairs": [
        {"cation": "Mg", "cation_valence": 2, "anion": "O", "anion_valence": -2,
         "r0": 1.48398, "b": 0.512, "alpha": 1.953125, "d0": 1.575539, "r_min": 1.956265},
        {"cation": "Mg", "cation_valence": 2, "anion": "Se", "anion_valence": -2,
         "r0": 1.7043, "b": -0.708, "alpha": -1.412429, "d0": 4.725019, "r_min": 0.881992},
    ]}
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(doc))
    custom = load_table(str(path))
    assert len(custom) == 1
    assert [label for label, _ in custom.rejected] == ["Mg2+–Se2-"]
    with pytest.raises(MissingParameterError, match="alpha"):
        custom.pair("Mg", 2, "Se", -2)


# -- missing pairs and coverage ------------------------------------------------------------


def test_missing_pair_message_names_pair_and_options(table):
    assert table.pair("Mg", 2, "N", -3).r_min == 2.215919
    with pytest.raises(MissingParameterError) as exc:
        table.pair("Ca", 2, "N", -3)
    msg = str(exc.value)
    assert "no softBV bond-valence parameters for Ca2+–N3-" in msg
    assert "Ca2+ has parameters for: O2-, S2-, Se2-, F-, Cl-" in msg
    assert "add_pair" in msg and "load_table(path)" in msg
    assert "different working ion" in msg


def test_missing_pair_wrong_valence(table):
    with pytest.raises(MissingParameterError, match=r"Mg3\+–O2-.*rows exist for Mg2\+"):
        table.pair("Mg", 3, "O", -2)


def test_missing_pair_is_an_ionscreen_error(table):
    with pytest.raises(IonscreenError):
        table.pair("Zn", 2, "N", -3)


def test_coverage_per_notes(table):
    def anions(sym, v):
        return {a for a, _ in table.anions_for(sym, v)}

    assert anions("Mg", 2) == {"O", "S", "F", "Cl", "Br", "N"}
    for sym, v in (("Ca", 2), ("Zn", 2), ("Al", 3)):
        assert {"O", "S", "Se", "F", "Cl"} <= anions(sym, v)
        assert "N" not in anions(sym, v)
    for sym, v in (("Zn", 2), ("Al", 3)):
        assert {"Br", "Te", "I"} <= anions(sym, v)
    assert table.anions_for("Mg", 2)[0] == ("O", -2)


def test_every_working_ion_has_oxide_rows(table):
    for ion in ION_MODELS.values():
        p = mobile_pair(table, ion, "O", -2)
        assert p.alpha > 0 and p.d0 > 0


def test_cations_for_mobile_anion(table):
    cats = table.cations_for("F", -1)
    assert ("La", 3) in cats and ("Mg", 2) in cats
    assert ("Dy", 3) not in cats  # rejected (alpha <= 0)


# -- user rows -----------------------------------------------------------------------------


def _row(**kw) -> PairParams:
    base = dict(cation="Ca", cation_valence=2, anion="N", anion_valence=-3, r0=1.9, b=0.6,
                alpha=1 / 0.6, d0=2.5, r_min=2.4)
    base.update(kw)
    return PairParams(**base)


def test_add_pair_validated(table):
    for bad in (dict(alpha=-1.0, b=-1.0), dict(d0=0.0), dict(r_min=-1.0), dict(b=0.3)):
        with pytest.raises(MissingParameterError, match="invalid user-supplied"):
            table.add_pair(_row(**bad))
    table.add_pair(_row())
    assert table.pair("Ca", 2, "N", -3).r_min == 2.4
    assert "Ca2+–N3-" in table.user_pairs
    with pytest.raises(IonscreenError, match="replace=True"):
        table.add_pair(_row(r_min=2.5))
    table.add_pair(_row(r_min=2.5), replace=True)
    assert table.pair("Ca", 2, "N", -3).r_min == 2.5


def test_add_pair_replaces_rejected_row(table):
    table.add_pair(_row(cation="Mg", anion="Se", anion_valence=-2))
    assert table.pair("Mg", 2, "Se", -2).d0 == 2.5
    assert "Mg2+–Se2-" not in dict(table.rejected)


def test_add_pair_does_not_leak_into_other_tables():
    t1 = load_table()
    t1.add_pair(_row())
    t2 = load_table()
    assert not t2.has_pair("Ca", 2, "N", -3)
    assert len(t2) == 557


# -- elements ------------------------------------------------------------------------------


def test_element_data(table):
    mg = table.element("Mg")
    assert (mg.z, mg.period) == (12, 3)
    assert mg.covalent_radius_softbv == {2: 1.36}
    assert mg.covalent_radius(2, "softbv") == 1.36
    assert mg.covalent_radius(2) == pytest.approx(ase_covalent_radii[12])
    assert table.element("O").covalent_radius(-2, "softbv") == 1.33
    assert table.element("li").period == 2
    for sym, el in table.elements.items():
        assert el.z == atomic_numbers[sym]
        assert el.covalent_radius_ase == pytest.approx(ase_covalent_radii[el.z], abs=1e-4)


def test_every_pair_has_element_data(table):
    for p in table:
        for sym, v in ((p.cation, p.cation_valence), (p.anion, p.anion_valence)):
            el = table.element(sym)
            assert v in el.covalent_radius_softbv, (sym, v)


def test_softbv_radius_missing_valence(table):
    with pytest.raises(MissingParameterError) as exc:
        table.element("Mg").covalent_radius(3, source="softbv")
    msg = str(exc.value)
    assert "Mg3+" in msg and 'source="ase"' in msg


def test_unknown_element(table):
    with pytest.raises(MissingParameterError, match="Pm"):
        table.element("Pm")


# -- working ions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label"),
    [("Mg", "Mg2+"), ("mg", "Mg2+"), ("Mg2+", "Mg2+"), ("MG2+", "Mg2+"), ("Zn^2+", "Zn2+"),
     ("Al3+", "Al3+"), ("NH4", "NH4+"), ("NH4+", "NH4+"), ("nh4+", "NH4+"),
     ("ammonium", "NH4+"), ("NH₄⁺", "NH4+"), ("Ca²⁺", "Ca2+"), ("li+", "Li+"), ("Na", "Na+"),
     ("Sr", "Sr2+"), ("Ba2+", "Ba2+"), ("magnesium", "Mg2+")],
)
def test_get_working_ion(text, label):
    assert get_working_ion(text).label() == label


@pytest.mark.parametrize("text", ["Mg+", "Mg3+", "K", "Fe2+", "NH42+", "", "Mg2"])
def test_unsupported_ion(text):
    with pytest.raises(UnsupportedIonError) as exc:
        get_working_ion(text)
    assert "Mg2+" in str(exc.value) and "NH4+" in str(exc.value)


def test_working_ion_set():
    assert set(WORKING_IONS) == {"Mg", "Ca", "Zn", "Al", "NH4", "Sr", "Ba", "Li", "Na"}
    assert list(ION_MODELS) == list(WORKING_IONS)
    for key, ion in ION_MODELS.items():
        assert ion.approximate == (key == "NH4")
        assert ion.model


def test_plain_ion_uses_table_row(table):
    ion = ion_model("Mg")
    assert mobile_pair(table, ion, "O", -2) == table.pair("Mg", 2, "O", -2)
    assert ion.period(table) == 3
    assert ion.covalent_radius(table, "softbv") == 1.36


def test_nh4_pseudo_ion(table):
    nh4 = ion_model("NH4+")
    assert nh4.approximate
    assert "approximate" in nh4.model and "hydrogen bonding" in nh4.model
    assert (nh4.element, nh4.charge) == ("K", 1)
    assert nh4.r_min_shift == pytest.approx(0.10)
    for anion, av in table.anions_for("K", 1):
        k = table.pair("K", 1, anion, av)
        p = mobile_pair(table, nh4, anion, av)
        assert p.r_min == pytest.approx(k.r_min + 0.10)
        assert p.r0 == pytest.approx(k.r0 + 0.10)
        assert (p.alpha, p.b, p.d0) == (k.alpha, k.b, k.d0)
        assert p.label() == f"NH4+–{ion_label(anion, av)}"
    assert nh4.covalent_radius(table, "ase") == pytest.approx(2.16)
    assert nh4.period(table) == 4
    assert nh4.as_dict()["approximate"] is True


def test_nh4_missing_pair_mentions_model(table):
    with pytest.raises(MissingParameterError) as exc:
        mobile_pair(table, ion_model("NH4"), "N", -3)
    msg = str(exc.value)
    assert "NH4+" in msg and "K+–N3-" in msg and "pseudo-ion" in msg


# -- the split: table (params) <- nitride <- ion_models, one home per name ---------------------

SPLIT_MODULES = ("param_rows", "params", "nitride", "ion_models")


@pytest.mark.parametrize("first", SPLIT_MODULES)
def test_each_module_imports_first_without_a_cycle(first):
    code = (f"import ionscreen.screening.{first}\n"
            "from ionscreen.screening.ion_models import NH4_RADIUS_SHIFT, ion_model\n"
            "from ionscreen.screening.params import *\n"
            "assert ion_model('NH4').r_min_shift == NH4_RADIUS_SHIFT\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_each_public_name_has_one_home():
    from ionscreen.screening import ion_models, nitride, param_rows, params

    homes: dict[str, str] = {}
    for mod in (param_rows, params, nitride, ion_models):
        for name in mod.__all__:
            assert name not in homes, f"{name} is public in {homes.get(name)} and {mod.__name__}"
            homes[name] = mod.__name__
