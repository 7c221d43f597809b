"""ionscreen's ML-tier NEB side by side with a plain ASE NEB, same host, ion, model, endpoints
and convergence (issue 13.5).

Plain ASE NEB, as its documentation writes one: both endpoints relaxed with BFGS, one
``CHGNetCalculator`` per image, IDPP band of 7 inner images, climbing image from the start, FIRE
to ``--fmax`` (0.05 eV/Å by default). ionscreen: :func:`ionscreen.screening.neb.neb_between`
with its ML defaults (:meth:`NEBSettings.for_ml`): energies and forces only (no stress), the
moved images of a band through one shared model (``factory.batch``, one structure per pass),
denormals flushed, 5 inner images, here with the plain run's convergence (climbing image to
``--fmax``; ionscreen's own default is 0.03, which ``--fmax 0.03`` gives both). Both start from
the same unrelaxed endpoints (the hop's two BVSE sites in the host's NEB supercell). The runs
alternate in one process (plain, ionscreen, plain, ionscreen...), one torch thread; CPU seconds
are the process's own (time.process_time), which another job on the machine disturbs less than
wall time.

    OMP_NUM_THREADS=1 python benchmarks/bench_ml_neb.py --repeat 2 --out bench_ml_neb.json
    OMP_NUM_THREADS=1 python benchmarks/bench_ml_neb.py --fmax 0.03 --cases LiMn2O4:Mg,LiMn2O4:Zn
    OMP_NUM_THREADS=1 python benchmarks/bench_ml_neb.py --cases LiMn2O4:Mg:through --whole-band
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from machine import machine_info  # benchmarks/machine.py


def endpoints(host: str, ion: str, hop_rank: int = 0, through: bool = False):
    """The unrelaxed endpoints (Structures) of the first percolating BVSE hop of ``host``;
    ``through``: on through the hop's end site to the point as far beyond it (in the spinel,
    8a -> 16c -> 8a: a hop that the inversion centre on 16c maps onto its reverse)."""
    from ionscreen.screening.bvse import compute_landscape, prepare_host
    from ionscreen.screening.neb import HopSetup, NEBSettings, percolating_hops
    from ionscreen.structures.convert import to_structure
    from ionscreen.structures.prototypes import get_prototype, host_for_ion

    s, _ = host_for_ion(get_prototype(host), ion)
    prepared = prepare_host(s, ion)
    b = compute_landscape(prepared)
    _, chosen = percolating_hops(b)
    hop = next(h for h in b.distinct_hops if h.distinct == chosen[hop_rank])
    setup = HopSetup.from_hop(prepared, hop, b, NEBSettings())
    end = 2 * setup.end - setup.start if through else setup.end
    return to_structure(setup.with_ion(setup.start)), to_structure(setup.with_ion(end))


def plain_ase(initial, final, images: int = 7, fmax: float = 0.05) -> dict:
    """The NEB an ASE user writes: one CHGNetCalculator per image, BFGS endpoints, IDPP, FIRE."""
    import torch
    from ase.mep import NEB
    from ase.optimize import BFGS, FIRE
    from chgnet.model.dynamics import CHGNetCalculator

    from ionscreen.structures.convert import to_atoms

    torch.set_flush_denormal(False)  # torch's default; ionscreen's ML tier turns it on
    model = _model()
    ends = [to_atoms(initial), to_atoms(final)]
    calls = 0
    relax_steps = []
    for a in ends:
        a.calc = CHGNetCalculator(model=model)
        opt = BFGS(a, logfile=None)
        opt.run(fmax=0.02, steps=1000)
        calls += opt.nsteps + 1
        relax_steps.append(int(opt.nsteps))
    band = [ends[0], *(ends[0].copy() for _ in range(images)), ends[1]]
    for im in band[1:-1]:
        im.calc = CHGNetCalculator(model=model)
    neb = NEB(band, climb=True, method="improvedtangent", k=0.1)
    neb.interpolate(method="idpp", mic=True)
    opt = FIRE(neb, logfile=None)
    converged = opt.run(fmax=fmax, steps=1000)
    e = np.array([im.get_potential_energy() for im in band])
    return {"barrier": float(e.max() - e.min()), "converged": bool(converged),
            "band_steps": int(opt.nsteps), "calls": calls + images * (int(opt.nsteps) + 1),
            "relax_steps": relax_steps}


_MODEL = []


def _model():
    if not _MODEL:
        from chgnet.model import CHGNet
        _MODEL.append(CHGNet.load(verbose=False))
    return _MODEL[0]


def ours(initial, final, ion: str, fmax: float = 0.05, mirror: bool = True) -> dict:
    from ionscreen.screening.mlip import calculator_factory
    from ionscreen.screening.neb import NEBSettings, neb_between

    factory = calculator_factory("chgnet")
    # the same convergence as the plain run (fmax on the climbing image)
    r = neb_between(initial, final, ion, calculator=factory,
                    settings=NEBSettings.for_ml(fmax=fmax, mirror=mirror))
    return {"barrier": r.barrier, "converged": r.converged, "band_steps": sum(
        v for k, v in r.steps.items() if not k.startswith("relax")),
        "calls": int(r.timings["energy_force_calls"]), "batch_calls": int(r.timings.get("batch_calls", 0)),
        "relax_steps": {k: v for k, v in r.steps.items() if k.startswith("relax")},
        "wall_endpoints_s": round(r.timings["endpoints"], 1),
        "wall_band_s": round(r.timings["band"], 1), "half_band": r.settings["half_band_used"]}


def timed(fn, *args) -> dict:
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    out.update(wall_s=round(time.perf_counter() - w, 2), cpu_s=round(time.process_time() - c, 2))
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="LiMn2O4:Mg",
                    help="host:ion[:through], comma-separated; 'through' goes on through the hop's "
                         "end site (8a -> 16c -> 8a in the spinel: a symmetric hop)")
    ap.add_argument("--whole-band", action="store_true",
                    help="also run ionscreen with the whole band (no mirror), to show its share")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", default="bench_ml_neb.json")
    ap.add_argument("--fmax", type=float, default=0.05,
                    help="climbing-image convergence of both runs, eV/Å (ionscreen's default: 0.03)")
    args = ap.parse_args()
    rows = []
    for case in args.cases.split(","):
        host, ion, *how = case.split(":")
        a, b = endpoints(host, ion, through=how == ["through"])
        _model()  # load once, outside the timings
        runs = [("plain ASE", plain_ase, (7, args.fmax)), ("ionscreen", ours, (ion, args.fmax))]
        if args.whole_band:
            runs.append(("ionscreen, whole band", ours, (ion, args.fmax, False)))
        for rep in range(args.repeat):
            for name, fn, extra in runs:
                r = timed(fn, a, b, *extra)
                r.update(case=f"{host} {ion}{' through' if how else ''}", atoms=len(a), run=name,
                         repeat=rep, fmax=args.fmax)
                print(json.dumps(r), flush=True)
                rows.append(r)
    Path(args.out).write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
