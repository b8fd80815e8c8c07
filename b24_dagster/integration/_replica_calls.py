"""The replica's reads: many small list commands, 50 to a batch request, and what they answer.

A replica asks three kinds of question besides the export of changed rows: the probe (the
portal's clock, the count and newest modification of the visible records, the highest id),
counts of id ranges (a list with `start=0` answers `total`; its first page of ids comes
free), and lookups of ids (`@ID`, 50 a command). Each is a plain `crm.*.list` command; they
ride in batches of 50 (one request) through `Bitrix24Client.batch`, and a command that fails
fails the run: a count or lookup that did not answer must never be read as "gone".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from b24_dagster.integration._replica_entities import ReplicaEntity

__all__ = ["Probe", "ReplicaReadError", "lookup", "parse_time", "probe", "run_reads"]

_PER_REQUEST = 50
_PER_LOOKUP = 50


class ReplicaReadError(RuntimeError):
    """A read of the replica's run failed (the command's error is in the message)."""


@dataclass(frozen=True)
class Answer:
    """One command's answer: its rows (or result) and `total`."""

    result: Any
    total: int | None


def run_reads(client: Any, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Answer]:
    """Run read commands in batches of 50 (v2); every answer, in order, or an error."""
    answers: list[Answer] = []
    for start in range(0, len(calls), _PER_REQUEST):
        chunk = [(method, dict(params)) for method, params in calls[start:start + _PER_REQUEST]]
        result = client.batch(chunk, halt_on_error=False, return_ajax_result=True, api_version=2)
        for command in result:
            if command.status != "ok":
                raise ReplicaReadError(f"{command.method} failed: {command.error_code or command.status}: "
                                       f"{command.error_description or ''}".rstrip(": "))
            answers.append(Answer(command.data, command.total))
    return answers


def parse_time(value: Any) -> datetime | None:
    """A portal date (ISO 8601 with offset) as an aware UTC datetime; None when empty."""
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).strip())
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass(frozen=True)
class Probe:
    """One request's view of the portal: its clock, and of the records the filter shows, the
    count, the newest modification and the highest id (and the same without the filter)."""

    now: datetime
    total: int
    newest: str | None
    max_id: int | None
    all_total: int | None = None
    all_newest: str | None = None

    def signature(self) -> list[Any]:
        """What tells one state of the portal from another (the sensor's cursor)."""
        return [self.total, self.newest, self.max_id, self.all_total, self.all_newest]


def probe_calls(entity: ReplicaEntity, flt: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The commands of one probe (one command more when the replica has a filter)."""
    select = [entity.cursor_field, entity.modified_field]
    calls = [
        ("server.time", {}),
        (entity.method, entity.list_params(flt, select=select, order={entity.modified_field: "DESC"}, start=0)),
        (entity.method, entity.list_params(flt, select=[entity.cursor_field],
                                           order={entity.cursor_field: "DESC"}, start=-1)),
    ]
    if flt:
        calls.append((entity.method, entity.list_params({}, select=select, order={entity.modified_field: "DESC"},
                                                        start=0)))
    return calls


def read_probe(entity: ReplicaEntity, flt: Mapping[str, Any], answers: Sequence[Answer]) -> Probe:
    """The `Probe` of the answers to `probe_calls`."""
    now = parse_time(answers[0].result)
    assert now is not None
    newest_rows = entity.rows_of(answers[1].result)
    top_rows = entity.rows_of(answers[2].result)
    newest = str(newest_rows[0].get(entity.modified_column)) if newest_rows else None
    max_id = int(top_rows[0][entity.id_field]) if top_rows else None
    all_total = all_newest = None
    if flt:
        all_rows = entity.rows_of(answers[3].result)
        all_total = answers[3].total or 0
        all_newest = str(all_rows[0].get(entity.modified_column)) if all_rows else None
    return Probe(now, answers[1].total or 0, newest, max_id, all_total, all_newest)


def probe(client: Any, entity: ReplicaEntity, flt: Mapping[str, Any]) -> Probe:
    """Probe the portal in one request."""
    return read_probe(entity, flt, run_reads(client, probe_calls(entity, flt)))


def ids_of(entity: ReplicaEntity, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The ids of rows, as int64."""
    return np.array([int(r[entity.id_field]) for r in rows], dtype=np.int64)


def lookup(client: Any, entity: ReplicaEntity, ids: np.ndarray, select: Sequence[str] | None,
           filters: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows of `ids` under each of `filters` (e.g. the replica's filter and none): one
    list of rows per filter. 50 ids a command, every filter's command of a chunk in one batch."""
    key = f"@{entity.cursor_field}"
    calls: list[tuple[str, dict[str, Any]]] = []
    for start in range(0, len(ids), _PER_LOOKUP):
        chunk = [int(i) for i in ids[start:start + _PER_LOOKUP]]
        for flt in filters:
            params = entity.list_params({**flt, key: chunk}, order={entity.cursor_field: "ASC"}, start=-1)
            if select:
                params["select"] = list(select)
            calls.append((entity.method, params))
    answers = run_reads(client, calls)
    found: list[list[dict[str, Any]]] = [[] for _ in filters]
    for i, answer in enumerate(answers):
        found[i % len(filters)].extend(entity.rows_of(answer.result))
    return found
