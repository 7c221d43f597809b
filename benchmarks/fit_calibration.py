"""Fit the per-model calibration of ML barriers on the calibration paths only, and score every
tier on the held-out paths: each model raw and calibrated, the committee raw and calibrated
(issue 13.3-13.4).

Reads the result files of ``validate_barriers.py`` (one per tier, or one holding several),
chooses per ML model among no calibration, a scale and a line ``calibrated = slope * raw +
intercept`` by 5-fold cross-validated MAE on the paths whose split is "calibration", writes the fits to
``screening/data/calibration.json`` (``--write``; the product applies them), and prints the
held-out table. A held-out path never enters a fit: the fit sees only ids whose split is
"calibration" (``tests/test_committee.py`` holds this).

    python benchmarks/fit_calibration.py /work/val/chgnet.json /work/val/chgnet_r2scan.json \\
        --write --markdown out/heldout.md
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from dft_neb import ReferencePath, load_paths, markdown_table, metrics, ranked_barrier

from ionscreen.screening.committee import (
    CALIBRATION_FILE,
    Calibration,
    LinearFit,
    choose_fit,
    combine,
    model_key,
)

#: validate_barriers tier name -> the model key the product's NEB results carry
ML_TIERS = {"chgnet": "chgnet:0.3.0", "chgnet:0.3.0": "chgnet:0.3.0", "chgnet:r2scan": "chgnet:r2scan",
            "sevennet": "sevennet:7net-0", "sevennet:7net-0": "sevennet:7net-0",
            "sevennet:7net-mf-0": "sevennet:7net-mf-0"}
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "screening" / "data" / CALIBRATION_FILE


def read_results(files: list[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """tier -> path id -> result, merged over the files."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for f in files:
        for tier, res in json.loads(f.read_text()).get("results", {}).items():
            out.setdefault(tier, {}).update(res)
    return out


def barriers(res: dict[str, dict[str, Any]], tier: str) -> dict[str, float | None]:
    """Path id -> the barrier the product would rank (None: none, or refused by a flag)."""
    return {pid: ranked_barrier(r, tier) for pid, r in res.items()}


#: an ion gets its own fit (or its own "none") from this many calibration paths of it
MIN_ION_PATHS = 8


def _identity(raw: list[float], ref: list[float]) -> LinearFit:
    """"No calibration" (slope 1), with the raw barriers' error as its uncertainty: for one ion,
    so the model-wide fit is not applied to an ion whose raw barriers do best; for the model,
    so that it counts as checked (a committee with it is calibrated)."""
    err = np.asarray(raw) - np.asarray(ref)
    return LinearFit(1.0, 0.0, len(raw), float(np.abs(err).mean()), float(np.sqrt((err ** 2).mean())))


def fit(results: dict[str, dict[str, dict[str, Any]]], paths: dict[str, ReferencePath],
        source: str, per_ion: bool = True) -> Calibration:
    """Per-model fits on the calibration paths that model has a barrier for, and with
    ``per_ion`` one per model and ion that has :data:`MIN_ION_PATHS` calibration paths."""
    fits = {}
    for tier, res in results.items():
        if tier not in ML_TIERS:
            continue
        pairs = [(b, paths[pid].dft_barrier, paths[pid].ion) for pid, b in barriers(res, tier).items()
                 if b is not None and pid in paths and paths[pid].split == "calibration"]
        groups = {"all": pairs}
        if per_ion:
            for ion in sorted({p[2] for p in pairs}):
                sub = [p for p in pairs if p[2] == ion]
                if len(sub) >= MIN_ION_PATHS:
                    groups[ion] = sub
        for group, sub in groups.items():
            if len(sub) < 3:
                continue
            raw, ref = [p[0] for p in sub], [p[1] for p in sub]
            f, scores = choose_fit(raw, ref)
            print(f"{tier} [{group}]: {len(sub)} calibration paths, CV MAE (eV) " + ", ".join(
                f"{k} {v:.3f}" for k, v in scores.items()) + f" -> {'none' if f is None else 'kept'}")
            key = model_key(ML_TIERS[tier]) + ("" if group == "all" else f"@{group}")
            ions = tuple(sorted({p[2] for p in sub}))
            # "none" is recorded too (slope 1, the raw error as uncertainty): the model was
            # checked on these ions, so a committee with it is calibrated
            fits[key] = replace(f if f is not None else _identity(raw, ref), ions=ions)
    return Calibration(fits, source)


def merged(shipped: Calibration | None, new: Calibration, models: set[str]) -> Calibration:
    """The fits of ``new`` for ``models`` (the models whose results were given, fitted or found
    to need none) and the shipped fits of every other model, kept as they were: refitting
    one model must not drop another's fit whose raw results are not at hand. The source says
    which fits came from which run."""
    if shipped is None:
        return new
    def model(key: str) -> str:
        return key.split("@")[0]

    kept = {k: f for k, f in shipped.fits.items() if model(k) not in models}
    if not kept:
        return new
    # the shipped source is "models: source" parts, or (never merged) one source for all
    parts = [p for p in shipped.source.split("; ") if p]
    if not all(p.split(": ")[0].split(", ")[0] in {model(k) for k in shipped.fits} for p in parts):
        parts = [", ".join(sorted({model(k) for k in shipped.fits})) + ": " + shipped.source]
    old = [p for p in parts if not set(p.split(": ")[0].split(", ")) <= models]
    return Calibration({**kept, **new.fits}, "; ".join([f"{', '.join(sorted(models))}: "
                                                        f"{new.source}", *old]))


def tier_predictions(results: dict[str, dict[str, dict[str, Any]]], cal: Calibration,
                     paths: dict[str, ReferencePath]) -> dict[str, dict[str, float | None]]:
    """Predictions per tier name: every tier raw, each ML model calibrated, the committee of
    the ML models (raw mean and calibrated mean), per path."""
    preds: dict[str, dict[str, float | None]] = {t: barriers(r, t) for t, r in results.items()}
    ml = [t for t in results if t in ML_TIERS]
    def one(t: str, pid: str, b: float | None) -> float | None:
        f = cal.get(ML_TIERS[t], paths[pid].ion if pid in paths else None)
        return None if b is None or f is None else f(b)

    for t in ml:
        if any(k == model_key(ML_TIERS[t]) or k.startswith(model_key(ML_TIERS[t]) + "@")
               for k in cal.fits):
            preds[f"{t} calibrated"] = {p: one(t, p, b) for p, b in preds[t].items()}
    if len(ml) > 1:
        ids = set().union(*(results[t] for t in ml))
        raw, calib, spread = {}, {}, {}
        for pid in ids:
            c = combine({ML_TIERS[t]: preds[t].get(pid) for t in ml}, cal,
                        ion=paths[pid].ion if pid in paths else None)
            raw[pid], calib[pid], spread[pid] = c.barrier, c.calibrated, c.spread
        preds[f"committee ({', '.join(ml)})"] = raw
        preds[f"committee ({', '.join(ml)}) calibrated"] = calib
    return preds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--write", action="store_true", help=f"write the fits to {PACKAGE_DATA}")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--model-wide", action="store_true",
                    help="one fit per model only (no per-ion fits)")
    ap.add_argument("--common", action="store_true",
                    help="score only paths every tier has run (the same paths for each)")
    args = ap.parse_args()
    results = read_results(args.results)
    every = {p.id: p for p in load_paths(None)}
    n_cal = {t: sum(1 for pid in r if pid in every and every[pid].split == "calibration")
             for t, r in results.items()}
    cal = fit(results, every, f"DFT-NEB set of Devi et al. (arXiv:2508.06459), calibration "
                              f"split, {max(n_cal.values(), default=0)} paths, {date.today()}",
              per_ion=not args.model_wide)
    for k, f in cal.fits.items():
        print(f"{k}: calibrated = {f.slope:.3f} * raw + {f.intercept:+.3f} eV  (n={f.n}, 5-fold CV "
              f"MAE {f.cv_mae:.3f}, RMSE {f.cv_rmse:.3f} eV)")
    if args.write:
        shipped = Calibration.load(str(PACKAGE_DATA)) if PACKAGE_DATA.exists() else None
        cal_out = merged(shipped, cal, {model_key(ML_TIERS[t]) for t in results if t in ML_TIERS})
        PACKAGE_DATA.parent.mkdir(parents=True, exist_ok=True)
        PACKAGE_DATA.write_text(json.dumps(cal_out.as_dict(), indent=1) + "\n")
        print(f"written {PACKAGE_DATA} ({len(cal_out.fits)} fits)")
    preds = tier_predictions(results, cal, every)
    held = [p for p in every.values() if p.split == "held-out" and p.counted]
    run_ids = set.intersection(*(set(r) for r in results.values())) if args.common else None
    parts = []
    for name, pred in preds.items():
        ran = [p for p in held if p.id in (run_ids if run_ids is not None else pred)]
        if ran:
            parts.append(markdown_table(metrics(pred, ran), f"{name} — held-out, {len(ran)} paths run"))
    text = "\n\n".join(parts)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
