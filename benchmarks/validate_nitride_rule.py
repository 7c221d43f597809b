"""Leave-one-out check of the nitride transfer rule (``--derive-nitride``) on real hosts.

For each s-block cation that softBV has an X–N3- row for (Li+, Mg2+, Sr2+), the row is removed,
the rule is fitted on the other two, the row is derived from X–O2-, and the BVSE barriers of
that ion in hosts where it binds to N (the Prussian blue analogue MnCr(CN)6, the MgZn(PTtSA)
coordination polymer) are compared with those from the real row. Run:
``python3 benchmarks/validate_nitride_rule.py``; writes ``benchmarks/out/nitride_rule.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ionscreen.screening.bvse import BVSESettings, compute_landscape
from ionscreen.screening.nitride import NITRIDE_RULE_CATIONS, derived_nitride_pair, nitride_rule
from ionscreen.screening.params import load_table
from ionscreen.structures.polymers import build_ordered
from ionscreen.structures.prototypes import get_prototype, host_for_ion

OUT = Path(__file__).parent / "out"


def hosts(ion: str) -> dict:
    out = {"PBA MnCr(CN)6": host_for_ion(get_prototype("PBA-MnCr"), ion)[0]}
    if ion in ("Mg", "Sr"):
        out[f"{ion}Zn(PTtSA) polymer"] = build_ordered(ion, "Zn")
    return out


def best(b: dict) -> float:
    vals = [v for v in b.values() if math.isfinite(v)]
    return min(vals) if vals else math.inf


def main() -> None:
    table = load_table()
    settings = BVSESettings(resolution=0.2)
    rows = []
    for cation, valence in NITRIDE_RULE_CATIONS:
        loo = table.copy()
        loo.remove_pair(cation, valence, "N", -3)
        real = table.pair(cation, valence, "N", -3)
        derived = derived_nitride_pair(loo, cation, valence, rule=nitride_rule(loo))
        for name, s in hosts(cation).items():
            a = compute_landscape(s, cation, settings=settings, table=table, keep_grid=False)
            b = compute_landscape(s, cation, settings=BVSESettings(resolution=0.2, derive_nitride=True),
                                  table=loo, keep_grid=False)
            assert b.approximate
            r = {"ion": cation, "host": name,
                 "r_min": [round(real.r_min, 3), round(derived.r_min, 3)],
                 "d0": [round(real.d0, 3), round(derived.d0, 3)],
                 "barrier_table_eV": round(best(a.barriers), 3),
                 "barrier_derived_eV": round(best(b.barriers), 3)}
            r["difference_eV"] = round(r["barrier_derived_eV"] - r["barrier_table_eV"], 3)
            rows.append(r)
            print(r)
    OUT.mkdir(exist_ok=True)
    (OUT / "nitride_rule.json").write_text(json.dumps({"rule": nitride_rule(table), "loo": rows}, indent=1))


if __name__ == "__main__":
    main()
