"""Simulated hosts inside one sandbox: a network namespace per host, each
with its own dockline state (dataDir) and bridge, joined by an underlay (a
bridge ``ul0`` in the sandbox and a veth per host); etcd listens on the
underlay bridge's address, so every host reaches it over the underlay.

    sandbox netns:  ul0 10.200.0.1/24, etcd on 10.200.0.1:2379
    hostN netns:    eth0 10.200.0.1N/24 (veth to ul0), bridge cbr0
"""

from __future__ import annotations

import json
import os
import shlex

from etcdrun import PYTHON, REPO

SUBNET = "10.77.0.0/16"
ETCD_ADDRESS = "10.200.0.1"
CNI = os.path.join(REPO, "scripts", "cni")
CNI_BIN = os.path.join(REPO, ".build", "cni-bin")
CAPS = {"ips": True, "mac": True, "aliases": True, "links": True, "hostsFile": True}


def make_hosts(sandbox, names=("A", "B")) -> None:
    script = [
        "set -e",
        "ip link add ul0 type bridge",
        f"ip addr add {ETCD_ADDRESS}/24 dev ul0",
        "ip link set ul0 up",
    ]
    for i, name in enumerate(names, start=1):
        script += [
            f"ip netns add host{name}",
            f"ip link add ul{name} type veth peer name eth0 netns host{name}",
            f"ip link set ul{name} master ul0 up",
            f"ip -n host{name} addr add 10.200.0.1{i}/24 dev eth0",
            f"ip -n host{name} link set eth0 up",
            f"ip -n host{name} link set lo up",
            f"mkdir -p /etc/cni/net.d/host{name}",
        ]
    sandbox.sh("\n".join(script))


def netconf(endpoints: list[str], host: str, **cluster) -> dict:
    """The network as every host has it; only dataDir differs, because the
    simulated hosts share one file system."""
    return {
        "cniVersion": "1.1.0",
        "name": "cnet",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cbr0",
                "isGateway": True,
                "ipMasq": True,
                "capabilities": CAPS,
                "cluster": {"endpoints": endpoints, "timeout": 3, **cluster},
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET}]],
                    "dataDir": f"/var/lib/cni/host{host}",
                },
            }
        ],
    }


def install_conf(sandbox, host: str, conf: dict) -> None:
    sandbox.run(
        ["sh", "-c", f"cat > /etc/cni/net.d/host{host}/10-cnet.conflist"],
        input=json.dumps(conf),
        check=True,
    )


def cni(sandbox, host, command, netns, cid, pod=None, cap=None, timeout=60):
    """``dockline cnitool`` run on a simulated host."""
    argv = ["ip", "netns", "exec", f"host{host}", CNI, command, "cnet", f"/run/netns/{netns}"]
    argv += ["--id", cid, "--cap-args", json.dumps(cap or {})]
    if pod:
        argv += ["--args", f"IgnoreUnknown=1;K8S_POD_NAME={pod}"]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_PATH": CNI_BIN,
        "NETCONFPATH": f"/etc/cni/net.d/host{host}",
    }
    return sandbox.run(argv, env=env, timeout=timeout)


def ok(run) -> dict | None:
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout) if run.stdout.strip().startswith("{") else None


def address(result: dict) -> str:
    return result["ips"][0]["address"].split("/")[0]


def serve(sandbox, netns: str, body: str = "db says hi", port: int = 8080) -> None:
    """A one-request HTTP server in ``netns`` (killed with the sandbox)."""
    code = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        f"        self.wfile.write({body.encode()!r})\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('0.0.0.0', {port}), H).handle_request()\n"
    )
    sandbox.sh(f"ip netns exec {netns} {PYTHON} -c {shlex.quote(code)} >/dev/null 2>&1 &")


def fetch(sandbox, netns: str, url: str) -> str:
    return sandbox.sh(
        f"for i in $(seq 50); do ip netns exec {netns} {PYTHON} -c "
        f"\"import urllib.request as u; print(u.urlopen('{url}', timeout=2).read().decode())\" "
        "2>/dev/null && break; sleep 0.1; done",
        check=False,
    ).stdout.strip()


PING = """
import socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
hdr = struct.pack('!BBHHH', 8, 0, 0, 0x1d1, 1) + b'dockline'
pkt = hdr[:2] + struct.pack('!H', csum(hdr)) + hdr[4:]
s.sendto(pkt, (dst, 0))
deadline = time.monotonic() + 2
while time.monotonic() < deadline:
    data, (src, _) = s.recvfrom(1500)
    icmp = data[(data[0] & 15) * 4:]
    if src == dst and icmp[0] == 0 and icmp[4:6] == b'\\x01\\xd1':
        print('reply from', src); sys.exit(0)
sys.exit(1)
"""


def ping(sandbox, netns: str, dst: str):
    """One ICMP echo from ``netns`` (there is no ping(8) on the machine)."""
    return sandbox.run(["ip", "netns", "exec", netns, PYTHON, "-c", PING, dst], timeout=10)
