"""ionscreen: high-throughput screening of battery electrode hosts for multivalent and
molecular working ions (Mg2+, Ca2+, Zn2+, Al3+, NH4+; Sr2+, Ba2+; Li+ and Na+ as references).

The layers are sub-packages: :mod:`ionscreen.kernels` (numba), :mod:`ionscreen.structures`
(hosts, ions, candidates), :mod:`ionscreen.screening` (BVSE, NEB, records, ranking, exports)
and :mod:`ionscreen.workflows` (engines, stores, CLI). The names below are a façade for
scripts and notebooks; they are imported on first use, so ``import ionscreen`` stays cheap::

    import ionscreen as isc
    res = isc.compute_landscape(structure, "Mg")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: façade name -> module that defines it (imported lazily, PEP 562)
_FACADE = {
    "IonscreenError": "ionscreen.errors",
    "WorkingIon": "ionscreen.structures.ions",
    "get_working_ion": "ionscreen.structures.ions",
    "read_structure": "ionscreen.structures.io",
    "load_host": "ionscreen.structures.io",
    "make_candidate": "ionscreen.structures.candidates",
    "Candidate": "ionscreen.structures.candidates",
    "get_prototype": "ionscreen.structures.prototypes",
    "BVSESettings": "ionscreen.screening.bvse",
    "compute_landscape": "ionscreen.screening.bvse",
    "prepare_host": "ionscreen.screening.bvse",
    "NEBSettings": "ionscreen.screening.neb",
    "run_neb": "ionscreen.screening.neb",
    "insertion_voltage": "ionscreen.screening.insertion",
    "HostRecord": "ionscreen.screening.records",
    "Failure": "ionscreen.screening.records",
    "split_failed": "ionscreen.screening.records",
    "capacity": "ionscreen.screening.descriptors",
    "RankedHost": "ionscreen.screening.rank",
    "rank": "ionscreen.screening.rank",
    "rank_all": "ionscreen.screening.rank",
    "export_run": "ionscreen.screening.export",
}

__all__ = ["__version__", *sorted(_FACADE)]


def __getattr__(name: str) -> Any:
    module = _FACADE.get(name)
    if module is None:
        raise AttributeError(f"module 'ionscreen' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
