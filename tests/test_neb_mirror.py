"""Fewer force calls in a NEB.

Half the band for a symmetric hop (:mod:`ionscreen.screening.neb.mirror`): the operation
found, energies and forces that map exactly under it with a real force field, and the half
band reaching the whole band's barrier with about half the force calls. The hop is Mg²⁺ in
spinel λ-MnO2 (conventional cell, 48 host atoms) from one 8a site through 16c to the 8a site
beyond it; the inversion centre on 16c maps it onto its reverse.

An endpoint shared by two hops of a host-alone NEB is relaxed once."""

from __future__ import annotations

import numpy as np
import pytest

from ionscreen.screening.ion_models import ion_model
from ionscreen.screening.neb import NEBSettings, neb_between
from ionscreen.screening.neb.endpoints import endpoint_atoms, moving_ion
from ionscreen.screening.neb.mirror import best, find_mirror, find_mirrors, symmetrise
from ionscreen.screening.neb.parallel import force_calculator
from ionscreen.screening.neb.setup import choose_calculator
from ionscreen.structures.prototypes import get_prototype, host_for_ion


def _with_mg(frac):
    s, _ = host_for_ion(get_prototype("LiMn2O4"), "Mg")
    s.remove_sites([i for i, site in enumerate(s) if site.specie.symbol == "Mg"])
    s.append("Mg", frac)
    return s


@pytest.fixture(scope="module")
def spinel_ends():
    """Structures with Mg on 8a, on the 8a beyond 16c, and on 16c itself (origin choice 2)."""
    return _with_mg([0.125, 0.125, 0.125]), _with_mg([0.875, 0.875, 0.875]), _with_mg([0, 0, 0])


def _atoms(a, b, charges=True):
    ion = ion_model("Mg")
    k, d = moving_ion(a, b, ion)
    return endpoint_atoms(a, ion, k, d, charges=charges)


def test_the_inversion_on_16c_is_found_and_a_one_way_hop_has_none(spinel_ends):
    a, b, c = spinel_ends
    x, y = _atoms(a, b)
    m = find_mirror(x, y, len(x) - 1)
    assert m is not None and m.describe().split(" of ")[0] in ("inversion", "two-fold rotation")
    kinds = {x.describe().split(" of ")[0] for x in find_mirrors(x, y, len(x) - 1)}
    assert "inversion" in kinds and "two-fold rotation" in kinds
    assert np.array_equal(m.perm[m.perm], np.arange(len(x)))
    # it maps the initial endpoint onto the final one and back
    assert np.abs(m.apply(x.positions, near=y.positions) - y.positions).max() < 1e-6
    assert np.abs(m.apply(y.positions, near=x.positions) - x.positions).max() < 1e-6
    # 8a -> 16c: no operation of the host swaps an 8a and a 16c site
    x, z = _atoms(a, c)
    assert find_mirror(x, z, len(x) - 1) is None


def test_energies_and_forces_map_under_the_operation(spinel_ends):
    """With the BVFF (a real force field): E(g x) = E(x) and F(g x) = g F(x) for a rattled
    band image, and the middle image, symmetrised, feels forces that g leaves unchanged."""
    a, b, _ = spinel_ends
    x, y = _atoms(a, b)
    m = find_mirror(x, y, len(x) - 1)
    calc = force_calculator(choose_calculator("bvff", x, ion_model("Mg")))
    rng = np.random.default_rng(3)
    im = x.copy()
    im.positions = 0.7 * x.positions + 0.3 * y.positions + rng.normal(scale=0.05, size=(len(x), 3))
    im.calc = calc
    e, f = im.get_potential_energy(), im.get_forces()
    g = im.copy()
    g.positions = m.apply(im.positions, near=0.3 * x.positions + 0.7 * y.positions)
    g.calc = calc
    assert g.get_potential_energy() == pytest.approx(e, abs=1e-8)
    assert np.abs(g.get_forces() - m.forces(f)).max() < 1e-7
    assert np.abs(m.forces(m.forces(f)) - f).max() < 1e-12  # an involution
    band = [x.positions.copy(), im.positions.copy(), 0.5 * (x.positions + y.positions),
            g.positions.copy() + 0.01, y.positions.copy()]
    symmetrise(band, m)
    assert np.abs(band[3] - m.apply(band[1], near=band[3])).max() < 1e-12
    mid = im.copy()
    mid.positions = band[2]
    mid.calc = calc
    fm = mid.get_forces()
    assert np.abs(m.forces(fm) - fm).max() < 1e-7


def test_half_the_band_gives_the_whole_bands_barrier(spinel_ends):
    """BVFF: 16c is a shallow minimum here, so the two highest images are a symmetric pair
    and both climb. Same barrier as the whole band, half the endpoint relaxations and about
    half the force calls on the band."""
    a, b, _ = spinel_ends
    half = neb_between(a, b, "Mg", "bvff", settings=NEBSettings(mirror=True))
    whole = neb_between(a, b, "Mg", "bvff", settings=NEBSettings(mirror=False))
    assert half.converged and whole.converged
    assert half.barrier == pytest.approx(whole.barrier, abs=2e-3)
    assert "computed: an inversion" in half.note or "computed: a two-fold" in half.note
    assert "half the band" not in whole.note
    assert half.steps["relax_final"] == 0 and whole.steps["relax_final"] > 0
    calls_half = half.timings["energy_force_calls"]
    assert calls_half < 0.65 * whole.timings["energy_force_calls"]
    e = np.array(half.energies)
    assert np.abs(e - e[::-1]).max() < 1e-6  # a symmetric profile, both saddles climbed
    assert half.settings["mirror"] is True


def test_the_ml_defaults_use_the_mirror_and_a_user_can_turn_it_off():
    assert NEBSettings.for_ml().mirror and not NEBSettings().mirror
    assert not NEBSettings.for_ml(mirror=False).mirror


def test_a_site_shared_by_two_hops_relaxes_once():
    """Host-alone NEB of Mg²⁺ in anatase (BVFF): the second hop starts where the first ends;
    that endpoint is relaxed once and reused, and the second hop's barrier is the one it gets
    when computed alone."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.screening.neb import neb_hop, run_neb

    s, _ = host_for_ion(get_prototype("TiO2-anatase"), "Mg")
    b = compute_landscape(s, "Mg", resolution=0.15)
    rep = run_neb(s, "Mg", "bvff", bvse=b)
    first, second = rep.hops[:2]
    assert first.hop["site_j"] == second.hop["site_i"]
    assert first.steps["relax_final"] > 0 and second.steps["relax_initial"] == 0
    hop = next(h for h in b.distinct_hops if h.distinct == second.hop["distinct"])
    alone = neb_hop(s, "Mg", hop, b, "bvff")
    assert alone.steps["relax_initial"] > 0
    assert second.barrier == pytest.approx(alone.barrier, abs=1e-3)


def test_cli_uses_the_mirror_for_a_non_bvff_calculator_unless_told(spinel_ends, tmp_path):
    """`ionscreen neb --endpoints` with any calculator but the BVFF takes the ML defaults, the
    mirror among them; --whole-band turns it off. (Lennard-Jones with the host fixed: a cheap
    real ASE calculator, whose barrier here means nothing.)"""
    import json
    import subprocess
    import sys

    a, b, _ = spinel_ends
    a.to(filename=str(tmp_path / "A.vasp"), fmt="poscar")
    b.to(filename=str(tmp_path / "B.vasp"), fmt="poscar")
    base = [sys.executable, "-m", "ionscreen.workflows.cli", "neb", "--endpoints", "A.vasp",
            "B.vasp", "--ion", "Mg", "--calculator", "ase.calculators.lj:LennardJones",
            "--fixed-host"]
    for extra, mirror in (([], True), (["--whole-band"], False)):
        out = tmp_path / f"r{mirror}.json"
        p = subprocess.run([*base, *extra, "--json", str(out)], cwd=tmp_path, capture_output=True,
                           text=True)
        assert p.returncode in (0, 3), p.stderr + p.stdout
        hop = json.loads(out.read_text())["hops"][0]
        assert hop["settings"]["mirror"] is mirror and hop["settings"]["half_band_used"] is mirror
        assert ("half the band computed" in hop["note"]) is mirror
        assert ("half the band computed" in p.stdout) is mirror  # the CLI says so too
        assert (hop["steps"]["relax_final"] == 0) or not mirror


def test_what_the_operation_must_keep(spinel_ends):
    """An operation the cell only nearly has (b stretched by 0.6 %: spglib at 0.05 Å still
    sees a cubic cell, but an operation that turns b into a or c would map the structure onto a
    strained one) or that swaps atoms a calculator tells apart (charges) is refused; an even
    number of inner images is never halved."""
    a, b, _ = spinel_ends
    x, y = _atoms(a, b)
    cubic = find_mirrors(x, y, len(x) - 1)
    sa, sb = a.copy(), b.copy()
    for st in (sa, sb):
        st.lattice = st.lattice.__class__(st.lattice.matrix * np.array([[1.0], [1.006], [1.0]]))
    xs, ys = _atoms(sa, sb)
    strained = find_mirrors(xs, ys, len(xs) - 1)
    assert 0 < len(strained) < len(cubic)
    for m in strained:  # what is left keeps b along b
        assert np.abs(m.linear @ m.linear.T - np.eye(3)).max() < 1e-3
        assert abs(abs(m.linear[1, 1]) - 1) < 1e-9
    q = x.get_initial_charges()
    q[0] += 1.0  # one Mn told apart, in both endpoints
    x.set_initial_charges(q)
    y.set_initial_charges(q)
    assert len(find_mirrors(x, y, len(x) - 1)) < len(find_mirrors(*_atoms(a, b), len(x) - 1))
    even = neb_between(a, b, "Mg", "bvff", settings=NEBSettings(mirror=True, images=4, fmax=0.1))
    assert not even.settings["half_band_used"] and even.steps["relax_final"] > 0


def test_half_the_band_under_mpi_is_the_serial_band(spinel_ends, tmp_path):
    """`mpiexec -n 2`: the ranks share the first half of the band and every rank maps the
    same second half; barrier, steps and calls are the serial run's. (A stiff Lennard-Jones
    wall, host fixed: a real calculation whose 7 eV barrier means nothing.)"""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    exe = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    assert Path(exe).exists(), "mpiexec not found: pip install mpich (the test extra installs it)"
    a, b, _ = spinel_ends
    a.to(filename=str(tmp_path / "A.vasp"), fmt="poscar")
    b.to(filename=str(tmp_path / "B.vasp"), fmt="poscar")
    lj = "ase.calculators.lj:LennardJones?sigma=2.0&epsilon=0.5&rc=6.0"
    cmd = [sys.executable, "-m", "ionscreen.workflows", "neb", "--endpoints", "A.vasp", "B.vasp",
           "--ion", "Mg", "--calculator", lj, "--fixed-host", "--images", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    docs = []
    for name, pre in (("serial", []), ("mpi", [exe, "-n", "2"])):
        p = subprocess.run([*pre, *cmd, "--json", f"{name}.json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode in (0, 3), p.stderr + p.stdout
        docs.append(json.loads((tmp_path / f"{name}.json").read_text())["hops"][0])
    serial, mpi = docs
    assert serial["settings"]["half_band_used"] and mpi["settings"]["half_band_used"]
    assert serial["barrier"] is not None and serial["steps"]["climb"] > 0
    assert mpi["barrier"] == pytest.approx(serial["barrier"], abs=1e-6)
    assert mpi["steps"] == serial["steps"]
    assert mpi["timings"]["energy_force_calls"] == serial["timings"]["energy_force_calls"]


def test_a_bent_band_keeps_no_operation_that_would_straighten_it(spinel_ends):
    """The four operations that swap 8a and 8a' (the inversion on 16c, three two-fold axes
    across the hop) map a band bent 0.6 Å sideways, 30° from every axis, onto another band:
    none is used, since holding it symmetric would force it off its path. Straight, any is."""
    a, b, _ = spinel_ends
    x, y = _atoms(a, b)
    found = find_mirrors(x, y, len(x) - 1)
    hop = y.positions[-1] - x.positions[-1]
    axis = np.array([1.0, -1.0, 0.0]) / np.sqrt(2)  # a two-fold axis across the [111] hop
    other = np.cross(hop / np.linalg.norm(hop), axis)
    side = np.cos(np.radians(30)) * axis + np.sin(np.radians(30)) * other
    t = np.linspace(0, 1, 7)
    straight = [(1 - s) * x.positions + s * y.positions for s in t]
    bent = [p.copy() for p in straight]
    for p, s in zip(bent, t):
        p[-1] += 0.6 * np.sin(np.pi * s) * side
    assert len(found) == 4 and best(found, straight) is not None
    assert best(found, bent) is None
    scores = [symmetrise([p.copy() for p in bent], m) for m in found]
    assert min(scores) > 0.3
