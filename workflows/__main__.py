"""``python -m ionscreen.workflows`` is the ``ionscreen`` command (for mpiexec and tests)."""

from .cli import app

app(prog_name="ionscreen")
