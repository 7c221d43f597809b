"""Coordination-polymer hosts of the DI–M–L family: ordered and disordered periodic models.

Chemistry
---------
A tetra-anionic bis(chelating) ligand L⁴⁻ (default PTtSA⁴⁻, benzene-1,2,4,5-tetra(methyl-
sulfonamide) with every sulfonamide N deprotonated) bridges two nodal metals M²⁺ through its
two ortho pairs of N, so that tetrahedral M(N,N)₂ nodes and ligands alternate in 1D chains
…M–L–M–L…; the storage cation DI²⁺ sits between chains, bound to sulfonyl O. Per formula
unit DI M L (e.g. MgZn(PTtSA)) the charges are +2 +2 −4. DI ∈ {Mg, Ca, Sr, Ba, Zn},
M ∈ {Zn, Co, Ni, Mn, Fe}: the 25 pairs of :func:`polymer_compositions`.

Ligands are data (``data/ligands.json``): a rigid template per ligand (Cartesian coordinates,
ring in the xy plane, chain axis x), its covalent graph, the donor atoms for M and for DI,
oxidation states, and the "rotors" (the sulfonyl groups, which turn rigidly about their N).

Geometry of a model
-------------------
* Chain: ligand A at x = 0, M at x_M, ligand B (A turned by 90° about x) at 2·x_M, M at 3·x_M;
  each M has four N at exactly M–N (:data:`M_N_DISTANCE`) in a D2d tetrahedron (two chelate
  planes at 90°). x_M follows from the template and M–N, so the chain repeat a = 4·x_M
  (≈ 15.4 Å for Zn: M–M across a ligand ≈ 7.7 Å).
* Cell (ordered model): one chain and two formula units in a triclinic cell
  a1 = (a, 0, 0), a2 = (s_b, b, t_b), a3 = (s_c, u_c, c). Each ligand side (a meta pair of
  sulfonyl groups) faces the same side of the neighbouring chain across a2 (ligand A) or a3
  (ligand B); one DI sits in each such sulfonyl pocket.
* Free variables: b, c and the four shears, the chain's rotation about its axis, three angles
  per sulfonyl group (swing ψ in the ring plane about N, tilt τ about the C(ring)–N bond,
  torsion φ about N–S; bounds ψ ±30°, τ ±50°, φ free) and the DI positions. They minimise
  (L-BFGS-B, analytic gradients) a penalty made of (i) (r − r₀)² for the six O nearest each
  DI, r₀ = :data:`DI_O_DISTANCE`, steepened beyond ±5 %; (ii) a wall pushing every other O
  beyond 1.22·r₀; (iii) squared overlaps below the target contact distances
  (:data:`TARGET_CONTACTS`) plus a steep wall just above the validation limits
  (:data:`CONTACT_LIMITS`); (iv) a weak pressure (volume per formula unit). Covalent bond
  lengths never change (rigid groups; M–N fixed by construction).
* The result: each DI sits in the pocket between a ligand side and the same side of the
  neighbouring chain, bound by four sulfonyl groups, two of them chelating (κ²O,O') and two
  monodentate, six O at r₀ within a few per cent.
* The start of that minimisation for each (ligand, DI) is stored in the ligand file
  (``packings``), produced by :func:`search_packing` (random starts, best kept); a build
  polishes it for the chosen M, so a build takes about a second.

Disordered ("amorphous") ensembles (:func:`build_disordered`): a supercell of the ordered
model (default 1×2×2: four chains, eight formula units), its cross-section stretched by 2 %
per direction (amorphous solids are a little less dense than crystals), receives random chain
rotations about their axes, shifts along and across them, sulfonyl rotations (torsion about
N–S, swing and tilt about N) and DI displacements (optionally jumps to the mirror site of the
pocket). Sulfonyl groups and DIs are then relaxed with the same penalty, at fixed cell, while
springs hold the chains near their drawn positions; the model is kept only if it passes
:func:`check_polymer`, otherwise the draw is rejected and redrawn (with halved amplitudes
after repeated rejections). Models are reproducible from the seed.

Oxidation states (heteroatom convention, per ligand in the data file): S +6, N −3, O −2,
F −1, C and H 0 except a CF3 carbon +3 (so that CF3 is neutral); the ligand sums to −4, DI
and M are +2. Bond-valence screening thus sees N, O (and F) as the anions and the metals as
the cations; the hydrocarbon part is neutral.

Capacity: the DI–M–L formula unit stores one DI²⁺, i.e. :data:`ELECTRONS_PER_FORMULA_UNIT`
= 2 electrons; :func:`formula_unit_mass` gives its molar mass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from pymatgen.core import Element, Lattice, Species, Structure
from pymatgen.optimization.neighbors import find_points_in_spheres
from scipy.optimize import minimize

from ionscreen.structures.errors import IonscreenError, UnsupportedIonError

__all__ = [
    "BUILDER",
    "BUILDER_VERSION",
    "CONTACT_LIMITS",
    "DI_CATIONS",
    "DI_COORDINATION",
    "DI_O_DISTANCE",
    "ELECTRONS_PER_FORMULA_UNIT",
    "M_N_DISTANCE",
    "NODE_METALS",
    "TARGET_CONTACTS",
    "ContactLimits",
    "Ligand",
    "PolymerBuildError",
    "PolymerCheck",
    "Rotor",
    "build_disordered",
    "build_ordered",
    "check_polymer",
    "formula_unit_mass",
    "get_ligand",
    "list_ligands",
    "polymer_bonds",
    "polymer_compositions",
    "provenance",
    "search_packing",
]

#: Name recorded in every provenance record.
BUILDER = "ionscreen.structures.polymers"
#: Version of the builder (bumped whenever the same inputs would give different structures).
BUILDER_VERSION = "1.0"
#: Electrons stored per DI M L formula unit (one DI²⁺ inserted on reduction of M L).
ELECTRONS_PER_FORMULA_UNIT = 2
#: Storage cations (DI²⁺) the builder knows.
DI_CATIONS: tuple[str, ...] = ("Mg", "Ca", "Sr", "Ba", "Zn")
#: Nodal metals (M²⁺, tetrahedral N4) the builder knows.
NODE_METALS: tuple[str, ...] = ("Zn", "Co", "Ni", "Mn", "Fe")
#: Target DI–O distance (Å) for six-coordinate DI²⁺ bound to sulfonyl O (≈ Shannon radii sums).
DI_O_DISTANCE: dict[str, float] = {"Mg": 2.10, "Zn": 2.10, "Ca": 2.35, "Sr": 2.55, "Ba": 2.75}
#: M–N distance (Å) for tetrahedral M²⁺ bound to deprotonated sulfonamide / amide N
#: (typical values; ≈ 2.0 Å as in the issue).
M_N_DISTANCE: dict[str, float] = {"Zn": 2.00, "Co": 1.98, "Ni": 1.96, "Mn": 2.07, "Fe": 2.03}
#: Number of O around each DI.
DI_COORDINATION = 6

_DATA_FILE = "ligands.json"
_DEG = math.pi / 180.0


class PolymerBuildError(IonscreenError):
    """A coordination-polymer model cannot be built (unknown ligand or metal, failed model)."""


# --------------------------------------------------------------------------- contacts


@dataclass(frozen=True)
class ContactLimits:
    """Shortest allowed distances (Å) between atoms that are not bonded.

    Pairs joined by one or two bonds of the model's graph (1-2, 1-3) are exempt, except the
    two 1-3 pairs across a sulfonamide N that stand for bond angles: ring C…S (C–N–S) and
    M…S (M–N–S). "heavy" is any of C, N, O, S, F. DI–S is a factor times the distance at
    which DI would chelate one SO2 group with both O at r₀ (so chelation is allowed, but not
    closer). ``di_o_tolerance`` and ``coordination_shell`` define the DI–O requirement: the
    six nearest O within ±tolerance·r₀, and no seventh O within shell·r₀.
    """

    heavy_heavy: float = 2.30
    h_heavy: float = 2.00
    h_h: float = 1.70
    di_s_factor: float = 0.95
    di_cn: float = 2.80
    di_h: float = 2.30
    di_f: float = 2.30
    cation_cation: float = 3.20
    m_heavy: float = 2.70
    m_h: float = 2.30
    ring_c_s: float = 2.40
    m_s: float = 2.80
    di_o_tolerance: float = 0.10
    coordination_shell: float = 1.15


#: Limits a built model must satisfy (checked by :func:`check_polymer`).
CONTACT_LIMITS = ContactLimits()
#: Distances the optimiser aims at (a margin above :data:`CONTACT_LIMITS`).
TARGET_CONTACTS = ContactLimits(
    heavy_heavy=2.60,
    h_heavy=2.25,
    h_h=1.95,
    di_s_factor=0.99,
    di_cn=3.00,
    di_h=2.50,
    di_f=2.50,
    cation_cation=3.50,
    m_heavy=2.90,
    m_h=2.60,
    ring_c_s=2.50,
    m_s=2.95,
    di_o_tolerance=0.05,
    coordination_shell=1.22,
)

_HEAVY = ("C", "N", "O", "S", "F")


# --------------------------------------------------------------------------- ligands


@dataclass(frozen=True)
class Rotor:
    """A rigid group that turns about ``pivot`` (the donor N); ``anchor`` is the ring C."""

    pivot: int
    anchor: int
    atoms: tuple[int, ...]


@dataclass(frozen=True)
class Ligand:
    """A bridging ligand template (see ``data/ligands.json``)."""

    name: str
    full_name: str
    formula: str
    charge: int
    description: str
    citation: dict[str, str]
    geometry_note: str
    labels: tuple[str, ...]
    symbols: tuple[str, ...]
    coords: tuple[tuple[float, float, float], ...]
    oxidation_states: tuple[float, ...]
    roles: tuple[str, ...]
    bonds: tuple[tuple[int, int], ...]
    metal_binding: tuple[tuple[int, ...], tuple[int, ...]]
    cation_binding: tuple[int, ...]
    rotors: tuple[Rotor, ...]
    packings: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def xyz(self) -> np.ndarray:
        return np.array(self.coords, dtype=float)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def mass(self) -> float:
        """Molar mass of the ligand (g/mol)."""
        return float(sum(Element(s).atomic_mass for s in self.symbols))


def _ligand_from_dict(d: dict[str, Any]) -> Ligand:
    atoms = d["atoms"]
    lig = Ligand(
        name=d["name"],
        full_name=d.get("full_name", d["name"]),
        formula=d["formula"],
        charge=int(d["charge"]),
        description=d.get("description", ""),
        citation=dict(d.get("citation", {})),
        geometry_note=d.get("geometry_note", ""),
        labels=tuple(a["label"] for a in atoms),
        symbols=tuple(a["element"] for a in atoms),
        coords=tuple(tuple(float(x) for x in a["xyz"]) for a in atoms),
        oxidation_states=tuple(float(a["oxidation_state"]) for a in atoms),
        roles=tuple(a.get("role", "") for a in atoms),
        bonds=tuple((int(i), int(j)) for i, j in d["bonds"]),
        metal_binding=(tuple(d["metal_binding"][0]), tuple(d["metal_binding"][1])),
        cation_binding=tuple(int(i) for i in d["cation_binding"]),
        rotors=tuple(
            Rotor(int(r["pivot"]), int(r["anchor"]), tuple(int(i) for i in r["atoms"]))
            for r in d["rotors"]
        ),
        packings={k: dict(v) for k, v in d.get("packings", {}).items()},
    )
    _check_ligand(lig)
    return lig


def _check_ligand(lig: Ligand) -> None:
    """Refuse a template the builder cannot use (a data-file error, not a user error)."""
    if abs(sum(lig.oxidation_states) - lig.charge) > 1e-6:
        raise PolymerBuildError(
            f"ligand {lig.name}: oxidation states sum to {sum(lig.oxidation_states):g}, "
            f"not the charge {lig.charge}; fix data/{_DATA_FILE}"
        )
    if lig.charge != -4:
        raise PolymerBuildError(
            f"ligand {lig.name} has charge {lig.charge}; DI M L needs a tetra-anion (-4)"
        )
    x = lig.xyz
    for side, pair in zip((1, -1), lig.metal_binding):
        if len(pair) != 2:
            raise PolymerBuildError(f"ligand {lig.name}: each metal_binding entry needs 2 atoms")
        mid = x[list(pair)].mean(axis=0)
        if abs(mid[1]) > 1e-3 or abs(mid[2]) > 1e-3 or np.sign(mid[0]) != side:
            raise PolymerBuildError(
                f"ligand {lig.name}: donor pair {pair} must be centred on the {'+' if side > 0 else '-'}x axis"
            )
    if len(lig.rotors) == 0:
        raise PolymerBuildError(f"ligand {lig.name}: no rotors (sulfonyl groups) defined")
    n = len(lig.rotors[0].atoms)
    if any(len(r.atoms) != n for r in lig.rotors):
        raise PolymerBuildError(f"ligand {lig.name}: all rotors must have the same size")
    if any(lig.symbols[i] != "O" for i in lig.cation_binding):
        raise PolymerBuildError(f"ligand {lig.name}: cation_binding atoms must be O")


@lru_cache(maxsize=1)
def _load() -> dict[str, Ligand]:
    text = resources.files("ionscreen.structures").joinpath("data", _DATA_FILE).read_text()
    doc = json.loads(text)
    return {d["name"]: _ligand_from_dict(d) for d in doc["ligands"]}


def list_ligands() -> list[str]:
    """Names of the ligands in the data file (``["PTtSA", ...]``)."""
    return list(_load())


def get_ligand(name: str) -> Ligand:
    """The ligand template called ``name`` (case-insensitive)."""
    table = _load()
    for key, lig in table.items():
        if key.lower() == str(name).lower():
            return lig
    raise PolymerBuildError(
        f"unknown ligand {name!r}; known ligands: {', '.join(table)}. Add a template to "
        f"structures/data/{_DATA_FILE} to use another one."
    )


def polymer_compositions() -> list[tuple[str, str]]:
    """The 25 (DI, M) pairs of the family, DI-major: ``[("Mg", "Zn"), ("Mg", "Co"), ...]``."""
    return [(di, m) for di in DI_CATIONS for m in NODE_METALS]


def _check_di(di: str) -> str:
    if di not in DI_CATIONS:
        raise UnsupportedIonError(
            f"storage cation {di!r} is not one the polymer builder models; choose one of "
            f"{', '.join(DI_CATIONS)}"
        )
    return di


def _check_m(m: str) -> str:
    if m not in NODE_METALS:
        raise PolymerBuildError(
            f"nodal metal {m!r} is not one the polymer builder models; choose one of "
            f"{', '.join(NODE_METALS)}"
        )
    return m


def formula_unit_mass(di: str, m: str, ligand: str = "PTtSA") -> float:
    """Molar mass (g/mol) of one DI M L formula unit, e.g. MgZn(PTtSA) ≈ 536.2."""
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    return float(Element(di).atomic_mass + Element(m).atomic_mass + lig.mass())


# --------------------------------------------------------------------------- geometry helpers


def _rot(axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about unit ``axes`` (..., 3) by ``angles`` (...)."""
    axes = np.asarray(axes, float)
    angles = np.asarray(angles, float)
    axes, angles = np.broadcast_arrays(axes, angles[..., None])
    angles = angles[..., 0]
    x, y, z = axes[..., 0], axes[..., 1], axes[..., 2]
    c, s = np.cos(angles), np.sin(angles)
    C = 1.0 - c
    R = np.empty(angles.shape + (3, 3))
    R[..., 0, 0] = c + x * x * C
    R[..., 0, 1] = x * y * C - z * s
    R[..., 0, 2] = x * z * C + y * s
    R[..., 1, 0] = y * x * C + z * s
    R[..., 1, 1] = c + y * y * C
    R[..., 1, 2] = y * z * C - x * s
    R[..., 2, 0] = z * x * C - y * s
    R[..., 2, 1] = z * y * C + x * s
    R[..., 2, 2] = c + z * z * C
    return R


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _chelate_di_s(lig: Ligand, r0: float) -> float:
    """DI–S distance when DI binds both O of one sulfonyl group at r0."""
    x = lig.xyz
    rot = lig.rotors[0]
    s = rot.atoms[0]
    o = [i for i in rot.atoms if lig.symbols[i] == "O"][:2]
    h = np.linalg.norm(x[o[0]] - x[o[1]]) / 2.0
    d_so = np.linalg.norm(x[o[0]] - x[s])
    return float(math.sqrt(max(r0 * r0 - h * h, 0.0)) + math.sqrt(max(d_so * d_so - h * h, 0.0)))


def _x_m(lig: Ligand, r_mn: float) -> float:
    """x of the metal chelated by the +x donor pair at M–N = r_mn."""
    x = lig.xyz
    a, b = lig.metal_binding[0]
    half = np.linalg.norm(x[a] - x[b]) / 2.0
    if r_mn <= half:
        raise PolymerBuildError(f"M–N {r_mn} Å is too short for the {lig.name} bite")
    return float((x[a][0] + x[b][0]) / 2.0 + math.sqrt(r_mn * r_mn - half * half))


# --------------------------------------------------------------------------- topology


class _Topology:
    """Atoms, graph and contact limits of a supercell (n1, n2, n3) of the one-chain cell."""

    def __init__(self, lig: Ligand, di: str, m: str, cells: tuple[int, int, int] = (1, 1, 1)):
        self.lig, self.di, self.m = lig, di, m
        self.cells = tuple(int(c) for c in cells)
        n1, n2, n3 = self.cells
        self.r0 = DI_O_DISTANCE[di]
        self.xm = _x_m(lig, M_N_DISTANCE[m])
        self.a = 4.0 * self.xm
        nc = n2 * n3
        per_chain = 2 * n1
        nl = nc * per_chain
        na = lig.n_atoms
        self.n_chains, self.n_lig = nc, nl
        # chain (i2, i3) in order; ligand slot k along the chain at x = 2 k xm
        self.chain_cell = np.array([(i2, i3) for i2 in range(n2) for i3 in range(n3)], int)
        self.lig_chain = np.repeat(np.arange(nc), per_chain)
        self.lig_slot = np.tile(np.arange(per_chain), nc)
        symbols: list[str] = []
        oxi: list[float] = []
        role: list[str] = []
        lig_index: list[int] = []
        tlabel: list[str] = []
        atom_chain: list[int] = []
        self.lig_start = np.zeros(nl, int)
        self.m_index = np.zeros(nl, int)
        for li in range(nl):
            self.lig_start[li] = len(symbols)
            symbols += lig.symbols
            oxi += lig.oxidation_states
            role += ["L"] * na
            lig_index += [li] * na
            tlabel += lig.labels
            atom_chain += [int(self.lig_chain[li])] * na
            self.m_index[li] = len(symbols)  # the M after ligand li (at x = (2k+1) xm)
            symbols.append(m)
            oxi.append(2.0)
            role.append("M")
            lig_index.append(-1)
            tlabel.append("M")
            atom_chain.append(int(self.lig_chain[li]))
        self.di_index = np.arange(len(symbols), len(symbols) + nl)
        symbols += [di] * nl
        oxi += [2.0] * nl
        role += ["DI"] * nl
        lig_index += [-1] * nl
        tlabel += ["DI"] * nl
        atom_chain += [-1] * nl
        self.symbols = np.array(symbols)
        self.oxi = np.array(oxi)
        self.role = np.array(role)
        self.lig_index = np.array(lig_index)
        self.template_label = tlabel
        self.atom_chain = np.array(atom_chain)
        self.n_atoms = len(symbols)

        # covalent + M–N graph
        bonds: list[tuple[int, int, str]] = []
        for li in range(nl):
            s = self.lig_start[li]
            bonds += [(s + i, s + j, "covalent") for i, j in lig.bonds]
        for li in range(nl):
            c, k = self.lig_chain[li], self.lig_slot[li]
            nxt = c * per_chain + (k + 1) % per_chain
            mi = self.m_index[li]
            bonds += [(mi, self.lig_start[li] + t, "M-N") for t in lig.metal_binding[0]]
            bonds += [(mi, self.lig_start[nxt] + t, "M-N") for t in lig.metal_binding[1]]
        self.bonds = bonds
        n = self.n_atoms
        adj = np.zeros((n, n), bool)
        for i, j, _ in bonds:
            adj[i, j] = adj[j, i] = True
        a_int = adj.astype(np.int32)
        two = (a_int @ a_int) > 0
        self.excluded = adj | two
        np.fill_diagonal(self.excluded, True)
        # 1-3 pairs across an amide N that stand for angles
        self.angle_pairs: dict[tuple[int, int], str] = {}
        for li in range(nl):
            s = self.lig_start[li]
            for r in lig.rotors:
                sulfur = s + r.atoms[0]
                self.angle_pairs[(min(s + r.anchor, sulfur), max(s + r.anchor, sulfur))] = "ring_c_s"
                n_atom = s + r.pivot
                for mi in np.where(adj[n_atom])[0]:
                    if self.role[mi] == "M":
                        self.angle_pairs[(min(mi, sulfur), max(mi, sulfur))] = "m_s"

        # rotor bookkeeping
        x = lig.xyz
        nr = len(lig.rotors)
        self.n_rot = nr
        self.rot_pivot = np.array([x[r.pivot] for r in lig.rotors])
        self.rot_atoms_local = np.array([r.atoms for r in lig.rotors], int)
        self.rot_tau_axis = _unit(np.array([x[r.pivot] - x[r.anchor] for r in lig.rotors]))
        self.rot_phi_axis = _unit(np.array([x[r.atoms[0]] - x[r.pivot] for r in lig.rotors]))
        self.template = x
        k = self.rot_atoms_local.shape[1]
        self.rot_atoms_flat = self.rot_atoms_local.ravel()
        self.tau_axes = np.tile(self.rot_tau_axis, (nl, 1))
        self.phi_axes = np.tile(self.rot_phi_axis, (nl, 1))
        self.rot_piv_rep = np.tile(self.rot_pivot, (nl, 1))
        rel = x[self.rot_atoms_local] - self.rot_pivot[:, None, :]
        self.rot_rel_rep = np.tile(rel, (nl, 1, 1)).reshape(nl * nr, k, 3)
        self.lig_atoms = self.lig_start[:, None] + np.arange(na)[None, :]
        self.rot_glob = self.lig_start[:, None, None] + self.rot_atoms_local[None, :, :]
        self.slot_turn = (self.lig_slot % 2) * (math.pi / 2.0)
        self.slot_shift = np.outer(2.0 * self.lig_slot * self.xm, [1.0, 0.0, 0.0])
        self.m_shift = np.outer((2.0 * self.lig_slot + 1.0) * self.xm, [1.0, 0.0, 0.0])
        self.chain_member = np.where(self.atom_chain >= 0)[0]
        self.o_mask = self.symbols == "O"
        self.chel = _chelate_di_s(lig, self.r0)
        self.thresholds = {"target": self._thresholds(TARGET_CONTACTS),
                           "check": self._thresholds(CONTACT_LIMITS)}

    # ---- contact limits
    def _thresholds(self, lim: ContactLimits) -> np.ndarray:
        sym, role = self.symbols, self.role
        n = self.n_atoms
        heavy = np.isin(sym, _HEAVY)
        is_h = sym == "H"
        metal = np.isin(role, ("M", "DI"))
        t = np.zeros((n, n), np.float64)
        t[np.ix_(heavy, heavy)] = lim.heavy_heavy
        t[np.ix_(heavy, is_h)] = lim.h_heavy
        t[np.ix_(is_h, heavy)] = lim.h_heavy
        t[np.ix_(is_h, is_h)] = lim.h_h
        m_row = np.where(heavy, lim.m_heavy, 0.0)
        m_row[is_h] = lim.m_h
        m_row[metal] = lim.cation_cation
        di_row = np.zeros(n)
        di_row[np.isin(sym, ("C", "N"))] = lim.di_cn
        di_row[sym == "S"] = lim.di_s_factor * self.chel
        di_row[sym == "F"] = lim.di_f
        di_row[is_h] = lim.di_h
        di_row[metal] = lim.cation_cation  # DI–O: handled by the coordination terms
        for idx in np.where(role == "M")[0]:
            t[idx, :] = m_row
            t[:, idx] = m_row
        for idx in np.where(role == "DI")[0]:
            t[idx, :] = di_row
            t[:, idx] = di_row
        t[self.excluded] = 0.0
        for (i, j), kind in self.angle_pairs.items():
            t[i, j] = t[j, i] = getattr(lim, kind)
        np.fill_diagonal(t, 0.0)
        return t


# --------------------------------------------------------------------------- state


@dataclass
class _State:
    lattice: np.ndarray  # (3, 3) rows a1, a2, a3
    origin: np.ndarray  # (nc, 3) chain origins (x of ligand slot 0; axis through it along x)
    omega: np.ndarray  # (nc,) chain rotation about x (rad)
    angles: np.ndarray  # (nl, nrot, 3) psi, tau, phi (rad)
    di: np.ndarray  # (nd, 3) Cartesian

    def copy(self) -> _State:
        return _State(*(np.array(v, copy=True) for v in
                         (self.lattice, self.origin, self.omega, self.angles, self.di)))


def _rot_fast(axes: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Rodrigues matrices (n, 3, 3) from unit axes (n, 3) and cos / sin (n,)."""
    x, y, z = axes[:, 0], axes[:, 1], axes[:, 2]
    C = 1.0 - c
    return np.stack([
        c + x * x * C, x * y * C - z * s, x * z * C + y * s,
        y * x * C + z * s, c + y * y * C, y * z * C - x * s,
        z * x * C - y * s, z * y * C + x * s, c + z * z * C,
    ], axis=-1).reshape(-1, 3, 3)


def _geometry(topo: _Topology, st: _State):
    """Cartesian coordinates and the pieces needed for gradients."""
    nl, nr = topo.n_lig, topo.n_rot
    ang = st.angles.reshape(nl * nr, 3)
    cos, sin = np.cos(ang), np.sin(ang)
    r_tau = _rot_fast(topo.tau_axes, cos[:, 1], sin[:, 1])
    cp, sp = cos[:, 0], sin[:, 0]
    r_psi = np.zeros((nl * nr, 3, 3))
    r_psi[:, 0, 0] = cp
    r_psi[:, 0, 1] = -sp
    r_psi[:, 1, 0] = sp
    r_psi[:, 1, 1] = cp
    r_psi[:, 2, 2] = 1.0
    r_phi = _rot_fast(topo.phi_axes, cos[:, 2], sin[:, 2])
    r_tp = r_tau @ r_psi
    r_all = r_tp @ r_phi
    moved = topo.rot_piv_rep[:, None, :] + np.einsum("nij,nkj->nki", r_all, topo.rot_rel_rep)
    y = np.broadcast_to(topo.template, (nl,) + topo.template.shape).copy()
    y[:, topo.rot_atoms_flat, :] = moved.reshape(nl, -1, 3)
    theta = st.omega[topo.lig_chain] + topo.slot_turn
    ct, stt = np.cos(theta), np.sin(theta)
    q = np.zeros((nl, 3, 3))
    q[:, 0, 0] = 1.0
    q[:, 1, 1] = ct
    q[:, 1, 2] = -stt
    q[:, 2, 1] = stt
    q[:, 2, 2] = ct
    centre = st.origin[topo.lig_chain] + topo.slot_shift
    x = np.empty((topo.n_atoms, 3))
    x[topo.lig_atoms] = centre[:, None, :] + np.einsum("lij,laj->lai", q, y)
    x[topo.m_index] = st.origin[topo.lig_chain] + topo.m_shift
    x[topo.di_index] = st.di
    aux = {"q": q, "r_tau": r_tau.reshape(nl, nr, 3, 3), "r_tp": r_tp.reshape(nl, nr, 3, 3),
           "centre": centre}
    return x, aux


# --------------------------------------------------------------------------- neighbours


@dataclass
class _Pairs:
    i: np.ndarray
    j: np.ndarray
    image: np.ndarray  # (n, 3) float integer offsets
    kind: np.ndarray  # 0 contact, 1 DI–O assigned, 2 DI–O other
    limit: np.ndarray  # contact limit, or r0 (kind 1), or exclusion radius (kind 2)
    hard: np.ndarray  # validation limit + _HARD_MARGIN (contacts; shell radius for kind 2)


def _neighbour_list(x: np.ndarray, lattice: np.ndarray, cutoff: float):
    i, j, img, d = find_points_in_spheres(
        np.ascontiguousarray(x), np.ascontiguousarray(x), float(cutoff),
        np.array([1, 1, 1], dtype=np.int64), np.ascontiguousarray(lattice, dtype=float), 1e-8,
    )
    keep = i < j
    return i[keep].astype(int), j[keep].astype(int), img[keep], d[keep]


def _pairs(topo: _Topology, x: np.ndarray, lattice: np.ndarray,
           assign: np.ndarray | None = None) -> tuple[_Pairs, np.ndarray]:
    """Pair list for the penalty. ``assign`` (n_DI, n_atoms) marks each DI's six O; by
    default the six nearest."""
    t = topo.thresholds["target"]
    cutoff = max(3.6, 1.3 * topo.r0) + 1.0
    i, j, img, d = _neighbour_list(x, lattice, cutoff)
    lim = t[i, j]
    hard = np.where(lim > 0, topo.thresholds["check"][i, j] + _HARD_MARGIN, 0.0)
    d0 = topo.di_index[0]
    is_di_i = i >= d0
    is_di_j = j >= d0
    di_o = (is_di_i & topo.o_mask[j]) | (is_di_j & topo.o_mask[i])
    di_atom = np.where(is_di_i, i, j)[di_o] - d0
    o_atom = np.where(is_di_i, j, i)[di_o]
    if assign is None:
        assign = np.zeros((len(topo.di_index), topo.n_atoms), bool)
        order = np.lexsort((d[di_o], di_atom))
        da, oa = di_atom[order], o_atom[order]
        first = np.searchsorted(da, np.arange(len(topo.di_index)))
        rank = np.arange(len(da)) - first[da]
        take = rank < DI_COORDINATION
        assign[da[take], oa[take]] = True
    kind = np.zeros(len(i), int)
    bound = assign[di_atom, o_atom]
    kind[np.where(di_o)[0]] = np.where(bound, 1, 2)
    lim[kind == 1] = topo.r0
    lim[kind == 2] = TARGET_CONTACTS.coordination_shell * topo.r0
    hard[kind == 1] = 0.0
    hard[kind == 2] = (CONTACT_LIMITS.coordination_shell + 0.02) * topo.r0
    keep = lim > 0
    return _Pairs(i[keep], j[keep], img[keep].astype(float), kind[keep], lim[keep],
                  hard[keep]), assign


# --------------------------------------------------------------------------- penalty

_W_CONTACT = 10.0
_W_DI = 5.0
_W_DI_OUT = 100.0  # steep extra penalty on DI–O deviations beyond _DI_SOFT·r0
_DI_SOFT = TARGET_CONTACTS.di_o_tolerance
_W_HARD = 400.0  # steep penalty below the validation limits (+ _HARD_MARGIN)
_HARD_MARGIN = 0.06


def _penalty(topo: _Topology, st: _State, pairs: _Pairs, w_volume: float = 0.0,
             want_grad: bool = True):
    x, aux = _geometry(topo, st)
    lat = st.lattice
    dvec = x[pairs.j] + pairs.image @ lat - x[pairs.i]
    r = np.sqrt((dvec * dvec).sum(axis=1))
    r = np.maximum(r, 1e-9)
    dedr = np.zeros_like(r)
    e = 0.0
    c = pairs.kind == 0
    ov = np.maximum(pairs.limit[c] - r[c], 0.0)
    e += _W_CONTACT * float((ov * ov).sum())
    dedr[c] = -2.0 * _W_CONTACT * ov
    h = (pairs.kind != 1) & (pairs.hard > r)
    ov = pairs.hard[h] - r[h]
    e += _W_HARD * float((ov * ov).sum())
    dedr[h] -= 2.0 * _W_HARD * ov
    b = pairs.kind == 1
    dev = r[b] - pairs.limit[b]
    out = np.sign(dev) * np.maximum(np.abs(dev) - _DI_SOFT * pairs.limit[b], 0.0)
    e += _W_DI * float((dev * dev).sum()) + _W_DI_OUT * float((out * out).sum())
    dedr[b] = 2.0 * _W_DI * dev + 2.0 * _W_DI_OUT * out
    o = pairs.kind == 2
    ov = np.maximum(pairs.limit[o] - r[o], 0.0)
    e += _W_DI * float((ov * ov).sum())
    dedr[o] = -2.0 * _W_DI * ov
    vol = abs(float(np.linalg.det(lat)))
    nfu = topo.n_lig
    e += w_volume * vol / nfu
    if not want_grad:
        return e, None, x
    gd = (dedr / r)[:, None] * dvec  # dE/d(dvec)
    n = len(x)
    g = np.stack([np.bincount(pairs.j, gd[:, k], n) - np.bincount(pairs.i, gd[:, k], n)
                  for k in range(3)], axis=1)
    g_lat = pairs.image.T @ gd  # dE/dL[k, :] = sum n_k gd
    if w_volume:
        g_lat = g_lat + w_volume / nfu * vol * np.linalg.inv(lat).T
    grads = _param_grads(topo, st, x, aux, g)
    grads["lattice"] = g_lat
    return e, grads, x


def _param_grads(topo: _Topology, st: _State, x: np.ndarray, aux, g: np.ndarray):
    q = aux["q"]
    nc = topo.n_chains
    mem = topo.chain_member
    ch = topo.atom_chain[mem]
    gm = g[mem]
    g_origin = np.stack([np.bincount(ch, gm[:, k], nc) for k in range(3)], axis=1)
    rel = x[mem] - st.origin[ch]
    g_omega = np.bincount(ch, rel[:, 1] * gm[:, 2] - rel[:, 2] * gm[:, 1], nc)
    # rotors: torque about the pivot, projected on the three rotation axes
    pivot_world = aux["centre"][:, None, :] + np.einsum("lij,rj->lri", q, topo.rot_pivot)
    glob = topo.rot_glob
    xr = x[glob] - pivot_world[:, :, None, :]
    torque = np.cross(xr, g[glob]).sum(axis=2)  # (nl, nr, 3)
    a_tau = np.einsum("lij,rj->lri", q, topo.rot_tau_axis)
    a_psi = np.einsum("lij,lrj->lri", q, aux["r_tau"][..., :, 2])
    a_phi = np.einsum("lij,lrjk,rk->lri", q, aux["r_tp"], topo.rot_phi_axis)
    g_ang = np.empty_like(st.angles)
    g_ang[..., 0] = (a_psi * torque).sum(-1)
    g_ang[..., 1] = (a_tau * torque).sum(-1)
    g_ang[..., 2] = (a_phi * torque).sum(-1)
    return {"origin": g_origin, "omega": g_omega, "angles": g_ang, "di": g[topo.di_index]}


# --------------------------------------------------------------------------- parameter vectors

_PSI_MAX = 30.0 * _DEG
_TAU_MAX = 50.0 * _DEG


def _lattice_from(a: float, p: np.ndarray) -> np.ndarray:
    b, sb, tb, c, sc, uc = p
    return np.array([[a, 0.0, 0.0], [sb, b, tb], [sc, uc, c]])


class _Vector:
    """Packs the free variables of a state into one vector (and back)."""

    def __init__(self, topo: _Topology, template: _State, free_lattice: bool, free_chains: bool):
        self.topo, self.t = topo, template
        self.free_lattice, self.free_chains = free_lattice, free_chains

    def pack(self, st: _State) -> np.ndarray:
        parts = []
        if self.free_lattice:
            L = st.lattice
            parts.append([L[1, 1], L[1, 0], L[1, 2], L[2, 2], L[2, 0], L[2, 1]])
        if self.free_chains:
            parts.append(st.origin.ravel())
        parts += [st.omega.ravel(), st.angles.ravel(), st.di.ravel()]
        return np.concatenate([np.ravel(p) for p in parts])

    def unpack(self, v: np.ndarray) -> _State:
        st = self.t.copy()
        k = 0
        if self.free_lattice:
            st.lattice = _lattice_from(self.topo.a, v[:6])
            k = 6
        if self.free_chains:
            n = st.origin.size
            st.origin = v[k:k + n].reshape(st.origin.shape)
            k += n
        n = st.omega.size
        st.omega = v[k:k + n].copy()
        k += n
        n = st.angles.size
        st.angles = v[k:k + n].reshape(st.angles.shape)
        k += n
        st.di = v[k:].reshape(st.di.shape)
        return st

    def grad(self, st: _State, grads: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        if self.free_lattice:
            G = grads["lattice"]
            parts.append([G[1, 1], G[1, 0], G[1, 2], G[2, 2], G[2, 0], G[2, 1]])
        if self.free_chains:
            parts.append(grads["origin"].ravel())
        parts += [grads["omega"].ravel(), grads["angles"].ravel(), grads["di"].ravel()]
        return np.concatenate([np.ravel(p) for p in parts])

    def bounds(self, st: _State) -> list[tuple[float | None, float | None]]:
        out: list[tuple[float | None, float | None]] = []
        if self.free_lattice:
            half = self.topo.a / 2.0
            out += [(6.5, 25.0), (-half, half), (-6.0, 6.0), (6.5, 25.0), (-half, half), (-6.0, 6.0)]
        if self.free_chains:
            out += [(None, None)] * st.origin.size
        out += [(None, None)] * st.omega.size
        ang = []
        for _ in range(st.angles.shape[0] * st.angles.shape[1]):
            ang += [(-_PSI_MAX, _PSI_MAX), (-_TAU_MAX, _TAU_MAX), (None, None)]
        out += ang
        out += [(None, None)] * st.di.size
        return out


def _relax(topo: _Topology, st: _State, free_lattice: bool, free_chains: bool,
           w_volume: float = 0.0, outer: int = 6, maxiter: int = 400,
           restrain: _State | None = None, w_restrain: float = 0.0) -> tuple[_State, float]:
    """Minimise the penalty; the pair list and DI–O assignment are refreshed between rounds.

    With ``restrain``, chain rotations and origins are held near those of that state by
    harmonic springs (``w_restrain`` per rad² and per Å²), so that a drawn disorder of the
    chains survives while the sulfonyl groups and DIs adapt to it.
    """
    vec = _Vector(topo, st, free_lattice, free_chains)
    assign = None
    e = math.inf
    for _ in range(outer):
        x, _aux = _geometry(topo, st)
        pairs, new_assign = _pairs(topo, x, st.lattice)
        same = assign is not None and np.array_equal(assign, new_assign)
        assign = new_assign
        vec.t = st

        def fun(v, pairs=pairs):
            s = vec.unpack(v)
            e_, g_, _ = _penalty(topo, s, pairs, w_volume)
            if restrain is not None and w_restrain:
                dw = s.omega - restrain.omega
                do = s.origin - restrain.origin
                e_ += w_restrain * float((dw * dw).sum() + (do * do).sum())
                g_["omega"] = g_["omega"] + 2.0 * w_restrain * dw
                g_["origin"] = g_["origin"] + 2.0 * w_restrain * do
            return e_, vec.grad(s, g_)

        bnds = vec.bounds(st)
        lo = np.array([-np.inf if b[0] is None else b[0] for b in bnds])
        hi = np.array([np.inf if b[1] is None else b[1] for b in bnds])
        x0 = np.clip(vec.pack(st), lo, hi)
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bnds,
                       options={"maxiter": maxiter, "ftol": 1e-12, "gtol": 1e-7})
        st = vec.unpack(res.x)
        converged = same and abs(e - res.fun) < 1e-6
        e = float(res.fun)
        if converged:
            break
    return st, e


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class PolymerCheck:
    """What :func:`check_polymer` found; ``ok`` when nothing is wrong."""

    problems: tuple[str, ...]
    di_o: tuple[tuple[float, ...], ...]  # the six nearest O distances per DI
    di_coordination: tuple[int, ...]  # O within coordination_shell·r0
    min_contact_ratio: float  # smallest (distance / limit) over checked non-bonded pairs
    density: float

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_geometry(topo: _Topology, x: np.ndarray, lattice: np.ndarray,
                    limits: ContactLimits = CONTACT_LIMITS) -> PolymerCheck:
    t = topo.thresholds["check"] if limits is CONTACT_LIMITS else topo._thresholds(limits)
    i, j, img, d = _neighbour_list(x, lattice, max(4.0, 1.3 * topo.r0))
    problems: list[str] = []
    lim = t[i, j]
    di_o = (np.isin(i, topo.di_index) & topo.o_mask[j]) | (np.isin(j, topo.di_index) & topo.o_mask[i])
    chk = (lim > 0) & ~di_o
    ratio = d[chk] / lim[chk]
    min_ratio = float(ratio.min()) if ratio.size else math.inf
    for n_ in np.where(chk & (d < lim))[0][:10]:
        a, b = int(i[n_]), int(j[n_])
        problems.append(
            f"contact {topo.symbols[a]}{a} ({topo.template_label[a]})–{topo.symbols[b]}{b} "
            f"({topo.template_label[b]}) {d[n_]:.2f} Å < {lim[n_]:.2f} Å")
    r0 = topo.r0
    shells = []
    cns = []
    for k in topo.di_index:
        sel = di_o & ((i == k) | (j == k))
        ds = np.sort(d[sel])
        six = ds[:DI_COORDINATION]
        shells.append(tuple(float(v) for v in six))
        cn = int((ds <= limits.coordination_shell * r0).sum())
        cns.append(cn)
        if len(six) < DI_COORDINATION or np.any(np.abs(six - r0) > limits.di_o_tolerance * r0):
            problems.append(
                f"DI {k}: nearest O at {', '.join(f'{v:.2f}' for v in six)} Å, not all within "
                f"{limits.di_o_tolerance:.0%} of {r0:.2f} Å")
        if cn != DI_COORDINATION:
            problems.append(f"DI {k}: {cn} O within {limits.coordination_shell}·r0, not {DI_COORDINATION}")
    mass = sum(Element(s).atomic_mass for s in topo.symbols)
    density = float(mass / abs(np.linalg.det(lattice)) * 1.66053906660)
    return PolymerCheck(tuple(problems), tuple(shells), tuple(cns), min_ratio, density)


# --------------------------------------------------------------------------- packings


def _state_from_packing(topo: _Topology, packing: dict[str, Any]) -> _State:
    """The one-chain ordered state from stored packing parameters (degrees, Å)."""
    lat = _lattice_from(topo.a, np.array([packing["b"], packing["s_b"], packing["t_b"],
                                          packing["c"], packing["s_c"], packing["u_c"]], float))
    ang = np.array(packing["angles"], float) * _DEG  # (2, nr, 3)
    st = _State(lattice=lat, origin=np.zeros((1, 3)), omega=np.array([packing["omega"] * _DEG]),
                angles=ang.reshape(2, topo.n_rot, 3).copy(), di=np.zeros((2, 3)))
    off = np.array(packing["di"], float)
    st.di = np.array([off[0], off[1] + [2.0 * topo.xm, 0.0, 0.0]])
    return st


def _packing_from_state(topo: _Topology, st: _State) -> dict[str, Any]:
    L = st.lattice
    return {
        "b": round(float(L[1, 1]), 4), "s_b": round(float(L[1, 0]), 4),
        "t_b": round(float(L[1, 2]), 4), "c": round(float(L[2, 2]), 4),
        "s_c": round(float(L[2, 0]), 4), "u_c": round(float(L[2, 1]), 4),
        "omega": round(float(st.omega[0] / _DEG), 3),
        "angles": np.round(st.angles / _DEG, 3).tolist(),
        "di": np.round(np.array([st.di[0], st.di[1] - [2.0 * topo.xm, 0.0, 0.0]]), 4).tolist(),
    }


_W_VOLUME = 0.004


def _random_start(topo: _Topology, rng: np.random.Generator) -> _State:
    b, c = rng.uniform(8.5, 11.0, 2)
    sb, sc = rng.uniform(-4.0, 4.0, 2)
    tb, uc = rng.normal(0.0, 1.0, 2)
    lat = _lattice_from(topo.a, np.array([b, sb, tb, c, sc, uc]))
    ang = np.zeros((2, topo.n_rot, 3))
    ang[..., 0] = rng.uniform(-10, 10, (2, topo.n_rot)) * _DEG
    ang[..., 1] = rng.uniform(-25, 25, (2, topo.n_rot)) * _DEG
    ang[..., 2] = rng.uniform(-math.pi, math.pi, (2, topo.n_rot))
    di = np.array([lat[1] / 2.0, lat[2] / 2.0 + [2.0 * topo.xm, 0.0, 0.0]]) + rng.normal(0, 0.5, (2, 3))
    return _State(lat, np.zeros((1, 3)), np.array([rng.uniform(-45, 45) * _DEG]), ang, di)


def search_packing(di: str, ligand: str = "PTtSA", m: str = "Zn", n_starts: int = 40,
                   seed: int = 0) -> dict[str, Any]:
    """Search an ordered packing from random starts; returns the best as stored in the data file.

    This is how the ``packings`` entries of ``data/ligands.json`` were made (``m="Zn"``,
    ``n_starts=40``; each entry's ``search`` record names the seed that gave it; Zn as DI
    reuses the Mg search, same r₀). :func:`build_ordered` polishes the stored entry for the
    chosen M, and falls back to this search (20 starts, slow) for a ligand without one.
    The result carries its penalty and density.
    """
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    topo = _Topology(lig, di, m)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_starts):
        st = _random_start(topo, rng)
        st, _e = _relax(topo, st, True, False, w_volume=_W_VOLUME, outer=4, maxiter=300)
        st, e = _relax(topo, st, True, False, w_volume=_W_VOLUME, outer=6, maxiter=600)
        x, _ = _geometry(topo, st)
        chk = _check_geometry(topo, x, st.lattice)
        score = (len(chk.problems), e)
        if best is None or score < best[0]:
            best = (score, st, chk)
    assert best is not None
    (_n, e), st, chk = best
    out = _packing_from_state(topo, st)
    out["penalty"] = round(float(e), 5)
    out["density_g_cm3"] = round(chk.density, 4)
    out["search"] = {"m": m, "n_starts": n_starts, "seed": seed, "problems": len(chk.problems)}
    return out


# --------------------------------------------------------------------------- building


def _ordered_state(lig: Ligand, di: str, m: str) -> tuple[_Topology, _State]:
    topo = _Topology(lig, di, m)
    packing = lig.packings.get(di)
    if packing is None:
        packing = search_packing(di, lig.name, m, n_starts=20)
    st = _state_from_packing(topo, packing)
    st, _e = _relax(topo, st, True, False, w_volume=_W_VOLUME, outer=6, maxiter=600)
    return topo, st


@lru_cache(maxsize=128)
def _ordered_cached(ligand: str, di: str, m: str) -> tuple[_Topology, _State]:
    return _ordered_state(get_ligand(ligand), di, m)


def provenance(kind: str, ligand: str, di: str, m: str, seed: int | None = None,
               model_index: int | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance record attached to every built structure (``structure.properties``)."""
    rec = {"builder": BUILDER, "version": BUILDER_VERSION, "kind": kind, "ligand": ligand,
           "di": di, "m": m, "seed": seed, "model_index": model_index}
    rec.update(extra)
    return rec


def _to_structure(topo: _Topology, x: np.ndarray, lattice: np.ndarray,
                  prov: dict[str, Any]) -> Structure:
    species = [Species(s, float(o) if o != int(o) else int(o)) for s, o in zip(topo.symbols, topo.oxi)]
    latt = Lattice(lattice)
    struct = Structure(latt, species, x, coords_are_cartesian=True,
                       site_properties={
                           "role": topo.role.tolist(),
                           "ligand_index": topo.lig_index.tolist(),
                           "template_label": list(topo.template_label),
                       })
    # DI–O bonds: the six nearest O of each DI in the final model
    i, j, img, d = _neighbour_list(x, lattice, 1.5 * topo.r0)
    bonds = [[int(a), int(b), kind] for a, b, kind in topo.bonds]
    for k in topo.di_index:
        sel = ((i == k) & topo.o_mask[j]) | ((j == k) & topo.o_mask[i])
        other = np.where(i[sel] == k, j[sel], i[sel])
        for o in other[np.argsort(d[sel])][:DI_COORDINATION]:
            bonds.append([int(k), int(o), "DI-O"])
    chk = _check_geometry(topo, x, lattice)
    struct.properties = {
        "provenance": prov,
        "bonds": bonds,
        "formula_units": int(topo.n_lig),
        "density_g_cm3": round(chk.density, 4),
    }
    return struct


def build_ordered(di: str, m: str, ligand: str = "PTtSA") -> Structure:
    """Ordered periodic model of DI M L (two formula units, one chain per cell).

    Every site carries its oxidation state; site properties ``role`` ("DI", "M", "L"),
    ``ligand_index`` and ``template_label``; ``structure.properties`` holds ``provenance``,
    ``bonds`` (covalent graph from the ligand template, M–N and DI–O bonds of the
    construction), ``formula_units`` and ``density_g_cm3``.
    """
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    topo, st = _ordered_cached(lig.name, di, m)
    x, _ = _geometry(topo, st)
    chk = _check_geometry(topo, x, st.lattice)
    if not chk.ok:
        raise PolymerBuildError(
            f"ordered {di}{m}({lig.name}) model fails its checks: {chk.problems[0]}"
            f"{f' (+{len(chk.problems) - 1} more)' if len(chk.problems) > 1 else ''}; "
            "re-run search_packing for this ligand and cation and store the result")
    prov = provenance("ordered", lig.name, di, m, cells=[1, 1, 1])
    return _to_structure(topo, x, st.lattice, prov)


def _supercell_state(topo_s: _Topology, st1: _State) -> _State:
    n1, n2, n3 = topo_s.cells
    lat1 = st1.lattice
    lat = np.array([lat1[0] * n1, lat1[1] * n2, lat1[2] * n3])
    origins = np.array([i2 * lat1[1] + i3 * lat1[2] for i2, i3 in topo_s.chain_cell])
    omega = np.full(topo_s.n_chains, st1.omega[0])
    per_chain = 2 * n1
    angles = np.array([st1.angles[k % 2] for _c in range(topo_s.n_chains) for k in range(per_chain)])
    di = []
    for c in range(topo_s.n_chains):
        for k in range(per_chain):
            shift = origins[c] + (k // 2) * lat1[0]
            di.append(st1.di[k % 2] + shift)
    return _State(lat, origins, omega, angles, np.array(di))


def _pocket_mirror(topo_s: _Topology, st: _State, d: int) -> np.ndarray:
    """The alternative site of DI ``d``: its position mirrored through its pocket's x-plane."""
    li = d  # DI d belongs to ligand d (one per ligand)
    centre = st.origin[topo_s.lig_chain[li]] + [2.0 * topo_s.lig_slot[li] * topo_s.xm, 0.0, 0.0]
    p = st.di[d].copy()
    p[0] = 2.0 * centre[0] - p[0]
    return p


def _expand(topo: _Topology, st: _State, expansion: float) -> _State:
    """Scale a2 and a3 by 1 + expansion; chains (and their DIs) move with the cell."""
    st = st.copy()
    lat = st.lattice.copy()
    frac = st.origin @ np.linalg.inv(lat)
    lat[1] *= 1.0 + expansion
    lat[2] *= 1.0 + expansion
    origin = frac @ lat
    st.di = st.di + (origin - st.origin)[topo.lig_chain]
    st.origin, st.lattice = origin, lat
    return st


def _draw(topo: _Topology, base: _State, rng: np.random.Generator, scale: float,
          amp: dict[str, float]) -> _State:
    """One random disordered start: chain moves, sulfonyl moves, DI placement."""
    st = base.copy()
    nc = topo.n_chains
    st.omega += rng.uniform(-1.0, 1.0, nc) * amp["rotation"] * scale * _DEG
    st.origin[:, 0] += rng.uniform(-1.0, 1.0, nc) * amp["shift"] * scale
    st.origin[:, 1:] += rng.uniform(-1.0, 1.0, (nc, 2)) * amp["lateral"] * scale
    x_axis = np.array([1.0, 0.0, 0.0])
    for d in range(topo.n_lig):  # each DI first follows its chain
        c = topo.lig_chain[d]
        turn = _rot(x_axis, np.array(st.omega[c] - base.omega[c]))
        st.di[d] = st.origin[c] + turn @ (base.di[d] - base.origin[c])
    shape = st.angles[..., 2].shape
    st.angles[..., 2] += rng.uniform(-1.0, 1.0, shape) * amp["torsion"] * scale * _DEG
    st.angles[..., :2] += rng.uniform(-1.0, 1.0, shape + (2,)) * amp["swing"] * scale * _DEG
    st.angles[..., 0] = np.clip(st.angles[..., 0], -_PSI_MAX, _PSI_MAX)
    st.angles[..., 1] = np.clip(st.angles[..., 1], -_TAU_MAX, _TAU_MAX)
    flips = rng.random(topo.n_lig) < amp["site_flip"] * scale
    for d in np.where(flips)[0]:
        st.di[d] = _pocket_mirror(topo, st, int(d))
    st.di += rng.normal(0.0, amp["di"] * scale, st.di.shape)
    return st


_W_RESTRAIN = 200.0


def build_disordered(di: str, m: str, ligand: str = "PTtSA", n_models: int = 4, seed: int = 0,
                     cells: Sequence[int] = (1, 2, 2), max_rotation: float = 10.0,
                     max_shift: float = 0.4, max_lateral: float = 0.2,
                     max_torsion: float = 25.0, max_swing: float = 5.0,
                     di_displacement: float = 0.25, site_flip_probability: float = 0.0,
                     expansion: float = 0.02, max_tries: int = 12) -> list[Structure]:
    """An ensemble of ``n_models`` disordered ("amorphous") models, reproducible from ``seed``.

    Each model is a ``cells`` supercell of the ordered model (default 1×2×2: four chains,
    eight formula units) whose a2 and a3 are stretched by ``expansion`` (an amorphous solid is
    a little less dense than its crystal; 0.02 → −4 % density). Random moves, drawn uniformly
    within the amplitudes: per chain a rotation about its axis (±``max_rotation``°), a shift
    along it (±``max_shift`` Å) and sideways (±``max_lateral`` Å); per sulfonyl group a
    torsion about N–S (±``max_torsion``°) and swing / tilt about N (±``max_swing``°); per DI a
    Gaussian displacement (σ = ``di_displacement`` Å) and, with ``site_flip_probability``,
    a jump to the mirror site of its pocket. The sulfonyl groups and DIs are then relaxed
    with the builder's penalty while springs hold the chains near their drawn positions, at
    fixed cell. A model is kept only if it passes :func:`check_polymer` (contacts, six O at
    r₀ ± 10 % around every DI, no seventh O within 1.15·r₀); otherwise the draw is rejected
    and redrawn (amplitudes halved after ``max_tries`` // 2 rejections).

    Site flips are off by default: in the ordered packing every pocket holds one DI, and a
    DI moved to the mirror site of its pocket is rejected most of the time.
    """
    _check_di(di)
    _check_m(m)
    lig = get_ligand(ligand)
    if n_models < 1:
        raise PolymerBuildError(f"n_models must be at least 1 (got {n_models})")
    cells_t = tuple(int(c) for c in cells)
    if len(cells_t) != 3 or min(cells_t) < 1:
        raise PolymerBuildError(f"cells must be three positive integers (got {cells!r})")
    amp = {"rotation": max_rotation, "shift": max_shift, "lateral": max_lateral,
           "torsion": max_torsion, "swing": max_swing, "di": di_displacement,
           "site_flip": site_flip_probability}
    _topo1, st1 = _ordered_cached(lig.name, di, m)
    topo = _Topology(lig, di, m, cells_t)
    base = _expand(topo, _supercell_state(topo, st1), expansion)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**63 - 1, n_models)
    out: list[Structure] = []
    for index in range(n_models):
        model_rng = np.random.default_rng(seeds[index])
        accepted = None
        last = ""
        for attempt in range(max_tries):
            scale = 1.0 if attempt < max_tries // 2 else 0.5
            drawn = _draw(topo, base, model_rng, scale, amp)
            st, _e = _relax(topo, drawn, False, True, outer=5, maxiter=300,
                            restrain=drawn, w_restrain=_W_RESTRAIN)
            x, _ = _geometry(topo, st)
            chk = _check_geometry(topo, x, st.lattice)
            if chk.ok:
                accepted = (st, x, attempt)
                break
            last = chk.problems[0]
        if accepted is None:
            raise PolymerBuildError(
                f"no acceptable disordered {di}{m}({lig.name}) model after {max_tries} draws "
                f"(last problem: {last}); use smaller amplitudes (max_rotation, max_shift, "
                "max_torsion, ...) or a larger max_tries")
        st, x, attempt = accepted
        prov = provenance(
            "disordered", lig.name, di, m, seed=seed, model_index=index, cells=list(cells_t),
            draws=attempt + 1,
            amplitudes={"max_rotation_deg": max_rotation, "max_shift_A": max_shift,
                        "max_lateral_A": max_lateral, "max_torsion_deg": max_torsion,
                        "max_swing_deg": max_swing, "di_displacement_A": di_displacement,
                        "site_flip_probability": site_flip_probability,
                        "expansion": expansion})
        out.append(_to_structure(topo, x, st.lattice, prov))
    return out


# --------------------------------------------------------------------------- structure-level API


def polymer_bonds(structure: Structure) -> list[tuple[int, int, str]]:
    """Bonds of a built model: ``(i, j, kind)`` with kind "covalent", "M-N" or "DI-O".

    They come from the construction (ligand template graph, chelation, DI assignment), not from
    distances, so they can be used to check distances.
    """
    bonds = (structure.properties or {}).get("bonds")
    if bonds is None:
        raise PolymerBuildError("structure was not made by ionscreen.structures.polymers (no bonds)")
    return [(int(i), int(j), str(k)) for i, j, k in bonds]


def check_polymer(structure: Structure, limits: ContactLimits = CONTACT_LIMITS) -> PolymerCheck:
    """Check a built model: contacts, DI–O shell and coordination number, charge balance."""
    prov = (structure.properties or {}).get("provenance")
    if not prov or prov.get("builder") != BUILDER:
        raise PolymerBuildError("structure was not made by ionscreen.structures.polymers")
    lig = get_ligand(prov["ligand"])
    n_fu = int(structure.properties["formula_units"])
    cells = tuple(prov.get("cells", (1, 1, 1)))
    topo = _Topology(lig, prov["di"], prov["m"], cells)
    if topo.n_atoms != len(structure) or topo.n_lig != n_fu:
        raise PolymerBuildError("structure does not match its provenance (atoms were changed)")
    x = structure.cart_coords
    chk = _check_geometry(topo, x, structure.lattice.matrix, limits)
    net = sum(getattr(sp, "oxi_state", 0.0) * occ for site in structure for sp, occ in site.species.items())
    if abs(net) > 1e-6:
        chk = replace(chk, problems=chk.problems + (f"net charge {net:+.3f} e per cell",))
    return chk
