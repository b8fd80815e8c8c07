"""Client errors to `dagster.Failure`, with metadata and never the webhook code."""

from __future__ import annotations

import re
from typing import Any

import dagster as dg

__all__ = ["scrub", "to_failure"]

# Belt and braces: the client redacts its own messages; this also covers errors raised by
# libraries underneath it (a URL in a urllib3 message) before they reach the event log.
_WEBHOOK_PATH = re.compile(r"(/rest/(?:api/)?\d+/)([^/\s'\"?#]+)")


def scrub(text: str) -> str:
    """`text` with any webhook code (registered, or in a `/rest/<user>/<code>/` path) masked."""
    from b24_dagster._redaction import scrub as scrub_registered

    return _WEBHOOK_PATH.sub(r"\1***", scrub_registered(text))


def _attr(exc: BaseException, *names: str) -> Any:
    for name in names:
        value = getattr(exc, name, None)
        if value is not None:
            return value
    return None


def to_failure(exc: BaseException, what: str, **extra: Any) -> dg.Failure:
    """A `dagster.Failure` that says `what` failed and why, with the error's fields as metadata.

    Args:
        exc: the error (a client error carries `error_code`/`status`; any other is accepted).
        what: the first part of the description, e.g. "The Bitrix24 batch failed".
        **extra: more metadata (counts done so far, the method, ...).
    """
    message = scrub(str(exc)) or type(exc).__name__
    metadata: dict[str, Any] = {"error_type": type(exc).__name__, "error": message}
    code = _attr(exc, "error_code", "code", "error")
    if isinstance(code, str | int):
        metadata["error_code"] = str(code)
    status = _attr(exc, "status", "http_status", "status_code")
    if isinstance(status, int):
        metadata["http_status"] = status
    metadata.update({k: v for k, v in extra.items() if v is not None})
    # An auth or configuration error will fail the same way again: no point in retrying.
    from b24_dagster import errors

    final = (errors.AuthError, errors.AccessDeniedError, errors.ConfigurationError,
             errors.CommandValidationError, errors.MethodNotFoundError, ValueError)  # fmt: skip
    retriable = not isinstance(exc, final)
    return dg.Failure(
        description=f"{what}: {message}", metadata=metadata, allow_retries=retriable
    )
