"""The etcd client over TLS with a client certificate (etcd requiring
one), and refused when the server's certificate is not trusted."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time

import pytest
from etcdrun import Member, py

OPENSSL = "/usr/bin/openssl"


def make_certs(d: str) -> dict:
    def run(*args):
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, cwd=d)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    )
    for name, san in (("server", "IP:127.0.0.21"), ("client", "DNS:client")):
        run(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
        )
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n")
        run(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
            "-extfile",
            f"{name}.ext",
        )
    # A second CA nobody signed with: trusting only it must fail.
    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "other.key",
        "-out",
        "other.pem",
        "-days",
        "1",
        "-subj",
        "/CN=other",
    )
    return {"ca": f"{d}/ca.pem", "cert": f"{d}/server.pem", "key": f"{d}/server.key"}  # fmt: skip


@pytest.fixture
def tls_etcd(sandbox):
    with tempfile.TemporaryDirectory(prefix="dockline-etcd-tls-") as d:
        subprocess.run(["chmod", "0755", d], check=True)
        files = make_certs(d)
        member = Member(sandbox, "tls", "127.0.0.21", "tls=http://127.0.0.21:2380", tls=files)
        member.start()
        try:
            deadline = time.monotonic() + 30
            while True:  # healthy once a client with a certificate can read
                probe = sandbox.run(
                    ["curl", "-s", "-m", "2", "--cacert", files["ca"], "--cert", f"{d}/client.pem",
                     "--key", f"{d}/client.key", "-X", "POST", "-d", "{}",
                     member.url + "/v3/maintenance/status"],
                )  # fmt: skip
                if '"leader"' in probe.stdout:
                    break
                assert time.monotonic() < deadline, member.output()
                time.sleep(0.1)
            yield member, d
        finally:
            member.stop()
            member.log.close()


CODE = """
import sys
from dockline.cluster import config, etcd
from dockline.cni import jsonio
c = etcd.Client(config.parse(jsonio.loads(sys.argv[1])))
try:
    c.put(b"/tls/k", b"v")
    print("got", c.get(b"/tls/k").value.decode())
except etcd.EtcdUnavailable as exc:
    print("code", exc.code, exc.details)
"""


def run(sandbox, cluster):
    proc = py(sandbox, CODE.replace("sys.argv[1]", repr(json.dumps(cluster))))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_client_certificate_over_https(sandbox, tls_etcd):
    member, d = tls_etcd
    tls = {"ca": f"{d}/ca.pem", "cert": f"{d}/client.pem", "key": f"{d}/client.key"}
    assert run(sandbox, {"endpoints": [member.url], "tls": tls}).strip() == "got v"


def test_untrusted_server_or_no_client_certificate_is_refused(sandbox, tls_etcd):
    member, d = tls_etcd
    other = {"ca": f"{d}/other.pem", "cert": f"{d}/client.pem", "key": f"{d}/client.key"}
    out = run(sandbox, {"endpoints": [member.url], "tls": other, "timeout": 1})
    assert out.startswith("code 11") and "certificate verify failed" in out, out
    out = run(sandbox, {"endpoints": [member.url], "tls": {"ca": f"{d}/ca.pem"}, "timeout": 1})
    assert out.startswith("code 11"), out
