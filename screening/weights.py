"""Ranking weights: how much barrier, energy, capacity and sustainability count in the score.

Weights come from a config file, TOML or JSON, with a ``weights`` table::

    [weights]
    barrier = 0.5
    energy = 0.2          # specific energy, Wh/kg (voltage × capacity)
    capacity = 0.1
    sustainability = 0.2

Missing keys weigh 0; the defaults ship as ``data/ranking_default.json``. For an ion where no
ranked host has a voltage, the energy weight goes to capacity (energy is capacity × voltage).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["WEIGHT_KEYS", "default_weights", "load_weights", "resolve_weights", "validate_weights"]

WEIGHT_KEYS = ("barrier", "energy", "capacity", "sustainability")


def _default_path() -> Any:
    return resources.files("ionscreen.screening").joinpath("data/ranking_default.json")


def validate_weights(weights: Mapping[str, Any], source: str = "weights") -> dict[str, float]:
    """Check a weights mapping and return it normalised to sum 1 (every key of WEIGHT_KEYS present).

    Raises :class:`ValueError` naming the offending key for an unknown key, a value that is not
    a finite number ≥ 0, or weights that are all zero.
    """
    if not isinstance(weights, Mapping):
        raise ValueError(f"{source}: weights must be a table/mapping of {', '.join(WEIGHT_KEYS)} "
                         f"to numbers, got {type(weights).__name__}")
    out = dict.fromkeys(WEIGHT_KEYS, 0.0)
    for key, value in weights.items():
        if key not in WEIGHT_KEYS:
            raise ValueError(f"{source}: unknown weight key {key!r}; allowed keys: "
                             f"{', '.join(WEIGHT_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{source}: weight {key!r} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{source}: weight {key!r} must be finite and >= 0, got {value!r}")
        out[key] = float(value)
    total = sum(out.values())
    if total <= 0:
        raise ValueError(f"{source}: all weights are zero; give at least one of "
                         f"{', '.join(WEIGHT_KEYS)} a positive weight")
    return {k: v / total for k, v in out.items()}


def load_weights(path: str | Path | None = None) -> dict[str, float]:
    """Weights from a TOML (``.toml``) or JSON file, or the packaged defaults for ``None``.

    The file holds a ``weights`` table (or only the weight keys at top level). Returns the
    weights normalised to sum 1. Raises :class:`ValueError` for an unreadable file or invalid
    weights (naming the key), :class:`FileNotFoundError` for a missing file.
    """
    if path is None:
        text, source, is_toml = _default_path().read_text(), "ranking_default.json", False
    else:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"weights file {str(p)!r} does not exist")
        text, source, is_toml = p.read_text(), str(p), p.suffix.lower() == ".toml"
    try:
        if is_toml:
            import tomllib

            doc = tomllib.loads(text)
        else:
            doc = json.loads(text)
    except Exception as exc:
        kind = "TOML" if is_toml else "JSON"
        raise ValueError(f"{source}: cannot parse as {kind} ({exc})") from None
    if not isinstance(doc, Mapping):
        raise ValueError(f"{source}: expected a table with a 'weights' table")
    weights = doc.get("weights", doc)
    if weights is doc:  # top-level keys: tolerate documentation keys only
        weights = {k: v for k, v in doc.items() if k not in ("description", "comment")}
    return validate_weights(weights, source=source)


def default_weights() -> dict[str, float]:
    """The packaged default weights (normalised)."""
    return load_weights(None)


def resolve_weights(weights: Mapping[str, Any] | str | Path | None) -> dict[str, float]:
    if weights is None:
        return default_weights()
    if isinstance(weights, (str, Path)):
        return load_weights(weights)
    return validate_weights(weights)
