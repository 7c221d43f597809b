"""OPTIMADE as a candidate source (issue 16.1), end to end against a local OPTIMADE server
(the ``optimade[server]`` reference implementation on 127.0.0.1, loaded with ionscreen's own
hosts: :mod:`tests.optimade_server`), never the internet.

What a user relies on: every candidate names its provider, entry id and URL; the pages are
stored as they arrive, so a repeated screen fetches nothing and a fetch cut by a server that
goes away resumes where it stopped; a bad filter fails with the provider's own words; an entry
the pipeline cannot use fails alone, with its reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import read_csv  # noqa: E402
from optimade_server import OptimadeServer, entries  # noqa: E402

from ionscreen.structures.candidates import from_optimade  # noqa: E402
from ionscreen.structures.optimade import (  # noqa: E402
    OptimadeError,
    entry_structure,
    resolve_provider,
    slim_entry,
)
from ionscreen.workflows.local import LocalEngine  # noqa: E402
from ionscreen.workflows.optimade_fetch import fetch_summary, optimade_page_step  # noqa: E402
from ionscreen.workflows.plan import ScreenSpec  # noqa: E402
from ionscreen.workflows.screen import collect_records  # noqa: E402
from ionscreen.workflows.store_sqlite import SQLiteStore  # noqa: E402

N_ENTRIES = len(entries())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = OptimadeServer(tmp_path_factory.mktemp("optimade")).start()
    yield srv
    srv.stop()


def _ionscreen(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ionscreen.workflows", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200"})


def _page_offsets(lines: list[str]) -> list[int]:
    """The page_offset of each structures request in access-log lines (0: a first page)."""
    out = []
    for ln in lines:
        url = ln.split('"GET ', 1)[1].split(" HTTP/", 1)[0]
        out.append(int(parse_qs(urlparse(url).query).get("page_offset", ["0"])[0]))
    return out


# --------------------------------------------------------------------------- no server needed

def test_provider_short_names_are_pymatgens_and_a_url_is_its_own_name():
    assert resolve_provider("mp") == ("mp", "https://optimade.materialsproject.org")
    assert resolve_provider("OQMD")[1].startswith("https://oqmd.org/optimade")
    assert resolve_provider("alexandria")[1] == "https://alexandria.icams.rub.de/pbe"
    assert resolve_provider("cod")[1] == "https://www.crystallography.net/cod/optimade"
    assert resolve_provider("http://127.0.0.1:5000/") == ("127.0.0.1:5000", "http://127.0.0.1:5000")
    with pytest.raises(OptimadeError, match=r"unknown OPTIMADE provider 'materialsproject'.*\bmp\b"):
        resolve_provider("materialsproject")


def test_an_entry_the_pipeline_cannot_use_says_why():
    by_id = {e["id"]: e for e in entries()}
    with pytest.raises(OptimadeError, match=r"periodic in 2 dimension\(s\).*bulk"):
        entry_structure(by_id["ion-TiS2-monolayer"])
    bare = {"id": "x", "attributes": {"species_at_sites": ["Ti"]}}
    with pytest.raises(OptimadeError, match="has no lattice_vectors, cartesian_site_positions"):
        entry_structure(bare)
    odd = json.loads(json.dumps(by_id["ion-TiS2"]))
    odd["attributes"]["species"][0]["chemical_symbols"] = ["Xx"]
    with pytest.raises(OptimadeError, match="species that are not elements: Xx"):
        entry_structure(odd)
    # a disordered entry keeps its partial occupancy (the vacancy lowers the Na sites) ...
    na = entry_structure(slim_entry(by_id["ion-Na0.8CoO2"]))
    assert not na.is_ordered
    assert na.composition["Na"] == pytest.approx(0.8 * na.composition["Co"])
    # ... fails without --order, naming it, and gives its orderings with it
    with pytest.raises(Exception, match="--order N"):
        from_optimade(slim_entry(by_id["ion-Na0.8CoO2"]), "p", "http://p", "Na")
    cands = from_optimade(slim_entry(by_id["ion-Na0.8CoO2"]), "p", "http://p", "Na", order=2)
    assert [c.source for c in cands] == ["optimade:p ion-Na0.8CoO2 ordering 1/2",
                                         "optimade:p ion-Na0.8CoO2 ordering 2/2"]
    assert all(c.structure.is_ordered and c.provenance["ordering"] for c in cands)


# --------------------------------------------------------------------------- against the server

def test_screen_from_a_local_server_provenance_errors_and_no_refetch(server, tmp_path):
    """`ionscreen screen --optimade URL --filter ...`: 10 entries in pages of 3; every row
    names provider, id and URL; the 2D entry and copper fail alone with their reasons;
    Na0.8CoO2 gives its two orderings, flagged; the same command again fetches nothing."""
    before = len(server.requests())
    args = ("screen", "--optimade", server.url, "--filter", "nelements<=3", "--page-size", "3",
            "--hosts", "none", "--ions", "Mg", "Na", "--order", "2", "--neb-top", "1",
            "--out", "run")
    r = _ionscreen(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    reqs = server.requests()[before:]
    assert _page_offsets(reqs) == [0, 3, 6, 9]  # 4 pages of at most 3, each once
    assert f"OPTIMADE 127.0.0.1:{server.port}: {N_ENTRIES} structures in 4 page(s) of " \
           f"{N_ENTRIES} matching (complete)" in r.stdout.replace("\n", "")

    store = SQLiteStore.open_readonly(tmp_path / "run" / "ionscreen.sqlite")
    try:
        records, failures = collect_records(store)
        pages = store.results("optimade")
    finally:
        store.close()
    assert len(pages) == 4
    name = f"127.0.0.1:{server.port}"
    for rec in records:
        prov = rec.structure is not None and rec.source.startswith(f"optimade:{name} ion-")
        assert prov, rec.source
    ids = {r.source.split()[1] for r in records}
    assert ids == {e["id"] for e in entries()} - {"ion-TiS2-monolayer", "ion-Cu"}
    ordered = [r for r in records if "Na0.8CoO2" in r.source]
    assert len(ordered) == 4  # 2 orderings x 2 ions
    assert all("ordered" in {n.code for n in r.notes} for r in ordered)
    bad = {(f.source.split()[1], f.working_ion): f.failure.reason for f in failures}
    assert set(bad) == {("ion-TiS2-monolayer", "Mg"), ("ion-TiS2-monolayer", "Na"),
                        ("ion-Cu", "Mg"), ("ion-Cu", "Na")}
    assert "periodic in 2 dimension(s)" in bad[("ion-TiS2-monolayer", "Mg")]
    assert "no anion" in bad[("ion-Cu", "Mg")]

    rows = {row["source"]: row for row in read_csv(tmp_path / "run" / "ranked_Na.csv")}
    assert f"optimade:{name} ion-TiO2-anatase" in rows
    na = [row for src, row in rows.items() if "ion-Na0.8CoO2 ordering" in src]
    assert len(na) == 2 and all("ordered" in row["flags"].split(";") for row in na)
    js = json.loads((tmp_path / "run" / "ranked_Mg.json").read_text())
    hosts = js["rows"]
    spinel = [h for h in hosts if "ion-MgCr2O4" in json.dumps(h)]
    assert spinel, "the spinel from the server is in the Mg list"
    # the candidate keeps the provider, its base URL, the entry id and its URL
    store = SQLiteStore.open_readonly(tmp_path / "run" / "ionscreen.sqlite")
    try:
        cand = next(rec.input["candidate"] for rec in store.results("bvse")
                    if "ion-MgCr2O4" in rec.input["candidate"]["source"])
    finally:
        store.close()
    assert cand["provenance"]["optimade"] == {
        "provider": name, "base_url": server.url, "id": "ion-MgCr2O4",
        "url": f"{server.url}/v1/structures/ion-MgCr2O4", "last_modified": "2026-01-01T00:00:00"}
    assert cand["citation"] == f"OPTIMADE {name}, entry ion-MgCr2O4"

    n = len(server.requests())
    again = _ionscreen(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(server.requests()) == n, "a repeated screen fetched pages again"
    assert "0 done, 0 failed in this run" in again.stdout.replace("\n", "")


def test_bad_filter_fails_with_the_providers_own_message(server, tmp_path):
    r = _ionscreen("screen", "--optimade", server.url, "--filter", "nelements<=3 AND foo=1",
                   "--hosts", "none", "--ions", "Mg", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    text = " ".join(r.stdout.split())
    assert "the provider refused the query (HTTP 400)" in text
    assert "'foo' is not a known or searchable quantity" in text  # the server's own words
    assert "change --filter" in text
    rows = read_csv(tmp_path / "run" / "failures.csv")
    assert [row["step"] for row in rows] == ["optimade"]
    assert "'foo' is not a known or searchable quantity" in rows[0]["reason"]
    # a typo in a provider's short name stops the command before any job
    r = _ionscreen("screen", "--optimade", "materialsproject", "--hosts", "none", "--out", "x",
                   cwd=tmp_path)
    assert r.returncode == 2 and "unknown OPTIMADE provider 'materialsproject'" in r.stderr
    assert not (tmp_path / "x" / "ionscreen.sqlite").exists()


def test_server_going_away_mid_fetch_keeps_the_pages_and_resumes(tmp_path):
    """Pages of 2: the server is killed once the second page is stored; the third page fails
    with the reason, the four structures fetched are screened; with the server back, the same
    screen from the command line fetches pages 3-5 only (never 1 and 2 again) and screens the
    rest."""
    srv = OptimadeServer(tmp_path / "srv").start()
    try:
        spec = ScreenSpec(ions=["Mg"], hosts="none", optimade=[srv.url], optimade_page_size=2,
                          neb_top=0)
        stages = spec.stages()
        fetch = stages[0]
        assert fetch.name == "optimade"
        pages = []

        def follow_then_kill(doc, result):
            pages.append(doc["page"])
            if doc["page"] == 1:
                srv.stop()  # the server goes away with the third page still to come
            return fetch.follow(doc, result)

        cut = [dataclasses.replace(fetch, follow=follow_then_kill), *stages[1:]]
        (tmp_path / "run").mkdir()
        path = tmp_path / "run" / "ionscreen.sqlite"
        engine = LocalEngine(path, progress=False)
        engine.run_stages(cut)
        store = engine.store
        assert pages == [0, 1]
        failed = store.results("optimade", state="failed")
        assert len(failed) == 1 and failed[0].input["page"] == 2
        assert "could not be reached" in failed[0].reason and "resume" in failed[0].reason
        assert "stopped: " in fetch_summary(store.results("optimade", state=None))[0]
        got = {rec.input["optimade"]["entry"]["id"] for rec in store.results("candidate", None)}
        assert len(got) == 4  # what was fetched before the server went away is screened
        assert len(store.results("bvse")) >= 3
        store.close()

        srv.start()  # the server is back: the same screen from the command line resumes
        before = len(srv.requests())
        r = _ionscreen("screen", "--optimade", srv.url, "--page-size", "2", "--hosts", "none",
                       "--ions", "Mg", "--neb-top", "0", "--out", "run", cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-3000:]
        assert _page_offsets(srv.requests()[before:]) == [4, 6, 8]
        assert (f"OPTIMADE 127.0.0.1:{srv.port}: {N_ENTRIES} structures in 5 page(s) of "
                f"{N_ENTRIES} matching (complete)") in r.stdout.replace("\n", "")
        store = SQLiteStore.open_readonly(path)
        assert len(store.results("optimade")) == 5
        assert not store.results("optimade", state="failed")
        got = {rec.input["optimade"]["entry"]["id"] for rec in store.results("candidate", None)}
        assert got == {e["id"] for e in entries()}
        store.close()
    finally:
        srv.stop()


def test_max_stops_the_fetch_and_a_page_step_reads_one_page(server, tmp_path):
    spec = ScreenSpec(ions=["Mg"], hosts="none", optimade=[server.url], optimade_page_size=2,
                      optimade_max=3, neb_top=0)
    engine = LocalEngine(tmp_path / "s.sqlite", progress=False)
    engine.run_stages(spec.stages())
    store = engine.store
    assert len(store.results("optimade")) == 2  # 2 + 2 >= 3: no third page
    assert len(store.results("candidate", None)) == 3  # the cap, not the 4 fetched
    assert "stopped at --max" in fetch_summary(store.results("optimade", None))[0]
    store.close()
    page = optimade_page_step(spec.optimade_pages()[0])
    assert len(page["entries"]) == 2 and page["data_returned"] == N_ENTRIES
    assert "page_offset=2" in page["next"]
    assert set(page["entries"][0]["attributes"]) <= {
        "lattice_vectors", "cartesian_site_positions", "species", "species_at_sites",
        "dimension_types", "nperiodic_dimensions", "nsites", "chemical_formula_reduced",
        "chemical_formula_descriptive", "structure_features", "last_modified"}


def test_candidates_command_fetches_once_into_its_store(server, tmp_path):
    args = ("candidates", "--optimade", server.url, "--filter", 'elements HAS "O"',
            "--hosts", "none", "--ions", "Mg", "--out", "c.json")
    r = _ionscreen(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "c.json").read_text())
    srcs = sorted(c["source"] for c in doc["candidates"])
    assert srcs and all(s.startswith(f"optimade:127.0.0.1:{server.port} ion-") for s in srcs)
    assert any("Na0.8CoO2" in f["path"] and "--order N" in f["reason"] for f in doc["failures"])
    n = len(server.requests())
    assert _ionscreen(*args, cwd=tmp_path).returncode == 0
    assert len(server.requests()) == n
    assert (tmp_path / "c.sqlite").exists()
    # another filter into the same store: only its own entries are written
    r = _ionscreen("candidates", "--optimade", server.url, "--filter", "nelements=2",
                   "--hosts", "none", "--ions", "Mg", "--out", "c.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "c.json").read_text())
    ids = sorted(c["source"].split()[1] for c in doc["candidates"])
    assert ids == ["ion-MnO2-beta", "ion-MoO3", "ion-TiO2-anatase", "ion-TiO2-rutile",
                   "ion-TiS2", "ion-V2O5"]
    assert [f["path"].split()[1] for f in doc["failures"]] == ["ion-TiS2-monolayer"]


def test_a_larger_max_resumes_the_fetch_in_the_same_folder(server, tmp_path):
    """--max is the one setting a folder's screen may change: 3 then 7 structures in pages of 2
    fetch pages 1-2, then pages 3-4 only, and screen the 7; the same database named twice
    (its URL and its URL with a slash) is fetched once."""
    base = ("screen", "--optimade", server.url, f"{server.url}/", "--page-size", "2",
            "--hosts", "none", "--ions", "Mg", "--neb-top", "0", "--out", "run")
    before = len(server.requests())
    r = _ionscreen(*base, "--max", "3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _page_offsets(server.requests()[before:]) == [0, 2]
    mid = len(server.requests())
    r = _ionscreen(*base, "--max", "7", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _page_offsets(server.requests()[mid:]) == [4, 6]
    store = SQLiteStore.open_readonly(tmp_path / "run" / "ionscreen.sqlite")
    try:
        got = {rec.input["optimade"]["entry"]["id"] for rec in store.results("candidate", None)}
    finally:
        store.close()
    assert len(got) == 7


def test_a_provider_that_keeps_answering_429_fails_the_page_not_hangs(tmp_path):
    """optimade 1.5's client resets its attempt count at each retry of an HTTP 429, so a
    provider that always answers "Too Many Requests" held the fetch forever; the page now
    fails after MAX_ATTEMPTS tries with a reason that says to run again later."""
    import http.server
    import threading

    from ionscreen.workflows.optimade_fetch import MAX_ATTEMPTS

    hits: list[str] = []

    class TooMany(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server name)
            hits.append(self.path)
            if len(hits) > 10:  # the old client's endless loop: stop it here, fail below
                self.send_response(500)
                self.end_headers()
                return
            self.send_response(429)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors": [{"title": "Too Many Requests"}]}')

        def log_message(self, *args):  # quiet
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TooMany)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        spec = ScreenSpec(ions=["Mg"], hosts="none", optimade=[url], neb_top=0)
        engine = LocalEngine(tmp_path / "s.sqlite", progress=False)
        engine.run_stages(spec.stages())
        failed = engine.store.results("optimade", state="failed")
        engine.store.close()
    finally:
        httpd.shutdown()
    assert len(hits) == MAX_ATTEMPTS, hits
    assert len(failed) == 1 and "HTTP 429" in failed[0].reason
    assert "run again later" in failed[0].reason
