"""Loader for the committed slice of public DFT-NEB migration paths (tests/data/dft_neb_slice.json).

The slice is nine vacancy hops (eight of Mg, Ca or Zn, one Na reference) from the test file of
sai-mat-group/predicting-migration-barriers (MIT; Devi et al., arXiv:2508.06459); see
tests/data/DFT_NEB_SLICE.md. The full set is built by benchmarks/curate_dft_neb.py.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pymatgen.core import Lattice, Structure

SLICE = Path(__file__).parent / "data" / "dft_neb_slice.json"


@lru_cache(maxsize=1)
def slice_data() -> dict[str, Any]:
    """The JSON document as stored: ``meta`` and ``paths``."""
    return json.loads(SLICE.read_text())


def _structure(path: dict[str, Any], key: str) -> Structure:
    return Structure(Lattice(path["lattice"]), path["species"], path[key])


def slice_paths() -> list[dict[str, Any]]:
    """One dict per path: id, ion, moving index (0), DFT barrier, and the two endpoints.

    ``initial`` and ``final`` are fresh pymatgen Structures (the caller may change them);
    ``oxidation_states`` is the element -> state mapping stored with the path, or None.
    """
    out = []
    for p in slice_data()["paths"]:
        out.append({
            "id": p["id"],
            "sys_name": p["sys_name"],
            "formula": p["formula"],
            "ion": p["ion"],
            "moving_index": 0,
            "dft_barrier": float(p["dft_barrier"]),
            "oxidation_states": p.get("oxidation_states"),
            "initial": _structure(p, "frac_initial"),
            "final": _structure(p, "frac_final"),
        })
    return out
