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

Modules
-------
:mod:`.ligands` (family data, ligand templates), :mod:`.geometry` (contact limits, topology,
state, coordinates, neighbour pairs), :mod:`.penalty` (penalty, gradients, relaxation),
:mod:`.checks` (model checks), :mod:`.build` (packings, ordered and disordered builds). The
public names are re-exported here; names with a leading underscore are shared between these
modules only.
"""

from .build import build_disordered, build_ordered, provenance, search_packing
from .checks import PolymerCheck, check_polymer, polymer_bonds
from .geometry import CONTACT_LIMITS, TARGET_CONTACTS, ContactLimits
from .ligands import (
    BUILDER,
    BUILDER_VERSION,
    DI_CATIONS,
    DI_COORDINATION,
    DI_O_DISTANCE,
    ELECTRONS_PER_FORMULA_UNIT,
    M_N_DISTANCE,
    NODE_METALS,
    Ligand,
    PolymerBuildError,
    Rotor,
    formula_unit_mass,
    get_ligand,
    list_ligands,
    polymer_compositions,
)

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
