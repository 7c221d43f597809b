"""Reading host structures (CIF, POSCAR, extxyz) and loading them for screening: read,
validate (:mod:`.validate`), decorate with oxidation states (:mod:`.oxidation`).

Everything a user can get wrong here (a missing or broken file, a disordered or overlapping
structure, oxidation states that cannot be guessed, a host without anions) raises one of the
package's own exceptions with a message that says what to change, so that a batch job can
record the reason and go on. Raw pymatgen / ASE tracebacks never escape.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from pymatgen.core import Element, Structure

from ionscreen.errors import (
    StructureReadError,
    StructureValidationError,
)

from .oxidation import assign_oxidation_states, check_charge_balance, first_line, require_anion
from .validate import validate_structure

__all__ = ["SUPPORTED_FORMATS", "StructureReadWarning", "load_host", "read_structure"]

#: What ``read_structure`` accepts, as shown in error messages.
SUPPORTED_FORMATS = (
    "CIF (*.cif)",
    "VASP POSCAR/CONTCAR (files named POSCAR*, CONTCAR*, *.vasp, *.poscar)",
    "extended XYZ with a Lattice (*.extxyz, *.xyz)",
)



# --------------------------------------------------------------------------- reading


def _detect_format(path: Path) -> str | None:
    """Map a file name to a parser; None if the name says nothing we know."""
    name = path.name.lower()
    if name.endswith((".cif", ".mcif")):  # a magnetic CIF is a CIF (pymatgen reads both)
        return "cif"
    if name.startswith(("poscar", "contcar")) or name.endswith((".vasp", ".poscar")):
        return "poscar"
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    return None


class StructureReadWarning(UserWarning):
    """A file was read, but its parser had remarks (e.g. stoichiometry, symmetry, occupancies
    rescaled). ``notes`` are the remarks, one line each; batch readers collect them per file
    (:func:`ionscreen.structures.candidates.from_files`) instead of printing them."""

    def __init__(self, path: Path, notes: list[str]) -> None:
        super().__init__(f"{path}: CIF parser notes: {'; '.join(notes)}")
        self.path, self.notes = path, notes


def _parser_notes(caught: list[warnings.WarningMessage]) -> list[str]:
    """The distinct lines of the warnings a parser gave (pymatgen repeats each remark under
    'Issues encountered while parsing CIF')."""
    notes: list[str] = []
    for w in caught:
        lines = [x.strip() for x in str(w.message).splitlines() if x.strip()]
        for k, line in enumerate(lines):
            if line.endswith(":"):  # a heading: the rest of this warning is its text
                lines[k:] = [" ".join(lines[k:])]
                break
        notes += [x for x in lines if not x.startswith("Issues encountered") and x not in notes]
    return notes


def _read_cif(path: Path) -> Structure:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structures = CifParser(path).parse_structures(primitive=False)
        except Exception as exc:  # noqa: BLE001 - any parser failure becomes one clear error
            notes = _parser_notes(caught)
            detail = f" (parser notes: {'; '.join(notes[:3])})" if notes else ""
            raise _ParseError("pymatgen CifParser", exc, detail) from None
    unparsed = [str(w.message) for w in caught if "Can't parse Element or Species" in str(w.message)]
    if unparsed:  # pymatgen then guesses the element from the label ('Va1' -> V): refuse
        raise StructureReadError(
            f"{path}: {unparsed[0].split('! ')[-1]}. Use element symbols of the periodic table "
            "in _atom_site_type_symbol."
        )
    if len(structures) > 1:
        raise StructureReadError(
            f"{path}: the CIF holds {len(structures)} structures; ionscreen reads one host per "
            "file. Split the data blocks into separate files."
        )
    structure = structures[0]
    notes = _parser_notes(caught)
    if "magmom" in structure.site_properties:  # a magnetic CIF: the moments are not JSON
        structure.remove_site_property("magmom")
        notes.append("magnetic moments read and dropped (ionscreen does not use them)")
    if notes:  # parsed, but with remarks: pass them on as one warning of this file
        warnings.warn(StructureReadWarning(path, notes), stacklevel=3)
    return structure


def _read_poscar(path: Path) -> Structure:
    from pymatgen.io.vasp import Poscar

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Poscar.from_file(path, check_for_potcar=False).structure
        except Exception as exc:  # noqa: BLE001
            raise _ParseError("pymatgen Poscar", exc) from None
    if any("cannot be determined" in str(w.message) for w in caught):
        # pymatgen then names the species H, He, Li, ... in order: never screen those
        raise StructureReadError(
            f"{path}: the POSCAR has no line of element symbols (VASP 4 style). Add one above "
            "the line of atom counts, e.g. 'Ti O'."
        )
    return structure


def _read_extxyz(path: Path) -> Structure:
    import ase.io

    from .convert import to_structure  # imported here: convert builds on this module

    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # noqa: BLE001
        raise _ParseError("ase.io extxyz reader", exc) from None
    if len(frames) != 1:
        raise StructureReadError(
            f"{path}: the file holds {len(frames)} frames; ionscreen reads one host per file. "
            "Write the frame you want on its own (ase.io.write(path, atoms))."
        )
    atoms = frames[0]
    if len(atoms) and (not all(atoms.pbc) or atoms.cell.rank < 3):
        raise StructureReadError(
            f"{path}: no periodic cell (pbc={[bool(x) for x in atoms.pbc]}, "
            f"cell rank {atoms.cell.rank}). "
            'Add a Lattice="ax ay az bx by bz cx cy cz" entry and pbc="T T T" to the comment '
            "line, or write the file with ase.io.write from an Atoms object that has a cell."
        )
    try:
        return to_structure(atoms)
    except Exception as exc:  # noqa: BLE001
        raise _ParseError("ionscreen.structures.convert.to_structure", exc) from None


class _ParseError(Exception):
    """Internal: a parser failed; read_structure adds the path and advice."""

    def __init__(self, parser: str, exc: BaseException, detail: str = "") -> None:
        super().__init__(parser)
        self.parser = parser
        self.reason = first_line(exc) + detail


_READERS = {"cif": _read_cif, "poscar": _read_poscar, "extxyz": _read_extxyz}


def read_structure(path: str | os.PathLike) -> Structure:
    """Read one host structure from CIF (also a magnetic CIF, *.mcif), POSCAR/CONTCAR/*.vasp
    or extended XYZ.

    Oxidation states in the file (CIF ``_atom_type_oxidation_number``, an extxyz
    ``oxi_states`` column) are kept; magnetic moments are dropped. Any problem raises
    StructureReadError naming the file and what to change; a CIF read with parser remarks
    gives one :class:`StructureReadWarning`.
    """
    p = Path(path)
    supported = "; ".join(SUPPORTED_FORMATS)
    if p.is_symlink() and not p.exists():
        raise StructureReadError(
            f"{p}: a symbolic link to a missing file (or a loop of links: {os.readlink(p)}); "
            "point it at a structure file or remove it."
        )
    if not p.exists():
        raise StructureReadError(f"{p}: no such file. Check the path (working dir: {Path.cwd()}).")
    if p.is_dir():
        raise StructureReadError(f"{p}: is a directory; give the path of a structure file.")
    if not os.access(p, os.R_OK):
        raise StructureReadError(f"{p}: cannot be read (permission denied); check its permissions.")
    fmt = _detect_format(p)
    if fmt is None:
        raise StructureReadError(
            f"{p}: unknown structure format (from the file name). Supported: {supported}; "
            "magnetic CIF (*.mcif). "
            "Rename the file or convert it, e.g. with ase.io.read/write or pymatgen."
        )
    try:
        structure = _READERS[fmt](p)
    except _ParseError as err:
        raise StructureReadError(
            f"{p}: could not be parsed as {fmt.upper()} by {err.parser}: "
            f"{err.reason.rstrip('.!')}. "
            f"Check that the file is a complete, valid {fmt.upper()} file (supported: {supported})."
        ) from None
    if len(structure) == 0:
        raise StructureReadError(f"{p}: the structure contains no atoms.")
    # pymatgen turns unknown symbols starting with X into dummy species: refuse them here
    unknown = sorted(
        {sp.symbol for sp in structure.composition if not Element.is_valid_symbol(getattr(sp, "symbol", ""))}
    )
    if unknown:
        raise StructureReadError(
            f"{p}: unknown element(s) {', '.join(unknown)}. Use element symbols of the periodic "
            "table (labels such as 'Fe1' are fine, symbols such as 'X' or 'Va' are not)."
        )
    return structure


def load_host(
    path_or_structure: str | os.PathLike | Structure,
    oxidation_states: Mapping[str, float] | None = None,
    min_distance: float = 0.5,
    check_charge: bool = True,
) -> Structure:
    """Read (if a path), validate, decorate with oxidation states and check for anions.

    Accepts a file path, a pymatgen Structure or an ASE Atoms. With ``check_charge`` the
    decorated structure must also be charge balanced. Returns a new Structure.
    """
    if isinstance(path_or_structure, Structure):
        structure = path_or_structure.copy()
    elif isinstance(path_or_structure, (str, os.PathLike)):
        structure = read_structure(path_or_structure)
    else:
        from ase import Atoms

        from .convert import to_structure

        if not isinstance(path_or_structure, Atoms):
            raise TypeError(
                "load_host takes a file path, a pymatgen Structure or an ase Atoms, not "
                f"{type(path_or_structure).__name__}"
            )
        structure = to_structure(path_or_structure)
    if len(structure) == 0:
        raise StructureValidationError("the structure contains no atoms.")
    validate_structure(structure, min_distance=min_distance)
    decorated = assign_oxidation_states(structure, oxidation_states)
    if check_charge:
        check_charge_balance(decorated)
    require_anion(decorated)
    return decorated
