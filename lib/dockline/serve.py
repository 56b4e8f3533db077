"""Serve one CNI call in this process with a plugin module's handlers.

The launcher does it when no zygote can take the call, and a zygote's child
does it for each call it is handed: both sit above this module, neither
imports the other.
"""

from __future__ import annotations


def serve_here(module_name: str) -> int:
    """Serve the call described by this process's environment and stdin;
    returns the exit status."""
    module = __import__(module_name, fromlist=["HANDLERS"])
    from dockline.cni import skel

    return skel.run(module.HANDLERS, module.ABOUT)
