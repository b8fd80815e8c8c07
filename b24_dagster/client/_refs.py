"""References between the commands of one batch.

* v2: ``$result[cmd_key][field]...`` inside a parameter string; the portal substitutes it
  (``"D_$result[FirstDeal][items][0][id]"``). Only inside one batch: a chunked run refuses
  them, since a chunk cannot see another chunk's results.
* v3: ``{"$ref": "alias.path"}`` (one value) and ``{"$refArray": "alias.field"}`` (a field
  collected over the alias's ``items``), where ``alias`` is an earlier command's ``as`` or
  its index. Build them with :func:`ref` and :func:`ref_array`. They are v3 only: a v2 batch
  passes them through as literal values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from b24_dagster.errors import CommandValidationError

if TYPE_CHECKING:
    from ._commands import Command

__all__ = ["find_result_refs", "has_result_ref", "ref", "ref_array", "validate_v3_refs"]

_V2_REF = re.compile(r"\$result\[([^\]]*)\]")
_PATH = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)+")


def _check_path(path: Any, marker: str) -> str:
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise CommandValidationError(
            f"{marker} path {path!r} must be 'alias.field[.subfield...]' (it needs a dot; "
            f"segments are letters, digits and _)")
    return path


def ref(path: str) -> dict[str, str]:
    """A v3 ``$ref`` marker: one value of an earlier command's result.

    >>> ref("task.item.id")
    {'$ref': 'task.item.id'}

    Only ``item`` (get) and ``items`` (list/tail) results can be referenced.

    Raises:
        CommandValidationError: The path has no dot or bad characters.
    """
    return {"$ref": _check_path(path, "$ref")}


def ref_array(path: str) -> dict[str, str]:
    """A v3 ``$refArray`` marker: a field collected over an earlier command's ``items``.

    >>> ref_array("tasks.id")
    {'$refArray': 'tasks.id'}

    Raises:
        CommandValidationError: The path has no dot or bad characters.
    """
    return {"$refArray": _check_path(path, "$refArray")}


def _markers(value: Any) -> Any:
    """Yield the ($ref or $refArray, path) markers found anywhere in a value."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            for name in ("$ref", "$refArray"):
                if name in value:
                    yield name, value[name]
                    return
        for v in value.values():
            yield from _markers(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _markers(v)


def validate_v3_refs(commands: Sequence[Command]) -> None:
    """Check every ``$ref``/``$refArray`` of a v3 batch names an earlier command.

    Raises:
        CommandValidationError: A path without a dot, or an alias that is neither the
            ``as`` nor the index of an earlier command of the same batch.
    """
    known: set[str] = set()
    for position, command in enumerate(commands):
        for marker, path in _markers(command.params):
            _check_path(path, marker)
            alias = path.split(".", 1)[0]
            if alias not in known:
                raise CommandValidationError(
                    f"command {command.key!r} ({command.method}): {marker} {path!r} names "
                    f"{alias!r}, which is not an earlier command of this batch",
                    command_key=command.key, index=command.index)
        known.add(str(position))
        if command.alias:
            known.add(command.alias)


def find_result_refs(value: Any) -> list[str]:
    """The command keys that v2 ``$result[...]`` references in a value point at."""
    found: list[str] = []
    if isinstance(value, str):
        if "$result[" in value:
            found.extend(_V2_REF.findall(value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found.extend(find_result_refs(k))
            found.extend(find_result_refs(v))
    elif isinstance(value, list | tuple):
        for v in value:
            found.extend(find_result_refs(v))
    return found


def has_result_ref(value: Any) -> bool:
    """Whether a value holds a v2 ``$result[...]`` reference anywhere."""
    return bool(find_result_refs(value))
