"""Markdown report of the BVSE benchmark (``bench_bvse.py``): formatting helpers and tables.

Every number comes from the report dict the benchmark writes as JSON, so the tables can be
reprinted from it; the bvlain version and the k of the diagnostic run are passed in.
"""

from __future__ import annotations

import math
from pathlib import Path

from ionscreen.structures.ions import DIMS


def fmt_e(v: float | None, nd: int = 3) -> str:
    """A barrier (eV); None is no percolation below encut."""
    return "inf" if v is None else f"{v:.{nd}f}"


def fmt_d(v: float | None) -> str:
    """A barrier difference (eV); None is not computed."""
    if v is None:
        return "-"
    return "inf" if math.isinf(v) else f"{v:.4f}"


def fmt_x(v: float | None) -> str:
    """A ratio ("8×"); None is not measurable."""
    return "-" if v is None else f"{v:.0f}×"


def three(b: dict, nd: int = 3) -> str:
    """E1D / E2D / E3D."""
    return " / ".join(fmt_e(b[k], nd) for k in DIMS)


def three_d(b: dict) -> str:
    """|ΔE| 1D / 2D / 3D."""
    return " / ".join(fmt_d(b[k]) for k in DIMS)


def gs(shape) -> str:
    """A grid shape, 51×30×23."""
    return "×".join(map(str, shape))


def col(split: dict, key: str) -> str:
    """One piece of the |ΔE| split, 1D / 2D / 3D."""
    return " / ".join(fmt_d(split[k][key]) for k in DIMS)


def _header(rep: dict, bvlain_version: str) -> None:
    m, v = rep["machine"], rep["versions"]
    ve, vb = v["ionscreen_env"], v.get("bvlain_env", {})
    sb = rep["settings"]["bvlain"]
    print(f"# BVSE benchmark: ionscreen vs bvlain {bvlain_version}\n")
    print(f"- date: {rep['date']}")
    print(
        f"- machine: {m['cpu']}, {m['logical_cores']} logical cores ({m['cores_available']} available), "
        f"{m['ram_gb']:.1f} GB RAM; load average {m['loadavg_start'][0]:.2f} at start, "
        f"{m['loadavg_end'][0]:.2f} at end"
    )
    print(f"- pinning: {rep['pinning']['taskset'] or 'none'}; {rep['pinning']['threads']}")
    print(
        f"- ionscreen env: python {ve['python']}, numpy {ve['numpy']}, numba {ve['numba']}, pymatgen "
        f"{ve['pymatgen']}, ionscreen {ve['ionscreen']} ({ve['ionscreen_git']})"
    )
    print(
        f"- bvlain env: python {vb.get('python')}, bvlain {vb.get('bvlain')}, numpy {vb.get('numpy')}, scipy "
        f"{vb.get('scipy')}, pymatgen {vb.get('pymatgen')}, ase {vb.get('ase')}"
    )
    print(
        f"- bvlain: r_cut {sb['r_cut']} Å, k = {sb['k']}, encut {sb['encut']} eV; ionscreen same grid: bvlain's "
        f"points minus its duplicated plane, cutoff {sb['r_cut']} Å; ionscreen defaults: cutoff 7 Å, table mode"
    )
    print(f"- total benchmark runtime {rep['runtime_s']:.0f} s\n")


def _accuracy(cases: list[dict]) -> None:
    print("## Accuracy: barriers on the same grid (eV; E1D / E2D / E3D)\n")
    print(
        "| case | step Å | bvlain points | bvlain | ionscreen exact | ionscreen table | |ΔE| exact vs bvlain "
        "| |ΔE| table vs bvlain | bisection replayed on ionscreen | ionscreen defaults |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        bv = c["bvlain"]
        ex = c["ionscreen"]["same_grid_exact"]["runs"]["warm"]
        tb = c["ionscreen"]["same_grid_table"]["runs"]["warm"]
        df = c["ionscreen"]["defaults_table"]["runs"]["warm"]
        print(
            f"| {c['structure']} {c['ion']} | {c['step']} | {bv['points']:,} ({gs(bv['grid_shape'])}) | "
            f"{three(bv['barriers'], 4)} | {three(ex['barriers'], 4)} | {three(tb['barriers'], 4)} | "
            f"{three_d(c['abs_dE_same_grid_exact'])} | {three_d(c['abs_dE_same_grid_table'])} | "
            f"{three(c['diagnostics'].get('bisection_of_ionscreen', {k: None for k in DIMS}), 4)} | "
            f"{three(df['barriers'])} ({gs(df['grid_shape'])}) |"
        )


def _speed_memory(cases: list[dict]) -> None:
    print("\n## Speed and memory (bvlain vs ionscreen defaults: 7 Å, table mode, same step)\n")
    print(
        "| case | step Å | bvlain total s (distribution + percolation) | ionscreen total s cold / warm "
        "(grid + percolation, warm) | speed-up cold / warm | same grid 10 Å exact: ionscreen warm s, speed-up "
        "| bvlain peak RSS MB (above baseline) | ionscreen peak RSS MB (above baseline) | memory ratio above "
        "baseline / absolute |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for c in cases:
        bv = c["bvlain"]
        d = c["ionscreen"]["defaults_table"]
        sg = c["ionscreen"]["same_grid_exact"]
        bt, wt, ct = bv["timings"], d["runs"]["warm"]["timings"], d["runs"]["cold"]["timings"]
        print(
            f"| {c['structure']} {c['ion']} | {c['step']} | {bt['total']:.2f} ({bt['distribution']:.2f} + "
            f"{bt['percolation']:.2f}) | {ct['total']:.3f} / {wt['total']:.3f} ({wt['grid']:.3f} + "
            f"{wt['percolation']:.3f}) | {c['speedup_defaults']['cold']:.0f}× / {c['speedup_defaults']['warm']:.0f}× | "
            f"{sg['runs']['warm']['timings']['total']:.3f} s, {c['speedup_same_grid_exact']['warm']:.0f}× | "
            f"{bv['rss_peak_mb']:.0f} ({bv['rss_delta_mb']:.0f}) | {d['rss_peak_mb']:.0f} ({d['rss_delta_mb']:.0f}) | "
            f"{fmt_x(c['memory_ratio_defaults']['delta'])} / {c['memory_ratio_defaults']['absolute']:.1f}× |"
        )


def _throughput(cases: list[dict]) -> None:
    print("\n## Grid kernel throughput (ionscreen, warm, one core; pair evaluations / grid time)\n")
    print(
        "| case | step Å | defaults 7 Å exact: pairs, M/s | defaults 7 Å table: M/s | same grid 10 Å exact: "
        "pairs, M/s | same grid 10 Å table: M/s |"
    )
    print("|---|---|---|---|---|---|")
    for c in cases:
        t, i = c["throughput_Mpairs_per_s"], c["ionscreen"]
        print(
            f"| {c['structure']} {c['ion']} | {c['step']} | "
            f"{i['defaults_exact']['runs']['warm']['pair_evaluations']:,}, {t['defaults_exact']:.1f} | "
            f"{t['defaults_table']:.1f} | {i['same_grid_exact']['runs']['warm']['pair_evaluations']:,}, "
            f"{t['same_grid_exact']:.1f} | {t['same_grid_table']:.1f} |"
        )


def _diagnostics(cases: list[dict], k_check: int) -> None:
    print("\n## Where the same-grid |ΔE| comes from (eV; 1D / 2D / 3D)\n")
    print(
        "| case | step Å | bvlain bisection | grid energies | percolation / duplicated plane | max |ΔE_grid| "
        f"(E < encut) k=100 / k={k_check} | bvlain k={k_check} barriers | duplicated plane max diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for c in cases:
        dg = c["diagnostics"]
        sp = dg.get("split")
        kc = dg.get("k_check")
        if not sp:
            print(
                f"| {c['structure']} {c['ion']} | {c['step']} | shape mismatch {dg.get('shape_mismatch')} | | | | |"
            )
            continue
        print(
            f"| {c['structure']} {c['ion']} | {c['step']} | {col(sp, 'bisection (0.01 eV, upper end)')} | "
            f"{col(sp, 'grid energies (k=100 truncation etc.)')} | {col(sp, 'percolation algorithm / duplicated plane')} | "
            f"{dg['max_abs_diff_low_eV']:.1e} / "
            + (f"{kc['max_abs_diff_low_eV']:.1e}" if kc else "-")
            + " | "
            + (three(kc["bvlain_barriers"], 4) if kc else "-")
            + f" | {dg['duplicated_plane_max_abs_diff_eV']:.1e} |"
        )


def _footer(cases: list[dict], out_path: Path) -> None:
    compiled = [
        f"{c['structure']} {c['step']} {n}"
        for c in cases
        for n, r in c["ionscreen"].items()
        if r["runs"]["cold"]["numba_cache_hits_misses_cumulative"][1] > 0
    ]
    if compiled:
        print(
            "\nnote: numba compiled (cache misses) during the cold call of: "
            + ", ".join(compiled)
            + " — those cold times include compilation, not only cache loading"
        )
    worst = max((x for c in cases for x in c["abs_dE_same_grid_exact"].values()), default=0.0)
    print(
        f"\nlargest same-grid |ΔE| (exact mode): {fmt_d(worst)} eV"
        + ("  <-- above 0.02 eV, see the diagnostics" if worst > 0.02 else "")
    )
    print(f"JSON: {out_path}")


def print_report(rep: dict, out_path: Path, *, bvlain_version: str, k_check: int) -> None:
    """Print the benchmark's markdown tables (the JSON of ``rep`` is at ``out_path``)."""
    _header(rep, bvlain_version)
    _accuracy(rep["cases"])
    _speed_memory(rep["cases"])
    _throughput(rep["cases"])
    _diagnostics(rep["cases"], k_check)
    _footer(rep["cases"], out_path)
