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
import time
from dataclasses import dataclass
from pathlib import Path

from machine import machine_info, write_json
from report import fmt_e, print_report

from ionscreen.structures.ions import DIMS, WORKING_IONS, WorkingIon

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-bvlain"
BVLAIN_VERSION = "0.25.1"
OUT_DEFAULT = HERE / "out" / "bvse_vs_bvlain.json"
# The workers are scripts run by each tool's own interpreter (bvlain's venv has no ionscreen).
BVLAIN_WORKER = HERE / "workers" / "bvlain_worker.py"
IONSCREEN_WORKER = HERE / "workers" / "ionscreen_worker.py"

R_CUT_BVLAIN = 10.0  # bvlain's r_cut (Å), also ionscreen's cutoff on the "same grid"
ENCUT = 5.0  # eV, both tools
BVLAIN_K = 100  # bvlain's default number of neighbours (not changed)
K_CHECK = 400  # diagnostic bvlain run with more neighbours (0.2 Å grids only: memory grows with k)
K_CHECK_MAX_POINTS = 100_000

CASES: list[tuple[str, WorkingIon]] = [
    # (prototype, mobile ion)
    ("LiFePO4", WORKING_IONS["Li"]),
    ("MgCr2O4", WORKING_IONS["Mg"]),
]
STEPS_FULL = (0.2, 0.1)
STEPS_QUICK = (0.2,)


def bvlain_label(ion: WorkingIon) -> str:
    """bvlain's spelling of a mobile cation: "Li1+", "Mg2+"."""
    return f"{ion.name}{ion.charge}+"


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


def ratio(a: float, b: float, floor_mb: float = 1.0) -> float | None:
    """a / b for memory above baseline; None when b is below floor_mb (not measurable)."""
    return a / b if b >= floor_mb else None


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


# ---------------------------------------------------------------------------------- runs


@dataclass
class Workers:
    """Runs the two worker scripts pinned, single-threaded, in ``tmp`` (which holds their
    inputs and grids), logging progress with the time since ``t_start``."""

    pin: list[str]
    tmp: Path
    t_start: float
    env_bv: dict[str, str]
    env_is: dict[str, str]

    def log(self, msg: str) -> None:
        log(f"[{time.perf_counter() - self.t_start:7.1f} s] {msg}")

    def bvlain(self, structure: Path, ion: str, step: float, grid: Path, k: int | None = None) -> dict:
        cmd = [str(venv_python()), str(BVLAIN_WORKER), str(structure), ion, str(step)]
        cmd += [str(R_CUT_BVLAIN), str(ENCUT), str(grid)] + ([] if k is None else [str(k)])
        return run_worker(self.pin + cmd, self.env_bv, str(self.tmp))

    def ionscreen(self, structure: Path, ion: str, cfg: dict, grid: Path | None = None) -> dict:
        cmd = [sys.executable, str(IONSCREEN_WORKER), str(structure), ion, json.dumps(cfg)]
        cmd.append("-" if grid is None else str(grid))
        return run_worker(self.pin + cmd, self.env_is, str(self.tmp))


def ionscreen_configs(step: float, same_shape: list[int]) -> dict[str, dict]:
    """ionscreen's four runs per case: bvlain's grid at its cutoff (exact, table) and
    ionscreen's defaults at the same step (table, exact)."""
    def cfg(cutoff: float, mode: str, shape: list[int] | None) -> dict:
        return {"resolution": step, "cutoff": cutoff, "mode": mode, "shape": shape, "encut": ENCUT}

    return {
        "same_grid_exact": cfg(R_CUT_BVLAIN, "exact", same_shape),
        "same_grid_table": cfg(R_CUT_BVLAIN, "table", same_shape),
        "defaults_table": cfg(7.0, "table", None),
        "defaults_exact": cfg(7.0, "exact", None),
    }


def warm_numba_cache(w: Workers, structure: Path, ion: str) -> None:
    """Populate numba's on-disk cache (not measured) so that "cold" means cache loading, as
    in a user's second session, rather than compilation after a source change."""
    for mode in ("exact", "table"):
        cfg = {"resolution": 0.2, "cutoff": 7.0, "mode": mode, "shape": None, "encut": ENCUT}
        try:
            r = w.ionscreen(structure, ion, cfg)
            log(f"numba cache warm-up ({mode}): hits/misses "
                f"{r['runs']['cold']['numba_cache_hits_misses_cumulative']}")
        except RuntimeError as exc:
            log(f"warning: numba cache warm-up failed ({mode}): {exc}")


def run_case(w: Workers, proto: str, ion: WorkingIon, step: float, structure: Path,
             k_check_on: bool) -> dict:
    """bvlain, the four ionscreen runs and the diagnostics of one (structure, ion, step)."""
    import numpy as np

    ion_bv, ion_is, tag = bvlain_label(ion), ion.label(), f"{proto}_{step}"
    w.log(f"{proto} {ion_bv} {step} Å: bvlain ...")
    bv_grid_path = w.tmp / f"bv_{tag}.npy"
    bv = w.bvlain(structure, ion_bv, step, bv_grid_path)

    iscr = {}
    is_grid_path = w.tmp / f"is_{tag}.npy"
    same_shape = [n - 1 for n in bv["grid_shape"]]
    for name, cfg in ionscreen_configs(step, same_shape).items():
        w.log(f"{proto} {ion_is} {step} Å: ionscreen {name} ...")
        grid = is_grid_path if name == "same_grid_exact" else None
        iscr[name] = w.ionscreen(structure, ion_is, cfg, grid)
        iscr[name]["config"] = cfg

    ref = iscr["same_grid_exact"]["runs"]["warm"]["barriers"]
    diag = grid_diagnostics(np.load(bv_grid_path), np.load(is_grid_path), ref, bv["barriers"])
    if k_check_on and bv["points"] <= K_CHECK_MAX_POINTS:
        w.log(f"{proto} {ion_bv} {step} Å: bvlain k={K_CHECK} (diagnostic) ...")
        bvk_path = w.tmp / f"bvk_{tag}.npy"
        bvk = w.bvlain(structure, ion_bv, step, bvk_path, K_CHECK)
        diag["k_check"] = k_check(np.load(bvk_path), np.load(is_grid_path), bvk["barriers"])
    return {"structure": proto, "ion": ion_is, "step": step, "bvlain": bv, "ionscreen": iscr,
            **compare(bv, iscr), "diagnostics": diag}


def compare(bv: dict, iscr: dict) -> dict:
    """bvlain against ionscreen for one case: barrier differences, speed-ups, memory ratios
    and the grid kernel's throughput."""
    ref = iscr["same_grid_exact"]["runs"]["warm"]["barriers"]
    tab = iscr["same_grid_table"]["runs"]["warm"]["barriers"]
    dflt, same = iscr["defaults_table"], iscr["same_grid_exact"]
    bvb, bv_total = bv["barriers"], bv["timings"]["total"]
    return {
        "abs_dE_same_grid_exact": {k: delta(bvb[k], ref[k]) for k in DIMS},
        "abs_dE_same_grid_table": {k: delta(bvb[k], tab[k]) for k in DIMS},
        "abs_dE_table_vs_exact_same_grid": {k: delta(tab[k], ref[k]) for k in DIMS},
        "abs_dE_defaults_vs_bvlain": {
            k: delta(bvb[k], dflt["runs"]["warm"]["barriers"][k]) for k in DIMS
        },
        "speedup_defaults": {
            run: bv_total / dflt["runs"][run]["timings"]["total"] for run in ("cold", "warm")
        },
        "speedup_same_grid_exact": {
            run: bv_total / same["runs"][run]["timings"]["total"] for run in ("cold", "warm")
        },
        "memory_ratio_defaults": {
            "delta": ratio(bv["rss_delta_mb"], dflt["rss_delta_mb"]),
            "absolute": bv["rss_peak_mb"] / dflt["rss_peak_mb"],
        },
        "memory_ratio_same_grid_exact": {
            "delta": ratio(bv["rss_delta_mb"], same["rss_delta_mb"]),
            "absolute": bv["rss_peak_mb"] / same["rss_peak_mb"],
        },
        "throughput_Mpairs_per_s": {
            name: iscr[name]["runs"]["warm"]["pairs_per_s_grid"] / 1e6 for name in iscr
        },
    }


def run_cases(w: Workers, steps: tuple[float, ...], k_check_on: bool) -> tuple[list[dict], dict]:
    """Every case at every step, and the bvlain environment's versions (reported by its worker)."""
    from ionscreen.structures.prototypes import get_prototype

    structure_files = {}
    for proto, _ in CASES:
        sj = w.tmp / f"{proto}.json"
        sj.write_text(json.dumps(get_prototype(proto).build(with_ion="native").as_dict()))
        structure_files[proto] = sj
    proto0, ion0 = CASES[0]
    warm_numba_cache(w, structure_files[proto0], ion0.label())

    cases, bvlain_versions = [], {}
    for proto, ion in CASES:
        for step in steps:
            case = run_case(w, proto, ion, step, structure_files[proto], k_check_on)
            bvlain_versions = case["bvlain"].pop("versions")
            cases.append(case)
            bb = case["bvlain"]["barriers"]
            ref = case["ionscreen"]["same_grid_exact"]["runs"]["warm"]["barriers"]
            log(
                f"    bvlain {fmt_e(bb['1D'])}/{fmt_e(bb['2D'])}/{fmt_e(bb['3D'])} in "
                f"{case['bvlain']['timings']['total']:.1f} s; ionscreen same grid "
                f"{fmt_e(ref['1D'])}/{fmt_e(ref['2D'])}/{fmt_e(ref['3D'])}"
            )
    return cases, bvlain_versions


# ---------------------------------------------------------------------------------- main


def report_header(pin: list[str]) -> dict:
    """The report's description of the run (machine, pinning, settings, versions, notes)."""
    return {
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_path = args.out or (
        OUT_DEFAULT.with_name("bvse_vs_bvlain_quick.json") if args.quick else OUT_DEFAULT
    )
    steps = STEPS_QUICK if args.quick else STEPS_FULL
    t_start = time.perf_counter()

    ensure_bvlain_venv()
    pin = pin_prefix(None if args.no_pin else args.core)
    report = report_header(pin)
    with tempfile.TemporaryDirectory(prefix="bench_bvse_") as tmp:
        w = Workers(pin, Path(tmp), t_start, env_bv=worker_env(clean_pythonpath=True),
                    env_is=worker_env(clean_pythonpath=False))
        report["cases"], bvlain_versions = run_cases(w, steps, not args.no_k_check)
    if bvlain_versions:
        report["versions"]["bvlain_env"] = bvlain_versions

    report["machine"]["loadavg_end"] = list(os.getloadavg())
    report["runtime_s"] = time.perf_counter() - t_start
    write_json(out_path, report)
    print_report(report, out_path, bvlain_version=BVLAIN_VERSION, k_check=K_CHECK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
