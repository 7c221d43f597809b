"""Exports for experimentalists: ranked CSV/JSON per working ion, failures, CIFs of the top
candidates, and a self-contained HTML report.

:func:`export_run` writes, into ``out_dir``:

* ``ranked_<ion>.csv`` and ``ranked_<ion>.json`` — one row per candidate (ranked first, then
  the finished rows without a barrier, ``rank`` empty), columns :data:`COLUMNS`; the JSON adds
  a ``meta`` block (weights, score and sustainability formulas, producers);
* ``failures.csv`` — every job that did not finish, with its error and reason;
* ``top_cifs.zip`` — CIFs of the top ``top_n`` hosts per ion as ``<ion>/<rank>_<formula>_<id8>.cif``
  plus ``MANIFEST.csv`` (rank, formula, source, citation, barrier and its tier per file);
* ``report.html`` — one file, no external resources (inline CSS, PNG plots as base64): counts
  per ion, the ranked tables, barrier-vs-capacity plots with the Pareto front, BVSE landscape
  slices of the top hosts when ``landscapes`` gives them, the failures.

Every number names its producer: the barrier's tier column (``BVSE E1D``, ``BVFF CI-NEB (...)``,
``MLIP CI-NEB (CHGNet ...)``), the BVSE model, the NEB calculator, the ML model behind voltage
and volume change; capacities are theoretical (formula and charge), sustainability comes from
pymatgen's HHI table and the packaged element data.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ionscreen._json import jsonable
from ionscreen.screening.bvse import BVSESummary
from ionscreen.screening.rank import (
    SCORE_NORMALISATION,
    RankedHost,
    _num,
    ions_in,
    normalise_ion,
    rank_all,
)
from ionscreen.screening.records import HostRecord
from ionscreen.screening.sustainability import SCORE_FORMULA
from ionscreen.screening.weights import _resolve_weights
from ionscreen.structures.ions import DIMS

__all__ = ["COLUMNS", "FAILURE_COLUMNS", "export_run", "failure_row", "flat_record", "write_csv"]

#: Columns of ranked_<ion>.csv / .json, in order. Units are in the names.
COLUMNS = (
    "rank", "formula", "working_ion", "source", "citation", "state",
    "barrier_eV", "barrier_tier",
    "E1D_eV", "E2D_eV", "E3D_eV", "dimensionality", "bvse_model", "bvse_approximate",
    "neb_barrier_eV", "neb_tier", "neb_calculator", "neb_converged",
    "n_sites", "n_distinct_sites", "site_energy_spread_eV", "lowest_hop_barrier_eV",
    "capacity_mAh_g", "capacity_mAh_cm3", "density_g_cm3",
    "voltage_V", "volume_change", "ml_model",
    "hhi_production", "hhi_reserve", "abundance_min_ppm", "abundance_min_element",
    "abundance_weighted_ppm", "toxic", "toxic_elements", "critical", "critical_elements",
    "sustainability_score",
    "pareto", "pareto_rank", "score", "notes", "candidate_id", "job_id",
)
FAILURE_COLUMNS = ("working_ion", "formula", "source", "step", "status", "reason", "error",
                   "candidate_id", "job_id")

#: Producer of each column that is not self-describing (shown in the report and the JSON meta).
PRODUCERS = {
    "barrier_eV": "the tier named in barrier_tier (converged NEB if any, else BVSE min(E1D, E2D, E3D))",
    "E1D_eV/E2D_eV/E3D_eV, dimensionality, n_sites, site_energy_spread_eV": "BVSE (model in bvse_model)",
    "neb_barrier_eV": "CI-NEB with neb_calculator (tier neb_tier); empty unless computed",
    "capacity_mAh_g, capacity_mAh_cm3, density_g_cm3": "theoretical, from formula, charge and cell "
    "(ionscreen.screening.descriptors)",
    "voltage_V, volume_change": "ML tier (model in ml_model); empty where it did not run",
    "hhi_*, abundance_*, toxic, critical, sustainability_score": "ionscreen.screening.sustainability "
    "(pymatgen HHIModel; Rudnick & Gao 2003; EU CRM list 2023), host without the working ion",
    "pareto, pareto_rank, score, rank": "ionscreen.screening.rank",
}

_TIER_MARKERS = (("BVSE", "o"), ("BVFF", "s"), ("MLIP", "^"))


# ----------------------------------------------------------------------------- records


def _round(x: Any, nd: int) -> float | None:
    v = _num(x)
    return None if v is None else round(v, nd)


def _bvse_model(bvse: BVSESummary | None) -> str | None:
    if bvse is None:
        return None
    return f"{bvse.method or 'BVSE'}: {bvse.model}" if bvse.model else bvse.method


def flat_record(host: RankedHost) -> dict[str, Any]:
    """One ranked host as a flat dict over :data:`COLUMNS` (JSON-able, no NaN)."""
    rec = host.record
    bvse, neb = rec.bvse, rec.neb
    sus = rec.sustainability or {}
    bars = bvse.barriers if bvse else dict.fromkeys(DIMS)
    flat = {
        "rank": host.rank,
        "formula": rec.formula,
        "working_ion": normalise_ion(rec.working_ion),
        "source": rec.source,
        "citation": rec.citation,
        "state": rec.state,
        "barrier_eV": _round(host.barrier, 4),
        "barrier_tier": host.barrier_tier,
        "E1D_eV": _round(bars["1D"], 4),
        "E2D_eV": _round(bars["2D"], 4),
        "E3D_eV": _round(bars["3D"], 4),
        "dimensionality": bvse.dimensionality if bvse else None,
        "bvse_model": _bvse_model(bvse),
        "bvse_approximate": bvse.approximate if bvse else None,
        "neb_barrier_eV": _round(neb.barrier, 4) if neb else None,
        "neb_tier": neb.tier if neb else None,
        "neb_calculator": neb.calculator if neb else None,
        "neb_converged": neb.converged if neb else None,
        "n_sites": bvse.n_sites if bvse else None,
        "n_distinct_sites": bvse.n_distinct_sites if bvse else None,
        "site_energy_spread_eV": _round(bvse.site_energy_spread, 4) if bvse else None,
        "lowest_hop_barrier_eV": _round(bvse.lowest_hop_barrier, 4) if bvse else None,
        "capacity_mAh_g": _round(rec.capacity_mAh_g, 2),
        "capacity_mAh_cm3": _round(rec.capacity_mAh_cm3, 2),
        "density_g_cm3": _round(rec.density, 4),
        "voltage_V": _round(rec.voltage_V, 4),
        "volume_change": _round(rec.volume_change, 5),
        "ml_model": rec.ml_model,
        "hhi_production": _round(sus.get("hhi_production"), 1),
        "hhi_reserve": _round(sus.get("hhi_reserve"), 1),
        "abundance_min_ppm": _num(sus.get("abundance_min_ppm")),
        "abundance_min_element": sus.get("abundance_min_element"),
        "abundance_weighted_ppm": _round(sus.get("abundance_weighted_ppm"), 4),
        "toxic": sus.get("toxic"),
        "toxic_elements": " ".join(sus.get("toxic_elements") or []),
        "critical": sus.get("critical"),
        "critical_elements": " ".join(sus.get("critical_elements") or []),
        "sustainability_score": _round(host.sustainability_score, 4),
        "pareto": host.pareto,
        "pareto_rank": host.pareto_rank,
        "score": _round(host.score, 4),
        "notes": "; ".join(n.text for n in host.notes),
        "candidate_id": rec.candidate_id,
        "job_id": rec.job_id,
    }
    return {k: flat[k] for k in COLUMNS}


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float) and not math.isfinite(v):
        return ""
    return v


def write_csv(path: str | Path, records: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> Path:
    """Write records as CSV (UTF-8, header row, None → empty cell)."""
    path = Path(path)
    columns = list(columns)
    with path.open("w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(columns)
        for rec in records:
            wr.writerow([_csv_value(rec.get(c)) for c in columns])
    return path


def failure_row(record: HostRecord) -> dict[str, Any]:
    """A failed record as a flat dict over :data:`FAILURE_COLUMNS`."""
    f = record.failure
    if f is None:
        raise ValueError(f"{record.formula} ({record.working_ion}): not a failed record")
    return {
        "working_ion": normalise_ion(record.working_ion),
        "formula": record.formula,
        "source": record.source,
        "step": f.step,
        "status": "failed",
        "reason": f.reason,
        "error": f.error,
        "candidate_id": record.candidate_id,
        "job_id": record.job_id,
    }


# ----------------------------------------------------------------------------- CIFs


def _safe(text: Any, limit: int = 40) -> str:
    s = re.sub(r"[^A-Za-z0-9()._-]+", "", str(text or ""))
    return s[:limit] or "unknown"


def _ascii_line(text: Any) -> str:
    s = " ".join(str(text or "").split())
    return s.encode("ascii", "replace").decode("ascii")


def _cif_text(host: RankedHost) -> str:
    from pymatgen.io.cif import CifWriter

    rec = host.record
    if rec.structure is None:
        raise ValueError("no structure stored")
    header = [
        f"# ionscreen candidate {_ascii_line(rec.candidate_id)} for "
        f"{_ascii_line(normalise_ion(rec.working_ion))} (rank {host.rank})",
        f"# formula: {_ascii_line(rec.formula)}; state: {_ascii_line(rec.state)}",
        f"# source: {_ascii_line(rec.source)}",
        f"# citation: {_ascii_line(rec.citation)}",
        f"# barrier: {_num(host.barrier)} eV ({_ascii_line(host.barrier_tier)})",
    ]
    return "\n".join(header) + "\n" + str(CifWriter(rec.structure))


def _cif_name(ion: str, host: RankedHost) -> str:
    ident = str(host.record.candidate_id or host.record.job_id or "")[:8]
    return f"{_safe(ion)}/{host.rank}_{_safe(host.record.formula)}_{_safe(ident, 8)}.cif"


def _write_zip(path: Path, ranked: Mapping[str, list[RankedHost]], top_n: int) -> list[dict[str, Any]]:
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for ion, hosts in ranked.items():
            for host in [h for h in hosts if h.rank is not None][:top_n]:
                rec = host.record
                name = _cif_name(ion, host)
                entry = {"file": name, "working_ion": ion, "rank": host.rank,
                         "formula": rec.formula, "source": rec.source,
                         "citation": rec.citation, "barrier_eV": _round(host.barrier, 4),
                         "barrier_tier": host.barrier_tier, "candidate_id": rec.candidate_id,
                         "note": ""}
                try:
                    zf.writestr(name, _cif_text(host))
                except Exception as exc:  # a broken structure must not stop the export
                    entry["file"] = ""
                    entry["note"] = f"no CIF: {exc}"
                manifest.append(entry)
        buf = io.StringIO()
        cols = ["file", "working_ion", "rank", "formula", "source", "citation", "barrier_eV",
                "barrier_tier", "candidate_id", "note"]
        wr = csv.writer(buf)
        wr.writerow(cols)
        for m in manifest:
            wr.writerow([_csv_value(m.get(c)) for c in cols])
        zf.writestr("MANIFEST.csv", buf.getvalue())
    return manifest


# ----------------------------------------------------------------------------- plots


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _tier_family(host: RankedHost) -> str:
    key = str(host.barrier_tier or "")
    for fam, _ in _TIER_MARKERS:
        if key.startswith(fam):
            return fam
    return "other"


def _scatter_png(ion: str, hosts: list[RankedHost]) -> tuple[str | None, int]:
    """Barrier vs capacity for one ion; returns (base64 PNG or None, hosts not plotted)."""
    from matplotlib.figure import Figure

    pts = [h for h in hosts if h.rank is not None and h.capacity_mAh_g is not None]
    skipped = sum(1 for h in hosts if h.rank is not None) - len(pts)
    if not pts:
        return None, skipped
    fig = Figure(figsize=(7.2, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    markers = dict(_TIER_MARKERS)
    sc = None
    for fam in [f for f, _ in _TIER_MARKERS] + ["other"]:
        grp = [r for r in pts if _tier_family(r) == fam]
        if not grp:
            continue
        x = [h.capacity_mAh_g for h in grp]
        y = [h.barrier for h in grp]
        c = [np.nan if h.sustainability_score is None else h.sustainability_score for h in grp]
        edge = ["crimson" if h.pareto else "0.35" for h in grp]
        lw = [2.2 if h.pareto else 0.6 for h in grp]
        sc = ax.scatter(x, y, c=c, cmap="viridis", vmin=0, vmax=1, marker=markers.get(fam, "D"),
                        s=70, edgecolors=edge, linewidths=lw, plotnonfinite=True)
    front = sorted([h for h in pts if h.pareto], key=lambda h: h.capacity_mAh_g)
    for h in front:
        ax.annotate(str(h.record.formula or "")[:18], (h.capacity_mAh_g, h.barrier),
                    textcoords="offset points", xytext=(5, 5), fontsize=7, color="crimson")
    from matplotlib.lines import Line2D

    present = {_tier_family(h) for h in pts}
    handles = [Line2D([], [], ls="", marker=m, ms=8, mfc="0.8", mec="0.35", label=f"barrier from {f}")
               for f, m in list(_TIER_MARKERS) + [("other tier", "D")]
               if f in present or (f == "other tier" and "other" in present)]
    handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="crimson", mew=2.2,
                          label="Pareto front (barrier, capacity, sustainability)"))
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="sustainability score (grey: unknown)")
    ax.set_xlabel("theoretical capacity (mAh/g)")
    ax.set_ylabel("barrier (eV) — producer by marker")
    ax.set_title(f"{ion}: barrier vs capacity ({len(pts)} hosts)")
    ax.legend(handles=handles, fontsize=7, loc="best")
    fig.tight_layout()
    return _png(fig), skipped


def _landscape_array(entry: Any) -> tuple[np.ndarray, tuple[float, float, float, float], dict[str, str]] | None:
    """A 2D array, extent and labels from what ``landscapes`` gave for one host."""
    labels = {"xlabel": "a (fractional)", "ylabel": "b (fractional)", "units": "eV (as given)",
              "title": ""}
    extent = (0.0, 1.0, 0.0, 1.0)
    data: Any = entry
    if hasattr(entry, "energy") and hasattr(entry, "energy_min"):  # a BVSEResult with its grid
        if entry.energy is None:
            return None
        grid = np.asarray(entry.energy) - float(entry.energy_min)
        sites = getattr(entry, "sites", None) or []
        if sites:
            low = min(sites, key=lambda s: s.energy)
            k = int(round(low.frac[2] * grid.shape[2])) % grid.shape[2]
        else:
            k = int(np.unravel_index(np.argmin(grid), grid.shape)[2])
        data = grid[:, :, k]
        labels["title"] = f"slice c = {k / grid.shape[2]:.3f} through the lowest site"
        labels["units"] = "eV above minimum"
    elif isinstance(entry, Mapping):
        data = next((entry[k] for k in ("data", "slice", "array", "energy") if k in entry), None)
        if data is None:
            return None
        if entry.get("extent") is not None:
            extent = tuple(float(v) for v in entry["extent"])  # type: ignore[assignment]
        for k in ("xlabel", "ylabel", "units", "title"):
            if entry.get(k):
                labels[k] = str(entry[k])
    arr = np.asarray(data, dtype=float)
    if arr.ndim == 3:  # a full grid: the plane through its minimum
        k = int(np.unravel_index(np.nanargmin(arr), arr.shape)[2])
        n3 = arr.shape[2]
        arr = arr[:, :, k] - np.nanmin(arr)
        labels["title"] = labels["title"] or f"plane {k} of {n3} through the minimum"
        labels["units"] = "eV above minimum"
    if arr.ndim != 2 or arr.size == 0:
        return None
    return arr, extent, labels


def _landscape_png(ion: str, host: RankedHost, entry: Any) -> str | None:
    from matplotlib.figure import Figure

    got = _landscape_array(entry)
    if got is None:
        return None
    arr, extent, labels = got
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return None
    bars = host.record.bvse.barriers if host.record.bvse else {}
    cap = max([v for v in bars.values() if v is not None] or [float(np.percentile(finite, 90))])
    data = np.clip(np.where(np.isfinite(arr), arr, np.nanmax(finite)), None,
                   float(np.min(finite)) + cap + 0.5)
    fig = Figure(figsize=(4.6, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(data.T, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=labels["units"])
    ax.set_xlabel(labels["xlabel"])
    ax.set_ylabel(labels["ylabel"])
    title = f"{host.record.formula} ({ion}), BVSE"
    ax.set_title(title + (f"\n{labels['title']}" if labels["title"] else ""), fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ----------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em 2em;
color:#222;max-width:110em}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}h3{margin-top:1.2em}
table{border-collapse:collapse;font-size:.82em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
th{background:#f0f0f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pareto td:first-child{border-left:4px solid crimson}
.note{color:#555;font-size:.85em}.small{font-size:.75em;color:#555}
.missing{color:#a33;font-style:italic}figure{display:inline-block;margin:.4em 1em .4em 0}
figcaption{font-size:.8em;color:#444;max-width:40em}
.scroll{overflow-x:auto}table.ranked td:nth-child(3){min-width:14em}
table.ranked td:last-child{min-width:24em}abbr{text-decoration:underline dotted}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fmt(v: Any, nd: int = 3) -> str:
    n = _num(v)
    if n is None:
        return "—" if v is None or isinstance(v, (int, float)) else _e(v)
    if abs(n) >= 1e4 or (0 < abs(n) < 1e-3):
        return f"{n:.3g}"
    return f"{n:.{nd}f}"


def _sig(v: Any) -> str:
    n = _num(v)
    return "—" if n is None else f"{n:.3g}"


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


def _ranked_table(hosts: list[RankedHost]) -> str:
    headers = ["rank", "formula", "source / citation", "barrier (eV)", "barrier from",
               "E1D / E2D / E3D (eV, BVSE)", "dim (BVSE)", "NEB barrier (eV) [calculator]",
               "sites (BVSE): n / distinct / spread eV", "capacity mAh/g", "capacity mAh/cm³",
               "density g/cm³", "voltage V [ML model]", "ΔV/V [ML model]",
               "HHI prod / res (pymatgen)", "scarcest element (ppm, R&G 2003)",
               "toxic / critical (EU 2023)", "sustain. score", "Pareto (front #)", "score", "notes"]
    body, classes = [], []
    for h in hosts:
        rec = flat_record(h)
        neb = ("—" if rec["neb_barrier_eV"] is None and not rec["neb_calculator"]
               else f"{_fmt(rec['neb_barrier_eV'])} [{_tier_cell(rec['neb_calculator'])}"
                    f"{'' if rec['neb_converged'] in (True, None) else ', not converged'}]")
        ml = f" [{_e(rec['ml_model'])}]" if rec["ml_model"] else ""
        tox = ", ".join(filter(None, [
            f"toxic: {_e(rec['toxic_elements'])}" if rec["toxic"] else "",
            f"critical: {_e(rec['critical_elements'])}" if rec["critical"] else ""])) or "—"
        scarce = (f"{_e(rec['abundance_min_element'])} {_sig(rec['abundance_min_ppm'])}"
                  if rec["abundance_min_element"] else "—")
        par = "—" if rec["pareto_rank"] is None else ("yes (0)" if rec["pareto"] else f"no ({rec['pareto_rank']})")
        body.append([
            (_e(rec["rank"] if rec["rank"] is not None else "—"), True),
            (f"<b>{_e(rec['formula'])}</b><br><span class='small'>{_e(rec['state'])} · "
             f"{_e((rec['candidate_id'] or '')[:8])}</span>", False),
            (f"{_e(rec['source'])}<br><span class='small'>{_e(rec['citation'])}</span>", False),
            (_fmt(rec["barrier_eV"]), True),
            (_tier_cell(rec["barrier_tier"]), False),
            (" / ".join(_fmt(rec[k]) for k in ("E1D_eV", "E2D_eV", "E3D_eV")), True),
            (_e(rec["dimensionality"] if rec["dimensionality"] is not None else "—"), True),
            (neb, False),
            (f"{_e(rec['n_sites'] if rec['n_sites'] is not None else '—')} / "
             f"{_e(rec['n_distinct_sites'] if rec['n_distinct_sites'] is not None else '—')} / "
             f"{_fmt(rec['site_energy_spread_eV'])}", True),
            (_fmt(rec["capacity_mAh_g"], 1), True),
            (_fmt(rec["capacity_mAh_cm3"], 1), True),
            (_fmt(rec["density_g_cm3"], 3), True),
            (_fmt(rec["voltage_V"], 3) + (ml if rec["voltage_V"] is not None else ""), True),
            (_fmt(rec["volume_change"], 4) + (ml if rec["volume_change"] is not None else ""), True),
            (f"{_fmt(rec['hhi_production'], 0)} / {_fmt(rec['hhi_reserve'], 0)}", True),
            (scarce, False),
            (tox, False),
            (_fmt(rec["sustainability_score"]), True),
            (_e(par), False),
            (_fmt(rec["score"]), True),
            ("<br>".join(_e(n.text) for n in h.notes) or "", False),
        ])
        classes.append("pareto" if rec["pareto"] else "")
    return f"<div class='scroll'>{_table(headers, body, classes, 'ranked')}</div>"


def _landscape_key(host: RankedHost, landscapes: Mapping[str, Any] | None) -> Any:
    for key in (host.record.job_id, host.record.candidate_id):
        if landscapes and key is not None and key in landscapes:
            return landscapes[key]
    return None


def _landscape_figure(ion: str, host: RankedHost, entry: Any) -> str:
    """The landscape figure of one top host, or a line that says why there is none."""
    rec = host.record
    img = None
    if entry is not None:
        try:
            img = _landscape_png(ion, host, entry)
        except Exception as exc:  # a bad slice must not lose the report
            return f"<p class='missing'>Landscape of {_e(rec.formula)} could not be drawn: {_e(exc)}</p>"
    if not img:
        return (f"<p class='missing'>No landscape slice given for rank {_e(host.rank)} "
                f"{_e(rec.formula)} (job {_e(rec.job_id)}).</p>")
    return (f"<figure><img alt='BVSE landscape {_e(rec.formula)}' "
            f"src='data:image/png;base64,{img}'><figcaption>rank {_e(host.rank)}: "
            f"{_e(rec.formula)}, BVSE energy of {_e(ion)} (eV; colour scale clipped "
            f"0.5 eV above the highest percolation barrier); "
            f"{_e(rec.bvse.model if rec.bvse else '')}</figcaption></figure>")


def _report_html(ranked: Mapping[str, list[RankedHost]], failures: list[dict[str, Any]],
                 counts: Mapping[str, Mapping[str, int]], weights: Mapping[str, float], top_n: int,
                 landscapes: Mapping[str, Any] | None, n_landscape: int, cif_manifest: list[dict[str, Any]],
                 title: str) -> str:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='note'>Generated {_e(now)} by ionscreen. BVSE barriers rank and filter hosts; they "
        "are not absolute migration barriers. Every barrier names the tier that produced it; barriers "
        "of different tiers compare only loosely.</p>",
        "<h2>Summary</h2>",
    ]
    heads = ["working ion", "jobs", "done", "failed", "ranked", "done without barrier", "on Pareto front",
             "barrier tiers used"]
    body = []
    legend: dict[str, str] = {}  # short tier label -> full calculator identity
    for ion, c in counts.items():
        hosts = ranked.get(ion, [])
        tiers: dict[str, int] = {}
        for h in hosts:
            if h.rank is not None:
                full = str(h.barrier_tier_key or "?")
                short = _short_tier(full)
                legend.setdefault(short, full)
                tiers[short] = tiers.get(short, 0) + 1
        body.append([(_e(ion), False), (_e(c["total"]), True), (_e(c["done"]), True),
                     (_e(c["failed"]), True), (_e(c["ranked"]), True), (_e(c["unranked"]), True),
                     (_e(sum(1 for h in hosts if h.pareto)), True),
                     (_e(", ".join(f"{k}: {v}" for k, v in sorted(tiers.items()))) or "—", False)])
    parts.append(_table(heads, body))
    if any(k != v for k, v in legend.items()):
        parts.append("<p class='note'><b>Barrier tiers</b>: " + "; ".join(
            f"<b>{_e(k)}</b> = {_e(v)}" for k, v in sorted(legend.items()) if k != v) + "</p>")
    wtxt = ", ".join(f"{k} {v:.3g}" for k, v in weights.items())
    parts.append(
        f"<p class='note'><b>Score</b>: weights {_e(wtxt)}; normalisation: {_e(SCORE_NORMALISATION)}. "
        f"<b>Pareto front</b>: non-dominated over barrier ↓, capacity (mAh/g) ↑, sustainability score ↑ "
        f"(rows missing a value are on no front). <b>Sustainability score</b>: {_e(SCORE_FORMULA)}; "
        "computed for the host without the working ion.</p>")
    parts.append("<h3>Who produced each number</h3><ul class='note'>")
    parts += [f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in PRODUCERS.items()]
    parts.append("</ul>")

    for ion, hosts in ranked.items():
        parts.append(f"<h2 id='ion-{_e(ion)}'>{_e(ion)}</h2>")
        n_ranked = sum(1 for h in hosts if h.rank is not None)
        shown = [h for h in hosts if h.rank is not None][:top_n]
        png, skipped = _scatter_png(ion, hosts)
        if png:
            cap = ("Barrier vs theoretical capacity. Marker shape = barrier producer (○ BVSE, □ BVFF "
                   "NEB, △ MLIP NEB, ◇ other); colour = sustainability score; red outline = Pareto "
                   "front (3 objectives, so a front point can look dominated in this 2D view).")
            if skipped:
                cap += f" {skipped} ranked host(s) without a capacity are not shown."
            parts.append(f"<figure><img alt='{_e(ion)} barrier vs capacity' "
                         f"src='data:image/png;base64,{png}'><figcaption>{_e(cap)}</figcaption></figure>")
        else:
            parts.append("<p class='missing'>No plot: no ranked host with a capacity.</p>")
        if shown:
            parts.append(f"<h3>Top {len(shown)} of {n_ranked} "
                         f"ranked ({_e(ion)})</h3>")
            parts.append(_ranked_table(shown))
        else:
            parts.append("<p class='missing'>No ranked hosts for this ion.</p>")
        unr = [h for h in hosts if h.rank is None]
        if unr:
            parts.append(f"<p class='note'>{len(unr)} finished host(s) without any barrier (no percolating "
                         f"path): {_e(', '.join(str(h.record.formula) for h in unr[:30]))}"
                         f"{' …' if len(unr) > 30 else ''}</p>")

        parts.append(f"<h3>BVSE landscape of the top hosts ({_e(ion)})</h3>")
        top = shown[:n_landscape]
        if not top:
            parts.append("<p class='missing'>No ranked hosts, so no landscape.</p>")
        elif not landscapes:
            parts.append("<p class='missing'>No BVSE landscape slices were given to this export (pass "
                         "<code>landscapes={job_id: 2D array}</code> to <code>export_run</code>); the "
                         "barriers above do not depend on it.</p>")
        else:
            for h in top:
                parts.append(_landscape_figure(ion, h, _landscape_key(h, landscapes)))

    parts.append("<h2>Failed jobs</h2>")
    if failures:
        parts.append(_table(list(FAILURE_COLUMNS),
                            [[(_e(f.get(c)), False) for c in FAILURE_COLUMNS] for f in failures]))
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>CIF files</h2>")
    if cif_manifest:
        parts.append(f"<p class='note'>top_cifs.zip holds the CIFs of the top {top_n} hosts per ion "
                     "(MANIFEST.csv inside lists source and citation per file).</p>")
        parts.append(_table(["file", "rank", "formula", "citation", "note"],
                            [[(_e(m["file"]), False), (_e(m["rank"]), True), (_e(m["formula"]), False),
                              (_e(m["citation"]), False), (_e(m["note"]), False)] for m in cif_manifest]))
    else:
        parts.append("<p>No ranked hosts, so no CIFs.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- driver


def _counts(ion: str, hosts: list[RankedHost], n_done: int, failures: list[HostRecord]) -> dict[str, int]:
    """Jobs of one ion: done records, failed candidates (a failed NEB or voltage job of a done
    candidate is listed in failures.csv but does not count as a failed candidate)."""
    done_ids = {h.record.candidate_id for h in hosts}
    n_failed = sum(1 for f in failures if normalise_ion(f.working_ion) == ion
                   and (f.candidate_id is None or f.candidate_id not in done_ids))
    n_ranked = sum(1 for h in hosts if h.rank is not None)
    return {"total": n_done + n_failed, "done": n_done, "failed": n_failed,
            "ranked": n_ranked, "unranked": len(hosts) - n_ranked}


def _write_ranked(out: Path, ion: str, hosts: list[RankedHost], w: Mapping[str, float],
                  counts: Mapping[str, int]) -> dict[str, Path]:
    """ranked_<ion>.csv and ranked_<ion>.json."""
    flat = [flat_record(h) for h in hosts]
    fname = f"ranked_{_safe(ion)}"
    meta = {
        "working_ion": ion, "generated_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "weights": w, "score_normalisation": SCORE_NORMALISATION,
        "sustainability_score_formula": SCORE_FORMULA, "producers": PRODUCERS,
        "pareto_objectives": {"barrier_eV": "min", "capacity_mAh_g": "max",
                              "sustainability_score": "max"},
        "counts": dict(counts), "columns": list(COLUMNS),
    }
    p = out / f"{fname}.json"
    p.write_text(json.dumps(jsonable({"meta": meta, "rows": flat}), indent=1,
                            ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return {f"{fname}.csv": write_csv(out / f"{fname}.csv", flat, COLUMNS), f"{fname}.json": p}


def export_run(records: Iterable[HostRecord], failures: Iterable[HostRecord], out_dir: str | Path,
               top_n: int = 10, weights: Mapping[str, Any] | str | Path | None = None,
               landscapes: Mapping[str, Any] | None = None, ions: Iterable[str] | None = None,
               n_landscape: int = 3, title: str = "ionscreen screening report") -> dict[str, Path]:
    """Rank the done ``records`` per working ion and write every export into ``out_dir`` (created).

    ``failures``: failed records (a candidate whose BVSE failed, a file that did not load, a
    failed NEB or voltage job of a candidate), in the order ``failures.csv`` and the report list
    them. A failed record among ``records`` raises :class:`ValueError`
    (:func:`~ionscreen.screening.records.split_failed` splits a mixed list).

    ``weights``: mapping, config path or None (packaged defaults); they rank the records and go
    into the JSON meta. ``landscapes``: optional mapping of job id (or candidate id) to a BVSE
    landscape for the report — a 2D array (a slice, axes a and b fractional unless an
    ``extent`` is given), a dict ``{"data": 2D, "extent": (x0, x1, y0, y1), "xlabel",
    "ylabel", "title"}``, a 3D grid (the plane through its minimum is shown) or a
    :class:`~ionscreen.screening.bvse.BVSEResult` with its grid. The top ``n_landscape`` hosts
    per ion are shown. Returns ``{file name: path}`` of what was written (``ranked_<ion>.csv``,
    ``ranked_<ion>.json``, ``failures.csv``, ``top_cifs.zip``, ``report.html``).
    """
    if int(top_n) < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n!r}")
    top_n = int(top_n)
    records = list(records)
    failures = list(failures)
    w = _resolve_weights(weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ion_list = [normalise_ion(i) for i in ions] if ions else ions_in(records + failures)
    ranked = rank_all(records, w, ions=ion_list, include_unranked=True)
    written: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    for ion, hosts in ranked.items():
        n_done = sum(1 for r in records if normalise_ion(r.working_ion) == ion)
        counts[ion] = _counts(ion, hosts, n_done, failures)
        written.update(_write_ranked(out, ion, hosts, w, counts[ion]))
    failed = [failure_row(f) for f in failures if normalise_ion(f.working_ion) in ion_list]
    written["failures.csv"] = write_csv(out / "failures.csv", failed, FAILURE_COLUMNS)
    zpath = out / "top_cifs.zip"
    manifest = _write_zip(zpath, ranked, top_n)
    written["top_cifs.zip"] = zpath
    rpath = out / "report.html"
    rpath.write_text(_report_html(ranked, failed, counts, w, top_n, landscapes, n_landscape,
                                  manifest, title), encoding="utf-8")
    written["report.html"] = rpath
    return written
