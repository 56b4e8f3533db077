"""``dockline cnitool add|check|del|gc|status NETWORK [NETNS]``: Go's
cnitool on libcni, in Python.

Environment as cnitool reads it: NETCONFPATH (default /etc/cni/net.d),
CNI_PATH, CNI_ARGS, CAP_ARGS (a JSON object), CNI_IFNAME (default eth0).
The flags ``--ifname``, ``--args``, ``--cap-args`` and ``--id`` override
them (extensions: Go's cnitool has environment variables only).  The
container ID is ``cnitool-`` + the first 20 hex digits of the SHA-512 of
the absolute netns path, as cnitool derives it.

Beyond cnitool: CHECK and DEL without capability args (or CNI_ARGS) use
the ones cached by ADD, and DEL of a network whose config file is gone
uses the config cached by ADD, so an attachment can always be deleted.
GC sends the attachments the cache knows as ``cni.dev/valid-attachments``
(Go's cnitool sends none, which deletes everything on the network).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from ..cni.skel import valid_identifier
from . import libcni
from .output import FAILED, OK, USAGE, error

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from .output import SubParsers

COMMANDS = ("add", "check", "del", "gc", "status")

EPILOG = """\
examples:
  ip netns add web
  dockline cnitool add dockline /run/netns/web
  CAP_ARGS='{"portMappings": [{"hostPort": 8080, "containerPort": 80}]}' \\
      dockline cnitool add dockline /run/netns/web
  dockline cnitool check dockline /run/netns/web
  dockline cnitool del dockline /run/netns/web
  dockline cnitool gc dockline; dockline cnitool status dockline

environment: NETCONFPATH, CNI_PATH, CNI_ARGS, CAP_ARGS, CNI_IFNAME
exit status: 0 done, 1 a plugin or CNI error (the plugin's error JSON is
printed on stdout, a readable account on stderr), 2 a usage error
"""


def add_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "cnitool",
        help="run a network's plugin chain, as Go's cnitool does",
        description="Run a network's plugin chain on a network namespace, "
        "as containernetworking/cni's cnitool does.",
        epilog=EPILOG,
        formatter_class=_raw(),
    )
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("network", help="the network's name (its config's \"name\")")
    p.add_argument("netns", nargs="?", help="network namespace path (not needed by gc and status)")
    p.add_argument("--ifname", help="container interface (default: $CNI_IFNAME or eth0)")
    p.add_argument("--args", help="CNI_ARGS, 'KEY=VALUE;KEY=VALUE' (default: $CNI_ARGS)")
    p.add_argument("--cap-args", help="capability args as a JSON object (default: $CAP_ARGS)")
    p.add_argument("--id", help="container ID (default: derived from the netns path)")
    p.set_defaults(func=run)


def _raw() -> type[argparse.RawDescriptionHelpFormatter]:
    import argparse

    return argparse.RawDescriptionHelpFormatter


def container_id_for(netns: str) -> str:
    return "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]


def _print_plugin_error(exc: libcni.PluginError, version: str) -> None:
    # stdout: the error as the plugin answered it (scripts and tests read
    # it); stderr: a readable account.
    raw = exc.raw
    try:
        json.loads(raw)
    except ValueError:
        raw = json.dumps(
            {"cniVersion": version, "code": exc.code, "msg": exc.msg, "details": exc.details}
        )
    sys.stdout.write(raw.rstrip() + "\n")
    error(exc.describe())


def run(a: argparse.Namespace) -> int:
    command = a.command
    if command in ("add", "check", "del") and not a.netns:
        error(f"cnitool {command} needs a network namespace path")
        return USAGE
    ifname = a.ifname if a.ifname is not None else os.environ.get("CNI_IFNAME", "eth0")
    args_text = a.args if a.args is not None else os.environ.get("CNI_ARGS", "")
    cap_text = a.cap_args if a.cap_args is not None else os.environ.get("CAP_ARGS", "")
    try:
        cni_args = libcni.parse_cni_args(args_text)
    except ValueError as exc:
        error(str(exc))
        return USAGE
    try:
        cap_args = json.loads(cap_text) if cap_text else {}
    except ValueError as exc:
        error(f"CAP_ARGS is not JSON: {exc}")
        return USAGE
    if not isinstance(cap_args, dict):
        error("CAP_ARGS must be a JSON object")
        return USAGE
    netns = os.path.abspath(a.netns) if a.netns else ""
    cid = a.id or (container_id_for(netns) if netns else "")
    confdir = os.environ.get("NETCONFPATH", libcni.DEFAULT_NETCONFPATH)
    rt = libcni.RuntimeConf(
        container_id=cid, netns=netns, ifname=ifname, args=cni_args, cap_args=cap_args
    )
    try:
        # Names reach file paths (the cache) and plugins: check them first.
        if command in ("add", "check", "del"):
            rt.validate(a.network)
        elif not valid_identifier(a.network):
            raise libcni.ConfigError(f"invalid network name {a.network!r}")
    except libcni.ConfigError as exc:
        error(str(exc))
        return USAGE
    cached = libcni.read_cache(a.network, cid, ifname) if command in ("check", "del") else None
    try:
        try:
            net = libcni.load_network(confdir, a.network)
        except libcni.ConfigError:
            fallback = libcni.cached_config(cached) if cached and command == "del" else None
            if fallback is None:
                raise
            net = fallback
            error(f"network {a.network!r} is not in {confdir}: using the config cached by ADD")
        if cached:
            if not rt.cap_args and isinstance(cached.get("capabilityArgs"), dict):
                rt.cap_args = cached["capabilityArgs"]
            if not rt.args and isinstance(cached.get("cniArgs"), list):
                rt.args = [
                    list(p) for p in cached["cniArgs"] if isinstance(p, list) and len(p) == 2
                ]
        if command == "add":
            result = libcni.add(net, rt)
            sys.stdout.write(json.dumps(result, indent=4) + "\n")
        elif command == "check":
            libcni.check(net, rt)
        elif command == "del":
            libcni.delete(net, rt)
        elif command == "gc":
            if not libcni.gc(net, libcni.valid_attachments(net.name)):
                error(f"GC: nothing to do (cniVersion {net.cni_version} or disableGC)")
        else:
            if not libcni.status(net):
                error(f"STATUS: not supported by cniVersion {net.cni_version}")
    except libcni.PluginError as exc:
        _print_plugin_error(exc, net.cni_version)
        if command == "add" and exc.index > 0:
            # libcni leaves a failed ADD to the runtime's DEL, and so do we
            error(
                f"the plugins before #{exc.index} were not undone: "
                f"dockline cnitool del {net.name} {netns} --id {cid} --ifname {ifname}"
            )
        return FAILED
    except libcni.ConfigError as exc:
        error(str(exc))
        return FAILED
    except OSError as exc:
        error(f"{exc.filename or ''}: {exc.strerror or exc}")
        return FAILED
    return OK
