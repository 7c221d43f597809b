"""Throughput of the BVSE step: built-in hosts × Mg, Ca, Zn, Al, NH4 at 0.2 Å on one core.

Run: ``python3 benchmarks/bench_throughput.py [--resolution 0.2] [--repeat 2]``. The pinning to
one core happens before numba is imported (NUMBA_NUM_THREADS=1 and, where available, CPU
affinity), so the number is host–ion pairs per core-hour. Writes
``benchmarks/out/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import numba  # noqa: E402
import numpy  # noqa: E402
from machine import cpu_model  # noqa: E402

from ionscreen.errors import IonscreenError  # noqa: E402
from ionscreen.screening.bvse import BVSESettings, compute_landscape  # noqa: E402
from ionscreen.structures.ions import SCREEN_DEFAULT  # noqa: E402
from ionscreen.structures.prototypes import host_for_ion, list_prototypes  # noqa: E402

IONS = SCREEN_DEFAULT  # the ions a screen runs by default


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--resolution", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=2, help="passes over all pairs; the best is reported")
    args = ap.parse_args()
    settings = BVSESettings(resolution=args.resolution, threads=1)
    jobs = [(p.id, *host_for_ion(p, ion), ion) for p in list_prototypes() for ion in IONS]
    # warm-up: load the numba cache (or compile) outside the timed passes
    compute_landscape(jobs[0][1], jobs[0][3], settings=settings)
    passes = []
    per_pair: dict[str, float] = {}
    failed: dict[str, str] = {}
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        for hid, st, _state, ion in jobs:
            t = time.perf_counter()
            try:
                compute_landscape(st, ion, settings=settings, keep_grid=False)
            except IonscreenError as exc:
                failed[f"{hid}/{ion}"] = str(exc)
            key = f"{hid}/{ion}"
            per_pair[key] = min(per_pair.get(key, 1e9), time.perf_counter() - t)
        passes.append(time.perf_counter() - t0)
    best = min(passes)
    rate = len(jobs) / best * 3600.0
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "cores_used": 1, "python": sys.version.split()[0]},
        "versions": {"numpy": numpy.__version__, "numba": numba.__version__},
        "resolution": args.resolution,
        "pairs": len(jobs),
        "failed": failed,
        "seconds_per_pass": passes,
        "pairs_per_core_hour": rate,
        "slowest_pairs": sorted(per_pair.items(), key=lambda kv: -kv[1])[:5],
    }
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(doc, indent=1))
    print(f"{len(jobs)} host–ion pairs ({len(list_prototypes())} hosts × {len(IONS)} ions) at "
          f"{args.resolution} Å on one core: best pass {best:.2f} s -> {rate:,.0f} pairs per core-hour")
    print(f"failed jobs (clear errors, counted in the pass): {len(failed)}")
    print("slowest pairs:", ", ".join(f"{k} {v:.2f} s" for k, v in doc["slowest_pairs"]))


if __name__ == "__main__":
    main()
