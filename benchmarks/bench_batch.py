"""One batch call against one ASE calculator per image, for the ML potentials (one torch thread).

For CHGNet and SevenNet (7net-0), side by side in one run: 7 images (the working ion moved in
0.1 Å steps, the host rattled by 0.02 Å) of a ~50-atom cell (MgMn2O4 spinel, 56 atoms) and of
a ~100-atom cell (NaTi2(PO4)3 NASICON, 108 atoms), evaluated

* ``calculators``: a new calculator from the factory per image, energy and forces (as a NEB
  band does without ``factory.batch``);
* ``batch``: ``factory.batch(images)``, the factory's default;
* ``merged``: all 7 graphs in one forward pass (``chgnet_batch(..., graphs_per_pass=7)``,
  CHGNet's batched ``predict_graph``; ``sevennet_batch(..., graphs_per_pass=7)``, sevenn's
  batch mode), which neither default does on the CPU.

Each timing is the best of ``--repeat`` runs (wall seconds, and process CPU seconds, which
another job on the machine disturbs less). Ratios are calculators / mode (> 1: mode faster).

    OMP_NUM_THREADS=1 python benchmarks/bench_batch.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from pymatgen.io.ase import AseAtomsAdaptor  # noqa: E402

from ionscreen.screening.mlip import calculator_factory  # noqa: E402
from ionscreen.screening.mlip_models import chgnet_batch, sevennet_batch  # noqa: E402
from ionscreen.structures.prototypes import get_prototype  # noqa: E402

CELLS = {"MgMn2O4 (spinel)": ("LiMn2O4", "Mg"), "NaTi2(PO4)3 (NASICON)": ("NaTi2(PO4)3-NASICON", None)}


def images(prototype: str, ion: str | None, n: int = 7) -> list[Atoms]:
    """``n`` images: the last atom of the working-ion species moved 0.1 Å per image, host rattled."""
    s = get_prototype(prototype).build(with_ion=ion)
    s.remove_oxidation_states()
    base = AseAtomsAdaptor.get_atoms(s)
    mover = int(np.where(base.numbers == (12 if ion == "Mg" else 11))[0][-1])
    out = []
    for k in range(n):
        a = base.copy()
        a.rattle(0.02, seed=k)
        a.positions[mover] += np.array([0.1, 0.05, 0.0]) * k
        out.append(a)
    return out


def best(fn, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``repeat`` calls of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus)


def per_calculator(factory, imgs: list[Atoms]) -> None:
    for a in imgs:
        a.calc = factory()
        a.get_potential_energy()
        a.get_forces()
        a.calc = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    factories = {"CHGNet": calculator_factory("chgnet", threads=1),
                 "SevenNet": calculator_factory("sevennet", threads=1)}
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; best of {args.repeat}")
    for name, f in factories.items():
        print(f"  {name}: {f.identity}")
    print(f"{'cell':24s} {'atoms':>5s} {'model':9s} {'mode':12s} {'wall s':>7s} {'cpu s':>7s} "
          f"{'ratio wall':>10s} {'ratio cpu':>9s}")
    for label, (proto, ion) in CELLS.items():
        imgs = images(proto, ion)
        for name, f in factories.items():
            modes = {"calculators": lambda f=f, imgs=imgs: per_calculator(f, imgs),
                     "batch": lambda f=f, imgs=imgs: f.batch(imgs)}
            merged = (sevennet_batch(f.model, None, graphs_per_pass=len(imgs)) if name == "SevenNet"
                      else chgnet_batch(f.model, graphs_per_pass=len(imgs)))
            modes["merged"] = lambda merged=merged, imgs=imgs: merged(imgs)
            f.batch(imgs[:1])  # warm-up
            times = {mode: best(fn, args.repeat) for mode, fn in modes.items()}
            ref_w, ref_c = times["calculators"]
            for mode, (w, c) in times.items():
                print(f"{label:24s} {len(imgs[0]):5d} {name:9s} {mode:12s} {w:7.2f} {c:7.2f} "
                      f"{ref_w / w:10.2f} {ref_c / c:9.2f}")


if __name__ == "__main__":
    main()
