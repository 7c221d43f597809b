"""A generated corpus of bad and odd structure files (issue 15, point 4).

:func:`build_corpus` writes every file into a folder at test time (nothing large is committed)
and returns one :class:`Entry` per file with its category and what the file should give:

- ``"good"``: a valid host; ``ionscreen bvse ... --ion Mg`` must compute it (exit 0) and a
  screen must rank it;
- ``"bad"``: must be refused with a one-line error that names the problem (non-zero exit) and
  be a failure row of a screen;
- ``"odd"``: either is fine (e.g. a CIF cut after its last atom is still a valid file), but never
  a traceback, a hang or a NaN.

The good hosts are built from the package's own prototypes, so the corpus follows the library.
"""

from __future__ import annotations

import gzip
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter
from pymatgen.io.vasp import Poscar

from ionscreen.structures.prototypes import get_prototype

GOOD_PROTOTYPES = ("TiO2-rutile", "MnO2-beta", "TiS2", "TiO2-anatase")


@dataclass(frozen=True)
class Entry:
    path: Path
    category: str
    expect: str  # "good" | "bad" | "odd"

    @property
    def name(self) -> str:
        return self.path.name


class _Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: list[Entry] = []
        root.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, content: str | bytes | None, category: str, expect: str) -> Path:
        path = self.root / name
        assert not path.exists() and not path.is_symlink(), name
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        self.entries.append(Entry(path, category, expect))
        return path

    def add_structure(self, name: str, st: Structure, category: str, expect: str) -> Path:
        return self.add(name, _text(st, name), category, expect)


def _text(st: Structure, name: str) -> str:
    if name.endswith(".cif"):
        return str(CifWriter(st))
    if name.endswith(".vasp") or name.startswith("POSCAR"):
        return Poscar(st).get_str(significant_figures=8)
    raise ValueError(name)


def _poscar(lattice: str, species: str, counts: str, coords: list[str], scale: str = "1.0",
            mode: str = "Direct") -> str:
    return "\n".join(["corpus", scale, lattice, species, counts, mode, *coords]) + "\n"


def _cif(cell: tuple[str, ...], sites: list[tuple[str, ...]], extra: str = "",
         occupancy: bool = False, oxi: dict[str, str] | None = None, symops: str | None = None) -> str:
    a, b, c, al, be, ga = cell
    lines = ["data_corpus", f"_cell_length_a {a}", f"_cell_length_b {b}", f"_cell_length_c {c}",
             f"_cell_angle_alpha {al}", f"_cell_angle_beta {be}", f"_cell_angle_gamma {ga}",
             "_symmetry_space_group_name_H-M 'P 1'", "loop_", "_symmetry_equiv_pos_as_xyz",
             symops or "'x, y, z'"]
    if oxi:
        lines += ["loop_", "_atom_type_symbol", "_atom_type_oxidation_number"]
        lines += [f"{k} {v}" for k, v in oxi.items()]
    cols = ["_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x",
            "_atom_site_fract_y", "_atom_site_fract_z"] + (["_atom_site_occupancy"] if occupancy else [])
    lines += ["loop_", *cols]
    lines += [" ".join(s) for s in sites]
    return "\n".join(lines) + "\n" + extra


# rutile TiO2 in P1 (a = 4.594, c = 2.959), the base of the hand-written CIF variants
_RUTILE_CELL = ("4.594", "4.594", "2.959", "90", "90", "90")
_RUTILE_SITES = [
    ("Ti1", "Ti", "0.0", "0.0", "0.0"), ("Ti2", "Ti", "0.5", "0.5", "0.5"),
    ("O1", "O", "0.3053", "0.3053", "0.0"), ("O2", "O", "0.6947", "0.6947", "0.0"),
    ("O3", "O", "0.8053", "0.1947", "0.5"), ("O4", "O", "0.1947", "0.8053", "0.5"),
]
_RUTILE_LATTICE = "4.594 0 0\n0 4.594 0\n0 0 2.959"
_RUTILE_FRAC = ["0 0 0", "0.5 0.5 0.5", "0.3053 0.3053 0", "0.6947 0.6947 0",
                "0.8053 0.1947 0.5", "0.1947 0.8053 0.5"]


def _rutile_poscar(**kw: str) -> str:
    args = {"lattice": _RUTILE_LATTICE, "species": "Ti O", "counts": "2 4", "coords": _RUTILE_FRAC}
    args.update(kw)
    return _poscar(**args)  # type: ignore[arg-type]


def _cubic(symbols: list[str], frac: list[list[float]], a: float) -> Structure:
    return Structure(Lattice.cubic(a), symbols, frac)


# --------------------------------------------------------------------------- the categories


def _good(c: _Corpus) -> dict[str, str]:
    texts: dict[str, str] = {}
    for pid in GOOD_PROTOTYPES:
        st = get_prototype(pid).build()
        for ext in (".cif", ".vasp"):
            name = f"good_{pid}{ext}"
            c.add_structure(name, st, "good", "good")
            texts[name] = (c.root / name).read_text()
    c.add_structure("POSCAR_good_rutile", get_prototype("TiO2-rutile").build(), "good", "good")
    c.add("good_rutile_crlf.cif", texts["good_TiO2-rutile.cif"].replace("\n", "\r\n"), "good", "good")
    c.add("good_rutile_upper.CIF", texts["good_TiO2-rutile.cif"], "good", "good")
    return texts


def _truncated(c: _Corpus, texts: dict[str, str]) -> None:
    for src, n in (("good_TiO2-rutile.cif", 45), ("good_TiS2.cif", 15)):
        data = texts[src].encode()
        offsets = sorted({int(x) for x in np.linspace(0, len(data) - 2, n)})
        for off in offsets:
            expect = "bad" if off < data.index(b"_atom_site_occupancy") else "odd"
            c.add(f"trunc_{Path(src).stem}_{off:05d}.cif", data[:off], "truncated CIF", expect)
    data = texts["good_TiO2-rutile.vasp"].encode()
    lines_end = [i for i, ch in enumerate(data) if ch == ord("\n")]
    coords_start = lines_end[7]  # after the "direct" line: the first coordinate line starts here
    for off in sorted({int(x) for x in np.linspace(0, len(data) - 2, 40)}):
        expect = "bad" if off <= coords_start else "odd"
        c.add(f"trunc_rutile_{off:05d}.vasp", data[:off], "truncated POSCAR", expect)


def _garbage(c: _Corpus) -> None:
    rng = random.Random(15)
    for i, name in enumerate(["garbage_a.cif", "garbage_b.cif", "garbage.vasp", "POSCAR_garbage",
                              "garbage.xyz", "garbage.extxyz", "CONTCAR_garbage", "garbage.poscar"]):
        c.add(name, bytes(rng.randrange(256) for _ in range(200 + 700 * i)), "binary garbage", "bad")
    c.add("zeros.cif", b"\0" * 4096, "binary garbage", "bad")
    c.add("gzipped_as.cif", gzip.compress(_cif(_RUTILE_CELL, _RUTILE_SITES).encode()),
          "binary garbage", "bad")
    c.add("latin1.cif", _cif(_RUTILE_CELL, _RUTILE_SITES).replace("data_corpus", "data_\xe9\xe8")
          .encode("latin-1"), "binary garbage", "odd")
    c.add("text_lorem.cif", "Lorem ipsum dolor sit amet\n" * 20, "binary garbage", "bad")
    c.add("text_lorem.vasp", "Lorem ipsum dolor sit amet\n" * 20, "binary garbage", "bad")
    c.add("html_error_page.cif", "<html><body>404 Not Found</body></html>\n", "binary garbage", "bad")


def _empty(c: _Corpus) -> None:
    for name in ("empty.cif", "empty.vasp", "POSCAR_empty", "empty.xyz", "empty.extxyz",
                 "CONTCAR", "empty.poscar"):
        c.add(name, b"", "empty", "bad")
    c.add("blank.cif", "\n\n   \n", "empty", "bad")
    c.add("blank.vasp", "   \n\n", "empty", "bad")
    c.add("only_data.cif", "data_nothing\n", "empty", "bad")
    c.add("no_atoms.cif", _cif(_RUTILE_CELL, []), "empty", "bad")
    c.add("zero_atoms.vasp", _rutile_poscar(counts="0 0", coords=[]), "empty", "bad")
    c.add("zero_atoms.extxyz", '0\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\n', "empty", "bad")


def _non_finite(c: _Corpus) -> None:
    for bad in ("nan", "NaN", "inf", "-inf", "1e308", "1e400"):
        cell = (bad, *_RUTILE_CELL[1:])
        c.add(f"cell_a_{bad}.cif", _cif(cell, _RUTILE_SITES), "NaN/inf", "bad")
    for bad in ("nan", "inf"):
        sites = [*_RUTILE_SITES[:-1], ("O4", "O", bad, "0.8053", "0.5")]
        c.add(f"coord_{bad}.cif", _cif(_RUTILE_CELL, sites), "NaN/inf", "bad")
        c.add(f"coord_{bad}.vasp", _rutile_poscar(coords=[*_RUTILE_FRAC[:-1], f"{bad} 0.8 0.5"]),
              "NaN/inf", "bad")
        c.add(f"lattice_{bad}.vasp", _rutile_poscar(lattice=f"{bad} 0 0\n0 4.594 0\n0 0 2.959"),
              "NaN/inf", "bad")
        c.add(f"scale_{bad}.vasp", _rutile_poscar(scale=bad), "NaN/inf", "bad")
        c.add(f"lattice_{bad}.extxyz",
              f'2\nLattice="{bad} 0 0 0 5 0 0 0 5" pbc="T T T"\nMg 0 0 0\nO 2.5 2.5 2.5\n',
              "NaN/inf", "bad")
        c.add(f"coord_{bad}.extxyz",
              f'2\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nMg 0 0 0\nO {bad} 2.5 2.5\n',
              "NaN/inf", "bad")
    c.add("coord_1e308.vasp", _rutile_poscar(coords=[*_RUTILE_FRAC[:-1], "1e308 0.8 0.5"]),
          "NaN/inf", "bad")
    c.add("cart_1e300.vasp", _rutile_poscar(coords=[*_RUTILE_FRAC[:-1], "1e300 0.8 0.5"],
                                            mode="Cartesian"), "NaN/inf", "bad")
    c.add("oxi_nan.cif", _cif(_RUTILE_CELL, _RUTILE_SITES, oxi={"Ti": "nan", "O": "-2"}),
          "NaN/inf", "bad")
    c.add("oxi_inf.cif", _cif(_RUTILE_CELL, _RUTILE_SITES, oxi={"Ti": "inf", "O": "-inf"}),
          "NaN/inf", "bad")


def _volume(c: _Corpus) -> None:
    c.add("coplanar.vasp", _rutile_poscar(lattice="4.594 0 0\n0 4.594 0\n4.594 4.594 0"),
          "zero/negative volume", "bad")
    c.add("zero_lattice.vasp", _rutile_poscar(lattice="0 0 0\n0 0 0\n0 0 0"),
          "zero/negative volume", "bad")
    c.add("zero_scale.vasp", _rutile_poscar(scale="0"), "zero/negative volume", "bad")
    c.add("left_handed.vasp", _rutile_poscar(lattice="4.594 0 0\n0 4.594 0\n0 0 -2.959"),
          "zero/negative volume", "bad")
    # a negative scale factor is VASP's way of giving the cell volume: a valid file
    c.add("negative_scale_is_volume.vasp", _rutile_poscar(scale=str(-4.594 * 4.594 * 2.959)),
          "zero/negative volume", "good")
    for tag, cell in (("zero_length", ("0", "4.594", "2.959", "90", "90", "90")),
                      ("negative_length", ("-4.594", "4.594", "2.959", "90", "90", "90")),
                      ("angle_0", ("4.594", "4.594", "2.959", "0", "90", "90")),
                      ("angle_180", ("4.594", "4.594", "2.959", "90", "180", "90")),
                      ("impossible_angles", ("4.594", "4.594", "2.959", "150", "150", "150")),
                      ("angle_negative", ("4.594", "4.594", "2.959", "90", "90", "-90"))):
        # cos(-90) = cos(90): a negative angle still gives a valid cell
        c.add(f"{tag}.cif", _cif(cell, _RUTILE_SITES), "zero/negative volume",
              "odd" if tag == "angle_negative" else "bad")
    c.add("tiny_cell.cif", _cif(("0.1", "0.1", "0.1", "90", "90", "90"), _RUTILE_SITES),
          "zero/negative volume", "bad")


def _overlap(c: _Corpus) -> None:
    c.add("duplicate_atom.vasp", _rutile_poscar(counts="2 5", coords=[*_RUTILE_FRAC, _RUTILE_FRAC[-1]]),
          "overlapping atoms", "bad")
    c.add("near_atoms.vasp", _rutile_poscar(counts="3 4", species="Ti O",
                                            coords=[*_RUTILE_FRAC[:2], "0.01 0 0", *_RUTILE_FRAC[2:]]),
          "overlapping atoms", "bad")
    c.add("overlap_across_boundary.cif",
          _cif(_RUTILE_CELL, [*_RUTILE_SITES, ("O5", "O", "0.999", "0.0", "0.0")]),
          "overlapping atoms", "bad")
    c.add("all_at_origin.vasp", _rutile_poscar(coords=["0 0 0"] * 6), "overlapping atoms", "bad")
    c.add("duplicated_site.cif", _cif(_RUTILE_CELL, [*_RUTILE_SITES, _RUTILE_SITES[2]]),
          "duplicated sites", "bad")
    c.add("duplicated_label.cif",
          _cif(_RUTILE_CELL, [*_RUTILE_SITES[:-1], ("O3", "O", "0.1947", "0.8053", "0.5")]),
          "duplicated sites", "odd")
    # symmetry operations that map sites onto copies of themselves: pymatgen merges them
    c.add("redundant_symops.cif", _cif(_RUTILE_CELL, _RUTILE_SITES, symops="'x, y, z'\n'x, y, z'"),
          "duplicated sites", "odd")
    c.add("symop_overlap.cif",
          _cif(_RUTILE_CELL, _RUTILE_SITES, symops="'x, y, z'\n'x+0.01, y, z'"),
          "overlapping atoms", "bad")


def _elements(c: _Corpus) -> None:
    for sym in ("Xx", "Qq", "X", "Va", "Zz", "Uuo", "D", "T"):
        sites = [*_RUTILE_SITES[:1], (f"{sym}1", sym, "0.5", "0.5", "0.5"), *_RUTILE_SITES[2:]]
        c.add(f"unknown_{sym}.cif", _cif(_RUTILE_CELL, sites), "unknown element", "bad" if sym not in "DT" else "odd")
    c.add("unknown_Qq.vasp", _rutile_poscar(species="Qq O"), "unknown element", "bad")
    c.add("numeric_species.vasp", _rutile_poscar(species="22 8"), "unknown element", "bad")
    c.add("no_species_line.vasp", "\n".join(["TiO2", "1.0", _RUTILE_LATTICE, "2 4", "Direct",
                                             *_RUTILE_FRAC]) + "\n", "unknown element", "bad")
    c.add("unknown_Qq.extxyz", '2\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nQq 0 0 0\nO 2.5 2.5 2.5\n',
          "unknown element", "bad")
    c.add("lowercase_symbols.cif",
          _cif(_RUTILE_CELL, [(lab, sym.lower(), *xyz) for lab, sym, *xyz in _RUTILE_SITES]),
          "unknown element", "odd")


def _no_anion(c: _Corpus) -> None:
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    bcc = [[0, 0, 0], [0.5, 0.5, 0.5]]
    for el, a in (("Cu", 3.61), ("Al", 4.05), ("Ni", 3.52), ("Au", 4.08)):
        c.add_structure(f"metal_{el}.cif", _cubic([el] * 4, fcc, a), "pure metal", "bad")
    for el, a in (("Fe", 2.87), ("Na", 4.29), ("W", 3.16)):
        c.add_structure(f"metal_{el}.vasp", _cubic([el] * 2, bcc, a), "pure metal", "bad")
    c.add_structure("intermetallic_NiAl.cif", _cubic(["Ni", "Al"], bcc, 2.88), "pure metal", "bad")
    c.add_structure("metal_Mg_hcp.cif", Structure(Lattice.hexagonal(3.21, 5.21), ["Mg", "Mg"],
                                                  [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
                    "pure metal", "bad")
    for el, a in (("Ar", 5.26), ("Kr", 5.72), ("Xe", 6.20), ("Ne", 4.46)):
        c.add_structure(f"noble_{el}.cif", _cubic([el] * 4, fcc, a), "noble gas", "bad")
    c.add_structure("noble_He.vasp", _cubic(["He"], [[0, 0, 0]], 4.0), "noble gas", "bad")
    c.add_structure("noble_mix_ArXe.cif", _cubic(["Ar", "Xe"], bcc, 5.0), "noble gas", "bad")
    c.add_structure("cations_only_MgTi.cif", _cubic(["Mg", "Ti"], bcc, 3.0), "no anion", "bad")
    c.add("no_anion_oxi.cif", _cif(_RUTILE_CELL, _RUTILE_SITES, oxi={"Ti": "4", "O": "2"}),
          "no anion", "bad")


def _single(c: _Corpus) -> None:
    for el in ("Mg", "O", "Ti", "H", "Na"):
        c.add_structure(f"single_{el}.cif", _cubic([el], [[0, 0, 0]], 4.0), "single atom", "bad")
    c.add_structure("single_O.vasp", _cubic(["O"], [[0.5, 0.5, 0.5]], 6.0), "single atom", "bad")
    c.add("single_Mg.extxyz", '1\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nMg 0 0 0\n',
          "single atom", "bad")


def _sizes(c: _Corpus) -> None:
    rutile = get_prototype("TiO2-rutile").build()
    big = Structure(Lattice.cubic(200.0), rutile.species,
                    [rutile.lattice.get_cartesian_coords(f) / 200.0 for f in rutile.frac_coords])
    c.add_structure("cell_200A_cubic.cif", big, "huge cell", "bad")
    c.add_structure("cell_200A_axis.vasp",
                    Structure(Lattice.from_parameters(4.594, 4.594, 200.0, 90, 90, 90),
                              rutile.species, [[x, y, z * 2.959 / 200.0] for x, y, z in rutile.frac_coords]),
                    "huge cell", "odd")
    c.add("cell_1e6.cif", _cif(("1e6", "1e6", "1e6", "90", "90", "90"), _RUTILE_SITES),
          "huge cell", "bad")
    many = rutile.copy()
    many.make_supercell([5, 5, 7])  # 1,050 atoms, computed
    c.add_structure("supercell_1050_atoms.vasp", many, "thousands of atoms", "good")
    fcc = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    copper = _cubic(["Cu"] * 4, fcc, 3.61)
    copper.make_supercell([10, 10, 10])  # 4,000 atoms, refused (no anion)
    c.add_structure("metal_Cu_4000_atoms.vasp", copper, "thousands of atoms", "bad")


def _organics(c: _Corpus) -> None:
    benzene = np.array([[1.39 * np.cos(k * np.pi / 3), 1.39 * np.sin(k * np.pi / 3), 0] for k in range(6)])
    hydro = benzene * (2.47 / 1.39)
    st = Structure(Lattice.cubic(12.0), ["C"] * 6 + ["H"] * 6, np.vstack([benzene, hydro]) + 6.0,
                   coords_are_cartesian=True)
    c.add_structure("benzene_in_box.cif", st, "organic", "bad")
    c.add_structure("benzene_in_box.vasp", st, "organic", "bad")
    methane = Structure(Lattice.cubic(10.0), ["C", "H", "H", "H", "H"],
                        [[5, 5, 5], [5.63, 5.63, 5.63], [4.37, 4.37, 5.63], [4.37, 5.63, 4.37],
                         [5.63, 4.37, 4.37]], coords_are_cartesian=True)
    c.add_structure("methane_in_box.cif", methane, "organic", "bad")
    water = Structure(Lattice.cubic(10.0), ["O", "H", "H"],
                      [[5, 5, 5], [5.96, 5, 5], [4.76, 5.93, 5]], coords_are_cartesian=True)
    c.add_structure("water_in_box.cif", water, "organic", "odd")
    glycine = Structure(Lattice.cubic(12.0), ["N", "C", "C", "O", "O", "H", "H", "H", "H", "H"],
                        [[4.0, 6.0, 6.0], [5.4, 6.0, 6.0], [6.0, 7.4, 6.0], [5.3, 8.4, 6.0],
                         [7.3, 7.5, 6.0], [3.6, 6.9, 6.0], [3.6, 5.5, 6.8], [5.8, 5.4, 6.8],
                         [5.8, 5.4, 5.2], [7.6, 8.4, 6.0]], coords_are_cartesian=True)
    c.add_structure("glycine_in_box.cif", glycine, "organic", "odd")
    c.add_structure("graphite_like_C.cif", Structure(Lattice.hexagonal(2.46, 6.7), ["C"] * 4,
                                                     [[0, 0, 0.25], [0, 0, 0.75], [1 / 3, 2 / 3, 0.25],
                                                      [2 / 3, 1 / 3, 0.75]]), "organic", "bad")


def _occupancy(c: _Corpus) -> None:
    occ = [(*s, "1.0") for s in _RUTILE_SITES]
    for tag, value in (("half", "0.5"), ("tiny", "0.01"), ("zero", "0.0"), ("over", "1.5"),
                       ("negative", "-1"), ("nan", "nan"), ("text", "abc")):
        sites = [*occ[:1], (*_RUTILE_SITES[1], value), *occ[2:]]
        expect = "odd" if tag in ("over", "text") else "bad"
        c.add(f"occupancy_{tag}.cif", _cif(_RUTILE_CELL, sites, occupancy=True), "partial occupancy", expect)
    mixed = [*occ[:1], ("Ti2", "Ti", "0.5", "0.5", "0.5", "0.5"), ("V2", "V", "0.5", "0.5", "0.5", "0.5"),
             *occ[2:]]
    c.add("occupancy_mixed_TiV.cif", _cif(_RUTILE_CELL, mixed, occupancy=True), "partial occupancy", "bad")
    vac = [*occ[:2], *[(*s, "0.75") for s in _RUTILE_SITES[2:]]]
    c.add("occupancy_O_vacancies.cif", _cif(_RUTILE_CELL, vac, occupancy=True), "partial occupancy", "bad")


def _oxidation(c: _Corpus) -> None:
    for tag, oxi in (("ti_99", {"Ti": "99", "O": "-2"}), ("ti_1e308", {"Ti": "1e308", "O": "-2"}),
                     ("o_minus_50", {"Ti": "4", "O": "-50"}), ("unbalanced", {"Ti": "3", "O": "-2"}),
                     ("text", {"Ti": "four", "O": "-2"}), ("missing_O", {"Ti": "4"}),
                     ("ti_8", {"Ti": "8", "O": "-4"})):
        # bvse computes an unbalanced host (as told); a screen refuses it
        c.add(f"oxi_{tag}.cif", _cif(_RUTILE_CELL, _RUTILE_SITES, oxi=oxi), "huge/odd oxidation states",
              "odd" if tag in ("text", "missing_O", "unbalanced") else "bad")
    c.add("oxi_guess_fails_TiO5.vasp", _rutile_poscar(counts="1 5"), "huge/odd oxidation states",
          "bad")
    c.add("TiO_guessed_Ti2.vasp",
          _rutile_poscar(counts="3 3", coords=["0 0 0", "0.5 0.5 0.5", "0.5 0 0.5", *_RUTILE_FRAC[2:5]]),
          "huge/odd oxidation states", "odd")


def _cif_odd(c: _Corpus) -> None:
    block = _cif(_RUTILE_CELL, _RUTILE_SITES)
    c.add("two_blocks.cif", block + block.replace("data_corpus", "data_second"), "CIF structure", "bad")
    c.add("bad_symop.cif", _cif(_RUTILE_CELL, _RUTILE_SITES, symops="'q, r, s'"), "CIF structure", "bad")
    c.add("unknown_spacegroup.cif", block.replace("'P 1'", "'P 99 z'").replace(
        "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n", ""), "CIF structure", "odd")
    c.add("no_cell.cif", "\n".join(ln for ln in block.splitlines() if not ln.startswith("_cell")) + "\n",
          "CIF structure", "bad")
    c.add("no_coords.cif", block.replace("_atom_site_fract_z\n", "_atom_site_fract_q\n"),
          "CIF structure", "bad")
    c.add("cartesian_only.cif", block.replace("_atom_site_fract_", "_atom_site_Cartn_"),
          "CIF structure", "bad")
    c.add("bom.cif", "\ufeff" + block, "CIF structure", "odd")
    c.add("very_long_line.cif", block + "# " + "x" * 200_000 + "\n", "CIF structure", "odd")
    c.add("unterminated_quote.cif", block.replace("'P 1'", "'P 1"), "CIF structure", "odd")
    c.add("poscar_content.cif", _rutile_poscar(), "wrong content", "bad")
    c.add("cif_content.vasp", block, "wrong content", "bad")
    c.add("xyz_no_lattice.xyz", "2\ncomment\nMg 0 0 0\nO 2 0 0\n", "wrong content", "bad")
    c.add("xyz_two_frames.extxyz",
          '1\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nMg 0 0 0\n' * 2, "wrong content", "bad")
    c.add("xyz_pbc_false.extxyz",
          '2\nLattice="5 0 0 0 5 0 0 0 5" pbc="F F F"\nMg 0 0 0\nO 2.5 2.5 2.5\n', "wrong content", "bad")
    c.add("xyz_count_wrong.extxyz",
          '5\nLattice="5 0 0 0 5 0 0 0 5" pbc="T T T"\nMg 0 0 0\nO 2.5 2.5 2.5\n', "wrong content", "bad")
    c.add("poscar_counts_mismatch.vasp", _rutile_poscar(counts="2 9"), "wrong content", "bad")
    c.add("poscar_counts_negative.vasp", _rutile_poscar(counts="2 -4"), "wrong content", "bad")
    c.add("poscar_counts_text.vasp", _rutile_poscar(counts="two four"), "wrong content", "bad")


def _wrong_extension(c: _Corpus, texts: dict[str, str]) -> None:
    good = texts["good_TiO2-rutile.cif"]
    for name in ("rutile.txt", "rutile.json", "rutile", "rutile.cif.bak", "rutile.cif.gz", "rutile.pdb"):
        c.add(name, good, "wrong extension", "bad")


def _filesystem(c: _Corpus) -> None:
    root = c.root
    c.add("dir_named.cif", None, "directory named like a file", "bad")
    (root / "dir_named.cif").mkdir()
    c.add("POSCAR_dir", None, "directory named like a file", "bad")
    (root / "POSCAR_dir").mkdir()
    for name, target, expect in (("link_to_good.cif", "good_TiO2-rutile.cif", "good"),
                                 ("link_dangling.cif", "does_not_exist.cif", "bad"),
                                 ("link_loop_a.cif", "link_loop_b.cif", "bad"),
                                 ("link_loop_b.cif", "link_loop_a.cif", "bad"),
                                 ("link_self.cif", "link_self.cif", "bad"),
                                 ("link_to_dir.cif", "dir_named.cif", "bad"),
                                 ("link_to_devnull.cif", "/dev/null", "bad")):
        c.add(name, None, "symlink", expect)
        os.symlink(target, root / name)
    if os.geteuid() != 0:  # root reads every file: the permission check is moot
        p = c.add("unreadable.cif", (root / "good_TiO2-rutile.cif").read_text(), "permissions", "bad")
        p.chmod(0)


_CATEGORIES: list[Callable[[_Corpus], None]] = [
    _garbage, _empty, _non_finite, _volume, _overlap, _elements, _no_anion, _single, _sizes,
    _organics, _occupancy, _oxidation, _cif_odd, _filesystem,
]


def build_corpus(root: Path) -> list[Entry]:
    """Write the corpus into ``root`` (created); one Entry per file, in writing order."""
    c = _Corpus(Path(root))
    texts = _good(c)
    _truncated(c, texts)
    _wrong_extension(c, texts)
    for make in _CATEGORIES:
        make(c)
    return c.entries
