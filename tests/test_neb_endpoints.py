"""NEB between given endpoints (neb_between, ionscreen neb --endpoints), the batched band and
the ODE band optimiser."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from ionscreen.errors import IonscreenError, StructureValidationError
from ionscreen.screening.bvse import compute_landscape
from ionscreen.screening.neb import NEBSettings, moving_ion, neb_between, run_neb
from ionscreen.screening.neb.parallel import force_calculator
from ionscreen.screening.neb.setup import choose_calculator
from ionscreen.structures.convert import to_structure
from ionscreen.structures.prototypes import get_prototype


@pytest.fixture(scope="module")
def lfp_hop():
    """The relaxed endpoints of the host-alone BVFF NEB of Li in olivine, and that NEB's hop."""
    s = get_prototype("LiFePO4").build(with_ion="Li")
    rep = run_neb(s, "Li", bvse=compute_landscape(s, "Li", resolution=0.1))
    r = rep.hops[0]
    return to_structure(r.images[0]), to_structure(r.images[-1]), r


def test_given_endpoints_reproduce_the_host_alone_barrier(lfp_hop):
    a, b, host_alone = lfp_hop
    r = neb_between(a, b, "Li", "bvff")
    assert r.converged and r.hop["mobile_atom"] == len(a) - 1
    assert r.hop["length"] == pytest.approx(np.linalg.norm(
        np.array(host_alone.ion_path[-1]) - host_alone.ion_path[0]), abs=1e-3)
    # the same endpoints, model and settings; only the initial band differs (IDPP here)
    assert r.barrier == pytest.approx(host_alone.barrier, abs=0.02)
    assert r.calculator == host_alone.calculator and r.tier == "BVFF"


def test_the_moving_ion_and_what_is_refused(lfp_hop):
    from ionscreen.screening.ion_models import ion_model

    a, b, _ = lfp_hop
    k, d = moving_ion(a, b, ion_model("Li"))
    assert k == len(a) - 1 and np.linalg.norm(d[k]) > 1.5
    with pytest.raises(StructureValidationError, match="atoms"):
        moving_ion(a, _without(b, 0), ion_model("Li"))
    swapped = b.copy()
    swapped.replace(0, "Mn")
    with pytest.raises(StructureValidationError, match="same order"):
        moving_ion(a, swapped, ion_model("Li"))
    with pytest.raises(StructureValidationError, match="no Mg"):
        moving_ion(a, b, ion_model("Mg"))
    with pytest.raises(IonscreenError, match="not a Li atom"):
        moving_ion(a, b, ion_model("Li"), mobile_index=0)
    strained = b.copy()
    strained.scale_lattice(b.volume * 1.05)
    with pytest.raises(StructureValidationError, match="different cells"):
        moving_ion(a, strained, ion_model("Li"))
    with pytest.raises(IonscreenError, match="no hop"):
        neb_between(a, a, "Li", "bvff")


def _without(s, i):
    t = s.copy()
    t.remove_sites([i])
    return t


def test_a_batched_band_is_the_per_image_band(lfp_hop):
    """A factory with a batch evaluator gives the same band as one calculator per image: the
    batch path must change how images are evaluated, never what."""
    a, b, _ = lfp_hop
    r1 = neb_between(a, b, "Li", "bvff")
    from ionscreen.screening.ion_models import ion_model
    from ionscreen.structures.convert import to_atoms

    template = to_atoms(a, charges=True, mobile=[len(a) - 1])
    factory = choose_calculator("bvff", template, ion_model("Li"))
    seen: list[int] = []

    def batch(atoms_list):
        seen.append(len(atoms_list))
        out = []
        for at in atoms_list:
            at = at.copy()
            at.calc = factory()
            out.append((at.get_potential_energy(), at.get_forces()))
        return np.array([e for e, _ in out]), [f for _, f in out]

    batched = dataclasses.replace(factory, batch=batch)
    assert type(force_calculator(batched)).__name__ == "BatchCalculator"
    r2 = neb_between(a, b, "Li", batched)
    assert r2.timings["batch_calls"] > 0 and max(seen) == NEBSettings().images
    assert r2.steps == r1.steps
    assert np.allclose(r2.energies, r1.energies, atol=1e-8)


def test_ode_band_optimiser_converges(lfp_hop):
    a, b, _ = lfp_hop
    fire = neb_between(a, b, "Li", "bvff", NEBSettings(fmax=0.01, fmax_endpoints=0.01))
    ode = neb_between(a, b, "Li", "bvff", NEBSettings(optimizer="ODE", fmax=0.01, fmax_endpoints=0.01))
    assert ode.converged and "ODE" in ode.method
    assert ode.barrier == pytest.approx(fire.barrier, abs=0.03)
    with pytest.raises(ValueError, match="optimizer"):
        NEBSettings(optimizer="LBFGS").validate()


def test_cli_endpoints(lfp_hop, tmp_path):
    a, b, _ = lfp_hop
    a.to(filename=str(tmp_path / "A.vasp"), fmt="poscar")
    b.to(filename=str(tmp_path / "B.vasp"), fmt="poscar")
    exe = [sys.executable, "-m", "ionscreen.workflows.cli", "neb"]
    out = tmp_path / "r.json"
    p = subprocess.run([*exe, "--endpoints", "A.vasp", "B.vasp", "--ion", "Li", "--oxi",
                        "Fe=2,P=5,O=-2", "--json", str(out)], cwd=tmp_path, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr + p.stdout
    doc = json.loads(out.read_text())
    assert doc["hops"][0]["hop"]["given_endpoints"] and doc["barrier"] > 0.05
    p = subprocess.run([*exe, "A.vasp", "--endpoints", "A.vasp", "B.vasp", "--ion", "Li"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode != 0 and "not both" in p.stderr + p.stdout


def test_an_endpoint_that_moves_says_where_it_went(lfp_hop):
    """The initial endpoint put 1.2 Å off its site, towards the final one: it relaxes back, and
    the result says how far it moved, to which fractional position, and how far that is from
    the other endpoint's ion."""
    from ionscreen.screening.neb.settings import MergedEndpointsError

    a, b, _ = lfp_hop
    k = len(a) - 1
    step = b.cart_coords[k] - a.cart_coords[k]
    # moved past half way, it relaxes onto the final site: one minimum, and the error says so
    onto = a.copy()
    onto.translate_sites([k], 0.7 * step, frac_coords=False)
    with pytest.raises(MergedEndpointsError, match=r"initial ion moved .* fractional, 0\.\d\d Å "
                       "from the final endpoint's given ion position"):
        neb_between(onto, b, "Li", "bvff")
    # moved 1.2 Å across the hop, it relaxes back onto its own site
    side = np.cross(step, [0.0, 0.0, 1.0])
    off = a.copy()
    off.translate_sites([k], 1.2 * side / np.linalg.norm(side), frac_coords=False)
    r = neb_between(off, b, "Li", "bvff")
    start = r.endpoints[0]
    assert start["moved"] > 1.0 and start["left_site"]
    went = start["relaxed_to"]
    back = np.array(went["frac"]) - a[k].frac_coords
    assert np.abs(back - np.round(back)).max() < 0.05  # back on its own site
    assert went["to_other_end"] == pytest.approx(a[k].distance(b[k]), abs=0.1)
    moved = next(f for f in r.flags if f["code"] == "endpoint-moved")
    assert "fractional" in moved["text"] and "final endpoint's given ion position" in moved["text"]
