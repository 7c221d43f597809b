"""Rebuild ``benchmarks/data/dft_neb/paths.json.gz`` from the public migration-barrier data.

Source: the git repository ``sai-mat-group/predicting-migration-barriers`` (MIT licence), which
holds the literature-derived DFT migration-barrier dataset of Devi et al. (arXiv:2508.06459) as
JSON files. Run::

    python benchmarks/curate_dft_neb.py /path/to/predicting-migration-barriers.git [--out FILE]

The argument is a git directory (bare or not) of that repository; the files are read with
``git show`` at its HEAD, whose commit is recorded per path. What the files hold, what is kept
and dropped, and the split rule: ``benchmarks/data/dft_neb/README.md``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from pymatgen.core import Lattice, Structure

from ionscreen.errors import IonscreenError
from ionscreen.structures.validate import validate_structure

REPO = "sai-mat-group/predicting-migration-barriers"
FIVE = "DATA_FILES/MODEL-3-4/RAW/RAW-Em-5-images-{}.json"  # ion at 5 positions + initial host
BOTH = "DATA_FILES/MODEL-1-2/RAW/BOTH-RAW-Em-TEST.json"  # both relaxed endpoints (TEST only)
OUT = Path(__file__).parent / "data" / "dft_neb" / "paths.json.gz"

COUNTED = ("Mg", "Ca", "Zn", "Al")  # the multivalent ions the >= 100 paths are counted over
REFERENCE = ("Li", "Na", "Sr")  # ionscreen working ions kept as reference, not counted
SPLIT_SEED = "ionscreen-13"  # the split salt; changing it reshuffles every split
MIN_HOP, MAX_HOP = 1.5, 7.0  # Å, accepted moving-ion displacement
RELAXED = 0.5  # Å, other atoms moving more than this are listed (endpoint relaxation)
MAX_OTHER = 1.0  # Å, a path where another atom moves more than this is dropped
DIGITS = 5
BARRIER_DEFINITION = (
    "Em as reported by the source article for a DFT-NEB calculation (compiled by Devi et al., "
    "arXiv:2508.06459): the highest energy on the minimum-energy path relative to the initial "
    "endpoint; whether an article measured from the initial endpoint or the lowest image, and "
    "its XC functional, are not recorded in these files"
)


def git_json(gitdir: Path, path: str) -> list[dict]:
    out = subprocess.run(["git", f"--git-dir={gitdir}", "show", f"HEAD:{path}"],
                         check=True, capture_output=True)
    return json.loads(out.stdout)


def git_head(gitdir: Path) -> str:
    return subprocess.run(["git", f"--git-dir={gitdir}", "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def git_dir(path: Path) -> Path:
    """The git directory of ``path``: itself when bare, else its ``.git``."""
    return path / ".git" if (path / ".git").exists() else path


def min_image(lattice: np.ndarray, dfrac: np.ndarray) -> np.ndarray:
    """Shortest Cartesian length of each fractional difference vector (rows), over images."""
    d = dfrac - np.round(dfrac)
    best = np.full(len(d), np.inf)
    for shift in np.array(np.meshgrid(*[[-1, 0, 1]] * 3)).T.reshape(-1, 3):
        best = np.minimum(best, np.linalg.norm((d + shift) @ lattice, axis=1))
    return best


def endpoints_from_five(entry: dict) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Lattice, species, initial and final frac coords of a 5-image entry.

    The entry is one structure: the moving ion at 5 linearly interpolated positions (rows 0-4,
    initial ... final) followed by the initial endpoint's other atoms. The endpoints put the
    ion at row 0 or row 4 in front of those atoms (index 0, as in the BOTH files).
    """
    a = entry["atoms"]
    el, c = a["elements"], np.array(a["coords"], float)
    steps = np.diff(c[:5], axis=0)
    if len(set(el[:5])) != 1 or not np.allclose(steps, steps[0], atol=1e-3):
        raise ValueError("the first five atoms are not five evenly spaced positions of one ion")
    lattice = np.array(a["lattice_mat"], float)
    direct = float(np.linalg.norm((c[4] - c[0]) @ lattice))
    if direct - min_image(lattice, (c[4] - c[0])[None])[0] > 0.05:
        raise ValueError(f"the source's hop is not the shortest periodic image: {direct:.2f} Å")
    species = [el[0]] + el[5:]
    ini = np.vstack([c[:1], c[5:]])
    fin = np.vstack([c[4:5], c[5:]])
    return lattice, species, ini, fin


def endpoints_from_both(entry: dict) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    ai, af = entry["atoms_ini"], entry["atoms_fin"]
    if ai["elements"] != af["elements"]:
        raise ValueError("the endpoints list different atoms")
    if not np.allclose(ai["lattice_mat"], af["lattice_mat"], atol=1e-3):
        raise ValueError("the endpoints have different lattices")
    return (np.array(ai["lattice_mat"], float), list(ai["elements"]),
            np.array(ai["coords"], float), np.array(af["coords"], float))


def check_path(lattice: np.ndarray, species: list[str], ini: np.ndarray, fin: np.ndarray,
               ion: str) -> dict:
    """The moving ion, its displacement and the other atoms' motion; ValueError if unusable."""
    moved = min_image(lattice, fin - ini)
    ions = [i for i, s in enumerate(species) if s == ion]
    k = max(ions, key=lambda i: moved[i])
    hop = float(moved[k])
    if not MIN_HOP <= hop <= MAX_HOP:
        raise ValueError(f"moving-ion displacement outside {MIN_HOP}-{MAX_HOP} Å: {hop:.2f} Å")
    others = [(i, float(moved[i])) for i in range(len(species)) if i != k and moved[i] > RELAXED]
    if any(d > MAX_OTHER for _, d in others):
        raise ValueError(f"another atom moves more than {MAX_OTHER} Å: {max(d for _, d in others):.2f} Å")
    for frac in (ini, fin):
        s = Structure(Lattice(lattice), species, frac)
        try:
            validate_structure(s)
        except IonscreenError as exc:
            raise ValueError(f"structure validation: {exc}") from exc
    return {"moving_index": k, "displacement": round(hop, 3),
            "relaxed_atoms": [[i, species[i], round(d, 3)] for i, d in others]}


def split_of(ids_by_ion: dict[str, list[str]]) -> dict[str, str]:
    """Per ion, order ids by sha256(seed:id); the first half (rounded up) is calibration."""
    out = {}
    for ids in ids_by_ion.values():
        order = sorted(ids, key=lambda i: hashlib.sha256(f"{SPLIT_SEED}:{i}".encode()).hexdigest())
        half = (len(order) + 1) // 2
        out.update({i: "calibration" if n < half else "held-out" for n, i in enumerate(order)})
    return out


def _record(entry: dict, tag: str, src: str, commit: str, lattice, species, ini, fin,
            endpoints: str) -> dict:
    ion = species[0]
    chk = check_path(lattice, species, ini, fin, ion)
    ini, fin = np.mod(ini, 1.0), np.mod(fin, 1.0)
    ini_r, fin_r = np.round(ini, DIGITS) % 1.0, np.round(fin, DIGITS) % 1.0
    changed = np.flatnonzero(np.abs(ini_r - fin_r).max(axis=1) > 0)
    comp = Structure(Lattice(lattice), species, ini).composition
    return {
        "id": f"pmb-{tag}-{entry['jid']}", "sys_name": entry["sys_name"],
        "material_class": entry["class"], "ion": ion,
        "counted": ion in COUNTED, "formula": comp.formula, "reduced_formula": comp.reduced_formula,
        "n_atoms": len(species), "dft_barrier": float(entry["target"]),
        "n_dft_images": None, "endpoints": endpoints, **chk,
        "lattice": np.round(lattice, DIGITS).tolist(), "species": species,
        "frac_initial": ini_r.tolist(),
        "final_changes": {str(i): fin_r[i].tolist() for i in changed},
        "source": {"repo": REPO, "path": src, "commit": commit, "jid": entry["jid"]},
    }


def dedupe_key(rec: dict) -> tuple:
    """Same ion, cell contents and hop (endpoint order ignored), to 2 decimals."""
    k = rec["moving_index"]
    a = tuple(np.round(rec["frac_initial"][k], 2))
    b = tuple(np.round(rec["final_changes"].get(str(k), rec["frac_initial"][k]), 2))
    return (rec["ion"], rec["formula"], round(sum(map(sum, rec["lattice"])), 2), min(a, b), max(a, b))


def curate(gitdir: Path) -> tuple[list[dict], Counter, dict]:
    """The kept paths (with their split), the drop reasons counted, and provenance."""
    commit = git_head(gitdir)
    both = {e["jid"]: e for e in git_json(gitdir, BOTH)}
    drops: Counter = Counter()
    notes: Counter = Counter()
    kept: list[dict] = []
    seen: set = set()
    for tag in ("TRAIN", "TEST"):
        src = FIVE.format(tag)
        for entry in git_json(gitdir, src):
            ion = entry["atoms"]["elements"][0]
            if ion not in COUNTED + REFERENCE:
                drops[f"ion {ion} is not an ionscreen working ion"] += 1
                continue
            try:
                lattice, species, ini, fin = endpoints_from_five(entry)
                path, how = src, "initial endpoint; final = same atoms with the ion at its final site"
                b = both.get(entry["jid"]) if tag == "TEST" else None
                rec = _record(entry, tag.lower(), path, commit, lattice, species, ini, fin, how)
                if b is not None and b["sys_name"] == entry["sys_name"] and b["target"] == entry["target"]:
                    try:  # the relaxed endpoints when they pass; the 5-image ones otherwise
                        rec = _record(entry, tag.lower(), BOTH, commit, *endpoints_from_both(b),
                                      "both endpoints as relaxed in the source")
                    except ValueError as exc:
                        notes[f"TEST endpoints not used ({str(exc).split(':')[0]})"] += 1
            except ValueError as exc:
                drops[str(exc).split(":")[0]] += 1  # the reason, without this path's numbers
                continue
            key = dedupe_key(rec)
            if key in seen:
                drops["duplicate of an earlier path"] += 1
                continue
            seen.add(key)
            kept.append(rec)
    by_ion: dict[str, list[str]] = {}
    for r in kept:
        by_ion.setdefault(r["ion"], []).append(r["id"])
    split = split_of(by_ion)
    for r in kept:
        r["split"] = split[r["id"]]
    meta = {"repo": REPO, "commit": commit, "barrier_definition": BARRIER_DEFINITION,
            "split_rule": f"per ion, ids sorted by sha256('{SPLIT_SEED}:' + id); first half "
                          "(rounded up) calibration, rest held-out",
            "drops": dict(drops), "notes": dict(notes)}
    return kept, drops, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gitdir", type=Path, help="git directory of " + REPO)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    kept, drops, meta = curate(git_dir(args.gitdir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"meta": meta, "paths": kept}
    with gzip.open(args.out, "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump(doc, fh, separators=(",", ":"))
    counts = Counter((r["ion"], r["split"]) for r in kept)
    print(f"{len(kept)} paths kept ({sum(r['counted'] for r in kept)} multivalent) -> {args.out}")
    for (ion, sp), n in sorted(counts.items()):
        print(f"  {ion:3s} {sp:12s} {n}")
    for reason, n in drops.most_common():
        print(f"  dropped {n}: {reason}")
    for reason, n in meta["notes"].items():
        print(f"  note {n}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
