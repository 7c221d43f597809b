"""The ML tier on held-out paths of the committed DFT-NEB slice (CI's slice of the validation
of issue 13; the full held-out table is in benchmarks/RESULTS.md).

Two held-out hops (MgHo2S4 spinel Mg²⁺, DFT 0.364 eV; ZnCr2O4 spinel Zn²⁺, DFT 0.855 eV), the
cheapest of the slice (≈ 20 and 70 core-s with CHGNet), through ``neb_between`` with the ML
defaults, as ``benchmarks/validate_barriers.py`` runs every path."""

from __future__ import annotations

import pytest
from dft_slice import slice_paths

from ionscreen.screening.committee import Calibration, model_key
from ionscreen.screening.neb import neb_between
from ionscreen.screening.neb.flags import refuses

HELD_OUT = ("pmb-test-0", "pmb-test-13")


@pytest.fixture(scope="module")
def results():
    pytest.importorskip("chgnet")
    from ionscreen.screening.mlip import calculator_factory

    factory = calculator_factory("chgnet")
    paths = [p for p in slice_paths() if p["id"] in HELD_OUT]
    assert [p["id"] for p in paths] == list(HELD_OUT)
    return factory, [(p, neb_between(p["initial"], p["final"], p["ion"], factory,
                                     mobile_index=p["moving_index"])) for p in paths]


@pytest.mark.slow
def test_chgnet_finds_each_barrier_ranks_them_as_dft_and_runs_soft(results):
    _, runs = results
    for p, r in runs:
        assert r.converged and r.barrier is not None, (p["id"], r.status)
        assert not [f for f in r.flags if refuses(f)], r.flags
        # universal potentials run soft on multivalent barriers: below DFT, but not absurdly
        assert 0.3 * p["dft_barrier"] < r.barrier < p["dft_barrier"], (p["id"], r.barrier)
    (_, low), (_, high) = runs
    assert low.barrier < high.barrier  # the DFT order: Mg in the sulfide spinel moves easier


@pytest.mark.slow
def test_the_shipped_calibration_moves_held_out_barriers_towards_dft(results):
    """The shipped fit of each path's ion (per ion where one was fitted, e.g. a scale for Zn,
    "none" for Mg) leaves these held-out barriers no farther from DFT than the raw ones."""
    factory, runs = results
    cal = Calibration.load()
    fits = [cal.get(factory.identity, p["ion"]) if cal else None for p, _ in runs]
    if not any(fits):
        pytest.skip(f"no calibration shipped for {model_key(factory.identity)}")
    raw = sum(abs(r.barrier - p["dft_barrier"]) for p, r in runs) / len(runs)
    calibrated = sum(abs((f(r.barrier) if f else r.barrier) - p["dft_barrier"])
                     for f, (p, r) in zip(fits, runs)) / len(runs)
    assert calibrated <= raw + 1e-9, (calibrated, raw)
