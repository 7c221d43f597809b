"""How the bond-valence tiers model each working ion, and the ion's Morse rows.

An :class:`IonModel` pairs a working ion (:class:`ionscreen.structures.ions.WorkingIon`) with
the element whose softBV rows (Chen & Adams, IUCrJ 4 (2017) 614), period and covalent radius
stand for it. Atomic ions use their own rows. NH4+ is a K+-like pseudo-ion: K+ rows with r_min
and r0 shifted by r(NH4+) − r(K+) = 1.48 − 1.38 Å, approximate (no N–H···X hydrogen bonding,
spherical ion); ``screening/data/README.md`` gives the justification and numbers.
:func:`mobile_pair` returns the working ion's row against one anion with the model applied, and
on request derives a missing X–N3- row by the nitride transfer rule
(:mod:`ionscreen.screening.nitride`).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any

from ionscreen.errors import MissingParameterError
from ionscreen.structures.ions import WORKING_IONS, WorkingIon, get_working_ion, ion_label

from .nitride import derived_nitride_pair
from .param_rows import PairParams, normalise_symbol
from .params import ParamTable

__all__ = ["ION_MODELS", "NH4_RADIUS_SHIFT", "IonModel", "ion_model", "mobile_pair"]


@dataclass(frozen=True)
class IonModel:
    """How the bond-valence tiers model a working ion.

    ``ion`` is the ion itself (:class:`ionscreen.structures.ions.WorkingIon`: name, charge,
    which atoms are mobile). ``element`` names the element whose softBV rows, period and
    covalent radius are used; for the NH4+ pseudo-ion it is the parent element (K). ``model``
    is shown in every result.
    """

    ion: WorkingIon
    element: str
    approximate: bool
    model: str
    r_min_shift: float = 0.0
    radius_override: float | None = None

    @property
    def name(self) -> str:
        return self.ion.name

    @property
    def charge(self) -> int:
        return self.ion.charge

    def label(self) -> str:
        """``"Mg2+"``, ``"NH4+"``."""
        return self.ion.label()

    def mobile_sites(self, structure: Any) -> list[int]:
        """The sites of ``structure`` that are this ion (:meth:`WorkingIon.mobile_sites`)."""
        return self.ion.mobile_sites(structure)

    def covalent_radius(self, table: ParamTable, source: str = "ase") -> float:
        """Covalent radius (Å) for the Coulomb screening length: ``radius_override`` when the
        model sets it, else the element's radius from ``table``."""
        if self.radius_override is not None:
            return self.radius_override
        return table.element(self.element).covalent_radius(self.charge, source)

    def period(self, table: ParamTable) -> int:
        """Principal quantum number n used for q = V/√n (the parent element's for a model)."""
        return table.element(self.element).period

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, for result documents."""
        return {"name": self.name, "element": self.element, "charge": self.charge,
                "approximate": self.approximate, "model": self.model,
                "r_min_shift": self.r_min_shift, "radius_override": self.radius_override,
                "label": self.label()}


# NH4+ pseudo-ion: K+ rows with r_min and r0 shifted by r(NH4+) − r(K+) = 1.48 − 1.38 Å.
# Justification and numbers: screening/data/README.md.
NH4_RADIUS_SHIFT = 0.10
_K_SOFTBV_RADIUS = 2.06  # softBV covalent radius of K+ (Å)


def _softbv_model(name: str) -> IonModel:
    ion = WORKING_IONS[name]
    return IonModel(ion=ion, element=ion.element, approximate=False,
                    model=f"{ion.label()} with softBV parameters (Chen & Adams 2017)")


ION_MODELS: dict[str, IonModel] = {
    name: _softbv_model(name) for name in WORKING_IONS if not WORKING_IONS[name].molecular
}
ION_MODELS["NH4"] = IonModel(
    ion=WORKING_IONS["NH4"],
    element="K",
    approximate=True,
    model=(f"NH4+ as a K+-like pseudo-ion (softBV K+ rows, r_min and r0 "
           f"+{NH4_RADIUS_SHIFT:.2f} Å); approximate: no N–H···X hydrogen bonding, "
           "spherical ion"),
    r_min_shift=NH4_RADIUS_SHIFT,
    radius_override=round(_K_SOFTBV_RADIUS + NH4_RADIUS_SHIFT, 2),
)
ION_MODELS = {name: ION_MODELS[name] for name in WORKING_IONS}  # vocabulary order


def ion_model(name: str | WorkingIon | IonModel) -> IonModel:
    """The bond-valence model of a working ion, from any spelling :func:`get_working_ion`
    reads (``"Mg2+"``, ``"ammonium"``...) or from the ion itself. Raises
    :class:`UnsupportedIonError` listing the supported ions for anything else."""
    if isinstance(name, IonModel):
        return name
    return ION_MODELS[get_working_ion(name).name]


def mobile_pair(table: ParamTable, ion: IonModel, anion: str, anion_valence: int,
                derive_nitride: bool = False) -> PairParams:
    """The Morse row of the working ion against one anion, with the ion's model applied.

    For a plain ion this is ``table.pair(ion.element, ion.charge, ...)``. For a modelled ion
    (NH4+) the parent element's row is shifted (r_min and r0 by ``r_min_shift``) and relabelled
    with the ion's name. With ``derive_nitride``, a missing X–N3- row is derived from the X–O2-
    row (:func:`derived_nitride_pair`; the row's ``derived_from`` says so).
    """
    nitride = (normalise_symbol(anion), int(anion_valence)) == ("N", -3)
    try:
        parent = table.pair(ion.element, ion.charge, anion, anion_valence)
    except MissingParameterError as exc:
        if derive_nitride and nitride and table.has_pair(ion.element, ion.charge, "O", -2):
            parent = derived_nitride_pair(table, ion.element, ion.charge)
        else:
            msg = str(exc)
            if nitride:  # the way out first: long reasons are clipped in tables
                head, _, rest = msg.partition(". ")
                msg = (f"{head}. An approximate row can be derived from the {ion_label(ion.element, ion.charge)}"
                       "–O2- row with --derive-nitride (BVSESettings/NEBSettings(derive_nitride=True)); "
                       f"results then say they are approximate. {rest}")
            elif ion.name == ion.element:
                raise
            if ion.name != ion.element:
                msg = (f"{ion.label()} is modelled from {ion_label(ion.element, ion.charge)} rows "
                       f"({ion.model}), and: {msg}")
            raise MissingParameterError(msg) from None
    if ion.name == ion.element and ion.r_min_shift == 0.0:
        return parent
    return _replace(
        parent,
        cation=ion.name,
        r_min=parent.r_min + ion.r_min_shift,
        r0=parent.r0 + ion.r_min_shift,
    )
