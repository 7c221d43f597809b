"""ionscreen worker: one BVSE configuration run twice ("cold", then "warm"), reported as JSON.

Runs in ionscreen's environment::

    python ionscreen_worker.py STRUCTURE_JSON ION CONFIG_JSON GRID_OUT.npy|-

CONFIG_JSON holds resolution, cutoff, mode, encut and shape (null: ionscreen's own grid). The
cold run's energy grid is saved to GRID_OUT unless it is "-". The last stdout line is the JSON.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

from rss import peak_kb, rss_baseline


def finite(v: float) -> float | None:
    """A float, or None for inf/nan (strict JSON)."""
    return float(v) if math.isfinite(v) else None


def numba_cache_stats() -> tuple[int, int]:
    """(hits, misses) of ionscreen's cached numba kernels: misses mean compilation happened."""
    from numba.core.registry import CPUDispatcher

    hits = misses = 0
    for name, mod in list(sys.modules.items()):
        if name.startswith("ionscreen") and mod is not None:
            for obj in vars(mod).values():
                if isinstance(obj, CPUDispatcher):
                    hits += sum(obj.stats.cache_hits.values())
                    misses += sum(obj.stats.cache_misses.values())
    return hits, misses


def run_once(compute, st, ion: str, settings, shape) -> tuple[dict, object]:
    """One timed compute_landscape call: its summary and the result (for the grid)."""
    import numpy as np

    t0 = time.perf_counter()
    res = compute(st, ion, settings=settings, shape=shape)
    wall = time.perf_counter() - t0
    peak = peak_kb()
    summary = {
        "barriers": {d: finite(v) for d, v in res.barriers.items()},
        "timings": dict(res.timings, wall=wall),
        "pair_evaluations": int(res.pair_evaluations),
        "pairs_per_s_grid": res.pair_evaluations / res.timings["grid"],
        "grid_shape": [int(x) for x in res.grid_shape],
        "points": int(np.prod(res.grid_shape)),
        "sites": len(res.sites),
        "hops": len(res.hops),
        "rss_peak_mb": peak / 1024.0,  # since the reset after imports (see rss_method)
        "numba_cache_hits_misses_cumulative": numba_cache_stats(),
    }
    return summary, res


def main() -> None:
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    t_import = time.perf_counter()
    import numpy as np
    from pymatgen.core import Structure

    from ionscreen.screening.bvse import BVSESettings, compute_landscape

    t_import = time.perf_counter() - t_import

    structure_json, ion, config_json, grid_out = sys.argv[1:5]
    cfg = json.loads(config_json)
    st = Structure.from_dict(json.loads(Path(structure_json).read_text()))
    settings = BVSESettings(resolution=cfg["resolution"], cutoff=cfg["cutoff"], mode=cfg["mode"],
                            encut=cfg["encut"], threads=1)
    shape = tuple(cfg["shape"]) if cfg.get("shape") else None

    base_kb, imports_peak_kb, rss_method = rss_baseline()

    runs = {}
    for label in ("cold", "warm"):
        runs[label], res = run_once(compute_landscape, st, ion, settings, shape)
        if label == "cold" and grid_out != "-":
            np.save(grid_out, np.asarray(res.energy, dtype=np.float64))
        del res

    warm_peak_mb = runs["warm"]["rss_peak_mb"]
    out = {
        "runs": runs,
        "rss_baseline_mb": base_kb / 1024.0,
        "rss_imports_peak_mb": imports_peak_kb / 1024.0,
        "rss_peak_compute_mb": warm_peak_mb,
        "rss_peak_mb": max(warm_peak_mb, imports_peak_kb / 1024.0),
        "rss_delta_mb": warm_peak_mb - base_kb / 1024.0,
        "rss_method": rss_method,
        "imports_s": t_import,
        "bvlain_importable": importlib.util.find_spec("bvlain") is not None,
    }
    real_stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
