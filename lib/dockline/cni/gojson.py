"""Reading runtime-supplied JSON the way the reference plugins' Go decoding
does: object keys match a field name case-insensitively.

Runtimes written in Go marshal some structs without JSON tags, so the keys
arrive with Go's field names: containerd 1.6 (go-cni) sends
``{"HostPort": 18080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}``
for a port mapping.  The reference accepts that because encoding/json
matches keys case-insensitively; so do we, for everything a runtime sends
(capability args, prevResult).  The rule is Go's: a key equal to a field
name is that field, else a key equal to it ignoring case; a later key
overrides an earlier one for the same field; other keys are kept as they
are (callers ignore or refuse them as before).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from .jsonio import JSONObject


def fold_fields(obj: JSONObject, fields: Iterable[str]) -> JSONObject:
    """``obj`` with every key that names one of ``fields`` (ignoring case)
    renamed to that field.  ``obj`` itself is left unchanged."""
    exact = set(fields)
    folded = {name.lower(): name for name in exact}
    out: JSONObject = {}
    for key, value in obj.items():
        if isinstance(key, str) and key not in exact:
            key = folded.get(key.lower(), key)
        out[key] = value
    return out
