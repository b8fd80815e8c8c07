"""Find CRM records by the key they carry: many keys a list command, 50 commands a request.

Used to settle a create whose answer was lost (:mod:`._reconcile`) and to match source rows
to portal records in a sync. One list command asks for up to :data:`KEYS_PER_COMMAND` keys
at once (``filter: {"@ORIGIN_ID": [...]}``, plus the originator when there is one), and up
to 50 such commands ride in one v2 ``batch``: 2,500 keys a request.

A record counts only when it carries the exact key (and originator): the returned rows are
checked one by one, never trusted because the portal returned them. A page holding a record
that carries none of the keys asked for means the portal did not apply the filter (legacy
``crm.*.list`` methods ignore filter fields they do not know): that is a configuration error,
raised at once, since every record would otherwise "match".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError

__all__ = ["KEYS_PER_COMMAND", "VALUES_PER_FINDBYCOMM", "KeyLookup", "comm_entity_type", "find_by_comm",
           "find_by_keys", "id_of", "list_method_of", "normalize_comm"]

KEYS_PER_COMMAND = 50
"""Keys per list command: a page holds 50 records, so unique keys never need a second page."""
_COMMANDS_PER_REQUEST = 50


def list_method_of(method: str) -> str:
    """The list method of an entity's write method: ``crm.lead.add`` -> ``crm.lead.list``."""
    prefix, _, _ = method.rpartition(".")
    if not prefix:
        raise ConfigurationError(f"{method!r} is not a method of an entity (e.g. crm.lead.add)")
    return f"{prefix}.list"


def id_of(record: Mapping[str, Any]) -> int | str | None:
    """The id of a listed record (``ID`` of legacy methods, ``id`` of ``crm.item``), as an int."""
    value = record.get("ID", record.get("id"))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


@dataclass
class KeyLookup:
    """What a lookup found.

    Attributes:
        records: For each key asked for, the records that carry exactly that key (and the
            originator), in id order; an empty list when none does.
        failed: Keys whose lookup command failed (nothing is known of them).
        error: The first failure's text, to say why.
        commands: List commands sent; requests: batch requests sent.
    """

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    error: str | None = None
    commands: int = 0
    requests: int = 0

    def ids(self, key: str) -> list[int | str | None]:
        """The ids of the records that carry `key`."""
        return [id_of(r) for r in self.records.get(key, [])]


@dataclass
class _Query:
    keys: list[str]
    start: int = 0


def find_by_keys(
    client: Any,
    list_method: str,
    keys: Iterable[str],
    *,
    key_field: str,
    originator_field: str | None = None,
    originator: str | None = None,
    params: Mapping[str, Any] | None = None,
    select: Sequence[str] = (),
) -> KeyLookup:
    """Look the records carrying `keys` up on the portal (see the module docstring).

    Args:
        client: A `Bitrix24Client` (its ``batch`` sends the list commands, as v2 reads).
        list_method: e.g. ``crm.lead.list`` or ``crm.item.list``.
        keys: The key values (strings); repeats are asked once.
        key_field: The field holding the key: ``ORIGIN_ID``, ``originId``, ``XML_ID``, a user field.
        originator_field: The field of the originator (``ORIGINATOR_ID`` / ``originatorId``).
        originator: When set, a record matches only with this originator too.
        params: Constant params of each list command (e.g. ``{"entityTypeId": 2}``).
        select: Fields to read besides the id, key and originator (a sync reads the fields it
            writes, to compare them with the source).

    Raises:
        ConfigurationError: The portal returned records that carry none of the keys asked for
            (it ignored the filter: `key_field` is not a field of this entity).
    """
    wanted = list(dict.fromkeys(str(k) for k in keys))
    out = KeyLookup(records={k: [] for k in wanted})
    pending = [_Query(wanted[i : i + KEYS_PER_COMMAND]) for i in range(0, len(wanted), KEYS_PER_COMMAND)]
    id_field = "ID" if key_field.isupper() else "id"
    select = list(dict.fromkeys([id_field, key_field, *([originator_field] if originator_field else []), *select]))
    while pending:
        group, pending = pending[:_COMMANDS_PER_REQUEST], pending[_COMMANDS_PER_REQUEST:]
        commands = [(list_method, _command(q, key_field, originator_field, originator, params, select, id_field))
                    for q in group]  # fmt: skip
        out.commands += len(commands)
        out.requests += 1
        try:
            answer = client.batch(commands, halt_on_error=False, api_version=2)
        except Exception as exc:  # refused as a whole or lost: nothing is known of these keys
            out.failed.extend(k for q in group for k in q.keys)
            out.error = out.error or f"{type(exc).__name__}: {exc}"
            continue
        for query, result in zip(group, answer.commands, strict=True):
            if result.status != "ok":
                out.failed.extend(query.keys)
                out.error = out.error or f"{result.error_code}: {result.error_description}"
                continue
            _collect(out, query, _rows(result.data), key_field, originator_field, originator, list_method)
            if result.next is not None and result.next > query.start:  # more records than a page
                pending.append(_Query(query.keys, int(result.next)))
    return out


def _command(query: _Query, key_field: str, originator_field: str | None, originator: str | None,
             params: Mapping[str, Any] | None, select: list[str], id_field: str) -> dict[str, Any]:
    flt: dict[str, Any] = {f"@{key_field}": list(query.keys)}
    if originator is not None and originator_field:
        flt[originator_field] = originator
    command: dict[str, Any] = {**(params or {}), "filter": flt, "select": select, "order": {id_field: "ASC"}}
    if query.start:
        command["start"] = query.start
    return command


def _rows(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):  # crm.item.list: {"items": [...]}; tasks.task.list: {"tasks": [...]}
        data = data.get("items", data.get("tasks"))
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def _collect(out: KeyLookup, query: _Query, rows: Sequence[dict[str, Any]], key_field: str,
             originator_field: str | None, originator: str | None, list_method: str) -> None:
    asked = set(query.keys)
    for row in rows:
        value = row.get(key_field)
        key = None if value is None else str(value)
        if key not in asked:
            raise ConfigurationError(
                f"{list_method} returned a record whose {key_field} is none of the keys asked "
                f"for: the portal ignored the filter on {key_field}. Is {key_field} a field of "
                "this entity (spelled as its *.fields answer spells it)?")
        if originator is not None and originator_field and str(row.get(originator_field) or "") != originator:
            continue  # the same key from another originator is another record's key
        out.records[key].append(row)


VALUES_PER_FINDBYCOMM = 20
"""Values per `crm.duplicate.findbycomm` command (its page's limit)."""
_COMM_ENTITY = {"crm.lead": "LEAD", "crm.contact": "CONTACT", "crm.company": "COMPANY"}


def comm_entity_type(method: str) -> str:
    """`LEAD`, `CONTACT` or `COMPANY` of a legacy method of those entities."""
    entity = _COMM_ENTITY.get(method.rpartition(".")[0])
    if entity is None:
        raise ConfigurationError(
            f"matching by e-mail or phone works for leads, contacts and companies; not for {method}")
    return entity


def normalize_comm(comm_type: str, value: Any) -> str:
    """The form two e-mails (lower case) or phones (digits) are compared in; "" for no value."""
    if isinstance(value, list):  # a multi-field: [{"VALUE": ..., "VALUE_TYPE": ...}]
        value = next((v.get("VALUE") for v in value if isinstance(v, dict) and v.get("VALUE")), None)
    text = "" if value is None else str(value).strip()
    if comm_type == "EMAIL":
        return text.lower()
    return "".join(ch for ch in text if ch.isdigit())


def find_by_comm(client: Any, method: str, comm_type: str, values: Iterable[str],
                 select: Sequence[str] = ()) -> KeyLookup:
    """The records that hold each e-mail or phone, through `crm.duplicate.findbycomm`.

    The method answers the ids that hold *any* of a call's values (20 a call, 50 calls a
    request), not which value each holds; so the ids found are then listed with their
    e-mails or phones (50 ids a list command) and assigned to the values they really hold,
    compared as `normalize_comm` does. `records` is keyed by the normalized value.

    Args:
        client: A `Bitrix24Client`.
        method: A method of the entity (`crm.contact.add`): leads, contacts or companies.
        comm_type: `EMAIL` or `PHONE`.
        values: Normalized values (see `normalize_comm`).
        select: Fields to read besides the id and the e-mails or phones.
    """
    entity_type = comm_entity_type(method)
    wanted = list(dict.fromkeys(v for v in values if v))
    out = KeyLookup(records={v: [] for v in wanted})
    calls = [("crm.duplicate.findbycomm", {"type": comm_type, "entity_type": entity_type,
                                           "values": wanted[i : i + VALUES_PER_FINDBYCOMM]})
             for i in range(0, len(wanted), VALUES_PER_FINDBYCOMM)]  # fmt: skip
    ids: set[int] = set()
    for answers in _batched(client, calls, out):
        for call, result in answers:
            if result.status != "ok":
                out.failed.extend(call[1]["values"])
                out.error = out.error or f"{result.error_code}: {result.error_description}"
            elif isinstance(result.data, dict):
                ids.update(int(i) for i in result.data.get(entity_type, []))
    listed = sorted(ids)
    lists = [(list_method_of(method), {"filter": {"@ID": listed[i : i + KEYS_PER_COMMAND]},
                                       "select": list(dict.fromkeys(["ID", comm_type, *select])),
                                       "order": {"ID": "ASC"}})
             for i in range(0, len(listed), KEYS_PER_COMMAND)]  # fmt: skip
    for answers in _batched(client, lists, out):
        for _, result in answers:
            if result.status != "ok":  # ids unassigned: every value is unknown
                out.failed.extend(wanted)
                out.error = out.error or f"{result.error_code}: {result.error_description}"
                continue
            for row in _rows(result.data):
                for held in {normalize_comm(comm_type, [v]) for v in row.get(comm_type) or []}:
                    if held in out.records:
                        out.records[held].append(row)
    out.failed = list(dict.fromkeys(out.failed))
    return out


def _batched(client: Any, calls: list[tuple[str, dict[str, Any]]], out: KeyLookup) -> Iterable[list[Any]]:
    """Each request's (call, result) pairs, 50 calls a v2 batch; a failed request fails its values."""
    for start in range(0, len(calls), _COMMANDS_PER_REQUEST):
        group = calls[start : start + _COMMANDS_PER_REQUEST]
        out.commands += len(group)
        out.requests += 1
        try:
            answer = client.batch(group, halt_on_error=False, api_version=2)
        except Exception as exc:
            for _, params in group:
                out.failed.extend(params.get("values") or [])
            out.error = out.error or f"{type(exc).__name__}: {exc}"
            continue
        yield list(zip(group, answer.commands, strict=True))
