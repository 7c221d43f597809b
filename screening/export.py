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
  slices of the top hosts when ``landscapes`` gives them, the failures
  (:mod:`ionscreen.screening.report`, figures from :mod:`ionscreen.screening.plots`).

Every number names its producer: the barrier's tier column (``BVSE E1D``, ``BVFF CI-NEB (...)``,
``MLIP CI-NEB (CHGNet ...)``), the BVSE model, the NEB calculator, the ML model behind voltage
and volume change; capacities are theoretical (formula and charge), sustainability comes from
pymatgen's HHI table and the packaged element data.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ionscreen._json import finite_or_none, jsonable
from ionscreen.screening.bvse import BVSESummary
from ionscreen.screening.rank import (
    SCORE_NORMALISATION,
    RankedHost,
    ions_in,
    is_pre_screen,
    normalise_ion,
    rank_all,
    ranked_tier,
)
from ionscreen.screening.records import HostRecord
from ionscreen.screening.report import ReportInput, report_html
from ionscreen.screening.sustainability import SCORE_FORMULA, Sustainability
from ionscreen.screening.weights import resolve_weights
from ionscreen.structures.ions import DIMS

__all__ = ["COLUMNS", "FAILURE_COLUMNS", "export_run", "failure_row", "flat_record", "write_csv"]

#: Columns of ranked_<ion>.csv / .json, in order. Units are in the names.
COLUMNS = (
    "rank", "formula", "working_ion", "source", "citation", "state",
    "barrier_eV", "barrier_tier", "barrier_uncertainty_eV", "mobility", "diffusivity_300K_cm2_s",
    "flags",
    "E1D_eV", "E2D_eV", "E3D_eV", "dimensionality", "bvse_model", "bvse_approximate",
    "neb_barrier_eV", "neb_tier", "neb_calculator", "neb_converged", "neb_barrier_raw_eV",
    "neb_calibrated", "neb_spread_eV", "neb_uncertainty_eV", "neb_models", "neb_flag_codes",
    "n_sites", "n_distinct_sites", "site_energy_spread_eV", "lowest_hop_barrier_eV",
    "capacity_mAh_g", "capacity_mAh_cm3", "density_g_cm3", "oxidation_states", "oxidation_from",
    "voltage_V", "volume_change", "ml_model", "specific_energy_Wh_kg", "energy_density_Wh_L",
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
    "barrier_uncertainty_eV, mobility, diffusivity_300K_cm2_s, flags": "ionscreen.screening."
    "mobility: the tier's uncertainty (committee, or MAE against DFT-NEB), the class against "
    "0.525/0.65 eV (Rong et al. 2015), D = nu a^2 exp(-E/kT)/(2d) with nu = 1e13 Hz, and the "
    "plausibility flags (under-bonded, below-floor, NEB flags)",
    "E1D_eV/E2D_eV/E3D_eV, dimensionality, n_sites, site_energy_spread_eV": "BVSE (model in bvse_model)",
    "neb_barrier_eV": "CI-NEB with neb_calculator (tier neb_tier); empty unless computed",
    "capacity_mAh_g, capacity_mAh_cm3, density_g_cm3": "theoretical, from formula, charge and cell "
    "(ionscreen.screening.descriptors)",
    "oxidation_states, oxidation_from": "mean formal state per element and where it came from "
    "(given with --oxi, in the file, guessed by bond valence or composition, or the generator)",
    "specific_energy_Wh_kg, energy_density_Wh_L": "voltage_V × capacity_mAh_g (mAh/g × V = "
    "Wh/kg) and voltage_V × capacity_mAh_cm3 (Wh/L), of the electrode material alone; empty "
    "where the voltage is unknown",
    "voltage_V, volume_change": "ML tier (model in ml_model); empty where it did not run",
    "hhi_*, abundance_*, toxic, critical, sustainability_score": "ionscreen.screening.sustainability "
    "(pymatgen HHIModel; Rudnick & Gao 2003; EU CRM list 2023), host without the working ion",
    "pareto, pareto_rank, score, rank": "ionscreen.screening.rank",
}

# ----------------------------------------------------------------------------- records


def _round(x: Any, nd: int) -> float | None:
    v = finite_or_none(x)
    return None if v is None else round(v, nd)


def _bvse_model(bvse: BVSESummary | None) -> str | None:
    if bvse is None:
        return None
    return f"{bvse.method or 'BVSE'}: {bvse.model}" if bvse.model else bvse.method


def flat_record(host: RankedHost) -> dict[str, Any]:
    """One ranked host as a flat dict over :data:`COLUMNS` (JSON-able, no NaN)."""
    rec = host.record
    bvse, neb = rec.bvse, rec.neb
    sus = rec.sustainability or Sustainability()  # no document: every value unknown
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
        "barrier_uncertainty_eV": _round(host.uncertainty, 4),
        "mobility": host.mobility,
        "diffusivity_300K_cm2_s": host.diffusivity_cm2_s,
        "flags": ";".join(host.flags) or None,
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
        # the ML tier: what the model(s) computed beside the calibrated value, their spread,
        # the uncertainty of neb_barrier_eV, and the flags of the band (codes; texts in JSON)
        "neb_barrier_raw_eV": _round(neb.raw_barrier, 4) if neb else None,
        "neb_calibrated": neb.calibrated if neb else None,
        "neb_spread_eV": _round(neb.spread, 4) if neb else None,
        "neb_uncertainty_eV": _round(neb.uncertainty, 4) if neb else None,
        "neb_models": "; ".join(neb.models) if neb else None,
        "neb_flag_codes": ";".join(dict.fromkeys(f["code"] for f in neb.flags)) if neb else None,
        "n_sites": bvse.n_sites if bvse else None,
        "n_distinct_sites": bvse.n_distinct_sites if bvse else None,
        "site_energy_spread_eV": _round(bvse.site_energy_spread, 4) if bvse else None,
        "lowest_hop_barrier_eV": _round(bvse.lowest_hop_barrier, 4) if bvse else None,
        "capacity_mAh_g": _round(rec.capacity_mAh_g, 2),
        "capacity_mAh_cm3": _round(rec.capacity_mAh_cm3, 2),
        "density_g_cm3": _round(rec.density, 4),
        "oxidation_states": " ".join(f"{el}{q:+g}" for el, q in (rec.oxidation_states or {}).items())
        or None,
        "oxidation_from": rec.oxidation_from,
        "voltage_V": _round(rec.voltage_V, 4),
        "volume_change": _round(rec.volume_change, 5),
        "specific_energy_Wh_kg": _round(host.specific_energy_Wh_kg, 1),
        "energy_density_Wh_L": _round(host.energy_density_Wh_L, 1),
        "ml_model": rec.ml_model,
        "hhi_production": _round(sus.hhi_production, 1),
        "hhi_reserve": _round(sus.hhi_reserve, 1),
        "abundance_min_ppm": finite_or_none(sus.abundance_min_ppm),
        "abundance_min_element": sus.abundance_min_element,
        "abundance_weighted_ppm": _round(sus.abundance_weighted_ppm, 4),
        "toxic": sus.toxic,
        "toxic_elements": " ".join(sus.toxic_elements),
        "critical": sus.critical,
        "critical_elements": " ".join(sus.critical_elements),
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
        "working_ion": normalise_ion(record.working_ion) if record.working_ion else "",
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


#: symmetry tolerance (Å) of the exported CIFs: the structures are ideal or relaxed cells
CIF_SYMPREC = 0.01


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
        f"# barrier: {finite_or_none(host.barrier)} eV ({_ascii_line(host.barrier_tier)})",
    ]
    try:  # the space group and the asymmetric unit, as a crystallographer expects
        cif = str(CifWriter(rec.structure, symprec=CIF_SYMPREC))
    except Exception:  # noqa: BLE001 - spglib may fail on an odd cell: P1 then, said so
        header.append("# written in P1: the symmetry search failed")
        cif = str(CifWriter(rec.structure))
    return "\n".join(header) + "\n" + cif


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


def _write_ranked(out: Path, ion: str, flat: list[dict[str, Any]], w: Mapping[str, float],
                  counts: Mapping[str, int], tier: str | None) -> dict[str, Path]:
    """ranked_<ion>.csv and ranked_<ion>.json from the flat records of the ion's hosts."""
    fname = f"ranked_{_safe(ion)}"
    meta = {
        "working_ion": ion, "ranked_tier": tier, "pre_screen": is_pre_screen(tier), "generated_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(),
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
    w = resolve_weights(weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ion_list = [normalise_ion(i) for i in ions] if ions else ions_in(records + failures)
    ranked = rank_all(records, w, ions=ion_list, include_unranked=True)
    written: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    flat: dict[str, list[dict[str, Any]]] = {}
    for ion, hosts in ranked.items():
        n_done = sum(1 for r in records if normalise_ion(r.working_ion) == ion)
        counts[ion] = _counts(ion, hosts, n_done, failures)
        # the JSON rows also carry the notes' codes and the NEB's flags (the CSV keeps the
        # columns of COLUMNS)
        flat[ion] = [{**flat_record(h), "note_codes": h.note_codes(),
                      "neb_flags": [dict(f) for f in h.record.neb.flags] if h.record.neb else []}
                     for h in hosts]
        written.update(_write_ranked(out, ion, flat[ion], w, counts[ion], ranked_tier(hosts)))
    # a failure of no one ion (a database page that could not be fetched) is listed too
    failed = [failure_row(f) for f in failures
              if f.working_ion is None or normalise_ion(f.working_ion) in ion_list]
    written["failures.csv"] = write_csv(out / "failures.csv", failed, FAILURE_COLUMNS)
    zpath = out / "top_cifs.zip"
    manifest = _write_zip(zpath, ranked, top_n)
    written["top_cifs.zip"] = zpath
    rpath = out / "report.html"
    report = ReportInput(title=title, ranked=ranked, records=flat, counts=counts, failures=failed,
                         failure_columns=FAILURE_COLUMNS, producers=PRODUCERS, weights=w,
                         top_n=top_n, cif_manifest=manifest, landscapes=landscapes,
                         n_landscape=n_landscape)
    rpath.write_text(report_html(report), encoding="utf-8")
    written["report.html"] = rpath
    return written
