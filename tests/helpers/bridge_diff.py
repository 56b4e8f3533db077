"""Shared code of the bridge differential tests (tests/plugins/bridge/
test_bridge_diff_*.py, one file per topic): a "side" (one implementation in
its own sandbox), kernel-state snapshots normalised for comparison, a runner
that plays a scenario against the reference and dockline in parallel, and
the scenario and assertion steps the topics share.

What the tests do and what they found:

Differential tests: dockline's bridge against the reference bridge
(/usr/lib/cni/bridge + host-local, containernetworking/plugins 1.1.1).

Each test plays the same calls against both implementations, each in a
fresh sandbox (reference: CNI_PATH=/usr/lib/cni; dockline: CNI_PATH=its
launchers), and compares the result JSON and the kernel state (bridge,
ports, container interfaces, addresses, routes, sysctls, IPAM store,
masquerade paths) modulo generated names and MACs.  Explicit assertions on
the reference's outcome pin down what each scenario exercises.

Differences by design (asserted as such):
- host veth names: reference ``veth<8 hex>``, dockline ``dl<13 hex>``;
  masquerade chains: reference ``CNI-...``, dockline ``DL-...``;
- a failed ADD because CNI_IFNAME already exists: dockline's DEL leaves the
  pre-existing interface alone, the reference's deletes it;
- a failed ADD (IPAM exhausted, gateway address conflict) leaves no veth in
  dockline; the reference leaves the veth pair until DEL.

Other differences found, where dockline is at least as good (asserted per
side):
- DEL without CNI_NETNS: the reference only releases the IPAM reservation
  and leaves the veth pair and the masquerade rules; dockline removes both.
- DEL after the netns is gone: the reference leaves the masquerade rules
  (it reads the addresses to unmasquerade from the vanished interface);
  dockline removes them.
- no ``dns`` in the config: the reference 1.1.1 returns no dns at all
  (it always replaces IPAM's dns with the config's); dockline returns IPAM's.
- IPAM returns a gateway-less default route and isDefaultGateway is set:
  the reference fails ("file exists"); dockline returns one default route
  via the gateway.
- without isGateway the reference leaves the bridge MAC unpinned (it follows
  the lowest port MAC as ports come and go); dockline pins it.
- error codes: the reference answers 999 (e.g. promisc+hairpin, CNI_IFNAME
  exists); dockline a spec or documented code (7, 102).
- options newer than 1.1.1 (``portIsolation``, ``disableContainerInterface``)
  are ignored by the reference.

Differences recorded, not asserted:
- IPv6 address flags: dockline adds the bridge's IPv6 gateway address and
  the container's IPv6 addresses with IFA_F_NODAD; the reference without
  (the container's are not tentative anyway, accept_dad=0; the bridge's
  gateway address is ``tentative`` for ~1 s after ADD).  Addresses are
  compared without flags.
- veth txqueuelen: the reference's veths have qlen 0, dockline's the kernel
  default 1000 (both use the noqueue qdisc).
- CNI_ARGS with unknown keys (K8S_POD_NAME=...) and no IgnoreUnknown: the
  reference fails before touching anything (999); dockline's bridge accepts
  the K8S_* keys, its host-local rejects them, so ADD fails later (code 4)
  after creating the bridge.
- VLANs cannot be exercised here (no CONFIG_BRIDGE_VLAN_FILTERING); reading
  dockline's code: it removes the port from the default VLAN 1 unless
  preserveDefaultVlan (default false; upstream's default is true, 1.1.1
  never removes it) and has no ``<bridge>.<vlan>`` gateway interface.

Discrepancies (dockline not a drop-in; these tests fail until it is fixed)
are marked "DROP-IN" at the tests that find them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sandbox import Sandbox

from helpers.cni import PluginRun, call_plugin
from helpers.paths import DOCKLINE_BIN, REFERENCE_BIN

REF, DL = "reference", "dockline"
SIDES = (REF, DL)
BRIDGE = "br0"
NETWORK = "net1"
V4 = [{"subnet": "10.1.2.0/24"}]
V6 = [{"subnet": "fd00:1::/64"}]
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# Host-side veth names: generated, different by design.
HOST_VETH_RE = {REF: re.compile(r"^veth[0-9a-f]{8}$"), DL: re.compile(r"^dl[0-9a-f]{13}$")}
# Firewall chain prefixes: different by design.
MASQ_CHAIN_PREFIX = {REF: "CNI-", DL: "DL-"}
DUAL = [V4, V6]

# Every differential test module: skipped without the reference plugins,
# failed early (dockline_bin) without dockline's launchers.
DIFF_MARKS = [
    pytest.mark.skipif(
        not (REFERENCE_BIN / "bridge").exists(),
        reason="reference plugins not installed in /usr/lib/cni",
    ),
    pytest.mark.usefixtures("dockline_bin"),
]


def bridge_conf(
    version: str = "1.0.0", ranges: list | None = None, *, ipam: dict | None = None, **top
) -> dict:
    """A bridge network config on br0; ``ranges`` (a list of range sets)
    gives a host-local ipam section, ``ranges=[]`` none at all (L2 only)."""
    conf = {"cniVersion": version, "name": NETWORK, "type": "bridge", "bridge": BRIDGE}
    if ipam is not None:
        conf["ipam"] = ipam
    elif ranges is None or ranges:
        conf["ipam"] = {"type": "host-local", "ranges": ranges if ranges is not None else [V4]}
    conf.update(top)
    if conf.get("ipMasq") and "ipMasqBackend" not in conf:
        # Compared with the reference's iptables rules; dockline's default
        # is nftables (the reference 1.1.1 ignores the key).
        conf["ipMasqBackend"] = "iptables"
    return conf


def ip_json(sb: Sandbox, *argv: str):
    proc = sb.run(list(argv), check=True)
    return json.loads(proc.stdout) if proc.stdout.strip() else []


class Side:
    """One implementation (its bridge + host-local) in its own sandbox."""

    def __init__(self, name: str, sb: Sandbox) -> None:
        self.name = name
        self.sb = sb
        self.bindir = REFERENCE_BIN if name == REF else DOCKLINE_BIN

    def sh(self, script: str, check: bool = True):
        return self.sb.sh(script, check=check)

    def netns(self, *names: str) -> None:
        self.sh("; ".join(f"ip netns add {n}" for n in names))

    def call(
        self,
        command: str,
        conf,
        *,
        ns: str | None = "c1",
        containerid: str | None = None,
        ifname: str = "eth0",
        args: str | None = None,
        bindir: Path | None = None,
    ) -> PluginRun:
        bindir = bindir or self.bindir
        netns = f"/run/netns/{ns}" if ns else None
        return call_plugin(
            self.sb,
            bindir / "bridge",
            command,
            conf,
            containerid=containerid or ns or "c1",
            netns=netns,
            ifname=ifname,
            args=args,
            path=str(bindir),
        )

    def add(self, conf, **kw) -> PluginRun:
        return self.call("ADD", conf, **kw)

    def delete(self, conf, **kw) -> PluginRun:
        return self.call("DEL", conf, **kw)

    def check(self, conf, prev: dict, **kw) -> PluginRun:
        conf = copy.deepcopy(conf)
        conf["prevResult"] = prev
        return self.call("CHECK", conf, **kw)

    def snapshot(self, netns: tuple[str, ...] = ("c1",)) -> dict:
        return snapshot(self, netns)


def both(scenario: Callable[[Side], object]) -> dict:
    """Run ``scenario(side)`` for the reference and for dockline, each in a
    fresh sandbox, in parallel; {side name: return value}."""

    def one(name: str):
        with Sandbox() as sb:
            return scenario(Side(name, sb))

    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(one, name) for name in SIDES}
        return {name: fut.result() for name, fut in futures.items()}


# ---------------------------------------------------------------- snapshot
def _addrs(entries: list[dict]) -> list[tuple]:
    """Addresses without the link-local ones (derived from random MACs)."""
    out = []
    for a in entries:
        if a.get("scope") == "link" and a.get("family") == "inet6":
            continue
        out.append((a["family"], a["local"], a["prefixlen"], a.get("scope"), a.get("broadcast")))
    return sorted(out)


def _routes(entries: list[dict]) -> list[dict]:
    out = []
    for r in entries:
        if str(r.get("dst", "")).startswith(("fe80:", "ff00:", "multicast")):
            continue
        r = dict(r)
        if not r.get("flags"):
            r.pop("flags", None)
        out.append(r)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def _read_sysctls(side: Side, paths: list[str], ns: str | None = None) -> dict:
    """{path below /proc/sys: value} ("-" if absent), in netns ``ns`` if given."""
    script = 'for f in "$@"; do v=$(cat "$f" 2>/dev/null) || v=-; printf "%s=%s\\n" "$f" "$v"; done'
    argv = ["sh", "-c", script, "sh", *paths]
    if ns:
        argv = ["ip", "netns", "exec", ns, *argv]
    out = {}
    for line in side.sb.run(argv, check=True).stdout.splitlines():
        key, _, value = line.partition("=")
        out[key.replace("/proc/sys/", "")] = value
    return out


def masq_sources(side: Side) -> dict:
    """Source addresses with a POSTROUTING -> chain -> MASQUERADE path in the
    nat table (both families), and the prefixes of the chains used."""
    sources, prefixes = [], set()
    for save in ("iptables-save", "ip6tables-save"):
        text = side.sh(f"{save} -t nat 2>/dev/null || true").stdout
        rules = [line.split() for line in text.splitlines() if line.startswith("-A ")]
        masq_chains = {r[1] for r in rules if r[-2:] == ["-j", "MASQUERADE"]}
        for r in rules:
            if r[1] == "POSTROUTING" and "-s" in r and r[-1] in masq_chains:
                sources.append(r[r.index("-s") + 1])
                prefixes.add(r[-1].split("-")[0] + "-")
    return {"sources": sorted(sources), "chain_prefixes": sorted(prefixes)}


def ipam_store(side: Side) -> dict:
    """Reserved addresses below /var/lib/cni/networks: {net/ip: contents}
    (lock and last_reserved_ip files left out)."""
    names = side.sh(
        "cd /var/lib/cni/networks 2>/dev/null && ls -d */* 2>/dev/null; true"
    ).stdout.split()
    out = {}
    for name in names:
        base = name.rsplit("/", 1)[-1]
        if base == "lock" or base.startswith("last_reserved_ip."):
            continue
        out[name] = side.sb.run(
            ["cat", f"/var/lib/cni/networks/{name}"], check=True, text=False
        ).stdout.decode()  # exact bytes: \r\n stays
    return out


def snapshot(side: Side, netns: tuple[str, ...] = ("c1",)) -> dict:
    """The kernel state a bridge ADD/DEL touches, normalised: no MACs, no
    generated host veth names (those are in ``raw``)."""
    links = {l["ifname"]: l for l in ip_json(side.sb, "ip", "-j", "-d", "link", "show")}
    raw: dict = {"host_veths": [], "macs": {}}
    snap: dict = {"bridge": None, "ports": [], "containers": {}}
    br = links.get(BRIDGE)
    if br is not None:
        kind = br.get("linkinfo", {}).get("info_kind")
        snap["bridge"] = {
            "kind": kind,
            "up": "UP" in br["flags"],
            "mtu": br["mtu"],
            "promisc": "PROMISC" in br["flags"],
            "vlan_filtering": br.get("linkinfo", {}).get("info_data", {}).get("vlan_filtering"),
            "addrs": _addrs(
                ip_json(side.sb, "ip", "-j", "addr", "show", "dev", BRIDGE)[0]["addr_info"]
            ),
        }
        raw["macs"][BRIDGE] = br["address"]
        raw["bridge_addr_info"] = ip_json(side.sb, "ip", "-j", "addr", "show", "dev", BRIDGE)[0][
            "addr_info"
        ]
        for name, link in sorted(links.items()):
            if link.get("master") != BRIDGE:
                continue
            slave = link.get("linkinfo", {}).get("info_slave_data", {})
            raw["host_veths"].append(name)
            raw["macs"][name] = link["address"]
            snap["ports"].append(
                {
                    "kind": link.get("linkinfo", {}).get("info_kind"),
                    "name_ok": bool(HOST_VETH_RE[side.name].match(name)),
                    "up": "UP" in link["flags"],
                    "mtu": link["mtu"],
                    "hairpin": slave.get("hairpin"),
                    "isolated": slave.get("isolated"),
                    "peer_netns": link.get("link_netnsid") is not None,
                }
            )
    snap["host_links"] = sorted(
        n for n in links if n not in ("lo", BRIDGE) and n not in raw["host_veths"]
    )
    host_sys = _read_sysctls(
        side, ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]
    )
    snap["sysctl"] = host_sys
    for ns in netns:
        if side.sh(f"test -e /run/netns/{ns}", check=False).returncode != 0:
            snap["containers"][ns] = None
            continue
        clinks = {
            l["ifname"]: l for l in ip_json(side.sb, "ip", "-n", ns, "-j", "-d", "link", "show")
        }
        caddrs = {
            a["ifname"]: a["addr_info"]
            for a in ip_json(side.sb, "ip", "-n", ns, "-j", "addr", "show")
        }
        ifaces = {}
        for name, link in clinks.items():
            if name == "lo":
                continue
            raw["macs"][f"{ns}/{name}"] = link["address"]
            ifaces[name] = {
                "kind": link.get("linkinfo", {}).get("info_kind"),
                "up": "UP" in link["flags"],
                "mtu": link["mtu"],
                "addrs": _addrs(caddrs.get(name, [])),
                "tentative": sorted(
                    a["local"]
                    for a in caddrs.get(name, [])
                    if a.get("tentative") and a.get("scope") != "link"
                ),
                "sysctl": _read_sysctls(
                    side,
                    [
                        f"/proc/sys/net/ipv6/conf/{name}/accept_dad",
                        f"/proc/sys/net/ipv4/conf/{name}/arp_notify",
                    ],
                    ns,
                ),
            }
        snap["containers"][ns] = {
            "links": ifaces,
            "routes4": _routes(ip_json(side.sb, "ip", "-n", ns, "-j", "-4", "route", "show")),
            "routes6": _routes(ip_json(side.sb, "ip", "-n", ns, "-j", "-6", "route", "show")),
        }
    snap["ipam"] = ipam_store(side)
    masq = masq_sources(side)
    snap["masq_sources"] = masq["sources"]
    raw["masq_chain_prefixes"] = masq["chain_prefixes"]
    snap["raw"] = raw
    return snap


def comparable(snap: dict) -> dict:
    return {k: v for k, v in snap.items() if k != "raw"}


def flat_diff(ref, dl, path: str = "") -> list[str]:
    """Readable list of the differences between two nested values."""
    if isinstance(ref, dict) and isinstance(dl, dict):
        out = []
        for key in sorted(set(ref) | set(dl), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in ref:
                out.append(f"{sub}: only dockline: {dl[key]!r}")
            elif key not in dl:
                out.append(f"{sub}: only reference: {ref[key]!r}")
            else:
                out += flat_diff(ref[key], dl[key], sub)
        return out
    if ref != dl:
        return [f"{path}: reference {ref!r} != dockline {dl!r}"]
    return []


def assert_same(ref, dl, what: str) -> None:
    diff = flat_diff(ref, dl)
    assert not diff, f"{what} differs:\n  " + "\n  ".join(diff)


# ---------------------------------------------------------------- results
def normalize_result(
    result: dict | None, side: str, requested_macs: dict | None = None
) -> dict | None:
    """The result with generated values checked and replaced: MACs (unless
    requested), the host veth name."""
    if result is None:
        return None
    result = copy.deepcopy(result)
    requested_macs = requested_macs or {}
    for i, iface in enumerate(result.get("interfaces") or []):
        mac = iface.get("mac")
        if mac is not None:
            assert MAC_RE.match(mac), f"{side}: bad MAC {mac!r} in {iface}"
            if iface.get("name") not in requested_macs:
                iface["mac"] = "<mac>"
        if i == 1:
            assert HOST_VETH_RE[side].match(iface["name"]), f"{side}: host veth {iface['name']!r}"
            iface["name"] = "<host-veth>"
    return result


def result_matches_kernel(result: dict, snap: dict, ns: str = "c1") -> None:
    """The result's interfaces are the ones in the kernel, with their MACs."""
    ifaces = result["interfaces"]
    macs = snap["raw"]["macs"]
    assert ifaces[0]["name"] == BRIDGE and ifaces[0]["mac"] == macs[BRIDGE]
    assert ifaces[1]["name"] in snap["raw"]["host_veths"]
    assert ifaces[1]["mac"] == macs[ifaces[1]["name"]]
    assert ifaces[2]["sandbox"] == f"/run/netns/{ns}"
    assert ifaces[2]["mac"] == macs[f"{ns}/{ifaces[2]['name']}"]


# ---------------------------------------------------------------- scenarios
def add_del_scenario(conf: dict, pre: str = "", add_kw: dict | None = None):
    """netns c1, ``pre``, ADD, snapshot, DEL, snapshot, DEL again."""

    def scenario(side):
        side.netns("c1")
        if pre:
            side.sh(pre)
        out = {"add": side.add(conf, **(add_kw or {}))}
        out["snap"] = side.snapshot()
        out["del"] = side.delete(conf, **(add_kw or {}))
        out["snap_del"] = side.snapshot()
        out["del2"] = side.delete(conf, **(add_kw or {}))
        return out

    return scenario


def _without_cross_family_sysctls(snap: dict, result: dict) -> dict:
    """The container sysctls of the family the result has no address of
    (IPv6 accept_dad with IPv4 only, IPv4 arp_notify with IPv6 only) are
    left out here: test_container_sysctls_single_family compares them."""
    snap = copy.deepcopy(comparable(snap))
    families = {"6" if ":" in ip["address"] else "4" for ip in result.get("ips") or []}
    drop = []
    if families and "6" not in families:
        drop.append("accept_dad")
    if families and "4" not in families:
        drop.append("arp_notify")
    for ns in snap["containers"].values():
        for link in (ns or {}).get("links", {}).values():
            for key in list(link["sysctl"]):
                if key.rsplit("/", 1)[-1] in drop:
                    del link["sysctl"][key]
    return snap


def assert_same_add(runs: dict, requested_macs: dict | None = None) -> tuple[dict, dict]:
    """Both ADDs succeed, with the same result and kernel state; returns the
    reference's (result, snapshot)."""
    for side in SIDES:
        runs[side]["add"].ok()
        result_matches_kernel(runs[side]["add"].json, runs[side]["snap"])
    ref, dl = runs[REF], runs[DL]
    assert_same(
        normalize_result(ref["add"].json, REF, requested_macs),
        normalize_result(dl["add"].json, DL, requested_macs),
        "ADD result",
    )
    result = ref["add"].json
    assert_same(
        _without_cross_family_sysctls(ref["snap"], result),
        _without_cross_family_sysctls(dl["snap"], result),
        "kernel state after ADD",
    )
    for side in SIDES:
        snap = runs[side]["snap"]
        assert all(p["name_ok"] for p in snap["ports"]), (side, snap["raw"]["host_veths"])
        if snap["masq_sources"]:
            assert snap["raw"]["masq_chain_prefixes"] == [MASQ_CHAIN_PREFIX[side]]
    return ref["add"].json, ref["snap"]


def assert_clean_del(runs: dict) -> None:
    """DEL removed the veth pair, the reservation and the masquerade path
    (the bridge stays), the same way for both; a second DEL succeeds."""
    for side in SIDES:
        run = runs[side]
        run["del"].ok()
        run["del2"].ok()
        snap = run["snap_del"]
        assert snap["ports"] == [], side
        assert snap["containers"]["c1"]["links"] == {}, side
        assert snap["ipam"] == {}, side
        assert snap["masq_sources"] == [], side
        assert snap["bridge"] is not None, side
    assert_same(
        comparable(runs[REF]["snap_del"]),
        comparable(runs[DL]["snap_del"]),
        "kernel state after DEL",
    )


def c1_of(snap):
    return snap["containers"]["c1"]


def eth0_of(snap):
    return c1_of(snap)["links"]["eth0"]
