"""Mobility thresholds of a migration barrier, in one place for the classes
(:mod:`ionscreen.screening.mobility`) and the NEB flags (:mod:`ionscreen.screening.neb.flags`).

Rong, Malik, Canepa, Sai Gautam, Liu, Persson, Ceder, *Chem. Mater.* 27 (2015) 6016: for an
electrode to (dis)charge at about C/2, the ion must cross the particle within about two hours;
with D ≈ a²ν exp(−Em/kT) this needs Em ≲ 525 meV for micron-sized particles and Em ≲ 650 meV
for nano-sized ones (tens of nm).
"""

from __future__ import annotations

MICRON = 0.525  # eV: C/2 in micron-sized particles (Rong et al. 2015)
NANO = 0.65  # eV: C/2 in nano-sized particles (Rong et al. 2015)
