"""Throughput of the whole screen (README's first command): serial vs a pool of 2 vs MPI.

Run: ``python3 benchmarks/bench_screen.py [--ions Mg Ca Zn Al NH4]``. Each variant runs the
default ``ionscreen screen`` (built-in hosts, BVSE at 0.2 Å, BVFF-NEB on the top 3 per ion,
ranking and exports) into a fresh folder, one after the other in this run. MPI with 2 ranks
has one computing rank (rank 0 owns the store), so 3 ranks are measured too. Writes
``benchmarks/out/screen.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, usable_cores

from ionscreen.structures.ions import SCREEN_DEFAULT

OUT = Path(__file__).parent / "out"


def run(variant: str, ions: list[str], hosts: str) -> dict:
    base = [sys.executable, "-m", "ionscreen.workflows", "screen", "--hosts", hosts, "--ions", *ions,
            "--out", "run"]
    mpiexec = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    cmd = {"serial": base, "pool2": [*base, "--workers", "2"],
           "mpi2": [mpiexec, "-n", "2", *base], "mpi3": [mpiexec, "-n", "3", *base]}[variant]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
        if p.returncode:
            raise SystemExit(p.stderr)
        import sqlite3

        db = sqlite3.connect(Path(d) / "run" / "ionscreen.sqlite")
        counts = dict(db.execute("SELECT step || ':' || state, count(*) FROM jobs GROUP BY step, state").fetchall())
        db.close()
    pairs = counts.get("bvse:done", 0) + counts.get("bvse:failed", 0)
    return {"variant": variant, "wall_s": round(wall, 1), "host_ion_pairs": pairs, "jobs": counts,
            "pairs_per_hour": round(pairs / wall * 3600)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ions", nargs="+", default=list(SCREEN_DEFAULT))
    ap.add_argument("--hosts", default="builtin",
                    help="as `ionscreen screen --hosts` (default: every built-in host)")
    ap.add_argument("--variants", nargs="+", default=["serial", "pool2", "mpi2", "mpi3"])
    args = ap.parse_args()
    res = {"machine": {"cpu": cpu_model(), "cores": usable_cores()}, "hosts": args.hosts,
           "ions": args.ions, "runs": []}
    for v in args.variants:
        r = run(v, args.ions, args.hosts)
        res["runs"].append(r)
        print(r)
    OUT.mkdir(exist_ok=True)
    (OUT / "screen.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
