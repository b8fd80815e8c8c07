"""`Bitrix24Storage`: the one base location of every Parquet file the integration writes.

Local files by default, any fsspec URL (`s3://bucket/prefix`, `gs://…`, `az://…`) when the
user installs its driver (`pip install s3fs`): paths are `UPath`s, so nothing else changes.
The base is, in order: the resource's `base_path`, the environment variable
`B24_DAGSTER_BASE` (read when the run starts), else `<Dagster instance storage>/bitrix24`
(`$DAGSTER_HOME/storage/bitrix24`). A relative path is refused: resolved against the directory
each process happens to start in, a run from elsewhere would find neither the results nor the
sync state. The demo prints the base and the dbt project reads the same variable.

The write steps' locks live under the base too (`<base>/.locks/`, see `_key_space`).

Layout under the base: one file per asset and partition,

    <base>/<asset key parts joined by />.parquet                 unpartitioned
    <base>/<asset key parts>/<partition>.parquet                 one partition dimension
    <base>/<asset key parts>/date=<d>/portal=<p>.parquet         multi-partitions (dim=value,
                                                                 dimensions in name order)

so a reader globs `<base>/bitrix24/deals/**/*.parquet` (Hive-style for multi-partitions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr
from upath import UPath

__all__ = ["BASE_ENV", "INSTANCE_FOLDER", "BaseLocationError", "Bitrix24Storage", "default_base_path",
           "partition_parts"]

BASE_ENV = "B24_DAGSTER_BASE"
"""The environment variable of the base location (a path or an fsspec URL)."""

INSTANCE_FOLDER = "bitrix24"
"""The folder of the default base under the Dagster instance's storage directory."""


_TEMPORARY_HOME = ".tmp_dagster_home_"  # dagster._cli.utils.TMP_DAGSTER_HOME_PREFIX


class BaseLocationError(ValueError):
    """The base location is relative, or unset where no Dagster instance can hold it."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def default_base_path() -> str | None:
    """`$B24_DAGSTER_BASE` when set, else None (the instance's storage decides)."""
    return os.environ.get(BASE_ENV) or None


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part) or "_"


def partition_parts(partition_key: str | Mapping[str, str] | None) -> list[str]:
    """Path segments for a partition: `["2024-01-02"]`, or `["date=2024-01-02", "portal=main"]`.

    A `dagster.MultiPartitionKey` (or a plain mapping of dimension to key) gives one
    `dimension=key` segment per dimension, in dimension-name order.
    """
    if partition_key is None:
        return []
    by_dim = getattr(partition_key, "keys_by_dimension", None)
    if by_dim is None and isinstance(partition_key, Mapping):
        by_dim = partition_key
    if by_dim:
        return [f"{_safe(dim)}={_safe(str(by_dim[dim]))}" for dim in sorted(by_dim)]
    return [_safe(str(partition_key))]


class Bitrix24Storage(dg.ConfigurableIOManager):
    """Where the Parquet files go, and the loader of the assets that write them.

    The factories' assets write their files themselves; they name this resource as their IO
    manager so that a downstream `dg.AssetIn` of one of them receives its file as a
    DataFrame (or, with `metadata={"format": "arrow" | "dataset" | "path"}` or the matching
    annotation, an Arrow table, a lazy `pyarrow.dataset.Dataset` or the `UPath`); see
    `b24_dagster/integration/_inputs.py`. It stores no other asset's value.

    Example:
        ```python
        Bitrix24Storage()                                   # $B24_DAGSTER_BASE, else $DAGSTER_HOME/storage/bitrix24
        Bitrix24Storage(base_path="s3://crm-lake/bitrix24") # needs `pip install s3fs`
        Bitrix24Storage(base_path=dg.EnvVar("B24_DAGSTER_BASE"))
        ```
    """

    base_path: str | None = Field(
        default=None,
        description=(
            "Base location of the Parquet files: a local path or an fsspec URL (s3://..., "
            "gs://...); an absolute path (or ~/...), never a relative one. Unset: $B24_DAGSTER_BASE, else "
            "the Dagster instance's storage directory (/storage/bitrix24 under $DAGSTER_HOME)."
        ),
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Options for the fsspec filesystem (e.g. endpoint_url, anon), if any.",
    )
    lease_seconds: float = Field(
        default=600.0,
        description=(
            "Object storage: how long the lease of a write step lasts without a refresh. Its "
            "holder refreshes it every lease_seconds/6 and stops sending before it could end; "
            "a holder lost on another host blocks the next execution this long at most."
        ),
    )

    _instance_base: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember the instance's storage directory: the base when none is given."""
        instance = context.instance
        if instance is None or instance.is_ephemeral:
            return
        # `dagster dev` / `dg dev` / `dg launch` without DAGSTER_HOME run on a temporary home that
        # is removed when they exit: the files, the sync state among them, would go with it.
        root = os.path.basename(os.path.normpath(getattr(instance, "root_directory", "") or ""))
        if not root.startswith(_TEMPORARY_HOME):
            self._instance_base = os.path.join(instance.storage_directory(), INSTANCE_FOLDER)

    def base(self) -> UPath:
        """The base location as a `UPath`.

        Raises:
            BaseLocationError: a relative path, or none given outside a persistent instance.
        """
        raw = self.base_path or default_base_path() or self._instance_base
        if raw is None:
            raise BaseLocationError(
                "Bitrix24Storage has no base location: set base_path or $B24_DAGSTER_BASE (an absolute path or a "
                "URL). Without them the base is the Dagster instance's storage ($DAGSTER_HOME/storage/bitrix24), "
                "and this run's instance is ephemeral or temporary (DAGSTER_HOME unset: removed when the command "
                "exits): its files, the sync state among them, would not outlive it.")
        if "://" in raw:
            return UPath(raw, **self.storage_options)
        expanded = os.path.expanduser(raw)
        if not os.path.isabs(expanded):
            raise BaseLocationError(
                f"Bitrix24Storage's base location {raw!r} is relative: the results and the sync state would land "
                "wherever each process starts, and a run from another directory would find no state. Give an "
                "absolute path (or ~/...) or a URL, in base_path or $B24_DAGSTER_BASE.")
        return UPath(os.path.normpath(expanded))

    def path_for(
        self,
        asset_key: dg.AssetKey | str,
        partition_key: str | Mapping[str, str] | None = None,
        *,
        suffix: str = ".parquet",
    ) -> UPath:
        """The file of an asset (and partition) under the base."""
        key = asset_key if isinstance(asset_key, dg.AssetKey) else dg.AssetKey([asset_key])
        parts = [_safe(p) for p in key.path]
        sub = partition_parts(partition_key)
        if sub:
            *dirs, last = sub
            return self.base().joinpath(*parts, *dirs, last + suffix)
        *dirs, last = parts
        return self.base().joinpath(*dirs, last + suffix)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        """Nothing to store: the Bitrix24 assets write their files and return no value."""
        if obj is not None:
            raise TypeError(
                f"{context.asset_key.to_user_string() if context.has_asset_key else context.name}: "
                f"Bitrix24Storage loads the files of the Bitrix24 assets and stores no other "
                f"value (got {type(obj).__name__}); give this asset another io_manager_key"
            )

    def load_input(self, context: dg.InputContext) -> Any:
        """The upstream Bitrix24 asset's file as a DataFrame, Arrow table, dataset or path."""
        from b24_dagster.integration._inputs import load_asset_input

        return load_asset_input(self, context)
