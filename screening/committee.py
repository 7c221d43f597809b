"""A committee of ML potentials for one migration path, and the calibration of their softening.

A barrier is an energy difference along one path, so the members are combined per path (mean
and spread of their barriers), never through absolute energies, which differ between models by
up to ~0.9 eV/atom. Universal potentials run soft on migration barriers (too low, more so for
large ones); :class:`Calibration` corrects that with one number per model (and per working
ion where the calibration paths of that ion are enough to fit one: softening differs between
ions), ``calibrated = slope * raw`` (a scale fitted by least absolute deviations; least
squares and a line with an intercept are measured beside it; each fit records its
``method``), chosen and fitted by ``benchmarks/fit_calibration.py`` on the calibration part of
the public DFT-NEB set only (a model whose raw barriers cross-validate best gets no
calibration) and stored with its cross-validated error in ``screening/data/calibration.json``.
The product computes every barrier it reports: the calibration is one number per model, never
a table of published barriers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

import numpy as np
from monty.json import MSONable

from ionscreen.errors import IonscreenError

#: the committee of ML potentials that run offline here (CHGNet weights ship in its wheel,
#: SevenNet's in sevenn's) and were checked against the DFT-NEB calibration paths, so that a
#: bare "committee" is calibrated; other models ("sevennet:7net-mf-0", "module:Class") can
#: be named, and then the committee is reported raw.
DEFAULT_MEMBERS = ("chgnet:0.3.0", "chgnet:r2scan", "sevennet:7net-0")

CALIBRATION_FILE = "calibration.json"
WEIGHTINGS = ("equal", "inverse-variance")


@dataclass(frozen=True)
class LinearFit:
    """``calibrated = slope * raw + intercept`` for one model, with how well it did."""

    slope: float
    intercept: float
    n: int  # calibration paths it was fitted on
    cv_mae: float  # eV, k-fold cross-validated mean absolute error on those paths
    cv_rmse: float  # eV, the same as RMSE: the calibration's own uncertainty
    ions: tuple[str, ...] = ()  # the ions of its calibration paths (empty: not recorded)
    source: str = ""  # what it was fitted on (dataset, split, paths, date)
    #: how: "scale, least absolute deviations", "scale, least squares", "line, least squares",
    #: "none" (the raw barrier checked and kept); "" in files before 0.3 (least squares)
    method: str = ""

    def __call__(self, raw: float) -> float:
        # a calibrated barrier is never negative (a barrier of zero is a flat path)
        return max(0.0, self.slope * raw + self.intercept)


@dataclass(frozen=True)
class Calibration(MSONable):
    """Per-model linear corrections of ML barriers, fitted on calibration paths only."""

    fits: dict[str, LinearFit]  # model key (see :func:`model_key`), or "key@Ion" -> fit
    source: str  # what it was fitted on: :func:`describe` of the fits' own sources
    #: how a committee averages its calibrated members: "equal", or "inverse-variance"
    #: (each member weighted by 1 / its fit's CV RMSE², so the member that did best on the
    #: calibration paths of that ion counts most); chosen on calibration paths only
    weighting: str = "equal"

    def __post_init__(self) -> None:
        # files before 0.3 kept one source for all fits: give each fit its own part of it
        if any(not f.source for f in self.fits.values()):
            own = _split_source(self.source, {k.split("@")[0] for k in self.fits})
            object.__setattr__(self, "fits", {
                k: f if f.source else replace(f, source=own.get(k.split("@")[0], self.source))
                for k, f in self.fits.items()})
        if self.weighting not in WEIGHTINGS:
            raise IonscreenError(f"unknown committee weighting {self.weighting!r}; "
                                 f"use one of {', '.join(WEIGHTINGS)}")

    def get(self, model: str, ion: str | None = None) -> LinearFit | None:
        """The fit of ``model`` (an identity string or a spec) for ``ion`` when one was fitted
        for that ion (enough calibration paths of it), else the model's, or None."""
        key = model_key(model)
        if ion:
            per_ion = self.fits.get(f"{key}@{ion_key(ion)}")
            if per_ion is not None:
                return per_ion
        fit = self.fits.get(key)
        if fit is not None and ion and fit.ions and ion_key(ion) not in fit.ions:
            return None  # fitted on other ions (Mg/Ca/Zn/Al): not carried over to Li+ or NH4+
        return fit

    def as_dict(self) -> dict[str, Any]:
        return {"@module": type(self).__module__, "@class": type(self).__name__,
                "source": self.source, "weighting": self.weighting,
                "fits": {k: {**vars(v), "ions": list(v.ions)} for k, v in self.fits.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls({k: LinearFit(**{**v, "ions": tuple(v.get("ions") or ())})
                    for k, v in d["fits"].items()}, d.get("source", ""),
                   d.get("weighting", "equal"))

    @classmethod
    def load(cls, path: str | None = None) -> Calibration | None:
        """The calibration shipped with ionscreen (or at ``path``); None when none is fitted."""
        if path is None:
            ref = resources.files("ionscreen.screening").joinpath("data", CALIBRATION_FILE)
            if not ref.is_file():
                return None
            text = ref.read_text()
        else:
            with open(path) as fh:
                text = fh.read()
        return cls.from_dict(json.loads(text))


def _split_source(source: str, models: set[str]) -> dict[str, str]:
    """Model -> its part of a source written by :func:`describe` ("m1, m2: src; m3: src"),
    or {} when ``source`` is not such a text for these models (then it is every fit's)."""
    own = {}
    for part in source.split("; "):
        names, sep, text = part.partition(": ")
        if not sep or not text:
            return {}
        own.update({m: text for m in names.split(", ")})
    return own if models <= set(own) else {}


def describe(fits: Mapping[str, LinearFit]) -> str:
    """A calibration's source from its fits': "key, key: source; key: source" (fit keys,
    ``model`` or ``model@Ion``, grouped by what they were fitted on, in the order of ``fits``;
    a model all of whose fits share a source is named once)."""
    groups: dict[str, list[str]] = {}
    for key, f in fits.items():
        model = key.split("@")[0]
        whole = all(g.source == f.source for k, g in fits.items() if k.split("@")[0] == model)
        name = model if whole else key
        if name not in groups.setdefault(f.source, []):
            groups[f.source].append(name)
    return "; ".join(f"{', '.join(m)}: {src}" for src, m in groups.items())


def model_key(model: str) -> str:
    """A stable key of a model from its identity ("CHGNet 0.3.0 (chgnet 0.4.2)") or spec
    ("chgnet:0.3.0"): family and model version, without the package version. A
    multi-fidelity model's modal is the same in both forms ("SevenNet 7net-mf-0, modal R2SCAN
    (sevenn 0.13.0)" and "sevennet:7net-mf-0@R2SCAN" -> "sevennet:7net-mf-0:r2scan"), and its
    default modal is the bare model ("sevennet:7net-mf-0"); never "@", which marks an ion."""
    from ionscreen.screening.mlip_models import SEVENNET_MODELS

    m = model.strip().lower()
    m = m.split(" (", 1)[0]  # drop "(chgnet 0.4.2)"
    m, _, modal = m.partition(", modal ")  # an identity's modal
    if not modal:
        m, _, modal = m.partition("@")  # a spec's
    key, modal = m.strip().replace(" ", ":"), modal.strip()
    modals = SEVENNET_MODELS.get(key.partition(":")[2], ()) if key.startswith("sevennet:") else ()
    if modal and modal != (modals[0].lower() if modals else ""):
        key += f":{modal}"
    return key


def ion_key(ion: str) -> str:
    """"Mg2+", "mg", "Mg" -> "Mg" (the key suffix of a per-ion fit)."""
    from ionscreen.structures.ions import get_working_ion

    try:
        return get_working_ion(ion).name
    except IonscreenError:
        return str(ion).strip()


def l1_scale(raw: np.ndarray, ref: np.ndarray) -> float:
    """The scale ``s`` that minimises sum |s * raw - ref| (least absolute deviations): the
    median of ref / raw weighted by raw (paths with raw <= 0 carry no weight; 1 without any)."""
    x, y = np.asarray(raw, float), np.asarray(ref, float)
    ok = x > 0
    if not ok.any():
        return 1.0
    r, w = y[ok] / x[ok], x[ok]
    order = np.argsort(r)
    cum = np.cumsum(w[order])
    return float(r[order][np.searchsorted(cum, cum[-1] / 2)])


def fit_linear(raw: Iterable[float], ref: Iterable[float], folds: int = 5, seed: int = 0,
               through_origin: bool = False, loss: str = "l2") -> LinearFit:
    """A line from ``raw`` model barriers to reference barriers (a pure scale ``slope * raw``
    when ``through_origin``), least squares (``loss="l2"``) or, for a scale, least absolute
    deviations (``"l1"``), with its k-fold cross-validated MAE and RMSE (each fold predicted
    by a line fitted on the others)."""
    x, y = np.asarray(list(raw), float), np.asarray(list(ref), float)
    if len(x) < 3:
        raise IonscreenError(f"a calibration needs at least 3 paths, got {len(x)}")
    if loss not in ("l1", "l2"):
        raise IonscreenError(f"unknown fit loss {loss!r}: use 'l2' or 'l1'")
    if loss == "l1" and not through_origin:
        raise IonscreenError("loss 'l1' is for a scale (through_origin=True); a line is 'l2'")

    def line(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        if through_origin and loss == "l1":
            return l1_scale(xs, ys), 0.0
        if through_origin:
            return float(xs @ ys / max(xs @ xs, 1e-12)), 0.0
        if len(xs) < 2:
            return 1.0, 0.0
        a, b = np.polyfit(xs, ys, 1)
        return float(a), float(b)

    slope, intercept = line(x, y)
    k = min(folds, len(x))
    order = np.random.default_rng(seed).permutation(len(x))
    pred = np.empty_like(y)
    for f in range(k):
        test = order[f::k]
        train = np.setdiff1d(order, test)
        a, b = line(x[train], y[train])
        pred[test] = np.maximum(0.0, a * x[test] + b)
    err = pred - y
    method = ("scale" if through_origin else "line") + (
        ", least absolute deviations" if loss == "l1" else ", least squares")
    return LinearFit(slope, intercept, len(x), float(np.abs(err).mean()),
                     float(np.sqrt((err ** 2).mean())), method=method)


def choose_fit(raw: Iterable[float], ref: Iterable[float], forms: tuple[str, ...] = ("scale",),
               ) -> tuple[LinearFit | None, dict[str, float]]:
    """The calibration among ``forms`` ("scale": ``slope * raw`` by least absolute
    deviations; "scale-l2": by least squares; "line": least squares with an intercept) with
    the lowest cross-validated MAE on these (calibration) paths, kept only when it beats the
    raw barrier's MAE by 10 % and 0.01 eV (a correction that only fits noise is none).
    Returns it (None: keep the raw barrier) and the MAE of the raw barrier and of every form.

    The default is the scale alone: softening shrinks a barrier in proportion, a flat path
    must stay flat, and a line fitted on tens of paths took intercepts of ~0.5 eV that would
    lift every fast conductor above the mobility thresholds. It minimises the absolute error,
    the measure the barriers are judged by, and one path whose band found another hop cannot
    pull it (least squares let one Zn²⁺ path of nine, CHGNet 1.32 eV against DFT 0.87, hold
    CHGNet's Zn scale at 1.19 where the other eight want about 1.5)."""
    x, y = np.asarray(list(raw), float), np.asarray(list(ref), float)
    fits = {"scale": fit_linear(x, y, through_origin=True, loss="l1"),
            "scale-l2": fit_linear(x, y, through_origin=True), "line": fit_linear(x, y)}
    scores = {"none": float(np.abs(x - y).mean()), **{k: f.cv_mae for k, f in fits.items()}}
    best = min(forms, key=lambda k: fits[k].cv_mae)
    keep = scores[best] < 0.9 * scores["none"] and scores[best] < scores["none"] - 0.01
    return (fits[best] if keep else None), scores


@dataclass
class CommitteeBarrier(MSONable):
    """The barrier of one path from several ML potentials: raw mean ± spread of the members
    that gave one, and the calibrated mean ± uncertainty (spread and the calibration's own
    cross-validated RMSE in quadrature; both averaged with the calibration's ``weighting``)
    when every such member is calibrated."""

    members: dict[str, float | None]  # model identity -> raw barrier (None: no barrier)
    barrier: float | None  # eV, raw mean
    spread: float | None  # eV, standard deviation of the raw member barriers (0 for one)
    calibrated: float | None = None  # eV
    uncertainty: float | None = None  # eV, of the calibrated value
    label: str = ""  # what produced the numbers, shown beside them
    reasons: dict[str, str] = field(default_factory=dict)  # member -> why it gave no barrier

    @property
    def found(self) -> int:
        return sum(v is not None for v in self.members.values())

    @property
    def best(self) -> float | None:
        """The calibrated barrier when there is one, else the raw mean."""
        return self.calibrated if self.calibrated is not None else self.barrier


def combine(members: Mapping[str, float | None], calibration: Calibration | None = None,
            reasons: Mapping[str, str] | None = None, ion: str | None = None) -> CommitteeBarrier:
    """Combine per-path member barriers (model identity -> barrier or None) of ``ion`` (its
    per-ion fits where the calibration has them). The raw barrier is the members' mean; the
    calibrated one their calibrated values averaged with the calibration's ``weighting``
    (inverse-variance: by 1 / CV RMSE², an RMSE below 0.01 eV counted as 0.01 so that one
    member cannot take all the weight on a fit of few paths)."""
    got = {k: float(v) for k, v in members.items() if v is not None and math.isfinite(v)}
    names = ", ".join(members)
    if not got:
        return CommitteeBarrier(dict(members), None, None, label=f"ML committee ({names}): no barrier",
                                reasons=dict(reasons or {}))
    raw = np.array(list(got.values()))
    mean, spread = float(raw.mean()), float(raw.std(ddof=1)) if len(raw) > 1 else 0.0
    label = f"ML committee mean of {len(got)}/{len(members)} ({', '.join(got)}), raw"
    cal = unc = None
    fits = {k: calibration.get(k, ion) for k in got} if calibration else {}
    if fits and all(fits.values()):
        c = np.array([fits[k](v) for k, v in got.items()])
        r = np.array([fits[k].cv_rmse for k in got])
        inverse = calibration.weighting == "inverse-variance"
        n = len(c)
        if inverse:
            w = 1.0 / np.maximum(r, 0.01) ** 2
            w /= w.sum()
            cal = float(w @ c)
            # the weighted spread (n / (n - 1) as in the sample standard deviation) and the
            # members' weighted calibration error, in quadrature
            spread_c = math.sqrt(float(w @ (c - cal) ** 2) * n / (n - 1)) if n > 1 else 0.0
            unc = math.hypot(spread_c, math.sqrt(float(w @ r ** 2)))
        else:
            cal = float(c.mean())
            unc = math.hypot(float(c.std(ddof=1)) if n > 1 else 0.0, float(np.sqrt(np.mean(r ** 2))))
        label += (f"; calibrated linearly per model{', weighted by 1/(CV RMSE)²' if inverse else ''}"
                  f" ({calibration.source})")
    return CommitteeBarrier(dict(members), mean, spread, cal, unc, label, dict(reasons or {}))


def committee_members(spec: Any) -> list[str] | None:
    """The member specs of a ``"committee"`` or ``"committee:spec1,spec2"`` calculator spec
    (:data:`DEFAULT_MEMBERS` for the bare word), or None for any other spec."""
    if not isinstance(spec, str):
        return None
    head, _, rest = spec.partition(":")
    if head.strip().lower() != "committee":
        return None
    return [m.strip() for m in rest.split(",") if m.strip()] or list(DEFAULT_MEMBERS)


def single_estimate(calculator: str, tier: str, barrier: float | None,
                    calibration: Calibration | None, ion: str | None = None) -> dict[str, Any] | None:
    """The estimate document of one ML model's barrier (spread 0, calibrated when the model
    has a fit); None for a tier that is not an ML potential (the BVFF is not calibrated)."""
    if tier != "MLIP":
        return None
    return combine({calculator: barrier}, calibration, ion=ion).as_dict()


def committee_report(reports: list[Any], calibration: Calibration | None,
                     reasons: Mapping[str, str] | None = None) -> Any:
    """One NEB report of a committee from its members' reports of the same host, ion and
    path: the raw barrier is the mean of the members whose barrier their flags do not refuse,
    the estimate holds mean ± spread and the calibrated value; every member's hops are kept,
    each naming its model."""
    from .neb.results import NEBReport

    if not reports:
        raise IonscreenError("no committee member ran: " + "; ".join(
            f"{k}: {v}" for k, v in (reasons or {}).items()))
    # a member whose barrier its own flags refuse (noise, below-floor, a low no-saddle) gives
    # none: the committee must not average in what a single model would not rank
    refused = {r.calculator: r.summary().refused for r in reports}
    members = {r.calculator: None if refused[r.calculator] else r.barrier for r in reports}
    members.update({k: None for k in (reasons or {})})
    why = {**(reasons or {}),
           **{r.calculator: r.summary().status for r in reports if r.barrier is None},
           **{k: "refused: " + "; ".join(f["code"] for f in v) for k, v in refused.items() if v}}
    first = reports[0]
    est = combine(members, calibration, why, ion=first.ion)
    names = ", ".join(members)
    return NEBReport(
        formula=first.formula, ion=first.ion, calculator=f"committee ({names})", tier="MLIP",
        barrier=est.barrier, rate_limiting_hop=None, dimension=first.dimension,
        hops=[h for r in reports for h in r.hops], bvse=first.bvse,
        failures=[{**f, "model": r.calculator} for r in reports for f in r.failures],
        skipped=[{**s, "model": r.calculator} for r in reports for s in r.skipped],
        note=(f"{est.label}. A barrier is combined per path (each member's rate-limiting hop "
              "barrier), never through absolute energies. " + first.note),
        approximate=any(r.approximate for r in reports), estimate=est.as_dict())


def run_members(run_one: Callable[[str], Any], members: Iterable[str]) -> tuple[list[Any], dict[str, str]]:
    """``run_one(spec)`` for each member; a member that cannot run (its package missing, an
    error of its own) is left out with the reason, and the others go on."""
    done, reasons = [], {}
    for spec in members:
        try:
            done.append(run_one(spec))
        except IonscreenError as exc:
            reasons[spec] = f"{type(exc).__name__}: {exc}"
    return done, reasons
