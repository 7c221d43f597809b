"""``ionscreen candidates``: generate the candidate hosts of a screen and write them as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from .cli_common import console, screen_options


@click.command()
@screen_options(stages=False)
@click.option("--out", type=click.Path(dir_okay=False), default="candidates.json",
              show_default=True)
def candidates(spec, out):  # type: ignore[no-untyped-def]
    """Generate candidate hosts with provenance and theoretical capacity; write them as JSON."""
    try:
        with console.status("generating candidates ..."):
            found = spec.candidates(files=True)
    except ValueError as exc:  # unknown prototype id and the like
        raise click.BadParameter(str(exc)) from exc
    cands, failures = list(found.candidates), list(found.failures)
    if spec.optimade:
        fetched, bad = _from_optimade(spec, Path(out).with_suffix(".sqlite"))
        cands += fetched
        failures += bad
    from ionscreen.structures.candidates import unique

    docs = [_with_capacity(c) for c in unique(cands)]
    Path(out).write_text(json.dumps(
        {"candidates": docs, "failures": failures,
         "rejected_substitutions": found.rejected}, indent=1))
    console.print(_summary_table(docs))
    files = [c for c in docs if c["source"].startswith(("file:", "optimade:"))]
    if files:
        console.print(_files_table(files))
    for f in failures:
        console.print(f"[yellow]skipped[/] {f['path']}: {f['reason']}")
    if found.rejected:
        console.print(f"{len(found.rejected)} substitutions rejected (reasons in {out})")
    console.print(f"written to {out}")


def _from_optimade(spec: Any, store_path: Path) -> tuple[list[Any], list[dict[str, str]]]:
    """The candidates of the screen's OPTIMADE queries, fetched page by page into the SQLite
    store ``store_path`` (a repeated command fetches nothing again) and made one job per entry
    and ion: (candidates, failures as ``{"path", "reason"}``)."""
    from ionscreen.structures.candidates import Candidate

    from .local import LocalEngine
    from .optimade_fetch import fetch_summary, pages_of
    from .plan import ScreenSpec
    from .screen import candidate_docs, origin

    only = ScreenSpec(**{**spec.as_dict(), "files": [], "hosts": "none", "substitute": None,
                         "cps": False})
    stages = [st for st in only.stages() if st.name in ("optimade", "candidate")]
    engine = LocalEngine(store_path, console=console, argv=sys.argv,
                         settings={"spec": only.as_dict()})
    engine.run_stages(stages)
    store = engine.store
    assert store is not None
    try:
        # this command's jobs only: the store may hold the pages of an earlier filter too
        pages = pages_of(store.results("optimade", state=None), only.optimade_pages())
        for line in fetch_summary(pages):
            console.print(line)
        step = stages[-1].step
        mine = [r for r in (store.get(step.job_id(doc)) for doc in stages[-1].docs(store))
                if r is not None]
        cands = [Candidate.from_dict(d) for rec in mine if rec.state == "done"
                 for d in candidate_docs(rec.result)]
        bad = []
        for rec in [*mine, *pages]:
            if rec.state == "failed":
                o = origin(rec.step, rec.input)
                what = o["source"].removeprefix("optimade:")
                bad.append({"path": what + (f" ({o['ion']})" if o["ion"] else ""),
                            "reason": str(rec.reason)})
    finally:
        store.close()
    console.print(f"fetched pages and candidates kept in {store_path} (run again: nothing is "
                  "fetched twice; an interrupted fetch resumes)")
    return cands, bad


def _with_capacity(cand: Any) -> dict[str, Any]:
    """A candidate's document with its theoretical capacity beside it (computed here, never
    stored in the candidate)."""
    from ionscreen.screening.descriptors import capacity_or_note

    cap = capacity_or_note(cand)
    return {**cand.to_dict(), "discharged_formula": cap.discharged_formula or cand.discharged_formula,
            "electrons": cap.electrons or cand.electrons, "capacity_mAh_g": cap.mAh_g,
            "capacity_mAh_cm3": cap.mAh_cm3, "capacity_note": cap.note}


def _summary_table(docs: list[dict[str, Any]]) -> Table:
    """Candidates per source: ions, count and the range of capacities."""
    t = Table(title=f"{len(docs)} candidates")
    for c in ("source", "ions", "count", "capacity mAh/g (range)"):
        t.add_column(c)
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in docs:
        groups.setdefault(c["source"].split(":")[0], []).append(c)
    for src, cs in groups.items():
        caps = [c["capacity_mAh_g"] for c in cs if c.get("capacity_mAh_g") is not None]
        rng = f"{min(caps):.0f}–{max(caps):.0f}" if caps else "—"
        t.add_row(src, " ".join(sorted({c["working_ion"] for c in cs})), str(len(cs)), rng)
    return t


def _files_table(docs: list[dict[str, Any]]) -> Table:
    """User files: the oxidation states each candidate stands on, where they came from, and
    the ions other than the working one left in it (or removed with --replace-ion)."""
    t = Table(title="user files and database entries: oxidation states used (given, in the "
                    "file, or guessed)")
    for c in ("file or entry", "ion", "formula", "oxidation states", "from", "capacity mAh/g",
              "other ions (per cell)"):
        t.add_column(c, overflow="fold")
    for c in docs:
        prov = c.get("provenance") or {}
        oxi = " ".join(f"{el}{q:+g}" for el, q in (prov.get("oxidation_states") or {}).items())
        other = ", ".join(f"{n:g} {el}" for el, n in (prov.get("other_ions") or {}).items())
        removed = ", ".join(f"{n:g} {el}" for el, n in (prov.get("removed_ions") or {}).items())
        cap = c.get("capacity_mAh_g")
        where = (Path(prov["path"]).name if "path" in prov
                 else c["source"].removeprefix("optimade:"))
        t.add_row(where, c["working_ion"], c["formula"], oxi,
                  str(prov.get("oxidation_states_from", "—")),
                  "—" if cap is None else f"{cap:.0f}",
                  (f"removed: {removed}" if removed else "") + (other or ("" if removed else "—")))
    return t
