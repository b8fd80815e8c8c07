"""The retry classification table of client/_retry.py, and the backoff."""

from __future__ import annotations

import pytest

from b24_dagster.client._retry import Action, RetryPolicy, classify
from b24_dagster.client._transport import MaybeSent
from b24_dagster.errors import (
    AuthError,
    ConnectError,
    NotFoundError,
    OperationTimeLimitError,
    ProtocolError,
    RateLimitError,
    ServerError,
    ValidationError,
    error_from_response,
)


def _protocol(status: int, **flags: bool) -> ProtocolError:
    err = ProtocolError("x", method="m", status=status)
    for name, value in flags.items():
        setattr(err, name, value)
    return err


R, W, IDEM = {"writes": False}, {"writes": True}, {"writes": True, "idempotent": True}

CASES = [
    # error, read, write, idempotent write
    (RateLimitError("m", "QUERY_LIMIT_EXCEEDED", status=503), Action.REFUSED, Action.REFUSED,
     Action.REFUSED),
    (RateLimitError("m", "OVERLOAD_LIMIT", status=503), Action.RETRY, Action.RETRY, Action.RETRY),
    (OperationTimeLimitError("m", "OPERATION_TIME_LIMIT", status=429), Action.BLOCKED,
     Action.BLOCKED, Action.BLOCKED),
    # an HTML 503 page, or a 503 without the rate-limit code, proves nothing was refused
    (_protocol(503), Action.RETRY, Action.UNKNOWN, Action.RETRY),
    (error_from_response(503, {"error": "", "error_description": "down"}, method="m",
                         api_version=2), Action.RETRY, Action.UNKNOWN, Action.RETRY),
    (error_from_response(503, {"error": "SERVICE_UNAVAILABLE"}, method="m", api_version=2),
     Action.RETRY, Action.UNKNOWN, Action.RETRY),
    (error_from_response(503, [], method="m", api_version=2), Action.RETRY, Action.UNKNOWN,
     Action.RETRY),
    (error_from_response(503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description":
                               "Too many requests"}, method="m", api_version=2),
     Action.REFUSED, Action.REFUSED, Action.REFUSED),
    (_protocol(429), Action.BLOCKED, Action.BLOCKED, Action.BLOCKED),
    (ConnectError("x"), Action.RETRY, Action.RETRY, Action.RETRY),
    (ConnectError("x", retryable=False), Action.RAISE, Action.RAISE, Action.RAISE),
    (MaybeSent("x"), Action.RETRY, Action.UNKNOWN, Action.RETRY),
    (ServerError("m", "INTERNAL_SERVER_ERROR", status=500), Action.RETRY, Action.UNKNOWN,
     Action.RETRY),
    (ServerError("m", "PORTAL_DELETED", status=500), Action.RAISE, Action.RAISE, Action.RAISE),
    (_protocol(200), Action.RETRY, Action.UNKNOWN, Action.RETRY),  # malformed 200 body
    (_protocol(502), Action.RETRY, Action.UNKNOWN, Action.RETRY),  # HTML 502 page
    (_protocol(403), Action.RAISE, Action.RAISE, Action.RAISE),  # HTML 403 page
    (_protocol(302, redirect=True), Action.RAISE, Action.RAISE, Action.RAISE),
    (_protocol(200, oversized=True), Action.RAISE, Action.UNKNOWN, Action.RAISE),
    (AuthError("m", "NO_AUTH_FOUND", status=401), Action.RAISE, Action.RAISE, Action.RAISE),
    (NotFoundError("m", "NOT_FOUND", status=400), Action.RAISE, Action.RAISE, Action.RAISE),
    (ValidationError("m", "", status=400), Action.RAISE, Action.RAISE, Action.RAISE),
]


@pytest.mark.parametrize(("error", "read", "write", "idem"), CASES,
                         ids=[f"{type(c[0]).__name__}-{getattr(c[0], 'status', '')}-{i}"
                              for i, c in enumerate(CASES)])
def test_classify(error, read, write, idem) -> None:  # type: ignore[no-untyped-def]
    assert classify(error, **R) is read
    assert classify(error, **W) is write
    assert classify(error, **IDEM) is idem


def test_full_jitter_backoff_is_bounded_and_grows() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=8.0)
    assert policy.backoff(0, rng=lambda: 0.999) == pytest.approx(0.4995)
    assert policy.backoff(3, rng=lambda: 0.5) == pytest.approx(2.0)
    assert policy.backoff(50, rng=lambda: 0.999) <= 8.0
    assert policy.backoff(2, rng=lambda: 0.0) == 0.0
