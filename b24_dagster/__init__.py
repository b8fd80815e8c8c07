"""b24-dagster: move data in and out of Bitrix24 through the REST batch facility.

The client part (`Bitrix24Client` and its results and errors) imports neither dagster nor
pandas (nor pyarrow, which results load when first converted to Arrow); the Dagster names
are loaded on first attribute access.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The version is set first: the client reads it for its User-Agent.
from b24_dagster.client import (  # noqa: E402
    BatchResult,
    Bitrix24Client,
    CallResult,
    ChunkedBatchRun,
    ClientStats,
    CommandResult,
    RetryPolicy,
    RunStats,
    ref,
    ref_array,
)
from b24_dagster.errors import (  # noqa: E402
    AccessDeniedError,
    ApiError,
    AuthError,
    BatchError,
    Bitrix24Error,
    CommandValidationError,
    ConfigurationError,
    ConnectError,
    MethodNotFoundError,
    NotFoundError,
    OperationTimeLimitError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TransportError,
    ValidationError,
)

# Names whose modules import pandas or dagster: loaded on first attribute access, so that
# `from b24_dagster import Bitrix24Client` stays cheap (tests/test_import_cost.py).
_LAZY = {
    "commands_from_frame": "b24_dagster.frames",
    "CommandSet": "b24_dagster.frames",
    "results_to_frame": "b24_dagster.frames",
    "failed_rows": "b24_dagster.frames",
    "Bitrix24Resource": "b24_dagster.integration",
    "Bitrix24Storage": "b24_dagster.integration",
    "Bitrix24Translator": "b24_dagster.integration",
    "build_bitrix24_batch_asset": "b24_dagster.integration",
    "build_bitrix24_batch_op": "b24_dagster.integration",
    "build_bitrix24_export_asset": "b24_dagster.integration",
    "build_bitrix24_export_schedule": "b24_dagster.integration",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'b24_dagster' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AccessDeniedError",
    "ApiError",
    "AuthError",
    "BatchError",
    "BatchResult",
    "Bitrix24Client",
    "Bitrix24Error",
    "Bitrix24Resource",
    "Bitrix24Storage",
    "Bitrix24Translator",
    "CallResult",
    "ChunkedBatchRun",
    "ClientStats",
    "CommandResult",
    "CommandSet",
    "CommandValidationError",
    "ConfigurationError",
    "ConnectError",
    "MethodNotFoundError",
    "NotFoundError",
    "OperationTimeLimitError",
    "OutcomeUnknownError",
    "ProtocolError",
    "RateLimitError",
    "RetryPolicy",
    "RunStats",
    "ServerError",
    "TransportError",
    "ValidationError",
    "__version__",
    "build_bitrix24_batch_asset",
    "build_bitrix24_batch_op",
    "build_bitrix24_export_asset",
    "build_bitrix24_export_schedule",
    "commands_from_frame",
    "failed_rows",
    "ref",
    "ref_array",
    "results_to_frame",
]
