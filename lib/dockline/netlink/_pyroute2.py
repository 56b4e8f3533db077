"""pyroute2's rtnetlink message classes, loaded without pyroute2/__init__.py.

``import pyroute2`` costs ~120 ms: its package __init__ imports every
socket class of the library (asyncio, multiprocessing, ...).  We only need
three message classes (ifinfmsg, ifaddrmsg, rtmsg).  So, unless pyroute2 was
already imported for real, we

* create the ``pyroute2`` package module from its import spec *without*
  executing its __init__ (submodules import normally through ``__path__``);
* give ``pyroute2.config`` a stand-in for the duration of the load: of the
  modules loaded here only ifinfmsg reads it, for three plain values, while
  the real one imports multiprocessing and platform (~5 ms);
* leave a module ``__getattr__`` on the bare package which runs the real
  __init__ on first use, so ``from pyroute2 import IPRoute`` elsewhere in
  the process still works.

If any step fails we fall back to the plain (slow) import.  Measurements:
bench/netlink_startup.md.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # pyroute2 has no type information: its message classes are Any here.
    Messages = tuple[Any, Any, Any]


def _import_messages() -> Messages:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    return ifinfmsg, ifaddrmsg, rtmsg


def _load_without_package_init() -> Messages:
    import importlib.util

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        raise ImportError("pyroute2 is not on sys.path")
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def finish_package_init(name: str) -> object:
        # Someone wants more of pyroute2 than the message classes: run the
        # real __init__ now, in the module object everybody already holds.
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    # (through __dict__: module attributes a type checker cannot know)
    package.__dict__["__getattr__"] = finish_package_init
    config = type(sys)("pyroute2.config")
    config.__dict__.update(AF_BRIDGE=7, data_plugins_pkgs=(), data_plugins_path=())

    sys.modules["pyroute2"] = package
    sys.modules["pyroute2.config"] = config
    package.__dict__["config"] = config
    try:
        return _import_messages()
    except BaseException:
        for name in [n for n in sys.modules if n == "pyroute2" or n.startswith("pyroute2.")]:
            del sys.modules[name]
        raise
    finally:
        if sys.modules.get("pyroute2.config") is config:
            del sys.modules["pyroute2.config"]
        if package.__dict__.get("config") is config:
            del package.__dict__["config"]


def _load() -> Messages:
    if "pyroute2" not in sys.modules:
        try:
            return _load_without_package_init()
        except Exception:  # layout changed in some pyroute2 release: go the slow way
            pass
    return _import_messages()


ifinfmsg, ifaddrmsg, rtmsg = _load()
