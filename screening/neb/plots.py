"""Energy profiles of a NEB report (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .results import NEBReport


def plot_report(report: NEBReport, path: str | Path) -> None:
    """One panel per hop: the NEB points over the BVSE grid path (scaled to the NEB's length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(report.hops))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, h in zip(axes[0], report.hops):
        x = np.array(h.reaction_coordinate)
        ax.plot(x, h.energies, "o-", color="C0", label=f"{h.tier} CI-NEB")
        bx, be = h.hop.get("bvse_path_length"), h.hop.get("bvse_path_energy")
        if bx and be:
            bx = np.array(bx) * (x[-1] / bx[-1] if bx[-1] > 0 else 1.0)
            ax.plot(bx, np.array(be) - min(be), "--", color="C1", label="BVSE grid path")
        title = f"hop {h.hop.get('index', '')}: "
        title += f"{h.barrier:.3f} eV" if h.barrier is not None else "not converged"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"{report.ion} path length (Å)")
        ax.set_ylabel("E − E_min (eV)")
        ax.legend(fontsize=8)
    b = "n/a" if report.barrier is None else f"{report.barrier:.3f} eV"
    bv = report.bvse.get("barrier")
    bv = "n/a" if bv is None else f"{bv:.3f} eV"
    fig.suptitle(f"{report.formula}, {report.ion}: {report.tier} CI-NEB {b}; BVSE "
                 f"{report.dimension or ''} {bv}", fontsize=10)
    fig.text(0.01, 0.005, report.calculator, fontsize=6, color="0.4")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
