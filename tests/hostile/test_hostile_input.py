"""Property-based hostile input: thousands of generated calls, each breaking
one thing in an otherwise valid request (config keys, cniVersion, name,
IPAM ranges, capability args, prevResult, CNI_* variables, CNI_ARGS,
non-UTF-8 environment bytes, non-JSON stdin).  Every one must be answered
with exactly one CNI error JSON carrying the right code and a non-zero
exit (never 999, never a traceback, never a hang), and must leave the
sandbox exactly as it was: store and hosts-file bytes, links, addresses,
routes, nftables and iptables rulesets.  DEL of an attachment that is not
there must succeed whatever garbage the runtime adds, and change nothing.

Examples are derandomized (the same cases on every run, as CI needs);
HOSTILE_EXAMPLES=N scales every property to N examples for a quick look;
HOSTILE_SURVEY=1 records every failing case instead of stopping at the
first (a list printed at the end of each property, for bug hunting).
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, assume, given, note, settings

from . import strategies as S
from .strategies import Case

pytestmark = pytest.mark.slow
SURVEY = bool(os.environ.get("HOSTILE_SURVEY"))

# Total across the properties: 2,450 generated calls.
EXAMPLES = {
    "bridge_add": 600,
    "host_local_add": 350,
    "static_add": 250,
    "portmap_add": 400,
    "check": 350,
    "gc": 200,
    "del": 300,
}


def _examples(name: str) -> int:
    return int(os.environ.get("HOSTILE_EXAMPLES", EXAMPLES[name]))


def _run(prop, harness, name: str) -> None:
    """Run the property; every example must have reached a plugin (the
    2,000-case promise), none lost to exclusions or early stops."""
    prop()
    assert harness.calls >= _examples(name), f"only {harness.calls} calls"


def _settings(name: str):
    n = _examples(name)
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# Known bugs, excluded so the properties stay green until they are fixed:
# (id, predicate over a Case), each with its minimal repro in a docstring;
# remove an entry together with its fix.  None is open: BUG-1..7 found by
# these properties (non-UTF-8 CNI_COMMAND echoed raw; name/link conflicts
# found after IPAM ran; falsy garbage valid-attachments read as "none";
# unknown prevResult version accepted; bridge dns unchecked; non-object
# args ignored; bridge without IPAM at 0.2.0 leaving its veth) were fixed
# in 339d870 and are plain cases of the properties now.
KNOWN_BUGS: list[tuple[str, object]] = []


def _known_bug(case: Case) -> str | None:
    for bug_id, pred in KNOWN_BUGS:
        if pred(case):
            return bug_id
    return None


def _error_json(stdout: bytes):
    """The one JSON object on stdout, or a string saying what is wrong."""
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError:
        return f"stdout is not UTF-8: {stdout[:300]!r}"
    try:
        obj = json.loads(text)
    except ValueError:
        return f"stdout is not exactly one JSON value: {text[:300]!r}"
    if not isinstance(obj, dict):
        return f"stdout is not a JSON object: {text[:300]!r}"
    if not isinstance(obj.get("code"), int) or isinstance(obj.get("code"), bool):
        return f"no integer code: {text[:300]!r}"
    if not isinstance(obj.get("msg"), str):
        return f"no string msg: {text[:300]!r}"
    return obj


def assert_refused(h, case: Case) -> None:
    bug = _known_bug(case)
    assume(bug is None)
    note(case.describe())
    out, changed = h.run(case.plugin, case.env, case.stdin)
    err = out.stderr.decode("utf-8", "replace")
    problems = []
    if out.code == 0:
        problems.append("exit status 0")
    obj = _error_json(out.stdout)
    if isinstance(obj, str):
        problems.append(obj)
    else:
        if obj["code"] == 999:
            problems.append(f"internal error 999: {obj.get('details')!r}")
        elif obj["code"] not in case.expect:
            problems.append(
                f"code {obj['code']} ({obj['msg']!r}, {obj.get('details')!r}), "
                f"expected one of {sorted(case.expect)}"
            )
    if "Traceback" in err:
        problems.append("traceback on stderr:\n" + err[-1500:])
    if changed:
        problems.append("state changed:\n" + changed)
    _report(h, case, problems)


def _report(h, case: Case, problems: list[str]) -> None:
    if problems and SURVEY:
        h.failures.append(f"{case.describe()}\n  -> " + "\n  -> ".join(problems))
        return
    assert not problems, f"{case.describe()}\n  -> " + "\n  -> ".join(problems)


def assert_del_ok(h, case: Case) -> None:
    bug = _known_bug(case)
    assume(bug is None)
    note(case.describe())
    out, changed = h.run(case.plugin, case.env, case.stdin)
    err = out.stderr.decode("utf-8", "replace")
    problems = []
    if out.code != 0:
        problems.append(f"exit status {out.code}: {out.stdout[:400]!r}")
    if out.stdout.strip():
        problems.append(f"DEL printed something: {out.stdout[:300]!r}")
    if "Traceback" in err:
        problems.append("traceback on stderr:\n" + err[-1500:])
    if changed:
        problems.append("state changed:\n" + changed)
    _report(h, case, problems)


def test_bridge_add_refuses_hostile_input(harness):
    @_settings("bridge_add")
    @given(case=S.bridge_add_cases())
    def prop(case):
        assert_refused(harness, case)

    _run(prop, harness, "bridge_add")


def test_host_local_add_refuses_hostile_input(harness):
    @_settings("host_local_add")
    @given(case=S.host_local_add_cases())
    def prop(case):
        assert_refused(harness, case)

    _run(prop, harness, "host_local_add")


def test_static_add_refuses_hostile_input(harness):
    @_settings("static_add")
    @given(case=S.static_add_cases())
    def prop(case):
        assert_refused(harness, case)

    _run(prop, harness, "static_add")


def test_portmap_add_refuses_hostile_input(harness):
    @_settings("portmap_add")
    @given(case=S.portmap_add_cases())
    def prop(case):
        assert_refused(harness, case)

    _run(prop, harness, "portmap_add")


def test_check_refuses_hostile_input(harness):
    prev = harness.baseline.results["c1"]

    @_settings("check")
    @given(case=S.check_cases(prev))
    def prop(case):
        assert_refused(harness, case)

    _run(prop, harness, "check")


def test_gc_refuses_garbage_attachment_lists(harness):
    @_settings("gc")
    @given(case=S.gc_cases())
    def prop(case):
        assert_refused(harness, case)

    _run(prop, harness, "gc")


def test_del_of_missing_attachment_succeeds_on_garbage(harness):
    @_settings("del")
    @given(case=S.del_garbage_cases())
    def prop(case):
        if case.expect:  # a bad container ID / ifname: refused, nothing touched
            assert_refused(harness, case)
        else:
            assert_del_ok(harness, case)

    _run(prop, harness, "del")
