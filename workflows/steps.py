"""The steps of a screen: plain functions from a JSON document to a JSON document.

Engines (local, FireWorks) only decide where and when these run. Each input document holds
everything its step needs (the candidate with its structure, the settings), so a step can run
in another process, on another MPI rank or on a cluster node. Each step is a thin adapter:
``Candidate.from_dict`` -> the screening function -> its result's document.

* ``bvse``: candidate + BVSE settings -> BVSE landscape (summary + result with hops and paths)
* ``neb``: candidate + its BVSE result + NEB settings -> NEB report (BVFF by default)
* ``insertion``: candidate (discharged) + ML calculator -> voltage and volume change
* ``neb_file``: a structure file + ion + NEB settings -> NEB report (``ionscreen neb`` batches)

Their names and versions are in :data:`ionscreen.workflows.plan.STEPS`.

:func:`ionscreen.workflows.screen.collect_records` joins the results of one candidate into
its :class:`~ionscreen.screening.records.HostRecord`.
"""

from __future__ import annotations

import os
from typing import Any


def bvse_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"candidate": Candidate dict, "settings": BVSESettings fields}`` -> BVSE result document."""
    from ionscreen.screening.bvse import BVSESettings, compute_landscape
    from ionscreen.structures.candidates import Candidate

    cand = Candidate.from_dict(doc["candidate"])
    settings = BVSESettings(**doc.get("settings", {}))
    res = compute_landscape(cand.structure, cand.working_ion, settings=settings, keep_grid=False)
    full = res.to_dict()
    full.pop("structure", None)
    return {"summary": res.summary().as_dict(), "result": full}


def bvse_for_neb(result: dict[str, Any]) -> dict[str, Any]:
    """The BVSE result document as a NEB job's input: without wall times, so that the NEB job id
    depends on the physics only (the same in every store and engine)."""
    return {**result, "timings": {}}


def neb_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"candidate", "bvse": BVSE result document, "settings": NEBSettings fields,
    "calculator": "bvff"}`` -> NEB report document with a short summary."""
    from ionscreen.screening.bvse import BVSEResult
    from ionscreen.screening.neb import NEBSettings, run_neb
    from ionscreen.structures.candidates import Candidate

    cand = Candidate.from_dict(doc["candidate"])
    bvse = BVSEResult.from_dict(doc["bvse"])
    calc = doc.get("calculator", "bvff")
    rep = run_neb(cand.structure, cand.working_ion, calc,
                  settings=NEBSettings.for_calculator(calc, **doc.get("settings", {})), bvse=bvse)
    return {"summary": rep.summary().as_dict(), "report": rep.to_dict()}


def neb_file_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"path", "ion", "calculator", "hop", "settings": NEBSettings fields, "bvse_settings":
    BVSESettings fields of the seed, "oxi"}`` -> the NEB report document of the host in that
    file (one job of an ``ionscreen neb`` batch)."""
    from ionscreen.screening.bvse import BVSESettings
    from ionscreen.screening.neb import NEBSettings, run_neb
    from ionscreen.structures.io import read_structure

    seed = doc.get("bvse_settings")
    calc = doc.get("calculator", "bvff")
    rep = run_neb(read_structure(doc["path"]), doc["ion"], calc,
                  doc.get("hop"), NEBSettings.for_calculator(calc, **doc.get("settings", {})),
                  bvse_settings=BVSESettings.from_dict(seed) if seed is not None else None,
                  oxidation_states=doc.get("oxi"))
    return rep.to_dict()


def ml_threads() -> int:
    """Torch threads of an ML job in this process: ``OMP_NUM_THREADS`` when set (a pool
    worker or an MPI rank sets its share), else every CPU the process may use. The serial
    engine thus runs the ML voltage, its long stage, on all cores: two threads make a CHGNet
    call on a 56-atom cell 1.6-2x faster on 2 cores (0.29 s against 0.45-0.61 s)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def insertion_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"candidate", "calculator": "chgnet"[, "sites": [[frac, energy], ...]]}`` -> voltage and
    volume change (an empty host's ions go onto its BVSE ``sites``)."""
    from ionscreen.screening.insertion import (
        empty_host_cell,
        hosts_for_voltage,
        insertion_voltage,
        insertion_voltage_at_sites,
    )
    from ionscreen.screening.mlip import calculator_factory
    from ionscreen.structures.candidates import Candidate

    cand = Candidate.from_dict(doc["candidate"])
    calc = calculator_factory(doc.get("calculator", "chgnet"), threads=ml_threads())
    if cand.state == "discharged":
        empty, inserted = hosts_for_voltage(cand)
        return insertion_voltage(empty, inserted, cand.working_ion, calc).as_dict()
    empty, sites, n = empty_host_cell(cand, [(f, e) for f, e in doc.get("sites") or ()])
    return insertion_voltage_at_sites(empty, cand.working_ion, sites, n, calc).as_dict()
