"""Ordered models of a disordered host (``--order N``): the smallest supercell in which every
partial occupancy is a whole number of atoms, its orderings ranked by electrostatic (Ewald)
energy with pymatgen's :class:`OrderDisorderedStructureTransformation`, the N lowest kept.

Vacancies are occupancies below one (Na0.8CoO2: 0.8 Na and 0.2 vacancy on the Na site), so
a working ion's own partial occupancy is ordered like any other. The Ewald energy needs
oxidation states: those of the file or of ``--oxi``, else the average states pymatgen's
composition guess gives (Co 3.2+ in Na0.8CoO2). It ranks orderings of one cell against each
other, nothing more.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from fractions import Fraction
from typing import Any, NamedTuple

from pymatgen.core import Structure

from ionscreen.errors import StructureValidationError

__all__ = ["MAX_ORDER_ATOMS", "Ordering", "count_orderings", "order_structure",
           "supercell_multiple"]

MAX_ORDER_ATOMS = 160
"""Sites of the supercell to order, by default (``--order-max-atoms``): Ewald ranking of its
orderings and the BVSE of each stay within minutes."""
_SNAP = 0.0051
"""An occupancy this close to a fraction of denominator <= 12 is that fraction: CIFs round
(0.33 and 0.333 are 1/3, 0.17 is 1/6); other values (0.03) are taken as they are."""
_MAX_MULTIPLE = 64


class Ordering(NamedTuple):
    """One ordered model of a disordered structure."""

    structure: Structure
    index: int
    """1 for the lowest Ewald energy."""
    kept: int
    """How many orderings were kept (``--order N``, or fewer when there are fewer)."""
    total: int
    """How many orderings the supercell has, counted before symmetry."""
    ewald_eV: float
    """Ewald energy of this ordering (eV per supercell)."""
    multiple: int
    """Cells in the supercell."""

    def provenance(self) -> dict[str, Any]:
        return {"ordering": self.index, "kept": self.kept, "total": self.total,
                "ewald_eV": round(self.ewald_eV, 4), "supercell": self.multiple}


def _snap(x: float) -> float:
    f = float(Fraction(x).limit_denominator(12))
    return f if abs(f - x) <= _SNAP else x


def _groups(structure: Structure) -> dict[tuple, int]:
    """Disordered sites grouped by their occupancy (species -> amount, rounded occupancies
    snapped to their fraction): group -> site count."""
    groups: dict[tuple, int] = defaultdict(int)
    for site in structure:
        if not site.is_ordered:
            key = tuple(sorted((str(sp), _snap(float(amt))) for sp, amt in site.species.items()))
            groups[key] += 1
    return dict(groups)


def supercell_multiple(structure: Structure, max_multiple: int = _MAX_MULTIPLE) -> int:
    """The smallest m such that in m cells every group of equally occupied sites holds a whole
    number of each species (0.8 Na on 1 site: m = 5). Raises
    :class:`StructureValidationError` when none up to ``max_multiple`` does."""
    groups = _groups(structure)
    for m in range(1, max_multiple + 1):
        if all(abs(x - round(x)) <= 1e-6 * m * n
               for key, n in groups.items() for _sp, amt in key for x in [amt * n * m]):
            return m
    shown = "; ".join(f"{n} site(s) of {', '.join(f'{sp} {a:.4g}' for sp, a in key)}"
                      for key, n in groups.items())
    raise StructureValidationError(
        f"{structure.composition.reduced_formula}: no supercell of up to {max_multiple} cells makes "
        f"the occupancies whole numbers ({shown}); round the occupancies in the file")


def count_orderings(structure: Structure, multiple: int) -> int:
    """Distinct orderings of the disordered sites in ``multiple`` cells: the product over the
    groups of the multinomial of their sites over species and vacancies."""
    total = 1
    for key, n in _groups(structure).items():
        sites = n * multiple
        counts = [round(amt * sites) for _sp, amt in key]
        counts.append(sites - sum(counts))  # vacancies
        ways = math.factorial(sites)
        for c in counts:
            ways //= math.factorial(max(c, 0))
        total *= ways
    return total


def _scaling(structure: Structure, m: int) -> list[int]:
    """Diagonal supercell factors with product m that keep the cell most compact (the largest
    resulting axis smallest)."""
    abc = structure.lattice.abc
    best = None
    for a, b in itertools.product(range(1, m + 1), repeat=2):
        if m % (a * b):
            continue
        f = (a, b, m // (a * b))
        size = max(x * k for x, k in zip(abc, f))
        if best is None or size < best[0]:
            best = (size, f)
    assert best is not None
    return list(best[1])


def _average_states(structure: Structure) -> dict[str, float]:
    """Average oxidation state per element of a fractional composition (Na0.8CoO2: Co 3.2),
    from pymatgen's guess for its integer formula (Na4Co5O10)."""
    from pymatgen.core import Composition

    formula, _factor = structure.composition.get_integer_formula_and_factor()
    guesses = Composition(formula).oxi_state_guesses()
    if not guesses:
        raise ValueError(f"no charge-balanced oxidation states for {formula}")
    return {str(el): float(v) for el, v in guesses[0].items()}


def order_structure(structure: Structure, n: int, max_atoms: int = MAX_ORDER_ATOMS,
                    oxidation_states: dict[str, float] | None = None) -> list[Ordering]:
    """The ``n`` lowest-Ewald orderings of a disordered ``structure`` (an ordered one: itself,
    as ordering 1 of 1), in the smallest supercell that makes the occupancies whole. Raises
    :class:`StructureValidationError` with the numbers when that supercell has more than
    ``max_atoms`` sites, or when no oxidation states can be found for the Ewald energy."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.transformations.standard_transformations import (
        OrderDisorderedStructureTransformation,
    )

    if n < 1:
        raise StructureValidationError(f"--order takes a number of orderings >= 1, got {n}")
    if structure.is_ordered:
        return [Ordering(structure.copy(), 1, 1, 1, 0.0, 1)]
    formula = structure.composition.reduced_formula
    m = supercell_multiple(structure)
    sites = m * len(structure)
    if sites > max_atoms:
        raise StructureValidationError(
            f"{formula}: its occupancies become whole numbers only in a {m}-cell supercell of "
            f"{sites} sites, above the limit of {max_atoms}; raise it (--order-max-atoms "
            f"{sites}) or order the file yourself")
    decorated = structure.copy()
    try:
        if oxidation_states:
            decorated.add_oxidation_state_by_element(oxidation_states)
        elif not all(hasattr(sp, "oxi_state") for site in decorated for sp in site.species):
            decorated.add_oxidation_state_by_element(_average_states(structure))
    except (ValueError, KeyError) as exc:
        raise StructureValidationError(
            f"{formula}: no oxidation states for the Ewald ranking of its orderings ({exc}); "
            "give them with --oxi") from None
    if any(getattr(sp, "oxi_state", None) is None for site in decorated for sp in site.species):
        raise StructureValidationError(f"{formula}: no oxidation states for the Ewald ranking of "
                                       "its orderings; give them with --oxi")
    decorated.make_supercell(_scaling(decorated, m))
    total = count_orderings(structure, m)
    trans = OrderDisorderedStructureTransformation()
    # more than n: orderings equivalent by symmetry come in runs of equal energy
    ranked = trans.apply_transformation(decorated, return_ranked_list=min(total, max(20 * n, 60)))
    matcher = StructureMatcher()
    kept: list[tuple[Structure, float]] = []
    for item in ranked:
        st = item["structure"]
        if not any(abs(float(item["energy"]) - e) < 1e-6 and matcher.fit(st, other)
                   for other, e in kept):
            kept.append((st, float(item["energy"])))
        if len(kept) == n:
            break
    out = []
    for k, (st, energy) in enumerate(kept, start=1):
        st = st.copy()
        st.remove_oxidation_states()  # the screen assigns its own (from the ordered cell)
        out.append(Ordering(st, k, len(kept), total, energy, m))
    return out
