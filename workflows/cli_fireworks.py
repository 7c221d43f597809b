"""``ionscreen submit``: add the screen's FireWorks workflows to a LaunchPad."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ionscreen.errors import IonscreenError

from .cli_common import console, screen_options


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
@screen_options()
@click.option("--batch-size", type=int, default=50, show_default=True,
              help="Candidates per workflow (one ion per workflow); 0: one workflow per ion. "
                   "--neb-top and --voltage pick the best of each batch.")
@click.option("--resources", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML/JSON {category: {_queueadapter keys}} overriding the defaults of the "
                   "categories bvse, select, neb, ml (e.g. neb: {walltime: '08:00:00'}).")
@click.option("--priority", "priorities", multiple=True,
              help="CATEGORY=N: spec._priority of that category's Fireworks (repeatable).")
def submit(launchpad_file, store_spec, spec, batch_size, resources, priorities):  # type: ignore[no-untyped-def]
    """Add the screen as FireWorks workflows (one per batch of candidates) to a LaunchPad.

    Structure files (--files) are read here, at submission. Run the workflows with
    `rlaunch` / `qlaunch` (templates in hpc/); NEB Fireworks carry `_category: neb` (`ml`
    with an ML calculator), so that workers with the right resources pick them. Rank from the
    store with `ionscreen rank --store my_launchpad.yaml` (or the mongodb:// URI given as
    --store).
    """
    from fireworks import LaunchPad

    from .fireworks_engine import DEFAULT_STORE, ScreenWorkflowMaker
    from .fireworks_engine import submit as submit_wfs

    prio = {}
    for p in priorities:
        cat, _, n = p.partition("=")
        try:
            prio[cat] = int(n)
        except ValueError:
            raise click.BadParameter(f"--priority {p}: use CATEGORY=N, e.g. neb=10") from None
    try:
        maker = ScreenWorkflowMaker(screen=spec, store=store_spec or DEFAULT_STORE,
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
                  + (f"; {res.failed_files} structure files or database entries failed (see "
                     "`ionscreen rank`)"
                     if res.failed_files else ""))
    if spec.optimade:
        from .fireworks_engine import resolve_store
        from .optimade_fetch import fetch_summary, pages_of

        store, own = resolve_store(store_spec or DEFAULT_STORE, lp)
        try:
            for line in fetch_summary(pages_of(store.results("optimade", state=None),
                                               spec.optimade_pages())):
                console.print(line)  # a fetch cut short says so: submit again to resume it
        finally:
            if own:
                store.close()
    where = store_spec or (launchpad_file or "my_launchpad.yaml")
    console.print(f"run them with rlaunch/qlaunch; rank with: ionscreen rank --store {where}")
