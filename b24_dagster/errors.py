"""The exceptions of b24-dagster, all in one module.

Every exception derives from :class:`Bitrix24Error`, so a caller can catch at any level of
detail::

    Bitrix24Error
    ├── ConfigurationError(ValueError)      bad webhook URL, http to a non-loopback host, bad settings
    ├── CommandValidationError(ValueError)  commands refused before anything is sent
    ├── TransportError                      no usable HTTP answer
    │   ├── ConnectError                    the request was not sent: safe to retry
    │   ├── OutcomeUnknownError             it may have reached the portal, no usable answer came back
    │   └── ProtocolError                   an answer that is not a Bitrix24 JSON envelope
    ├── ApiError                            the portal answered with an error body
    │   ├── AuthError                       NO_AUTH_FOUND, expired_token, invalid_token, WRONG_CLIENT, ...
    │   ├── AccessDeniedError               ACCESS_DENIED, insufficient_scope, INVALID_CREDENTIALS, ...
    │   ├── MethodNotFoundError             ERROR_METHOD_NOT_FOUND, v3 METHODNOTFOUND
    │   ├── RateLimitError                  503 QUERY_LIMIT_EXCEEDED, OVERLOAD_LIMIT
    │   ├── OperationTimeLimitError         429 OPERATION_TIME_LIMIT (``reset_at`` when known)
    │   ├── ServerError                     5xx INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER, ...
    │   ├── NotFoundError                   NOT_FOUND, ERROR_ENTITY_NOT_FOUND, v3 ENTITYNOTFOUND
    │   └── ValidationError                 INVALID_ARG_VALUE, v3 validation errors, empty code + 400
    └── BatchError                          a batch failed as a whole (halt, v3 all-or-nothing, length)

No exception ever carries the webhook code: messages are built from redacted URLs only, and
every message goes through :func:`b24_dagster._redaction.scrub` as a last line of defence
(the portal's own error text could echo a request path).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from b24_dagster._redaction import scrub

__all__ = [
    "AccessDeniedError",
    "ApiError",
    "AuthError",
    "BatchError",
    "Bitrix24Error",
    "CommandValidationError",
    "ConfigurationError",
    "ConnectError",
    "MethodNotFoundError",
    "NotFoundError",
    "OperationTimeLimitError",
    "OutcomeUnknownError",
    "ProtocolError",
    "RateLimitError",
    "ServerError",
    "TransportError",
    "ValidationError",
    "error_from_response",
]


class Bitrix24Error(Exception):
    """Base of every error raised by b24-dagster."""

    def __init__(self, message: str = "") -> None:
        super().__init__(scrub(message))

    def __str__(self) -> str:
        return scrub(super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(Bitrix24Error, ValueError):
    """A bad webhook URL, plain http to a non-loopback host, or a bad setting."""


class CommandValidationError(Bitrix24Error, ValueError):
    """Commands refused before anything was sent.

    Attributes:
        command_key: The key of the offending command, when known.
        index: Its position in the input, when known.
    """

    def __init__(
        self, message: str, *, command_key: str | None = None, index: int | None = None
    ) -> None:
        super().__init__(message)
        self.command_key = command_key
        self.index = index


class TransportError(Bitrix24Error):
    """No usable HTTP answer came back.

    Attributes:
        method: The REST method of the request (``"batch"`` for a batch).
        status: The HTTP status when an answer came, else None.
    """

    def __init__(self, message: str, *, method: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.method = method
        self.status = status


class ConnectError(TransportError):
    """The request was not sent (DNS, refused or timed-out connection, TLS handshake).

    Attributes:
        retryable: False when repeating cannot help (a certificate that fails verification).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        status: int | None = None,
        retryable: bool = True,
    ) -> None:
        super().__init__(message, method=method, status=status)
        self.retryable = retryable


class OutcomeUnknownError(TransportError):
    """A request that may have reached the portal got no usable answer.

    Raised for a write (never re-sent blindly) after a read timeout, a connection closed
    after sending, a 5xx or a malformed body; and for a read whose retries ran out.
    """


class ProtocolError(TransportError):
    """An answer that is not a Bitrix24 JSON envelope (HTML, malformed JSON, too large, a redirect)."""


class ApiError(Bitrix24Error):
    """The portal answered with an error body.

    Attributes:
        method: The REST method called (``"batch"`` for a batch).
        code: The portal's error code (``""`` when it gave none).
        description: The portal's error text.
        status: The HTTP status.
        api_version: 2 or 3.
        validation: The v3 ``validation`` list, when present.
    """

    def __init__(
        self,
        method: str,
        code: str,
        description: str = "",
        *,
        status: int = 0,
        api_version: int = 2,
        validation: list[Any] | None = None,
    ) -> None:
        self.method = method
        self.code = code
        self.description = scrub(description)
        self.status = status
        self.api_version = api_version
        self.validation = validation
        text = f"{method}: {code or '(no code)'} (HTTP {status})"
        if self.description:
            text += f": {self.description}"
        if validation:
            text += "; " + "; ".join(_validation_text(v) for v in validation[:5])
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_api_error,
            (type(self), self.method, self.code, self.description, self.status,
             self.api_version, self.validation, self.__dict__),
        )


def _rebuild_api_error(cls: type[ApiError], method: str, code: str, description: str,
                       status: int, api_version: int, validation: list[Any] | None,
                       state: dict[str, Any]) -> ApiError:
    err = cls(method, code, description, status=status, api_version=api_version,
              validation=validation)
    err.__dict__.update(state)
    return err


def _validation_text(item: Any) -> str:
    if isinstance(item, Mapping):
        field, message = item.get("field"), item.get("message", "")
        return f"{field}: {message}" if field else str(message)
    return str(item)


class AuthError(ApiError):
    """The webhook code or token was refused (NO_AUTH_FOUND, expired_token, ...)."""


class AccessDeniedError(ApiError):
    """The webhook lacks rights or scope (ACCESS_DENIED, insufficient_scope, ...)."""


class MethodNotFoundError(ApiError):
    """The method does not exist on this portal (or in this API version)."""


class RateLimitError(ApiError):
    """The portal refused the request before running it (503 QUERY_LIMIT_EXCEEDED)."""


class OperationTimeLimitError(ApiError):
    """The method used up its operating-time budget (429 OPERATION_TIME_LIMIT).

    Attributes:
        reset_at: Unix time at which the portal frees budget, when known.
    """

    reset_at: float | None = None


class ServerError(ApiError):
    """The portal failed (5xx INTERNAL_SERVER_ERROR, ERROR_UNEXPECTED_ANSWER, PORTAL_DELETED)."""


class NotFoundError(ApiError):
    """The entity does not exist (NOT_FOUND, ERROR_ENTITY_NOT_FOUND, v3 ENTITYNOTFOUND)."""


class ValidationError(ApiError):
    """The portal refused the parameters (INVALID_ARG_VALUE, v3 validation errors, ...)."""


class BatchError(Bitrix24Error):
    """A batch failed as a whole: halted, a failed v3 batch, too many commands.

    Attributes:
        method: Always ``"batch"`` unless a caller says otherwise.
        code: The error code that stopped the batch, when known.
        description: Its text.
        results: The per-command results known so far (the batch engine's own type).
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "batch",
        code: str | None = None,
        description: str | None = None,
        results: Any = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.code = code
        self.description = scrub(description) if description else description
        self.results = results


_V2_CODES: dict[str, type[ApiError]] = {}
for _cls, _codes in (
    (AuthError, ("NO_AUTH_FOUND", "EXPIRED_TOKEN", "INVALID_TOKEN", "WRONG_CLIENT",
                 "AUTHORIZATION_ERROR", "APPLICATION_NOT_FOUND", "ERROR_OAUTH",
                 "METHOD_CONFIRM_WAITING", "NOT_INSTALLED", "PAYMENT_REQUIRED",
                 "INVALID_CLIENT", "INVALID_GRANT")),
    (AccessDeniedError, ("ACCESS_DENIED", "INSUFFICIENT_SCOPE", "INVALID_CREDENTIALS",
                         "USER_ACCESS_ERROR", "ACCESS_ERROR", "METHOD_CONFIRM_DENIED",
                         "WRONG_AUTH_TYPE", "INVALID_SCOPE", "ALLOWED_ONLY_INTRANET_USER")),
    (MethodNotFoundError, ("ERROR_METHOD_NOT_FOUND", "METHOD_NOT_FOUND")),
    (RateLimitError, ("QUERY_LIMIT_EXCEEDED", "OVERLOAD_LIMIT")),
    (OperationTimeLimitError, ("OPERATION_TIME_LIMIT",)),
    (ServerError, ("INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "PORTAL_DELETED")),
    (NotFoundError, ("NOT_FOUND", "ERROR_ENTITY_NOT_FOUND", "ERROR_MANIFEST_IS_NOT_AVAILABLE")),
    (ValidationError, ("INVALID_ARG_VALUE", "ERROR_ARGUMENT", "WRONG_ARGUMENTS",
                       "ERROR_BATCH_LENGTH_EXCEEDED", "ERROR_BATCH_METHOD_NOT_ALLOWED")),
):
    for _code in _codes:
        _V2_CODES[_code] = _cls

# v3 codes look like BITRIX_REST_V3_EXCEPTION_<GROUP>_<NAME>EXCEPTION; match on the tail.
_V3_SUFFIXES: tuple[tuple[str, type[ApiError]], ...] = (
    ("ACCESSDENIEDEXCEPTION", AccessDeniedError),
    ("INSUFFICIENTSCOPEEXCEPTION", AccessDeniedError),
    ("METHODNOTFOUNDEXCEPTION", MethodNotFoundError),
    ("ENTITYNOTFOUNDEXCEPTION", NotFoundError),
    ("AUTHEXCEPTION", AuthError),
)
_V3_VALIDATION_MARKERS = ("VALIDATION", "INVALID", "UNKNOWN", "IDEMPOTENCYKEYREUSED")


def _class_for(code: str, status: int) -> type[ApiError]:
    upper = code.upper()
    cls = _V2_CODES.get(upper)
    if cls is not None:
        return cls
    if upper.startswith("BITRIX_REST_V3_"):
        for suffix, v3_cls in _V3_SUFFIXES:
            if upper.endswith(suffix):
                return v3_cls
        if any(marker in upper for marker in _V3_VALIDATION_MARKERS):
            return ValidationError
    if status == 401:
        return AuthError
    if status == 403:
        return AccessDeniedError
    if status == 404:
        return MethodNotFoundError if not upper else NotFoundError
    if status == 429:
        return OperationTimeLimitError
    if status == 503:
        return RateLimitError
    if status >= 500:
        return ServerError
    if status == 400 and upper in ("", "0"):
        return ValidationError
    return ApiError


def error_from_response(status: int, body: Any, *, method: str, api_version: int) -> ApiError:
    """Build the :class:`ApiError` subclass that an error answer stands for.

    Accepts the v2 body ``{"error": "CODE", "error_description": "..."}``, the v3 body
    ``{"error": {"code", "message", "validation"}}``, and anything else (the code is then
    empty and the class follows the HTTP status). A code of ``"0"`` counts as no code.

    Args:
        status: The HTTP status of the answer.
        body: The decoded JSON body (any shape).
        method: The REST method that was called.
        api_version: 2 or 3.

    Returns:
        The error, ready to raise.
    """
    code: Any = ""
    description: Any = ""
    validation: list[Any] | None = None
    reset_at: Any = None
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code = err.get("code", "")
            description = err.get("message", "")
            raw_validation = err.get("validation")
            if isinstance(raw_validation, list):
                validation = raw_validation
        else:
            code = err if err is not None else ""
            description = body.get("error_description", "")
        time_obj = body.get("time")
        if isinstance(time_obj, Mapping):
            reset_at = time_obj.get("operating_reset_at")
    code = "" if code is None else str(code)
    description = "" if description is None else str(description)
    # JS SDK practice: "0" is no code at all.
    cls = _class_for("" if code == "0" else code, status)
    error = cls(method, code, description, status=status, api_version=api_version,
                validation=validation)
    if isinstance(error, OperationTimeLimitError) and isinstance(reset_at, int | float):
        error.reset_at = float(reset_at)
    return error
