"""Tests of the DI–M–L coordination-polymer builder (ionscreen.structures.polymers).

Geometry is checked here independently of the builder's own checks: distances are computed
with explicit periodic images, and the bonding graph comes from the construction (ligand
template + chelation + DI assignment, ``structure.properties["bonds"]``), never from distances.
"""

from __future__ import annotations

import itertools
from collections import deque
from functools import cache

import numpy as np
import pytest
from pymatgen.core import Composition, Species

from ionscreen.errors import IonscreenError, UnsupportedIonError
from ionscreen.structures import polymers as P

PAIRS = P.polymer_compositions()

#: Typical bond lengths (Å) the models are compared with (±10 %).
TYPICAL = {
    ("C", "C", "ring"): 1.39,
    ("C", "H"): 1.09,
    ("C", "N"): 1.42,
    ("N", "S"): 1.62,
    ("O", "S"): 1.44,
    ("C", "S"): 1.77,
    ("C", "F"): 1.33,
}
M_N_TYPICAL = 2.0
#: DI–O distances from the issue (six-coordinate DI bound to sulfonyl O)
DI_O_TYPICAL = {"Mg": 2.10, "Zn": 2.10, "Ca": 2.35, "Sr": 2.55, "Ba": 2.75}
TOL = 0.10

# independent non-bonded limits (pairs more than two bonds apart), as in the issue
HEAVY_MIN, H_HEAVY_MIN, H_H_MIN = 2.2, 1.9, 1.6


# --------------------------------------------------------------------------- helpers


def _images(lattice: np.ndarray) -> np.ndarray:
    n = np.array(list(itertools.product((-1, 0, 1), repeat=3)), float)
    return n @ lattice


def pair_distances(structure, i, j) -> np.ndarray:
    """Shortest periodic distance for each pair (i[k], j[k]) (images -1..1 in each direction)."""
    x = structure.cart_coords
    shifts = _images(structure.lattice.matrix)
    d = x[np.asarray(j)][:, None, :] + shifts[None] - x[np.asarray(i)][:, None, :]
    return np.sqrt((d * d).sum(-1)).min(axis=1)


def all_distances(structure) -> np.ndarray:
    x = structure.cart_coords
    shifts = _images(structure.lattice.matrix)
    d = x[None, :, None, :] + shifts[None, None] - x[:, None, None, :]
    r = np.sqrt((d * d).sum(-1))
    n = len(x)
    r[np.arange(n), np.arange(n), 13] = np.inf  # the atom itself (zero shift is index 13)
    return r.min(axis=2)


def graph_distance(structure, bonds, maxd: int = 3) -> np.ndarray:
    """Bond-count separation (capped at maxd) from the construction graph."""
    n = len(structure)
    nb = [[] for _ in range(n)]
    for i, j, _ in bonds:
        nb[i].append(j)
        nb[j].append(i)
    out = np.full((n, n), maxd, int)
    for s in range(n):
        out[s, s] = 0
        q = deque([s])
        while q:
            u = q.popleft()
            if out[s, u] + 1 >= maxd:
                continue
            for v in nb[u]:
                if out[s, v] > out[s, u] + 1:
                    out[s, v] = out[s, u] + 1
                    q.append(v)
    return out


def bond_problems(structure) -> list[str]:
    """Bonds of the construction graph farther than 10 % from their typical length."""
    bonds = P.polymer_bonds(structure)
    i = [b[0] for b in bonds]
    j = [b[1] for b in bonds]
    d = pair_distances(structure, i, j)
    di = structure.properties["provenance"]["di"]
    labels = structure.site_properties["template_label"]
    out = []
    for (a, b, kind), r in zip(bonds, d):
        ea, eb = sorted((structure[a].specie.symbol, structure[b].specie.symbol))
        if kind == "M-N":
            ref = M_N_TYPICAL
        elif kind == "DI-O":
            ref = DI_O_TYPICAL[di]
        elif (ea, eb) == ("C", "C"):
            ref = TYPICAL[("C", "C", "ring")]
        else:
            ref = TYPICAL[(ea, eb)]
        if abs(r - ref) > TOL * ref:
            out.append(f"{kind} {labels[a]}-{labels[b]} {r:.3f} vs {ref}")
    return out


def clash_problems(structure) -> list[str]:
    bonds = P.polymer_bonds(structure)
    gd = graph_distance(structure, [b for b in bonds if b[2] != "DI-O"])
    r = all_distances(structure)
    sym = np.array([s.specie.symbol for s in structure])
    role = np.array(structure.site_properties["role"])
    is_h = sym == "H"
    lig = role == "L"
    out = []
    iu = np.triu_indices(len(structure), 1)
    far = gd[iu] > 2
    both_lig = lig[iu[0]] & lig[iu[1]]
    hh = is_h[iu[0]] & is_h[iu[1]]
    hx = is_h[iu[0]] ^ is_h[iu[1]]
    lim = np.where(hh, H_H_MIN, np.where(hx, H_HEAVY_MIN, HEAVY_MIN))
    bad = far & both_lig & (r[iu] < lim)
    for k in np.where(bad)[0][:5]:
        out.append(f"{sym[iu[0][k]]}{iu[0][k]}-{sym[iu[1][k]]}{iu[1][k]} {r[iu][k]:.2f}")
    # metals: nothing but their own donors within 2.3 Å; cations apart
    for m in np.where(role != "L")[0]:
        near = np.where((r[m] < 2.3) & (gd[m] > 1))[0]
        if role[m] == "DI":
            near = [k for k in near if sym[k] != "O"]
        out += [f"{sym[m]}{m} close to {sym[k]}{k} {r[m, k]:.2f}" for k in near]
        metals = np.where((role != "L") & (r[m] < 3.2))[0]
        out += [f"cations {m},{k} {r[m, k]:.2f}" for k in metals]
    return out


def di_shells(structure) -> list[np.ndarray]:
    r = all_distances(structure)
    sym = np.array([s.specie.symbol for s in structure])
    role = np.array(structure.site_properties["role"])
    return [np.sort(r[k][sym == "O"]) for k in np.where(role == "DI")[0]]


def m_shells(structure):
    """Per M: indices of its five nearest non-H atoms, and the distance matrix."""
    r = all_distances(structure)
    role = np.array(structure.site_properties["role"])
    heavy = np.array([site.specie.symbol != "H" for site in structure])
    rh = np.where(heavy[None, :], r, np.inf)
    return [np.argsort(rh[k])[:5] for k in np.where(role == "M")[0]], r


def net_charge(structure) -> float:
    return float(sum(site.specie.oxi_state for site in structure))


@cache
def ordered(di: str, m: str, ligand: str = "PTtSA"):
    return P.build_ordered(di, m, ligand)


@cache
def disordered(di: str, m: str, ligand: str = "PTtSA", seed: int = 7):
    return tuple(P.build_disordered(di, m, ligand, n_models=2, seed=seed, cells=(1, 2, 1)))


def assert_model_ok(s):
    di = s.properties["provenance"]["di"]
    r0 = DI_O_TYPICAL[di]
    assert bond_problems(s) == []
    assert clash_problems(s) == []
    for shell in di_shells(s):
        assert np.all(np.abs(shell[:6] - r0) <= TOL * r0), shell[:7]
        assert int((shell <= 1.15 * r0).sum()) == 6, shell[:8]
    (nearest, r) = m_shells(s)
    sym = [site.specie.symbol for site in s]
    for k, idx in zip(np.where(np.array(s.site_properties["role"]) == "M")[0], nearest):
        assert [sym[i] for i in idx[:4]] == ["N"] * 4
        assert np.all(np.abs(r[k, idx[:4]] - M_N_TYPICAL) <= TOL * M_N_TYPICAL)
        assert r[k, idx[4]] > 2.6  # four-coordinate: next non-H atom well beyond the N
    assert abs(net_charge(s)) < 1e-9
    assert P.check_polymer(s).ok


# --------------------------------------------------------------------------- data and API


def test_compositions_are_the_25_pairs():
    assert len(PAIRS) == 25
    assert set(PAIRS) == {(d, m) for d in ("Mg", "Ca", "Sr", "Ba", "Zn")
                          for m in ("Zn", "Co", "Ni", "Mn", "Fe")}


def test_ligand_templates():
    names = P.list_ligands()
    assert "PTtSA" in names and len(names) >= 2
    for name in names:
        lig = P.get_ligand(name)
        assert lig.charge == -4
        assert sum(lig.oxidation_states) == pytest.approx(-4)
        assert lig.citation and lig.description
        assert all(lig.symbols[i] == "N" for pair in lig.metal_binding for i in pair)
        assert all(lig.symbols[i] == "O" for i in lig.cation_binding)
        assert set(P.DI_CATIONS) <= set(lig.packings)
    assert P.get_ligand("PTtSA").formula == "C10H14N4O8S4"
    assert P.get_ligand("pttsa").name == "PTtSA"


def test_formula_unit_mass_and_electrons():
    # by hand: Mg 24.305 + Zn 65.38 + C10 120.11 + H14 14.112 + N4 56.028 + O8 127.996 + S4 128.26
    assert P.formula_unit_mass("Mg", "Zn") == pytest.approx(536.2, abs=0.1)
    assert P.ELECTRONS_PER_FORMULA_UNIT == 2
    assert P.formula_unit_mass("Ba", "Zn") > P.formula_unit_mass("Mg", "Zn")


def test_unknown_inputs_raise_package_errors():
    with pytest.raises(UnsupportedIonError, match="choose one of"):
        P.build_ordered("Li", "Zn")
    with pytest.raises(IonscreenError, match="nodal metal"):
        P.build_ordered("Mg", "Cu")
    with pytest.raises(IonscreenError, match="unknown ligand"):
        P.build_ordered("Mg", "Zn", "DHBQ")


# --------------------------------------------------------------------------- ordered models


def test_ordered_mgzn_composition_by_hand():
    s = ordered("Mg", "Zn")
    # two formula units MgZn(C10H14N4O8S4) per cell
    assert s.composition.element_composition == Composition("Mg2Zn2C20H28N8O16S8")
    assert s.composition.reduced_formula == Composition("MgZnC10H14N4O8S4").reduced_formula
    assert s.properties["formula_units"] == 2
    # density = 2 * 536.2 g/mol / (N_A * V)
    rho = 2 * P.formula_unit_mass("Mg", "Zn") / (0.602214076 * s.volume)
    assert s.density == pytest.approx(rho, rel=1e-3)
    # oxidation states: DI and M +2, N -3, O -2, S +6, C and H 0
    states = {str(sp) for sp in s.composition}
    assert {"Mg2+", "Zn2+", "N3-", "O2-", "S6+"} <= states


@pytest.mark.parametrize("di,m", PAIRS)
def test_ordered_models(di, m):
    s = ordered(di, m)
    assert_model_ok(s)
    assert 1.3 <= s.density <= 2.3, s.density
    prov = s.properties["provenance"]
    assert prov["builder"] == "ionscreen.structures.polymers"
    assert (prov["di"], prov["m"], prov["ligand"]) == (di, m, "PTtSA")
    assert {"version", "seed", "model_index"} <= set(prov)
    # chain along a1, repeat = two (ligand + M): M-M across one ligand along the chain = a/2
    roles = np.array(s.site_properties["role"])
    ms = np.where(roles == "M")[0]
    a1 = s.lattice.matrix[0]
    d = s.cart_coords[ms[1]] - s.cart_coords[ms[0]]
    along = min(np.linalg.norm(d + k * a1) for k in (-1, 0, 1))
    assert along == pytest.approx(s.lattice.a / 2, abs=1e-6)
    assert np.allclose(a1[1:], 0.0)


def test_m_n_distance_follows_the_metal():
    rz = ordered("Ca", "Zn").lattice.a
    rm = ordered("Ca", "Mn").lattice.a
    assert rm > rz  # Mn-N 2.07 > Zn-N 2.00 lengthens the chain


# --------------------------------------------------------------------------- disordered models


#: Representative (DI, M) pairs for the disordered ensembles (all 25 build the same way):
#: same element as DI and M (Zn, Zn), the heaviest DI (Ba), and four different node metals
#: (Zn, Fe, Co, Mn — Mn has the longest M–N). Sr–Ni is built by the default-supercell test,
#: Mg–Fe by the second-ligand test.
DISORDERED_PAIRS = [("Zn", "Zn"), ("Ba", "Fe"), ("Mg", "Co"), ("Ca", "Mn")]


@pytest.mark.parametrize("di,m", DISORDERED_PAIRS)
def test_disordered_models(di, m):
    models = disordered(di, m)
    assert len(models) == 2
    for k, s in enumerate(models):
        assert_model_ok(s)
        prov = s.properties["provenance"]
        assert prov["seed"] == 7 and prov["model_index"] == k
        assert s.properties["formula_units"] == 4
        assert s.composition.reduced_composition == ordered(di, m).composition.reduced_composition
        assert 1.3 <= s.density <= 2.3, s.density
    # the two members differ, and differ from the ordered supercell
    assert not np.allclose(models[0].cart_coords, models[1].cart_coords, atol=0.05)


def test_disordered_reproducible_from_seed():
    a = P.build_disordered("Ca", "Co", n_models=1, seed=11, cells=(1, 2, 1))[0]
    b = P.build_disordered("Ca", "Co", n_models=1, seed=11, cells=(1, 2, 1))[0]
    c = P.build_disordered("Ca", "Co", n_models=1, seed=12, cells=(1, 2, 1))[0]
    assert np.array_equal(a.cart_coords, b.cart_coords)
    assert np.array_equal(a.lattice.matrix, b.lattice.matrix)
    assert not np.allclose(a.cart_coords, c.cart_coords, atol=0.05)


def test_disordered_default_supercell():
    s = P.build_disordered("Sr", "Ni", n_models=1, seed=3)[0]
    assert s.properties["formula_units"] == 8
    assert s.properties["provenance"]["cells"] == [1, 2, 2]
    assert_model_ok(s)


# --------------------------------------------------------------------------- second ligand


@pytest.mark.parametrize("di", P.DI_CATIONS)
def test_second_ligand_builds(di):
    s = ordered(di, "Co", "PTtFSA")
    assert_model_ok(s)
    assert s.composition.element_composition.reduced_composition == \
        Composition(f"{di}CoC10H2F12N4O8S4").reduced_composition
    assert 1.3 <= s.density <= 2.6
    states = {str(sp) for sp in s.composition}
    assert "F-" in states


def test_second_ligand_disordered():
    for s in disordered("Mg", "Fe", "PTtFSA"):
        assert_model_ok(s)


# --------------------------------------------------------------------------- the checks can fail


def test_checks_detect_broken_models():
    s = ordered("Mg", "Zn").copy()
    roles = s.site_properties["role"]
    di = roles.index("DI")
    # move a DI by 0.6 Å: its O shell breaks
    s.translate_sites([di], [0.6, 0.0, 0.0], frac_coords=False)
    assert not P.check_polymer(s).ok
    assert any(abs(shell[:6] - 2.10).max() > 0.21 for shell in di_shells(s))
    # stretch one S=O bond: the bond test fails
    t = ordered("Mg", "Zn").copy()
    bonds = P.polymer_bonds(t)
    i, j, _ = next(b for b in bonds if {t[b[0]].specie.symbol, t[b[1]].specie.symbol} == {"S", "O"})
    o = j if t[j].specie.symbol == "O" else i
    vec = t[o].coords - t[i if o == j else j].coords
    t.translate_sites([o], 0.3 * vec / np.linalg.norm(vec), frac_coords=False)
    assert bond_problems(t)
    # break charge balance: Mg2+ -> Mg+ on one site
    u = ordered("Mg", "Zn").copy()
    u.replace(roles.index("DI"), Species("Mg", 1))
    assert net_charge(u) == pytest.approx(-1.0)
    assert any("net charge" in p for p in P.check_polymer(u).problems)
