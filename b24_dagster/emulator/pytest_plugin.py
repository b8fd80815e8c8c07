"""pytest fixtures for the Bitrix24 portal emulator (registered through the pytest11 entry point).

Layered like pytest-httpserver's: one emulator per session (``b24_emulator_session``, on a
free port), reset before each test that asks for ``b24_emulator``::

    def test_export(b24_emulator, b24_webhook_url):
        b24_emulator.portal.seed("deal", 120)
        ...

The emulator is imported only when a fixture is used, so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from b24_dagster.emulator import PortalEmulator


@pytest.fixture(scope="session")
def b24_emulator_session() -> Iterator[PortalEmulator]:
    """One emulator for the whole session (no rate limit; plain http on a free port)."""
    from b24_dagster.emulator import PortalEmulator, PortalSettings

    emulator = PortalEmulator(PortalSettings(rate=0))
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def b24_emulator(b24_emulator_session: PortalEmulator) -> PortalEmulator:
    """The session's emulator, emptied (store, limits, log, faults, settings back to ``rate=0``)."""
    b24_emulator_session.reset()
    return b24_emulator_session


@pytest.fixture
def b24_webhook_url(b24_emulator: PortalEmulator) -> str:
    """The v2 webhook URL of the (reset) emulator."""
    return b24_emulator.webhook_url
