"""Run the toy screen as a real process (serial, pool or ``mpiexec -n N``).

    python3 run_toy.py --store s.sqlite --n 60 [--workers 2] [--bad] [--stages] [--out r.json]

Prints the run summary as JSON on stdout (rank 0 only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import toysteps  # noqa: E402

from ionscreen.workflows.local import LocalEngine  # noqa: E402
from ionscreen.workflows.mpi import world  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--sleep", type=float, default=0.05)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--bad", action="store_true")
    p.add_argument("--stages", action="store_true")
    p.add_argument("--log")
    p.add_argument("--out")
    a = p.parse_args()
    comm = world()
    jobs = [(toysteps.TOY, d) for d in toysteps.docs(a.n, a.sleep)]
    if a.bad:
        jobs += [(toysteps.TOY, d) for d in toysteps.bad_docs()]
    eng = LocalEngine(a.store, workers=a.workers, comm=comm, progress=False, log_path=a.log,
                      argv=sys.argv)
    stages = [jobs, toysteps.make_double_jobs] if a.stages else [jobs]
    summary = eng.run_stages(stages)
    if summary.role != "root":
        return
    if a.out:
        results = {r.id: r.result for r in eng.store.results()}
        with open(a.out, "w") as f:
            json.dump(results, f, sort_keys=True)
    print(json.dumps(summary.to_dict()))


if __name__ == "__main__":
    main()
