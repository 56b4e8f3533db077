"""JSON in and out without importing the ``json`` package.

``import json`` pulls in ``re`` and ``enum`` (about 5 ms here, half of a
plugin's start-up); the C accelerator ``_json`` that json itself uses needs
neither.  Only the encoder/decoder objects are built here; behaviour matches
``json.loads``/``json.dumps`` except that NaN and Infinity are refused, as Go
(the reference plugins) refuses them.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

    # A JSON object as decoded: its values are checked where they are used.
    JSONObject = dict[str, Any]


class DecodeError(ValueError):
    """Malformed JSON; ``pos`` is the character offset of the problem."""

    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(f"{msg} at character {pos}")
        self.pos = pos


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # Go refuses 1e400 ("value out of range"); Python would make it inf,
    # which no check downstream expects.
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"number {text} is out of range")
    return value


_INF = float("inf")


class _DecoderContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_finite_float)
    parse_int = int
    parse_constant = staticmethod(_refuse_constant)
    memo: dict[str, str] = {}  # noqa: RUF012  (_json's scanner reads it as an attribute)


_WHITESPACE = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """The JSON value of ``text`` (any JSON type: callers check the shape)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("input is not UTF-8", exc.start) from None
    # (the scanner only reads the context's attributes; typeshed wants a JSONDecoder)
    scan = _json.make_scanner(_DecoderContext)  # type: ignore[arg-type]
    end = len(text)
    pos = 0
    while pos < end and text[pos] in _WHITESPACE:
        pos += 1
    try:
        value, pos = scan(text, pos)
    except StopIteration as stop:
        raise DecodeError("expecting a value", stop.value) from None
    except RecursionError:
        raise DecodeError("nesting too deep", pos) from None
    except ValueError as exc:  # JSONDecodeError is a ValueError subclass
        raise DecodeError(getattr(exc, "msg", str(exc)), getattr(exc, "pos", pos)) from None
    except SystemError:
        # _json reports errors inside objects and arrays through
        # json.decoder, which it only finds if already imported: this is
        # the error path, so pay for the import and ask again.
        import json

        try:
            json.loads(text)
        except ValueError as exc:
            raise DecodeError(getattr(exc, "msg", str(exc)), getattr(exc, "pos", 0)) from None
        raise DecodeError("malformed JSON", 0) from None
    while pos < end and text[pos] in _WHITESPACE:
        pos += 1
    if pos != end:
        raise DecodeError("extra data after the JSON value", pos)
    if "\\u" in text and _has_lone_surrogate(value):
        # Escapes like \\ud800 decode to strings no file, script or
        # netlink message can carry; refuse them here, once.
        raise DecodeError("string with an unpaired UTF-16 surrogate escape", 0)
    return value


def _has_lone_surrogate(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def dumps(value: object) -> str:
    """Compact JSON; non-ASCII stays UTF-8, as Go's encoder writes it."""
    # no markers dict: like json.dumps(check_circular=False); no default: only
    # JSON types are ever written
    encode = _json.make_encoder(
        None,
        None,  # type: ignore[arg-type]
        _json.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
    return "".join(encode(value, 0))
