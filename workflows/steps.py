"""The steps of a screen: plain functions from a JSON document to a JSON document.

Engines (local, FireWorks) only decide where and when these run. Each input document holds
everything its step needs (the candidate with its structure, the settings), so a step can run
in another process, on another MPI rank or on a cluster node.

* ``bvse``: candidate + BVSE settings -> BVSE landscape (barriers, sites, hops with grid paths)
* ``neb``: candidate + its BVSE result + NEB settings -> NEB report (BVFF by default)
* ``insertion``: candidate (discharged) + ML calculator -> voltage and volume change

``descriptor_row`` joins the results of one candidate into the row that ranking and exports use.
"""

from __future__ import annotations

from typing import Any

from pymatgen.core import Structure

STEP_VERSIONS = {"bvse": "1", "neb": "1", "insertion": "1"}



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
    rep = run_neb(cand.structure, cand.working_ion, doc.get("calculator", "bvff"),
                  settings=NEBSettings(**doc.get("settings", {})), bvse=bvse)
    return {"summary": rep.summary().as_dict(), "report": rep.to_dict()}


def insertion_step(doc: dict[str, Any]) -> dict[str, Any]:
    """``{"candidate" (discharged), "calculator": "chgnet"}`` -> voltage and volume change."""
    from ionscreen.screening.insertion import insertion_voltage
    from ionscreen.structures.candidates import Candidate
    from ionscreen.structures.errors import StructureValidationError
    from ionscreen.structures.ions import get_working_ion

    cand = Candidate.from_dict(doc["candidate"])
    if cand.state != "discharged":
        raise StructureValidationError(
            f"{cand.formula}: voltage needs the discharged host (ion on its sites); this "
            f"candidate is {cand.state}")
    inserted = cand.structure
    # the one rule for which atoms are the ion: role tags keep a polymer's node Zn in ZnZn(L)
    empty = get_working_ion(cand.working_ion).remove_from(inserted)
    res = insertion_voltage(empty, inserted, cand.working_ion, doc.get("calculator", "chgnet"))
    return res.to_dict()


def descriptor_row(candidate: dict[str, Any], job_id: str, bvse: dict[str, Any] | None,
                   neb: dict[str, Any] | None = None, insertion: dict[str, Any] | None = None,
                   failure: dict[str, Any] | None = None) -> dict[str, Any]:
    """One candidate × ion as ranking and exports see it (JSON-able, no NaN)."""
    st = Structure.from_dict(candidate["structure"])
    notes: list[str] = []
    if candidate.get("capacity_note"):
        notes.append(candidate["capacity_note"])
    row: dict[str, Any] = {
        "job_id": job_id, "candidate_id": candidate["id"], "formula": candidate["formula"],
        "working_ion": candidate["working_ion"], "source": candidate["source"],
        "citation": candidate.get("citation", ""), "state": candidate.get("state"),
        "status": "failed" if failure else "done",
        "error": failure.get("error") if failure else None,
        "reason": failure.get("reason") if failure else None,
        "bvse": bvse["summary"] if bvse else None,
        "neb": neb["summary"] if neb else None,
        "capacity_mAh_g": candidate.get("capacity_mAh_g"),
        "capacity_mAh_cm3": candidate.get("capacity_mAh_cm3"),
        "density_g_cm3": round(float(st.density), 4),
        "voltage_V": insertion.get("voltage_V") if insertion else None,
        "volume_change": insertion.get("volume_change") if insertion else None,
        "ml_model": insertion.get("model") if insertion else None,
        "structure": candidate["structure"],
        "notes": notes,
    }
    if bvse and bvse["summary"].get("approximate"):
        notes.append(f"approximate ion model: {bvse['summary']['model']}")
    if neb and neb["summary"].get("approximate") and neb["summary"]["converged"]:
        notes.append(f"approximate NEB: {neb['summary']['calculator']}")
    if insertion:
        notes += [f"{insertion.get('model')}: {n}" for n in insertion.get("notes", [])
                  if insertion.get("volume_warning") and "volume" in n.lower()][:1]
    return row
