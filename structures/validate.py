"""Validation of host structures: what makes a structure unusable for screening (partial
occupancy, overlapping atoms, non-finite or absurd cells and coordinates), refused with a
message that says what to change."""

from __future__ import annotations

import numpy as np
from pymatgen.core import PeriodicSite, Structure

from ionscreen.errors import (
    StructureValidationError,
)

__all__ = ["MAX_FRACTIONAL", "MAX_LATTICE_LENGTH", "MAX_VOLUME_PER_ATOM", "require_ordered",
           "validate_structure"]


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

    require_ordered(structure)

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


def require_ordered(structure: Structure) -> None:
    """Raise StructureValidationError naming the sites with partial occupancy or disorder."""
    disordered = [(i, site) for i, site in enumerate(structure) if not site.is_ordered]
    if not disordered:
        return
    shown = ", ".join(
        f"site {i} ({_label(site)}{site.species_string})" for i, site in disordered[:5]
    )
    more = f" and {len(disordered) - 5} more" if len(disordered) > 5 else ""
    raise StructureValidationError(
        f"structure has partial occupancy / disorder on {len(disordered)} site(s): "
        f"{shown}{more}. ionscreen needs an ordered structure: screen the file with --order N "
        "(its N lowest-Ewald orderings in the smallest supercell that makes the occupancies "
        "whole), or supply an ordered supercell."
    )


def _label(site: PeriodicSite) -> str:
    """'O3: ' when the site carries a label of its own, else ''."""
    label = getattr(site, "label", None)
    return f"{label}: " if label and label != site.species_string else ""


def _site_name(structure: Structure, i: int) -> str:
    site = structure[i]
    coords = ", ".join(f"{x:.4f}" for x in site.frac_coords)
    return f"{site.species_string} at ({coords})"
