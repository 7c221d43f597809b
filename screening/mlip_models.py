"""The ML models of the MLIP tier (CHGNet, SevenNet): loading, notes, batched evaluation.

Used through :func:`ionscreen.screening.mlip.calculator_factory`; each factory here loads one
model once, makes calculators that share it, and sets ``factory.batch``: energies (eV) and
forces (eV/Å) of many structures in one call. The batch evaluators return the model's raw
forces: constraints on the Atoms (FixAtoms) are ignored, as ``get_forces(apply_constraint=False)``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from ionscreen.errors import CalculationError, IonscreenError, MissingDependencyError
from ionscreen.screening.calculators import CalculatorFactory

INSTALL_HINT = (
    'python3 -m pip install -c constraints.txt "ionscreen[mlip]" '
    "(constraints.txt, at the top of the ionscreen repository, pins torch==2.13.0, the CPU "
    "build; without it pip may pull a multi-GB CUDA torch)"
)

#: CHGNet models whose weights ship in the chgnet 0.4.x wheel.
CHGNET_MODELS = ("0.3.0", "0.2.0", "r2scan")

#: SevenNet models whose checkpoints ship in the sevenn 0.13 wheel, with their modals (the
#: first modal is the default). Others (7net-omni, 7net-omat, 7net-mf-ompa) are downloads.
SEVENNET_MODELS: dict[str, tuple[str, ...]] = {
    "7net-0": (),
    "7net-0_22may2024": (),
    "7net-l3i5": (),
    "7net-mf-0": ("PBE", "R2SCAN"),
}

ACCEPTED = (
    '"chgnet" (default CHGNet model), "chgnet:MODEL" with MODEL one of '
    + ", ".join(CHGNET_MODELS)
    + '; "sevennet" (= 7net-0), "sevennet:MODEL" with MODEL one of '
    + ", ".join(SEVENNET_MODELS)
    + ', "sevennet:7net-mf-0@MODAL" with MODAL PBE (default) or R2SCAN; or '
    '"package.module:ClassName" naming an ASE calculator class, optionally with keyword '
    'arguments "package.module:ClassName?key=value&key2=value2"'
)

SOFT_NOTE = (
    "Universal ML potentials run soft: in the cases measured (spinel, olivine, layered oxides), "
    "large multivalent migration barriers came out 0.3–0.6 eV lower than DFT-NEB, so barriers "
    "from this tier rank hosts but underestimate absolute values. Energies from different "
    "models (or CHGNet versions) have different references: never mix them in one voltage or "
    "hull."
)

_CHGNET_MODEL_NOTES = {
    "0.3.0": "CHGNet 0.3.0 is trained on MPtrj (PBE/PBE+U with MP2020 energy corrections).",
    "0.2.0": "CHGNet 0.2.0 is an older MPtrj model, kept for backward compatibility.",
    "r2scan": "CHGNet r2scan is transfer-learned on MP r2SCAN data; its energies are on a "
              "different reference from the PBE models.",
}

_SEVENNET_MODEL_NOTES = {
    "7net-0": "SevenNet-0 (11 Jul 2024) is an equivariant potential trained on MPtrj "
              "(PBE/PBE+U).",
    "7net-0_22may2024": "SevenNet-0 of 22 May 2024, the first MPtrj checkpoint, kept for "
                        "backward compatibility.",
    "7net-l3i5": "SevenNet-l3i5 is the lmax = 3 variant of SevenNet-0 (MPtrj, uncorrected "
                 "energies): about 1.4× the parameters and slower.",
    "7net-mf-0": "SevenNet-MF-0 is multi-fidelity (MPtrj PBE/PBE+U and MP r2SCAN); the modal "
                 "picks the fidelity, and PBE and R2SCAN energies have different references.",
}

#: Structures per SevenNet forward pass in ``factory.batch``. Merging graphs made one CPU
#: thread slower (benchmarks/bench_batch.py: 7 images of 56 or 108 atoms merged into one pass
#: took 1.2× the CPU time of 7 single passes; the bigger tensors fall out of cache), so the
#: batch call runs one graph per pass through the one shared model, without ASE calculators.
SEVENNET_GRAPHS_PER_PASS = 1

#: Structures per CHGNet forward pass in ``factory.batch``, for the same reason: 7 images in
#: one pass took 1.4× (56 atoms) and 2.0× (108 atoms) the CPU time of one pass each on one
#: thread (benchmarks/bench_batch.py, "merged" against "batch"), most of it in the backward
#: pass for the forces.
CHGNET_GRAPHS_PER_PASS = 1


def missing(what: str, err: BaseException) -> MissingDependencyError:
    """The error for a model whose package (or torch) cannot be imported."""
    return MissingDependencyError(
        f"{what} needs the optional 'mlip' extra (chgnet and sevenn, with torch), which is not "
        f"installed or cannot be imported ({err}). Install it with: {INSTALL_HINT}."
    )


# -- CHGNet -----------------------------------------------------------------------------------


def chgnet_factory(spec: str, model_name: str | None, threads: int) -> CalculatorFactory:
    """CHGNet ``model_name`` (None: the package's default) as a :class:`CalculatorFactory`."""
    if model_name is not None:
        key = model_name.lower()
        if key not in CHGNET_MODELS:
            raise IonscreenError(
                f"unknown CHGNet model {model_name!r} in spec {spec!r}; the chgnet wheel ships "
                f"{', '.join(CHGNET_MODELS)}. Accepted specs: {ACCEPTED}"
            )
        model_name = key
    try:
        # Import the top-level package first: it is what is missing when the extra is not
        # installed (and ``from chgnet.model import ...`` alone could find a cached submodule).
        import chgnet
        import torch
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator
    except ImportError as err:
        raise missing("The CHGNet calculator", err) from err

    torch.set_num_threads(threads)
    kwargs = {"model_name": model_name} if model_name else {}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = CHGNet.load(verbose=False, **kwargs)
    except (ValueError, OSError, RuntimeError) as err:
        raise CalculationError(f"could not load CHGNet model {model_name or 'default'}: {err}") from err
    version = getattr(model, "version", None) or model_name or "default"
    identity = f"CHGNet {version} (chgnet {getattr(chgnet, '__version__', '?')})"
    note = " ".join(filter(None, [_CHGNET_MODEL_NOTES.get(str(version), ""), SOFT_NOTE]))

    def make() -> Any:
        # CHGNetCalculator prints the device on every construction; keep batch logs quiet.
        with contextlib.redirect_stdout(io.StringIO()):
            return CHGNetCalculator(model=model)

    return CalculatorFactory(spec=spec, identity=identity, tier="MLIP", note=note,
                             threads=threads, _make=make, model=model,
                             batch=chgnet_batch(model))


def chgnet_batch(model: Any, graphs_per_pass: int | None = None,
                 ) -> Callable[[Sequence[Atoms]], tuple[np.ndarray, list[np.ndarray]]]:
    """Energies and forces of many structures through one shared CHGNet, without ASE
    calculators (energy and forces only: no stress).

    Groups of ``graphs_per_pass`` structures (default :data:`CHGNET_GRAPHS_PER_PASS`) go
    through ``CHGNet.predict_graph`` together; CHGNet predicts energy per atom, multiplied here
    by the number of atoms (as CHGNetCalculator does).
    """
    from pymatgen.core import Lattice, Structure

    per_pass = max(1, graphs_per_pass or CHGNET_GRAPHS_PER_PASS)

    def batch(structures: Sequence[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
        structures = list(structures)
        if not structures:
            return np.zeros(0), []
        # Straight from cell, numbers and positions: what AseAtomsAdaptor builds, without the
        # site properties (constraints, charges, magmoms) that the model does not read.
        graphs = [model.graph_converter(Structure(Lattice(a.cell.array, pbc=tuple(a.pbc)),
                                                  a.numbers, a.positions,
                                                  coords_are_cartesian=True))
                  for a in structures]
        preds = []
        for start in range(0, len(graphs), per_pass):
            group = graphs[start:start + per_pass]
            out = model.predict_graph(group, task="ef", batch_size=len(group))
            preds += [out] if isinstance(out, dict) else out
        factor = [len(a) if model.is_intensive else 1 for a in structures]
        energies = np.array([float(p["e"]) * k for p, k in zip(preds, factor)])
        return energies, [np.asarray(p["f"], dtype=float) for p in preds]

    return batch


# -- SevenNet ---------------------------------------------------------------------------------


def _sevennet_name(spec: str, rest: str) -> tuple[str, str | None]:
    """(model, modal) of a ``sevennet[:MODEL[@MODAL]]`` spec, checked against the shipped ones."""
    name, at, modal_text = rest.partition("@")
    key = name.strip().lower() or "7net-0"
    if key.startswith("sevennet-"):
        key = "7net-" + key[len("sevennet-"):]
    if key not in SEVENNET_MODELS:
        raise IonscreenError(
            f"unknown SevenNet model {name.strip()!r} in spec {spec!r}; the sevenn wheel ships "
            f"{', '.join(SEVENNET_MODELS)} (others, e.g. 7net-omni, are downloads, which this "
            f"tier does not do). Accepted specs: {ACCEPTED}"
        )
    modals = SEVENNET_MODELS[key]
    if not modals:
        if at:
            raise IonscreenError(f"SevenNet model {key} has no modals; drop '@{modal_text}' "
                                 f"from spec {spec!r} (only 7net-mf-0 takes @PBE or @R2SCAN)")
        return key, None
    if not at:
        return key, modals[0]
    by_lower = {m.lower(): m for m in modals}
    modal = by_lower.get(modal_text.strip().lower())
    if modal is None:
        raise IonscreenError(f"unknown modal {modal_text.strip()!r} of SevenNet {key} in spec "
                             f"{spec!r}; accepted: {', '.join(modals)} (default {modals[0]})")
    return key, modal


def sevennet_factory(spec: str, rest: str, threads: int) -> CalculatorFactory:
    """SevenNet from ``rest`` (``""``, ``"7net-0"``, ``"7net-mf-0@R2SCAN"``...)."""
    name, modal = _sevennet_name(spec, rest)
    try:
        with warnings.catch_warnings():  # e3nn's torch.jit.script calls are deprecated in torch 2.13
            warnings.simplefilter("ignore", DeprecationWarning)
            import sevenn
            import torch
            from sevenn import util
            from sevenn.calculator import SevenNetCalculator
    except ImportError as err:
        raise missing("The SevenNet calculator", err) from err

    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            checkpoint = util.load_checkpoint(util.pretrained_name_to_path(name))
            model = checkpoint.build_model()
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        raise CalculationError(f"could not load SevenNet model {name}: {err}") from err
    model.eval()
    version = getattr(sevenn, "__version__", "?")
    identity = f"SevenNet {name}" + (f", modal {modal}" if modal else "") + f" (sevenn {version})"
    default = (f" Modal {modal} (the default of {name}; pick one with '@MODAL')."
               if modal and "@" not in spec else "")
    note = " ".join([_SEVENNET_MODEL_NOTES[name] + default, SOFT_NOTE])

    def make() -> Any:
        # The calculator warns on every construction that no GPU tensor-product accelerator is on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SevenNetCalculator(model=model, file_type="model_instance", modal=modal,
                                      device="cpu")

    make()  # puts the shared model in the calculator's (single-graph) mode
    return CalculatorFactory(spec=spec, identity=identity, tier="MLIP", note=note,
                             threads=threads, _make=make, model=model,
                             batch=sevennet_batch(model, modal))


def sevennet_batch(model: Any, modal: str | None, graphs_per_pass: int | None = None,
                   ) -> Callable[[Sequence[Atoms]], tuple[np.ndarray, list[np.ndarray]]]:
    """Energies and forces of many structures with a SevenNet ``model``.

    Groups of ``graphs_per_pass`` structures (default :data:`SEVENNET_GRAPHS_PER_PASS`) are
    merged into one torch_geometric batch and evaluated in one forward pass of a copy of the
    model in sevenn's batch mode (as ``sevenn inference`` does); a group of one goes through
    ``model`` itself in single-graph mode, as SevenNetCalculator does. Energies are the float64
    sums of the model's atomic energies.
    """
    import torch
    from sevenn import _keys as KEY
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    per_pass = max(1, graphs_per_pass or SEVENNET_GRAPHS_PER_PASS)
    batched: list[Any] = []  # the batch-mode copy, made on first use

    def batch_model() -> Any:
        if not batched:
            copy_ = copy.deepcopy(model)
            copy_.set_is_batch_data(True)
            batched.append(copy_.eval())
        return batched[0]

    def graph(atoms: Atoms) -> Any:
        unknown = sorted({s for s, z in zip(atoms.get_chemical_symbols(), atoms.numbers)
                          if int(z) not in model.type_map})
        if unknown:
            raise CalculationError(f"SevenNet does not know element(s) {', '.join(unknown)}")
        data = AtomGraphData.from_numpy_dict(
            unlabeled_atoms_to_graph(atoms, model.cutoff, with_shift=False))
        if modal:
            data[KEY.DATA_MODALITY] = modal
        return data

    def batch(structures: Sequence[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
        structures = list(structures)
        energies: list[float] = []
        forces: list[np.ndarray] = []
        for start in range(0, len(structures), per_pass):
            group = structures[start:start + per_pass]
            graphs = [graph(a) for a in group]
            if len(graphs) == 1:
                out = model(graphs[0])
                index = torch.zeros(len(group[0]), dtype=torch.long)
            else:
                data = Batch.from_data_list(graphs)
                out = batch_model()(data)
                index = data[KEY.BATCH]
            atomic = out[KEY.ATOMIC_ENERGY].detach().to(torch.float64).reshape(-1)
            sums = torch.zeros(len(group), dtype=torch.float64).index_add_(0, index, atomic)
            energies.extend(sums.tolist())
            split = torch.split(out[KEY.PRED_FORCE].detach(), [len(a) for a in group])
            forces.extend(f.numpy().astype(float) for f in split)
        return np.array(energies), forces

    return batch
