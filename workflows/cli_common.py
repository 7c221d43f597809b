"""Helpers shared by the ``ionscreen`` command modules: consoles, option parsing, the one
set of screen options (:func:`screen_options`) and the MPI start."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from ionscreen.errors import IonscreenError
from ionscreen.structures.ions import SCREEN_DEFAULT
from ionscreen.structures.ordering import MAX_ORDER_ATOMS

if TYPE_CHECKING:
    from .plan import ScreenSpec

# wide enough for the ranking tables when the output is a file or a pipe (batch jobs)
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)



class GreedyOption(click.Option):
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


def split_words(values) -> list[str]:  # type: ignore[no-untyped-def]
    out: list[str] = []
    for v in values or ():
        out += [w for w in v.replace(",", " ").split() if w]
    return out


def parse_oxi(text: str | None) -> dict[str, float] | None:
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


def fmt(x: float) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.3f}"


def fail(exc: BaseException) -> NoReturn:
    """Print a user error (no traceback) and exit with status 2."""
    # one line however long (soft_wrap), and the message's brackets are not rich markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
    sys.exit(2)


def mpi_world() -> Any:
    """The MPI communicator under ``mpiexec`` (None without it); a launcher without mpi4py is
    a clear error, not every rank redoing the whole job."""
    from . import mpi

    try:
        return mpi.world()
    except IonscreenError as exc:
        fail(exc)


def run_engine(make_engine: Callable[[], Any], run: Callable[[Any], Any],
               comm: Any = None) -> tuple[Any, Any]:
    """Make the engine (a LocalEngine; opening its store may refuse a foreign or corrupted
    file) and ``run(engine)``: (its RunSummary, the store) on the rank that owns the store,
    (summary, None) on the other MPI ranks. A user error exits cleanly (all ranks under MPI)."""
    try:
        engine = make_engine()
        summary = run(engine)
    except IonscreenError as exc:
        if comm is not None and comm.Get_size() > 1:
            err_console.print(f"[bold red]error:[/] {exc}")
            comm.Abort(2)
        fail(exc)
    return summary, engine.store


def _check_weights(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--weights``: read and check the file now, so that a typo stops the command before
    any job (not a traceback after the screen). The path goes on: the ranking reads it."""
    if value is None:
        return None
    from ionscreen.screening.weights import load_weights

    try:
        load_weights(value)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc).replace("\n", " "), ctx, param) from None
    return value


weights_option = click.option(
    "--weights", type=click.Path(dir_okay=False), default=None, callback=_check_weights,
    help="Ranking weights: a TOML or JSON file with a [weights] table of barrier, capacity "
         "and sustainability (numbers >= 0).")


# --------------------------------------------------------------------------- the screen options

_CANDIDATE_OPTIONS = [
    click.option("--hosts", default="builtin", show_default=True,
                 help="'builtin' (all prototypes), 'none', or prototype ids separated by commas."),
    click.option("--substitute", cls=GreedyOption, multiple=True, default=None,
                 help="Substituted built-in hosts: 'default' or rules such as 'Mn:Fe,Co O:S,Se'."),
    click.option("--cps", is_flag=True,
                 help="Add DI–M–ligand coordination polymers (ordered + disordered)."),
    click.option("--cp-models", type=int, default=1, show_default=True,
                 help="Disordered models per polymer (the same default in candidates, screen "
                      "and submit)."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seed of the disordered polymer models."),
    click.option("--files", cls=GreedyOption, multiple=True, default=None,
                 help="Structure files or folders (CIF or magnetic CIF, POSCAR, extxyz; folders "
                      "searched recursively). A path that does not exist, or a folder without "
                      "any structure file, stops the command before any job, also when other "
                      "hosts are screened; a file that cannot be used is a failed job with its "
                      "reason."),
    click.option("--oxi", default=None,
                 help="Oxidation states for --files and --optimade entries, e.g. Fe=2,P=5,O=-2."),
    click.option("--replace-ion", "replace_ion", default=None,
                 help="Remove these ions (e.g. Li or Li,Na) from --files and --optimade entries "
                      "first and screen the working ion in the sites they leave; the host's "
                      "oxidation states are guessed again (LiCoO2 -> CoO2 with Co4+)."),
    click.option("--mobile-sites", "mobile_sites", default=None,
                 help="The working-ion sites of --files (and --optimade entries) that move, by "
                      "site label (Na2), Wyckoff position (18e) or 0-based index in the file, "
                      "comma separated; the other sites of the ion stay as framework. Default: "
                      "every site of the ion."),
    click.option("--order", type=click.IntRange(min=0), default=0,
                 help="Disordered --files and --optimade entries (partial occupancy, vacancies "
                      "such as Na0.8CoO2): screen their N lowest-Ewald orderings, in the "
                      "smallest supercell that makes the occupancies whole; each row says which "
                      "ordering it is. 0: such a file fails with its disordered sites."),
    click.option("--order-max-atoms", type=click.IntRange(min=1), default=MAX_ORDER_ATOMS,
                 show_default=True,
                 help="The largest supercell --order builds (sites); a file that needs more "
                      "fails with the numbers."),
    click.option("--optimade", cls=GreedyOption, multiple=True, default=None,
                 help="OPTIMADE databases whose structures are candidates: short names (mp, "
                      "alexandria, oqmd, cod, jarvis, odbx.gnome... pymatgen's list) or base URLs, "
                      "space or comma separated. Pages are fetched into the run's store: a "
                      "repeated screen fetches nothing again, an interrupted fetch resumes."),
    click.option("--filter", "optimade_filter", default="",
                 help="The OPTIMADE filter of --optimade, e.g. 'elements HAS ALL \"Mn\",\"O\" "
                      "AND nelements<=3'. A bad filter fails with the provider's own message."),
    click.option("--max", "optimade_max", type=click.IntRange(min=1), default=100,
                 show_default=True, help="The most structures fetched per --optimade database."),
    click.option("--page-size", "optimade_page_size", type=click.IntRange(min=0), default=0,
                 help="Structures per page of --optimade (default: each database's own; one "
                      "above a database's maximum is refused with the maximum named)."),
    click.option("--ions", cls=GreedyOption, multiple=True, default=None,
                 help="Working ions (space or comma separated). Default: "
                      f"{' '.join(SCREEN_DEFAULT)}."),
]
NEB_TOP = 5
"""Hosts promoted per ion by default: a BVFF NEB takes about a second for most hosts."""
NEB_TOP_WITH_VOLTAGE = 2
"""Hosts promoted per ion by default when the ML voltage runs: a CHGNet voltage (two cells
relaxed with their cell) takes 10-140 CPU-s for the built-in hosts (median about a minute), so
that the default screen of five ions stays within 10 minutes on 2 cores (README)."""

_STAGE_OPTIONS = [
    click.option("--resolution", type=float, default=0.2, show_default=True,
                 help="BVSE grid step (Å)."),
    click.option("--derive-nitride", is_flag=True,
                 help="Derive missing ion–N3- BVSE rows (Ca, Zn, Al, NH4, Na, Ba in cyanide or "
                      "sulfonamide hosts) from the ion–O2- rows: approximate, flagged in every "
                      "row."),
    click.option("--neb-top", type=int, default=None,
                 help="The funnel: NEB (and the ML voltage) on the hosts that pass the BVSE "
                      "filter (2.5 eV for 2+ ions), at most N per ion, best first; the ranking "
                      "uses the NEB tier and lists the others below it (0: no NEB, a BVSE "
                      f"pre-screen). Default {NEB_TOP}, or {NEB_TOP_WITH_VOLTAGE} when the ML "
                      "voltage runs (it costs about a CPU-minute per host)."),
    click.option("--neb-calculator", default="bvff", show_default=True,
                 help="Calculator of the NEB stage: bvff, chgnet[:model], sevennet[:model], "
                      "module:Class, or committee[:spec,spec...] (several ML potentials on the "
                      "same path, calibrated: the ML tier's best-measured barriers; see "
                      "'ionscreen neb --help')."),
    click.option("--voltage", "voltage_calc", default="auto", show_default=True,
                 envvar="IONSCREEN_VOLTAGE",
                 help="ML calculator (chgnet, sevennet...) for the average voltage, energy "
                      "density and volume change of every host promoted to NEB; 'auto': CHGNet "
                      "when the mlip extra is installed, else none (the rows say voltage "
                      "unknown); 'none': no voltage. Env: IONSCREEN_VOLTAGE."),
]
_CANDIDATE_NAMES = ("hosts", "substitute", "cps", "cp_models", "seed", "files", "oxi", "replace_ion",
                    "mobile_sites", "order", "order_max_atoms", "optimade", "optimade_filter",
                    "optimade_max", "optimade_page_size", "ions")
_STAGE_NAMES = ("resolution", "derive_nitride", "neb_top", "neb_calculator", "voltage_calc")


def spec_from_options(*, ions: Any = None, hosts: str = "builtin", substitute: Any = None,
                      cps: bool = False, cp_models: int = 1, seed: int = 0, files: Any = None,
                      oxi: str | None = None, replace_ion: str | None = None,
                      mobile_sites: str | None = None, order: int = 0,
                      order_max_atoms: int = MAX_ORDER_ATOMS, optimade: Any = None,
                      optimade_filter: str = "", optimade_max: int = 100,
                      optimade_page_size: int = 0,
                      resolution: float = 0.2,
                      derive_nitride: bool = False, neb_top: int | None = None,
                      neb_calculator: str = "bvff", voltage_calc: str | None = "auto") -> ScreenSpec:
    """The :class:`ScreenSpec` of the screen options (bad values: ``click.BadParameter``)."""
    from ionscreen.structures.candidates import path_problems
    from ionscreen.structures.ions import get_working_ion

    from .plan import ScreenSpec, default_voltage_calculator, parse_substitution_rules

    try:
        ion_list = [get_working_ion(i).name for i in (split_words(ions) or list(SCREEN_DEFAULT))]
    except IonscreenError as exc:
        raise click.BadParameter(str(exc), param_hint="--ions") from exc
    rules = " ".join(substitute or ()).split() or None  # commas separate targets: not words
    strip = split_words([replace_ion] if replace_ion else [])
    for el in strip:
        if el not in ("Li", "Na", "K", "Mg", "Ca", "Zn", "Sr", "Ba", "Al"):
            raise click.BadParameter(f"{el!r} is not an ion a host file holds between its layers or "
                                     "in its channels (Li, Na, K, Mg, Ca, Zn, Sr, Ba, Al)",
                                     param_hint="--replace-ion")
    file_list = split_words(files)
    problems = path_problems(file_list)
    if problems:  # a typo in a path is no failed job: the user must fix it before a screen
        raise click.BadParameter("; ".join(problems), param_hint="--files")
    providers = split_words(optimade)
    if optimade_filter.strip() and not providers:
        raise click.BadParameter("a filter needs the databases to query: add --optimade "
                                 "(e.g. --optimade mp)", param_hint="--filter")
    from ionscreen.structures.optimade import resolve_provider

    seen: dict[str, str] = {}
    for word in providers:  # a typo in a name stops the command before any fetch
        try:
            _, url = resolve_provider(word)
        except IonscreenError as exc:
            raise click.BadParameter(str(exc), param_hint="--optimade") from exc
        seen.setdefault(url, word)  # "mp" and its URL are one database, fetched once
    providers = list(seen.values())
    voltage = default_voltage_calculator(voltage_calc)
    if neb_top is None:
        neb_top = NEB_TOP_WITH_VOLTAGE if voltage else NEB_TOP
    try:
        parse_substitution_rules(rules)
        return ScreenSpec(ions=ion_list, hosts=hosts, substitute=rules, cps=cps,
                          cp_models=cp_models, seed=seed, files=file_list,
                          oxi=parse_oxi(oxi), replace_ions=strip, mobile_sites=mobile_sites,
                          order=order,
                          order_max_atoms=order_max_atoms, optimade=providers,
                          optimade_filter=optimade_filter.strip(), optimade_max=optimade_max,
                          optimade_page_size=optimade_page_size,
                          bvse={"resolution": resolution, "derive_nitride": derive_nitride},
                          neb_top=neb_top, neb_calculator=neb_calculator,
                          voltage_calculator=voltage)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def screen_options(stages: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options that describe a screen, shared by ``candidates`` (``stages=False``: the
    candidate options only), ``screen`` and ``submit``. The command receives them as one
    ``spec`` (:func:`spec_from_options`)."""
    options = _CANDIDATE_OPTIONS + (_STAGE_OPTIONS if stages else [])
    names = _CANDIDATE_NAMES + (_STAGE_NAMES if stages else ())

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, **kw: Any) -> Any:
            spec = spec_from_options(**{n: kw.pop(n) for n in names})
            return f(*args, spec=spec, **kw)

        for opt in reversed(options):
            command = opt(command)
        return command

    return deco
