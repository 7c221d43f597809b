"""Barrier tiers against the DFT reference paths (issue 13): predicted vs DFT migration barriers.

Run::

    python benchmarks/validate_barriers.py --split held-out --tiers bvse --out results.json
    python benchmarks/validate_barriers.py --split calibration --tiers bvff,chgnet \\
        --max-atoms 120 --limit 20 --out results.json

Each tier in :data:`TIERS` maps a :class:`dft_neb.ReferencePath` to ``(barrier or None,
extra)``. Every path and tier is timed in core-seconds (user + system CPU of this process and of
its children) and saved to ``--out`` at once, so a run that stops resumes where it stopped: a
path + tier already in ``--out`` is not run again. Several runs may share one ``--out`` (each
adds its results to what the others saved, under a lock file). At the end the metrics
(``dft_neb.metrics``) are printed as Markdown and stored in ``--out``. Tiers: ``bvse`` (the
landscape of the host), and a NEB between the two DFT endpoints with ``bvff``, ``chgnet``,
``chgnet:r2scan``, ``sevennet:7net-0`` or ``sevennet:7net-mf-0``, with the tier's defaults
(``--whole-band``: every image of a symmetric hop evaluated, as before the mirror of
``screening/neb/mirror.py``; ``compare_half_band.py`` sets the two side by side).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from dft_neb import ReferencePath, load_paths, markdown_table, metrics, ranked_barrier  # noqa: E402
from pymatgen.core import Structure  # noqa: E402

from ionscreen.screening.ion_models import ion_model  # noqa: E402
from ionscreen.screening.neb.flags import refuses  # noqa: E402
from ionscreen.structures.oxidation import assign_oxidation_states  # noqa: E402

NEAREST_SITE = 1.0  # Å: a BVSE site this close to a DFT endpoint's ion position stands for it
VECTOR_TOL = 0.3  # Å: a chain of hops matches when its net vector is this close to the sites' one
MAX_CHAIN = 2  # hops: tet -> oct -> tet (spinel) or oct -> tet -> oct (layered) is one DFT path

Tier = Callable[[ReferencePath], tuple[float | None, dict[str, Any]]]


def _nearest_site(sites: np.ndarray, lattice: np.ndarray, frac: np.ndarray) -> tuple[int, float]:
    """Row of the site nearest (minimum image) to ``frac`` and its distance (Å)."""
    d = sites - frac
    d -= np.round(d)
    dist = np.linalg.norm(d @ lattice, axis=1)
    k = int(np.argmin(dist))
    return k, float(dist[k])


# the usual state of the anion (the most electronegative element): an endpoint assignment giving
# another (S- in a mixed-valence sulfide, say) is not used, the softBV table has no row for it
ANION_STATES = {"O": -2, "S": -2, "Se": -2, "Te": -2, "F": -1, "Cl": -1, "Br": -1, "I": -1, "N": -3}


def _host(path: ReferencePath) -> tuple[Structure, dict[str, float] | None, str]:
    """The initial endpoint without the moving ion, the oxidation states to give it (None when
    its sites carry them) and how they were found.

    The DFT cells hold a vacancy (or an extra ion), so many are not charge balanced with
    integer states. BVAnalyzer on the endpoint first, per site, kept when the anion and the
    working ion are in their usual states; else pymatgen's average-state guess with those two
    pinned; else each cation's most common state (the spse convention rescales cation charges
    to neutrality)."""
    comp = path.initial.composition
    anion = max(comp, key=lambda el: el.X).symbol  # S is a cation in a sulfate: pin one anion
    pins = {anion: ANION_STATES[anion]} if anion in ANION_STATES else {}
    pins[path.ion] = ion_model(path.ion).charge
    try:
        s = assign_oxidation_states(path.initial)
        if all(site.specie.oxi_state == pins.get(site.specie.symbol, site.specie.oxi_state)
               for site in s):
            s.remove_sites([path.moving_index])
            return s, None, "BVAnalyzer"
    except Exception:  # noqa: BLE001 - any failure sends us to the next method
        pass
    try:
        guesses = comp.oxi_state_guesses(oxi_states_override={k: [v] for k, v in pins.items()},
                                         max_sites=-1)
    except ValueError:
        guesses = ()
    if guesses:
        states, how = {k: float(v) for k, v in guesses[0].items()}, "guess (anion, ion pinned)"
    else:
        states, how = dict(pins), "common states (not balanced)"
        for el in comp:
            states.setdefault(el.symbol, float(el.common_oxidation_states[0]))
    s = path.initial.copy()
    s.remove_sites([path.moving_index])
    return s, {el.symbol: states[el.symbol] for el in s.composition}, how


def _steps(res, lattice: np.ndarray) -> dict[int, list[tuple[int, np.ndarray, Any]]]:
    """site -> [(next site, Cartesian step vector, hop)], both directions of every hop."""
    frac = {s.index: np.array(s.frac, float) for s in res.sites}
    out: dict[int, list] = {}
    for h in res.hops:
        v = (frac[h.site_j] + np.array(h.image) - frac[h.site_i]) @ lattice
        out.setdefault(h.site_i, []).append((h.site_j, v, h))
        out.setdefault(h.site_j, []).append((h.site_i, -v, h))
    return out


def hop_chain_barrier(res, lattice: np.ndarray, a: int, b: int, target: np.ndarray):
    """Lowest barrier (highest saddle minus lowest site on the chain) over chains of at most
    :data:`MAX_CHAIN` hops from site ``a`` to ``b`` whose net vector is ``target`` (Å), with
    the chain's hops; None if there is none."""
    energy = {s.index: s.energy for s in res.sites}
    steps = _steps(res, lattice)
    chains = [[(a, np.zeros(3), None)]]
    best = None
    for _ in range(MAX_CHAIN):
        grown = []
        for chain in chains:
            site, vec = chain[-1][0], chain[-1][1]
            for nxt, v, h in steps.get(site, []):
                c = chain + [(nxt, vec + v, h)]
                if nxt == b and np.linalg.norm(vec + v - target) <= VECTOR_TOL:
                    hops = [x[2] for x in c[1:]]
                    e = max(x.saddle_energy for x in hops) - min(energy[x[0]] for x in c)
                    if best is None or e < best[0]:
                        best = (float(e), hops)
                grown.append(c)
        chains = grown
    return best


def bvse_tier(path: ReferencePath) -> tuple[float | None, dict[str, Any]]:
    """BVSE barrier of the hop (or two-hop chain) between the sites nearest to the ion's two
    DFT positions, or the lowest-dimension percolation barrier when there is no such chain."""
    from ionscreen.screening.bvse import compute_landscape
    from ionscreen.screening.bvse_model import prepare_host

    host, states, how = _host(path)
    res = compute_landscape(prepare_host(host, path.ion, oxidation_states=states))
    lat = path.initial.lattice.matrix
    extra: dict[str, Any] = {"percolation": {d: (v if np.isfinite(v) else None)
                                             for d, v in res.barriers.items()},
                             "n_sites": len(res.sites), "n_hops": len(res.hops),
                             "oxidation_states": states, "oxidation_method": how}
    if res.sites:
        frac = np.array([s.frac for s in res.sites], float)
        ka, da = _nearest_site(frac, lat, path.initial[path.moving_index].frac_coords)
        kb, db = _nearest_site(frac, lat, path.final[path.moving_index].frac_coords)
        a, b = res.sites[ka].index, res.sites[kb].index
        extra.update(site_initial=a, site_final=b, site_distance=[round(da, 3), round(db, 3)])
        if max(da, db) <= NEAREST_SITE and a != b:
            # the sites' net vector: the image of b nearest to where the DFT ion ends
            d = path.final[path.moving_index].frac_coords - path.initial[path.moving_index].frac_coords
            d -= np.round(d)
            t = frac[kb] - frac[ka]
            t = (t + np.round(d - t)) @ lat
            found = hop_chain_barrier(res, lat, a, b, t)
            if found is not None:
                extra.update(source=f"{len(found[1])}-hop chain",
                             hop_lengths=[h.length for h in found[1]])
                return found[0], extra
    finite = [v for v in res.barriers.values() if np.isfinite(v)]
    extra["source"] = "percolation"
    return (float(finite[0]) if finite else None), extra


def _neb_tier(calculator: str, whole_band: bool = False) -> Tier:
    """The NEB tier of ``calculator`` with its defaults; ``whole_band``: every image of a
    symmetric hop evaluated too (as before the mirror of ``screening/neb/mirror.py``)."""
    def tier(path: ReferencePath) -> tuple[float | None, dict[str, Any]]:
        from ionscreen.screening.neb.endpoints import neb_between  # written for issue 13

        initial, oxi = path.initial, None
        if calculator == "bvff":
            # the BVFF needs charges: the BVSE tier's states of the vacancy cell (per site when
            # BVAnalyzer's are usual, else a dict), never a fresh guess on the bare host
            host, oxi, _ = _host(path)
            if oxi is None:
                initial = path.initial.copy()
                q = [site.specie.oxi_state for site in host]
                q.insert(path.moving_index, float(ion_model(path.ion).charge))
                initial.add_oxidation_state_by_site(q)
        from ionscreen.screening.neb import NEBSettings

        settings = NEBSettings.for_calculator(calculator, mirror=False) if whole_band else None
        r = neb_between(initial, path.final, path.ion, calculator=calculator,
                        settings=settings, mobile_index=path.moving_index, oxidation_states=oxi)
        extra = {"converged": r.converged, "status": r.status,
                 "barrier_forward": r.barrier_forward, "barrier_reverse": r.barrier_reverse,
                 "steps": r.steps, "n_atoms": r.n_atoms, "flags": [f["code"] for f in r.flags],
                 "refused": [f["code"] for f in r.flags if refuses(f)],
                 "half_band": "half the band" in r.note}
        return r.barrier, extra
    tier.__name__ = f"neb_{calculator}"
    return tier


TIERS: dict[str, Tier] = {
    "bvse": bvse_tier,
    "bvff": _neb_tier("bvff"),
    "chgnet": _neb_tier("chgnet"),
    "chgnet:r2scan": _neb_tier("chgnet:r2scan"),
    "sevennet:7net-0": _neb_tier("sevennet:7net-0"),
    "sevennet:7net-mf-0": _neb_tier("sevennet:7net-mf-0"),
}


def core_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _json_safe(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    return x


def _save(out: Path, doc: dict[str, Any]) -> None:
    tmp = out.with_suffix(out.suffix + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_json_safe(doc), indent=1))
    tmp.replace(out)


def _update(out: Path, doc: dict[str, Any], ran: set[tuple[str, str]],
            own_metrics: Iterable[str] = ()) -> dict[str, Any]:
    """Write to ``out`` what is there now (another run may share the file) with the results of
    ``ran`` (tier, path id: those this run computed) from ``doc``, under a lock file, and make
    ``doc`` hold the same (its results dicts updated in place). A result this run only read
    stays as the file has it now: a path another run redid, or one deleted to be run again, is
    not put back. Likewise the stored metrics: only those of the tiers ``own_metrics`` (this
    run's tables) come from ``doc``; another tier's stay as the file has them."""
    with open(out.with_suffix(out.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = json.loads(out.read_text()) if out.exists() else {"results": {}}
        merged = {t: dict(r) for t, r in disk.get("results", {}).items()}
        for tier, pid in ran:
            merged.setdefault(tier, {})[pid] = doc["results"][tier][pid]
        for tier in set(doc["results"]) | set(merged):
            mine = doc["results"].setdefault(tier, {})
            mine.clear()
            mine.update(merged.get(tier, {}))
        tabled = doc.get("metrics", {})
        doc["metrics"] = {**disk.get("metrics", {}),
                          **{t: tabled[t] for t in own_metrics if t in tabled}}
        _save(out, doc)
    return doc


def run_one(tier: Tier, path: ReferencePath) -> dict[str, Any]:
    """One path through one tier: barrier, extra, core-seconds and any error."""
    t0, w0 = core_seconds(), time.perf_counter()
    try:
        barrier, extra = tier(path)
        error = None
    except Exception as exc:  # a failing path is a result (found = False), not a crash
        barrier, extra = None, {"traceback": traceback.format_exc(limit=3)}
        error = f"{type(exc).__name__}: {exc}"
    return {"barrier": barrier, "extra": extra, "error": error,
            "core_seconds": round(core_seconds() - t0, 3),
            "wall_seconds": round(time.perf_counter() - w0, 3),
            "dft_barrier": path.dft_barrier, "ion": path.ion, "n_atoms": path.n_atoms}


def tables(doc: dict[str, Any], paths: list[ReferencePath], tiers: list[str]) -> str:
    """Metrics of every tier over ``paths`` (stored in ``doc``) as Markdown."""
    parts = []
    doc.setdefault("metrics", {})  # per tier: another run's tiers in a shared file stay
    for name in tiers:
        done = doc["results"].get(name, {})
        pred = {pid: ranked_barrier(r, name) for pid, r in done.items()}
        ran = [p for p in paths if p.id in done]
        refused = sum(done[p.id]["barrier"] is not None and pred[p.id] is None for p in ran)
        m = metrics(pred, ran)
        secs = [done[p.id]["core_seconds"] for p in ran]
        doc["metrics"][name] = {"table": m, "core_seconds_total": sum(secs), "refused": refused,
                                "core_seconds_median": float(np.median(secs)) if secs else None}
        parts.append(markdown_table(m, f"{name}: {len(ran)} paths run, {refused} barriers refused "
                                       f"(noise, below-floor, no-saddle), {sum(secs):.0f} core-s"))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", default="held-out", choices=["held-out", "calibration", "all"])
    ap.add_argument("--tiers", default="bvse", help="comma-separated: " + ", ".join(TIERS))
    ap.add_argument("--ions", default=None, help="comma-separated ions (default: all)")
    ap.add_argument("--max-atoms", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first K paths only")
    ap.add_argument("--ids", default=None, help="comma-separated path ids only")
    ap.add_argument("--out", type=Path, default=Path("validate_barriers.json"))
    ap.add_argument("--whole-band", action="store_true",
                    help="evaluate the whole band of a symmetric hop too (no mirror); give it an "
                         "--out of its own (paths already in --out are not run again)")
    args = ap.parse_args(argv)
    # a path + tier already in --out is not run again: a --whole-band run needs its own --out
    table = {n: _neb_tier(n, whole_band=True) if args.whole_band and n != "bvse" else t
             for n, t in TIERS.items()}
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    unknown = [t for t in tiers if t not in TIERS]
    if unknown:
        ap.error(f"unknown tier(s) {unknown}; known: {list(TIERS)}")
    ions = args.ions.split(",") if args.ions else None
    paths = load_paths(args.split, ions=ions, max_atoms=args.max_atoms)[: args.limit]
    if args.ids:  # e.g. the paths whose band diverged, again with a newer driver
        wanted = set(args.ids.split(","))
        paths = [p for p in paths if p.id in wanted]
    doc = json.loads(args.out.read_text()) if args.out.exists() else {"results": {}}
    doc["run"] = {"split": args.split, "tiers": tiers, "max_atoms": args.max_atoms,
                  "limit": args.limit, "ions": ions}
    ran: set[tuple[str, str]] = set()
    for name in tiers:
        done = doc["results"].setdefault(name, {})
        for k, path in enumerate(paths):
            if path.id in done:
                continue
            done[path.id] = r = run_one(table[name], path)
            ran.add((name, path.id))
            _update(args.out, doc, ran)
            b = "None" if r["barrier"] is None else f"{r['barrier']:.3f}"
            print(f"[{name} {k + 1}/{len(paths)}] {path.id} {path.ion} {path.formula}: {b} eV "
                  f"(DFT {path.dft_barrier:.3f}) {r['core_seconds']:.1f} core-s"
                  + (f" ERROR {r['error']}" if r["error"] else ""), flush=True)
    # doc is current: every path of this run was either done on disk or run and saved here
    text = tables(doc, paths, tiers)
    _update(args.out, doc, ran, own_metrics=tiers)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
