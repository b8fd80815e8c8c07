"""The sync's first stage: the rows' fields checked against the portal's own field model.

Before anything is written, a sync reads the entity's ``*.fields`` (one request, which also
proves the webhook works when nothing else is sent) and, when the rows name statuses or users,
their directories and the users (one more request). Then:

* the mapping: a field the portal does not know is refused with the nearest names (the portal
  would drop it in silence), a read-only field refused, an immutable one refused when rows may
  be updated, a required one refused when rows may be created and none carries it; any of
  these fails the run before a write, naming every problem;
* each row: values checked and converted by type (``_fieldvalues``); a row the portal would
  refuse or misread becomes ``invalid`` with its reason, and is not sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from b24_dagster.client._entities import CrmEntity
from b24_dagster.client._fieldmodel import EntityFields
from b24_dagster.client._fieldvalues import References, check_row, reference_calls
from b24_dagster.integration._errors import scrub, to_failure

__all__ = ["FieldCheck", "check_fields", "load_fields", "mapping_digest"]


@dataclass
class FieldCheck:
    """What the field stage found: the model, the fields the rows write, and each row's refusal."""

    model: EntityFields
    answer: Mapping[str, Any]
    targets: list[str]
    invalid: dict[int, str] = field(default_factory=dict)
    requests: int = 0


def load_fields(client: Any, entity: CrmEntity, label: str) -> tuple[EntityFields, Mapping[str, Any]]:
    """The entity's field model, read from the portal (``crm.<entity>.fields`` / ``crm.item.fields``)."""
    try:
        answer = client.call(entity.method("fields"), entity.params).result
    except Exception as exc:  # an auth error, a missing scope, the portal down: nothing was sent
        raise to_failure(exc, f"{label}: {entity.method('fields')} failed, so the rows cannot be checked "
                              "against the portal's fields (nothing was sent)") from exc  # fmt: skip
    raw = answer.get("fields", answer) if isinstance(answer, Mapping) else {}
    return EntityFields(raw, entity.prefix), raw


def check_fields(client: Any, entity: CrmEntity, calls: Sequence[tuple[str, dict[str, Any]]],
                 mapped: Sequence[str], *, label: str, creates: bool, updates: bool,
                 given: Sequence[str]) -> FieldCheck:  # fmt: skip
    """Check the mapping (a Failure naming every problem) and each row (its `invalid` reason).

    Args:
        calls: Each row's create command; their ``fields`` are converted in place where the
            portal means a value otherwise (an enumeration item's text becomes its id).
        mapped: The fields the mapping writes (columns mapped to fields); a row may carry more
            (a row function).
        given: Fields the sync sets itself (the key, the originator), and constant params.
    """
    model, answer = load_fields(client, entity, label)
    targets = list(dict.fromkeys([*mapped, *(n for _, p in calls for n in (p.get("fields") or {}))]))
    targets = [t for t in targets if t not in given]
    problems = model.check_mapping(targets, creates=creates, updates=updates, given=given)
    if problems:
        raise dg.Failure(f"{label}: the mapping does not fit the portal's fields of {entity.label} "
                         f"({entity.method('fields')}); nothing was sent:\n- " + "\n- ".join(problems),
                         allow_retries=False)  # fmt: skip
    found = FieldCheck(model=model, answer=answer, targets=targets, requests=1)
    rows = [p.get("fields") or {} for _, p in calls]
    refs = _references(client, model, rows, label, found)
    for i, row in enumerate(rows):
        reason = check_row(row, model, refs)
        if reason is None and creates:
            reason = model.required_missing_in(row, targets)
        if reason is not None:
            found.invalid[i] = reason
    return found


def _references(client: Any, model: EntityFields, rows: list[dict[str, Any]], label: str,
                found: FieldCheck) -> References:  # fmt: skip
    calls = reference_calls(model, rows)
    refs = References()
    if not calls:
        return refs
    found.requests += 1
    try:
        answer = client.batch(calls, halt_on_error=False, api_version=2)
    except Exception as exc:
        raise to_failure(exc, f"{label}: reading the statuses and users the rows name failed (nothing was sent)") from exc
    for (method, params), result in zip(calls, answer.commands, strict=True):
        if result.status != "ok":
            raise dg.Failure(f"{label}: {method} failed ({result.error_code}: {scrub(str(result.error_description))}); "
                             "the rows' statuses and users cannot be checked (nothing was sent)")  # fmt: skip
        data = result.data if isinstance(result.data, list) else []
        if method == "crm.status.list":
            refs.statuses[params["filter"]["ENTITY_ID"]] = {str(s.get("STATUS_ID")) for s in data}
        else:
            refs.users = (refs.users or set()) | {int(u["ID"]) for u in data if str(u.get("ID", "")).isdigit()}
    return refs


def mapping_digest(entity: CrmEntity, targets: Sequence[str], key_field: str | None, multi_value: str) -> str:
    """A digest of what a state's rows mean: the entity, the fields written, the key, the mode.
    A state written under another mapping is not trusted (its hashes mean other fields)."""
    text = json.dumps([entity.label, sorted(targets), key_field, multi_value])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
