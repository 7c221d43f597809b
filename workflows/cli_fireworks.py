"""``ionscreen submit``: add the screen's FireWorks workflows to a LaunchPad."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ionscreen.structures.errors import IonscreenError

from .cli_common import DEFAULT_IONS, _GreedyOption, _parse_oxi, _split_words, console


def _load_mapping(path: str | None) -> dict:
    if not path:
        return {}
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        from ruamel.yaml import YAML  # a FireWorks dependency

        return dict(YAML(typ="safe").load(text) or {})
    return dict(json.loads(text))


@click.command()
@click.option("--launchpad", "launchpad_file", type=click.Path(dir_okay=False, exists=True),
              default=None, help="LaunchPad file (my_launchpad.yaml). Default: FireWorks' "
                                 "own lookup (FW_config.yaml, ./my_launchpad.yaml).")
@click.option("--store", "store_spec", default=None,
              help="Result store the Fireworks write to: mongodb://host/db?collection=name, or "
                   "a path (SQLite, one machine only). Default: the collection ionscreen_jobs "
                   "of the launchpad's database.")
@click.option("--hosts", default="builtin", show_default=True,
              help="'builtin' (all prototypes), 'none', or prototype ids separated by commas.")
@click.option("--substitute", cls=_GreedyOption, multiple=True, default=None,
              help="Substituted built-in hosts: 'default' or rules such as 'Mn:Fe,Co O:S,Se'.")
@click.option("--cps", is_flag=True, help="Add DI–M–ligand coordination polymers.")
@click.option("--cp-models", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--files", cls=_GreedyOption, multiple=True, default=None,
              help="Structure files or folders (read here, at submission).")
@click.option("--oxi", default=None, help="Oxidation states for --files, e.g. Fe=2,P=5,O=-2.")
@click.option("--ions", cls=_GreedyOption, multiple=True, default=None,
              help="Working ions (space or comma separated). Default: Mg Ca Zn Al NH4.")
@click.option("--resolution", type=float, default=0.2, show_default=True)
@click.option("--derive-nitride", is_flag=True,
              help="Derive missing ion–N3- BVSE rows (Ca, Zn, Al, NH4, Na, Ba in cyanide or "
                   "sulfonamide hosts) from the ion–O2- rows: approximate, flagged in every row.")
@click.option("--neb-top", type=int, default=3, show_default=True,
              help="NEB on the N best BVSE candidates per ion of each batch (0: none).")
@click.option("--neb-calculator", default="bvff", show_default=True)
@click.option("--voltage", "voltage_calc", default=None,
              help="ML calculator (e.g. chgnet) for the voltage of the best discharged hosts.")
@click.option("--batch-size", type=int, default=50, show_default=True,
              help="Candidates per workflow (one ion per workflow); 0: one workflow per ion.")
@click.option("--resources", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML/JSON {category: {_queueadapter keys}} overriding the defaults of the "
                   "categories bvse, select, neb, ml (e.g. neb: {walltime: '08:00:00'}).")
@click.option("--priority", "priorities", multiple=True,
              help="CATEGORY=N: spec._priority of that category's Fireworks (repeatable).")
def submit(launchpad_file, store_spec, hosts, substitute, cps, cp_models, seed, files, oxi,  # type: ignore[no-untyped-def]
           ions, resolution, neb_top, neb_calculator, voltage_calc, batch_size, resources,
           priorities, derive_nitride):
    """Add the screen as FireWorks workflows (one per batch of candidates) to a LaunchPad.

    Run them with `rlaunch` / `qlaunch` (templates in hpc/); NEB Fireworks carry
    `_category: neb` (`ml` with an ML calculator), so that workers with the right resources
    pick them. Rank from the store with `ionscreen rank --store my_launchpad.yaml` (or the
    mongodb:// URI given as --store).
    """
    from fireworks import LaunchPad

    from ionscreen.structures.ions import get_working_ion

    from .fireworks_engine import DEFAULT_STORE, ScreenWorkflowMaker
    from .fireworks_engine import submit as submit_wfs
    from .screen import ScreenMaker

    try:
        ion_list = [get_working_ion(i).name for i in (_split_words(ions) or list(DEFAULT_IONS))]
    except IonscreenError as exc:
        raise click.BadParameter(str(exc)) from exc
    prio = {}
    for p in priorities:
        cat, _, n = p.partition("=")
        try:
            prio[cat] = int(n)
        except ValueError:
            raise click.BadParameter(f"--priority {p}: use CATEGORY=N, e.g. neb=10") from None
    screen = ScreenMaker(ions=ion_list, hosts=hosts, substitute=_split_words(substitute) or None,
                         cps=cps, cp_models=cp_models, seed=seed, files=_split_words(files),
                         oxi=_parse_oxi(oxi), resolution=resolution, neb_top=neb_top,
                         neb_calculator=neb_calculator, voltage_calculator=voltage_calc,
                        bvse={"derive_nitride": True} if derive_nitride else {})
    try:
        maker = ScreenWorkflowMaker(screen=screen, store=store_spec or DEFAULT_STORE,
                                    batch_size=batch_size,
                                    queueadapter=_load_mapping(resources), priority=prio)
        lp = LaunchPad.from_file(launchpad_file) if launchpad_file else LaunchPad.auto_load()
        with console.status("generating candidates and adding workflows ..."):
            res = submit_wfs(lp, maker)
    except (ValueError, IonscreenError) as exc:
        raise click.BadParameter(str(exc)) from exc
    console.print(f"added {res.workflows} workflows ({res.fireworks} Fireworks at submission; "
                  f"NEB Fireworks are added when each batch's BVSE is done) for "
                  f"{res.candidates} candidates; {res.new_jobs} new BVSE jobs in the store"
                  + (f"; {res.failed_files} structure files failed (see `ionscreen rank`)"
                     if res.failed_files else ""))
    where = store_spec or (launchpad_file or "my_launchpad.yaml")
    console.print(f"run them with rlaunch/qlaunch; rank with: ionscreen rank --store {where}")
