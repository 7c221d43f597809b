"""Geometry of a model: contact limits, topology (atoms, graph, rotors), state, coordinates
and the neighbour pair list that the penalty works on.

A :class:`_State` holds the free variables (lattice, chain origins and rotations, sulfonyl
angles, DI positions); :func:`_geometry` turns it into Cartesian coordinates of the atoms of a
:class:`_Topology` (a supercell of the one-chain cell), with the pieces the gradients need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pymatgen.optimization.neighbors import find_points_in_spheres

from .ligands import DI_COORDINATION, DI_O_DISTANCE, M_N_DISTANCE, Ligand, PolymerBuildError

_DEG = math.pi / 180.0
#: Margin (Å) above the validation limits where the steep wall of the penalty starts.
_HARD_MARGIN = 0.06


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
