"""The ``ionscreen`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from ionscreen.structures.errors import IonscreenError
from ionscreen.structures.ions import ANIONS

from .cli_common import (  # noqa: F401  (re-exported for the command modules and tests)
    DEFAULT_IONS,
    _fmt,
    _GreedyOption,
    _parse_oxi,
    _split_words,
    console,
    err_console,
)


def _settings(resolution, cutoff, mode, convention, radii, threads, encut,  # type: ignore[no-untyped-def]
              derive_nitride=False):
    from ionscreen.screening.bvse import BVSESettings

    s = BVSESettings(
        resolution=resolution, cutoff=cutoff, mode=mode, convention=convention, radii=radii,
        threads=threads, encut=encut, derive_nitride=derive_nitride,
    )
    try:
        s.validate()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    return s


_common = [
    click.option("--cutoff", type=float, default=7.0, show_default=True, help="Interaction cutoff (Å)."),
    click.option("--mode", type=click.Choice(["table", "exact"]), default="table", show_default=True,
                 help="Pair terms tabulated in r² (fast, ≤1e-4 eV) or exact exp/erfc."),
    click.option("--convention", type=click.Choice(["bvlain", "spse"]), default="bvlain", show_default=True,
                 help="bvlain: no charge rescaling; spse: cation charges rescaled, hard wall."),
    click.option("--radii", type=click.Choice(["ase", "softbv"]), default="ase", show_default=True,
                 help="Covalent radii for the Coulomb screening length."),
    click.option("--threads", type=int, default=None, help="Numba threads (default: all cores)."),
    click.option("--encut", type=float, default=5.0, show_default=True,
                 help="Explore energies up to this much above the minimum (eV)."),
    click.option("--derive-nitride", is_flag=True,
                 help="Derive a missing ion–N3- row (Ca, Zn, Al, K/NH4, Na, Ba) from the ion–O2- "
                      "row (approximate, flagged; see README) instead of failing."),
]


def _with_common(resolution: float):  # type: ignore[no-untyped-def]
    """Attach the BVSE options; ``resolution`` is the command's default grid step."""

    def deco(f):  # type: ignore[no-untyped-def]
        for opt in reversed(_common):
            f = opt(f)
        return click.option("--resolution", type=float, default=resolution, show_default=True,
                            help="Grid step (Å).")(f)

    return deco


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ionscreen")
def app() -> None:
    """ionscreen: screen battery electrode hosts for Mg, Ca, Zn, Al, NH4 (and Sr, Ba, Li, Na).

    Every number printed says what produced it: BVSE numbers rank and filter hosts; they are
    not absolute migration barriers.
    """


@app.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--ion", required=True, help="Working ion: Mg, Ca, Zn, Al, NH4, Sr, Ba, Li, Na.")
@click.option("--oxi", default=None, help="Oxidation states, e.g. Fe=2,P=5,O=-2 (else guessed).")
@click.option("--cube", "cube", type=click.Path(dir_okay=False), default=None, help="Write the landscape as a cube file.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write the result as JSON.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of the hop energy profiles and a landscape slice.")
@_with_common(0.1)
def bvse(file, ion, oxi, cube, json_out, plot_out, resolution, cutoff, mode, convention, radii, threads, encut,  # type: ignore[no-untyped-def]
         derive_nitride):
    """BVSE landscape of one working ion in the host in FILE (CIF, POSCAR, extxyz)."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.structures.io import read_structure

    settings = _settings(resolution, cutoff, mode, convention, radii, threads, encut, derive_nitride)
    try:
        structure = read_structure(file)
        with console.status(f"BVSE: {ion} in {Path(file).name} ..."):
            res = compute_landscape(structure, ion, settings=settings, oxidation_states=_parse_oxi(oxi))
    except IonscreenError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
    _print_result(res)
    if cube:
        res.write_cube(cube)
        console.print(f"landscape written to {cube}")
    if json_out:
        res.to_json(json_out)
        console.print(f"result written to {json_out}")
    if plot_out:
        res.plot(plot_out)
        console.print(f"plot written to {plot_out}")


def _print_result(res) -> None:  # type: ignore[no-untyped-def]
    console.print(f"[bold]{res.formula}[/], working ion [bold]{res.ion}[/] — {res.method}")
    for w in res.warnings:
        console.print(f"[yellow]note:[/] {w}")
    t = Table(title="Percolation barriers (BVSE, eV above the lowest site)")
    for d in res.barriers:
        t.add_column(f"E{d}", justify="right")
    t.add_row(*[_fmt(v) for v in res.barriers.values()])
    console.print(t)
    st = Table(title=f"Insertion sites (BVSE minima; {len(res.sites)} in the cell)")
    for c in ("class", "frac x", "frac y", "frac z", "E (eV)", "multiplicity"):
        st.add_column(c, justify="right")
    for s in sorted(res.distinct_sites, key=lambda s: s.energy):
        st.add_row(str(s.distinct), *[f"{x:.4f}" for x in s.frac], f"{s.energy:.3f}", str(s.multiplicity))
    console.print(st)
    ht = Table(title="Distinct hops (BVSE)")
    for c in ("hop", "sites", "length (Å)", "barrier (eV)", "grid barrier", "multiplicity", "percolates in"):
        ht.add_column(c, justify="right")
    for h in res.distinct_hops[:20]:
        ht.add_row(
            str(h.distinct), f"{h.site_i}→{h.site_j}{tuple(h.image)}", f"{h.length:.3f}", _fmt(h.barrier),
            _fmt(h.barrier_grid), str(h.multiplicity), h.percolation or "—",
        )
    console.print(ht)
    tm = res.timings
    console.print(
        f"grid {res.grid_shape[0]}×{res.grid_shape[1]}×{res.grid_shape[2]} "
        f"(step ≤ {max(res.grid_step):.3f} Å; {res.grid_points_computed:,} points computed, the rest by "
        f"symmetry), {res.pair_evaluations:,} pair terms; "
        f"time {tm['total']:.2f} s (grid {tm['grid']:.2f} s, percolation {tm['percolation']:.2f} s)"
    )


@app.command()
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


def _parse_substitute(words: list[str]) -> tuple[dict[str, list[str]] | None, dict[str, list[str]] | None]:
    """``default`` or ``Mn:Fe,Co O:S,Se`` -> (cation_options, anion_options); None = defaults."""
    if not words or words == ["default"]:
        return None, None
    from pymatgen.core import Element

    cat: dict[str, list[str]] = {}
    an: dict[str, list[str]] = {}
    for w in words:
        if ":" not in w:
            raise click.BadParameter(f"'{w}' is not OLD:NEW[,NEW] (example: --substitute Mn:Fe,Co O:S)")
        old, new = w.split(":", 1)
        targets = [x for x in new.split(",") if x]
        for el in (old, *targets):
            if not Element.is_valid_symbol(el):
                raise click.BadParameter(f"'{el}' in '{w}' is not an element symbol")
        # anions of the hosts we substitute: chalcogens, halogens, nitrogen
        (an if old in ANIONS else cat)[old] = targets
    return cat, an


@app.command()
@click.option("--hosts", default="builtin", show_default=True,
              help="'builtin' (all prototypes), 'none', or prototype ids separated by commas.")
@click.option("--substitute", cls=_GreedyOption, multiple=True, default=None,
              help="Substituted built-in hosts: 'default' or rules such as 'Mn:Fe,Co O:S,Se'.")
@click.option("--cps", is_flag=True, help="Add DI–M–ligand coordination polymers (ordered + disordered).")
@click.option("--cp-models", type=int, default=2, show_default=True, help="Disordered models per polymer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the disordered polymer models.")
@click.option("--files", cls=_GreedyOption, multiple=True, default=None,
              help="Structure files or folders (CIF, POSCAR, extxyz).")
@click.option("--oxi", default=None, help="Oxidation states for --files, e.g. Fe=2,P=5,O=-2.")
@click.option("--ions", cls=_GreedyOption, multiple=True, default=None,
              help="Working ions (space or comma separated). Default: Mg Ca Zn Al NH4.")
@click.option("--out", type=click.Path(dir_okay=False), default="candidates.json", show_default=True)
def candidates(hosts, substitute, cps, cp_models, seed, files, oxi, ions, out):  # type: ignore[no-untyped-def]
    """Generate candidate hosts with provenance and theoretical capacity; write them as JSON."""
    from ionscreen.screening.descriptors import Capacity, capacity
    from ionscreen.structures import candidates as cgen
    from ionscreen.structures.ions import get_working_ion

    ion_names = _split_words(ions) or list(DEFAULT_IONS)
    try:
        ion_list = [get_working_ion(i).name for i in ion_names]
    except IonscreenError as exc:
        raise click.BadParameter(str(exc)) from exc
    ids = None if hosts in ("builtin", "all") else ([] if hosts == "none" else hosts.split(","))
    found: list = []
    failures: list[dict] = []
    rejected: list[dict] = []
    try:
        with console.status("generating candidates ..."):
            if ids != []:
                found += list(cgen.from_prototypes(ion_list, ids))
            if substitute:
                cat, an = _parse_substitute(" ".join(substitute).split())
                subs, rejected = cgen.from_substitutions(ion_list, ids or None, cat, an)
                found += subs
            if cps:
                found += cgen.from_polymers(ion_list, n_disordered=cp_models, seed=seed)
            if files:
                fc, failures = cgen.from_files(_split_words(files), ion_list, _parse_oxi(oxi))
                found += fc
    except ValueError as exc:  # unknown prototype id and the like
        raise click.BadParameter(str(exc)) from exc
    found = cgen.unique(found)
    caps: dict[str, Capacity] = {}
    records = []
    for c in found:
        try:
            caps[c.id] = capacity(c)
        except IonscreenError as exc:
            caps[c.id] = Capacity(None, None, f"capacity not computed: {exc}")
        # the capacity is written beside the candidate (computed here, never stored in it)
        cap = caps[c.id]
        records.append({**c.to_dict(), "discharged_formula": cap.discharged_formula or c.discharged_formula,
                        "electrons": cap.electrons or c.electrons, "capacity_mAh_g": cap.mAh_g,
                        "capacity_mAh_cm3": cap.mAh_cm3, "capacity_note": cap.note})
    Path(out).write_text(json.dumps(
        {"candidates": records, "failures": failures, "rejected_substitutions": rejected}, indent=1
    ))
    t = Table(title=f"{len(records)} candidates")
    for c in ("source", "ions", "count", "capacity mAh/g (range)"):
        t.add_column(c)
    groups: dict[str, list] = {}
    for c in found:
        groups.setdefault(c.source.split(":")[0], []).append(c)
    for src, cs in groups.items():
        vals = [caps[c.id].mAh_g for c in cs if caps[c.id].mAh_g is not None]
        rng = f"{min(vals):.0f}–{max(vals):.0f}" if vals else "—"
        t.add_row(src, " ".join(sorted({c.working_ion for c in cs})), str(len(cs)), rng)
    console.print(t)
    for f in failures:
        console.print(f"[yellow]skipped[/] {f['path']}: {f['reason']}")
    if rejected:
        console.print(f"{len(rejected)} substitutions rejected (reasons in {out})")
    console.print(f"written to {out}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


# the command modules import the helpers defined above
from .cli_dashboard import dashboard  # noqa: E402
from .cli_fireworks import submit  # noqa: E402
from .cli_neb import neb  # noqa: E402
from .cli_screen import export_cmd, rank, screen  # noqa: E402

for _cmd in (screen, rank, export_cmd, neb, submit, dashboard):
    app.add_command(_cmd)
