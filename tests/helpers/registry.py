"""The names registry as tests read it (lib/dockline/names/registry.py):
one entry file per attachment under <dataDir>/<network>/.dockline-names/."""

from __future__ import annotations

import json

DATA_DIR = "/var/lib/cni/networks"


def registry_dir(network: str = "dockline", data_dir: str = DATA_DIR) -> str:
    return f"{data_dir}/{network}/.dockline-names"


def cat(network: str = "dockline", data_dir: str = DATA_DIR) -> str:
    """A shell command printing every entry file (nothing if none)."""
    return f"cat {registry_dir(network, data_dir)}/e-* 2>/dev/null; true"


def entries(sb, network: str = "dockline", data_dir: str = DATA_DIR) -> dict[str, dict]:
    """Every entry by key."""
    text = sb.sh(
        f'for f in {registry_dir(network, data_dir)}/e-*; do [ -f "$f" ] && cat "$f" && echo; done;'
        " true"
    ).stdout
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    return {doc["key"]: doc["entry"] for doc in docs}
