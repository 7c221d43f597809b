"""Half the band against the whole band on the same DFT-NEB paths (issue 13.5): two
``validate_barriers.py`` files of one tier, one run with the ML defaults (a symmetric hop
computes half its band, :mod:`ionscreen.screening.neb.mirror`) and one with ``--whole-band``,
side by side on one machine. Prints how many paths used half the band, the barrier differences
and the core-seconds::

    python benchmarks/compare_half_band.py \\
        benchmarks/data/ml_barriers/half_band/chgnet-0.3.0-half.json \\
        benchmarks/data/ml_barriers/half_band/chgnet-0.3.0-whole.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def compare(half: dict[str, Any], whole: dict[str, Any]) -> dict[str, Any]:
    """Counts, barrier differences (half − whole, eV) and core-seconds over the shared paths."""
    ids = [i for i in half if i in whole]
    both = [i for i in ids if half[i]["barrier"] is not None and whole[i]["barrier"] is not None]
    d = np.array([half[i]["barrier"] - whole[i]["barrier"] for i in both])
    ch = np.array([half[i]["core_seconds"] for i in ids])
    cw = np.array([whole[i]["core_seconds"] for i in ids])
    far = [{"id": i, "half": round(half[i]["barrier"], 3), "whole": round(whole[i]["barrier"], 3),
            "flags_half": half[i]["extra"]["flags"], "flags_whole": whole[i]["extra"]["flags"]}
           for i, x in zip(both, d) if abs(x) > 0.02]
    return {
        "paths": len(ids),
        "half_band_used": sum(bool(half[i]["extra"].get("half_band")) for i in ids),
        "found_half": sum(half[i]["barrier"] is not None for i in ids),
        "found_whole": sum(whole[i]["barrier"] is not None for i in ids),
        "within_0.01_eV": int((np.abs(d) <= 0.01).sum()), "compared": len(both),
        "median_abs_diff_eV": round(float(np.median(np.abs(d))), 4),
        "differ_by_more_than_0.02_eV": far,
        "core_s_half": round(float(ch.sum()), 1), "core_s_whole": round(float(cw.sum()), 1),
        "speed_up_total": round(float(cw.sum() / ch.sum()), 2),
        "speed_up_median_path": round(float(np.median(cw / ch)), 2),
    }


def main() -> None:
    """Compare every tier the two files share."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("half", type=Path)
    ap.add_argument("whole", type=Path)
    args = ap.parse_args()
    h, w = (json.loads(p.read_text())["results"] for p in (args.half, args.whole))
    for tier in h:
        if tier in w:
            print(tier, json.dumps(compare(h[tier], w[tier]), indent=1))


if __name__ == "__main__":
    main()
