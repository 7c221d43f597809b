"""The bad-input corpus (issue 15, point 4): every file of ``tests/corpus.py`` through
``ionscreen bvse`` one by one, and the whole folder through one ``ionscreen screen``.

Counts when written (as root, so the unreadable-file case is skipped): 279 files in 24
categories, 14 good, 201 bad, 64 odd (either outcome is right). ``bvse`` computed 31 (the 14
good and 17 odd) and refused 248, each with one line, exit 2; 0 tracebacks, 0 hangs, no
NaN/inf in any JSON. The screen found 269 of them (the folder scan skips 6 wrong extensions, 2
directories named like files and the links to a directory and to /dev/null): 30 ranked, 239
failure rows (161 StructureReadError, 62 StructureValidationError, 12 OxidationStateError, 4
MissingParameterError); 0 tracebacks. Categories: truncated CIF 60, truncated POSCAR 40,
NaN/inf 22, binary garbage 14, empty 13, unknown element 13, zero/negative volume 12, good 11,
CIF structure 9, oxidation states 9, partial occupancy 9, pure metal 9, wrong content 9,
single atom 7, symlink 7, noble gas 6, organic 6, wrong extension 6, overlapping atoms 5,
duplicated sites 3, huge cell 3, thousands of atoms 2, no anion 2, directory named like a
file 2. About 3 minutes on 2 busy cores.

What the corpus found, fixed in the package: a NaN lattice crashed the interpreter (spglib
segfault while guessing oxidation states before validation: ``prepare_host`` validates
first); a 1e308 or 1e6 Å cell raised OverflowError / MemoryError tracebacks (lattice vectors
over 1000 Å refused); coordinates of 1e300 were wrapped into a nonsense structure and
computed (fractional coordinates beyond ±1000 refused); a 200 Å cell of 6 atoms needed a 19 GB
grid (more than 1000 Å^3 per atom refused); Ti99+ or Ti1e308+ from a CIF reached the kernels
(a ValueError traceback; states outside -4..+8 refused); a POSCAR without element names was
read as H/He; CIF symbols such as Va or Uuo were read as V or U from the label; a 4,608-atom
supercell took 11 GB in the symmetry classification (now chunked: 0.3 GB, 68 s); a broken symbolic link in
a folder was skipped silently; long CLI errors were wrapped over several lines, and
``bvse DIR`` gave click's four-line usage error.
"""

from __future__ import annotations

import collections
import csv
import html
import json
import math
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from corpus import Entry, build_corpus

from ionscreen.structures.candidates import iter_structure_files
from ionscreen.workflows.cli import app

PER_FILE_SECONDS = 120  # a hang, not a slow file: the largest computed cell takes ~20 s
# JSON/JS spellings of non-finite numbers and the largest double (messages may say "nan")
# A number, not a run of hex digits in an id: "…8ec91e308f…" is not 1e308.
NON_FINITE = re.compile(r"\bNaN\b|\bInfinity\b|(?<![\w.])-?1(?:\.797693134862315\d*)?e\+?308\b")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Entry]:
    return build_corpus(tmp_path_factory.mktemp("corpus") / "files")


@contextmanager
def deadline(seconds: int, what: str):  # type: ignore[no-untyped-def]
    """Fail (not hang) when ``what`` runs longer than ``seconds`` (SIGALRM, main thread)."""

    def on_alarm(signum, frame):  # type: ignore[no-untyped-def]
        raise TimeoutError(f"{what}: still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _non_finite(text: str) -> list[str]:
    return sorted(set(NON_FINITE.findall(text)))


def _check_error(entry: Entry, code: int, err: str) -> list[str]:
    """A refused file: exit 2 and one line ``error: ...`` that names the problem."""
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if code != 2:
        problems.append(f"exit {code}")
    if len(lines) != 1 or not lines[0].startswith(("error:", "Error:")) or len(lines[0]) < 40:
        problems.append(f"not a one-line error: {err!r:.300}")
    return [f"{entry.name} ({entry.category}): {p}" for p in problems]


def _check_bvse(entry: Entry, code: int, out: str, err: str, json_path: Path) -> list[str]:
    if "Traceback" in out + err:
        return [f"{entry.name} ({entry.category}): traceback\n{out}{err}"]
    if code == 0:
        if entry.expect == "bad":
            return [f"{entry.name} ({entry.category}): computed, expected an error"]
        text = json_path.read_text() if json_path.exists() else ""
        bad = _non_finite(text)
        return ([f"{entry.name}: no JSON written"] if not text else []) + (
            [f"{entry.name}: non-finite numbers in the JSON: {bad}"] if bad else [])
    if entry.expect == "good":
        return [f"{entry.name} ({entry.category}): failed: {err.strip()[:300]}"]
    return _check_error(entry, code, err)


def test_corpus_is_large_and_varied(corpus):
    kinds = collections.Counter(e.expect for e in corpus)
    assert len(corpus) >= 200 and kinds["good"] >= 10 and kinds["bad"] >= 150
    assert len({e.category for e in corpus}) >= 20


def test_bvse_on_every_file(corpus, tmp_path):
    """In process (CliRunner) for speed: 0 tracebacks, 0 hangs, good files computed with
    finite JSON, bad ones refused with a one-line error."""
    runner = CliRunner()
    problems: list[str] = []
    outcome: collections.Counter[tuple[str, str]] = collections.Counter()
    for i, entry in enumerate(corpus):
        json_path = tmp_path / f"{i}.json"
        t0 = time.perf_counter()
        with deadline(PER_FILE_SECONDS, entry.name):
            res = runner.invoke(app, ["bvse", str(entry.path), "--ion", "Mg", "--resolution", "0.5",
                                      "--json", str(json_path)])
        if res.exception is not None and not isinstance(res.exception, SystemExit):
            problems.append(f"{entry.name}: {type(res.exception).__name__}: {res.exception}")
            continue
        problems += _check_bvse(entry, res.exit_code, res.stdout, res.stderr, json_path)
        outcome[(entry.category, "computed" if res.exit_code == 0 else "refused")] += 1
        assert time.perf_counter() - t0 < PER_FILE_SECONDS
    print("\n".join(f"{c}: {o} {n}" for (c, o), n in sorted(outcome.items())))
    assert not problems, "\n".join(problems)


SAMPLE = ("good_TiO2-rutile.cif", "POSCAR_good_rutile", "cell_a_nan.cif", "garbage.vasp",
          "link_dangling.cif", "dir_named.cif", "metal_Cu.cif", "no_species_line.vasp")


def test_bvse_entry_point_sample(corpus, tmp_path):
    """The real entry point (a subprocess each, with a timeout) on a sample of the corpus,
    including the NaN lattice that used to kill the interpreter."""
    by_name = {e.name: e for e in corpus}
    problems: list[str] = []
    procs = []
    for i, name in enumerate(SAMPLE):
        json_path = tmp_path / f"{i}.json"
        cmd = [sys.executable, "-m", "ionscreen.workflows.cli", "bvse", str(by_name[name].path),
               "--ion", "Mg", "--resolution", "0.5", "--json", str(json_path)]
        procs.append((by_name[name], json_path, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        if len(procs) % 2 == 0 or i == len(SAMPLE) - 1:  # two at a time: two cores
            for entry, jp, p in procs[-2:]:
                out, err = p.communicate(timeout=PER_FILE_SECONDS)
                problems += _check_bvse(entry, p.returncode, out, err, jp)
    assert not problems, "\n".join(problems)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_screen_of_the_whole_folder(corpus, tmp_path, monkeypatch):
    """One screen of the folder: every file it finds is ranked or a failure row with a reason
    (every good one ranked, every bad one failed), no tracebacks, no NaN/inf in the exports."""
    folder = corpus[0].path.parent
    monkeypatch.chdir(tmp_path)
    with deadline(600, "screen of the corpus"):
        res = CliRunner().invoke(app, ["screen", "--hosts", "none", "--files", str(folder),
                                       "--ions", "Mg", "--neb-top", "0", "--resolution", "0.5",
                                       "--out", "run"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert res.exit_code == 0, res.output
    out = tmp_path / "run"
    assert "Traceback" not in res.output + (out / "run.log").read_text()

    ranked = {r["source"].removeprefix("file:") for r in _csv(out / "ranked_Mg.csv")}
    failures = _csv(out / "failures.csv")
    failed = {r["source"].removeprefix("file:") for r in failures}
    assert all(len(r["reason"]) > 20 for r in failures)
    errors = collections.Counter(r["error"] for r in failures)
    assert set(errors) <= {"StructureReadError", "StructureValidationError", "OxidationStateError",
                           "MissingParameterError", "GridMemoryError"}, errors

    found = {str(p) for p in iter_structure_files([folder])}
    by_path = {str(e.path): e for e in corpus}
    assert found == ranked | failed and not ranked & failed
    print(f"screen: {len(found)} files found, {len(ranked)} ranked, {len(failed)} failure rows; "
          f"{dict(errors)}")
    problems = [f"{p}: {by_path[p].expect}, ranked" for p in ranked if by_path[p].expect == "bad"]
    problems += [f"{p}: good, failed" for p in failed if by_path[p].expect == "good"]
    missed = [str(e.path) for e in corpus if e.expect == "good" and str(e.path) not in ranked]
    assert not problems and not missed, problems + missed

    _check_exports(out, failures, corpus)


def _check_exports(out: Path, failures: list[dict[str, str]], corpus: list[Entry]) -> None:
    """No NaN/inf/1e308 in the exports (the file names and reasons may quote the input)."""
    quoted = sorted({r["reason"] for r in failures} | {e.name for e in corpus}, key=len, reverse=True)
    for p in out.iterdir():
        if p.suffix in (".csv", ".json", ".html") and p.name != "failures.csv":  # its columns below
            text = p.read_text()
            for q in quoted:
                text = text.replace(html.escape(q), "").replace(q, "")
            assert not _non_finite(text), (p.name, _non_finite(text))
    numbers = [v for r in _csv(out / "ranked_Mg.csv") for v in r.values()]
    numbers += [v for r in failures for k, v in r.items() if k != "reason"]  # reasons quote input
    for value in numbers:
        try:
            x = float(value)
        except ValueError:
            continue
        assert math.isfinite(x) and abs(x) < 1e300, value
    assert json.loads((out / "ranked_Mg.json").read_text())
