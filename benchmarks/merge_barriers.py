"""Merge ``validate_barriers.py --out`` files into one kept file of ``data/ml_barriers/``.

Parallel runs write one file each (or share one), and runs of other days have files of their
own; this joins their ``results`` per tier and path id and drops the DFT barrier of every
result (it belongs to the fetched data set, not to this repository)::

    python benchmarks/merge_barriers.py benchmarks/data/ml_barriers/chgnet-r2scan.json \\
        run1.json run2.json

A path already in the kept file stays as it is unless ``--replace`` is given (a rerun with a
newer driver). Metrics are not kept: they depend on the paths, ``fit_calibration.py`` and
``validate_barriers.py`` compute them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: fields of a result that are not this project's computation
DROPPED = ("dft_barrier",)


def merge(kept: dict[str, Any], runs: list[dict[str, Any]], replace: bool = False,
          ) -> dict[str, dict[str, int]]:
    """Add the results of ``runs`` to ``kept`` (in place); returns per tier how many paths
    were added and how many replaced."""
    counts: dict[str, dict[str, int]] = {}
    out = kept.setdefault("results", {})
    for run in runs:
        for tier, res in run.get("results", {}).items():
            into = out.setdefault(tier, {})
            for pid, r in res.items():
                if pid in into and not replace:
                    continue
                how = "replaced" if pid in into else "added"
                into[pid] = dict(r)
                c = counts.setdefault(tier, {"added": 0, "replaced": 0})
                c[how] += 1
    # a run's header and metrics describe that run's paths, not the kept file's
    kept.pop("metrics", None)
    kept.pop("run", None)
    # one pass over every result: the new ones and any the kept file still held with them
    for res in out.values():
        for r in res.values():
            for k in DROPPED:
                r.pop(k, None)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kept", type=Path, help="the kept file (created when missing)")
    ap.add_argument("runs", type=Path, nargs="+", help="validate_barriers.py --out files")
    ap.add_argument("--replace", action="store_true", help="a run's result replaces a kept one")
    args = ap.parse_args(argv)
    kept = json.loads(args.kept.read_text()) if args.kept.exists() else {"results": {}}
    counts = merge(kept, [json.loads(f.read_text()) for f in args.runs], args.replace)
    args.kept.write_text(json.dumps(kept, indent=1) + "\n")
    total = {t: len(r) for t, r in kept["results"].items()}
    print(f"{args.kept}: {counts or 'nothing new'}; now {total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
