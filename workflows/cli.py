"""The ``ionscreen`` command line: the click group and the registry of its command modules.

Each command lives in its own module (in the manner of ASE's ``ase/cli/main.py``), which is
imported only when its command runs (or when the group's help lists them), so that
``ionscreen bvse`` does not load FireWorks and ``ionscreen submit`` does not load the
dashboard. Helpers the commands share are in :mod:`ionscreen.workflows.cli_common`.
"""

from __future__ import annotations

from importlib import import_module

import click

COMMANDS: dict[str, str] = {
    "bvse": "cli_bvse:bvse",
    "hosts": "cli_bvse:hosts",
    "candidates": "cli_candidates:candidates",
    "screen": "cli_screen:screen",
    "rank": "cli_screen:rank",
    "export": "cli_screen:export_cmd",
    "neb": "cli_neb:neb",
    "submit": "cli_fireworks:submit",
    "dashboard": "cli_dashboard:dashboard",
}
"""Command name -> ``module:attribute`` in ``ionscreen.workflows``."""


class _Registry(click.Group):
    """A group whose commands are imported from :data:`COMMANDS` when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(import_module(f"ionscreen.workflows.{module}"), attr)


@click.group(cls=_Registry, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ionscreen")
def app() -> None:
    """ionscreen: screen battery electrode hosts for Mg, Ca, Zn, Al, NH4 (and Sr, Ba, Li, Na).

    Every number printed says what produced it: BVSE numbers rank and filter hosts; they are
    not absolute migration barriers.
    """


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
