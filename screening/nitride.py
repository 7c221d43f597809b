"""The nitride transfer rule: approximate X–N3- rows derived from X–O2- rows.

softBV (Chen & Adams, IUCrJ 4 (2017) 614) has no N3- rows for Ca2+, Zn2+, Al3+, K+ (hence
NH4+), Na+ or Ba2+, yet cyanide frameworks (Prussian blue analogues) and sulfonamide polymers
bind the working ion to N. The rule is fitted on the s-block cations that have both rows
(:data:`NITRIDE_RULE_CATIONS`): mean shifts of Rmin and R0 and the mean ratio of b, with D0 from
the softBV closed form D0 ∝ b²·|V_X| / (Rmin·√(n_A n_X)) (shared notes, bvse.md). It is
checked leave-one-out by ``tests/test_nitride_rule.py`` and
``benchmarks/validate_nitride_rule.py``. A derived row says so (``PairParams.derived_from``) and
is used only on request (``--derive-nitride``; :func:`ionscreen.screening.ion_models.mobile_pair`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ionscreen.errors import MissingParameterError

from .param_rows import PairParams
from .params import ParamTable

__all__ = ["NITRIDE_RULE_CATIONS", "derived_nitride_pair", "nitride_rule"]


#: s-block cations whose softBV table has both an X–O2- and an X–N3- row: the nitride transfer
#: rule is fitted on them (d- and f-block D0 do not follow the softBV closed form).
NITRIDE_RULE_CATIONS: tuple[tuple[str, int], ...] = (("Li", 1), ("Mg", 2), ("Sr", 2))


def nitride_rule(table: ParamTable, exclude: tuple[str, int] | None = None) -> dict[str, Any]:
    """The X–O2- → X–N3- transfer rule fitted on :data:`NITRIDE_RULE_CATIONS` of ``table``.

    ``delta_r_min`` and ``delta_r0`` are the mean shifts (Å) and ``b_ratio`` the mean ratio
    b(N3-)/b(O2-) over the fit cations (``exclude`` leaves one out, for validation). D0 then
    follows the softBV closed form D0 ∝ b²·|V_X| / (Rmin·√(n_A n_X)) (shared notes, bvse.md).
    """
    pairs = [(table.pair(c, v, "O", -2), table.pair(c, v, "N", -3))
             for c, v in NITRIDE_RULE_CATIONS
             if (c, v) != exclude and table.has_pair(c, v, "O", -2) and table.has_pair(c, v, "N", -3)]
    if not pairs:
        raise MissingParameterError("no cation has both X–O2- and X–N3- rows to fit the nitride "
                                    "transfer rule on")
    n = len(pairs)
    return {
        "delta_r_min": sum(nn.r_min - o.r_min for o, nn in pairs) / n,
        "delta_r0": sum(nn.r0 - o.r0 for o, nn in pairs) / n,
        "b_ratio": sum(nn.b / o.b for o, nn in pairs) / n,
        "fitted_on": [o.cation + f"{o.cation_valence}+" for o, _ in pairs],
    }


def derived_nitride_pair(table: ParamTable, cation: str, valence: int,
                         rule: Mapping[str, Any] | None = None) -> PairParams:
    """An approximate X–N3- row derived from the cation's X–O2- row (see :func:`nitride_rule`).

    softBV has no N3- rows for Ca2+, Zn2+, Al3+, K+ (hence NH4+), Na+ or Ba2+; cyanide frameworks
    (Prussian blue analogues) and sulfonamide polymers bind the working ion to N. The derived row
    is flagged (``derived_from``) and every result that uses it says it is approximate.
    """
    o = table.pair(cation, valence, "O", -2)
    rule = rule or nitride_rule(table)
    b = o.b * rule["b_ratio"]
    r_min = o.r_min + rule["delta_r_min"]
    # closed form: D0 ∝ b²·|V_X|/Rmin (same period n = 2 for O and N)
    d0 = o.d0 * (b / o.b) ** 2 * (3.0 / 2.0) * (o.r_min / r_min)
    note = (f"derived from {o.label()} by the nitride transfer rule (Rmin {rule['delta_r_min']:+.3f} Å, "
            f"b ×{rule['b_ratio']:.3f}, D0 by the softBV closed form; fitted on "
            f"{', '.join(rule['fitted_on'])})")
    return PairParams(
        cation=o.cation, cation_valence=o.cation_valence, anion="N", anion_valence=-3,
        r0=o.r0 + rule["delta_r0"], b=b, alpha=1.0 / b, d0=d0, r_min=r_min,
        r_cutoff=(o.r_cutoff + rule["delta_r_min"]) if o.r_cutoff else None, nc=o.nc,
        derived_from=note,
    )
