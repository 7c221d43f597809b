"""The package's exception types now live in :mod:`ionscreen.errors`; this name stays for
imports written before the move."""

from ionscreen.errors import *  # noqa: F403
from ionscreen.errors import __all__  # noqa: F401
