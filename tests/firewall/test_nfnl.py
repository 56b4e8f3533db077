"""The in-process netfilter netlink layer (dockline.firewall.nfnl) against
the real kernel, read back with nft: objects found by name, elements added
(a taken key refused atomically), got by key, dumped with their comments,
deleted (missing keys skipped), and names that are not tokens refused
before anything is sent."""

from helpers.paths import REPO, VENV_PYTHON

LIB = REPO / "lib"

TABLE = """
table inet t {
  map any4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports { type inet_proto . inet_service : verdict; }
  set pairs { type ipv4_addr . ipv4_addr; flags interval; }
}
"""


def _py(sb, code: str):
    head = (
        f"import sys; sys.path.insert(0, {str(LIB)!r})\nfrom dockline.firewall import nfnl as n\n"
    )
    run = sb.run([str(VENV_PYTHON), "-I", "-c", head + code])
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_objects_by_name(sandbox):
    sandbox.run(["nft", "-f", "-"], input=TABLE)
    out = _py(
        sandbox,
        "print(n.get_table(n.INET, 't'), n.get_table(n.INET, 'x'), n.get_table(n.IPV4, 't'))\n"
        "print(n.get_set(n.INET, 't', 'any4'), n.get_set(n.INET, 't', 'nope'),"
        " n.get_set(n.INET, 'x', 'any4'))\n"
        "n.Batch(n.INET, 't').add_chain('c-1').commit()\n"
        "print(n.get_chain(n.INET, 't', 'c-1'), n.get_chain(n.INET, 't', 'c-2'))\n"
        "n.Batch(n.INET, 't').delete_chain('c-1').commit()\n"
        "print(n.get_chain(n.INET, 't', 'c-1'))\n"
        "n.Batch(n.INET, 'u').add_table().add_table().commit()\n"
        "print(n.get_table(n.INET, 'u'))\n",
    )
    assert out.split() == [
        "True",
        "False",
        "False",
        "True",
        "False",
        "False",
        "True",
        "False",
        "False",
        "True",
    ]


def test_elements_add_get_dump_delete(sandbox):
    sandbox.run(["nft", "-f", "-"], input=TABLE)
    out = _py(
        sandbox,
        "k = n.concat(n.proto('tcp'), n.port(8080))\n"
        "dest = n.concat(n.ipv4('10.88.0.5'), n.port(80))\n"
        "pair = n.Element(n.concat(n.ipv4('10.88.0.0'), n.ipv4('10.88.0.5')),\n"
        "    key_end=n.concat(n.ipv4('10.88.255.255'), n.ipv4('10.88.0.5')),\n"
        "    userdata=n.comment('dl-ab'))\n"
        "b = n.Batch(n.INET, 't')\n"
        "b.add_elements('ports', [n.Element(k, verdict=(n.CONTINUE, None),"
        " userdata=n.comment('dl-ab'))], create=True)\n"
        "b.add_elements('any4', [n.Element(k, data=dest, userdata=n.comment('dl-ab'))],"
        " create=True)\n"
        "b.add_elements('pairs', [pair]).commit()\n"
        "try:\n"
        "    n.Batch(n.INET, 't').add_elements('any4', [n.Element(n.concat(n.proto('udp'),"
        " n.port(1)), data=dest)]).add_elements('ports', [n.Element(k, verdict=(n.CONTINUE,"
        " None))], create=True).commit()\n"
        "except n.NfnlError as e:\n"
        "    print('taken', e.errno)\n"
        "e = n.get_element(n.INET, 't', 'any4', k)\n"
        "print(e.data == dest, e.comment)\n"
        "print(n.get_element(n.INET, 't', 'any4', n.concat(n.proto('udp'), n.port(1))))\n"
        "print(n.get_element(n.INET, 't', 'ports', k).verdict)\n"
        "[d] = n.dump_elements(n.INET, 't', 'pairs')\n"
        "print(d.key == pair.key, d.key_end == pair.key_end, d.comment)\n"
        "n.delete_elements_missing_ok(n.INET, 't', 'any4', [n.Element(k),"
        " n.Element(n.concat(n.proto('udp'), n.port(2)))])\n"
        "n.delete_elements_missing_ok(n.INET, 'gone', 'any4', [n.Element(k)])\n"
        "print(len(n.dump_elements(n.INET, 't', 'any4')), n.dump_elements(n.INET, 'x', 'y'))\n",
    )
    # the failed batch left nothing: its first element is not there either
    assert out.splitlines() == [
        "taken 17",
        "True dl-ab",
        "None",
        "(-1, None)",
        "True True dl-ab",
        "0 []",
    ]
    listed = sandbox.sh("nft list table inet t").stdout
    assert 'tcp . 8080 comment "dl-ab" : continue' in listed
    assert '10.88.0.0/16 . 10.88.0.5 comment "dl-ab"' in listed


def test_names_are_tokens(sandbox):
    before = sandbox.sh("nft list ruleset").stdout
    _py(
        sandbox,
        "from dockline.cni.errors import CniError\n"
        "for call in (lambda: n.get_table(n.INET, 'a\"b'), lambda: n.Batch(n.INET, 't;x'),\n"
        "             lambda: n.Batch(n.INET, 't').add_chain('c\\n'),\n"
        "             lambda: n.get_set(n.INET, 't', 'x' * 70)):\n"
        "    try:\n        call()\n    except CniError as e:\n        assert e.code == 7\n"
        "    else:\n        raise SystemExit('accepted')\n",
    )
    assert sandbox.sh("nft list ruleset").stdout == before
