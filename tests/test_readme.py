"""The README's Python example runs as written (on the two built-in hosts it uses, coarse grid)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
HEADING = "#### A whole screen on your own structures"


def readme_snippet() -> str:
    """The first ```python block after :data:`HEADING`."""
    text = README.read_text(encoding="utf-8")
    assert HEADING in text, f"README lost its section {HEADING!r}"
    m = re.search(r"```python\n(.*?)```", text[text.index(HEADING):], re.S)
    assert m, "no python block in the section"
    return m.group(1)


def test_readme_python_screen_runs(tmp_path, monkeypatch, capsys):
    code = readme_snippet()
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out] == [["1", "FePO4"], ["2", "TiO2"]]
    assert all("BVFF CI-NEB" in line for line in out)
    run = tmp_path / "my_screen"
    for name in ("ranked_Mg.csv", "ranked_Mg.json", "failures.csv", "top_cifs.zip", "report.html"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "ranked_Mg.csv").open(encoding="utf-8")))
    assert [r["formula"] for r in rows] == ["FePO4", "TiO2"]
    assert all(r["barrier_tier"].startswith("BVFF CI-NEB") and r["neb_converged"] == "True"
               for r in rows)
    assert all(r["source"].startswith("file:") and r["citation"] == "my structure" for r in rows)
