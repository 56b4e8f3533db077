"""Calling dockline's bridge in a sandbox and reading what it made: the
small steps the bridge tests share."""

import json

from helpers.cni import call_plugin
from helpers.paths import VENV_PYTHON

SUBNET = "10.44.0.0/24"


def conf(version="1.0.0", **extra):
    base = {
        "cniVersion": version,
        "name": "net1",
        "type": "bridge",
        "bridge": "dl0",
        "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]]},
    }
    base.update(extra)
    return base


def dual_conf(**extra):
    return conf(
        ipam={"type": "host-local", "ranges": [[{"subnet": SUBNET}], [{"subnet": "fd44::/64"}]]},
        **extra,
    )


def add(sb, binary, name, config, **kw):
    sb.sh(f"ip netns add {name}")
    return call_plugin(
        sb, binary / "bridge", "ADD", config, containerid=name, netns=f"/run/netns/{name}", **kw
    )


def delete(sb, binary, name, config, **kw):
    kw.setdefault("netns", f"/run/netns/{name}")
    return call_plugin(sb, binary / "bridge", "DEL", config, containerid=name, **kw)


def links(sb, netns=None):
    cmd = (
        ["ip", "-j", "-d", "link", "show"]
        if netns is None
        else ["ip", "-n", netns, "-j", "-d", "link", "show"]
    )
    return {l["ifname"]: l for l in json.loads(sb.run(cmd, check=True).stdout)}


def store(sb, network="net1"):
    out = sb.sh(f"ls /var/lib/cni/networks/{network} 2>/dev/null || true").stdout.split()
    return sorted(n for n in out if n != "lock" and not n.startswith("last_reserved"))


def http_get(sb, client_ns, server_ns, address, port=8080, tries=50):
    """An HTTP request from one namespace to a server in another (the
    server gives up after 8 s, so a failing probe ends too)."""
    host = f"[{address}]" if ":" in address else address
    bind = "::" if ":" in address else "0.0.0.0"
    server = f"ip netns exec {server_ns} " if server_ns else ""
    script = (
        f'{server}{VENV_PYTHON} -c "import http.server, socket\n'
        "class S(http.server.HTTPServer): "
        f"address_family = socket.AF_INET6 if ':' in '{bind}' else socket.AF_INET\n"
        f"s = S(('{bind}', {port}), http.server.SimpleHTTPRequestHandler); "
        's.timeout = 8; s.handle_request()" >/dev/null 2>&1 &\n'
        f"for i in $(seq {tries}); do ip netns exec {client_ns} {VENV_PYTHON} "
        '-c "import urllib.request as u; '
        f"print(u.urlopen('http://{host}:{port}/', timeout=2).status)\" 2>/dev/null "
        "&& break; sleep 0.1; done\n"
        "wait"
    )
    return sb.sh(script, check=False).stdout.strip()
