"""Definition-time metadata of the factories' assets: table name, code references, columns.

What the best integrations show before a first run (dagster-dbt: `dagster/table_name`, the
column schema with descriptions, a link to the code that declared the asset), for ours:
the table name of a results or export file, the caller of the factory as the code reference
(`dg.link_code_references_to_git` turns it into a link to the repository), and an export's
columns with the portal's titles.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

__all__ = ["TABLE_NAME", "caller_code_references", "column_descriptions", "definition_metadata", "table_name"]

TABLE_NAME = "dagster/table_name"
CODE_REFERENCES = "dagster/code_references"
_OWN = (Path(__file__).parent, Path(__file__).parent.parent / "components")


def table_name(key: dg.AssetKey) -> str:
    """The file's table name: the asset key's parts joined by dots (`bitrix24.lead_import`),
    the name a dbt source or DuckDB view of the file takes."""
    return ".".join(key.path)


def caller_code_references() -> dg.CodeReferencesMetadataValue | None:
    """A reference to the line that called the factory: the first frame outside this package's
    integration code and outside dagster (None when there is none, or when the Component
    called it: Dagster points a Component's assets at their `defs.yaml` itself)."""
    for frame in inspect.stack(context=0)[1:]:
        path = Path(frame.filename)
        if path.is_relative_to(_OWN[1]):
            return None
        if path.is_relative_to(_OWN[0]) or "site-packages" in path.parts:
            continue
        if not path.is_file():
            continue
        from dagster._utils.warnings import disable_dagster_warnings

        with disable_dagster_warnings():  # beta classes, used as dagster-dbt uses them
            reference = dg.LocalFileCodeReference(file_path=str(path.resolve()), line_number=frame.lineno)
            return dg.CodeReferencesMetadataValue(code_references=[reference])
    return None


def definition_metadata(spec: dg.AssetSpec, **extra: Any) -> dict[str, Any]:
    """The spec's metadata plus the table name and the caller's code reference (the
    translator's values win), and `extra`."""
    metadata: dict[str, Any] = {TABLE_NAME: table_name(spec.key)}
    references = caller_code_references()
    if references is not None:
        metadata[CODE_REFERENCES] = references
    metadata.update({k: v for k, v in extra.items() if v is not None})
    metadata.update(spec.metadata)
    return metadata


def column_descriptions(descriptions: Mapping[str, Any], columns: Sequence[str]) -> dict[str, str]:
    """Column -> description from a `*.fields` answer: the field's title (user fields: their
    list or form label), its Bitrix24 type, and whether it is required or read-only."""
    from b24_dagster.integration._typing import normalize_name

    by_norm = {normalize_name(str(k)): v for k, v in descriptions.items() if isinstance(v, Mapping)}
    out: dict[str, str] = {}
    for column in columns:
        field = descriptions.get(column)
        if not isinstance(field, Mapping):
            field = by_norm.get(normalize_name(column))
        if not isinstance(field, Mapping):
            continue
        title = _label(field.get("title")) or _label(field.get("listLabel")) or _label(field.get("formLabel"))
        notes = [str(field["type"])] if field.get("type") else []
        if field.get("isRequired"):
            notes.append("required")
        if field.get("isReadOnly"):
            notes.append("read-only")
        if field.get("isMultiple"):
            notes.append("multiple")
        text = " ".join(p for p in (title or column, f"({', '.join(notes)})" if notes else "") if p)
        out[column] = text
    return out


def _label(value: Any) -> str | None:
    if isinstance(value, Mapping):  # user fields: a label per language
        value = value.get("en") or next(iter(value.values()), None)
    return str(value) if value else None
