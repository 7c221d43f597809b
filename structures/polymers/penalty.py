"""The penalty a model minimises, its analytic gradients, and the relaxation (L-BFGS-B).

Terms (see the package docstring): DI–O distances at r₀, a wall keeping other O out of the
DI shell, overlaps below the target contacts plus a steep wall near the validation limits,
and a weak pressure. :class:`_Vector` packs the free variables of a state into the
optimiser's vector; :func:`_relax` refreshes the pair list between rounds.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize

from .geometry import _DEG, TARGET_CONTACTS, _geometry, _Pairs, _pairs, _State, _Topology

# --------------------------------------------------------------------------- penalty

_W_CONTACT = 10.0
_W_DI = 5.0
_W_DI_OUT = 100.0  # steep extra penalty on DI–O deviations beyond _DI_SOFT·r0
_DI_SOFT = TARGET_CONTACTS.di_o_tolerance
_W_HARD = 400.0  # steep penalty below the validation limits (+ _HARD_MARGIN)


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
