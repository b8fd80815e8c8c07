"""Parameters on the wire: v2 ``cmd`` strings (PHP bracket encoding) and v3 JSON commands.

A v2 batch command is ``method?query``, where ``query`` is what PHP's ``http_build_query``
makes of the parameters and what the portal's ``parse_str`` reads back::

    {"fields": {"TITLE": "A&B", "PHONE": [{"VALUE": "1"}]}, "filter": {">ID": 5}}
    -> fields[TITLE]=A%26B&fields[PHONE][0][VALUE]=1&filter[%3EID]=5

Values become text by these rules (the same as ``http_build_query`` where it has one):

========================  ===========================================================
Python value              sent as
========================  ===========================================================
``str``                   the string, percent-encoded as UTF-8 (every byte that is not
                          ``A-Za-z0-9-_.~``)
``int``                   decimal digits
``float``                 ``repr`` (``1.5``, ``1e+20``); a whole float as an integer
                          (``5.0`` -> ``5``, as PHP prints it); NaN/inf are refused
``bool``                  ``1`` / ``0``, as ``http_build_query`` sends them (``"0"`` is
                          false in PHP; ``"false"`` would be true). Fields of type
                          ``char`` want ``"Y"``/``"N"``: the frames layer converts those
``None``                  an empty value (``key=``), which clears a field
``Decimal``               fixed-point text, never an exponent
``datetime``              ISO 8601 with offset, whole seconds; naive ones are refused
``date``                  ``YYYY-MM-DD``
empty list / dict         an empty value (``key=``): ``http_build_query`` would drop the
                          key, and with it the intent to clear a multiple field
========================  ===========================================================

Keys are percent-encoded too. PHP cannot carry a ``]`` inside a key, nor a ``[``, ``.`` or
space in a top-level name (it rewrites them): such keys are refused.

In v3 the parameters travel as JSON: :func:`to_json_value` applies the same rules to dates
and Decimals (a Decimal becomes a string, keeping every digit).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from b24_dagster.errors import CommandValidationError

__all__ = ["encode_cmd", "encode_query", "to_json_value", "v3_command"]

_BAD_TOP_KEY = re.compile(r"[\[\]. ]").search
_INFINITIES = (float("inf"), float("-inf"))
_key_cache: dict[tuple[str, Any], str] = {}
_prefix_cache: dict[str, dict[Any, str]] = {}  # prefix -> key -> "prefix[key]" (hot loop)
_KEY_CACHE_MAX = 20_000


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-")
_ASCII_TABLE = {c: f"%{c:02X}" for c in range(128) if chr(c) not in _UNRESERVED}


def _q(text: str) -> str:
    # str.translate runs in C: several times faster than urllib's quote for ASCII text.
    return text.translate(_ASCII_TABLE) if text.isascii() else quote(text, safe="")


def _subkey(prefix: str, key: Any) -> str:
    cache_key = (prefix, key)
    found = _key_cache.get(cache_key)
    if found is not None:
        return found
    if type(key) is str:
        if "]" in key:
            raise CommandValidationError(f"the key {key!r} contains ']', which PHP cannot read back")
        seg = _q(key)
    elif type(key) is int:
        seg = str(key)
    elif isinstance(key, str | int) and not isinstance(key, bool):
        seg = _q(str(key))
    else:
        raise CommandValidationError(f"a key must be a string or an integer, got {key!r}")
    if prefix:
        full = f"{prefix}[{seg}]"
    else:
        if type(key) is str and (not key or _BAD_TOP_KEY(key)):
            raise CommandValidationError(
                f"the parameter name {key!r} cannot be sent: PHP rewrites '[', '.' and spaces "
                f"in top-level names, and drops empty ones")
        full = seg
    if len(_key_cache) >= _KEY_CACHE_MAX:
        _key_cache.clear()
    _key_cache[cache_key] = full
    return full


def _float_text(value: float) -> str:
    if not math.isfinite(value):
        raise CommandValidationError(f"the float {value} cannot be sent (NaN and infinities are refused)")
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _scalar_text(value: Any) -> str:
    """Text of a value that is not str/int/dict/list (the rarer types)."""
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float):
        return _float_text(value).replace("+", "%2B")  # 1e+20
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return _q(str(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CommandValidationError(f"the Decimal {value} cannot be sent")
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CommandValidationError(
                f"the naive datetime {value} cannot be sent: attach a tzinfo")
        return quote(value.isoformat(timespec="seconds"), safe="")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise CommandValidationError(f"a value of type {type(value).__name__} cannot be sent")


def _encode(out: list[str], prefix: str, value: Any) -> None:
    t = type(value)
    if t is str:
        out.append(prefix + "=" + (value.translate(_ASCII_TABLE) if value.isascii()
                                   else quote(value, safe="")))
    elif t is int:
        out.append(f"{prefix}={value}")
    elif t is dict or (t is not list and t is not tuple and isinstance(value, Mapping)):
        if not value:
            out.append(prefix + "=")
            return
        _encode_mapping(out, prefix, value)
    elif t is list or t is tuple:
        if not value:
            out.append(prefix + "=")
            return
        for i, v in enumerate(value):
            _encode(out, _subkey(prefix, i), v)
    else:
        out.append(prefix + "=" + _scalar_text(value))


def _encode_mapping(out: list[str], prefix: str, value: Mapping[Any, Any]) -> None:
    """The pairs of a non-empty mapping under ``prefix`` (the top level when ``""``)."""
    cache = _prefix_cache.get(prefix)
    if cache is None:
        if len(_prefix_cache) >= _KEY_CACHE_MAX:
            _prefix_cache.clear()
        cache = _prefix_cache[prefix] = {}
    for k, v in value.items():
        head = cache.get(k)  # "prefix[key]=", checked once per key: this loop is the hot path
        if head is None:
            head = _subkey(prefix, k) + "="
            if type(k) is str and len(cache) < 1000:
                cache[k] = head
        tv = type(v)
        # the leaves of a flat "fields" dict, inline
        if tv is str:
            if v.isascii():
                out.append(head + (v if v.isalnum() else v.translate(_ASCII_TABLE)))
            else:
                out.append(head + quote(v, safe=""))
        elif tv is int:
            out.append(f"{head}{v}")
        elif tv is float and v == v and v not in _INFINITIES:
            out.append(head + (str(int(v)) if v.is_integer() and abs(v) < 1e15
                               else repr(v).replace("+", "%2B")))
        else:
            _encode(out, head[:-1], v)


def encode_query(params: Any) -> str:
    """PHP ``http_build_query`` of any nesting of parameters (see the module's table).

    Args:
        params: A mapping (or a list, for positional methods: ``0=...&1[...]=...``).

    Returns:
        The query string, without a leading ``?`` (empty for empty parameters).

    Raises:
        CommandValidationError: A key or value that cannot be carried.
    """
    out: list[str] = []
    if isinstance(params, Mapping):
        if params:
            _encode_mapping(out, "", params)
    elif isinstance(params, list | tuple):
        for i, v in enumerate(params):
            _encode(out, str(i), v)
    elif params is not None:
        raise CommandValidationError(f"parameters must be a mapping or a list, got {type(params).__name__}")
    return "&".join(out)


def encode_cmd(method: str, params: Any) -> str:
    """The v2 batch ``cmd`` value of one command: ``method?query`` (``method`` alone if empty)."""
    if type(params) is dict and params:  # the common case, without the ABC checks
        out: list[str] = []
        _encode_mapping(out, "", params)
        return f"{method}?{'&'.join(out)}"
    query = encode_query(params)
    return f"{method}?{query}" if query else method


def to_json_value(value: Any) -> Any:
    """Parameters made JSON-ready for v3: dates to ISO 8601, Decimals to strings, tuples to lists.

    Returns the very same object when nothing needs converting (the common case), so the
    cost is one walk and no copy.
    """
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if not math.isfinite(value):
            raise CommandValidationError(f"the float {value} cannot be sent")
        return value
    if t is dict or (t is not list and t is not tuple and isinstance(value, Mapping)):
        changed = t is not dict
        new: dict[Any, Any] = {}
        for k, v in value.items():
            nv = to_json_value(v)
            changed = changed or nv is not v
            new[k] = nv
        return new if changed else value
    if t is list or t is tuple:
        items = [to_json_value(v) for v in value]
        if t is tuple or any(a is not b for a, b in zip(items, value, strict=True)):
            return items
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CommandValidationError(f"the Decimal {value} cannot be sent")
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CommandValidationError(f"the naive datetime {value} cannot be sent: attach a tzinfo")
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):  # subclasses of the plain types (IntEnum, StrEnum, ...)
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return to_json_value(float(value))
    if isinstance(value, str):
        return str(value)
    raise CommandValidationError(f"a value of type {t.__name__} cannot be sent")


def v3_command(method: str, params: Any, *, alias: str | None, parallel: bool) -> dict[str, Any]:
    """One v3 batch command as the JS SDK sends it: ``{method, query, as?, parallel}``."""
    cmd: dict[str, Any] = {"method": method, "query": to_json_value(params)}
    if alias:
        cmd["as"] = alias
    cmd["parallel"] = parallel
    return cmd
