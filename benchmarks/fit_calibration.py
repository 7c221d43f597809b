"""Fit the per-model calibration of ML barriers on the calibration paths only, and score every
tier on the held-out paths: each model raw and calibrated, the committee raw and calibrated
(issue 13.3-13.4).

Reads the result files of ``validate_barriers.py`` (one per tier, or one holding several),
chooses per ML model among no calibration and a scale ``calibrated = slope * raw`` fitted by
least absolute deviations (least squares and a line with an intercept are printed beside it) by
5-fold cross-validated MAE on the paths whose split is "calibration", chooses the committee's
weighting (equal or inverse-variance) on the same paths, writes the fits to
``screening/data/calibration.json`` (``--write``; the product applies them; a shipped fit of a
model, or of a model and ion, without calibration paths in the files is kept, and a warning
names it), and prints the held-out table with how often the committee's stated uncertainty
covers the DFT barrier. A held-out path never enters a fit or a choice: they see only ids
whose split is "calibration" (``tests/test_committee.py`` holds this).

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
from dft_neb import (
    ReferencePath,
    load_paths,
    markdown_table,
    metrics,
    ranked_barrier,
    summary_table,
)

from ionscreen.screening.committee import (
    CALIBRATION_FILE,
    Calibration,
    LinearFit,
    choose_fit,
    combine,
    describe,
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
    return LinearFit(1.0, 0.0, len(raw), float(np.abs(err).mean()),
                     float(np.sqrt((err ** 2).mean())), method="none")


def fit(results: dict[str, dict[str, dict[str, Any]]], paths: dict[str, ReferencePath],
        source: str, per_ion: bool = True, forms: tuple[str, ...] = ("scale",)) -> Calibration:
    """Per-model fits on the calibration paths that model has a barrier for, and with
    ``per_ion`` one per model and ion that has :data:`MIN_ION_PATHS` calibration paths. Each
    fit's source is ``source`` with ``{n}`` replaced by the calibration paths its model ran."""
    fits = {}
    for tier, res in results.items():
        if tier not in ML_TIERS:
            continue
        ran = sum(1 for pid in res if pid in paths and paths[pid].split == "calibration")
        tier_source = source.replace("{n}", str(ran))
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
            f, scores = choose_fit(raw, ref, forms=forms)
            print(f"{tier} [{group}]: {len(sub)} calibration paths, CV MAE (eV) " + ", ".join(
                f"{k} {v:.3f}" for k, v in scores.items()) + f" -> {'none' if f is None else 'kept'}")
            key = model_key(ML_TIERS[tier]) + ("" if group == "all" else f"@{group}")
            ions = tuple(sorted({p[2] for p in sub}))
            # "none" is recorded too (slope 1, the raw error as uncertainty): the model was
            # checked on these ions, so a committee with it is calibrated
            fits[key] = replace(f if f is not None else _identity(raw, ref), ions=ions,
                                source=tier_source)
    return Calibration(fits, describe(fits) if fits else source)


def merged(shipped: Calibration | None, new: Calibration) -> Calibration:
    """The fits of ``new`` and every shipped fit ``new`` has no fit for (same key: model, or
    model and ion), kept as it was: refitting one model must not drop another's fit whose raw
    results are not at hand, and a refit on part of the calibration paths (no Ca²⁺ among them,
    say) must not drop the model's Ca²⁺ fit. Each fit keeps its own source. The weighting is
    ``new``'s (:func:`calibration` then chooses it)."""
    if shipped is None:
        return new
    fits = {**new.fits, **{k: f for k, f in shipped.fits.items() if k not in new.fits}}
    return Calibration(fits, describe(fits), new.weighting)


def narrowed(shipped: Calibration | None, cal: Calibration) -> list[str]:
    """Warnings for every model and ion that ``shipped`` calibrates and ``cal`` no longer does
    (a new model-wide fit fitted on fewer ions leaves the others raw), for every fit that
    replaces a shipped one fitted on more paths (a refit on part of the calibration paths), and
    for every shipped fit kept beside new fits of its model (fitted another day, maybe by
    another rule)."""
    if shipped is None:
        return []
    models = {k.split("@")[0] for k in shipped.fits}
    ions = sorted({i for f in shipped.fits.values() for i in f.ions} | {
        k.split("@")[1] for k in shipped.fits if "@" in k})
    out = [f"{m}: {ion} was calibrated by the shipped file and is not any more (raw)"
           for m in sorted(models) for ion in ions
           if shipped.get(m, ion) is not None and cal.get(m, ion) is None]
    out += [f"{k}: refitted on {cal.fits[k].n} paths, the shipped fit had {f.n}"
            for k, f in sorted(shipped.fits.items())
            if k in cal.fits and cal.fits[k] is not f and cal.fits[k].n < f.n]
    refit = {k.split("@")[0] for k, f in cal.fits.items() if shipped.fits.get(k) is not f}
    return out + [f"{k}: kept from the shipped file ({f.method or 'least squares'}; {f.source}) "
                  "beside new fits of its model" for k, f in sorted(cal.fits.items())
                  if shipped.fits.get(k) is f and k.split("@")[0] in refit]


def committee_estimates(results: dict[str, dict[str, dict[str, Any]]], cal: Calibration,
                        paths: dict[str, ReferencePath]) -> dict[str, Any]:
    """Path id -> the committee estimate (:class:`CommitteeBarrier`) of the ML tiers in
    ``results`` (every path any of them ran)."""
    ml = [t for t in results if t in ML_TIERS]
    got = {t: barriers(results[t], t) for t in ml}
    ids = set().union(*(results[t] for t in ml)) if ml else set()
    return {pid: combine({ML_TIERS[t]: got[t].get(pid) for t in ml}, cal,
                         ion=paths[pid].ion if pid in paths else None) for pid in ids}


def choose_weighting(results: dict[str, dict[str, dict[str, Any]]], cal: Calibration,
                     paths: dict[str, ReferencePath]) -> tuple[str, dict[str, float]]:
    """The committee weighting (equal or inverse-variance) with the lower MAE of the
    calibrated committee on the calibration paths (never held-out ones); equal unless the
    other is better by 0.005 eV. Returns it and the MAE of each. The fits are scored on the
    paths they were fitted on: a choice of one of two, not an error estimate."""
    mae = {}
    for w in ("equal", "inverse-variance"):
        est = committee_estimates(results, replace(cal, weighting=w), paths)
        err = [abs(e.calibrated - paths[pid].dft_barrier) for pid, e in est.items()
               if e.calibrated is not None and pid in paths and paths[pid].split == "calibration"]
        mae[w] = float(np.mean(err)) if err else float("nan")
    best = "inverse-variance" if mae["inverse-variance"] < mae["equal"] - 0.005 else "equal"
    return best, mae


def coverage(estimates: dict[str, Any], paths: list[ReferencePath]) -> tuple[int, int]:
    """How many of ``paths`` with a calibrated committee barrier lie within its stated
    uncertainty of DFT, and of how many: about 68 % if the uncertainty is an honest 1σ."""
    hits = [abs(e.calibrated - p.dft_barrier) <= e.uncertainty for p in paths
            if (e := estimates.get(p.id)) is not None and e.calibrated is not None]
    return sum(hits), len(hits)


def tier_predictions(results: dict[str, dict[str, dict[str, Any]]], cal: Calibration,
                     paths: dict[str, ReferencePath], estimates: dict[str, Any] | None = None,
                     ) -> dict[str, dict[str, float | None]]:
    """Predictions per tier name: every tier raw, each ML model calibrated, the committee of
    the ML models (raw mean and calibrated mean, from ``estimates`` when given), per path."""
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
        est = estimates if estimates is not None else committee_estimates(results, cal, paths)
        preds[f"committee ({', '.join(ml)})"] = {k: e.barrier for k, e in est.items()}
        preds[f"committee ({', '.join(ml)}) calibrated"] = {k: e.calibrated for k, e in est.items()}
    return preds


def calibration(results: dict[str, dict[str, dict[str, Any]]], paths: dict[str, ReferencePath],
                shipped: Calibration | None, source: str, per_ion: bool = True,
                weighting: str = "auto", forms: tuple[str, ...] = ("scale",)) -> Calibration:
    """The calibration the product would use: fits of the models with calibration paths in
    ``results``, the ``shipped`` fits of every other model, and the committee weighting
    (``auto``: chosen on the calibration paths when two or more ML models are given, else the
    shipped one)."""
    new = fit(results, paths, source, per_ion=per_ion, forms=forms)
    for k, f in new.fits.items():
        print(f"{k}: calibrated = {f.slope:.3f} * raw + {f.intercept:+.3f} eV  (n={f.n}, 5-fold CV "
              f"MAE {f.cv_mae:.3f}, RMSE {f.cv_rmse:.3f} eV)")
    # a model (or ion) without calibration paths here is not refitted: its shipped fits stay
    cal = merged(shipped, new)
    for w in narrowed(shipped, cal):
        print(f"WARNING: {w}")
    if weighting != "auto":
        return replace(cal, weighting=weighting)
    with_cal = [t for t in results if t in ML_TIERS
                and any(paths[p].split == "calibration" for p in results[t] if p in paths)]
    if len({ML_TIERS[t] for t in with_cal}) > 1:  # a committee to choose on
        w, mae = choose_weighting(results, cal, paths)
        print("committee on the calibration paths, MAE (eV): " + ", ".join(
            f"{k} {v:.3f}" for k, v in mae.items()) + f" -> {w}")
        return replace(cal, weighting=w)
    return replace(cal, weighting=shipped.weighting if shipped else "equal")


ION_COLOURS = {"Mg": "tab:green", "Ca": "tab:blue", "Zn": "tab:purple", "Al": "tab:orange"}


def _ml_panel(name: str, preds: dict[str, dict[str, float | None]]) -> bool:
    """Whether tier ``name`` gets a panel: the ML tiers and the committee, but not a
    calibrated one identical to its raw one (a model shipped as "none")."""
    base = name.removesuffix(" calibrated")
    ml = base.split(" ")[0] in ML_TIERS or base.startswith("committee")
    return ml and (name == base or preds[name] != preds.get(base))


def parity_figure(panels: dict[str, dict[str, float | None]], held: list[ReferencePath],
                  estimates: dict[str, Any] | None = None, committee: str = "") -> bytes:
    """PNG of predicted against DFT-NEB barriers on ``held`` for each panel (tier name ->
    predictions), coloured by ion; the ``committee`` panel gets the estimates' stated
    uncertainty as error bars. The diagonal and a ±0.15 eV band (the goal's MAE) are drawn;
    each panel says n found, Spearman and MAE."""
    from matplotlib.figure import Figure

    from ionscreen.screening.plots import png_bytes

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows), layout="constrained")
    top = max([p.dft_barrier for p in held] + [v for pr in panels.values() for v in pr.values()
                                              if v is not None] + [0.5]) * 1.05
    for k, (name, pred) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.fill_between([0, top], [-0.15, top - 0.15], [0.15, top + 0.15], color="0.9")
        ax.plot([0, top], [0, top], color="0.4", lw=0.8)
        for ion, colour in ION_COLOURS.items():
            pts = [(p.dft_barrier, pred[p.id], p.id) for p in held
                   if p.ion == ion and pred.get(p.id) is not None]
            if not pts:
                continue
            x, y, ids = zip(*pts)
            err = None
            if name == committee and estimates:
                err = [estimates[i].uncertainty or 0.0 for i in ids]
            ax.errorbar(x, y, yerr=err, fmt="o", ms=4, color=colour, ecolor=colour, elinewidth=0.6,
                        alpha=0.85, label=f"{ion}²⁺" if ion != "Al" else "Al³⁺")
        m = metrics(pred, held)["all"]
        sp = "–" if m["spearman"] is None else f"{m['spearman']:.2f}"
        mae = "–" if m["mae"] is None else f"{m['mae']:.3f}"
        ax.set_title(f"{name}\n{m['found']}/{m['n']} found, Spearman {sp}, MAE {mae} eV", fontsize=9)
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_aspect("equal")
        ax.set_xlabel("DFT-NEB barrier (eV)")
        ax.set_ylabel("predicted barrier (eV)")
        if k == 0:
            ax.legend(fontsize=8, loc="upper left")
    return png_bytes(fig, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--write", action="store_true", help=f"write the fits to {PACKAGE_DATA}")
    ap.add_argument("--markdown", type=Path, default=None)
    ap.add_argument("--model-wide", action="store_true",
                    help="one fit per model only (no per-ion fits)")
    ap.add_argument("--common", action="store_true",
                    help="score only paths every tier has run (the same paths for each)")
    ap.add_argument("--plot", type=Path, default=None,
                    help="PNG: predicted against DFT for each ML tier and the committee, held-out")
    ap.add_argument("--weighting", choices=["auto", "equal", "inverse-variance"], default="auto",
                    help="how the committee averages its members (auto: the better on the "
                         "calibration paths; with one ML model, the shipped one is kept)")
    ap.add_argument("--least-squares", action="store_true",
                    help="fit the scales by least squares (a comparison; not with --write)")
    args = ap.parse_args()
    if args.least_squares and args.write:
        ap.error("--least-squares is a comparison: the shipped scales are least absolute "
                 "deviations; drop --write")
    results = read_results(args.results)
    every = {p.id: p for p in load_paths(None)}
    shipped = Calibration.load(str(PACKAGE_DATA)) if PACKAGE_DATA.exists() else None
    cal = calibration(results, every, shipped, "DFT-NEB set of Devi et al. (arXiv:2508.06459), "
                      f"calibration split, {{n}} paths, {date.today()}",
                      per_ion=not args.model_wide, weighting=args.weighting,
                      forms=("scale-l2",) if args.least_squares else ("scale",))
    n_ml = sum(t in ML_TIERS for t in results)
    if args.write:
        PACKAGE_DATA.parent.mkdir(parents=True, exist_ok=True)
        PACKAGE_DATA.write_text(json.dumps(cal.as_dict(), indent=1) + "\n")
        print(f"written {PACKAGE_DATA} ({len(cal.fits)} fits)")
    est = committee_estimates(results, cal, every)
    preds = tier_predictions(results, cal, every, est)
    held = [p for p in every.values() if p.split == "held-out" and p.counted]
    run_ids = set.intersection(*(set(r) for r in results.values())) if args.common else None
    # the held-out paths of the summary, the coverage and the figure (all with --common)
    scored = [p for p in held if run_ids is None or p.id in run_ids]
    parts = []
    for name, pred in preds.items():
        ran = [p for p in held if p.id in (run_ids if run_ids is not None else pred)]
        if ran:
            parts.append(markdown_table(metrics(pred, ran), f"{name} — held-out, {len(ran)} paths run"))
    if run_ids is not None:
        parts.insert(0, f"**Every tier on the same {len(scored)} held-out paths**\n\n"
                        + summary_table(preds, scored))
    if n_ml > 1:
        hit, n = coverage(est, scored)
        if n:
            parts.append(f"Calibrated committee ({cal.weighting} weights): {hit}/{n} held-out "
                         f"barriers ({hit / n:.0%}) within their stated uncertainty of DFT "
                         "(an honest 1σ: about 68 %).")
    if args.plot:
        panels = {k: v for k, v in preds.items() if _ml_panel(k, preds)}
        committee = next((k for k in panels if k.startswith("committee") and k.endswith("calibrated")), "")
        args.plot.write_bytes(parity_figure(panels, scored, est, committee))
        print(f"written {args.plot}")
    text = "\n\n".join(parts)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
