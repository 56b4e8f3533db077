"""Docker links through `dockline cnitool` (scripts/cni) in a sandbox: the
steps the links tests share."""

import json

from helpers.paths import REPO, VENV_PYTHON

CAPS = {"ips": True, "mac": True, "aliases": True, "links": True, "hostsFile": True}


def setup(sb, **bridge):
    conf = json.loads((REPO / "conf" / "20-dockline-bridge.conflist").read_text())
    conf["plugins"][0]["capabilities"] = CAPS
    conf["plugins"][0].update(bridge)
    sb.run(["sh", "-c", "cat > /etc/cni/net.d/20.conflist"], input=json.dumps(conf), check=True)


def cni(sb, command, name, cid=None, pod=None, cap=None, netns=None):
    args = [
        str(REPO / "scripts" / "cni"),
        command,
        "dockline",
        netns or f"/run/netns/{name}",
        "--id",
        cid or name,
        "--cap-args",
        json.dumps(cap or {}),
    ]
    if pod:
        args += ["--args", f"IgnoreUnknown=1;K8S_POD_NAME={pod}"]
    return sb.run(
        args,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": str(REPO / ".build" / "cni-bin")},
    )


def ok(run):
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout) if run.stdout.strip().startswith("{") else None


def err(run):
    assert run.returncode != 0, run.stdout
    return json.loads(run.stdout)


def state(sb):
    """Everything a failed ADD must leave untouched."""
    return sb.sh(
        "ls -la /var/lib/cni/networks/dockline 2>/dev/null | awk '{print $NF}';"
        "cat /var/lib/cni/networks/dockline/.dockline-names/e-* 2>/dev/null;"
        "ip -br link show master dockline0 2>/dev/null; cat /etc/netns/*/hosts 2>/dev/null",
        check=False,
    ).stdout


def serve_and_fetch(sb, server, client, url):
    sb.sh(
        f'ip netns exec {server} {VENV_PYTHON} -c "import http.server, socket\n'
        "class S(http.server.HTTPServer): address_family = socket.AF_INET6\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'db says hi')\n"
        "    def log_message(self, *a): pass\n"
        "s = S(('::', 8080), H); s.handle_request()\" >/dev/null 2>&1 &"
    )
    return sb.sh(
        f"for i in $(seq 50); do ip netns exec {client} {VENV_PYTHON} "
        '-c "import urllib.request as u;'
        f" print(u.urlopen('{url}', timeout=2).read().decode())\" 2>/dev/null "
        "&& break; sleep 0.1; done",
        check=False,
    ).stdout.strip()
