"""The Dagster layer: resource, op and asset factories, Parquet IO, checks, schedules.

Imports `b24_dagster.client` and `b24_dagster.frames`; nothing below imports this package.
"""

from __future__ import annotations

from b24_dagster.integration._batch_assets import (
    FAILURE_RATE_CHECK as FAILURE_RATE_CHECK,
)
from b24_dagster.integration._batch_assets import (
    UNKNOWN_CHECK as UNKNOWN_CHECK,
)
from b24_dagster.integration._batch_assets import (
    Bitrix24BatchConfig as Bitrix24BatchConfig,
)
from b24_dagster.integration._batch_assets import (
    build_bitrix24_batch_asset as build_bitrix24_batch_asset,
)
from b24_dagster.integration._batch_assets import (
    build_bitrix24_batch_op as build_bitrix24_batch_op,
)
from b24_dagster.integration._batch_config import SKIPPED_CHECK as SKIPPED_CHECK
from b24_dagster.integration._batch_decorator import (
    Bitrix24BatchInvocation as Bitrix24BatchInvocation,
)
from b24_dagster.integration._batch_decorator import (
    bitrix24_batch_assets as bitrix24_batch_assets,
)
from b24_dagster.integration._batch_run import RESULT_SCHEMA as RESULT_SCHEMA
from b24_dagster.integration._export_assets import IDS_UNIQUE_CHECK as IDS_UNIQUE_CHECK
from b24_dagster.integration._export_assets import PORTAL_TAG as PORTAL_TAG
from b24_dagster.integration._export_assets import ROWS_PRESENT_CHECK as ROWS_PRESENT_CHECK
from b24_dagster.integration._export_assets import (
    build_bitrix24_export_asset as build_bitrix24_export_asset,
)
from b24_dagster.integration._export_assets import (
    build_bitrix24_export_schedule as build_bitrix24_export_schedule,
)
from b24_dagster.integration._export_decorator import (
    Bitrix24ExportInvocation as Bitrix24ExportInvocation,
)
from b24_dagster.integration._export_decorator import (
    bitrix24_export_assets as bitrix24_export_assets,
)
from b24_dagster.integration._parquet import ParquetStreamWriter as ParquetStreamWriter
from b24_dagster.integration._parquet import read_parquet as read_parquet
from b24_dagster.integration._replica_assets import Bitrix24ReplicaConfig as Bitrix24ReplicaConfig
from b24_dagster.integration._replica_assets import (
    build_bitrix24_replica_asset as build_bitrix24_replica_asset,
)
from b24_dagster.integration._replica_reference import (
    build_bitrix24_reference_asset as build_bitrix24_reference_asset,
)
from b24_dagster.integration._replica_sensor import (
    build_bitrix24_replica_sensor as build_bitrix24_replica_sensor,
)
from b24_dagster.integration._resource import Bitrix24Plan as Bitrix24Plan
from b24_dagster.integration._resource import Bitrix24Resource as Bitrix24Resource
from b24_dagster.integration._resource import portal_env_var as portal_env_var
from b24_dagster.integration._storage import BASE_ENV as BASE_ENV
from b24_dagster.integration._storage import Bitrix24Storage as Bitrix24Storage
from b24_dagster.integration._translator import Bitrix24AssetProps as Bitrix24AssetProps
from b24_dagster.integration._translator import Bitrix24Translator as Bitrix24Translator

__all__ = [
    "BASE_ENV",
    "FAILURE_RATE_CHECK",
    "IDS_UNIQUE_CHECK",
    "PORTAL_TAG",
    "RESULT_SCHEMA",
    "ROWS_PRESENT_CHECK",
    "SKIPPED_CHECK",
    "UNKNOWN_CHECK",
    "Bitrix24AssetProps",
    "Bitrix24BatchConfig",
    "Bitrix24BatchInvocation",
    "Bitrix24ExportInvocation",
    "Bitrix24Plan",
    "Bitrix24ReplicaConfig",
    "Bitrix24Resource",
    "Bitrix24Storage",
    "Bitrix24Translator",
    "ParquetStreamWriter",
    "bitrix24_batch_assets",
    "bitrix24_export_assets",
    "build_bitrix24_batch_asset",
    "build_bitrix24_batch_op",
    "build_bitrix24_export_asset",
    "build_bitrix24_export_schedule",
    "build_bitrix24_reference_asset",
    "build_bitrix24_replica_asset",
    "build_bitrix24_replica_sensor",
    "portal_env_var",
    "read_parquet",
]
