"""The one pattern of ionscreen's settings classes (BVSE, NEB): a dataclass that validates
itself from a list of (condition, message) checks and round-trips through plain dicts.

A subclass is a ``@dataclass`` with a ``KIND`` label and a ``checks()`` method; it inherits
``validate()``, ``as_dict()`` and ``from_dict()``.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar

from monty.json import MSONable

__all__ = ["TypedSettings"]


class TypedSettings(MSONable):
    """Base of the settings dataclasses (MSONable, so nested settings serialise)."""

    KIND: ClassVar[str] = "setting"

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message saying what a valid value is) for every field with limits."""
        return []

    def validate(self) -> None:
        """Raise :class:`ValueError` with the first failed check's message."""
        for ok, msg in self.checks():
            if not ok:
                raise ValueError(f"invalid {self.KIND} setting: {msg}")

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (the shape stored in result documents)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """Settings from :meth:`as_dict` or a result's ``settings``; keys that are not fields
        (monty's ``@module``/``@class``, notes a result adds) are left out."""
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in known})
