"""Shared test configuration: the emulator fixtures come from b24_dagster.emulator.pytest_plugin."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def wait_for(condition: Callable[[], Any], what: str, *, timeout: float = 10.0,
             interval: float = 0.005, abort: Callable[[], str | None] | None = None) -> Any:
    """Poll ``condition`` until it holds; fail the test once ``timeout`` seconds have passed.

    Tests synchronize with threads, processes and the emulator by this, never by a fixed
    sleep: a sleep is too short on a loaded machine and wasted time on an idle one.

    Args:
        condition: Returns a truthy value once the awaited state is reached.
        what: The awaited state, for the failure message.
        timeout: Seconds before giving up.
        interval: Seconds between polls.
        abort: Returns why waiting is pointless (e.g. the child process ended), or None.

    Returns:
        The condition's truthy value.

    Raises:
        AssertionError: The deadline passed, or ``abort`` gave a reason.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        reason = abort() if abort is not None else None
        if reason:
            raise AssertionError(f"{reason} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _own_limits_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test shares client limits (bucket, operating-time balances) only within itself:
    the session's emulator keeps its port, and a balance left by one test must not pause the next."""
    monkeypatch.setenv("B24_DAGSTER_STATE_DIR", str(tmp_path_factory.mktemp("limits")))
