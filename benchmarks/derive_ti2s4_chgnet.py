"""Where the built-in thiospinel ``Ti2S4`` prototype's numbers come from: a CHGNet relaxation.

No refinement of spinel CuTi2S4 or of c-Ti2S4 (its Cu-free framework) could be read on this
project's machines, so the prototype's cubic lattice parameter and S 32e parameter are
computed here, not measured. The spinel structure type is fixed by the literature: Cu+ on the
tetrahedral 8a sites, Ti on the octahedral 16d sites, S on 32e (Fd-3m, origin choice 2; e.g.
Saidi, Abrahams & Bruce, Mater. Res. Bull. 25 (1990) 533, for Cu on 8a in Cu0.07Ti2.05S4).
CuTi2S4 (and, for comparison, the empty Ti2S4 and MgTi2S4) is relaxed with CHGNet 0.3.0 with
its space group held (ASE ``FixSymmetry``) and the cell free (``FrechetCellFilter``), from two
different starting points that must agree. Run (needs the ``mlip`` extra):
``python3 benchmarks/derive_ti2s4_chgnet.py``; writes ``benchmarks/out/ti2s4_chgnet.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from ionscreen.screening.mlip import calculator_factory

OUT = Path(__file__).parent / "out"
FMAX = 0.002  # eV/Å; FixSymmetry leaves only a and x free, so this converges both tightly


def spinel(a: float, x: float, a_site: str | None) -> Structure:
    """Spinel A Ti2 S4 (origin choice 2): A on 8a, Ti on 16d, S on 32e (x, x, x)."""
    species, coords = ["Ti", "S"], [[0.5, 0.5, 0.5], [x, x, x]]
    if a_site:
        species.append(a_site)
        coords.append([0.125, 0.125, 0.125])
    return Structure.from_spacegroup("Fd-3m:2", Lattice.cubic(a), species, coords)


def relax(start: Structure, calc) -> tuple[Structure, int]:
    prim = SpacegroupAnalyzer(start, symprec=1e-4).get_primitive_standard_structure()
    atoms = AseAtomsAdaptor.get_atoms(prim)
    atoms.calc = calc
    atoms.set_constraint(FixSymmetry(atoms, symprec=1e-4))
    opt = BFGS(FrechetCellFilter(atoms), logfile=None)
    opt.run(fmax=FMAX, steps=500)
    s = AseAtomsAdaptor.get_structure(atoms)
    conv = SpacegroupAnalyzer(s, symprec=1e-3).get_refined_structure()
    return conv, opt.get_number_of_steps()


def describe(conv: Structure) -> dict:
    """Cubic a, the S 32e x in origin choice 2 and the bond lengths of a refined spinel cell."""
    sga = SpacegroupAnalyzer(conv, symprec=1e-3)
    a = conv.lattice.a
    ti = np.array([st.frac_coords for st in conv if st.specie.symbol == "Ti"])
    if np.any(np.all(np.abs(ti - 0.5) < 1e-3, axis=1)):
        shift = 0.0  # origin choice 2: Ti 16d at (1/2, 1/2, 1/2)
    elif np.any(np.all(np.abs(ti - 0.625) < 1e-3, axis=1)):
        shift = -0.125  # origin choice 1: Ti 16d at (5/8, 5/8, 5/8)
    else:
        raise RuntimeError("refined cell is in neither origin choice of Fd-3m")
    s_xxx = [st.frac_coords[0] for st in conv if st.specie.symbol == "S"
             and np.allclose(st.frac_coords, st.frac_coords[0], atol=1e-4)]
    x = min(((v + shift) % 1.0 for v in s_xxx), key=lambda v: abs(v - 0.25))
    out = {"spacegroup": sga.get_space_group_symbol(), "a": round(a, 5), "x_S_origin2": round(float(x), 5),
           "density_g_cm3": round(float(conv.density), 4), "formula": conv.composition.reduced_formula}
    for el in ("Ti", "Cu", "Mg"):
        if el in conv.composition:
            i = next(k for k, st in enumerate(conv) if st.specie.symbol == el)
            d = [n.nn_distance for n in conv.get_neighbors(conv[i], 3.2) if n.specie.symbol == "S"]
            out[f"{el}-S"] = round(min(d), 4)
            out[f"{el}_coordination"] = len(d)
    return out


def main() -> None:
    factory = calculator_factory("chgnet", threads=1)
    calc = factory()
    report: dict = {"calculator": factory.identity, "fmax_eV_A": FMAX, "relaxations": {}}
    for label, a_site in (("CuTi2S4", "Cu"), ("Ti2S4", None), ("MgTi2S4", "Mg")):
        runs = []
        for a0, x0 in ((9.9, 0.255), (10.3, 0.245)):  # two starts on either side
            conv, n = relax(spinel(a0, x0, a_site), calc)
            runs.append({"start": {"a": a0, "x": x0}, "steps": n, **describe(conv)})
        report["relaxations"][label] = runs
        da = abs(runs[0]["a"] - runs[1]["a"])
        dx = abs(runs[0]["x_S_origin2"] - runs[1]["x_S_origin2"])
        print(f"{label}: a = {runs[0]['a']:.4f} / {runs[1]['a']:.4f} Å, x(S) = {runs[0]['x_S_origin2']:.5f} / "
              f"{runs[1]['x_S_origin2']:.5f}, density {runs[0]['density_g_cm3']:.3f} g/cm3 "
              f"(two starts differ by {da:.4f} Å and {dx:.5f})")
    OUT.mkdir(exist_ok=True)
    (OUT / "ti2s4_chgnet.json").write_text(json.dumps(report, indent=1))
    print(f"written to {OUT / 'ti2s4_chgnet.json'}")


if __name__ == "__main__":
    main()
