"""Toy steps for the engine tests: deterministic, a little slow, and able to fail on demand.

Each computed job appends ``"<n> <pid>"`` to the file named by ``IONSCREEN_TOY_SIDEFILE``
(before returning, hence before the engine commits), so a test can count how often every
job was really computed.
"""

from __future__ import annotations

import math
import os
import time

from ionscreen.errors import IonscreenError
from ionscreen.workflows.plan import Step

SIDE_ENV = "IONSCREEN_TOY_SIDEFILE"


def toy(doc: dict) -> dict:
    n = doc["n"]
    if doc.get("crash"):
        os._exit(3)  # a worker process dying under the engine (segfault, OOM kill...)
    if not isinstance(n, int):
        raise TypeError(f"n must be an integer, got {n!r}")  # a bug-like failure
    if n < 0:
        raise IonscreenError(f"n must be >= 0, got {n}")  # a user-input failure
    time.sleep(doc.get("sleep", 0.05))
    side = os.environ.get(SIDE_ENV)
    if side:
        with open(side, "a") as f:
            f.write(f"{n} {os.getpid()}\n")
    if doc.get("unjsonable"):
        return {"n": n, "bad": {1, 2}}
    return {"n": n, "square": n * n, "root": math.sqrt(n), "digits": sum(map(int, str(n)))}


def double(doc: dict) -> dict:
    time.sleep(doc.get("sleep", 0.01))
    return {"n": doc["n"], "twice_square": 2 * doc["square"]}


TOY = Step("toy", toy, version="1")
DOUBLE = Step("double", double, version="1")


def docs(n: int, sleep: float = 0.05) -> list[dict]:
    return [{"n": i, "sleep": sleep} for i in range(n)]


def bad_docs() -> list[dict]:
    return [{"n": -3}, {"n": "seven"}, {"n": 5, "unjsonable": True}]


def make_double_jobs(store) -> list:
    """Stage 2: one ``double`` job per finished ``toy`` job."""
    return [(DOUBLE, {"n": r.result["n"], "square": r.result["square"], "sleep": 0.01})
            for r in store.results("toy")]
