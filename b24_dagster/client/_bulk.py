"""Bulk creates: ``crm.item.add`` creates packed into ``crm.item.batchImport`` calls.

``crm.item.batchImport`` (doc page ``api-reference/crm/universal/import/crm-item-batch-import.md``)
creates up to 20 records of one entity type in one call and answers one entry per record, in
order: ``{"item": {"id": 15}}`` or that record's own ``{"error", "error_description"}``. A
``batch`` of 50 such calls carries 1,000 records a request, where one ``crm.item.add`` a
command carries 50.

A chunked run started with ``bulk_import=True`` takes its commands 1,000 at a time
(:data:`BULK_CHUNK`); the ``crm.item.add`` creates of a chunk that share ``entityTypeId`` (and
``useOriginalUfNames``) are packed 20 to an import call, every other command rides as itself,
and the calls go as one batch (more when a chunk holds many other commands). The chunk's
result still has one row per source command, in source order:

* a created record: ``ok``, its result ``{"item": {"id": N}, "batchImport": {"command": k,
  "position": p}}`` (the id as the page gives it, and which import call of the chunk and
  which position in its ``data`` answered it);
* a record the portal refused: ``error`` with the record's own code, its description
  followed by ``[crm.item.batchImport command k, record p]``; the others of its call are not
  affected;
* a call refused as a whole (``ACCESS_DENIED``, ``MAX_IMPORT_BATCH_SIZE_EXCEEDED``, ...): each of
  its records ``error`` with the call's code; without the CRM "import" permission the
  description says what to do (:data:`NO_IMPORT_PERMISSION`);
* a call whose answer was lost: each of its records ``unknown``, to be settled by key as
  single creates are (``reconcile=True``: looked up by ``originId``; the missing ones are
  imported again, the found ones never).

It is chosen explicitly, never by itself: an import does not start automation rules or
workflows, and the portal checks the "import" permission instead of "add". REST v2 only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._batch import execute_batch
from ._commands import MAX_BATCH_COMMANDS, Command
from ._results import BatchResult, CommandResult

__all__ = ["BULK_CHUNK", "IMPORT_METHOD", "NO_IMPORT_PERMISSION", "RECORDS_PER_IMPORT", "execute_bulk",
           "pack", "send_bulk"]

IMPORT_METHOD = "crm.item.batchImport"
CREATE_METHOD = "crm.item.add"
RECORDS_PER_IMPORT = 20
"""Records one ``crm.item.batchImport`` call takes (more: ``MAX_IMPORT_BATCH_SIZE_EXCEEDED``)."""
BULK_CHUNK = RECORDS_PER_IMPORT * MAX_BATCH_COMMANDS
"""Source commands in one chunk of a bulk run: 50 import calls of 20 records, one request."""
NO_IMPORT_PERMISSION = (
    "the webhook's user lacks the CRM \"import\" permission for entityTypeId {entity_type_id} "
    "(crm.item.batchImport checks \"import\", not \"add\"): grant it in CRM > Settings > Access "
    "permissions (the role's \"Import\" column for this entity), or send these creates without "
    "bulk_import (crm.item.add, which also starts automation rules)")
_PACK_PARAMS = frozenset({"entityTypeId", "fields", "useOriginalUfNames"})


@dataclass(slots=True)
class _Wire:
    """One command on the wire: an import call of several sources, or one source as itself."""

    method: str
    params: Any
    sources: list[int] = field(default_factory=list)  # positions in the chunk


def _group(command: Command) -> tuple[str, str] | None:
    """What creates that can share an import call have in common; None: not packable."""
    if command.method != CREATE_METHOD:
        return None
    params = command.params
    if type(params) is not dict or not params.keys() <= _PACK_PARAMS:
        return None
    if type(params.get("fields")) is not dict or params.get("entityTypeId") in (None, ""):
        return None
    return str(params["entityTypeId"]), str(params.get("useOriginalUfNames", "N")).upper()


def pack(commands: Sequence[Command]) -> list[_Wire]:
    """The wire commands of a chunk, in the order of their first source command."""
    wires: list[_Wire] = []
    open_calls: dict[tuple[str, str], _Wire] = {}
    for at, command in enumerate(commands):
        group = _group(command)
        if group is None:
            wires.append(_Wire(command.method, command.params, [at]))
            continue
        wire = open_calls.get(group)
        if wire is None or len(wire.sources) == RECORDS_PER_IMPORT:
            params: dict[str, Any] = {"entityTypeId": command.params["entityTypeId"], "data": []}
            if "useOriginalUfNames" in command.params:
                params["useOriginalUfNames"] = command.params["useOriginalUfNames"]
            wire = open_calls[group] = _Wire(IMPORT_METHOD, params)
            wires.append(wire)
        wire.params["data"].append(command.params["fields"])
        wire.sources.append(at)
    return wires


def _unpack(wire: _Wire, number: int, answer: CommandResult, commands: Sequence[Command],
            rows: list[CommandResult | None], chunk_index: int) -> None:
    """The rows of one wire command's sources, from its answer."""
    if wire.method != IMPORT_METHOD:
        c = commands[wire.sources[0]]
        rows[wire.sources[0]] = CommandResult(
            c.index, c.key, c.method, chunk_index, answer.status, answer.data, answer.error_code,
            answer.error_description, answer.time, answer.total, answer.next)
        return
    where = f"crm.item.batchImport command {number}"
    if answer.status != "ok":
        description = answer.error_description
        if answer.status == "error" and answer.error_code == "ACCESS_DENIED":
            why = NO_IMPORT_PERMISSION.format(entity_type_id=wire.params["entityTypeId"])
            description = f"{description or 'Access denied'}: {why}"
        for p, at in enumerate(wire.sources):
            c = commands[at]
            rows[at] = CommandResult(c.index, c.key, c.method, chunk_index, answer.status, None,
                                     answer.error_code, f"{description} [{where}, record {p}]", answer.time)
        return
    data = answer.data
    items = data.get("items") if isinstance(data, dict) else data
    items = items if isinstance(items, list) else []
    for p, at in enumerate(wire.sources):
        c = commands[at]
        entry = items[p] if p < len(items) else None
        if isinstance(entry, dict) and isinstance(entry.get("item"), dict):
            rows[at] = CommandResult(c.index, c.key, c.method, chunk_index, "ok",
                                     {"item": entry["item"], "batchImport": {"command": number, "position": p}},
                                     None, None, answer.time)  # fmt: skip
        elif isinstance(entry, dict) and "error" in entry:
            text = entry.get("error_description")
            rows[at] = CommandResult(c.index, c.key, c.method, chunk_index, "error", None, str(entry["error"]),
                                     f"{text or ''} [{where}, record {p}]".lstrip(), answer.time)  # fmt: skip
        else:
            rows[at] = CommandResult(c.index, c.key, c.method, chunk_index, "error", None, "MISSING_RESULT",
                                     f"the import's answer has no entry for this record [{where}, record {p}]",
                                     answer.time)  # fmt: skip


def execute_bulk(client: Any, commands: Sequence[Command], *, halt_on_error: bool, request_id: str,
                 chunk_index: int, x_request_id: str | None = None) -> BatchResult:
    """Send a chunk's commands with its creates packed into import calls (see the module docstring).

    Args:
        client: The client whose ``_request`` sends each batch.
        commands: The chunk's source commands (at most :data:`BULK_CHUNK` for one request).
        halt_on_error: Each batch stops at its first failing call (a record's own error
            does not fail its call).
        request_id: The base of the request ids.
        chunk_index: The chunk's position in the run.
        x_request_id: The ``X-Request-ID`` of the chunk's first batch (the next ones add
            ``.1``, ``.2``, ...).

    Returns:
        One result row per source command, in source order (never raises for failures).
    """
    wires = pack(commands)
    rows: list[CommandResult | None] = [None] * len(commands)
    base = x_request_id or request_id
    stats = getattr(client, "stats", None)
    before = stats.snapshot() if stats is not None else None
    time_obj = None
    for part, start in enumerate(range(0, len(wires), MAX_BATCH_COMMANDS)):
        group = wires[start : start + MAX_BATCH_COMMANDS]
        batch = [Command(i, str(i), w.method, w.params) for i, w in enumerate(group)]
        answer = execute_batch(client, batch, halt_on_error=halt_on_error, api_version=2,
                               request_id=request_id, chunk_index=chunk_index,
                               x_request_id=base if part == 0 else f"{base}.{part}")  # fmt: skip
        time_obj = answer.time or time_obj
        for number, (wire, result) in enumerate(zip(group, answer.commands, strict=True), start):
            _unpack(wire, number, result, commands, rows, chunk_index)
    delta = (stats - before) if before is not None else None
    return BatchResult(rows, api_version=2, chunk_index=chunk_index, time=time_obj, stats=delta)  # type: ignore[arg-type]


def send_bulk(client: Any) -> Callable[[list[tuple[str, Any]]], list[CommandResult]]:
    """A re-send for :func:`~._reconcile.reconcile_creates` that imports what it creates."""
    from ._batch import new_request_id

    def send(calls: list[tuple[str, Any]]) -> list[CommandResult]:
        commands = [Command(i, str(i), m, p) for i, (m, p) in enumerate(calls)]
        return execute_bulk(client, commands, halt_on_error=False, request_id=new_request_id(),
                            chunk_index=0).commands

    return send
