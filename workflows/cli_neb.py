"""``ionscreen neb``: CI-NEB seeded from BVSE, serial or over MPI ranks; batches of several
hosts or ions run on the local engine (stored, resumable)."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ionscreen.errors import IonscreenError
from ionscreen.screening.committee import DEFAULT_MEMBERS

from . import mpi
from .cli_bvse import print_result
from .cli_common import GreedyOption, console, fail, mpi_world, parse_oxi, run_engine, split_words


def _report_table(rep) -> Table:  # type: ignore[no-untyped-def]
    t = Table(title=f"{rep.formula}, {rep.ion}: {rep.tier} CI-NEB beside BVSE (eV)")
    several = len({h.calculator for h in rep.hops}) > 1
    for c in ("hop", *(("model",) if several else ()), "length (Å)", "BVSE hop barrier",
              f"{rep.tier} NEB barrier", "status", "steps", "time (s)"):
        t.add_column(c, justify="right")
    for h in rep.hops:
        b = "—" if h.barrier is None else f"{h.barrier:.3f}"
        bv = h.hop.get("bvse_barrier")
        t.add_row(str(h.hop["index"]), *((h.calculator.split(" (")[0],) if several else ()),
                  f"{h.hop['length']:.3f}", "—" if bv is None else f"{bv:.3f}", b,
                  "converged" if h.converged else "NOT converged", str(sum(h.steps.values())),
                  f"{h.timings['total']:.1f}")
    for f in rep.failures:
        t.add_row(str(f["hop"]), *(("",) if several else ()), "", "", "—", f"failed: {f['error']}", "", "")
    return t


def _print_report(rep) -> None:  # type: ignore[no-untyped-def]
    console.print(_report_table(rep))
    bv = rep.bvse.get("barrier")
    b = "not available (a hop did not converge or failed)" if rep.barrier is None else f"{rep.barrier:.3f} eV"
    console.print(f"[bold]{rep.tier} CI-NEB barrier[/] (rate-limiting hop {rep.rate_limiting_hop}): {b}   "
                  f"[bold]BVSE E{rep.dimension or '?'}[/]: {'—' if bv is None else f'{bv:.3f} eV'}")
    console.print(f"calculator: {rep.calculator}")
    est = rep.estimate or {}
    if est.get("barrier") is not None:
        members = ", ".join(f"{k}: {'—' if v is None else f'{v:.3f}'}" for k, v in est["members"].items())
        console.print(f"[bold]raw[/] {est['barrier']:.3f} ± {est['spread']:.3f} eV (spread over "
                      f"{sum(v is not None for v in est['members'].values())} model(s): {members})")
        if est.get("calibrated") is not None:
            console.print(f"[bold]calibrated[/] {est['calibrated']:.3f} ± {est['uncertainty']:.3f} eV "
                          "(linear per model, fitted on the calibration part of a public DFT-NEB set)")
        else:
            console.print("not calibrated: no calibration is fitted for this model; ML potentials "
                          "run soft (barriers too low)")
    for model, why in (est.get("reasons") or {}).items():
        console.print(f"[yellow]{model}:[/] {why}", markup=True)
    for h in rep.hops:
        start = h.note.find("half the band computed")
        if start >= 0:  # what stands for the second half (screening/neb/mirror.py)
            end = h.note.find(". ", start)
            which = "given endpoints" if h.hop.get("given_endpoints") else f"hop {h.hop['index']}"
            console.print(f"[cyan]{which}:[/] {h.note[start:end if end > 0 else None]}")
        for w in h.warnings:
            console.print(f"[yellow]note (hop {h.hop['index']}):[/] {w}")
        for fl in h.flags:
            console.print(f"[magenta]flag {fl['code']} (hop {h.hop['index']}):[/] {fl['text']}")
        if not h.converged:
            console.print(f"[red]hop {h.hop['index']}: {h.status}[/] — no barrier is reported for it")
    for f in rep.failures:
        console.print(f"[red]hop {f['hop']} failed:[/] {f['reason']}")
    for k in rep.skipped:
        console.print(f"[yellow]hop {k['hop']} skipped:[/] {k['reason']}")


@click.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--endpoints", nargs=2, type=click.Path(exists=True, dir_okay=False), default=None,
              metavar="INITIAL FINAL",
              help="NEB between two given endpoint files (same cell, same atoms in the same order, "
                   "one ion of --ion moved) instead of a host FILE's BVSE hops.")
@click.option("--mobile-index", type=int, default=None,
              help="With --endpoints: the index of the moving atom (default: the --ion atom that "
                   "moves most).")
@click.option("--optimizer", type=click.Choice(["FIRE", "BFGS", "ODE"]), default="FIRE",
              show_default=True,
              help="Band optimiser (ODE: ASE's adaptive ODE NEB optimiser).")
@click.option("--ion", "ions", cls=GreedyOption, multiple=True, required=True,
              help="Working ion(s): Mg, Ca, Zn, Al, NH4, Sr, Ba, Li, Na.")
@click.option("--calculator", default="bvff", show_default=True,
              help="bvff, chgnet[:model] or sevennet[:model[@modal]] (pip install \"ionscreen[mlip]\"), "
                   "module:Class (any ASE calculator), or committee[:spec,spec...] (several ML "
                   "potentials on the same path: mean ± spread, calibrated where fitted; default "
                   f"members {', '.join(DEFAULT_MEMBERS)}).")
@click.option("--images", type=int, default=None,
              help="Inner NEB images [default: 7 for the BVFF, 5 for an ML potential].")
@click.option("--hop", type=int, default=None,
              help="Run one hop (its class in the BVSE hop table). Default: every distinct hop of the "
                   "lowest-barrier percolating path.")
@click.option("--list-hops", is_flag=True, help="Print the BVSE hops and stop.")
@click.option("--fixed-host", is_flag=True, help="Keep the host atoms fixed (only the ion moves).")
@click.option("--whole-band", is_flag=True,
              help="Evaluate every image of a symmetric hop too. By default an ML NEB whose hop an "
                   "operation of the host maps onto its reverse relaxes one endpoint and computes "
                   "half the band (the rest is its image; the result's note says so).")
@click.option("--limit", type=click.Choice(["dilute-ion", "dilute-vacancy"]), default="dilute-ion",
              show_default=True, help="One ion in the empty host, or one vacancy in the full host.")
@click.option("--path", "path_kind", type=click.Choice(["bvse", "idpp", "linear"]), default="bvse",
              show_default=True, help="Initial band.")
@click.option("--fmax", type=float, default=None,
              help="Climbing-image convergence (eV/Å) [default: 0.05 for the BVFF, 0.03 for an ML potential].")
@click.option("--steps", type=int, default=None,
              help="Most optimiser steps per stage [default: 1000 for the BVFF, 400 for an ML potential].")
@click.option("--min-distance", type=float, default=8.0, show_default=True,
              help="Smallest distance between periodic images of the ion (Å); sets the supercell.")
@click.option("--resolution", type=float, default=0.1, show_default=True, help="BVSE grid step for the seed path (Å).")
@click.option("--oxi", default=None, help="Oxidation states, e.g. Fe=2,P=5,O=-2 (else guessed).")
@click.option("--derive-nitride", is_flag=True,
              help="BVSE seed and BVFF: derive a missing ion–N3- row from the ion–O2- row "
                   "(approximate, flagged; see README) instead of failing.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the result as JSON.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None, help="Write the energy profiles (PNG).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Batch of several files/ions: folder for the result store (ionscreen.sqlite: "
                   "run again to resume), the run log and neb_results.json. Default: here.")
def neb(files, endpoints, mobile_index, optimizer, ions, calculator, images, hop, list_hops, fixed_host, whole_band, limit, path_kind, fmax, steps,  # type: ignore[no-untyped-def]
        min_distance, resolution, oxi, derive_nitride, json_out, plot_out, out_dir):
    """Climbing-image NEB of the working ion in each host FILE, seeded from BVSE.

    One host and ion: under `mpiexec -n N` the ranks share its NEB images. Several hosts or
    ions: a batch of jobs on the local engine, committed to OUT/ionscreen.sqlite as each ends
    (run the command again to resume), with the results in OUT/neb_results.json; under
    `mpiexec -n N` ranks 1..N-1 compute one NEB each at a time while rank 0 stores.
    """
    from ionscreen.screening.neb import NEBSettings

    ions = split_words(ions)
    comm = mpi_world()
    if bool(files) == bool(endpoints):
        raise click.UsageError("give host FILE(s), or --endpoints INITIAL FINAL (not both)")
    tier_default = NEBSettings.for_calculator(calculator)
    images = tier_default.images if images is None else images
    fmax = tier_default.fmax if fmax is None else fmax
    steps = tier_default.steps if steps is None else steps
    settings = dict(images=images, relax_host=not fixed_host, limit=limit, path=path_kind, fmax=fmax,
                    fmax_pre=max(0.3, fmax), steps=steps, min_image_distance=min_distance,
                    derive_nitride=derive_nitride, optimizer=optimizer,
                    fmax_endpoints=min(tier_default.fmax_endpoints, fmax),
                    relax_optimizer=tier_default.relax_optimizer,
                    mirror=tier_default.mirror and not whole_band)
    try:
        NEBSettings(**settings).validate()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    oxs = parse_oxi(oxi)
    if endpoints:
        if len(ions) != 1:
            raise click.UsageError("--endpoints takes one --ion (the moving one)")
        _endpoints(endpoints, ions[0], calculator, mobile_index, settings, oxs, json_out, plot_out, comm)
        return
    pairs = [(f, i) for f in files for i in ions]
    if len(pairs) > 1:
        if list_hops or json_out or plot_out:
            raise click.UsageError(
                "--list-hops, --json and --plot take one file and one ion; a batch of "
                f"{len(pairs)} host–ion pairs writes every report to OUT/neb_results.json")
        seed = {"resolution": resolution, "derive_nitride": derive_nitride}
        docs = [{"path": f, "ion": i, "calculator": calculator, "hop": hop, "settings": settings,
                 "bvse_settings": seed, "oxi": oxs} for f, i in pairs]
        _batch(docs, Path(out_dir or "."), comm)
        return
    _single(pairs[0], calculator, hop, settings, oxs, resolution, derive_nitride, list_hops,
            json_out, plot_out, comm)


def _output(rep, json_out: str | None, plot_out: str | None) -> None:  # type: ignore[no-untyped-def]
    """Print one NEB report, write its JSON and plot if asked; exit 3 without a barrier."""
    _print_report(rep)
    if json_out:
        rep.to_json(json_out, with_images=True)
        console.print(f"result written to {json_out}")
    if plot_out:
        rep.plot(plot_out)
        console.print(f"plot written to {plot_out}")
    if rep.barrier is None:
        sys.exit(3)


def _endpoints(files: tuple[str, str], ion: str, calculator: str, mobile_index: int | None,
               settings: dict[str, Any], oxs: dict[str, float] | None, json_out: str | None,
               plot_out: str | None, comm: Any) -> None:
    """NEB between two given endpoint files, printed; under MPI the ranks share its images."""
    from ionscreen.screening.committee import (
        Calibration,
        committee_members,
        committee_report,
        run_members,
        single_estimate,
    )
    from ionscreen.screening.neb import NEBReport, NEBSettings, neb_between
    from ionscreen.structures.io import read_structure

    root = mpi.rank(comm) == 0
    note = f"given endpoints {files[0]} -> {files[1]}"

    def one(spec: Any) -> NEBReport:
        r = neb_between(a, b, ion, spec, NEBSettings(**settings), mobile_index=mobile_index,
                        comm=comm, oxidation_states=oxs)
        rep = NEBReport(formula=r.formula, ion=r.ion, calculator=r.calculator, tier=r.tier,
                        barrier=r.barrier, rate_limiting_hop=None, dimension=None, hops=[r], bvse={},
                        note=f"{note} (atom {r.hop['mobile_atom']} moves {r.hop['length']:.2f} Å)")
        rep.estimate = single_estimate(rep.calculator, rep.tier, rep.barrier, Calibration.load(),
                                       ion=rep.ion)
        return rep

    try:
        a, b = (read_structure(f) for f in files)
        with console.status(f"NEB of {ion} between {Path(files[0]).name} and {Path(files[1]).name}"
                            ) if root else nullcontext():
            members = committee_members(calculator)
            if members:
                done, reasons = run_members(one, members)
                rep = committee_report(done, Calibration.load(), reasons)
            else:
                rep = one(calculator)
    except IonscreenError as exc:
        fail(exc)
    if not root:
        return
    _output(rep, json_out, plot_out)


def _ranked_line(report: dict[str, Any]) -> str:
    """One line of a stored NEB report: the barrier that is ranked (calibrated ± uncertainty
    when the ML tier has one, with the raw one beside it) and what produced it."""
    from ionscreen.screening.neb import NEBReport

    s = NEBReport.from_dict(report).summary()
    head = f"{s.tier} CI-NEB ({s.calculator})"
    if s.barrier is None:
        return f"{head}: no barrier ({s.status})"
    if s.calibrated:
        return (f"{head}: {s.barrier:.3f} ± {s.uncertainty:.3f} eV calibrated "
                f"(raw {s.raw_barrier:.3f} eV)")
    return f"{head}: {s.barrier:.3f} eV" + ("" if s.tier != "MLIP" else " raw, not calibrated")


def _batch(docs: list[dict[str, Any]], out: Path, comm: Any) -> None:
    """Several host–ion NEBs as jobs of the local engine, stored in ``out`` (resumable)."""
    from .local import LocalEngine
    from .plan import STEPS
    from .store_sqlite import STORE_NAME

    root = mpi.rank(comm) == 0
    step = STEPS["neb_file"]
    if root:
        out.mkdir(parents=True, exist_ok=True)
    summary, store = run_engine(lambda: LocalEngine(
        out / STORE_NAME if root else None, comm=comm,
        log_path=out / "run.log" if root else None, argv=sys.argv, console=console),
        lambda engine: engine.run([(step, d) for d in docs]), comm)
    if store is None:  # a computing MPI rank
        return
    results = []
    for d in docs:
        rec = store.get(step.job_id(d))
        doc = {"file": d["path"], "ion": d["ion"], "status": rec.state, "seconds": rec.seconds,
               "job_id": rec.id, "worker": rec.worker}
        if rec.state == "done":
            doc["report"] = rec.result
            msg = _ranked_line(rec.result)
        else:
            doc.update(error=rec.error, reason=rec.reason)
            msg = f"{rec.state}: {rec.reason}"
        console.print(f"{Path(d['path']).name} {d['ion']}: {msg}", markup=False, soft_wrap=True)
        results.append(doc)
    store.close()
    (out / "neb_results.json").write_text(json.dumps(results, indent=1, default=str))
    for line in summary.lines():
        console.print(line, markup=False)
    n_bad = sum(d["status"] != "done" for d in results)
    console.print(f"{len(results) - n_bad} NEB jobs done, {n_bad} failed; results in "
                  f"{out / 'neb_results.json'}")


def _single(pair: tuple[str, str], calculator: str, hop: int | None, settings: dict[str, Any],
            oxs: dict[str, float] | None, resolution: float, derive_nitride: bool,
            list_hops: bool, json_out: str | None, plot_out: str | None, comm: Any) -> None:
    """One host–ion NEB, printed in full; under MPI its images are shared over the ranks."""
    from ionscreen.screening.bvse import BVSESettings, compute_landscape, prepare_host
    from ionscreen.screening.neb import NEBSettings, run_neb
    from ionscreen.structures.io import read_structure

    root = mpi.rank(comm) == 0
    file, ion = pair
    try:
        # prepared once: the BVSE seed and the NEB use the same host and pair model
        host = prepare_host(read_structure(file), ion, BVSESettings(
            resolution=resolution, derive_nitride=derive_nitride), oxidation_states=oxs)
        with console.status(f"BVSE seed: {ion} in {Path(file).name} ...") if root else nullcontext():
            seed = compute_landscape(host)
        if list_hops:
            if root:
                print_result(seed)
            return

        def progress(msg: str) -> None:
            if root:
                console.print(f"NEB {msg}")

        rep = run_neb(host, ion, calculator, hop, NEBSettings(**settings), bvse=seed, comm=comm,
                      progress=progress)
    except IonscreenError as exc:
        fail(exc)
    if not root:
        return
    _output(rep, json_out, plot_out)
