"""One command model for the seeds' three input formats, validated before anything is sent.

The formats (the JS SDK's ``callBatch`` / ``BatchV3.make``)::

    [("crm.item.add", {...}), ("server.time",)]               # a list of (method, params)
    [{"method": "crm.item.add", "params": {...}, "as": "x"}]  # a list of {method, params[, as]}
    {"deal": {"method": "crm.item.get", "params": {...}},     # named commands (batch only)
     "user": ["user.current", {}]}

Every refusal is a :class:`~b24_dagster.errors.CommandValidationError` that names the
command. Method names are checked for syntax only: the portal decides what exists.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from b24_dagster.errors import CommandValidationError

from ._client import is_write_method

__all__ = [
    "MAX_BATCH_COMMANDS",
    "Command",
    "is_write_method",
    "iter_commands",
    "make_command",
    "normalize_calls",
    "scan_params",
]

MAX_BATCH_COMMANDS = 50
"""The portal's limit of commands in one batch (v2 and v3)."""

_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_known_methods: set[str] = set()
_known_keys: set[str] = set()


def _match_method(method: str) -> bool:
    if method in _known_methods:
        return True
    if _METHOD.fullmatch(method) and method.lower() != "batch":
        if len(_known_methods) < 10_000:
            _known_methods.add(method)
        return True
    return _METHOD.fullmatch(method) is not None
_ENTRY_KEYS = frozenset({"method", "params", "as"})
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Command:
    """One command of a batch.

    Attributes:
        index: Its position in the input (in a chunked run, in the whole run).
        key: The name of a named command, else ``str(index)``.
        method: The REST method, e.g. ``"crm.item.add"``.
        params: Its parameters: a mapping, or a list for positional methods.
        alias: The v3 ``as`` alias, if any (a later ``$ref`` may name it).
    """

    index: int
    key: str
    method: str
    params: Any
    alias: str | None = None

    @property
    def writes(self) -> bool:
        """Whether the command may change portal state (see :func:`is_write_method`)."""
        return is_write_method(self.method)


_INFINITIES = (float("inf"), float("-inf"))
# UTF-8 cannot carry a surrogate code point: v2's percent-encoding fails on one, and in v3
# its JSON escape makes PHP's json_decode refuse the whole body (JSON_ERROR_UTF16).
_SURROGATE = re.compile(r"[\ud800-\udfff]").search


def _text_why(text: str, what: str = "the string") -> str | None:
    """Why a non-ASCII string cannot be sent (it holds a surrogate), or None."""
    found = _SURROGATE(text)
    if found is None:
        return None
    return (f"{what} holds a lone surrogate (U+{ord(found.group()):04X}) at character "
            f"{found.start()}, which UTF-8 cannot carry")


def _bad(where: str, key: str | None, index: int | None, why: str) -> CommandValidationError:
    return CommandValidationError(f"{where}: parameters cannot be sent: {why}",
                                  command_key=key, index=index)


def _key_why(key: Any) -> str | None:
    """Why a dict key cannot be sent, or None (then remembered, when a string)."""
    if type(key) is str:
        if not key.isascii() and _SURROGATE(key):
            return _text_why(key, f"the key {key!r}")
        if len(_known_keys) < 10_000:
            _known_keys.add(key)
        return None
    if type(key) is int or (isinstance(key, str | int) and not isinstance(key, bool)):
        return None
    return f"the key {key!r} is not a string or an integer"


def _walk(value: Any, refs: list[bool]) -> str | None:
    """Check one value; None when it can be sent, else why not. Sets refs[0] on a reference."""
    t = type(value)
    if t is str:
        if "$result[" in value:
            refs[0] = True
        return None if value.isascii() else _text_why(value)
    if t is int or t is bool or value is None:
        return None
    if t is dict or t is list or t is tuple:
        if t is dict:
            if len(value) == 1 and ("$ref" in value or "$refArray" in value):
                refs[0] = True
            for k in value:
                if k in _known_keys:  # field names repeat from command to command
                    continue
                why = _key_why(k)
                if why is not None:
                    return why
            items = value.values()
        else:
            items = value
        for item in items:
            ti = type(item)
            if ti is str:
                if "$result[" in item:
                    refs[0] = True
                if not item.isascii():
                    try:
                        item.encode()  # cheaper than a regex search when nothing is found
                    except UnicodeEncodeError:
                        return _text_why(item)
            elif ti is not int:
                why = _walk(item, refs)
                if why is not None:
                    return why
        return None
    if t is float:
        if value != value or value in _INFINITIES:
            return f"the float {value} (NaN and infinities are refused)"
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return f"the naive datetime {value} (attach a tzinfo: the portal's zone is unknown)"
        return None
    if isinstance(value, dt.date):
        return None
    if isinstance(value, Decimal):
        return None if value.is_finite() else f"the Decimal {value}"
    if isinstance(value, Mapping):
        return _walk(dict(value), refs)
    if isinstance(value, str):
        return _walk(str(value), refs)
    if isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return _walk(float(value), refs)
    return f"a value of type {t.__name__} is not JSON-able"


def _refused_path(value: Any, path: str = "") -> str:
    """Where in ``value`` the first refused value lies, as ``fields[PHONE][0][VALUE]``.

    Only called after :func:`_walk` refused ``value``, so it may walk again at each level.
    A refused key leaves the path at its dict (the reason names the key).
    """
    if isinstance(value, Mapping):
        pairs: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple):
        pairs = enumerate(value)
    else:
        return path
    for k, v in pairs:
        if _walk(v, [False]) is not None:
            return _refused_path(v, f"{path}[{k}]" if path else str(k))
    return path


def scan_params(params: Any) -> tuple[str | None, bool]:
    """(why the parameters cannot be sent or None, whether they hold references)."""
    refs = [False]
    why = _walk(params, refs)
    return why, refs[0]


def check_params(params: Any, *, where: str, key: str | None = None,
                 index: int | None = None) -> bool:
    """Refuse parameters that cannot be sent; tell whether they hold references.

    Accepted: dict (string or integer keys), list, tuple, str, int, float, bool, None,
    date, aware datetime, Decimal, nested in any way. NaN and infinities are refused, and
    so are strings and keys holding a lone surrogate (``"\\ud800"``), which neither v2's
    percent-encoding nor a PHP portal's JSON decoder accepts.

    Returns:
        True when a v2 ``$result[...]`` or a v3 ``$ref``/``$refArray`` marker occurs.

    Raises:
        CommandValidationError: A value that cannot be sent, naming the command.
    """
    refs = [False]
    why = _walk(params, refs)
    if why is not None:
        # a key may hold the very surrogate refused: escape it, or the message itself
        # could not be printed or logged as UTF-8
        path = _refused_path(params).encode("utf-8", "backslashreplace").decode()
        raise _bad(where, key, index, f"{path}: {why}" if path else why)
    return refs[0]


def _where(key: str, method: str | None = None) -> str:
    return f"command {key!r}" + (f" ({method})" if method else "")


def make_command(index: int, item: Any, *, key: str | None = None, check: bool = True) -> Command:
    """Turn one input item into a :class:`Command`.

    Args:
        index: The item's position in the input.
        item: ``(method,)``, ``(method, params)``, ``{"method", "params"[, "as"]}``, or a
            :class:`Command` (re-indexed).
        key: The name of a named command (``str(index)`` when None).
        check: Whether to check that the parameters are JSON-able (skip when a caller has
            already checked them).

    Raises:
        CommandValidationError: The item is malformed, names no valid method, or its
            parameters cannot be sent.
    """
    name = str(index) if key is None else key
    alias = None
    ti = type(item)
    if ti is tuple or ti is list:
        if not 1 <= len(item) <= 2:
            raise CommandValidationError(
                f"{_where(name)}: expected (method, params), got {len(item)} elements",
                command_key=name, index=index)
        method = item[0]
        params = item[1] if len(item) == 2 else None
    elif ti is dict or (ti is not Command and isinstance(item, Mapping)):
        extra = item.keys() - _ENTRY_KEYS
        if extra:
            raise CommandValidationError(
                f"{_where(name)}: unknown entries {sorted(map(str, extra))} "
                f"(expected method, params, as)", command_key=name, index=index)
        method = item.get("method")
        params = item.get("params")
        alias = item.get("as")
        if alias is not None and (not isinstance(alias, str) or not _ALIAS.fullmatch(alias)):
            raise CommandValidationError(
                f"{_where(name)}: the alias 'as' must be an identifier, got {alias!r}",
                command_key=name, index=index)
    elif isinstance(item, Command):
        method, params, alias = item.method, item.params, item.alias
    else:
        raise CommandValidationError(
            f"{_where(name)}: expected (method, params) or {{method, params}}, "
            f"got {type(item).__name__}", command_key=name, index=index)
    if type(method) is not str or not _match_method(method):
        raise CommandValidationError(f"{_where(name)}: invalid method name {method!r}",
                                     command_key=name, index=index)
    if method.lower() == "batch":
        raise CommandValidationError(f"{_where(name)}: a batch cannot contain a batch",
                                     command_key=name, index=index)
    tp = type(params)
    if params is None:
        params = {}
    elif tp is not dict and tp is not list and not isinstance(params, Mapping | tuple):
        raise CommandValidationError(
            f"{_where(name, method)}: params must be a mapping (or a list for positional "
            f"methods), got {type(params).__name__}", command_key=name, index=index)
    if check:
        check_params(params, where=_where(name, method), key=name, index=index)
    return Command(index, name, method, params, alias)


def normalize_calls(calls: Any, *, allow_named: bool = True,
                    max_commands: int | None = MAX_BATCH_COMMANDS) -> tuple[list[Command], bool]:
    """Normalize any of the three input formats into commands, refusing bad ones.

    Args:
        calls: A list of ``(method, params)``, a list of ``{method, params}``, or a mapping
            of named commands ``{name: {method, params} | [method, params]}``.
        allow_named: Whether the mapping format is accepted (not in chunked runs).
        max_commands: The most commands accepted (None: no limit).

    Returns:
        The commands in input order, and whether they were named.

    Raises:
        CommandValidationError: Before anything is sent, naming the offending command.
    """
    if isinstance(calls, Mapping):
        if not allow_named:
            raise CommandValidationError(
                "named commands are not accepted here: a chunked batch takes a list of "
                "(method, params) or of {method, params}")
        items: Iterable[tuple[str | None, Any]] = calls.items()
        named = True
    elif isinstance(calls, list | tuple):
        items = ((None, c) for c in calls)
        named = False
    else:
        raise CommandValidationError(
            f"calls must be a list or a mapping of named commands, got {type(calls).__name__}")
    commands: list[Command] = []
    for index, (name, item) in enumerate(items):
        if max_commands is not None and index >= max_commands:
            raise CommandValidationError(
                f"at most {max_commands} commands fit in one batch, got more "
                f"(use batch_by_chunk for any number)")
        if named and (not isinstance(name, str) or not name or "[" in name or "]" in name):
            raise CommandValidationError(
                f"command name {name!r}: names must be non-empty strings without brackets",
                index=index)
        commands.append(make_command(index, item, key=name))
    if not commands:
        raise CommandValidationError("no commands to send")
    return commands, named


def iter_commands(calls: Iterable[Any], *, check: bool = True) -> Iterator[Command]:
    """Normalize a list or any iterator of list-format commands lazily (chunked runs).

    Raises:
        CommandValidationError: For named commands, or an item that is malformed, when it
            is reached.
    """
    if isinstance(calls, Mapping):
        normalize_calls(calls, allow_named=False)
    if isinstance(calls, str | bytes):
        raise CommandValidationError("calls must be a list of commands, not a string")
    for index, item in enumerate(calls):
        yield make_command(index, item, check=check)
