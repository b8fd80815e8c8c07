"""JSON on the wire: request bodies out, answers in, and batch answers read lazily.

A v2 batch answer carries one result per command, and a chunked run stores each of them as
JSON text (the ``result`` column of the Arrow contract). Decoding every result into Python
objects only to serialize it again was the largest part of the client's CPU per command.
:func:`decode_batch_answer` parses the answer once in C (simdjson), cuts each command's result
out as JSON text (:class:`RawJson`) and decodes the small sections (errors, totals, times)
as usual; a result is decoded only when its ``data`` is read (:func:`decode_json`).

Without simdjson, or for an answer it refuses (a lone surrogate escape, an integer beyond 64
bits), :func:`decode_batch_answer` returns None and the caller decodes the whole answer.
"""

from __future__ import annotations

import json
from typing import Any

try:  # optional: 2-3x faster than the standard library for big answers
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

try:  # optional: the lazy batch answer; without it every result is decoded
    from simdjson import Array as _Array
    from simdjson import Object as _Object
    from simdjson import Parser as _Parser
except ImportError:  # pragma: no cover - depends on the environment
    _Parser = None

__all__ = ["RawJson", "decode_batch_answer", "decode_json", "encode_json"]


def encode_json(payload: Any) -> bytes:
    """Serialize a payload compactly as UTF-8 JSON; NaN, infinities and surrogates are refused.

    A lone surrogate is refused rather than sent as its ``\\u`` escape: PHP's json_decode
    refuses such an escape (JSON_ERROR_UTF16), so the portal could not read the body at all.

    Raises:
        TypeError: A value is not JSON-able.
        ValueError: A float is NaN or infinite, or a string holds a lone surrogate
            (``UnicodeEncodeError``).
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def decode_json(content: bytes) -> Any:
    """Decode a JSON body (orjson when installed, with stdlib json as the fallback).

    Raises:
        ValueError: The body is not JSON.
    """
    if _orjson is not None:
        try:
            return _orjson.loads(content)
        except _orjson.JSONDecodeError:
            pass  # stdlib json is more lenient (lone surrogate escapes); let it decide
    return json.loads(content)


class RawJson:
    """The JSON text of one command's result, as the batch answer carried it."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"RawJson({self.text[:40]!r}...)"


def decode_batch_answer(content: bytes) -> dict[str, Any] | None:
    """A v2 batch answer with ``result.result`` holding :class:`RawJson` for objects and lists.

    Everything else (the other sections, ``time``, scalar results) is decoded as usual.
    Returns None when simdjson is not installed or refuses the answer: decode it whole then.
    """
    if _Parser is None:
        return None
    try:
        doc = _Parser().parse(content)
        if type(doc) is not _Object:
            return None
        body: dict[str, Any] = {}
        for name in doc:
            value = doc[name]
            body[name] = _sections(value) if name == "result" and type(value) is _Object \
                else _plain(value)
        return body
    except (ValueError, RuntimeError):  # not JSON, or JSON simdjson does not take (BIGINT_ERROR)
        return None


def _sections(inner: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in inner:
        section = inner[name]
        if name != "result":
            out[name] = _plain(section)
        elif type(section) is _Object:
            out[name] = {key: _lazy(section[key]) for key in section}
        elif type(section) is _Array:
            out[name] = [_lazy(section[i]) for i in range(len(section))]
        else:
            out[name] = section
    return out


def _lazy(value: Any) -> Any:
    t = type(value)
    return RawJson(value.mini) if t is _Object or t is _Array else value


def _plain(value: Any) -> Any:
    t = type(value)
    if t is _Object or t is _Array:
        return decode_json(value.mini)
    return value
