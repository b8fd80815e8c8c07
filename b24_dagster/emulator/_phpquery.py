"""PHP ``parse_str`` for query strings and form bodies (``fields[TITLE]=x&select[]=ID``).

Bitrix24 reads v2 parameters the PHP way, and so does this module:

* pairs are separated by ``&``; a pair without ``=`` has the value ``""``;
* keys and values are percent-decoded and ``+`` becomes a space;
* ``a[b][c]=1`` nests; ``a[]=x`` appends with the next integer key (largest int key + 1);
* a key segment that is a canonical decimal integer (``"0"``, ``"12"``, ``"-3"``, not ``"01"``)
  is an integer key, as in PHP;
* the same key twice: the last one wins (a scalar replaced by an array and vice versa);
* in the *base* name (before the first ``[``) spaces and dots become ``_`` and an unclosed
  ``[`` becomes ``_``, as PHP does; text after a closing ``]`` that does not open another
  ``[`` is ignored; a pair whose base name is empty is dropped;
* operator prefixes inside brackets are kept verbatim: ``filter[%3E%3DDATE_MODIFY]=x``
  gives ``{"filter": {">=DATE_MODIFY": "x"}}``.

PHP arrays become Python values by the rule PHP's ``json_encode`` uses: an array whose keys
are exactly ``0..n-1`` in insertion order becomes a ``list``; any other becomes a ``dict`` with
``str`` keys. The top level is always a ``dict`` (``0=a&1=b`` gives ``{"0": "a", "1": "b"}``).
Bitrix methods generally treat a list and a dict with keys ``"0".."n-1"`` alike.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote_plus

__all__ = ["build_query", "parse_query", "php_array_to_python"]


def _ascii_digits(text: str) -> bool:
    """``0-9`` only: ``str.isdigit`` also accepts "²" or "٣", which ``int`` rejects or reads."""
    return text.isascii() and text.isdigit()


def _int_key(segment: str) -> int | str:
    """PHP's rule: a canonical decimal integer string is an integer key."""
    if _ascii_digits(segment):
        if segment == "0" or segment[0] != "0":
            return int(segment)
        return segment
    if (
        len(segment) > 1
        and segment[0] == "-"
        and _ascii_digits(segment[1:])
        and segment[1] != "0"
    ):
        return int(segment)
    return segment


def _split_key(key: str) -> list[str | None] | None:
    """Split ``a[b][]`` into ``["a", "b", None]`` (None = append); None if the base is empty."""
    pos = key.find("[")
    if pos == -1:
        base = key.replace(" ", "_").replace(".", "_")
        return [base] if base else None
    close = key.find("]", pos + 1)
    if close == -1:
        # An unclosed bracket: PHP turns the first "[" into "_" and keeps the rest literally.
        base = key[:pos].replace(" ", "_").replace(".", "_") + "_" + key[pos + 1 :]
        return [base] if key[:pos] else None
    base = key[:pos].replace(" ", "_").replace(".", "_")
    if not base:
        return None
    parts: list[str | None] = [base]
    while pos != -1 and pos < len(key) and key[pos] == "[":
        close = key.find("]", pos + 1)
        if close == -1:
            break
        seg = key[pos + 1 : close]
        parts.append(seg if seg != "" else None)
        pos = close + 1
    return parts


def _next_index(arr: dict[Any, Any]) -> int:
    largest = -1
    for k in arr:
        if isinstance(k, int) and k > largest:
            largest = k
    return largest + 1


def _assign(root: dict[Any, Any], parts: list[str | None], value: str) -> None:
    node = root
    keys: list[Any] = [parts[0]]
    keys.extend(parts[1:])
    last = len(keys) - 1
    for i, raw in enumerate(keys):
        key: Any = _next_index(node) if raw is None else (raw if i == 0 else _int_key(raw))
        if i == last:
            node[key] = value
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child


def php_array_to_python(value: Any) -> Any:
    """Turn nested PHP-style dicts (int or str keys) into lists and str-keyed dicts."""
    if not isinstance(value, dict):
        return value
    n = len(value)
    if n and all(k == i for i, k in enumerate(value)) and all(isinstance(k, int) for k in value):
        return [php_array_to_python(v) for v in value.values()]
    return {str(k): php_array_to_python(v) for k, v in value.items()}


def parse_query(query: str) -> dict[str, Any]:
    """Decode a query string or urlencoded form body exactly as PHP's ``parse_str`` does."""
    if not query:
        return {}
    if "[" not in query and "%" not in query and "+" not in query:
        # The common flat case (``entityTypeId=2&id=5``): no decoding needed.
        out: dict[str, Any] = {}
        for pair in query.split("&"):
            if not pair:
                continue
            k, _, v = pair.partition("=")
            k = k.replace(" ", "_").replace(".", "_")
            if k:
                out[k] = v
        return out
    root: dict[Any, Any] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = unquote_plus(raw_key)
        parts = _split_key(key)
        if parts is None:
            continue
        _assign(root, parts, unquote_plus(raw_value))
    return {str(k): php_array_to_python(v) for k, v in root.items()}


def _flatten(prefix: str, value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append(f"{prefix}[]=" if prefix else "")
        for k, v in value.items():
            key = quote(str(k), safe="")
            _flatten(f"{prefix}[{key}]" if prefix else key, v, out)
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append(f"{prefix}[]=")
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    else:
        if value is None:
            text = ""
        elif value is True:
            text = "1"
        elif value is False:
            text = "0"
        else:
            text = str(value)
        out.append(f"{prefix}={quote(text, safe='')}")


def build_query(params: dict[str, Any]) -> str:
    """Encode nested params like PHP's ``http_build_query`` (the inverse of :func:`parse_query`)."""
    out: list[str] = []
    for k, v in params.items():
        _flatten(quote(str(k), safe=""), v, out)
    return "&".join(p for p in out if p)
