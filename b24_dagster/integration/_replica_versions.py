"""Previous versions of a replica's files, readable for a while after each run.

Before a run publishes a new current file, the file it replaces is kept under the base's
`_versions/` folder (outside the tables' own folders, so that a reader globbing
`<base>/bitrix24/**/*.parquet` never mixes versions in):

    <base>/_versions/<asset key parts>/<partition parts>/<version>.parquet

`<version>` is the one the replaced file names in its state: the portal's time of the run
that wrote it and a random suffix (`20250102T030405Z-9f3a1c2e`). Locally the version is a
hard link to the replaced file (no copy: the current file is replaced by rename, so the old
inode lives on under the version's name); elsewhere a copy made before the replacement (on
object storage a server-side copy). Versions older than the replica's `keep_versions_hours`
are removed by the run that writes the next version.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from upath import UPath

from b24_dagster.integration._storage import partition_parts

__all__ = ["keep_version", "list_versions", "new_version_id", "prune_versions", "versions_folder"]

_FORMAT = "%Y%m%dT%H%M%SZ"


def versions_folder(base: UPath, key_path: list[str], partition: str | Mapping[str, str] | None) -> UPath:
    """The folder of a replica file's previous versions."""
    return base.joinpath("_versions", *key_path, *partition_parts(partition))


def new_version_id(now: datetime) -> str:
    """A version id: the run's time (UTC, to the second) and a random suffix."""
    return f"{now.astimezone(UTC).strftime(_FORMAT)}-{secrets.token_hex(4)}"


def _time_of(version: str) -> datetime | None:
    try:
        return datetime.strptime(version.split("-", 1)[0], _FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def keep_version(current: UPath, folder: UPath, version: str) -> UPath | None:
    """Keep `current` as `<folder>/<version>.parquet` (a hard link locally, else a copy);
    nothing when it is already kept or `current` does not exist."""
    target = folder / f"{version}.parquet"
    if not current.exists() or target.exists():
        return None
    with contextlib.suppress(Exception):   # object stores have no directories
        folder.mkdir(parents=True, exist_ok=True)
    if current.protocol in ("", "file", "local"):
        try:
            os.link(current.path, target.path)
        except OSError:   # another device or a file system without links: copy, then rename
            tmp = folder / f".{version}.{secrets.token_hex(4)}.tmp"
            shutil.copyfile(current.path, tmp.path)
            os.replace(tmp.path, target.path)
        return target
    current.fs.copy(current.path, target.path)
    return target


def list_versions(folder: UPath) -> list[tuple[str, UPath]]:
    """(version, path) of every kept version, oldest first."""
    try:
        found = [p for p in folder.iterdir() if p.name.endswith(".parquet") and not p.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(((p.name[: -len(".parquet")], p) for p in found), key=lambda item: item[0])


def prune_versions(folder: UPath, keep_hours: float, now: datetime) -> list[str]:
    """Remove the versions older than `keep_hours` before `now`; returns their ids."""
    limit = now - timedelta(hours=keep_hours)
    removed = []
    for version, path in list_versions(folder):
        made = _time_of(version)
        if made is not None and made < limit:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(version)
    return removed


def version_metadata(folder: UPath) -> dict[str, Any]:
    """What the materialization says of the kept versions."""
    versions = list_versions(folder)
    return {"previous_versions": len(versions), "oldest_version": versions[0][0] if versions else ""}
