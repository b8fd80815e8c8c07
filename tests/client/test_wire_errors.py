"""Error bodies -> the errors hierarchy, for every error fixture (real and derived)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from b24_dagster import errors as E
from b24_dagster._redaction import register_secret
from b24_dagster.errors import error_from_response

FIXTURES = Path(__file__).parent.parent / "fixtures"

# fixture file -> (HTTP status per sources.txt, expected class, expected code)
CASES = {
    "crm_deal_add_error.json": (400, E.ValidationError, ""),
    "crm_deal_list_error.json": (400, E.ValidationError, ""),
    "crm_item_add_error_not_found.json": (400, E.NotFoundError, "NOT_FOUND"),
    "crm_item_get_error_not_found.json": (400, E.NotFoundError, "NOT_FOUND"),
    "crm_item_list_error_invalid_arg.json": (400, E.ValidationError, "INVALID_ARG_VALUE"),
    "oauth_server_error_payment_required.json": (401, E.AuthError, "PAYMENT_REQUIRED"),
    "tasks_task_add_v2_error.json": (400, E.ApiError, "ERROR_CORE"),
    "tasks_task_get_v2_error.json": (400, E.ApiError, "100"),
    "tasks_task_list_v2_error.json": (400, E.ValidationError, "0"),
    "tasks_task_add_v3_error.json": (
        400, E.ValidationError, "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION"),
    "tasks_task_update_v3_error.json": (
        400, E.ValidationError, "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION"),
    "tasks_task_delete_v3_error_access_denied.json": (
        400, E.AccessDeniedError, "BITRIX_REST_V3_EXCEPTION_ACCESSDENIEDEXCEPTION"),
    "tasks_task_get_v3_error.json": (
        400, E.NotFoundError, "BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION"),
    "tasks_task_list_v3_error.json": (
        400, E.ValidationError, "BITRIX_REST_V3_EXCEPTION_INVALIDPAGINATIONEXCEPTION"),
    "v3_error_unknown_dto_property.json": (
        400, E.ValidationError, "BITRIX_REST_V3_EXCEPTION_UNKNOWNDTOPROPERTYEXCEPTION"),
    "v3_error_validation.json": (
        400, E.ValidationError, "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION"),
    "derived/batch_v3_error_SYNTHETIC.json": (
        400, E.ValidationError, "BITRIX_REST_V3_EXCEPTION_INVALIDSELECTEXCEPTION"),
    "derived/error_batch_length_exceeded.json": (400, E.ValidationError,
                                                 "ERROR_BATCH_LENGTH_EXCEEDED"),
    "derived/error_expired_token.json": (401, E.AuthError, "expired_token"),
    "derived/error_insufficient_scope.json": (403, E.AccessDeniedError, "insufficient_scope"),
    "derived/error_internal_server_error.json": (500, E.ServerError, "INTERNAL_SERVER_ERROR"),
    "derived/error_invalid_credentials.json": (403, E.AccessDeniedError, "INVALID_CREDENTIALS"),
    "derived/error_method_not_found.json": (404, E.MethodNotFoundError, "ERROR_METHOD_NOT_FOUND"),
    "derived/error_no_auth_found.json": (401, E.AuthError, "NO_AUTH_FOUND"),
    "derived/error_operation_time_limit.json": (429, E.OperationTimeLimitError,
                                                "OPERATION_TIME_LIMIT"),
    "derived/error_query_limit_exceeded.json": (503, E.RateLimitError, "QUERY_LIMIT_EXCEEDED"),
}


def _error_fixtures() -> list[str]:
    found = []
    for path in sorted(FIXTURES.rglob("*.json")):
        body = json.loads(path.read_text())
        if isinstance(body, dict) and "error" in body:
            found.append(str(path.relative_to(FIXTURES)))
    return found


def test_every_error_fixture_has_a_case() -> None:
    assert set(_error_fixtures()) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixture_maps_to_its_class(name: str) -> None:
    status, cls, code = CASES[name]
    body = json.loads((FIXTURES / name).read_text())
    version = 3 if isinstance(body["error"], dict) else 2
    err = error_from_response(status, body, method="some.method", api_version=version)
    assert type(err) is cls
    assert isinstance(err, E.ApiError) and isinstance(err, E.Bitrix24Error)
    assert (err.method, err.code, err.status, err.api_version) == ("some.method", code, status,
                                                                    version)
    assert "some.method" in str(err)
    assert err.description == (body["error"]["message"] if version == 3
                               else body["error_description"])
    if version == 3 and "validation" in body["error"]:
        assert err.validation and body["error"]["validation"][0]["field"] in str(err)


@pytest.mark.parametrize(("status", "cls"), [
    (400, E.ValidationError), (401, E.AuthError), (403, E.AccessDeniedError),
    (404, E.MethodNotFoundError), (429, E.OperationTimeLimitError), (503, E.RateLimitError),
    (500, E.ServerError), (502, E.ServerError), (418, E.ApiError),
])
def test_status_decides_when_there_is_no_code(status: int, cls: type) -> None:
    err = error_from_response(status, {"error": "", "error_description": "x"}, method="m",
                              api_version=2)
    assert type(err) is cls
    err2 = error_from_response(status, ["not", "a", "dict"], method="m", api_version=2)
    assert type(err2) is cls and err2.code == ""


@pytest.mark.parametrize(("code", "cls"), [
    ("invalid_token", E.AuthError), ("WRONG_CLIENT", E.AuthError),
    ("ACCESS_DENIED", E.AccessDeniedError), ("user_access_error", E.AccessDeniedError),
    ("BITRIX_REST_V3_EXCEPTION_INSUFFICIENTSCOPEEXCEPTION", E.AccessDeniedError),
    ("BITRIX_REST_V3_EXCEPTION_METHODNOTFOUNDEXCEPTION", E.MethodNotFoundError),
    ("OVERLOAD_LIMIT", E.RateLimitError), ("ERROR_UNEXPECTED_ANSWER", E.ServerError),
    ("PORTAL_DELETED", E.ServerError), ("ERROR_ENTITY_NOT_FOUND", E.NotFoundError),
    ("BITRIX_REST_V3_EXCEPTION_INVALIDJSONEXCEPTION", E.ValidationError),
    ("BITRIX_REST_V3_EXCEPTION_UNKNOWNFILTEROPERATOREXCEPTION", E.ValidationError),
    ("BITRIX_REST_V3_EXCEPTION_IDEMPOTENCYKEYREUSEDEXCEPTION", E.ValidationError),
])
def test_codes(code: str, cls: type) -> None:
    assert type(error_from_response(400, {"error": code}, method="m", api_version=2)) is cls


def test_operation_time_limit_carries_reset_at() -> None:
    body = {"error": "OPERATION_TIME_LIMIT", "error_description": "blocked",
            "time": {"operating": 481.0, "operating_reset_at": 1757425271}}
    err = error_from_response(429, body, method="crm.item.list", api_version=2)
    assert isinstance(err, E.OperationTimeLimitError) and err.reset_at == 1757425271.0


def test_errors_never_show_a_registered_code_and_pickle() -> None:
    register_secret("qq-secret-qq-3")
    err = error_from_response(404, {"error": "X", "error_description":
                                    "no page /rest/1/qq-secret-qq-3/x"}, method="m", api_version=2)
    assert "qq-secret-qq-3" not in str(err) + repr(err) + err.description
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and str(copy) == str(err) and copy.status == 404
    cve = E.CommandValidationError("bad", command_key="k", index=3)
    copy2 = pickle.loads(pickle.dumps(cve))
    assert (copy2.command_key, copy2.index, str(copy2)) == ("k", 3, "bad")
    assert isinstance(cve, ValueError) and isinstance(E.ConfigurationError("x"), ValueError)


def test_hierarchy() -> None:
    for cls in (E.ConnectError, E.OutcomeUnknownError, E.ProtocolError):
        assert issubclass(cls, E.TransportError)
    for cls in (E.AuthError, E.AccessDeniedError, E.MethodNotFoundError, E.RateLimitError,
                E.OperationTimeLimitError, E.ServerError, E.NotFoundError, E.ValidationError):
        assert issubclass(cls, E.ApiError)
    for cls in (E.TransportError, E.ApiError, E.BatchError, E.ConfigurationError,
                E.CommandValidationError):
        assert issubclass(cls, E.Bitrix24Error)
    batch = E.BatchError("halted", code="NOT_FOUND", results=[1])
    assert batch.method == "batch" and batch.results == [1]
