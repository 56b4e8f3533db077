"""Hypothesis strategies for hostile CNI calls.

Every case starts from a request that would succeed and breaks exactly one
thing, so the expected error code follows from what was broken (README
"Errors" table and the CNI spec), not from what the code happens to say.
Where the README is silent, a case accepts the set of codes that make
sense, and says why.

A case is (plugin, command, env, stdin, expected codes, why).  ``expect``
empty means the call must succeed (DEL of something that is not there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from helpers.paths import DOCKLINE_BIN
from hypothesis import strategies as st

from .conftest import BAD_RESOLV_CONFS, BRIDGE, CWD, NETWORK, PATH, plugin_conf

# Error codes (README "Errors").
VERSION, ENV, DECODE, CONFIG, NO_CONTAINER = 1, 4, 6, 7, 3
SUPPORTED = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")


@dataclass
class Case:
    plugin: str
    command: str
    env: dict
    stdin: bytes
    expect: frozenset
    why: str
    raw: dict | None = field(default=None, repr=False)  # the config, when JSON

    def describe(self) -> str:
        env = {k: v for k, v in self.env.items() if k not in ("PATH", b"PATH")}
        return (
            f"{self.plugin} {self.command}: {self.why}\n  env={env!r}\n"
            f"  stdin={self.stdin[:1500]!r}"
        )


# --- the README's validity rules, restated (not imported from the library) ---

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def valid_identifier(s) -> bool:
    """Container IDs and network names: ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"""
    return (
        isinstance(s, str) and bool(s) and s[0].isascii() and s[0].isalnum() and set(s) <= _ID_CHARS
    )


def valid_ifname(s) -> bool:
    """At most 15 bytes, not . or .., no /, : or white space (and nothing
    unprintable, which is what the kernel refuses besides)."""
    if not isinstance(s, str) or not s or s in (".", ".."):
        return False
    try:
        if len(s.encode()) > 15:
            return False
    except UnicodeEncodeError:
        return False
    return not any(c in "/:" or c.isspace() or not c.isprintable() for c in s)


def valid_hostname(s) -> bool:
    """Names and aliases: letters, digits, - and _, dots between labels,
    at most 253 characters."""
    if not isinstance(s, str) or not s or len(s) > 253 or not s.isascii() or not s[0].isalnum():
        return False
    for label in s.split("."):
        if not label or len(label) > 63 or not all(c.isalnum() or c in "-_" for c in label):
            return False
    return True


# --- hostile building blocks ---------------------------------------------------

NASTY_FRAGMENTS = [
    "",
    " ",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "\x1b[31m",
    "\u2028",
    "\u2029",
    "\u0085",
    "\ufeff",
    "\u200b",
    "%eth0",
    "%",
    "../",
    "../../etc/passwd",
    "/",
    ":",
    ";",
    "#",
    ",",
    "=",
    "$(id)",
    "`id`",
    "'",
    '"',
    "\\",
    "{",
    "}",
    "é",
    "\U0001d518",
    "-",
    ".",
    "..",
    "*",
    "x" * 300,
    "\n flush ruleset\n",
    "; flush ruleset",
    "*filter\n-F\nCOMMIT\n",
]

nasty_text = st.one_of(
    st.lists(st.sampled_from(NASTY_FRAGMENTS) | st.text(max_size=4), min_size=1, max_size=4).map(
        "".join
    ),
    st.text(max_size=20),
)

huge_ints = st.sampled_from([2**70, -(2**70), 2**63, 2**64 + 1, 2**31, -(2**31) - 1, -1])
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), huge_ints, finite_floats, nasty_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def not_a(*types):
    """A JSON value of none of ``types`` (bool is not an int here)."""

    def ok(v):
        if isinstance(v, bool):
            return bool not in types
        return not isinstance(v, types)

    return json_values.filter(ok)


non_bool = not_a(bool).filter(lambda v: v is not None)  # None means the default
non_string = not_a(str).filter(lambda v: v is not None)
non_list = not_a(list).filter(lambda v: v is not None)
non_dict = not_a(dict).filter(
    lambda v: v is not None and v != [] and v != "" and v != 0 and v is not False
)  # falsy values mean "absent"
# Truthy non-lists: an empty string or 0 reads as "absent" for optional lists.
truthy_non_list = not_a(list).filter(bool)
truthy_non_dict = not_a(dict).filter(bool)


def int_outside(lo: int, hi: int, allow_none: bool = False):
    """Not an integer in [lo, hi]: out of range, huge, float, string, bool..."""
    out_of_range = st.one_of(
        st.integers(max_value=lo - 1), st.integers(min_value=hi + 1), huge_ints
    ).filter(lambda v: not lo <= v <= hi)
    others = not_a(int).filter(lambda v: allow_none or v is not None)
    return st.one_of(out_of_range, others, finite_floats)


BAD_IPS = [
    "10.89.0.300",
    "10.89.0",
    "10.89.0.5.1",
    "010.089.000.005",
    "10.89.0.5 ",
    " 10.89.0.5",
    "10.89.0.5\n",
    "10.89.0.5%eth0",
    "fd89::5%eth0",
    "fd89::5%x; flush ruleset",
    "fd89::5%\nflush ruleset",
    "fd89::5%",
    "fd89:::5",
    "fd89::g",
    "fe80::1%lo",
    "::1%$(id)",
    "10.89.0.5/24%x",
    "localhost",
    "0x0a590005",
    "167313413",
    "10.89.0.5\u2028",
    "\uff11\uff10.89.0.5",  # full-width digits
    "1.2.3.4\x00",
    "",
]
bad_ip_strings = st.one_of(
    st.sampled_from(BAD_IPS), nasty_text.filter(lambda s: not _parses_as_ip(s))
)
bad_ips = st.one_of(bad_ip_strings.filter(bool), non_string)


def _parses_as_ip(s: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_interface(s)
        return "%" not in s
    except ValueError:
        return False


BAD_CIDRS = [
    "10.89.0.0/33",
    "10.89.0.0/-1",
    "10.89.0.0/",
    "10.89.0.0",
    "10.89.0.0/24/24",
    "fd89::/129",
    "fd89::%eth0/64",
    "fd89::/64%eth0",
    "10.89.0.0/2\n4",
    "10.89.0.0/ 24",
    "10.89.0.0/24 ",
    "10.89.0.0/0x18",
    "10.89.0.0/255.255.0.0.0",
    "garbage",
]
bad_cidrs = st.one_of(
    st.sampled_from(BAD_CIDRS),
    non_string,
    nasty_text.filter(lambda s: "/" not in s or not _parses_as_ip(s)).filter(bool),
)

BAD_MACS = [
    "",
    "00:11:22:33:44",
    "00:11:22:33:44:55:66",
    "0g:11:22:33:44:55",
    "01:00:5e:00:00:01",
    "ff:ff:ff:ff:ff:ff",
    "00-11-22-33-44-55",
    "001122334455",
    "00:11:22:33:44:5",
    "0:11:22:33:44:55",
    " 02:11:22:33:44:55",
    "02:11:22:33:44:55\n",
    "02:11:22:33:44:55%x",
]
bad_macs = st.one_of(st.sampled_from(BAD_MACS).filter(bool), non_string.filter(bool))

# Names that must be refused: bad host names for aliases and links.
bad_hostnames = st.one_of(
    nasty_text.filter(lambda s: not valid_hostname(s) and s != ""),
    st.sampled_from(
        [
            "../x",
            "a b",
            "a\nb",
            "a\tb",
            "-x",
            ".x",
            "x.",
            "a..b",
            "x" * 254,
            "a" * 64 + ".b",
            "db\n10.0.0.1 evil",
            "é",
            "a/b",
            "a:b:c",
        ]
    ),
    non_string.filter(bool),
)
bad_identifiers = st.one_of(
    nasty_text.filter(lambda s: not valid_identifier(s) and s != ""),
    st.sampled_from(["-x", ".x", "_x", "../x", "x/y", "a b", "x\n", "é", "x%y", "x;y", "\x00"]),
)
bad_ifnames = st.one_of(
    nasty_text.filter(lambda s: not valid_ifname(s) and s != ""),
    st.sampled_from(
        [
            ".",
            "..",
            "a/b",
            "a:b",
            "eth 0",
            "eth0\n",
            "x" * 16,
            "\u00e9" * 8,
            "eth\x000",
            "eth0\u2028",
        ]
    ),
)
non_versions = st.one_of(
    st.sampled_from(
        [
            "1.2.0",
            "0.5.0",
            "2.0.0",
            "1.1",
            "1.1.0 ",
            "v1.1.0",
            "1.1.0\n",
            "01.1.0",
            "1.1.0-rc1",
            "1.1.0\x00",
            "latest",
            "1,1,0",
            "\uff11.1.0",
        ]
    ),
    nasty_text.filter(lambda s: s not in SUPPORTED and s != ""),
)


def set_path(obj, path, value):
    """A deep copy of obj with obj[path...] = value (creating dicts)."""
    obj = json.loads(json.dumps(obj))
    cur = obj
    for key in path[:-1]:
        cur = cur.setdefault(key, {}) if isinstance(cur, dict) else cur[key]
    cur[path[-1]] = value
    return obj


def encode(conf) -> bytes:
    return json.dumps(conf).encode()


def env_for(
    command: str,
    cid: str = "c3",
    ifname: str = "eth0",
    netns: str | None = None,
    args: str | None = None,
) -> dict:
    env = {
        "PATH": PATH,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_IFNAME": ifname,
        "CNI_NETNS": netns or f"/run/netns/{cid}",
        "CNI_PATH": str(DOCKLINE_BIN),
    }
    if args is not None:
        env["CNI_ARGS"] = args
    return env


# --- valid requests (never run as they are: each case breaks one thing) -----


def bridge_base() -> dict:
    return plugin_conf(BRIDGE, runtimeConfig={"aliases": ["cache"], "links": ["db:dbapp"]})


def host_local_base() -> dict:
    return plugin_conf({"type": "bridge", "ipam": dict(BRIDGE["ipam"])})


def static_base() -> dict:
    return plugin_conf(
        {
            "type": "bridge",
            "ipam": {
                "type": "static",
                "addresses": [
                    {"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
                    {"address": "fd10::5/64"},
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd10::1"}],
                "dns": {
                    "nameservers": ["10.10.0.1"],
                    "domain": "example",
                    "search": ["example"],
                    "options": ["ndots:2"],
                },
            },
        }
    )


def prev_result_for(cid: str, v4: str, v6: str) -> dict:
    return {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "dockline0", "mac": "02:00:00:00:00:01"},
            {"name": "dl0123456789abc", "mac": "02:00:00:00:00:02"},
            {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": f"/run/netns/{cid}"},
        ],
        "ips": [
            {"address": v4, "gateway": "10.89.0.1", "interface": 2},
            {"address": v6, "gateway": "fd89::1", "interface": 2},
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        "dns": {},
    }


def portmap_base() -> dict:
    return plugin_conf(
        {"type": "portmap", "snat": True},
        runtimeConfig={
            "portMappings": [{"hostPort": 9090, "containerPort": 80, "protocol": "tcp"}]
        },
        prevResult=prev_result_for("c3", "10.89.0.50/24", "fd89::50/64"),
    )


# --- mutations -------------------------------------------------------------------
# Each returns a strategy of (config or raw bytes, env changes, expected codes, why).


def _config_mutation(path, values, expect, why=None):
    return values.map(
        lambda v: (path, v, frozenset(expect), why or f"{'.'.join(map(str, path))}={v!r}")
    )


def cni_version_mutations():
    return st.one_of(
        # an unknown version string: code 1
        _config_mutation(["cniVersion"], non_versions, {VERSION}),
        # not a string at all: the config cannot be decoded (6); 1 accepted
        # too as "not a version we know" (README is silent on the type)
        _config_mutation(["cniVersion"], non_string.filter(bool), {VERSION, DECODE}),
    )


def name_mutations():
    return st.one_of(
        _config_mutation(["name"], bad_identifiers, {CONFIG}),
        _config_mutation(["name"], non_string, {CONFIG}),
        _config_mutation(["name"], st.just(""), {CONFIG}),
    )


def ipam_range_mutations(prefix=("ipam",)):
    p = list(prefix)
    r0 = p + ["ranges", 0, 0]
    return st.one_of(
        _config_mutation(p, non_dict, {CONFIG}),
        _config_mutation(p + ["ranges"], truthy_non_list, {CONFIG}),
        _config_mutation(p + ["ranges"], st.just([]), {CONFIG}, "no ranges at all"),
        _config_mutation(p + ["ranges", 0], st.one_of(st.just([]), truthy_non_list), {CONFIG}),
        _config_mutation(r0, truthy_non_dict, {CONFIG}),
        _config_mutation(r0 + ["subnet"], bad_cidrs, {CONFIG}),
        _config_mutation(
            r0 + ["subnet"],
            st.sampled_from(["10.89.0.1/24", "10.89.0.0/31", "10.89.0.0/32", "10.89.0.0/30x"]),
            {CONFIG},
        ),
        _config_mutation(
            r0 + ["rangeStart"],
            st.one_of(bad_ips, st.sampled_from(["10.90.0.1", "fd89::1", "10.88.255.255"])).filter(
                lambda v: v not in ("", None)
            ),
            {CONFIG},
        ),
        _config_mutation(
            r0 + ["rangeEnd"],
            st.one_of(bad_ips, st.sampled_from(["10.89.1.0", "fd89::1", "0.0.0.0"])).filter(
                lambda v: v not in ("", None)
            ),
            {CONFIG},
        ),
        _config_mutation(
            r0 + ["gateway"],
            st.one_of(bad_ips, st.sampled_from(["10.90.0.1", "fd89::1"])).filter(
                lambda v: v not in ("", None)
            ),
            {CONFIG},
        ),
        # start after end
        st.just(
            (
                r0,
                {"subnet": "10.89.0.0/24", "rangeStart": "10.89.0.200", "rangeEnd": "10.89.0.100"},
                frozenset({CONFIG}),
                "rangeStart > rangeEnd",
            )
        ),
        # two families in one set; overlapping ranges; overlapping sets
        st.just(
            (
                p + ["ranges", 0],
                [{"subnet": "10.89.0.0/24"}, {"subnet": "fd88::/64"}],
                frozenset({CONFIG}),
                "mixed families in a range set",
            )
        ),
        st.just(
            (
                p + ["ranges", 0],
                [{"subnet": "10.89.0.0/24"}, {"subnet": "10.89.0.0/25"}],
                frozenset({CONFIG}),
                "overlapping ranges",
            )
        ),
        st.just(
            (
                p + ["ranges"],
                [[{"subnet": "10.89.0.0/24"}], [{"subnet": "10.89.0.128/25"}]],
                frozenset({CONFIG}),
                "overlapping range sets",
            )
        ),
        _config_mutation(p + ["subnet"], bad_cidrs.filter(bool), {CONFIG}),
        _config_mutation(p + ["routes"], truthy_non_list, {CONFIG}),
        _config_mutation(
            p + ["routes", 0],
            st.one_of(truthy_non_dict, st.just({}), st.just({"gw": "10.89.0.1"})),
            {CONFIG},
        ),
        _config_mutation(p + ["routes", 0, "dst"], bad_cidrs, {CONFIG}),
        _config_mutation(p + ["routes", 0, "gw"], bad_ips.filter(bool), {CONFIG}),
        _config_mutation(p + ["dataDir"], non_string.filter(bool), {CONFIG}),
        _config_mutation(
            p + ["dataDir"], st.sampled_from(["/var/lib/cni/net\x00works", "\x00"]), {CONFIG}
        ),
        _config_mutation(p + ["resolvConf"], non_string.filter(bool), {CONFIG}),
        _config_mutation(p + ["resolvConf"], st.just("/etc/resolv.conf\x00"), {CONFIG}),
        # not a regular file (a FIFO or /dev/zero must not hang the plugin),
        # missing, or a resolv.conf with hostile contents: code 7
        _config_mutation(
            p + ["resolvConf"],
            st.sampled_from(
                [
                    "/dev/zero",
                    "/dev/urandom",
                    "/run/netns/c1",
                    "/var/lib/cni",
                    "/nonexistent/resolv.conf",
                    "relative/resolv.conf",
                ]
                + [f"{CWD}/{name}" for name in BAD_RESOLV_CONFS]
            ),
            {CONFIG},
        ),
    )


def requested_ip_mutations():
    """Requested addresses through args.cni.ips and runtimeConfig.ips/ipRanges."""
    bad_list_entry = st.lists(bad_ips, min_size=1, max_size=3)
    return st.one_of(
        _config_mutation(["runtimeConfig", "ips"], bad_list_entry, {CONFIG}),
        _config_mutation(["runtimeConfig", "ips"], truthy_non_list, {CONFIG}),
        _config_mutation(
            ["runtimeConfig", "ips"],
            st.sampled_from(
                [["10.90.0.5"], ["10.89.0.1"], ["10.89.0.5", "10.89.0.6"], ["fd89::1"]]
            ),
            {CONFIG},
        ),  # outside every range, a gateway, two in one set
        _config_mutation(["args", "cni", "ips"], bad_list_entry, {CONFIG}),
        _config_mutation(["args", "cni"], truthy_non_dict, {CONFIG}),
        # "args" is reserved for an object of conventions (spec): anything
        # else is an invalid config, not something to ignore
        _config_mutation(["args"], truthy_non_dict, {CONFIG}),
        _config_mutation(["runtimeConfig", "ipRanges"], truthy_non_list, {CONFIG}),
        _config_mutation(
            ["runtimeConfig", "ipRanges"],
            st.lists(
                st.one_of(
                    truthy_non_list,
                    st.lists(st.fixed_dictionaries({"subnet": bad_cidrs}), min_size=1, max_size=2),
                ),
                min_size=1,
                max_size=2,
            ),
            {CONFIG},
        ),
        _config_mutation(["runtimeConfig"], truthy_non_dict, {CONFIG}),
    )


def cni_args_mutations(known_keys: tuple[str, ...], ip_key: bool, static: bool = False):
    """CNI_ARGS as (value, expected).  Unknown keys without IgnoreUnknown
    and items that are not KEY=VALUE are code 4 (README).  A known key with
    a garbage value (IP=...): the README has no row for it; 4 (an invalid
    CNI_* variable) and 7 (an invalid requested address) both make sense."""
    unknown_key = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_abc", min_size=1, max_size=8).filter(
        lambda k: k not in known_keys and k != "IgnoreUnknown"
    )
    cases = [
        unknown_key.map(lambda k: (f"{k}=1", {ENV}, "unknown CNI_ARGS key")),
        st.sampled_from(["garbage", "=x", ";=;", "IP", "a;b", "IgnoreUnknown"]).map(
            lambda a: (a, {ENV}, "CNI_ARGS item not KEY=VALUE")
        ),
        st.tuples(unknown_key, nasty_text).map(
            lambda kv: (f"IgnoreUnknown=0;{kv[0]}={kv[1]}", {ENV}, "unknown key, IgnoreUnknown=0")
        ),
    ]
    if ip_key:
        cases.append(
            bad_ip_strings.filter(lambda s: bool(s) and ";" not in s and "," not in s).map(
                lambda ip: (f"IgnoreUnknown=1;IP={ip}", {ENV, CONFIG}, "CNI_ARGS IP garbage")
            )
        )
        # host-local: outside every range, a gateway, two in one set (7);
        # static wants address/prefix, so these are also just garbage (4 or 7)
        cases.append(
            st.sampled_from(["10.90.0.5", "10.89.0.1", "10.89.0.5,10.89.0.6"]).map(
                lambda ip: (
                    f"IP={ip}",
                    {ENV, CONFIG} if static else {CONFIG},
                    "CNI_ARGS IP outside ranges/gateway/two in a set",
                )
            )
        )
    return st.one_of(cases)


def bytes_env_mutations(known_keys):
    """Environment values that are not UTF-8 (a runtime may pass any
    bytes): code 4, or 7 for a known key whose value is then invalid."""
    junk = st.sampled_from(
        [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc", b"a\xfe\xfeb", b"\xf4\x90\x80\x80"]
    )
    return st.one_of(
        junk.map(lambda j: (b"CNI_ARGS", b"IgnoreUnknown=1;IP=10.89.0." + j, {ENV, CONFIG})),
        junk.map(lambda j: (b"CNI_ARGS", b"X" + j + b"=1", {ENV})),
        junk.map(lambda j: (b"CNI_CONTAINERID", b"c" + j, {ENV})),
        junk.map(lambda j: (b"CNI_IFNAME", b"e" + j, {ENV})),
        junk.map(lambda j: (b"CNI_COMMAND", b"ADD" + j, {ENV})),
    )


def stdin_garbage():
    """stdin that is not one JSON object: code 6."""
    return st.one_of(
        st.binary(max_size=64).filter(lambda b: not _is_json_object(b)),
        st.sampled_from(
            [
                b"",
                b"null",
                b"[]",
                b'"x"',
                b"1",
                b"true",
                b"{",
                b"{}}",
                b"{} {}",
                b"\xef\xbb\xbf{}",
                b'{"name": NaN}',
                b'{"mtu": Infinity}',
                b'{"mtu": -Infinity}',
                b'{"a": 1,}',
                b"{'a': 1}",
                b'{"a" 1}',
                b'{"name": "\xff"}',
                b"[" * 100000,
                b'{"a":' * 50000,
                b'{"name": "dockline", "x": "\\ud800"}',
                b'{"cniVersion": "1.1.0", "name": "dockline"\x00}',
                b'{"mtu": 1e400}',
            ]
        ),
        st.text(max_size=40).map(lambda t: t.encode()).filter(lambda b: not _is_json_object(b)),
    )


_NUMBER_SENTINEL = "@@hostile-number@@"


def number_injections(base: dict):
    """A config value replaced by NaN, Infinity or a number no float holds
    (JSON has no NaN; Go refuses 1e400): stdin is then not a JSON object
    we accept, code 6.  1e400 may also be read and refused as a value (7)."""
    paths = [[k] for k in base if k not in ("name", "cniVersion")]
    paths += [["ipam", k] for k in (base.get("ipam") or {})]
    return st.tuples(
        st.sampled_from(paths),
        st.sampled_from(
            [
                ("NaN", {DECODE}),
                ("-Infinity", {DECODE}),
                ("Infinity", {DECODE}),
                ("1e400", {DECODE, CONFIG}),
                ("-1e999", {DECODE, CONFIG}),
            ]
        ),
    ).map(
        lambda t: (
            json.dumps(set_path(base, t[0], _NUMBER_SENTINEL))
            .replace(f'"{_NUMBER_SENTINEL}"', t[1][0])
            .encode(),
            frozenset(t[1][1]),
            f"{'.'.join(map(str, t[0]))}={t[1][0]}",
        )
    )


def _env_safe(value: str) -> bool:
    return "\x00" not in value


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


# --- per-target case strategies ---------------------------------------------------


def _apply(base: dict, plugin: str, command: str, env: dict, mutation) -> Case:
    path, value, expect, why = mutation
    conf = set_path(base, path, value)
    return Case(plugin, command, env, encode(conf), expect, why, raw=conf)


def _from_config_mutations(base, plugin, command, env, mutations):
    return mutations.map(lambda m: _apply(base, plugin, command, env, m))


def _common_cases(
    base: dict,
    plugin: str,
    command: str,
    env: dict,
    known_args,
    ip_key: bool,
    parses_args: bool = True,
):
    static = plugin == "static"
    """Breakage every plugin must refuse the same way: stdin, cniVersion,
    name, CNI_* variables."""

    def env_case(key, value, expect, why):
        # (a NUL cannot be passed in an environment at all)
        e = dict(env)
        if value is None:
            e.pop(key, None)
        else:
            e[key] = value
        return Case(plugin, command, e, encode(base), frozenset(expect), why, raw=base)

    def bytes_case(m):
        key, value, expect = m
        e = {k.encode(): v.encode() for k, v in env.items()}
        e[key] = value
        return Case(plugin, command, e, encode(base), frozenset(expect), f"{key!r}={value!r}")

    strategies = [
        stdin_garbage().map(
            lambda raw: Case(
                plugin, command, env, raw, frozenset({DECODE}), "stdin is not a JSON object"
            )
        ),
        _from_config_mutations(
            base, plugin, command, env, st.one_of(cni_version_mutations(), name_mutations())
        ),
        number_injections(base).map(lambda m: Case(plugin, command, env, m[0], m[1], m[2])),
        bad_identifiers.filter(_env_safe).map(
            lambda v: env_case("CNI_CONTAINERID", v, {ENV}, f"CNI_CONTAINERID={v!r}")
        ),
        bad_ifnames.filter(_env_safe).map(
            lambda v: env_case("CNI_IFNAME", v, {ENV}, f"CNI_IFNAME={v!r}")
        ),
        st.sampled_from(["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"]).map(
            lambda k: env_case(k, None, {ENV}, f"{k} missing")
        ),
        st.sampled_from(["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"]).map(
            lambda k: env_case(k, "", {ENV}, f"{k} empty")
        ),
        st.sampled_from(["add", "ADD ", "ADD\n", "FOO", "DELETE", "VERSIONS", "A\x01"]).map(
            lambda c: env_case("CNI_COMMAND", c, {ENV}, f"CNI_COMMAND={c!r}")
        ),
        bytes_env_mutations(known_args)
        .filter(lambda m: parses_args or m[0] != b"CNI_ARGS")
        .map(bytes_case),
    ]
    if parses_args:
        strategies.append(
            cni_args_mutations(known_args, ip_key, static)
            .filter(lambda m: _env_safe(m[0]))
            .map(lambda m: env_case("CNI_ARGS", m[0], m[1], f"CNI_ARGS={m[0]!r} ({m[2]})"))
        )
    if command == "CHECK":
        # CHECK is not in the spec before 0.4.0: code 1
        strategies.append(
            st.sampled_from(["0.1.0", "0.2.0", "0.3.0", "0.3.1"]).map(
                lambda v: Case(
                    plugin,
                    command,
                    env,
                    encode(set_path(base, ["cniVersion"], v)),
                    frozenset({VERSION}),
                    f"CHECK with cniVersion {v}",
                )
            )
        )
    return st.one_of(strategies)


BRIDGE_ARGS = (
    "MAC",
    "IP",
    "K8S_POD_NAME",
    "K8S_POD_NAMESPACE",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
)
BRIDGE_BOOLS = (
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "hairpinMode",
    "promiscMode",
    "preserveDefaultVlan",
    "macspoofchk",
    "enabledad",
    "disableContainerInterface",
    "portIsolation",
)


def bridge_config_mutations():
    bad_bridge_names = st.one_of(
        bad_ifnames, st.sampled_from(["dockline0/..", "x" * 16, "br\x00", "br 0", "br:0"])
    )
    return st.one_of(
        _config_mutation(["bridge"], bad_bridge_names, {CONFIG}),
        _config_mutation(["bridge"], non_string.filter(bool), {CONFIG}),
        st.sampled_from(BRIDGE_BOOLS).flatmap(lambda k: _config_mutation([k], non_bool, {CONFIG})),
        _config_mutation(
            ["mtu"], int_outside(68, 65535).filter(lambda v: v not in (0, None, False)), {CONFIG}
        ),
        _config_mutation(
            ["vlan"],
            int_outside(0, 4094).filter(lambda v: v is not None and v is not False),
            {CONFIG},
        ),
        _config_mutation(["vlanTrunk"], truthy_non_list, {CONFIG}),
        _config_mutation(
            ["vlanTrunk"],
            st.lists(
                st.one_of(
                    truthy_non_dict,
                    st.just({}),
                    st.fixed_dictionaries({"id": int_outside(1, 4094)}),
                    st.fixed_dictionaries({"minID": st.just(10), "maxID": st.just(5)}),
                    st.fixed_dictionaries({"minID": int_outside(1, 4094), "maxID": st.just(5)}),
                ),
                min_size=1,
                max_size=2,
            ),
            {CONFIG},
        ),
        _config_mutation(
            ["ipMasqBackend"],
            json_values.filter(lambda v: v is not None and v not in ("iptables", "nftables")),
            {CONFIG},
        ),
        _config_mutation(["dns"], truthy_non_dict, {CONFIG}),
        _config_mutation(
            ["dns", "nameservers"],
            st.one_of(truthy_non_list, st.lists(bad_ips.filter(bool), min_size=1, max_size=2)),
            {CONFIG},
        ),
        _config_mutation(
            ["dns", "search"],
            st.one_of(
                truthy_non_list,
                st.lists(
                    st.one_of(
                        not_a(str).filter(bool),
                        st.sampled_from(["a\nnameserver 6.6.6.6", "x\x00", "\u2028"]),
                    ),
                    min_size=1,
                    max_size=2,
                ),
            ),
            {CONFIG},
        ),
        # a main plugin named as IPAM (bridge would recurse into itself):
        # README silent; 7 (not an IPAM plugin) or 102 (the nested bridge
        # finds the interface the outer one made) both leave nothing
        _config_mutation(["ipam", "type"], st.sampled_from(["bridge", "portmap"]), {CONFIG, 102}),
        # the IPAM plugin: not a file name, or nowhere in CNI_PATH
        _config_mutation(
            ["ipam", "type"],
            st.sampled_from(
                [
                    "../bridge",
                    "/bin/sh",
                    ".",
                    "..",
                    "no-such-ipam",
                    "host-local/",
                    "host-local\x00",
                    "bridge/../host-local",
                ]
            ),
            {CONFIG},
        ),
        st.just((["hairpinMode"], True, frozenset({CONFIG}), "hairpin and promisc")).map(
            lambda m: (["promiscMode"], True, m[2], m[3])
        ),
        st.just(
            (
                ["disableContainerInterface"],
                True,
                frozenset({CONFIG}),
                "disableContainerInterface with IPAM",
            )
        ),
        # an existing link that is not a bridge (README: "an error", no
        # code given: 7 invalid config, 102 exists, 103 kernel refused)
        _config_mutation(
            ["bridge"], st.sampled_from(["lo", "dlaa8d8b43ba1bc"]), {CONFIG, 102, 103}
        ),
    )


def capability_mutations():
    """Malformed runtimeConfig capabilities of the bridge (mac, aliases,
    links, hostsFile) and args.cni.mac."""
    good_links = ["db:dbapp"]
    return st.one_of(
        _config_mutation(["runtimeConfig", "mac"], bad_macs, {CONFIG}),
        _config_mutation(["args", "cni", "mac"], bad_macs, {CONFIG}),
        _config_mutation(
            ["runtimeConfig", "aliases"], st.lists(bad_hostnames, min_size=1, max_size=2), {CONFIG}
        ),
        _config_mutation(
            ["runtimeConfig", "aliases"],
            st.one_of(
                st.dictionaries(
                    st.just(NETWORK), st.lists(bad_hostnames, min_size=1, max_size=2), min_size=1
                ),
                not_a(list, dict).filter(bool),
            ),
            {CONFIG},
        ),
        _config_mutation(
            ["runtimeConfig", "links"], st.lists(bad_hostnames, min_size=1, max_size=2), {CONFIG}
        ),
        _config_mutation(
            ["runtimeConfig", "links"],
            st.lists(
                st.one_of(
                    st.tuples(
                        bad_hostnames.filter(lambda n: isinstance(n, str) and ":" not in n),
                        st.just("x"),
                    ).map(lambda t: f"{t[0]}:{t[1]}"),
                    st.tuples(
                        st.just("db"), bad_hostnames.filter(lambda n: isinstance(n, str))
                    ).map(lambda t: f"{t[0]}:{t[1]}"),
                    st.fixed_dictionaries({"name": bad_hostnames}),
                    st.fixed_dictionaries(
                        {"name": st.just("db"), "alias": bad_hostnames.filter(bool)}
                    ),
                    not_a(str, dict).filter(bool),
                ),
                min_size=1,
                max_size=2,
            ),
            {CONFIG},
        ),
        # a link to a name nobody has on the network (README: code 7)
        _config_mutation(
            ["runtimeConfig", "links"],
            st.sampled_from(
                [["nosuch"], ["nosuch:alias"], good_links + ["ghost"], [{"name": "ghost"}]]
            ),
            {CONFIG},
        ),
        _config_mutation(
            ["runtimeConfig", "hostsFile"],
            st.one_of(
                non_string.filter(bool),
                nasty_text.filter(lambda s: bool(s) and not s.startswith("/")),
                st.sampled_from(["hosts", "../etc/hosts", "etc/netns/c3/hosts", "~/hosts"]),
            ),
            {CONFIG},
        ),
        # Go field names (runtimes marshal untagged structs) are read
        # case-insensitively: garbage under them is still garbage
        st.tuples(
            st.sampled_from(["MAC", "Mac", "ALIASES", "Links", "HOSTSFILE", "Hostsfile"]),
            st.one_of(bad_macs, truthy_non_list.filter(lambda v: not isinstance(v, dict))),
        ).map(
            lambda kv: (
                ["runtimeConfig", kv[0]],
                kv[1],
                frozenset({CONFIG}),
                f"runtimeConfig.{kv[0]}={kv[1]!r}",
            )
        ),
        # hostsFile: paths a container must never get us to edit (all in
        # the sandbox's tmpfs, so a bug cannot reach the machine's files):
        # CNI state, a directory, a netns file, through '..'
        _config_mutation(
            ["runtimeConfig", "hostsFile"],
            st.sampled_from(
                [
                    "/var/lib/cni/networks/dockline/last_reserved_ip.0",
                    "/var/lib/cni/networks/dockline/.dockline-names/seq",
                    "/var/lib/cni/networks/dockline/lock",
                    "/etc/netns/c2",
                    "/run/netns/c1",
                    "/var/lib/cni/hostile-cwd/../networks/dockline/10.89.0.2",
                    "/etc/netns/c2/../c2/hosts\x00",
                    "/etc/netns/nosuch/hosts",
                ]
            ),
            {CONFIG},
        ),
        # a name that is already taken (db is c1's): code 100 per README
        _config_mutation(["runtimeConfig", "aliases"], st.just(["db"]), {100}, "alias db taken"),
    )


def bridge_add_cases():
    base = bridge_base()
    env = env_for("ADD")
    # The base request links to db without a hostsFile, so its hosts file
    # is the named netns's: outside /run/netns/<name> that is a second
    # problem, and 7 ("links need a hosts file") is as right as 3.
    netns_cases = st.sampled_from(
        [
            ("/run/netns/nosuch", {NO_CONTAINER}),
            ("/etc/passwd", {NO_CONTAINER, CONFIG}),
            ("/proc/self/ns/mnt", {NO_CONTAINER, CONFIG}),
            ("/run/netns", {NO_CONTAINER, CONFIG}),
            # relative or odd paths: not a netns (3), or an invalid CNI_NETNS (4)
            ("run/netns/c3", {NO_CONTAINER, ENV, CONFIG}),
            ("/run/netns/c3/", {NO_CONTAINER, ENV, CONFIG}),
            ("/run/netns/../netns/nosuch", {NO_CONTAINER, CONFIG}),
        ]
    ).map(
        lambda v: Case(
            "bridge",
            "ADD",
            {**env, "CNI_NETNS": v[0]},
            encode(base),
            frozenset(v[1]),
            f"CNI_NETNS={v[0]!r}",
        )
    )
    no_path = Case(
        "bridge",
        "ADD",
        {**env, "CNI_PATH": "/nonexistent"},
        encode(base),
        frozenset({CONFIG}),
        "IPAM plugin not in CNI_PATH",
    )
    # K8S_POD_NAME / K8S_POD_NAMESPACE that are no host name / DNS label:
    # the README has names as code 7; 4 fits an invalid CNI_ARGS as well
    pod_args = st.tuples(
        st.sampled_from(["K8S_POD_NAME", "K8S_POD_NAMESPACE"]),
        bad_hostnames.filter(lambda n: isinstance(n, str) and _env_safe(n) and ";" not in n),
    ).map(
        lambda kv: Case(
            "bridge",
            "ADD",
            {**env, "CNI_ARGS": f"IgnoreUnknown=1;{kv[0]}={kv[1]}"},
            encode(base),
            frozenset({ENV, CONFIG}),
            f"CNI_ARGS {kv[0]}={kv[1]!r}",
        )
    )
    benv = {k.encode(): v.encode() for k, v in env.items()}
    bytes_paths = st.sampled_from(
        [
            (b"CNI_NETNS", b"/run/netns/c3\xff", {NO_CONTAINER, ENV, CONFIG}),
            (b"CNI_NETNS", b"/run/netns/\xed\xa0\x80", {NO_CONTAINER, ENV, CONFIG}),
            # an invalid CNI_* variable (4), or no IPAM plugin found there (7)
            (b"CNI_PATH", b"/nonexistent/\xff", {ENV, CONFIG}),
        ]
    ).map(
        lambda t: Case(
            "bridge",
            "ADD",
            {**benv, t[0]: t[1]},
            encode(base),
            frozenset(t[2]),
            f"{t[0]!r}={t[1]!r}",
        )
    )
    # A result before 0.3.0 needs an address (README: code 1), so a bridge
    # without IPAM cannot answer 0.1.0/0.2.0
    no_ipam = {k: v for k, v in base.items() if k not in ("ipam", "runtimeConfig")}
    old_versions = st.sampled_from(["0.1.0", "0.2.0"]).map(
        lambda v: Case(
            "bridge",
            "ADD",
            env,
            encode({**no_ipam, "cniVersion": v}),
            frozenset({VERSION}),
            f"bridge without IPAM at cniVersion {v}",
            raw={**no_ipam, "cniVersion": v},
        )
    )
    return st.one_of(
        bytes_paths,
        old_versions,
        _common_cases(base, "bridge", "ADD", env, BRIDGE_ARGS, ip_key=True),
        _from_config_mutations(
            base,
            "bridge",
            "ADD",
            env,
            st.one_of(
                bridge_config_mutations(),
                capability_mutations(),
                ipam_range_mutations(),
                requested_ip_mutations(),
                # (host-local called directly does not read its own type)
                _config_mutation(["ipam", "type"], non_string.filter(bool), {CONFIG}),
            ),
        ),
        netns_cases,
        st.just(no_path),
        pod_args,
        st.builds(
            lambda m: Case(
                "bridge",
                "ADD",
                {**env, "CNI_ARGS": f"IgnoreUnknown=1;MAC={m}"},
                encode(base),
                frozenset({ENV, CONFIG}),
                f"CNI_ARGS MAC={m!r}",
            ),
            bad_macs.filter(lambda m: isinstance(m, str) and ";" not in m and _env_safe(m)),
        ),
    )


def host_local_add_cases():
    base = host_local_base()
    env = env_for("ADD")
    return st.one_of(
        _common_cases(base, "host-local", "ADD", env, ("IP",), ip_key=True),
        _from_config_mutations(
            base,
            "host-local",
            "ADD",
            env,
            st.one_of(ipam_range_mutations(), requested_ip_mutations()),
        ),
        st.just(
            Case(
                "host-local",
                "ADD",
                env,
                encode({k: v for k, v in base.items() if k != "ipam"}),
                frozenset({CONFIG}),
                "no ipam section",
            )
        ),
        # 2000 range sets, the last one broken: refused whole, in time
        st.just(
            Case(
                "host-local",
                "ADD",
                env,
                encode(
                    set_path(
                        base,
                        ["ipam", "ranges"],
                        [[{"subnet": f"10.{100 + i // 250}.{i % 250}.0/24"}] for i in range(2000)]
                        + [[{"subnet": "10.89.0.0/33"}]],
                    )
                ),
                frozenset({CONFIG}),
                "2000 range sets, last broken",
            )
        ),
        # two addresses of one family cannot be expressed before 0.3.0 (1)
        st.sampled_from(["0.1.0", "0.2.0"]).map(
            lambda v: Case(
                "host-local",
                "ADD",
                env,
                encode(
                    set_path(
                        set_path(base, ["cniVersion"], v),
                        ["ipam", "ranges"],
                        [[{"subnet": "10.89.0.0/24"}], [{"subnet": "10.90.0.0/24"}]],
                    )
                ),
                frozenset({VERSION}),
                f"two IPv4 range sets at {v}",
            )
        ),
    )


def static_add_cases():
    base = static_base()
    env = env_for("ADD")
    addr = ["ipam", "addresses", 0]
    static_mutations = st.one_of(
        _config_mutation(["ipam"], non_dict, {CONFIG}),
        _config_mutation(["ipam", "addresses"], truthy_non_list, {CONFIG}),
        _config_mutation(addr, truthy_non_dict, {CONFIG}),
        _config_mutation(
            addr + ["address"],
            st.one_of(
                bad_cidrs,
                st.sampled_from(["10.10.0.5", "fd10::5", "10.10.0.5/24%x", "fd10::5%x/64"]),
            ),
            {CONFIG},
        ),
        _config_mutation(addr + ["gateway"], bad_ips.filter(bool), {CONFIG}),
        _config_mutation(["ipam", "routes"], truthy_non_list, {CONFIG}),
        _config_mutation(["ipam", "routes", 0, "dst"], bad_cidrs, {CONFIG}),
        _config_mutation(["ipam", "routes", 1, "gw"], bad_ips.filter(bool), {CONFIG}),
        _config_mutation(["ipam", "dns"], truthy_non_dict, {CONFIG}),
        # dns fields of the wrong type (the result would carry them)
        _config_mutation(
            ["ipam", "dns", "nameservers"],
            st.one_of(not_a(list).filter(bool), st.lists(not_a(str), min_size=1, max_size=2)),
            {CONFIG},
        ),
        _config_mutation(["ipam", "dns", "domain"], non_string.filter(bool), {CONFIG}),
        _config_mutation(
            ["ipam", "dns", "nameservers"],
            st.lists(bad_ips.filter(bool), min_size=1, max_size=2),
            {CONFIG},
        ),
        _config_mutation(
            ["ipam", "dns", "search"],
            st.one_of(not_a(list).filter(bool), st.lists(not_a(str), min_size=1, max_size=2)),
            {CONFIG},
        ),
        _config_mutation(
            ["runtimeConfig", "ips"],
            st.one_of(truthy_non_list, st.lists(bad_cidrs, min_size=1, max_size=2)),
            {CONFIG},
        ),
        _config_mutation(
            ["args", "cni", "ips"],
            st.one_of(truthy_non_list, st.lists(bad_cidrs, min_size=1, max_size=2)),
            {CONFIG},
        ),
    )
    # (static strips each item: a blank GATEWAY= is no gateway, and
    # " 10.89.0.5" is an address, not garbage)
    gateway_garbage = bad_ip_strings.filter(
        lambda s: (
            bool(s.strip())
            and not _parses_as_ip(s.strip())
            and ";" not in s
            and "," not in s
            and _env_safe(s)
        )
    ).map(
        lambda g: Case(
            "static",
            "ADD",
            {**env, "CNI_ARGS": f"IP=10.10.1.5/24;GATEWAY={g}"},
            encode(base),
            frozenset({ENV, CONFIG}),
            f"CNI_ARGS GATEWAY={g!r}",
        )
    )
    return st.one_of(
        _common_cases(base, "static", "ADD", env, ("IP", "GATEWAY"), ip_key=True),
        _from_config_mutations(base, "static", "ADD", env, static_mutations),
        gateway_garbage,
        st.sampled_from(["0.1.0", "0.2.0"]).map(
            lambda v: Case(
                "static",
                "ADD",
                env,
                encode(
                    set_path(
                        set_path(base, ["cniVersion"], v),
                        ["ipam", "addresses"],
                        base["ipam"]["addresses"] + [{"address": "10.11.0.5/24"}],
                    )
                ),
                frozenset({VERSION}),
                f"two IPv4 addresses at {v}",
            )
        ),
    )


def prev_result_mutations(prefix=("prevResult",)):
    """A malformed prevResult.  The README has no row for it: 6 (content
    that cannot be decoded) and 7 (invalid network configuration) both fit;
    an unknown result version is 1 (or 6/7)."""
    p = list(prefix)
    either = {DECODE, CONFIG}
    ip0 = p + ["ips", 0]
    return st.one_of(
        _config_mutation(p, truthy_non_dict, either),
        _config_mutation(p + ["ips"], truthy_non_list, either),
        _config_mutation(ip0, truthy_non_dict, either),
        _config_mutation(
            ip0,
            st.just({"gateway": "10.89.0.1", "interface": 2}),
            either,
            "prevResult ip without address",
        ),
        _config_mutation(
            ip0 + ["address"],
            st.one_of(
                bad_cidrs,
                st.sampled_from(
                    [
                        "10.89.0.50",
                        "10.89.0.50/24%x",
                        "fd89::50%x/64",
                        "fd89::50%\nflush ruleset/64",
                    ]
                ),
            ),
            either,
        ),
        _config_mutation(ip0 + ["gateway"], bad_ips.filter(bool), either),
        _config_mutation(
            ip0 + ["interface"],
            st.one_of(
                not_a(int).filter(lambda v: v is not None),
                huge_ints,
                st.integers(min_value=3),
                st.integers(max_value=-1),
            ),
            either,
        ),
        _config_mutation(
            p + ["dns", "nameservers"],
            st.one_of(truthy_non_list, st.lists(bad_ips.filter(bool), min_size=1, max_size=2)),
            either,
        ),
        _config_mutation(p + ["interfaces"], truthy_non_list, either),
        _config_mutation(p + ["interfaces", 2], truthy_non_dict, either),
        _config_mutation(p + ["interfaces", 2, "name"], non_string.filter(bool), either),
        _config_mutation(p + ["interfaces", 2, "sandbox"], non_string.filter(bool), either),
        _config_mutation(p + ["interfaces", 2, "mac"], non_string.filter(bool), either),
        _config_mutation(p + ["routes"], truthy_non_list, either),
        _config_mutation(p + ["routes", 0], truthy_non_dict, either),
        _config_mutation(p + ["routes", 0, "dst"], bad_cidrs, either),
        _config_mutation(p + ["routes", 0, "gw"], bad_ips.filter(bool), either),
        _config_mutation(p + ["dns"], truthy_non_dict, either),
        _config_mutation(
            p + ["cniVersion"],
            st.one_of(non_versions, non_string.filter(bool)),
            {VERSION, DECODE, CONFIG},
        ),
        # 0.2.0-shaped results with broken sections
        _config_mutation(
            p,
            st.sampled_from(
                [
                    {"cniVersion": "0.2.0", "ip4": {"gateway": "10.89.0.1"}},
                    {"cniVersion": "0.2.0", "ip4": {"ip": "garbage"}},
                    {"cniVersion": "0.2.0", "ip4": "10.89.0.50/24"},
                    {"cniVersion": "0.2.0", "ip4": {"ip": "10.89.0.50/24", "routes": "x"}},
                    {"cniVersion": "0.2.0", "ip6": {"ip": 5}},
                ]
            ),
            either,
        ),
    )


def portmap_mapping_mutations():
    m0 = ["runtimeConfig", "portMappings", 0]
    return st.one_of(
        _config_mutation(["runtimeConfig", "portMappings"], truthy_non_list, {CONFIG}),
        _config_mutation(m0, truthy_non_dict, {CONFIG}),
        _config_mutation(m0 + ["hostPort"], int_outside(1, 65535, allow_none=True), {CONFIG}),
        _config_mutation(m0 + ["containerPort"], int_outside(1, 65535, allow_none=True), {CONFIG}),
        _config_mutation(
            m0 + ["protocol"],
            st.one_of(
                non_string.filter(bool),
                nasty_text.filter(lambda s: bool(s) and s.lower() not in ("tcp", "udp", "sctp")),
                st.sampled_from(["icmp", "tcp ", "tcp\n", "tcp;", "udp\x00", "all", "6"]),
            ),
            {CONFIG},
        ),
        _config_mutation(m0 + ["hostIP"], bad_ips.filter(bool), {CONFIG}),
        # Go field names (containerd 1.6) with garbage values
        _config_mutation(
            m0,
            st.fixed_dictionaries(
                {"HostPort": int_outside(1, 65535), "ContainerPort": st.just(80)}
            ),
            {CONFIG},
        ),
        _config_mutation(["runtimeConfig", "PortMappings"], truthy_non_list, {CONFIG}),
    )


def portmap_config_mutations():
    return st.one_of(
        _config_mutation(["snat"], non_bool, {CONFIG}),
        _config_mutation(["masqAll"], non_bool, {CONFIG}),
        _config_mutation(["markMasqBit"], int_outside(0, 31), {CONFIG}),
        _config_mutation(
            ["externalSetMarkChain"],
            st.one_of(
                non_string.filter(bool),
                st.just(""),
                nasty_text.filter(lambda s: not s or not all(c.isalnum() or c in "-_" for c in s)),
            ),
            {CONFIG},
        ),
        _config_mutation(
            ["conditionsV4"],
            st.one_of(truthy_non_list, st.lists(not_a(str), min_size=1, max_size=2)),
            {CONFIG},
        ),
        # Conditions go into a firewall script: a line break, ';', '#' or
        # NUL would end the rule and start another (README: validated
        # before anything reaches a firewall script; code 7).
        _config_mutation(
            ["conditionsV4"],
            st.sampled_from(
                [
                    ["ip saddr 10.0.0.0/8\nflush ruleset"],
                    ["ip saddr 10.0.0.0/8; flush ruleset"],
                    ["ip saddr 10.0.0.0/8 # x"],
                    ["-s 10.0.0.0/8\n-A INPUT -j DROP"],
                    ["-s 10.0.0.0/8\x00"],
                    ["ip saddr 10.0.0.0/8\r"],
                    ["meta mark 1 \u2028 accept"],
                    ["-s 10.0.0.0/8 ; -j DROP"],
                ]
            ),
            {CONFIG},
        ),
        _config_mutation(
            ["conditionsV6"],
            st.sampled_from(
                [
                    ["ip6 saddr fd00::/8\nflush ruleset"],
                    ["ip6 saddr fd00::/8;"],
                    ["-s fd00::/8\n*filter"],
                ]
            ),
            {CONFIG},
        ),
        _config_mutation(
            ["backend"],
            json_values.filter(lambda v: v is not None and v not in ("iptables", "nftables")),
            {CONFIG},
        ),
    )


def _portmap_conf_tweaks(base):
    """Some mutations need two keys: build those configs directly."""
    both = set_path(set_path(base, ["markMasqBit"], 14), ["externalSetMarkChain"], "CHAIN")
    ipt_nft = set_path(set_path(base, ["backend"], "nftables"), ["conditionsV4"], ["-s 10.0.0.0/8"])
    nft_ipt = set_path(
        set_path(base, ["backend"], "iptables"), ["conditionsV4"], ["ip saddr 10.0.0.0/8"]
    )
    ext_nft = set_path(set_path(base, ["backend"], "nftables"), ["externalSetMarkChain"], "CHAIN")
    return [
        (both, "markMasqBit and externalSetMarkChain"),
        (ipt_nft, "iptables conditions with nftables"),
        (nft_ipt, "nft conditions with iptables"),
        (ext_nft, "externalSetMarkChain with nftables"),
    ]


def portmap_add_cases():
    base = portmap_base()
    env = env_for("ADD")
    no_prev = {k: v for k, v in base.items() if k != "prevResult"}
    pairs = [
        Case("portmap", "ADD", env, encode(c), frozenset({CONFIG}), why, raw=c)
        for c, why in _portmap_conf_tweaks(base)
    ]
    pairs.append(
        Case(
            "portmap",
            "ADD",
            env,
            encode(no_prev),
            frozenset({CONFIG}),
            "not chained (no prevResult)",
            raw=no_prev,
        )
    )
    # c1 publishes 8080 with iptables, c2 8081 with nftables (README: 100)
    for backend, port in (("iptables", 8080), ("nftables", 8081)):
        taken = set_path(
            set_path(base, ["backend"], backend),
            ["runtimeConfig", "portMappings", 0, "hostPort"],
            port,
        )
        pairs.append(
            Case(
                "portmap",
                "ADD",
                env,
                encode(taken),
                frozenset({100}),
                f"host port {port} taken ({backend})",
                raw=taken,
            )
        )
    many = set_path(
        base,
        ["runtimeConfig", "portMappings"],
        [{"hostPort": 20000 + i, "containerPort": 80} for i in range(3000)]
        + [{"hostPort": 0, "containerPort": 80}],
    )
    pairs.append(
        Case(
            "portmap",
            "ADD",
            env,
            encode(many),
            frozenset({CONFIG}),
            "3000 mappings, the last one broken",
            raw=many,
        )
    )
    return st.one_of(
        # portmap does not read CNI_ARGS (nor does the reference's)
        _common_cases(base, "portmap", "ADD", env, (), ip_key=False, parses_args=False),
        _from_config_mutations(
            base,
            "portmap",
            "ADD",
            env,
            st.one_of(
                portmap_mapping_mutations(), portmap_config_mutations(), prev_result_mutations()
            ),
        ),
        st.sampled_from(pairs),
    )


def _check_codes(mutation):
    """CHECK answers "that is not the bridge I made" with 101."""
    path, value, expect, why = mutation
    if path == ["bridge"] and value in ("lo", "dlaa8d8b43ba1bc"):
        expect = expect | {101}
    return path, value, expect, why


def check_cases(prev_c1: dict):
    """CHECK of the attached container c1 (bridge with its real cached
    result; portmap with its mapping), each with one thing broken."""
    bridge = plugin_conf(BRIDGE, runtimeConfig={"aliases": ["db"]}, prevResult=prev_c1)
    portmap = plugin_conf(
        {"type": "portmap", "snat": True, "backend": "iptables"},
        runtimeConfig={
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
        },
        prevResult=prev_c1,
    )
    env = env_for("CHECK", cid="c1", args="IgnoreUnknown=1;K8S_POD_NAME=db")
    no_prev = {k: v for k, v in bridge.items() if k != "prevResult"}
    return st.one_of(
        _common_cases(
            bridge,
            "bridge",
            "CHECK",
            {k: v for k, v in env.items() if k != "CNI_ARGS"},
            BRIDGE_ARGS,
            ip_key=False,
        ),
        _from_config_mutations(
            bridge,
            "bridge",
            "CHECK",
            env,
            st.one_of(
                bridge_config_mutations()
                .filter(lambda m: m[0] != ["ipam", "type"])
                .map(_check_codes),
                prev_result_mutations(),
                # (CHECK does not read the resolv.conf ADD copied DNS from: a
                # path that is merely unreadable now is no CHECK error)
                ipam_range_mutations().filter(
                    lambda m: (
                        m[0] != ["ipam", "resolvConf"]
                        or not isinstance(m[1], str)
                        or "\x00" in m[1]
                    )
                ),
            ),
        ),
        st.just(
            Case("bridge", "CHECK", env, encode(no_prev), frozenset({CONFIG}), "no prevResult")
        ),
        # capability args CHECK parses as ADD does: malformed ones are 7
        _from_config_mutations(
            bridge,
            "bridge",
            "CHECK",
            env,
            st.one_of(
                _config_mutation(["runtimeConfig", "mac"], bad_macs, {CONFIG}),
                _config_mutation(
                    ["runtimeConfig", "aliases"],
                    st.lists(bad_hostnames, min_size=1, max_size=2),
                    {CONFIG},
                ),
                _config_mutation(
                    ["runtimeConfig", "links"],
                    st.lists(
                        bad_hostnames.filter(lambda n: isinstance(n, str) and ":" not in n),
                        min_size=1,
                        max_size=2,
                    ),
                    {CONFIG},
                ),
                _config_mutation(
                    ["runtimeConfig", "hostsFile"],
                    st.sampled_from(
                        [
                            "hosts",
                            "../etc/hosts",
                            "/var/lib/cni/networks/dockline/lock",
                            "/run/netns/c1",
                        ]
                    ),
                    {CONFIG},
                ),
            ),
        ),
        _common_cases(portmap, "portmap", "CHECK", env, (), ip_key=False, parses_args=False),
        _from_config_mutations(
            portmap,
            "portmap",
            "CHECK",
            env,
            st.one_of(portmap_mapping_mutations(), prev_result_mutations()),
        ),
    )


def del_garbage_cases():
    """DEL of an attachment that does not exist (container c9, netns gone)
    with garbage in everything the runtime adds to the config: capability
    args, prevResult, args.cni, CNI_ARGS.  DEL must succeed (spec: DEL
    succeeds when the state is gone) and change nothing."""
    garbage = st.one_of(
        capability_mutations().filter(lambda m: m[2] != frozenset({100})),
        requested_ip_mutations(),
        prev_result_mutations(),
        portmap_mapping_mutations(),
    )
    cni_args = st.one_of(
        st.just(None),
        st.just("IgnoreUnknown=1;IP=garbage;MAC=zz"),
        st.just("garbage"),
        st.just("UNKNOWN=1"),
        st.just("IP=10.99.0.5"),
    )
    plugins = st.sampled_from(
        [
            ("bridge", plugin_conf(BRIDGE)),
            ("host-local", host_local_base()),
            ("static", static_base()),
            ("portmap", plugin_conf({"type": "portmap", "snat": True})),
        ]
    )
    # (never another container's netns: DEL of CNI_IFNAME there is what
    # DEL is for, not garbage)
    netns = st.sampled_from([None, "", "/run/netns/c9", "/run/netns/c3"])

    def build(plugin_conf_pair, mutation, args, ns):
        plugin, base = plugin_conf_pair
        path, value, _, why = mutation
        conf = set_path(base, path, value)
        env = env_for("DEL", cid="c9", args=args)
        if ns is None:
            env.pop("CNI_NETNS")
        else:
            env["CNI_NETNS"] = ns
        return Case(
            plugin,
            "DEL",
            env,
            encode(conf),
            frozenset(),
            f"DEL with {why}, CNI_ARGS={args!r}",
            raw=conf,
        )

    # ...but a bad container ID or interface name names no attachment at
    # all: that is the one thing DEL refuses (4), touching nothing
    def bad_env(pair, key, value):
        plugin, base = pair
        env = env_for("DEL", cid="c1")
        if value is None:
            env.pop(key)
        else:
            env[key] = value
        return Case(
            plugin,
            "DEL",
            env,
            encode(base),
            frozenset({ENV}),
            f"DEL with {key}={value!r}",
            raw=base,
        )

    refused = st.one_of(
        st.builds(
            bad_env,
            plugins,
            st.just("CNI_CONTAINERID"),
            st.one_of(st.none(), st.just(""), bad_identifiers.filter(_env_safe)),
        ),
        st.builds(
            bad_env,
            plugins,
            st.just("CNI_IFNAME"),
            st.one_of(st.none(), st.just(""), bad_ifnames.filter(_env_safe)),
        ),
    )
    return st.one_of(st.builds(build, plugins, garbage, cni_args, netns), refused)


def gc_cases():
    """GC (1.1.0) whose list of valid attachments is garbage.  Read as
    "nothing is valid", it would tear down the live containers c1 and c2:
    it must be refused (7) and change nothing.  And GC/STATUS with a
    config older than 1.1.0: code 1."""
    valid = [{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "eth0"}]
    plugins = [
        ("bridge", plugin_conf(BRIDGE)),
        ("host-local", host_local_base()),
        ("portmap", plugin_conf({"type": "portmap", "snat": True})),
    ]
    env = {"PATH": PATH, "CNI_COMMAND": "GC", "CNI_PATH": str(DOCKLINE_BIN)}
    key = st.sampled_from(["cni.dev/valid-attachments", "cni.dev/attachments"])
    bad_entry = st.one_of(
        not_a(dict),
        st.fixed_dictionaries(
            {"containerID": st.one_of(not_a(str), st.just(""))},
            optional={"ifname": st.just("eth0")},
        ),
        st.fixed_dictionaries({"containerID": st.just("c1"), "ifname": not_a(str)}),
        st.just({"containerID ": "c1", "ifname": "eth0"}),  # no such key: no containerID
    )
    # (null and [] are an honest "nothing valid"; everything else that is
    # not a list of {containerID, ifname} strings is garbage, even 0/""/{})
    garbage = st.one_of(
        not_a(list).filter(lambda v: v is not None),
        st.tuples(bad_entry, st.integers(0, 2)).map(
            lambda t: valid[: t[1]] + [t[0]] + valid[t[1] :]
        ),
    )

    def gc(pair, k, value):
        plugin, base = pair
        conf = dict(base)
        conf[k] = value
        return Case(
            plugin, "GC", env, encode(conf), frozenset({CONFIG}), f"GC {k}={value!r}", raw=conf
        )

    old = st.tuples(
        st.sampled_from(plugins + [("static", static_base())]),
        st.sampled_from(["GC", "STATUS"]),
        st.sampled_from(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]),
    ).map(
        lambda t: Case(
            t[0][0],
            t[1],
            {**env, "CNI_COMMAND": t[1]},
            encode(
                {
                    **t[0][1],
                    "cniVersion": t[2],
                    **({"cni.dev/valid-attachments": valid} if t[1] == "GC" else {}),
                }
            ),
            frozenset({VERSION}),
            f"{t[1]} with cniVersion {t[2]}",
        )
    )
    # STATUS with a broken IPAM config: 7 (50, "cannot serve ADD", fits too)
    status = st.tuples(st.sampled_from(plugins[:2]), ipam_range_mutations()).map(
        lambda t: _apply(
            t[0][1],
            t[0][0],
            "STATUS",
            {**env, "CNI_COMMAND": "STATUS"},
            (t[1][0], t[1][1], t[1][2] | {50}, "STATUS " + t[1][3]),
        )
    )
    return st.one_of(st.builds(gc, st.sampled_from(plugins), key, garbage), old, status)
