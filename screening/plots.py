"""The figures of the report and the dashboard, drawn with matplotlib's Agg canvas (no display,
no pyplot state, safe in server threads).

* :func:`barrier_capacity_figure`: barrier vs theoretical capacity of one working ion's ranked
  hosts; marker shape = the tier that produced the barrier, colour = sustainability score,
  crimson outline and label = Pareto front. The HTML report and the dashboard draw the same
  figure (the dashboard at a smaller size).
* :func:`landscape_figure`: a 2D slice of a BVSE landscape.

Both take plain values (sequences, arrays) and return PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["TIER_MARKERS", "barrier_capacity_figure", "barrier_capacity_plot", "landscape_array",
           "landscape_figure", "png_bytes", "tier_family"]

#: Marker of each barrier producer (the first word of a barrier tier); "D" for any other.
TIER_MARKERS = (("BVSE", "o"), ("BVFF", "s"), ("MLIP", "^"))
_OTHER_MARKER = "D"


def png_bytes(fig: Any, dpi: int = 100) -> bytes:
    """The PNG of a matplotlib ``Figure`` drawn on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def tier_family(tier: Any) -> str:
    """"BVSE", "BVFF" or "MLIP" from a barrier tier label ("BVFF CI-NEB (...)"), else "other"."""
    key = str(tier or "")
    for fam, _ in TIER_MARKERS:
        if key.startswith(fam):
            return fam
    return "other"


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _legend_handles(present: set[str]) -> list[Any]:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker=m, ms=8, mfc="0.8", mec="0.35", label=f"barrier from {f}")
               for f, m in (*TIER_MARKERS, ("other tier", _OTHER_MARKER))
               if f in present or (f == "other tier" and "other" in present)]
    handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="crimson", mew=2.2,
                          label="Pareto front (barrier, capacity, sustainability)"))
    return handles


class _Point(NamedTuple):
    formula: str
    barrier: float
    capacity: float
    family: str
    pareto: bool
    sustainability: Any


def _scatter_by_tier(ax: Any, pts: list[_Point]) -> Any:
    """One scatter per barrier producer (marker), coloured by sustainability; the last one."""
    sc = None
    for fam, marker in (*TIER_MARKERS, ("other", _OTHER_MARKER)):
        grp = [p for p in pts if p.family == fam]
        if not grp:
            continue
        sc = ax.scatter([p.capacity for p in grp], [p.barrier for p in grp],
                        c=[np.nan if p.sustainability is None else p.sustainability for p in grp],
                        cmap="viridis", vmin=0, vmax=1, marker=marker, s=70,
                        edgecolors=["crimson" if p.pareto else "0.35" for p in grp],
                        linewidths=[2.2 if p.pareto else 0.6 for p in grp], plotnonfinite=True)
    return sc


def barrier_capacity_plot(ion: str, formulas: Sequence[Any], barriers: Sequence[Any],
                          capacities: Sequence[Any], tiers: Sequence[Any], pareto: Sequence[Any],
                          sustainability: Sequence[Any] | None = None, *,
                          figsize: tuple[float, float] = (7.2, 4.8), dpi: int = 100) -> Any:
    """The barrier-vs-capacity ``Figure`` (see :func:`barrier_capacity_figure`)."""
    from matplotlib.figure import Figure

    sus = list(sustainability) if sustainability is not None else [None] * len(formulas)
    pts = [_Point(str(f or ""), float(b), float(c), tier_family(t), bool(p), s)
           for f, b, c, t, p, s in zip(formulas, barriers, capacities, tiers, pareto, sus)
           if _finite(b) and _finite(c)]
    fig = Figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    sc = _scatter_by_tier(ax, pts)
    for p in sorted((p for p in pts if p.pareto), key=lambda p: p.capacity):
        ax.annotate(p.formula[:18], (p.capacity, p.barrier), textcoords="offset points",
                    xytext=(5, 5), fontsize=7, color="crimson")
    if sc is not None:
        fig.colorbar(sc, ax=ax, label="sustainability score (grey: unknown)")
    ax.set_xlabel("theoretical capacity (mAh/g)")
    ax.set_ylabel("barrier (eV) — producer by marker")
    ax.set_title(f"{ion}: barrier vs capacity ({len(pts)} hosts)")
    ax.legend(handles=_legend_handles({p.family for p in pts}), fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def barrier_capacity_figure(ion: str, formulas: Sequence[Any], barriers: Sequence[Any],
                            capacities: Sequence[Any], tiers: Sequence[Any], pareto: Sequence[Any],
                            sustainability: Sequence[Any] | None = None, *,
                            figsize: tuple[float, float] = (7.2, 4.8), dpi: int = 100) -> bytes:
    """PNG of barrier (eV) vs theoretical capacity (mAh/g) of one ion's hosts.

    The sequences run in parallel, one item per host: ``tiers`` are the barrier tier labels
    (their first word picks the marker, :data:`TIER_MARKERS`), ``pareto`` the Pareto-front
    flags, ``sustainability`` the scores (0-1 colour scale; None grey). Hosts without a finite
    barrier and capacity are left out; the title counts the hosts drawn.
    """
    return png_bytes(barrier_capacity_plot(ion, formulas, barriers, capacities, tiers, pareto,
                                           sustainability, figsize=figsize, dpi=dpi), dpi=dpi)


def _grid_slice(entry: Any) -> tuple[np.ndarray, dict[str, str]] | None:
    """The slice through the lowest site of a BVSEResult's grid (eV above its minimum)."""
    if entry.energy is None:
        return None
    grid = np.asarray(entry.energy) - float(entry.energy_min)
    sites = getattr(entry, "sites", None) or []
    if sites:
        low = min(sites, key=lambda s: s.energy)
        k = int(round(low.frac[2] * grid.shape[2])) % grid.shape[2]
    else:
        k = int(np.unravel_index(np.argmin(grid), grid.shape)[2])
    return grid[:, :, k], {"title": f"slice c = {k / grid.shape[2]:.3f} through the lowest site",
                           "units": "eV above minimum"}


def landscape_array(entry: Any) -> tuple[np.ndarray, tuple[float, float, float, float], dict[str, str]] | None:
    """A 2D array, extent and labels from a landscape entry: a 2D array, a dict ``{"data" (or
    "slice", "array", "energy"), "extent", "xlabel", "ylabel", "units", "title"}``, a 3D grid
    (the plane through its minimum) or a BVSEResult with its grid. None when there is none."""
    labels = {"xlabel": "a (fractional)", "ylabel": "b (fractional)", "units": "eV (as given)",
              "title": ""}
    extent = (0.0, 1.0, 0.0, 1.0)
    data: Any = entry
    if hasattr(entry, "energy") and hasattr(entry, "energy_min"):  # a BVSEResult with its grid
        got = _grid_slice(entry)
        if got is None:
            return None
        data, more = got
        labels.update(more)
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


def landscape_figure(entry: Any, title: str, barriers: Sequence[Any] = ()) -> bytes | None:
    """PNG of a BVSE landscape slice (see :func:`landscape_array` for ``entry``); the colour
    scale is clipped 0.5 eV above the highest of ``barriers`` (else the 90th percentile).
    None when the entry has no finite 2D data."""
    from matplotlib.figure import Figure

    got = landscape_array(entry)
    if got is None:
        return None
    arr, extent, labels = got
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return None
    cap = max([float(v) for v in barriers if v is not None] or [float(np.percentile(finite, 90))])
    data = np.clip(np.where(np.isfinite(arr), arr, np.nanmax(finite)), None,
                   float(np.min(finite)) + cap + 0.5)
    fig = Figure(figsize=(4.6, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(data.T, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=labels["units"])
    ax.set_xlabel(labels["xlabel"])
    ax.set_ylabel(labels["ylabel"])
    ax.set_title(title + (f"\n{labels['title']}" if labels["title"] else ""), fontsize=9)
    fig.tight_layout()
    return png_bytes(fig)
