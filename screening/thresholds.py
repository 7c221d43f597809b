"""Mobility thresholds of a migration barrier (Rong et al., Chem. Mater. 2015; derived in
:mod:`ionscreen.screening.mobility`), in one place for the mobility classes and the NEB flags
(:mod:`ionscreen.screening.neb.flags`), which :mod:`~ionscreen.screening.mobility` imports.
"""

from __future__ import annotations

MICRON = 0.525  # eV: C/2 in micron-sized particles (Rong et al. 2015)
NANO = 0.65  # eV: C/2 in nano-sized particles (Rong et al. 2015)
