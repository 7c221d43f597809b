"""``ionscreen bvse`` (one host, one ion, printed in full) and ``ionscreen hosts``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from ionscreen.errors import IonscreenError

from .cli_common import console, fail, fmt, parse_oxi

_BVSE_OPTIONS = [
    click.option("--cutoff", type=float, default=7.0, show_default=True,
                 help="Interaction cutoff (Å)."),
    click.option("--mode", type=click.Choice(["table", "exact"]), default="table",
                 show_default=True,
                 help="Pair terms tabulated in r² (fast, ≤1e-4 eV) or exact exp/erfc."),
    click.option("--convention", type=click.Choice(["bvlain", "spse"]), default="bvlain",
                 show_default=True,
                 help="bvlain: no charge rescaling; spse: cation charges rescaled, hard wall."),
    click.option("--radii", type=click.Choice(["ase", "softbv"]), default="ase",
                 show_default=True, help="Covalent radii for the Coulomb screening length."),
    click.option("--threads", type=int, default=None, help="Numba threads (default: all cores)."),
    click.option("--encut", type=float, default=5.0, show_default=True,
                 help="Explore energies up to this much above the minimum (eV)."),
    click.option("--derive-nitride", is_flag=True,
                 help="Derive a missing ion–N3- row (Ca, Zn, Al, K/NH4, Na, Ba) from the ion–O2- "
                      "row (approximate, flagged; see README) instead of failing."),
]


def _with_bvse_options(resolution: float):  # type: ignore[no-untyped-def]
    """Attach the BVSE options; ``resolution`` is the command's default grid step."""

    def deco(f):  # type: ignore[no-untyped-def]
        for opt in reversed(_BVSE_OPTIONS):
            f = opt(f)
        return click.option("--resolution", type=float, default=resolution, show_default=True,
                            help="Grid step (Å).")(f)

    return deco


def _settings(**kw: Any) -> Any:
    from ionscreen.screening.bvse import BVSESettings

    s = BVSESettings(**kw)
    try:
        s.validate()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return s


@click.command()
@click.argument("file", type=click.Path())  # read_structure says what is wrong, on one line
@click.option("--ion", required=True, help="Working ion: Mg, Ca, Zn, Al, NH4, Sr, Ba, Li, Na.")
@click.option("--oxi", default=None, help="Oxidation states, e.g. Fe=2,P=5,O=-2 (else guessed).")
@click.option("--cube", "cube", type=click.Path(dir_okay=False), default=None,
              help="Write the landscape as a cube file.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write the result as JSON.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of the hop energy profiles and a landscape slice.")
@_with_bvse_options(0.1)
def bvse(file, ion, oxi, cube, json_out, plot_out, **bvse_kw):  # type: ignore[no-untyped-def]
    """BVSE landscape of one working ion in the host in FILE (CIF, POSCAR, extxyz)."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.structures.io import StructureReadWarning, read_structure

    settings = _settings(**bvse_kw)
    try:
        with warnings.catch_warnings(record=True) as caught:  # a note line, not a warning's
            warnings.simplefilter("always", StructureReadWarning)
            structure = read_structure(file)
        for w in caught:
            console.print(f"[yellow]note:[/] {w.message}")
        with console.status(f"BVSE: {ion} in {Path(file).name} ..."):
            res = compute_landscape(structure, ion, settings=settings,
                                    oxidation_states=parse_oxi(oxi))
    except IonscreenError as exc:
        fail(exc)
    print_result(res)
    if cube:
        res.write_cube(cube)
        console.print(f"landscape written to {cube}")
    if json_out:
        res.to_json(json_out)
        console.print(f"result written to {json_out}")
    if plot_out:
        res.plot(plot_out)
        console.print(f"plot written to {plot_out}")


def print_result(res) -> None:  # type: ignore[no-untyped-def]
    """Print a BVSE result: barriers, sites, hops, grid and timings."""
    console.print(f"[bold]{res.formula}[/], working ion [bold]{res.ion}[/] — {res.method}")
    for w in res.warnings:
        console.print(f"[yellow]note:[/] {w}")
    t = Table(title="Percolation barriers (BVSE, eV above the lowest site)")
    for d in res.barriers:
        t.add_column(f"E{d}", justify="right")
    t.add_row(*[fmt(v) for v in res.barriers.values()])
    console.print(t)
    st = Table(title=f"Insertion sites (BVSE minima; {len(res.sites)} in the cell)")
    for c in ("class", "frac x", "frac y", "frac z", "E (eV)", "multiplicity"):
        st.add_column(c, justify="right")
    for s in sorted(res.distinct_sites, key=lambda s: s.energy):
        st.add_row(str(s.distinct), *[f"{x:.4f}" for x in s.frac], f"{s.energy:.3f}",
                   str(s.multiplicity))
    console.print(st)
    ht = Table(title="Distinct hops (BVSE)")
    for c in ("hop", "sites", "length (Å)", "barrier (eV)", "grid barrier", "multiplicity",
              "percolates in"):
        ht.add_column(c, justify="right")
    for h in res.distinct_hops[:20]:
        ht.add_row(
            str(h.distinct), f"{h.site_i}→{h.site_j}{tuple(h.image)}", f"{h.length:.3f}",
            fmt(h.barrier), fmt(h.barrier_grid), str(h.multiplicity), h.percolation or "—",
        )
    console.print(ht)
    tm = res.timings
    console.print(
        f"grid {res.grid_shape[0]}×{res.grid_shape[1]}×{res.grid_shape[2]} "
        f"(step ≤ {max(res.grid_step):.3f} Å; {res.grid_points_computed:,} points computed, the "
        f"rest by symmetry), {res.pair_evaluations:,} pair terms; "
        f"time {tm['total']:.2f} s (grid {tm['grid']:.2f} s, percolation {tm['percolation']:.2f} s)"
    )


@click.command()
def hosts() -> None:
    """List the built-in example hosts."""
    from ionscreen.structures.prototypes import list_prototypes

    t = Table(title="Built-in hosts")
    for c in ("id", "name", "framework", "space group", "structure", "citation"):
        t.add_column(c)
    for p in list_prototypes():
        origin = "measured" if p.measured else "[yellow]computed[/]"
        t.add_row(p.id, p.name, p.framework, str(p.spacegroup), origin, str(p.citation)[:70])
    console.print(t)
