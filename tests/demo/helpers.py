"""Helpers of the demo tests: the repository, a clean environment, the emulator's webhook."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
UNUSED_WEBHOOK = "http://127.0.0.1:9/rest/1/unused/"
"""A webhook nothing listens on, for tests that load definitions but call no portal."""


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: no Bitrix24/Dagster settings but `home` and `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BITRIX24_", "B24_DAGSTER_", "DAGSTER_"))
    }
    env["DAGSTER_HOME"] = str(home)
    env["VIRTUAL_ENV"] = str(BIN.parent)
    env.update(extra)
    return env
