"""JSON on the wire: request bodies out, answers in.

Answers are decoded whole by orjson (several times faster than the standard library, which
remains the fallback for what orjson refuses: a lone surrogate escape, which PHP's
``json_encode`` can send inside a title cut in the middle of an emoji).
"""

from __future__ import annotations

import json
from typing import Any

try:  # a runtime dependency; the fallback keeps a broken install working
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["decode_json", "encode_json"]


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
