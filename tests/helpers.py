"""Small helpers shared by several test files (CSV comparison, killing a process tree)."""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import psutil


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV export as dicts (header row = keys)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def same_cell(a: str, b: str) -> bool:
    """Two CSV cells are the same: equal text, or equal numbers to 1e-9 relative (float text)."""
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return False


def kill_tree(p: subprocess.Popen) -> None:
    """SIGKILL a process and all its descendants at once, as a batch system kills a job
    (``mpiexec`` may put its proxies and ranks in their own process group, so ``killpg`` alone
    can leave rank 0 writing), and wait until they are gone."""
    try:
        below = psutil.Process(p.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        below = []
    p.kill()
    for proc in below:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    p.wait(timeout=15)  # Popen reaps its own child (so its returncode is -SIGKILL)
    psutil.wait_procs(below, timeout=15)
