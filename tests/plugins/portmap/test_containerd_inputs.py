"""The chain exactly as containerd 1.6's CRI plugin (go-cni on libcni)
drives it on a Kubernetes node: the reference `loopback` beside, CNI_ARGS
with the pod's identity, a 64-hex sandbox ID, and port mappings marshalled
with Go's field names.  Run against dockline and the reference plugins:
same result shape, the published port answers, DEL leaves nothing."""

import json

import pytest
from helpers.paths import REFERENCE_BIN, REPO
from helpers.portmap import HOST4, setup_network, start_servers, tcp_probe

SANDBOX_ID = "5f1c2b3a" * 8
CNI_ARGS = (
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web;"
    f"K8S_POD_INFRA_CONTAINER_ID={SANDBOX_ID};K8S_POD_UID=0b7e3c9a-1d2f-4e5a-9b8c-7d6e5f4a3b2c"
)
# go-cni's PortMapping has no JSON tags: Go field names, empty HostIP
GO_MAPPINGS = {
    "portMappings": [{"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}],
    "io.kubernetes.cri.pod-annotations": {"example.com/team": "shop"},
}


def containerd_conflist(sb, impl, dockline_bin):
    cni_path = setup_network(sb, impl, dockline_bin)
    conf = json.loads(sb.sh("cat /etc/cni/net.d/30.conflist").stdout)
    # Debian's reference loopback speaks up to 1.0.0, as containerd 1.6 does
    conf["cniVersion"] = "1.0.0"
    conf["plugins"].insert(0, {"type": "loopback"})
    conf["plugins"][-1]["capabilities"]["io.kubernetes.cri.pod-annotations"] = True
    sb.run(["sh", "-c", "cat > /etc/cni/net.d/30.conflist"], input=json.dumps(conf), check=True)
    # loopback comes from the reference plugins, as on a node
    return cni_path if impl == "reference" else f"{cni_path}:{REFERENCE_BIN}"


def cri(sb, cni_path, command, cap_args=None):
    args = [
        str(REPO / "scripts" / "cni"),
        command,
        "dockline",
        "/run/netns/web",
        "--id",
        SANDBOX_ID,
        "--args",
        CNI_ARGS,
        "--cap-args",
        json.dumps(cap_args or {}),
    ]
    return sb.run(args, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": cni_path})


def leftovers(sb):
    rules = sb.sh("iptables-save; ip6tables-save; nft list ruleset").stdout
    return {
        "rules": [line for line in rules.splitlines() if "18080" in line],
        "veths": [
            line
            for line in sb.sh("ip -o link show type veth").stdout.splitlines()
            if "ext0" not in line
        ],  # the test's own "other machine"
        "reservations": sb.sh(
            "ls /var/lib/cni/networks/dockline | grep -v -e lock -e last_ || true"
        ).stdout.split(),
    }


@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables", "reference"])
def test_containerd_pod_with_a_published_port(sandbox, dockline_bin, impl):
    cni_path = containerd_conflist(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web")
    run = cri(sandbox, cni_path, "add", GO_MAPPINGS)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert [ip["address"] for ip in result["ips"]] == ["10.89.0.2/24", "fd89::2/64"]
    assert len(result["interfaces"]) == 3
    start_servers(sandbox)
    assert tcp_probe(sandbox, "ext", HOST4, port=18080) == "web"
    # StopPodSandbox: DEL with the same capability args (from the cache)
    run = cri(sandbox, cni_path, "del", GO_MAPPINGS)
    assert run.returncode == 0, run.stdout + run.stderr
    assert leftovers(sandbox) == {"rules": [], "veths": [], "reservations": []}
    # RemovePodSandbox DELs again: still fine
    assert cri(sandbox, cni_path, "del", GO_MAPPINGS).returncode == 0


@pytest.mark.parametrize(
    "garbage",
    [
        {"portMappings": [{"HostPort": "eighty"}]},
        {"portMappings": "18080:80"},
        {"portMappings": [{"hostPort": 18080, "containerPort": 80, "hostIP": "fd00::1%eth0"}]},
        {"portMappings": [None, 7, []]},
    ],
)
@pytest.mark.parametrize("impl", ["dockline-iptables", "dockline-nftables"])
def test_del_with_capability_args_it_cannot_read_still_cleans_up(
    sandbox, dockline_bin, impl, garbage
):
    cni_path = containerd_conflist(sandbox, impl, dockline_bin)
    sandbox.sh("ip netns add web")
    assert cri(sandbox, cni_path, "add", GO_MAPPINGS).returncode == 0
    assert leftovers(sandbox)["rules"]
    run = cri(sandbox, cni_path, "del", garbage)
    assert run.returncode == 0, run.stdout + run.stderr
    assert leftovers(sandbox) == {"rules": [], "veths": [], "reservations": []}
