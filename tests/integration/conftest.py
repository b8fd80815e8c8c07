"""Fixtures of the Dagster integration tests: resources pointed at the emulator via EnvVar."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from b24_dagster.integration import BASE_ENV, Bitrix24Resource, Bitrix24Storage


@pytest.fixture
def instance() -> dg.DagsterInstance:
    """An in-memory Dagster instance (fast)."""
    return dg.DagsterInstance.ephemeral()


@pytest.fixture
def disk_instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance with files on disk (searched for the webhook code)."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def base(tmp_path, monkeypatch):
    """The Parquet base location, set through the same variable the demo and dbt use."""
    path = tmp_path / "data"
    monkeypatch.setenv(BASE_ENV, str(path))
    return path


@pytest.fixture
def resources(b24_emulator, base, monkeypatch) -> dict[str, object]:
    """`bitrix24` and `bitrix24_storage`, the webhook from BITRIX24_WEBHOOK_URL."""
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url)
    return {
        "bitrix24": Bitrix24Resource(
            webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"),
            requests_per_second=None,
            share_limits=False,
            max_retries=2,
            backoff_seconds=0.01,
        ),
        "bitrix24_storage": Bitrix24Storage(),
    }
