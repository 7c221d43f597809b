"""Helpers shared by the ``ionscreen`` command modules (consoles, option parsing)."""

from __future__ import annotations

import math
import sys

import click
from rich.console import Console

from ionscreen.structures.ions import SCREEN_DEFAULT

# wide enough for the ranking tables when the output is a file or a pipe (batch jobs)
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)

DEFAULT_IONS = SCREEN_DEFAULT


class _GreedyOption(click.Option):
    """An option that takes every following word up to the next option: ``--ions Mg Ca Zn``."""

    def add_to_parser(self, parser, ctx):  # type: ignore[no-untyped-def]
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is None:
                continue
            original = opt.process

            def process(value, state, _orig=original):  # type: ignore[no-untyped-def]
                values = [value]
                while state.rargs and not state.rargs[0].startswith("-"):
                    values.append(state.rargs.pop(0))
                _orig(" ".join(values), state)

            opt.process = process


def _split_words(values) -> list[str]:  # type: ignore[no-untyped-def]
    out: list[str] = []
    for v in values or ():
        out += [w for w in v.replace(",", " ").split() if w]
    return out


def _parse_oxi(text: str | None) -> dict[str, float] | None:
    """``Fe=2,P=5,O=-2`` -> {"Fe": 2, "P": 5, "O": -2}."""
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        if "=" not in part:
            raise click.BadParameter(f"'{part}' is not ELEMENT=STATE (example: --oxi Fe=2,P=5,O=-2)")
        el, val = part.split("=", 1)
        try:
            out[el] = float(val)
        except ValueError as exc:
            raise click.BadParameter(f"'{val}' is not a number in '{part}'") from exc
    return out


def _fmt(x: float) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.3f}"
