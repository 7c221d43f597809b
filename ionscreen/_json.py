"""One home for turning results into plain JSON and for printing numbers cleanly.

Every module that writes JSON (result documents, exports, the dashboard, the stores) goes
through :func:`jsonable`; job ids use :func:`ionscreen.workflows.store.canonical_json`, which
builds on it with float rounding and key order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["clean_number", "finite_or_none", "jsonable"]


def jsonable(obj: Any, *, nonfinite: Any = None,
             floats: Callable[[float], Any] | None = None) -> Any:
    """A plain-JSON copy of ``obj``: mappings (keys as str), lists, str, int, float, bool, None.

    Tuples become lists, sets sorted lists, numpy scalars and arrays Python numbers and lists,
    objects with ``as_dict`` (pymatgen, MSONable) their dict. NaN and infinities become
    ``nonfinite`` (None by default, since browsers' ``JSON.parse`` and strict readers reject
    them). ``floats``, when given, maps every float instead (finite or not): job ids round
    them, a store that keeps NaN passes them through.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        if floats is not None:
            return floats(obj)
        return obj if math.isfinite(obj) else nonfinite
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, nonfinite=nonfinite, floats=floats) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, nonfinite=nonfinite, floats=floats) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [jsonable(v, nonfinite=nonfinite, floats=floats) for v in obj]
        try:
            return sorted(items)
        except TypeError:  # mixed types: any fixed order will do
            return sorted(items, key=repr)
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return jsonable(obj.tolist(), nonfinite=nonfinite, floats=floats)
    if hasattr(obj, "as_dict"):
        return jsonable(obj.as_dict(), nonfinite=nonfinite, floats=floats)
    raise TypeError(f"not JSON-able: a {type(obj).__name__} ({obj!r:.80})")


def clean_number(x: float, digits: int | None = 6) -> float | int:
    """An int when ``x`` is integral (so species print as Fe3+, not Fe3.0+), else ``x`` rounded
    to ``digits`` decimals (``None``: not rounded)."""
    r = round(float(x))
    if abs(float(x) - r) < 1e-9:
        return int(r)
    return float(x) if digits is None else round(float(x), digits)


def finite_or_none(x: Any) -> float | None:
    """A finite float or None (NaN, inf, None, bools and non-numbers give None): how a table
    cell or a ranking reads an optional number."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
