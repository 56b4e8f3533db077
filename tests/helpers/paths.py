"""Where the things under test are: the checkout, the launchers install.sh
writes, the reference plugins, the venv's interpreter."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Launchers written by install.sh (scripts/test runs `DOCKLINE_EXTRAS=test ./install.sh`
# first; DOCKLINE_CNI_BIN points elsewhere).
DOCKLINE_BIN = Path(os.environ.get("DOCKLINE_CNI_BIN", REPO / ".build" / "cni-bin"))
REFERENCE_BIN = Path("/usr/lib/cni")
VENV_PYTHON = Path(os.environ.get("DOCKLINE_PYTHON", REPO / ".venv" / "bin" / "python3"))
# Executables for the crash tests (the dockline_hooks_bin fixture writes them).
HOOKS_BIN = REPO / ".build" / "cni-bin-hooks"
