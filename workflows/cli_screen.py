"""``ionscreen screen``, ``ionscreen rank`` and ``ionscreen export``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ionscreen.structures.errors import IonscreenError

from . import mpi
from .cli_common import (
    DEFAULT_IONS,
    _fmt,
    _GreedyOption,
    _parse_oxi,
    _split_words,
    console,
    err_console,
)


def _open_store(spec: str | Path, readonly: bool = True):  # type: ignore[no-untyped-def]
    """``--store``: a screen folder / its sqlite, a ``mongodb://`` URI or a launchpad yaml."""
    from .store_mongo import open_store

    try:
        return open_store(spec, readonly=readonly)
    except IonscreenError as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from exc


def _print_ranked(records: list[Any], top: int, weights: Any) -> None:
    from ionscreen.screening.rank import rank_all

    ranked = rank_all(records, weights=weights, include_unranked=False)
    for ion, lst in ranked.items():
        t = Table(title=f"{ion}: ranked hosts (score: barrier ↓, capacity ↑, sustainability ↑)")
        for c in ("rank", "formula", "source", "barrier (eV)", "produced by", "mAh/g", "sust.", "Pareto"):
            t.add_column(c, justify="right" if c in ("rank", "barrier (eV)", "mAh/g", "sust.") else "left",
                         overflow="fold")
        for h in lst[:top]:
            cap, s = h.capacity_mAh_g, h.sustainability_score
            t.add_row(str(h.rank), h.record.formula, h.record.source[:40], _fmt(h.barrier),
                      str(h.barrier_tier).split(" (")[0], "—" if cap is None else f"{cap:.0f}",
                      "—" if s is None else f"{s:.2f}", "yes" if h.pareto else "")
        console.print(t)


def _print_failures(bad: list[Any]) -> None:
    """Failed records: candidates and later-step jobs (NEB, voltage), as ``collect_records`` lists them."""
    from ionscreen.screening.rank import clip_words

    if not bad:
        return
    t = Table(title=f"{len(bad)} failed jobs (reasons also in failures.csv)")
    for c in ("formula", "ion", "source", "step", "error", "reason"):
        t.add_column(c, overflow="fold")
    for r in bad:
        t.add_row(str(r.formula), str(r.working_ion), str(r.source)[:40], r.failure.step,
                  str(r.failure.error),
                  clip_words(str(r.failure.reason), 300, " … (whole reason in failures.csv)"))
    console.print(t)


@click.command()
@click.option("--hosts", default="builtin", show_default=True,
              help="'builtin' (all prototypes), 'none', or prototype ids separated by commas.")
@click.option("--substitute", cls=_GreedyOption, multiple=True, default=None,
              help="Substituted built-in hosts: 'default' or rules such as 'Mn:Fe,Co O:S,Se'.")
@click.option("--cps", is_flag=True, help="Add DI–M–ligand coordination polymers.")
@click.option("--cp-models", type=int, default=1, show_default=True, help="Disordered models per polymer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the disordered polymer models.")
@click.option("--files", cls=_GreedyOption, multiple=True, default=None,
              help="Structure files or folders (CIF, POSCAR, extxyz).")
@click.option("--oxi", default=None, help="Oxidation states for --files, e.g. Fe=2,P=5,O=-2.")
@click.option("--ions", cls=_GreedyOption, multiple=True, default=None,
              help="Working ions (space or comma separated). Default: Mg Ca Zn Al NH4.")
@click.option("--out", type=click.Path(file_okay=False), default="run", show_default=True,
              help="Output folder: the result store, the run log and the exports.")
@click.option("--resolution", type=float, default=0.2, show_default=True, help="BVSE grid step (Å).")
@click.option("--derive-nitride", is_flag=True,
              help="Derive missing ion–N3- BVSE rows (Ca, Zn, Al, NH4, Na, Ba in cyanide or "
                   "sulfonamide hosts) from the ion–O2- rows: approximate, flagged in every row.")
@click.option("--neb-top", type=int, default=3, show_default=True,
              help="BVFF-NEB on the N best BVSE candidates per ion (0: none).")
@click.option("--neb-calculator", default="bvff", show_default=True,
              help="Calculator of the NEB stage: bvff, chgnet or module:Class.")
@click.option("--voltage", "voltage_calc", default=None,
              help="ML calculator (e.g. chgnet) for voltage and volume change of the top discharged hosts.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes (a pool when > 1). Under mpiexec the ranks are the workers.")
@click.option("--top", type=int, default=10, show_default=True, help="Candidates per ion in the exports.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Ranking weights (TOML or JSON with a [weights] table).")
@click.option("--retry-failed", is_flag=True, help="Run jobs that failed in an earlier run again.")
def screen(hosts, substitute, cps, cp_models, seed, files, oxi, ions, out, resolution, neb_top,  # type: ignore[no-untyped-def]
           neb_calculator, voltage_calc, workers, top, weights, retry_failed, derive_nitride):
    """Screen candidate hosts for each working ion: BVSE, BVFF-NEB on the best, rank, export.

    Every finished job is committed to OUT/ionscreen.sqlite at once: run the same command again
    after a kill and it resumes, computing nothing twice. Failed jobs are stored with their
    reason and listed; the others go on.
    """
    from ionscreen.structures.ions import get_working_ion

    from .local import LocalEngine
    from .screen import STORE_NAME, ScreenMaker, collect_records, export

    try:
        comm = mpi.world()
    except IonscreenError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
    root = mpi.rank(comm) == 0
    ion_names = _split_words(ions) or list(DEFAULT_IONS)
    try:
        ion_list = [get_working_ion(i).name for i in ion_names]
    except IonscreenError as exc:
        raise click.BadParameter(str(exc)) from exc
    maker = ScreenMaker(ions=ion_list, hosts=hosts, substitute=_split_words(substitute) or None,
                        cps=cps, cp_models=cp_models, seed=seed, files=_split_words(files),
                        oxi=_parse_oxi(oxi), resolution=resolution, neb_top=neb_top,
                        neb_calculator=neb_calculator, voltage_calculator=voltage_calc,
                        bvse={"derive_nitride": True} if derive_nitride else {})
    outdir = Path(out)
    stages: list[Any] = []
    if root:
        outdir.mkdir(parents=True, exist_ok=True)
        try:
            with console.status("generating candidates ..."):
                stages = maker.make()
        except (ValueError, IonscreenError) as exc:
            if comm is not None:
                comm.Abort(2)
            raise click.BadParameter(str(exc)) from exc
    t0 = time.perf_counter()
    engine = LocalEngine(outdir / STORE_NAME if root else None, workers=workers, comm=comm,
                         log_path=outdir / "run.log" if root else None, retry_failed=retry_failed,
                         argv=sys.argv, settings={"ions": ion_list, "hosts": hosts,
                                                  "resolution": resolution, "neb_top": neb_top},
                         console=console)
    try:
        summary = engine.run_stages(stages)
    except IonscreenError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
    if not root:
        return
    store = engine.store
    assert store is not None
    with console.status("ranking and exporting ..."):
        written = export(store, outdir, top_n=top, weights=weights)
        records, failures = collect_records(store)
    _print_ranked(records, top, weights)
    _print_failures(failures)
    for line in summary.lines():
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
@click.option("--weights", type=click.Path(dir_okay=False), default=None)
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
@click.option("--weights", type=click.Path(dir_okay=False), default=None)
@click.option("--no-landscapes", is_flag=True, help="Skip the BVSE landscape slices in the report.")
def export_cmd(store_path, out, top, weights, no_landscapes):  # type: ignore[no-untyped-def]
    """Write ranked CSV/JSON per ion, a zip of CIFs of the top candidates and an HTML report."""
    from .screen import export

    store = _open_store(store_path)
    written = export(store, out, top_n=top, weights=weights, landscapes=not no_landscapes)
    for name, p in sorted(written.items()):
        console.print(f"{name}: {p}")

