"""bvlain worker: one BVSE landscape and its percolation barriers, reported as JSON on stdout.

Runs in benchmarks/.venv-bvlain (bvlain 0.25.1, no ionscreen)::

    python bvlain_worker.py STRUCTURE_JSON ION STEP R_CUT ENCUT GRID_OUT.npy [K]

ION is bvlain's label ("Li1+"), K its number of neighbours (default 100). Anything bvlain
prints goes to stderr; the last stdout line is the JSON. The energy grid is saved to GRID_OUT.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

from rss import peak_kb, rss_baseline

#: bvlain's result keys are E_1D, E_2D, E_3D (this interpreter has no ionscreen to import DIMS from)
BVLAIN_DIMS = ("1D", "2D", "3D")


def finite(v: float) -> float | None:
    """A float, or None for inf/nan (strict JSON)."""
    return float(v) if math.isfinite(v) else None


def main() -> None:
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # anything bvlain prints goes to stderr; JSON alone goes to stdout
    t_import = time.perf_counter()
    import importlib.metadata as md

    import ase
    import numpy as np
    import scipy
    from bvlain import Lain
    from pymatgen.core import Structure

    t_import = time.perf_counter() - t_import

    structure_json, ion, step, r_cut, encut, grid_out = sys.argv[1:7]
    k = int(sys.argv[7]) if len(sys.argv) > 7 else 100
    step, r_cut, encut = float(step), float(r_cut), float(encut)
    st = Structure.from_dict(json.loads(Path(structure_json).read_text()))

    base_kb, imports_peak_kb, rss_method = rss_baseline()

    t0 = time.perf_counter()
    lain = Lain(verbose=False)
    lain.read_structure(st, oxi_check=False)
    t1 = time.perf_counter()
    lain.bvse_distribution(mobile_ion=ion, resolution=step, r_cut=r_cut, k=k)
    t2 = time.perf_counter()
    energies = lain.percolation_barriers(encut=encut)
    t3 = time.perf_counter()
    peak = peak_kb()

    data = np.asarray(lain.data, dtype=np.float64)
    np.save(grid_out, data)
    out = {
        "barriers": {d: finite(energies[f"E_{d}"]) for d in BVLAIN_DIMS},
        "grid_shape": [int(x) for x in lain.size],
        "points": int(np.prod(lain.size)),
        "k": int(lain.k),
        "timings": {"read": t1 - t0, "distribution": t2 - t1, "percolation": t3 - t2,
                    "total": t3 - t0, "imports": t_import},
        "rss_baseline_mb": base_kb / 1024.0,
        "rss_imports_peak_mb": imports_peak_kb / 1024.0,
        "rss_peak_compute_mb": peak / 1024.0,
        "rss_peak_mb": max(peak, imports_peak_kb) / 1024.0,
        "rss_delta_mb": (peak - base_kb) / 1024.0,
        "rss_method": rss_method,
        "energy_min": float(data.min()),
        "ionscreen_importable": importlib.util.find_spec("ionscreen") is not None,
        "versions": {"python": sys.version.split()[0], "bvlain": md.version("bvlain"),
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "pymatgen": md.version("pymatgen"), "ase": ase.__version__},
    }
    real_stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
