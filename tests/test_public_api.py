"""Pins the public surface of `b24_dagster`: a change to it must be a deliberate one."""

from __future__ import annotations

import b24_dagster
import b24_dagster.client
import b24_dagster.emulator
import b24_dagster.frames
import b24_dagster.integration

TOP_LEVEL = {
    # the client and its results (no dagster, no pandas)
    "Bitrix24Client", "CallResult", "ClientStats", "RetryPolicy", "BatchResult",
    "CommandResult", "ChunkedBatchRun", "RunStats", "ref", "ref_array",
    # errors
    "Bitrix24Error", "ConfigurationError", "CommandValidationError", "TransportError",
    "ConnectError", "OutcomeUnknownError", "ProtocolError", "ApiError", "AuthError",
    "AccessDeniedError", "MethodNotFoundError", "RateLimitError", "OperationTimeLimitError",
    "ServerError", "NotFoundError", "ValidationError", "BatchError",
    # frames and the Dagster layer, loaded lazily
    "commands_from_frame", "CommandSet", "results_to_frame", "failed_rows",
    "Bitrix24Resource", "Bitrix24Storage", "Bitrix24Translator",
    "build_bitrix24_batch_asset", "build_bitrix24_batch_op",
    "build_bitrix24_export_asset", "build_bitrix24_export_schedule",
    "__version__",
}


def test_top_level_all_is_pinned() -> None:
    assert set(b24_dagster.__all__) == TOP_LEVEL
    assert list(b24_dagster.__all__) == sorted(b24_dagster.__all__, key=str)


def test_every_exported_name_resolves() -> None:
    for module in (b24_dagster, b24_dagster.client, b24_dagster.frames,
                   b24_dagster.integration, b24_dagster.emulator):
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_lazy_names_are_the_integration_objects() -> None:
    from b24_dagster.integration import Bitrix24Resource, build_bitrix24_batch_asset

    assert b24_dagster.Bitrix24Resource is Bitrix24Resource
    assert b24_dagster.build_bitrix24_batch_asset is build_bitrix24_batch_asset


def test_the_asset_decorators_are_public_in_the_integration_package() -> None:
    names = {"bitrix24_batch_assets", "Bitrix24BatchInvocation", "bitrix24_export_assets", "Bitrix24ExportInvocation"}
    assert names <= set(b24_dagster.integration.__all__)


def test_the_replica_factories_are_public_in_the_integration_package() -> None:
    names = {"build_bitrix24_replica_asset", "build_bitrix24_reference_asset", "build_bitrix24_replica_sensor",
             "Bitrix24ReplicaConfig"}
    assert names <= set(b24_dagster.integration.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        b24_dagster.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
