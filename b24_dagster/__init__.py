"""b24-dagster: move data in and out of Bitrix24 through the REST batch facility.

The client part (`Bitrix24Client` and its results and errors) imports neither dagster nor
pandas (nor pyarrow, which results load when first converted to Arrow); the Dagster names
are loaded on first attribute access.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The version is set first: the client reads it for its User-Agent.
from b24_dagster.client import (  # noqa: E402
    Bitrix24Client,
    CallResult,
    ClientStats,
    RetryPolicy,
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

__all__ = [
    "AccessDeniedError",
    "ApiError",
    "AuthError",
    "BatchError",
    "Bitrix24Client",
    "Bitrix24Error",
    "CallResult",
    "ClientStats",
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
    "ServerError",
    "TransportError",
    "ValidationError",
    "__version__",
]
