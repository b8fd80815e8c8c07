"""JSON output: pre-serialized fragments spliced into answers, PHP array rules, time objects.

Answers are built as text: a value that is already serialized (a cached item) is a
:class:`Raw` and is copied into the answer verbatim, so a batch of 50 ``crm.item.get``
costs 50 string joins instead of 50 ``json.dumps`` over big dicts.
Strings are escaped as PHP's ``json_encode`` does by default (non-ASCII as ``\\uXXXX``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = ["Raw", "dumps", "php_keys", "DateFormatter", "time_object", "time_text"]

_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


class Raw:
    """A JSON fragment already serialized; ``value`` decodes it (or builds it) on demand."""

    __slots__ = ("_factory", "_value", "text", "wrapped")

    def __init__(self, text: str, value: Any = None, factory: Callable[[], Any] | None = None):
        self.text = text
        self._value = value
        self._factory = factory
        #: A derived fragment kept with this one (crm.item.get's ``{"item": ...}``).
        self.wrapped: Raw | None = None

    @property
    def value(self) -> Any:
        """The Python value of the fragment (used by ``$result[...]`` references)."""
        if self._value is None:
            self._value = self._factory() if self._factory is not None else json.loads(self.text)
        return self._value


def plain(value: Any) -> Any:
    """``value`` with every :class:`Raw` replaced by its Python value."""
    if isinstance(value, Raw):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Serialize ``value`` compactly, splicing :class:`Raw` fragments in verbatim."""
    if type(value) is Raw:
        return value.text
    try:
        return _dumps(value)          # no Raw inside: the C encoder does it all
    except TypeError:
        pass
    if isinstance(value, dict):
        return "{" + ",".join(_dumps(str(k)) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return _dumps(value)


def php_keys(section: dict[str, Any]) -> dict[str, Any] | list[Any]:
    """A batch section as PHP's ``json_encode`` emits it.

    Empty -> ``[]``; keys exactly ``"0".."n-1"`` in order -> a list; otherwise the dict.
    """
    if not section:
        return []
    for i, k in enumerate(section):
        if k != str(i):
            return section
    return list(section.values())


class DateFormatter:
    """Formats unix times as ``2024-08-29T10:34:19+03:00`` in the portal's zone, cached per second."""

    __slots__ = ("_cache", "_tz")

    def __init__(self, utc_offset: int = 0) -> None:
        self._tz = UTC if utc_offset == 0 else timezone(timedelta(seconds=utc_offset))
        self._cache: dict[int, str] = {}

    def __call__(self, ts: float) -> str:
        sec = int(ts // 1)
        text = self._cache.get(sec)
        if text is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            text = datetime.fromtimestamp(sec, self._tz).isoformat()
            self._cache[sec] = text
        return text


def time_object(
    start: float,
    finish: float,
    fmt: DateFormatter,
    *,
    processing: float | None = None,
    operating: float | None = None,
    operating_reset_at: int | None = None,
) -> str:
    """The serialized ``time`` object of an answer (operating fields when given)."""
    duration = repr(finish - start)
    ds = fmt(start)
    df = ds if int(finish) == int(start) else fmt(finish)
    text = (
        f'{{"start":{start!r},"finish":{finish!r},"duration":{duration},"processing":'
        f'{duration if processing is None else repr(processing)},'
        f'"date_start":"{ds}","date_finish":"{df}"'
    )
    if operating is not None:
        return text + f',"operating_reset_at":{operating_reset_at},"operating":{operating!r}}}'
    return text + "}"


def time_text(start: float, start_text: str, finish: float, finish_text: str, fmt: DateFormatter,
              operating: float, operating_reset_at: int) -> str:
    """A command's ``time`` object from already formatted start/finish (the batch hot path)."""
    ds = fmt(start)
    df = ds if int(finish) == int(start) else fmt(finish)
    duration = repr(finish - start)
    return (f'{{"start":{start_text},"finish":{finish_text},"duration":{duration},'
            f'"processing":{duration},"date_start":"{ds}","date_finish":"{df}",'
            f'"operating_reset_at":{operating_reset_at},"operating":{operating!r}}}')
