"""NEB tier timings: BVFF 7-image CI-NEB, CHGNet per call, NEB speed-up at 2 MPI ranks.

Run: ``python3 benchmarks/bench_neb.py [--skip-chgnet]``. Every NEB process uses one thread
(OMP_NUM_THREADS=1, NUMBA_NUM_THREADS=1). The MPI comparison runs the same NEB serially and
under ``mpiexec -n 2`` one after the other in this run, and reports the ratio. Writes
``benchmarks/out/neb.json``.
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

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from machine import cpu_model, usable_cores  # noqa: E402

from ionscreen.screening.bvse import compute_landscape  # noqa: E402
from ionscreen.screening.neb import run_neb  # noqa: E402
from ionscreen.structures.prototypes import get_prototype, host_for_ion  # noqa: E402

OUT = Path(__file__).parent / "out"


def bvff_neb(pid: str, ion: str) -> dict:
    p = get_prototype(pid)
    s, _ = host_for_ion(p, ion)
    t0 = time.perf_counter()
    b = compute_landscape(s, ion, resolution=0.1)
    t_bvse = time.perf_counter() - t0
    run_neb(s, ion, bvse=b)  # warm: numba cache loaded, calculators built once
    t0 = time.perf_counter()
    rep = run_neb(s, ion, bvse=b)
    t_neb = time.perf_counter() - t0
    h = rep.hops
    return {"host": pid, "ion": ion, "atoms": h[0].n_atoms if h else None, "hops": len(h),
            "images": 7, "bvse_s": round(t_bvse, 3), "neb_s": round(t_neb, 3),
            "barrier_eV": rep.barrier, "bvse_barrier_eV": rep.bvse["barrier"],
            "steps": [sum(x.steps.values()) for x in h]}


def chgnet_per_call() -> dict:
    import numpy as np

    from ionscreen.screening.mlip import calculator_factory
    from ionscreen.structures.convert import to_atoms

    s, _ = host_for_ion(get_prototype("LiMn2O4"), "Mg")
    atoms = to_atoms(s, charges=True)
    f = calculator_factory("chgnet", threads=1)
    atoms.calc = f()
    atoms.get_forces()  # warm-up
    times = []
    rng = np.random.default_rng(0)
    for _ in range(5):
        atoms.positions += rng.normal(0, 0.01, atoms.positions.shape)
        t0 = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        times.append(time.perf_counter() - t0)
    return {"model": f.identity, "atoms": len(atoms), "s_per_call_median": round(sorted(times)[2], 3)}


def _neb_cli(args: list[str], ranks: int, cwd: str) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "ionscreen.workflows", "neb", *args, "--json", "r.json"]
    if ranks > 1:
        exe = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
        cmd = [exe, "-n", str(ranks), *cmd]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    return dt, json.loads((Path(cwd) / "r.json").read_text())


def mpi_speedup(calculator: str, pid: str, ion: str, extra: list[str], repeat: int = 2) -> dict:
    """Serial and 2-rank runs alternated ``repeat`` times (best of each): the machine is shared."""
    walls: dict[int, list[float]] = {1: [], 2: []}
    bands: dict[int, list[float]] = {1: [], 2: []}
    out: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        s, _ = host_for_ion(get_prototype(pid), ion)
        s.to(filename=str(Path(d) / "host.cif"))
        args = ["host.cif", "--ion", ion, "--calculator", calculator, "--images", "2", *extra]
        for _ in range(repeat):
            for ranks in (1, 2):
                t, r = _neb_cli(args, ranks, d)
                walls[ranks].append(t)
                bands[ranks].append(r["hops"][0]["timings"]["band"])
                out[ranks] = r
    w1, w2, b1, b2 = min(walls[1]), min(walls[2]), min(bands[1]), min(bands[2])
    return {"calculator": out[1]["calculator"], "host": pid, "ion": ion, "images": 2, "options": extra,
            "serial_wall_s": round(w1, 2), "mpi2_wall_s": round(w2, 2), "wall_speedup": round(w1 / w2, 2),
            "serial_band_s": round(b1, 2), "mpi2_band_s": round(b2, 2), "band_speedup": round(b1 / b2, 2),
            "barrier_serial": out[1]["barrier"], "barrier_mpi2": out[2]["barrier"],
            "note": "wall: whole command (imports, BVSE seed, endpoints on every rank, band); "
                    "band: the NEB optimisation only, where the images are shared; best of "
                    f"{repeat} alternated runs"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-chgnet", action="store_true")
    args = ap.parse_args()
    res: dict = {"machine": {"cpu": cpu_model(), "cores": usable_cores(), "python": sys.version.split()[0]}}
    res["bvff_neb"] = [bvff_neb("LiFePO4", "Li"), bvff_neb("LiMn2O4", "Mg"), bvff_neb("MgCr2O4", "Mg")]
    for r in res["bvff_neb"]:
        print(f"BVFF NEB {r['host']} {r['ion']}: {r['atoms']} atoms, {r['hops']} hop(s), "
              f"{r['neb_s']:.2f} s (BVSE seed {r['bvse_s']:.2f} s); barrier {r['barrier_eV']}")
    res["mpi_bvff"] = mpi_speedup("bvff", "LiFePO4", "Li", [])
    print("MPI BVFF:", res["mpi_bvff"])
    if not args.skip_chgnet:
        res["chgnet_call"] = chgnet_per_call()
        print("CHGNet:", res["chgnet_call"])
        res["mpi_chgnet"] = mpi_speedup("chgnet", "LiMn2O4", "Mg", ["--fixed-host", "--fmax", "0.1"])
        print("MPI CHGNet:", res["mpi_chgnet"])
    OUT.mkdir(exist_ok=True)
    (OUT / "neb.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
