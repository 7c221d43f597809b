"""Facts about the benchmark machine, and the one JSON writer of the benchmarks (no side
effects: importing this pins nothing and imports no numba)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ionscreen._json import jsonable


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def ram_gb() -> float | None:
    """Total RAM (GB) from /proc/meminfo, None where there is none."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, RAM, platform and the load average now (the machine may be shared)."""
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "cores_available": usable_cores(),
        "ram_gb": ram_gb(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
    }


def write_json(path: Path, doc: Any, indent: int = 1) -> None:
    """Write ``doc`` as strict JSON (inf/nan as null), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(doc), indent=indent, allow_nan=False))
