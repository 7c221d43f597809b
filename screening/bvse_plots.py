"""Pictures of a BVSE landscape: a PNG of the hop profiles and a slice, and a Gaussian cube file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bvse_model import METHOD

if TYPE_CHECKING:
    from .bvse import BVSEResult


def write_cube(result: BVSEResult, path: str | Path) -> None:
    """Gaussian cube file of the landscape (eV relative to the minimum) for VESTA/OVITO."""
    if result.energy is None or result.structure is None:
        raise ValueError("this result carries no grid (it was loaded from JSON); recompute it")
    from ase.io.cube import write_cube as ase_write_cube

    from ionscreen.structures.convert import to_atoms

    atoms = to_atoms(result.structure)
    data = np.minimum(result.energy - result.energy_min, 1e3)
    with open(path, "w") as fh:
        ase_write_cube(fh, atoms, data=data,
                       comment=f"{METHOD} landscape of {result.ion} in {result.formula}, eV")


def plot(result: BVSEResult, path: str | Path, max_hops: int = 6) -> None:
    """PNG: energy profile along the distinct hops, and a slice of the landscape.

    The slice is the grid plane (constant third index) through the lowest site, energies
    clipped at E3D (or encut) so that the channels stand out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    _hop_profiles(ax1, result, max_hops)
    if result.energy is not None and result.sites:
        _slice(fig, ax2, result)
    else:
        ax2.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _hop_profiles(ax, result: BVSEResult, max_hops: int) -> None:
    lattice = np.array(result.lattice)
    for h in result.distinct_hops[:max_hops]:
        pts = np.array(h.path_frac) @ lattice
        x = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        ax.plot(x, h.path_energy, marker=".", ms=3,
                label=f"hop {h.distinct}: {h.length:.2f} Å, {h.barrier:.2f} eV ({h.percolation or '—'})")
    ax.set_xlabel("distance along grid path (Å)")
    ax.set_ylabel("energy above lowest site (eV)")
    ax.set_title(f"{result.ion} in {result.formula}: hop profiles ({METHOD})")
    ax.legend(fontsize=7)


def _slice(fig, ax, result: BVSEResult) -> None:
    assert result.energy is not None
    nc = result.grid_shape[2]
    low = min(result.sites, key=lambda s: s.energy)
    k = int(round(low.frac[2] * nc)) % nc
    cap = next((v for v in reversed(list(result.barriers.values())) if math.isfinite(v)), 2.0)
    data = np.minimum(result.energy[:, :, k] - result.energy_min, cap + 0.5).T
    im = ax.imshow(data, origin="lower", extent=(0, 1, 0, 1), aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label="eV above minimum")
    for s in result.sites:
        if abs(((s.frac[2] - low.frac[2] + 0.5) % 1.0) - 0.5) < 0.5 / nc:
            ax.plot(s.frac[0], s.frac[1], "w+" if s.distinct == low.distinct else "wx", ms=8)
    ax.set_xlabel("a (fractional)")
    ax.set_ylabel("b (fractional)")
    ax.set_title(f"slice c = {k / nc:.3f} (sites: + lowest, x other)")
