"""Peak-memory baseline shared by the benchmark workers.

The workers run as scripts in their own interpreters (bvlain's in its own venv, without
ionscreen), so this module is found next to them on ``sys.path`` rather than through a package.
"""

from __future__ import annotations

import resource


def rss_baseline() -> tuple[int, int, str]:
    """(baseline kB, peak kB during imports, method) for the peak-memory measurement.

    The resident set after imports, then the high-water mark is reset so that ``ru_maxrss``
    measures the computation (Linux ``/proc/self/clear_refs`` "5"); without a reset,
    ``ru_maxrss`` after imports is the baseline.
    """
    imports_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status") as fh:
            current = next(int(ln.split()[1]) for ln in fh if ln.startswith("VmRSS:"))
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return current, imports_peak, "VmRSS after imports; high-water mark reset, peak = ru_maxrss"
    except (OSError, StopIteration):
        return imports_peak, imports_peak, "ru_maxrss after imports (no reset available)"


def peak_kb() -> int:
    """The process's peak resident set (kB) since start or since the reset."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
