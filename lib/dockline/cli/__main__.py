"""python -m dockline.cli: the same as the `dockline` command."""

from .main import entry

entry()
