"""TOML for a terminal: what ``profiles show`` prints, valid TOML a user can read and copy.

tomli_w, which writes the profile files, escapes C0 controls but writes C1 controls (an 8-bit
CSI, U+009B) and bidi overrides raw, and with multi-line strings on it wrote ``stop = ["\\n\\n"]``
as a bare multi-line string spread over four lines. Here every character of
:data:`leverchat.safetext.UNSAFE` is written as a TOML escape (``\\u009B``), a string inside an
array stays on one line (``stop = ["\\n\\n"]``), and only a table's own multi-line strings (a
system prompt) are written as readable ``\"\"\"`` blocks. ``tomllib.loads`` of the result gives
back the same data (tests/test_toml_display.py checks that on random data).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from leverchat.safetext import UNSAFE, visible

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_SHORT_ESCAPES["\r"] = "\\r"
# Everything a TOML basic string must or should escape: quote, backslash, every control
# (tab and newline included, for one-line strings) and the rest of the UNSAFE set.
_ONE_LINE = re.compile(r'["\\\t\n]|' + UNSAFE.pattern)
# In a multi-line string newline and tab stay as they are.
_MULTI_LINE = re.compile(r'["\\]|' + UNSAFE.pattern)


def dumps_for_display(data: Mapping[str, Any], *, header: str = "") -> str:
    """``data`` (a table of scalars, arrays and sub-tables) as TOML; ``header`` as comments."""
    out = [f"# {_comment(line)}".rstrip() for line in header.splitlines()]
    tables = [(key, value) for key, value in data.items() if isinstance(value, Mapping)]
    out += [f"{_key(key)} = {_value(value, top=True)}" for key, value in _scalars(data)]
    for key, table in tables:
        out += ["", f"[{_key(key)}]"]
        # A table inside one (levers.boost) is written inline, where the reader sees it.
        out += [f"{_key(k)} = {_value(v, top=True)}" for k, v in table.items() if v is not None]
    return "\n".join(out) + "\n"


def _scalars(table: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in table.items() if v is not None and not isinstance(v, Mapping)]


def _comment(line: str) -> str:
    return visible(line, multiline=False)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: Any, *, top: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _multi_line_string(value) if top and "\n" in value else _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot show a {type(value).__name__} as TOML")


def _string(text: str) -> str:
    return '"' + _ONE_LINE.sub(lambda m: _escape(m.group()), text) + '"'


def _multi_line_string(text: str) -> str:
    # The newline right after the opening quotes is not part of the string (TOML spec).
    return '"""\n' + _MULTI_LINE.sub(lambda m: _escape(m.group()), text) + '"""'


def _escape(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"
