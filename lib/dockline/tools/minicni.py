"""A small CNI runtime, behaving like libcni/cnitool where it matters:

- finds ``<NETCONFPATH>/*.conflist`` (or ``.conf``) whose ``name`` matches;
- runs the plugins in order for ADD/CHECK (each gets the previous result
  as ``prevResult``), in reverse for DEL (each gets the cached result);
- gives each plugin only the capability args it declares;
- caches results in /var/lib/cni/results/<net>-<containerID>-<ifname>;
- container ID ``cnitool-<first 20 hex of sha512(netns path)>``.

    python -m dockline.tools.minicni add NET /run/netns/x [--ifname eth0]
        [--args 'K=V;K=V'] [--cap-args '{"portMappings": [...]}'] [--id ID]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

CACHE = Path("/var/lib/cni/results")


def load_network(name: str) -> dict:
    confdir = Path(os.environ.get("NETCONFPATH", "/etc/cni/net.d"))
    for path in sorted(confdir.glob("*.conflist")) + sorted(confdir.glob("*.conf")):
        conf = json.loads(path.read_text())
        if conf.get("name") != name:
            continue
        if "plugins" not in conf:  # a single-plugin .conf, lifted into a list
            conf = {"cniVersion": conf.get("cniVersion"), "name": name, "plugins": [conf]}
        return conf
    sys.exit(f"no network {name!r} in {confdir}")


def plugin_config(net: dict, plugin: dict, cap_args: dict, prev) -> dict:
    conf = {k: v for k, v in plugin.items() if k != "capabilities"}
    conf["name"] = net["name"]
    conf["cniVersion"] = net["cniVersion"]
    runtime = {k: v for k, v in cap_args.items() if (plugin.get("capabilities") or {}).get(k)}
    if runtime:
        conf["runtimeConfig"] = runtime
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def invoke(plugin: dict, command: str, conf: dict, env: dict) -> dict | None:
    path = os.environ.get("CNI_PATH", "/opt/cni/bin")
    exe = next((Path(d) / plugin["type"] for d in path.split(":")
                if (Path(d) / plugin["type"]).exists()), None)
    if exe is None:
        sys.exit(f"plugin {plugin['type']!r} not found in CNI_PATH={path}")
    proc = subprocess.run([str(exe)], input=json.dumps(conf).encode(),
                          env=dict(env, CNI_COMMAND=command), capture_output=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr.decode())
        sys.stdout.write(proc.stdout.decode())
        sys.exit(proc.returncode)
    out = proc.stdout.decode().strip()
    return json.loads(out) if out else None


def main() -> None:
    ap = argparse.ArgumentParser(prog="cni")
    ap.add_argument("command", choices=["add", "check", "del", "gc", "status"])
    ap.add_argument("network")
    ap.add_argument("netns")
    ap.add_argument("--ifname", default=os.environ.get("CNI_IFNAME", "eth0"))
    ap.add_argument("--args", default=os.environ.get("CNI_ARGS", ""))
    ap.add_argument("--cap-args", default=os.environ.get("CAP_ARGS", "{}"))
    ap.add_argument("--id", help="container ID (default: derived from the netns path)")
    a = ap.parse_args()
    net = load_network(a.network)
    netns = os.path.abspath(a.netns)
    cid = a.id or "cnitool-" + hashlib.sha512(netns.encode()).hexdigest()[:20]
    cap_args = json.loads(a.cap_args)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": a.ifname,
           "CNI_ARGS": a.args, "CNI_PATH": os.environ.get("CNI_PATH", "/opt/cni/bin")}
    cache = CACHE / f"{net['name']}-{cid}-{a.ifname}"
    command = a.command.upper()
    if command == "ADD":
        prev = None
        for plugin in net["plugins"]:
            prev = invoke(plugin, "ADD", plugin_config(net, plugin, cap_args, prev), env)
        CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)
        cache.write_text(json.dumps({"kind": "cniCacheV1", "containerId": cid, "ifName": a.ifname,
                                     "networkName": net["name"], "netns": netns,
                                     "capabilityArgs": cap_args, "result": prev}))
        print(json.dumps(prev, indent=2))
    elif command in ("CHECK", "DEL"):
        cached = json.loads(cache.read_text()) if cache.exists() else {}
        prev = cached.get("result")
        cap_args = cap_args or cached.get("capabilityArgs") or {}
        plugins = net["plugins"] if command == "CHECK" else list(reversed(net["plugins"]))
        for plugin in plugins:
            invoke(plugin, command, plugin_config(net, plugin, cap_args, prev), env)
        if command == "DEL" and cache.exists():
            cache.unlink()
    else:
        valid = []
        if command == "GC":
            for entry in CACHE.glob(f"{net['name']}-*"):
                data = json.loads(entry.read_text())
                valid.append({"containerID": data["containerId"], "ifname": data["ifName"]})
        for plugin in net["plugins"]:
            conf = plugin_config(net, plugin, {}, None)
            if command == "GC":
                conf["cni.dev/valid-attachments"] = valid
            invoke(plugin, command, conf, env)


if __name__ == "__main__":
    main()
