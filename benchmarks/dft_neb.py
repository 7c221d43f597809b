"""Reference DFT migration paths (``data/dft_neb/paths.json.gz``) and the barrier metrics.

``load_paths`` gives :class:`ReferencePath` objects with both endpoints as pymatgen Structures;
``metrics`` compares predicted barriers with the DFT ones, overall and per ion. The data file
is built by ``curate_dft_neb.py`` (see ``data/dft_neb/README.md``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pymatgen.core import Lattice, Structure
from scipy import stats

# IONSCREEN_DFT_NEB_DATA points at a copy elsewhere (e.g. one built in another worktree)
DATA = Path(os.environ.get("IONSCREEN_DFT_NEB_DATA")
            or Path(__file__).parent / "data" / "dft_neb" / "paths.json.gz")
SPLITS = ("calibration", "held-out")


@dataclass
class ReferencePath:
    """One DFT migration path: the moving ion hops from its site in ``initial`` to ``final``."""

    id: str
    ion: str
    formula: str
    initial: Structure
    final: Structure
    moving_index: int
    dft_barrier: float  # eV
    split: str
    source: dict[str, Any]
    counted: bool = True  # False for reference ions (Li, Na, Sr), not counted as multivalent
    info: dict[str, Any] = field(default_factory=dict)  # displacement, relaxed atoms, class...

    @property
    def n_atoms(self) -> int:
        return len(self.initial)


@lru_cache(maxsize=2)
def _document(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(
            f"{p} is missing: build it with `python benchmarks/curate_dft_neb.py "
            "<git dir of sai-mat-group/predicting-migration-barriers>`")
    with gzip.open(p, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _path(rec: dict[str, Any]) -> ReferencePath:
    lattice = Lattice(rec["lattice"])
    ini = np.array(rec["frac_initial"], float)
    fin = ini.copy()
    for i, xyz in rec["final_changes"].items():
        fin[int(i)] = xyz
    info = {k: rec[k] for k in ("sys_name", "material_class", "displacement", "relaxed_atoms",
                                "endpoints", "n_dft_images")}
    return ReferencePath(
        id=rec["id"], ion=rec["ion"], formula=rec["formula"],
        initial=Structure(lattice, rec["species"], ini), final=Structure(lattice, rec["species"], fin),
        moving_index=int(rec["moving_index"]), dft_barrier=float(rec["dft_barrier"]),
        split=rec["split"], source=rec["source"], counted=bool(rec["counted"]), info=info)


def meta(path: Path = DATA) -> dict[str, Any]:
    """Provenance of the data file: source commit, barrier definition, split rule, drops."""
    return _document(str(path))["meta"]


def load_paths(split: str | None = None, ions: list[str] | tuple[str, ...] | None = None,
               max_atoms: int | None = None, path: Path = DATA) -> list[ReferencePath]:
    """The reference paths, optionally of one split ("calibration", "held-out"; None or
    "all" for both), of some ions only, and of at most ``max_atoms`` atoms, in file order."""
    if split not in (None, "all", *SPLITS):
        raise ValueError(f"split must be one of {SPLITS} or 'all', not {split!r}")
    out = []
    for rec in _document(str(path))["paths"]:
        if split not in (None, "all") and rec["split"] != split:
            continue
        if ions is not None and rec["ion"] not in ions:
            continue
        if max_atoms is not None and rec["n_atoms"] > max_atoms:
            continue
        out.append(_path(rec))
    return out


# ---------------------------------------------------------------------- metrics


def _stats(pairs: list[tuple[float, float]], n: int, thresholds: tuple[float, ...]) -> dict[str, Any]:
    """Metrics of (predicted, reference) pairs out of ``n`` paths."""
    out: dict[str, Any] = {"n": n, "found": len(pairs)}
    p = np.array([a for a, _ in pairs], float)
    r = np.array([b for _, b in pairs], float)
    if len(pairs) >= 3 and np.ptp(p) > 0 and np.ptp(r) > 0:
        out["spearman"] = float(stats.spearmanr(p, r).statistic)
        out["pearson"] = float(stats.pearsonr(p, r).statistic)
    else:  # a correlation of fewer than three points or of a constant says nothing
        out["spearman"] = out["pearson"] = None
    out["mae"] = float(np.mean(np.abs(p - r))) if len(pairs) else None
    out["mean_signed_error"] = float(np.mean(p - r)) if len(pairs) else None
    for t in thresholds:  # good = barrier below t; accuracy of that call
        out[f"accuracy@{t:g}"] = float(np.mean((p < t) == (r < t))) if len(pairs) else None
    return out


def ranked_barrier(result: dict[str, Any], tier: str) -> float | None:
    """The barrier of one ``validate_barriers`` result as the product would rank it: None when
    the band gave none, or when the NEB refused it (``noise``, ``below-floor``, a
    ``no-saddle`` below 0.65 eV or of the BVFF: :func:`ionscreen.screening.neb.flags.refuses`).
    Results stored before the flags were recorded get the floor rule only, from their barrier
    and ion: a noisy band is in practice also below the floor, but a no-saddle band between
    the floor and 0.65 eV cannot be told from them and is counted."""
    from ionscreen.screening.ion_models import ion_model
    from ionscreen.screening.neb.flags import floor_for, refuses

    b = result.get("barrier")
    if b is None or not math.isfinite(b):
        return None
    if tier == "bvse":  # every other tier is a NEB with its flags; BVSE has its own rules
        return float(b)
    extra = result.get("extra") or {}
    if extra.get("refused") is not None:  # the flags that refused it, as the NEB decided
        return None if extra["refused"] else float(b)
    flags = extra.get("flags")
    if flags is not None:
        # codes only (stored before the refusals were): a no-saddle band is refused below
        # 0.65 eV, and at any height for the BVFF (flags.noise_flag, ranked=False)
        return None if any(refuses(c, None if tier == "bvff" else b) for c in flags) else float(b)
    ion = result.get("ion")
    return None if ion and b < floor_for(ion_model(ion).charge) else float(b)


def metrics(pred: dict[str, float | None], ref: list[ReferencePath],
            threshold: float | tuple[float, ...] = (0.5, 0.65)) -> dict[str, dict[str, Any]]:
    """Metrics of predicted barriers (path id -> eV, or None when the method gave none) against
    the DFT barriers of ``ref``: "all" and one entry per ion.

    Each entry has n (paths), found (non-None, finite predictions), spearman, pearson, mae,
    mean_signed_error (predicted - DFT) and ``accuracy@t`` per threshold t: the fraction of
    found paths where "barrier < t" (a good conductor) is called the same as by DFT.
    A path missing from ``pred`` counts as not found.
    """
    thresholds = (threshold,) if isinstance(threshold, (int, float)) else tuple(threshold)
    groups: dict[str, list[ReferencePath]] = {"all": list(ref)}
    for r in ref:
        groups.setdefault(r.ion, []).append(r)
    out = {}
    for name, paths in groups.items():
        pairs = []
        for r in paths:
            v = pred.get(r.id)
            if v is not None and math.isfinite(v):
                pairs.append((float(v), r.dft_barrier))
        out[name] = _stats(pairs, len(paths), thresholds)
    return out


def markdown_table(table: dict[str, dict[str, Any]], title: str = "") -> str:
    """A metrics dict (from :func:`metrics`) as a Markdown table, one row per group."""
    if not table:
        return ""
    cols = list(next(iter(table.values())))
    lines = [f"**{title}**", ""] if title else []
    lines += ["| group | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else ("–" if v is None else str(v))
                 for v in row.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(preds: dict[str, dict[str, float | None]], ref: list[ReferencePath],
                  ions: tuple[str, ...] = ("Mg", "Ca", "Zn")) -> str:
    """One Markdown row per tier over the same paths ``ref``: found, Spearman, Pearson, MAE,
    mean signed error, good/bad accuracy, and the MAE of each of ``ions``."""
    head = ["tier", "found", "Spearman", "Pearson", "MAE", "mean signed", "acc@0.5", "acc@0.65",
            *(f"MAE {ion}" for ion in ions)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]

    def num(v: Any, signed: bool = False) -> str:
        return "–" if v is None else (f"{v:+.3f}" if signed else f"{v:.3f}").replace("-", "−")

    for name, pred in preds.items():
        m = metrics(pred, ref)
        a = m["all"]
        cells = [name, f"{a['found']}/{a['n']}", num(a["spearman"]), num(a["pearson"]),
                 num(a["mae"]), num(a["mean_signed_error"], True), num(a.get("accuracy@0.5")),
                 num(a.get("accuracy@0.65"))]
        cells += [num(m[ion]["mae"]) + f" ({m[ion]['found']}/{m[ion]['n']})" if ion in m else "–"
                  for ion in ions]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

