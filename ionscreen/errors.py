"""The package's own exception types.

Every error a user can cause raises one of these, with a message that says what to change.
In a batch, the engine catches :class:`IonscreenError`, marks that one job failed with the
message as the stored reason, and goes on.
"""

from __future__ import annotations

__all__ = [
    "CalculationError",
    "GridMemoryError",
    "IonscreenError",
    "MissingDependencyError",
    "MissingParameterError",
    "OxidationStateError",
    "StructureReadError",
    "StructureValidationError",
    "UnsupportedIonError",
]


class IonscreenError(Exception):
    """Base class of every error a user can cause."""


class StructureReadError(IonscreenError):
    """A structure file cannot be read (missing, unknown format, broken content)."""


class StructureValidationError(IonscreenError):
    """A structure was read but cannot be screened (partial occupancy, overlapping atoms, no anion...)."""


class OxidationStateError(IonscreenError):
    """Oxidation states are missing and cannot be guessed, or are inconsistent."""


class MissingParameterError(IonscreenError):
    """No bond-valence parameters for a pair of ions that the calculation needs."""


class UnsupportedIonError(IonscreenError):
    """The working ion is not one that ionscreen knows how to model."""


class GridMemoryError(IonscreenError):
    """The requested energy grid would not fit in the memory available."""


class MissingDependencyError(IonscreenError):
    """An optional dependency is not installed; the message names the extra to install."""


class CalculationError(IonscreenError):
    """A calculation ran but did not give a usable result (e.g. a NEB that did not converge
    and was asked to be strict, identical endpoints, a rank/image mismatch)."""
