"""Where the examples send their requests: $B24_WEBHOOK_URL, or a local PortalEmulator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def webhook_url() -> Iterator[str]:
    """Yield $B24_WEBHOOK_URL when set, else the URL of a PortalEmulator started for the run."""
    url = os.environ.get("B24_WEBHOOK_URL")
    if url:
        yield url
        return
    from b24_dagster.emulator import PortalEmulator, PortalSettings

    with PortalEmulator(PortalSettings(rate=0)) as emulator:
        yield emulator.webhook_url
