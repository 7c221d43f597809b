#!/usr/bin/env python3
"""BVSE benchmark: ionscreen against bvlain 0.25.1, side by side in one run.

    python3 benchmarks/bench_bvse.py            # olivine LiFePO4 (Li+) and spinel MgCr2O4 (Mg2+), 0.2 and 0.1 Å
    python3 benchmarks/bench_bvse.py --quick    # 0.2 Å only

bvlain lives in its own virtual environment (benchmarks/.venv-bvlain, created on first use) and
is never imported into ionscreen's environment: each tool runs in its own subprocess, pinned to
one core (``taskset -c 0`` when available; OMP/OPENBLAS/MKL/NUMBA threads = 1), and reports
barriers, timings and peak RSS as JSON. The parent process (ionscreen's python) only compares.

Per case (structure, mobile ion, grid step):

* bvlain: ``Lain(verbose=False)``, ``read_structure(st, oxi_check=False)``,
  ``bvse_distribution(mobile_ion, resolution=step, r_cut=10.0)``, ``percolation_barriers(encut=5.0)``,
  timed from structure in to barriers out.
* ionscreen (a) "same grid": bvlain's grid points without its duplicated last plane
  (shape = bvlain size - 1 per axis), cutoff 10 Å (bvlain's r_cut), exact and table modes — the
  accuracy comparison; (b) "defaults" at that resolution (cutoff 7 Å, table mode) — the speed
  comparison; (c) the grid kernel's throughput (pair evaluations / grid time) in exact and table
  modes. Each ionscreen configuration runs twice in one process: "cold" (includes numba cache
  loading) and "warm".
* Diagnostics for the |ΔE| on the same grid: bvlain's bisection (0.01 eV, upper end of the
  bracket) is replayed on ionscreen's exact-to-the-grid thresholds, ionscreen's percolation is
  run on bvlain's own energies, and the two energy grids are compared point by point.

Writes benchmarks/out/bvse_vs_bvlain.json (…_quick.json with --quick) and prints markdown tables.
Other jobs may share the machine: compare numbers only within one run.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as _md
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-bvlain"
BVLAIN_VERSION = "0.25.1"
OUT_DEFAULT = HERE / "out" / "bvse_vs_bvlain.json"

R_CUT_BVLAIN = 10.0  # bvlain's r_cut (Å), also ionscreen's cutoff on the "same grid"
ENCUT = 5.0  # eV, both tools
BVLAIN_K = 100  # bvlain's default number of neighbours (not changed)
K_CHECK = 400  # diagnostic bvlain run with more neighbours (0.2 Å grids only: memory grows with k)
K_CHECK_MAX_POINTS = 100_000

CASES = [
    # (prototype, ion label for bvlain, ion label for ionscreen)
    ("LiFePO4", "Li1+", "Li+"),
    ("MgCr2O4", "Mg2+", "Mg2+"),
]
STEPS_FULL = (0.2, 0.1)
STEPS_QUICK = (0.2,)

DIMS = ("1D", "2D", "3D")

# ---------------------------------------------------------------------------------- workers

RSS_BASELINE = r'''
def rss_baseline():
    # Resident set after imports, then reset the high-water mark so that ru_maxrss measures
    # the computation (Linux /proc/self/clear_refs "5"); fall back to ru_maxrss as the baseline.
    imports_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        current = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return current, imports_peak, "VmRSS after imports; high-water mark reset, peak = ru_maxrss"
    except (OSError, StopIteration):
        return imports_peak, imports_peak, "ru_maxrss after imports (no reset available)"
'''

# Both workers run in their own interpreters (bvlain in its venv), so the shared helper is
# spliced into their sources rather than imported.
BVLAIN_WORKER = r"""
import json, resource, sys, time, importlib.util
real_stdout = sys.stdout
sys.stdout = sys.stderr  # anything bvlain prints goes to stderr; JSON alone goes to stdout
t_import = time.perf_counter()
import numpy as np
from pymatgen.core import Structure
from bvlain import Lain
import bvlain, scipy, pymatgen.core, ase, importlib.metadata as md
t_import = time.perf_counter() - t_import

structure_json, ion, step, r_cut, encut, grid_out = sys.argv[1:7]
k = int(sys.argv[7]) if len(sys.argv) > 7 else 100
step, r_cut, encut = float(step), float(r_cut), float(encut)
st = Structure.from_dict(json.loads(open(structure_json).read()))

#@RSS_BASELINE@


base_kb, imports_peak_kb, rss_method = rss_baseline()

t0 = time.perf_counter()
lain = Lain(verbose=False)
lain.read_structure(st, oxi_check=False)
t1 = time.perf_counter()
lain.bvse_distribution(mobile_ion=ion, resolution=step, r_cut=r_cut, k=k)
t2 = time.perf_counter()
energies = lain.percolation_barriers(encut=encut)
t3 = time.perf_counter()
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

data = np.asarray(lain.data, dtype=np.float64)
np.save(grid_out, data)
fin = lambda v: None if not np.isfinite(v) else float(v)
out = {
    "barriers": {d: fin(energies[f"E_{d}"]) for d in ("1D", "2D", "3D")},
    "grid_shape": [int(x) for x in lain.size],
    "points": int(np.prod(lain.size)),
    "k": int(lain.k),
    "timings": {"read": t1 - t0, "distribution": t2 - t1, "percolation": t3 - t2, "total": t3 - t0,
                "imports": t_import},
    "rss_baseline_mb": base_kb / 1024.0,
    "rss_imports_peak_mb": imports_peak_kb / 1024.0,
    "rss_peak_compute_mb": peak_kb / 1024.0,
    "rss_peak_mb": max(peak_kb, imports_peak_kb) / 1024.0,
    "rss_delta_mb": (peak_kb - base_kb) / 1024.0,
    "rss_method": rss_method,
    "energy_min": float(data.min()),
    "ionscreen_importable": importlib.util.find_spec("ionscreen") is not None,
    "versions": {"python": sys.version.split()[0], "bvlain": md.version("bvlain"),
                 "numpy": np.__version__, "scipy": scipy.__version__,
                 "pymatgen": md.version("pymatgen"), "ase": ase.__version__},
}
real_stdout.write(json.dumps(out) + "\n")
"""

IONSCREEN_WORKER = r'''
import json, resource, sys, time, importlib.util
real_stdout = sys.stdout
sys.stdout = sys.stderr
t_import = time.perf_counter()
import numpy as np
from pymatgen.core import Structure
from ionscreen.screening.bvse import BVSESettings, compute_landscape
t_import = time.perf_counter() - t_import

structure_json, ion, config_json, grid_out = sys.argv[1:5]
cfg = json.loads(config_json)
st = Structure.from_dict(json.loads(open(structure_json).read()))
settings = BVSESettings(resolution=cfg["resolution"], cutoff=cfg["cutoff"], mode=cfg["mode"],
                        encut=cfg["encut"], threads=1)
shape = tuple(cfg["shape"]) if cfg.get("shape") else None

#@RSS_BASELINE@


base_kb, imports_peak_kb, rss_method = rss_baseline()
fin = lambda v: None if not np.isfinite(v) else float(v)


def numba_cache_stats():
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


runs = {}
for label in ("cold", "warm"):
    t0 = time.perf_counter()
    res = compute_landscape(st, ion, settings=settings, shape=shape)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs[label] = {
        "barriers": {d: fin(v) for d, v in res.barriers.items()},
        "timings": dict(res.timings, wall=wall),
        "pair_evaluations": int(res.pair_evaluations),
        "pairs_per_s_grid": res.pair_evaluations / res.timings["grid"],
        "grid_shape": [int(x) for x in res.grid_shape],
        "points": int(np.prod(res.grid_shape)),
        "sites": len(res.sites),
        "hops": len(res.hops),
        "rss_peak_mb": peak_kb / 1024.0,  # since the reset after imports (see rss_method)
        "numba_cache_hits_misses_cumulative": numba_cache_stats(),
    }
    if label == "cold" and grid_out != "-":
        np.save(grid_out, np.asarray(res.energy, dtype=np.float64))
    del res

out = {
    "runs": runs,
    "rss_baseline_mb": base_kb / 1024.0,
    "rss_imports_peak_mb": imports_peak_kb / 1024.0,
    "rss_peak_compute_mb": runs["warm"]["rss_peak_mb"],
    "rss_peak_mb": max(runs["warm"]["rss_peak_mb"], imports_peak_kb / 1024.0),
    "rss_delta_mb": runs["warm"]["rss_peak_mb"] - base_kb / 1024.0,
    "rss_method": rss_method,
    "imports_s": t_import,
    "bvlain_importable": importlib.util.find_spec("bvlain") is not None,
}
real_stdout.write(json.dumps(out) + "\n")
'''

# ---------------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_bvlain_venv() -> None:
    """Create benchmarks/.venv-bvlain with bvlain==0.25.1 unless it is already there."""
    py = venv_python()
    if py.exists():
        r = subprocess.run(
            [str(py), "-c", "import importlib.metadata as m; print(m.version('bvlain'))"],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0 and r.stdout.strip() == BVLAIN_VERSION:
            return
    log(
        f"creating {VENV} with bvlain=={BVLAIN_VERSION} (numpy, scipy, pandas, ase, pymatgen, joblib)..."
    )
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + [f"bvlain=={BVLAIN_VERSION}"], check=True)


def pin_prefix(core: int | None) -> list[str]:
    if core is None:
        return []
    ts = shutil.which("taskset")
    if ts and subprocess.run([ts, "-c", str(core), "true"], capture_output=True).returncode == 0:
        return [ts, "-c", str(core)]
    log("warning: taskset unavailable; the workers are not pinned (thread counts are still 1)")
    return []


def worker_env(clean_pythonpath: bool) -> dict[str, str]:
    env = dict(os.environ)
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ):
        env[var] = "1"
    if clean_pythonpath:
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
    return env


def run_worker(cmd: list[str], env: dict[str, str], cwd: str, timeout: float = 3600) -> dict:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"worker failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-4000:]}")
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    return json.loads(lines[-1])


def bvlain_bisection(threshold: float | None, encut: float = ENCUT) -> float | None:
    """bvlain's answer given the exact grid threshold (points with E - Emin < probe are kept).

    bvlain bisects [0, encut] until the bracket is <= 0.01 eV and returns round(upper end, 4).
    """
    t = math.inf if threshold is None else threshold
    lo, hi, barrier = 0.0, encut, math.inf
    while hi - lo > 0.01:
        probe = (lo + hi) / 2
        if probe > t:
            hi = probe
            barrier = round(hi, 4)
        else:
            lo = probe
    return None if math.isinf(barrier) else barrier


def delta(a: float | None, b: float | None) -> float | None:
    """|a - b| with None meaning inf: 0 if both inf, inf (as the string "inf") if only one is."""
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        return math.inf
    return abs(a - b)


def fmt_e(v: float | None, nd: int = 3) -> str:
    return "inf" if v is None else f"{v:.{nd}f}"


def fmt_d(v: float | None) -> str:
    if v is None:
        return "-"
    return "inf" if math.isinf(v) else f"{v:.4f}"


def ratio(a: float, b: float, floor_mb: float = 1.0) -> float | None:
    """a / b for memory above baseline; None when b is below floor_mb (not measurable)."""
    return a / b if b >= floor_mb else None


def fmt_x(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}×"


def three(b: dict, nd: int = 3) -> str:
    return " / ".join(fmt_e(b[k], nd) for k in DIMS)


def three_d(b: dict) -> str:
    return " / ".join(fmt_d(b[k]) for k in DIMS)


def gs(shape) -> str:
    return "×".join(map(str, shape))


def col(split: dict, key: str) -> str:
    return " / ".join(fmt_d(split[k][key]) for k in DIMS)


def jsonable(x):
    """inf/nan -> None so that the JSON stays strict."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    return x


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024**2
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "ram_gb": mem_gb,
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }


def ionscreen_versions() -> dict:
    import numba
    import numpy as np

    def ver(name: str) -> str | None:
        try:
            return _md.version(name)
        except _md.PackageNotFoundError:
            return None

    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    rev = git.stdout.strip() if git.returncode == 0 else None
    if rev and dirty.stdout.strip():
        rev += "+dirty"
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "pymatgen": ver("pymatgen") or ver("pymatgen-core"),
        "scipy": ver("scipy"),
        "ionscreen": ver("ionscreen"),
        "ionscreen_git": rev,
    }


# ---------------------------------------------------------------------------------- diagnostics


def k_check(bv_grid_k, is_grid, bv_barriers_k) -> dict:
    """bvlain with more neighbours than its default k = 100 against ionscreen's same-grid energies."""
    import numpy as np

    from ionscreen.kernels import percolation as kperc

    core = bv_grid_k[:-1, :-1, :-1]
    low = (core - core.min() < ENCUT) | (is_grid - is_grid.min() < ENCUT)
    th = [float(x) for x in kperc.percolation_thresholds(np.ascontiguousarray(core), 26, ENCUT)]
    return {
        "k": K_CHECK,
        "max_abs_diff_low_eV": float(np.abs(core - is_grid)[low].max()),
        "bvlain_barriers": bv_barriers_k,
        "ionscreen_percolation_on_that_grid": dict(
            zip(DIMS, [x if math.isfinite(x) else None for x in th])
        ),
    }


def grid_diagnostics(bv_grid, is_grid, is_thresholds, bv_barriers) -> dict:
    """Where a same-grid |ΔE| comes from: bisection, percolation/duplicated plane, or energies."""
    import numpy as np

    from ionscreen.kernels import percolation as kperc

    core = bv_grid[:-1, :-1, :-1]
    dup = max(
        float(np.max(np.abs(bv_grid[-1] - bv_grid[0]))),
        float(np.max(np.abs(bv_grid[:, -1] - bv_grid[:, 0]))),
        float(np.max(np.abs(bv_grid[:, :, -1] - bv_grid[:, :, 0]))),
    )
    d = {"duplicated_plane_max_abs_diff_eV": dup}
    if core.shape != is_grid.shape:
        d["shape_mismatch"] = [list(core.shape), list(is_grid.shape)]
        return d
    rel_bv, rel_is = core - core.min(), is_grid - is_grid.min()
    low = (rel_bv < ENCUT) | (rel_is < ENCUT)
    diff = np.abs(rel_bv - rel_is)
    d["max_abs_diff_low_eV"] = float(np.abs(core - is_grid)[low].max())  # absolute energies
    d.update(
        {
            "energy_min_bvlain_eV": float(core.min()),
            "energy_min_ionscreen_eV": float(is_grid.min()),
            "max_abs_diff_rel_low_eV": float(
                diff[low].max()
            ),  # relative to each grid's minimum, E < encut
            "mean_abs_diff_rel_low_eV": float(diff[low].mean()),
            "low_points": int(low.sum()),
            "argmin_same": bool(np.argmin(core) == np.argmin(is_grid)),
        }
    )
    # ionscreen's exact-to-the-grid percolation on bvlain's energies (without its duplicated plane)
    th_on_bv = [
        float(x) for x in kperc.percolation_thresholds(np.ascontiguousarray(core), 26, ENCUT)
    ]
    th_on_bv = [None if not math.isfinite(x) else x for x in th_on_bv]
    d["ionscreen_percolation_on_bvlain_grid"] = dict(zip(DIMS, th_on_bv))
    d["bisection_of_that"] = {k: bvlain_bisection(v) for k, v in zip(DIMS, th_on_bv)}
    d["bisection_of_ionscreen"] = {k: bvlain_bisection(is_thresholds[k]) for k in DIMS}
    # split |ΔE| = |bvlain - ionscreen| into its pieces
    d["split"] = {
        k: {
            "bisection (0.01 eV, upper end)": delta(
                d["bisection_of_ionscreen"][k], is_thresholds[k]
            ),
            "grid energies (k=100 truncation etc.)": delta(
                d["bisection_of_that"][k], d["bisection_of_ionscreen"][k]
            ),
            "percolation algorithm / duplicated plane": delta(
                bv_barriers[k], d["bisection_of_that"][k]
            ),
            "threshold on bvlain grid vs ionscreen grid": delta(
                th_on_bv[DIMS.index(k)], is_thresholds[k]
            ),
        }
        for k in DIMS
    }
    return d


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="only the 0.2 Å cases")
    ap.add_argument(
        "--core", type=int, default=0, help="CPU core to pin the workers to (default 0)"
    )
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset")
    ap.add_argument(
        "--no-k-check",
        action="store_true",
        help=f"skip the diagnostic bvlain run with k = {K_CHECK} neighbours (grids <= {K_CHECK_MAX_POINTS:,} points)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"JSON output (default {OUT_DEFAULT.relative_to(REPO)})",
    )
    args = ap.parse_args(argv)

    out_path = args.out or (
        OUT_DEFAULT.with_name("bvse_vs_bvlain_quick.json") if args.quick else OUT_DEFAULT
    )
    steps = STEPS_QUICK if args.quick else STEPS_FULL
    t_start = time.perf_counter()

    ensure_bvlain_venv()
    pin = pin_prefix(None if args.no_pin else args.core)
    env_bv, env_is = worker_env(clean_pythonpath=True), worker_env(clean_pythonpath=False)

    import numpy as np

    from ionscreen.structures.prototypes import get_prototype

    report: dict = {
        "benchmark": "BVSE: ionscreen vs bvlain " + BVLAIN_VERSION,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "pinning": {
            "taskset": " ".join(pin) or None,
            "threads": "OMP/OPENBLAS/MKL/NUMBA/VECLIB/NUMEXPR = 1; ionscreen threads=1",
        },
        "settings": {
            "bvlain": {
                "r_cut": R_CUT_BVLAIN,
                "k": BVLAIN_K,
                "encut": ENCUT,
                "f": 0.74,
                "covalent_radii": "ASE (bvlain default)",
                "oxi_check": False,
            },
            "ionscreen_same_grid": {
                "shape": "bvlain size - 1 per axis",
                "cutoff": R_CUT_BVLAIN,
                "modes": ["exact", "table"],
                "encut": ENCUT,
                "radii": "ase",
            },
            "ionscreen_defaults": {
                "resolution": "the step",
                "cutoff": 7.0,
                "mode": "table",
                "encut": ENCUT,
            },
        },
        "versions": {"ionscreen_env": ionscreen_versions()},
        "notes": [
            "barriers in eV relative to the grid minimum; null = no percolation below encut (inf)",
            "bvlain bisects the threshold to 0.01 eV and returns the upper end of the bracket; ionscreen "
            "reports the exact grid threshold (grid value, no off-grid refinement)",
            "ionscreen totals include insertion sites and hops (with off-grid refinement), which bvlain "
            "does not compute",
            "timings are wall-clock on a possibly shared machine: compare within this run only",
        ],
        "cases": [],
    }

    with tempfile.TemporaryDirectory(prefix="bench_bvse_") as tmp:
        tmpd = Path(tmp)
        bv_script, is_script = tmpd / "bvlain_worker.py", tmpd / "ionscreen_worker.py"
        bv_script.write_text(textwrap.dedent(BVLAIN_WORKER).replace("#@RSS_BASELINE@", RSS_BASELINE))
        is_script.write_text(textwrap.dedent(IONSCREEN_WORKER).replace("#@RSS_BASELINE@", RSS_BASELINE))

        structure_files = {}
        for proto, _, _ in CASES:
            sj = tmpd / f"{proto}.json"
            sj.write_text(json.dumps(get_prototype(proto).build(with_ion="native").as_dict()))
            structure_files[proto] = sj

        # Populate numba's on-disk cache (not measured) so that "cold" means cache loading, as
        # in a user's second session, rather than compilation after a source change.
        proto0, _, ion0 = CASES[0]
        for mode in ("exact", "table"):
            cfg = {"resolution": 0.2, "cutoff": 7.0, "mode": mode, "shape": None, "encut": ENCUT}
            try:
                w = run_worker(
                    pin
                    + [
                        sys.executable,
                        str(is_script),
                        str(structure_files[proto0]),
                        ion0,
                        json.dumps(cfg),
                        "-",
                    ],
                    env_is,
                    tmp,
                )
                log(
                    f"numba cache warm-up ({mode}): hits/misses {w['runs']['cold']['numba_cache_hits_misses_cumulative']}"
                )
            except RuntimeError as exc:
                log(f"warning: numba cache warm-up failed ({mode}): {exc}")

        for proto, ion_bv, ion_is in CASES:
            sj = structure_files[proto]
            for step in steps:
                tag = f"{proto}_{step}"
                log(
                    f"[{time.perf_counter() - t_start:7.1f} s] {proto} {ion_bv} {step} Å: bvlain ..."
                )
                bv_grid_path = tmpd / f"bv_{tag}.npy"
                bv = run_worker(
                    pin
                    + [
                        str(venv_python()),
                        str(bv_script),
                        str(sj),
                        ion_bv,
                        str(step),
                        str(R_CUT_BVLAIN),
                        str(ENCUT),
                        str(bv_grid_path),
                    ],
                    env_bv,
                    tmp,
                )
                report["versions"]["bvlain_env"] = bv.pop("versions")
                same_shape = [n - 1 for n in bv["grid_shape"]]

                configs = {
                    "same_grid_exact": {
                        "resolution": step,
                        "cutoff": R_CUT_BVLAIN,
                        "mode": "exact",
                        "shape": same_shape,
                        "encut": ENCUT,
                    },
                    "same_grid_table": {
                        "resolution": step,
                        "cutoff": R_CUT_BVLAIN,
                        "mode": "table",
                        "shape": same_shape,
                        "encut": ENCUT,
                    },
                    "defaults_table": {
                        "resolution": step,
                        "cutoff": 7.0,
                        "mode": "table",
                        "shape": None,
                        "encut": ENCUT,
                    },
                    "defaults_exact": {
                        "resolution": step,
                        "cutoff": 7.0,
                        "mode": "exact",
                        "shape": None,
                        "encut": ENCUT,
                    },
                }
                iscr = {}
                is_grid_path = tmpd / f"is_{tag}.npy"
                for name, cfg in configs.items():
                    log(
                        f"[{time.perf_counter() - t_start:7.1f} s] {proto} {ion_is} {step} Å: ionscreen {name} ..."
                    )
                    gp = str(is_grid_path) if name == "same_grid_exact" else "-"
                    iscr[name] = run_worker(
                        pin
                        + [sys.executable, str(is_script), str(sj), ion_is, json.dumps(cfg), gp],
                        env_is,
                        tmp,
                    )
                    iscr[name]["config"] = cfg

                ref = iscr["same_grid_exact"]["runs"]["warm"]["barriers"]
                tab = iscr["same_grid_table"]["runs"]["warm"]["barriers"]
                diag = grid_diagnostics(
                    np.load(bv_grid_path), np.load(is_grid_path), ref, bv["barriers"]
                )
                if not args.no_k_check and bv["points"] <= K_CHECK_MAX_POINTS:
                    log(
                        f"[{time.perf_counter() - t_start:7.1f} s] {proto} {ion_bv} {step} Å: bvlain k={K_CHECK} (diagnostic) ..."
                    )
                    bvk_path = tmpd / f"bvk_{tag}.npy"
                    bvk = run_worker(
                        pin
                        + [str(venv_python()), str(bv_script), str(sj), ion_bv, str(step)]
                        + [str(R_CUT_BVLAIN), str(ENCUT), str(bvk_path), str(K_CHECK)],
                        env_bv,
                        tmp,
                    )
                    diag["k_check"] = k_check(
                        np.load(bvk_path), np.load(is_grid_path), bvk["barriers"]
                    )
                dflt = iscr["defaults_table"]
                case = {
                    "structure": proto,
                    "ion": ion_is,
                    "step": step,
                    "bvlain": bv,
                    "ionscreen": iscr,
                    "abs_dE_same_grid_exact": {k: delta(bv["barriers"][k], ref[k]) for k in DIMS},
                    "abs_dE_same_grid_table": {k: delta(bv["barriers"][k], tab[k]) for k in DIMS},
                    "abs_dE_table_vs_exact_same_grid": {k: delta(tab[k], ref[k]) for k in DIMS},
                    "abs_dE_defaults_vs_bvlain": {
                        k: delta(bv["barriers"][k], dflt["runs"]["warm"]["barriers"][k])
                        for k in DIMS
                    },
                    "speedup_defaults": {
                        "cold": bv["timings"]["total"] / dflt["runs"]["cold"]["timings"]["total"],
                        "warm": bv["timings"]["total"] / dflt["runs"]["warm"]["timings"]["total"],
                    },
                    "speedup_same_grid_exact": {
                        "cold": bv["timings"]["total"]
                        / iscr["same_grid_exact"]["runs"]["cold"]["timings"]["total"],
                        "warm": bv["timings"]["total"]
                        / iscr["same_grid_exact"]["runs"]["warm"]["timings"]["total"],
                    },
                    "memory_ratio_defaults": {
                        "delta": ratio(bv["rss_delta_mb"], dflt["rss_delta_mb"]),
                        "absolute": bv["rss_peak_mb"] / dflt["rss_peak_mb"],
                    },
                    "memory_ratio_same_grid_exact": {
                        "delta": ratio(bv["rss_delta_mb"], iscr["same_grid_exact"]["rss_delta_mb"]),
                        "absolute": bv["rss_peak_mb"] / iscr["same_grid_exact"]["rss_peak_mb"],
                    },
                    "throughput_Mpairs_per_s": {
                        name: iscr[name]["runs"]["warm"]["pairs_per_s_grid"] / 1e6 for name in iscr
                    },
                    "diagnostics": diag,
                }
                report["cases"].append(case)
                log(
                    f"    bvlain {fmt_e(bv['barriers']['1D'])}/{fmt_e(bv['barriers']['2D'])}/"
                    f"{fmt_e(bv['barriers']['3D'])} in {bv['timings']['total']:.1f} s; ionscreen same grid "
                    f"{fmt_e(ref['1D'])}/{fmt_e(ref['2D'])}/{fmt_e(ref['3D'])}"
                )

    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["runtime_s"] = time.perf_counter() - t_start
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(jsonable(report), indent=1, allow_nan=False))
    print_report(report, out_path)
    return 0


def print_report(rep: dict, out_path: Path) -> None:
    m, v = rep["machine"], rep["versions"]
    ve, vb = v["ionscreen_env"], v.get("bvlain_env", {})
    p = print
    p(f"# BVSE benchmark: ionscreen vs bvlain {BVLAIN_VERSION}\n")
    p(f"- date: {rep['date']}")
    p(
        f"- machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['cores_available']} available), "
        f"{m['ram_gb']:.1f} GB RAM; load average {m['loadavg_start'][0]:.2f} at start, "
        f"{m['loadavg_end'][0]:.2f} at end"
    )
    p(f"- pinning: {rep['pinning']['taskset'] or 'none'}; {rep['pinning']['threads']}")
    p(
        f"- ionscreen env: python {ve['python']}, numpy {ve['numpy']}, numba {ve['numba']}, pymatgen "
        f"{ve['pymatgen']}, ionscreen {ve['ionscreen']} ({ve['ionscreen_git']})"
    )
    p(
        f"- bvlain env: python {vb.get('python')}, bvlain {vb.get('bvlain')}, numpy {vb.get('numpy')}, scipy "
        f"{vb.get('scipy')}, pymatgen {vb.get('pymatgen')}, ase {vb.get('ase')}"
    )
    p(
        f"- bvlain: r_cut {R_CUT_BVLAIN} Å, k = {BVLAIN_K}, encut {ENCUT} eV; ionscreen same grid: bvlain's "
        f"points minus its duplicated plane, cutoff {R_CUT_BVLAIN} Å; ionscreen defaults: cutoff 7 Å, table mode"
    )
    p(f"- total benchmark runtime {rep['runtime_s']:.0f} s\n")

    p("## Accuracy: barriers on the same grid (eV; E1D / E2D / E3D)\n")
    p(
        "| case | step Å | bvlain points | bvlain | ionscreen exact | ionscreen table | |ΔE| exact vs bvlain "
        "| |ΔE| table vs bvlain | bisection replayed on ionscreen | ionscreen defaults |"
    )
    p("|---|---|---|---|---|---|---|---|---|---|")
    for c in rep["cases"]:
        bv = c["bvlain"]
        ex = c["ionscreen"]["same_grid_exact"]["runs"]["warm"]
        tb = c["ionscreen"]["same_grid_table"]["runs"]["warm"]
        df = c["ionscreen"]["defaults_table"]["runs"]["warm"]
        p(
            f"| {c['structure']} {c['ion']} | {c['step']} | {bv['points']:,} ({gs(bv['grid_shape'])}) | "
            f"{three(bv['barriers'], 4)} | {three(ex['barriers'], 4)} | {three(tb['barriers'], 4)} | "
            f"{three_d(c['abs_dE_same_grid_exact'])} | {three_d(c['abs_dE_same_grid_table'])} | "
            f"{three(c['diagnostics'].get('bisection_of_ionscreen', {k: None for k in DIMS}), 4)} | "
            f"{three(df['barriers'])} ({gs(df['grid_shape'])}) |"
        )

    p("\n## Speed and memory (bvlain vs ionscreen defaults: 7 Å, table mode, same step)\n")
    p(
        "| case | step Å | bvlain total s (distribution + percolation) | ionscreen total s cold / warm "
        "(grid + percolation, warm) | speed-up cold / warm | same grid 10 Å exact: ionscreen warm s, speed-up "
        "| bvlain peak RSS MB (above baseline) | ionscreen peak RSS MB (above baseline) | memory ratio above "
        "baseline / absolute |"
    )
    p("|---|---|---|---|---|---|---|---|---|")
    for c in rep["cases"]:
        bv = c["bvlain"]
        d = c["ionscreen"]["defaults_table"]
        sg = c["ionscreen"]["same_grid_exact"]
        bt, wt, ct = bv["timings"], d["runs"]["warm"]["timings"], d["runs"]["cold"]["timings"]
        p(
            f"| {c['structure']} {c['ion']} | {c['step']} | {bt['total']:.2f} ({bt['distribution']:.2f} + "
            f"{bt['percolation']:.2f}) | {ct['total']:.3f} / {wt['total']:.3f} ({wt['grid']:.3f} + "
            f"{wt['percolation']:.3f}) | {c['speedup_defaults']['cold']:.0f}× / {c['speedup_defaults']['warm']:.0f}× | "
            f"{sg['runs']['warm']['timings']['total']:.3f} s, {c['speedup_same_grid_exact']['warm']:.0f}× | "
            f"{bv['rss_peak_mb']:.0f} ({bv['rss_delta_mb']:.0f}) | {d['rss_peak_mb']:.0f} ({d['rss_delta_mb']:.0f}) | "
            f"{fmt_x(c['memory_ratio_defaults']['delta'])} / {c['memory_ratio_defaults']['absolute']:.1f}× |"
        )

    p("\n## Grid kernel throughput (ionscreen, warm, one core; pair evaluations / grid time)\n")
    p(
        "| case | step Å | defaults 7 Å exact: pairs, M/s | defaults 7 Å table: M/s | same grid 10 Å exact: "
        "pairs, M/s | same grid 10 Å table: M/s |"
    )
    p("|---|---|---|---|---|---|")
    for c in rep["cases"]:
        t, i = c["throughput_Mpairs_per_s"], c["ionscreen"]
        p(
            f"| {c['structure']} {c['ion']} | {c['step']} | "
            f"{i['defaults_exact']['runs']['warm']['pair_evaluations']:,}, {t['defaults_exact']:.1f} | "
            f"{t['defaults_table']:.1f} | {i['same_grid_exact']['runs']['warm']['pair_evaluations']:,}, "
            f"{t['same_grid_exact']:.1f} | {t['same_grid_table']:.1f} |"
        )

    p("\n## Where the same-grid |ΔE| comes from (eV; 1D / 2D / 3D)\n")
    p(
        "| case | step Å | bvlain bisection | grid energies | percolation / duplicated plane | max |ΔE_grid| "
        f"(E < encut) k=100 / k={K_CHECK} | bvlain k={K_CHECK} barriers | duplicated plane max diff |"
    )
    p("|---|---|---|---|---|---|---|---|")
    for c in rep["cases"]:
        dg = c["diagnostics"]
        sp = dg.get("split")
        kc = dg.get("k_check")
        if not sp:
            p(
                f"| {c['structure']} {c['ion']} | {c['step']} | shape mismatch {dg.get('shape_mismatch')} | | | | |"
            )
            continue
        p(
            f"| {c['structure']} {c['ion']} | {c['step']} | {col(sp, 'bisection (0.01 eV, upper end)')} | "
            f"{col(sp, 'grid energies (k=100 truncation etc.)')} | {col(sp, 'percolation algorithm / duplicated plane')} | "
            f"{dg['max_abs_diff_low_eV']:.1e} / "
            + (f"{kc['max_abs_diff_low_eV']:.1e}" if kc else "-")
            + " | "
            + (three(kc["bvlain_barriers"], 4) if kc else "-")
            + f" | {dg['duplicated_plane_max_abs_diff_eV']:.1e} |"
        )

    compiled = [
        f"{c['structure']} {c['step']} {n}"
        for c in rep["cases"]
        for n, r in c["ionscreen"].items()
        if r["runs"]["cold"]["numba_cache_hits_misses_cumulative"][1] > 0
    ]
    if compiled:
        p(
            "\nnote: numba compiled (cache misses) during the cold call of: "
            + ", ".join(compiled)
            + " — those cold times include compilation, not only cache loading"
        )
    worst = max(
        (x for c in rep["cases"] for x in c["abs_dE_same_grid_exact"].values()), default=0.0
    )
    p(
        f"\nlargest same-grid |ΔE| (exact mode): {fmt_d(worst)} eV"
        + ("  <-- above 0.02 eV, see the diagnostics" if worst > 0.02 else "")
    )
    p(f"JSON: {out_path}")


if __name__ == "__main__":
    sys.exit(main())
