"""ML-potential tier: name an ASE calculator with one string (and relax structures with it).

Relaxation lives in :mod:`ionscreen.screening.relax` (:func:`relax` is re-exported here).

Specs accepted by :func:`calculator_factory`:

* ``"chgnet"`` — CHGNet with the default model of the installed ``chgnet`` package
  (0.3.0 for chgnet 0.4.x); ``"chgnet:0.3.0"``, ``"chgnet:0.2.0"``, ``"chgnet:r2scan"`` pick a
  model. The weights ship inside the ``chgnet`` wheel, so nothing is downloaded.
* ``"sevennet"`` — SevenNet-0 (``"sevennet:7net-0"``); ``"sevennet:7net-l3i5"``,
  ``"sevennet:7net-0_22may2024"`` and the multi-fidelity ``"sevennet:7net-mf-0"`` (modal PBE
  by default; ``"sevennet:7net-mf-0@R2SCAN"`` picks the r2SCAN fidelity). These checkpoints
  ship inside the ``sevenn`` wheel; the larger SevenNet models are downloads and not accepted.
  Both CHGNet and SevenNet need the optional extra:
  ``python3 -m pip install -c constraints.txt "ionscreen[mlip]"``.
* ``"package.module:ClassName"`` — any ASE calculator class, instantiated without arguments
  (``"ase.calculators.emt:EMT"``), or with simple keyword arguments after a ``?``:
  ``"package.module:ClassName?key=value&other=1.5"`` (values are read as Python literals —
  numbers, True/False/None, quoted strings — and otherwise kept as plain strings).

A :class:`~ionscreen.screening.calculators.CalculatorFactory` (the one factory type, also made
by :func:`~ionscreen.screening.calculators.bvff_factory`) loads the model once; every call returns a **new** calculator that
shares it, because a NEB needs one calculator per image (sharing one calculator across images
made each NEB step about five times dearer: every image was recomputed). For a
``module:Class`` spec each call builds a new instance of the class (ionscreen cannot know how
to share that class's internals). CHGNet and SevenNet factories also have ``factory.batch``:
energies and forces of many structures in one call (:mod:`ionscreen.screening.mlip_models`).

Universal ML potentials run soft: large multivalent migration barriers came out 0.3–0.6 eV
below DFT-NEB in the cases measured, and absolute energies of different models differ by up to
~0.9 eV/atom. Every result of this tier therefore names the model (``factory.identity``) and
the tier; never combine energies from two factories with different identities.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from typing import Any

from ionscreen.errors import IonscreenError
from ionscreen.screening.calculators import CalculatorFactory
from ionscreen.screening.mlip_models import (
    ACCEPTED,
    CHGNET_MODELS,
    INSTALL_HINT,
    SEVENNET_MODELS,
    chgnet_factory,
    sevennet_factory,
)
from ionscreen.screening.relax import relax

__all__ = [
    "CHGNET_MODELS",
    "INSTALL_HINT",
    "SEVENNET_MODELS",
    "CalculatorFactory",
    "calculator_factory",
    "relax",
    "set_threads",
]


def set_threads(threads: int) -> int:
    """Set the number of torch intra-op threads (if torch is imported) and return it.

    One thread per process (or MPI rank) is the default of this tier: on a busy two-core
    machine two threads made CHGNet calls 2–25× slower. Denormal floats are flushed to zero
    (process-wide): CHGNet's energy-and-force call was ~1.3× faster on this CPU, and values
    below 1e-38 change no energy or force that is reported.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise IonscreenError(f"threads must be a positive integer, got {threads!r}")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)
    return threads


def calculator_factory(spec: str = "chgnet", threads: int = 1) -> CalculatorFactory:
    """A :class:`CalculatorFactory` for ``spec`` (see the module docstring for the forms).

    ``threads`` sets torch's thread count for this process (default 1).

    Raises :class:`MissingDependencyError` (naming the ``mlip`` extra) when a CHGNet or
    SevenNet spec is asked for and its package or torch cannot be imported, and :class:`IonscreenError` saying what is
    accepted for an unknown spec, module or class.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise IonscreenError(f"calculator spec {spec!r} is empty; accepted: {ACCEPTED}")
    text = spec.strip()
    set_threads(threads)
    head, _, rest = text.partition(":")
    if head.strip().lower() == "chgnet":
        return chgnet_factory(text, rest.strip() or None, threads)
    if head.strip().lower() == "sevennet":
        return sevennet_factory(text, rest.strip(), threads)
    if ":" not in text:
        raise IonscreenError(f"unknown calculator spec {spec!r}; accepted: {ACCEPTED}")
    return _class_factory(text, threads)


# -- module:Class ------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _literal(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _parse_kwargs(spec: str, query: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if not query:
        return kwargs
    for part in query.split("&"):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise IonscreenError(
                f"cannot read keyword argument {part!r} in calculator spec {spec!r}; write "
                "key=value pairs joined by '&', e.g. 'package.module:Class?model=x&cutoff=5.0'"
            )
        kwargs[key] = _literal(value.strip())
    return kwargs


def _class_factory(spec: str, threads: int) -> CalculatorFactory:
    target, _, query = spec.partition("?")
    module_name, _, class_name = target.partition(":")
    module_name, class_name = module_name.strip(), class_name.strip()
    if not _IDENT.match(module_name) or not _IDENT.match(class_name):
        raise IonscreenError(f"cannot read calculator spec {spec!r}; accepted: {ACCEPTED}")
    kwargs = _parse_kwargs(spec, query)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise IonscreenError(
            f"calculator spec {spec!r}: cannot import module {module_name!r} ({err}); install "
            f"the package that provides it, or use one of: {ACCEPTED}"
        ) from err
    cls: Any = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise IonscreenError(
                f"calculator spec {spec!r}: module {module_name!r} has no {class_name!r}; "
                f"accepted: {ACCEPTED}"
            )
    if not callable(cls):
        raise IonscreenError(f"calculator spec {spec!r}: {class_name!r} is not a class")

    def build() -> Any:
        try:
            calc = cls(**kwargs)
        except Exception as err:  # a third-party constructor can raise anything
            raise IonscreenError(
                f"calculator spec {spec!r}: {module_name}.{class_name}(**{kwargs}) failed: "
                f"{type(err).__name__}: {err}"
            ) from err
        if not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate"):
            raise IonscreenError(
                f"calculator spec {spec!r}: {module_name}.{class_name} is not an ASE calculator "
                "(no calculate/get_potential_energy method)"
            )
        return calc

    probe = [build()]  # fail now, not inside a NEB; hand the probe out first

    def make() -> Any:
        return probe.pop() if probe else build()

    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    identity = f"{module_name}.{class_name}" + (f"({args})" if args else "")
    set_threads(threads)  # the class may have imported torch
    note = (f"{identity} used as an ASE calculator; ionscreen knows nothing of its accuracy. "
            "If it is a universal ML potential, expect it to run soft (CHGNet put large "
            "multivalent barriers 0.3–0.6 eV below DFT-NEB). Never mix its energies with "
            "another model's.")
    return CalculatorFactory(spec=spec, identity=identity, tier="ASE calculator", note=note,
                             threads=threads, _make=make)
