"""What the demo prints after a run: the files it wrote and the outcome of its batch writes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

RESULT_COLUMNS = {"command_index", "status", "error_code"}
STANDARD_COLUMNS = {
    "command_index", "command_key", "method", "chunk_index", "status", "result",
    "error_code", "error_description", "total", "next", "action", "portal_id",
}  # fmt: skip
ACTION_WORDS = {"create": "created", "update": "updated", "unchanged": "unchanged", "delete": "deleted"}
FIRST_FAILURES = 3


def parquet_files(base: Path) -> list[Path]:
    """Every Parquet file under `base`, sorted."""
    return sorted(base.rglob("*.parquet")) if base.exists() else []


def _result_files(base: Path) -> dict[str, Path]:
    """Parquet files under `base` that hold batch results (one row per command), by name."""
    found: dict[str, Path] = {}
    for path in parquet_files(base):
        if any(part.endswith((".changelog", ".runs")) for part in path.parts):
            continue
        if set(pq.read_schema(path).names) >= RESULT_COLUMNS:
            found[str(path.relative_to(base).with_suffix(""))] = path
    return found


def status_counts(path: Path) -> tuple[Counter[str], Counter[str], list[str]]:
    """Counts of `status` and of error codes in one results file, and its first failures.

    Legacy `crm.*` methods refuse a row with an empty error code and a sentence, so a failure
    is shown with its key (the source key column when the file has one) and that sentence.
    """
    frame = pq.read_table(path).to_pandas()
    statuses = Counter(str(s) for s in frame["status"])
    failed = frame[frame["status"] != "ok"]
    codes = Counter(str(c) if c else "(no code)" for c in failed["error_code"])
    extra = [c for c in frame.columns if c not in STANDARD_COLUMNS]
    key = extra[0] if extra else "command_index"
    first = [
        f"{row[key]}: {row['error_description'] or row['status']}"
        for _, row in failed.head(FIRST_FAILURES).iterrows()
    ]
    return statuses, codes, first


def sync_actions(path: Path) -> dict[str, int]:
    """Rows that ended ok by sync action (create, update, unchanged, ...); {} for a one-shot send."""
    if "action" not in pq.read_schema(path).names:
        return {}
    table = pq.read_table(path, columns=["action", "status"]).to_pydict()
    counts = Counter(a for a, s in zip(table["action"], table["status"], strict=True) if s == "ok")
    order = [*ACTION_WORDS, *sorted(set(counts) - set(ACTION_WORDS))]
    return {a: counts[a] for a in order if counts[a] or a in ("create", "update", "unchanged")}


def import_summary(base: Path) -> str:
    """A few lines per batch-results file: ok/error/not_run/unknown, codes, first failures."""
    files = _result_files(base)
    if not files:
        return "No batch results found."
    lines = ["Batch writes (one Parquet row per command):"]
    for name, path in sorted(files.items()):
        statuses, codes, first = status_counts(path)
        total = sum(statuses.values())
        parts = ", ".join(f"{k} {statuses[k]}" for k in ("ok", "error", "not_run", "unknown"))
        lines.append(f"  {name}: {total} commands: {parts}")
        actions = sync_actions(path)
        if actions:
            lines.append("    sync: " + ", ".join(f"{ACTION_WORDS.get(a, a)} {n}" for a, n in actions.items()))
        changes = changelog_counts(path.with_name(path.name.removesuffix(".parquet") + ".changelog"))
        if changes:
            lines.append("    changelog: " + ", ".join(f"{n} fields {a}" for a, n in changes.items())
                         + f" ({path.name.removesuffix('.parquet')}.changelog/)")
        if codes:
            lines.append(
                "    error codes: " + ", ".join(f"{c} x{n}" for c, n in codes.most_common())
            )
            lines.extend(f"    {line}" for line in first)
    return "\n".join(lines)


def changelog_counts(folder: Path) -> dict[str, int]:
    """Fields a sync wrote, by action (create, update, drift, delete), over all its runs."""
    files = sorted(folder.rglob("*.parquet")) if folder.is_dir() else []
    counts: Counter[str] = Counter()
    for file in files:
        table = pq.read_table(file, columns=["action", "status"]).to_pydict()
        counts.update(a for a, s in zip(table["action"], table["status"], strict=True) if s == "ok")
    return dict(counts.most_common())
