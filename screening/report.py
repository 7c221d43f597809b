"""The self-contained HTML report of an export (``report.html``): no external resources (CSS
from ``data/report.css`` inlined, PNG plots as base64).

Sections: per ion first what a chemist decides on (the tier that ranks, the ranked hosts with
barrier ± uncertainty, mobility class, D(300 K), voltage, capacity, energy and flags, in a
table that fits 1400 px, and the hosts not promoted), then the barrier-vs-capacity plot, every
descriptor (folded), the hosts without a barrier and the BVSE landscape slices; after the ions
the counts and who produced each number, the failed jobs and the CIF files.
:func:`report_html` builds it from a :class:`ReportInput`, which
:func:`ionscreen.screening.export.export_run` fills.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ionscreen._json import finite_or_none
from ionscreen.screening.plots import barrier_capacity_figure, landscape_figure
from ionscreen.screening.rank import (
    SCORE_NORMALISATION,
    RankedHost,
    pre_screen_text,
    ranked_tier,
)
from ionscreen.screening.sustainability import SCORE_FORMULA

__all__ = ["ReportInput", "report_css", "report_html"]

Row = Mapping[str, Any]
Shown = list[tuple[RankedHost, dict[str, Any]]]
"""Hosts with their flat export records."""

_SCATTER_CAPTION = (
    "Barrier vs theoretical capacity. Marker shape = barrier producer (○ BVSE, □ BVFF NEB, "
    "△ MLIP NEB, ◇ other); colour = sustainability score; red outline = Pareto front (3 "
    "objectives, so a front point can look dominated in this 2D view).")
_RANKED_HEADERS = [
    "rank", "formula", "source / citation", "barrier (eV)", "barrier from",
    "E1D / E2D / E3D (eV, BVSE)", "dim (BVSE)", "NEB barrier (eV) [calculator]",
    "sites (BVSE): n / distinct / spread eV", "capacity mAh/g", "capacity mAh/cm³",
    "density g/cm³", "voltage V [ML model]", "ΔV/V [ML model]",
    "HHI prod / res (pymatgen)", "scarcest element (ppm, R&G 2003)",
    "toxic / critical (EU 2023)", "sustain. score", "Pareto (front #)", "score", "notes"]
_SUMMARY_HEADERS = ["working ion", "jobs", "done", "failed", "ranked", "done without barrier",
                    "on Pareto front", "barrier tiers used"]


@dataclass(frozen=True)
class ReportInput:
    """Everything the report shows, as the export computed it."""

    title: str
    ranked: Mapping[str, list[RankedHost]]
    """Hosts per working ion: ranked first (``rank`` set), then done hosts without a barrier."""
    records: Mapping[str, list[dict[str, Any]]]
    """The flat export record of each host of :attr:`ranked`, in the same order."""
    counts: Mapping[str, Mapping[str, int]]
    """Per ion: total, done, failed, ranked, unranked."""
    failures: list[dict[str, Any]]
    failure_columns: Sequence[str]
    producers: Mapping[str, str]
    """Producer of each column that is not self-describing."""
    weights: Mapping[str, float]
    top_n: int
    cif_manifest: list[dict[str, Any]]
    landscapes: Mapping[str, Any] | None = None
    n_landscape: int = 3


@lru_cache(maxsize=1)
def report_css() -> str:
    """The report's style sheet (``data/report.css``)."""
    return resources.files("ionscreen.screening").joinpath("data/report.css").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- formatting


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fmt(v: Any, nd: int = 3) -> str:
    n = finite_or_none(v)
    if n is None:
        return "—" if v is None or isinstance(v, (int, float)) else _e(v)
    if abs(n) >= 1e4 or (0 < abs(n) < 1e-3):
        return f"{n:.3g}"
    return f"{n:.{nd}f}"


def _sig(v: Any) -> str:
    n = finite_or_none(v)
    return "—" if n is None else f"{n:.3g}"


def _dash(v: Any) -> str:
    return _e("—" if v is None else v)


def _short_tier(tier: Any) -> str:
    """'BVFF CI-NEB (softBV Morse + ...)' -> 'BVFF CI-NEB': the full text goes in a tooltip."""
    return str(tier).split(" (", 1)[0]


def _tier_cell(tier: Any) -> str:
    if not tier:
        return "—"
    return f"<abbr title='{_e(tier)}'>{_e(_short_tier(tier))}</abbr>"


def _table(headers: list[str], rows: list[list[tuple[str, bool]]], row_classes: list[str] | None = None,
           css_class: str = "") -> str:
    """headers are plain text (escaped here); cells are (already-escaped html, numeric?)."""
    out = [f'<table class="{_e(css_class)}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in headers]
    out.append("</tr></thead><tbody>")
    for i, cells in enumerate(rows):
        cls = (row_classes or [""] * len(rows))[i]
        out.append(f'<tr class="{_e(cls)}">' if cls else "<tr>")
        out += [f'<td class="num">{c}</td>' if num else f"<td>{c}</td>" for c, num in cells]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _img(alt: str, png: bytes, caption_html: str) -> str:
    return (f"<figure><img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
            f"<figcaption>{caption_html}</figcaption></figure>")


def _ranked(hosts: list[RankedHost]) -> list[RankedHost]:
    return [h for h in hosts if h.rank is not None]


# ----------------------------------------------------------------------------- ranked table


def _neb_cell(rec: Row) -> str:
    if rec["neb_barrier_eV"] is None and not rec["neb_calculator"]:
        return "—"
    return (f"{_fmt(rec['neb_barrier_eV'])} [{_tier_cell(rec['neb_calculator'])}"
            f"{'' if rec['neb_converged'] in (True, None) else ', not converged'}]")


def _hazard_cell(rec: Row) -> str:
    return ", ".join(filter(None, [
        f"toxic: {_e(rec['toxic_elements'])}" if rec["toxic"] else "",
        f"critical: {_e(rec['critical_elements'])}" if rec["critical"] else ""])) or "—"


def _pareto_cell(rec: Row) -> str:
    if rec["pareto_rank"] is None:
        return "—"
    return "yes (0)" if rec["pareto"] else f"no ({rec['pareto_rank']})"


def _ml(rec: Row, key: str, nd: int) -> str:
    tag = f" [{_e(rec['ml_model'])}]" if rec["ml_model"] else ""
    return _fmt(rec[key], nd) + (tag if rec[key] is not None else "")


def _ranked_cells(host: RankedHost, rec: Row) -> list[tuple[str, bool]]:
    """One row of the ranked table: ``rec`` is the flat record of ``host``."""
    scarce = (f"{_e(rec['abundance_min_element'])} {_sig(rec['abundance_min_ppm'])}"
              if rec["abundance_min_element"] else "—")
    return [
        (_dash(rec["rank"]), True),
        (f"<b>{_e(rec['formula'])}</b><br><span class='small'>{_e(rec['state'])} · "
         f"{_e((rec['candidate_id'] or '')[:8])}</span>", False),
        (f"{_e(rec['source'])}<br><span class='small'>{_e(rec['citation'])}</span>", False),
        (_fmt(rec["barrier_eV"]), True),
        (_tier_cell(rec["barrier_tier"]), False),
        (" / ".join(_fmt(rec[k]) for k in ("E1D_eV", "E2D_eV", "E3D_eV")), True),
        (_dash(rec["dimensionality"]), True),
        (_neb_cell(rec), False),
        (f"{_dash(rec['n_sites'])} / {_dash(rec['n_distinct_sites'])} / "
         f"{_fmt(rec['site_energy_spread_eV'])}", True),
        (_fmt(rec["capacity_mAh_g"], 1), True),
        (_fmt(rec["capacity_mAh_cm3"], 1), True),
        (_fmt(rec["density_g_cm3"], 3), True),
        (_ml(rec, "voltage_V", 3), True),
        (_ml(rec, "volume_change", 4), True),
        (f"{_fmt(rec['hhi_production'], 0)} / {_fmt(rec['hhi_reserve'], 0)}", True),
        (scarce, False),
        (_hazard_cell(rec), False),
        (_fmt(rec["sustainability_score"]), True),
        (_e(_pareto_cell(rec)), False),
        (_fmt(rec["score"]), True),
        ("<br>".join(_e(n.text) for n in host.notes) or "", False),
    ]


def _ranked_table(shown: Shown) -> str:
    """The table of the shown hosts."""
    body = [_ranked_cells(h, rec) for h, rec in shown]
    classes = ["pareto" if rec["pareto"] else "" for _, rec in shown]
    return f"<div class='scroll'>{_table(_RANKED_HEADERS, body, classes, 'ranked')}</div>"


# ----------------------------------------------------------------------------- first screen

_FIRST_HEADERS = ["rank", "host", "tier", "barrier ± u (eV)", "mobility", "D 300 K (cm²/s)",
                  "voltage (V)", "capacity (mAh/g)", "energy (Wh/kg)", "flags"]
_CLASS_TITLE = {
    "mobile": "barrier + uncertainty ≤ 0.525 eV: mobile in micron particles at C/2",
    "borderline": "between 0.525 and 0.65 eV within the uncertainty: nano-particles, or the tier "
                  "cannot tell",
    "immobile": "barrier − uncertainty > 0.65 eV: too slow even in nano-particles",
}


def _class_cell(mobility: Any) -> str:
    if not mobility:
        return "—"
    return (f"<span class='cls {_e(mobility)}' title='{_e(_CLASS_TITLE.get(mobility, ''))}'>"
            f"{_e(mobility)}</span>")


def _first_cells(host: RankedHost, rec: Row) -> list[tuple[str, bool]]:
    """One row of an ion's first screen: what a chemist decides on, nothing wider."""
    u = rec["barrier_uncertainty_eV"]
    barrier = _fmt(rec["barrier_eV"]) + ("" if u is None else f" ± {_fmt(u, 2)}")
    volt = (_fmt(rec["voltage_V"], 2) if rec["voltage_V"] is not None
            else "<span class='small'>unknown</span>")
    flags = " ".join(f"<span class='flag'>{_e(f)}</span>"
                     for f in (rec["flags"] or "").split(";") if f) or "—"
    return [
        (_dash(rec["rank"]), True),
        (f"<b>{_e(rec['formula'])}</b> <span class='small' title='{_e(rec['citation'])}'>"
         f"{_e(rec['state'])} · {_e(str(rec['source'])[:48])}</span>", False),
        (_tier_cell(rec["barrier_tier"]), False),
        (barrier, True),
        (_class_cell(rec["mobility"]), False),
        (_sig(rec["diffusivity_300K_cm2_s"]), True),
        (volt, True),
        (_fmt(rec["capacity_mAh_g"], 0), True),
        (_fmt(rec["specific_energy_Wh_kg"], 0), True),
        (flags, False),
    ]


def _first_screen(ion: str, tier: str | None, n_ranked: int, shown: Shown, below: Shown) -> list[str]:
    """The top of an ion's section: which tier ranks, the ranked hosts, and those not promoted."""
    if tier is None:
        head = "<p class='banner warn'>No host has a plausible barrier for this ion.</p>"
    elif pre_screen_text(tier):
        head = (f"<p class='banner warn'><b>Pre-screen</b>: {n_ranked} host(s) "
                f"{_e(pre_screen_text(tier))}. Hosts that stopped at a lower tier are listed "
                "below, not among them.</p>")
    else:
        head = (f"<p class='banner'>{n_ranked} host(s) ranked by <b>{_tier_cell(tier)}</b>; "
                "mobility class first, then score. Hosts that stopped at a lower tier are listed "
                "below, not among them.</p>")
    parts = [head]
    if shown:
        parts.append(_table(_FIRST_HEADERS, [_first_cells(h, r) for h, r in shown],
                            ["pareto" if r["pareto"] else "" for _, r in shown], "first"))
    if below:
        parts.append(f"<details><summary>{len(below)} host(s) not promoted to "
                     f"{_e(_short_tier(tier))} (BVSE filter, --neb-top cap, or a NEB that gave no "
                     "rankable barrier)</summary>")
        parts.append(_table(_FIRST_HEADERS, [_first_cells(h, r) for h, r in below], None, "first"))
        parts.append("</details>")
    return parts


# ----------------------------------------------------------------------------- sections


def _head(title: str) -> list[str]:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>\n{report_css()}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='note'>Generated {_e(now)} by ionscreen. BVSE filters the hosts; the NEB tier "
        "ranks those it promoted (one tier per ion). Every barrier names the tier that produced "
        "it and carries its uncertainty; the mobility class compares barrier ± uncertainty with "
        "0.525 eV (micron particles) and 0.65 eV (nano-particles) at C/2 (Rong et al., Chem. "
        "Mater. 27, 6016, 2015).</p>",
    ]


def _summary_row(ion: str, c: Mapping[str, int], hosts: list[RankedHost],
                 legend: dict[str, str]) -> list[tuple[str, bool]]:
    """The summary line of one ion; adds its barrier tiers (short label -> full) to ``legend``."""
    tiers: dict[str, int] = {}
    for h in _ranked(hosts):
        full = str(h.barrier_tier_key or "?")
        short = _short_tier(full)
        legend.setdefault(short, full)
        tiers[short] = tiers.get(short, 0) + 1
    return [(_e(ion), False), (_e(c["total"]), True), (_e(c["done"]), True),
            (_e(c["failed"]), True), (_e(c["ranked"]), True), (_e(c["unranked"]), True),
            (_e(sum(1 for h in hosts if h.pareto)), True),
            (_e(", ".join(f"{k}: {v}" for k, v in sorted(tiers.items()))) or "—", False)]


def _summary(data: ReportInput) -> list[str]:
    legend: dict[str, str] = {}  # short tier label -> full calculator identity
    body = [_summary_row(ion, c, data.ranked.get(ion, []), legend) for ion, c in data.counts.items()]
    parts = ["<h2 id='about'>Summary and what produced each number</h2>",
             _table(_SUMMARY_HEADERS, body)]
    if any(k != v for k, v in legend.items()):
        parts.append("<p class='note'><b>Barrier tiers</b>: " + "; ".join(
            f"<b>{_e(k)}</b> = {_e(v)}" for k, v in sorted(legend.items()) if k != v) + "</p>")
    wtxt = ", ".join(f"{k} {v:.3g}" for k, v in data.weights.items())
    parts.append(
        f"<p class='note'><b>Score</b>: weights {_e(wtxt)}; normalisation: {_e(SCORE_NORMALISATION)}. "
        f"<b>Pareto front</b>: non-dominated over barrier ↓, capacity (mAh/g) ↑, sustainability score ↑ "
        f"(rows missing a value are on no front). <b>Sustainability score</b>: {_e(SCORE_FORMULA)}; "
        "computed for the host without the working ion.</p>")
    parts.append("<h3>Who produced each number</h3><ul class='note'>")
    parts += [f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in data.producers.items()]
    parts.append("</ul>")
    return parts


def _scatter(ion: str, hosts: list[RankedHost]) -> str:
    """The barrier-vs-capacity figure of the ranked hosts with a capacity (or why there is none)."""
    ranked = _ranked(hosts)
    pts = [h for h in ranked if h.capacity_mAh_g is not None]
    if not pts:
        return "<p class='missing'>No plot: no ranked host with a capacity.</p>"
    png = barrier_capacity_figure(
        ion, [h.record.formula for h in pts], [h.barrier for h in pts],
        [h.capacity_mAh_g for h in pts], [h.barrier_tier for h in pts],
        [h.pareto for h in pts], [h.sustainability_score for h in pts])
    cap = _SCATTER_CAPTION
    if len(ranked) > len(pts):
        cap += f" {len(ranked) - len(pts)} ranked host(s) without a capacity are not shown."
    return _img(f"{_e(ion)} barrier vs capacity", png, _e(cap))


def _top_hosts(ion: str, n_ranked: int, shown: Shown) -> list[str]:
    if not shown:
        return ["<p class='missing'>No ranked hosts for this ion.</p>"]
    return [f"<h3>Top {len(shown)} of {n_ranked} ranked ({_e(ion)})</h3>", _ranked_table(shown)]


def _unranked(hosts: list[RankedHost]) -> list[str]:
    unr = [h for h in hosts if h.rank is None]
    if not unr:
        return []
    return [f"<p class='note'>{len(unr)} finished host(s) without any barrier (no percolating "
            f"path): {_e(', '.join(str(h.record.formula) for h in unr[:30]))}"
            f"{' …' if len(unr) > 30 else ''}</p>"]


def _landscape_entry(host: RankedHost, landscapes: Mapping[str, Any] | None) -> Any:
    for key in (host.record.job_id, host.record.candidate_id):
        if landscapes and key is not None and key in landscapes:
            return landscapes[key]
    return None


def _landscape(ion: str, host: RankedHost, landscapes: Mapping[str, Any] | None) -> str:
    """The landscape figure of one top host, or a line that says why there is none."""
    rec = host.record
    entry = _landscape_entry(host, landscapes)
    img = None
    if entry is not None:
        try:
            img = landscape_figure(entry, f"{rec.formula} ({ion}), BVSE",
                                   list(rec.bvse.barriers.values()) if rec.bvse else [])
        except Exception as exc:  # a bad slice must not lose the report
            return f"<p class='missing'>Landscape of {_e(rec.formula)} could not be drawn: {_e(exc)}</p>"
    if not img:
        return (f"<p class='missing'>No landscape slice given for rank {_e(host.rank)} "
                f"{_e(rec.formula)} (job {_e(rec.job_id)}).</p>")
    return _img(f"BVSE landscape {_e(rec.formula)}", img,
                f"rank {_e(host.rank)}: {_e(rec.formula)}, BVSE energy of {_e(ion)} (eV; colour "
                f"scale clipped 0.5 eV above the highest percolation barrier); "
                f"{_e(rec.bvse.model if rec.bvse else '')}")


def _landscapes(ion: str, top: list[RankedHost], landscapes: Mapping[str, Any] | None) -> list[str]:
    parts = [f"<h3>BVSE landscape of the top hosts ({_e(ion)})</h3>"]
    if not top:
        parts.append("<p class='missing'>No ranked hosts, so no landscape.</p>")
    elif not landscapes:
        parts.append("<p class='missing'>No BVSE landscape slices were given to this export (pass "
                     "<code>landscapes={job_id: 2D array}</code> to <code>export_run</code>); the "
                     "barriers above do not depend on it.</p>")
    else:
        parts += [_landscape(ion, h, landscapes) for h in top]
    return parts


def _ion_section(data: ReportInput, ion: str) -> list[str]:
    hosts = data.ranked[ion]
    ranked = [(h, rec) for h, rec in zip(hosts, data.records[ion]) if h.rank is not None]
    below = [(h, rec) for h, rec in zip(hosts, data.records[ion])
             if h.rank is None and not h.promoted]
    shown = ranked[:data.top_n]
    return [f"<section class='ion'><h2 id='ion-{_e(ion)}'>{_e(ion)}</h2>",
            *_first_screen(ion, ranked_tier(hosts), len(ranked), shown, below),
            _scatter(ion, hosts),
            "<details><summary>Every descriptor of the top hosts (BVSE detail, NEB, density, "
            "sustainability, score, notes)</summary>",
            *_top_hosts(ion, len(ranked), shown),
            "</details>",
            *_unranked([h for h in hosts if h.promoted]),
            *_landscapes(ion, [h for h, _ in shown[:data.n_landscape]], data.landscapes),
            "</section>"]


def _nav(data: ReportInput) -> str:
    links = " · ".join(f"<a href='#ion-{_e(ion)}'>{_e(ion)}</a>" for ion in data.ranked)
    return (f"<p class='nav'>{links} · <a href='#about'>about these numbers</a> · "
            "<a href='#failed'>failed jobs</a> · <a href='#cifs'>CIF files</a></p>")


def _failures(data: ReportInput) -> list[str]:
    if not data.failures:
        return ["<h2 id='failed'>Failed jobs</h2>", "<p>None.</p>"]
    cols = list(data.failure_columns)
    return ["<h2 id='failed'>Failed jobs</h2>", "<div class='scroll'>",
            _table(cols, [[(_e(f.get(c)), False) for c in cols] for f in data.failures]), "</div>"]


def _cifs(data: ReportInput) -> list[str]:
    if not data.cif_manifest:
        return ["<h2 id='cifs'>CIF files</h2>", "<p>No ranked hosts, so no CIFs.</p>"]
    return ["<h2 id='cifs'>CIF files</h2>",
            f"<p class='note'>top_cifs.zip holds the CIFs of the top {data.top_n} hosts per ion "
            "(MANIFEST.csv inside lists source and citation per file).</p>",
            "<div class='scroll'>",
            _table(["file", "rank", "formula", "citation", "note"],
                   [[(_e(m["file"]), False), (_e(m["rank"]), True), (_e(m["formula"]), False),
                     (_e(m["citation"]), False), (_e(m["note"]), False)] for m in data.cif_manifest]),
            "</div>"]


def report_html(data: ReportInput) -> str:
    """The report as one HTML document."""
    parts = _head(data.title) + [_nav(data)]
    for ion in data.ranked:
        parts += _ion_section(data, ion)
    parts += _summary(data) + _failures(data) + _cifs(data)
    parts.append("</body></html>")
    return "\n".join(parts)
