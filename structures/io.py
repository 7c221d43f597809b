"""Reading, validating and oxidation-state decoration of host structures.

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

import numpy as np
from pymatgen.core import Element, PeriodicSite, Structure

from ionscreen._json import clean_number
from ionscreen.errors import (
    OxidationStateError,
    StructureReadError,
    StructureValidationError,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "anions",
    "assign_oxidation_states",
    "check_charge_balance",
    "load_host",
    "read_structure",
    "require_anion",
    "validate_structure",
]

#: What ``read_structure`` accepts, as shown in error messages.
SUPPORTED_FORMATS = (
    "CIF (*.cif)",
    "VASP POSCAR/CONTCAR (files named POSCAR*, CONTCAR*, *.vasp, *.poscar)",
    "extended XYZ with a Lattice (*.extxyz, *.xyz)",
)

_OXI_HOWTO = (
    "Give them explicitly: on the command line with --oxi Fe=2,P=5,O=-2, or in Python with "
    'oxidation_states={"Fe": 2, "P": 5, "O": -2} (one value per element), or read a CIF that '
    "carries _atom_type_oxidation_number."
)


# --------------------------------------------------------------------------- reading


def _detect_format(path: Path) -> str | None:
    """Map a file name to a parser; None if the name says nothing we know."""
    name = path.name.lower()
    if name.endswith(".cif"):
        return "cif"
    if name.startswith(("poscar", "contcar")) or name.endswith((".vasp", ".poscar")):
        return "poscar"
    if name.endswith((".extxyz", ".xyz")):
        return "extxyz"
    return None


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type if it has none)."""
    for line in str(exc).splitlines():
        line = line.strip()
        if line:
            return f"{type(exc).__name__}: {line}"
    return type(exc).__name__


def _read_cif(path: Path) -> Structure:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structures = CifParser(path).parse_structures(primitive=False)
        except Exception as exc:  # noqa: BLE001 - any parser failure becomes one clear error
            notes: list[str] = []
            for w in caught:
                for line in str(w.message).splitlines():
                    line = line.strip()
                    if line and not line.startswith("Issues encountered") and line not in notes:
                        notes.append(line)
            detail = f" (parser notes: {'; '.join(notes[:3])})" if notes else ""
            raise _ParseError("pymatgen CifParser", exc, detail) from None
    unparsed = [str(w.message) for w in caught if "Can't parse Element or Species" in str(w.message)]
    if unparsed:  # pymatgen then guesses the element from the label ('Va1' -> V): refuse
        raise StructureReadError(
            f"{path}: {unparsed[0].split('! ')[-1]}. Use element symbols of the periodic table "
            "in _atom_site_type_symbol."
        )
    for w in caught:  # parsed, but pymatgen had remarks (e.g. occupancies rescaled): pass on
        warnings.warn(f"{path}: {w.message}", UserWarning, stacklevel=3)
    if len(structures) > 1:
        raise StructureReadError(
            f"{path}: the CIF holds {len(structures)} structures; ionscreen reads one host per "
            "file. Split the data blocks into separate files."
        )
    return structures[0]


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
        self.reason = _first_line(exc) + detail


_READERS = {"cif": _read_cif, "poscar": _read_poscar, "extxyz": _read_extxyz}


def read_structure(path: str | os.PathLike) -> Structure:
    """Read one host structure from CIF, POSCAR/CONTCAR/*.vasp or extended XYZ.

    Oxidation states in the file (CIF ``_atom_type_oxidation_number``, an extxyz
    ``oxi_states`` column) are kept. Any problem raises StructureReadError naming the file and
    what to change.
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
            f"{p}: unknown structure format (from the file name). Supported: {supported}. "
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


# --------------------------------------------------------------------------- validation

#: Longest lattice vector accepted (A): a host cell of more is a unit mistake (pm, bohr) or
#: a molecule in vacuum, and its neighbour lists and grids would not fit in memory.
MAX_LATTICE_LENGTH = 1000.0
#: Most volume per atom accepted (A^3): more is a molecule or a few atoms in vacuum, whose
#: BVSE grid would need gigabytes and whose "channels" are empty space.
MAX_VOLUME_PER_ATOM = 1000.0
#: Fractional coordinates beyond this are refused: wrapping them back loses every digit.
MAX_FRACTIONAL = 1000.0


def validate_structure(structure: Structure, min_distance: float = 0.5) -> None:
    """Refuse structures that cannot be screened: bad cell, disorder, overlapping atoms.

    The overlap test uses pymatgen's neighbour list, which searches every periodic image, so
    pairs close only across a boundary of a strongly skewed cell are found too.
    """
    matrix = structure.lattice.matrix
    if not np.isfinite(matrix).all():
        raise StructureValidationError(
            f"the lattice has non-finite entries ({_numbers(matrix)}); give finite lattice "
            "lengths and angles in the input file."
        )
    longest = float(max(structure.lattice.abc))
    if longest > MAX_LATTICE_LENGTH:
        raise StructureValidationError(
            f"a lattice vector is {longest:.4g} A long (at most {MAX_LATTICE_LENGTH:g} A is "
            "screened); check the lattice in the input file (units are Angstrom)."
        )
    per_atom = abs(float(np.linalg.det(matrix))) / len(structure)
    if per_atom > MAX_VOLUME_PER_ATOM:
        raise StructureValidationError(
            f"the cell holds {len(structure)} atom(s) in {per_atom * len(structure):.4g} A^3 "
            f"({per_atom:.4g} A^3 per atom; crystals have about 5-50): it is mostly vacuum. "
            "Check the lattice (units are Angstrom) or give the crystal's own cell."
        )
    frac = np.array([site.frac_coords for site in structure])
    bad = np.flatnonzero(~(np.abs(frac) < MAX_FRACTIONAL).all(axis=1))  # NaN fails too
    if len(bad):
        raise StructureValidationError(
            f"site {int(bad[0])} ({structure[int(bad[0])].species_string}) has fractional "
            f"coordinates ({_numbers(frac[bad[0]])}) that are not finite or far outside the cell "
            f"({len(bad)} such site(s)); check the coordinates (and Direct/Cartesian) in the "
            "input file."
        )
    det = float(np.linalg.det(matrix))
    if abs(det) < 1e-6:
        raise StructureValidationError(
            f"cell volume is {det:.3g} A^3 (lattice vectors are coplanar or zero); "
            "check the lattice in the input file."
        )
    if det < 0:
        raise StructureValidationError(
            f"cell volume is negative ({det:.3f} A^3): the lattice vectors are left-handed. "
            "Swap two lattice vectors (and the matching fractional coordinates) or negate one."
        )

    disordered = [(i, site) for i, site in enumerate(structure) if not site.is_ordered]
    if disordered:
        shown = ", ".join(
            f"site {i} ({_label(site)}{site.species_string})" for i, site in disordered[:5]
        )
        more = f" and {len(disordered) - 5} more" if len(disordered) > 5 else ""
        raise StructureValidationError(
            f"structure has partial occupancy / disorder on {len(disordered)} site(s): "
            f"{shown}{more}. ionscreen needs an ordered structure: order it, e.g. with pymatgen's "
            "OrderDisorderedStructureTransformation (after structure.make_supercell for the "
            "occupancies to become whole numbers), or supply an ordered supercell."
        )

    centers, neighbors, images, dists = structure.get_neighbor_list(r=min_distance)
    if len(dists):
        k = int(np.argmin(dists))
        i, j, d = int(centers[k]), int(neighbors[k]), float(dists[k])
        image = tuple(int(x) for x in images[k])
        n_pairs = len({(min(a, b), max(a, b)) for a, b in zip(centers, neighbors)})
        where = "" if image == (0, 0, 0) else f" (across the periodic boundary, image {image})"
        if i == j:
            raise StructureValidationError(
                f"site {i} ({structure[i].species_string}) is {d:.3f} A from its own periodic "
                f"image {image}, closer than {min_distance} A: a lattice vector is too short. "
                "Check the lattice parameters."
            )
        raise StructureValidationError(
            f"atoms too close: site {i} ({_site_name(structure, i)}) and site {j} "
            f"({_site_name(structure, j)}) are {d:.3f} A apart{where}, closer than "
            f"min_distance = {min_distance} A ({n_pairs} such pair(s)). Remove duplicated atoms "
            "(e.g. Structure.merge_sites) or fix the coordinates."
        )


def _numbers(values: np.ndarray) -> str:
    return ", ".join(f"{x:.4g}" for x in np.ravel(values))


def _label(site: PeriodicSite) -> str:
    """'O3: ' when the site carries a label of its own, else ''."""
    label = getattr(site, "label", None)
    return f"{label}: " if label and label != site.species_string else ""


def _site_name(structure: Structure, i: int) -> str:
    site = structure[i]
    coords = ", ".join(f"{x:.4f}" for x in site.frac_coords)
    return f"{site.species_string} at ({coords})"


# --------------------------------------------------------------------------- oxidation states


def _all_sites_have_oxi(structure: Structure) -> bool:
    return all(
        getattr(sp, "oxi_state", None) is not None for site in structure for sp in site.species
    )


#: Formal oxidation states of real compounds lie in this range (C4- ... Os8+).
OXIDATION_RANGE = (-4.0, 8.0)


def _in_range(structure: Structure) -> Structure:
    """``structure`` if every given oxidation state is a number in OXIDATION_RANGE."""
    low, high = OXIDATION_RANGE
    for sp in sorted({sp for site in structure for sp in site.species}, key=str):
        if not low <= sp.oxi_state <= high:  # NaN fails too
            raise OxidationStateError(
                f"oxidation state {sp.oxi_state:.4g} of {sp.symbol} is outside {low:g}..{high:+g}; "
                "give the right states. " + _OXI_HOWTO
            )
    return structure


def assign_oxidation_states(
    structure: Structure, oxidation_states: Mapping[str, float] | None = None
) -> Structure:
    """Return a copy decorated with oxidation states; the input is not changed.

    Precedence: an explicit ``oxidation_states`` mapping (element -> state, every element
    present must be given); else the states already on every site; else pymatgen's
    BVAnalyzer; else the first of ``Composition.oxi_state_guesses()``. If all fail, raise
    OxidationStateError explaining how to give them.
    """
    elements = sorted({el.symbol for el in structure.composition.elements})

    if oxidation_states is not None:
        given: dict[str, float] = {}
        for key, value in oxidation_states.items():
            symbol = str(key).strip()
            try:
                Element(symbol)
            except ValueError:
                raise OxidationStateError(
                    f"oxidation_states has {key!r}, which is not an element symbol. " + _OXI_HOWTO
                ) from None
            try:
                given[symbol] = float(value)
            except (TypeError, ValueError):
                raise OxidationStateError(
                    f"oxidation state for {symbol} is {value!r}, not a number. " + _OXI_HOWTO
                ) from None
        missing = [el for el in elements if el not in given]
        if missing:
            raise OxidationStateError(
                f"oxidation states missing for {', '.join(missing)} (the structure contains "
                f"{', '.join(elements)}; given: {', '.join(given) or 'none'}). " + _OXI_HOWTO
            )
        decorated = structure.copy()
        decorated.remove_oxidation_states()
        decorated.add_oxidation_state_by_element({el: clean_number(given[el], digits=None) for el in elements})
        return _in_range(decorated)

    if _all_sites_have_oxi(structure):
        return _in_range(structure.copy())

    bare = structure.copy()
    bare.remove_oxidation_states()
    reasons: list[str] = []

    from pymatgen.analysis.bond_valence import BVAnalyzer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return BVAnalyzer().get_oxi_state_decorated_structure(bare)
        except Exception as exc:  # noqa: BLE001 - fall back to composition guesses
            reasons.append(f"BVAnalyzer: {_first_line(exc)}")
        try:
            guesses = bare.composition.oxi_state_guesses(max_sites=-50)
        except Exception as exc:  # noqa: BLE001
            guesses = ()
            reasons.append(f"oxi_state_guesses: {_first_line(exc)}")
        else:
            if not guesses:
                reasons.append("oxi_state_guesses: no charge-balanced combination found")
    if guesses:
        bare.add_oxidation_state_by_element({el: clean_number(v, digits=None) for el, v in guesses[0].items()})
        return bare
    raise OxidationStateError(
        f"cannot determine oxidation states for {bare.composition.reduced_formula} "
        f"({'; '.join(reasons)}). " + _OXI_HOWTO
    )


def _require_oxi(structure: Structure, what: str) -> None:
    if not _all_sites_have_oxi(structure):
        raise OxidationStateError(
            f"{what} needs oxidation states on every site; call assign_oxidation_states first "
            "(or give them explicitly). " + _OXI_HOWTO
        )


def check_charge_balance(structure: Structure, tol: float = 1e-3) -> None:
    """Raise StructureValidationError if the cell's net formal charge exceeds ``tol`` (e)."""
    _require_oxi(structure, "the charge-balance check")
    net = sum(sp.oxi_state * occu for site in structure for sp, occu in site.species.items())
    if abs(net) > tol:
        states = ", ".join(sorted({str(sp) for site in structure for sp in site.species}))
        raise StructureValidationError(
            f"structure {structure.composition.reduced_formula} is not charge balanced: net "
            f"charge {net:+.4g} e per cell with oxidation states {states}. Give oxidation states "
            "that sum to zero (mixed valence can be fractional, e.g. --oxi Fe=2.6667,O=-2), or "
            "fix the composition."
        )


def anions(structure: Structure) -> list[str]:
    """Species strings (e.g. 'O2-') with a negative oxidation state, sorted."""
    _require_oxi(structure, "finding the anions")
    return sorted({str(sp) for site in structure for sp in site.species if sp.oxi_state < 0})


def require_anion(structure: Structure) -> None:
    """Raise StructureValidationError if no species has a negative oxidation state."""
    if anions(structure):
        return
    present = ", ".join(sorted({str(sp) for site in structure for sp in site.species}))
    raise StructureValidationError(
        f"host has no anion (species: {present}); bond-valence screening needs anions such as "
        "O2-, S2- or F-. If the host does contain anions, give their oxidation states "
        "explicitly, e.g. --oxi Fe=2,P=5,O=-2."
    )


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
