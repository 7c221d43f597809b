"""``ionscreen screen``, ``ionscreen rank`` and ``ionscreen export``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ionscreen.errors import IonscreenError

from . import mpi
from .cli_common import console, fmt, mpi_world, run_engine, screen_options, weights_option


def _open_store(spec: str | Path, readonly: bool = True):  # type: ignore[no-untyped-def]
    """``--store``: a screen folder / its sqlite, a ``mongodb://`` URI or a launchpad yaml."""
    from .store_mongo import open_store

    try:
        return open_store(spec, readonly=readonly)
    except IonscreenError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc


def _reason_not_ranked(h: Any) -> str:
    """The short reason a host has no rank, from its notes."""
    codes = h.note_codes()
    for code, text in (("implausible", "implausible barrier"), ("no_capacity", "no capacity"),
                       ("not_promoted", "not promoted")):
        if code in codes:
            return text
    return "no barrier" if h.barrier is None else "not ranked"


def _print_ranked(records: list[Any], top: int, weights: Any) -> None:
    from ionscreen.screening.rank import pre_screen_text, rank_all, ranked_tier

    ranked = rank_all(records, weights=weights, include_unranked=True)
    for ion, hosts in ranked.items():
        tier = ranked_tier(hosts)
        lst = [h for h in hosts if h.rank is not None]
        why = pre_screen_text(tier)
        what = (f"by {str(tier).split(' (')[0]}" + (" — a PRE-SCREEN" if why else ""))
        t = Table(title=f"{ion}: ranked hosts, {what}; mobility class first, then score")
        num = ("rank", "barrier (eV)", "mAh/g", "V", "Wh/kg")
        for c in ("rank", "formula", "source", "barrier (eV)", "class", "mAh/g", "V", "Wh/kg",
                  "flags", "Pareto"):
            t.add_column(c, justify="right" if c in num else "left", overflow="fold")
        for h in lst[:top]:
            cap, volt, spec = h.capacity_mAh_g, h.record.voltage_V, h.specific_energy_Wh_kg
            b = fmt(h.barrier) + ("" if h.uncertainty is None else f" ± {h.uncertainty:.2f}")
            t.add_row(str(h.rank), h.record.formula, h.record.source[:40], b, str(h.mobility),
                      "—" if cap is None else f"{cap:.0f}",
                      "?" if volt is None else f"{volt:.2f}", "?" if spec is None else f"{spec:.0f}",
                      ", ".join(h.flags), "yes" if h.pareto else "")
        console.print(t)
        if why:
            console.print(f"  {ion}: a pre-screen, {why}.")
        if lst and all(h.record.voltage_V is None for h in lst):
            console.print(f"  {ion}: voltage unknown (?): no ML voltage ran (--voltage chgnet "
                          "with the mlip extra); the score uses capacity.")
        rest = [h for h in hosts if h.rank is None and h.barrier is not None]
        if rest:
            nt = Table(title=f"{ion}: {len(rest)} host(s) not ranked (listed for what they are; "
                             "not a finding)")
            for c in ("formula", "source", "barrier (eV)", "produced by", "class", "mAh/g",
                      "why not ranked", "flags"):
                nt.add_column(c, justify="right" if c in ("barrier (eV)", "mAh/g") else "left",
                              overflow="fold")
            for h in rest[:top]:
                cap = h.capacity_mAh_g
                nt.add_row(h.record.formula, h.record.source[:40], fmt(h.barrier),
                           str(h.barrier_tier).split(" (")[0], str(h.mobility or "—"),
                           "—" if cap is None else f"{cap:.0f}", _reason_not_ranked(h),
                           ", ".join(h.flags))
            console.print(nt)


def _print_failures(bad: list[Any]) -> None:
    """Failed records: candidates and later-step jobs (NEB, voltage), as ``collect_records`` lists them."""
    from ionscreen.screening.rank import clip_words

    if not bad:
        return
    t = Table(title=f"{len(bad)} failed jobs (reasons also in failures.csv)")
    for c in ("formula", "ion", "source", "step", "error", "reason"):
        t.add_column(c, overflow="fold")
    for r in bad:
        t.add_row(str(r.formula), str(r.working_ion or "—"), str(r.source)[:40], r.failure.step,
                  str(r.failure.error),
                  clip_words(str(r.failure.reason), 300, " … (whole reason in failures.csv)"))
    console.print(t)


def _same_settings(store_path: Path, spec: Any, force: bool) -> None:
    """Stop (``click.UsageError``) when ``store_path`` holds a screen with other settings, naming
    them; with ``force``, set that store aside instead (nothing is deleted)."""
    from .screen import set_aside, settings_conflicts
    from .store_sqlite import SQLiteStore

    if not store_path.exists():
        return
    old = SQLiteStore.open_readonly(store_path)
    try:
        diffs = settings_conflicts(old.runs(), spec.as_dict())
    finally:
        old.close()
    if not diffs:
        return
    if force:
        moved = set_aside(store_path)
        console.print(f"--force: the earlier screen's store is kept as {moved}; starting a new one")
        return
    raise click.UsageError(
        f"{store_path.parent}/ holds a screen with other settings ({'; '.join(diffs)}). One folder "
        "holds one screen, or both would be ranked together: give another --out, run with the "
        "same settings to resume, or add --force to set the old store aside and start anew.")


@click.command()
@screen_options()
@click.option("--out", type=click.Path(file_okay=False), default="run", show_default=True,
              help="Output folder: the result store, the run log and the exports.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes (a pool when > 1). Under mpiexec the ranks are the workers.")
@click.option("--top", type=int, default=10, show_default=True, help="Candidates per ion in the exports.")
@weights_option
@click.option("--retry-failed", is_flag=True, help="Run jobs that failed in an earlier run again.")
@click.option("--force", is_flag=True,
              help="OUT holds a screen with other settings: set its store aside "
                   "(renamed, nothing deleted) and start a new one.")
def screen(spec, out, workers, top, weights, retry_failed, force):  # type: ignore[no-untyped-def]
    """Screen candidate hosts for each working ion: BVSE, BVFF-NEB on the best, rank, export.

    Every finished job is committed to OUT/ionscreen.sqlite at once: run the same command again
    after a kill and it resumes, computing nothing twice. Failed jobs are stored with their
    reason and listed; the others go on. A folder holds one screen: into a folder made with
    other settings the command stops and names them (``--force`` starts a new store).
    """
    from .local import LocalEngine
    from .screen import collect_records, export
    from .store_sqlite import STORE_NAME

    comm = mpi_world()
    root = mpi.rank(comm) == 0
    outdir = Path(out)
    stages: list[Any] = []
    if root:
        outdir.mkdir(parents=True, exist_ok=True)
        try:
            _same_settings(outdir / STORE_NAME, spec, force)
            with console.status("generating candidates ..."):
                stages = spec.stages()
        except (ValueError, IonscreenError) as exc:
            if comm is not None:
                comm.Abort(2)
            raise click.BadParameter(str(exc)) from exc
        except click.UsageError:
            if comm is not None:
                comm.Abort(2)
            raise
    t0 = time.perf_counter()
    summary, store = run_engine(lambda: LocalEngine(
        outdir / STORE_NAME if root else None, workers=workers, comm=comm,
        log_path=outdir / "run.log" if root else None, retry_failed=retry_failed, argv=sys.argv,
        settings={"ions": spec.ions, "hosts": spec.hosts, "resolution": spec.bvse.resolution,
                  "neb_top": spec.neb_top, "spec": spec.as_dict()}, console=console),
        lambda engine: engine.run_stages(stages), comm)
    if store is None:  # a computing MPI rank
        return
    with console.status("ranking and exporting ..."):
        written = export(store, outdir, top_n=top, weights=weights)
        records, failures = collect_records(store)
    _print_ranked(records, top, weights)
    _print_failures(failures)
    from .optimade_fetch import fetch_summary

    for line in fetch_summary(store.results("optimade", state=None)):
        console.print(line)
    for line in summary.lines(failures=False):  # the failures table above lists them
        console.print(line)
    n_pairs = len(records)
    dt = time.perf_counter() - t0
    console.print(f"{n_pairs} host–ion pairs screened; {summary.mode}; {dt:.1f} s this run; "
                  f"exports in {outdir}/ ({', '.join(sorted(written))})")
    store.close()


@click.command()
@click.option("--store", "store_path", required=True, type=click.Path(),
              help="A screen's output folder or its ionscreen.sqlite, a mongodb:// URI "
                   "(?collection=NAME, default ionscreen_jobs) or a FireWorks launchpad yaml.")
@click.option("--top", type=int, default=10, show_default=True)
@weights_option
def rank(store_path, top, weights):  # type: ignore[no-untyped-def]
    """Rank the candidates of an existing screen (finished or running) per working ion."""
    from .screen import collect_records

    store = _open_store(store_path)
    records, failures = collect_records(store)
    _print_ranked(records, top, weights)
    _print_failures(failures)
    counts = store.counts()
    console.print("jobs: " + "; ".join(f"{step}: " + ", ".join(f"{n} {s}" for s, n in c.items() if n)
                                       for step, c in counts.items()))


@click.command(name="export")
@click.option("--store", "store_path", required=True, type=click.Path(),
              help="A screen's output folder or its ionscreen.sqlite, a mongodb:// URI "
                   "(?collection=NAME, default ionscreen_jobs) or a FireWorks launchpad yaml.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the exports.")
@click.option("--top", type=int, default=10, show_default=True)
@weights_option
@click.option("--no-landscapes", is_flag=True, help="Skip the BVSE landscape slices in the report.")
def export_cmd(store_path, out, top, weights, no_landscapes):  # type: ignore[no-untyped-def]
    """Write ranked CSV/JSON per ion, a zip of CIFs of the top candidates and an HTML report."""
    from .screen import export

    store = _open_store(store_path)
    written = export(store, out, top_n=top, weights=weights, landscapes=not no_landscapes)
    for name, p in sorted(written.items()):
        console.print(f"{name}: {p}")

