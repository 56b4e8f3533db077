"""portmap chained after bridge in a sandbox: the network (with an
"external machine" routed to the host), the servers in the web container,
and probes from everywhere a published port should answer."""

import json

from helpers.paths import REFERENCE_BIN, REPO, VENV_PYTHON

CONFLIST = json.loads((REPO / "conf" / "30-dockline-portmap.conflist").read_text())
IMPLS = {
    "dockline-iptables": ("dockline", "iptables"),
    "dockline-nftables": ("dockline", "nftables"),
    "reference": ("reference", None),
}
HOST4, HOST6 = "192.0.2.1", "2001:db8::1"


def setup_network(sb, impl, dockline_bin):
    which, backend = IMPLS[impl]
    conf = json.loads(json.dumps(CONFLIST))
    if backend:
        conf["plugins"][1]["backend"] = backend
        conf["plugins"][0]["ipMasqBackend"] = backend
    else:
        conf["cniVersion"] = "1.0.0"  # Debian's reference plugins stop there
    sb.run(["sh", "-c", "cat > /etc/cni/net.d/30.conflist"], input=json.dumps(conf), check=True)
    # An "external machine": namespace ext, routed to the host over a veth.
    # (no IPv6 DAD on the test's own links: a tentative link-local address
    # holds neighbour discovery back for a second or two)
    sb.sh(
        "ip netns add ext; ip link add ext0 type veth peer name eth0 netns ext;"
        "sysctl -qw net.ipv6.conf.ext0.accept_dad=0;"
        "ip netns exec ext sysctl -qw net.ipv6.conf.eth0.accept_dad=0;"
        f"ip addr add {HOST4}/24 dev ext0; ip addr add {HOST6}/64 dev ext0 nodad;"
        "ip link set ext0 up;"
        "ip -n ext addr add 192.0.2.2/24 dev eth0;"
        "ip -n ext addr add 2001:db8::2/64 dev eth0 nodad;"
        "ip -n ext link set eth0 up; ip -n ext link set lo up;"
        f"ip -n ext route add default via {HOST4}; ip -n ext -6 route add default via {HOST6}"
    )
    return str(dockline_bin) if which == "dockline" else str(REFERENCE_BIN)


def cni(sb, cni_path, command, name, cap_args=None, ifname="eth0", cid=None):
    args = [
        str(REPO / "scripts" / "cni"),
        command,
        "dockline",
        f"/run/netns/{name}",
        "--id",
        cid or name,
        "--ifname",
        ifname,
        "--cap-args",
        json.dumps(cap_args or {}),
    ]
    return sb.run(args, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": cni_path})


def tcp_probe(sb, where, address, port=8080):
    host = f"[{address}]" if ":" in address else address
    prefix = f"ip netns exec {where} " if where else ""
    return sb.sh(
        f'{prefix}{VENV_PYTHON} -c "import urllib.request as u; '
        f"print(u.urlopen('http://{host}:{port}/', timeout=2).read().decode().strip())\"",
        check=False,
    ).stdout.strip()


def udp_probe(sb, where, address, port=5353):
    family = "AF_INET6" if ":" in address else "AF_INET"
    prefix = f"ip netns exec {where} " if where else ""
    code = (
        f"import socket; s = socket.socket(socket.{family}, socket.SOCK_DGRAM); s.settimeout(2); "
        f"s.sendto(b'ping', ('{address}', {port})); print(s.recvfrom(100)[0].decode())"
    )
    return sb.sh(f'{prefix}{VENV_PYTHON} -c "{code}"', check=False).stdout.strip()


def start_servers(sb):
    """web answers HTTP on :80 (v4+v6) with 'web' and UDP echo on :53.
    Waits for the bridge's IPv6 addresses to leave DAD: dockline creates
    its bridge without DAD, the reference's stays tentative for ~2 s."""
    sb.sh(
        "for i in $(seq 50); do ip -6 addr show dev dockline0 tentative | grep -q inet6 || break;"
        " sleep 0.1; done"
    )
    sb.sh("mkdir -p /run/netns/www && echo web > /run/netns/www/index.html")
    sb.sh(
        f"ip netns exec web {VENV_PYTHON} -m http.server 80 --bind :: --directory /run/netns/www "
        ">/dev/null 2>&1 & "
        f'ip netns exec web {VENV_PYTHON} -c "import socket\n'
        "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n"
        "s.bind(('::', 53))\n"
        "while True:\n    d, a = s.recvfrom(100)\n    s.sendto(b'pong', a)\" >/dev/null 2>&1 &"
        "for i in $(seq 50); do"
        " ip netns exec web ss -ltn | grep -q ':80 ' && break; sleep 0.1; done"
    )


MAPPINGS = {
    "portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"},
    ]
}
