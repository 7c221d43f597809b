"""Candidates: a host structure, the working ion it is screened for, and where it came from.

A :class:`Candidate` is what the rest of the pipeline screens. Every candidate carries its
provenance (prototype and citation, substitution applied, builder and seed, or file path) and
a deterministic id: a hash of the structure and the working ion, so that the same host reached
by two routes is one candidate and a re-submitted job finds its earlier result.

Capacity needs the discharged (ion-containing) formula and the electrons it takes; generators
record those chemical facts here (``discharged_formula``, ``electrons``); the numbers in mAh/g
and mAh/cm³ are computed from them by :func:`ionscreen.screening.descriptors.capacity` (a
candidate is never modified after it is made).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from monty.json import MSONable
from pymatgen.core import Structure

from ionscreen.errors import IonscreenError

from .io import load_host
from .ions import get_working_ion
from .oxidation import OXI_FROM, oxidation_summary

STRUCTURE_SUFFIXES = (".cif", ".mcif", ".vasp", ".poscar", ".extxyz", ".xyz")  # what io.read_structure reads
#: How the command-line help and errors name what a folder is searched for.
STRUCTURE_FILES_TEXT = "CIF (*.cif, magnetic *.mcif), POSCAR/CONTCAR (*.vasp, *.poscar) or extxyz (*.extxyz, *.xyz)"


def structure_fingerprint(structure: Structure) -> str:
    """A text that is equal for equal structures (species, lattice, sorted sites, to 1e-4)."""
    lat = np.round(structure.lattice.matrix, 4).tolist()
    sites = sorted(
        (str(s.specie), *[round(float(x) % 1.0, 4) % 1.0 for x in s.frac_coords]) for s in structure
    )
    return json.dumps({"lattice": lat, "sites": sites})


def candidate_id(structure: Structure, working_ion: str) -> str:
    """Deterministic id: sha256 of the structure fingerprint and the working ion (16 hex)."""
    h = hashlib.sha256()
    h.update(structure_fingerprint(structure).encode())
    h.update(working_ion.encode())
    return h.hexdigest()[:16]


@dataclass
class Candidate(MSONable):
    """One host–ion pair to screen, with its provenance."""

    id: str
    formula: str
    working_ion: str
    source: str  # "prototype:<id>", "substitution:<parent> <label>", "file:<path>", "polymer:<...>"
    citation: str
    state: str  # "charged" (empty host), "discharged" (ion on its sites) or "as given" (user file)
    structure: Structure
    provenance: dict[str, Any] = field(default_factory=dict)
    discharged_formula: str | None = None  # formula the capacity refers to
    electrons: float | None = None  # electrons taken by discharged_formula (as written)
    discharged_density: float | None = None  # g/cm³ of the discharged structure, when built

    def as_dict(self) -> dict[str, Any]:
        """The candidate as a document (structure as pymatgen's dict); the input of every job."""
        d = asdict(self)
        d["structure"] = self.structure.as_dict()
        return d

    #: The name used before 0.2 (job input documents are built with it).
    to_dict = as_dict

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """Also reads documents written before 0.2, which carried the capacity numbers (now
        computed by ``ionscreen.screening.descriptors.capacity``, never stored here)."""
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if not isinstance(d["structure"], Structure):  # monty's decoder may have built it
            d["structure"] = Structure.from_dict(d["structure"])
        return cls(**d)


def make_candidate(
    structure: Structure,
    working_ion: str,
    source: str,
    citation: str = "",
    state: str = "as given",
    provenance: dict[str, Any] | None = None,
    discharged: Structure | None = None,
    n_ions: float | None = None,
) -> Candidate:
    """Assemble a candidate; ``discharged`` + ``n_ions`` (ions in it) record the capacity facts."""
    cand = Candidate(
        id=candidate_id(structure, working_ion),
        formula=structure.composition.reduced_formula,
        working_ion=working_ion,
        source=source,
        citation=citation,
        state=state,
        structure=structure,
        provenance=dict(provenance or {}),
    )
    if discharged is not None and n_ions:
        cand.discharged_formula = discharged.composition.formula.replace(" ", "")
        cand.electrons = float(n_ions) * get_working_ion(working_ion).charge
        cand.discharged_density = float(discharged.density)
    return cand


# ---------------------------------------------------------------------- sources


def from_prototypes(ions: Iterable[str], ids: Iterable[str] | None = None) -> Iterator[Candidate]:
    """Built-in hosts, discharged with the ion on its known sites where possible, else empty."""
    from .prototypes import get_prototype, host_for_ion, list_prototypes

    protos = [get_prototype(i) for i in ids] if ids else list_prototypes()
    for proto in protos:
        for ion in ions:
            st, state = host_for_ion(proto, ion)
            n = float(get_working_ion(ion).count(st)) if state == "discharged" else 0.0
            yield make_candidate(
                st, ion, f"prototype:{proto.id}", citation=proto.provenance_text(), state=state,
                provenance={"prototype": proto.id, "framework": proto.framework,
                            "spacegroup": proto.spacegroup,
                            # only when computed: measured hosts keep their job ids across versions
                            **({} if proto.measured else {"structure_origin": proto.structure_origin}),
                            **({"removed_species": proto.removed_species} if proto.removed_species
                               else {})},
                discharged=st if n else None, n_ions=n or None,
            )


def from_substitutions(
    ions: Iterable[str],
    ids: Iterable[str] | None = None,
    cation_options: dict[str, list[str]] | None = None,
    anion_options: dict[str, list[str]] | None = None,
    radius_tolerance: float = 0.15,
) -> tuple[list[Candidate], list[dict[str, str]]]:
    """Substituted built-in hosts (framework cations and anions; see :mod:`.substitution`).

    Each prototype is substituted in the state it is screened in for that ion (discharged or
    empty). Returns the candidates and the rejected substitutions with their reasons.
    """
    from .prototypes import get_prototype, host_for_ion, list_prototypes
    from .substitution import enumerate_substitutions

    protos = [get_prototype(i) for i in ids] if ids else list_prototypes()
    cands: list[Candidate] = []
    rejected_out: list[dict[str, str]] = []
    for proto in protos:
        for ion in ions:
            base, state = host_for_ion(proto, ion)
            rejected: list = []
            subs = enumerate_substitutions(
                base, cation_options, anion_options, radius_tolerance=radius_tolerance, rejected=rejected
            )
            for sub, st, info in subs:
                n = float(get_working_ion(ion).count(st)) if state == "discharged" else 0.0
                cands.append(make_candidate(
                    st, ion, f"substitution:{proto.id} {sub.label}",
                    citation=f"{proto.provenance_text()} (parent structure; substituted by ionscreen)",
                    state=state,
                    provenance={
                        "parent": proto.id, "substitution": sub.label,
                        "rescale_factor": info.get("rescale_factor"), "rescale_rule": info.get("rescale_rule"),
                        "max_cation_mismatch": info.get("max_cation_mismatch"),
                        "redox_adjustment": info.get("redox_adjustment"),
                    },
                    discharged=st if n else None, n_ions=n or None,
                ))
            for sub, info in rejected:
                rejected_out.append({"parent": proto.id, "ion": ion, "substitution": sub.label,
                                     "reason": str(info.get("reason", ""))})
    return cands, rejected_out


def from_polymers(
    ions: Iterable[str],
    ligand: str = "PTtSA",
    metals: Iterable[str] | None = None,
    n_disordered: int = 2,
    seed: int = 0,
) -> list[Candidate]:
    """DI–M–ligand coordination polymers for the storage cations among ``ions``.

    One ordered model and ``n_disordered`` disordered ("amorphous") models per (DI, M); the
    polymer is its own discharged form, DI M L taking 2 e- per formula unit.
    """
    from . import polymers

    metals = list(metals or polymers.NODE_METALS)
    out: list[Candidate] = []
    for di in ions:
        if di not in polymers.DI_CATIONS:
            continue
        for m in metals:
            models = [("ordered", polymers.build_ordered(di, m, ligand))]
            models += [(f"disordered {k}", st) for k, st in
                       enumerate(polymers.build_disordered(di, m, ligand, n_models=n_disordered, seed=seed))]
            for kind, st in models:
                prov = dict(st.properties.get("provenance", {}))
                fu = float(st.properties.get("formula_units", 1))
                cand = make_candidate(
                    st, di, f"polymer:{di}-{m}-{ligand} {kind}",
                    citation=f"ionscreen coordination-polymer builder ({polymers.BUILDER} {polymers.BUILDER_VERSION})",
                    state="discharged", provenance=prov,
                )
                cand.discharged_formula = st.composition.formula.replace(" ", "")
                cand.electrons = polymers.ELECTRONS_PER_FORMULA_UNIT * fu
                cand.discharged_density = float(st.density)
                out.append(cand)
    return out


def iter_structure_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files given, and supported structure files found (recursively) in folders given."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                # a broken link with a structure name is reported, not skipped
                if (f.is_file() or (f.is_symlink() and not f.exists())) and _looks_supported(f):
                    yield f
        else:
            yield path  # missing or odd files are reported by the reader, with the reason


def _looks_supported(path: Path) -> bool:
    name = path.name.lower()
    return name.startswith(("poscar", "contcar")) or name.endswith(STRUCTURE_SUFFIXES)


def path_problems(paths: Iterable[str | os.PathLike]) -> list[str]:
    """What is wrong with structure paths a user gave, one message per path: a path that does
    not exist, or a folder without any structure file. Empty when every path gives files
    (a file that is there but cannot be read is the reader's to report, with its reason)."""
    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            out.append(f"{p}: no such file or folder (working dir: {Path.cwd()})")
        elif path.is_dir() and next(iter_structure_files([path]), None) is None:
            others = sorted(f.name for f in path.rglob("*") if f.is_file())
            found = (f"; it has {len(others)} other file(s): {', '.join(others[:3])}"
                     f"{' …' if len(others) > 3 else ''}" if others else "; it is empty")
            out.append(f"{p}: the folder holds no structure file ({STRUCTURE_FILES_TEXT}, "
                       f"searched recursively){found}")
    return out


def load_file(path: str | os.PathLike | Structure,
              oxidation_states: dict[str, float] | None = None) -> tuple[Structure, list[str]]:
    """:func:`~ionscreen.structures.io.load_host` of one file with the reader's remarks caught,
    not printed (a batch of files would fill the terminal): (structure, remarks). An
    :class:`IonscreenError` says the remarks in its message after its own reason."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = load_host(path, oxidation_states=oxidation_states)
        except IonscreenError as exc:
            notes = _notes(caught)
            if not notes:
                raise
            raise type(exc)(f"{exc} (reader notes: {'; '.join(notes)})") from None
    return structure, _notes(caught)


def _notes(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    notes: list[str] = []
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
            continue  # about library code, not about this file
        for note in getattr(w.message, "notes", None) or [str(w.message)]:
            if note not in notes:
                notes.append(note)
    return notes


#: ions a host file may still hold from its synthesis or its own chemistry (LiCoO2, Na0.8CoO2):
#: listed with the result (``provenance["other_ions"]``), removed with ``strip``
LEFTOVER_IONS = ("Li", "Na", "K")


def strip_ions(structure: Structure, elements: Sequence[str]) -> tuple[Structure, dict[str, float]]:
    """``structure`` without the sites of ``elements`` and with oxidation states guessed again
    (removing Li+ from LiCoO2 leaves Co4+), and the number removed per element. Raises an
    :class:`IonscreenError` when no charge-balanced assignment exists without them (NaCl
    without Na: nothing can be oxidised)."""
    removed = {el: float(structure.composition[el]) for el in elements if structure.composition[el]}
    if not removed:
        return structure, {}
    bare = structure.copy()
    bare.remove_sites([i for i, site in enumerate(bare) if site.specie.symbol in removed])
    if len(bare) == 0:
        raise IonscreenError(f"nothing is left of {structure.composition.reduced_formula} without "
                             f"{', '.join(removed)}")
    bare.remove_oxidation_states()
    bare.properties = {k: v for k, v in bare.properties.items() if k != OXI_FROM}
    try:
        host = load_host(bare)
    except IonscreenError as exc:
        raise type(exc)(f"removing {', '.join(removed)} from {structure.composition.reduced_formula} "
                        f"leaves no charge-balanced host ({exc}); screen it without --replace-ion"
                        ) from None
    host.properties = {**host.properties,
                       OXI_FROM: f"{host.properties.get(OXI_FROM, 'guessed')} after removing "
                                 f"{', '.join(removed)}"}
    return host, removed


def from_file(path: str | os.PathLike, ion: str, oxidation_states: dict[str, float] | None = None,
              structure: Structure | None = None, notes: Sequence[str] = (),
              strip: Sequence[str] = (), ordering: dict[str, Any] | None = None,
              mobile: str | None = None) -> Candidate:
    """The candidate of one user file for one working ion: discharged (ions on their sites) when
    the file holds the ion, else the host as given. Raises an :class:`IonscreenError` for a file
    that cannot be used. ``structure`` skips re-reading a file already loaded (``notes``: the
    remarks its reader made). The reader's remarks are kept in ``provenance["read_notes"]``.
    The other arguments are :func:`from_structure`'s."""
    if structure is None:
        structure, notes = load_file(path, oxidation_states)
    return from_structure(structure, ion, f"file:{path}", {"path": str(path)}, "user structure",
                          notes=notes, strip=strip, ordering=ordering, mobile=mobile)


def from_structure(structure: Structure, ion: str, source: str, origin: dict[str, Any],
                   citation: str, notes: Sequence[str] = (), strip: Sequence[str] = (),
                   ordering: dict[str, Any] | None = None, mobile: str | None = None) -> Candidate:
    """The candidate of one loaded host structure (a user file, an OPTIMADE entry) for one
    working ion; ``origin`` opens its provenance (``{"path": ...}``, ``{"optimade": ...}``).

    ``strip``: elements whose ions are removed first (:func:`strip_ions`; ``--replace-ion Li``:
    the working ion is screened in the sites they leave), never the working ion itself. Other
    ions of :data:`LEFTOVER_IONS` left in the host are listed in ``provenance["other_ions"]``.
    ``ordering``: the structure is an ordered model of a disordered one
    (:meth:`~ionscreen.structures.ordering.Ordering.provenance`, kept in
    ``provenance["ordering"]``; the source names it). ``mobile``: the sites of the working ion
    that move (``--mobile-sites``, :func:`~ionscreen.structures.mobile.select_mobile`; default
    every one), the others stay in the framework (``provenance["mobile_sites"]``)."""
    wi = get_working_ion(ion)
    structure, removed = strip_ions(structure, [el for el in strip if el != wi.name])
    chosen = None
    if mobile:
        from .mobile import select_mobile

        structure, chosen = select_mobile(structure, wi.name, mobile)
    n = float(wi.count(structure))
    others = {el: float(structure.composition[el]) for el in LEFTOVER_IONS
              if el != wi.name and structure.composition[el]}
    prov: dict[str, Any] = {**origin, **({"read_notes": list(notes)} if notes else {}),
                            "oxidation_states": oxidation_summary(structure),
                            "oxidation_states_from": structure.properties.get(OXI_FROM, "in the file"),
                            **({"removed_ions": removed} if removed else {}),
                            **({"other_ions": others} if others else {}),
                            **({"ordering": dict(ordering)} if ordering else {}),
                            **({"mobile_sites": chosen} if chosen else {})}
    source += f" ordering {ordering['ordering']}/{ordering['kept']}" if ordering else ""
    cand = make_candidate(structure, ion, source, citation=citation,
                          state="discharged" if n else "as given", provenance=prov,
                          discharged=structure if n else None, n_ions=n or None)
    if chosen:  # the same file with other mobile sites is another candidate
        cand.id = candidate_id(structure, f"{ion} mobile {','.join(chosen['mobile_sites'])}")
    return cand


def from_file_ordered(path: str | os.PathLike, ion: str, order: int,
                      oxidation_states: dict[str, float] | None = None,
                      strip: Sequence[str] = (), max_atoms: int | None = None,
                      mobile: str | None = None) -> list[Candidate]:
    """The candidates of one user file with ``--order N``: a disordered file gives its N
    lowest-Ewald orderings (:func:`~ionscreen.structures.ordering.order_structure`), each a
    candidate that says which ordering it is and of how many; an ordered file gives itself.
    Raises an :class:`IonscreenError` for a file that cannot be used or ordered."""
    from .io import read_structure

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = read_structure(path)
    if raw.is_ordered:
        return [from_file(path, ion, oxidation_states, strip=strip, mobile=mobile)]
    return _orderings_of(raw, str(path), order, max_atoms, oxidation_states, _notes(caught), ion,
                         f"file:{path}", {"path": str(path)}, "user structure", strip, mobile)


#: the last host loaded or ordered, by key: consecutive jobs of one host (one per working ion)
#: guess its oxidation states and order it once
_ORDERED: dict[tuple, list[Any]] = {}
_LOADED: dict[tuple, tuple[Structure, list[str]]] = {}


def _memo(cache: dict[tuple, Any], key: tuple, make: Any) -> Any:
    """``make()`` once per ``key``; ``cache`` keeps the last key only."""
    if key not in cache:
        cache.clear()
        cache[key] = make()
    return cache[key]


def _oxi_key(oxidation_states: dict[str, float] | None) -> tuple:
    return tuple(sorted((oxidation_states or {}).items()))


def _orderings_of(raw: Structure, host: str, order: int, max_atoms: int | None,
                  oxidation_states: dict[str, float] | None, read_notes: Sequence[str], ion: str,
                  source: str, origin: dict[str, Any], citation: str, strip: Sequence[str],
                  mobile: str | None) -> list[Candidate]:
    """The candidates of the ``order`` lowest-Ewald orderings of the disordered ``raw``
    (``host``: its file or entry, the key under which it is ordered once for every ion)."""
    from .ordering import MAX_ORDER_ATOMS, order_structure

    limit = max_atoms or MAX_ORDER_ATOMS
    orderings = _memo(_ORDERED, (host, order, limit, _oxi_key(oxidation_states)),
                      lambda: order_structure(raw, order, limit, oxidation_states))
    out = []
    for o in orderings:
        st, notes = load_file(o.structure, oxidation_states)
        out.append(from_structure(st, ion, source, origin, citation, [*read_notes, *notes],
                                  strip=strip, ordering=o.provenance(), mobile=mobile))
    return out


def from_optimade(entry: dict[str, Any], provider: str, base_url: str, ion: str,
                  oxidation_states: dict[str, float] | None = None, strip: Sequence[str] = (),
                  order: int = 0, max_atoms: int | None = None,
                  mobile: str | None = None) -> list[Candidate]:
    """The candidates of one OPTIMADE structure entry (:func:`~ionscreen.structures.optimade.
    slim_entry`) for one working ion: one, or with ``order`` > 0 the N lowest-Ewald orderings
    of a disordered entry. The source names the provider and the entry id
    (``optimade:mp mp-1234``); ``provenance["optimade"]`` holds the provider, its base URL, the
    id, the entry's URL and its last modification. Raises an :class:`IonscreenError` for an
    entry the pipeline cannot use (not 3D, partial occupancy without ``order``, no
    charge-balanced oxidation states...)."""
    from .optimade import entry_source, entry_structure, entry_url

    eid = str(entry["id"])
    attrs = entry.get("attributes") or {}
    origin = {"optimade": {"provider": provider, "base_url": base_url, "id": eid,
                           "url": entry_url(base_url, eid),
                           **({"last_modified": str(attrs["last_modified"])}
                              if attrs.get("last_modified") else {})}}
    source, citation = entry_source(provider, eid), f"OPTIMADE {provider}, entry {eid}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = entry_structure(entry)
    read_notes = _notes(caught)
    if raw.is_ordered or order <= 0:  # a disordered entry fails in load_file, naming --order
        st, notes = _memo(_LOADED, (base_url, eid, _oxi_key(oxidation_states)),
                          lambda: load_file(raw, oxidation_states))
        return [from_structure(st.copy(), ion, source, origin, citation, [*read_notes, *notes],
                               strip=strip, mobile=mobile)]
    return _orderings_of(raw, f"{base_url} {eid}", order, max_atoms, oxidation_states,
                         read_notes, ion, source, origin, citation, strip, mobile)


def from_files(
    paths: Iterable[str | os.PathLike],
    ions: Iterable[str],
    oxidation_states: dict[str, float] | None = None,
    strip: Sequence[str] = (),
    order: int = 0,
    order_max_atoms: int | None = None,
    mobile: str | None = None,
) -> tuple[list[Candidate], list[dict[str, str]]]:
    """User structures (files or folders). A bad file is reported with its reason; the rest go
    on. ``order`` > 0: disordered files give their ``order`` lowest-Ewald orderings
    (:func:`from_file_ordered`)."""
    ions = list(ions)
    cands: list[Candidate] = []
    failures: list[dict[str, str]] = []
    for f in iter_structure_files(paths):
        if order > 0:
            for ion in ions:
                try:
                    cands += from_file_ordered(f, ion, order, oxidation_states, strip,
                                               order_max_atoms, mobile)
                except IonscreenError as exc:
                    failures.append({"path": str(f), "reason": str(exc)})
            continue
        try:
            st, notes = load_file(f, oxidation_states)
        except IonscreenError as exc:
            failures.append({"path": str(f), "reason": str(exc)})
            continue
        for ion in ions:
            try:
                cands.append(from_file(f, ion, structure=st, notes=notes, strip=strip,
                                       mobile=mobile))
            except IonscreenError as exc:
                failures.append({"path": str(f), "reason": str(exc)})
    return cands, failures


def unique(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Drop repeated ids (the same structure and ion reached by two routes), keeping the first."""
    seen: set[str] = set()
    out = []
    for c in candidates:
        if c.id not in seen:
            seen.add(c.id)
            out.append(c)
    return out
