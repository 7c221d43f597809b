"""A local OPTIMADE server for the tests: the ``optimade[server]`` reference implementation
(mongomock backend) on 127.0.0.1, loaded with a few of ionscreen's own hosts written as
OPTIMADE entries, never the internet.

The entries (:func:`write_entries`): ordered built-in hosts (rutile, anatase, β-MnO2, TiS2,
MoO3, V2O5, the MgCr2O4 spinel), Dans_Diffraction's Na0.8CoO2 with its partial Na written as
OPTIMADE species with a ``vacancy`` (the way databases such as COD publish disorder), a 2D
entry (``dimension_types`` [1, 1, 0]) and copper metal, which no screen can use. The server's
tests ask for pages of 2 or 3 (``--page-size``), so a query spans several pages.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from ionscreen.structures.io import read_structure
from ionscreen.structures.prototypes import get_prototype

ORDERED = ("TiO2-rutile", "TiO2-anatase", "MnO2-beta", "TiS2", "MoO3", "V2O5", "MgCr2O4")


def _attributes(structure: Any) -> dict[str, Any]:
    from optimade.adapters.structures.pymatgen import from_pymatgen

    s = structure.copy()
    s.remove_oxidation_states()
    attrs = from_pymatgen(s).model_dump()
    attrs["last_modified"] = "2026-01-01T00:00:00"
    return attrs


def _na08coo2() -> dict[str, Any]:
    """Na0.8CoO2 with its Na sites as OPTIMADE species of Na and a vacancy."""
    spec = importlib.util.find_spec("Dans_Diffraction")
    assert spec is not None and spec.submodule_search_locations
    with warnings.catch_warnings():  # the CIF has no formula keys: said, and known
        warnings.simplefilter("ignore")
        s = read_structure(Path(list(spec.submodule_search_locations)[0]) / "Structures"
                           / "Na0.8CoO2_P63mmc.cif")
    s.remove_oxidation_states()
    species: dict[str, dict[str, Any]] = {}
    at_sites = []
    for site in s:
        occ = {el.symbol: round(float(x), 4) for el, x in site.species.items()}
        name = "".join(f"{el}{x:g}" for el, x in sorted(occ.items()))
        if name not in species:
            syms, conc = list(occ), list(occ.values())
            if sum(conc) < 1 - 1e-6:
                syms.append("vacancy")
                conc.append(round(1 - sum(conc), 4))
            species[name] = {"name": name, "chemical_symbols": syms, "concentration": conc}
        at_sites.append(name)
    elements = sorted({el for sp in species.values() for el in sp["chemical_symbols"]
                       if el != "vacancy"})
    return {"lattice_vectors": s.lattice.matrix.tolist(),
            "cartesian_site_positions": s.cart_coords.tolist(), "species": list(species.values()),
            "species_at_sites": at_sites, "nsites": len(s), "dimension_types": [1, 1, 1],
            "nperiodic_dimensions": 3, "elements": elements, "nelements": len(elements),
            "chemical_formula_reduced": "Co5Na4O10", "chemical_formula_descriptive": "Na0.8CoO2",
            "structure_features": ["disorder"], "last_modified": "2026-01-01T00:00:00"}


def entries() -> list[dict[str, Any]]:
    """The test database: ``[{"id", "type", "attributes"}]``."""
    from pymatgen.core import Lattice, Structure

    out = []
    for pid in ORDERED:
        proto = get_prototype(pid)
        host = proto.build(with_ion="Mg") if pid == "MgCr2O4" else proto.build()
        out.append({"id": f"ion-{pid}", "type": "structures", "attributes": _attributes(host)})
    out.append({"id": "ion-Na0.8CoO2", "type": "structures", "attributes": _na08coo2()})
    slab = _attributes(get_prototype("TiS2").build())
    slab.update(dimension_types=[1, 1, 0], nperiodic_dimensions=2)
    out.append({"id": "ion-TiS2-monolayer", "type": "structures", "attributes": slab})
    cu = Structure(Lattice.cubic(3.615), ["Cu"] * 4,
                   [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    out.append({"id": "ion-Cu", "type": "structures", "attributes": _attributes(cu)})
    return out


def as_entry(entry_id: str, structure: Any) -> dict[str, Any]:
    """A pymatgen Structure as an OPTIMADE structure entry."""
    return {"id": entry_id, "type": "structures", "attributes": _attributes(structure)}


def write_entries(path: Path, data: list[dict[str, Any]] | None = None) -> Path:
    """``data`` (default: the test database, :func:`entries`) as an OPTIMADE JSON-lines file
    (the server loads it at start)."""
    lines = [json.dumps({"x-optimade": {"meta": {"api_version": "1.2.0"}}})]
    lines += [json.dumps(e) for e in (entries() if data is None else data)]
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OptimadeServer:
    """``uvicorn optimade.server.main:app`` on 127.0.0.1 with :func:`entries` (or ``data``,
    e.g. a benchmark's thousand hosts); ``start()``,
    ``stop()`` (killed: a server that goes away) and ``requests()`` (its access log lines for
    the structures endpoint)."""

    def __init__(self, folder: Path, port: int | None = None,
                 data: list[dict[str, Any]] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.jsonl = write_entries(self.folder / "entries.jsonl", data)
        self.config = self.folder / "optimade_config.json"
        self.config.write_text(json.dumps({
            "database_backend": "mongomock", "insert_test_data": False,
            "insert_from_jsonl": str(self.jsonl), "base_url": self.url,
            "debug": False}))
        self.log = self.folder / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> OptimadeServer:
        env = {**os.environ, "OPTIMADE_CONFIG_FILE": str(self.config)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "optimade.server.main:app", "--host", "127.0.0.1",
             "--port", str(self.port)], env=env, stdout=self.log.open("a"),
            stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the OPTIMADE server stopped: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/info", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the OPTIMADE server did not answer in {timeout} s: "
                           f"{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def requests(self) -> list[str]:
        """The access-log lines of requests to the structures endpoint so far."""
        return [ln for ln in self.log.read_text().splitlines() if "GET /v1/structures" in ln]

    def __enter__(self) -> OptimadeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
